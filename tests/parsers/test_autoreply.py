"""auto_reply_reason and classify_automatic: never answer a robot (RFC 3834), always answer
a mission, and say which robot it was: auto-reply, bounce (and who failed), list or spam."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import os
import time
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from parsers.autoreply import (
    AUTOMATIC_KINDS,
    Automatic,
    auto_reply_reason,
    bounce_report,
    classify_automatic,
)
from parsers.message import Attachment, ParsedMessage, UnparseableMessage, parse_message


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


# =============================================================================
# classify_automatic: which robot, and for a bounce who failed
# =============================================================================

OUTLOOK = {
    "X_Auto_Response_Suppress": "All",
    "Thread_Index": "AdMU3gRkz3Y1mCxXQxqB9bq8lA5e4Q==",
    "X_MS_Has_Attach": "yes",
    "X_MS_Exchange_Organization_SCL": "-1",
    "X_Forefront_Antispam_Report": "SFV:NSPM;SFS:(10009020);DIR:OUT;",
    "X_Spam_Status": "No, score=-1.9 required=5.0 tests=BAYES_00",
    "X_Spam_Level": "",
    "X_Spam_Score": "-1.9",
}


def robot(subject: str, body: str, **headers: str) -> ParsedMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("From", "Mail Delivery System <MAILER-DAEMON@mx.mfa.example>")
    mail["To"] = "ccm@unog.ch"
    mail["Subject"] = subject
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return parse_message(mail.as_bytes())


def with_dsn(msg: ParsedMessage, *dsn_bodies: str) -> ParsedMessage:
    """The message as parse_message gives it once it keeps message/delivery-status parts."""
    parts = tuple(
        Attachment(
            "",
            f"dsn-{i}.txt",
            "message/delivery-status",
            body.encode(),
            hashlib.sha256(body.encode()).hexdigest(),
            False,
        )
        for i, body in enumerate(dsn_bodies, start=1)
    )
    return dataclasses.replace(msg, attachments=msg.attachments + parts)


def test_a_mission_note_is_no_robot_even_with_every_outlook_and_filter_header() -> None:
    note = mission_note(**OUTLOOK)

    assert classify_automatic(note, ["ccm@unog.ch"]) is None
    assert auto_reply_reason(note, ["ccm@unog.ch"]) is None


@pytest.mark.parametrize(
    ("headers", "subject", "kind"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Article 7 report of Ghana", "auto_reply"),
        ({"Auto-Submitted": "auto-generated"}, "Article 7 report of Ghana", "auto_reply"),
        ({"X-Autoreply": "yes"}, "Article 7 report of Ghana", "auto_reply"),
        ({}, "Out of Office: Article 7 report", "auto_reply"),
        ({}, "Réponse automatique : Rappel", "auto_reply"),
        ({}, "Respuesta automática: Recordatorio", "auto_reply"),
        ({}, "Read: Reminder Article 7", "auto_reply"),
        ({"From": "noreply@example.org"}, "Your registration", "auto_reply"),
        ({"From": "MAILER-DAEMON@mx.example.org"}, "Returned mail", "bounce"),
        ({"X-Failed-Recipients": "desk@mfa.example"}, "Article 7 report of Ghana", "bounce"),
        ({}, "Undeliverable: Reminder Article 7", "bounce"),
        ({}, "Non remis : Rappel", "bounce"),
        ({"List-Id": "CCM news <news.example.org>"}, "Newsletter", "list"),
        ({"Precedence": "bulk"}, "Newsletter", "list"),
        ({"X-Spam-Flag": "YES"}, "You have won", "spam"),
        ({"X-Spam-Status": "Yes, score=9.2 required=5.0"}, "You have won", "spam"),
        ({"X-Spam-Score": "5.0"}, "You have won", "spam"),
        ({"X-Spam-Level": "*****"}, "You have won", "spam"),
    ],
)
def test_each_robot_gets_its_kind(headers: dict[str, str], subject: str, kind: str) -> None:
    msg = mission_note(subject, **{k.replace("-", "_"): v for k, v in headers.items()})

    auto = classify_automatic(msg)

    assert auto is not None and auto.kind == kind
    assert auto.kind in AUTOMATIC_KINDS
    assert auto_reply_reason(msg) is not None


def test_a_bounce_wins_over_the_auto_submitted_every_mta_adds() -> None:
    msg = robot(
        "Undelivered Mail Returned to Sender",
        "<old.desk@mfa.example>: host mx.mfa.example said: 550 5.1.1 User unknown",
        Auto_Submitted="auto-replied",
    )

    auto = classify_automatic(msg, ["ccm@unog.ch"])

    assert auto == Automatic(
        "bounce", "bounce sender mailer-daemon@mx.mfa.example", ("old.desk@mfa.example",), True
    )
    # auto_reply_reason keeps naming the first rule that fired, as it always has.
    assert auto_reply_reason(msg, ["ccm@unog.ch"]) == "Auto-Submitted: auto-replied"


def test_an_out_of_office_sent_through_a_list_is_an_out_of_office() -> None:
    msg = mission_note("Automatic reply: 7MSP", List_Id="<delegates.example.org>")

    assert classify_automatic(msg) == Automatic(
        "auto_reply", "out-of-office subject (Automatic reply: 7MSP)"
    )


def test_a_newsletter_the_spam_filter_flagged_is_spam() -> None:
    msg = mission_note("Offers", List_Unsubscribe="<mailto:x@example.org>", X_Spam_Flag="YES")

    auto = classify_automatic(msg)

    assert auto is not None and auto.kind == "spam"


def test_a_null_sender_without_a_report_is_an_auto_reply_and_with_one_a_bounce() -> None:
    oof = robot("Away", "I am away until Monday.", From="Kari <kari@mfa.example>", Return_Path="<>")
    ndr = robot(
        "Notice",
        "Delivery has failed to these recipients or groups:\n\ndesk@mfa.example\nNot found.",
        From="Exchange <exchange@mfa.example>",
        Return_Path="<>",
    )

    assert classify_automatic(oof) == Automatic("auto_reply", "null sender (Return-Path <>)")
    assert classify_automatic(ndr) == Automatic(
        "bounce", "null sender (Return-Path <>)", ("desk@mfa.example",), None
    )


@pytest.mark.parametrize(
    ("status", "spam"),
    [
        ("No, score=4.9 required=5.0", False),
        ("Yes, score=5.0 required=5.0", True),
    ],
)
def test_the_spam_status_verdict_is_what_counts(status: str, spam: bool) -> None:
    auto = classify_automatic(mission_note(X_Spam_Status=status))

    assert (auto is not None) == spam


@pytest.mark.parametrize(
    ("headers", "threshold", "spam"),
    [
        ({"X_Spam_Score": "4.9"}, 5.0, False),
        ({"X_Spam_Score": "5"}, 5.0, True),
        ({"X_Spam_Score": "-3.2"}, 5.0, False),
        ({"X_Spam_Score": "7.5"}, 8.0, False),
        ({"X_Spam_Score": "8,1"}, 8.0, True),
        ({"X_Spam_Level": "****"}, 5.0, False),
        ({"X_Spam_Level": "*****"}, 5.0, True),
        ({"X_Spam_Level": "********"}, 10.0, False),
        ({"X_Spam_Flag": "NO"}, 5.0, False),
    ],
)
def test_score_and_level_are_spam_from_the_threshold(
    headers: dict[str, str], threshold: float, spam: bool
) -> None:
    msg = mission_note(**headers)

    auto = classify_automatic(msg, spam_threshold=threshold)

    assert (auto is not None and auto.kind == "spam") == spam
    assert (auto_reply_reason(msg, spam_threshold=threshold) is not None) == spam


def test_the_gtube_string_is_spam() -> None:
    msg = robot(
        "Test",
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
        From="tester@example.org",
    )

    assert classify_automatic(msg) == Automatic("spam", "GTUBE spam test string")


def test_our_own_mail_coming_back_is_a_robot_not_a_mission() -> None:
    note = mission_note(From="CCM Secretariat <ccm@unog.ch>")

    assert classify_automatic(note, ["ccm@unog.ch"]) == Automatic(
        "auto_reply", "sender is our own address"
    )


# ----------------------------------------------------------------------------- bounces


@pytest.mark.parametrize(
    ("subject", "body", "failed", "permanent"),
    [
        pytest.param(
            "Undeliverable: Reminder",
            "Delivery has failed to these recipients or groups:\n\n"
            "Disarmament Desk (disarmament.desk@mfa.example)\n"
            "The e-mail address you entered couldn't be found.\n\n"
            "Diagnostic information for administrators:\n\nGenerating server: mx.mfa.example\n"
            "disarmament.desk@mfa.example\n#550 5.1.1 RESOLVER.ADR.RecipNotFound ##",
            ("disarmament.desk@mfa.example",),
            True,
            id="exchange-en",
        ),
        pytest.param(
            "Non remis : Rappel",
            "La remise a échoué pour ces destinataires ou groupes :\n\n"
            "ancien.conseiller@diplomatie.example\nL'adresse est introuvable.\n",
            ("ancien.conseiller@diplomatie.example",),
            None,
            id="exchange-fr",
        ),
        pytest.param(
            "No se puede entregar: Recordatorio",
            "Error en la entrega a estos destinatarios o grupos:\n\n"
            "antiguo.delegado@cancilleria.example\n#550 5.1.1 ##",
            ("antiguo.delegado@cancilleria.example",),
            True,
            id="exchange-es",
        ),
        pytest.param(
            "Undeliverable: Reminder",
            "Your message to desk@mfa.example couldn't be delivered.\n\ndesk wasn't found.",
            ("desk@mfa.example",),
            None,
            id="office365",
        ),
        pytest.param(
            "Undelivered Mail Returned to Sender",
            "This is the mail system at host mx.example.\n\n"
            "<a.one@mfa.example>: host mx.mfa.example said: 550 5.1.1 User unknown\n"
            "<b.two@mfa.example>: mailbox full\n",
            ("a.one@mfa.example", "b.two@mfa.example"),
            True,
            id="postfix",
        ),
        pytest.param(
            "Returned mail: see transcript for details",
            "   ----- The following addresses had permanent fatal errors -----\n"
            "<edwin@mfa.example>\n    (reason: 553 5.3.0 Unknown E-Mail Address)\n",
            ("edwin@mfa.example",),
            True,
            id="sendmail",
        ),
        pytest.param(
            "Mail delivery failed: returning message to sender",
            "A message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            "  desk@mfa.example\n    Unknown user",
            ("desk@mfa.example",),
            True,
            id="exim",
        ),
        pytest.param(
            "Delivery Status Notification (Failure)",
            "Delivery to the following recipient failed permanently:\n\n"
            "     old.mission@gmail.com\n\nTechnical details of permanent failure:\n"
            "----- Original message -----\n\nFrom: ccm@unog.ch\nTo: old.mission@gmail.com\n",
            ("old.mission@gmail.com",),
            True,
            id="gmail",
        ),
        pytest.param(
            "Delayed Mail (still being retried)",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\n"
            "<registry@gov.example>: connect to mx.gov.example: Connection timed out\n",
            ("registry@gov.example",),
            False,
            id="delayed",
        ),
    ],
)
def test_failed_recipients_are_read_from_the_text_of_any_make(
    subject: str, body: str, failed: tuple[str, ...], permanent: bool | None
) -> None:
    auto = classify_automatic(robot(subject, body), ["ccm@unog.ch"])

    assert auto is not None and auto.kind == "bounce"
    assert (auto.failed_recipients, auto.permanent) == (failed, permanent)


def test_the_returned_original_and_our_own_address_are_never_failed_recipients() -> None:
    body = (
        "Delivery to the following recipient failed permanently:\n\n     gone@mfa.example\n\n"
        "----- Original message -----\n\nFrom: CCM <ccm@unog.ch>\nTo: gone@mfa.example\n"
        "Cc: other.desk@mfa.example\n"
    )

    report = bounce_report(robot("Delivery Status Notification (Failure)", body), ["ccm@unog.ch"])

    assert report.recipients == ("gone@mfa.example",)


def test_the_delivery_status_part_names_the_failed_recipients() -> None:
    dsn = (
        "Reporting-MTA: dns; mx.mfa.example\n\n"
        "Original-Recipient: rfc822;desk@mfa.example\n"
        "Final-Recipient: rfc822; desk.forwarded@mfa.example\n"
        "Action: failed\nStatus: 5.1.1\n\n"
        "Final-Recipient: rfc822; delivered@mfa.example\nAction: delivered\nStatus: 2.0.0\n\n"
        "Final-Recipient: RFC822; <slow@gov.example>\nAction: delayed\nStatus: 4.4.1\n"
    )
    msg = with_dsn(robot("Returned mail", "The mail could not be delivered."), dsn)

    auto = classify_automatic(msg)

    # Original-Recipient is the address we wrote to; delivered ones are no failure.
    assert auto == Automatic(
        "bounce",
        "bounce sender mailer-daemon@mx.mfa.example",
        ("desk@mfa.example", "slow@gov.example"),
        True,
    )


@pytest.mark.parametrize(
    ("fields", "permanent"),
    [
        ("Action: failed\nStatus: 5.2.2", True),
        ("Action: delayed\nStatus: 4.4.7", False),
        # Given up after days of retries: the mail will not arrive, whatever the 4.x.x says.
        ("Action: failed\nStatus: 4.2.2 (mailbox full)", True),
        ("Status: 5.1.1", True),
        ("Status: 4.0.0", False),
    ],
)
def test_permanent_says_whether_the_mail_will_still_arrive(fields: str, permanent: bool) -> None:
    dsn = f"Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; desk@mfa.example\n{fields}\n"
    msg = with_dsn(robot("Delivery report", "See the report."), dsn)

    auto = classify_automatic(msg)

    assert auto is not None and auto.permanent is permanent


def test_delivery_status_groups_without_blank_lines_are_still_told_apart() -> None:
    dsn = (
        "Reporting-MTA: dns; mx\nFinal-Recipient: rfc822; one@mfa.example\nAction: failed\n"
        "Status: 5.1.1\nFinal-Recipient: rfc822; two@mfa.example\nAction: failed\n"
        "Status: 5.1.1\n"
    )
    msg = with_dsn(robot("Returned mail", ""), dsn)

    assert bounce_report(msg).recipients == ("one@mfa.example", "two@mfa.example")


# ----------------------------------------------------------------------------- corpora

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
# Every bounce of two corpora, with the failed recipients its report names.
BOUNCES = {
    "flanker/bounce/broken-mime.eml": ("info@example.net",),
    "flanker/bounce/delayed-broken.eml": ("demo@example.com",),
    "flanker/bounce/delayed.eml": ("foo@example.com",),
    "flanker/bounce/gmail-invalid-address.eml": ("awfawfawfawfawfaw@someserverhere.com",),
    "flanker/bounce/gmail-no-dns.eml": ("user@example.comm",),
    "flanker/bounce/mailbox-full.eml": ("user@aol.com",),
    "flanker/bounce/no-mx.eml": ("user@example.com",),
    "flanker/bounce/office365.eml": ("noname@example.com",),
    "flanker/bounce/zed.eml": (
        "asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com",
    ),
    "mikel-mail/multipart_report_emails/multi_address_bounce1.eml": (
        "bbbbvhvbbvkjbhfbvbvjhb@gmail.com",
        "bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com",
        "egyfefsdvsfvvhjsd@gmail.com",
        "kfhejkfbsjkjsbhds@gmail.com",
        "qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com",
    ),
    "mikel-mail/multipart_report_emails/multi_address_bounce2.eml": (
        "bbbbvhvbbvkjbhfbvbvjhb@gmail.com",
        "bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com",
        "egyfefsdvsfvvhjsd@gmail.com",
        "kfhejkfbsjkjsbhds@gmail.com",
        "qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com",
    ),
    "mikel-mail/multipart_report_emails/multipart_report_multiple_status.eml": ("u@ci.com",),
    "mikel-mail/multipart_report_emails/report_422.eml": ("fraser@oooooooo.com.au",),
    "mikel-mail/multipart_report_emails/report_530.eml": ("edwin@zzzzzzz.com",),
}
PERMANENT = {
    "flanker/bounce/no-mx.eml": False,
    "mikel-mail/multipart_report_emails/report_422.eml": False,
    "flanker/bounce/zed.eml": True,
    "flanker/bounce/office365.eml": True,
    "flanker/bounce/gmail-invalid-address.eml": True,
    "mikel-mail/multipart_report_emails/report_530.eml": True,
}


def _corpora() -> Path:
    if not CORPORA.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no corpora at {CORPORA}")
        pytest.skip(f"no corpora at {CORPORA}")
    return CORPORA


def _dsn_parts(raw: bytes) -> list[str]:
    """The message/delivery-status bodies of a raw mail, read with the stdlib."""
    root = email.message_from_bytes(raw, policy=email.policy.compat32)
    bodies = []
    for part in root.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            bodies.append("\n\n".join(str(block).strip() for block in payload))
    return bodies


def test_every_corpus_bounce_is_a_bounce_naming_who_failed() -> None:
    root = _corpora()
    found = list((root / "flanker" / "bounce").glob("*.eml")) + list(
        (root / "mikel-mail" / "multipart_report_emails").glob("*.eml")
    )
    assert {p.relative_to(root).as_posix() for p in found} == set(BOUNCES)
    problems = []
    for rel, failed in sorted(BOUNCES.items()):
        raw = (root / rel).read_bytes()
        auto = classify_automatic(parse_message(raw), ["ccm@unog.ch"])
        # Two of them name the recipient only in the message/delivery-status part, which
        # parse_message keeps for that reason.
        if auto is None or auto.kind != "bounce" or auto.failed_recipients != failed:
            problems.append(f"{rel}: {auto}")
        elif rel in PERMANENT and auto.permanent is not PERMANENT[rel]:
            problems.append(f"{rel}: permanent {auto.permanent}, expected {PERMANENT[rel]}")
        # The report part alone is enough, whatever the text around it says.
        kept = with_dsn(parse_message(raw), *_dsn_parts(raw))
        auto = classify_automatic(kept, ["ccm@unog.ch"])
        if auto is None or auto.failed_recipients != failed:
            problems.append(f"{rel} with its DSN part: {auto}")
    assert not problems, "\n".join(problems)


def test_the_other_delivery_reports_in_the_corpora_are_bounces_too() -> None:
    root = _corpora()
    reports = {
        "mimekit/messages/bounce.txt": ("netec.test@netecgc.com",),
        "mimekit/messages/delivery-status2.txt": ("source@domain.com",),
        "nodemailer-mailparser/delivery-status.eml": ("xxxx@xxxx.com",),
        "spamscope-mail-parser/mail_malformed_2": ("abh@netpar.com.br",),
        "cpython-test_email/msg_16.txt": ("jangel1@cougar.noc.ucla.edu",),
        "cpython-test_email/msg_25.txt": ("scoffman@wellpartner.com",),
    }
    for rel, failed in reports.items():
        auto = classify_automatic(parse_message((root / rel).read_bytes()), ["ccm@unog.ch"])
        assert auto is not None and (auto.kind, auto.failed_recipients) == ("bounce", failed), rel


def _kinds(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            msg = parse_message(path.read_bytes())
        except UnparseableMessage:
            continue
        auto = classify_automatic(msg, ["ccm@unog.ch"])
        counts[auto.kind if auto else "human"] += 1
    return counts


def test_spam_is_spam_only_where_a_filter_said_so_and_ham_never_is() -> None:
    """SpamAssassin's own test spam mostly carries no verdict: it is not forced to spam."""
    root = _corpora() / "spamassassin"
    spam, ham = _kinds(root / "spam"), _kinds(root / "nice")

    print(f"\nspamassassin/spam: {dict(spam)}; spamassassin/nice: {dict(ham)}")
    assert spam["spam"] >= 7  # X-Spam-Flag/-Status and the GTUBE files
    assert ham["spam"] == 0
    assert ham["list"] >= 10  # the newsletters and list mail with List-Id or Precedence


