"""How much one message may ask of the service, and what it means to ask for more.

A message over any of these limits is not half-read: the worker quarantines it, with the
limit in the reason, and the secretary sees it in the digest. The checks run in order of
cost: the raw bytes before anything is parsed (size, header block, MIME nesting), the parsed
message before any attachment is read (count, size of each), and the readers themselves
(zip entries, inflated size and ratio, archives inside archives, PDF pages, OCR time), whose
results say when they stopped at a limit (:func:`over_limit`). The child process that runs
the readers adds the last two: time and memory for the whole message.

Pure: bytes and records in, a reason or None out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

KB = 1024
MB = 1024 * 1024

_PREFIX = "over a limit: "


@dataclass(frozen=True, slots=True)
class Limits:
    """The defaults take any mission's mail (a 40-page scanned report, a workbook, a zip of
    forms) with room to spare; every one is a setting (``CCM_MAX_…``, README)."""

    message_bytes: int = 50 * MB  # the raw message as the server holds it
    header_bytes: int = 256 * KB  # the top header block (a long Received chain is ~20 KB)
    mime_depth: int = 20  # multiparts and attached mails inside one another
    attachments: int = 100  # files in one message (inline images counted)
    attachment_bytes: int = 30 * MB  # one file, decoded
    zip_entries: int = 1_000  # files listed in one archive
    zip_bytes: int = 200 * MB  # what one archive inflates to
    zip_ratio: int = 200  # ... per byte it takes packed (a zip bomb: thousands to one)
    zip_depth: int = 2  # archives opened inside archives: pack.zip/inner.zip/list.pdf
    pdf_pages: int = 500  # pages in one PDF
    ocr_seconds: float = 60.0  # for OCR of one page

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"Limits.{f.name} must be positive, not {value!r}")


class OverLimit(Exception):
    """The message asks for more than a limit allows; ``str(exc)`` is the reason to record."""


def over_limit(what: str) -> str:
    """The reason for a file or message that a limit stopped, in the form
    :func:`is_over_limit` recognises (it travels as a plain string, through the pipe from
    the extraction child included)."""
    return what if what.startswith(_PREFIX) else _PREFIX + what


def is_over_limit(reason: str | None) -> bool:
    return reason is not None and reason.startswith(_PREFIX)


def in_file(name: str, reason: str) -> str:
    """``over a limit: pack.zip: refused: …`` for a ``reason`` found in file ``name``."""
    return over_limit(f"{name}: {reason.removeprefix(_PREFIX)}")


def size(n: float) -> str:
    """``31.2 MB``, ``512 KB``, ``900 bytes``: for reasons a person reads."""
    if n >= MB:
        return f"{n / MB:.1f} MB".replace(".0 MB", " MB")
    if n >= KB:
        return f"{n / KB:.0f} KB"
    return f"{n:.0f} bytes"


# --------------------------------------------------------------------------- raw bytes

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.DOTALL)
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)


def header_size(raw: bytes) -> int:
    """Bytes of the top header block: up to the first empty line, or all of a message that
    has none."""
    end = _HEADER_END.search(raw)
    return end.start() if end else len(raw)


def _content_type(block: list[bytes]) -> bytes:
    """The unfolded Content-Type field of a header block, lower-cased; b'' if none."""
    value: list[bytes] | None = None
    for line in block:
        if line[:1] in (b" ", b"\t"):
            if value is not None:
                value.append(line)
            continue
        if value is not None:
            break
        match = _FIELD.match(line)
        if match and match.group(1).lower() == b"content-type":
            value = [match.group(2)]
    return b" ".join(v.strip() for v in value).lower() if value else b""


def mime_depth(raw: bytes, *, stop_above: int) -> int:
    """How deeply multiparts and attached mails nest, read from the raw lines (a plain
    message is 0), without building the tree: the parser and every walk over the tree
    recurse, and a few kilobytes of nested boundaries would exhaust the stack. Counting
    stops once past ``stop_above``.

    A line ``--b`` or ``--b--`` closes whatever was opened inside ``b``; a part's header
    block that declares a multipart with a boundary opens a level, ``message/rfc822`` opens
    one whose body starts with another header block. Inside a body only the lines that start
    with ``--`` matter, and the others are skipped without being cut out (a 35 MB attachment
    is half a million lines).
    """
    stack: list[bytes | None] = []  # boundaries, None for an attached mail's level
    deepest = 0
    in_header, block = True, []
    pos, size = 0, len(raw)
    while pos < size:
        if not in_header and not raw.startswith(b"--", pos):
            pos = _next_delimiter_line(raw, pos)
            if pos < 0:
                break
        line, pos = _line_at(raw, pos)
        if in_header:
            if line.strip():
                block.append(line)
                continue
            ctype = _content_type(block)
            in_header, block = False, []
            if ctype.startswith(b"multipart/"):
                match = _BOUNDARY.search(ctype)
                if match:
                    stack.append(match.group(1) or match.group(2))
            elif ctype.startswith((b"message/rfc822", b"message/global")):
                stack.append(None)
                in_header = True
            deepest = max(deepest, len(stack))
            if deepest > stop_above:
                return deepest
            continue
        token = line.rstrip()[2:]
        closing = token.endswith(b"--")
        for level in range(len(stack) - 1, -1, -1):
            boundary = stack[level]
            if boundary is None:
                continue
            if token == boundary or (closing and token[:-2] == boundary):
                del stack[level + 1 :]
                if closing:
                    stack.pop()
                else:
                    in_header = True  # a new part: its header block follows
                break
    return deepest


def _line_at(raw: bytes, pos: int) -> tuple[bytes, int]:
    """The line that starts at ``pos`` (without its end: CR LF, LF or CR, as
    ``bytes.splitlines`` cuts) and where the next one starts."""
    newline = raw.find(b"\n", pos)
    stop = len(raw) if newline < 0 else newline
    carriage = raw.find(b"\r", pos, stop)
    if carriage >= 0:
        after = carriage + 2 if raw.startswith(b"\r\n", carriage) else carriage + 1
        return raw[pos:carriage], after
    return raw[pos:stop], stop + 1


def _next_delimiter_line(raw: bytes, pos: int) -> int:
    """Where the next line that starts with ``--`` begins, after ``pos``; -1 if none does."""
    at = raw.find(b"-", pos)  # one byte: a memchr, through a base64 body (no "-") at once
    while at >= 0:
        if raw.startswith(b"-", at + 1) and raw[at - 1 : at] in (b"\n", b"\r"):
            return at
        at = raw.find(b"-", at + 1)
    return -1


def check_raw(raw: bytes, limits: Limits) -> str | None:
    """Why these bytes are over a limit, before any parsing; None if they are not."""
    if len(raw) > limits.message_bytes:
        return over_limit(f"the message is {size(len(raw))} (limit {size(limits.message_bytes)})")
    head = header_size(raw)
    if head > limits.header_bytes:
        return over_limit(f"the header block is {size(head)} (limit {size(limits.header_bytes)})")
    depth = mime_depth(raw, stop_above=limits.mime_depth)
    if depth > limits.mime_depth:
        return over_limit(f"MIME parts nested more than {limits.mime_depth} deep")
    return None


def check_attachments(sizes: list[tuple[str, int]], limits: Limits) -> str | None:
    """Why a message's attachments, as (name, decoded bytes), are over a limit; or None."""
    if len(sizes) > limits.attachments:
        return over_limit(f"{len(sizes)} attachments (limit {limits.attachments})")
    for name, n in sizes:
        if n > limits.attachment_bytes:
            return over_limit(
                f"attachment {name!r} is {size(n)} (limit {size(limits.attachment_bytes)})"
            )
    return None
