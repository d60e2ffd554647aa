"""Attachment bytes in, text and tables out, whatever a mission sends.

Readers: PDF (the text layer; pages without one go to OCR), images (OCR), DOCX, XLSX, legacy
XLS, ODT, ODS, RTF, legacy Word .doc (antiword, else catdoc), CSV, plain text and HTML; and
containers, whose inner files are read in turn: ZIP, Outlook .msg, TNEF ``winmail.dat`` and
attached mails (.eml).

The type is decided from the bytes first (``%PDF``, a zip holding ``word/``, an OLE file
holding a ``WordDocument`` stream...), then from the declared content type and the file
extension, so a PDF sent as ``application/octet-stream`` or named ``.doc`` is still read, and
a ``.pdf`` holding something else fails with a clear reason. Every library failure becomes an
:class:`Extraction` with ``error`` set: one broken attachment must never stop a mail.

Everything is bounded: pages, rows, characters, OCR pages per message, files and bytes taken
out of containers, containers inside containers (two levels), and zip bombs are refused before
any byte is inflated. Time and memory are bounded by the worker, which runs all this in a
child process (``worker/extraction.py``). Only the tesseract, antiword and catdoc programs are
run, as subprocesses with time-outs; nothing here touches the network, a database, settings
or the clock.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from parsers import ocr as ocr_engine
from parsers.limits import Limits, in_file, is_over_limit, over_limit, size
from parsers.message import (
    Attachment,
    ParsedMessage,
    UnparseableMessage,
    _unique,
    decode_bytes,
    html_to_text,
    parse_message,
    safe_filename,
)

MAX_SHEET_ROWS = 5_000
MAX_ROWS = 20_000
MAX_COLUMNS = 256  # cells kept per row: a sheet "used" up to column XFD is empty past here
# PDF pages, zip entries, inflated size and ratio, containers in containers, one inner
# file's size and OCR time are in parsers.limits.Limits: going past one is a reason to
# quarantine the message.
MAX_INNER_FILES = 200  # inner files taken out of the containers of one message
MAX_INNER_BYTES = 100 * 1024 * 1024  # ... and their bytes
MAX_OCR_PAGES = 15  # pages and images OCR reads per message: 0.5-3 s each, under 60 s
MIN_PAGE_LETTERS = 10  # a PDF page with fewer letters in its text layer is a scan
MAX_RTF_BYTES = 30 * 1024 * 1024
MAX_RTF_DEPTH = 500
TOOL_TIMEOUT = 30.0  # seconds for antiword or catdoc on one file

Table = tuple[tuple[str, ...], ...]  # rows of cells, stripped strings

_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
# text/rtf is markup a human cannot read; every other text/* subtype is worth reading as is.
_NOT_TEXT_TYPES = frozenset({"text/rtf", "text/rfc822-headers"})
_TEXT_EXTENSIONS = frozenset({".txt", ".csv", ".tsv", ".text"})
_TABLE_EXTENSIONS = frozenset({".csv", ".tsv"})
_TABLE_TYPES = frozenset({"text/csv", "text/tab-separated-values"})
_HTML_EXTENSIONS = frozenset({".htm", ".html"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .xls, .msg, encrypted .docx/.xlsx
_TNEF_MAGIC = b"\x78\x9f\x3e\x22"
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
)
_CONTAINERS = frozenset({"zip", "msg", "tnef", "eml"})

# What the name or the declared type claims, for files whose bytes say nothing clear.
_CLAIMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # method: (extensions, content types)
    "docx": ((".docx", ".docm", ".dotx"), (_DOCX_TYPE,)),
    "xlsx": ((".xlsx", ".xlsm", ".xltx"), (_XLSX_TYPE,)),
    "odt": ((".odt", ".ott"), ("application/vnd.oasis.opendocument.text",)),
    "ods": ((".ods", ".ots"), ("application/vnd.oasis.opendocument.spreadsheet",)),
    "doc": ((".doc", ".dot"), ("application/msword",)),
    "xls": ((".xls", ".xlt"), ("application/vnd.ms-excel",)),
    "msg": ((".msg",), ("application/vnd.ms-outlook",)),
    "tnef": ((), ("application/ms-tnef", "application/vnd.ms-tnef")),
    "rtf": ((".rtf",), ("application/rtf", "text/rtf")),
    "zip": ((".zip",), ("application/zip", "application/x-zip-compressed")),
}
_LABELS = {
    "pdf": "PDF",
    "ocr": "PDF",
    "docx": "DOCX",
    "xlsx": "XLSX",
    "xls": "XLS",
    "odt": "ODT",
    "ods": "ODS",
    "rtf": "RTF",
    "doc": "DOC",
    "zip": "ZIP",
    "msg": "Outlook message",
    "tnef": "TNEF (winmail.dat)",
    "eml": "attached message",
    "text": "text",
    "html": "HTML",
    "image": "image",
}
# Content types for files taken out of a zip, which carries names only. A fixed table, as
# in parsers.message, so that nothing depends on the host's /etc/mime.types.
_TYPES_BY_EXTENSION = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": _DOCX_TYPE,
    ".xls": "application/vnd.ms-excel",
    ".xlsx": _XLSX_TYPE,
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".rtf": "application/rtf",
    ".zip": "application/zip",
    ".msg": "application/vnd.ms-outlook",
    ".eml": "message/rfc822",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".htm": "text/html",
    ".html": "text/html",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
}


@dataclass(frozen=True, slots=True)
class Extraction:
    """What one file says. ``error`` is None when it was read; else why not (or not all).

    ``tables`` holds DOCX and ODT tables, every XLSX, XLS and ODS sheet, and CSV files.
    ``parts`` holds the inner files of a container (zip, msg, tnef, eml), named
    ``pack.zip/list.pdf``; a container's ``text`` and ``tables`` include those of its parts,
    except parts the message also carries as attachments of its own (the MIME parser lifts
    the files of an attached mail to the top): those count once, at the top. So reading the
    top level misses nothing and counts nothing twice; ``parts`` is there to say which file
    said what.
    """

    name: str
    method: str
    text: str
    error: str | None
    tables: tuple[Table, ...] = ()
    ocr: bool = False  # some of the text came from OCR
    parts: tuple[Extraction, ...] = ()

    def limit_reached(self) -> str | None:
        """Why this file, or a file inside it, was stopped by a limit (``parsers.limits``)."""
        if self.error is not None and is_over_limit(self.error):
            return in_file(self.name, self.error)
        return next((r for p in self.parts if (r := p.limit_reached()) is not None), None)


@dataclass(slots=True)
class _Run:
    """What one message may still spend, shared by all its attachments."""

    max_chars: int
    ocr: bool
    limits: Limits = field(default_factory=Limits)
    ocr_pages: int = field(default_factory=lambda: MAX_OCR_PAGES)
    files: int = MAX_INNER_FILES
    inner_bytes: int = MAX_INNER_BYTES
    lifted: frozenset[str] = frozenset()  # sha256 of the message's own attachments
    done: dict[str, Extraction] = field(default_factory=dict)  # leaf results by content
    parsed: dict[str, ParsedMessage] = field(default_factory=dict)  # attached mails by sha256


@dataclass(slots=True)
class _Out:
    text: str = ""
    error: str | None = None
    tables: list[Table] = field(default_factory=list)
    ocr: bool = False
    method: str | None = None  # when the reader knows better: 'ocr' for a scan


@dataclass(slots=True)
class _Opened:
    text: str  # the container's own words: an attached mail's headers and body
    inner: list[Attachment]
    notes: list[str]


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    # A limit reached comes first, so that the joined note still says so (is_over_limit).
    kept.sort(key=lambda n: not is_over_limit(n))
    return "; ".join(kept) if kept else None


def _row(cells: Iterable[str]) -> tuple[str, ...]:
    """Cells stripped, white space collapsed, trailing empty cells dropped."""
    out = [" ".join(c.split()) if c else "" for c in cells]  # a sheet's rows are mostly empty
    while out and not out[-1]:
        out.pop()
    return tuple(out[:MAX_COLUMNS])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


# --------------------------------------------------------------------------- the type


def _extension(att: Attachment) -> str:
    name = (att.safe_name or att.filename).lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _claimed(att: Attachment) -> str | None:
    ext, ctype = _extension(att), att.content_type
    for method, (extensions, types) in _CLAIMS.items():
        if ext in extensions or ctype in types:
            return method
    if ctype in _PDF_TYPES or ext == ".pdf":
        return "pdf"
    if att.filename.lower().endswith("winmail.dat"):
        return "tnef"
    return None


def _label(method: str | None) -> str:
    return _LABELS.get(method or "", method or "file")


def _zip_kind(data: bytes, limits: Limits) -> tuple[str, str | None]:
    """('docx' | 'xlsx' | 'odt' | 'ods' | 'zip' | 'none', problem); bombs are refused here,
    from the central directory, before any library inflates a byte."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            mimetype = b""
            if "mimetype" in names and "content.xml" in names:
                info = archive.getinfo("mimetype")
                if info.file_size < 200 and not info.flag_bits & 0x1:
                    mimetype = archive.read(info).strip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        return "zip", str(exc)[:160] or type(exc).__name__
    except (NotImplementedError, RuntimeError, zlib.error) as exc:
        return "zip", _first_line(exc)
    kind = "zip"
    if "word/document.xml" in names:
        kind = "docx"
    elif "xl/workbook.xml" in names:
        kind = "xlsx"
    elif mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
        kind = "odt"
    elif mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
        kind = "ods"
    elif mimetype.startswith(b"application/vnd.oasis.opendocument") or "ppt/presentation.xml" in (
        names
    ):
        return "none", "unsupported type (presentation or drawing)"
    if len(infos) > limits.zip_entries:
        return kind, over_limit(
            f"refused: {len(infos)} files in one archive (limit {limits.zip_entries}; zip bomb?)"
        )
    unpacked = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos) or 1
    if unpacked > limits.zip_bytes:
        return kind, over_limit(
            f"refused: inflates to {size(unpacked)} (limit {size(limits.zip_bytes)}; zip bomb?)"
        )
    if unpacked / packed > limits.zip_ratio:
        return kind, over_limit(
            f"refused: inflates {unpacked / packed:.0f} times (limit {limits.zip_ratio}; zip bomb?)"
        )
    return kind, None


