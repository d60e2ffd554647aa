"""Hostile attachment names, through the whole path: MIME bytes → parse → processing → archive.

A mission's note with some thirty attachments, zip entries, winmail.dat files and a forwarded
mail whose names try to climb out of the archive, hide, overwrite each other or pass for a
device. Whatever the name, each file lands once, inside its submission's folder, under a
readable name that keeps its extension, and nothing outside the archive is written.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import unicodedata
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import load_settings
from parsers.message import MAX_NAME_BYTES, parse_message
from tests.app import keep
from worker import processing
from worker.runtime import Context, build_context
from worker.samples import pdf_bytes
from worker.store import Archive, ArchiveError, FiledFile, PlannedFile, Status

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)
BOUNDARY = b"==ccm-hostile-names=="
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{port}{n}" for port in ("com", "lpt") for n in "0123456789¹²³"}
)
# Absolute targets the names aim at: none may appear or change.
ABSOLUTE_TARGETS = ("/etc/passwd", "/etc/shadow", "/etc/cron.d/job", "/etc/abs.txt", "/x")


@dataclass(frozen=True, slots=True)
class Hostile:
    """One attachment: how its name is sent, and what its stored name must still say."""

    name_headers: bytes  # the part's header lines that carry its name
    keeps: str  # a word of the name that must survive, so the secretary can tell files apart
    ext: str  # the extension the stored name must end with; "" when there is none


def disposition(params: bytes) -> bytes:
    return b"Content-Disposition: attachment; " + params


def quoted(name: str) -> bytes:
    return disposition(b'filename="' + name.encode() + b'"')


def rfc2231(octets: bytes) -> bytes:
    """``filename*=utf-8''…`` with every octet percent-encoded."""
    return disposition(b"filename*=utf-8''" + b"".join(b"%%%02X" % b for b in octets))


def word_q(name: str) -> bytes:
    encoded = "".join(f"={b:02X}" for b in name.encode())
    return quoted(f"=?utf-8?q?{encoded}?=")


def word_b(name: str) -> bytes:
    return quoted(f"=?utf-8?b?{base64.b64encode(name.encode()).decode()}?=")


HOSTILE = (
    Hostile(quoted("../../x"), "x", ""),
    Hostile(quoted("../../../x.pdf"), "x", ".pdf"),
    Hostile(quoted("/etc/passwd"), "passwd", ""),
    Hostile(quoted("C:\\\\Windows\\\\system.pdf"), "system", ".pdf"),  # escaped, as RFC 2045 says
    Hostile(quoted("C:\\Windows\\raw.pdf"), "raw", ".pdf"),  # unescaped, as Outlook sends it
    Hostile(quoted("..\\\\..\\\\back"), "back", ""),
    Hostile(quoted("null\x00byte.pdf"), "byte", ".pdf"),  # a raw NUL in the header
    Hostile(rfc2231(b"null\x00pct.pdf"), "pct", ".pdf"),
    Hostile(rfc2231(b"line\r\nbreak.pdf"), "break", ".pdf"),
    Hostile(rfc2231(b"lone\rcr\nlf.pdf"), "lf", ".pdf"),
    Hostile(quoted("folded\r\n name.pdf"), "name", ".pdf"),  # a folded header line
    Hostile(rfc2231(b"../../escape.pdf"), "escape", ".pdf"),
    Hostile(rfc2231(b"/etc/cron.d/job"), "job", ""),
    Hostile(
        disposition(b"filename*0*=utf-8''..%2F..%2F; filename*1*=..%2Fcontinued.pdf"),
        "continued",
        ".pdf",
    ),
    Hostile(word_q("../../word.pdf"), "word", ".pdf"),
    Hostile(word_b("..\\..\\based.pdf"), "based", ".pdf"),
    Hostile(word_q("crlf\r\nword.pdf"), "word", ".pdf"),
    Hostile(word_b("/etc/shadow"), "shadow", ""),
    Hostile(quoted("CON"), "CON", ""),
    Hostile(quoted("nul.txt"), "nul", ".txt"),
    Hostile(quoted("COM1.pdf"), "COM1", ".pdf"),
    Hostile(quoted("aux"), "aux", ""),
    Hostile(rfc2231("LPT¹.doc".encode()), "LPT", ".doc"),
    Hostile(quoted("x" * 500 + ".pdf"), "xxxx", ".pdf"),
    Hostile(rfc2231(("é" * 500 + ".pdf").encode()), "éééé", ".pdf"),
    Hostile(rfc2231(("日" * 500 + ".xlsx").encode()), "日日日日", ".xlsx"),
    Hostile(rfc2231(("😀" * 500 + ".docx").encode()), "😀😀", ".docx"),
    Hostile(rfc2231("invoice\u202efdp.exe".encode()), "invoice", ".exe"),
    Hostile(quoted("Report.pdf"), "Report", ".pdf"),
    Hostile(quoted("REPORT.pdf"), "REPORT", ".pdf"),
    Hostile(quoted("report.PDF"), "report", ".PDF"),
    Hostile(rfc2231("Re\u0301sume\u0301.pdf".encode()), "Résumé", ".pdf"),  # NFD
    Hostile(rfc2231("R\u00e9sum\u00e9.pdf".encode()), "Résumé", ".pdf"),  # NFC
    Hostile(quoted("STRASSE.pdf"), "STRASSE", ".pdf"),
    Hostile(rfc2231("straße.pdf".encode()), "straße", ".pdf"),
    Hostile(quoted("same.pdf"), "same", ".pdf"),
    Hostile(quoted("same.pdf"), "same", ".pdf"),
    Hostile(quoted(".. .pdf"), "attachment", ".pdf"),  # would be a hidden ".pdf"
    Hostile(quoted(".htaccess"), "htaccess", ""),
    Hostile(quoted(".."), "attachment", ".bin"),
    Hostile(quoted("original.eml"), "original", ".eml"),  # the name the archive gives the mail
    Hostile(b'Content-Type: application/pdf; name="../../by-type.pdf"', "by-type", ".pdf"),
)

# Zip entries: (name in the zip, word kept, extension). Two share a name, with other bytes.
ZIP_ENTRIES = (
    ("../evil", "evil", ""),
    ("../../../outside.pdf", "outside", ".pdf"),  # from the working directory: the tmp root
    ("/etc/abs.txt", "abs", ".txt"),
    ("/x", "x", ""),
    ("dup.txt", "dup", ".txt"),
    ("dup.txt", "dup", ".txt"),
    ("DUP.TXT", "DUP", ".TXT"),
    ("..\\..\\win.txt", "win", ".txt"),
    ("C:/Users/x/drive.txt", "drive", ".txt"),
    ("sub/dir/../../../nested.pdf", "nested", ".pdf"),
    ("com2.txt", "com2", ".txt"),
)
TNEF_FILES = (("../../tnef.pdf", "tnef", ".pdf"), ("C:\\x\\tnef2.doc", "tnef2", ".doc"))
FORWARDED_FILES = (("../forwarded.pdf", "forwarded", ".pdf"), ("/etc/passwd", "passwd", ""))


def payload(label: str) -> bytes:
    """Distinct bytes per file, so that each stored file can be traced to what was sent."""
    return f"payload of {label}\n".encode()


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def part(headers: bytes, data: bytes, content_type: bytes = b"application/octet-stream") -> bytes:
    head = (
        b""
        if headers.lower().startswith(b"content-type:")
        else b"Content-Type: %s\r\n" % (content_type)
    )
    return (
        b"--" + BOUNDARY + b"\r\n" + head + headers + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(data)
    )


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": that is the point
        for i, (name, _keeps, _ext) in enumerate(ZIP_ENTRIES):
            archive.writestr(zipfile.ZipInfo(name), payload(f"zip entry {i}"))
    return buffer.getvalue()


def tnef_bytes() -> bytes:
    """A winmail.dat stream (MS-OXTNEF): attAttachRendData, attAttachTitle, attAttachData each."""

    def attribute(name: int, data: bytes) -> bytes:
        level, kind = 2, 1  # attachment level; the type is not checked
        checksum = sum(data) & 0xFFFF
        return (
            struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)
        )

    out = struct.pack("<IH", 0x223E9F78, 0)
    for i, (name, _keeps, _ext) in enumerate(TNEF_FILES):
        out += attribute(0x9002, bytes(14))
        out += attribute(0x8010, name.encode() + b"\x00")
        out += attribute(0x800F, payload(f"tnef file {i}"))
    return out


def forwarded_bytes() -> bytes:
    inner = BOUNDARY + b"-inner"
    parts = b"".join(
        b"--" + inner + b"\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(payload(f"forwarded file {i}"))
        for i, (name, _keeps, _ext) in enumerate(FORWARDED_FILES)
    )
    return (
        b"From: someone@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="' + inner + b'"\r\n\r\n'
        b"--"
        + inner
        + b"\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        + parts
        + b"--"
        + inner
        + b"--\r\n"
    )


NOTE = (
    "La Mission permanente de la France auprès de l'Office des Nations Unies à Genève présente "
    "ses compliments au Secrétariat de la Convention sur les armes à sous-munitions et a "
    "l'honneur de lui communiquer ci-joint la composition de la délégation française à la "
    "Septième Réunion des États parties (Genève, 4-6 septembre 2017).\r\n"
)


def hostile_mail() -> tuple[bytes, dict[str, tuple[str, str]]]:
    """The mail, and for each file it carries (sha256) the word and extension to keep."""
    expected: dict[str, tuple[str, str]] = {}

    def add(data: bytes, keeps: str, ext: str) -> bytes:
        expected[hashlib.sha256(data).hexdigest()] = (keeps, ext)
        return data

    delegation = pdf_bytes(
        "Septième Réunion des États parties - Délégation de la France",
        ["Chef de délégation : S.E. M. Jean Dupont, Ambassadeur, Représentant permanent"],
    )
    parts = [
        b"--" + BOUNDARY + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + NOTE.encode(),
        part(
            quoted("Délégation France 7MSP.pdf"),
            add(delegation, "Délégation", ".pdf"),
            b"application/pdf",
        ),
    ]
    for i, hostile in enumerate(HOSTILE):
        parts.append(
            part(hostile.name_headers, add(payload(f"attachment {i}"), hostile.keeps, hostile.ext))
        )
    for i, (_name, keeps, ext) in enumerate(ZIP_ENTRIES):
        add(payload(f"zip entry {i}"), keeps, ext)
    parts.append(
        part(quoted("../../pack.zip"), add(zip_bytes(), "pack", ".zip"), b"application/zip")
    )
    for i, (_name, keeps, ext) in enumerate(TNEF_FILES):
        add(payload(f"tnef file {i}"), keeps, ext)
    parts.append(
        part(quoted("winmail.dat"), add(tnef_bytes(), "winmail", ".dat"), b"application/ms-tnef")
    )
    for i, (_name, keeps, ext) in enumerate(FORWARDED_FILES):
        add(payload(f"forwarded file {i}"), keeps, ext)
    forwarded = forwarded_bytes()
    parts.append(
        b"--" + BOUNDARY + b"\r\nContent-Type: message/rfc822\r\n"
        b'Content-Disposition: attachment; filename="../../fwd.eml"\r\n\r\n' + forwarded
    )
    raw = (
        b"From: Mission permanente de la France <dfra.geneve@diplomatie.gouv.fr>\r\n"
        b"To: CCM Secretariat <ccm@unog.ch>\r\n"
        b"Subject: 7MSP - Composition de la delegation francaise\r\n"
        b"Date: Mon, 14 Aug 2017 09:00:00 +0000\r\n"
        b"Message-ID: <hostile-names@diplomatie.gouv.fr>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="'
        + BOUNDARY
        + b'"\r\n\r\n'
        + b"".join(p if p.endswith(b"\r\n") else p + b"\r\n" for p in parts)
        + b"--"
        + BOUNDARY
        + b"--\r\n"
    )
    # The attached mail is filed as the parser writes it out again, not byte for byte.
    (eml,) = [a for a in parse_message(raw).attachments if a.content_type == "message/rfc822"]
    expected[eml.sha256] = ("fwd", ".eml")
    return raw, expected


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: (sha256 or 'dir', mtime in ns)."""
    found: dict[str, tuple[str, int]] = {}
    for path in root.rglob("*"):
        info = path.lstat()
        what = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        found[path.relative_to(root).as_posix()] = (what, info.st_mtime_ns)
    return found


