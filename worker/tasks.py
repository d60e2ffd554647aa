"""Celery tasks: each takes ids, calls one plain function, returns a one-line summary."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from typing import Any

import redis
from celery import Task
from celery.signals import task_postrun, worker_process_init, worker_ready

from worker import digest, intake, mailer, processing
from worker.app import app
from worker.coordination import PollGuard
from worker.logs import bind, log_context
from worker.mailbox import MailboxError
from worker.runtime import get_context
from worker.store import Conflict, utcnow

log = logging.getLogger("ccm_intake")

DRAIN_ROUNDS = 5  # mailbox_actions: rounds taken for tasks that found the mailbox held
CONFLICT_RETRIES = 5  # process: a numbering clash with another worker, tried again at once
QUEUED_TTL = 60  # seconds a "queued already" mark lasts if its task never runs (lost broker)

_redis_clients: dict[tuple[int, str], redis.Redis[bytes]] = {}


def _redis() -> redis.Redis[bytes]:
    """One client (and connection pool) per process, not a new connection for every task."""
    url = get_context().settings.broker_url
    key = (os.getpid(), url)
    if key not in _redis_clients:
        _redis_clients[key] = redis.Redis.from_url(url)
    return _redis_clients[key]


def _guard() -> PollGuard:
    return PollGuard(_redis(), get_context().settings.mailbox_key)


def _queued_key(name: str) -> str:
    return f"ccm:queued:{name}:{get_context().settings.mailbox_key}"


def _queue_once(task: Any, name: str) -> None:
    """Queue ``task`` unless one is waiting in the queue already: that one, when it starts,
    does this work too. A backlog of 2,000 mails queued one mailbox sync per mail, a large
    share of the pool's time in the first profiles (docs/PERFORMANCE.md); now a few run.
    The mark is removed when
    the task starts and expires anyway, so a lost task delays the work by ``QUEUED_TTL`` at
    most (and the beat's own outbox run and poll do it too)."""
    try:
        if not _redis().set(_queued_key(name), 1, nx=True, ex=QUEUED_TTL):
            return
    except redis.RedisError:
        pass  # no mark: queue it all the same
    task.delay()


def _started(name: str) -> None:
    with contextlib.suppress(redis.RedisError):
        _redis().delete(_queued_key(name))


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
            began = time.monotonic()
            # Each group of new messages is queued the moment it is kept: the other pool
            # processes start on a backlog while this one still fetches (docs/PERFORMANCE.md).
            result = intake.poll_once(ctx, on_new=lambda ids: process_many.delay(list(ids)))
            seconds = time.monotonic() - began  # shown by `ccm-intake metrics`
            ctx.db.poll_succeeded(ctx.settings.mailbox_key, utcnow(), seconds=seconds)
        except MailboxError as exc:
            ctx.db.poll_failed(ctx.settings.mailbox_key, str(exc), utcnow())  # for the digest
            failures, delay = guard.failed(ctx.settings.poll_interval)
            log.warning("poll: %s; retrying in %.0f s (failure %d)", exc, delay, failures)
            return f"poll failed: {exc}"
        except OSError as exc:
            # The archive cannot take the mail (disk full, read-only): nothing was kept and the
            # folder's last UID did not move, so the mail waits in the inbox for the next poll.
            # Said like a mailbox failure — poll health (digest, alerts), backoff, one log line
            # — rather than a traceback a second that poll health never heard of (tests/faults).
            error = f"cannot keep mail in the archive: {exc}"
            ctx.db.poll_failed(ctx.settings.mailbox_key, error, utcnow())
            failures, delay = guard.failed(ctx.settings.poll_interval)
            log.error("poll: %s; retrying in %.0f s (failure %d)", error, delay, failures)
            return f"poll failed: {error}"
    guard.succeeded()
    for message_id in result.unfinished:
        process.delay(message_id)
    if result.fetched or result.actions or result.unfinished:
        log.info("poll: %s", result)
    return f"poll: {result}"


@app.task(name="ccm.process", bind=True, max_retries=CONFLICT_RETRIES)
def process(self: Task[[int], str], message_id: int) -> str:
    try:
        done = processing.process_and_acknowledge(get_context(), message_id)
    except Conflict as exc:
        # Two workers numbered the same State's submission at once; the message was given
        # back. Again in a moment, not after CCM_RETRY_GRACE (a backlog's last mail waited
        # two minutes for the poll to re-queue it).
        raise self.retry(exc=exc, countdown=random.uniform(0.1, 1.0)) from None
    # Celery's own "succeeded" line for this task names the message and its reference too.
    bind(message_id=message_id, reference=", ".join(done.references))
    _queue_once(mailbox_actions, "mailbox_actions")
    return done.summary


@app.task(name="ccm.process_many")
def process_many(message_ids: list[int]) -> str:
    """A group of messages kept by one poll, one after the other: a task per group, not per
    message (Celery's and Redis's work per task, docs/PERFORMANCE.md). Each message is still
    its own claim and commit; one that fails leaves the others alone."""
    summaries = []
    for message_id in message_ids:
        try:
            with log_context(message_id=message_id):  # what one message binds ends with it
                done = processing.process_and_acknowledge(get_context(), message_id)
                summaries.append(done.summary)
        except Conflict:
            process.apply_async((message_id,), countdown=random.uniform(0.1, 1.0))
            summaries.append(f"message {message_id}: numbering clash, tried again in a moment")
        except Exception:  # the message was given back; the poll queues it again after a grace
            log.exception("message %s: processing failed", message_id)
            summaries.append(f"message {message_id}: failed")
    _queue_once(mailbox_actions, "mailbox_actions")
    return "; ".join(summaries)


@app.task(name="ccm.send_outbox")
def send_outbox(outbox_id: int | None = None) -> str:
    ctx = get_context()
    return f"outbox: {mailer.send_due(ctx.db, ctx.settings, only=outbox_id)}"


@app.task(name="ccm.mailbox_actions")
def mailbox_actions() -> str:
    ctx, guard = get_context(), _guard()
    _started("mailbox_actions")
    with guard.lock() as mine:
        if not mine:
            return "mailbox actions: left to the poll that holds the mailbox"
        try:
            actions, copies = intake.sync_mailbox(ctx)
            # Tasks that found the mailbox held left their moves to this one: take those too
            # (at the end of a backlog the last moves otherwise waited for the next poll).
            for _ in range(DRAIN_ROUNDS):
                more = intake.sync_mailbox(ctx)
                if more == (0, 0):
                    break
                actions, copies = actions + more[0], copies + more[1]
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


@app.task(name="ccm.check_intake")
def check_intake() -> str:
    """One mail to the secretary when intake has stopped, one when it resumes."""
    from worker import alerts

    queued = alerts.check_intake(get_context(), utcnow())
    for outbox_id in queued:
        send_outbox.delay(outbox_id)
    return f"intake check: {len(queued)} alert(s) queued"


@worker_ready.connect
def _poll_at_start(**_: Any) -> None:
    # Do not wait a whole interval for the first look at the inbox.
    poll.delay()


@worker_process_init.connect
@task_postrun.connect
def _reader_ready(**_: Any) -> None:
    """A pool process starts its attachment reader ahead of the next message (at its start,
    and after a task that retired or lost its reader): worker/extraction.py."""
    from worker.extraction import start_reader
    from worker.runtime import extraction_limits

    try:
        start_reader(extraction_limits(get_context().settings))
    except Exception:  # the next message starts one itself
        log.warning("attachment reader not started ahead", exc_info=True)
