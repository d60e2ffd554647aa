"""What States owe the secretariat and when: obligations, their status, and reminders due.

Pure: the calendar, the States, what was submitted, the contacts and *today* come in; frozen
records go out. No clock, no database, no files (``config.calendar`` reads the calendar and
the contact directory; ``worker.reminders`` sends).

Three kinds of obligation:

* ``delegation`` — details of delegations for a Meeting of States Parties (cycle: the
  meeting's code, '7MSP'); one due date for every State invited.
* ``article7`` — the annual Article 7 report due 30 April, covering the previous calendar
  year (cycle: that year, '2016'). Owed by a State Party whose entry into force (EIF) is on or
  before ``in_force_by`` (31 December of the reporting year by default: a party for some of
  the year covered). A State Party whose EIF is not known still owes it; it is flagged
  'EIF unconfirmed'.
* ``article7_initial`` — the initial report, due ``days_after_eif`` (180) days after the
  State's own EIF (cycle 'initial'); only when the EIF is known, and only for due dates on or
  after ``track_from`` (earlier ones are not this service's records).

A reminder is due for (obligation, State, offset) when the State owes the obligation, is of a
status that is reminded, has submitted nothing for it (any version), and the offset's
reminder date is today. After an outage, only the latest missed offset within
``catch_up_days`` is returned: never a burst of old reminders. The caller's ledger (one row
per ``DueReminder.key``) makes sure nothing is sent twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from types import MappingProxyType

from parsers.states import State

OBLIGATION_KINDS = ("delegation", "article7", "article7_initial")
REMINDER_LANGUAGES = ("en", "fr", "es")


def submission_for(kind: str, cycle: str) -> tuple[str, str]:
    """The (submission kind, cycle) that meets obligation ``kind``/``cycle``: an initial
    Article 7 report is filed as ('article7', 'initial')."""
    if kind == "article7_initial":
        return "article7", "initial"
    return kind, cycle


def _no_text() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a State's reminders go, and in which language."""

    iso3: str
    address: str
    language: str  # en | fr | es
    source: str = ""


@dataclass(frozen=True, slots=True)
class Obligation:
    """Something States submit by a deadline.

    ``due`` is the common deadline (None for ``article7_initial``: each State has its own,
    see ``due_for``). ``owed_by`` are the CCM statuses that owe it (for a meeting: those
    invited). ``in_force_by`` (annual reports): EIF must be on or before it.
    """

    kind: str  # 'delegation' | 'article7' | 'article7_initial'
    cycle: str  # '7MSP' | '2016' | 'initial'
    label: Mapping[str, str] = field(default_factory=_no_text, compare=False)  # en/fr/es
    due: date | None = None
    owed_by: frozenset[str] = frozenset({"state_party"})
    in_force_by: date | None = None
    days_after_eif: int = 180
    track_from: date | None = None
    # One line more for the mail, per language (a meeting's venue and dates).
    detail: Mapping[str, str] = field(default_factory=_no_text, compare=False)

    @property
    def submission(self) -> tuple[str, str]:
        """The (submission kind, cycle) that meets it: an initial report is ('article7',
        'initial')."""
        return submission_for(self.kind, self.cycle)

    def due_for(self, state: State) -> date | None:
        """When ``state`` must submit it; None when the State does not owe it."""
        if state.ccm_status not in self.owed_by:
            return None
        eif = state.ccm_entry_into_force
        if self.kind == "article7_initial":
            if eif is None:
                return None
            due = eif + timedelta(days=self.days_after_eif)
            if self.track_from is not None and due < self.track_from:
                return None
            return due
        late = eif is not None and self.in_force_by is not None and eif > self.in_force_by
        if self.kind == "article7" and late:
            return None  # not a party during the year the report covers
        return self.due

    def eif_unconfirmed(self, state: State) -> bool:
        """An annual report owed on the assumption that an unknown EIF is an old one."""
        return self.kind == "article7" and state.ccm_entry_into_force is None

    def label_in(self, lang: str) -> str:
        return self.label.get(lang) or self.label.get("en") or f"{self.kind} {self.cycle}"


