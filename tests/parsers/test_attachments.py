"""extract_text / extract_all / unpack: attachment bytes in, text and tables or a clear reason
out, never a crash. Every file is made here (scans are drawn with Pillow, spreadsheets written
with their libraries, OpenDocument zipped by hand); the .msg and TNEF files are public test
data from /work/shared/corpora, read as bytes only."""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import io
import os
import random
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from parsers import attachments
from parsers.attachments import Extraction, extract_all, extract_text, rtf_to_text, unpack
from parsers.limits import Limits
from parsers.message import Attachment, parse_message

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ZIP = "application/zip"
CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def attachment(data: bytes, name: str, content_type: str) -> Attachment:
    return Attachment(
        filename=name,
        safe_name=name,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        inline=False,
    )


def require(program: str) -> None:
    """Skip where a system program is missing; on CI (which installs it) fail instead."""
    if shutil.which(program) is None:
        message = f"{program} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def corpus(relative: str) -> bytes:
    path = CORPORA / relative
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no corpus file {path}")
        pytest.skip(f"no corpus file {path}")
    return path.read_bytes()


def walk(extraction: Extraction) -> Iterator[Extraction]:
    yield extraction
    for part in extraction.parts:
        yield from walk(part)


# --------------------------------------------------------------------------- makers


