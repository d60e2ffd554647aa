"""The reference data: 197 States with EN/FR/ES names and CCM status, and the mission directory."""

from __future__ import annotations

import csv
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from config import build_states
from config.registry import (
    MISSIONS_CSV,
    STATES_CSV,
    DataFileError,
    load_directory,
    load_registry,
)
from parsers.states import MissionDirectory, State, StateRegistry

CORPUS = Path("/work/shared/corpora/ccm")
needs_corpus = pytest.mark.skipif(
    not (CORPUS / build_states.CCM_FILE).exists(), reason="shared CCM corpus not present"
)

REGISTRY = load_registry()
STATES = sorted(REGISTRY, key=lambda s: s.iso3)


# --- the States ---------------------------------------------------------------------------


def test_it_holds_every_un_member_the_two_observers_cook_islands_and_niue() -> None:
    assert len(REGISTRY) == 197
    for iso3 in ("VAT", "PSE", "COK", "NIU", "CIV", "TUR", "SSD", "MKD", "SWZ"):
        assert iso3 in REGISTRY


def test_it_counts_100_states_parties_and_19_signatories_as_of_february_2017() -> None:
    statuses = [s.ccm_status for s in REGISTRY]
    assert statuses.count("state_party") == 100
    assert statuses.count("signatory") == 19
    assert statuses.count("non_signatory") == 78


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.iso3)
def test_every_state_resolves_by_each_of_its_names_and_aliases(state: State) -> None:
    for name in state.names:
        found = REGISTRY.lookup(name)
        assert found is not None and found.iso3 == state.iso3, name
    for lang in ("en", "fr", "es"):
        assert REGISTRY.lookup(state.name(lang)) == state


@pytest.mark.parametrize(
    ("name", "iso3", "status"),
    [
        ("Cape Verde", "CPV", "state_party"),
        ("Cabo Verde", "CPV", "state_party"),
        ("Lao PDR", "LAO", "state_party"),
        ("Laos", "LAO", "state_party"),
        ("Swaziland", "SWZ", "state_party"),
        ("Eswatini", "SWZ", "state_party"),
        ("Moldova", "MDA", "state_party"),
        ("the former Yugoslav Republic of Macedonia", "MKD", "state_party"),
        ("the FYR of Macedonia", "MKD", "state_party"),
        ("Macedonia", "MKD", "state_party"),
        ("Holy See", "VAT", "state_party"),
        ("Vatican", "VAT", "state_party"),
        ("State of Palestine", "PSE", "state_party"),
        ("Palestine", "PSE", "state_party"),
        ("Congo", "COG", "state_party"),
        ("Democratic Republic of Congo", "COD", "signatory"),
        ("DR Congo", "COD", "signatory"),
        ("RDC", "COD", "signatory"),
        ("United Republic of Tanzania", "TZA", "signatory"),
        ("Tanzania", "TZA", "signatory"),
        ("Bolivia", "BOL", "state_party"),
        ("Czech Republic", "CZE", "state_party"),
        ("Czechia", "CZE", "state_party"),
        ("Cook Islands", "COK", "state_party"),
        ("Côte d’Ivoire", "CIV", "state_party"),
        ("Cote d'Ivoire", "CIV", "state_party"),
        ("Ivory Coast", "CIV", "state_party"),
        ("Sao Tome and Principe", "STP", "signatory"),
        ("São Tomé-et-Príncipe", "STP", "signatory"),
        ("St Kitts and Nevis", "KNA", "state_party"),
        ("Saint-Vincent-et-les Grenadines", "VCT", "state_party"),
        ("United Kingdom", "GBR", "state_party"),
        ("UK", "GBR", "state_party"),
        ("Great Britain", "GBR", "state_party"),
        ("Netherlands", "NLD", "state_party"),
        ("Pays-Bas", "NLD", "state_party"),
        ("Turkey", "TUR", "non_signatory"),
        ("Türkiye", "TUR", "non_signatory"),
        ("Turquie", "TUR", "non_signatory"),
        ("Turquía", "TUR", "non_signatory"),
        ("Burma", "MMR", "non_signatory"),
        ("Republic of Korea", "KOR", "non_signatory"),
        ("South Korea", "KOR", "non_signatory"),
        ("Corée du Sud", "KOR", "non_signatory"),
        ("DPRK", "PRK", "non_signatory"),
        ("North Korea", "PRK", "non_signatory"),
        ("Syria", "SYR", "non_signatory"),
        ("Iran", "IRN", "non_signatory"),
        ("Russia", "RUS", "non_signatory"),
        ("USA", "USA", "non_signatory"),
        ("United States", "USA", "non_signatory"),
        ("Viet Nam", "VNM", "non_signatory"),
        ("Vietnam", "VNM", "non_signatory"),
        ("Brunei", "BRN", "non_signatory"),
        ("Micronesia", "FSM", "non_signatory"),
        ("Philippines", "PHL", "signatory"),
        ("Cyprus", "CYP", "signatory"),
        ("Nigeria", "NGA", "signatory"),
        ("Niger", "NER", "state_party"),
    ],
)
def test_old_and_common_names_resolve_to_the_right_state(name: str, iso3: str, status: str) -> None:
    state = REGISTRY.lookup(name)
    assert state is not None, name
    assert (state.iso3, state.ccm_status) == (iso3, status)


