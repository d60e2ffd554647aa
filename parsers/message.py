"""One raw mail in, one frozen :class:`ParsedMessage` out.

mail-parser reads the bytes and gives us what it is good at: hardened address parsing,
the date, and the MIME defects it found. The MIME tree it built is then walked here, not
through its ``attachments`` list, because that list names unnamed parts with random strings
(not reproducible), re-encodes payloads as base64 text, returns attached messages as text
and lifts the body parts of attached messages into the main body. Whatever mail-parser
raises on, the stdlib ``email`` package (``policy.default`` for addresses, ``compat32`` for
the tree) reads instead, and the failure is kept as a defect. Only bytes that hold no
header at all raise :class:`UnparseableMessage`.

Large base64 bodies (an attached report of megabytes) are decoded straight from the bytes
before either parser sees the message, and put back by the walk (:class:`Lifted`): the stdlib
parser holds such a body several times over, and reads it line by line.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.charset
import email.parser
import email.policy
import email.utils
import hashlib
import html
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from html.parser import HTMLParser

import mailparser

MAX_ATTACHMENTS = 200
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MAX_PARTS = 5_000  # MIME parts walked; a message with more is a bomb, not a note verbale
MAX_MESSAGE_DEPTH = 8  # attached messages inside attached messages
MAX_TEXT_CHARS = 2_000_000
MAX_DEFECTS = 50
MAX_NAME_CHARS = 120
MAX_NAME_BYTES = 240  # 120 four-byte characters would overflow the 255-byte file name limit
MAX_FOLD_COST = 4_000**2  # see _fold_cost

# Parts that only carry report machinery (bounces, read receipts, abuse reports): kept out
# of both the body and the attachments unless the sender gave them a file name.
_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
    }
)
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})

# Extensions for parts that arrive without a usable name. A fixed table, because
# ``mimetypes`` reads the host's /etc/mime.types and would make names machine-dependent.
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/msword": ".doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/rtf": ".rtf",
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
    "application/vnd.ms-outlook": ".msg",
    "application/ms-tnef": ".dat",
    "application/vnd.ms-tnef": ".dat",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/pgp-signature": ".asc",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "text/rtf": ".rtf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/tiff": ".tif",
}

_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{port}{n}" for port in ("com", "lpt") for n in "0123456789¹²³"}  # COM¹ is one too
)


class UnparseableMessage(Exception):
    """The bytes hold nothing usable as a mail; ``str(e)`` says why."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    safe_name: str
    content_type: str
    data: bytes
    sha256: str
    inline: bool


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message_id: str | None
    subject: str
    from_addr: str
    from_name: str
    reply_to: tuple[str, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    text: str
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)


# --------------------------------------------------------------------------- text decoding


def _codec(charset: str | None) -> str | None:
    """A Python codec name for a MIME charset, or None when Python has no text codec for it."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower().split("*", 1)[0]
    name = email.charset.ALIASES.get(name, name)
    if name in ("unknown-8bit", "x-unknown", "8bit", "binary"):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # bytes.decode refuses bytes-to-bytes codecs (base64, zlib…) anyway; say no up front.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, str | None]:
    """Decode text bytes, best effort: the declared charset, then BOMs, UTF-8, Windows-1252.

    Returns the text and, when the declared charset could not be used, a short note why.
    """
    codec = _codec(charset)
    if codec is not None:
        try:
            return data.decode(codec), None
        except (UnicodeError, LookupError):
            pass
    note = f"charset {charset!r} failed" if charset else None
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(name), note
            except UnicodeError:
                break
    try:
        return data.decode("utf-8"), note
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), note


def _undo_surrogates(value: str) -> str:
    """Headers read from bytes keep raw 8-bit octets as surrogates: decode them for real."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    raw = value.encode("utf-8", errors="surrogateescape")
    return decode_bytes(raw)[0]


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


