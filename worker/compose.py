"""Outgoing mail, rendered from ``templates/<name>.<lang>.{subject,body}.txt``.

Rendering is pure: values in, bytes out. Sending is ``mailer``'s business.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default
from email.utils import format_datetime, formataddr
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined

LANGUAGES = ("en", "fr", "es")
GENEVA = ZoneInfo("Europe/Zurich")

KIND_LABELS = {
    "delegation": {
        "en": "Details of delegation",
        "fr": "Composition de la délégation",
        "es": "Composición de la delegación",
    },
    "article7": {
        "en": "Article 7 transparency report",
        "fr": "Rapport de transparence au titre de l'article 7",
        "es": "Informe de transparencia en virtud del artículo 7",
    },
    "other": {"en": "Correspondence", "fr": "Correspondance", "es": "Correspondencia"},
}


@cache  # one environment per process: a new one compiled every template again, every mail
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("worker", "templates"),
        undefined=StrictUndefined,  # a missing value is a bug, not an empty line in a mail
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - plain-text mail, never HTML
    )


def render(name: str, lang: str, **values: object) -> tuple[str, str]:
    """(subject, body) of template ``name`` in ``lang`` (English when we have no such language)."""
    lang = lang if lang in LANGUAGES else "en"
    env = _templates()
    subject = env.get_template(f"{name}.{lang}.subject.txt").render(**values)
    body = env.get_template(f"{name}.{lang}.body.txt").render(**values)
    return " ".join(subject.split()), body


def stable_message_id(key: str, service_address: str) -> str:
    """The same outbox key always gives the same Message-ID, so a resend is recognisable."""
    domain = service_address.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"<ccm.{digest}@{domain}>"


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def mark_automatic(msg: EmailMessage, auto_submitted: str, service_address: str) -> None:
    """Every mail we send says it was sent by a robot, so that robots do not answer it (RFC
    3834 ``Auto-Submitted``; Exchange's ``X-Auto-Response-Suppress``) and, if it comes back to
    us, we know it for ours (``X-Loop``)."""
    # auto-replied (our answers) or auto-generated (the rest)
    set_simple_header(msg, "Auto-Submitted", auto_submitted)
    set_simple_header(msg, "X-Auto-Response-Suppress", "All")
    set_simple_header(msg, "X-Loop", service_address)


_PLAIN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")  # printable ASCII, single spaces


# One bare address, a dot-atom on both sides of the @: the email package writes it as it is.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def set_simple_header(
    msg: EmailMessage, name: str, value: str, plain: re.Pattern[str] = _PLAIN
) -> None:
    """``msg[name] = value`` for a value that needs neither encoding nor folding (``plain``
    says which: printable ASCII by default, ``PLAIN_ADDRESS`` for an address header), without
    the parse that ``msg[name] =`` does and the fold that writing it does again (they were
    most of an acknowledgement's composing time); any other value goes that way. The bytes
    written are the same (tests/test_acknowledgements.py)."""
    if len(name) + 2 + len(value) <= 78 and plain.fullmatch(value):
        msg.set_raw(name, value)
    else:
        msg[name] = value


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    name: str
    sha256: str
    size: int

    @property
    def size_text(self) -> str:
        return size_text(self.size)


@dataclass(frozen=True, slots=True)
class Outgoing:
    recipient: str
    subject: str
    message_id: str
    raw: bytes


def renewed(raw: bytes, key: str, service_address: str, now: datetime) -> Outgoing:
    """A mail we sent, sent again as a new one: the same words, a new Date and a Message-ID
    of its own (a server or a client that saw the first would drop a second with the same)."""
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    message_id = stable_message_id(key, service_address)
    msg.replace_header("Message-ID", message_id)
    msg.replace_header("Date", format_datetime(now))
    subject = str(msg["Subject"] or "")
    recipient = str(msg["To"] or "")
    return Outgoing(recipient, subject, message_id, msg.as_bytes(policy=SMTP_POLICY))


def compose_ack(
    *,
    key: str,
    lang: str,
    reference: str,
    kind: str,
    state_name: str,
    received: datetime,
    files: list[ReceivedFile],
    recipient: str,
    original_subject: str,
    original_message_id: str | None,
    original_references: tuple[str, ...],
    service_address: str,
    service_name: str,
    now: datetime,
    deadline: date | None = None,
) -> Outgoing:
    """The acknowledgement of one submission; ``deadline`` adds "on time" or "N days late"."""
    lang = lang if lang in LANGUAGES else "en"
    received_day = received.astimezone(GENEVA).date()
    subject, body = render(
        "ack",
        lang,
        reference=reference,
        kind_label=KIND_LABELS.get(kind, KIND_LABELS["other"])[lang],
        state_name=state_name,
        received_local=received.astimezone(GENEVA).strftime("%Y-%m-%d %H:%M"),
        received_utc=received.strftime("%Y-%m-%d %H:%M"),
        original_subject=original_subject or "—",
        files=files,
        service_address=service_address,
        deadline=deadline.isoformat() if deadline else "",
        late_days=(received_day - deadline).days if deadline else 0,
    )
    message_id = stable_message_id(key, service_address)
    msg = EmailMessage()
    msg["From"] = formataddr((service_name, service_address))
    set_simple_header(msg, "To", recipient, PLAIN_ADDRESS)
    msg["Subject"] = subject
    set_simple_header(msg, "Date", format_datetime(now))
    set_simple_header(msg, "Message-ID", message_id)
    if original_message_id:
        set_simple_header(msg, "In-Reply-To", original_message_id)
        set_simple_header(
            msg, "References", " ".join([*original_references[-10:], original_message_id])
        )
    mark_automatic(msg, "auto-replied", service_address)
    set_simple_header(msg, "X-CCM-Reference", reference)
    msg.set_content(body)
    set_simple_header(
        msg, "Content-Language", lang
    )  # after set_content(), which replaces the Content-* headers
    # CRLF line ends: the form SMTP and IMAP APPEND both expect, byte for byte.
    raw = msg.as_bytes(policy=SMTP_POLICY)
    return Outgoing(recipient=recipient, subject=subject, message_id=message_id, raw=raw)
