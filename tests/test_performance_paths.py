"""Issue 6's faster paths behave as the slower ones did, against a real Dovecot.

The kept IMAP connection (``worker.mailbox.kept_inbox``) must survive a server restart, never
be shared with a forked child, and start clean after a failure. No timings are asserted here:
``scripts/benchmark`` measures; these tests only say the behaviour holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from config.settings import load_settings
from tests.app import ROOT, append, keep, wait_until
from tests.servers import Dovecot
from worker import intake, mailbox, processing
from worker.mailbox import MailboxError, close_kept, kept_inbox
from worker.runtime import Context, build_context
from worker.samples import australia_article7, france_delegation
from worker.store import Conflict, Database


def logins(dovecot: Dovecot, user: str) -> int:
    """How many times ``user`` logged in, as Dovecot's own log says."""
    return dovecot.log.read_text(errors="replace").count(f"Login: user=<{user}>")


def session_pids(dovecot: Any, user: str) -> list[int]:
    """The PIDs of the imap processes that served ``user`` (Dovecot logs them at login)."""
    text = dovecot.log.read_text(errors="replace")
    return [int(pid) for pid in re.findall(rf"Login: user=<{re.escape(user)}>.*?mpid=(\d+)", text)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def ctx(make_env: Any, sqlite_url: str) -> Iterator[Context]:
    close_kept()  # nothing kept from an earlier test
    yield build_context(load_settings(make_env(sqlite_url)))
    close_kept()


def test_the_polls_of_one_process_log_in_once(
    ctx: Context, dovecot: Any, account: tuple[str, str]
) -> None:
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    assert intake.poll_once(ctx).fetched == 1
    assert intake.poll_once(ctx).fetched == 0
    intake.sync_mailbox(ctx)
    append(dovecot, *account, australia_article7(datetime.now(UTC)).raw)
    assert intake.poll_once(ctx).fetched == 1
    # The test's own APPENDs log in too: one each, plus the service's single login.
    wait_until(lambda: logins(dovecot, account[0]) >= 3, 10, "Dovecot's log")
    assert logins(dovecot, account[0]) == 3


def restart_dovecot(dovecot: Any, user: str, *, between: Callable[[], None] = lambda: None) -> None:
    """Stop Dovecot and end the session process serving ``user`` (a stopped master leaves it
    running: killing it by its PID is what a real restart or a dropped link does to it)."""
    dovecot.stop()
    try:
        for pid in session_pids(dovecot, user):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(alive(pid) for pid in session_pids(dovecot, user)), 20)
        between()
    finally:
        dovecot.start()


def test_a_kept_connection_survives_a_dovecot_restart(
    ctx: Context, dovecot: Any, account: tuple[str, str]
) -> None:
    assert intake.poll_once(ctx).fetched == 0

    def while_down() -> None:
        with pytest.raises(MailboxError):  # the kept one is dead, no new one can be had
            intake.poll_once(ctx)

    restart_dovecot(dovecot, account[0], between=while_down)
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    assert intake.poll_once(ctx).fetched == 1
    assert intake.poll_once(ctx).fetched == 0


def test_a_restart_between_two_polls_goes_unnoticed(
    ctx: Context, dovecot: Any, account: tuple[str, str]
) -> None:
    """The NOOP before each use finds the dead connection: the poll opens a new one."""
    intake.poll_once(ctx)
    restart_dovecot(dovecot, account[0])
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    assert intake.poll_once(ctx).fetched == 1
    wait_until(lambda: logins(dovecot, account[0]) >= 3, 10, "Dovecot's log")
    assert logins(dovecot, account[0]) == 3  # before, the APPEND, after


def test_a_forked_child_never_uses_its_parents_connection(
    ctx: Context, dovecot: Any, account: tuple[str, str]
) -> None:
    """As in Celery's prefork pool and the attachment reader: the child logs in for itself,
    and the parent's session goes on (a LOGOUT from the child would have ended it)."""
    intake.poll_once(ctx)
    pid = os.fork()
    if pid == 0:  # the child: poll, log out of its own connection, leave without clean-up
        code = 1
        try:
            intake.poll_once(ctx)
            close_kept()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    assert intake.poll_once(ctx).fetched == 1
    # The parent's login, the child's, and the test's APPEND: the parent did not log in again.
    wait_until(lambda: logins(dovecot, account[0]) >= 3, 10, "Dovecot's log")
    assert logins(dovecot, account[0]) == 3


def test_a_block_that_fails_does_not_keep_its_connection(
    ctx: Context, dovecot: Any, account: tuple[str, str]
) -> None:
    intake.poll_once(ctx)
    with pytest.raises(RuntimeError), kept_inbox(ctx.settings) as inbox:
        inbox.select("INBOX")
        raise RuntimeError("something broke half-way")
    assert intake.poll_once(ctx).fetched == 0
    wait_until(lambda: logins(dovecot, account[0]) >= 2, 10, "Dovecot's log")
    assert logins(dovecot, account[0]) == 2