def _ole_streams(data: bytes) -> tuple[set[str], str | None]:
    """The top-level stream and storage names of an OLE compound file, lower case."""
    import olefile  # type: ignore[import-untyped]

    try:
        # A file object, never the bytes: olefile takes bytes shorter than 1536 for a path.
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            return {entry[0].lower() for entry in ole.listdir(streams=True, storages=True)}, None
    except Exception as exc:  # noqa: BLE001 - olefile raises many types on hostile input
        return set(), _first_line(exc)


def _ole_kind(data: bytes) -> tuple[str | None, str | None]:
    """('doc' | 'xls' | 'msg' | 'encrypted' | None, problem) for an OLE compound file."""
    names, problem = _ole_streams(data)
    if problem is not None:
        return None, problem
    if {"encryptedpackage", "encryptioninfo"} & names:
        return "encrypted", None  # a password-protected .docx or .xlsx
    if "worddocument" in names:
        return "doc", None
    if "workbook" in names or "book" in names:
        return "xls", None
    if "__properties_version1.0" in names or any(n.startswith("__substg1.0_") for n in names):
        return "msg", None
    return None, None


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<?xml")) and b"<html" in head.lower()


def _looks_like_mail(head: bytes) -> bool:
    return re.match(rb"(?:[!-9;-~]+:[^\n]*\r?\n){2}", head) is not None and bool(
        re.search(rb"(?im)^(from|received|subject|message-id|date):", head)
    )


def _is_bmp(att: Attachment) -> bool:
    data = att.data
    if not data.startswith(b"BM") or len(data) < 26:
        return False
    declared = int.from_bytes(data[2:6], "little")
    return declared == len(data) or att.content_type == "image/bmp" or _extension(att) == ".bmp"


def _method(att: Attachment, limits: Limits) -> tuple[str, str | None]:
    """The reader to use and, when the bytes contradict the claim, why it cannot work."""
    data, ctype = att.data, att.content_type
    head = data[:1024]
    claimed = _claimed(att)
    if b"%PDF-" in head:
        return "pdf", None
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind, problem = _zip_kind(data, limits)
        if problem is None or kind == "none":
            return kind, problem
        if is_over_limit(problem):
            return kind, problem
        if claimed in ("docx", "xlsx", "odt", "ods"):
            return claimed, f"corrupt {_label(claimed)}: {problem}"
        return "zip", f"corrupt ZIP: {problem}"
    if data.startswith(_OLE_MAGIC):
        if claimed in ("docx", "xlsx") and "EncryptionInfo".encode("utf-16-le") in data:
            return claimed, f"encrypted {_label(claimed)}: a password is needed"
        ole_kind, ole_problem = _ole_kind(data)
        if ole_kind == "encrypted":
            if claimed in ("docx", "xlsx"):
                return claimed, f"encrypted {_label(claimed)}: a password is needed"
            return "none", "encrypted Office document: a password is needed"
        if ole_kind is not None:
            return ole_kind, None
        if claimed in ("doc", "xls", "msg"):
            return claimed, f"corrupt {_label(claimed)}: {ole_problem or 'no document stream'}"
        return "none", f"unsupported type {ctype} (an OLE file with no document we read)"
    if data.startswith(_TNEF_MAGIC):
        return "tnef", None
    if data.lstrip()[:5] == b"{\\rtf":
        return "rtf", None
    if data.startswith(_IMAGE_MAGIC) or _is_bmp(att):
        return "image", None
    if claimed == "pdf":
        return "pdf", "corrupt PDF: no %PDF header"
    if claimed in ("doc", "xls") and _looks_like_html(head):
        return "html", None  # "Save as web page" under a Word or Excel name
    if claimed == "msg" and _looks_like_mail(head):
        return "eml", None  # a plain RFC 5322 mail saved as .msg
    if claimed in ("docx", "xlsx", "odt", "ods", "zip"):
        return claimed, f"corrupt {_label(claimed)}: not a zip file"
    if claimed in ("doc", "xls", "msg"):
        return claimed, f"corrupt {_label(claimed)}: not an OLE file"
    if claimed in ("tnef", "rtf"):
        return claimed, f"corrupt {_label(claimed)}: no {_label(claimed)} header"
    ext = _extension(att)
    if ctype in _MESSAGE_TYPES or ext == ".eml":
        return "eml", None
    if ctype == "text/html" or ext in _HTML_EXTENSIONS:
        return "html", None
    text_type = ctype.startswith("text/") and ctype not in _NOT_TEXT_TYPES
    if text_type or (ext in _TEXT_EXTENSIONS and not ctype.startswith("image/")):
        return "text", None
    return "none", f"unsupported type {ctype}"