def test_newsletters_with_a_list_id_are_list_mail() -> None:
    root = _corpora()
    for rel in (
        "spamassassin/nice/001",
        "spamassassin/nice/mailman_message.txt",
        "spamassassin/nice/base64.txt",
    ):
        msg = parse_message((root / rel).read_bytes())
        assert msg.header("list-id") is not None, rel
        auto = classify_automatic(msg, ["ccm@unog.ch"])
        assert auto is not None and auto.kind == "list", rel


def test_a_hostile_bounce_is_read_in_linear_time() -> None:
    """Long lines of address characters, dashes and intros: no regular expression runs long."""
    body = (
        "Delivery has failed to these recipients or groups: "
        + "a" * 200_000
        + "\n"
        + ("-" * 5_000 + "\n") * 50
        + ("<" + "b" * 3_000 + "@" + "c." * 3_000 + "\n") * 30
        + "x" * 100_000
    )
    msg = robot("Undeliverable: Reminder", body)
    start = time.perf_counter()

    auto = classify_automatic(msg)

    assert auto is not None and auto.kind == "bounce"
    assert time.perf_counter() - start < 2.0


def test_our_own_mail_coming_back_is_recognised_by_its_loop_header_or_message_id() -> None:
    from email.message import EmailMessage

    from parsers.message import parse_message
    from worker.compose import stable_message_id

    looped = EmailMessage()
    looped["From"] = "forwarder@mfa.example"
    looped["Subject"] = "Fwd: a mission's note"
    looped["X-Loop"] = "ccm@unog.ch"
    looped.set_content("forwarded")
    reason = auto_reply_reason(parse_message(looped.as_bytes()), ["ccm@unog.ch"])
    assert reason is not None and "X-Loop" in reason

    ours = EmailMessage()
    ours["From"] = "Someone <someone@mfa.example>"
    ours["Subject"] = "Delegation"
    ours["Message-ID"] = stable_message_id("ack:CCM-2017-00001", "ccm@unog.ch")
    ours.set_content("text")
    reason = auto_reply_reason(parse_message(ours.as_bytes()), ["ccm@unog.ch"])
    assert reason is not None and "Message-ID is ours" in reason
    # A colleague at the same domain writes with an ordinary Message-ID: a person.
    del ours["Message-ID"]
    ours["Message-ID"] = "<ABC123@unog.ch>"
    assert auto_reply_reason(parse_message(ours.as_bytes()), ["ccm@unog.ch"]) is None


