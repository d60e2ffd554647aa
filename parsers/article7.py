"""What an Article 7 transparency report says about itself: State, period, Forms A–J.

The report is the form adopted at the 1MSP: a cover page (annual reports only) naming the
State Party and the reporting period, with a box per form for *changed*, *unchanged (last
reporting: yyyy)* and *non applicable*; then the detailed forms, each headed "Form A: National
implementation measures" (FR "Formulaire A", ES "Formulario A").

It is read from what the mail carries, in this order: the attachments' texts, their tables,
then the message body; the first value found for a field wins.

* **Forms.** A cover *table* (a header row with changed / unchanged / not applicable columns in
  EN, FR or ES, a row a form, a mark such as "X", "☒" or the year in a column) is read by
  column; a cover in *text* by the status words on the form's line ("☐ changed ☒ unchanged",
  "Form B: no change since 2015", "Formulaire C : sans objet", "Formularios D y E: no
  aplica"), or on the line just under it. A form heading with no status ("Form F:
  Contaminated areas and clearance") means the detailed form is *present*. A run of form
  lines with no status (a cover whose boxes were lost in the PDF text, a table of contents) is
  no heading: it gives a warning instead.
* **Period.** After a label ("Reporting period", "Période couverte", "Periodo que abarca el
  informe"): two dates ("1 January 2016 to 31 December 2016", "du 1er janvier au 31 décembre
  2016", "del 1 de enero al 31 de diciembre de 2016", "01/01/2016 - 31/12/2016"), months
  ("January–December 2016") or a year ("2016"). Without a label: a date range on one line, or
  "calendar year 2016". With none, the reporting year is inferred from the date received (the
  previous calendar year) and the warnings say so.
* **Initial or annual.** "initial report" / "rapport initial" / "informe inicial" against
  "annual report" / "update" / "mise à jour" / "actualización"; an "initial" after "not",
  "since" or "previous" is a reference to another report ("not to be used for the initial
  report" is printed on the cover itself). A cover with changed / unchanged boxes and no word
  either way is an annual report.

Linear and bounded (``MAX_*``); never raises on odd input.
"""

from __future__ import annotations

import calendar
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from parsers.text import Inputs as _Inputs
from parsers.text import (
    Table,
)
from parsers.text import bound as _bound
from parsers.text import fold as _fold
from parsers.text import squash as _squash

FORMS = "ABCDEFGHIJ"
STATUSES = ("present", "no_change", "not_applicable", "changed")
MAX_LINES = 10_000
MAX_LINE = 1_000
MAX_WARNINGS = 25
_FIELD_LINES = 400  # the cover and form headers are at the top of a document
_EARLIEST = 2008  # the Convention was adopted in 2008: an earlier year is a misreading


@dataclass(frozen=True, slots=True)
class FormStatus:
    form: str
    status: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Article7Report:
    state_party: str | None
    period_start: date | None
    period_end: date | None
    reporting_year: int | None
    initial: bool | None
    forms: tuple[FormStatus, ...]
    date_of_submission: date | None
    warnings: tuple[str, ...]


def _bounded(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])(?:" + pattern + r")(?![a-z])")


# --- dates -------------------------------------------------------------------------------------

_MONTH_NAMES: dict[str, int] = {
    name: number
    for number, names in enumerate(
        (
            "january jan janvier janv enero ene",
            "february feb fevrier fevr fev febrero",
            "march mar mars marzo",
            "april apr avril avr abril abr",
            "may mai mayo",
            "june jun juin junio",
            "july jul juillet juil julio",
            "august aug aout agosto",
            "september sep sept septembre septiembre setiembre",
            "october oct octobre octubre",
            "november nov novembre noviembre",
            "december dec decembre diciembre dic",
        ),
        start=1,
    )
    for name in names.split()
}
_MONTH = "(?:" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")(?![a-z])"
_YEAR = r"(?:19|20)\d\d"
_DATE = re.compile(
    r"(?<![\d])(?:"
    r"(?P<iy>" + _YEAR + r")-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
    r"|(?P<na>\d{1,2})[./-](?P<nb>\d{1,2})[./-](?P<ny>" + _YEAR + r")"
    r"|(?P<dd>\d{1,2})(?:st|nd|rd|th|er|re|o|a|\.o|\.a)?\.?\s?(?:de\s)?(?<![a-z])(?P<dm>"
    + _MONTH
    + r")\.?(?:,?\s?(?:de\s|del\s(?:ano\s)?)?(?P<dy>"
    + _YEAR
    + r"))?"
    r"|(?<![a-z])(?P<mm>"
    + _MONTH
    + r")\.?\s(?P<md>\d{1,2})(?:st|nd|rd|th)?,?\s(?P<my>"
    + _YEAR
    + r")"
    r"|(?<![a-z])(?P<om>" + _MONTH + r")\.?(?:\s(?:de\s|del\s)?(?P<oy>" + _YEAR + r"))?"
    r")(?![\d])"
)
_YEARS = re.compile(r"(?<!\d)(" + _YEAR + r")(?!\d)")