# --------------------------------------------------------------------------- PDF and images


def _letters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _has_images(page: object) -> bool:
    try:
        return len(getattr(page, "images", ())) > 0
    except Exception:  # noqa: BLE001 - pypdf on a broken page: let OCR have a look
        return True


def _ocr_pdf(data: bytes, numbers: list[int], run: _Run) -> tuple[dict[int, str], str | None]:
    """OCR text by page number, for at most ``ocr.MAX_PAGES`` pages, and a problem if any."""
    wanted = numbers[: max(0, min(ocr_engine.MAX_PAGES, run.ocr_pages))]
    if not wanted:
        return {}, "OCR budget of this message used up"
    found: dict[int, str] = {}
    try:
        for number, image in ocr_engine.pdf_pages(data, wanted):
            run.ocr_pages -= 1
            found[number] = ocr_engine.ocr_image(
                image, dpi=ocr_engine.DPI, timeout=run.limits.ocr_seconds
            )
    except ocr_engine.OcrTimeout as exc:
        return found, over_limit(str(exc))
    except ocr_engine.OcrError as exc:
        return found, str(exc)
    return found, None


def _pdf(att: Attachment, run: _Run) -> _Out:
    from pypdf import PdfReader

    data = att.data
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        # An owner password alone (printing or copying restricted) still opens with "".
        try:
            opened = reader.decrypt("")
        except Exception as exc:  # noqa: BLE001 - missing crypto backend, odd handlers
            return _Out(error=f"encrypted PDF ({type(exc).__name__})")
        if not opened:
            return _Out(error="encrypted PDF: a password is needed")
    pages = reader.pages
    if len(pages) > run.limits.pdf_pages:
        return _Out(error=over_limit(f"{len(pages)} pages in PDF (limit {run.limits.pdf_pages})"))
    texts: list[str] = []
    chars = 0
    for page in pages:
        if chars >= run.max_chars:
            break
        text = page.extract_text() or ""
        texts.append(text)
        chars += len(text)
    scanned = [i for i, text in enumerate(texts) if _letters(text) < MIN_PAGE_LETTERS]
    layer_read = len(scanned) < len(texts)
    problem: str | None = None
    ocr_text: dict[int, str] = {}
    if scanned and run.ocr:
        if layer_read:
            # A typed note with a scanned page in it: OCR only pages that hold a picture,
            # not the blank back of every sheet.
            scanned = [i for i in scanned if _has_images(pages[i])]
        if scanned:
            ocr_text, problem = _ocr_pdf(data, scanned, run)
    for number, text in ocr_text.items():
        if _letters(text) > _letters(texts[number]):
            texts[number] = text
    text = "\n\n".join(t.strip() for t in texts if t.strip())
    used_ocr = any(_letters(t) for t in ocr_text.values())
    if not texts:
        return _Out(error="no pages in PDF")
    if not text:
        if not run.ocr:
            return _Out(error="no text layer (scanned PDF?); OCR is off")
        if problem is not None:
            return _Out(error=_join("no text layer (scanned PDF?)", problem))
        return _Out(error="no text layer, and OCR found no text")
    method = "ocr" if used_ocr and not layer_read else None
    # OCR stopped by its time limit is said even when some text was read.
    limit = problem if is_over_limit(problem) else None
    return _Out(text=text, ocr=used_ocr, method=method, error=limit)


def _image(att: Attachment, run: _Run) -> _Out:
    if not run.ocr:
        return _Out(error="image not read: OCR is off")
    texts: list[str] = []
    ran = False
    problem: str | None = None
    try:
        for frame in ocr_engine.image_frames(att.data):
            if ocr_engine.too_small(frame):
                continue
            if run.ocr_pages <= 0:
                problem = "OCR budget of this message used up"
                break
            run.ocr_pages -= 1
            ran = True
            texts.append(ocr_engine.ocr_image(frame, timeout=run.limits.ocr_seconds))
    except ocr_engine.OcrTimeout as exc:
        problem = over_limit(str(exc))
    except ocr_engine.OcrError as exc:
        problem = str(exc)
    text = "\n\n".join(t for t in texts if t)
    if text:
        return _Out(text=text, error=problem, ocr=True, method="ocr")
    if problem is None and not ran:
        return _Out()  # an icon, a bullet, a tracking pixel: nothing to read, nothing wrong
    return _Out(error=problem)


# --------------------------------------------------------------------------- Office Open XML


def _docx_table(table: object, lines: list[str], tables: list[Table]) -> None:
    rows: list[tuple[str, ...]] = []
    inner: list[object] = []
    for row in getattr(table, "rows", ()):
        cells: list[str] = []
        shown: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            cells.append(text)
            if not shown or shown[-1] != text:  # a merged cell repeats in every column
                shown.append(text)
            inner.extend(cell.tables)
        if any(shown):
            lines.append("\t".join(shown))
        kept = _row(cells)
        if kept:
            rows.append(kept)
    if rows:
        tables.append(tuple(rows))
    for nested in inner:
        _docx_table(nested, lines, tables)


def _docx_blocks(blocks: Iterable[object], tables: list[Table]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if hasattr(block, "rows"):
            _docx_table(block, lines, tables)
        else:
            text = str(getattr(block, "text", "")).strip()
            if text:
                lines.append(text)
    return lines


def _docx(att: Attachment, run: _Run) -> _Out:
    import docx

    document = docx.Document(io.BytesIO(att.data))
    lines: list[str] = []
    seen_margins: set[str] = set()
    # Letterheads ("Permanent Mission of …") often live in the page header: keep them, but
    # not their layout tables, which are no roster.
    for section in document.sections:
        for margin in (section.header, section.footer):
            text = "\n".join(_docx_blocks(margin.iter_inner_content(), []))
            if text and text not in seen_margins:
                seen_margins.add(text)
                lines.append(text)
    tables: list[Table] = []
    lines.extend(_docx_blocks(document.iter_inner_content(), tables))
    text = "\n".join(lines).strip()
    return _Out(text=text, error=None if text else "no text in DOCX", tables=tables)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


class _Sheets:
    """Sheets as text lines (``# title`` then tab-separated rows) and as tables, bounded."""

    def __init__(self, max_chars: int) -> None:
        self.lines: list[str] = []
        self.tables: list[Table] = []
        self.max_chars = max_chars
        self.rows_read = 0
        self.size = 0
        self._rows: list[tuple[str, ...]] = []

    def sheet(self, title: str) -> None:
        self.end()
        self.lines.append(f"# {title}")

    def full(self, count: int) -> bool:
        return count >= MAX_SHEET_ROWS or self.rows_read >= MAX_ROWS or self.size >= self.max_chars

    def row(self, cells: Iterable[str]) -> None:
        self.rows_read += 1
        kept = _row(cells)
        if kept:
            line = "\t".join(kept)
            self.lines.append(line)
            self.size += len(line) + 1
            self._rows.append(kept)

    def end(self) -> None:
        if self._rows:
            self.tables.append(tuple(self._rows))
        self._rows = []

    def out(self, label: str) -> _Out:
        self.end()
        if not self.tables:
            return _Out(error=f"no cell values in {label}")
        return _Out(text="\n".join(self.lines).strip(), tables=self.tables)


def _xlsx(att: Attachment, run: _Run) -> _Out:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(att.data), read_only=True, data_only=True)
    sheets = _Sheets(run.max_chars)
    try:
        for sheet in workbook.worksheets:
            sheets.sheet(sheet.title)
            for count, row in enumerate(sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)):
                if sheets.full(count):
                    break
                sheets.row(_cell(v) for v in row)
    finally:
        workbook.close()
    return sheets.out("XLSX")


