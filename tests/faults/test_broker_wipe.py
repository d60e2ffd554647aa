"""Scenario 2: Redis loses everything in the middle of a run (killed, started again empty).

The queued tasks, the tasks being worked on, the mailbox lock and the backoff counter are all
gone. The database and the mailbox are the truth: the worker reconnects, and the next poll and
outbox sweep re-derive what was in flight. Nothing may be lost, nothing done twice.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.app import wait_until
from tests.faults.conftest import (
    append_all,
    assert_clean,
    mix,
    mixed_backlog,
    progress,
    seeded,
    sized,
    start_worker,
    verdict_for,
    wait_finished,
    wait_logged,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.faults

MAILS = sized(30, 150)
WIPES = sized(2, 6)
DOWN = (0.5, 4.0)  # seconds Redis stays away before it comes back empty
RESPAWN_MAILS = sized(12, 40)


def test_a_broker_wiped_mid_run_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    redis_srv: Any,
    sqlite_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    seed, rng = seeded("redis wipe")
    user, password = account
    env = fault_env(sqlite_url)
    backlog = mixed_backlog(MAILS, rng, "redis")
    # Half at the start; the rest arrives in equal shares, one after each wipe.
    first = MAILS // 2
    step = (MAILS - first) // WIPES
    shares = [backlog[first + i * step : first + (i + 1) * step] for i in range(WIPES)]
    shares[-1] = backlog[first + (WIPES - 1) * step :]
    append_all(dovecot, user, password, backlog[:first])
    arrived, wipes = first, []
    with workers(env, tmp_path / "logs") as running:
        worker = start_worker(env, tmp_path / "logs" / "worker.log", "--concurrency", "2")
        running.append(worker)
        for share in shares:
            # Wipe once a random part of what has arrived is finished: tasks are queued,
            # some running, mails waiting to be sent and moved.
            goal = int(arrived * rng.uniform(0.2, 0.8))
            at = wait_finished(sqlite_url, goal)
            down = rng.uniform(*DOWN)
            redis_srv.stop()  # SIGKILL: nothing was persisted, the new one starts empty
            time.sleep(down)
            redis_srv.start()
            wipes.append({"down_s": round(down, 2), **at})
            print(f"Redis wiped and down {down:.1f} s at {at}")
            append_all(dovecot, user, password, share)
            arrived += len(share)
        recover = wait_settled(sqlite_url, MAILS)
        assert not worker.proc_exited(), "the worker died with the broker"
        log = worker.text()
    verdict = verdict_for(env, sqlite_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "Redis wiped mid-run",
            "database": "sqlite",
            "seed": seed,
            "rounds": WIPES,
            "mix": mix(backlog),
            "recover_s": recover,
            "wipes": wipes,
            "worker_restarts": log.count("starting it again"),
            **verdict.figures(),
        }
    )
    assert_clean(verdict, log)


def test_a_worker_that_dies_on_its_own_is_started_again_and_finishes_the_work(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    sqlite_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    """What Celery does when a restarted Redis makes it give up, made certain: the Celery
    worker under `ccm-intake run` shuts down on its own (a warm shutdown, as Celery's
    "Unrecoverable error" does: the tasks in hand finished, pool and beat stopped) and is
    started again. Then, idle, its main process is killed with SIGKILL (as the OOM killer
    would): its embedded beat would live on; nothing of it may, and it is started again.
    (Killing the whole tree at random moments is scenario 1.)"""
    import psutil

    seed, rng = seeded("worker dies")
    user, password = account
    env = fault_env(sqlite_url)
    backlog = mixed_backlog(RESPAWN_MAILS, rng, "respawn")
    half = RESPAWN_MAILS // 2
    append_all(dovecot, user, password, backlog[:half])
    leftovers = []
    with workers(env, tmp_path / "logs") as running:
        worker = start_worker(env, tmp_path / "logs" / "worker.log", "--concurrency", "2")
        running.append(worker)
        assert worker.proc is not None
        for n, (how, signum) in enumerate((("warm", signal.SIGTERM), ("kill", signal.SIGKILL))):
            if how == "warm":
                wait_until(lambda: progress(sqlite_url).get("final", 0) >= 3, 120, "3 mails done")
            else:  # idle: nothing in flight that a SIGKILL could cut in two
                wait_settled(sqlite_url, half)
            (celery,) = psutil.Process(worker.proc.pid).children()
            old = celery.children(recursive=True)  # its pool and beat
            celery.send_signal(signum)  # to Celery itself: the supervisor is not asked
            wait_logged(worker, " ready.", n + 2)  # started again
            _, alive = psutil.wait_procs(old, timeout=60)
            leftovers += [f"{how}: {p.pid}" for p in alive]
            for proc in alive:
                proc.kill()
        append_all(dovecot, user, password, backlog[half:])
        recover = wait_settled(sqlite_url, RESPAWN_MAILS)
        assert not worker.proc_exited(), "ccm-intake run ended with its worker"
        log = worker.text()
    verdict = verdict_for(env, sqlite_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "Celery worker ends under ccm-intake run",
            "database": "sqlite",
            "seed": seed,
            "rounds": 2,
            "mix": mix(backlog),
            "recover_s": recover,
            "restarts": log.count("starting it again"),
            "left_running": len(leftovers),
            **verdict.figures(),
        }
    )
    assert log.count("starting it again") == 2, log[-3000:]
    assert not leftovers, f"processes of the dead worker kept running: {leftovers}"
    assert_clean(verdict, log)
