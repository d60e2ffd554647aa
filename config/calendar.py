"""Load the deadline calendar (``config/data/calendar.toml``) and the reminder contacts
(``config/data/contacts.csv``) into the frozen records of ``parsers.obligations``.

A wrong value stops the program at start with ``DataFileError`` naming the file and the key
or line — never later with a reminder sent to the wrong State or on the wrong day.
"""

from __future__ import annotations

import csv
import functools
import re
import tomllib
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.registry import (
    DATA_DIR,
    MEETINGS_CSV,
    DataFileError,
    _rows,
    load_meetings,
    load_registry,
)
from parsers.obligations import (
    OBLIGATION_KINDS,
    REMINDER_LANGUAGES,
    Calendar,
    Contact,
    Obligation,
    format_span,
)
from parsers.states import CCM_STATUSES, StateRegistry

CALENDAR_TOML = DATA_DIR / "calendar.toml"
CONTACTS_CSV = DATA_DIR / "contacts.csv"
CONTACT_COLUMNS = ("iso3", "address", "language", "source")

_ADDRESS_RE = re.compile(r"^[^@\s]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
_MONTH_DAY_RE = re.compile(r"^(\d\d)-(\d\d)$")


class _Reader:
    """Typed access to one TOML table; every complaint names the file and the key."""

    def __init__(self, path: Path, table: Mapping[str, Any], where: str = "") -> None:
        self.path, self.table, self.where = path, table, where

    def fail(self, key: str, message: str) -> DataFileError:
        return DataFileError(f"{self.path.name}: {self.where}{key}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.table:
            if default is None:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        # TOML booleans are not numbers here, whatever Python thinks.
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(key, f"expected {kind}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(key, f"expected {kind}, got {value!r}")
        return value

    def sub(self, key: str) -> _Reader:
        value = self.get(key, dict, {})
        return _Reader(self.path, value, f"{self.where}{key}.")

    def statuses(self, key: str, default: list[str]) -> frozenset[str]:
        values = self.get(key, list, default)
        bad = [v for v in values if v not in CCM_STATUSES]
        if bad:
            raise self.fail(key, f"{bad} not among {list(CCM_STATUSES)}")
        return frozenset(values)

    def days(self, key: str, default: list[int]) -> tuple[int, ...]:
        values = self.get(key, list, default)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise self.fail(key, f"expected whole days before the deadline (> 0), got {values}")
        return tuple(values)

    def labels(self, key: str, **values: str) -> Mapping[str, str]:
        table = self.get(key, dict)
        missing = [lang for lang in REMINDER_LANGUAGES if not isinstance(table.get(lang), str)]
        if missing:
            raise self.fail(key, f"no text in {missing}")
        try:
            return MappingProxyType({lang: table[lang].format(**values) for lang in table})
        except (KeyError, IndexError, ValueError) as exc:
            raise self.fail(key, f"bad placeholder {exc}") from None

    def month_day(self, key: str, year: int) -> date:
        text = self.get(key, str)
        m = _MONTH_DAY_RE.match(text)
        try:
            if m is None:
                raise ValueError
            return date(year, int(m[1]), int(m[2]))
        except ValueError:
            raise self.fail(key, f"expected MM-DD, got {text!r}") from None


def _meeting_names(path: Path) -> dict[str, Mapping[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["code"].strip(): MappingProxyType(
                {lang: (row.get(f"name_{lang}") or "").strip() for lang in REMINDER_LANGUAGES}
            )
            for row in csv.DictReader(handle)
        }


def read_calendar(path: Path, *, meetings_csv: Path = MEETINGS_CSV) -> Calendar:
    """The calendar in ``path`` (meeting dates and names from ``meetings_csv``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{path.name}: {exc}") from exc
    top = _Reader(path, data)
    timezone = top.get("timezone", str, "Europe/Zurich")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise top.fail("timezone", f"unknown time zone {timezone!r}") from None

    rem = top.sub("reminders")
    default_offsets = rem.days("offsets", [30, 14, 7, 2])
    by_kind = rem.sub("offsets_by_kind")
    offsets: dict[str, tuple[int, ...]] = {"default": default_offsets}
    for kind in by_kind.table:
        if kind not in OBLIGATION_KINDS:
            raise by_kind.fail(kind, f"not an obligation kind {list(OBLIGATION_KINDS)}")
        offsets[kind] = by_kind.days(kind, [])
    overdue_after = rem.get("overdue_after", int, 7)
    if overdue_after < 0:
        raise rem.fail("overdue_after", "must be 0 or more days")

    obligations: list[Obligation] = []
    meetings = {m.code: m for m in load_meetings(meetings_csv)}
    names = _meeting_names(meetings_csv)
    for n, table in enumerate(top.get("meeting", list, [])):
        if not isinstance(table, dict):
            raise top.fail(f"meeting[{n}]", "expected a table")
        r = _Reader(path, table, f"meeting[{n}].")
        code = r.get("code", str)
        meeting = meetings.get(code)
        if meeting is None:
            raise r.fail("code", f"{code!r} is not in {meetings_csv.name}")
        due = r.get("delegations_due", date, meeting.delegations_due or False)
        if not isinstance(due, date):
            raise r.fail("delegations_due", f"none here nor in {meetings_csv.name}")
        venue = r.get("venue", dict, {})
        obligations.append(
            Obligation(
                kind="delegation",
                cycle=code,
                label=MappingProxyType(
                    {
                        lang: r.labels("label", meeting=names[code][lang] or code)[lang]
                        for lang in REMINDER_LANGUAGES
                    }
                ),
                due=due,
                owed_by=r.statuses("invited", ["state_party", "signatory", "non_signatory"]),
                detail=MappingProxyType(
                    {
                        lang: ", ".join(
                            p
                            for p in (
                                str(venue.get(lang) or venue.get("en") or ""),
                                format_span(meeting.start, meeting.end, lang),
                            )
                            if p
                        )
                        for lang in REMINDER_LANGUAGES
                    }
                ),
            )
        )

    if "article7" in data:
        a7 = top.sub("article7")
        owed_by = a7.statuses("owed_by", ["state_party"])
        for year in a7.get("reporting_years", list):
            if not isinstance(year, int) or isinstance(year, bool) or not 2010 <= year <= 2100:
                raise a7.fail("reporting_years", f"not a year: {year!r}")
            obligations.append(
                Obligation(
                    kind="article7",
                    cycle=str(year),
                    label=a7.labels("label", year=str(year)),
                    due=a7.month_day("due", year + 1),
                    owed_by=owed_by,
                    in_force_by=a7.month_day("in_force_by", year),
                )
            )

    if "article7_initial" in data:
        ini = top.sub("article7_initial")
        days = ini.get("days_after_entry_into_force", int, 180)
        if days <= 0:
            raise ini.fail("days_after_entry_into_force", "must be > 0")
        track_from = ini.get("track_from", date, False) or None
        obligations.append(
            Obligation(
                kind="article7_initial",
                cycle="initial",
                label=ini.labels("label"),
                due=None,
                owed_by=ini.statuses("owed_by", ["state_party"]),
                days_after_eif=days,
                track_from=track_from,
            )
        )

    seen: set[tuple[str, str]] = set()
    for obligation in obligations:
        if (obligation.kind, obligation.cycle) in seen:
            raise DataFileError(f"{path.name}: {obligation.kind} {obligation.cycle} listed twice")
        seen.add((obligation.kind, obligation.cycle))
    return Calendar(
        obligations=tuple(obligations),
        offsets=MappingProxyType(offsets),
        overdue_after=overdue_after,
        working_days_only=rem.get("working_days_only", bool, False),
        remind=rem.statuses("remind", ["state_party", "signatory"]),
        timezone=timezone,
        send_from=_clock(rem, "send_from"),
    )


def _clock(reader: _Reader, key: str) -> time:
    text = reader.get(key, str, "00:00")
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise reader.fail(key, f"expected HH:MM (local time), got {text!r}")
    return time(int(hours), int(minutes))


@functools.cache
def load_calendar(path: Path | None = None) -> Calendar:
    """The calendar (the packaged one unless ``path``, e.g. ``settings.calendar_file``)."""
    return read_calendar(path or CALENDAR_TOML)


def read_contacts(path: Path, registry: StateRegistry) -> Mapping[str, tuple[Contact, ...]]:
    """The contacts in ``path`` by ISO3, in file order; each ISO3 must be in ``registry``."""
    found: dict[str, list[Contact]] = {}
    owner: dict[str, str] = {}
    first = True
    for n, row in _rows(path):
        if first:
            missing = [c for c in CONTACT_COLUMNS if c not in row]
            if missing:
                raise DataFileError(f"{path.name}: missing columns {missing}")
            first = False
        where = f"{path.name} line {n}"
        iso3, address, language = row["iso3"].upper(), row["address"].lower(), row["language"]
        if iso3 not in registry:
            raise DataFileError(f"{where}: unknown iso3 {row['iso3']!r}")
        if not _ADDRESS_RE.match(address):
            raise DataFileError(f"{where}: {row['address']!r} is not a mail address")
        if language not in REMINDER_LANGUAGES:
            raise DataFileError(f"{where}: language {language!r} is not one of en, fr, es")
        if not row["source"]:
            raise DataFileError(f"{where}: {address}: no source")
        if address in owner:
            raise DataFileError(f"{where}: {address} is listed twice ({owner[address]}, {iso3})")
        owner[address] = iso3
        found.setdefault(iso3, []).append(Contact(iso3, address, language, row["source"]))
    return MappingProxyType({iso3: tuple(c) for iso3, c in found.items()})


@functools.cache
def load_contacts(path: Path | None = None) -> Mapping[str, tuple[Contact, ...]]:
    """The reminder contacts (the packaged, illustrative, list unless ``path``)."""
    return read_contacts(path or CONTACTS_CSV, load_registry())
