"""The Celery app: broker, reliability options and the beat schedule, from the settings."""

from __future__ import annotations

import sys

from celery import Celery

from config.settings import ConfigError, Settings, load_settings
from worker.digest import digest_expires, digest_schedule


def create_app(settings: Settings) -> Celery:
    app = Celery("ccm_intake", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
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
    return app


try:
    app = create_app(load_settings())
except ConfigError as exc:  # `celery -A worker.app` with a bad setting: one line, not a traceback
    sys.stderr.write(f"ccm-intake: configuration error: {exc}\n")
    raise SystemExit(2) from None