def make_pdf(*lines: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for line in lines:
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def encrypt(pdf: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font of the system if there is one, else Pillow's own scalable font."""
    for pattern in ("/usr/share/fonts/**/DejaVuSans.ttf", "/usr/share/fonts/**/*.ttf"):
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return ImageFont.truetype(found[0], size)
    return ImageFont.load_default(size=size)


def scan(*lines: str, size: tuple[int, int] = (1654, 900)) -> Image.Image:
    """A page as a scanner sees it: black text drawn on white, no text layer anywhere."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    face = font(36)
    for number, line in enumerate(lines):
        draw.text((120, 100 + 70 * number), line, font=face, fill=0)
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def scanned_pdf(*pages: Image.Image) -> bytes:
    return encoded(pages[0], "PDF", resolution=200, save_all=True, append_images=list(pages[1:]))


def make_docx() -> bytes:
    document = docx.Document()
    document.sections[0].header.paragraphs[
        0
    ].text = "Permanent Mission of Ghana to the United Nations"
    document.add_paragraph("Composition of the delegation of Ghana to the 7MSP")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate(
        [
            ("Name", "Title", "Role"),
            ("H.E. Ms. A. Mensah", "Ambassador", "Head of delegation"),
            ("Mr. K. Owusu", "Counsellor", "Alternate"),
        ]
    ):
        for col, value in enumerate(values):
            table.cell(row, col).text = value
    document.add_paragraph("Geneva, 14 August 2017")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Form A"
    sheet.append(["State Party", "Chile"])
    sheet.append(["Reporting period", date(2016, 1, 1), date(2016, 12, 31)])
    sheet.append([None])
    sheet.append(["Quantity", 12.0, 3.5])
    second = workbook.create_sheet("Form B")
    second.append(["Stockpiles destroyed", 0])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_xls() -> bytes:
    import xlwt  # type: ignore[import-untyped]

    book = xlwt.Workbook()
    sheet = book.add_sheet("Delegation")
    for row, values in enumerate(
        [
            ("Nombre", "Cargo", "Función"),
            ("Sra. María Pérez", "Embajadora", "Jefa de delegación"),
            ("Sr. Juan Soto", "Consejero", "Suplente"),
        ]
    ):
        for col, value in enumerate(values):
            sheet.write(row, col, value)
    sheet.write(4, 0, "Llegada")
    sheet.write(4, 1, dt.datetime(2017, 9, 3), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    sheet.write(4, 2, 2.0)
    book.add_sheet("Vacía")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'office:version="1.3"'
)
MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
    "{extra}</manifest:manifest>"
)


def make_odf(mimetype: str, content: str, styles: str | None = None, extra: str = "") -> bytes:
    """An OpenDocument package as LibreOffice writes one: ``mimetype`` first and stored."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
        if styles is not None:
            archive.writestr("styles.xml", styles)
        archive.writestr("META-INF/manifest.xml", MANIFEST.format(mimetype=mimetype, extra=extra))
    return out.getvalue()


ODT_CONTENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {ODF_NS}><office:body><office:text>
<text:sequence-decls/>
<text:h text:outline-level="1">Composición de la delegación de España</text:h>
<text:p>Nota verbal<text:s text:c="3"/>n.º 45/2017<text:tab/>Ginebra</text:p>
<text:list><text:list-item>
<text:p>Jefe de delegación: <text:span>Excmo. Sr. J. García</text:span></text:p>
</text:list-item></text:list>
<table:table table:name="Delegación">
<table:table-column table:number-columns-repeated="3"/>
<table:table-header-rows><table:table-row>
<table:table-cell><text:p>Nombre</text:p></table:table-cell>
<table:table-cell><text:p>Cargo</text:p></table:table-cell>
</table:table-row></table:table-header-rows>
<table:table-row>
<table:table-cell><text:p>Sra. L. Ruiz</text:p></table:table-cell>
<table:table-cell><text:p>Consejera</text:p></table:table-cell>
</table:table-row>
</table:table>
<text:p>Ginebra, 10 de agosto de 2017<office:annotation>
<text:p>borrador</text:p></office:annotation></text:p>
</office:text></office:body></office:document-content>"""

ODT_STYLES = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-styles {ODF_NS}><office:master-styles>
<style:master-page style:name="Standard"><style:header>
<text:p>Misión Permanente de España ante las Naciones Unidas</text:p>
</style:header></style:master-page>
</office:master-styles></office:document-styles>"""

ODS_CONTENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {ODF_NS}><office:body><office:spreadsheet>
<table:table table:name="Form A">
<table:table-column table:number-columns-repeated="16384"/>
<table:table-row>
<table:table-cell office:value-type="string"><text:p>State Party</text:p></table:table-cell>
<table:table-cell office:value-type="string"><text:p>France</text:p></table:table-cell>
<table:table-cell table:number-columns-repeated="16382"/>
</table:table-row>
<table:table-row>
<table:table-cell office:value-type="string"><text:p>From</text:p></table:table-cell>
<table:table-cell office:value-type="date" office:date-value="2016-01-01">
<text:p>01/01/16</text:p></table:table-cell>
<table:table-cell table:number-columns-repeated="2"/>
<table:table-cell office:value-type="float" office:value="12">
<text:p>12,00</text:p></table:table-cell>
</table:table-row>
<table:table-row table:number-rows-repeated="1048574">
<table:table-cell table:number-columns-repeated="16384"/></table:table-row>
</table:table>
<table:table table:name="Form B"><table:table-row>
<table:table-cell office:value-type="float" office:value="0.5">
<text:p>50%</text:p></table:table-cell>
</table:table-row></table:table>
</office:spreadsheet></office:body></office:document-content>"""


def make_zip(files: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def mark_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag of every entry, as a password-protected zip has it."""
    out = bytearray(data)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (found := out.find(signature, start)) >= 0:
            out[found + flag_at] |= 0x01
            start = found + 4
    return bytes(out)


def mail(subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Mission <mission@example.org>"
    message["To"] = "ccm@unog.ch"
    message["Subject"] = subject
    message.set_content(body)
    return message


# --------------------------------------------------------------------------- PDF


def test_it_reads_the_text_layer_of_a_pdf() -> None:
    data = make_pdf("Article 7 transparency report", "Reporting period: 2016")

    result = extract_text(attachment(data, "CCM Art7 2016.pdf", PDF))

    assert result == Extraction(
        "CCM Art7 2016.pdf", "pdf", "Article 7 transparency report\nReporting period: 2016", None
    )


def test_it_reads_a_scanned_pdf_with_ocr() -> None:
    require("tesseract")
    data = scanned_pdf(scan("Permanent Mission of Chile", "Note verbale No. 123/2017"))
    assert PdfReader(io.BytesIO(data)).pages[0].extract_text() == ""

    result = extract_text(attachment(data, "scan0001.pdf", PDF))

    assert (result.method, result.ocr, result.error) == ("ocr", True, None)
    assert "Permanent Mission of Chile" in result.text
    assert "Note verbale" in result.text


def test_it_says_a_scanned_pdf_needs_ocr_when_ocr_is_off() -> None:
    data = scanned_pdf(scan("Permanent Mission of Chile"))

    result = extract_text(attachment(data, "scan0001.pdf", PDF), ocr=False)

    assert (result.method, result.text, result.ocr) == ("pdf", "", False)
    assert result.error == "no text layer (scanned PDF?); OCR is off"


def test_it_reads_the_scanned_page_of_a_typed_pdf_with_ocr() -> None:
    require("tesseract")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "Note verbale: the list of the delegation of Peru follows.")
    pdf.add_page()
    pdf.image(scan("Head of delegation: H.E. Mr. Luis Vargas"), x=0, y=0, w=210)
    data = bytes(pdf.output())

    result = extract_text(attachment(data, "nv.pdf", PDF))

    assert (result.method, result.ocr, result.error) == ("pdf", True, None)
    assert result.text.startswith("Note verbale: the list of the delegation of Peru follows.")
    assert "Luis Vargas" in result.text


def test_it_reports_a_pdf_that_needs_a_password_without_raising() -> None:
    data = encrypt(make_pdf("Secret delegation"), user_password="geneva")

    result = extract_text(attachment(data, "nv.pdf", PDF))

    assert result.method == "pdf"
    assert result.text == ""
    assert result.error is not None and result.error.startswith("encrypted")


def test_it_reads_a_pdf_protected_only_by_an_owner_password() -> None:
    data = encrypt(make_pdf("Liste des delegues"), user_password="")

    result = extract_text(attachment(data, "nv.pdf", PDF))

    assert result.error is None
    assert result.text == "Liste des delegues"


def test_it_reads_pdfs_sent_inline_like_any_attachment() -> None:
    message = mail("Delegation", "Please find our list.")
    message.add_attachment(
        make_pdf("Delegation of Chile"),
        maintype="application",
        subtype="pdf",
        filename="list.pdf",
        disposition="inline",
    )
    message.add_attachment(make_pdf("Note verbale of Chile"), maintype="application", subtype="pdf")
    message.get_payload()[-1].replace_header("Content-Disposition", "inline")
    parsed = parse_message(message.as_bytes())

    results = extract_all(parsed)

    assert [a.inline for a in parsed.attachments] == [True, True]
    assert [(r.method, r.text, r.error) for r in results] == [
        ("pdf", "Delegation of Chile", None),
        ("pdf", "Note verbale of Chile", None),
    ]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("fmt", "name", "content_type"),
    [
        ("PNG", "scan.png", "image/png"),
        ("JPEG", "IMG_0042.jpg", "image/jpeg"),
        ("GIF", "scan.gif", "image/gif"),
        ("BMP", "scan.bmp", "image/bmp"),
        ("TIFF", "fax.tif", "application/octet-stream"),
    ],
)
def test_it_reads_scanned_images_with_ocr(fmt: str, name: str, content_type: str) -> None:
    require("tesseract")
    data = encoded(scan("Permanent Mission of Chile", size=(1400, 240)), fmt)

    result = extract_text(attachment(data, name, content_type))

    assert (result.method, result.ocr, result.error) == ("ocr", True, None)
    assert "Permanent Mission of Chile" in result.text


def test_it_reads_every_page_of_a_multipage_tiff_fax() -> None:
    require("tesseract")
    pages = [scan("Mission permanente du Chili", size=(1400, 240)), scan("Page two: Santiago")]
    data = encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])

    result = extract_text(attachment(data, "fax.tiff", "image/tiff"))

    assert "Mission permanente du Chili" in result.text
    assert "Santiago" in result.text


