"""Realistic mission mails for the demo and the tests, made fresh (PDF, DOCX, XLSX in memory).

Each sample says what the service should make of it, so the demo can check itself.
Sender addresses use the illustrative mission directory in config/data/missions.csv.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from docx import Document
from fpdf import FPDF
from openpyxl import Workbook


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    raw: bytes
    expect_status: str  # filed | needs_review | not_submission
    expect_state: str | None
    expect_kinds: tuple[str, ...]
    expect_ack: bool
    sent: datetime


def pdf_bytes(title: str, lines: list[str]) -> bytes:
    """A one-page PDF with a real text layer (core fonts: Latin-1 text only)."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", size=11)
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def docx_bytes(heading: str, rows: list[tuple[str, str, str]]) -> bytes:
    doc = Document()
    doc.add_heading(heading, level=1)
    table = doc.add_table(rows=1, cols=3)
    for cell, text in zip(
        table.rows[0].cells, ("Nombre", "Cargo", "Función en la delegación"), strict=True
    ):
        cell.text = text
    for row in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = text
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[str]]]) -> bytes:
    book = Workbook()
    first = True
    for title, rows in sheets.items():
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        sheet.title = title
        for row in rows:
            sheet.append(row)
        first = False
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _mail(sender: str, subject: str, body: str, when: datetime, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "CCM Secretariat <ccm@unog.ch>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def _raw(msg: EmailMessage) -> bytes:
    """CRLF line ends, as a mail server stores and serves it."""
    return msg.as_bytes(policy=SMTP)


def france_delegation(when: datetime) -> Sample:
    msg = _mail(
        "Mission permanente de la France <dfra.geneve@diplomatie.gouv.fr>",
        "7MSP - Composition de la délégation française",
        "Note verbale n° 2017-0412\n\n"
        "La Mission permanente de la France auprès de l'Office des Nations Unies à Genève présente "
        "ses compliments au Secrétariat de la Convention sur les armes à sous-munitions et a "
        "l'honneur de lui communiquer ci-joint la composition de la délégation française à la "
        "Septième Réunion des États parties (Genève, 4-6 septembre 2017).\n\n"
        "La Mission permanente de la France saisit cette occasion pour renouveler au Secrétariat "
        "les assurances de sa haute considération.\n\n"
        "Genève, le 10 août 2017\n",
        when,
    )
    msg.add_attachment(
        pdf_bytes(
            "Septième Réunion des États parties - Délégation de la France",
            [
                "Chef de délégation : S.E. M. Jean Dupont, Ambassadeur, Représentant permanent",
                "Suppléant : Mme Claire Martin, Conseillère",
                "Conseiller : M. Luc Bernard, Ministère de l'Europe et des Affaires étrangères",
            ],
        ),
        maintype="application",
        subtype="pdf",
        filename="Délégation France 7MSP.pdf",
    )
    return Sample("france-delegation-fr", _raw(msg), "filed", "FRA", ("delegation",), True, when)


def mexico_delegation(when: datetime) -> Sample:
    msg = _mail(
        "Misión Permanente de México <mision.ginebra@sre.gob.mx>",
        "Composición de la delegación de México - Séptima Reunión de los Estados Partes",
        "OGE-01234\n\n"
        "La Misión Permanente de México ante la Oficina de las Naciones Unidas en Ginebra saluda "
        "atentamente a la Secretaría de la Convención sobre Municiones en Racimo y tiene el honor "
        "de remitir adjunta la lista de la delegación de México a la Séptima Reunión de los "
        "Estados Partes, que se celebrará en Ginebra del 4 al 6 de septiembre de 2017.\n\n"
        "La Misión Permanente de México aprovecha la oportunidad para reiterar a la Secretaría "
        "las seguridades de su más alta y distinguida consideración.\n",
        when,
    )
    msg.add_attachment(
        docx_bytes(
            "Delegación de México - 7REP",
            [
                ("Embajador Jorge Lomónaco", "Representante Permanente", "Jefe de la delegación"),
                ("Ministra Ana María Sánchez", "Representante Permanente Alterna", "Suplente"),
                ("Pablo Arrocha", "Consejero", "Asesor"),
            ],
        ),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="Delegación México 7REP.docx",
    )
    return Sample("mexico-delegation-es", _raw(msg), "filed", "MEX", ("delegation",), True, when)


def australia_article7(when: datetime) -> Sample:
    msg = _mail(
        "Australian Permanent Mission Geneva <geneva.disarmament@dfat.gov.au>",
        "Australia - Convention on Cluster Munitions Article 7 transparency report 2016",
        "The Permanent Mission of Australia to the United Nations in Geneva presents its "
        "compliments to the Secretariat of the Convention on Cluster Munitions and has the honour "
        "to submit Australia's annual Article 7 transparency report covering the period "
        "1 January to 31 December 2016, attached.\n\n"
        "The Permanent Mission of Australia avails itself of this opportunity to renew to the "
        "Secretariat the assurances of its highest consideration.\n",
        when,
    )
    msg.add_attachment(
        xlsx_bytes(
            {
                "Cover": [
                    ["Convention on Cluster Munitions - Article 7 Report"],
                    ["State Party:", "Australia"],
                    ["Reporting period:", "1 January 2016 to 31 December 2016"],
                ],
                "Form A": [
                    ["Form A: National implementation measures"],
                    ["Cluster Munitions (Prohibition) Act 2012"],
                ],
                "Form B": [["Form B: Stockpiles and destruction"], ["No stockpiles"]],
            }
        ),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="Australia CCM Article 7 Report 2016.xlsx",
    )
    return Sample("australia-article7-en", _raw(msg), "filed", "AUS", ("article7",), True, when)


def senegal_from_freemail(when: datetime) -> Sample:
    msg = _mail(
        "Mission du Sénégal Genève <senegal.mission.geneve@gmail.com>",
        "Délégation du Sénégal à la 7e Réunion des États parties",
        "La Mission permanente de la République du Sénégal auprès de l'Office des Nations Unies à "
        "Genève présente ses compliments au Secrétariat de la Convention sur les armes à "
        "sous-munitions et a l'honneur de lui transmettre la liste des membres de la délégation "
        "sénégalaise à la Septième Réunion des États parties.\n\n"
        "Mission permanente du Sénégal\nPalais des Nations, CH-1211 Genève 10, Suisse\n",
        when,
    )
    msg.add_attachment(
        pdf_bytes(
            "Délégation du Sénégal",
            [
                "Chef de délégation : M. Coly Seck, Ambassadeur",
                "Membre : Mme Fatou Diop, Premier Conseiller",
            ],
        ),
        maintype="application",
        subtype="pdf",
        filename="liste_delegation_senegal.pdf",
    )
    return Sample(
        "senegal-delegation-freemail-fr",
        _raw(msg),
        "filed",
        "SEN",
        ("delegation",),
        True,
        when,
    )


def out_of_office(when: datetime) -> Sample:
    msg = _mail(
        "Kari Nordmann <kari.nordmann@mfa.no>",
        "Automatic reply: CCM 7MSP - reminder",
        "I am out of the office until 21 August 2017 with limited access to e-mail.\n",
        when,
        Auto_Submitted="auto-replied",
    )
    return Sample("norway-out-of-office-en", _raw(msg), "not_submission", None, (), False, when)


def unsigned_delegation(when: datetime) -> Sample:
    msg = _mail(
        "d.smith1972@gmail.com",
        "delegation list",
        "Dear Secretariat,\n\nPlease find attached our delegation list for the Meeting of States "
        "Parties in September.\n\nBest regards,\nDavid\n",
        when,
    )
    msg.add_attachment(
        pdf_bytes("Delegation", ["Head of delegation: Mr D. Smith", "Adviser: Ms A. Jones"]),
        maintype="application",
        subtype="pdf",
        filename="delegation.pdf",
    )
    return Sample(
        "unsigned-delegation-en", _raw(msg), "needs_review", None, ("delegation",), False, when
    )


def bounce(when: datetime) -> Sample:
    """A delivery status notification for a mail the secretariat sent (RFC 3464), as Postfix
    writes one: multipart/report with a human part and a message/delivery-status part."""
    lines = [
        "Return-Path: <>",
        "From: Mail Delivery System <MAILER-DAEMON@mx.mfa.example>",
        "To: ccm@unog.ch",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {make_msgid(domain='mx.mfa.example')}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"',
        "",
        "--B0UND",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is the mail system at host mx.mfa.example.",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients.",
        "",
        "--B0UND",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.mfa.example",
        "",
        "Final-Recipient: rfc822; old.desk@mfa.example",
        "Action: failed",
        "Status: 5.1.1",
        "",
        "--B0UND--",
        "",
    ]
    raw = "\r\n".join(lines).encode()
    return Sample("bounce-dsn", raw, "not_submission", None, (), False, when)


def demo_samples(when: datetime | None = None) -> list[Sample]:
    when = when or datetime(2017, 8, 14, 9, 30, tzinfo=UTC)
    return [
        france_delegation(when),
        mexico_delegation(when),
        australia_article7(when),
        senegal_from_freemail(when),
        out_of_office(when),
        unsigned_delegation(when),
    ]