@dataclass(frozen=True, slots=True)
class _Day:
    """A date as written: the year or the day may be missing ("1er janvier", "December")."""

    year: int | None
    month: int
    day: int | None
    start: int
    end: int
    ambiguous: bool  # 04/05/2017: read day first


def _days(folded: str) -> list[_Day]:
    found: list[_Day] = []
    for match in _DATE.finditer(folded):
        groups = match.groupdict()
        ambiguous = False
        if groups["iy"]:
            year, month, day = int(groups["iy"]), int(groups["im"]), int(groups["id"])
        elif groups["na"]:
            first, second, year = int(groups["na"]), int(groups["nb"]), int(groups["ny"])
            if first <= 12 < second:  # 12/31/2016: month first
                month, day = first, second
            else:
                day, month = first, second
                ambiguous = first <= 12 and second <= 12 and first != second
        elif groups["dm"]:
            day, month = int(groups["dd"]), _MONTH_NAMES[groups["dm"]]
            year = int(groups["dy"]) if groups["dy"] else 0
        elif groups["mm"]:
            month, day, year = _MONTH_NAMES[groups["mm"]], int(groups["md"]), int(groups["my"])
        else:
            month, day = _MONTH_NAMES[groups["om"]], 0
            year = int(groups["oy"]) if groups["oy"] else 0
        if not 1 <= month <= 12 or not 0 <= day <= 31:
            continue
        found.append(_Day(year or None, month, day or None, *match.span(), ambiguous))
    return found


def _make(year: int, month: int, day: int | None, *, last: bool) -> date | None:
    if day is None:
        day = calendar.monthrange(year, month)[1] if last else 1
    try:
        return date(year, month, day)
    except ValueError:
        return None


# --- bounds ------------------------------------------------------------------------------------


# --- vocabulary --------------------------------------------------------------------------------

_NOT_APPLICABLE = _bounded(
    r"not applicable|non[- ]?applicable|n/a|n\.a\.|sans objet|ne s'applique pas"
    r"|no aplica(?:ble)?|no es aplicable|no se aplica|no procede|no corresponde"
    r"|nil|neant|nothing to report|rien a signaler|nada que (?:informar|declarar|reportar)"
)
_NO_CHANGE = _bounded(
    r"unchanged|no changes?|not changed|without changes?|no modifications?|inchangee?s?"
    r"|sans changements?|pas de changements?|aucun changement|aucune modification"
    r"|sans modifications?|non modifiee?s?|sin cambios?|ningun cambio|no ha cambiado"
    r"|no hay cambios|sin modificaci(?:on|ones)|no modificad[oa]s?|sin variaci(?:on|ones)"
)
_CHANGED = _bounded(
    r"changed|modifiee?s?|modificad[oa]s?|cambiad[oa]s?|con cambios|amended|updated"
    r"|mis a jour|actualizad[oa]s?"
)
_STATUS_WORDS = (
    ("not_applicable", _NOT_APPLICABLE),
    ("no_change", _NO_CHANGE),
    ("changed", _CHANGED),
)
_CHECKED = "☒☑✓✔✗✘■▣◼●⊠"
_UNCHECKED = "☐□◻○▢"
_MARK = re.compile(
    r"[" + _CHECKED + _UNCHECKED + r"]|\[\s?[x✓✔]?\s?\]|\(\s?[x]\s?\)|(?<![\w'])x(?![\w'])"
)
_SINCE = re.compile(r"(?:last reporting|since|depuis|desde|dernier rapport|ultimo informe)\D{0,20}")

