"""extract_roster / meeting_from_text: the delegation lists missions send, in EN, FR and ES."""

from __future__ import annotations

import random
import time

import pytest

from parsers.delegation import (
    MAX_DELEGATES,
    Delegate,
    Roster,
    Table,
    extract_roster,
    meeting_from_text,
)


def person(
    name: str,
    honorific: str = "",
    title: str = "",
    role: str = "",
    organisation: str = "",
    email: str = "",
) -> Delegate:
    return Delegate(name, honorific, title, role, organisation, email)


def from_body(body: str) -> Roster:
    return extract_roster(body=body, texts=[], tables=[])


def from_text(name: str, text: str, body: str = "Please find attached our delegation.") -> Roster:
    return extract_roster(body=body, texts=[(name, text)], tables=[])


def from_table(name: str, *rows: tuple[str, ...], body: str = "See attached.") -> Roster:
    table: Table = tuple(rows)
    return extract_roster(body=body, texts=[], tables=[(name, table)])


FRENCH_NOTE = """\
Mission permanente de la France auprès de la Conférence du désarmement
Genève

N° 2017-0412

La Mission permanente de la France auprès de la Conférence du désarmement présente ses
compliments à l'Unité d'appui à l'application de la Convention sur les armes à sous-munitions
et a l'honneur de lui communiquer la composition de la délégation française à la Septième
Réunion des États parties, qui se tiendra à Genève du 4 au 6 septembre 2017 :

Chef de délégation :
S.E. M. Yann HWANG, Ambassadeur, Représentant permanent de la France auprès de la
Conférence du désarmement

Suppléants :
Mme Anne-Laure DUPONT, Conseillère, Mission permanente de la France
M. Pierre MARTIN, Premier secrétaire (pierre.martin@diplomatie.gouv.fr)

Conseillers :
Colonel Jean-Luc BERNARD, Ministère des Armées
M. Hugo LEBLANC, Conseiller juridique, Direction des affaires juridiques

La Mission permanente de la France auprès de la Conférence du désarmement saisit cette
occasion pour renouveler à l'Unité d'appui l'assurance de sa haute considération.

Genève, le 10 août 2017

Unité d'appui à l'application de la CASM
Palais des Nations
CH-1211 Genève 10
"""


# --- tables ------------------------------------------------------------------------------------


def test_it_reads_an_english_table_with_a_header_row() -> None:
    roster = from_table(
        "Delegation Ghana 7MSP.docx",
        ("Name", "Title", "Role", "E-mail"),
        ("H.E. Mr Joseph Ayamah", "Ambassador", "Head of Delegation", "j.ayamah@mfa.gov.gh"),
        ("Ms Abena Mensah", "Counsellor", "Alternate", "a.mensah@mfa.gov.gh"),
        ("Mr Kofi Boateng", "First Secretary", "Adviser", ""),
    )
    assert roster == Roster(
        delegates=(
            person("Joseph Ayamah", "H.E. Mr", "Ambassador", "head", "", "j.ayamah@mfa.gov.gh"),
            person("Abena Mensah", "Ms", "Counsellor", "alternate", "", "a.mensah@mfa.gov.gh"),
            person("Kofi Boateng", "Mr", "First Secretary", "adviser"),
        ),
        meeting="7MSP",
        source="table in Delegation Ghana 7MSP.docx",
        warnings=(),
    )


def test_it_reads_a_french_table_with_columns_in_another_order() -> None:
    roster = from_table(
        "délégation.xlsx",
        ("Courriel", "Rôle", "Prénom", "Nom", "Fonction", "Organisme"),
        (
            "yann.hwang@diplomatie.gouv.fr",
            "Chef de délégation",
            "Yann",
            "HWANG",
            "Ambassadeur, Représentant permanent",
            "Mission permanente",
        ),
        ("", "Suppléante", "Anne-Laure", "DUPONT", "Conseillère", "Mission permanente"),
        ("", "Conseiller", "Hugo", "LEBLANC", "Conseiller juridique", "Ministère des Armées"),
        ("", "Experte", "Claire", "MOREAU", "Chargée de mission", "Ministère des Armées"),
    )
    assert roster.delegates == (
        person(
            "Yann HWANG",
            "",
            "Ambassadeur, Représentant permanent",
            "head",
            "Mission permanente",
            "yann.hwang@diplomatie.gouv.fr",
        ),
        person("Anne-Laure DUPONT", "", "Conseillère", "alternate", "Mission permanente"),
        person("Hugo LEBLANC", "", "Conseiller juridique", "adviser", "Ministère des Armées"),
        person("Claire MOREAU", "", "Chargée de mission", "expert", "Ministère des Armées"),
    )
    assert roster.source == "table in délégation.xlsx"
    assert roster.warnings == ()


