"""extract_article7: the cover page and Forms A–J of a transparency report, in EN, FR and ES."""

from __future__ import annotations

import random
import time
from datetime import date, datetime

import pytest

from parsers.article7 import Article7Report, FormStatus, Table, extract_article7

APRIL_2017 = date(2017, 4, 28)


def report(
    text: str = "",
    *,
    body: str = "Please find attached our Article 7 report.",
    name: str = "report.pdf",
    received: date = APRIL_2017,
) -> Article7Report:
    texts = [(name, text)] if text else []
    return extract_article7(body=body, texts=texts, tables=[], received=received)


def from_table(*rows: tuple[str, ...], name: str = "cover.docx", body: str = "") -> Article7Report:
    table: Table = tuple(rows)
    return extract_article7(body=body, texts=[], tables=[(name, table)], received=APRIL_2017)


def statuses(result: Article7Report) -> dict[str, str]:
    return {form.form: form.status for form in result.forms}


ENGLISH_COVER = (
    """\
CONVENTION ON CLUSTER MUNITIONS
ARTICLE 7 REPORT – COVER PAGE
(This page is not to be used for the initial Article 7 report)

State Party: Australia
Reporting period: 1 January 2016 to 31 December 2016

"""
    "Form A: National implementation measures ☐ changed ☒ unchanged (last reporting: 2015)"
    " ☐ non applicable\n"
    """\
Form B: Stockpiles and destruction ☒ changed ☐ unchanged (last reporting: yyyy) ☐ non applicable
Form C: Technical characteristics ☐ changed ☐ unchanged (last reporting: yyyy) ☒ non applicable

State Party: Australia
Date of submission: 26 April 2017
Reporting period: 1 January 2016 to 31 December 2016

Form B: Stockpiles and destruction
Type\tQuantity\tLot number
"""
)


# --- covers ------------------------------------------------------------------------------------


def test_it_reads_an_english_cover_with_ticked_boxes() -> None:
    assert report(ENGLISH_COVER) == Article7Report(
        state_party="Australia",
        period_start=date(2016, 1, 1),
        period_end=date(2016, 12, 31),
        reporting_year=2016,
        initial=False,
        forms=(
            FormStatus(
                "A",
                "no_change",
                "Form A: National implementation measures ☐ changed ☒ unchanged "
                "(last reporting: 2015) ☐ non applicable",
            ),
            FormStatus(
                "B",
                "changed",
                "Form B: Stockpiles and destruction ☒ changed ☐ unchanged "
                "(last reporting: yyyy) ☐ non applicable",
            ),
            FormStatus(
                "C",
                "not_applicable",
                "Form C: Technical characteristics ☐ changed ☐ unchanged "
                "(last reporting: yyyy) ☒ non applicable",
            ),
        ),
        date_of_submission=date(2017, 4, 26),
        warnings=("initial or annual not stated: annual assumed from the cover page boxes",),
    )


def test_it_reads_a_cover_table_with_an_x_in_the_columns() -> None:
    result = from_table(
        ("State Party:", "Ireland"),
        ("Reporting period:", "1 January 2016 – 31 December 2016"),
        ("Form", "changed", "unchanged (last reporting: yyyy)", "non applicable"),
        ("Form A: National implementation measures", "", "X 2015", ""),
        ("Form B: Stockpiles and destruction", "X", "", ""),
        ("Form C: Technical characteristics", "", "", "X"),
        ("Form D: Retained and transferred", "", "2014", ""),
        ("Form E: Conversion", "", "", "☒"),
        body="Annual Article 7 report of Ireland attached.",
    )
    assert result.state_party == "Ireland"
    assert (result.period_start, result.period_end) == (date(2016, 1, 1), date(2016, 12, 31))
    assert result.initial is False
    assert result.forms == (
        FormStatus(
            "A",
            "no_change",
            'Form A: National implementation measures: "X 2015" under '
            '"unchanged (last reporting: yyyy)"',
        ),
        FormStatus("B", "changed", 'Form B: Stockpiles and destruction: "X" under "changed"'),
        FormStatus(
            "C", "not_applicable", 'Form C: Technical characteristics: "X" under "non applicable"'
        ),
        FormStatus(
            "D",
            "no_change",
            'Form D: Retained and transferred: "2014" under "unchanged (last reporting: yyyy)"',
        ),
        FormStatus("E", "not_applicable", 'Form E: Conversion: "☒" under "non applicable"'),
    )
    assert result.warnings == ()