def test_it_leaves_icons_and_tracking_pixels_alone() -> None:
    data = encoded(Image.new("RGB", (16, 16), (200, 0, 0)), "PNG")

    result = extract_text(attachment(data, "image001.png", "image/png"))

    assert result == Extraction("image001.png", "image", "", None)


def test_it_refuses_an_image_that_would_fill_memory() -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )

    result = extract_text(attachment(data, "bomb.png", "image/png"))

    assert (result.method, result.text) == ("image", "")
    assert result.error is not None and result.error.startswith("image too large to read")


def test_it_stops_ocr_when_the_message_budget_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    require("tesseract")
    monkeypatch.setattr(attachments, "MAX_OCR_PAGES", 1)
    message = mail("Scans", "Two pages.")
    for number in (1, 2):
        picture = encoded(scan(f"Page {number} of the delegation list", size=(1400, 200)), "PNG")
        message.add_attachment(picture, maintype="image", subtype="png", filename=f"p{number}.png")

    first, second = extract_all(parse_message(message.as_bytes()))

    assert "Page 1" in first.text
    assert (second.text, second.error) == ("", "OCR budget of this message used up")


# --------------------------------------------------------------------------- Office files


def test_it_reads_docx_paragraphs_table_cells_and_the_letterhead() -> None:
    result = extract_text(attachment(make_docx(), "delegation.docx", DOCX))

    assert result.method == "docx"
    assert result.error is None
    lines = result.text.splitlines()
    assert lines[0] == "Permanent Mission of Ghana to the United Nations"
    assert "Composition of the delegation of Ghana to the 7MSP" in lines
    assert "H.E. Ms. A. Mensah\tAmbassador\tHead of delegation" in lines
    assert lines[-1] == "Geneva, 14 August 2017"
    assert result.tables == (
        (
            ("Name", "Title", "Role"),
            ("H.E. Ms. A. Mensah", "Ambassador", "Head of delegation"),
            ("Mr. K. Owusu", "Counsellor", "Alternate"),
        ),
    )


def test_it_reads_every_sheet_of_an_xlsx() -> None:
    result = extract_text(attachment(make_xlsx(), "art7.xlsx", XLSX))

    assert result.method == "xlsx"
    assert result.error is None
    assert result.text.splitlines() == [
        "# Form A",
        "State Party\tChile",
        "Reporting period\t2016-01-01T00:00:00\t2016-12-31T00:00:00",
        "Quantity\t12\t3.5",
        "# Form B",
        "Stockpiles destroyed\t0",
    ]
    assert result.tables == (
        (
            ("State Party", "Chile"),
            ("Reporting period", "2016-01-01T00:00:00", "2016-12-31T00:00:00"),
            ("Quantity", "12", "3.5"),
        ),
        (("Stockpiles destroyed", "0"),),
    )