_FORM_LINE = re.compile(
    r"^\s*(?:[-•*]\s*)?(?:Forms?|FORMS?|Formulaires?|FORMULAIRES?|Formularios?|FORMULARIOS?)"
    r"\s?(?P<letters>[A-J](?![A-Za-z])(?:\s?(?:,|and|et|y|&|to|a|à|au|al|-|–|—)\s?"
    r"[A-J](?![A-Za-z]))*)"
)
_FORM_ANYWHERE = re.compile(
    r"(?<![\w])(?:Forms?|Formulaires?|Formularios?)\s?(?P<letters>[A-J](?![A-Za-z])(?:\s?(?:,|and"
    r"|et|y|&|to|a|à|au|al|-|–|—)\s?[A-J](?![A-Za-z]))*)"
)
_FORM_CELL = re.compile(
    r"^\s*(?:(?:form|formulaire|formulario)s?\s?(?P<named>[a-j])|(?P<bare>[A-J]))"
    r"(?:\s*$|\s*[:.)–—-]|\s+(?=\w{3}))",
    re.IGNORECASE,
)
# Titles of the forms, for a cover table that names them without their letter.
_FORM_TITLES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (letter, _bounded(words))
    for letter, words in (
        (
            "A",
            r"national implementation measures|mesures d'application nationales"
            r"|mesures nationales de mise en (?:oe|œ)uvre|medidas nacionales de aplicacion"
            r"|medidas de aplicacion nacional",
        ),
        ("B", r"stockpiles|stocks et destruction|existencias|reservas y destruccion"),
        ("C", r"technical characteristics|caracteristiques techniques|caracteristicas tecnicas"),
        ("D", r"retained|conservees|retenidas|conservadas"),
        ("E", r"conversion|reconversion"),
        ("F", r"contaminated areas|zones contaminees|zonas contaminadas"),
        (
            "G",
            r"risk (?:reduction )?education|warning to the population|education aux risques"
            r"|avertissement|educacion sobre el riesgo|advertencia",
        ),
        ("H", r"victim assistance|assistance aux victimes|asistencia a (?:las )?victimas"),
        (
            "I",
            r"national resources|international cooperation|ressources nationales"
            r"|cooperation et (?:d')?assistance internationales?|recursos nacionales"
            r"|cooperacion y asistencia internacionales?",
        ),
        ("J", r"other relevant matters|autres questions|otras cuestiones|otros asuntos"),
    )
)

_STATE_LABEL = re.compile(
    r"^\s*(?:name of (?:the )?|nom de (?:l')?|nombre del )?(?:reporting )?"
    r"(?:state party|etat partie|estado parte|state|etat|estado|country|pays|pais"
    r"|etat declarant|estado informante)\s*(?::|\t|$)"
)
_PERIOD_LABEL = re.compile(
    r"reporting period|period covered(?: by (?:the|this) report)?|period of reporting"
    r"|time period covered|periode (?:couverte|consideree|visee|de (?:presentation|rapport"
    r"|reference))(?: par (?:le|ce) rapport)?|periode du rapport|periodo (?:que abarca|abarcado"
    r"|cubierto|del informe|comprendido|que se informa|de presentacion|de (?:reporte|referencia"
    r"|informe))(?: (?:por )?el informe)?"
)
_SUBMISSION_LABEL = re.compile(
    r"date of (?:submission|presentation|the report|report)|submission date|submitted on"
    r"|date de (?:soumission|presentation|transmission|remise)|date du rapport"
    r"|fecha de (?:presentacion|envio|entrega|(?:del )?informe)|^date\s*:|^fecha\s*:"
)
_CALENDAR_YEAR = re.compile(
    r"(?:calendar year|annee civile|annee calendaire|ano civil|ano calendario|the year|l'annee"
    r"|el ano|for the period)\s(" + _YEAR + r")(?!\d)"
)
_REPORT_YEAR = re.compile(
    r"(?:report|rapport|informe)(?: (?:annuel|anual|annual|article 7|art\. ?7|de transparence"
    r"|de transparencia|transparency))*(?: (?:for|pour|de|del|covering|correspondiente al?))?"
    r"(?: (?:the |l'|el )?(?:year|annee|ano))? (" + _YEAR + r")(?!\d)"
    r"|(?<!\d)(" + _YEAR + r") (?:annual |article 7 |transparency )*(?:report|update)"
)
_RANGE_JOIN = re.compile(
    r"\s*(?:-|–|—|to|au|al|a|until|till|through|hasta|jusqu'au|(?:and|et|y) ending)\s*"
)

