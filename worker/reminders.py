"""Reminding States of what they have not yet submitted, ahead of each deadline.

``send_due_reminders_once(ctx, now)`` is one sweep (STYLE §8): beat's ``ccm.remind`` task
runs it every ``CCM_REMINDER_INTERVAL`` seconds, the tests call it with a frozen clock. For
each reminder due today in Geneva (``parsers.obligations.reminders_due``; a day's reminders
from the calendar's ``send_from``, 08:00, on — not in the night) it writes the
ledger row — unique key ``<kind>:<cycle>:<ISO3>:<offset>`` — and the mail's outbox row in one
commit, then asks for the mail to be sent. A second sweep, a second beat or a retry finds the
key taken and does nothing. The mail is checked once more just before it leaves
(``Database.reminder_still_needed``, called by ``mailer.send_due``): a State that has
submitted meanwhile is not reminded.

Nothing is scheduled days ahead on the broker (no ``eta``/``countdown``): Redis holds no truth,
the calendar and the ledger do, and each sweep derives what is due from them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from config.calendar import load_calendar, load_contacts
from config.settings import Settings
from parsers.obligations import Calendar, Contact, DueReminder, format_date, reminders_due
from parsers.states import StateRegistry
from worker.compose import LANGUAGES, Outgoing, render, stable_message_id
from worker.runtime import Context
from worker.store import Database

log = logging.getLogger(__name__)

CATCH_UP_DAYS = 7  # after an outage, the latest reminder missed within this many days


def calendar_for(settings: Settings) -> Calendar:
    return load_calendar(settings.calendar_file)


def choose_contact(
    contacts: tuple[Contact, ...], failing: Mapping[str, str]
) -> tuple[Contact | None, str]:
    """The first contact whose address is not failing; else None and why."""
    if not contacts:
        return None, "no contact"
    for contact in contacts:
        if contact.address.lower() not in failing:
            return contact, ""
    return None, "contact failing"


def compose_reminder(
    due: DueReminder,
    *,
    state_name: str,
    contact: Contact,
    today: date,
    service_address: str,
    service_name: str,
    now: datetime,
) -> Outgoing:
    """The reminder mail for ``due`` to ``contact``, in the contact's language."""
    lang = contact.language if contact.language in LANGUAGES else "en"
    obligation = due.obligation
    subject, body = render(
        "reminder",
        lang,
        state_name=state_name,
        label=obligation.label_in(lang),
        detail=obligation.detail.get(lang, ""),
        kind=obligation.kind,
        cycle=obligation.cycle,
        due_text=format_date(due.due_date, lang),
        days_left=(due.due_date - today).days,
        service_address=service_address,
    )
    message_id = stable_message_id(f"reminder:{due.key}", service_address)
    msg = EmailMessage()
    msg["From"] = formataddr((service_name, service_address))
    msg["To"] = contact.address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    # RFC 3834: sent by a program, not in answer to anyone; robots must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-CCM-Reminder"] = due.key
    msg.set_content(body)
    msg["Content-Language"] = lang  # after set_content(), which drops Content-* headers
    raw = msg.as_bytes(policy=SMTP_POLICY)
    return Outgoing(recipient=contact.address, subject=subject, message_id=message_id, raw=raw)


def _failing(db: Database) -> dict[str, str]:
    """Addresses that bounced for good (contact_health), with why."""
    return {c.address.lower(): c.reason for c in db.failing_contacts()}


def _with(reason: str, problem: str) -> str:
    return f"{reason}; {problem}" if problem and problem not in reason else reason


def _state_name(registry: StateRegistry, iso3: str, lang: str) -> str:
    try:
        return registry.get(iso3).name(lang)
    except KeyError:
        return iso3