def _xls_cell(xlrd: Any, cell: Any, datemode: int) -> str:
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return _cell(xlrd.xldate_as_datetime(cell.value, datemode))
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return _cell(cell.value)
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return _cell(bool(cell.value))
    if cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return ""
    return _cell(cell.value)


def _xls(att: Attachment, run: _Run) -> _Out:
    import xlrd  # type: ignore[import-untyped]

    try:
        book = xlrd.open_workbook(
            file_contents=att.data, on_demand=True, logfile=io.StringIO(), verbosity=0
        )
    except xlrd.XLRDError as exc:
        if "encrypted" in str(exc).lower():
            return _Out(error="encrypted XLS: a password is needed")
        raise
    sheets = _Sheets(run.max_chars)
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            sheets.sheet(str(sheet.name))
            for number in range(sheet.nrows):
                if sheets.full(number):
                    break
                cells = sheet.row_slice(number, 0, min(sheet.ncols, MAX_COLUMNS))
                sheets.row(_xls_cell(xlrd, cell, book.datemode) for cell in cells)
            book.unload_sheet(index)
    finally:
        book.release_resources()
    return sheets.out("XLS")


# --------------------------------------------------------------------------- OpenDocument

_ODF = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
}


def _q(prefix: str, name: str) -> str:
    return f"{{{_ODF[prefix]}}}{name}"


_P, _H = _q("text", "p"), _q("text", "h")
_SPACE, _TAB, _BREAK = _q("text", "s"), _q("text", "tab"), _q("text", "line-break")
_TABLE, _ROW, _CELL = _q("table", "table"), _q("table", "table-row"), _q("table", "table-cell")
_COVERED = _q("table", "covered-table-cell")
_FRAME = _q("draw", "frame")
# Not text a reader sees: deleted revisions, comments, footnote marks, index bookkeeping.
_ODF_SKIP = frozenset(
    {
        _q("text", "tracked-changes"),
        _q("office", "annotation"),
        _q("text", "note-citation"),
        _q("text", "sequence-decls"),
        _q("text", "variable-decls"),
        _q("table", "table-columns"),
        _q("table", "table-column"),
        _q("office", "forms"),
    }
)
_ROW_GROUPS = frozenset(
    {
        _q("table", "table-header-rows"),
        _q("table", "table-rows"),
        _q("table", "table-row-group"),
    }
)