_INITIAL = _bounded(
    r"initial (?:article 7 |art\. ?7 |transparency )?report|rapport initial"
    r"|informe inicial|premier rapport|primer informe|first (?:article 7 |transparency )?report"
)
_ANNUAL = _bounded(
    r"annual (?:article 7 |art\. ?7 |transparency )?(?:report|update)|annual updates?"
    r"|updated? (?:article 7 |transparency )?report|report update|rapport annuel"
    r"|rapport de mise a jour|mise a jour|informe anual|actualizacion|informe actualizado"
)
# "not to be used for the initial report", "no change since the initial report": another one.
_NOT_THIS_ONE = re.compile(
    r"(?:\bnot\b|n'est pas|\bne\b|\bno\b|\bsauf\b|except|other than|autre que|distinto"
    r"|\bsince\b|depuis|desde|previous|precedent|anterior|\blast\b|dernier|ultimo"
    r"|\bafter\b|apres|despues)"
)


# --- sources -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Doc:
    where: str
    lines: tuple[str, ...]


def _text_lines(text: str) -> tuple[str, ...]:
    return tuple(line[:MAX_LINE] for line in text.splitlines()[:MAX_LINES])


def _docs(inputs: _Inputs, read: Sequence[set[int]]) -> list[_Doc]:
    """Every source as lines, in the order fields are looked for: attachments, then body.
    The rows of a cover table already read by column (``read``, by table) are left out."""
    docs = [_Doc(f"text of {name}", _text_lines(text)) for name, text in inputs.texts]
    for (name, table), done in zip(inputs.tables, read, strict=True):
        rows = ("\t".join(c for c in row if c) for n, row in enumerate(table) if n not in done)
        docs.append(_Doc(f"table in {name}", tuple(rows)))
    docs.append(_Doc("message body", _text_lines(inputs.body)))
    return docs


# --- forms -------------------------------------------------------------------------------------


def _letters(spec: str) -> list[str]:
    """ "A" / "B, C and D" / "A to J" / "C-E" → the letters named."""
    found = re.findall(r"[A-J]", spec)
    if len(found) == 2 and re.search(r"[A-J]\s?(?:to|a|à|au|al|-|–|—)\s?[A-J]", spec):
        first, last = FORMS.index(found[0]), FORMS.index(found[1])
        return list(FORMS[first : last + 1]) if first <= last else found
    return found


@dataclass(frozen=True, slots=True)
class _Reading:
    status: str | None
    problem: str  # '' | 'ambiguous' | 'none ticked'


def _status_in(text: str) -> _Reading:
    """The status a line gives a form: by its words, or by the box ticked beside a word."""
    folded = _fold(text)
    spans: list[tuple[int, int, str]] = []
    for status, pattern in _STATUS_WORDS:
        # Blank what was found, so that "unchanged" is not found again as "changed".
        def blank(match: re.Match[str], status: str = status) -> str:
            spans.append((match.start(), match.end(), status))
            return " " * len(match[0])

        folded = pattern.sub(blank, folded)
    if not spans:
        return _Reading(None, "")
    spans.sort()
    marks = [
        (m.start(), m[0][0] in _CHECKED or "x" in m[0] or "✓" in m[0] or "✔" in m[0])
        for m in _MARK.finditer(folded)
    ]
    if not marks:
        said = {status for _s, _e, status in spans}
        return _Reading(spans[0][2], "") if len(said) == 1 else _Reading(None, "ambiguous")
    # "☒ unchanged": the box before its word; "unchanged ☒": after it. The first box says which.
    before = marks[0][0] < spans[0][0]
    ticked: set[str] = set()
    for index, (start, end, status) in enumerate(spans):
        if before:
            low = spans[index - 1][1] if index else 0
            high = start
        else:
            low, high = end, spans[index + 1][0] if index + 1 < len(spans) else len(folded)
        if any(checked and low <= pos < high for pos, checked in marks):
            ticked.add(status)
    if len(ticked) == 1:
        return _Reading(ticked.pop(), "")
    return _Reading(None, "ambiguous" if ticked else "none ticked")


