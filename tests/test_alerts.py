""" "Intake has stopped": one alert per outage and one all-clear, whoever runs the check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import time_machine

from config.settings import load_settings
from worker.alerts import check_intake
from worker.runtime import Context, build_context

T0 = datetime(2017, 8, 18, 7, 0, tzinfo=UTC)  # deadline day, 09:00 in Geneva


def context(db_url: str, tmp_path: Path, **extra: str) -> Context:
    return build_context(
        load_settings({"CCM_DATA_DIR": str(tmp_path), "CCM_DATABASE_URL": db_url, **extra})
    )


def mails(ctx: Context) -> list[EmailMessage]:
    out = []
    for row in ctx.db.outbox_rows():
        msg = message_from_bytes(row.raw, policy=default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_one_alert_per_outage_and_one_all_clear(db_url: str, tmp_path: Path) -> None:
    ctx = context(db_url, tmp_path)
    other_worker = context(db_url, tmp_path)  # a second process checking the same database
    key = ctx.settings.mailbox_key
    ctx.db.reset_mailbox(key, 7)
    ctx.db.poll_succeeded(key, T0)
    ctx.db.poll_failed(key, "IMAP login as 'ccm' at imap.example.org:993 refused", minutes(1))

    assert check_intake(ctx, minutes(10)) == []  # 10 minutes: not yet
    ctx.db.poll_failed(key, "IMAP server imap.example.org:993 unreachable", minutes(14))
    (alert,) = check_intake(ctx, minutes(16))
    assert check_intake(ctx, minutes(17)) == [] and check_intake(other_worker, minutes(18)) == []

    ctx.db.poll_succeeded(key, minutes(40))
    (clear,) = check_intake(other_worker, minutes(41))
    assert check_intake(ctx, minutes(42)) == []
    assert alert != clear

    stopped, resumed = mails(ctx)
    assert stopped["To"] == ctx.settings.secretary_address
    assert stopped["Auto-Submitted"] == "auto-generated"  # robots must not answer it
    assert "intake has stopped" in stopped["Subject"] and "09:00" in stopped["Subject"]
    body = stopped.get_content()
    assert "imap.example.org:993 unreachable" in body and "16 minutes ago" in body
    assert "intake has resumed" in resumed["Subject"] and "09:40" in resumed["Subject"]

    # A second outage, later that day, is a new one: a new alert, then a new all-clear.
    ctx.db.poll_succeeded(key, minutes(59))
    ctx.db.poll_failed(key, "connection lost", minutes(60))
    assert check_intake(ctx, minutes(62)) == []
    (second,) = check_intake(ctx, minutes(59 + 15))
    assert second not in (alert, clear)
    ctx.db.poll_succeeded(key, minutes(80))
    assert len(check_intake(ctx, minutes(81))) == 1 and len(mails(ctx)) == 4


def test_a_folder_never_read_is_an_outage_from_the_first_failure(
    db_url: str, tmp_path: Path
) -> None:
    ctx = context(db_url, tmp_path, CCM_ALERT_AFTER_MINUTES="5")
    with time_machine.travel(T0, tick=False):
        ctx.db.poll_failed(ctx.settings.mailbox_key, "IMAP login refused", T0)
    assert check_intake(ctx, minutes(4)) == []
    assert len(check_intake(ctx, minutes(5))) == 1


def test_healthy_polls_and_a_disabled_check_send_nothing(db_url: str, tmp_path: Path) -> None:
    ctx = context(db_url, tmp_path)
    key = ctx.settings.mailbox_key
    ctx.db.reset_mailbox(key, 7)
    ctx.db.poll_succeeded(key, T0)
    assert check_intake(ctx, minutes(600)) == []  # quiet, but nothing failed: no alert
    ctx.db.poll_failed(key, "timeout", minutes(601))
    off = context(db_url, tmp_path, CCM_ALERT_AFTER_MINUTES="0")
    assert check_intake(off, minutes(900)) == []