def send_due_reminders_once(
    ctx: Context,
    now: datetime,
    *,
    enqueue: Callable[[int], object] | None = None,
    calendar: Calendar | None = None,
    contacts: Mapping[str, tuple[Contact, ...]] | None = None,
    catch_up_days: int = CATCH_UP_DAYS,
) -> int:
    """One sweep: record (and queue) every reminder due at ``now``; returns how many ledger
    rows it wrote (0: nothing to do, or all done already). ``enqueue(outbox_id)`` is called
    for each mail queued, after its commit (the task passes ``send_outbox.delay``; without
    it, the beat's outbox sweep sends them)."""
    calendar = calendar or calendar_for(ctx.settings)
    contacts = load_contacts() if contacts is None else contacts
    local = now.astimezone(ZoneInfo(calendar.timezone))
    today = calendar.today(local.time(), local.date())
    ctx.db.settle_reminders()
    due = reminders_due(
        calendar,
        ctx.registry,
        ctx.db.submitted_keys(),
        contacts,
        today,
        catch_up_days=catch_up_days,
    )
    if not due:
        return 0
    known = ctx.db.reminder_statuses(d.key for d in due)
    failing = _failing(ctx.db)
    written, queued = 0, []
    for item in due:
        if item.key in known:
            continue  # the common case after its day: done by an earlier sweep
        contact, problem = choose_contact(contacts.get(item.state_iso3, ()), failing)
        mail = None
        if contact is None:
            status = "no_contact" if problem == "no contact" else "failed"
        else:
            status = "queued"
            mail = compose_reminder(
                item,
                state_name=_state_name(ctx.registry, item.state_iso3, contact.language),
                contact=contact,
                today=local.date(),  # the days left as the mission reads it
                service_address=ctx.settings.service_address,
                service_name=ctx.settings.service_name,
                now=now,
            )
        created, outbox_id = ctx.db.record_reminder(
            key=item.key,
            obligation=item.obligation.kind,
            cycle=item.obligation.cycle,
            state_iso3=item.state_iso3,
            offset_days=item.offset_days,
            due_date=item.due_date,
            status=status,
            reason=_with(item.reason, problem),
            mail=mail,
            now=now,
        )
        if not created:
            continue  # another sweep took it a moment ago
        written += 1
        if outbox_id is not None:
            queued.append(outbox_id)
    if written:
        log.info("reminders: %d recorded, %d mails queued (%s)", written, len(queued), today)
    if enqueue is not None:
        for outbox_id in queued:
            enqueue(outbox_id)
    return written


# --- the plan: who would be reminded on a given day -------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    due: DueReminder
    contact: Contact | None  # the one that would be written to
    sendable: bool
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.due.state_iso3,
            "obligation": self.due.obligation.kind,
            "cycle": self.due.obligation.cycle,
            "offset_days": self.due.offset_days,
            "due_date": self.due.due_date.isoformat(),
            "reminder_date": self.due.reminder_date.isoformat(),
            "contact": self.contact.address if self.contact else None,
            "language": self.contact.language if self.contact else self.due.language,
            "reason": self.reason,
            "sendable": self.sendable,
        }


def plan_reminders(
    db: Database | None,
    registry: StateRegistry,
    calendar: Calendar,
    contacts: Mapping[str, tuple[Contact, ...]],
    day: date,
    *,
    today: date,
    catch_up_days: int = CATCH_UP_DAYS,
) -> list[PlannedReminder]:
    """Every reminder due on ``day`` and whether it would go out — reading, never writing.

    With a database, what was submitted and the ledger count (a key already there is not
    sent again); without one, nothing was submitted. For a ``day`` after ``today`` only that
    day's own reminders are listed: the sweeps in between will have caught up the others.
    """
    submitted = db.submitted_keys() if db else set()
    window = catch_up_days if day <= today else 0
    due = reminders_due(calendar, registry, submitted, contacts, day, catch_up_days=window)
    ledger = db.reminder_statuses(d.key for d in due) if db else {}
    failing = _failing(db) if db else {}
    planned: list[PlannedReminder] = []
    for item in due:
        contact, problem = choose_contact(contacts.get(item.state_iso3, ()), failing)
        reason = _with(item.reason, problem)
        if item.key in ledger:
            reason += f"; already in the ledger ({ledger[item.key]})"
        planned.append(
            PlannedReminder(
                due=item,
                contact=contact,
                sendable=contact is not None and item.key not in ledger,
                reason=reason,
            )
        )
    return planned
