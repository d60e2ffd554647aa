"""The secretary's daily digest: where things stand, each morning, once a day.

Three layers, as for every mail we send (STYLE §9):

* ``build_digest(ctx, today)`` reads the database and the calendar into a ``DigestData``
  record (no writes);
* ``render_digest(data)`` is pure: the record in, (subject, plain text, HTML) out, from
  ``templates/digest.en.{subject.txt,body.txt,body.html}``;
* ``queue_digest_once(ctx, now)`` puts today's digest in the outbox under the unique key
  ``digest:YYYY-MM-DD`` (the Geneva date), so a retried task, a second beat or a second
  worker never queues it twice; ``mailer.send_due`` sends it like any other row.

The HTML is written for Outlook's Word engine: tables, inline styles, ``bgcolor`` for the
bars, no classes, no ``<style>``, nothing fetched from elsewhere, 680 px wide.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from functools import cache
from typing import TYPE_CHECKING, Any

from celery.schedules import crontab
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from config.calendar import load_calendar, load_contacts
from parsers.obligations import ObligationStatus, obligation_status
from worker.compose import GENEVA, KIND_LABELS, Outgoing, mark_automatic, stable_message_id
from worker.oauth import CredentialWarning, credential_warnings
from worker.store import utcnow

if TYPE_CHECKING:
    from worker.runtime import Context

DEFAULT_WINDOW = timedelta(hours=24)  # "since the last digest" when there was none
STALE_POLL = timedelta(hours=1)  # a last successful poll older than this is a warning
LIST_NAMES_WITHIN = 30  # days before a deadline from which the missing States are named


# --- when ----------------------------------------------------------------------------


def digest_clock(digest_time: str) -> time:
    """``settings.digest_time`` ("HH:MM", validated by the settings) as a time of day."""
    hours, _, minutes = digest_time.partition(":")
    return time(int(hours), int(minutes))


def digest_key(day: date) -> str:
    """The outbox key of the digest of ``day`` (a Geneva date): one row per day, ever."""
    return f"digest:{day.isoformat()}"


def geneva_date(moment: datetime) -> date:
    return moment.astimezone(GENEVA).date()


def digest_moment(day: date, digest_time: str) -> datetime:
    """The instant (UTC) at which the digest of ``day`` is due, Geneva wall-clock time."""
    return datetime.combine(day, digest_clock(digest_time), tzinfo=GENEVA).astimezone(UTC)


class GenevaCrontab(crontab):
    """A crontab read on Geneva's clock whatever the app's timezone (UTC here).

    Celery matches a crontab's fields in ``self.tz``, the app's timezone by default; the
    rest of the schedule stays in UTC, so only this entry follows Geneva's summer time.
    """

    @property
    def tz(self) -> tzinfo:  # type: ignore[override]  # the stubs say str; celery returns tzinfo
        return GENEVA


def digest_schedule(digest_time: str) -> GenevaCrontab:
    at = digest_clock(digest_time)
    return GenevaCrontab(minute=at.minute, hour=at.hour)


def digest_expires(digest_time: str) -> float:
    """Seconds a queued digest task stays valid: before the next run and, so that a late
    run never files today's digest under tomorrow's date, before Geneva midnight (at most
    12 h; clocks change at night, after midnight)."""
    at = digest_clock(digest_time)
    to_midnight = timedelta(hours=24) - timedelta(hours=at.hour, minutes=at.minute)
    return max(60.0, min(12 * 3600.0, to_midnight.total_seconds() - 60))


# --- what the digest is made of ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSubmission:
    state_iso3: str
    kind: str
    cycle: str
    version: int
    reference: str
    received_at: datetime
    due: date | None  # the obligation's due date; None when it has none we know of

    @property
    def days_late(self) -> int | None:
        """Days after the due date it was received (Geneva date); 0 on time; None: no date."""
        if self.due is None:
            return None
        return max((geneva_date(self.received_at) - self.due).days, 0)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    message_id: int
    received_at: datetime
    from_addr: str
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReminderSent:
    state_iso3: str
    obligation: str
    cycle: str
    offset_days: int
    due_date: date


@dataclass(frozen=True, slots=True)
class Bounce:
    received_at: datetime
    from_addr: str
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class FailingContact:
    address: str
    reason: str
    last_bounce_at: datetime | None
    states: tuple[str, ...] = ()  # ISO3 of the States whose contact it is


@dataclass(frozen=True, slots=True)
class AckNotSent:
    reference: str
    state_iso3: str
    recipient: str
    status: str  # failed | suppressed | cancelled
    reason: str
    when: datetime


@dataclass(frozen=True, slots=True)
class PollHealth:
    mailbox: str
    last_success_at: datetime | None
    last_error: str
    last_error_at: datetime | None

    @property
    def failing(self) -> bool:
        if self.last_error_at is None:
            return False
        return self.last_success_at is None or self.last_error_at > self.last_success_at


@dataclass(frozen=True, slots=True)
class Quarantined:
    message_id: int
    received_at: datetime
    from_addr: str
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class DigestData:
    today: date  # the Geneva date the digest is for
    since: datetime  # the previous digest (or 24 h before ``until``)
    until: datetime
    new_submissions: Sequence[NewSubmission] = ()
    review: Sequence[ReviewItem] = ()
    obligations: Sequence[ObligationStatus] = ()
    reminders_sent: Sequence[ReminderSent] = ()
    bounces: Sequence[Bounce] = ()
    failing_contacts: Sequence[FailingContact] = ()
    acks_not_sent: Sequence[AckNotSent] = ()
    polls: Sequence[PollHealth] = ()
    quarantined: Sequence[Quarantined] = ()  # since the last digest
    quarantined_total: int = 0
    state_names: Mapping[str, str] = field(default_factory=dict)  # ISO3 -> English short name
    # Each State's own deadline for an obligation without a common one (the initial report),
    # by (obligation kind, ISO3).
    own_due: Mapping[tuple[str, str], date] = field(default_factory=dict)
    # The mailbox's OAuth sign-in ending soon or failing (worker/oauth.py), days ahead.
    credentials: Sequence[CredentialWarning] = ()


# --- rendering (pure) ----------------------------------------------------------------


@cache
def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("worker", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Names, subjects and reasons come from strangers' mail: escaped in the HTML part.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    )
    env.filters["fill"] = _fill
    return env


def _fill(names: str, indent: str = "    ") -> str:
    """A list of names ("A, B, C") for the plain-text part: wrapped to 76 columns, indented,
    and never broken inside a name ("Saint Kitts and Nevis" stays on one line)."""
    glued = ", ".join(n.replace(" ", "\xa0") for n in names.split(", "))
    wrapped = textwrap.fill(
        glued, 76, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )
    return wrapped.replace("\xa0", " ")


def _local(moment: datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
    return "—" if moment is None else moment.astimezone(GENEVA).strftime(fmt)


def _day(day: date | None) -> str:
    return "no fixed date" if day is None else day.strftime("%a %d %b %Y")


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _days_left_text(days: int | None) -> str:
    if days is None:
        return ""
    if days > 0:
        return f"{_plural(days, 'day')} left"
    if days == 0:
        return "due today"
    return f"{_plural(-days, 'day')} overdue"


def _kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, {"en": kind.replace("_", " ")})["en"]


def _short(kind: str, cycle: str) -> str:
    """What was sent or owed, in a few words: 'Delegation 7MSP', 'Article 7 report 2016'."""
    if kind == "article7_initial" or (kind == "article7" and cycle == "initial"):
        return "Initial Article 7 report"
    if kind == "article7":
        return f"Article 7 report {cycle}".strip()
    if kind == "delegation":
        return f"Delegation {cycle}".strip()
    return f"{_kind_label(kind)} {cycle}".strip()


PLURALS = {
    "delegation": ("delegation", "delegations"),
    "article7": ("Article 7 report", "Article 7 reports"),
    "other": ("other letter", "other letters"),
}

# Bar colours: complete, comfortable, close (a week or less), past the date.
GREEN, BLUE, AMBER, RED, TRACK = "#2e7d32", "#1f5fa8", "#b26a00", "#b3261e", "#e3e7ee"


@dataclass(frozen=True, slots=True)
class _ObligationView:
    label: str
    due: str
    days_left: str
    received: int
    expected: int
    percent: int
    colour: str
    bar_text: str  # [#####.....] for the plain-text part
    # (name, no contact on file) of each State still missing, by name; () when the deadline is
    # too far off to list them (LIST_NAMES_WITHIN).
    missing: tuple[tuple[str, bool], ...]
    missing_count: int
    no_contact_count: int
    unconfirmed: int  # expected on an entry into force not on file

    @property
    def missing_marked(self) -> str:
        """'Austria, Japan*, …': the plain text's mark for "no contact on file"."""
        return ", ".join(f"{n}*" if unreachable else n for n, unreachable in self.missing)


