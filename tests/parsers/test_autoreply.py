"""auto_reply_reason: never answer a robot (RFC 3834), always answer a mission."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from parsers.autoreply import auto_reply_reason
from parsers.message import ParsedMessage, parse_message


def mission_note(subject: str = "Article 7 report of Ghana", **headers: str) -> ParsedMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("From", "Permanent Mission of Ghana <ghanamission@ties.itu.int>")
    mail["To"] = "ccm@unog.ch"
    mail["Subject"] = subject
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content("The Permanent Mission of Ghana presents its compliments ...")
    return parse_message(mail.as_bytes())


def test_an_ordinary_mission_note_may_be_answered() -> None:
    assert auto_reply_reason(mission_note(), ["ccm@unog.ch"]) is None


def test_an_ordinary_outlook_mail_with_only_x_auto_response_suppress_may_be_answered() -> None:
    """Outlook puts the header on ordinary mail: it asks *us* not to auto-answer, nothing more."""
    note = mission_note(X_Auto_Response_Suppress="All", Thread_Topic="Article 7 report of Ghana")

    assert auto_reply_reason(note) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated (failure)"}, "Auto-Submitted: auto-generated"),
        ({"Return-Path": "<>"}, "null sender (Return-Path <>)"),
        ({"List-Id": "CCM delegates <ccm.lists.example.org>"}, "mailing list (List-Id)"),
        ({"List-Unsubscribe": "<mailto:leave@example.org>"}, "mailing list (List-Unsubscribe)"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"Precedence": "junk"}, "Precedence: junk"),
        ({"Precedence": "list"}, "Precedence: list"),
        ({"X-Autoreply": "yes"}, "X-Autoreply: yes"),
        ({"X-Autorespond": "Out of office"}, "X-Autorespond: Out of office"),
        ({"X-Failed-Recipients": "x@example.org"}, "bounce (X-Failed-Recipients)"),
        (
            {
                "X-Auto-Response-Suppress": "All",
                "X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent",
            },
            "Exchange-generated (Mailbox Rules Agent, X-Auto-Response-Suppress)",
        ),
        ({"From": "MAILER-DAEMON@mx.example.org"}, "bounce sender mailer-daemon@mx.example.org"),
        ({"From": "postmaster@example.org"}, "bounce sender postmaster@example.org"),
        ({"From": "noreply@example.org"}, "no-reply sender noreply@example.org"),
        (
            {"From": "Do Not Reply <do-not-reply@example.org>"},
            "no-reply sender do-not-reply@example.org",
        ),
        ({"Reply-To": "no_reply@example.org"}, "no-reply sender no_reply@example.org"),
    ],
)
def test_each_header_rule_fires(headers: dict[str, str], reason: str) -> None:
    assert auto_reply_reason(mission_note(**headers)) == reason


def test_auto_submitted_no_is_a_human() -> None:
    assert auto_reply_reason(mission_note(Auto_Submitted="no")) is None


def test_a_bounce_report_is_recognised_by_its_mime_type() -> None:
    bounce = EmailMessage()
    bounce["From"] = "Mail Delivery System <MAILER-DAEMON@unog.ch>"
    bounce["To"] = "ccm@unog.ch"
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce.set_content("I'm sorry to have to inform you that your message could not be delivered.")
    bounce.make_mixed()
    bounce.replace_header(
        "Content-Type", 'multipart/report; report-type=delivery-status; boundary="x"'
    )
    parsed = parse_message(bounce.as_bytes())

    assert auto_reply_reason(parsed) == "bounce (multipart/report delivery-status)"


def test_a_mail_from_our_own_address_is_not_answered() -> None:
    note = mission_note(From="CCM Secretariat <CCM@unog.ch>")

    assert auto_reply_reason(note, ["ccm@unog.ch"]) == "sender is our own address"
    assert auto_reply_reason(note) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Article 7 report",
        "Automatic reply: 7MSP delegation",
        "Réponse automatique : Composition de la délégation",
        "Absence du bureau",
        "Respuesta automática: Informe de transparencia",
        "Fuera de la oficina",
        "Automatische Antwort: 7MSP",
        "Undeliverable: Reminder Article 7",
        "Non remis : Rappel",
        "Delivery Status Notification (Failure)",
        "Mail delivery failed: returning message to sender",
        "Read: Reminder Article 7",
        "[External] Out of office",
    ],
)
def test_each_auto_reply_subject_fires(subject: str) -> None:
    reason = auto_reply_reason(mission_note(subject))

    assert reason is not None and subject.strip()[:20] in reason


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Out of office hours for the 7MSP registration desk",
        "Question on the undeliverable parcel of documents",
        "Delegation of Ghana: head of delegation out of office until Monday",
    ],
)
def test_a_human_subject_that_mentions_those_words_is_answered(subject: str) -> None:
    assert auto_reply_reason(mission_note(subject)) is None
