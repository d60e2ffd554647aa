"""A message over a limit is quarantined with its reason — kept, not filed, not acknowledged,
moved to Quarantine and named in the digest — and the worker goes on with the next one."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from fpdf import FPDF

from config.settings import ConfigError, load_settings
from tests.app import keep
from worker import processing
from worker.digest import build_digest, render_digest
from worker.runtime import Context, build_context
from worker.samples import france_delegation
from worker.store import Status

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)
TYPES = {"pdf": ("application", "pdf"), "zip": ("application", "zip"), "png": ("image", "png")}


def mission_mail(*attachments: tuple[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mission permanente de la France <mission.france@diplomatie.gouv.fr>"
    msg["To"] = "ccm@unog.ch"
    msg["Subject"] = "7MSP - Délégation française"
    msg["Date"] = "Mon, 14 Aug 2017 10:00:00 +0200"
    msg["Message-ID"] = "<limits-test@diplomatie.gouv.fr>"
    msg.set_content("Veuillez trouver ci-joint la composition de la délégation de la France.")
    for name, data in attachments:
        maintype, subtype = (
            ("application", "pdf") if name.endswith(".pdf") else ("application", "zip")
        )
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def pdf_of(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for n in range(pages):
        pdf.add_page()
        pdf.cell(0, 10, f"Delegation of France, page {n + 1}")
    return bytes(pdf.output())


def context(tmp_path: Path, **settings: str) -> Context:
    return build_context(load_settings({"CCM_DATA_DIR": str(tmp_path), **settings}))


def process(ctx: Context, raw: bytes, uid: int) -> int:
    message_id, _ = keep(ctx, raw, uid, WHEN)
    processing.process_message(ctx, message_id, now=WHEN)
    return message_id


def quarantined(ctx: Context, message_id: int) -> str:
    """The reason of a quarantined message, after checking that nothing else happened."""
    (row,) = [m for m in ctx.db.recent_messages() if m.id == message_id]
    assert row.status == Status.quarantined
    assert ctx.db.submissions_of(message_id) == []
    assert ctx.archive.read(row.raw_path)  # kept as received
    assert row.target == "folder:Quarantine"
    return row.reason


CASES = [
    (
        {"CCM_MAX_MESSAGE_MB": "0.01"},
        (("liste.pdf", pdf_of(1) + b"\0" * 20_000),),
        "over a limit: the message is",
    ),
    (
        {"CCM_MAX_ATTACHMENTS": "2"},
        (("a.pdf", pdf_of(1)), ("b.pdf", pdf_of(1)), ("c.pdf", pdf_of(1))),
        "over a limit: 3 attachments (limit 2)",
    ),
    (
        {"CCM_MAX_ATTACHMENT_MB": "0.0002"},
        (("liste.pdf", pdf_of(1)),),
        "over a limit: attachment 'liste.pdf' is",
    ),
    (
        {"CCM_MAX_PDF_PAGES": "3"},
        (("liste.pdf", pdf_of(4)),),
        "over a limit: liste.pdf: 4 pages in PDF (limit 3)",
    ),
    (
        {},  # the default ratio: 20 MB of zeros packs into some 20 KB
        (("liste.zip", zip_of({"liste.txt": b"0" * (20 * 1024 * 1024)})),),
        "over a limit: liste.zip: refused: inflates",
    ),
    (
        {"CCM_MAX_ZIP_ENTRIES": "5"},
        (("forms.zip", zip_of({f"form-{i}.txt": b"Form A" for i in range(6)})),),
        "over a limit: forms.zip: refused: 6 files in one archive (limit 5; zip bomb?)",
    ),
    (
        {"CCM_MAX_ZIP_DEPTH": "1"},
        (("outer.zip", zip_of({"inner.zip": zip_of({"liste.txt": b"Delegation"})})),),
        "over a limit: outer.zip/inner.zip: not opened: archives nested deeper than 1",
    ),
]


@pytest.mark.parametrize(("settings", "attachments", "reason"), CASES)
def test_a_message_over_a_limit_is_quarantined_with_the_reason(
    tmp_path: Path,
    settings: dict[str, str],
    attachments: tuple[tuple[str, bytes], ...],
    reason: str,
) -> None:
    ctx = context(tmp_path, **settings)
    message_id = process(ctx, mission_mail(*attachments), 1)
    assert quarantined(ctx, message_id).startswith(reason)
    assert ctx.db.outbox_rows() == []  # no acknowledgement: the mission is not told "received"


def test_the_same_mail_within_the_limits_is_filed(tmp_path: Path) -> None:
    ctx = context(tmp_path, CCM_MAX_PDF_PAGES="4")
    message_id = process(ctx, mission_mail(("liste.pdf", pdf_of(4))), 1)
    (submission,) = ctx.db.submissions_of(message_id)
    assert submission.state_iso3 == "FRA"


def test_a_mime_nesting_bomb_is_quarantined_and_the_next_mail_is_filed(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    body = b"Content-Type: text/plain\n\nx\n"
    for level in range(5000, 0, -1):  # far past Python's recursion limit
        b = f"b{level}".encode()
        body = b'Content-Type: multipart/mixed; boundary="' + b + b'"\n\n--' + b + b"\n" + body
    bomb = b"From: someone@example.org\nSubject: hello\nMIME-Version: 1.0\n" + body
    first = process(ctx, bomb, 1)
    assert quarantined(ctx, first) == "over a limit: MIME parts nested more than 20 deep"
    second = process(ctx, france_delegation(WHEN).raw, 2)
    assert [s.state_iso3 for s in ctx.db.submissions_of(second)] == ["FRA"]


def test_a_huge_header_block_is_quarantined(tmp_path: Path) -> None:
    ctx = context(tmp_path, CCM_MAX_HEADER_KB="16")
    raw = mission_mail(("liste.pdf", pdf_of(1)))
    padded = b"".join(f"X-Pad-{i}: {'y' * 70}\r\n".encode() for i in range(300)) + raw
    reason = quarantined(ctx, process(ctx, padded, 1))
    assert reason.startswith("over a limit: the header block is") and "(limit 16 KB)" in reason


def test_the_digest_names_the_quarantined_mail_and_its_reason(tmp_path: Path) -> None:
    ctx = context(tmp_path, CCM_MAX_PDF_PAGES="3")
    process(ctx, mission_mail(("liste.pdf", pdf_of(4))), 1)
    data = build_digest(ctx, WHEN.date(), now=WHEN.replace(hour=23))
    (item,) = data.quarantined
    assert item.reason == "over a limit: liste.pdf: 4 pages in PDF (limit 3)"
    _subject, text, html = render_digest(data)
    assert "4 pages in PDF (limit 3)" in text and "4 pages in PDF (limit 3)" in html


@pytest.mark.parametrize(
    ("name", "value"),
    [("CCM_MAX_MESSAGE_MB", "0"), ("CCM_MAX_ZIP_RATIO", "1"), ("CCM_MAX_MIME_DEPTH", "many")],
)
def test_a_wrong_limit_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name.removeprefix("CCM_")):
        load_settings({name: value})


def scan_of(text: str) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1200, 300), 255)
    ImageDraw.Draw(image).text((40, 100), text, fill=0, font=ImageFont.load_default(size=48))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_page_ocr_cannot_finish_in_time_quarantines_the_message(tmp_path: Path) -> None:
    ctx = context(tmp_path, CCM_OCR_SECONDS="0.001")
    reason = quarantined(ctx, process(ctx, mission_mail(("scan.png", scan_of("France"))), 1))
    assert reason == "over a limit: scan.png: OCR timed out after 0.001 s on a page"


def test_reading_that_outlasts_the_extraction_time_quarantines_the_message(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path, CCM_EXTRACT_SECONDS="0.05")
    scans = [(f"scan{i}.png", scan_of(f"Delegation page {i}")) for i in range(3)]
    reason = quarantined(ctx, process(ctx, mission_mail(*scans), 1))
    assert reason.startswith("over a limit: scan0.png: extraction timed out after 0.05 s")