def test_an_ambiguous_or_unknown_name_resolves_to_none() -> None:
    for name in ("Korea", "Corée", "Corea", "Republic", "United", "Narnia", ""):
        assert REGISTRY.lookup(name) is None, name


def test_it_carries_ccm_dates_only_where_confirmed() -> None:
    che = REGISTRY.get("CHE")
    assert che.ccm_deposit_date == date(2012, 7, 17)
    assert che.ccm_entry_into_force == date(2013, 1, 1)
    assert che.ccm_initial_report_due == date(2013, 6, 30)
    assert REGISTRY.get("FRA").ccm_entry_into_force == date(2010, 8, 1)
    # A State Party whose dates were not in the stored sources, and a later ratifier.
    assert REGISTRY.get("LTU").ccm_entry_into_force is None
    ben = REGISTRY.get("BEN")
    assert ben.ccm_status == "signatory"
    assert (ben.ccm_deposit_date, ben.ccm_entry_into_force) == (None, None)


def test_short_names_come_without_unterm_articles_and_markers() -> None:
    niger = REGISTRY.get("NER")
    assert (niger.name_en, niger.name_fr, niger.name_es) == ("Niger", "Niger", "Níger")
    assert niger.formal_en == "the Republic of the Niger"
    vat = REGISTRY.get("VAT")
    assert (vat.name_en, vat.name_fr, vat.name_es) == ("Holy See", "Saint-Siège", "Santa Sede")
    assert REGISTRY.get("NIU").name_fr == "Nioué"


def test_name_falls_back_to_english_for_other_languages() -> None:
    che = REGISTRY.get("CHE")
    assert (che.name("en"), che.name("fr"), che.name("es"), che.name("de")) == (
        "Switzerland",
        "Suisse",
        "Suiza",
        "Switzerland",
    )


def test_get_raises_key_error_for_an_unknown_code() -> None:
    with pytest.raises(KeyError):
        REGISTRY.get("XXX")


def test_the_unterm_gaps_are_filled_from_m49_and_say_so() -> None:
    rows = {r["iso3"]: r for r in csv.DictReader(STATES_CSV.open(encoding="utf-8"))}
    assert rows["CIV"]["name_en"] == "Côte d'Ivoire"
    assert rows["TUR"]["name_fr"] == "Türkiye"
    for iso3 in ("CIV", "TUR"):
        assert "M49" in rows[iso3]["names_source"]
        assert "UNCONFIRMED" in rows[iso3]["names_source"]
    assert rows["FRA"]["names_source"] == "UNTERM"
    assert all(r["ccm_source"].startswith("http") for r in rows.values())


def test_a_registry_refuses_a_name_shared_by_two_states() -> None:
    a = REGISTRY.get("NER")
    b = State(
        iso3="XNG",
        iso2="XN",
        name_en="Niger",
        name_fr="X",
        name_es="X",
        formal_en="X",
        formal_fr="X",
        formal_es="X",
        aliases=(),
        ccm_status="non_signatory",
        ccm_entry_into_force=None,
    )
    with pytest.raises(ValueError, match="also a name of NER"):
        StateRegistry([a, b])


# --- the build ----------------------------------------------------------------------------


@needs_corpus
def test_the_build_is_deterministic_and_matches_the_committed_file(tmp_path: Path) -> None:
    out = tmp_path / "states.csv"
    assert build_states.build(CORPUS, out) == 197
    assert out.read_bytes() == STATES_CSV.read_bytes()