def _odf_xml(archive: zipfile.ZipFile, name: str) -> ET.Element | None:
    """A part of an OpenDocument package, parsed; no DTD, so no entity can be declared."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    data = archive.read(info)
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError(f"{name} declares a DTD: refused")
    # The check above leaves expat nothing to expand (and Python 3.11's expat also bounds
    # entity amplification); an ODF part never needs a DTD.
    return ET.fromstring(data)  # noqa: S314 - DOCTYPE and ENTITY refused just above


def _repeat(element: ET.Element, attribute: str) -> int:
    try:
        return max(1, int(element.get(_q("table", attribute), "1")))
    except ValueError:
        return 1


def _odf_inline(element: ET.Element, out: list[str]) -> None:
    """The text inside a paragraph: spans, links, spaces, tabs and line breaks."""
    if element.text:
        out.append(element.text)
    for child in element:
        if child.tag == _SPACE:
            out.append(" " * min(_repeat_text(child), 100))
        elif child.tag == _TAB:
            out.append("\t")
        elif child.tag == _BREAK:
            out.append("\n")
        elif child.tag not in _ODF_SKIP and child.tag != _FRAME:
            _odf_inline(child, out)  # a frame's text box is read as paragraphs of its own
        if child.tail:
            out.append(child.tail)


def _repeat_text(element: ET.Element) -> int:
    try:
        return max(1, int(element.get(_q("text", "c"), "1")))
    except ValueError:
        return 1


def _odf_cell_value(cell: ET.Element, typed: bool) -> str:
    """A cell as shown, or for a spreadsheet its value: ISO dates, plain numbers."""
    if typed:
        kind = cell.get(_q("office", "value-type"))
        if kind in ("float", "percentage", "currency"):
            value = cell.get(_q("office", "value"))
            if value is not None:
                try:
                    return _cell(float(value))
                except ValueError:
                    return value
        elif kind in ("date", "time", "boolean"):
            value = cell.get(_q("office", f"{kind}-value"))
            if value is not None:
                return value.upper() if kind == "boolean" else value
    paragraphs: list[str] = []
    for paragraph in cell.iter():
        if paragraph.tag in (_P, _H):
            parts: list[str] = []
            _odf_inline(paragraph, parts)
            paragraphs.append("".join(parts))
    return " ".join(" ".join(paragraphs).split())


def _odf_rows(table: ET.Element) -> Iterator[ET.Element]:
    for child in table:
        if child.tag == _ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _odf_rows(child)


def _odf_table(table: ET.Element, typed: bool, budget: list[int]) -> list[tuple[str, ...]]:
    """Rows of a table:table; repeated rows and columns expanded only where they hold text.

    ``budget`` is the rows still allowed for this file (a one-item list, shared).
    """
    rows: list[tuple[str, ...]] = []
    for count, row in enumerate(_odf_rows(table)):
        if count >= MAX_SHEET_ROWS * 4 or budget[0] <= 0 or len(rows) >= MAX_SHEET_ROWS:
            break
        cells: list[str] = []
        pending = 0  # empty cells not yet written: only written if text follows them
        for cell in row:
            if cell.tag not in (_CELL, _COVERED):
                continue
            value = _odf_cell_value(cell, typed)
            repeat = _repeat(cell, "number-columns-repeated")
            if not value:
                pending += repeat
                continue
            if len(cells) + pending >= MAX_COLUMNS:
                break
            cells.extend([""] * pending)
            pending = 0
            cells.extend([value] * min(repeat, MAX_COLUMNS - len(cells)))
        kept = _row(cells)
        if not kept:
            continue
        for _ in range(min(_repeat(row, "number-rows-repeated"), budget[0])):
            rows.append(kept)
            budget[0] -= 1
    return rows


def _odf_blocks(
    element: ET.Element,
    lines: list[str],
    tables: list[Table],
    budget: list[int],
    typed: bool,
) -> None:
    for child in element:
        if child.tag in _ODF_SKIP:
            continue
        if child.tag in (_P, _H):
            parts: list[str] = []
            _odf_inline(child, parts)
            text = "".join(parts).strip()
            if text:
                lines.append(text)
            # Frames anchored in the paragraph (text boxes) hold paragraphs of their own.
            for frame in child.iter(_q("draw", "text-box")):
                _odf_blocks(frame, lines, tables, budget, typed)
        elif child.tag == _TABLE:
            rows = _odf_table(child, typed, budget)
            if typed:
                lines.append(f"# {child.get(_q('table', 'name'), '')}".rstrip())
            lines.extend("\t".join(r) for r in rows)
            if rows:
                tables.append(tuple(rows))
            # A table inside a cell (ODT allows it) is a table of its own.
            for cell in child.iter(_CELL):
                for nested in cell.findall(_TABLE):
                    rows = _odf_table(nested, typed, budget)
                    if rows:
                        tables.append(tuple(rows))
        else:
            _odf_blocks(child, lines, tables, budget, typed)


def _odf(att: Attachment, run: _Run, spreadsheet: bool) -> _Out:
    label = "ODS" if spreadsheet else "ODT"
    with zipfile.ZipFile(io.BytesIO(att.data)) as archive:
        manifest = _odf_xml(archive, "META-INF/manifest.xml")
        if manifest is not None and any(
            el.tag.endswith("}encryption-data") for el in manifest.iter()
        ):
            return _Out(error=f"encrypted {label}: a password is needed")
        content = _odf_xml(archive, "content.xml")
        styles = None if spreadsheet else _odf_xml(archive, "styles.xml")
    if content is None:
        return _Out(error=f"corrupt {label}: no content.xml")
    lines: list[str] = []
    tables: list[Table] = []
    budget = [MAX_ROWS]
    if styles is not None:
        # Letterheads live in the page header of the master page, as in DOCX.
        seen: set[str] = set()
        for margin in ("header", "footer"):
            for part in styles.iter(_q("style", margin)):
                margin_lines: list[str] = []
                _odf_blocks(part, margin_lines, [], [MAX_SHEET_ROWS], typed=False)
                text = "\n".join(margin_lines)
                if text and text not in seen:
                    seen.add(text)
                    lines.append(text)
    body = content.find(_q("office", "body"))
    if body is not None:
        _odf_blocks(body, lines, tables, budget, typed=spreadsheet)
    if spreadsheet:
        lines = [line for line in lines if line.strip()]
        if not tables:
            return _Out(error="no cell values in ODS")
    text = "\n".join(lines).strip()
    return _Out(text=text, error=None if text else f"no text in {label}", tables=tables)


# --------------------------------------------------------------------------- RTF

# Destinations whose text no reader sees: tables of fonts, colours and styles, document
# properties, pictures and embedded objects, field codes (their results are kept).
_RTF_SKIP = frozenset(
    {
        b"fonttbl",
        b"colortbl",
        b"stylesheet",
        b"info",
        b"pict",
        b"object",
        b"objdata",
        b"themedata",
        b"colorschememapping",
        b"datastore",
        b"latentstyles",
        b"listtable",
        b"listoverridetable",
        b"rsidtbl",
        b"revtbl",
        b"generator",
        b"xmlnstbl",
        b"fldinst",
        b"filetbl",
        b"pgdsctbl",
        b"mmathPr",
        b"nonshppict",
        b"bkmkstart",
        b"bkmkend",
        b"annotation",
        b"atnid",
        b"atnauthor",
    }
)
_RTF_SYMBOLS = {
    b"par": "\n",
    b"line": "\n",
    b"row": "\n",
    b"sect": "\n\n",
    b"page": "\n\n",
    b"tab": "\t",
    b"cell": "\t",
    b"nestcell": "\t",
    b"emdash": "\u2014",
    b"endash": "\u2013",
    b"bullet": "\u2022",
    b"lquote": "\u2018",
    b"rquote": "\u2019",
    b"ldblquote": "\u201c",
    b"rdblquote": "\u201d",
    b"emspace": " ",
    b"enspace": " ",
    b"qmspace": " ",
}
_RTF_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # control word, its number, one delimiting space
    rb"|\\'([0-9a-fA-F]{2})"  # a byte in the document's code page
    rb"|\\([^a-zA-Z'])"  # control symbol
    rb"|([{}])"
    rb"|([^\\{}\r\n]+)"  # text
    rb"|[\r\n]+",  # line ends in RTF source mean nothing
    re.DOTALL,
)


def _codec(codepage: int) -> str:
    name = f"cp{codepage}"
    try:
        codecs.lookup(name)
    except LookupError:
        return "cp1252"
    return name


def rtf_to_text(data: bytes, max_chars: int = 200_000) -> str:
    """The text of an RTF document, bounded in input, nesting and output.

    A small reader of the RTF 1.9 token syntax: destinations no reader sees are skipped,
    ``\\'hh`` bytes decode in the ``\\ansicpg`` code page, ``\\uN`` with its ``\\ucN``
    fallback characters, ``\\binN`` data skipped. Raises ValueError beyond MAX_RTF_DEPTH.
    """
    data = data[:MAX_RTF_BYTES]
    out: list[str] = []
    size = 0
    codec = "cp1252"
    pending = bytearray()  # \'hh bytes, decoded together (a multi-byte code page needs it)
    stack: list[tuple[bool, int]] = []
    skip, uc, to_drop = False, 1, 0
    pos = 0

    def emit(text: str) -> None:
        nonlocal size
        if pending:
            out.append(pending.decode(codec, errors="replace"))
            size += len(pending)
            pending.clear()
        if text:
            out.append(text)
            size += len(text)

    while pos < len(data) and size < max_chars:
        match = _RTF_TOKEN.match(data, pos)
        if match is None:  # a lone backslash at the end
            break
        pos = match.end()
        word, number, hexbyte, symbol, brace, text = match.groups()
        if brace == b"{":
            if len(stack) >= MAX_RTF_DEPTH:
                raise ValueError("nested too deep")
            stack.append((skip, uc))
            to_drop = 0
        elif brace == b"}":
            if stack:
                skip, uc = stack.pop()
            to_drop = 0
        elif symbol is not None:
            if symbol == b"*":
                skip = True  # an optional destination: skipped unless we know it
            elif skip:
                pass
            elif symbol in (b"{", b"}", b"\\"):
                emit(symbol.decode())
            elif symbol == b"~":
                emit("\xa0")
            elif symbol == b"_":
                emit("\u2011")
            elif symbol in (b"\r", b"\n"):
                emit("\n")
        elif hexbyte is not None:
            if to_drop:
                to_drop -= 1
            elif not skip:
                pending.append(int(hexbyte, 16))
        elif word is not None:
            if word == b"bin" and number:
                pos += max(0, int(number))
                to_drop = 0
                continue
            if word in _RTF_SKIP:
                skip = True  # the group is a font table, a picture...: none of it is text
            if skip:
                continue
            if word == b"ansicpg" and number:
                codec = _codec(int(number))
            elif word == b"uc" and number:
                uc = max(0, min(int(number), 10))
            elif word == b"u" and number:
                code = int(number)
                if code < 0:
                    code += 65536
                emit(chr(code) if 0 <= code < 0x110000 else "\ufffd")
                to_drop = uc
            elif word in _RTF_SYMBOLS:
                emit(_RTF_SYMBOLS[word])
        elif text is not None:
            if to_drop:
                cut = min(to_drop, len(text))
                text, to_drop = text[cut:], to_drop - cut
            if not skip and text:
                emit(text.decode(codec, errors="replace"))
    emit("")
    # \uN gives a character beyond the BMP as two surrogates: pair them, drop strays.
    joined = "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    lines = (line.rstrip(" \t\xa0") for line in joined.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()[:max_chars]


def _rtf(att: Attachment, run: _Run) -> _Out:
    text = rtf_to_text(att.data, run.max_chars)
    return _Out(text=text, error=None if text else "no text in RTF")


# --------------------------------------------------------------------------- legacy Word


@contextlib.contextmanager
def _as_path(data: bytes) -> Iterator[tuple[str, tuple[int, ...]]]:
    """The bytes as a path a program can open and seek: an anonymous memory file on Linux,
    so attachment bytes never touch the disk; a private temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("attachment")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/dev/fd/{fd}", (fd,)
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(suffix=".doc") as handle:
        handle.write(data)
        handle.flush()
        yield handle.name, ()


