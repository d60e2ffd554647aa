"""Every public test mail we could find goes through the whole parsing chain without a crash.

The corpora (/work/shared/corpora, ``../shared/corpora`` beside a clone) hold some 560
messages from the test suites of mail libraries: malformed MIME, bombs, bounces, spam and
live malware. Only bytes are read; no attachment is ever written out or opened. One test
collects every failure and lists them all, which is much faster than one test per file.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from parsers.attachments import extract_all
from parsers.autoreply import auto_reply_reason
from parsers.classify import KINDS, classify_kind
from parsers.language import detect_language
from parsers.message import ParsedMessage, UnparseableMessage, parse_message

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
NOT_MAIL = frozenset({".tsv", ".csv", ".md"})
# Raw Outlook .msg (OLE compound file) and TNEF winmail.dat streams are not RFC 5322: they
# arrive as attachments, so that is how they are fed in. (The spamassassin DKIM ``.msg``
# files are plain RFC 5322 and are recognised as such by their first bytes.)
PAYLOADS = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "application/vnd.ms-outlook",
    b"\x78\x9f\x3e\x22": "application/ms-tnef",
}
METHODS = frozenset(
    {"pdf", "ocr", "docx", "xlsx", "xls", "odt", "ods", "rtf", "doc"}
    | {"zip", "msg", "tnef", "eml", "text", "html", "image", "none"}
)
# Bounces, read receipts and abuse reports that must never be answered.
MUST_BE_AUTOMATIC = (
    "flanker/bounce/delayed.eml",
    "flanker/bounce/gmail-invalid-address.eml",
    "flanker/bounce/mailbox-full.eml",
    "flanker/bounce/no-mx.eml",
    "flanker/bounce/office365.eml",
    "flanker/complaints/aol.eml",
    "flanker/disposition-notification.eml",
    "mikel-mail/multipart_report_emails/multipart_report_multiple_status.eml",
    "mikel-mail/multipart_report_emails/report_530.eml",
    "mimekit/messages/bounce.txt",
    "mimekit/messages/delivery-status.txt",
    "mimekit/messages/feedback-report.txt",
    "nodemailer-mailparser/delivery-status.eml",
    "spamassassin/welcomelists/mlist_mailman_message",
)


def _wrapped(name: str, data: bytes, content_type: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "mission@example.org"
    mail["To"] = "ccm@unog.ch"
    mail["Subject"] = f"Forwarding {name}"
    mail.set_content("See the attached file.")
    maintype, subtype = content_type.split("/")
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return mail.as_bytes()


def _check_attachments(msg: ParsedMessage) -> list[str]:
    problems = []
    for att in msg.attachments:
        name = att.safe_name
        if (
            name in ("", ".", "..")
            or name.startswith(".")
            or any(ch in name for ch in "/\\\r\n\x00")
            or len(name) > 120
        ):
            problems.append(f"unsafe name {name!r}")
        if att.sha256 != hashlib.sha256(att.data).hexdigest():
            problems.append(f"sha256 of {name!r} does not match its data")
    if len({a.safe_name.lower() for a in msg.attachments}) != len(msg.attachments):
        problems.append("two attachments share a safe name")
    return problems


def _run(raw: bytes, counts: Counter[str]) -> tuple[list[str], ParsedMessage | None, str | None]:
    """Parse, extract, check for robots, classify; return problems, the message and the reason."""
    try:
        msg = parse_message(raw)
    except UnparseableMessage:
        counts["unparseable"] += 1
        return [], None, None
    counts["parsed"] += 1
    counts["attachments"] += len(msg.attachments)
    counts["with defects"] += bool(msg.defects)
    problems = _check_attachments(msg)
    extractions = extract_all(msg)
    if [x.name for x in extractions] != [a.safe_name for a in msg.attachments]:
        problems.append("extractions do not match the attachments one to one")
    for x in extractions:
        counts[f"extraction {x.method}{' error' if x.error else ''}"] += 1
        if x.method not in METHODS or (x.error is not None and not x.error):
            problems.append(f"odd extraction {x}")
    reason = auto_reply_reason(msg, ["ccm@unog.ch"])
    counts["automatic" if reason else "human"] += 1
    kind = classify_kind(msg, extractions)
    if kind.kind not in KINDS or not 0.0 <= kind.confidence <= 1.0:
        problems.append(f"odd kind {kind.kind} {kind.confidence}")
    if kind.kinds:
        # None of these public test mails is a CCM submission.
        problems.append(f"classified as {kind.kinds} on {[e.detail for e in kind.evidence]}")
    if detect_language(msg.subject + "\n" + msg.text) not in ("en", "fr", "es"):
        problems.append("odd language")
    return problems, msg, reason


def test_every_corpus_file_goes_through_the_whole_chain_without_a_crash() -> None:
    if not CORPORA.is_dir():
        # CI always has shared/ beside the clone: there, a missing corpus is a failure.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no corpora at {CORPORA}")
        pytest.skip(f"no corpora at {CORPORA}")
    files = sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.suffix not in NOT_MAIL)
    failures: list[str] = []
    counts: Counter[str] = Counter()
    for path in files:
        rel = path.relative_to(CORPORA).as_posix()
        raw = path.read_bytes()
        payload_type = next((t for magic, t in PAYLOADS.items() if raw.startswith(magic)), None)
        try:
            if payload_type is not None:
                counts["raw payloads"] += 1
                problems, msg, reason = _run(_wrapped(path.name, raw, payload_type), counts)
                outcome = extract_all(msg)[0] if msg is not None else None
                if outcome is None or outcome.method not in ("msg", "tnef"):
                    problems.append(f"payload not opened as .msg or winmail.dat: {outcome}")
            else:
                problems, msg, reason = _run(raw, counts)
                if rel in MUST_BE_AUTOMATIC and reason is None:
                    problems.append("a bounce, report or list mail was taken for a human")
        except Exception as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        failures.extend(f"{rel}: {problem}" for problem in problems)

    print(
        f"\n{len(files)} corpus files: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    assert counts["parsed"] > 400
    assert not failures, "\n".join(failures)