@dataclass(frozen=True, slots=True)
class Calendar:
    obligations: tuple[Obligation, ...]
    # Days before the deadline, per obligation kind; 'default' for the others.
    offsets: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: MappingProxyType({"default": (30, 14, 7, 2)})
    )
    overdue_after: int = 7  # one notice this many days after the deadline; 0: none
    working_days_only: bool = False  # Sat/Sun reminders move to the Friday before
    remind: frozenset[str] = frozenset({"state_party", "signatory"})  # ccm statuses reminded
    timezone: str = "Europe/Zurich"
    send_from: time = time(0, 0)  # a day's reminders go out from this local time on

    def today(self, local: time, day: date) -> date:
        """The day whose reminders are due at local time ``local`` on ``day``: before
        ``send_from`` it is still the day before (its reminders, caught up, are done)."""
        return day if local >= self.send_from else day - timedelta(days=1)

    def offsets_for(self, kind: str) -> tuple[int, ...]:
        """Every offset of ``kind``, in days before the deadline; the overdue one negative."""
        before = self.offsets.get(kind, self.offsets.get("default", ()))
        after = (-self.overdue_after,) if self.overdue_after > 0 else ()
        return tuple(sorted(set(before), reverse=True)) + after

    def reminder_date(self, due: date, offset_days: int) -> date:
        """The day the ``offset_days`` reminder goes out (the Friday before a weekend day
        when ``working_days_only``; an overdue notice that this would put on or before the
        deadline goes out the Monday after instead)."""
        day = due - timedelta(days=offset_days)
        if not self.working_days_only or day.weekday() < 5:
            return day
        friday = day - timedelta(days=day.weekday() - 4)
        if offset_days < 0 and friday <= due:
            return day + timedelta(days=7 - day.weekday())
        return friday


@dataclass(frozen=True, slots=True)
class ObligationStatus:
    """Where one obligation stands today. ``expected`` = ``received`` + ``missing``."""

    obligation: Obligation
    expected: tuple[str, ...]  # ISO3 of the States that owe it and are reminded
    received: tuple[str, ...]  # of those, who submitted (any version)
    missing: tuple[str, ...]  # of those, who did not
    no_contact: tuple[str, ...]  # missing AND without a contact
    days_left: int | None  # to the common due date; negative when past; None: per State
    unconfirmed: tuple[str, ...] = ()  # expected on an unknown EIF ('EIF unconfirmed')


def _owing(calendar: Calendar, obligation: Obligation, states: Iterable[State]) -> list[State]:
    owing = [
        s for s in states if s.ccm_status in calendar.remind and obligation.due_for(s) is not None
    ]
    return sorted(owing, key=lambda s: s.iso3)


def obligation_status(
    calendar: Calendar,
    states: Iterable[State],
    submitted: Collection[tuple[str, str, str]],
    contacts: Mapping[str, tuple[Contact, ...]],
    today: date,
) -> tuple[ObligationStatus, ...]:
    """Each obligation of the calendar with who owes it, who sent it, who has not.

    ``submitted``: (ISO3, submission kind, cycle) of every submission filed.
    """
    states = list(states)
    done = set(submitted)
    result: list[ObligationStatus] = []
    for obligation in calendar.obligations:
        kind, cycle = obligation.submission
        owing = _owing(calendar, obligation, states)
        expected = tuple(s.iso3 for s in owing)
        received = tuple(i for i in expected if (i, kind, cycle) in done)
        missing = tuple(i for i in expected if (i, kind, cycle) not in done)
        result.append(
            ObligationStatus(
                obligation=obligation,
                expected=expected,
                received=received,
                missing=missing,
                no_contact=tuple(i for i in missing if not contacts.get(i)),
                days_left=None if obligation.due is None else (obligation.due - today).days,
                unconfirmed=tuple(s.iso3 for s in owing if obligation.eif_unconfirmed(s)),
            )
        )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class DueReminder:
    key: str  # f"{kind}:{cycle}:{iso3}:{offset}": the ledger's unique key
    obligation: Obligation
    state_iso3: str
    offset_days: int  # days before the deadline; negative: the overdue notice
    due_date: date
    reminder_date: date  # today, or the missed day it catches up
    contact: Contact | None  # the State's first contact
    language: str
    reason: str


