"""Scenario 5: the archive's disk is full.

The archive lives on a small tmpfs of its own (``mount -t tmpfs -o size=…``, as a separate
volume for the archive would be), filled up with a file: writes fail with ENOSPC as on a
real full disk. The tests run as root, for whom permissions block nothing, and RLIMIT_FSIZE
would only cap one file's size; a full file system is what happens in production.

1. Full: nothing can be kept. The mails stay in the inbox untouched, nothing is recorded as
   read or processed, and the failure is reported in the log and in poll health.
2. Room for the raw mails but not for filing them: they are kept, but none is filed or
   acknowledged, no half-written folder stays behind, and they stay in the inbox.
3. Room again: each is filed once and acknowledged once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app import wait_until
from tests.faults.conftest import (
    append_all,
    assert_clean,
    copies_of,
    folder_message_ids,
    mix,
    query,
    sized,
    start_worker,
    verdict_for,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.faults

COPIES = sized(2, 5)  # of each of three mails with a Word file (~50 KB each)
CASES = ("mex-delegation-docx-es", "deu-delegation-docx-en", "irl-article7-docx-en")
PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for this test alone, unmounted afterwards."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        why = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    try:
        yield mountpoint
    finally:
        for _ in range(10):  # a worker's file may be closing: try again, then lazily
            if subprocess.run(["umount", str(mountpoint)], check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(disk: Path, leave: int = 0) -> Path:
    """Take all of ``disk`` but ``leave`` bytes with one file; returns the file."""
    filler = disk / "filler"
    with contextlib.suppress(FileNotFoundError):
        filler.unlink()
    want = max(free_bytes(disk) - leave, 0) if leave else 1 << 40
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        block = b"\0" * (1 << 16)
        while want > 0:
            want -= os.write(fd, block[: min(want, len(block))])
    except OSError as exc:
        if exc.errno != errno.ENOSPC or leave:
            raise
    finally:
        os.close(fd)
    return filler


def in_inbox(imap: Any, user: str, password: str) -> list[str]:
    return folder_message_ids(imap, user, password).get("INBOX", [])


def test_a_full_archive_disk_keeps_the_mail_in_the_inbox_and_reports_it_until_fixed(
    tmp_path: Path,
    small_disk: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    sqlite_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    user, password = account
    archive = small_disk / "archive"
    env = fault_env(sqlite_url, CCM_ARCHIVE_DIR=str(archive))
    backlog = [m for name in CASES for m in copies_of(name, COPIES, "disk")]
    ids = sorted(m.message_id for m in backlog)
    with workers(env, tmp_path / "logs") as running:
        worker = start_worker(env, tmp_path / "logs" / "worker.log")
        running.append(worker)

        # 1. The disk is full: nothing can be kept.
        filler = fill(small_disk)
        append_all(dovecot, user, password, backlog)
        wait_until(
            lambda: any("No space left" in (r[0] or "") for r in health(sqlite_url)),
            60,
            "the full disk reported in poll health",
        )
        wait_until(lambda: worker.text().count("No space left on device") >= 2, 30, "2 polls")
        kept_full = query(sqlite_url, "select count(*) from message")[0][0]
        position_full = query(sqlite_url, "select last_uid from mailbox_state")
        inbox_full = sorted(in_inbox(dovecot, user, password))
        flags_full = inbox_flags(dovecot, user, password)

        # 2. Room for the raw mails, not for filing them.
        filler.unlink()
        raw_pages = sum(-(-len(m.raw) // PAGE) * PAGE for m in backlog)
        filler = fill(small_disk, leave=raw_pages + 4 * PAGE)
        wait_until(
            lambda: query(sqlite_url, "select count(*) from message")[0][0] == len(backlog),
            60,
            "the raw mails kept",
        )
        failures_before = worker.text().count("No space left on device")
        wait_until(
            lambda: (
                worker.text().count("No space left on device") >= failures_before + len(backlog)
            ),
            90,
            "each mail's filing refused by the full disk",
        )
        statuses_half = dict(query(sqlite_url, "select status, count(*) from message group by 1"))
        filed_half = query(sqlite_url, "select count(*) from submission")[0][0]
        folders_half = sorted(p.name for p in (archive / "filed").glob("*/*/*"))
        sent_half = len(smtp.messages)
        inbox_half = sorted(in_inbox(dovecot, user, password))

        # 3. Room again.
        filler.unlink()
        recover = wait_settled(sqlite_url, len(backlog))
        log = worker.text()
    verdict = verdict_for(env, sqlite_url, backlog, smtp, dovecot, account)
    figures.append(
        {
            "scenario": "archive disk full (tmpfs)",
            "database": "sqlite",
            "seed": None,  # nothing random here
            "rounds": 2,
            "mix": mix(backlog),
            "kept_while_full": kept_full,
            "kept_with_room_for_raw_only": sum(statuses_half.values()),
            "filed_with_room_for_raw_only": filed_half,
            "recover_s": recover,
            **verdict.figures(),
        }
    )
    # 1. Nothing kept, nothing marked read or done, every mail still in the inbox; reported.
    assert kept_full == 0
    assert all(last_uid == 0 for (last_uid,) in position_full), position_full
    assert inbox_full == ids
    assert not any(f & {"\\Seen"} or any(k.startswith("$CCM") for k in f) for f in flags_full)
    assert "No space left on device" in log
    # 2. Kept, but not filed, acknowledged or moved; no half-written folder.
    assert set(statuses_half) <= {"received", "processing"}, statuses_half
    assert (filed_half, folders_half, sent_half) == (0, [], 0)
    assert inbox_half == ids
    # 3. Once fixed: everything once, and the poll is healthy again.
    ((_, error_at, success_at),) = health(sqlite_url)
    assert success_at is not None and success_at > error_at
    assert_clean(verdict, log)


def health(db_url: str) -> list[Any]:
    try:
        return query(db_url, "select last_error, last_error_at, last_success_at from mailbox_state")
    except Exception:  # no schema yet
        return []


def inbox_flags(imap: Any, user: str, password: str) -> list[set[str]]:
    from imap_tools import MailBoxUnencrypted

    with MailBoxUnencrypted(imap.host, imap.port).login(user, password) as box:
        return [set(m.flags) for m in box.fetch(mark_seen=False, headers_only=True)]