def test_it_reads_a_spanish_cover_table_with_letters_and_titles_in_separate_columns() -> None:
    result = from_table(
        ("Estado Parte:", "México"),
        ("Periodo que abarca el informe:", "del 1 de enero al 31 de diciembre de 2016"),
        ("Fecha de presentación:", "28 de abril de 2017"),
        ("", "Formulario", "modificado", "sin cambios (último informe: aaaa)", "no aplica"),
        ("A", "Medidas nacionales de aplicación", "", "X", ""),
        ("B", "Existencias y destrucción", "", "", "X"),
        ("", "Asistencia a las víctimas", "X", "", ""),
        name="Informe artículo 7 México 2016.xlsx",
        body="Se adjunta la actualización del informe del artículo 7.",
    )
    assert result == Article7Report(
        state_party="México",
        period_start=date(2016, 1, 1),
        period_end=date(2016, 12, 31),
        reporting_year=2016,
        initial=False,
        forms=(
            FormStatus("A", "no_change", 'A: "X" under "sin cambios (último informe: aaaa)"'),
            FormStatus("B", "not_applicable", 'B: "X" under "no aplica"'),
            FormStatus("H", "changed", 'Asistencia a las víctimas: "X" under "modificado"'),
        ),
        date_of_submission=date(2017, 4, 28),
        warnings=(),
    )


def test_a_french_initial_report_with_detailed_forms() -> None:
    text = """\
Convention sur les armes à sous-munitions
Rapport initial soumis conformément à l'article 7

État partie : Sénégal
Période couverte par le rapport : du 1er janvier au 31 décembre 2016
Date de présentation : 20/04/2017

Formulaire A : Mesures d'application nationales
Loi n° 2011-05 portant interdiction des armes à sous-munitions.

Formulaire B : Stocks et destruction
Néant.

Formulaire C : non applicable
Formulaires D à J : sans objet
"""
    result = report(text, name="Rapport initial.pdf", body="Veuillez trouver ci-joint.")
    assert result == Article7Report(
        state_party="Sénégal",
        period_start=date(2016, 1, 1),
        period_end=date(2016, 12, 31),
        reporting_year=2016,
        initial=True,
        forms=(
            FormStatus("A", "present", "Formulaire A : Mesures d'application nationales"),
            FormStatus("B", "not_applicable", "Formulaire B : Stocks et destruction / Néant."),
            FormStatus("C", "not_applicable", "Formulaire C : non applicable"),
            *(FormStatus(f, "not_applicable", "Formulaires D à J : sans objet") for f in "DEFGHIJ"),
        ),
        date_of_submission=date(2017, 4, 20),
        warnings=(),
    )


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("Form A: no change since 2015", "no_change"),
        (
            "Form A: National implementation measures - unchanged (last reporting: 2015)",
            "no_change",
        ),
        ("Formulaire A : sans changement depuis 2015", "no_change"),
        ("Formulaire A : pas de changement", "no_change"),
        ("Formulario A: sin cambios desde 2015", "no_change"),
        ("Form A: not applicable", "not_applicable"),
        ("Form A: N/A", "not_applicable"),
        ("Formulaire A : non applicable", "not_applicable"),
        ("Formulaire A : sans objet", "not_applicable"),
        ("Formulario A: no aplica", "not_applicable"),
        ("Formulario A: No se aplica.", "not_applicable"),
        ("Form A: changed", "changed"),
        ("Formulaire A : modifié", "changed"),
        ("Formulario A: modificado", "changed"),
        ("Form A: National implementation measures", "present"),
        ("Form A  [ ] changed  [x] unchanged  [ ] not applicable", "no_change"),
        ("Form A: changed ☐ unchanged ☐ not applicable ☒", "not_applicable"),
    ],
)
def test_a_form_line_gives_its_status(line: str, status: str) -> None:
    result = report(f"State Party: Peru\n{line}\n")
    assert result.forms == (FormStatus("A", status, " ".join(line.split())),)