def _obligation_view(
    status: ObligationStatus, name: Callable[[str], str], own_due: Mapping[tuple[str, str], date]
) -> _ObligationView:
    ob = status.obligation
    received, expected = len(status.received), len(status.expected)
    percent = 100 if expected == 0 else round(100 * received / expected)
    percent = max(0, min(percent, 100))
    days = status.days_left
    if expected and received >= expected:
        colour = GREEN
    elif days is not None and days < 0:
        colour = RED
    elif days is not None and days <= 7:
        colour = AMBER
    else:
        colour = BLUE
    filled = round(percent / 5)
    # Far from the deadline a list of a hundred names says nothing yet: the counts do.
    listed = days is None or days <= LIST_NAMES_WITHIN
    return _ObligationView(
        label=ob.label_in("en"),
        due="each State its own date" if ob.due is None else _day(ob.due),
        days_left=_days_left_text(days),
        received=received,
        expected=expected,
        percent=percent,
        colour=colour,
        bar_text="[" + "#" * filled + "." * (20 - filled) + "]",
        missing=_missing(status, name, own_due) if listed else (),
        missing_count=len(status.missing),
        no_contact_count=len(status.no_contact),
        unconfirmed=len(status.unconfirmed),
    )


def _missing(
    status: ObligationStatus, name: Callable[[str], str], own_due: Mapping[tuple[str, str], date]
) -> tuple[tuple[str, bool], ...]:
    unreachable = set(status.no_contact)
    kind = status.obligation.kind
    found = []
    for iso3 in status.missing:
        due = own_due.get((kind, iso3)) if status.obligation.due is None else None
        label = name(iso3) + (f" (due {due:%d %b %Y})" if due else "")
        found.append((label, iso3 in unreachable))
    return tuple(sorted(found, key=lambda pair: pair[0].casefold()))


