"""Scenario 3: the servers around the worker go away and come back while it works.

* Dovecot is restarted in the middle of a FETCH (the answer cut after a random number of
  bytes) and in the middle of a MOVE (the server moved the mail, its answer never arrived).
  A relay in front of Dovecot (``ImapProxy``) picks the moment; the restart is real.
* The SMTP server is down for a while: acknowledgements wait with backoff, then go out once.
* PostgreSQL is restarted (fast shutdown, then an immediate one that needs crash recovery)
  while messages are being filed: open transactions are rolled back under the worker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from tests.app import wait_until
from tests.faults.conftest import (
    Fault,
    ImapProxy,
    RestartableSmtp,
    append_all,
    assert_clean,
    mix,
    mixed_backlog,
    progress,
    query,
    seeded,
    sized,
    start_worker,
    verdict_for,
    wait_finished,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.faults


def poll_health(db_url: str) -> list[Any]:
    return query(db_url, "select last_error, last_error_at, last_success_at from mailbox_state")


# --------------------------------------------------------------------------- Dovecot

IMAP_MAILS = sized(32, 150)


def test_dovecot_restarted_mid_fetch_and_mid_move_loses_and_doubles_nothing(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    sqlite_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    seed, rng = seeded("dovecot restart")
    user, password = account
    proxy = ImapProxy(dovecot.host, dovecot.port)
    env = fault_env(sqlite_url, CCM_IMAP_PORT=str(proxy.port))
    backlog = mixed_backlog(IMAP_MAILS, rng, "imap")
    append_all(dovecot, user, password, backlog)

    def restart() -> None:
        dovecot.stop()
        dovecot.start()

    # The first FETCH answers with up to 50 mails (worker/mailbox.py FETCH_CHUNK).
    answer = sum(len(m.raw) for m in backlog[:50])
    fetch = proxy.arm(Fault(b"UID FETCH", rng.randint(200, int(answer * 0.9)), restart))
    try:
        with workers(env, tmp_path / "logs") as running:
            worker = start_worker(env, tmp_path / "logs" / "worker.log")
            running.append(worker)
            wait_until(lambda: fetch.fired, 60, "Dovecot restarted in the middle of a FETCH")
            at_fetch = progress(sqlite_url)
            move = proxy.arm(Fault(b"UID MOVE", 0, restart))  # moved, the answer lost
            wait_until(lambda: move.fired, 120, "a UID MOVE (MOVE seen after login?) broken")
            at_move = progress(sqlite_url)
            recover = wait_settled(sqlite_url, IMAP_MAILS)
            log = worker.text()
    finally:
        proxy.close()
        dovecot.start()  # a no-op when it runs; a failure above must not leave it stopped
    ((error, error_at, success_at),) = poll_health(sqlite_url)
    verdict = verdict_for(env, sqlite_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "Dovecot restarted mid-FETCH and mid-MOVE",
            "database": "sqlite",
            "seed": seed,
            "rounds": 2,
            "mix": mix(backlog),
            "recover_s": recover,
            "fetch_cut_after_bytes": fetch.after_bytes,
            "at_fetch": at_fetch,
            "at_move": at_move,
            "imap_connections": proxy.sessions,
            **verdict.figures(),
        }
    )
    # The broken polls were reported (poll health: the digest's "intake" line), then recovered.
    assert error and "IMAP" in error, error
    assert error_at is not None and success_at is not None and success_at > error_at
    assert_clean(verdict, log)


# --------------------------------------------------------------------------- SMTP

SMTP_MAILS = sized(16, 100)


def test_an_smtp_server_down_for_a_while_gets_each_mail_once_after_backoff(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    own_smtp: RestartableSmtp,
    sqlite_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    seed, rng = seeded("smtp down")
    user, password = account
    env = fault_env(sqlite_url, CCM_SMTP_PORT=str(own_smtp.port))
    backlog = mixed_backlog(SMTP_MAILS, rng, "smtp")
    half = SMTP_MAILS // 2
    append_all(dovecot, user, password, backlog[:half])

    def deferred() -> int:
        return int(
            query(
                sqlite_url,
                "select count(*) from outbox where status = 'pending' and attempts >= 1 "
                "and last_error like '%unreachable%'",
            )[0][0]
        )

    with workers(env, tmp_path / "logs") as running:
        worker = start_worker(env, tmp_path / "logs" / "worker.log")
        running.append(worker)
        wait_until(lambda: progress(sqlite_url).get("sent", 0) >= 1, 120, "a first mail sent")
        own_smtp.stop()
        down_at = time.monotonic()
        append_all(dovecot, user, password, backlog[half:])
        # Down until every mail is processed and some acknowledgements have been refused.
        wait_until(
            lambda: progress(sqlite_url).get("final") == SMTP_MAILS and deferred() >= 1,
            120,
            "acknowledgements deferred while the SMTP server is down",
        )
        waiting = deferred()
        own_smtp.start()
        down_s = round(time.monotonic() - down_at, 1)
        recover = wait_settled(sqlite_url, SMTP_MAILS)
        log = worker.text()
    retried = query(
        sqlite_url,
        "select key, attempts, next_attempt_at, sent_at, status from outbox where attempts > 1",
    )
    verdict = verdict_for(env, sqlite_url, backlog, own_smtp.sink, dovecot, account)
    figures.append(
        {
            "scenario": "SMTP server down for a while",
            "database": "sqlite",
            "seed": seed,
            "rounds": 1,
            "mix": mix(backlog),
            "down_s": down_s,
            "deferred": waiting,
            "retried": len(retried),
            "most_attempts": max((r.attempts for r in retried), default=1),
            "recover_s": recover,
            **verdict.figures(),
        }
    )
    assert retried, "no acknowledgement was tried twice: the outage was not felt"
    for row in retried:  # each went out on its retry, after the backoff, not before
        assert row.status == "sent" and row.sent_at >= row.next_attempt_at, row
    assert_clean(verdict, log)


# --------------------------------------------------------------------------- PostgreSQL

PG_MAILS = sized(30, 150)
PG_RESTARTS = sized(2, 6)
PG_DOWN = (0.5, 3.0)  # seconds


def test_postgresql_restarted_mid_run_loses_and_doubles_nothing(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    postgres: Any,
    pg_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    seed, rng = seeded("postgres restart")
    user, password = account
    # The test cluster commits asynchronously for speed (tests/servers.py), and an immediate
    # shutdown then loses the last commits, as that setting allows; production's default
    # (synchronous_commit=on) does not, and is what this database gets.
    dbname = make_url(pg_url).database
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{dbname}" SET synchronous_commit = on'))
    engine.dispose()
    env = fault_env(pg_url)
    backlog = mixed_backlog(PG_MAILS, rng, "pg")
    first = PG_MAILS // 2
    step = (PG_MAILS - first) // PG_RESTARTS
    shares = [backlog[first + i * step : first + (i + 1) * step] for i in range(PG_RESTARTS)]
    shares[-1] = backlog[first + (PG_RESTARTS - 1) * step :]
    append_all(dovecot, user, password, backlog[:first])
    arrived, restarts = first, []
    with workers(env, tmp_path / "logs") as running:
        worker = start_worker(env, tmp_path / "logs" / "worker.log", "--concurrency", "2")
        running.append(worker)
        for n, share in enumerate(shares):
            goal = int(arrived * rng.uniform(0.2, 0.8))
            at = wait_finished(pg_url, goal)
            down, crash = rng.uniform(*PG_DOWN), n % 2 == 1
            postgres.restart(down=down, crash=crash)  # every second one without a checkpoint
            restarts.append({"down_s": round(down, 2), "immediate": crash, **at})
            print(f"PostgreSQL restarted ({'immediate' if crash else 'fast'}) at {at}")
            append_all(dovecot, user, password, share)
            arrived += len(share)
        recover = wait_settled(pg_url, PG_MAILS)
        log = worker.text()
    verdict = verdict_for(env, pg_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "PostgreSQL restarted mid-run",
            "database": "postgresql",
            "seed": seed,
            "rounds": PG_RESTARTS,
            "mix": mix(backlog),
            "recover_s": recover,
            "restarts": restarts,
            **verdict.figures(),
        }
    )
    assert_clean(verdict, log)