def test_a_status_on_the_line_under_the_form_counts() -> None:
    result = report("Form C: Technical characteristics\nNot applicable.\n\nForm D: Retained\n")
    assert result.forms == (
        FormStatus("C", "not_applicable", "Form C: Technical characteristics / Not applicable."),
        FormStatus("D", "present", "Form D: Retained"),
    )


def test_boxes_on_separate_lines_under_the_form_as_a_pdf_gives_them() -> None:
    text = (
        "Form A: National implementation measures\n\u2610 changed\n"
        "\u2612 unchanged (last reporting: 2015)\n\u2610 non applicable\n"
        "Form B: Stockpiles and destruction\nchanged\nunchanged (last reporting: yyyy)\n"
        "non applicable\n"
    )
    result = report(text, name="cover.pdf")
    assert result.forms == (
        FormStatus(
            "A",
            "no_change",
            "Form A: National implementation measures / ☐ changed / "
            "☒ unchanged (last reporting: 2015) / ☐ non applicable",
        ),
    )
    assert "Form B: more than one status (text of cover.pdf)" in result.warnings


def test_forms_named_in_a_sentence_of_the_cover_letter() -> None:
    result = report(
        body="Dear ISU,\nForms A to J of our report are unchanged since our 2015 report.\n",
        received=date(2017, 4, 2),
    )
    evidence = "Forms A to J of our report are unchanged since our 2015 report."
    assert result.forms == tuple(FormStatus(f, "no_change", evidence) for f in "ABCDEFGHIJ")
    assert result.reporting_year == 2016
    assert (
        "no reporting period found: calendar year 2016 assumed (received 2017-04-02)"
        in result.warnings
    )


def test_nil_under_a_form_is_not_applicable() -> None:
    result = report("FORM B STOCKPILES AND DESTRUCTION\nNil\n")
    assert result.forms == (
        FormStatus("B", "not_applicable", "FORM B STOCKPILES AND DESTRUCTION / Nil"),
    )


def test_a_running_sentence_under_a_form_is_no_status() -> None:
    text = (
        "Form A: National implementation measures\n"
        "The law of 2010 makes the use of cluster munitions a crime; the penalties are not "
        "applicable to the police.\n"
    )
    assert statuses(report(text)) == {"A": "present"}


def test_a_cover_whose_boxes_were_lost_lists_forms_without_calling_them_present() -> None:
    text = (
        "State Party: Chile\nReporting period: calendar year 2016\n"
        "Form A: National implementation measures\nForm B: Stockpiles and destruction\n"
        "Form C: Technical characteristics\nForm D: Retained and transferred\n"
        "\n\u2610 changed \u2610 unchanged (last reporting: yyyy) \u2610 non applicable\n"
    )
    result = report(text, name="cover.pdf")
    assert result.forms == ()
    assert result.warnings == (
        "Form D: no box ticked (text of cover.pdf)",
        "Forms A, B, C are listed in text of cover.pdf without a status",
        "no Form A–J found",
    )


def test_the_template_words_alone_under_a_form_are_no_status() -> None:
    result = report("Form C: Technical characteristics\nchanged unchanged non applicable\n")
    assert result.forms == ()
    assert result.warnings[0] == "Form C: more than one status (text of report.pdf)"


def test_a_row_with_two_boxes_or_none_is_reported() -> None:
    result = from_table(
        ("Form", "changed", "unchanged", "not applicable"),
        ("Form A", "X", "X", ""),
        ("Form B", "", "", ""),
        ("Form C", "", "", "X"),
    )
    assert statuses(result) == {"C": "not_applicable"}
    assert result.warnings[:2] == (
        "Form A: more than one box ticked (table in cover.docx)",
        "Form B: no box ticked (table in cover.docx)",
    )


def test_two_sources_that_disagree_are_reported() -> None:
    result = extract_article7(
        body="Form A: no change since 2015\nForm B: not applicable",
        texts=[("r.pdf", "Form A: changed\n\nForm B: Stockpiles and destruction\n\nText")],
        tables=[],
        received=APRIL_2017,
    )
    assert statuses(result) == {"A": "changed", "B": "not_applicable"}
    assert (
        "Form A: changed (Form A: changed) but also no_change (Form A: no change since 2015)"
    ) in result.warnings