def reminder_key(obligation: Obligation, iso3: str, offset_days: int) -> str:
    return f"{obligation.kind}:{obligation.cycle}:{iso3}:{offset_days}"


def _why(offset: int, due: date, when: date, today: date) -> str:
    if offset > 0:
        text = f"{offset} days before the deadline {due.isoformat()}"
    else:
        text = f"overdue notice, {-offset} days after the deadline {due.isoformat()}"
    if when < today:
        text = f"catch-up of the reminder of {when.isoformat()} ({text})"
    return text


def reminders_due(
    calendar: Calendar,
    states: Iterable[State],
    submitted: Collection[tuple[str, str, str]],
    contacts: Mapping[str, tuple[Contact, ...]],
    today: date,
    *,
    catch_up_days: int = 7,
) -> tuple[DueReminder, ...]:
    """The reminders to send ``today``: one per obligation and State at most.

    For each State that owes an obligation, is reminded and has not submitted for it, the
    offset whose reminder date is the latest within ``[today - catch_up_days, today]`` —
    today's own, or after an outage the one missed last (an older missed one never).
    """
    states = list(states)
    done = set(submitted)
    window_start = today - timedelta(days=max(catch_up_days, 0))
    found: list[DueReminder] = []
    for obligation in calendar.obligations:
        kind, cycle = obligation.submission
        offsets = calendar.offsets_for(obligation.kind)
        for state in _owing(calendar, obligation, states):
            if (state.iso3, kind, cycle) in done:
                continue
            due = obligation.due_for(state)
            assert due is not None  # _owing keeps only those
            best: tuple[date, int] | None = None
            for offset in offsets:
                when = calendar.reminder_date(due, offset)
                # The latest day wins; on the same day, the offset nearest the deadline.
                if window_start <= when <= today and (
                    best is None
                    or (when, -offset)
                    > (
                        best[0],
                        -best[1],
                    )
                ):
                    best = (when, offset)
            if best is None:
                continue
            when, offset = best
            mine = contacts.get(state.iso3) or ()
            contact = mine[0] if mine else None
            reason = _why(offset, due, when, today)
            if obligation.eif_unconfirmed(state):
                reason += "; EIF unconfirmed"
            if contact is None:
                reason += "; no contact"
            found.append(
                DueReminder(
                    key=reminder_key(obligation, state.iso3, offset),
                    obligation=obligation,
                    state_iso3=state.iso3,
                    offset_days=offset,
                    due_date=due,
                    reminder_date=when,
                    contact=contact,
                    language=contact.language if contact else "en",
                    reason=reason,
                )
            )
    return tuple(found)


# --- dates in words, for the mails ------------------------------------------------------

_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
}
_DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}


def format_date(day: date, lang: str, *, weekday: bool = True) -> str:
    """'Friday 18 August 2017', 'vendredi 18 août 2017', 'viernes 18 de agosto de 2017'."""
    lang = lang if lang in _MONTHS else "en"
    month = _MONTHS[lang][day.month - 1]
    first = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    text = f"{first} de {month} de {day.year}" if lang == "es" else f"{first} {month} {day.year}"
    return f"{_DAYS[lang][day.weekday()]} {text}" if weekday else text


def format_span(start: date, end: date, lang: str) -> str:
    """'4–6 September 2017', 'du 4 au 6 septembre 2017', 'del 4 al 6 de septiembre de 2017'."""
    lang = lang if lang in _MONTHS else "en"
    if (start.year, start.month) != (end.year, end.month):
        a, b = format_date(start, lang, weekday=False), format_date(end, lang, weekday=False)
        return {"fr": f"du {a} au {b}", "es": f"del {a} al {b}"}.get(lang, f"{a} – {b}")
    month = _MONTHS[lang][end.month - 1]
    if lang == "fr":
        return f"du {start.day} au {end.day} {month} {end.year}"
    if lang == "es":
        return f"del {start.day} al {end.day} de {month} de {end.year}"
    return f"{start.day}–{end.day} {month} {end.year}"
