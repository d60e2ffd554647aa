"""Running the real service in tests: its environment, a worker process, the inbox."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxAppendError
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]


def keep(ctx: Any, raw: bytes, uid: int, when: datetime) -> tuple[int, bool]:
    """Keep a message as the poller would (without IMAP): (message id, new bytes?)."""
    sha, relative = ctx.archive.put_raw(raw)
    return ctx.db.record_message(  # type: ignore[no-any-return]
        mailbox="test/INBOX",
        uidvalidity=1,
        uid=uid,
        internaldate=when,
        sha256=sha,
        raw_path=relative,
        size=len(raw),
        message_id_header=None,
        from_addr="",
        subject="",
    )


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`ccm-intake ARGS` as a user runs it, with exactly the environment ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def service_env(
    *,
    data_dir: Path,
    db_url: str,
    broker_url: str,
    imap: Any,
    imap_user: str,
    imap_password: str,
    smtp_port: int,
    **extra: str,
) -> dict[str, str]:
    """The CCM_* environment of a service that talks to the test's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")}
    env.update(
        {
            "CCM_IMAP_HOST": imap.host,
            "CCM_IMAP_PORT": str(imap.port),
            "CCM_IMAP_SECURITY": "none",
            "CCM_IMAP_USER": imap_user,
            "CCM_IMAP_PASSWORD": imap_password,
            "CCM_SMTP_HOST": "127.0.0.1",
            "CCM_SMTP_PORT": str(smtp_port),
            "CCM_SMTP_SECURITY": "none",
            "CCM_DATA_DIR": str(data_dir),
            "CCM_DATABASE_URL": db_url,
            "CCM_BROKER_URL": broker_url,
            "CCM_POLL_INTERVAL": "1",
            "CCM_OUTBOX_INTERVAL": "2",
            "CCM_RETRY_GRACE": "1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class WorkerProcess:
    """`ccm-intake run` as a real process: Celery worker with beat, like production."""

    def __init__(
        self, env: dict[str, str], log: Path, *args: str, new_session: bool = False
    ) -> None:
        self.env, self.log, self.args = env, log, args
        # In a session (and process group) of its own, kill_tree() can take the whole
        # group at once without reaching this test process.
        self.new_session = new_session
        self.killed_groups = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> WorkerProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run", "--concurrency", "1", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        if wait_ready:
            wait_until(
                lambda: b" ready." in self.log.read_bytes() or self.proc_exited(),
                60,
                "celery ready",
            )
            assert not self.proc_exited(), self.text()
        return self

    def proc_exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        children = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if kill:
            # A killed parent leaves its pool processes behind: end them too, by PID.
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)

    def kill_tree(self) -> int:
        """kill -9 the worker as a crash would: its process group (pool processes, beat) and
        every descendant's own group (attachment readers lead one each, with tesseract in it).

        Needs ``new_session=True``. The group is stopped first so that nothing forks while
        the descendants are listed. Returns how many processes were killed; ``killed_groups``
        says in how many process groups (more than one: attachment readers were running).
        """
        import psutil

        assert self.proc is not None and self.new_session, "kill_tree needs new_session=True"
        leader = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGSTOP)
        try:
            descendants = psutil.Process(leader).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        groups = {leader}
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                groups.add(os.getpgid(child.pid))
        groups.discard(os.getpgrp())  # never this test's own group
        self.killed_groups = len(groups)
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.proc.wait(30)

        def gone(proc: psutil.Process) -> bool:
            try:  # a zombie is dead: it only waits for whoever adopted it to reap it
                return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_until(lambda: all(gone(p) for p in descendants), 30, "killed processes to go")
        return 1 + len(descendants)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def append(
    imap: Any,
    user: str,
    password: str,
    raw: bytes,
    folder: str = "INBOX",
    *,
    when: datetime | None = None,
) -> None:
    """APPEND as a delivery agent would (``when``: its INTERNALDATE, default now). The first
    APPEND to a new account can meet Dovecot creating INBOX for the worker's own login at that
    moment ("NO [ALREADYEXISTS]"): an agent tries again, and so does this."""
    for attempt in range(3):
        with MailBoxUnencrypted(imap.host, imap.port).login(
            user, password, initial_folder=None
        ) as box:
            try:
                box.append(raw, folder, dt=when)
                return
            except MailboxAppendError as exc:
                if "ALREADYEXISTS" not in str(exc) or attempt == 2:
                    raise


def folder_subjects(imap: Any, user: str, password: str) -> dict[str, list[str]]:
    """Every folder of the account with the subjects it holds."""
    found: dict[str, list[str]] = {}
    with MailBoxUnencrypted(imap.host, imap.port).login(user, password, initial_folder=None) as box:
        for info in box.folder.list():
            if "\\Noselect" in info.flags or "\\NonExistent" in info.flags:
                continue  # a parent such as "Filed" that holds no mail itself
            box.folder.set(info.name)
            found[info.name] = [m.subject for m in box.fetch(mark_seen=False, bulk=True)]
    return found


def rows(db_url: str, sql: str, **params: object) -> list[Any]:
    """The rows of one query, on a connection of its own (it sees what the service committed)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def count(db_url: str, sql: str) -> int:
    """The first value of ``rows``; 0 while the service has not created its schema yet."""
    try:
        return int(rows(db_url, sql)[0][0])
    except Exception:
        return 0
