"""Nothing twice: re-polls, restarts, re-sent bytes and a new UIDVALIDITY file once, ack once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from imap_tools import MailBoxUnencrypted

from config.settings import load_settings
from tests.app import WorkerProcess, append, folder_subjects, wait_until
from worker import intake, mailer, processing
from worker.runtime import Context, build_context
from worker.samples import australia_article7, france_delegation

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(db_url: str, make_env: Any) -> dict[str, str]:
    return dict(make_env(db_url, CCM_RETRY_GRACE="0"))


def run_everything(ctx: Context) -> intake.PollResult:
    """What the worker does, in order, in this process: poll, process, send, act on the mailbox."""
    result = intake.poll_once(ctx)
    for message_id in result.new + result.unfinished:
        processing.process_message(ctx, message_id)
    mailer.send_due(ctx.db, ctx.settings)
    intake.sync_mailbox(ctx)
    return result


def counts(ctx: Context) -> tuple[int, int, int]:
    """(messages, submissions, acknowledgements sent)."""
    statuses = ctx.db.status_counts()
    subs = sum(n for _, _, n, _ in ctx.db.filed_by_state())
    return sum(statuses.values()), subs, ctx.db.outbox_counts().get("sent", 0)


def test_polling_twice_keeps_and_files_a_message_once(
    env: dict[str, str], dovecot: Any, smtp: Any
) -> None:
    ctx = build_context(load_settings(env))
    append(
        dovecot,
        env["CCM_IMAP_USER"],
        env["CCM_IMAP_PASSWORD"],
        france_delegation(datetime.now(UTC)).raw,
    )
    first = intake.poll_once(ctx)
    second = intake.poll_once(ctx)
    assert (first.fetched, len(first.new)) == (1, 1)
    assert (second.fetched, len(second.new)) == (0, 0)
    run_everything(ctx)
    run_everything(ctx)
    assert counts(ctx) == (1, 1, 1)
    assert len(smtp.messages) == 1


def test_a_restarted_context_finishes_what_a_dead_one_kept(
    env: dict[str, str], dovecot: Any, smtp: Any
) -> None:
    """The poller kept the message and died before processing: the next one finishes it, once."""
    dead = build_context(load_settings(env))
    append(
        dovecot,
        env["CCM_IMAP_USER"],
        env["CCM_IMAP_PASSWORD"],
        france_delegation(datetime.now(UTC)).raw,
    )
    kept = intake.poll_once(dead)
    assert len(kept.new) == 1
    # It had even claimed the message when it died.
    assert (
        dead.db.claim_message(kept.new[0], datetime.now(UTC), stale=timedelta(minutes=10))
        is not None
    )
    later = datetime.now(UTC) + timedelta(minutes=11)
    fresh = build_context(load_settings(env))
    again = intake.poll_once(fresh, now=later)
    assert again.new == () and again.unfinished == kept.new
    processing.process_message(fresh, kept.new[0], now=later)
    processing.process_message(dead, kept.new[0], now=later)  # the old claim is gone: no-op
    mailer.send_due(fresh.db, fresh.settings, now=later)
    mailer.send_due(dead.db, dead.settings, now=later)
    assert counts(fresh) == (1, 1, 1)
    assert len(smtp.messages) == 1


def test_the_same_bytes_appended_again_are_not_filed_again(
    env: dict[str, str], dovecot: Any, smtp: Any
) -> None:
    ctx = build_context(load_settings(env))
    raw = france_delegation(datetime.now(UTC)).raw
    user, password = env["CCM_IMAP_USER"], env["CCM_IMAP_PASSWORD"]
    append(dovecot, user, password, raw)
    run_everything(ctx)
    append(dovecot, user, password, raw)
    result = run_everything(ctx)
    assert result.duplicates == 1
    run_everything(ctx)  # the duplicate's mailbox action: it joins the original
    assert counts(ctx) == (1, 1, 1)
    folders = folder_subjects(dovecot, user, password)
    assert folders["INBOX"] == []
    assert len(folders["Filed/France"]) == 2
    assert len(smtp.messages) == 1


def test_a_new_uidvalidity_rereads_the_folder_without_filing_twice(
    env: dict[str, str], dovecot: Any, smtp: Any
) -> None:
    user, password = env["CCM_IMAP_USER"], env["CCM_IMAP_PASSWORD"]
    env = env | {"CCM_IMAP_FOLDER": "Intake", "CCM_MAILBOX_ACTION": "keyword"}
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(
        user, password, initial_folder=None
    ) as box:
        box.folder.create("Intake")
    ctx = build_context(load_settings(env))
    france = france_delegation(datetime.now(UTC)).raw
    append(dovecot, user, password, france, "Intake")
    run_everything(ctx)
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(
        user, password, initial_folder=None
    ) as box:
        box.folder.delete("Intake")
        box.folder.create("Intake")  # same name, new UIDVALIDITY, UIDs from 1 again
    append(dovecot, user, password, france, "Intake")
    append(dovecot, user, password, australia_article7(datetime.now(UTC)).raw, "Intake")
    result = run_everything(ctx)
    assert result.uidvalidity_changed
    assert (result.fetched, len(result.new), result.duplicates) == (2, 1, 1)
    run_everything(ctx)
    assert counts(ctx) == (2, 2, 2)
    assert sorted(iso3 for iso3, _, _, _ in ctx.db.filed_by_state()) == ["AUS", "FRA"]
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(
        user, password, initial_folder="Intake"
    ) as box:
        flags = [m.flags for m in box.fetch(mark_seen=False)]
    assert flags and all("$CCM-Filed" in f for f in flags)


@pytest.mark.slow
def test_a_broker_that_lost_everything_loses_no_mail(
    env: dict[str, str], tmp_path: Path, dovecot: Any, redis_srv: Any, smtp: Any
) -> None:
    """Kept by a poll whose worker died; Redis restarted empty; the next worker files it once."""
    user, password = env["CCM_IMAP_USER"], env["CCM_IMAP_PASSWORD"]
    append(dovecot, user, password, france_delegation(datetime.now(UTC)).raw)
    ctx = build_context(load_settings(env))
    assert len(intake.poll_once(ctx).new) == 1  # kept; its processing task never reached a worker
    redis_srv.restart()
    assert redis.Redis.from_url(redis_srv.url).dbsize() == 0
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        smtp.wait_for_count(1, timeout=60)
        wait_until(
            lambda: "Filed/France" in folder_subjects(dovecot, user, password), 30, "Filed/France"
        )
        log = worker.text()
    assert counts(ctx) == (1, 1, 1), log
    assert len(smtp.messages) == 1


def test_a_failed_first_poll_does_not_look_like_a_new_uidvalidity(
    env: dict[str, str], dovecot: Any
) -> None:
    ctx = build_context(load_settings(env))
    ctx.db.poll_failed(ctx.settings.mailbox_key, "IMAP login refused", datetime.now(UTC))
    append(dovecot, env["CCM_IMAP_USER"], env["CCM_IMAP_PASSWORD"], france_delegation(WHEN).raw)
    result = intake.poll_once(ctx)
    assert (result.fetched, result.uidvalidity_changed) == (1, False)