def test_a_conseiller_in_the_function_column_is_a_title_not_a_role() -> None:
    roster = from_table(
        "liste.docx",
        ("Nom", "Fonction", "Rôle"),
        ("M. Paul GIRARD", "Conseiller", "Membre"),
    )
    assert roster.delegates == (person("Paul GIRARD", "M.", "Conseiller", "member"),)


def test_it_reads_a_spanish_table_with_given_names_and_surnames_and_role_rows() -> None:
    roster = from_table(
        "Delegación de México a la 7REP.xlsx",
        ("Delegación de México – Séptima Reunión de los Estados Partes", "", "", ""),
        ("Tratamiento", "Nombre", "Apellidos", "Cargo"),
        ("Jefa de Delegación", "Jefa de Delegación", "Jefa de Delegación", "Jefa de Delegación"),
        ("Excma. Sra.", "Marta", "Maurás Pérez", "Embajadora, Representante Permanente"),
        ("Suplentes", "", "", ""),
        ("Sr.", "Juan Carlos", "González", "Consejero"),
        ("Sra.", "Lucía", "Ramírez", "Primera Secretaria"),
    )
    assert roster.delegates == (
        person(
            "Marta Maurás Pérez",
            "Excma. Sra.",
            "Embajadora, Representante Permanente",
            "head",
        ),
        person("Juan Carlos González", "Sr.", "Consejero", "alternate"),
        person("Lucía Ramírez", "Sra.", "Primera Secretaria", "alternate"),
    )
    assert roster.meeting == "7MSP"


def test_a_title_column_holding_mr_and_ms_is_the_honorific() -> None:
    roster = from_table(
        "participants.csv",
        ("No.", "Title", "First name", "Last name", "Position", "Email"),
        ("1", "Mr", "John", "SMITH", "Director, Arms Control", "john.smith@dfat.gov.au"),
        ("2", "Ms", "Jane", "DOE", "Policy Officer", "jane.doe@dfat.gov.au"),
    )
    assert roster.delegates == (
        person("John SMITH", "Mr", "Director, Arms Control", "", "", "john.smith@dfat.gov.au"),
        person("Jane DOE", "Ms", "Policy Officer", "", "", "jane.doe@dfat.gov.au"),
    )
    assert roster.warnings == ("no head of delegation named",)


def test_a_trilingual_header_and_a_name_cell_carrying_the_title() -> None:
    roster = from_table(
        "list.docx",
        ("Name / Nom / Nombre", "Role / Rôle / Rol", "E-mail / Courriel / Correo"),
        ("H.E. Ms Sabine Keller, Ambassador", "Head of delegation", "keller@eda.admin.ch"),
        ("Mr Urs Brunner, Ministry of Defence", "Expert", ""),
    )
    assert roster.delegates == (
        person("Sabine Keller", "H.E. Ms", "Ambassador", "head", "", "keller@eda.admin.ch"),
        person("Urs Brunner", "Mr", "", "expert", "Ministry of Defence"),
    )


def test_a_one_column_table_with_headings_in_its_rows() -> None:
    roster = from_table(
        "delegation.docx",
        ("Head of Delegation",),
        ("H.E. Mr Michael Biontino, Ambassador, Permanent Representative",),
        ("Alternates",),
        ("Ms Katrin Weber, Counsellor",),
        ("Mr Jonas Schmidt, First Secretary",),
    )
    assert roster.delegates == (
        person("Michael Biontino", "H.E. Mr", "Ambassador, Permanent Representative", "head"),
        person("Katrin Weber", "Ms", "Counsellor", "alternate"),
        person("Jonas Schmidt", "Mr", "First Secretary", "alternate"),
    )
    assert roster.warnings == ()


def test_a_table_without_header_of_role_name_and_title_cells() -> None:
    roster = from_table(
        "composition.docx",
        ("Jefe de Delegación", "Embajador Carlos Foradori", "Representante Permanente"),
        ("Representante alterno", "Sr. Diego Tettamanti", "Consejero"),
        ("Asesora", "Sra. Paula Coto", "Secretaria de Embajada"),
    )
    assert roster.delegates == (
        person("Carlos Foradori", "Embajador", "Representante Permanente", "head"),
        person("Diego Tettamanti", "Sr.", "Consejero", "alternate"),
        person("Paula Coto", "Sra.", "Secretaria de Embajada", "adviser"),
    )


