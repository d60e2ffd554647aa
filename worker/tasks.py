"""Celery tasks: each takes ids, calls one plain function, returns a one-line summary."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.signals import worker_ready

from worker import digest, intake, mailer, processing
from worker.app import app
from worker.coordination import PollGuard
from worker.mailbox import MailboxError
from worker.runtime import get_context
from worker.store import utcnow

log = logging.getLogger("ccm_intake")


def _guard() -> PollGuard:
    ctx = get_context()
    return PollGuard(redis.Redis.from_url(ctx.settings.broker_url), ctx.settings.mailbox_key)


@app.task(name="ccm.poll")
def poll() -> str:
    ctx, guard = get_context(), _guard()
    wait = guard.backing_off()
    if wait:
        return f"poll: backing off, next attempt in {wait:.0f} s"
    with guard.lock() as mine:
        if not mine:
            return "poll: another poll holds this mailbox"
        try:
            result = intake.poll_once(ctx)
            ctx.db.poll_succeeded(ctx.settings.mailbox_key, utcnow())
        except MailboxError as exc:
            ctx.db.poll_failed(ctx.settings.mailbox_key, str(exc), utcnow())  # for the digest
            failures, delay = guard.failed(ctx.settings.poll_interval)
            log.warning("poll: %s; retrying in %.0f s (failure %d)", exc, delay, failures)
            return f"poll failed: {exc}"
    guard.succeeded()
    for message_id in result.new + result.unfinished:
        process.delay(message_id)
    if result.fetched or result.actions or result.unfinished:
        log.info("poll: %s", result)
    return f"poll: {result}"


@app.task(name="ccm.process")
def process(message_id: int) -> str:
    done = processing.process_message(get_context(), message_id)
    for outbox_id in done.outbox_ids:
        send_outbox.delay(outbox_id)
    mailbox_actions.delay()
    return done.summary


@app.task(name="ccm.send_outbox")
def send_outbox(outbox_id: int | None = None) -> str:
    ctx = get_context()
    return f"outbox: {mailer.send_due(ctx.db, ctx.settings, only=outbox_id)}"


@app.task(name="ccm.mailbox_actions")
def mailbox_actions() -> str:
    ctx, guard = get_context(), _guard()
    with guard.lock() as mine:
        if not mine:
            return "mailbox actions: left to the poll that holds the mailbox"
        try:
            actions, copies = intake.sync_mailbox(ctx)
        except MailboxError as exc:
            return f"mailbox actions: {exc} (the next poll retries)"
    return f"mailbox actions: {actions} done, {copies} copies to Sent"


@app.task(name="ccm.digest")
def send_digest() -> str:
    """Today's digest for the secretary: queued once per Geneva date, then sent."""
    ctx = get_context()
    if not digest.queue_digest_once(ctx, utcnow()):
        return "digest: today's is queued already"
    send_outbox.delay()
    return f"digest: queued for {ctx.settings.secretary_address}"


@app.task(name="ccm.remind")
def remind() -> str:
    """One reminder sweep: ledger + outbox rows for what is due today, then send them now."""
    from worker import reminders

    ctx = get_context()
    if not ctx.settings.reminders_enabled:
        return "reminders: disabled (CCM_REMINDERS_ENABLED=false)"
    written = reminders.send_due_reminders_once(ctx, utcnow(), enqueue=send_outbox.delay)
    return f"reminders: {written} recorded"


@worker_ready.connect
def _poll_at_start(**_: Any) -> None:
    # Do not wait a whole interval for the first look at the inbox.
    poll.delay()