def _only_status(text: str) -> bool:
    """A short line that is a status and little else: "Not applicable.", "☒ unchanged (2015)"."""
    folded = _fold(text)
    if len(folded) > 80:
        return False
    for _status, pattern in _STATUS_WORDS:
        folded = pattern.sub(" ", folded)
    folded = _SINCE.sub(" ", folded)
    folded = _MARK.sub(" ", folded)
    rest = re.sub(r"[\W\d_]+", " ", folded).split()
    return len(rest) <= 3


def _evidence(text: str) -> str:
    return _squash(text.replace("\t", " | "))[:160]


@dataclass(frozen=True, slots=True)
class _FormFinding:
    letters: tuple[str, ...]
    status: str | None
    problem: str
    evidence: str
    line: int


def _form_findings(lines: Sequence[str]) -> Iterator[_FormFinding]:
    """Each line naming a form, with the status it (or the lines under it) gives; and forms
    named inside a sentence that gives them a status ("Forms A to J are unchanged")."""
    numbered = [(n, line.strip()) for n, line in enumerate(lines) if line.strip()]
    for index, (number, line) in enumerate(numbered):
        match = _FORM_LINE.match(line)
        if not match:
            yield from _forms_in_sentences(line, number)
            continue
        letters = tuple(_letters(match.group("letters")))
        rest = line[match.end() :]
        reading = _status_in(rest)
        evidence = line
        if reading.status is None and not reading.problem:
            # The boxes under the form: "Not applicable." or, from a PDF's table, one line per
            # box ("☐ changed" / "☒ unchanged" / "☐ non applicable").
            under: list[str] = []
            for _n, following in numbered[index + 1 : index + 4]:
                if _FORM_LINE.match(following) or not _only_status(following):
                    break
                under.append(following)
            if under:
                below = _status_in(" ".join(under))
                if below.status is not None or below.problem:
                    reading, evidence = below, " / ".join([line, *under])
        if reading.status is None and not reading.problem and _MARK.search(_fold(rest)):
            reading = _Reading(None, "unreadable")
        yield _FormFinding(letters, reading.status, reading.problem, _evidence(evidence), number)


def _forms_in_sentences(line: str, number: int) -> Iterator[_FormFinding]:
    for sentence in re.split(r"(?<=[.;!?])\s", line):
        for match in _FORM_ANYWHERE.finditer(sentence):
            reading = _status_in(sentence[match.end() :])
            if reading.status is not None:
                letters = tuple(_letters(match.group("letters")))
                yield _FormFinding(letters, reading.status, "", _evidence(sentence), number)
                break


_PROBLEMS = {
    "ambiguous": "more than one status",
    "none ticked": "no box ticked",
    "unreadable": "status not readable",
}
# A problem with the forms it concerns: it is reported only if nothing else read them.
_Problem = tuple[tuple[str, ...], str]


def _text_forms(doc: _Doc) -> tuple[list[FormStatus], list[_Problem]]:
    statuses: list[FormStatus] = []
    problems: list[_Problem] = []
    findings = list(_form_findings(doc.lines))
    bare = [f for f in findings if f.status is None and not f.problem]
    # Form lines one after the other with nothing between are a list, not headings.
    run: list[_FormFinding] = []
    listed: set[int] = set()
    for finding in bare:
        if run and _gap(doc.lines, run[-1].line, finding.line):
            if len(run) >= 2:
                listed.update(f.line for f in run)
            run = []
        run.append(finding)
    if len(run) >= 2:
        listed.update(f.line for f in run)
    unread: list[str] = []
    for finding in findings:
        for letter in finding.letters:
            if finding.status is not None:
                statuses.append(FormStatus(letter, finding.status, finding.evidence))
            elif finding.problem:
                said = _PROBLEMS[finding.problem]
                problems.append(((letter,), f"Form {letter}: {said} ({doc.where})"))
            elif finding.line in listed:
                unread.append(letter)
            else:
                statuses.append(FormStatus(letter, "present", finding.evidence))
    if unread:
        letters = tuple(sorted(set(unread)))
        problems.append(
            (letters, f"Forms {', '.join(letters)} are listed in {doc.where} without a status")
        )
    return statuses, problems