def test_a_row_without_a_name_is_reported() -> None:
    roster = from_table(
        "list.xlsx",
        ("Name", "Title"),
        ("Mr Ali Hassan", "Counsellor"),
        ("", "Interpreter"),
    )
    assert roster.delegates == (person("Ali Hassan", "Mr", "Counsellor"),)
    assert roster.warnings == (
        'row 3 of table in list.xlsx has no name: "Interpreter"',
        "no head of delegation named",
    )


# --- text --------------------------------------------------------------------------------------


def test_it_reads_headings_then_lines_in_english() -> None:
    roster = from_text(
        "list.pdf",
        "Head of Delegation:\nH.E. Mr Paul Kavanagh, Ambassador\n\n"
        "Alternates:\nMs Ruth Kelly, Counsellor\nMr Sean Byrne, First Secretary\n",
    )
    assert roster == Roster(
        delegates=(
            person("Paul Kavanagh", "H.E. Mr", "Ambassador", "head"),
            person("Ruth Kelly", "Ms", "Counsellor", "alternate"),
            person("Sean Byrne", "Mr", "First Secretary", "alternate"),
        ),
        meeting=None,
        source="text of list.pdf",
        warnings=(),
    )


def test_a_french_note_verbale_is_boilerplate_around_the_list() -> None:
    roster = from_body(FRENCH_NOTE)
    assert roster == Roster(
        delegates=(
            person(
                "Yann HWANG",
                "S.E. M.",
                "Ambassadeur, Représentant permanent de la France auprès de la "
                "Conférence du désarmement",
                "head",
            ),
            person(
                "Anne-Laure DUPONT",
                "Mme",
                "Conseillère",
                "alternate",
                "Mission permanente de la France",
            ),
            person(
                "Pierre MARTIN",
                "M.",
                "Premier secrétaire",
                "alternate",
                "",
                "pierre.martin@diplomatie.gouv.fr",
            ),
            person("Jean-Luc BERNARD", "Colonel", "", "adviser", "Ministère des Armées"),
            person(
                "Hugo LEBLANC",
                "M.",
                "Conseiller juridique",
                "adviser",
                "Direction des affaires juridiques",
            ),
        ),
        meeting="7MSP",
        source="message body",
        warnings=(),
    )


def test_role_and_name_on_one_line_in_spanish() -> None:
    roster = from_text(
        "Nota verbal 123.pdf",
        "La Misión Permanente de Chile saluda atentamente a la Dependencia de Apoyo a la\n"
        "Aplicación y tiene el honor de informar la composición de la delegación:\n"
        "Jefa de Delegación: Excma. Sra. Marta Maurás, Embajadora, Representante Permanente\n"
        "Representante alterno: Sr. Felipe Ruiz, Consejero (fruiz@minrel.gob.cl)\n"
        "Asesores: Sra. Carolina Díaz, Primera Secretaria; Sr. Tomás Vera, Ministerio de "
        "Defensa Nacional\n"
        "La Misión Permanente de Chile se vale de la oportunidad para reiterar las seguridades "
        "de su más alta consideración.\n",
    )
    assert roster.delegates == (
        person("Marta Maurás", "Excma. Sra.", "Embajadora, Representante Permanente", "head"),
        person("Felipe Ruiz", "Sr.", "Consejero", "alternate", "", "fruiz@minrel.gob.cl"),
        person("Carolina Díaz", "Sra.", "Primera Secretaria", "adviser"),
        person("Tomás Vera", "Sr.", "", "adviser", "Ministerio de Defensa Nacional"),
    )
    assert roster.warnings == ()


def test_a_spanish_note_with_don_and_dona_and_an_e_mail_in_angle_brackets() -> None:
    roster = from_body(
        "La Misión Permanente de España saluda atentamente a la Dependencia de Apoyo a la "
        "Aplicación y tiene el honor de comunicarle que la delegación española a la Séptima "
        "Reunión de los Estados Partes estará integrada por:\n\n"
        "Jefe de Delegación\n"
        "Excmo. Sr. D. Julio Herráiz España, Embajador Representante Permanente\n\n"
        "Delegados\n"
        "D. Ignacio Sánchez de Lerín, Consejero\n"
        "Dña. María Gómez <maria.gomez@mde.es>, Ministerio de Defensa\n\n"
        "La Misión Permanente de España aprovecha la oportunidad para reiterar a la "
        "Dependencia de Apoyo el testimonio de su más alta consideración.\n"
    )
    assert roster.delegates == (
        person(
            "Julio Herráiz España",
            "Excmo. Sr. D.",
            "Embajador Representante Permanente",
            "head",
        ),
        person("Ignacio Sánchez de Lerín", "D.", "Consejero", "member"),
        person("María Gómez", "Dña.", "", "member", "Ministerio de Defensa", "maria.gomez@mde.es"),
    )
    assert (roster.meeting, roster.warnings) == ("7MSP", ())