def test_it_reads_a_legacy_xls_workbook() -> None:
    result = extract_text(attachment(make_xls(), "delegacion.xls", "application/vnd.ms-excel"))

    assert (result.method, result.error) == ("xls", None)
    assert result.text.splitlines() == [
        "# Delegation",
        "Nombre\tCargo\tFunción",
        "Sra. María Pérez\tEmbajadora\tJefa de delegación",
        "Sr. Juan Soto\tConsejero\tSuplente",
        "Llegada\t2017-09-03T00:00:00\t2",
        "# Vacía",
    ]
    assert result.tables == (
        (
            ("Nombre", "Cargo", "Función"),
            ("Sra. María Pérez", "Embajadora", "Jefa de delegación"),
            ("Sr. Juan Soto", "Consejero", "Suplente"),
            ("Llegada", "2017-09-03T00:00:00", "2"),
        ),
    )


def test_it_reads_an_xls_whatever_its_name() -> None:
    result = extract_text(attachment(make_xls(), "attachment-1.bin", "application/octet-stream"))

    assert (result.method, result.error) == ("xls", None)


def test_it_reads_an_odt_with_its_letterhead_lists_and_tables() -> None:
    data = make_odf(ODT, ODT_CONTENT, ODT_STYLES)

    result = extract_text(attachment(data, "delegacion.odt", ODT))

    assert (result.method, result.error) == ("odt", None)
    assert result.text.splitlines() == [
        "Misión Permanente de España ante las Naciones Unidas",
        "Composición de la delegación de España",
        "Nota verbal   n.º 45/2017\tGinebra",
        "Jefe de delegación: Excmo. Sr. J. García",
        "Nombre\tCargo",
        "Sra. L. Ruiz\tConsejera",
        "Ginebra, 10 de agosto de 2017",
    ]
    assert result.tables == ((("Nombre", "Cargo"), ("Sra. L. Ruiz", "Consejera")),)


def test_it_reads_an_odt_text_box_once() -> None:
    content = (
        f'<?xml version="1.0"?><office:document-content {ODF_NS} '
        'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0">'
        "<office:body><office:text><text:p>Note verbale<draw:frame><draw:text-box>"
        "<text:p>Permanent Mission of Austria</text:p></draw:text-box></draw:frame> 12/2017"
        "</text:p></office:text></office:body></office:document-content>"
    )

    result = extract_text(attachment(make_odf(ODT, content), "nv.odt", ODT))

    assert result.text == "Note verbale 12/2017\nPermanent Mission of Austria"


def test_it_reads_every_sheet_of_an_ods_without_expanding_empty_repeats() -> None:
    data = make_odf(ODS, ODS_CONTENT)

    result = extract_text(attachment(data, "art7.ods", "application/octet-stream"))

    assert (result.method, result.error) == ("ods", None)
    assert result.tables == (
        (("State Party", "France"), ("From", "2016-01-01", "", "", "12")),
        (("0.5",),),
    )
    assert result.text.splitlines() == [
        "# Form A",
        "State Party\tFrance",
        "From\t2016-01-01\t\t\t12",
        "# Form B",
        "0.5",
    ]


def test_it_refuses_an_odt_that_declares_entities() -> None:
    content = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f"<office:document-content {ODF_NS}><office:body><office:text>"
        "<text:p>&lol2;</text:p></office:text></office:body></office:document-content>"
    )

    result = extract_text(attachment(make_odf(ODT, content), "nv.odt", ODT))

    assert (result.method, result.text) == ("odt", "")
    assert result.error == "corrupt ODT: content.xml declares a DTD: refused"


def test_it_reports_an_encrypted_odt() -> None:
    extra = (
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"/>'
        "</manifest:file-entry>"
    )
    data = make_odf(ODT, "\x00\x13 encrypted bytes", extra=extra)

    result = extract_text(attachment(data, "nv.odt", ODT))

    assert result == Extraction("nv.odt", "odt", "", "encrypted ODT: a password is needed")


def test_it_reports_an_encrypted_docx_by_its_name_or_its_bytes() -> None:
    from msoffcrypto.format.ooxml import OOXMLFile  # type: ignore[import-untyped]

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(make_docx())).encrypt("geneva", out)

    named = extract_text(attachment(out.getvalue(), "liste.docx", DOCX))
    unnamed = extract_text(attachment(out.getvalue(), "scan.bin", "application/octet-stream"))

    assert named == Extraction("liste.docx", "docx", "", "encrypted DOCX: a password is needed")
    assert unnamed.error == "encrypted Office document: a password is needed"


# --------------------------------------------------------------------------- RTF and .doc


RTF = rb"""{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Arial;}}
{\colortbl;\red0\green0\blue0;}{\*\generator Msftedit 5.41;}{\info{\title Draft}}
{\header \pard Mission permanente de la R\'e9publique fran\'e7aise\par}
\pard\f0\fs20 Note verbale \endash  d\u233?l\u233?gation\par
{\pict\wmetafile8 0a0b0c0d0e0f}
\trowd\cellx1000\cellx2000 Nom\cell Fonction\cell\row
\trowd\cellx1000\cellx2000 M. Dupont\cell Chef\cell\row
{\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt www.gichd.org}}\par
Gen\u232\'e8ve, 1\{2\}\\ \u-10179?\u-8704? ok\par}"""