# =============================================================================
# Robots that send no header: what they say, and what they answer
# =============================================================================

OUR_ACK_SUBJECT = "Accusé de réception CCM/7MSP/DEL/CHE/001 : Composition de la délégation — Suisse"


def reply(
    body: str,
    subject: str = f"RE: {OUR_ACK_SUBJECT}",
    files: tuple[tuple[str, bytes, str], ...] = (),
    mails: tuple[bytes, ...] = (),
) -> ParsedMessage:
    """A mission's answer to our acknowledgement, with no robot header at all."""
    mail = EmailMessage()
    mail["From"] = "Mission permanente de la Suisse <gen.vertretung@eda.admin.ch>"
    mail["To"] = "ccm@unog.ch"
    mail["Subject"] = subject
    mail["In-Reply-To"] = "<ccm.0123456789abcdef01234567@unog.ch>"
    mail.set_content(body)
    for name, data, ctype in files:
        maintype, subtype = ctype.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    for raw in mails:
        mail.add_attachment(email.message_from_bytes(raw, policy=email.policy.default))
    return parse_message(mail.as_bytes())


QUOTED_ACK = (
    "\n\n-----Original Message-----\nFrom: CCM Secretariat <ccm@unog.ch>\n"
    f"Subject: {OUR_ACK_SUBJECT}\n\n"
    "Cet accusé de réception a été envoyé automatiquement ; il ne requiert pas de signature.\n"
)
PDF = ("Délégation Suisse corrigée.pdf", b"%PDF-1.4 list", "application/pdf")


