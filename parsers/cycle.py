"""What a submission is for: the meeting of a delegation, the reporting year of a report.

A later submission for the same State, kind and cycle supersedes the earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Meeting:
    code: str  # '7MSP'
    start: date
    end: date
    delegations_due: date | None = None


def delegation_cycle(named: str | None, received: date, meetings: Sequence[Meeting]) -> str:
    """The meeting the text names, else the next meeting not yet over when it arrived."""
    if named:
        return named
    upcoming = sorted((m for m in meetings if m.end >= received), key=lambda m: m.start)
    return upcoming[0].code if upcoming else ""


def article7_cycle(reporting_year: int | None, initial: bool | None, received: date) -> str:
    """'initial', or the calendar year reported on (the year before it arrived, when unsaid)."""
    if initial:
        return "initial"
    return str(reporting_year if reporting_year else received.year - 1)