def _gap(lines: Sequence[str], after: int, before: int) -> bool:
    """True when something other than blank lines stands between two form lines."""
    return any(line.strip() for line in lines[after + 1 : before])


def _is_mark(cell: str) -> bool:
    folded = _fold(cell).strip()
    if not folded or all(c in _UNCHECKED + " []()" for c in folded):
        return False
    if any(c in _CHECKED for c in folded) or _YEARS.search(folded):
        return True
    return bool(re.fullmatch(r"[\[(]?\s?(?:x|v|yes|oui|si)\s?[\])]?.{0,30}", folded))


def _column_status(cell: str) -> str | None:
    folded = _fold(cell)
    for status, pattern in _STATUS_WORDS:
        if pattern.search(folded):
            return status
    return None


def _row_form(row: Sequence[str], skip: set[int]) -> tuple[str, str] | None:
    """The form a cover-table row is about, and the cell that says so."""
    for col, cell in enumerate(row):
        if col in skip or not cell:
            continue
        match = _FORM_CELL.match(cell)
        if match:
            return (match.group("named") or match.group("bare")).upper(), cell
    for col, cell in enumerate(row):
        if col in skip or not cell:
            continue
        folded = _fold(cell)
        for letter, pattern in _FORM_TITLES:
            if pattern.search(folded):
                return letter, cell
    return None


def _table_forms(
    rows: Sequence[Sequence[str]], where: str
) -> tuple[list[FormStatus], list[_Problem], set[int]]:
    """A cover table: Form | changed | unchanged (last reporting: yyyy) | not applicable.
    Also the rows it read (the header and the forms' rows)."""
    statuses: list[FormStatus] = []
    problems: list[_Problem] = []
    read: set[int] = set()
    columns: dict[int, str] = {}
    labels: dict[int, str] = {}
    for number, row in enumerate(rows):
        found = {col: s for col, cell in enumerate(row) if cell and (s := _column_status(cell))}
        if len(set(found.values())) >= 2 and not _row_form(row, set(found)):
            columns, labels = found, {col: row[col] for col in found}
            read.add(number)
            continue
        if not columns:
            continue
        form = _row_form(row, set(columns))
        if form is None:
            continue
        letter, label = form
        read.add(number)
        ticked = [(col, row[col]) for col in columns if col < len(row) and _is_mark(row[col])]
        if len(ticked) == 1:
            col, mark = ticked[0]
            evidence = f'{label}: "{mark}" under "{labels[col]}"'
            statuses.append(FormStatus(letter, columns[col], _squash(evidence)[:160]))
        elif ticked:
            problems.append(((letter,), f"Form {letter}: more than one box ticked ({where})"))
        else:
            problems.append(((letter,), f"Form {letter}: no box ticked ({where})"))
    return statuses, problems, read


# --- the other fields --------------------------------------------------------------------------


def _value_after(lines: Sequence[str], index: int, start: int) -> str:
    """The text after a label on line ``index``, or the next line when nothing follows it."""
    value = lines[index][start:].strip(" \t:.-–—")
    if not value:
        for following in lines[index + 1 : index + 3]:
            if following.strip():
                return following.strip()
    return value


def _state_party(doc: _Doc) -> str | None:
    lines = doc.lines[:_FIELD_LINES]
    for index, line in enumerate(lines):
        match = _STATE_LABEL.match(_fold(line))
        if not match:
            continue
        value = _value_after(lines, index, match.end())
        value = re.split(r"\t|\s{2,}", value)[0]
        folded = _fold(value)
        cut = re.search(r"\b(?:reporting period|periode|periodo|date|fecha|point)\b", folded)
        if cut:
            value = value[: cut.start()]
        value = value.strip(" .,;:-–—")
        if not value or len(value) > 80 or not any(c.isalpha() for c in value):
            continue
        if re.search(r"[\[\]_]|\.\.\.|name of|nom de|nombre del|insert", _fold(value)):
            continue  # the empty template: "[name of State Party]"
        if _PERIOD_LABEL.search(_fold(value)):
            continue
        return value
    return None


