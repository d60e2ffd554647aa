"""Acknowledgements: in the mission's language, with what was received, safe against loops."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest

from worker.compose import (
    LANGUAGES,
    PLAIN_ADDRESS,
    ReceivedFile,
    compose_ack,
    set_simple_header,
    stable_message_id,
)

RECEIVED = datetime(2017, 8, 14, 7, 30, tzinfo=UTC)


def ack(language: str, **overrides: object) -> tuple[EmailMessage, str]:
    values: dict[str, object] = {
        "key": "ack:CCM/7MSP/DEL/FRA/001",
        "lang": language,
        "reference": "CCM/7MSP/DEL/FRA/001",
        "kind": "delegation",
        "state_name": {"en": "France", "fr": "France", "es": "Francia"}[language],
        "received": RECEIVED,
        "files": [ReceivedFile("Délégation.pdf", "ab" * 32, 48_213)],
        "recipient": "dfra.geneve@diplomatie.gouv.fr",
        "original_subject": "7MSP délégation",
        "original_message_id": "<orig@diplomatie.gouv.fr>",
        "original_references": ("<older@x>",),
        "service_address": "ccm@unog.ch",
        "service_name": "CCM Secretariat",
        "now": RECEIVED,
    }
    values.update(overrides)
    out = compose_ack(**values)  # type: ignore[arg-type]
    msg = message_from_bytes(out.raw, policy=default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None
    return msg, body.get_content()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_says_reference_state_files_hashes_and_time(lang: str) -> None:
    msg, body = ack(lang)
    assert "CCM/7MSP/DEL/FRA/001" in str(msg["Subject"]) and "CCM/7MSP/DEL/FRA/001" in body
    assert "Délégation.pdf" in body and "ab" * 32 in body and "47.1 KB" in body
    assert "2017-08-14 09:30" in body  # Geneva time, summer
    assert "2017-08-14 07:30" in body  # and UTC
    assert ("Francia" if lang == "es" else "France") in body


def test_the_subject_is_in_the_missions_language() -> None:
    subjects = {lang: str(ack(lang)[0]["Subject"]) for lang in LANGUAGES}
    assert {lang: ack(lang)[0]["Content-Language"] for lang in LANGUAGES} == {
        "en": "en",
        "fr": "fr",
        "es": "es",
    }
    assert subjects["en"].startswith("Acknowledgement of receipt")
    assert subjects["fr"].startswith("Accusé de réception")
    assert subjects["es"].startswith("Acuse de recibo")


def test_it_threads_under_the_original_and_marks_itself_automatic() -> None:
    msg, _ = ack("en")
    assert msg["In-Reply-To"] == "<orig@diplomatie.gouv.fr>"
    assert msg["References"] == "<older@x> <orig@diplomatie.gouv.fr>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Loop"] == "ccm@unog.ch"
    assert msg["To"] == "dfra.geneve@diplomatie.gouv.fr"


def test_the_message_id_is_stable_per_key_and_different_between_keys() -> None:
    first, _ = ack("en")
    again, _ = ack("fr")
    expected = stable_message_id("ack:CCM/7MSP/DEL/FRA/001", "ccm@unog.ch")
    assert first["Message-ID"] == again["Message-ID"] == expected
    other, _ = ack("en", key="ack:CCM/7MSP/DEL/FRA/002")
    assert other["Message-ID"] != first["Message-ID"]
    assert str(first["Message-ID"]).endswith("@unog.ch>")


def test_an_unknown_language_falls_back_to_english() -> None:
    msg, _ = ack("en", lang="de")
    assert str(msg["Subject"]).startswith("Acknowledgement of receipt")


def test_a_message_without_attachments_says_its_text_was_filed() -> None:
    _, body = ack("es", files=[])
    assert "No se recibieron documentos adjuntos" in body


@pytest.mark.parametrize(
    ("received", "says"),
    [
        (datetime(2017, 8, 18, 21, 30, tzinfo=UTC), "received on time"),  # 23:30 in Geneva
        (datetime(2017, 8, 18, 22, 30, tzinfo=UTC), "received 1 day(s) after the deadline"),
        (datetime(2017, 8, 21, 9, 0, tzinfo=UTC), "received 3 day(s) after the deadline"),
    ],
)
def test_it_says_whether_the_submission_came_in_time_by_the_geneva_calendar(
    received: datetime, says: str
) -> None:
    _, body = ack("en", received=received, deadline=date(2017, 8, 18))
    assert "Deadline:       2017-08-18 — " + says in body


def test_without_a_known_deadline_it_says_nothing_about_time() -> None:
    _, body = ack("en")
    assert "Deadline" not in body and "We have understood this message as" in body


@pytest.mark.parametrize(
    "value",
    [
        "auto-replied",
        "CCM/7MSP/DEL/FRA/001",
        "<ccm.0123456789abcdef01234567@unog.ch>",
        "Mon, 14 Aug 2017 07:30:00 +0000",
        "x" * 70,  # too long for one line: folded the usual way
        "Délégation",  # not ASCII: encoded the usual way
        "two  spaces",
        " leading",
    ],
)
def test_a_plain_header_is_written_exactly_as_the_email_package_writes_it(value: str) -> None:
    """The shortcut that skips the parse of simple headers gives the same bytes."""
    shortcut, usual = EmailMessage(), EmailMessage()
    set_simple_header(shortcut, "X-Test", value)
    usual["X-Test"] = value
    assert shortcut.as_bytes(policy=SMTP) == usual.as_bytes(policy=SMTP)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("In-Reply-To", "<CAF=abc.123+x@mail.gmail.com>"),
        ("References", "<a.1@diplomatie.gouv.fr> <ccm.0123456789abcdef@unog.ch>"),
        ("References", " ".join(f"<id.{n}@example.org>" for n in range(6))),  # folded
    ],
)
def test_reply_headers_are_written_exactly_as_the_email_package_writes_them(
    name: str, value: str
) -> None:
    shortcut, usual = EmailMessage(), EmailMessage()
    set_simple_header(shortcut, name, value)
    usual[name] = value
    assert shortcut.as_bytes(policy=SMTP) == usual.as_bytes(policy=SMTP)


@pytest.mark.parametrize(
    "address",
    [
        "mission.france@diplomatie.gouv.fr",
        "o'brien+ccm@example.org",
        "a_b-c@mfa.gov.ng",
        "a..b@example.org",  # not a dot-atom: quoted the usual way
        "josé@example.org",  # not ASCII: the usual way
        "x@[127.0.0.1]",  # a domain literal: the usual way
        "a" * 70 + "@example.org",  # too long for one line: the usual way
    ],
)
def test_an_address_is_written_exactly_as_the_email_package_writes_it(address: str) -> None:
    shortcut, usual = EmailMessage(), EmailMessage()
    set_simple_header(shortcut, "To", address, PLAIN_ADDRESS)
    usual["To"] = address
    assert shortcut.as_bytes(policy=SMTP) == usual.as_bytes(policy=SMTP)


def test_a_header_value_with_a_line_break_is_refused_not_written_raw() -> None:
    with pytest.raises(ValueError):
        set_simple_header(EmailMessage(), "X-Test", "x\r\nBcc: victim@example.org")
