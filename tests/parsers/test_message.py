"""parse_message: raw bytes of a mission's mail in, a frozen ParsedMessage out."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from fpdf import FPDF

from parsers import message as message_module
from parsers.message import ParsedMessage, UnparseableMessage, parse_message, safe_filename


def make_pdf(*lines: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for line in lines:
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def note_verbale(**headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = '"Mission permanente de la France" <Mission.Geneve@Diplomatie.gouv.fr>'
    mail["To"] = "ccm@unog.ch"
    mail["Cc"] = "Attache <Attache.Desarmement@diplomatie.gouv.fr>"
    mail["Subject"] = "7MSP – Composition de la délégation française"
    mail["Date"] = "Mon, 14 Aug 2017 10:15:00 +0200"
    mail["Message-ID"] = "<nv-2017-0815@diplomatie.gouv.fr>"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(
        "La Mission permanente de la France auprès de l'Office des Nations Unies à Genève "
        "présente ses compliments au secrétariat de la Convention sur les armes à sous-munitions "
        "et a l'honneur de lui transmettre la composition de la délégation française."
    )
    return mail


def attachment_of(raw: bytes) -> message_module.Attachment:
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 1, parsed.attachments
    return parsed.attachments[0]


def raw_with_disposition(disposition: str, body: bytes = b"%PDF-1.4 nothing") -> bytes:
    """A hand-written mail, for header values the email package refuses to produce."""
    return (
        b"From: a@example.org\r\nTo: ccm@unog.ch\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: "
        + disposition.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n--b1--\r\n"
    )


def test_it_reads_a_french_note_verbale_with_a_pdf_attachment() -> None:
    pdf = make_pdf("Composition de la delegation", "Chef de delegation: S.E. M. X")
    mail = note_verbale()
    mail.add_attachment(pdf, maintype="application", subtype="pdf", filename="NV 2017-123.pdf")

    parsed = parse_message(mail.as_bytes())

    assert isinstance(parsed, ParsedMessage)
    assert parsed.subject == "7MSP – Composition de la délégation française"
    assert parsed.from_addr == "mission.geneve@diplomatie.gouv.fr"
    assert parsed.from_name == "Mission permanente de la France"
    assert parsed.to == ("ccm@unog.ch",)
    assert parsed.cc == ("attache.desarmement@diplomatie.gouv.fr",)
    assert parsed.message_id == "<nv-2017-0815@diplomatie.gouv.fr>"
    assert parsed.date is not None and parsed.date.utcoffset() is not None
    assert format_datetime(parsed.date) == "Mon, 14 Aug 2017 10:15:00 +0200"
    assert "a l'honneur de lui transmettre la composition" in parsed.text
    [att] = parsed.attachments
    assert att.filename == att.safe_name == "NV 2017-123.pdf"
    assert att.content_type == "application/pdf"
    assert att.data == pdf
    assert att.sha256 == hashlib.sha256(pdf).hexdigest()
    assert att.inline is False


def test_the_parsed_message_is_frozen_and_answers_headers_case_insensitively() -> None:
    parsed = parse_message(note_verbale(X_Custom="one").as_bytes())

    assert parsed.header("SUBJECT") == parsed.subject
    assert parsed.header("x-custom") == "one"
    assert parsed.header("x-absent") is None
    assert parsed.header_all("Received") == ()
    assert ("to", "ccm@unog.ch") in parsed.headers
    with pytest.raises(AttributeError):
        parsed.subject = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\temp\\\\x.pdf"', "x.pdf"),
        ('attachment; filename="C:\\temp\\x.pdf"', "x.pdf"),
        ('attachment; filename="..\\\\..\\\\boot.ini"', "boot.ini"),
        ("attachment; filename*=utf-8''evil%0D%0Aname%00.pdf", "evil name.pdf"),
        ('attachment; filename="=?utf-8?q?evil=0D=0Aname.pdf?="', "evil name.pdf"),
        ('attachment; filename=".htaccess"', "attachment-1.htaccess"),  # not hidden, name kept
        ('attachment; filename=".."', "attachment-1.pdf"),
        ('attachment; filename="/"', "attachment-1.pdf"),
        ('attachment; filename="CON.pdf"', "_CON.pdf"),
        ('attachment; filename="report\u202efdp.exe"', "reportfdp.exe"),
        ('attachment; filename="liste|finale?.pdf"', "liste_finale_.pdf"),
        ('attachment; filename="note:1.pdf"', "note_1.pdf"),
        ('attachment; filename="D:liste.pdf"', "liste.pdf"),
    ],
)
def test_it_gives_hostile_file_names_safe_names(disposition: str, expected: str) -> None:
    att = attachment_of(raw_with_disposition(disposition).replace(b"\\\\", b"\\"))

    assert att.safe_name == expected
    assert not any(ch in att.safe_name for ch in "/\\\r\n\x00")


def test_it_shortens_a_300_character_name_and_keeps_the_extension() -> None:
    mail = note_verbale()
    mail.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="é" * 296 + ".pdf"
    )

    att = attachment_of(mail.as_bytes())

    assert att.filename == "é" * 296 + ".pdf"
    assert len(att.safe_name) <= 120
    assert len(att.safe_name.encode()) <= 240
    assert att.safe_name.endswith(".pdf")
    assert att.safe_name.startswith("éééé")


def test_safe_filename_normalises_to_nfc_and_falls_back_on_the_content_type() -> None:
    assert safe_filename("De\u0301le\u0301gation.pdf", 1, "application/pdf") == "Délégation.pdf"
    assert safe_filename("", 3, "application/pdf") == "attachment-3.pdf"
    assert safe_filename("...", 2, "message/rfc822") == "attachment-2.eml"
    assert safe_filename("", 4, "application/x-unknown") == "attachment-4.bin"


def test_it_decodes_an_rfc_2231_encoded_non_ascii_file_name() -> None:
    mail = note_verbale()
    mail.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="Délégation – liste.pdf"
    )
    assert b"filename*=utf-8''" in mail.as_bytes()

    att = attachment_of(mail.as_bytes())

    assert att.filename == "Délégation – liste.pdf"
    assert att.safe_name == "Délégation – liste.pdf"


def test_it_decodes_an_rfc_2047_encoded_file_name_as_outlook_sends_it() -> None:
    encoded = "=?UTF-8?B?RMOpbMOpZ2F0aW9uIOKAkyBsaXN0ZS5wZGY=?="
    att = attachment_of(raw_with_disposition(f'attachment; filename="{encoded}"'))

    assert att.filename == "Délégation – liste.pdf"


def test_it_decodes_a_raw_utf8_file_name_sent_without_encoding() -> None:
    raw = raw_with_disposition('attachment; filename="Délégation.pdf"')

    assert attachment_of(raw).filename == "Délégation.pdf"


def test_it_counts_an_inline_pdf_as_an_attachment() -> None:
    mail = note_verbale()
    mail.add_attachment(
        make_pdf("Delegation"),
        maintype="application",
        subtype="pdf",
        filename="delegation.pdf",
        disposition="inline",
    )

    att = attachment_of(mail.as_bytes())

    assert att.inline is True
    assert att.safe_name == "delegation.pdf"


def test_it_gives_a_forwarded_message_as_an_eml_attachment_and_lifts_its_files() -> None:
    inner = note_verbale()
    inner.add_attachment(
        make_pdf("Liste"), maintype="application", subtype="pdf", filename="liste.pdf"
    )
    outer = EmailMessage()
    outer["From"] = "attache@diplomatie.gouv.fr"
    outer["To"] = "ccm@unog.ch"
    outer["Subject"] = "TR: 7MSP – Composition de la délégation française"
    outer.set_content("Pour information, message de Paris ci-joint.")
    outer.add_attachment(inner)

    parsed = parse_message(outer.as_bytes())

    kinds = [(a.content_type, a.safe_name) for a in parsed.attachments]
    assert kinds == [("message/rfc822", "attachment-1.eml"), ("application/pdf", "liste.pdf")]
    assert parse_message(parsed.attachments[0].data).subject == inner["Subject"]
    # The forwarded note's own words stay in its .eml; the body is what the attaché wrote.
    assert parsed.text == "Pour information, message de Paris ci-joint."


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n\r\n", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", b"\x00\x01\x02garbage"]
)
def test_it_raises_unparseable_for_bytes_that_are_no_mail(raw: bytes) -> None:
    with pytest.raises(UnparseableMessage) as caught:
        parse_message(raw)

    assert str(caught.value)


def test_it_reads_an_html_only_mail_as_text() -> None:
    mail = note_verbale()
    mail.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>Liste des d&eacute;l&eacute;gu&eacute;s</p><script>alert(1)</script>"
        "<p>Chef&nbsp;de d&#233;l&#xe9;gation</p></body></html>",
        subtype="html",
    )

    parsed = parse_message(mail.as_bytes())

    assert parsed.text == "Liste des délégués\n\nChef de délégation"


def test_it_prefers_the_plain_text_alternative_over_html() -> None:
    mail = note_verbale()
    mail.add_alternative("<p>HTML version</p>", subtype="html")

    parsed = parse_message(mail.as_bytes())

    assert "HTML version" not in parsed.text
    assert "composition de la délégation" in parsed.text


def test_it_decodes_encoded_and_raw_8bit_headers() -> None:
    raw = (
        "From: =?iso-8859-1?q?Misi=F3n_Permanente_de_Espa=F1a?= <MISION@maec.es>\r\n"
        "To: ccm@unog.ch\r\n"
        "Subject: =?utf-8?b?RGVsZWdhY2nDs24=?= =?utf-8?b?IGRlIEVzcGHDsWE=?=\r\n"
        "X-Raw: Réunion\r\n"
        "\r\nCuerpo\r\n"
    ).encode()

    parsed = parse_message(raw)

    assert parsed.from_name == "Misión Permanente de España"
    assert parsed.from_addr == "mision@maec.es"
    assert parsed.subject == "Delegación de España"
    assert parsed.header("x-raw") == "Réunion"


def test_it_keeps_reply_threading_headers() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: Re: x\r\nIn-Reply-To: <ack-1@unog.ch>\r\n"
        b"References: <nv-1@example.org>\r\n <ack-1@unog.ch>\r\n"
        b"Reply-To: Desk <DESK@example.org>\r\n"
        b"\r\nThanks\r\n"
    )

    parsed = parse_message(raw)

    assert parsed.in_reply_to == "<ack-1@unog.ch>"
    assert parsed.references == ("<nv-1@example.org>", "<ack-1@unog.ch>")
    assert parsed.reply_to == ("desk@example.org",)
    assert parsed.message_id is None
    assert parsed.date is None


def test_it_recovers_a_multipart_whose_boundary_is_not_the_declared_one() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="declared"\r\n\r\n'
        b"--actual\r\nContent-Type: text/plain\r\n\r\nBody text.\r\n"
        b'--actual\r\nContent-Type: application/pdf; name="nv.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--actual--\r\n"
    )

    parsed = parse_message(raw)

    assert parsed.text == "Body text."
    assert [a.safe_name for a in parsed.attachments] == ["nv.pdf"]
    assert parsed.attachments[0].data == b"%PDF-1.4"
    assert any("boundary" in d for d in parsed.defects)


def test_it_names_two_attachments_with_the_same_name_apart() -> None:
    mail = note_verbale()
    for _ in range(2):
        mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="scan.pdf")

    names = [a.safe_name for a in parse_message(mail.as_bytes()).attachments]

    assert names == ["scan.pdf", "scan (2).pdf"]


def test_it_names_two_long_attachments_with_the_same_name_apart() -> None:
    mail = note_verbale()
    for _ in range(3):
        mail.add_attachment(
            b"x", maintype="application", subtype="pdf", filename="é" * 300 + ".pdf"
        )

    names = [a.safe_name for a in parse_message(mail.as_bytes()).attachments]

    assert len(set(names)) == 3
    assert names[1].endswith(" (2).pdf") and names[2].endswith(" (3).pdf")
    assert all(len(n) <= 120 and len(n.encode()) <= 240 for n in names)


def test_it_names_an_unnamed_attachment_after_its_content_type() -> None:
    mail = note_verbale()
    mail.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf")

    att = attachment_of(mail.as_bytes())

    assert att.filename == ""
    assert att.safe_name == "attachment-1.pdf"


def test_it_drops_attachments_beyond_the_count_cap_with_a_defect() -> None:
    mail = note_verbale()
    for n in range(message_module.MAX_ATTACHMENTS + 5):
        mail.add_attachment(
            b"x", maintype="application", subtype="octet-stream", filename=f"{n}.bin"
        )

    parsed = parse_message(mail.as_bytes())

    assert len(parsed.attachments) == message_module.MAX_ATTACHMENTS
    assert any("count cap" in d and "5 dropped" in d for d in parsed.defects)


def test_it_drops_attachments_beyond_the_size_cap_with_a_defect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(message_module, "MAX_TOTAL_BYTES", 1500)
    mail = note_verbale()
    for n in range(3):
        mail.add_attachment(b"x" * 1000, maintype="application", subtype="pdf", filename=f"{n}.pdf")

    parsed = parse_message(mail.as_bytes())

    assert [a.safe_name for a in parsed.attachments] == ["0.pdf"]
    assert any("size cap" in d and "2 dropped" in d for d in parsed.defects)


def test_it_survives_a_message_nested_thousands_of_levels_deep() -> None:
    depth = 3000
    head = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    raw = ("From: bomb@example.org\r\nSubject: deep\r\n" + head + "\r\nx\r\n").encode()

    parsed = parse_message(raw)

    assert parsed.subject == "deep"
    assert parsed.from_addr == "bomb@example.org"


def test_it_reads_the_obsolete_space_before_colon_header_syntax() -> None:
    raw = b"From  : John Doe <jdoe@example.org>\r\nSubject : Hello\r\n\r\nBody\r\n"

    parsed = parse_message(raw)

    assert parsed.from_addr == "jdoe@example.org"
    assert parsed.subject == "Hello"


def test_it_reads_a_body_in_an_unknown_charset_and_says_so() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nContent-Type: text/plain; charset=x-made-up\r\n"
        b"\r\nD\xc3\xa9l\xc3\xa9gation\r\n"
    )

    parsed = parse_message(raw)

    assert parsed.text == "Délégation"
    assert any("x-made-up" in d for d in parsed.defects)


# --------------------------------------------------------------------------- large bodies


def large_mail(*, crlf: bool = False) -> bytes:
    """A note with a 300 KB PDF, a 200 KB base64 text body part and a forwarded mail that
    carries a 150 KB file of its own: every kind of part a large body can sit in."""
    import os as _os

    forwarded = note_verbale()
    forwarded.add_attachment(
        _os.urandom(150_000), maintype="application", subtype="octet-stream", filename="a.bin"
    )
    mail = note_verbale()
    mail.add_attachment(
        make_pdf("Delegation") + _os.urandom(300_000),
        maintype="application",
        subtype="pdf",
        filename="liste.pdf",
    )
    mail.add_attachment(("Liste de la délégation\n" * 9000).encode(), maintype="text",
                        subtype="plain", filename="liste.txt")  # fmt: skip
    mail.add_attachment(forwarded)
    raw = mail.as_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


@pytest.mark.parametrize("crlf", [False, True])
def test_large_bodies_decoded_outside_the_parser_give_the_same_message(
    monkeypatch: pytest.MonkeyPatch, crlf: bool
) -> None:
    raw = large_mail(crlf=crlf)
    lifted = message_module.Lifted.from_raw(raw)
    assert len(lifted.bodies) == 3  # the PDF, the text file and the forwarded mail's file
    assert len(lifted.raw) < len(raw) // 10

    as_lifted = parse_message(raw)
    monkeypatch.setattr(message_module, "LIFT_BYTES", 10**12)
    assert as_lifted == parse_message(raw)
    names = [a.safe_name for a in as_lifted.attachments]
    assert names == ["liste.pdf", "liste.txt", "attachment-3.eml", "a.bin"]


def test_a_body_that_is_not_plain_base64_is_left_to_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = large_mail()
    pdf = parse_message(raw).attachments[0].data
    start = raw.index(b'filename="liste.pdf"')
    body = raw.index(b"\n\n", start) + 2
    for spoilt in (raw[:body] + b"*" + raw[body:], raw[:body] + raw[body + 1 :]):  # stray, padding
        lifted = message_module.Lifted.from_raw(spoilt)
        assert len(lifted.bodies) == 2  # the PDF's body is no longer lifted
        as_lifted = parse_message(spoilt)
        monkeypatch.setattr(message_module, "LIFT_BYTES", 10**12)
        assert as_lifted == parse_message(spoilt)
        monkeypatch.undo()
    assert as_lifted.attachments[0].data != pdf  # the parser's own lenient reading


def test_a_sender_cannot_pass_off_a_part_as_a_lifted_body() -> None:
    """A small part whose content looks like a marker stays what it is: markers carry a digest
    of the message they are in, which a message cannot contain."""
    raw = large_mail()
    first = message_module.Lifted.from_raw(raw)
    (marker, *_), *_ = first.lines.values()
    mail = note_verbale()
    mail.add_attachment(marker, maintype="application", subtype="octet-stream", filename="m.bin")
    mail.add_attachment(b"x" * 200_000, maintype="application", subtype="octet-stream",
                        filename="big.bin")  # fmt: skip
    parsed = parse_message(mail.as_bytes())
    assert [a.data for a in parsed.attachments] == [marker, b"x" * 200_000]


def test_encoding_headers_repeated_in_a_body_lift_nothing_and_parse() -> None:
    """Each look for a large body stays between neighbouring encoding headers: a body that
    repeats the header (with or without blank lines) is read once, not once per header."""
    head = b"From: a@example.org\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n"
    for body in (
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\n" * 50_000,
        b"Content-Transfer-Encoding: base64\r\n" * 50_000,
    ):
        raw = head + body
        assert message_module.Lifted.from_raw(raw).bodies == {}
        assert parse_message(raw).text.startswith("Content-Transfer-Encoding: base64")
