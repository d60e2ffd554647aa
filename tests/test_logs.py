"""Structured logs: JSON lines for a collector, text for a terminal, and the message id and
reference on every line about a message — from our code, from libraries and from Celery.

The last test runs the real worker (Celery worker + beat) with CCM_LOG_FORMAT=json against
the test's Dovecot, Redis and SMTP sink, and reads every line it wrote on stderr as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import load_settings
from tests import servers
from tests.app import ROOT, append, count, rows, wait_until
from worker import logs, redaction
from worker.samples import france_delegation

SECRET = "imap-Sekr3t-for-logs"


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test configures, the root logger and record factory are put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    monkeypatch.setattr(redaction, "_secrets", [])
    monkeypatch.setattr(redaction, "_original_factory", redaction._original_factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)


def test_json_lines_carry_the_context_and_show_no_secret(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON formatting and the redaction of worker/redaction.py work together: the message,
    its exception and the context fields are there, the password is not."""
    redaction.protect_logs(load_settings({"CCM_IMAP_PASSWORD": SECRET}))
    logs.configure("INFO", "json")
    library = logging.getLogger("some.library")
    with logs.log_context(message_id=42):
        library.info("login as alice with %s", SECRET)
        logs.bind(reference="CCM/7MSP/DEL/FRA/001")
        try:
            raise RuntimeError(f"LOGIN alice {SECRET} refused")
        except RuntimeError:
            library.exception("it failed")
    library.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == [
        "login as alice with ***",
        "it failed",
        "outside",
    ]
    first, failed, outside = lines
    assert first["message_id"] == 42 and "reference" not in first
    assert failed["message_id"] == 42 and failed["reference"] == "CCM/7MSP/DEL/FRA/001"
    assert "RuntimeError: LOGIN alice *** refused" in failed["exception"]
    assert "message_id" not in outside and "reference" not in outside
    assert first["level"] == "INFO" and first["logger"] == "some.library"
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).tzinfo is not None
    assert SECRET not in json.dumps(lines)


def test_text_lines_name_the_message_at_the_end(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", "text")
    log = logging.getLogger("worker.processing")
    with logs.log_context(message_id=7, reference="CCM/ART7/2016/FRA/001"):
        log.info("message 7: filed FRA")
    log.debug("not shown at INFO")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        "INFO worker.processing: message 7: filed FRA "
        "[message_id=7 reference=CCM/ART7/2016/FRA/001]"
    )


