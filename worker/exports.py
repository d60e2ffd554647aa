"""What the secretariat takes out of the service: the delegations of a meeting (for
accreditation) and where each State Party stands on its Article 7 report for a year.

A table is built from the database and the calendar, then written as CSV or XLSX. Every
cell that came from a mission's mail is untrusted text: a delegate "named" ``=HYPERLINK(…)``
must reach the spreadsheet as those characters, never as a formula (CSV: a leading ``'``;
XLSX: a string cell).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from parsers.obligations import Obligation
from worker.reminders import calendar_for
from worker.runtime import Context
from worker.store import Submission

GENEVA = ZoneInfo("Europe/Zurich")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("csv", "xlsx")


@dataclass(frozen=True, slots=True)
class Table:
    title: str  # the sheet's name
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _geneva(moment: datetime) -> str:
    return moment.astimezone(GENEVA).strftime("%Y-%m-%d %H:%M")


def _details(submission: Submission) -> dict[str, object]:
    try:
        found = json.loads(submission.details) if submission.details else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _latest(submissions: Iterable[Submission]) -> dict[str, list[Submission]]:
    """Every version of each State's submission, oldest first."""
    by_state: dict[str, list[Submission]] = defaultdict(list)
    for s in sorted(submissions, key=lambda s: (s.state_iso3, s.version, s.id)):
        by_state[s.state_iso3].append(s)
    return by_state


DELEGATION_HEADERS = (
    "ISO3",
    "State",
    "Name",
    "Title",
    "Role",
    "Organisation",
    "Email",
    "Received (Geneva)",
    "Reference",
    "Version",
    "Note",
)


def delegations_table(ctx: Context, meeting: str) -> Table:
    """One row per delegate of the latest list of each State for ``meeting``; a State whose
    list could not be read into names gets one row saying where the files are."""
    found = [s for s in ctx.db.all_submissions("delegation") if s.cycle == meeting]
    rows: list[tuple[str, ...]] = []
    for iso3, versions in sorted(_latest(found).items()):
        latest = versions[-1]
        state = ctx.registry.get(iso3).name_en
        common = (_geneva(latest.received_at), latest.reference, str(latest.version))
        details = _details(latest)
        delegates = details.get("delegates")
        if not isinstance(delegates, list) or not delegates:
            note = f"names not read from the list: see archive/{latest.folder}"
            if "purged" in details:  # worker/retention.py kept only the count
                count = details.get("delegate_count", "?")
                note = f"{count} delegate(s); names purged on {details['purged']} (retention)"
            rows.append((iso3, state, "", "", "", "", "", *common, note))
            continue
        for d in delegates:
            if not isinstance(d, dict):
                continue
            name = " ".join(p for p in (str(d.get("honorific", "")), str(d.get("name", ""))) if p)
            rows.append(
                (
                    iso3,
                    state,
                    name,
                    str(d.get("title", "")),
                    str(d.get("role", "")),
                    str(d.get("organisation", "")),
                    str(d.get("email", "")),
                    *common,
                    "",
                )
            )
    return Table(f"Delegations {meeting}", DELEGATION_HEADERS, tuple(rows))


ARTICLE7_HEADERS = (
    "ISO3",
    "State Party",
    "Entry into force",
    "Due",
    "Status",
    "First received (Geneva)",
    "Reference (latest)",
    "Versions",
    "Forms present",
    "Forms 'no change' or 'not applicable'",
    "Note",
)


def article7_obligation(ctx: Context, year: int) -> Obligation:
    """The annual report covering ``year``: the calendar's, or the same rule (due 30 April of
    the next year, owed by the parties in force by 31 December) for a year it does not list."""
    for obligation in calendar_for(ctx.settings).obligations:
        if obligation.kind == "article7" and obligation.cycle == str(year):
            return obligation
    return Obligation(
        kind="article7",
        cycle=str(year),
        due=date(year + 1, 4, 30),
        in_force_by=date(year, 12, 31),
    )


def article7_table(ctx: Context, year: int) -> Table:
    """Each State Party that owes the report covering ``year``: submitted on time, late, or
    missing, and the forms its latest version holds."""
    obligation = article7_obligation(ctx, year)
    found = _latest(s for s in ctx.db.all_submissions("article7") if s.cycle == str(year))
    rows: list[tuple[str, ...]] = []
    for state in sorted(ctx.registry, key=lambda s: s.iso3):
        due = obligation.due_for(state)
        if due is None:
            continue
        eif = state.ccm_entry_into_force
        note = "" if eif is not None else "entry into force unconfirmed"
        versions = found.get(state.iso3, [])
        if not versions:
            empty = ("", "", "0", "", "")  # received, reference, versions, forms
            rows.append(
                (state.iso3, state.name_en, str(eif or ""), str(due), "missing", *empty, note)
            )
            continue
        first, latest = versions[0], versions[-1]
        on_time = first.received_at.astimezone(GENEVA).date() <= due
        forms = _details(latest).get("forms")
        present, quiet = [], []
        for f in forms if isinstance(forms, list) else []:
            if isinstance(f, dict) and f.get("form"):
                present.append(str(f["form"]))
                if f.get("status") in ("no_change", "not_applicable"):
                    quiet.append(f"{f['form']} ({str(f['status']).replace('_', ' ')})")
        rows.append(
            (
                state.iso3,
                state.name_en,
                str(eif or ""),
                str(due),
                "on time" if on_time else "late",
                _geneva(first.received_at),
                latest.reference,
                str(len(versions)),
                " ".join(present),
                ", ".join(quiet),
                note,
            )
        )
    return Table(f"Article 7 {year}", ARTICLE7_HEADERS, tuple(rows))


def _inert(value: str) -> str:
    """A CSV cell a spreadsheet shows as text, whatever a mission put in it."""
    return "'" + value if value.startswith(FORMULA_START) else value


def write_csv(table: Table, out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow([_inert(v) for v in row])


def write_xlsx(table: Table, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = table.title[:31]  # Excel's limit for a sheet name
    sheet.append(list(table.headers))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r, row in enumerate(table.rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = value
            cell.data_type = "s"  # never a formula, whatever the text starts with
    sheet.freeze_panes = "A2"
    widths = _widths(table.headers, table.rows)
    for c, width in enumerate(widths, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=c).column_letter].width = width
    book.save(path)


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [min(60, max([len(h)] + [len(r[i]) for r in rows]) + 2) for i, h in enumerate(headers)]
