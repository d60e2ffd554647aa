"""Prometheus metrics, computed from the database at each scrape.

The database is the truth shared by every worker on every machine, so the figures are read
from it when Prometheus asks, never counted in a process (a counter in a worker dies with it
and knows nothing of the other workers). ``ccm-intake metrics`` serves them on ``/metrics``
and answers ``/healthz``; any number of them may run, they all show the same figures.

    ccm_database_up                                    1 when the figures below could be read
    ccm_messages_kept_total                            every message kept (fetched) so far
    ccm_messages{status}                               received, processing, filed, needs_review,
                                                       not_submission, quarantined
    ccm_review_queue                                   messages waiting for a person
    ccm_outbox{purpose,status}                         ack, reminder, digest, …; pending, sending,
                                                       sent, failed, suppressed, cancelled
    ccm_mailbox_last_success_timestamp_seconds{mailbox}
    ccm_mailbox_last_error_timestamp_seconds{mailbox}
    ccm_poll_duration_seconds{mailbox}                 the last successful poll
    ccm_oldest_unfinished_message_age_seconds          kept but not finished (0: none)
    ccm_oldest_pending_outbox_age_seconds              queued but not sent (0: none)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from worker.store import Database, Monitoring, Status, utcnow

log = logging.getLogger(__name__)

# The classic text format, which every Prometheus reads (our names need nothing newer).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
# Shown as 0 when there is none yet, so that an alert on "pending ack > 0" has a series.
OUTBOX_PURPOSES = ("ack", "reminder", "digest")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "suppressed")


class IntakeCollector(Collector):
    """Reads the figures from the database each time it is collected."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ccm_database_up", "1 when the database answered this scrape.")
        now = utcnow()
        try:
            figures = self.db.monitoring()
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures_as_metrics(figures, now)


def figures_as_metrics(figures: Monitoring, now: datetime) -> Iterator[Metric]:
    kept = CounterMetricFamily(
        "ccm_messages_kept", "Messages kept (fetched from the inbox and stored), ever."
    )
    kept.add_metric([], sum(figures.messages.values()))
    yield kept

    by_status = GaugeMetricFamily(
        "ccm_messages", "Messages by where they stand.", labels=["status"]
    )
    for status in Status:
        by_status.add_metric([status.value], figures.messages.get(status.value, 0))
    yield by_status

    review = GaugeMetricFamily("ccm_review_queue", "Messages waiting for a person's decision.")
    review.add_metric([], figures.messages.get(Status.needs_review.value, 0))
    yield review

    outbox = GaugeMetricFamily(
        "ccm_outbox",
        "Outgoing mail (acknowledgements, reminders, digests, alerts) by purpose and status.",
        labels=["purpose", "status"],
    )
    counts = {(p, s): 0 for p in OUTBOX_PURPOSES for s in OUTBOX_STATUSES}
    counts.update(figures.outbox)
    for (purpose, outcome), n in sorted(counts.items()):
        outbox.add_metric([purpose, outcome], n)
    yield outbox

    success = GaugeMetricFamily(
        "ccm_mailbox_last_success_timestamp_seconds",
        "When the last successful poll of the folder ended (Unix time).",
        labels=["mailbox"],
    )
    error = GaugeMetricFamily(
        "ccm_mailbox_last_error_timestamp_seconds",
        "When a poll of the folder last failed (Unix time).",
        labels=["mailbox"],
    )
    duration = GaugeMetricFamily(
        "ccm_poll_duration_seconds",
        "How long the last successful poll of the folder took.",
        labels=["mailbox"],
    )
    for box in figures.mailboxes:
        if box.last_success_at is not None:
            success.add_metric([box.mailbox], box.last_success_at.timestamp())
        if box.last_error_at is not None:
            error.add_metric([box.mailbox], box.last_error_at.timestamp())
        if box.last_poll_seconds is not None:
            duration.add_metric([box.mailbox], box.last_poll_seconds)
    yield success
    yield error
    yield duration

    lag = GaugeMetricFamily(
        "ccm_oldest_unfinished_message_age_seconds",
        "Age of the oldest message kept but not yet filed or set aside (0: none).",
    )
    lag.add_metric([], _age(figures.oldest_unfinished, now))
    yield lag
    outbox_lag = GaugeMetricFamily(
        "ccm_oldest_pending_outbox_age_seconds",
        "Age of the oldest outgoing mail not yet sent (0: none).",
    )
    outbox_lag.add_metric([], _age(figures.oldest_pending_outbox, now))
    yield outbox_lag


def _age(since: datetime | None, now: datetime) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


def registry_for(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IntakeCollector(db))
    return registry


def make_server(db: Database, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``/metrics`` and ``/healthz`` (call ``serve_forever``)."""
    registry = registry_for(db)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, CONTENT_TYPE, generate_latest(registry))
            elif path == "/healthz":
                self._reply(200, "text/plain; charset=utf-8", b"ok\n")
            else:
                self._reply(404, "text/plain; charset=utf-8", b"/metrics or /healthz\n")

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: %s " + format, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve(db: Database, host: str, port: int, stop: threading.Event) -> None:
    """Serve until ``stop`` is set."""
    server = make_server(db, host, port)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics: serving http://%s:%d/metrics", host, server.server_address[1])
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