def test_a_numbered_list_with_roles_after_a_dash() -> None:
    roster = from_text(
        "NV 145-2017.pdf",
        "The Permanent Mission of the Republic of Zambia presents its compliments to the "
        "Implementation Support Unit and has the honour to submit the names of its delegation "
        "to the Seventh Meeting of States Parties as follows:\n\n"
        "1. Hon. Harry Kalaba, MP, Minister of Foreign Affairs - Head of Delegation\n"
        "2. Mr. Chalwe Lombe, Permanent Secretary, Ministry of Foreign Affairs - Alternate Head\n"
        "3. Col. Joseph Mwale - Zambia Army\n",
    )
    assert roster.delegates == (
        person("Harry Kalaba", "Hon.", "MP, Minister of Foreign Affairs", "head"),
        person(
            "Chalwe Lombe", "Mr.", "Permanent Secretary", "alternate", "Ministry of Foreign Affairs"
        ),
        person("Joseph Mwale", "Col.", "Zambia Army"),
    )


def test_several_people_after_one_role_on_one_line() -> None:
    roster = from_body(
        "Head of delegation: Mrs. Jane Doe (jane.doe@fco.gov.uk)\n"
        "Deputy Head of Delegation: Mr John Roe\n"
        "Advisers: Ms A. Smith, Mr B. Jones\n"
    )
    assert roster.delegates == (
        person("Jane Doe", "Mrs.", "", "head", "", "jane.doe@fco.gov.uk"),
        person("John Roe", "Mr", "", "alternate"),
        person("A. Smith", "Ms", "", "adviser"),
        person("B. Jones", "Mr", "", "adviser"),
    )


def test_abbreviated_roles_in_a_role_column() -> None:
    roster = from_table(
        "list.xlsx",
        ("Surname", "Given name", "Position", "Delegation role"),
        ("DOE", "Jane", "Ambassador", "HoD"),
        ("ROE", "John", "Counsellor", "Deputy Head of Delegation"),
        ("SMITH", "Ann", "Attaché", "Member of delegation"),
        ("BROWN", "Tom", "Intern", "Observer"),
    )
    assert [(p.name, p.role) for p in roster.delegates] == [
        ("DOE Jane", "head"),
        ("ROE John", "alternate"),
        ("SMITH Ann", "member"),
        ("BROWN Tom", ""),
    ]
    assert roster.warnings == ('row 5 of table in list.xlsx: role "Observer" not understood',)


def test_all_caps_surnames_first_and_people_spread_over_lines() -> None:
    roster = from_text(
        "delegation.docx",
        "Composition of the delegation of Norway:\n\n"
        "HAUGEN Ingrid\nAmbassador, Permanent Representative\ningrid.haugen@mfa.no\n\n"
        "LARSEN, Ola\nSenior Adviser, Norwegian Ministry of Foreign Affairs\n"
        "Tel: +47 23 95 00 00\nE-mail: ola.larsen@mfa.no\n",
    )
    assert roster.delegates == (
        person(
            "HAUGEN Ingrid",
            "",
            "Ambassador, Permanent Representative",
            "",
            "",
            "ingrid.haugen@mfa.no",
        ),
        person(
            "LARSEN Ola",
            "",
            "Senior Adviser, Norwegian Ministry of Foreign Affairs",
            "",
            "",
            "ola.larsen@mfa.no",
        ),
    )


def test_a_role_in_brackets_after_the_name() -> None:
    roster = from_body(
        "Dear colleagues,\n\nOur delegation will be composed as follows:\n"
        "- H.E. Ms Carla Rossi, Ambassador (Head of Delegation)\n"
        "- Mr Marco Bianchi, Counsellor (Alternate) marco.bianchi@esteri.it\n"
        "- Ms Giulia Conti, Expert, Ministry of Defence\n\nKind regards,\nMarco Bianchi\n"
    )
    assert roster.delegates == (
        person("Carla Rossi", "H.E. Ms", "Ambassador", "head"),
        person("Marco Bianchi", "Mr", "Counsellor", "alternate", "", "marco.bianchi@esteri.it"),
        person("Giulia Conti", "Ms", "Expert", "expert", "Ministry of Defence"),
    )
    assert roster.meeting is None


