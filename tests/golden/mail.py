"""Building blocks for the golden mails: the message, its attachments, note-verbale wording.

Everything is made in memory on each run (fpdf2, python-docx, openpyxl, zipfile, Pillow);
nothing binary is committed. Dates and Message-IDs are fixed, so a mail's bytes are the same
on every run and a failing case can be written out and replayed with ``ccm-intake classify``.

Besides PDF, DOCX and XLSX there are builders for what else missions send: ODT, RTF, a
scanned (image-only) PDF, a ZIP of files, an attached mail. ``.doc``, ``.msg`` and TNEF
``winmail.dat`` cannot be written with the libraries we have: ``PENDING_FORMATS`` lists them,
and a builder registered there is all their cases need (``build.pending_formats``).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime

from docx import Document
from fpdf import FPDF
from openpyxl import Workbook
from PIL import Image, ImageDraw, ImageFont

CCM = "CCM Secretariat <ccm@unog.ch>"
WHEN = datetime(2017, 8, 14, 9, 30, tzinfo=UTC)

# (file name, bytes, content type)
File = tuple[str, bytes, str]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
RTF = "application/rtf"
ZIP = "application/zip"

# Formats missions send that we cannot yet write here: a builder ``(name, paragraphs) -> File``
# registered in this table is enough for cases to use it (see build.py, ``_pending_cases``).
PENDING_FORMATS: dict[str, Callable[[str, Sequence[str]], File] | None] = {
    "doc": None,  # Word 97-2003 (OLE): needs a writer we do not have
    "msg": None,  # Outlook .msg (OLE): extract-msg reads, cannot write
    "tnef": None,  # winmail.dat: tnefparse reads, cannot write
}


# --------------------------------------------------------------------------- the message


def message(
    sender: str,
    subject: str,
    body: str,
    *,
    files: Sequence[File] = (),
    mails: Sequence[tuple[bytes, str]] = (),
    html: bool = False,
    to: str = CCM,
    reply_to: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    when: datetime = WHEN,
    msgid: str = "",
) -> bytes:
    """One mail as a mail server keeps it (CRLF), with ``files`` and attached ``mails``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    domain = sender.rpartition("@")[2].rstrip(">") or "example.org"
    stable = hashlib.sha256(f"{sender}\n{subject}\n{body}".encode()).hexdigest()[:16]
    msg["Message-ID"] = f"<{msgid or stable}.golden@{domain}>"
    for name, value in headers:
        msg[name] = value
    if html:
        paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in body.split("\n\n"))
        msg.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    else:
        msg.set_content(body)
    for name, data, ctype in files:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    for raw, name in mails:
        inner = message_from_bytes(raw, policy=email_policy.default)
        if name:
            msg.add_attachment(inner, filename=name)
        else:
            msg.add_attachment(inner)
    return msg.as_bytes(policy=email_policy.SMTP)


def raw_lines(lines: Sequence[str]) -> bytes:
    """A mail written line by line, for the shapes EmailMessage will not make (reports)."""
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# --------------------------------------------------------------------------- attachments


def _latin1(text: str) -> str:
    """fpdf2's core fonts are Latin-1: typographic dashes and quotes become plain ones."""
    table = str.maketrans({"–": "-", "—": "-", "’": "'", "“": '"', "”": '"', "…": "..."})
    return text.translate(table).encode("latin-1", errors="replace").decode("latin-1")


def pdf(name: str, title: str, lines: Sequence[str]) -> File:
    """A PDF with a real text layer, as a mission's word processor exports it."""
    doc = FPDF()
    doc.add_page()
    doc.set_font("Helvetica", "B", 13)
    doc.multi_cell(0, 7, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    doc.ln(3)
    doc.set_font("Helvetica", size=11)
    for line in lines:
        doc.multi_cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    return name, bytes(doc.output()), PDF


def scan(name: str, title: str, lines: Sequence[str]) -> File:
    """An image-only PDF: the note printed, signed, stamped and scanned. No text layer."""
    page = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=30)
    y = 120
    for line in [title, "", *lines]:
        draw.text((110, y), line, fill=0, font=font)
        y += 46
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    doc = FPDF()
    doc.add_page()
    doc.image(io.BytesIO(buffer.getvalue()), x=0, y=0, w=210)
    return name, bytes(doc.output()), PDF


def docx(
    name: str, heading: str, paragraphs: Sequence[str], rows: Sequence[Sequence[str]] = ()
) -> File:
    """A Word document: a heading, paragraphs and, for a delegation list, a table."""
    doc = Document()
    doc.add_heading(heading, level=1)
    for paragraph in paragraphs:
        doc.add_paragraph(paragraph)
    if rows:
        table = doc.add_table(rows=0, cols=len(rows[0]))
        for row in rows:
            for cell, text in zip(table.add_row().cells, row, strict=True):
                cell.text = text
    buffer = io.BytesIO()
    doc.save(buffer)
    return name, buffer.getvalue(), DOCX


def xlsx(name: str, sheets: dict[str, list[list[str]]]) -> File:
    """A workbook, one sheet per form, as the Article 7 reporting template is kept."""
    book = Workbook()
    for i, (title, rows) in enumerate(sheets.items()):
        sheet = book.active if i == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return name, buffer.getvalue(), XLSX


