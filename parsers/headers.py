"""A quick look at a message's headers, for the intake row, before any real parsing."""

from __future__ import annotations

from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

MAX_HEADER_BYTES = 256 * 1024  # a header block larger than this is read in part


@dataclass(frozen=True, slots=True)
class Peek:
    message_id: str | None
    from_addr: str
    subject: str


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value  # an unknown charset: keep the encoded form rather than nothing


def peek(raw: bytes) -> Peek:
    """Message-ID, sender and subject; never raises on malformed input."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw[: end if 0 <= end < MAX_HEADER_BYTES else MAX_HEADER_BYTES]
    msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    message_id = str(msg.get("Message-ID") or "").strip() or None
    addresses = getaddresses([str(v) for v in msg.get_all("From", [])])
    from_addr = next((a for _, a in addresses if "@" in a), "").strip().lower()
    subject = " ".join(_decoded(msg.get("Subject")).split())
    return Peek(message_id, from_addr, subject[:1000])
