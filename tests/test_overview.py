"""`ccm-intake status`: each obligation, what is filed, the queues — on screen and as JSON."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from config.settings import load_settings
from tests.app import keep, run_cli
from worker import processing
from worker.runtime import build_context
from worker.samples import australia_article7, france_delegation, out_of_office

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


def test_status_json_says_who_sent_what_and_who_has_not(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    for uid, sample in enumerate((france_delegation, australia_article7, out_of_office), 1):
        message_id, _ = keep(ctx, sample(WHEN).raw, uid, WHEN)
        processing.process_message(ctx, message_id, now=WHEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    env["CCM_DATA_DIR"] = str(tmp_path)

    done = run_cli(env, "status", "--json")

    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    meeting = next(o for o in record["obligations"] if o["cycle"] == "7MSP")
    assert meeting["due"] == "2017-08-18" and "FRA" not in meeting["missing"]
    assert "AUS" in meeting["missing"]  # a report is no delegation list
    assert meeting["received"] == 1 and meeting["expected"] == meeting["received"] + len(
        meeting["missing"]
    )
    report = next(o for o in record["obligations"] if o["cycle"] == "2016")
    assert "AUS" not in report["missing"] and "FRA" in report["missing"]
    assert {(f["state"], f["kind"]) for f in record["filed"]} == {
        ("FRA", "delegation"),
        ("AUS", "article7"),
    }
    assert record["messages"] == {"filed": 2, "not_submission": 1}
    assert record["outbox"] == {"pending": 2}

    table = run_cli(env, "status")
    assert table.returncode == 0, table.stderr
    assert "Obligations" in table.stdout and "CCM/7MSP/DEL/FRA/001" in table.stdout