# --- period, year, initial, dates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "start", "end"),
    [
        (
            "Reporting period: 1 January 2016 to 31 December 2016",
            date(2016, 1, 1),
            date(2016, 12, 31),
        ),
        ("Reporting period: from 01/01/2016 to 31/12/2016", date(2016, 1, 1), date(2016, 12, 31)),
        ("Reporting period: 2016-01-01 – 2016-12-31", date(2016, 1, 1), date(2016, 12, 31)),
        (
            "Reporting period: January 1, 2016 - December 31, 2016",
            date(2016, 1, 1),
            date(2016, 12, 31),
        ),
        ("Reporting period: January–December 2016", date(2016, 1, 1), date(2016, 12, 31)),
        ("Reporting period: calendar year 2016", date(2016, 1, 1), date(2016, 12, 31)),
        ("Reporting period: 2016", date(2016, 1, 1), date(2016, 12, 31)),
        ("Reporting period:\n1 Jan. 2016 to 31 Dec. 2016", date(2016, 1, 1), date(2016, 12, 31)),
        (
            "Période couverte par le rapport : du 1er janvier au 31 décembre 2016",
            date(2016, 1, 1),
            date(2016, 12, 31),
        ),
        ("Période visée : janvier-décembre 2016", date(2016, 1, 1), date(2016, 12, 31)),
        (
            "Periodo que abarca el informe: del 1 de enero al 31 de diciembre de 2016",
            date(2016, 1, 1),
            date(2016, 12, 31),
        ),
        ("Periodo del informe: de enero a diciembre de 2016", date(2016, 1, 1), date(2016, 12, 31)),
        (
            "This report covers the period from 1 January 2016 to 31 December 2016.",
            date(2016, 1, 1),
            date(2016, 12, 31),
        ),
        ("Informe correspondiente al año civil 2016", date(2016, 1, 1), date(2016, 12, 31)),
        (
            "Initial report. Reporting period: 1 March 2012 – 30 April 2013",
            date(2012, 3, 1),
            date(2013, 4, 30),
        ),
    ],
)
def test_it_reads_the_reporting_period(written: str, start: date, end: date) -> None:
    result = report(written + "\nForm A: no change\n")
    assert (result.period_start, result.period_end, result.reporting_year) == (
        start,
        end,
        end.year,
    )
    assert not [w for w in result.warnings if "period" in w]


def test_without_a_year_the_reporting_year_is_the_one_before_receipt() -> None:
    result = report("State Party: Ghana\nForm A: no change\n", received=date(2017, 6, 2))
    assert (result.period_start, result.period_end, result.reporting_year) == (None, None, 2016)
    assert result.warnings == (
        "no reporting period found: calendar year 2016 assumed (received 2017-06-02)",
        "initial or annual not stated: annual assumed from the cover page boxes",
    )


def test_a_year_named_beside_the_report_gives_the_year_but_not_the_period() -> None:
    result = report(body="Dear ISU, please find attached Ghana's Article 7 report 2016.")
    assert (result.period_start, result.period_end, result.reporting_year) == (None, None, 2016)
    assert result.warnings == ("no Form A–J found", "no State Party named on the cover")


def test_the_cover_note_against_initial_reports_does_not_make_one() -> None:
    assert report(ENGLISH_COVER).initial is False
    assert report("Form A: no change since the initial report\n").initial is False


@pytest.mark.parametrize(
    ("text", "initial"),
    [
        ("Initial Article 7 Report of Benin", True),
        ("Rapport initial au titre de l'article 7", True),
        ("Informe inicial de transparencia", True),
        ("Annual Article 7 report", False),
        ("Annual update 2016", False),
        ("Rapport annuel", False),
        ("Mise à jour du rapport", False),
        ("Informe anual", False),
        ("Actualización del informe del artículo 7", False),
        ("☒ Initial report ☐ Annual report", True),
        ("☐ Initial report ☒ Annual report", False),
        ("Report under Article 7", None),
    ],
)
def test_initial_or_annual(text: str, initial: bool | None) -> None:
    assert report(text, body="").initial is initial