def test_name_and_title_blocks_with_labels() -> None:
    roster = from_text(
        "registration.txt",
        "Name: Mr Kwame Asante\nTitle: Minister Counsellor\nRole: Head of delegation\n"
        "Organisation: Permanent Mission of Ghana\nE-mail: k.asante@ghanamission.ch\n\n"
        "Nom : Mme Awa Diallo\nFonction : Deuxième conseillère\nRôle : Suppléante\n",
    )
    assert roster.delegates == (
        person(
            "Kwame Asante",
            "Mr",
            "Minister Counsellor",
            "head",
            "Permanent Mission of Ghana",
            "k.asante@ghanamission.ch",
        ),
        person("Awa Diallo", "Mme", "Deuxième conseillère", "alternate"),
    )


def test_a_docx_table_flattened_to_text_is_read_as_a_table() -> None:
    roster = from_text(
        "delegation.docx",
        "Delegation of Austria to the 7MSP\n"
        "Name\tFunction\tE-mail\n"
        "H.E. Mr Thomas Hajnoczi\tAmbassador\tthomas.hajnoczi@bmeia.gv.at\n"
        "Ms Elisabeth Kögl\tCounsellor\t\n",
    )
    assert roster.delegates == (
        person("Thomas Hajnoczi", "H.E. Mr", "Ambassador", "", "", "thomas.hajnoczi@bmeia.gv.at"),
        person("Elisabeth Kögl", "Ms", "Counsellor"),
    )
    assert roster.meeting == "7MSP"


def test_a_singular_rank_under_a_name_is_the_title_not_a_heading() -> None:
    roster = from_text("list.pdf", "Délégués :\nM. Luc Petit\nConseiller\nMme Léa Roux\nExperte\n")
    assert roster.delegates == (
        person("Luc Petit", "M.", "Conseiller", "member"),
        person("Léa Roux", "Mme", "Experte", "member"),  # the heading's role stands
    )


def test_a_line_under_a_heading_that_is_not_a_person_is_reported() -> None:
    roster = from_text("list.pdf", "Alternates:\nMs Ruth Kelly, Counsellor\nto be confirmed\n")
    assert roster.delegates == (person("Ruth Kelly", "Ms", "Counsellor", "alternate"),)
    assert roster.warnings == (
        'line 3 of text of list.pdf not understood: "to be confirmed"',
        "no head of delegation named",
    )


def test_boilerplate_alone_gives_no_delegates() -> None:
    roster = from_body(
        "The Permanent Mission of Ghana presents its compliments to the Implementation Support "
        "Unit and has the honour to transmit herewith the composition of its delegation.\n"
        "Palais des Nations\nCH-1211 Geneva 10\n"
    )
    assert roster == Roster((), None, "", ("no list of delegates found",))


def test_the_attachment_listing_more_people_wins_over_the_body() -> None:
    body = "Head of delegation: H.E. Mr Paul Kavanagh\nPlease see the full list attached."
    text = (
        "Head of Delegation:\nH.E. Mr Paul Kavanagh, Ambassador\n\n"
        "Alternates:\nMs Ruth Kelly, Counsellor\n"
    )
    roster = extract_roster(body=body, texts=[("list.pdf", text)], tables=[])
    assert roster.source == "text of list.pdf"
    assert [p.name for p in roster.delegates] == ["Paul Kavanagh", "Ruth Kelly"]
    assert roster.warnings == (
        "message body lists 1 people, text of list.pdf 2: text of list.pdf used",
    )


def test_a_table_is_preferred_to_the_same_list_as_text() -> None:
    table: Table = (("Name", "Title"), ("Mr Ali Hassan", "Counsellor"))
    roster = extract_roster(
        body="",
        texts=[("list.docx", "Name\tTitle\nMr Ali Hassan\tCounsellor")],
        tables=[("list.docx", table)],
    )
    assert roster.source == "table in list.docx"


