"""Bad settings stop the program with one clear line; a bad inbox never stops the worker."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.app import WorkerProcess, run_cli, service_env, wait_until
from tests.servers import free_port


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CCM_IMAP_PORT", "abc", "CCM_IMAP_PORT"),
        ("CCM_IMAP_PORT", "70000", "CCM_IMAP_PORT"),
        ("CCM_IMAP_SECURITY", "tls-please", "CCM_IMAP_SECURITY"),
        ("CCM_SECRETARY_ADDRESS", "not an address", "CCM_SECRETARY_ADDRESS"),
        ("CCM_IMAP_PASSWORD_FILE", "/nonexistent/secret", "CCM_IMAP_PASSWORD_FILE"),
        ("CCM_POLL_INTERVAL", "0", "CCM_POLL_INTERVAL"),
        ("CCM_DATABASE_URL", "mysql://x", "CCM_DATABASE_URL"),
        ("CCM_IMAP_PROT", "143", "CCM_IMAP_PROT: unknown setting"),
    ],
)
def test_a_bad_setting_stops_run_with_one_line_naming_it(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "CCM_DATA_DIR": str(tmp_path), name: value}
    done = run_cli(env, "run")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ccm-intake: configuration error: ") and says in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def poll_failures(log: str) -> list[float]:
    """The 'retrying in N s' delays the worker logged, in order."""
    return [float(x) for x in re.findall(r"retrying in (\d+) s", log)]


@pytest.mark.slow
def test_an_unreachable_imap_server_is_retried_with_backoff_and_the_worker_keeps_running(
    tmp_path: Path, broker: str, smtp: Any, sqlite_url: str
) -> None:
    class Nowhere:
        host, port = "127.0.0.1", free_port()

    env = service_env(
        data_dir=tmp_path,
        db_url=sqlite_url,
        broker_url=broker,
        imap=Nowhere,
        imap_user="ccm",
        imap_password="x",
        smtp_port=smtp.port,
    )
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        wait_until(lambda: len(poll_failures(worker.text())) >= 3, 40, "three failed polls")
        assert not worker.proc_exited()
        log = worker.text()
    delays = poll_failures(log)
    assert delays[:3] == [1.0, 2.0, 4.0], log  # doubling from the poll interval
    line = next(x for x in log.splitlines() if "retrying in" in x)
    assert f"IMAP server 127.0.0.1:{Nowhere.port} unreachable" in line
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_wrong_password_is_reported_in_one_line_and_retried(
    tmp_path: Path, dovecot: Any, broker: str, smtp: Any, sqlite_url: str
) -> None:
    user = f"ccm{secrets.token_hex(4)}"
    dovecot.add_user(user, "right-password")
    env = service_env(
        data_dir=tmp_path,
        db_url=sqlite_url,
        broker_url=broker,
        imap=dovecot,
        imap_user=user,
        imap_password="wrong-password",
        smtp_port=smtp.port,
    )
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        wait_until(lambda: len(poll_failures(worker.text())) >= 2, 40, "two failed polls")
        assert not worker.proc_exited()
        log = worker.text()
    line = next(x for x in log.splitlines() if "retrying in" in x)
    assert f"IMAP login as '{user}'" in line and "refused" in line
    assert "wrong-password" not in log  # the secret never reaches the log