@dataclass(frozen=True, slots=True)
class _Period:
    start: date | None
    end: date | None
    warnings: tuple[str, ...]


def _period_from(value: str, where: str) -> _Period | None:
    folded = _fold(value)
    days = _days(folded)
    warnings: list[str] = []
    if any(d.ambiguous for d in days[:2]):
        warnings.append(f"reporting period in {where} read day first: {_squash(value)[:60]}")
    if len(days) >= 2:
        first, second = days[0], days[1]
        years = [int(y) for y in _YEARS.findall(folded)]
        end_year = second.year or (years[-1] if years else None)
        if end_year is None:
            return None
        start_year = first.year or (end_year if first.month <= second.month else end_year - 1)
        start = _make(start_year, first.month, first.day, last=False)
        end = _make(end_year, second.month, second.day, last=True)
        if start is None or end is None:
            return None
        return _Period(start, end, tuple(warnings))
    years = [int(y) for y in _YEARS.findall(folded)]
    if len(days) == 1 and days[0].day is not None and days[0].year is not None:
        end = _make(days[0].year, days[0].month, days[0].day, last=True)
        warnings.append(f"only one date in the reporting period in {where}")
        return _Period(None, end, tuple(warnings))
    if years:
        return _Period(date(years[0], 1, 1), date(years[-1], 12, 31), ())
    return None


def _period(docs: Sequence[_Doc]) -> _Period | None:
    for doc in docs:
        lines = doc.lines[:_FIELD_LINES]
        for index, line in enumerate(lines):
            match = _PERIOD_LABEL.search(_fold(line))
            if not match:
                continue
            value = _value_after(lines, index, match.end()).replace("\t", " ")
            found = _period_from(value, doc.where)
            if found is not None:
                return found
    # No label: a date range on one line ("from 1 January 2016 to 31 December 2016").
    for doc in docs:
        for line in doc.lines[:_FIELD_LINES]:
            folded = _fold(line)
            days = _days(folded)
            for first, second in itertools.pairwise(days):
                joined = _RANGE_JOIN.fullmatch(folded[first.end : second.start])
                if joined and second.year and (first.day or second.day):
                    found = _period_from(line[first.start : second.end], doc.where)
                    if found is not None and found.start is not None:
                        return found
    for doc in docs:
        for line in doc.lines[:_FIELD_LINES]:
            match = _CALENDAR_YEAR.search(_fold(line))
            if match:
                year = int(match.group(1))
                return _Period(date(year, 1, 1), date(year, 12, 31), ())
    return None


def _report_year(docs: Sequence[_Doc]) -> int | None:
    """ "Article 7 report 2016", "rapport 2016", but not "unchanged since our 2015 report"."""
    for doc in docs:
        for line in doc.lines[:_FIELD_LINES]:
            folded = _fold(line)
            for match in _REPORT_YEAR.finditer(folded):
                if not _NOT_THIS_ONE.search(_before(folded, match.start())):
                    return int(match.group(1) or match.group(2))
    return None


def _before(folded: str, start: int) -> str:
    """The words just before ``start`` in the same sentence."""
    return re.split(r"[.;\n]", folded[max(0, start - 50) : start])[-1]


def _submission(docs: Sequence[_Doc]) -> tuple[date | None, list[str]]:
    for doc in docs:
        lines = doc.lines[:_FIELD_LINES]
        for index, line in enumerate(lines):
            match = _SUBMISSION_LABEL.search(_fold(line))
            if not match:
                continue
            value = _value_after(lines, index, match.end())
            for day in _days(_fold(value))[:1]:
                if day.year is None or day.day is None:
                    continue
                made = _make(day.year, day.month, day.day, last=False)
                if made is None:
                    continue
                warnings = []
                if day.ambiguous:
                    warnings.append(f"date of submission in {doc.where} read day first: {value}")
                return made, warnings
    return None, []


