"""`ccm-intake metrics`: Prometheus figures read from the database at each scrape.

Real rows — mails kept and processed by the real pipeline, acknowledgements queued, polls
recorded — on SQLite and PostgreSQL, scraped over HTTP from the running command and parsed
as Prometheus parses them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from config.settings import load_settings
from tests.app import ROOT, keep, wait_until
from worker import processing
from worker.metrics import IntakeCollector
from worker.runtime import Context, build_context
from worker.samples import france_delegation, mexico_delegation, out_of_office, unsigned_delegation
from worker.store import Database

MAILBOX = "ccm@imap.example.org:993/INBOX"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def execute(db_url: str, sql: str, **params: object) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = reply.read().decode()
    found: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def ctx(db_url: str, tmp_path: Path) -> Iterator[Context]:
    context = build_context(
        load_settings(
            {"CCM_DATA_DIR": str(tmp_path / "data"), "CCM_DATABASE_URL": db_url, "CCM_OCR": "no"}
        )
    )
    yield context
    context.db.dispose()


@pytest.fixture
def server(ctx: Context, db_url: str, tmp_path: Path) -> Iterator[int]:
    """`ccm-intake metrics` running on a free port, on the test's database."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "CCM_DATA_DIR": str(tmp_path / "data"),
        "CCM_DATABASE_URL": db_url,
        "CCM_LOG_FORMAT": "json",
    }
    log = (tmp_path / "metrics.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "metrics", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        assert proc.poll() is None, (tmp_path / "metrics.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200 and r.read() == b"ok\n"
        except OSError:
            return False

    try:
        wait_until(healthy, 30, "the metrics server")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_the_figures_are_the_databases_and_follow_it_between_scrapes(
    ctx: Context, db_url: str, server: int
) -> None:
    now = datetime.now(UTC)
    kept: dict[str, int] = {}
    for uid, sample in enumerate(
        [france_delegation(now), out_of_office(now), unsigned_delegation(now)], 1
    ):
        kept[sample.name], _ = keep(ctx, sample.raw, uid, now)
        assert processing.process_message(ctx, kept[sample.name]).status == sample.expect_status
    # A filed mail whose acknowledgement is held (as `backfill` does): suppressed.
    mexico = mexico_delegation(now)
    kept["mexico"], _ = keep(ctx, mexico.raw, 4, now)
    assert processing.process_message(ctx, kept["mexico"], hold_acks="imported").status == "filed"
    # Past a limit (a header block of 300 KB): quarantined.
    huge = b"From: a@b.example\r\nX-Pad: " + b"a" * 300_000 + b"\r\nSubject: x\r\n\r\nbody\r\n"
    kept["huge"], _ = keep(ctx, huge, 5, now)
    assert processing.process_message(ctx, kept["huge"]).status == "quarantined"
    # Kept two hours ago and not processed yet; the pending acknowledgement an hour old.
    kept["waiting"], _ = keep(ctx, b"From: x@y.example\r\nSubject: later\r\n\r\nhi\r\n", 6, now)
    execute(
        db_url,
        "update message set stored_at = :t where id = :id",
        t=now - timedelta(hours=2),
        id=kept["waiting"],
    )
    execute(db_url, "update outbox set created_at = :t", t=now - timedelta(hours=1))
    # Polls: one failure, then a success that took 1.25 s.
    ctx.db.poll_failed(MAILBOX, "IMAP server unreachable", now - timedelta(minutes=5))
    success = now - timedelta(minutes=1)
    ctx.db.poll_succeeded(MAILBOX, success, seconds=1.25)

    first = scrape(server)
    assert value(first, "ccm_database_up") == 1
    assert value(first, "ccm_messages_kept_total") == 6
    by_status = {
        status: value(first, "ccm_messages", status=status)
        for status in (
            "received",
            "processing",
            "filed",
            "needs_review",
            "not_submission",
            "quarantined",
        )
    }
    assert by_status == {
        "received": 1,
        "processing": 0,
        "filed": 2,
        "needs_review": 1,
        "not_submission": 1,
        "quarantined": 1,
    }
    assert value(first, "ccm_review_queue") == 1
    assert value(first, "ccm_outbox", purpose="ack", status="pending") == 1  # France's
    assert value(first, "ccm_outbox", purpose="ack", status="suppressed") == 1  # Mexico's
    assert value(first, "ccm_outbox", purpose="ack", status="sent") == 0
    assert value(first, "ccm_outbox", purpose="reminder", status="failed") == 0
    assert value(
        first, "ccm_mailbox_last_success_timestamp_seconds", mailbox=MAILBOX
    ) == pytest.approx(success.timestamp(), abs=0.001)
    assert value(
        first, "ccm_mailbox_last_error_timestamp_seconds", mailbox=MAILBOX
    ) == pytest.approx((now - timedelta(minutes=5)).timestamp(), abs=0.001)
    assert value(first, "ccm_poll_duration_seconds", mailbox=MAILBOX) == 1.25
    # Ages are computed at the scrape: at least what was set, not hours more.
    assert 7200 <= value(first, "ccm_oldest_unfinished_message_age_seconds") < 7200 + 3600
    assert 3600 <= value(first, "ccm_oldest_pending_outbox_age_seconds") < 3600 + 3600

    # Another process changes the database; the next scrape shows it, nothing restarted.
    execute(db_url, "update outbox set status = 'sent' where status = 'pending'")
    assert processing.process_message(ctx, kept["waiting"]).status in (
        "not_submission",
        "needs_review",
        "quarantined",
    )
    second = scrape(server)
    assert value(second, "ccm_outbox", purpose="ack", status="pending") == 0
    assert value(second, "ccm_outbox", purpose="ack", status="sent") == 1
    assert value(second, "ccm_messages", status="received") == 0
    assert value(second, "ccm_oldest_unfinished_message_age_seconds") == 0
    assert value(second, "ccm_oldest_pending_outbox_age_seconds") == 0
    assert value(second, "ccm_messages_kept_total") == 6


def test_an_empty_database_has_every_series_at_zero(ctx: Context, server: int) -> None:
    samples = scrape(server)
    assert value(samples, "ccm_database_up") == 1
    assert value(samples, "ccm_messages_kept_total") == 0
    assert value(samples, "ccm_messages", status="filed") == 0
    assert value(samples, "ccm_outbox", purpose="ack", status="pending") == 0
    assert value(samples, "ccm_oldest_unfinished_message_age_seconds") == 0
    assert not [key for key in samples if key[0] == "ccm_poll_duration_seconds"]


def test_an_unknown_path_is_404(server: int) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{server}/nothing", timeout=5)
    assert caught.value.code == 404


def test_a_database_that_does_not_answer_is_ccm_database_up_0() -> None:
    """No figures rather than wrong ones, and a series to alert on."""
    port = free_port()  # nothing listens there
    collector = IntakeCollector(Database(f"postgresql+psycopg://ccm:x@127.0.0.1:{port}/ccm"))
    families = list(collector.collect())
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [
        ("ccm_database_up", [0.0])
    ]