@needs_corpus
def test_the_build_fails_loudly_on_a_ccm_name_that_maps_to_no_state(tmp_path: Path) -> None:
    corpus = tmp_path / "ccm"
    shutil.copytree(CORPUS, corpus)
    ccm = corpus / build_states.CCM_FILE
    ccm.chmod(0o644)
    ccm.write_text(
        ccm.read_text(encoding="utf-8").replace("Lao PDR,", "Laos People's DR,"), encoding="utf-8"
    )
    with pytest.raises(build_states.BuildError, match="Laos People's DR"):
        build_states.build(corpus, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert build_states.main([str(corpus)]) == 1


# --- the mission directory ----------------------------------------------------------------

DIRECTORY = load_directory(registry=REGISTRY)

HEADER = "iso3,kind,value,note,source\n"


def _missions(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "missions.csv"
    text = "# a comment line\n" + HEADER + "".join(r + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_directory_lists_the_demo_missions() -> None:
    listed = set(DIRECTORY.addresses.values()) | set(DIRECTORY.domains.values())
    assert listed >= {
        "FRA",
        "CHE",
        "ESP",
        "DEU",
        "CAN",
        "AUS",
        "JPN",
        "MEX",
        "CHL",
        "COL",
        "SEN",
        "CIV",
        "NER",
        "NGA",
        "AUT",
        "IRL",
        "ISL",
        "NOR",
        "NZL",
        "PER",
        "VAT",
    }


def test_the_directory_file_says_it_is_illustrative() -> None:
    text = MISSIONS_CSV.read_text(encoding="utf-8")
    assert text.startswith("# ILLUSTRATIVE ONLY - NOT VERIFIED")
    rows = [r for r in csv.reader(line for line in text.splitlines() if not line.startswith("#"))]
    illustrative = "illustrative — replace with the secretariat's contact list"
    assert all(r[4] == illustrative for r in rows[1:])


def test_an_address_matches_exactly_and_a_subdomain_matches_its_ministry_domain() -> None:
    assert DIRECTORY.lookup("dfra.geneve@diplomatie.gouv.fr") == ("FRA", "address")
    assert DIRECTORY.lookup("DFRA.Geneve@Diplomatie.Gouv.FR") == ("FRA", "address")
    assert DIRECTORY.lookup("someone@diplomatie.gouv.fr") == ("FRA", "domain")
    assert DIRECTORY.lookup("a.b@mission.geneve.diplomatie.gouv.fr") == ("FRA", "domain")
    assert DIRECTORY.lookup("x@diplomatie.gouv.sn") == ("SEN", "domain")
    assert DIRECTORY.lookup("x@gouv.fr") is None
    assert DIRECTORY.lookup("x@notdiplomatie.gouv.fr") is None
    assert DIRECTORY.lookup("mission.holy-see@ties.itu.int") == ("VAT", "address")
    assert DIRECTORY.lookup("another.mission@ties.itu.int") is None
    assert DIRECTORY.lookup("") is None


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "yahoo.fr",
        "yahoo.co.uk",
        "hotmail.com",
        "outlook.com",
        "gmx.ch",
        "protonmail.com",
        "bluewin.ch",
        "unog.ch",
        "un.org",
        "geneva.un.org",
        "ties.itu.int",
    ],
)
def test_the_loader_refuses_a_domain_that_cannot_identify_a_state(
    tmp_path: Path, domain: str
) -> None:
    path = _missions(tmp_path, "FRA,domain,diplomatie.gouv.fr,,x", f"CHL,domain,{domain},,x")
    expected = rf"missions\.csv line 4: domain {re.escape(domain)} cannot identify a State"
    with pytest.raises(DataFileError, match=expected):
        load_directory(path, registry=REGISTRY)


def test_a_single_mission_address_on_a_public_mail_service_is_allowed(tmp_path: Path) -> None:
    path = _missions(tmp_path, "NER,address,mission.niger.geneve@gmail.com,,x")
    assert load_directory(path, registry=REGISTRY).lookup("mission.niger.geneve@gmail.com") == (
        "NER",
        "address",
    )
    assert load_directory(path, registry=REGISTRY).lookup("someone.else@gmail.com") is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("FRA,address,ccm@unog.ch,,x", "United Nations domain"),
        ("XXX,domain,example.org,,x", "unknown iso3"),
        ("FRA,website,diplomatie.gouv.fr,,x", "neither 'address' nor 'domain'"),
        ("FRA,domain,diplomatie,,x", "is not a mail domain"),
        ("FRA,address,no-at-sign.fr,,x", "is not a mail address"),
        ("FRA,domain,diplomatie.gouv.fr,,", "no source"),
        ("FRA,domain,diplomatie.gouv.fr", "fields"),
    ],
)
def test_the_loader_names_the_bad_row(tmp_path: Path, row: str, message: str) -> None:
    with pytest.raises(DataFileError, match=rf"line 3: .*{message}"):
        load_directory(_missions(tmp_path, row), registry=REGISTRY)


def test_the_loader_refuses_a_value_listed_twice(tmp_path: Path) -> None:
    path = _missions(
        tmp_path, "FRA,domain,diplomatie.gouv.fr,,x", "CHE,domain,Diplomatie.gouv.fr,,x"
    )
    with pytest.raises(DataFileError, match=r"line 4: diplomatie\.gouv\.fr is listed twice"):
        load_directory(path, registry=REGISTRY)


def test_a_directory_built_in_code_refuses_a_free_mail_domain_too() -> None:
    with pytest.raises(ValueError, match=r"gmail\.com is a public mail service"):
        MissionDirectory(domains={"gmail.com": "NER"})