def test_both_initial_and_annual_unticked_is_reported() -> None:
    result = report("Initial report / Annual report", body="")
    assert result.initial is None
    assert "the report calls itself both initial and annual" in result.warnings


def test_a_numeric_date_that_reads_both_ways_is_read_day_first_with_a_warning() -> None:
    result = report("State Party: Peru\nDate of submission: 04/03/2017\nForm A: no change\n")
    assert result.date_of_submission == date(2017, 3, 4)
    assert "date of submission in text of report.pdf read day first: 04/03/2017" in (
        result.warnings
    )
    american = report("Date of submission: 04/28/2017\n")
    assert american.date_of_submission == date(2017, 4, 28)


def test_a_period_ending_after_receipt_is_reported() -> None:
    result = report("Reporting period: 1 January 2017 to 31 December 2017\n")
    assert "the reporting period ends on 2017-12-31, after it was received" in result.warnings


def test_an_empty_template_names_no_state_and_no_period() -> None:
    result = report(
        "State Party: [name of State Party]\nReporting period: from (dd/mm/yyyy) to (dd/mm/yyyy)\n"
        "Date of submission: (dd/mm/yyyy)\n",
        received=date(2017, 2, 1),
    )
    assert (result.state_party, result.period_start, result.date_of_submission) == (
        None,
        None,
        None,
    )
    assert result.reporting_year == 2016


def test_a_state_party_on_the_line_under_its_label() -> None:
    result = report("Name of State Party:\nBosnia and Herzegovina\nReporting period: 2016\n")
    assert result.state_party == "Bosnia and Herzegovina"


def test_a_datetime_received_is_accepted() -> None:
    result = report("Form A: changed", received=datetime(2017, 4, 28, 9, 30))
    assert result.reporting_year == 2016


# --- robustness --------------------------------------------------------------------------------


def _garbage(rng: random.Random, size: int) -> str:
    alphabet = "Form ABCJ:☐☒xX\t\n/-–.2016 31 December janvier de enero unchanged sin cambios"
    return "".join(rng.choice(alphabet) for _ in range(size)) + "".join(
        chr(rng.randint(0x20, 0x2FFF)) for _ in range(200)
    )


@pytest.mark.parametrize("seed", range(20))
def test_garbage_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    text = _garbage(rng, 5_000)
    table: Table = tuple(
        tuple(_garbage(rng, rng.randint(0, 30)) for _ in range(rng.randint(0, 6)))
        for _ in range(rng.randint(0, 30))
    )
    result = extract_article7(
        body=text, texts=[("x.pdf", text[::-1])], tables=[("x.xlsx", table)], received=APRIL_2017
    )
    assert isinstance(result, Article7Report)
    assert {form.status for form in result.forms} <= {
        "present",
        "no_change",
        "not_applicable",
        "changed",
    }


@pytest.mark.parametrize(
    "text",
    [
        "Form A: ☐ changed ☒ unchanged x x " * 100_000,
        ("Form A\n" * 50_000),
        "1 January 2016 to " * 100_000,
        "Reporting period: " + "31/12/2016 " * 100_000,
        "[" * 1_000_000,
        "é" * 2_000_000,
        "\n".join(["State Party:"] * 200_000),
    ],
    ids=["statuses", "form-lines", "dates", "numeric-dates", "brackets", "accents", "labels"],
)
def test_huge_inputs_return_quickly(text: str) -> None:
    started = time.perf_counter()
    result = extract_article7(
        body=text, texts=[("big.txt", text)] * 40, tables=[], received=APRIL_2017
    )
    assert time.perf_counter() - started < 5
    assert result.warnings


def test_a_huge_table_returns_quickly() -> None:
    row = ("Form A", "X", "", "") * 10
    table: Table = (("Form", "changed", "unchanged", "not applicable"), *([row] * 100_000))
    started = time.perf_counter()
    result = extract_article7(body="", texts=[], tables=[("big.xlsx", table)], received=APRIL_2017)
    assert time.perf_counter() - started < 5
    assert any(w.startswith("table in big.xlsx: only the first ") for w in result.warnings)
