"""End to end, on real servers: Dovecot, Redis, SQLite or PostgreSQL, aiosmtpd, a real worker."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import load_settings
from tests.app import WorkerProcess, append, count, folder_subjects, rows, wait_until
from worker.samples import bounce, france_delegation, out_of_office

pytestmark = pytest.mark.slow


def test_a_note_verbale_with_a_pdf_is_filed_under_its_state_and_acknowledged_once(
    tmp_path: Path, dovecot: Any, account: tuple[str, str], smtp: Any, db_url: str, make_env: Any
) -> None:
    user, password = account
    env = make_env(db_url)
    sample = france_delegation(datetime.now(UTC))
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        append(dovecot, user, password, sample.raw)
        wait_until(lambda: count(db_url, "select count(*) from submission"), 60, "a submission")
        smtp.wait_for_count(1, timeout=30)
        wait_until(
            lambda: "Filed/France" in folder_subjects(dovecot, user, password), 30, "Filed/France"
        )
        wait_until(
            lambda: count(db_url, "select count(*) from outbox where copied_to_sent"),
            30,
            "Sent copy",
        )
        worker_log = worker.text()

    ((iso3, kind, reference, folder),) = rows(
        db_url, "select state_iso3, kind, reference, folder from submission"
    )
    assert (iso3, kind) == ("FRA", "delegation"), worker_log
    assert reference == "CCM/7MSP/DEL/FRA/001"
    archive = load_settings(env).archive_path
    filed = archive / folder
    assert filed.name.endswith("CCM-7MSP-DEL-FRA-001") and filed.parent.parent.name == "FRA France"
    assert (filed / "original.eml").read_bytes() == sample.raw
    pdf = filed / "Délégation France 7MSP.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")

    folders = folder_subjects(dovecot, user, password)
    assert folders["INBOX"] == []
    assert folders["Filed/France"] == ["7MSP - Composition de la délégation française"]
    assert len(folders["Sent"]) == 1

    (ack,) = smtp.messages
    assert ack.rcpt_tos == ["dfra.geneve@diplomatie.gouv.fr"]
    msg = ack.message
    original_id = rows(db_url, "select message_id_header from message")[0][0]
    assert msg["In-Reply-To"] == original_id
    assert original_id in msg["References"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Message-ID"] == rows(db_url, "select message_id_header from outbox")[0][0]
    body = msg.get_body(("plain",)).get_content()
    assert reference in str(msg["Subject"]) and reference in body
    assert "Accusé de réception" in str(msg["Subject"])  # answered in the mission's language
    assert hashlib.sha256(pdf.read_bytes()).hexdigest() in body
    assert "Délégation France 7MSP.pdf" in body
    # Exactly one, even after more polls.
    assert len(smtp.messages) == 1


def test_an_auto_reply_and_a_bounce_are_kept_as_not_submissions_and_left_unanswered(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    sqlite_url: str,
    make_env: Any,
) -> None:
    user, password = account
    env = make_env(sqlite_url)
    automatic = [out_of_office(datetime.now(UTC)), bounce(datetime.now(UTC))]

    def not_submissions() -> list[str]:
        return folder_subjects(dovecot, user, password).get("Not submissions", [])

    with WorkerProcess(env, tmp_path / "worker.log"):
        for sample in automatic:
            append(dovecot, user, password, sample.raw)
        wait_until(lambda: len(not_submissions()) == 2, 60, "both in Not submissions")
    assert rows(sqlite_url, "select status from message") == [("not_submission",)] * 2
    archive = load_settings(env).archive_path
    for sample in automatic:  # kept, byte for byte
        sha = hashlib.sha256(sample.raw).hexdigest()
        assert (archive / "raw" / sha[:2] / f"{sha}.eml").read_bytes() == sample.raw
    assert count(sqlite_url, "select count(*) from submission") == 0
    assert count(sqlite_url, "select count(*) from outbox") == 0
    assert smtp.messages == []