def _word_encrypted(data: bytes) -> bool:
    """The fEncrypted bit of a Word 97-2003 file's FIB (RC4 or XOR obfuscation)."""
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole, ole.openstream("WordDocument") as stream:
            fib = stream.read(12)
    except Exception:  # noqa: BLE001 - olefile on hostile input; antiword will say more
        return False
    return len(fib) >= 12 and bool(int.from_bytes(fib[10:12], "little") & 0x0100)


def _doc(att: Attachment, run: _Run) -> _Out:
    if _word_encrypted(att.data):
        return _Out(error="encrypted DOC: a password is needed")
    # antiword lays out paragraphs and tables best; catdoc reads files antiword refuses.
    tools = [
        (shutil.which("antiword"), ["-m", "UTF-8.txt", "-w", "0"]),
        (shutil.which("catdoc"), ["-d", "utf-8", "-w"]),
    ]
    found = [(path, args) for path, args in tools if path is not None]
    if not found:
        return _Out(error="cannot read DOC: neither antiword nor catdoc is installed")
    problems: list[str] = []
    empty = False
    with _as_path(att.data) as (path, fds):
        for program, args in found:
            name = os.path.basename(program)
            try:
                done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                    [program, *args, path],
                    capture_output=True,
                    timeout=TOOL_TIMEOUT,
                    pass_fds=fds,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                problems.append(f"{name} timed out")
                continue
            except OSError as exc:
                problems.append(f"{name}: {exc.strerror or type(exc).__name__}")
                continue
            text = done.stdout.decode("utf-8", errors="replace")
            text = "\n".join(line.rstrip() for line in text.splitlines())
            text = re.sub(r"\n{3,}", "\n\n", text).strip()
            if done.returncode == 0 and text:
                return _Out(text=text[: run.max_chars])
            if done.returncode == 0:
                empty = True
                continue
            why = done.stderr.decode(errors="replace").replace(path, "file").strip()
            if "encrypt" in why.lower():
                return _Out(error="encrypted DOC: a password is needed")
            problems.append(f"{name}: {why.splitlines()[0][:100] if why else 'no text'}")
    if empty:
        return _Out(error="no text in DOC")
    return _Out(error=f"corrupt DOC: {'; '.join(problems)}"[:200])


# --------------------------------------------------------------------------- text, CSV, HTML


def _decode_text(data: bytes) -> str | None:
    sample = data[:4096]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 without a BOM shows NULs in every other byte; anything else is binary.
        odd, even = sample[1::2].count(0), sample[0::2].count(0)
        if odd > len(sample) // 4:
            text = data.decode("utf-16-le", errors="replace")
        elif even > len(sample) // 4:
            text = data.decode("utf-16-be", errors="replace")
        else:
            return None
    else:
        text = decode_bytes(data)[0]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _csv_table(text: str) -> Table:
    """A CSV or TSV file as a table; the delimiter is the one used most evenly."""
    sample = [line for line in text[:20_000].split("\n")[:20] if line.strip()]
    best, best_score = ",", 0.0
    for delimiter in (",", ";", "\t", "|"):
        counts = [line.count(delimiter) for line in sample]
        if counts and min(counts) > 0:
            score = min(counts) + (1.0 if len(set(counts)) == 1 else 0.0)
            if score > best_score:
                best, best_score = delimiter, score
    rows: list[tuple[str, ...]] = []
    reader = csv.reader(io.StringIO(text[:10_000_000]), delimiter=best)
    try:
        for count, record in enumerate(reader):
            if count >= MAX_ROWS:
                break
            kept = _row(record)
            if kept:
                rows.append(kept)
    except csv.Error:
        pass  # a stray quote or NUL: keep the rows read so far
    return tuple(rows)


def _text(att: Attachment, run: _Run) -> _Out:
    text = _decode_text(att.data)
    if text is None:
        return _Out(error="binary data in a text attachment")
    tables: list[Table] = []
    if att.content_type in _TABLE_TYPES or _extension(att) in _TABLE_EXTENSIONS:
        table = _csv_table(text)
        if table:
            tables.append(table)
    return _Out(text=text, tables=tables)


def _html(att: Attachment, run: _Run) -> _Out:
    return _Out(text=html_to_text(decode_bytes(att.data)[0]))


_READERS: dict[str, Callable[[Attachment, _Run], _Out]] = {
    "pdf": _pdf,
    "image": _image,
    "docx": _docx,
    "xlsx": _xlsx,
    "xls": _xls,
    "odt": lambda att, run: _odf(att, run, spreadsheet=False),
    "ods": lambda att, run: _odf(att, run, spreadsheet=True),
    "rtf": _rtf,
    "doc": _doc,
    "text": _text,
    "html": _html,
}


# --------------------------------------------------------------------------- containers


def _type_for(name: str) -> str:
    dot = name.rfind(".")
    return _TYPES_BY_EXTENSION.get(name[dot:].lower(), "application/octet-stream")


def _inner(
    filename: str, data: bytes, content_type: str, taken: set[str], run: _Run
) -> Attachment | None:
    """An inner file as an Attachment with a safe name unique in its container, or None
    when the message's budget of inner files or bytes is spent."""
    if run.files <= 0 or len(data) > run.inner_bytes:
        return None
    run.files -= 1
    run.inner_bytes -= len(data)
    safe = _unique(safe_filename(filename, len(taken) + 1, content_type), taken)
    return Attachment(
        filename=filename,
        safe_name=safe,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        inline=False,
    )


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its maker meant it: zips made on Windows without the UTF-8 flag
    are often UTF-8 anyway, which zipfile has read as code page 437."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return info.filename


_ZIP_JUNK = re.compile(r"(^|/)(__MACOSX/|\._|\.DS_Store$|Thumbs\.db$|desktop\.ini$)", re.I)


