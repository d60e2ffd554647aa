"""The Celery app: broker, reliability options and the beat schedule, from the settings."""

from __future__ import annotations

import sys

from celery import Celery
from celery.schedules import crontab

from config.settings import ConfigError, Settings, load_settings
from worker.digest import digest_expires, digest_schedule
from worker.logs import take_over_celery_logging
from worker.redaction import protect_logs


def create_app(settings: Settings) -> Celery:
    app = Celery(
        "ccm_intake", broker=settings.broker_url, include=["worker.tasks", "worker.housekeeping"]
    )
    app.conf.update(
        # JSON only, said explicitly: a pickled message on the queue is code run by whoever
        # can write to Redis. The worker refuses any other content type and drops it.
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A broker that refuses us (down, wrong password) is tried again for as long as it
        # takes, one line each time, as the IMAP server is; Celery's default gives up after 100.
        broker_connection_max_retries=None,
        # A task is acknowledged only once it has run: a worker killed mid-task leaves it
        # to another. Every task is idempotent (claims and unique keys), so that is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule={
            # Each entry expires before its next run, so a stopped worker never finds a pile
            # of polls waiting for it (STYLE §7).
            "poll-inbox": {
                "task": "ccm.poll",
                "schedule": settings.poll_interval,
                "options": {"expires": settings.poll_interval * 0.9},
            },
            # "Intake has stopped" (worker/alerts.py): checked every minute, from the DB.
            "check-intake": {
                "task": "ccm.check_intake",
                "schedule": 60.0,
                "options": {"expires": 54.0},
            },
            "send-outbox": {
                "task": "ccm.send_outbox",
                "schedule": settings.outbox_interval,
                "options": {"expires": settings.outbox_interval * 0.9},
            },
            # Each morning on Geneva's clock (the app stays in UTC: GenevaCrontab matches its
            # hour in Europe/Zurich, summer time included); one outbox row per day whatever
            # runs it, and a run that comes too late expires before Geneva midnight.
            "daily-digest": {
                "task": "ccm.digest",
                "schedule": digest_schedule(settings.digest_time),
                "options": {"expires": digest_expires(settings.digest_time)},
            },
        },
    )
    if settings.reminders_enabled:
        # The reminder sweep: what is due is derived from the calendar and the ledger each
        # time (nothing waits days on the broker); a sweep left behind expires before the next.
        app.conf.beat_schedule["send-reminders"] = {
            "task": "ccm.remind",
            "schedule": settings.reminder_interval,
            "options": {"expires": settings.reminder_interval * 0.9},
        }
    if settings.retention_days:
        # Personal data past its retention is purged daily (worker/retention.py), at an hour
        # of little mail; a missed run is simply done by the next one.
        app.conf.beat_schedule["purge-personal-data"] = {
            "task": "ccm.purge",
            "schedule": crontab(hour=3, minute=17),
            "options": {"expires": 20 * 3600},
        }
    return app


try:
    _settings = load_settings()
except ConfigError as exc:  # `celery -A worker.app` with a bad setting: one line, not a traceback
    sys.stderr.write(f"ccm-intake: configuration error: {exc}\n")
    raise SystemExit(2) from None
# Whoever starts the worker (`ccm-intake run`, or `celery -A worker.app worker`), no log
# record of this process or its children shows a password of the settings.
protect_logs(_settings)
# Celery's own lines (worker, beat, pool processes, task results) go through our handler, in
# CCM_LOG_FORMAT, with the task and the message they concern (worker/logs.py).
take_over_celery_logging(_settings)
app = create_app(_settings)