def test_a_person_listed_twice_is_kept_once() -> None:
    roster = from_text(
        "list.pdf", "Head of Delegation:\nMr Ali Hassan\nAlternate:\nMr Ali Hassan\n"
    )
    assert roster.delegates == (person("Ali Hassan", "Mr", "", "head"),)
    assert roster.warnings == ("Ali Hassan is listed twice",)


# --- the meeting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "meeting"),
    [
        ("Seventh Meeting of States Parties", "7MSP"),
        ("the 7th Meeting of the States Parties to the Convention", "7MSP"),
        ("7MSP - delegation of Ghana", "7MSP"),
        ("MSP7 registration", "7MSP"),
        ("Septième Réunion des États parties", "7MSP"),
        ("la 7e REP à Genève", "7MSP"),
        ("7ème Réunion des États parties", "7MSP"),
        ("Séptima Reunión de los Estados Partes", "7MSP"),
        ("la VII Reunión de los Estados Partes", "7MSP"),
        ("7.ª Reunión de los Estados Partes", "7MSP"),
        ("Eighth Meeting of States Parties", "8MSP"),
        ("Decimoquinta Reunión de los Estados Partes", "15MSP"),
        ("Second Review Conference", "2RC"),
        ("Deuxième Conférence d'examen", "2RC"),
        ("Primera Conferencia de Examen", "1RC"),
        ("the 2RC in Lausanne", "2RC"),
        ("the Meeting of States Parties", None),
        ("Perm. Rep. of Ghana", None),
        ("CCM/MSP/2017/WP.1", None),
        ("", None),
    ],
)
def test_it_names_the_meeting(text: str, meeting: str | None) -> None:
    assert meeting_from_text(text) == meeting


def test_the_first_meeting_named_wins() -> None:
    assert meeting_from_text("for the 7MSP, as we did for the Sixth Meeting of States Parties") == (
        "7MSP"
    )


# --- robustness --------------------------------------------------------------------------------


def test_more_than_two_hundred_people_are_cut_with_a_warning() -> None:
    lines = "\n".join(f"Mr Person Number{chr(65 + i % 26)}{chr(65 + i // 26)}" for i in range(450))
    roster = from_text("huge.txt", "Members:\n" + lines)
    assert len(roster.delegates) == MAX_DELEGATES
    assert "450 people listed: only the first 200 kept" in roster.warnings


def _garbage(rng: random.Random, size: int) -> str:
    alphabet = "aZ é\t\n:;,.()-–@☒H.E.MrMmeSr.DUPONT" + "".join(map(chr, range(0x20, 0x7F)))
    return "".join(rng.choice(alphabet) for _ in range(size))


@pytest.mark.parametrize("seed", range(20))
def test_garbage_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    text = _garbage(rng, 5_000)
    table: Table = tuple(
        tuple(_garbage(rng, rng.randint(0, 40)) for _ in range(rng.randint(0, 8)))
        for _ in range(rng.randint(0, 30))
    )
    roster = extract_roster(body=text, texts=[("x.pdf", text[::-1])], tables=[("x.xlsx", table)])
    assert isinstance(roster, Roster)
    assert len(roster.delegates) <= MAX_DELEGATES


@pytest.mark.parametrize(
    "text",
    [
        "H.E. Mr " * 200_000,
        "a" * 2_000_000,
        ("Head of Delegation:\n" + "Mr Jean DUPONT, Counsellor\n" * 5) * 20_000,
        "\t".join(["Name"] * 10_000),
        ("x@" * 100_000) + "@example.org",
        "7" * 500_000 + " MSP",
        "\n" * 1_000_000,
        "Name: " * 300_000,
    ],
    ids=[
        "honorifics",
        "one-word",
        "many-lines",
        "wide-header",
        "at-signs",
        "digits",
        "blank",
        "labels",
    ],
)
def test_huge_inputs_return_quickly(text: str) -> None:
    started = time.perf_counter()
    roster = extract_roster(body=text, texts=[("big.txt", text)], tables=[])
    assert time.perf_counter() - started < 5
    assert len(roster.delegates) <= MAX_DELEGATES
    assert roster.warnings


def test_a_huge_table_returns_quickly_with_a_warning() -> None:
    row = ("Mr Jean DUPONT", "Counsellor", "Member", "jean@example.org") * 20
    table: Table = (("Name", "Title", "Role", "E-mail"), *([row] * 50_000))
    started = time.perf_counter()
    roster = extract_roster(body="", texts=[], tables=[("big.xlsx", table)])
    assert time.perf_counter() - started < 5
    assert any(w.startswith("table in big.xlsx: only the first ") for w in roster.warnings)