def test_changed_settings_open_a_new_connection(
    ctx: Context, make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]
) -> None:
    intake.poll_once(ctx)
    other = build_context(load_settings(make_env(sqlite_url, CCM_IMAP_PASSWORD="wrong")))
    with pytest.raises(MailboxError, match="refused"):
        intake.poll_once(other)
    assert intake.poll_once(ctx).fetched == 0


# --- the bulk path -----------------------------------------------------------------------


def test_new_messages_are_handed_on_a_group_at_a_time_as_each_commit_is_done(
    ctx: Context, dovecot: Any, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll keeps a backlog KEEP_GROUP mails per commit and queues each group for
    processing as soon as it is committed, not after the whole backlog is fetched."""
    monkeypatch.setattr(intake, "KEEP_GROUP", 2)
    mails = [
        france_delegation(datetime.now(UTC)).raw.replace(b"dfra.geneve@", f"d{n}@".encode())
        for n in range(5)
    ]
    for raw in [*mails, mails[0]]:  # the last one again: a duplicate
        append(dovecot, *account, raw)
    other = Database(ctx.settings.db_url)  # another connection sees only what is committed
    groups: list[tuple[int, ...]] = []
    kept_then: list[int] = []

    def on_new(message_ids: tuple[int, ...]) -> None:
        for message_id in message_ids:
            row = other.claim_message(message_id, datetime.now(UTC), stale=timedelta(minutes=10))
            assert row is not None
            other.release_message(message_id)
        groups.append(message_ids)
        kept_then.append(len(other.recent_messages(limit=100)))

    result = intake.poll_once(ctx, on_new=on_new)

    assert (result.fetched, result.duplicates) == (6, 1)
    assert [len(group) for group in groups] == [2, 2, 1]
    assert [i for group in groups for i in group] == list(result.new)
    assert kept_then == [2, 4, 5]  # the first group went on before the rest was kept


def test_a_backlog_of_large_mails_is_fetched_a_few_at_a_time(
    ctx: Context, dovecot: Any, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each UID FETCH asks for at most FETCH_BYTES (one mail if it is larger), and every mail
    still arrives whole."""
    sent = []
    for n in range(5):
        raw = france_delegation(datetime.now(UTC)).raw.replace(
            b"dfra.geneve@", f"dfra.geneve{n}@".encode()
        )
        sent.append(raw)
        append(dovecot, *account, raw)
    monkeypatch.setattr(mailbox, "FETCH_BYTES", int(max(map(len, sent)) * 2.5))
    batches: list[int] = []
    real = mailbox.Inbox._batches

    def counted(self: mailbox.Inbox, uids: Any) -> Iterator[Any]:
        for batch in real(self, uids):
            batches.append(len(batch))
            yield batch

    monkeypatch.setattr(mailbox.Inbox, "_batches", counted)
    result = intake.poll_once(ctx)
    assert batches == [2, 2, 1]
    kept = {m.id: m.sha256 for m in ctx.db.recent_messages()}
    assert sorted(hashlib.sha256(raw).hexdigest() for raw in sent) == sorted(
        kept[i] for i in result.new
    )


def test_two_workers_numbering_one_states_submission_at_once_file_both(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, smtp: Any
) -> None:
    """The one that loses the race keeps nothing, says so (Conflict), and is filed as the
    next version when tried again: at once by the task, not minutes later by the poll; the
    task sends its acknowledgement itself."""
    from worker import tasks

    when = datetime.now(UTC)
    first, _ = keep(ctx, france_delegation(when).raw, 1, when)
    second, _ = keep(ctx, france_delegation(when).raw.replace(b"Jean", b"Jeanne"), 2, when)
    processing.process_message(ctx, first)
    real = Database._latest_version
    stale = [True]  # the first look misses the first worker's commit, as in the race

    def latest(s: Any, planned: Any) -> Any:
        if stale:
            stale.pop()
            return None
        return real(s, planned)

    monkeypatch.setattr(Database, "_latest_version", staticmethod(latest))
    with pytest.raises(Conflict):
        processing.process_message(ctx, second)
    statuses = {m.id: m.status for m in ctx.db.recent_messages()}
    assert statuses[second] == "received"  # given back, nothing filed
    assert len(ctx.db.all_submissions("delegation")) == 1
    stale.append(True)
    queued: list[object] = []
    monkeypatch.setattr(tasks, "get_context", lambda: ctx)
    monkeypatch.setattr(tasks.send_outbox, "delay", queued.append)
    monkeypatch.setattr(tasks, "_queue_once", lambda task, name: queued.append(name))
    assert "filed FRA" in tasks.process.apply(args=(second,)).get()
    references = sorted(s.reference for s in ctx.db.all_submissions("delegation"))
    assert len(references) == 2 and references[0] != references[1]
    assert queued == ["mailbox_actions"]  # no task per acknowledgement
    (ack,) = smtp.wait_for_count(1)
    assert ctx.db.submissions_of(second)[0].reference in ack.message["Subject"]


def test_a_send_or_mailbox_sync_already_waiting_is_not_queued_again(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import tasks

    class Task:
        queued = 0

        def delay(self) -> None:
            self.queued += 1

    task = Task()
    monkeypatch.setattr(tasks, "get_context", lambda: ctx)
    tasks._started("test")  # nothing left over from another test
    tasks._queue_once(task, "test")
    tasks._queue_once(task, "test")
    assert task.queued == 1
    tasks._started("test")  # it runs: new work needs a new one
    tasks._queue_once(task, "test")
    assert task.queued == 2
    tasks._started("test")


# --- mailbox moves -------------------------------------------------------------------------


def question(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Visitor {n} <visitor{n}@example.org>"
    mail["To"] = "ccm@unog.ch"
    mail["Subject"] = f"Question {n} about the meeting room"
    mail["Message-ID"] = f"<question-{n}@example.org>"
    mail.set_content("Which room is the meeting in? Thank you.")
    return mail.as_bytes()


def backlog_decided(ctx: Context, dovecot: Any, account: tuple[str, str]) -> list[int]:
    """Five delegations from France and two questions, kept and decided, not yet moved."""
    now = datetime.now(UTC)
    for n in range(5):
        raw = france_delegation(now).raw.replace(b"dfra.geneve@", f"d{n}@".encode())
        append(dovecot, *account, raw.replace(b"Message-ID: <", f"Message-ID: <{n}.".encode()))
    for n in range(2):
        append(dovecot, *account, question(n))
    result = intake.poll_once(ctx)
    for message_id in result.new:
        processing.process_message(ctx, message_id)
    return list(result.new)


def current_places(ctx: Context) -> dict[int, tuple[str, int, int, str]]:
    """message id -> (mailbox, UIDVALIDITY, UID, action state) of where it is now."""
    from worker.store import MessageLocation

    with ctx.db.session() as s:
        rows = s.query(MessageLocation).filter(MessageLocation.current.is_(True)).all()
        return {r.message_id: (r.mailbox, r.uidvalidity, r.uid, r.action_state) for r in rows}


def test_the_mail_of_one_folder_bound_for_one_place_moves_in_one_command(
    ctx: Context, dovecot: Any, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One UID MOVE per destination, and each message's new place is the UID the server gave
    it (COPYUID), checked against what that UID holds."""
    ids = backlog_decided(ctx, dovecot, account)
    calls: list[int] = []
    real = mailbox.Inbox.move_many

    def counted(self: mailbox.Inbox, uids: Any, folder: str) -> Any:
        calls.append(len(uids))
        return real(self, uids, folder)

    monkeypatch.setattr(mailbox.Inbox, "move_many", counted)
    actions, _ = intake.sync_mailbox(ctx)

    assert actions == 7 and sorted(calls) == [2, 5]
    places = current_places(ctx)
    shas = {m.id: m.sha256 for m in ctx.db.recent_messages()}
    with kept_inbox(ctx.settings) as inbox:
        for message_id in ids:
            key, validity, uid, _state = places[message_id]
            folder = key.removeprefix(ctx.settings.account_key + "/")
            assert folder != ctx.settings.imap_folder
            assert inbox.select(folder).uidvalidity == validity
            (mail,) = inbox.fetch_raw([uid])
            assert hashlib.sha256(mail.raw).hexdigest() == shas[message_id]


def test_a_move_the_server_refuses_is_tried_message_by_message(
    ctx: Context, dovecot: Any, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one message the server will not move fails alone; the others of its group move."""
    ids = backlog_decided(ctx, dovecot, account)
    before = current_places(ctx)
    bad = before[ids[2]][2]  # the UID of a delegation
    real = mailbox.Inbox.move_many

    def refusing(self: mailbox.Inbox, uids: Any, folder: str) -> Any:
        if bad in uids:
            raise MailboxError(f"IMAP move to {folder!r} failed: [b'NO message {bad} is odd']")
        return real(self, uids, folder)

    monkeypatch.setattr(mailbox.Inbox, "move_many", refusing)
    actions, _ = intake.sync_mailbox(ctx)

    after = current_places(ctx)
    assert actions == 6
    assert after[ids[2]] == (*before[ids[2]][:3], "failed")
    moved = [i for i in ids if i != ids[2]]
    assert all(after[i][0] != before[i][0] and after[i][3] == "done" for i in moved)


def test_copyuid_sets_are_read_in_order() -> None:
    assert mailbox._uid_set(b"4,7:9,12") == [4, 7, 8, 9, 12]
    assert mailbox._uid_set(b"9:7") == [7, 8, 9]
    assert mailbox._uid_set(b"1:999999999") == []  # no answer to a move of ours


def test_a_group_of_kept_mail_is_cut_short_when_its_mails_are_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(intake, "KEEP_GROUP_BYTES", 100)
    now = datetime.now(UTC)
    small = [mailbox.RawMail(uid, now, b"x" * 10) for uid in range(1, 13)]
    large = [mailbox.RawMail(uid, now, b"x" * 60) for uid in range(20, 25)]

    assert [len(g) for g in intake._groups(small, 10)] == [10, 2]
    assert [len(g) for g in intake._groups(large, 10)] == [2, 2, 1]


# --- copies in Sent ------------------------------------------------------------------------


def sent_mails(ctx: Context, count: int) -> list[int]:
    """``count`` mails as the outbox holds them once the SMTP server has taken them."""
    from worker.compose import Outgoing

    now = datetime.now(UTC)
    ids = []
    for n in range(count):
        mail = EmailMessage()
        mail["From"], mail["To"] = "ccm@unog.ch", f"mission{n}@example.org"
        mail["Subject"], mail["Message-ID"] = f"Receipt {n}", f"<receipt.{n}@unog.ch>"
        mail.set_content(f"Received, {n}.")
        raw = mail.as_bytes(policy=SMTP)  # CRLF, as the mailer sends and the server keeps it
        outgoing = Outgoing(str(mail["To"]), str(mail["Subject"]), str(mail["Message-ID"]), raw)
        outbox_id = ctx.db.queue_outbox_once(f"test:{n}", "ack", outgoing, now)
        assert outbox_id is not None
        ctx.db.outbox_sent(outbox_id, now)
        ids.append(outbox_id)
    return ids


def sent_folder(ctx: Context) -> list[bytes]:
    with kept_inbox(ctx.settings) as inbox:
        inbox.ensure_folder("Sent")
        inbox.select("Sent")
        return sorted(m.raw for m in inbox.fetch_raw(inbox.uids_after(0)))


def test_sent_copies_are_recorded_a_group_at_a_time_and_appended_once(
    ctx: Context, dovecot: Any, account: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_mails(ctx, 4)
    real, appended = mailbox.Inbox.append, []

    def breaks_on_the_third(self: mailbox.Inbox, raw: bytes, folder: str, **kw: Any) -> Any:
        if len(appended) == 2:
            raise mailbox.ConnectionLost("the server went away")
        appended.append(raw)
        return real(self, raw, folder, **kw)

    monkeypatch.setattr(mailbox.Inbox, "append", breaks_on_the_third)
    with kept_inbox(ctx.settings) as inbox, pytest.raises(mailbox.ConnectionLost):
        intake.copy_sent_mail(ctx, inbox)
    assert len(ctx.db.uncopied_sent()) == 2  # the two appended were recorded all the same
    monkeypatch.undo()

    with kept_inbox(ctx.settings) as inbox:
        assert intake.copy_sent_mail(ctx, inbox) == 2
    assert ctx.db.uncopied_sent() == []
    assert len(sent_folder(ctx)) == 4

    # Records lost (a database restored from last night's backup): looked for, not appended.
    with ctx.db.session() as s:
        s.execute(sqlalchemy.text("UPDATE outbox SET copied_to_sent = false"))
    with kept_inbox(ctx.settings) as inbox:
        assert intake.copy_sent_mail(ctx, inbox) == 4
    assert ctx.db.uncopied_sent() == []
    assert len(sent_folder(ctx)) == 4


def test_the_benchmarks_steps_section_runs_and_accounts_for_every_mail(tmp_path: Path) -> None:
    # docs/PERFORMANCE.md quotes this section; it must keep running as the code changes.
    done = subprocess.run(
        [sys.executable, "scripts/benchmark", "--only", "steps", "--steps", "40", "--json"],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    steps = json.loads(done.stdout)["steps"]
    assert steps["keeping"]["mails"] == 40
    assert steps["keeping"]["wall_ms_per_mail"] > 0
    # the 40 kept as a poll would, then 20 of them again as new bytes (the profiled round)
    outcomes = steps["outcomes"]
    assert outcomes["filed"] + outcomes["not_submission"] == 60, outcomes
    assert 0 < outcomes["acks_sending"] <= outcomes["filed"], outcomes