def _initial(docs: Sequence[_Doc]) -> tuple[bool | None, list[str]]:
    said: dict[bool, list[tuple[str, bool]]] = {True: [], False: []}  # (line, box ticked)
    for doc in docs:
        for line in doc.lines[:_FIELD_LINES]:
            folded = _fold(line)
            for kind, pattern in ((True, _INITIAL), (False, _ANNUAL)):
                for match in pattern.finditer(folded):
                    if kind and _NOT_THIS_ONE.search(_before(folded, match.start())):
                        continue
                    box = folded[max(0, match.start() - 3) : match.start()]
                    said[kind].append((line, any(c in _CHECKED for c in box)))
    if said[True] and said[False]:
        ticked = {kind for kind in (True, False) if any(t for _l, t in said[kind])}
        if len(ticked) == 1:
            return ticked.pop(), []
        return None, ["the report calls itself both initial and annual"]
    if said[True]:
        return True, []
    if said[False]:
        return False, []
    return None, []


# --- the report --------------------------------------------------------------------------------


def _merge(forms: dict[str, FormStatus], new: FormStatus, warnings: list[str]) -> None:
    old = forms.get(new.form)
    if old is None or (old.status == "present" and new.status != "present"):
        forms[new.form] = new
    elif new.status not in ("present", old.status):
        warnings.append(
            f"Form {new.form}: {old.status} ({old.evidence}) but also {new.status} ({new.evidence})"
        )


def extract_article7(
    *,
    body: str,
    texts: Sequence[tuple[str, str]],
    tables: Sequence[tuple[str, Table]],
    received: date,
) -> Article7Report:
    """What the report in a mail says about itself; what could not be read is in warnings."""
    if isinstance(received, datetime):
        received = received.date()
    inputs = _bound(body, texts, tables)
    warnings = list(inputs.warnings)
    forms: dict[str, FormStatus] = {}
    problems: list[_Problem] = []
    read: list[set[int]] = []
    for name, table in inputs.tables:
        found, trouble, rows = _table_forms(table, f"table in {name}")
        for status in found:
            _merge(forms, status, warnings)
        problems += trouble
        read.append(rows)
    docs = _docs(inputs, read)
    for doc in docs:
        found, trouble = _text_forms(doc)
        for status in found:
            _merge(forms, status, warnings)
        problems += trouble
    # A problem matters only for a form that nothing else could read.
    for letters, problem in problems:
        missing = [letter for letter in letters if letter not in forms]
        if len(missing) == len(letters):
            warnings.append(problem)
        elif missing:
            warnings.append(f"Forms {', '.join(missing)}: no status found")
    if not forms:
        warnings.append("no Form A–J found")

    state = next((s for doc in docs if (s := _state_party(doc))), None)
    if state is None:
        warnings.append("no State Party named on the cover")

    period = _period(docs)
    start = period.start if period else None
    end = period.end if period else None
    if period is not None:
        warnings += period.warnings
    year: int | None = end.year if end else None
    if year is None:
        year = _report_year(docs)
    if year is None:
        year = received.year - 1
        warnings.append(
            f"no reporting period found: calendar year {year} assumed "
            f"(received {received.isoformat()})"
        )
    if end is not None and end > received:
        warnings.append(f"the reporting period ends on {end.isoformat()}, after it was received")
    if year < _EARLIEST:
        warnings.append(f"reporting year {year} is before the Convention existed")
    elif year > received.year:
        warnings.append(f"reporting year {year} is after the year it was received")

    initial, said = _initial(docs)
    warnings += said
    covered = any(f.status in ("changed", "no_change") for f in forms.values())
    if initial is None and covered:
        initial = False
        warnings.append("initial or annual not stated: annual assumed from the cover page boxes")
    if (
        initial is False
        and start is not None
        and end is not None
        and (start.month, start.day, end.month, end.day) != (1, 1, 12, 31)
    ):
        warnings.append("the reporting period of an annual report is not a calendar year")

    submitted, said = _submission(docs)
    warnings += said
    if submitted is not None and (submitted - received).days > 1:
        warnings.append(f"date of submission {submitted.isoformat()} is after it was received")

    return Article7Report(
        state_party=state,
        period_start=start,
        period_end=end,
        reporting_year=year,
        initial=initial,
        forms=tuple(forms[letter] for letter in FORMS if letter in forms),
        date_of_submission=submitted,
        warnings=tuple(dict.fromkeys(warnings))[:MAX_WARNINGS],
    )
