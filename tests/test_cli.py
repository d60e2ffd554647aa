"""The command line: the classify dry run, status, and the demo as a user runs it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.app import run_cli
from worker.samples import demo_samples


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> CompletedProcess[str]:
    """The command with this test's settings only: none of the caller's CCM_* leak in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    return run_cli(base | (env or {}), *args, timeout=timeout)


def test_classify_json_reports_state_kind_ack_and_evidence_for_each_file(tmp_path: Path) -> None:
    samples = demo_samples(datetime(2017, 8, 14, tzinfo=UTC))
    files = []
    for sample in samples:
        path = tmp_path / f"{sample.name}.eml"
        path.write_bytes(sample.raw)
        files.append(str(path))
    done = cli("classify", "--json", *files, env={"CCM_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(r["file"]).stem for r in records] == [s.name for s in samples]
    for sample, record in zip(samples, records, strict=True):
        assert {"state", "kind", "kinds", "confidence", "ack", "review", "evidence"} <= set(record)
        assert record["state"] == sample.expect_state, record
        assert tuple(record["kinds"]) == sample.expect_kinds, record
        assert record["ack"] is sample.expect_ack
        assert record["review"] is (sample.expect_status == "needs_review")
    france = records[0]
    assert 0.75 <= france["confidence"] <= 1
    assert {e["rule"] for e in france["evidence"] if e["target"] == "FRA"}
    # A dry run writes nothing: no database, no archive.
    assert not (tmp_path / "data").exists()


def test_classify_gives_an_unreadable_file_a_clear_outcome(tmp_path: Path) -> None:
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    done = cli("classify", "--json", str(empty))
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["outcome"] == "quarantine" and record["reason"].startswith("unreadable message")


@pytest.mark.slow
def test_the_demo_files_every_sample_and_acknowledges_each_once(tmp_path: Path) -> None:
    done = cli("demo", "--timeout", "120", env={"CCM_DATA_DIR": str(tmp_path)}, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 6 mails handled as expected; 4 acknowledgements, one each." in done.stdout
    for line in ("FRA France", "MEX Mexico", "AUS Australia", "SEN Senegal"):
        assert line in done.stdout
    filed = sorted(p.name for p in (tmp_path / "demo" / "archive" / "filed").iterdir())
    assert filed == ["AUS Australia", "FRA France", "MEX Mexico", "SEN Senegal"]
    assert len(list((tmp_path / "demo" / "sent-mail").glob("*.eml"))) == 4
    status = cli("status", env={"CCM_DATA_DIR": str(tmp_path / "demo")})
    assert status.returncode == 0, status.stderr
    assert "filed 4" in status.stdout and "needs_review 1" in status.stdout
    assert "sent 4" in status.stdout
