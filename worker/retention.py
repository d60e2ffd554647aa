"""Retention: the personal data of old mail leaves the archive and the database.

A purge removes, for every decided message received before a date, the raw ``.eml``, the
filed folders (the mail and its attachments as filed) and the fields of the database that
name people: sender, subject, Message-ID, the analysis with its evidence, the roster of a
delegation (names, titles, e-mails), file names and the text of our acknowledgements. What
the secretariat needs to know afterwards stays: that State X submitted kind Y on date Z
under reference R, its version and status, a delegation's size and roles, an Article 7
report's year and forms — and the message's SHA-256, so that the same mail polled again is
recognised and not filed a second time (the archive keeps a tombstone, not the bytes).

Messages still waiting for a person (review) or a worker are not touched; they are counted.
Every purge is recorded in the ``purge_run`` table and logged with its counts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from worker.runtime import Context
from worker.store import PurgeCandidate, PurgeRun, utcnow

log = logging.getLogger(__name__)

# What of an Article 7 report's cover is kept: none of it names a person.
ARTICLE7_FACTS = (
    "state_party",
    "period_start",
    "period_end",
    "reporting_year",
    "initial",
    "date_of_submission",
)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    before: datetime
    dry_run: bool
    messages: int
    raw_files: int
    filed_folders: int
    submissions: int
    outbox_rows: int
    kept_waiting: int
    items: tuple[PurgeCandidate, ...] = ()

    def __str__(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"purge of mail received before {self.before.date().isoformat()}: {verb} "
            f"the personal data of {self.messages} message(s) — {self.raw_files} raw file(s), "
            f"{self.filed_folders} filed folder(s), {self.submissions} submission(s) "
            f"details, {self.outbox_rows} outgoing mail(s); {self.kept_waiting} message(s) "
            "not decided yet kept"
        )


def cutoff(retention_days: int, now: datetime) -> datetime:
    """The start (UTC) of the day ``retention_days`` before ``now``'s."""
    return day_start(now.astimezone(UTC).date() - timedelta(days=retention_days))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def redacted_details(kind: str, details: str, *, when: date | None = None) -> str:
    """A submission's details (JSON) without what names people; the counts and facts stay."""
    if not details:
        return ""
    try:
        found = json.loads(details)
    except ValueError:
        found = {}
    if not isinstance(found, dict):
        found = {}
    kept: dict[str, object] = {"purged": (when or utcnow().date()).isoformat()}
    if kind == "delegation":
        people = [d for d in found.get("delegates") or [] if isinstance(d, dict)]
        kept["delegate_count"] = len(people)
        kept["roles"] = dict(sorted(Counter(str(d.get("role") or "") for d in people).items()))
        kept["meeting"] = found.get("meeting")
    elif kind == "article7":
        kept.update({key: found.get(key) for key in ARTICLE7_FACTS})
        kept["forms"] = [
            {"form": f.get("form"), "status": f.get("status")}
            for f in found.get("forms") or []
            if isinstance(f, dict)
        ]
    return json.dumps(kept, ensure_ascii=False)


def purge(
    ctx: Context,
    before: datetime,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    trigger: str = "command",
) -> PurgeReport:
    """Remove the personal data of decided mail received before ``before`` (see above).

    Files go first, then the rows, message by message: a purge stopped half-way leaves
    rows not yet marked purged, which the next purge takes again (every step is idempotent).
    """
    now = now or utcnow()
    candidates = ctx.db.purge_candidates(before)
    kept = ctx.db.waiting_before(before)
    if dry_run:
        return PurgeReport(
            before=before,
            dry_run=True,
            messages=len(candidates),
            raw_files=len(candidates),
            filed_folders=sum(len(c.submissions) for c in candidates),
            submissions=sum(len(c.submissions) for c in candidates),
            outbox_rows=ctx.db.purge_outbox_before(before, dry_run=True),
            kept_waiting=kept,
            items=tuple(candidates),
        )
    raw_files = folders = submissions = outbox = 0
    for item in candidates:
        raw_files += ctx.archive.purge_raw(item.raw_path, now)
        for _reference, folder in item.submissions:
            folders += ctx.archive.purge_folder(folder)
        subs, rows = ctx.db.purge_message(
            item.message_id,
            now,
            lambda kind, details: redacted_details(kind, details, when=now.date()),
        )
        submissions += subs
        outbox += rows
    outbox += ctx.db.purge_outbox_before(before)
    report = PurgeReport(
        before=before,
        dry_run=False,
        messages=len(candidates),
        raw_files=raw_files,
        filed_folders=folders,
        submissions=submissions,
        outbox_rows=outbox,
        kept_waiting=kept,
        items=tuple(candidates),
    )
    ctx.db.record_purge(
        PurgeRun(
            run_at=now,
            purged_before=before,
            messages=report.messages,
            raw_files=raw_files,
            filed_folders=folders,
            submissions=submissions,
            outbox_rows=outbox,
            kept_waiting=kept,
            started_by=trigger,
        )
    )
    log.info("%s (%s)", report, trigger)
    return report
