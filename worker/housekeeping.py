"""Celery tasks that look after the data rather than the mail (thin, like worker/tasks.py)."""

from __future__ import annotations

from worker import retention
from worker.app import app
from worker.runtime import get_context
from worker.store import utcnow


@app.task(name="ccm.purge")
def purge_expired() -> str:
    """Purge the personal data older than CCM_RETENTION_DAYS (beat, daily, when it is set)."""
    ctx = get_context()
    days = ctx.settings.retention_days
    if not days:
        return "purge: nothing to do, CCM_RETENTION_DAYS=0 keeps everything"
    report = retention.purge(ctx, retention.cutoff(days, utcnow()), trigger="schedule")
    return str(report)
