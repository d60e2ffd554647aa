"""Where everything stands, as one record: what `ccm-intake status` shows and prints as JSON.

Read-only: the database, the calendar and the registry; no mail, no writes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from worker.digest import calendar_obligations
from worker.runtime import Context


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def overview(ctx: Context, today: date) -> dict[str, Any]:
    """Obligations (who owes, who sent, who has not), the latest filing of each State, the
    messages by status, the outbox, and how each watched folder's polls went."""
    db = ctx.db
    latest = db.latest_submissions()
    submitted = {(s.state_iso3, s.kind, s.cycle) for s in latest}
    obligations = [
        {
            "kind": st.obligation.kind,
            "cycle": st.obligation.cycle,
            "label": st.obligation.label_in("en"),
            "due": st.obligation.due.isoformat() if st.obligation.due else None,
            "days_left": st.days_left,
            "expected": len(st.expected),
            "received": len(st.received),
            "missing": list(st.missing),
            "no_contact": list(st.no_contact),
        }
        for st in calendar_obligations(ctx, today, submitted)
    ]
    filed = [
        {
            "state": s.state_iso3,
            "kind": s.kind,
            "cycle": s.cycle,
            "version": s.version,
            "received": _when(s.received_at),
            "reference": s.reference,
        }
        for s in latest
    ]
    mailboxes = [
        {
            "mailbox": m.mailbox,
            "last_uid": m.last_uid,
            "last_success": _when(m.last_success_at),
            "last_error": m.last_error or None,
            "last_error_at": _when(m.last_error_at),
        }
        for m in db.mailbox_health()
    ]
    return {
        "today": today.isoformat(),
        "obligations": obligations,
        "filed": filed,
        "messages": db.status_counts(),
        "review_queue": len(db.review_queue()),
        "outbox": db.outbox_counts(),
        "mailboxes": mailboxes,
    }
