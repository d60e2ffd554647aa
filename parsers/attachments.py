"""Attachment bytes in, plain text out: PDF, DOCX, XLSX, plain text and HTML.

The type is decided from the bytes first (``%PDF``, a zip holding ``word/`` or ``xl/``), then
from the declared content type and the file extension, so a PDF sent as
``application/octet-stream`` or named ``.doc`` is still read, and a ``.pdf`` holding
something else fails with a clear reason. Every library failure becomes an
:class:`Extraction` with ``error`` set: one broken attachment must never stop a mail.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from parsers.message import (
    Attachment,
    ParsedMessage,
    UnparseableMessage,
    decode_bytes,
    html_to_text,
    parse_message,
)

MAX_PDF_PAGES = 500
MAX_SHEET_ROWS = 5_000
MAX_ROWS = 20_000
MAX_UNZIPPED = 200 * 1024 * 1024  # an Office file that inflates past this is a zip bomb
MAX_RATIO = 200  # ... and so is one whose parts inflate more than 200:1

_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# text/rtf is markup a human cannot read; every other text/* subtype is worth reading as is.
_NOT_TEXT_TYPES = frozenset({"text/rtf", "text/rfc822-headers"})
_TEXT_EXTENSIONS = frozenset({".txt", ".csv", ".tsv", ".text"})
_HTML_EXTENSIONS = frozenset({".htm", ".html"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .xls, .msg: a later issue
_TNEF_MAGIC = b"\x78\x9f\x3e\x22"


@dataclass(frozen=True, slots=True)
class Extraction:
    name: str
    method: str
    text: str
    error: str | None


def _extension(att: Attachment) -> str:
    name = (att.safe_name or att.filename).lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _zip_kind(data: bytes) -> tuple[str | None, str | None]:
    """('docx' | 'xlsx' | None, problem) for a zip; bombs are refused before any library."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        return None, str(exc)[:160] or type(exc).__name__
    names = {info.filename for info in infos}
    kind = (
        "docx" if "word/document.xml" in names else "xlsx" if "xl/workbook.xml" in names else None
    )
    unpacked = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos) or 1
    if unpacked > MAX_UNZIPPED or unpacked / packed > MAX_RATIO:
        return kind, f"refused: inflates to {unpacked} bytes (zip bomb?)"
    return kind, None


def _method(att: Attachment) -> tuple[str, str | None]:
    """The reader to use and, when the bytes contradict the claim, why it cannot work."""
    data, ctype, ext = att.data, att.content_type, _extension(att)
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf", None
    claimed = (
        "docx"
        if ext == ".docx" or ctype == _DOCX_TYPE
        else "xlsx"
        if ext == ".xlsx" or ctype == _XLSX_TYPE
        else None
    )
    if data.startswith(b"PK\x03\x04"):
        kind, problem = _zip_kind(data)
        if problem is None and kind is not None:
            return kind, None
        if problem is not None and problem.startswith("refused"):
            return kind or claimed or "none", problem
        if problem is not None and claimed is not None:
            return claimed, f"corrupt {claimed.upper()}: {problem}"
        shown = "application/zip" if ctype == "application/octet-stream" else ctype
        return "none", f"unsupported type {shown}"
    if data.startswith(_OLE_MAGIC) and claimed is not None:
        label = claimed.upper()
        if "EncryptionInfo".encode("utf-16-le") in data:
            return claimed, f"encrypted {label}: a password is needed"
        return "none", f"unsupported type {ctype} (legacy Office file named {ext or label})"
    if ctype in _PDF_TYPES or ext == ".pdf":
        return "pdf", "corrupt PDF: no %PDF header"
    if claimed is not None:
        return claimed, f"corrupt {claimed.upper()}: not a zip file"
    if data.startswith(_OLE_MAGIC) or data.startswith(_TNEF_MAGIC):
        return "none", f"unsupported type {ctype}"
    if ctype in ("message/rfc822", "message/global") or ext == ".eml":
        return "eml", None
    if ctype == "text/html" or ext in _HTML_EXTENSIONS:
        return "html", None
    text_type = ctype.startswith("text/") and ctype not in _NOT_TEXT_TYPES
    if text_type or (ext in _TEXT_EXTENSIONS and not ctype.startswith("image/")):
        return "text", None
    return "none", f"unsupported type {ctype}"


def _pdf(data: bytes, max_chars: int) -> tuple[str, str | None]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        # An owner password alone (printing or copying restricted) still opens with "".
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # noqa: BLE001 - missing crypto backend, odd handlers
            return "", f"encrypted PDF ({type(exc).__name__})"
        if not opened:
            return "", "encrypted PDF: a password is needed"
    chunks: list[str] = []
    size = 0
    for number, page in enumerate(reader.pages):
        if number >= MAX_PDF_PAGES or size >= max_chars:
            break
        text = page.extract_text() or ""
        chunks.append(text)
        size += len(text)
    text = "\n\n".join(chunks).strip()
    if not text:
        return "", "no text layer (scanned PDF?)"
    return text, None