def _urgency(status: ObligationStatus) -> tuple[int, int]:
    """Deadlines within a month first (soonest first), then those past (latest first), then
    the far ones, then the obligations without a common date."""
    days = status.days_left
    if days is None:
        return (3, 0)
    if days < 0:
        return (1, -days)
    return (0, days) if days <= LIST_NAMES_WITHIN else (2, days)


def _late_text(sub: NewSubmission) -> tuple[str, str]:
    """(words, colour) for "on time / late" of one new submission."""
    late = sub.days_late
    if late is None:
        return "no deadline", "#555555"
    if late == 0:
        return "on time", GREEN
    return f"late by {_plural(late, 'day')}", RED


def render_digest(data: DigestData) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the digest. Pure: the record in, strings out."""

    def name(iso3: str) -> str:
        return data.state_names.get(iso3, iso3)

    obligations = [
        _obligation_view(s, name, data.own_due) for s in sorted(data.obligations, key=_urgency)
    ]
    submissions = [
        {
            "state": name(s.state_iso3),
            "iso3": s.state_iso3,
            "what": _short(s.kind, s.cycle) + (f" (v{s.version})" if s.version > 1 else ""),
            "reference": s.reference,
            "received": _local(s.received_at),
            "late": _late_text(s)[0],
            "late_colour": _late_text(s)[1],
        }
        for s in sorted(data.new_submissions, key=lambda s: (name(s.state_iso3), s.received_at))
    ]
    by_kind: dict[str, int] = defaultdict(int)
    for s in data.new_submissions:
        by_kind[s.kind] += 1
    reminder_groups: dict[tuple[str, str, date, int], list[str]] = defaultdict(list)
    for r in data.reminders_sent:
        reminder_groups[(r.obligation, r.cycle, r.due_date, r.offset_days)].append(
            name(r.state_iso3)
        )
    reminders = [
        {
            "what": _short(ob, cycle),
            "due": _day(due),
            "when": (
                f"{_plural(offset, 'day')} before"
                if offset > 0
                else ("on the day" if offset == 0 else f"{_plural(-offset, 'day')} after")
            ),
            "states": sorted(states, key=str.casefold),
        }
        for (ob, cycle, due, offset), states in sorted(reminder_groups.items())
    ]
    polls_failing = any(p.failing for p in data.polls)
    polls_stale = not data.polls or any(
        p.last_success_at is None or data.until - p.last_success_at > STALE_POLL for p in data.polls
    )
    late = sum(1 for s in data.new_submissions if s.days_late)
    glance = [
        _plural(len(data.new_submissions), "new submission") + (f" ({late} late)" if late else ""),
        f"{len(data.review)} waiting for review",
        _plural(len(data.reminders_sent), "reminder") + " sent",
    ]
    warnings: list[str] = []
    if polls_failing:
        warnings.append("the inbox could not be read")
    elif polls_stale:
        warnings.append("no recent successful poll")
    if data.quarantined:
        warnings.append(_plural(len(data.quarantined), "mail") + " quarantined")
    if data.failing_contacts:
        warnings.append(_plural(len(data.failing_contacts), "failing contact"))
    if data.acks_not_sent:
        warnings.append(_plural(len(data.acks_not_sent), "acknowledgement") + " not sent")
    warnings += [c.short for c in data.credentials]
    values: dict[str, Any] = {
        "title": "CCM Secretariat — daily digest",
        "today": data.today.strftime("%A %d %B %Y"),
        "since": _local(data.since, "%A %d %B %H:%M"),
        "until": _local(data.until, "%A %d %B %H:%M"),
        "glance": glance,
        "warnings": warnings,
        "obligations": obligations,
        "submissions": submissions,
        "by_kind": [_plural(n, *PLURALS.get(k, (k, k))) for k, n in sorted(by_kind.items())],
        "review": [
            {
                "id": r.message_id,
                "received": _local(r.received_at),
                "from": r.from_addr or "—",
                "subject": r.subject or "(no subject)",
                "reason": r.reason or "—",
            }
            for r in data.review
        ],
        "reminders": reminders,
        "reminders_total": len(data.reminders_sent),
        "bounces": [
            {
                "received": _local(b.received_at),
                "from": b.from_addr or "—",
                "subject": b.subject or "(no subject)",
                "reason": b.reason or "—",
            }
            for b in data.bounces
        ],
        "failing": [
            {
                "address": c.address,
                "states": ", ".join(sorted((name(i) for i in c.states), key=str.casefold)) or "—",
                "reason": c.reason or "—",
                "since": _local(c.last_bounce_at, "%d %b %Y"),
            }
            for c in data.failing_contacts
        ],
        "acks": [
            {
                "reference": a.reference or "—",
                "state": name(a.state_iso3) if a.state_iso3 else "—",
                "recipient": a.recipient,
                "status": a.status,
                "reason": a.reason or "—",
                "when": _local(a.when),
            }
            for a in data.acks_not_sent
        ],
        "polls": [
            {
                "mailbox": p.mailbox,
                "success": _local(p.last_success_at, "%a %d %b %H:%M"),
                "error": p.last_error or "none",
                "error_at": _local(p.last_error_at) if p.last_error else "",
                "failing": p.failing,
            }
            for p in data.polls
        ],
        "polls_ok": not (polls_failing or polls_stale),
        "credentials": [c.detail for c in data.credentials],
        "quarantined": [
            {
                "id": q.message_id,
                "received": _local(q.received_at),
                "from": q.from_addr or "—",
                "subject": q.subject or "(no subject)",
                "reason": q.reason or "—",
            }
            for q in data.quarantined
        ],
        "quarantined_total": data.quarantined_total,
        "colours": {"green": GREEN, "blue": BLUE, "amber": AMBER, "red": RED, "track": TRACK},
        "list_within": LIST_NAMES_WITHIN,
    }
    env = _templates()
    subject = env.get_template("digest.en.subject.txt").render(
        **values,
        short_day=data.today.strftime("%a %d %b %Y"),
        new=len(data.new_submissions),
        to_review=len(data.review),
    )
    text = env.get_template("digest.en.body.txt").render(**values)
    html = env.get_template("digest.en.body.html").render(**values)
    return " ".join(subject.split()), text, html


def compose_digest(
    *,
    key: str,
    subject: str,
    text: str,
    html: str,
    recipient: str,
    service_address: str,
    service_name: str,
    now: datetime,
) -> Outgoing:
    """The digest as a mail: multipart/alternative, plain text first, then HTML."""
    message_id = stable_message_id(key, service_address)
    msg = EmailMessage()
    msg["From"] = formataddr((service_name, service_address))
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    mark_automatic(msg, "auto-generated", service_address)  # our own report, not a reply
    msg["Content-Language"] = "en"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    raw = msg.as_bytes(policy=SMTP_POLICY)
    return Outgoing(recipient=recipient, subject=subject, message_id=message_id, raw=raw)


# --- reading the database and the calendar ------------------------------------------------


ObligationSource = Callable[
    ["Context", date, Collection[tuple[str, str, str]]], Sequence[ObligationStatus]
]


def calendar_obligations(
    ctx: Context, today: date, submitted: Collection[tuple[str, str, str]]
) -> tuple[ObligationStatus, ...]:
    """Each obligation's progress, from the calendar, the States and the mission contacts."""
    calendar = load_calendar(ctx.settings.calendar_file)
    return obligation_status(calendar, ctx.registry, submitted, load_contacts(), today)