def _decode_word(encoding: str, text: str) -> bytes:
    if encoding in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return text.encode("ascii", errors="replace")
    out = bytearray()
    i = 0
    raw = text.replace("_", " ")
    while i < len(raw):
        ch = raw[i]
        if ch == "=" and _HEX2.fullmatch(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.extend(ch.encode("utf-8", errors="surrogateescape"))
        i += 1
    return bytes(out)


def decode_header_text(value: object) -> str:
    """A header value as readable text: unfolded, 8-bit and RFC 2047 encoded words decoded.

    Encoded words are found anywhere (mailers put them inside quotes and words, against
    the RFC), and adjacent words in one charset are joined as bytes before decoding, since
    some mailers split a multi-byte character across two words.
    """
    text = _undo_surrogates(str(value))
    text = _FOLD.sub("", text)
    pieces: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            pieces.append(decode_bytes(bytes(pending), pending_charset)[0])
        pending = bytearray()
        pending_charset = None

    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        if between and not (pending_charset is not None and between.isspace()):
            flush()
            pieces.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        if pending_charset is not None and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.extend(_decode_word(match.group(2), match.group(3)))
        pos = match.end()
    flush()
    pieces.append(text[pos:])
    return _CONTROL.sub(" ", "".join(pieces)).strip()


class _TextFromHtml(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
    _BREAK = frozenset(
        {"br", "p", "div", "tr", "li", "ul", "ol", "table", "blockquote", "pre", "hr"}
        | {"section", "article", "header", "footer", "dt", "dd"}
        | {f"h{level}" for level in range(1, 7)}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.skipping = 0  # an unclosed <head> or <title> must not hide the whole body
        elif tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML document: tags dropped, entities decoded, blocks on lines."""
    parser = _TextFromHtml()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):  # HTMLParser's own complaints about broken markup
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    text = "".join(parser.parts).replace("\xa0", " ")
    if not text.strip() and markup.strip():
        # An unclosed <title>, <script> or <style> swallowed the rest: strip tags crudely.
        text = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------- file names


def _extension_for(content_type: str) -> str:
    return _EXTENSIONS.get(content_type, ".bin")


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16 or not ext.isalnum():
        return name, ""
    return stem, "." + ext


def _fit(stem: str, tail: str) -> str:
    """``stem + tail`` within 120 characters and 240 UTF-8 bytes, cutting the stem only."""
    stem = stem[: max(0, MAX_NAME_CHARS - len(tail))]
    while stem and len((stem + tail).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem.rstrip(" .") or "_") + tail


def _shorten(name: str) -> str:
    short = _fit(*_split_extension(name))
    # A cut can leave what now reads as an extension ("… ..0"): settle, so that the name
    # comes out the same when it is made safe again (an attached mail's files are).
    while (again := _fit(*_split_extension(short))) != short:
        short = again
    return short


def safe_filename(filename: str, index: int, content_type: str) -> str:
    """A file-system-safe version of ``filename``; ``attachment-<index><ext>`` if nothing is left.

    The last path component only (``/``, ``\\`` and drive letters are directory parts),
    NFC, no control or format characters (so no right-to-left override spoofing
    ``invoice\u202efdp.exe``), none of ``<>:"|?*``, no leading dots, at most 120 characters
    and 240 UTF-8 bytes, the extension kept; Windows device names get a ``_`` prefix.
    """
    name = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in filename
        if unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn")
    )
    name = unicodedata.normalize("NFC", name)  # after: "U\ud7fc\u0300" loses U+D7FC, is "Ù"
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"^[A-Za-z]:", "", name)
    name = re.sub(r'[<>:"|?*]', "_", name)
    spaced = re.sub(r"\s+", " ", name).strip()
    # Dots and spaces go from both ends together: ".. .pdf" must not leave a hidden ".pdf".
    name = spaced.strip(" .")
    if not name.strip("._ "):
        return f"attachment-{index}{_extension_for(content_type)}"
    if spaced.startswith(".") and "." not in name and len(name) <= 16 and name.isalnum():
        name = f"attachment-{index}.{name}"  # ".pdf" is an extension without a name: keep it one
    if name.split(".", 1)[0].strip().lower() in _WINDOWS_RESERVED:
        name = "_" + name
    return _shorten(name)


def _unique(name: str, taken: set[str]) -> str:
    """Two attachments called ``scan.pdf`` must not overwrite each other in the archive."""
    if name.lower() not in taken:
        taken.add(name.lower())
        return name
    stem, ext = _split_extension(name)
    n = 2
    while True:
        candidate = _fit(stem, f" ({n}){ext}")
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
        n += 1


# --------------------------------------------------------------------------- the MIME walk


@dataclass(slots=True)
class _Walk:
    plain: list[str]
    html: list[str]
    attachments: list[Attachment]
    defects: list[str]
    taken: set[str]
    total_bytes: int = 0
    parts_seen: int = 0
    dropped_for_count: int = 0
    dropped_for_size: int = 0
    text_chars: int = 0
    recovered: int = 0
    lifted: Lifted | None = None


def _part_filename(part: Message) -> str:
    """The part's file name: Content-Disposition ``filename`` else Content-Type ``name``.

    Read from the raw header, because compat32 turns raw 8-bit octets (a UTF-8 name sent
    unencoded, as many mailers do) into U+FFFD before ``get_param`` sees them.
    """
    raw_headers = [(k.lower(), v) for k, v in part.raw_items()]
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = next((str(v) for k, v in raw_headers if k == header), None)
        if value is None:
            continue
        probe = Message()
        probe[header] = _CONTROL.sub(" ", _FOLD.sub("", _undo_surrogates(value)))
        try:
            raw = probe.get_param(param, header=header)
        except (ValueError, TypeError, IndexError, LookupError, UnicodeError):
            continue
        if not raw:
            continue
        if isinstance(raw, tuple):  # RFC 2231: (charset, language, %-decoded octets as latin-1)
            charset, _lang, text = raw
            try:
                data = bytes(str(text), "raw_unicode_escape")
            except UnicodeError:
                return decode_header_text(str(text))
            return decode_header_text(decode_bytes(data, charset or "utf-8")[0])
        return decode_header_text(email.utils.unquote(str(raw)))
    return ""


def _disposition(part: Message) -> str:
    value = part.get("content-disposition")
    if value is None:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except (ValueError, TypeError, IndexError):
        return "application/octet-stream"


def _message_bytes(inner: Message, lifted: Lifted | None = None) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(inner)
    except (RecursionError, ValueError, TypeError, LookupError, UnicodeError, AttributeError):
        try:
            out = inner.as_string().encode("utf-8", errors="surrogateescape")
        except (RecursionError, ValueError, TypeError, LookupError, UnicodeError, AttributeError):
            return b""
    else:
        out = buffer.getvalue()
    return lifted.unlift(out, newline=b"\n") if lifted is not None else out


def _leaf_bytes(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, binascii.Error, AssertionError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8", errors="surrogateescape")
    return b""


def _add_attachment(walk: _Walk, filename: str, ctype: str, data: bytes, inline: bool) -> None:
    if walk.lifted is not None:
        data = walk.lifted.unlift(data)
    if len(walk.attachments) >= MAX_ATTACHMENTS:
        walk.dropped_for_count += 1
        return
    if walk.total_bytes + len(data) > MAX_TOTAL_BYTES:
        walk.dropped_for_size += 1
        return
    walk.total_bytes += len(data)
    index = len(walk.attachments) + 1
    safe = _unique(safe_filename(filename, index, ctype), walk.taken)
    walk.attachments.append(
        Attachment(
            filename=filename,
            safe_name=safe,
            content_type=ctype,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            inline=inline,
        )
    )


def _children(part: Message) -> list[Message]:
    if not part.is_multipart():
        return []  # get_payload() would decode an 8-bit string body: idna, for one, raises
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    return []


_BOUNDARY_LINE = re.compile(r"^--([^\s\"]{1,70})[ \t]*\r?$", re.MULTILINE)


def _recover_multipart(part: Message) -> Message | None:
    """Re-read a multipart whose declared boundary never occurs, using the one it really uses.

    Mailers do send a boundary parameter that differs from the delimiter lines (or none at
    all); the stdlib then keeps the whole body as one string.
    """
    try:
        payload = part.get_payload()
    except (LookupError, UnicodeError):  # an 8-bit body and a charset (idna) that cannot replace
        payload = _leaf_bytes(part).decode("ascii", errors="surrogateescape")
    if not isinstance(payload, str):
        return None
    for match in _BOUNDARY_LINE.finditer(payload):
        boundary = match.group(1).removesuffix("--")
        if boundary.strip("-") and payload.count("--" + boundary) >= 2:
            break
    else:
        return None
    head = f'Content-Type: {_content_type(part)}; boundary="{boundary}"\n\n'
    try:
        fixed = email.message_from_bytes(
            head.encode() + payload.encode("utf-8", errors="surrogateescape"),
            policy=email.policy.compat32,
        )
    except (RecursionError, ValueError, TypeError, UnicodeError):
        return None
    return fixed if fixed.is_multipart() and _children(fixed) else None


def _iter_parts(root: Message, walk: _Walk) -> Iterator[tuple[Message, int]]:
    """Every part in document order with its attached-message depth, iteratively."""
    stack: list[tuple[Message, int]] = [(root, 0)]
    while stack:
        part, depth = stack.pop()
        walk.parts_seen += 1
        if walk.parts_seen > MAX_PARTS:
            walk.defects.append(f"more than {MAX_PARTS} MIME parts: the rest was not read")
            return
        if _content_type(part).startswith("multipart/") and not part.is_multipart():
            fixed = _recover_multipart(part) if walk.recovered < 20 else None
            if fixed is not None:
                walk.recovered += 1
                walk.defects.append("multipart boundary not as declared: recovered from the body")
                part = fixed
        yield part, depth
        if part is root or _content_type(part) not in _MESSAGE_TYPES:
            if part.is_multipart() and _content_type(part) not in _REPORT_TYPES:
                stack.extend((child, depth) for child in reversed(_children(part)))
        elif depth + 1 <= MAX_MESSAGE_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(_children(part)))
        else:
            walk.defects.append(f"attached messages nested deeper than {MAX_MESSAGE_DEPTH}")


def _visit(walk: _Walk, part: Message, depth: int, is_root: bool) -> None:
    ctype = _content_type(part)
    disposition = _disposition(part)
    filename = _part_filename(part)
    inline = disposition == "inline"
    if not is_root and ctype in _MESSAGE_TYPES:
        inner = _children(part)
        data = _message_bytes(inner[0], walk.lifted) if inner else _leaf_bytes(part)
        _add_attachment(walk, filename, "message/rfc822", data, inline)
        return
    if part.is_multipart() and ctype not in _REPORT_TYPES:
        return  # a container: its children come next
    if ctype in _REPORT_TYPES and not filename and ctype != "message/delivery-status":
        return  # the delivery status is kept: it names the recipient that failed
    is_body = ctype in ("text/plain", "text/html") and not filename and disposition != "attachment"
    if ctype.startswith("multipart/") and not part.is_multipart():
        ctype, is_body = "text/plain", True  # structure lost beyond recovery: read it as text
    if is_body:
        if depth > 0:
            return  # the body of an attached message is read from its .eml
        data = _leaf_bytes(part)
        if walk.lifted is not None:
            data = walk.lifted.unlift(data)
        text, note = decode_bytes(data, part.get_content_charset())
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if note:
            walk.defects.append(f"{ctype} part: {note}, read as UTF-8/Windows-1252")
        if walk.text_chars + len(text) > MAX_TEXT_CHARS:
            text = text[: max(0, MAX_TEXT_CHARS - walk.text_chars)]
            walk.defects.append(f"body text cut at {MAX_TEXT_CHARS} characters")
        walk.text_chars += len(text)
        (walk.plain if ctype == "text/plain" else walk.html).append(text)
        return
    # A named report part is kept as it was sent.
    data = _message_bytes(part, walk.lifted) if part.is_multipart() else _leaf_bytes(part)
    _add_attachment(walk, filename, ctype, data, inline)


def _walk(root: Message, lifted: Lifted | None = None) -> _Walk:
    walk = _Walk(plain=[], html=[], attachments=[], defects=[], taken=set(), lifted=lifted)
    for part, depth in _iter_parts(root, walk):
        try:
            _visit(walk, part, depth, part is root)
        except Exception as exc:  # noqa: BLE001 - a hostile part costs only itself, never the mail
            walk.defects.append(f"part skipped: {type(exc).__name__}: {str(exc)[:120]}")
    if walk.dropped_for_count:
        walk.defects.append(
            f"attachment count cap {MAX_ATTACHMENTS} reached: {walk.dropped_for_count} dropped"
        )
    if walk.dropped_for_size:
        walk.defects.append(
            f"attachment size cap {MAX_TOTAL_BYTES // (1024 * 1024)} MiB reached: "
            f"{walk.dropped_for_size} dropped"
        )
    return walk


# --------------------------------------------------------------------------- headers


def _addresses_stdlib(values: list[str]) -> list[tuple[str, str]]:
    """policy.default's header parser first, then compat32's ``getaddresses``."""
    found: list[tuple[str, str]] = []
    for value in values:
        try:
            header = email.policy.default.header_factory("to", value)
            found.extend(
                (decode_header_text(a.display_name), a.addr_spec)
                for a in getattr(header, "addresses", ())
            )
            continue
        except Exception:  # noqa: BLE001, S110 - the RFC 5322 parser raises many types; fall back
            pass
        found.extend(
            (decode_header_text(name), addr) for name, addr in email.utils.getaddresses([value])
        )
    return found


def _clean_address(addr: str) -> str:
    return _undo_surrogates(addr).strip().strip("<>").strip().lower()


def _addresses(mp: object | None, attr: str, raw_values: list[str]) -> list[tuple[str, str]]:
    if mp is not None:
        try:
            value = getattr(mp, attr)
            if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
                pairs = [(_undo_surrogates(str(n)), str(a)) for n, a in value]
                if pairs or not raw_values:
                    return pairs
        except Exception:  # noqa: BLE001, S110 - mail-parser failed on this header: stdlib below
            pass
    return _addresses_stdlib(raw_values)


def _addr_tuple(pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _name, addr in pairs:
        clean = _clean_address(addr)
        if clean:
            seen.setdefault(clean, None)
    return tuple(seen)


def _date(mp: object | None, raw: str | None) -> datetime | None:
    stdlib: datetime | None = None
    if raw:
        try:
            stdlib = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            stdlib = None
        if stdlib is not None and stdlib.tzinfo is None:
            stdlib = stdlib.replace(tzinfo=UTC)
    checked: datetime | None = None
    if mp is not None:
        try:
            value = getattr(mp, "date", None)
            checked = value if isinstance(value, datetime) else None
        except Exception:  # noqa: BLE001 - mail-parser's date is only a cross-check
            checked = None
        if checked is not None and checked.tzinfo is None:
            checked = checked.replace(tzinfo=UTC)
    if checked is not None and stdlib is not None and checked == stdlib:
        return stdlib  # same instant: keep the sender's own offset
    return checked or stdlib


_MSGID = re.compile(r"<[^<>\s]+>")


def _flatten_defects(mp: object | None) -> list[str]:
    out: list[str] = []
    if mp is None:
        return out
    try:
        defects = getattr(mp, "defects", [])
    except Exception:  # noqa: BLE001 - defects are informative only
        return out
    for item in defects if isinstance(defects, list) else []:
        if isinstance(item, dict):
            for values in item.values():
                for value in values if isinstance(values, list) else [values]:
                    out.append(str(value)[:200])
        else:
            out.append(str(item)[:200])
    return out


# --------------------------------------------------------------------------- large bodies

LIFT_BYTES = 64 * 1024  # a base64 body this large is decoded here, not by the email parser
_CTE_BASE64 = re.compile(
    rb"^content-transfer-encoding:[ \t]*(?:\r?\n[ \t]+)?base64[ \t]*\r?$", re.I | re.M
)
_CTE_ANY = re.compile(rb"^content-transfer-encoding:", re.I | re.M)
_CONTAINER_TYPE = re.compile(
    rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?(?:multipart|message)/", re.I | re.M
)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_BASE64_BODY = re.compile(rb"[A-Za-z0-9+/=\s]*")


@dataclass(slots=True)
class Lifted:
    """A message with its large base64 bodies taken out before the email parser reads it.

    The stdlib parser holds a body as lines, as one string, then decoded: a 25 MB attachment
    cost it some 280 MB (docs/PERFORMANCE.md). Each base64 body of ``LIFT_BYTES`` or more in a
    leaf part is decoded here, from the raw bytes, and stands in the parsed tree as a short
    base64 line that decodes to a marker; the walk puts the real bytes back in its place (and
    the original lines, where a part is written out again or read as text). A body that is not
    plain base64 (a stray character, bad padding, a second encoding header) is left to the
    parser as it was.
    """

    raw: bytes
    source: memoryview  # the bytes the bodies were lifted from
    bodies: dict[bytes, bytes]  # marker (what the short line decodes to) -> the decoded body
    lines: dict[bytes, tuple[bytes, int, int]]  # the short line -> its marker, where it was
    prefix: bytes = b""  # what every short line starts with (the part of the marker they share)

    @classmethod
    def from_raw(cls, raw: bytes) -> Lifted:
        view = memoryview(raw)
        lifted = cls(raw=raw, source=view, bodies={}, lines={})
        if len(raw) < LIFT_BYTES:
            return lifted
        # The markers name a digest of the message itself: a sender cannot write a marker into
        # a mail without knowing that mail's digest, and the same bytes parse the same way.
        secret = b""
        pieces: list[bytes | memoryview] = []
        done = 0
        # Every search below stays between the neighbouring encoding headers (and within a
        # window): hostile bytes may repeat the header a million times, and each look must not
        # cover the whole message again. A part whose header block or body holds another
        # encoding header is not plain base64 anyway.
        headers = list(_encoding_headers(raw))
        for number, found in enumerate(headers):
            if found.start() < done:
                continue
            previous = headers[number - 1].start() if number else 0
            following = headers[number + 1].start() if number + 1 < len(headers) else len(raw)
            head_end = _BLANK_LINE.search(
                raw, found.end(), min(following, found.end() + _HEAD_WINDOW)
            )
            if head_end is None:
                continue
            start = head_end.end()
            # The part's header block: after the delimiter line before it (or the blank line
            # that ends an attached mail's part header).
            low = max(done, previous, found.start() - _HEAD_WINDOW)
            after = max(raw.rfind(b"\n--", low, found.start()), low)
            head_start = max(
                raw.rfind(b"\n\n", after, found.start()),
                raw.rfind(b"\n\r\n", after, found.start()),
                after,
            )
            head = view[head_start : head_end.start()]
            if len(_CTE_ANY.findall(head)) != 1 or _CONTAINER_TYPE.search(head):
                continue
            end = raw.find(b"\n--", start, following)  # base64 has no "-": the delimiter line
            if end < 0 and following < len(raw):
                continue  # the body runs into the next encoding header: not plain base64
            end = len(raw) if end < 0 else end - (raw[end - 1 : end] == b"\r")
            if end - start < LIFT_BYTES or not _BASE64_BODY.fullmatch(raw, start, end):
                continue
            try:
                body = binascii.a2b_base64(view[start:end])
            except binascii.Error:
                continue
            secret = secret or hashlib.sha256(raw).hexdigest()[:24].encode()
            marker = b"ccm-lifted-%s-%06d" % (secret, len(lifted.bodies))
            line = base64.b64encode(marker)
            lifted.prefix = line[:_PREFIX_CHARS]
            lifted.bodies[marker], lifted.lines[line] = body, (marker, start, end)
            pieces += [view[done:start], line]
            done = end
        if lifted.bodies:
            pieces.append(view[done:])
            lifted.raw = b"".join(pieces)
        return lifted

    def unlift(self, data: bytes, *, newline: bytes | None = None) -> bytes:
        """``data`` as it would be had nothing been lifted: the decoded bytes for a part the
        parser decoded to a marker; the original lines where a short line appears in text (a
        part written out again with ``newline`` line ends, or read undecoded)."""
        if len(data) == _MARKER_BYTES and data in self.bodies:
            return self.bodies[data]
        if not self.prefix or self.prefix not in data:
            return data  # one look, however many bodies were lifted
        for line, (_marker, start, end) in self.lines.items():
            if line in data:
                original = bytes(self.source[start:end])
                if newline is not None:
                    original = _LINE_END.sub(newline, original)
                data = data.replace(line, original)
        return data


def _encoding_headers(raw: bytes) -> Iterator[re.Match[bytes]]:
    """Each ``Content-Transfer-Encoding: base64`` line, in order. Found with plain substring
    searches (a case-insensitive regex over 35 MB took a quarter of a second); a header
    spelled in mixed case past its first letters is not found, and its body is parsed as
    usual."""
    starts = []
    for needle in (b"ransfer-", b"RANSFER-"):
        at = raw.find(needle)
        while at >= 0:
            line = at - len(b"Content-T")  # where the line starts if it is the header
            if line == 0 or (line > 0 and raw[line - 1 : line] == b"\n"):
                starts.append(line)
            at = raw.find(needle, at + 1)
    for start in sorted(starts):
        found = _CTE_BASE64.match(raw, start)
        if found is not None:
            yield found


_MARKER_BYTES = len(b"ccm-lifted-") + 24 + 1 + 6
_PREFIX_CHARS = (len(b"ccm-lifted-") + 24 + 1) // 3 * 4  # base64 of the shared 36 bytes
_HEAD_WINDOW = 64 * 1024  # a part's header block is not longer than this
_LINE_END = re.compile(rb"\r\n|\r|\n")


_OBS_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _tidy(raw: bytes) -> bytes:
    """Undo two things the stdlib parser cannot read: a leading UTF-8 BOM and the RFC 5322
    §4.5 obsolete ``Name  :`` header syntax (white space before the colon)."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    end = _HEAD_END.search(raw)
    cut = end.start() if end else len(raw)
    head = raw[:cut]
    if _OBS_HEADER_NAME.search(head):
        raw = _OBS_HEADER_NAME.sub(rb"\1:", head) + raw[cut:]
    return raw


def _fold_cost(root: Message) -> int:
    """What mail-parser would spend re-folding the parts' header lines, in squared characters.

    Its walk flattens the parts again with the stdlib, whose folding of a header line that
    holds 8-bit bytes is quadratic in the line's length: one 64 KB line in an attached mail
    took two minutes, in the worker process; 200 attached mails with a 1 KB line, 6 s.
    ``MAX_FOLD_COST`` is a 4 KB line (0.7 s). The root's own header is not folded again.
    """
    cost, seen, stack = 0, 0, [root]
    while stack and seen < MAX_PARTS:  # iteratively: a deep tree must not exhaust the stack
        part = stack.pop()
        seen += 1
        if part.is_multipart():
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
        for _name, value in part.raw_items() if part is not root else ():
            text = str(value)
            if any("\udc80" <= ch <= "\udcff" for ch in text):  # 8-bit bytes, as read
                cost += sum(len(line) ** 2 for line in text.split("\n"))
    return cost


def _parse_tree(raw: bytes, defects: list[str]) -> tuple[object | None, Message]:
    """(the mail-parser object or None, the compat32 MIME tree)."""
    try:
        root = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        defects.append("MIME nesting too deep: headers only")
        parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
        return None, parser.parsebytes(raw)
    if _fold_cost(root) > MAX_FOLD_COST:
        defects.append("long 8-bit header lines in the parts: read with the stdlib parser alone")
        return None, root
    try:
        return mailparser.MailParser(root), root  # the tree it would build from these bytes
    except Exception as exc:  # noqa: BLE001 - mail-parser raises many types on hostile input
        defects.append(f"mail-parser failed ({type(exc).__name__}); read with the stdlib parser")
    # Its walk may have failed half-way over the tree: read the bytes afresh.
    return None, email.message_from_bytes(raw, policy=email.policy.compat32)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one RFC 5322 message. Raises :class:`UnparseableMessage` only for non-mail."""
    if not raw or not raw.strip():
        raise UnparseableMessage("empty message")
    defects: list[str] = []
    lifted = Lifted.from_raw(_tidy(raw))
    mp, root = _parse_tree(lifted.raw, defects)
    lifted.raw = b""  # parsed: the copy without the large bodies is no longer needed
    headers = tuple(
        (str(name).strip().lower(), decode_header_text(value)) for name, value in root.raw_items()
    )
    if not headers:
        raise UnparseableMessage("no header fields: not an RFC 5322 message")
    defects.extend(_flatten_defects(mp))

    def raw_all(name: str) -> list[str]:
        return [str(v) for k, v in root.raw_items() if k.lower() == name]

    def first(name: str) -> str | None:
        return next((v for k, v in headers if k == name), None)

    senders = _addresses(mp, "from_", raw_all("from"))
    from_name, from_addr = senders[0] if senders else ("", "")
    walk = _walk(root, lifted if lifted.bodies else None)
    defects.extend(walk.defects)
    text = "\n\n".join(t.strip("\n") for t in walk.plain if t.strip())
    if not text and walk.html:
        text = "\n\n".join(html_to_text(h) for h in walk.html if h.strip())

    message_id = (first("message-id") or "").strip() or None
    in_reply = first("in-reply-to")
    in_reply_ids = _MSGID.findall(in_reply or "")
    references_raw = " ".join(v for k, v in headers if k == "references")
    references = tuple(_MSGID.findall(references_raw)) or tuple(references_raw.split())

    if len(defects) > MAX_DEFECTS:
        defects = [*defects[:MAX_DEFECTS], f"… {len(defects) - MAX_DEFECTS} more defects"]
    return ParsedMessage(
        message_id=message_id,
        subject=first("subject") or "",
        from_addr=_clean_address(from_addr),
        from_name=decode_header_text(from_name),
        reply_to=_addr_tuple(_addresses(mp, "reply_to", raw_all("reply-to"))),
        to=_addr_tuple(_addresses(mp, "to", raw_all("to"))),
        cc=_addr_tuple(_addresses(mp, "cc", raw_all("cc"))),
        date=_date(mp, first("date")),
        in_reply_to=(in_reply_ids[0] if in_reply_ids else (in_reply or "").strip() or None),
        references=references,
        headers=headers,
        text=text,
        attachments=tuple(walk.attachments),
        defects=tuple(defects),
    )
