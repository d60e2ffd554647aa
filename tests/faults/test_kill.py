"""Scenario 1: kill -9 the whole worker at random moments while a mixed backlog goes through.

Each round APPENDs a share of the backlog, starts ``ccm-intake run`` (Celery worker, its pool,
embedded beat; attachment readers in process groups of their own) and kills every one of those
processes with SIGKILL after a random delay (seeded; the seed is printed). After the last round
a worker runs until everything has settled. Then every mail must be kept and finished once,
filed once, acknowledged once at the SMTP server, and moved once in the mailbox.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    FULL,
    append_all,
    assert_clean,
    mix,
    mixed_backlog,
    progress,
    seeded,
    sized,
    start_worker,
    verdict_for,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.faults

# PostgreSQL as in production; the embedded default (SQLite, WAL) too at full size.
DATABASES = ["postgresql", "sqlite"] if FULL else ["postgresql"]
MAILS = sized(40, 300)
ROUNDS = sized(3, 20)
# A kill comes this many seconds after the worker was started: during its start-up (schema,
# Celery), its first poll (fetching, keeping), or while it processes, sends and moves.
KILL_AFTER = (0.5, 9.0)


@pytest.mark.parametrize("database", DATABASES)
def test_kill_9_at_random_moments_loses_nothing_and_does_nothing_twice(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    database: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
    request: pytest.FixtureRequest,
) -> None:
    seed, rng = seeded("kill -9")
    user, password = account
    db_url = str(request.getfixturevalue("pg_url" if database == "postgresql" else "sqlite_url"))
    env = fault_env(db_url)
    backlog = mixed_backlog(MAILS, rng, "kill")
    # Half the backlog waits in the inbox from the start; the rest arrives round by round.
    first = MAILS // 2
    step = max(1, (MAILS - first) // (ROUNDS + 1))
    shares = [backlog[:first]] + [
        backlog[first + i * step : first + (i + 1) * step] for i in range(ROUNDS - 1)
    ]
    shares.append(backlog[first + (ROUNDS - 1) * step :])  # the last round's, and the rest
    assert sum(map(len, shares)) == MAILS and len(shares) == ROUNDS + 1
    kills: list[dict[str, Any]] = []
    with workers(env, tmp_path / "logs") as running:
        for n in range(ROUNDS):
            append_all(dovecot, user, password, shares[n])
            worker = start_worker(
                env, tmp_path / "logs" / f"round-{n}.log", "--concurrency", "2", ready=False
            )
            running.append(worker)
            delay = rng.uniform(*KILL_AFTER)
            time.sleep(delay)
            at = progress(db_url)
            processes = worker.kill_tree()
            groups = worker.killed_groups  # > 1: attachment readers were killed too
            kills.append(
                {"after_s": round(delay, 2), "processes": processes, "groups": groups, **at}
            )
            print(f"round {n}: killed {processes} processes after {delay:.2f} s at {at}")
        append_all(dovecot, user, password, shares[ROUNDS])
        last = start_worker(env, tmp_path / "logs" / "final.log", "--concurrency", "2", ready=False)
        running.append(last)
        recover = wait_settled(db_url, MAILS)
        log = last.text()
    verdict = verdict_for(env, db_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "kill -9 of the worker's process tree",
            "database": database,
            "seed": seed,
            "rounds": ROUNDS,
            "mix": mix(backlog),
            "recover_s": recover,
            "kills": kills,
            **verdict.figures(),
        }
    )
    assert sum(k["processes"] for k in kills) >= ROUNDS  # every round killed a live worker
    assert_clean(verdict, log)