@pytest.mark.parametrize(
    "body",
    [
        "Out of office / Absence du bureau\n\nI am out of the office until 4 September.",
        "Absence du bureau\n\nJe suis absent du bureau jusqu'au 4 septembre.",
        "Thank you for your message. I am currently out of the office with limited access to "
        "e-mail and will reply on my return.",
        "Thank you for your email. I’m on annual leave until 4 September; for urgent matters "
        "please contact the Mission.",
        "Bonjour, je suis actuellement en congé jusqu'au 4 septembre. En mon absence, veuillez "
        "écrire à la Mission.",
        "Gracias por su mensaje. Me encuentro fuera de la oficina hasta el 4 de septiembre, con "
        "acceso limitado al correo.",
        "Estoy de vacaciones; a mi regreso responderé a su mensaje.",
    ],
)
def test_a_vacation_reply_without_any_header_is_known_by_its_words(body: str) -> None:
    auto = classify_automatic(reply(body + QUOTED_ACK), ["ccm@unog.ch"])

    assert auto is not None and auto.kind == "auto_reply"
    assert auto.reason.startswith("out-of-office text")


def test_a_vacation_reply_that_sends_back_what_it_got_is_still_a_vacation_reply() -> None:
    ack = EmailMessage()
    ack["From"] = "CCM Secretariat <ccm@unog.ch>"
    ack["Subject"] = OUR_ACK_SUBJECT
    ack.set_content("Le Secrétariat accuse réception de la composition de la délégation.")
    msg = reply("Out of office / Absence du bureau\n\nI am away.", mails=(ack.as_bytes(),))

    auto = classify_automatic(msg, ["ccm@unog.ch"])

    assert auto is not None and auto.reason.startswith("out-of-office text")