def _open_zip(att: Attachment, run: _Run, taken: set[str]) -> _Opened:
    inner: list[Attachment] = []
    encrypted = unreadable = over_budget = too_large = files = 0
    with zipfile.ZipFile(io.BytesIO(att.data)) as archive:
        for info in archive.infolist():
            name = _zip_name(info)
            if info.is_dir() or _ZIP_JUNK.search(name):
                continue
            files += 1
            if info.flag_bits & 0x1:
                encrypted += 1
                continue
            if info.file_size > run.limits.attachment_bytes:
                too_large += 1
                continue
            if info.file_size > run.inner_bytes:
                over_budget += 1
                continue
            try:
                data = archive.read(info)  # never more than the declared size: zipfile stops
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError):
                unreadable += 1
                continue
            except (zlib.error, ValueError):
                unreadable += 1
                continue
            made = _inner(name, data, _type_for(name), taken, run)
            if made is None:
                over_budget += 1
                continue
            inner.append(made)
    notes: list[str] = []
    if encrypted and encrypted == files:
        notes.append("encrypted ZIP: a password is needed")
    elif encrypted:
        notes.append(f"{encrypted} encrypted files not read")
    if unreadable:
        notes.append(f"{unreadable} damaged files not read")
    if too_large:
        notes.append(
            over_limit(
                f"{too_large} files larger than {size(run.limits.attachment_bytes)} not read"
            )
        )
    if over_budget:
        notes.append(over_limit(f"{over_budget} files not read: size or count limit reached"))
    if not files:
        notes.append("empty ZIP")
    return _Opened("", inner, notes)


def _mail_head(subject: str, sender: str, date: str) -> str:
    head = [f"Subject: {subject}"]
    if sender:
        head.append(f"From: {sender}")
    if date:
        head.append(f"Date: {date}")
    return "\n".join(head)


def _parsed(att: Attachment, run: _Run) -> ParsedMessage:
    found = run.parsed.get(att.sha256)
    if found is None:
        found = parse_message(att.data)
        if len(run.parsed) < 50:
            run.parsed[att.sha256] = found
    return found


def _open_eml(att: Attachment, run: _Run, taken: set[str]) -> _Opened:
    inner_msg = _parsed(att, run)
    sender = f"{inner_msg.from_name} <{inner_msg.from_addr}>".strip() if inner_msg.from_addr else ""
    date = inner_msg.date.isoformat() if inner_msg.date is not None else ""
    own = _mail_head(inner_msg.subject, sender, date) + "\n\n" + inner_msg.text
    # The MIME parser lifts the files of a mail attached to this one up to this one's list:
    # keep only this mail's own files; the attached mail brings its own when it is read.
    nested: set[str] = set()
    for candidate in inner_msg.attachments:
        if candidate.content_type in _MESSAGE_TYPES:
            with contextlib.suppress(UnparseableMessage):
                nested.update(a.sha256 for a in _parsed(candidate, run).attachments)
    inner: list[Attachment] = []
    skipped = 0
    for candidate in inner_msg.attachments:
        if candidate.sha256 in nested:
            continue
        made = _inner(candidate.safe_name, candidate.data, candidate.content_type, taken, run)
        if made is None:
            skipped += 1
        else:
            inner.append(dataclasses.replace(made, filename=candidate.filename))
    notes = [f"{skipped} files not read: size or count limit reached"] if skipped else []
    return _Opened(own, inner, notes)


def _open_msg(att: Attachment, run: _Run, taken: set[str]) -> _Opened:
    import extract_msg

    if len(att.data) < 1536:  # extract_msg would take such short bytes for a file path
        raise ValueError("too short for an Outlook message")
    message = extract_msg.openMsg(att.data, strict=False)
    inner: list[Attachment] = []
    skipped = 0
    try:
        subject = str(getattr(message, "subject", "") or "")
        sender = str(getattr(message, "sender", "") or "")
        date = getattr(message, "date", None)
        body = getattr(message, "body", None)
        text = str(body) if body else ""
        if not text.strip():
            html_body = getattr(message, "htmlBody", None)
            if html_body:
                text = html_to_text(decode_bytes(bytes(html_body))[0])
        if not text.strip():
            rtf_body = getattr(message, "rtfBody", None)
            if rtf_body:
                text = rtf_to_text(bytes(rtf_body), run.max_chars)
        text = text.replace("\r\n", "\n")
        shown_date = date.isoformat() if isinstance(date, dt.datetime) else str(date or "")
        own = _mail_head(subject, sender, shown_date) + "\n\n" + text.strip()
        for item in getattr(message, "attachments", ()):
            data = getattr(item, "data", None)
            name = str(
                getattr(item, "longFilename", None)
                or getattr(item, "shortFilename", None)
                or getattr(item, "displayName", None)
                or ""
            )
            content_type = str(getattr(item, "mimetype", None) or "") or _type_for(name)
            export = getattr(data, "exportBytes", None)
            if callable(export):  # an attached Outlook item
                data = export()
                content_type = "application/vnd.ms-outlook"
                if not name.lower().endswith(".msg"):
                    name = (name or "message") + ".msg"
            if not isinstance(data, bytes):
                continue  # a link to a cloud file: no bytes came with the mail
            made = _inner(name, data, content_type, taken, run)
            if made is None:
                skipped += 1
            else:
                inner.append(made)
    finally:
        message.close()
    notes = [f"{skipped} files not read: size or count limit reached"] if skipped else []
    return _Opened(own, inner, notes)


def _ole_package(data: bytes) -> tuple[str, bytes] | None:
    """(file name, bytes) of the file inside an OLE "Package" object ([MS-OLEDS] 2.3.6
    ``Ole10Native``), or None when ``data`` is something else."""
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            if not ole.exists("\x01Ole10Native"):
                return None
            with ole.openstream("\x01Ole10Native") as stream:
                native = stream.read()
    except Exception:  # noqa: BLE001 - olefile on hostile input: not a package then
        return None

    def string(pos: int) -> tuple[bytes, int]:
        end = native.find(b"\x00", pos)
        if end < 0:
            raise ValueError("unterminated")
        return native[pos:end], end + 1

    try:
        label, pos = string(6)  # total size (4 bytes), flags (2)
        _source, pos = string(pos)
        pos += 4  # two reserved 16-bit words
        length = int.from_bytes(native[pos : pos + 4], "little")
        temp_path = native[pos + 4 : pos + 4 + length].rstrip(b"\x00")
        pos += 4 + length
        size = int.from_bytes(native[pos : pos + 4], "little")
        payload = native[pos + 4 : pos + 4 + size]
    except ValueError:
        return None
    if not payload or len(payload) != size:
        return None
    name = label or temp_path.replace(b"\\", b"/").rsplit(b"/", 1)[-1]
    return decode_bytes(name)[0], payload


