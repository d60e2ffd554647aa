"""`ccm-intake reprocess` and `resend-ack`: a person takes a message or an acknowledgement up
again, from what was kept."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from config.settings import load_settings
from tests import servers
from tests.app import keep, run_cli
from tests.test_limits import mission_mail, pdf_of
from worker import processing
from worker.processing import ReviewError, reprocess, resend_ack
from worker.runtime import Context, build_context
from worker.samples import france_delegation
from worker.store import Status

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


def context(tmp_path: Path, **settings: str) -> Context:
    return build_context(load_settings({"CCM_DATA_DIR": str(tmp_path), **settings}))


def status_of(ctx: Context, message_id: int) -> str:
    (row,) = [m for m in ctx.db.recent_messages() if m.id == message_id]
    return row.status


def test_a_quarantined_mail_is_filed_once_the_limit_is_raised(tmp_path: Path) -> None:
    strict = context(tmp_path, CCM_MAX_PDF_PAGES="3")
    message_id, _ = keep(strict, mission_mail(("liste.pdf", pdf_of(4))), 1, WHEN)
    processing.process_message(strict, message_id, now=WHEN)
    assert status_of(strict, message_id) == Status.quarantined
    with pytest.raises(ReviewError, match="nothing to redo"):  # twice the same: no
        reprocess(strict, 999)

    raised = context(tmp_path, CCM_MAX_PDF_PAGES="10")
    done = reprocess(raised, message_id, now=WHEN + timedelta(hours=2))

    assert status_of(raised, message_id) == Status.filed and len(done.outbox_ids) == 1
    (submission,) = raised.db.submissions_of(message_id)
    assert submission.state_iso3 == "FRA"
    (row,) = [m for m in raised.db.recent_messages() if m.id == message_id]
    assert row.target == "folder:Filed/France"  # the next mailbox sync moves it there
    with pytest.raises(ReviewError, match="not quarantined, in review or set aside"):
        reprocess(raised, message_id)  # filed: its corrections come as new versions


def ack_of(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_an_acknowledgement_is_resent_as_a_new_mail_each_time(tmp_path: Path) -> None:
    ctx = context(tmp_path, CCM_ACK_RATE_LIMIT="1")
    message_id, _ = keep(ctx, france_delegation(WHEN).raw, 1, WHEN)
    processing.process_message(ctx, message_id, now=WHEN)
    (submission,) = ctx.db.submissions_of(message_id)

    first = resend_ack(ctx, submission.reference, now=WHEN + timedelta(minutes=5))
    second = resend_ack(ctx, submission.reference, now=WHEN + timedelta(minutes=6))

    rows = {r.id: r for r in ctx.db.outbox_rows()}
    original = next(r for r in rows.values() if r.key == f"ack:{submission.reference}")
    assert rows[first].key == f"ack:{submission.reference}:resend:1"
    assert rows[second].key == f"ack:{submission.reference}:resend:2"
    # Sent although the hourly limit (1) is used up: a person asked for it.
    assert rows[first].status == rows[second].status == "pending"
    old, new = ack_of(original.raw), ack_of(rows[first].raw)
    assert new["Message-ID"] != old["Message-ID"] == original.message_id_header
    assert (new["To"], new["Subject"]) == (old["To"], old["Subject"])
    assert new.get_body(("plain",)).get_content() == old.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    with pytest.raises(ReviewError, match="no acknowledgement was made"):
        resend_ack(ctx, "CCM/7MSP/DEL/XYZ/001")


def test_the_commands_reprocess_all_failed_and_resend_send_through_smtp(
    tmp_path: Path, smtp: servers.SmtpSink
) -> None:
    strict = context(tmp_path, CCM_MAX_PDF_PAGES="3")
    message_id, _ = keep(strict, mission_mail(("liste.pdf", pdf_of(4))), 1, datetime.now(UTC))
    processing.process_message(strict, message_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    env.update(
        CCM_DATA_DIR=str(tmp_path),
        CCM_SMTP_HOST=smtp.host,
        CCM_SMTP_PORT=str(smtp.port),
        CCM_SMTP_SECURITY="none",
        CCM_IMAP_HOST="127.0.0.1",
        CCM_IMAP_PORT=str(servers.free_port()),  # no server: the move waits for a poll
        CCM_IMAP_SECURITY="none",
        CCM_MAX_PDF_PAGES="10",
    )
    smtp.clear()

    done = run_cli(env, "reprocess", "--all-failed")

    assert done.returncode == 0, done.stderr
    assert f"message {message_id}: filed FRA" in done.stdout
    assert "next poll moves them" in done.stdout
    (ack,) = smtp.wait_for_count(1)
    reference = strict.db.submissions_of(message_id)[0].reference
    assert reference in str(ack.message["Subject"])

    again = run_cli(env, "resend-ack", reference)
    assert again.returncode == 0, again.stderr
    assert len(smtp.wait_for_count(2)) == 2
    missing = run_cli(env, "reprocess", "#4242")
    assert missing.returncode == 1 and "#4242 is not quarantined" in missing.stderr