def test_it_reads_rtf_text_skipping_fonts_pictures_and_field_codes() -> None:
    result = extract_text(attachment(RTF, "nv.rtf", "application/rtf"))

    assert (result.method, result.error) == ("rtf", None)
    assert result.text.splitlines() == [
        "Mission permanente de la République française",
        "Note verbale – délégation",
        "Nom\tFonction",
        "M. Dupont\tChef",
        "www.gichd.org",
        "Genève, 1{2}\\ \U0001f600 ok",
    ]


def test_it_refuses_rtf_nested_beyond_reason() -> None:
    data = b"{\\rtf1 " + b"{" * 100_000 + b"x" + b"}" * 100_000 + b"}"

    result = extract_text(attachment(data, "deep.rtf", "text/rtf"))

    assert (result.method, result.text) == ("rtf", "")
    assert result.error == "corrupt RTF: nested too deep"


def test_rtf_to_text_stops_at_max_chars() -> None:
    assert rtf_to_text(b"{\\rtf1 " + b"abc " * 1000 + b"}", max_chars=10) == "abc abc ab"


def test_it_reads_a_word_97_document_found_in_a_winmail_dat() -> None:
    """antiword refuses this slightly damaged file; catdoc reads it."""
    require("antiword")
    require("catdoc")
    outer = extract_text(
        attachment(corpus("mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef"), "winmail.dat", "app/x")
    )

    doc = outer.parts[0]

    assert (doc.name, doc.method, doc.error) == ("winmail.dat/VIA_Nytt_1402.doc", "doc", None)
    assert doc.text.startswith("VIA Nytt 14 - 2002")


def test_it_says_a_word_document_without_text_has_none() -> None:
    require("antiword")
    outer = extract_text(
        attachment(corpus("mimekit/tnef/missing-filenames.tnef"), "winmail.dat", "app/x")
    )

    assert [(p.name, p.method, p.error) for p in outer.parts[1:]] == [
        ("winmail.dat/TechlibDEC99.doc", "doc", "no text in DOC"),
        ("winmail.dat/TechlibDEC99-JAN00.doc", "doc", "no text in DOC"),
        ("winmail.dat/TechlibNOV99.doc", "doc", "no text in DOC"),
    ]


# --------------------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("data", "name", "content_type", "method", "error_start"),
    [
        (b"\x00\x17garbage bytes" * 50, "nv.pdf", PDF, "pdf", "corrupt PDF"),
        (b"%PDF-1.7\n1 0 obj <</Type /Catalog", "nv.pdf", PDF, "pdf", "corrupt PDF"),
        (b"not a zip at all", "liste.docx", DOCX, "docx", "corrupt DOCX"),
        (b"PK\x03\x04truncated", "liste.docx", DOCX, "docx", "corrupt DOCX"),
        (b"not a zip at all", "art7.xlsx", XLSX, "xlsx", "corrupt XLSX"),
        (b"not a zip at all", "art7.ods", ODS, "ods", "corrupt ODS"),
        (b"PK\x03\x04truncated", "pack.zip", ZIP, "zip", "corrupt ZIP"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "old.doc",
            "application/msword",
            "doc",
            "corrupt DOC",
        ),
        (b"plain words", "old.xls", "application/vnd.ms-excel", "xls", "corrupt XLS"),
        (b"plain words", "fwd.msg", "application/vnd.ms-outlook", "msg", "corrupt Outlook"),
        (b"plain words", "winmail.dat", "application/ms-tnef", "tnef", "corrupt TNEF"),
        (b"plain words", "nv.rtf", "application/rtf", "rtf", "corrupt RTF"),
        (b"\x89PNG\r\n\x1a\n", "logo.png", "image/png", "image", "unreadable image"),
        (b"\x00\x01", "photo.heic", "image/heic", "none", "unsupported type image/heic"),
    ],
)
def test_it_turns_broken_or_unsupported_files_into_a_reason(
    data: bytes, name: str, content_type: str, method: str, error_start: str
) -> None:
    result = extract_text(attachment(data, name, content_type))

    assert (result.method, result.text) == (method, "")
    assert result.error is not None and result.error.startswith(error_start), result.error


def test_it_refuses_a_docx_that_inflates_like_a_zip_bomb() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\x00" * (20 * 1024 * 1024))

    result = extract_text(attachment(out.getvalue(), "liste.docx", DOCX))

    assert result.text == ""
    assert result.error is not None and "zip bomb" in result.error


def test_it_trusts_magic_bytes_over_the_declared_type_and_name() -> None:
    pdf = make_pdf("Composition of the delegation")

    result = extract_text(attachment(pdf, "scan0001.bin", "application/octet-stream"))

    assert (result.method, result.text) == ("pdf", "Composition of the delegation")
    assert extract_text(attachment(make_docx(), "liste.doc", "application/msword")).method == "docx"
    web_page = b"<html><body><table><tr><td>Delegation</td></tr></table></body></html>"
    assert extract_text(attachment(web_page, "liste.xls", "application/vnd.ms-excel")).text == (
        "Delegation"
    )