def _open_tnef(att: Attachment, run: _Run, taken: set[str]) -> _Opened:
    from tnefparse import TNEF  # type: ignore[import-untyped]

    tnef = TNEF(att.data, do_checksum=False)
    text = ""
    body = tnef.body
    if body:
        text = body if isinstance(body, str) else decode_bytes(bytes(body))[0]
    if not text.strip() and tnef.htmlbody:
        html_body = tnef.htmlbody
        markup = html_body if isinstance(html_body, str) else decode_bytes(bytes(html_body))[0]
        text = html_to_text(markup)
    if not text.strip():
        rtf_body = tnef.rtfbody
        if rtf_body:
            text = rtf_to_text(bytes(rtf_body), run.max_chars)
    inner: list[Attachment] = []
    skipped = 0
    for item in tnef.attachments:
        try:
            raw_name = item.long_filename() or item.name or ""
        except Exception:  # noqa: BLE001 - tnefparse decodes names lazily and may raise
            raw_name = ""
        if isinstance(raw_name, bytes):
            raw_name = decode_bytes(raw_name)[0]
        name = str(raw_name)
        data = item.data
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogateescape")
        if not isinstance(data, bytes):
            continue
        if data[16:24] == _OLE_MAGIC:
            # An attached object (PT_OBJECT): its interface ID, then the OLE storage itself,
            # most often a "Package" wrapping a plain file (Outlook's rich-text attachments).
            data = data[16:]
            packaged = _ole_package(data)
            if packaged is not None:
                name, data = packaged
        made = _inner(name.strip("\x00"), data, _type_for(name), taken, run)
        if made is None:
            skipped += 1
        else:
            inner.append(made)
    notes = [f"{skipped} files not read: size or count limit reached"] if skipped else []
    return _Opened(text.replace("\r\n", "\n").strip(), inner, notes)


_OPENERS: dict[str, Callable[[Attachment, _Run, set[str]], _Opened]] = {
    "zip": _open_zip,
    "eml": _open_eml,
    "msg": _open_msg,
    "tnef": _open_tnef,
}


# --------------------------------------------------------------------------- the walk


def _failure(method: str, exc: BaseException) -> str:
    label = _label(method)
    if isinstance(exc, RecursionError):
        return f"corrupt {label}: too deep"
    if isinstance(exc, MemoryError):
        return f"{label} too large to read: out of memory"
    if isinstance(exc, UnparseableMessage):
        return f"attached message unreadable: {exc}"
    reason = _first_line(exc)
    if method == "pdf" and "decrypt" in reason.lower():
        return "encrypted PDF"
    if method == "zip" and ("encrypted" in reason.lower() or "password" in reason.lower()):
        return "encrypted ZIP: a password is needed"
    return f"corrupt {label}: {reason}"[:200]


def _leaf(att: Attachment, name: str, method: str, run: _Run) -> Extraction:
    key = f"{att.sha256} {method} {_extension(att)} {att.content_type}"
    known = run.done.get(key)
    if known is not None:
        return dataclasses.replace(known, name=name)
    try:
        out = _READERS[method](att, run)
    except Exception as exc:  # noqa: BLE001 - the per-file bulkhead: libraries raise anything
        result = Extraction(name, method, "", _failure(method, exc))
    else:
        result = Extraction(
            name,
            out.method or method,
            out.text[: run.max_chars],
            out.error,
            tuple(out.tables),
            out.ocr,
        )
    run.done[key] = result
    return result


def _container(
    att: Attachment, name: str, method: str, depth: int, run: _Run, taken: set[str]
) -> Extraction:
    if depth <= 0 and method == "zip":
        return Extraction(
            name,
            method,
            "",
            over_limit(f"not opened: archives nested deeper than {run.limits.zip_depth}"),
        )
    try:
        # Below the last level a mail's own words are read, its files are not: their names
        # must not take names that unpack() (which does not open it) gives to later files.
        opened = _OPENERS[method](att, run, taken if depth > 0 else set(taken))
    except Exception as exc:  # noqa: BLE001 - the per-file bulkhead: libraries raise anything
        return Extraction(name, method, "", _failure(method, exc))
    notes = list(opened.notes)
    parts: list[Extraction] = []
    if depth <= 0:
        if opened.inner:
            notes.append(
                f"{len(opened.inner)} attached files not read:"
                f" nested deeper than {run.limits.zip_depth}"
            )
    else:
        parts = [
            _extract(inner, f"{name}/{inner.safe_name}", depth - 1, run, taken)
            for inner in opened.inner
        ]
    chunks = [opened.text.strip()] if opened.text.strip() else []
    tables: list[Table] = []
    used_ocr = False
    for part, inner in zip(parts, opened.inner if parts else (), strict=True):
        if inner.sha256 in run.lifted:
            continue  # the message carries this file itself: it counts there
        if part.text:
            chunks.append(f"[{part.name}]\n{part.text}")
        tables.extend(part.tables)
        used_ocr = used_ocr or part.ocr
    text = "\n\n".join(chunks)[: run.max_chars]
    return Extraction(name, method, text, _join(*notes), tuple(tables), used_ocr, tuple(parts))


def _extract(att: Attachment, name: str, depth: int, run: _Run, taken: set[str]) -> Extraction:
    method, error = _method(att, run.limits)
    if error is not None or method == "none":
        return Extraction(name, method, "", error)
    if method in _CONTAINERS:
        return _container(att, name, method, depth, run, taken)
    return _leaf(att, name, method, run)


def extract_text(
    att: Attachment, *, max_chars: int = 200_000, ocr: bool = True, limits: Limits | None = None
) -> Extraction:
    """The text of one attachment, and of the files inside it; never raises."""
    run = _Run(max_chars, ocr, limits or Limits())
    return _extract(att, att.safe_name, run.limits.zip_depth, run, set())


def iter_extractions(
    msg: ParsedMessage,
    *,
    max_chars: int = 200_000,
    ocr: bool = True,
    limits: Limits | None = None,
) -> Iterator[Extraction]:
    """:func:`extract_all`, one attachment at a time (the worker sends each as it is done).

    The attachments share one budget of OCR pages and inner files, and a file met twice
    (an attached mail's files are also the message's own) is read once. A file stopped by
    one of ``limits`` says so (:meth:`Extraction.limit_reached`).
    """
    run = _Run(
        max_chars,
        ocr,
        limits or Limits(),
        lifted=frozenset(a.sha256 for a in msg.attachments),
    )
    for att in msg.attachments:
        yield _extract(att, att.safe_name, run.limits.zip_depth, run, set())


def extract_all(
    msg: ParsedMessage,
    *,
    max_chars: int = 200_000,
    ocr: bool = True,
    limits: Limits | None = None,
) -> tuple[Extraction, ...]:
    """One :class:`Extraction` per attachment of ``msg``, in order."""
    return tuple(iter_extractions(msg, max_chars=max_chars, ocr=ocr, limits=limits))


def unpack(att: Attachment, *, limits: Limits | None = None) -> tuple[Attachment, ...]:
    """The files inside a zip, .msg, winmail.dat or attached mail, and inside those (as many
    containers deep as :func:`extract_text` opens under the same ``limits``), each with a
    safe name unique among them; () for any other file or one that cannot be opened. The
    names are those of the ``parts`` of :func:`extract_text` (``pack.zip/inner.zip/list.pdf``
    is ``list.pdf`` here).
    """
    run = _Run(max_chars=0, ocr=False, limits=limits or Limits())
    found: list[Attachment] = []
    taken: set[str] = set()

    def visit(container: Attachment, left: int) -> None:
        method, error = _method(container, run.limits)
        if method not in _CONTAINERS or error is not None or left <= 0:
            return
        try:
            opened = _OPENERS[method](container, run, taken)
        except Exception:  # noqa: BLE001 - a container that cannot be opened gives no files
            return
        for inner in opened.inner:
            found.append(inner)
            visit(inner, left - 1)

    visit(att, run.limits.zip_depth)
    return tuple(found)
