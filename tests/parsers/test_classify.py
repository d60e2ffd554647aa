"""classify_kind: delegation details, an Article 7 report, both, or other correspondence."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.attachments import Extraction
from parsers.classify import _QUESTION, KINDS, PHRASES, KindResult, classify_kind
from parsers.message import Attachment, ParsedMessage, parse_message


def mail(subject: str, body: str, *files: tuple[str, bytes]) -> ParsedMessage:
    message = EmailMessage()
    message["From"] = "mission@example.org"
    message["To"] = "ccm@unog.ch"
    message["Subject"] = subject
    message.set_content(body)
    for name, data in files:
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return parse_message(message.as_bytes())


def text_of(name: str, text: str) -> Extraction:
    return Extraction(name=name, method="pdf", text=text, error=None)


def classify(subject: str, body: str, *texts: tuple[str, str]) -> KindResult:
    msg = mail(subject, body, *((name, b"%PDF-1.4") for name, _ in texts))
    return classify_kind(msg, [text_of(name, text) for name, text in texts])


@pytest.mark.parametrize(
    ("subject", "body", "texts"),
    [
        (
            "7MSP - Composition of the delegation of Ghana",
            "The Permanent Mission of Ghana presents its compliments to the secretariat and has "
            "the honour to transmit the composition of its delegation.",
            [],
        ),
        (
            "Note verbale",
            "La Mission permanente de la France a l'honneur de transmettre ci-joint la liste des "
            "délégués à la Septième Réunion des États parties.",
            [("NV 123.pdf", "Chef de délégation : S.E. M. Yann Hwang, Ambassadeur")],
        ),
        (
            "Delegación de Chile a la 7MSP",
            "La Misión Permanente de Chile saluda atentamente y remite la lista de delegados.",
            [],
        ),
        (
            "Nota verbal",
            "Se adjunta nota verbal.",
            [("Delegacion Chile 7MSP.pdf", "Jefe de la delegación: Embajadora Marta Maurás")],
        ),
        (
            "Registration for the Seventh Meeting of States Parties",
            "Please register the following participants. Head of Delegation: H.E. Mr. X",
            [],
        ),
    ],
)
def test_it_recognises_delegation_details_in_english_french_and_spanish(
    subject: str, body: str, texts: list[tuple[str, str]]
) -> None:
    result = classify(subject, body, *texts)

    assert (result.kind, result.kinds) == ("delegation", ("delegation",))
    assert result.confidence >= 0.5
    assert all(e.target in KINDS for e in result.evidence)


@pytest.mark.parametrize(
    ("subject", "body", "texts"),
    [
        (
            "CCM Article 7 Transparency Report 2016 - Ghana",
            "Please find attached the report for the calendar year 2016.",
            [],
        ),
        (
            "Rapport de transparence – Article 7",
            "La Mission permanente de la Suisse a l'honneur de transmettre son rapport.",
            [],
        ),
        (
            "Informe de transparencia",
            "Se adjunta el informe del artículo 7 correspondiente al período que abarca 2016.",
            [],
        ),
        (
            "Note verbale",
            "Please find attached our note verbale.",
            [
                (
                    "CCM_Art7_2016.pdf",
                    "State Party: Ghana. Reporting period: 1 January to 31 December 2016. "
                    "Form A National implementation measures. Form B Stockpiles. Form F Clearance.",
                )
            ],
        ),
    ],
)
def test_it_recognises_article_7_reports_in_english_french_and_spanish(
    subject: str, body: str, texts: list[tuple[str, str]]
) -> None:
    result = classify(subject, body, *texts)

    assert (result.kind, result.kinds) == ("article7", ("article7",))
    assert result.evidence[0].weight >= 0.6, result.evidence


def test_a_mail_with_both_gives_both_kinds_strongest_first() -> None:
    result = classify(
        "Article 7 report and composition of the delegation",
        "Please find attached our transparency report and the list of delegates for the 7MSP.",
        ("Art 7 report 2016.pdf", "Form A ... Form J"),
        ("Delegation list.pdf", "Head of delegation: H.E. Ms. Y"),
    )

    assert set(result.kinds) == {"delegation", "article7"}
    assert result.kind == result.kinds[0]


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Question", "Could you tell us where the side events will take place?"),
        (
            "7MSP statement",
            "Please find attached the statement delivered by my delegation at the 7MSP.",
        ),
        (
            "Visa letter",
            "Dear colleagues, could you provide a visa support letter?\n\nBest regards\n"
            "Anna Smith\nDelegation of the European Union to the UN in Geneva\n"
            "7MSP – Geneva, 4–6 September 2017",
        ),
        ("Lunch on Friday", "Thank you\n--\nJ. Doe\nSeventh Meeting of States Parties to the CCM"),
        ("Question on reports", "When is the Article 7 report due this year?"),
        ("Formulaire", "Please send me the form I mentioned and the form A colleague asked for."),
    ],
)
def test_ordinary_correspondence_is_other(subject: str, body: str) -> None:
    result = classify(subject, body)

    assert (result.kind, result.kinds) == ("other", ())
    assert result.confidence > 0.5


def test_a_thank_you_to_our_acknowledgement_is_not_a_new_submission() -> None:
    body = (
        "Thank you very much.\n\n"
        "-----Original Message-----\n"
        "From: CCM Secretariat <ccm@unog.ch>\n"
        "Sent: Tuesday, 15 August 2017 09:00\n"
        "Subject: Acknowledgement of receipt: composition of the delegation\n\n"
        "We acknowledge receipt of the composition of the delegation of Ghana to the 7MSP.\n"
    )
    result = classify("RE: Acknowledgement of receipt: composition of the delegation", body)

    assert result.kind == "other"


def test_quoted_lines_do_not_count() -> None:
    body = (
        "Noted, thanks.\n> Please send the composition of the delegation and the list of delegates."
    )

    assert classify("Re: reminder", body).kind == "other"


def test_a_forwarded_submission_counts_its_forwarded_text() -> None:
    body = (
        "FYI\n\n---------- Forwarded message ---------\nFrom: Capital <desk@mfa.example>\n"
        "Subject: Composition of the delegation\n\nComposition of the delegation of Ghana: ..."
    )

    assert classify("Fwd: 7MSP", body).kind == "delegation"


def test_the_evidence_names_where_each_word_was_found() -> None:
    result = classify(
        "7MSP",
        "Please find attached the composition of the delegation.",
        ("liste.pdf", "Chef de délégation"),
    )

    details = {e.detail for e in result.evidence}
    assert 'body: "composition of the delegation"' in details
    assert 'text of "liste.pdf": "head of delegation"' in details
    assert 'subject: "MSP"' in details
    # "delegation" inside "composition of the delegation" is not counted a second time.
    assert not any(d.startswith('body: "delegation"') for d in details)


def test_words_in_an_attachment_file_name_count_strongly() -> None:
    att = Attachment(
        "Delegation_7MSP_Ghana.pdf",
        "Delegation_7MSP_Ghana.pdf",
        "application/pdf",
        b"",
        hashlib.sha256(b"").hexdigest(),
        False,
    )
    msg = mail("Note verbale", "See attached.")
    msg = dataclasses.replace(msg, attachments=(att,))

    result = classify_kind(msg, [])

    assert result.kind == "delegation"
    assert result.evidence[0].detail == 'file name "Delegation_7MSP_Ghana.pdf": "delegation"'


def test_a_reply_to_our_reminder_counts_only_what_the_mission_sent() -> None:
    subject = "RE: Reminder: Article 7 transparency report due 30 April"

    assert classify(subject, "We will submit it next week.").kind == "other"
    sent = classify(
        subject,
        "Please find attached our report.",
        ("Ghana 2016.pdf", "Reporting period: 2016. Form A ... Form B ... Form C"),
    )
    assert sent.kind == "article7"


def test_a_reply_subject_counts_half_and_once_per_kind() -> None:
    result = classify("Re: Article 7 transparency report", "Noted with thanks.")

    assert result.kind == "other"
    assert [e.detail for e in result.evidence] == ['subject: "transparency report" (reply subject)']


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        (
            "Question on the Article 7 reporting format",
            "Could you please confirm whether the Article 7 report may be submitted in Excel "
            "format, or whether a signed PDF is required?",
        ),
        (
            "Consulta - acreditación adicional",
            "¿Podrían indicarnos si es posible acreditar a un miembro adicional de la "
            "delegación después de la fecha límite?",
        ),
        (
            "Composition des délégations ?",
            "Pourriez-vous nous indiquer la date limite pour la transmission de la "
            "composition des délégations ?",
        ),
    ],
)
def test_what_a_mission_only_asks_about_does_not_add_up_to_a_submission(
    subject: str, body: str
) -> None:
    """A question announced in the subject counts half, and asked words count only once."""
    result = classify(subject, body)

    assert (result.kind, result.kinds) == ("other", ())
    assert any("question" in e.detail for e in result.evidence)


def test_a_submission_that_also_asks_something_is_still_a_submission() -> None:
    result = classify(
        "Article 7 report - Ghana",
        "Please find attached our Article 7 report. Could you confirm that you received it?",
        ("Ghana 2016.pdf", "State Party: Ghana. Form A ... Form B ... Form C"),
    )

    assert result.kind == "article7"


def test_delegates_addressed_are_not_delegates_listed() -> None:
    result = classify(
        "Memorandum to delegates",
        "Dear delegates, our memorandum on interpretive issues is attached.",
    )

    assert result.kind == "other"


def robot_mail(subject: str, body: str, **headers: str) -> ParsedMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "Kari Nordmann <kari@mfa.example>")
    message["To"] = "ccm@unog.ch"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return parse_message(message.as_bytes())


def test_an_out_of_office_quoting_our_reminder_submits_nothing() -> None:
    msg = robot_mail(
        "Automatic reply: Reminder: Article 7 transparency report due 30 April",
        "I am out of the office. Your message about the Article 7 transparency report and the "
        "composition of the delegation will be answered on my return.",
        Auto_Submitted="auto-replied",
    )

    result = classify_kind(msg, [])

    assert (result.kind, result.kinds, result.confidence) == ("auto_reply", (), 1.0)
    assert [(e.rule, e.target) for e in result.evidence] == [("automatic", "auto_reply")]


def test_a_bounce_says_who_failed_in_its_evidence() -> None:
    msg = robot_mail(
        "Undelivered Mail Returned to Sender",
        "<old.desk@mfa.example>: host mx.mfa.example said: 550 5.1.1 User unknown",
        From="MAILER-DAEMON@mx.mfa.example",
    )

    result = classify_kind(msg, [])

    assert result.kind == "bounce" and result.kinds == ()
    assert result.evidence[-1].detail == "failed recipients: old.desk@mfa.example (permanent)"


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"List_Id": "<news.example.org>"}, "list"),
        ({"X_Spam_Flag": "YES"}, "spam"),
        ({"X_Spam_Score": "6.1"}, "spam"),
    ],
)
def test_list_and_spam_mail_submit_nothing(headers: dict[str, str], kind: str) -> None:
    msg = robot_mail("Composition of the delegation", "Head of delegation: ...", **headers)

    result = classify_kind(msg, [])

    assert (result.kind, result.kinds) == (kind, ())
    assert result.kind in KINDS


def test_the_spam_threshold_and_our_own_addresses_are_passed_on() -> None:
    msg = robot_mail("Composition of the delegation", "Head of delegation: ...", X_Spam_Score="6.1")
    ours = robot_mail(
        "Composition of the delegation", "Head of delegation: ...", From="ccm@unog.ch"
    )

    assert classify_kind(msg, [], spam_threshold=8.0).kind == "delegation"
    assert classify_kind(ours, []).kind == "delegation"
    assert classify_kind(ours, [], own_addresses=["CCM@unog.ch"]).kind == "auto_reply"


def test_the_words_alone_can_be_read_when_a_human_looks_anyway() -> None:
    msg = robot_mail("Composition of the delegation", "Head of delegation: ...", X_Spam_Flag="YES")

    assert classify_kind(msg, []).kind == "spam"
    assert classify_kind(msg, [], robots=False).kind == "delegation"


# Words of the phrases, glued to letters and digits or not: where the look-behind matters.
_PIECES = st.sampled_from(
    ["delegation", "delegacion", "composition de la", "list of", "head of the", "credentials",
     "transparency report", "article 7", "7msp", "msp", "x", "1", " ", "-", "'", "e", "s"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_quick_look_for_a_phrase_finds_exactly_what_the_full_pattern_finds(text: str) -> None:
    for phrase in PHRASES:
        expected = [m.span() for m in phrase.pattern.finditer(text)]
        assert [m.span() for m in phrase.finditer(text)] == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab .!?\n", max_size=40))
def test_a_question_is_found_where_the_plain_pattern_finds_it(text: str) -> None:
    plain = re.compile(r"[^.!?\n]*\?")  # what _QUESTION was: the same matches, in quadratic time
    assert [m.span() for m in _QUESTION.finditer(text)] == [m.span() for m in plain.finditer(text)]