def test_it_reads_plain_text_csv_and_html_attachments_in_their_charsets() -> None:
    latin = extract_text(attachment("Délégation\r\nliste".encode("cp1252"), "l.txt", "text/plain"))
    csv = extract_text(attachment("Nom;Fonction\nMme Pérez;Cheffe".encode(), "d.csv", "text/csv"))
    utf16 = extract_text(attachment("Delegación".encode("utf-16"), "d.txt", "text/plain"))
    page = extract_text(
        attachment(b"<p>Liste des d&eacute;l&eacute;gu&eacute;s</p>", "d.html", "text/html")
    )

    assert (latin.method, latin.text, latin.tables) == ("text", "Délégation\nliste", ())
    assert csv.text == "Nom;Fonction\nMme Pérez;Cheffe"
    assert csv.tables == ((("Nom", "Fonction"), ("Mme Pérez", "Cheffe")),)
    assert utf16.text == "Delegación"
    assert (page.method, page.text) == ("html", "Liste des délégués")


def test_it_reads_a_quoted_csv_with_commas_as_a_table() -> None:
    data = b'Name,Title\n"Vargas, Luis",Ambassador\n\n"Soto, Ana","Counsellor "\n'

    result = extract_text(attachment(data, "delegation.csv", "application/octet-stream"))

    assert result.tables == (
        (("Name", "Title"), ("Vargas, Luis", "Ambassador"), ("Soto, Ana", "Counsellor")),
    )


def test_it_cuts_text_at_max_chars() -> None:
    result = extract_text(attachment(b"a" * 1000, "a.txt", "text/plain"), max_chars=10)

    assert result.text == "a" * 10


# --------------------------------------------------------------------------- ZIP


def test_it_reads_the_files_of_a_zip_and_of_a_zip_inside_it() -> None:
    inner = make_zip({"liste.docx": make_docx(), "lisez-moi.txt": b"Liste jointe."})
    data = make_zip(
        {
            "Art7/Form A.pdf": make_pdf("Form A: national implementation measures"),
            "Art7/": b"",
            "__MACOSX/Art7/._Form A.pdf": b"\x00\x05\x16\x07",
            "annexes.zip": inner,
        }
    )

    result = extract_text(attachment(data, "Art7 Chile.zip", ZIP))

    assert (result.method, result.error) == ("zip", None)
    assert [(p.name, p.method, p.error) for p in walk(result)] == [
        ("Art7 Chile.zip", "zip", None),
        ("Art7 Chile.zip/Form A.pdf", "pdf", None),
        ("Art7 Chile.zip/annexes.zip", "zip", None),
        ("Art7 Chile.zip/annexes.zip/liste.docx", "docx", None),
        ("Art7 Chile.zip/annexes.zip/lisez-moi.txt", "text", None),
    ]
    assert "[Art7 Chile.zip/Form A.pdf]\nForm A: national implementation measures" in result.text
    assert "Permanent Mission of Ghana" in result.text
    assert result.tables == result.parts[1].parts[0].tables
    assert len(result.tables) == 1


def test_it_opens_archives_two_levels_deep_and_no_deeper() -> None:
    level3 = make_zip({"list.txt": b"too deep"})
    level2 = make_zip({"level3.zip": level3, "ok.txt": b"deep enough"})
    data = make_zip({"level2.zip": level2})

    result = extract_text(attachment(data, "level1.zip", ZIP))

    deepest = result.parts[0].parts
    assert [(p.name, p.error) for p in deepest] == [
        (
            "level1.zip/level2.zip/level3.zip",
            "over a limit: not opened: archives nested deeper than 2",
        ),
        ("level1.zip/level2.zip/ok.txt", None),
    ]
    assert "deep enough" in result.text
    assert "too deep" not in result.text
    # The message as a whole is stopped by the limit, naming the file.
    assert result.limit_reached() == (
        "over a limit: level1.zip/level2.zip/level3.zip: not opened: archives nested deeper than 2"
    )


def test_it_refuses_a_zip_bomb_before_inflating_it() -> None:
    data = make_zip({"liste.txt": b"0" * (50 * 1024 * 1024)})
    assert len(data) < 100_000

    result = extract_text(attachment(data, "liste.zip", ZIP))

    assert (result.method, result.text, result.parts) == ("zip", "", ())
    assert result.error is not None
    assert re.fullmatch(
        r"over a limit: refused: inflates \d{3,} times \(limit 200; zip bomb\?\)", result.error
    )
    assert result.limit_reached() == f"over a limit: liste.zip: {result.error[14:]}"


def test_a_zip_over_the_inflated_size_limit_is_refused_even_at_a_modest_ratio() -> None:
    rng = random.Random(7)
    noise = bytes(rng.getrandbits(8) for _ in range(300_000))  # does not compress
    data = make_zip({"a.bin": noise, "b.bin": noise[::-1]})

    result = extract_text(attachment(data, "scan.zip", ZIP), limits=Limits(zip_bytes=500_000))

    assert result.error == "over a limit: refused: inflates to 586 KB (limit 488 KB; zip bomb?)"
    assert extract_text(attachment(data, "scan.zip", ZIP)).limit_reached() is None