@pytest.mark.parametrize(
    ("body", "files"),
    [
        # Someone else's absence is news, not a responder.
        ("Thank you. Please note that the Ambassador will be out of the office until Monday.", ()),
        # Away, but nothing of what every responder adds (until when, whom to write to).
        ("Thanks, noted. I am away next week so my colleague will follow this.", ()),
        # A person on leave who still sends the list: a submission, whatever else it says.
        (
            "I am out of the office from tomorrow until 4 September; please find attached the "
            "corrected list of our delegation.",
            (PDF,),
        ),
        # A person answering a vacation reply quotes it below their own words.
        (
            "Dear colleague, the list is attached to our note of yesterday.\n\n"
            "-----Original Message-----\nFrom: Anna Roth\n\n"
            "I am out of the office until 4 September with limited access to e-mail.",
            (),
        ),
        ("Bien reçu, merci beaucoup.\n> Je suis absent du bureau jusqu'au 4 septembre.", ()),
    ],
)
def test_a_person_who_mentions_an_absence_is_not_a_vacation_reply(
    body: str, files: tuple[tuple[str, bytes, str], ...]
) -> None:
    assert auto_reply_reason(reply(body, files=files), ["ccm@unog.ch"]) is None


@pytest.mark.parametrize(
    "subject",
    [
        "Acknowledgement of receipt CCM/7MSP/DEL/XXX/001: Details of delegation — Ireland",
        "Acknowledgment of receipt: your message of 14 August",
        "Accusé de réception CCM/7MSP/DEL/XXX/001 : Composition de la délégation",
        "Acuse de recibo CCM/7MSP/DEL/XXX/001: Composición de la delegación",
        "[Registry] Confirmation of receipt",
    ],
)
def test_an_acknowledgement_of_receipt_is_a_robots_answer(subject: str) -> None:
    msg = mission_note(subject, From="Registry <registry@dfa.ie>")

    auto = classify_automatic(msg, ["ccm@unog.ch"])

    assert auto is not None and auto.kind == "auto_reply"
    assert auto.reason.startswith("acknowledgement-of-receipt subject")