def build_digest(
    ctx: Context,
    today: date,
    *,
    now: datetime | None = None,
    obligations: ObligationSource = calendar_obligations,
) -> DigestData:
    """What the digest of ``today`` (a Geneva date) says, read from the database. No writes.

    The window runs from the previous digest (24 h when there was none) to ``now``, by
    default the digest's own moment, or the present when that is still to come.
    """
    until = now or min(digest_moment(today, ctx.settings.digest_time), utcnow())
    db = ctx.db
    since = db.previous_digest_at(digest_key(today)) or until - DEFAULT_WINDOW
    latest = db.latest_submissions()
    submitted = {(s.state_iso3, s.kind, s.cycle) for s in latest}
    statuses = tuple(obligations(ctx, today, submitted))
    meets = {s.obligation.submission: s.obligation for s in statuses}
    names = {state.iso3: state.name_en for state in ctx.registry}

    def due_for(kind: str, cycle: str, iso3: str) -> date | None:
        """The State's own deadline for what it sent (the rule of the acknowledgement: late
        when received, Geneva date, after it); None when it owed nothing we follow."""
        obligation = meets.get((kind, cycle))
        if obligation is None or iso3 not in names:
            return None
        return obligation.due_for(ctx.registry.get(iso3))

    contacts_of: dict[str, set[str]] = defaultdict(set)
    for iso3, contacts in load_contacts().items():
        for contact in contacts:
            contacts_of[contact.address.lower()].add(iso3)
    quarantined = db.quarantined_between(since, until)
    return DigestData(
        today=today,
        since=since,
        until=until,
        new_submissions=tuple(
            NewSubmission(
                state_iso3=s.state_iso3,
                kind=s.kind,
                cycle=s.cycle,
                version=s.version,
                reference=s.reference,
                received_at=s.received_at,
                due=due_for(s.kind, s.cycle, s.state_iso3),
            )
            for s in db.submissions_filed_between(since, until)
        ),
        review=tuple(
            ReviewItem(m.id, m.internaldate, m.from_addr, m.subject, m.reason)
            for m in db.review_queue()
        ),
        obligations=statuses,
        reminders_sent=tuple(
            ReminderSent(r.state_iso3, r.obligation, r.cycle, r.offset_days, r.due_date)
            for r in db.reminders_sent_between(since, until)
        ),
        bounces=tuple(
            Bounce(m.internaldate, m.from_addr, m.subject, m.reason)
            for m in db.bounces_between(since, until)
        ),
        failing_contacts=tuple(
            FailingContact(
                c.address,
                c.reason,
                c.last_bounce_at,
                tuple(sorted(contacts_of.get(c.address.lower(), ()))),
            )
            for c in sorted(  # the newest bounce first
                db.failing_contacts(),
                key=lambda c: (-(c.last_bounce_at or since).timestamp(), c.address),
            )
        ),
        acks_not_sent=tuple(
            AckNotSent(
                reference=sub.reference if sub else "",
                state_iso3=sub.state_iso3 if sub else "",
                recipient=row.recipient,
                status=row.status,
                reason=row.last_error,
                when=row.claimed_at or row.created_at,
            )
            for row, sub in db.acks_not_sent_between(since, until)
        ),
        polls=tuple(
            PollHealth(m.mailbox, m.last_success_at, m.last_error, m.last_error_at)
            for m in db.mailbox_health()
        ),
        quarantined=tuple(
            Quarantined(m.id, m.internaldate, m.from_addr, m.subject, m.reason) for m in quarantined
        ),
        quarantined_total=db.status_counts().get("quarantined", 0),
        credentials=tuple(credential_warnings(ctx.settings, today)),
        state_names=names,
        own_due={
            (s.obligation.kind, iso3): due
            for s in statuses
            if s.obligation.due is None
            for iso3 in s.missing
            if iso3 in names and (due := s.obligation.due_for(ctx.registry.get(iso3)))
        },
    )


# --- queueing -------------------------------------------------------------------------


def queue_digest_once(
    ctx: Context,
    now: datetime,
    *,
    obligations: ObligationSource = calendar_obligations,
) -> bool:
    """Queue today's digest (Geneva date of ``now``). True when this call queued it; False
    when it was there already — from an earlier run, another beat or another worker."""
    today = geneva_date(now)
    key = digest_key(today)
    if ctx.db.outbox_key_exists(key):
        return False
    data = build_digest(ctx, today, now=now, obligations=obligations)
    subject, text, html = render_digest(data)
    mail = compose_digest(
        key=key,
        subject=subject,
        text=text,
        html=html,
        recipient=ctx.settings.secretary_address,
        service_address=ctx.settings.service_address,
        service_name=ctx.settings.service_name,
        now=now,
    )
    return ctx.db.queue_outbox_once(key, "digest", mail, now) is not None


def preview_html(
    ctx: Context, today: date, *, obligations: ObligationSource = calendar_obligations
) -> str:
    """The HTML the digest of ``today`` would have: nothing written, nothing sent."""
    return render_digest(build_digest(ctx, today, obligations=obligations))[2]