def test_a_zip_listing_more_entries_than_the_limit_is_refused() -> None:
    data = make_zip({f"f{i}.txt": b"x" for i in range(30)})

    result = extract_text(attachment(data, "many.zip", ZIP), limits=Limits(zip_entries=20))

    assert result.error == "over a limit: refused: 30 files in one archive (limit 20; zip bomb?)"
    assert result.parts == ()


def test_a_pdf_over_the_page_limit_is_not_read() -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for line in ("Delegation of France", "page two", "page three"):
        pdf.add_page()
        pdf.cell(0, 10, line)
    data = bytes(pdf.output())

    result = extract_text(attachment(data, "long.pdf", PDF), limits=Limits(pdf_pages=2))

    assert (result.text, result.error) == ("", "over a limit: 3 pages in PDF (limit 2)")
    assert "Delegation of France" in extract_text(attachment(data, "long.pdf", PDF)).text


def test_it_reports_a_password_protected_zip() -> None:
    data = mark_encrypted(make_zip({"liste.pdf": make_pdf("Delegation")}))

    result = extract_text(attachment(data, "liste.zip", ZIP))

    assert result == Extraction("liste.zip", "zip", "", "encrypted ZIP: a password is needed")


def test_it_gives_the_files_of_a_zip_safe_names() -> None:
    utf8 = "Délégation.txt".encode()
    placeholder = "X" * len(utf8)
    data = make_zip(
        {
            "../../etc/passwd": b"root:x:0:0",
            "C:\\Users\\x\\liste.txt": b"one",
            "dir/liste.txt": b"two",
            "con.txt": b"three",
            placeholder: b"four",
        },
        compression=zipfile.ZIP_STORED,
    )
    # A UTF-8 name without the UTF-8 flag, as zips made on Windows have them.
    data = data.replace(placeholder.encode(), utf8)

    files = unpack(attachment(data, "pack.zip", ZIP))

    assert [f.safe_name for f in files] == [
        "passwd",
        "liste.txt",
        "liste (2).txt",
        "_con.txt",
        "Délégation.txt",
    ]
    assert [f.data for f in files] == [b"root:x:0:0", b"one", b"two", b"three", b"four"]
    assert all(f.sha256 == hashlib.sha256(f.data).hexdigest() for f in files)


def test_unpack_gives_the_files_the_extraction_names_and_nothing_for_other_files() -> None:
    inner = make_zip({"liste.txt": b"inner"})
    data = make_zip({"liste.txt": b"outer", "annexes.zip": inner})
    att = attachment(data, "pack.zip", ZIP)

    files = unpack(att)
    names = [p.name for p in walk(extract_text(att))][1:]

    assert [(f.safe_name, f.content_type) for f in files] == [
        ("liste.txt", "text/plain"),
        ("annexes.zip", "application/zip"),
        ("liste (2).txt", "text/plain"),
    ]
    assert [n.rsplit("/", 1)[-1] for n in names] == [f.safe_name for f in files]
    assert unpack(att, limits=Limits(zip_depth=1)) == files[:2]
    assert unpack(attachment(make_pdf("x"), "a.pdf", PDF)) == ()
    assert unpack(attachment(b"PK\x03\x04broken", "a.zip", ZIP)) == ()


# --------------------------------------------------------------------------- Outlook and TNEF


def test_it_reads_an_outlook_msg_body() -> None:
    data = corpus("msg-extractor-outlook-msg/strangeDate.msg")

    result = extract_text(attachment(data, "fwd.msg", "application/vnd.ms-outlook"))

    assert (result.method, result.error, result.parts) == ("msg", None, ())
    assert result.text.startswith("Subject: MSG Test File\n\nMSG test file")


def test_it_reads_the_attachments_of_an_outlook_msg() -> None:
    data = corpus("msg-extractor-outlook-msg/unicode.msg")
    att = attachment(data, "attachment-1.bin", "application/octet-stream")

    result = extract_text(att, ocr=False)
    files = unpack(att)

    assert result.method == "msg"
    assert "Subject: Test for TIF files\nFrom: Brian Zhou <brizhou@gmail.com>" in result.text
    assert "experiment with the MS Outlook MSG Extractor" in result.text
    assert [(p.name, p.method, p.error) for p in result.parts] == [
        ("attachment-1.bin/import OleFileIO.tif", "image", "image not read: OCR is off"),
        ("attachment-1.bin/raised value error.tif", "image", "image not read: OCR is off"),
    ]
    assert [(f.safe_name, f.content_type, len(f.data)) for f in files] == [
        ("import OleFileIO.tif", "image/tiff", 969674),
        ("raised value error.tif", "image/tiff", 1033142),
    ]