def absolute_targets() -> dict[str, tuple[int, int] | None]:
    found: dict[str, tuple[int, int] | None] = {}
    for target in ABSOLUTE_TARGETS:
        try:
            info = os.lstat(target)
        except OSError:
            found[target] = None
        else:
            found[target] = (info.st_size, info.st_mtime_ns)
    return found


def assert_one_safe_component(name: str) -> None:
    assert name and name not in (".", "..") and not name.startswith("."), name
    assert "/" not in name and "\\" not in name, name
    bad = [ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert not bad, f"{name!r} keeps control or format characters {bad!r}"
    assert len(name.encode()) <= MAX_NAME_BYTES + 8, name  # + " (2)" from the archive at most
    assert name.split(".", 1)[0].strip().lower() not in WINDOWS_DEVICES, name
    assert unicodedata.normalize("NFC", name) == name, name


def kept(ctx: Context, raw: bytes) -> int:
    message_id, created = keep(ctx, raw, 1, WHEN)
    assert created
    return message_id


@pytest.fixture
def ctx(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Context:
    # A relative path that escaped would land below the working directory: make that ours.
    cwd = tmp_path / "cwd" / "a"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    settings = load_settings(
        {"CCM_DATA_DIR": str(tmp_path / "data"), "CCM_DATABASE_URL": sqlite_url, "CCM_OCR": "false"}
    )
    return build_context(settings)


def test_hostile_names_are_filed_inside_the_state_folder_each_once_and_readable(
    ctx: Context, tmp_path: Path
) -> None:
    raw, expected = hostile_mail()
    message_id = kept(ctx, raw)
    for decoy in ("x", "evil", "outside.pdf", "cwd/x", "cwd/evil", "data/archive/filed/x"):
        (tmp_path / decoy).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / decoy).write_bytes(b"decoy: must not change\n")
    before, targets = snapshot(tmp_path), absolute_targets()

    processing.process_message(ctx, message_id)

    (message,) = [m for m in ctx.db.recent_messages() if m.id == message_id]
    assert (message.status, message.state_iso3) == (Status.filed, "FRA"), message.reason
    (submission,) = ctx.db.submissions_of(message_id)
    folder = (ctx.archive.root / submission.folder).resolve()
    state_folder = (ctx.archive.root / "filed" / "FRA France").resolve()
    assert folder.is_relative_to(state_folder) and folder != state_folder

    # Outside the submission's folder, nothing new and nothing changed but the database.
    after = snapshot(tmp_path)
    database = {"ccm.db", "ccm.db-wal", "ccm.db-shm", "ccm.db-journal", "ccm.db.migrate-lock"}
    inside = folder.relative_to(tmp_path).as_posix()
    parents = {p.as_posix() for p in Path(inside).parents}
    changed = sorted(
        path
        for path in before.keys() | after.keys()
        if before.get(path) != after.get(path)
        and path not in database
        and not path.startswith(inside + "/")
        and path not in parents | {inside}
    )
    # The archive's staging folder (files are written there before their transaction, then
    # moved into place) is left empty.
    staging = "data/archive/.staging"
    assert changed in ([], [staging])
    assert not (tmp_path / staging).exists() or not any((tmp_path / staging).iterdir())
    assert absolute_targets() == targets

    # Each file sent is stored once, beside the mail itself; no file overwrote another.
    stored = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert all(p.is_file() and not p.is_symlink() for p in folder.iterdir())
    assert stored.pop("original.eml") == raw
    hashes = Counter(hashlib.sha256(data).hexdigest() for data in stored.values())
    assert hashes == Counter(expected.keys())
    # + the delegation PDF, pack.zip, winmail.dat, the attached mail and its two files
    assert len(stored) == len(HOSTILE) + len(ZIP_ENTRIES) + len(TNEF_FILES) + 6

    # Each name is one safe component that still says what the file is.
    for name, data in stored.items():
        assert_one_safe_component(name)
        keeps, ext = expected[hashlib.sha256(data).hexdigest()]
        assert keeps.casefold() in name.casefold(), (name, keeps)
        assert (Path(name).suffix if ext else "") == ext, (name, ext)
        assert "\u202e" not in name
    assert len({name.casefold() for name in stored}) == len(stored)  # also on Windows or macOS

    # The database lists exactly what is on disk.
    with ctx.db.session() as s:
        rows = s.scalars(select(FiledFile).where(FiledFile.submission_id == submission.id)).all()
        on_record = {(r.name, r.sha256, r.size) for r in rows}
    assert on_record == {
        (name, hashlib.sha256(data).hexdigest(), len(data))
        for name, data in [*stored.items(), ("original.eml", raw)]
    }


def test_the_parser_names_every_hostile_attachment_apart_and_safely() -> None:
    raw, _expected = hostile_mail()
    msg = parse_message(raw)
    names = [a.safe_name for a in msg.attachments]
    assert len({n.lower() for n in names}) == len(names)
    for name in names:
        assert_one_safe_component(name)
        assert len(name.encode()) <= MAX_NAME_BYTES
    by_data = {a.data: a for a in msg.attachments}
    rtl = by_data[payload(f"attachment {[h.keeps for h in HOSTILE].index('invoice')}")]
    assert rtl.safe_name == "invoicefdp.exe"  # what it really is, not "invoiceexe.pdf"


@pytest.mark.parametrize(
    "wanted",
    [
        "../../x",
        "/etc/passwd",
        "C:\\Windows\\x.pdf",
        "..\\..\\x",
        "a/../../b",
        "..",
        ".",
        "",
        " . .hidden",
        "nul\x00byte.pdf",
        "line\r\nbreak.pdf",
        "lone\ud800surrogate.pdf",
        "😀" * 200 + ".pdf",
    ],
)
def test_the_archive_itself_keeps_any_name_inside_the_folder(tmp_path: Path, wanted: str) -> None:
    """The archive's own guard, for a name that did not come through ``safe_filename``."""
    archive = Archive(tmp_path / "archive")
    (tmp_path / "decoy").write_bytes(b"decoy")
    folder = "filed/FRA France/delegation/2017-08-14_ref"
    stored = archive.file_folder(
        folder, [PlannedFile.of(wanted, b"one"), PlannedFile.of(wanted, b"two")]
    )
    files = sorted((archive.root / folder).iterdir())
    assert [p.name for p in files] == sorted(f.name for f in stored)
    assert sorted(p.read_bytes() for p in files) == [b"one", b"two"]
    for f in stored:
        assert "/" not in f.name and "\\" not in f.name and not f.name.startswith(".")
        assert len(f.name.encode()) <= 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive", "decoy"]


@pytest.mark.parametrize("folder", ["../outside", "filed/../../outside", "/tmp/outside"])
def test_a_folder_outside_the_archive_is_refused(tmp_path: Path, folder: str) -> None:
    archive = Archive(tmp_path / "archive")
    with pytest.raises(ArchiveError):
        archive.file_folder(folder, [PlannedFile.of("a.pdf", b"x")])
    assert not (tmp_path / "outside").exists() and not Path("/tmp/outside/a.pdf").exists()
