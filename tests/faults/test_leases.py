"""The mailbox lock is a lease: a poller killed with -9 frees it soon, a live one keeps it.

Found by the kill -9 scenario: the lock used to be held for a fixed 600 s, so a worker killed
in the middle of a poll kept every later poll, mailbox action and re-queue waiting ten
minutes (worker/coordination.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis

from tests.app import ROOT, wait_until
from worker import coordination
from worker.coordination import PollGuard

pytestmark = pytest.mark.faults

HOLDER = """
import sys, time, redis
from worker import coordination
coordination.LOCK_TIMEOUT = float(sys.argv[2])
guard = coordination.PollGuard(redis.Redis.from_url(sys.argv[1]), "lease-test")
with guard.lock() as mine:
    assert mine
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_poller_killed_holding_the_mailbox_frees_it_within_the_lease(
    redis_srv: Any, figures: list[dict[str, Any]]
) -> None:
    assert coordination.LOCK_TIMEOUT <= 60  # not the ten minutes it was
    lease = 2.0
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_srv.url, str(lease)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        other = PollGuard(redis.Redis.from_url(redis_srv.url), "lease-test")
        time.sleep(lease * 1.5)  # past one lease: the holder's renewals keep it
        with other.lock() as mine:
            assert not mine, "a live holder lost its lease"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()

        def free() -> bool:
            with other.lock() as mine:
                return mine

        wait_until(free, lease * 10, "the lease of the killed poller to run out")
        figures.append(
            {
                "scenario": "mailbox lock of a killed poller",
                "database": "—",
                "seed": None,
                "rounds": 1,
                "lease_s": lease,
                "held_by_a_live_poller_past_its_lease": True,
                "recover_s": round(time.monotonic() - killed_at, 1),
            }
        )
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