def test_a_person_answering_our_acknowledgement_is_not_one() -> None:
    msg = reply("Bien reçu, merci beaucoup." + QUOTED_ACK)

    assert auto_reply_reason(msg, ["ccm@unog.ch"]) is None


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_our_own_acknowledgement_sent_back_without_our_headers_is_automatic(lang: str) -> None:
    """A robot that copies our acknowledgement under its own name, headers and subject."""
    from datetime import UTC, datetime

    from worker.compose import compose_ack

    out = compose_ack(
        key="ack:CCM/7MSP/DEL/IRL/001",
        lang=lang,
        reference="CCM/7MSP/DEL/IRL/001",
        kind="delegation",
        state_name="Ireland",
        received=datetime(2017, 8, 14, 7, 30, tzinfo=UTC),
        files=[],
        recipient="genevapmun@dfa.ie",
        original_subject="7MSP delegation",
        original_message_id=None,
        original_references=(),
        service_address="ccm@unog.ch",
        service_name="CCM Secretariat",
        now=datetime(2017, 8, 14, 7, 30, tzinfo=UTC),
    )
    ours = email.message_from_bytes(out.raw, policy=email.policy.default)
    body = ours.get_body(("plain",))
    assert body is not None
    msg = reply(body.get_content(), subject="RE: Delegation of Ireland")

    auto = classify_automatic(msg, ["ccm@unog.ch"])

    assert auto is not None and auto.kind == "auto_reply"
    assert auto.reason.startswith("says it was sent automatically")


@pytest.mark.parametrize(
    "body",
    [
        "This is an automated message from the registry. Please do not reply to this e-mail.",
        "Ce message a été généré automatiquement, merci de ne pas répondre à ce message.",
        "Este mensaje ha sido generado automáticamente. Por favor, no responda a este correo.",
    ],
)
def test_a_mail_that_says_it_was_sent_automatically_is(body: str) -> None:
    reason = auto_reply_reason(reply(body), ["ccm@unog.ch"])

    assert reason is not None and reason.startswith("says it was sent automatically")


def test_a_scan_to_mail_with_the_scanned_note_is_a_submission_not_a_robot() -> None:
    """Copiers write "sent automatically" too; what they send is the mission's document."""
    msg = reply(
        "This e-mail was sent automatically by the Xerox WorkCentre of the Mission.",
        subject="Scan 2017-08-14",
        files=(("scan0001.pdf", b"%PDF-1.4 scan", "application/pdf"),),
    )

    assert auto_reply_reason(msg, ["ccm@unog.ch"]) is None
