"""extract_text / extract_all: attachment bytes in, text or a clear reason out, never a crash."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import date
from email.message import EmailMessage

import docx
import openpyxl
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from parsers.attachments import Extraction, extract_all, extract_text
from parsers.message import Attachment, parse_message

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def attachment(data: bytes, name: str, content_type: str) -> Attachment:
    return Attachment(
        filename=name,
        safe_name=name,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        inline=False,
    )


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


def test_it_reads_the_text_layer_of_a_pdf() -> None:
    data = make_pdf("Article 7 transparency report", "Reporting period: 2016")

    result = extract_text(attachment(data, "CCM Art7 2016.pdf", PDF))

    assert result == Extraction(
        "CCM Art7 2016.pdf", "pdf", "Article 7 transparency report\nReporting period: 2016", None
    )


def test_it_reads_docx_paragraphs_table_cells_and_the_letterhead() -> None:
    result = extract_text(attachment(make_docx(), "delegation.docx", DOCX))

    assert result.method == "docx"
    assert result.error is None
    lines = result.text.splitlines()
    assert lines[0] == "Permanent Mission of Ghana to the United Nations"
    assert "Composition of the delegation of Ghana to the 7MSP" in lines
    assert "H.E. Ms. A. Mensah\tAmbassador\tHead of delegation" in lines
    assert lines[-1] == "Geneva, 14 August 2017"


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


@pytest.mark.parametrize(
    ("data", "name", "content_type", "method", "error_start"),
    [
        (b"\x00\x17garbage bytes" * 50, "nv.pdf", PDF, "pdf", "corrupt PDF"),
        (b"%PDF-1.7\n1 0 obj <</Type /Catalog", "nv.pdf", PDF, "pdf", "corrupt PDF"),
        (b"not a zip at all", "liste.docx", DOCX, "docx", "corrupt DOCX"),
        (b"PK\x03\x04truncated", "liste.docx", DOCX, "docx", "corrupt DOCX"),
        (b"not a zip at all", "art7.xlsx", XLSX, "xlsx", "corrupt XLSX"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "old.doc",
            "application/msword",
            "none",
            "unsupported type application/msword",
        ),
        (b"\x89PNG\r\n\x1a\n", "logo.png", "image/png", "none", "unsupported type image/png"),
    ],
)
def test_it_turns_broken_or_unsupported_files_into_a_reason(
    data: bytes, name: str, content_type: str, method: str, error_start: str
) -> None:
    result = extract_text(attachment(data, name, content_type))

    assert (result.method, result.text) == (method, "")
    assert result.error is not None and result.error.startswith(error_start), result.error


def test_it_reports_a_zip_of_other_files_as_unsupported() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("report.txt", "hello")

    result = extract_text(attachment(out.getvalue(), "reports.zip", "application/zip"))

    assert result == Extraction("reports.zip", "none", "", "unsupported type application/zip")


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


def test_it_reads_plain_text_csv_and_html_attachments_in_their_charsets() -> None:
    latin = extract_text(attachment("Délégation\r\nliste".encode("cp1252"), "l.txt", "text/plain"))
    csv = extract_text(attachment("Nom;Fonction\nMme Pérez;Cheffe".encode(), "d.csv", "text/csv"))
    utf16 = extract_text(attachment("Delegación".encode("utf-16"), "d.txt", "text/plain"))
    page = extract_text(
        attachment(b"<p>Liste des d&eacute;l&eacute;gu&eacute;s</p>", "d.html", "text/html")
    )

    assert (latin.method, latin.text) == ("text", "Délégation\nliste")
    assert csv.text == "Nom;Fonction\nMme Pérez;Cheffe"
    assert utf16.text == "Delegación"
    assert (page.method, page.text) == ("html", "Liste des délégués")


def test_it_cuts_text_at_max_chars() -> None:
    result = extract_text(attachment(b"a" * 1000, "a.txt", "text/plain"), max_chars=10)

    assert result.text == "a" * 10


def test_it_reads_an_attached_mail_as_text() -> None:
    inner = EmailMessage()
    inner["From"] = "Capital <desk@mfa.example>"
    inner["Subject"] = "Delegation list"
    inner.set_content("Head of delegation: H.E. Mr. X")

    result = extract_text(attachment(inner.as_bytes(), "fwd.eml", "message/rfc822"))

    assert result.method == "text"
    assert result.error is None
    assert result.text.startswith("Subject: Delegation list\nFrom: Capital <desk@mfa.example>")
    assert "Head of delegation: H.E. Mr. X" in result.text


def test_extract_all_gives_one_extraction_per_attachment_in_order() -> None:
    mail = EmailMessage()
    mail["From"] = "mission@example.org"
    mail["Subject"] = "Article 7"
    mail.set_content("See attached.")
    mail.add_attachment(make_pdf("Form A"), maintype="application", subtype="pdf", filename="a.pdf")
    mail.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="logo.png")
    mail.add_attachment(
        make_xlsx(), maintype="application", subtype="octet-stream", filename="b.xlsx"
    )

    results = extract_all(parse_message(mail.as_bytes()))

    assert [(r.name, r.method, r.error is None) for r in results] == [
        ("a.pdf", "pdf", True),
        ("logo.png", "none", False),
        ("b.xlsx", "xlsx", True),
    ]