def _docx_table_lines(table: object) -> list[str]:
    lines: list[str] = []
    for row in getattr(table, "rows", ()):
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # a merged cell repeats in every column
                cells.append(text)
            for inner in cell.tables:
                lines.extend(_docx_table_lines(inner))
        if any(cells):
            lines.append("\t".join(cells))
    return lines


def _docx_block_lines(blocks: Iterable[object]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if hasattr(block, "rows"):
            lines.extend(_docx_table_lines(block))
        else:
            text = str(getattr(block, "text", "")).strip()
            if text:
                lines.append(text)
    return lines


def _docx(data: bytes, max_chars: int) -> tuple[str, str | None]:
    import docx

    document = docx.Document(io.BytesIO(data))
    lines: list[str] = []
    seen_margins: set[str] = set()
    # Letterheads ("Permanent Mission of …") often live in the page header: keep them.
    for section in document.sections:
        for margin in (section.header, section.footer):
            text = "\n".join(_docx_block_lines(margin.iter_inner_content()))
            if text and text not in seen_margins:
                seen_margins.add(text)
                lines.append(text)
    lines.extend(_docx_block_lines(document.iter_inner_content()))
    text = "\n".join(lines).strip()
    return text, None if text else "no text in DOCX"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


def _xlsx(data: bytes, max_chars: int) -> tuple[str, str | None]:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    lines: list[str] = []
    rows_read = 0
    size = 0
    try:
        for sheet in workbook.worksheets:
            lines.append(f"# {sheet.title}")
            for count, row in enumerate(sheet.iter_rows(values_only=True)):
                if count >= MAX_SHEET_ROWS or rows_read >= MAX_ROWS or size >= max_chars:
                    break
                rows_read += 1
                cells = [_cell(v) for v in row]
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    line = "\t".join(cells)
                    lines.append(line)
                    size += len(line) + 1
    finally:
        workbook.close()
    if all(line.startswith("# ") for line in lines):
        return "", "no cell values in XLSX"
    return "\n".join(lines).strip(), None


def _text(data: bytes, max_chars: int) -> tuple[str, str | None]:
    sample = data[:4096]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 without a BOM shows NULs in every other byte; anything else is binary.
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > len(sample) // 4:
            text = data.decode("utf-16-le", errors="replace")
        elif even > len(sample) // 4:
            text = data.decode("utf-16-be", errors="replace")
        else:
            return "", "binary data in a text attachment"
    else:
        text = decode_bytes(data)[0]
    return text.replace("\r\n", "\n").replace("\r", "\n"), None


def _html(data: bytes, max_chars: int) -> tuple[str, str | None]:
    return html_to_text(decode_bytes(data)[0]), None


def _eml(data: bytes, max_chars: int) -> tuple[str, str | None]:
    try:
        inner = parse_message(data)
    except UnparseableMessage as exc:
        return "", f"attached message unreadable: {exc}"
    head = [f"Subject: {inner.subject}"]
    if inner.from_addr:
        head.append(f"From: {inner.from_name} <{inner.from_addr}>".replace(":  <", ": <"))
    if inner.date is not None:
        head.append(f"Date: {inner.date.isoformat()}")
    return "\n".join(head) + "\n\n" + inner.text, None


_READERS: dict[str, Callable[[bytes, int], tuple[str, str | None]]] = {
    "pdf": _pdf,
    "docx": _docx,
    "xlsx": _xlsx,
    "text": _text,
    "html": _html,
    "eml": _eml,
}

_LABELS = {"pdf": "PDF", "docx": "DOCX", "xlsx": "XLSX", "text": "text", "html": "HTML"}


def extract_text(att: Attachment, *, max_chars: int = 200_000) -> Extraction:
    """The text of one attachment; never raises."""
    method, error = _method(att)
    # An attached mail is text to everyone downstream; 'eml' is only the reader's name.
    shown = "text" if method == "eml" else method
    if error is not None or method == "none":
        return Extraction(att.safe_name, shown, "", error)
    try:
        text, error = _READERS[method](att.data, max_chars)
    except RecursionError:
        return Extraction(
            att.safe_name, shown, "", f"corrupt {_LABELS.get(method, method)}: too deep"
        )
    except Exception as exc:  # noqa: BLE001 - the per-attachment bulkhead: libraries raise anything
        label = _LABELS.get(method, method)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if method == "pdf" and "decrypt" in reason.lower():
            return Extraction(att.safe_name, shown, "", "encrypted PDF")
        return Extraction(att.safe_name, shown, "", f"corrupt {label}: {reason}"[:200])
    return Extraction(att.safe_name, shown, text[:max_chars], error)


def extract_all(msg: ParsedMessage, *, max_chars: int = 200_000) -> tuple[Extraction, ...]:
    """One :class:`Extraction` per attachment of ``msg``, in order."""
    return tuple(extract_text(att, max_chars=max_chars) for att in msg.attachments)
