"""Every input that once broke the parsers, replayed: now each gets an outcome.

tests/fixtures/fuzz/ holds what ``scripts/fuzz`` and the property tests found: ``<name>.eml``
(the bytes) and ``<name>.txt`` (what broke, where, and what was fixed). Each mail goes through
``parse_message`` and ``analyse`` with the attachments read as the worker reads them (OCR
off) and unpacked as filing unpacks them: anything but the documented ``UnparseableMessage``
or ``OverLimit`` fails the test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from config.registry import load_directory, load_registry
from parsers.analysis import FILE, NOT_SUBMISSION, REVIEW, analyse
from parsers.attachments import extract_all, unpack
from parsers.limits import OverLimit
from parsers.message import UnparseableMessage, parse_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fuzz"
CASES = sorted(FIXTURES.glob("*.eml"))


def test_every_fixture_comes_with_a_note_that_says_what_broke() -> None:
    assert CASES, f"no fixtures in {FIXTURES}"
    for case in CASES:
        note = case.with_suffix(".txt")
        assert note.is_file(), f"{case.name} has no note"
        fields = dict(line.split(": ", 1) for line in note.read_text().splitlines() if ": " in line)
        assert {"what", "signature", "found", "status"} <= fields.keys(), note.name


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_a_mail_that_once_broke_the_parsers_now_gets_an_outcome(case: Path) -> None:
    raw = case.read_bytes()
    try:
        msg = parse_message(raw)
    except UnparseableMessage as exc:
        assert str(exc)
    else:
        assert parse_message(raw) == msg  # the same bytes, the same record
        with pytest.raises(dataclasses.FrozenInstanceError):
            msg.subject = ""  # type: ignore[misc]
        for att in msg.attachments:
            for inner in unpack(att):  # what filing puts beside the attachment
                assert "/" not in inner.safe_name and "\\" not in inner.safe_name
    try:
        analysis = analyse(
            raw,
            registry=load_registry(),
            directory=load_directory(),
            own_addresses=("ccm@unog.ch",),
            extract=lambda m: extract_all(m, ocr=False),
        )
    except UnparseableMessage:
        return  # quarantined as unreadable
    except OverLimit as exc:
        assert str(exc).startswith("over a limit: ")  # quarantined with the limit
        return
    assert analysis.outcome in (FILE, REVIEW, NOT_SUBMISSION)
    json.dumps(analysis.summary(), ensure_ascii=False)  # what the worker stores


def attached(header_line: bytes, copies: int = 1) -> bytes:
    inner = b"From: x@example.org\r\n" + header_line + b"\r\n\r\nbody\r\n"
    part = (
        b'--B\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename="f.eml"'
        b"\r\n\r\n" + inner + b"\r\n"
    )
    return (
        b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + part * copies + b"--B--\r\n"
    )


def test_long_8bit_header_lines_in_attached_mails_are_kept_from_mail_parser() -> None:
    """mail-parser folds each attached mail's header again, in quadratic time for a line with
    8-bit bytes (the fixture took 130 s in the worker): such a mail is read by the stdlib."""
    for raw in (
        (FIXTURES / "hang-mailparser-refolds-8bit-header.eml").read_bytes(),
        attached(b"X-Note: " + b"x" * 990 + b"\xc3\xa9", copies=50),
    ):
        msg = parse_message(raw)
        assert any("read with the stdlib parser alone" in d for d in msg.defects)
        assert msg.attachments  # the attached mails are still there
    usual = parse_message(attached("Subject: Délégation française".encode(), copies=3))
    assert not any("stdlib" in d for d in usual.defects)  # mail-parser still reads the rest
    assert len(usual.attachments) == 3
