"""Build ``config/data/states.csv`` from the shared corpora.

    python -m config.build_states /work/shared/corpora/ccm

reads ``un-country-codes-unterm.csv`` (UNTERM and M49 names, a copy of datasets/country-codes)
and ``ccm-states-feb2017.csv`` (the 100 States Parties and 19 signatories of February 2017,
with their sources), and writes one row per UN Member State, the two Observer States, Cook
Islands and Niue: 197 rows, sorted by ISO3, so a rebuild from the same files is byte-identical.

It stops with a message (exit status 1) instead of writing anything when the inputs are not
what it expects: a CCM name that maps to no State or to one already taken, a count other than
197 / 100 / 19, a derived date that does not follow the treaty's rule, or two States sharing a
name once normalised.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from parsers.states import State, StateRegistry, normalise_name

OUT = Path(__file__).resolve().parent / "data" / "states.csv"
UNTERM_FILE = "un-country-codes-unterm.csv"
CCM_FILE = "ccm-states-feb2017.csv"

COLUMNS = (
    "iso3",
    "iso2",
    "m49",
    "name_en",
    "name_fr",
    "name_es",
    "formal_en",
    "formal_fr",
    "formal_es",
    "aliases",
    "ccm_status",
    "ccm_signature_date",
    "ccm_deposit_date",
    "ccm_method",
    "ccm_entry_into_force",
    "ccm_initial_report_due",
    "ccm_source",
    "ccm_unconfirmed",
    "ccm_note",
    "names_source",
)
LANGS = ("en", "fr", "es")
EXPECTED_STATES = 197  # 193 Member States + Holy See + State of Palestine + Cook Islands + Niue
EXPECTED_PARTIES = 100
EXPECTED_SIGNATORIES = 19

# The CCM's own list of the 119 (clusterconvention.org, Feb 2017) → ISO3, where its name is not
# the UNTERM English short name. Every entry must be used; every other CCM name must equal a
# UNTERM short name exactly, or the build fails.
CCM_NAMES: Mapping[str, str] = {
    "Bolivia": "BOL",
    "Cape Verde": "CPV",
    "Congo": "COG",  # the Republic of the Congo (Brazzaville), a State Party since 2014
    "Côte d’Ivoire": "CIV",
    "Czech Republic": "CZE",
    "Democratic Republic of Congo": "COD",  # Kinshasa, a signatory
    "Holy See": "VAT",
    "Lao PDR": "LAO",
    "Moldova": "MDA",
    "Saint Kitt and Nevis": "KNA",  # sic in the CCM list
    "State of Palestine": "PSE",
    "Swaziland": "SWZ",
    "the FYR of Macedonia": "MKD",
    "United Kingdom": "GBR",
    "United Republic of Tanzania": "TZA",
}
# CCM spellings that are typos: mapped above, but not made into aliases.
CCM_TYPOS = frozenset({"Saint Kitt and Nevis"})

# UNTERM rows that are empty in the source (a join mismatch upstream): the short names come
# from the M49 official_name_* columns; the formal names are written here by hand.
GAP_FILLS: Mapping[str, tuple[tuple[str, str, str], tuple[str, str, str], str]] = {
    "CIV": (
        ("Côte d'Ivoire", "Côte d'Ivoire", "Côte d'Ivoire"),
        (
            "the Republic of Côte d'Ivoire",
            "la République de Côte d'Ivoire",
            "la República de Côte d'Ivoire",
        ),
        "UNTERM row empty in the source: short names from M49 official_name_fr/es "
        "(official_name_en reads 'Ivory Coast', kept as an alias); formal names written by hand, "
        "UNCONFIRMED against UNTERM",
    ),
    "TUR": (
        ("Türkiye", "Türkiye", "Türkiye"),
        ("the Republic of Türkiye", "la République de Türkiye", "la República de Türkiye"),
        "UNTERM row empty in the source: short names from M49 official_name_en/fr/es; "
        "formal names written by hand, UNCONFIRMED against UNTERM",
    ),
}

# Old and common names, in EN/FR/ES. Accent, case, article, hyphen and "St"/"Saint"
# variants need no alias: the registry normalises them. Names that would point at two States
# ("Korea", "Guinea" for Equatorial Guinea, "US") are deliberately absent.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "ARE": ("UAE",),
    "ATG": ("Antigua",),
    "BIH": ("Bosnia", "Bosnia-Herzegovina"),
    "BRN": ("Brunei", "Brunéi"),
    "CAF": ("Centrafrique",),
    "CIV": ("Ivory Coast", "Costa de Marfil"),
    "COD": (
        "DR Congo",
        "RD Congo",
        "DRC",
        "RDC",
        "Congo-Kinshasa",
        "Democratic Republic of Congo",
        "Zaire",
    ),
    "COG": ("Congo-Brazzaville", "Republic of Congo"),
    "CPV": ("Cape Verde", "Cap-Vert", "Republic of Cape Verde"),
    "CZE": ("Czech Republic",),
    "GBR": (
        "United Kingdom",
        "UK",
        "Great Britain",
        "Britain",
        "Royaume-Uni",
        "Grande-Bretagne",
        "Reino Unido",
        "Gran Bretaña",
    ),
    "IRL": ("Republic of Ireland", "Eire"),
    "KNA": (
        "Saint Kitts",
        "Saint-Christophe-et-Niévès",
        "San Cristóbal y Nieves",
        "Saint Christopher and Nevis",
    ),
    "KOR": ("South Korea", "Korea, Republic of", "Corée du Sud", "Corea del Sur"),
    "LAO": ("Lao PDR", "Lao P.D.R.", "Laos", "RDP lao"),
    "LBY": ("Libyan Arab Jamahiriya", "Jamahiriya arabe libyenne"),
    "MDA": ("Moldova", "Moldavie", "Moldavia"),
    "MKD": (
        "the former Yugoslav Republic of Macedonia",
        "l'ex-République yougoslave de Macédoine",
        "la ex República Yugoslava de Macedonia",
        "FYR of Macedonia",
        "FYR Macedonia",
        "FYROM",
        "ERYM",
        "Macedonia",
        "Macédoine",
        "Republic of Macedonia",
    ),
    "MMR": ("Burma", "Birmanie", "Birmania"),
    "NLD": ("Holland", "Hollande", "Holanda"),
    "PRK": (
        "DPRK",
        "DPR Korea",
        "North Korea",
        "Korea, Democratic People's Republic of",
        "Corée du Nord",
        "RPDC",
        "Corea del Norte",
    ),
    "PSE": ("Palestine", "Palestina"),
    "RUS": ("Russia", "Russie", "Rusia"),
    "STP": ("Sao Tome",),
    "SWZ": (
        "Swaziland",
        "Kingdom of Swaziland",
        "Royaume du Swaziland",
        "Swazilandia",
        "Reino de Swazilandia",
        "Esuatini",
    ),
    "SYR": ("Syria", "Syrie", "Siria"),
    "TLS": ("East Timor", "Timor oriental"),
    "TTO": ("Trinidad",),
    "TUR": (
        "Turkey",
        "Turquie",
        "Turquía",
        "Republic of Turkey",
        "République de Turquie",
        "República de Turquía",
    ),
    "TZA": ("Tanzania", "Tanzanie", "Tanzanía"),
    "USA": ("United States", "USA", "U.S.A.", "États-Unis", "Estados Unidos", "EE.UU.", "EEUU"),
    "VAT": (
        "Vatican",
        "Vatican City",
        "Vatican City State",
        "Cité du Vatican",
        "Vaticano",
        "Ciudad del Vaticano",
    ),
    "VCT": ("Saint Vincent", "San Vicente"),
    "VNM": ("Vietnam",),
}

CCM_MEMBERSHIP_URL = "http://www.clusterconvention.org/the-convention/convention-status/"
EIF_FIRST = date(2010, 8, 1)  # entry into force of the Convention (Art. 17(1))
FEB_2017_END = date(2017, 2, 28)
INITIAL_REPORT_DAYS = 180
# Where the derived initial-report date disagrees with a published table (CCM-FACTS.md §3).
DUE_DATE_DISPUTES = {
    "CPV": "initial report due: derived 2011-09-28, jrsap.org overdue table says 2011-10-28",
    "GIN": "initial report due: derived 2015-09-28, jrsap.org overdue table says 2015-04-19",
}

_ARTICLE_SUFFIX = re.compile(r"\s*\((?:the|le|la|l'|les|el|los|las)\)$", re.IGNORECASE)
_MARKERS = re.compile(r"\s*\*+$")
_QUALIFIER = re.compile(r"^(.*?)\s*\([^)]*\)$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BuildError(Exception):
    """The inputs are not what the build expects; the message says which row and why."""


@dataclass
class Row:
    iso3: str
    iso2: str
    m49: str
    short: tuple[str, str, str]
    formal: tuple[str, str, str]
    aliases: list[str]
    names_source: str
    ccm: dict[str, str]


def _clean(name: str) -> str:
    """A UNTERM name without its '*'/'**' marker and trailing article: 'Niger (the)' → 'Niger'."""
    name = name.replace("’", "'").strip()
    name = _MARKERS.sub("", name)
    return _ARTICLE_SUFFIX.sub("", name).strip()


def _iso(value: str) -> date | None:
    value = value.strip()
    return date.fromisoformat(value) if _ISO_DATE.match(value) else None


def _entry_into_force(deposit: date) -> date:
    """The later of 1 Aug 2010 and the first day of the sixth month after the deposit."""
    month = deposit.month + 6
    first = date(deposit.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    return max(EIF_FIRST, first)


def read_un_rows(path: Path) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            iso3 = rec["ISO3166-1-Alpha-3"].strip()
            has_unterm = bool(rec["UNTERM English Short"].strip())
            if iso3 in GAP_FILLS:
                if has_unterm:
                    raise BuildError(
                        f"{path.name}: {iso3} now has UNTERM names; drop its GAP_FILLS entry"
                    )
                short, formal, source = GAP_FILLS[iso3]
                m49 = (rec["official_name_en"], rec["official_name_fr"], rec["official_name_es"])
                if not all(x.strip() for x in m49):
                    raise BuildError(f"{path.name}: {iso3} has no M49 official names to fill from")
            elif has_unterm:
                short = (
                    _clean(rec["UNTERM English Short"]),
                    _clean(rec["UNTERM French Short"]),
                    _clean(rec["UNTERM Spanish Short"]),
                )
                formal = (
                    _clean(rec["UNTERM English Formal"]),
                    _clean(rec["UNTERM French Formal"]),
                    _clean(rec["UNTERM Spanish Formal"]),
                )
                source = "UNTERM"
            else:
                continue
            if not re.fullmatch(r"[A-Z]{3}", iso3) or iso3 in rows:
                raise BuildError(f"{path.name}: bad or repeated ISO3 {iso3!r}")
            if not all(short) or not all(formal):
                raise BuildError(f"{path.name}: {iso3} lacks a short or formal name")
            extra = [rec[f"official_name_{lang}"].replace("’", "'").strip() for lang in LANGS]
            rows[iso3] = Row(
                iso3=iso3,
                iso2=rec["ISO3166-1-Alpha-2"].strip(),
                m49=rec["M49"].strip().zfill(3),
                short=short,
                formal=formal,
                aliases=[x for x in extra if x],
                names_source=source,
                ccm={},
            )
    if len(rows) != EXPECTED_STATES:
        raise BuildError(
            f"{path.name}: {len(rows)} States with UN names, expected {EXPECTED_STATES}"
        )
    return rows


def _aliases(row: Row) -> list[str]:
    """The row's aliases: hand-written, M49 and CCM spellings, and short names without their
    qualifier ('Bolivia (Plurinational State of)' → 'Bolivia'); none that repeats a name."""
    seen = {normalise_name(n) for n in (*row.short, *row.formal)}
    candidates = list(ALIASES.get(row.iso3, ()))
    for name in (*row.short, *row.aliases):
        m = _QUALIFIER.match(name)
        if m:
            candidates.append(m.group(1))
    candidates.extend(row.aliases)
    out: list[str] = []
    for alias in candidates:
        key = normalise_name(alias)
        if key and key not in seen:
            seen.add(key)
            out.append(alias)
    return out


def _ccm_columns(rec: Mapping[str, str], iso3: str) -> dict[str, str]:
    name = rec["name_as_listed"]
    listed = rec["status_feb_2017"].strip()
    status = {"State Party": "state_party", "Signatory (not ratified)": "signatory"}.get(listed)
    if status is None:
        raise BuildError(f"{CCM_FILE}: {name}: unknown status {listed!r}")
    unconfirmed: list[str] = []
    notes: list[str] = []
    signature = _iso(rec["signature_date"])
    if signature is None and "accession" not in rec["signature_date"]:
        unconfirmed.append("signature date")
    deposit = _iso(rec["ratification_or_accession_date"])
    method = rec["method"].strip()
    eif = _iso(rec["derived_entry_into_force"])
    due = _iso(rec["derived_initial_art7_report_due"])
    if status == "state_party":
        if deposit is None:
            unconfirmed.append("deposit date, entry into force, initial report due date")
        else:
            if deposit > FEB_2017_END:
                raise BuildError(f"{CCM_FILE}: {name}: State Party with a deposit after Feb 2017")
            if eif != _entry_into_force(deposit):
                raise BuildError(
                    f"{CCM_FILE}: {name}: entry into force {eif} does not follow "
                    f"from deposit {deposit} (expected {_entry_into_force(deposit)})"
                )
            if due != eif + timedelta(days=INITIAL_REPORT_DAYS):
                raise BuildError(
                    f"{CCM_FILE}: {name}: initial report due {due} is not "
                    f"entry into force + {INITIAL_REPORT_DAYS} days"
                )
        if method not in ("ratification", "accession", ""):
            raise BuildError(f"{CCM_FILE}: {name}: unknown method {method!r}")
    else:
        # Status as of February 2017: a later ratification is a note, not a deposit date here.
        if deposit is not None:
            notes.append(f"{method or 'ratification'}: deposited {deposit.isoformat()}")
        deposit = eif = due = None
        method = ""
    if iso3 in DUE_DATE_DISPUTES:
        unconfirmed.append(DUE_DATE_DISPUTES[iso3])
    return {
        "ccm_status": status,
        "ccm_signature_date": signature.isoformat() if signature else "",
        "ccm_deposit_date": deposit.isoformat() if deposit else "",
        "ccm_method": method,
        "ccm_entry_into_force": eif.isoformat() if eif else "",
        "ccm_initial_report_due": due.isoformat() if due else "",
        "ccm_source": f"{rec['membership_source'].strip()}; dates: {rec['date_source'].strip()}",
        "ccm_unconfirmed": "; ".join(unconfirmed),
        "ccm_note": "; ".join(notes),
    }


def attach_ccm(rows: dict[str, Row], path: Path) -> None:
    by_name = {row.short[0]: row.iso3 for row in rows.values()}
    used: set[str] = set()
    taken: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        records = list(csv.DictReader(f))
    for rec in records:
        name = rec["name_as_listed"].strip()
        iso3 = CCM_NAMES.get(name) or by_name.get(name)
        if iso3 is None:
            raise BuildError(
                f"{path.name}: CCM name {name!r} maps to no State; add it to CCM_NAMES"
            )
        if name in CCM_NAMES:
            used.add(name)
        if iso3 not in rows:
            raise BuildError(f"{path.name}: CCM name {name!r} maps to unknown ISO3 {iso3}")
        if iso3 in taken:
            raise BuildError(f"{path.name}: {name!r} and {taken[iso3]!r} both map to {iso3}")
        taken[iso3] = name
        ccm = _ccm_columns(rec, iso3)
        if name != rows[iso3].short[0]:
            listed = f"listed by the CCM as '{name}'"
            ccm["ccm_note"] = "; ".join(x for x in (ccm["ccm_note"], listed) if x)
        rows[iso3].ccm = ccm
        if name not in CCM_TYPOS:
            rows[iso3].aliases.append(name.replace("’", "'"))
    unused = sorted(set(CCM_NAMES) - used)
    if unused:
        raise BuildError(f"{path.name}: CCM_NAMES entries not in the list: {unused}")
    statuses = [row.ccm["ccm_status"] for row in rows.values() if row.ccm]
    parties, signatories = statuses.count("state_party"), statuses.count("signatory")
    if (parties, signatories) != (EXPECTED_PARTIES, EXPECTED_SIGNATORIES):
        raise BuildError(
            f"{path.name}: {parties} States Parties and {signatories} signatories, "
            f"expected {EXPECTED_PARTIES} and {EXPECTED_SIGNATORIES}"
        )
    for row in rows.values():
        if not row.ccm:
            row.ccm = {
                "ccm_status": "non_signatory",
                "ccm_signature_date": "",
                "ccm_deposit_date": "",
                "ccm_method": "",
                "ccm_entry_into_force": "",
                "ccm_initial_report_due": "",
                "ccm_source": f"{CCM_MEMBERSHIP_URL} (stored snapshot, Feb 2017: not among the "
                "119 States Parties and signatories)",
                "ccm_unconfirmed": "",
                "ccm_note": "",
            }


def to_records(rows: Mapping[str, Row]) -> list[dict[str, str]]:
    records = []
    for iso3 in sorted(rows):
        row = rows[iso3]
        records.append(
            {
                "iso3": row.iso3,
                "iso2": row.iso2,
                "m49": row.m49,
                "name_en": row.short[0],
                "name_fr": row.short[1],
                "name_es": row.short[2],
                "formal_en": row.formal[0],
                "formal_fr": row.formal[1],
                "formal_es": row.formal[2],
                "aliases": "|".join(_aliases(row)),
                **row.ccm,
                "names_source": row.names_source,
            }
        )
    return records


def check(records: Iterable[Mapping[str, str]], ccm_path: Path) -> None:
    """The registry accepts the rows (no shared names) and every CCM name resolves to its row."""
    states = [
        State(
            iso3=r["iso3"],
            iso2=r["iso2"],
            name_en=r["name_en"],
            name_fr=r["name_fr"],
            name_es=r["name_es"],
            formal_en=r["formal_en"],
            formal_fr=r["formal_fr"],
            formal_es=r["formal_es"],
            aliases=tuple(a for a in r["aliases"].split("|") if a),
            ccm_status=r["ccm_status"],
            ccm_entry_into_force=_iso(r["ccm_entry_into_force"]),
        )
        for r in records
    ]
    try:
        registry = StateRegistry(states)
    except ValueError as exc:
        raise BuildError(f"names collide: {exc}") from exc
    with ccm_path.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            name = rec["name_as_listed"].strip()
            if name in CCM_TYPOS:
                continue
            state = registry.lookup(name)
            expected = CCM_NAMES.get(name)
            if state is None or (expected is not None and state.iso3 != expected):
                raise BuildError(f"CCM name {name!r} resolves to {state and state.iso3}")


def build(corpus: Path, out: Path = OUT) -> int:
    rows = read_un_rows(corpus / UNTERM_FILE)
    attach_ccm(rows, corpus / CCM_FILE)
    records = to_records(rows)
    check(records, corpus / CCM_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return len(records)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m config.build_states <corpus dir holding "
            f"{UNTERM_FILE} and {CCM_FILE}>",
            file=sys.stderr,
        )
        return 2
    try:
        n = build(Path(args[0]))
    except (BuildError, OSError, KeyError) as exc:
        print(f"build_states: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {n} States to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