def test_it_reads_a_winmail_dat_body_and_attachments() -> None:
    data = corpus("mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef")

    result = extract_text(attachment(data, "winmail.dat", "application/ms-tnef"))

    assert (result.method, result.error) == ("tnef", None)
    assert [(p.name, p.method) for p in result.parts] == [
        ("winmail.dat/VIA_Nytt_1402.doc", "doc"),
        ("winmail.dat/VIA_Nytt_1402.pdf", "pdf"),
        ("winmail.dat/VIA_Nytt_14021.htm", "html"),
    ]
    assert result.text.startswith("Det er jo en velkjent sak")  # the RTF body
    assert "[winmail.dat/VIA_Nytt_1402.pdf]\nVIA Nytt 14 - 2002" in result.text


def test_it_unwraps_a_file_that_outlook_packaged_as_an_ole_object() -> None:
    data = corpus("mimekit/tnef/MAPI_OBJECT.tnef")

    result = extract_text(attachment(data, "winmail.dat", "application/ms-tnef"))

    assert [(p.name, p.method, p.error) for p in result.parts] == [
        ("winmail.dat/AsNew Staff pricelist Oct 02.pdf", "pdf", None)
    ]
    assert "hp deskjet" in result.parts[0].text


# --------------------------------------------------------------------------- attached mail


def test_it_reads_an_attached_mail_as_text() -> None:
    inner = EmailMessage()
    inner["From"] = "Capital <desk@mfa.example>"
    inner["Subject"] = "Delegation list"
    inner.set_content("Head of delegation: H.E. Mr. X")

    result = extract_text(attachment(inner.as_bytes(), "fwd.eml", "message/rfc822"))

    assert result.method == "eml"
    assert result.error is None
    assert result.text.startswith("Subject: Delegation list\nFrom: Capital <desk@mfa.example>")
    assert "Head of delegation: H.E. Mr. X" in result.text


def forwarded(depth: int) -> EmailMessage:
    """A mail forwarding a mail forwarding ... ``depth`` times, the last one with a PDF."""
    message = mail("Level 0", "The list is attached.")
    message.add_attachment(
        make_pdf("Delegation of Peru"), maintype="application", subtype="pdf", filename="list.pdf"
    )
    for level in range(1, depth + 1):
        outer = mail(f"Level {level}", f"Forwarded, level {level}.")
        outer.add_attachment(message)
        message = outer
    return message


def test_it_reads_the_files_of_attached_mails_two_levels_deep() -> None:
    data = forwarded(2).get_payload()[1].get_payload()[0].as_bytes()  # level 1, as a file

    result = extract_text(attachment(data, "fwd.eml", "message/rfc822"))

    assert [(p.name, p.method, p.error) for p in walk(result)] == [
        ("fwd.eml", "eml", None),
        ("fwd.eml/attachment-1.eml", "eml", None),
        ("fwd.eml/attachment-1.eml/list.pdf", "pdf", None),
    ]
    assert "Forwarded, level 1." in result.text
    assert "The list is attached." in result.text
    assert "Delegation of Peru" in result.text


def test_it_does_not_open_the_files_of_mails_nested_beyond_the_bound() -> None:
    data = forwarded(3).get_payload()[1].get_payload()[0].as_bytes()  # level 2

    result = extract_text(attachment(data, "fwd.eml", "message/rfc822"))

    deepest = result.parts[0].parts[0]
    assert deepest.name == "fwd.eml/attachment-1.eml/attachment-1 (2).eml"
    assert deepest.text.startswith("Subject: Level 0")
    assert deepest.error == "1 attached files not read: nested deeper than 2"
    assert deepest.parts == ()
    assert "Delegation of Peru" not in result.text


def test_a_file_of_a_forwarded_mail_counts_once_in_the_message() -> None:
    """The MIME parser lifts it to the message; the attached mail lists it, without its text."""
    inner = mail("Delegation", "Attached.")
    inner.add_attachment(
        make_xlsx(), maintype="application", subtype="octet-stream", filename="d.xlsx"
    )
    outer = mail("Fwd: Delegation", "See below.")
    outer.add_attachment(inner)

    results = extract_all(parse_message(outer.as_bytes()))

    assert [(r.name, r.method) for r in results] == [
        ("attachment-1.eml", "eml"),
        ("d.xlsx", "xlsx"),
    ]
    fwd, sheet = results
    assert [p.name for p in fwd.parts] == ["attachment-1.eml/d.xlsx"]
    assert fwd.parts[0].tables == sheet.tables
    assert fwd.tables == ()
    assert "State Party" not in fwd.text
    assert sum(len(r.tables) for r in results) == 2


def test_extract_all_gives_one_extraction_per_attachment_in_order() -> None:
    message = mail("Article 7", "See attached.")
    message.add_attachment(
        make_pdf("Form A"), maintype="application", subtype="pdf", filename="a.pdf"
    )
    message.add_attachment(
        b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="logo.png"
    )
    message.add_attachment(
        make_xlsx(), maintype="application", subtype="octet-stream", filename="b.xlsx"
    )

    results = extract_all(parse_message(message.as_bytes()), ocr=False)

    assert [(r.name, r.method, r.error is None) for r in results] == [
        ("a.pdf", "pdf", True),
        ("logo.png", "image", False),
        ("b.xlsx", "xlsx", True),
    ]