def test_warnings_become_log_lines_too(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Celery warns through `warnings` (e.g. running as root): in JSON mode that too is JSON."""
    logs.configure("INFO", "json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("you are running as root", UserWarning, stacklevel=1)
    (line,) = capsys.readouterr().err.splitlines()
    assert "you are running as root" in json.loads(line)["message"]


def test_auto_means_json_unless_stderr_is_a_terminal(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as terminal:
            assert not logs.wants_json("auto", terminal)
        with (tmp_path / "log").open("w") as file:
            assert logs.wants_json("auto", file)
    finally:
        os.close(leader)
        os.close(follower)
    assert logs.wants_json("json") and not logs.wants_json("text")


def test_the_log_settings_are_checked_and_the_level_takes_either_case() -> None:
    settings = load_settings({"CCM_LOG_FORMAT": "json", "CCM_LOG_LEVEL": "debug"})
    assert (settings.log_format.value, settings.log_level.value) == ("json", "DEBUG")
    defaults = load_settings({})
    assert (defaults.log_format.value, defaults.log_level.value) == ("text", "INFO")
    from config.settings import ConfigError

    with pytest.raises(ConfigError, match="CCM_LOG_FORMAT"):
        load_settings({"CCM_LOG_FORMAT": "xml"})


@pytest.mark.parametrize(
    ("task", "args", "expected"),
    [
        ("ccm.process", "(12,)", {"message_id": 12}),
        ("ccm.send_outbox", "(3,)", {"outbox_id": 3}),
        ("ccm.process_many", "([5],)", {"message_ids": [5]}),
        ("ccm.process_many", "([5, 6, 17],)", {"message_ids": [5, 6, 17]}),
        ("ccm.poll", "()", {}),
    ],
)
def test_celerys_task_lines_name_what_the_task_is_about(
    task: str, args: str, expected: dict[str, object]
) -> None:
    record = logging.LogRecord("celery.app.trace", logging.INFO, "", 0, "Task received", (), None)
    record.data = {"name": task, "id": "abc", "args": args}

    logs.ContextFilter().filter(record)

    found = {
        k: getattr(record, k)
        for k in ("message_id", "message_ids", "outbox_id")
        if hasattr(record, k)
    }
    assert found == expected and record.task == task


@pytest.mark.slow
def test_a_real_worker_logs_json_with_the_message_and_its_reference(
    tmp_path: Path,
    make_env: Callable[..., dict[str, str]],
    sqlite_url: str,
    dovecot: servers.Dovecot,
    account: tuple[str, str],
    smtp: servers.SmtpSink,
) -> None:
    """`ccm-intake run` with CCM_LOG_FORMAT=json: every line on stderr is a JSON object —
    Celery's own included — and the lines about the mail carry its id and reference."""
    env = make_env(sqlite_url, CCM_LOG_FORMAT="json")
    user, password = account
    stderr_path, stdout_path = tmp_path / "stderr.log", tmp_path / "stdout.log"
    with stderr_path.open("wb") as err_file, stdout_path.open("wb") as out_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--concurrency", "1"],
            cwd=ROOT,
            env=env,
            stdout=out_file,
            stderr=err_file,
        )
    try:

        def ready() -> bool:
            assert proc.poll() is None, stderr_path.read_text()
            return b" ready." in stderr_path.read_bytes()

        wait_until(ready, 60, "celery ready")
        append(dovecot, user, password, france_delegation(datetime.now(UTC)).raw)
        wait_until(lambda: count(sqlite_url, "select count(*) from submission"), 60, "filing")
        smtp.wait_for_count(1, timeout=60)
        wait_until(lambda: b'"sent ack:' in stderr_path.read_bytes(), 30, "the sent line")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    ((message_id, reference),) = rows(sqlite_url, "select message_id, reference from submission")
    ((outbox_id,),) = rows(sqlite_url, "select id from outbox where purpose = 'ack'")

    lines = []
    for number, line in enumerate(stderr_path.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"stderr line {number} is not JSON: {line!r}")
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    # The start-up banner (stdout) is left out in JSON mode. Celery prints one line on stdout
    # itself, from its signal handler, that no setting turns off: its shutdown notice.
    printed = {line for line in stdout_path.read_text().splitlines() if line.strip()}
    assert printed <= {"worker: Warm shutdown (MainProcess)"}, printed

    about = [line for line in lines if line.get("message_id") == message_id]
    # Our own line, written while processing.
    (filed,) = [line for line in about if line["logger"] == "worker.processing"]
    assert filed["message"].startswith(f"message {message_id}: filed FRA")
    assert filed["reference"] == reference
    # Celery's lines for the task that processed the poll's group of new mail: received and
    # succeeded, each naming the group's messages (from the task's argument).
    celery = [
        line
        for line in lines
        if line["logger"].startswith("celery") and message_id in line.get("message_ids", [])
    ]
    assert any("received" in line["message"] for line in celery), celery
    (succeeded,) = [line for line in celery if "succeeded" in line["message"]]
    assert succeeded["task"] == "ccm.process_many" and succeeded["message_ids"] == [message_id]
    assert succeeded["task_id"] and f"message {message_id}: filed FRA" in succeeded["message"]
    # The mailer's line: the outbox row and the reference it acknowledges.
    (sent,) = [line for line in lines if line["message"].startswith("sent ack:")]
    assert sent["outbox_id"] == outbox_id and sent["reference"] == reference
    assert sent["outbox_key"] == f"ack:{reference}"
    # Context ends with its task: the next poll's lines name no message.
    polls = [line for line in lines if line.get("task") == "ccm.poll"]
    assert polls and all("message_id" not in line for line in polls)
    assert password not in json.dumps(lines)
