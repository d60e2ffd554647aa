"""The Celery app: broker, reliability options and the beat schedule, from the settings."""

from __future__ import annotations

import sys

from celery import Celery

from config.settings import ConfigError, Settings, load_settings


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
        },
    )
    return app


try:
    app = create_app(load_settings())
except ConfigError as exc:  # `celery -A worker.app` with a bad setting: one line, not a traceback
    sys.stderr.write(f"ccm-intake: configuration error: {exc}\n")
    raise SystemExit(2) from None