def odt(name: str, paragraphs: Sequence[str]) -> File:
    """An OpenDocument text, written by hand: LibreOffice needs only these four parts."""
    from xml.sax.saxutils import escape

    body = "".join(f"<text:p>{escape(p)}</text:p>" for p in paragraphs)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:text>{body}</office:text></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="' + ODT + '"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), ODT)  # first and stored, as the spec says
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return name, buffer.getvalue(), ODT


def rtf(name: str, paragraphs: Sequence[str]) -> File:
    """Rich Text as WordPad writes it; non-ASCII letters as \\u escapes."""

    def encode(text: str) -> str:
        out = []
        for ch in text:
            if ch in "\\{}":
                out.append("\\" + ch)
            elif ord(ch) > 127:
                out.append(f"\\u{ord(ch)}?")
            else:
                out.append(ch)
        return "".join(out)

    body = "\n".join(f"\\pard {encode(p)}\\par" for p in paragraphs)
    text = "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}\n" + body + "\n}"
    return name, text.encode("ascii"), RTF


def zipped(name: str, files: Sequence[File]) -> File:
    """A ZIP of files, as missions send several documents at once."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for inner, data, _ in files:
            archive.writestr(inner, data)
    return name, buffer.getvalue(), ZIP


# --------------------------------------------------------------------------- wording

# The body of a note verbale in each language: "{mission}" is the sender, "{what}" what it sends.
_NOTE = {
    "en": (
        "The {mission} to the United Nations Office and other international organizations in "
        "Geneva presents its compliments to the secretariat of the Convention on Cluster "
        "Munitions and has the honour to {what}\n\n"
        "The {mission} avails itself of this opportunity to renew to the secretariat the "
        "assurances of its highest consideration.\n\nGeneva, {date} August 2017\n"
    ),
    "fr": (
        "La {mission} auprès de l'Office des Nations Unies et des autres organisations "
        "internationales à Genève présente ses compliments au secrétariat de la Convention sur "
        "les armes à sous-munitions et a l'honneur de {what}\n\n"
        "La {mission} saisit cette occasion pour renouveler au secrétariat les assurances de sa "
        "haute considération.\n\nGenève, le {date} août 2017\n"
    ),
    "es": (
        "La {mission} ante la Oficina de las Naciones Unidas y otros organismos internacionales "
        "con sede en Ginebra saluda atentamente a la secretaría de la Convención sobre "
        "Municiones en Racimo y tiene el honor de {what}\n\n"
        "La {mission} aprovecha la oportunidad para reiterar a la secretaría las seguridades de "
        "su más alta y distinguida consideración.\n\nGinebra, {date} de agosto de 2017\n"
    ),
}
DELEGATION = {
    "en": "transmit herewith the composition of the delegation of {state} to the Seventh "
    "Meeting of States Parties to the Convention, to be held in Geneva from 4 to 6 September "
    "2017.",
    "fr": "lui transmettre ci-joint la composition de la délégation {of_state} à la septième "
    "Assemblée des États parties à la Convention, qui se tiendra à Genève du 4 au 6 septembre "
    "2017.",
    "es": "remitir adjunta la composición de la delegación {of_state} a la Séptima Reunión de "
    "los Estados Partes en la Convención, que se celebrará en Ginebra del 4 al 6 de septiembre "
    "de 2017.",
}
ARTICLE7 = {
    "en": "submit herewith the annual transparency report of {state} under Article 7 of the "
    "Convention, covering the period from 1 January to 31 December 2016.",
    "fr": "lui transmettre ci-joint le rapport annuel {of_state} au titre de l'article 7 de la "
    "Convention (mesures de transparence), couvrant la période du 1er janvier au 31 décembre "
    "2016.",
    "es": "remitir adjunto el informe anual {of_state} de conformidad con el artículo 7 de la "
    "Convención (medidas de transparencia), correspondiente al período del 1 de enero al 31 de "
    "diciembre de 2016.",
}


def note(lang: str, mission: str, what: str, date: int = 10) -> str:
    """A note verbale from ``mission`` ("Permanent Mission of Ghana") that does ``what``."""
    return _NOTE[lang].format(mission=mission, what=what, date=date)


def delegation_rows(lang: str, people: Sequence[tuple[str, str]]) -> list[str]:
    """The lines of a delegation list: (name and title, role) in the note's language."""
    label = {"en": "{role}: {who}", "fr": "{role} : {who}", "es": "{role}: {who}"}[lang]
    return [label.format(role=role, who=who) for who, role in people]


def article7_sheets(lang: str, state: str, forms: str = "ABCDEFGHIJ") -> dict[str, list[list[str]]]:
    """The Article 7 reporting template, cover and one sheet per form, filled for ``state``."""
    cover = {
        "en": (
            "Convention on Cluster Munitions - Article 7 Report",
            "State Party:",
            "Reporting period:",
            "1 January 2016 - 31 December 2016",
        ),
        "fr": (
            "Convention sur les armes à sous-munitions - Rapport au titre de l'article 7",
            "État partie :",
            "Période couverte :",
            "1er janvier 2016 - 31 décembre 2016",
        ),
        "es": (
            "Convención sobre Municiones en Racimo - Informe del artículo 7",
            "Estado Parte:",
            "Período que abarca:",
            "1 de enero de 2016 - 31 de diciembre de 2016",
        ),
    }[lang]
    word = {"en": "Form", "fr": "Formulaire", "es": "Formulario"}[lang]
    sheets = {"Cover": [[cover[0]], [cover[1], state], [cover[2], cover[3]]]}
    for letter in forms:
        sheets[f"{word} {letter}"] = [[f"{word} {letter}"], ["-"]]
    return sheets
