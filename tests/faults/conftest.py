"""What the fault-injection tests share: sizes, seeds, figures, a mixed backlog, and one check
of every invariant against the database, the archive, the SMTP sink and the mailbox.

A test injects its fault, waits (generously) until the service has settled, then calls
``verify``: the verdict counts what was lost, doubled or left half-done, and lists why. The
figure is recorded before the verdict is asserted, so a failing run still reports its numbers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import random
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted

from config.settings import load_settings
from tests import servers
from tests.app import WorkerProcess, rows, wait_until
from tests.golden.build import cases

# ------------------------------------------------------------------------------ sizes

FULL = os.environ.get("CCM_FAULTS_FULL", "") == "1"


def sized(default: int, full: int) -> int:
    """The CI size, or the full one under CCM_FAULTS_FULL=1 (scripts/faults)."""
    return full if FULL else default


# The service's settings for every fault test. Claims of a killed worker go stale after
# CLAIM_STALE seconds (the production default is 10 minutes); it outlasts the longest
# legitimate claim: reading a message's attachments (EXTRACT_SECONDS) or one SMTP
# conversation (SMTP_TIMEOUT). Acknowledgement limits are lifted: the backlog sends several
# mails from one mission, and a suppressed acknowledgement would hide a lost one.
CLAIM_STALE = 12
FAULT_SETTINGS = {
    "CCM_CLAIM_STALE": str(CLAIM_STALE),
    "CCM_EXTRACT_SECONDS": "10",
    "CCM_SMTP_TIMEOUT": "5",
    "CCM_IMAP_TIMEOUT": "10",
    "CCM_RETRY_GRACE": "2",
    "CCM_ACK_RATE_LIMIT": "1000",
    "CCM_ACK_RATE_LIMIT_DAY": "1000",
    "CCM_ACK_GLOBAL_PER_HOUR": "100000",
    "CCM_REMINDERS_ENABLED": "false",
}
SETTLE = 600.0 if FULL else 240.0  # seconds: generous; convergence is waited for, not timed


# ------------------------------------------------------------------------------ seeds and figures


def seeded(what: str) -> tuple[int, random.Random]:
    """A seeded generator for the random moments of ``what``; the seed is printed.

    CCM_FAULTS_SEED=N repeats a run's choices (the moments; the machine's timing still varies).
    """
    seed = int(os.environ.get("CCM_FAULTS_SEED") or secrets.randbelow(2**31))
    print(f"{what}: seed {seed} (CCM_FAULTS_SEED={seed} repeats it)")
    return seed, random.Random(seed)


_OUTCOME = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_OUTCOME] = report.outcome


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    """Append one dict per figure; each is printed and, with CCM_FAULTS_REPORT=FILE, written
    to FILE as a JSON line with the test's outcome (scripts/faults reads them)."""
    found: list[dict[str, Any]] = []
    yield found
    outcome = request.node.stash.get(_OUTCOME, "error")
    report = os.environ.get("CCM_FAULTS_REPORT")
    for figure in found:
        line = json.dumps(
            {
                "test": request.node.name,
                "outcome": outcome,
                "full": FULL,
                **figure,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
            },
            ensure_ascii=False,
        )
        print(line)
        if report:
            with open(report, "a", encoding="utf-8") as out:
                out.write(line + "\n")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


# ------------------------------------------------------------------------------ the backlog


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail of a backlog and what the service must make of it."""

    name: str  # golden case, copy number
    raw: bytes
    message_id: str
    expect: str  # filed | needs_review | not_submission (or quarantined)
    state: str | None  # ISO3 when filed
    ack: bool
    attachments: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@functools.cache
def _usable_cases() -> tuple[Any, ...]:
    # A case the code still decides wrongly (xfail), or one that depends on our own mail
    # server's Authentication-Results, has no outcome to hold the service to here.
    return tuple(c for c in cases() if not c.xfail and not c.authserv)


_MESSAGE_ID = re.compile(rb"(?im)^(message-id:[ \t]*<)")


def _renamed(raw: bytes, prefix: str) -> tuple[bytes, str]:
    """The mail with ``prefix`` put in front of its Message-ID: other bytes, another mail."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    head, n = _MESSAGE_ID.subn(rb"\1" + prefix.encode(), head, count=1)
    assert n == 1, "a golden mail without a Message-ID"
    parsed = message_from_bytes(head + sep, policy=default_policy)
    return head + sep + body, str(parsed["Message-ID"]).strip()


def mixed_backlog(n: int, rng: random.Random, tag: str) -> list[Mail]:
    """``n`` distinct mails from the golden corpus (tests/golden/build.py), in a random order:
    filed with an acknowledgement, to review, not submissions, many with attachments. A case
    used again is a new mail (its Message-ID changes), as when a mission sends twice."""
    pool = list(_usable_cases())
    rng.shuffle(pool)
    mails = []
    for i in range(n):
        case = pool[i % len(pool)]
        raw, message_id = _renamed(case.raw, f"{tag}.{i}.")
        expect = "needs_review" if case.review else "filed" if case.state else "not_submission"
        mails.append(
            Mail(
                name=f"{case.name}#{i // len(pool)}",
                raw=raw,
                message_id=message_id,
                expect=expect,
                state=case.state if expect == "filed" else None,
                ack=case.ack,
                attachments=b"Content-Disposition: attachment" in raw,
            )
        )
    return mails


def copies_of(case_name: str, n: int, tag: str) -> list[Mail]:
    """``n`` sends of one golden case (each its own Message-ID): versions of one submission."""
    case = next(c for c in _usable_cases() if c.name == case_name)
    assert case.state and not case.review, f"{case_name} is not filed"
    mails = []
    for i in range(n):
        raw, message_id = _renamed(case.raw, f"{tag}.copy{i}.")
        attachments = b"Content-Disposition: attachment" in raw
        mails.append(
            Mail(
                f"{case.name}#copy{i}", raw, message_id, "filed", case.state, case.ack, attachments
            )
        )
    return mails


def mix(backlog: list[Mail]) -> dict[str, int]:
    counts = Counter(m.expect for m in backlog)
    return {
        "filed": counts["filed"],
        "review": counts["needs_review"],
        "not_submission": counts["not_submission"],
        "with_ack": sum(m.ack for m in backlog),
        "with_attachments": sum(m.attachments for m in backlog),
    }


def append_all(
    imap: Any, user: str, password: str, mails: list[Mail], folder: str = "INBOX"
) -> None:
    """APPEND every mail on one connection."""
    with MailBoxUnencrypted(imap.host, imap.port).login(user, password, initial_folder=None) as box:
        for mail in mails:
            box.append(mail.raw, folder)


# ------------------------------------------------------------------------------ processes


def start_worker(env: dict[str, str], log: Path, *args: str, ready: bool = True) -> WorkerProcess:
    """`ccm-intake run` in a process group of its own, so that kill_tree() takes all of it."""
    return WorkerProcess(env, log, *args, new_session=True).start(wait_ready=ready)


def wait_logged(worker: WorkerProcess, text: str, times: int, timeout: float = 90) -> None:
    """Wait until ``text`` is in the worker's log ``times`` times."""
    wait_until(lambda: worker.text().count(text) >= times, timeout, f"{text!r} x{times}")


@contextlib.contextmanager
def workers(env: dict[str, str], logs: Path, *extra: str) -> Iterator[list[WorkerProcess]]:
    """Workers started during the block are stopped (or killed) at its end, whatever happens."""
    logs.mkdir(parents=True, exist_ok=True)
    running: list[WorkerProcess] = []
    try:
        yield running
    finally:
        for worker in running:
            worker.stop()
            if worker.proc is not None and worker.proc.poll() is None:
                worker.kill_tree()


# ------------------------------------------------------------------------------ reading the truth


# A fresh engine and connection for every look (tests/app.py), so a restarted PostgreSQL is
# no trouble.
query = rows


def progress(db_url: str) -> dict[str, int]:
    """Where the service stands, from the database alone (for waiting; never for verdicts)."""
    try:
        statuses = dict(query(db_url, "select status, count(*) from message group by status"))
        outbox = dict(query(db_url, "select status, count(*) from outbox group by status"))
        actions = query(
            db_url,
            "select count(*) from message_location "
            "where current and action_state in ('waiting', 'pending')",
        )[0][0]
        uncopied = query(
            db_url, "select count(*) from outbox where status = 'sent' and not copied_to_sent"
        )[0][0]
    except Exception:  # the schema is not there yet, or the database is restarting
        return {"kept": -1}
    return {
        "kept": sum(statuses.values()),
        "unfinished": statuses.get("received", 0) + statuses.get("processing", 0),
        "processing": statuses.get("processing", 0),
        "final": sum(v for k, v in statuses.items() if k not in ("received", "processing")),
        "outbox_open": outbox.get("pending", 0) + outbox.get("sending", 0),
        "sent": outbox.get("sent", 0),
        "actions_open": int(actions),
        "uncopied": int(uncopied),
    }


def wait_finished(db_url: str, goal: int, timeout: float = 120) -> dict[str, int]:
    """Wait until at least ``goal`` messages are finished; returns the progress then."""
    wait_until(lambda: progress(db_url).get("final", 0) >= goal, timeout, f"{goal} mails done")
    return progress(db_url)


def settled(db_url: str, n: int) -> bool:
    """All ``n`` mails kept and finished, every mail sent, every mailbox action done."""
    p = progress(db_url)
    return (
        p["kept"] == n
        and p["unfinished"] == 0
        and p["outbox_open"] == 0
        and p["actions_open"] == 0
        and p["uncopied"] == 0
    )


def wait_settled(db_url: str, n: int, timeout: float = SETTLE) -> float | None:
    """Wait until settled; the seconds it took (a figure, never asserted), or None when it
    did not settle in ``timeout``: the verdict then says what was left half-done."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if settled(db_url, n):
            return round(time.monotonic() - start, 1)
        time.sleep(0.2)
    print(f"not settled after {timeout:.0f} s: {progress(db_url)}")
    return None


def folder_message_ids(imap: Any, user: str, password: str) -> dict[str, list[str]]:
    """Every folder of the account with the Message-IDs it holds (headers only)."""
    found: dict[str, list[str]] = {}
    with MailBoxUnencrypted(imap.host, imap.port).login(user, password, initial_folder=None) as box:
        for info in box.folder.list():
            if "\\Noselect" in info.flags or "\\NonExistent" in info.flags:
                continue
            box.folder.set(info.name)
            found[info.name] = []
            for m in box.fetch(mark_seen=False, bulk=True, headers_only=True):
                said = dict(m.headers).get("message-id") or ("",)
                found[info.name].append(str(said[0]).strip())
    return found


# ------------------------------------------------------------------------------ the verdict


@dataclass
class Verdict:
    """What a run did to its mails: nothing lost, nothing doubled, nothing half-done."""

    mails: int
    kept: int = 0
    filed: int = 0
    acks: int = 0  # acknowledgements the sink accepted
    lost: int = 0  # mails not kept, filings or acknowledgements missing, mail gone from the box
    duplicated: int = 0  # second filings, acknowledgements accepted twice, copies twice
    stuck: int = 0  # messages, outbox rows, mailbox actions left half-done
    problems: list[str] = field(default_factory=list)

    def problem(self, kind: str, text: str, n: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + n)
        if len(self.problems) < 40:
            self.problems.append(f"{kind}: {text}")

    def figures(self) -> dict[str, Any]:
        found = asdict(self)
        found["problems"] = self.problems[:10]
        return found


def _files_on_disk(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".tmp-")
    }


def verdict_for(
    env: dict[str, str],
    db_url: str,
    backlog: list[Mail],
    sink: servers.SmtpSink,
    imap: Any,
    account: tuple[str, str],
) -> Verdict:
    """``verify`` for a service that ran with ``env`` (its archive), on this test's servers."""
    user, password = account
    return verify(
        db_url=db_url,
        archive=load_settings(env).archive_path,
        backlog=backlog,
        sink=sink,
        imap=imap,
        user=user,
        password=password,
    )


def verify(
    *,
    db_url: str,
    archive: Path,
    backlog: list[Mail],
    sink: servers.SmtpSink,
    imap: Any,
    user: str,
    password: str,
) -> Verdict:
    """Hold the settled service to every invariant; the verdict counts each breach."""
    v = Verdict(mails=len(backlog))
    by_sha = {m.sha256: m for m in backlog}
    messages = query(
        db_url, "select id, sha256, status, state_iso3, target, message_id_header from message"
    )
    kept = {row.sha256: row for row in messages}
    v.kept = sum(1 for m in backlog if m.sha256 in kept)
    for mail in backlog:
        if mail.sha256 not in kept:
            v.problem("lost", f"{mail.name} never kept")
    for row in messages:
        ours = by_sha.get(row.sha256)
        if ours is None:
            v.problem("duplicated", f"message {row.id} is none of the backlog's")
            continue
        if row.status in ("received", "processing"):
            v.problem("stuck", f"{ours.name}: message {row.id} left {row.status}")
        elif ours.expect == "not_submission" and row.status in ("not_submission", "quarantined"):
            pass
        elif row.status != ours.expect or (ours.expect == "filed" and row.state_iso3 != ours.state):
            v.problems.append(
                f"outcome: {ours.name} is {row.status} {row.state_iso3 or ''}, "
                f"expected {ours.expect} {ours.state or ''}"
            )

    # Filed: one submission per message and kind (a unique key), each with its folder.
    subs = query(db_url, "select id, message_id, kind, reference, folder from submission")
    files = query(db_url, "select submission_id, name, sha256 from filed_file")
    by_sub: dict[int, dict[str, str]] = {}
    for f in files:
        by_sub.setdefault(f.submission_id, {})[f.name] = f.sha256
    v.filed = len(subs)
    status_of = {row.id: row.status for row in messages}
    filed_messages = {s.message_id for s in subs}
    for row in messages:
        if row.status == "filed" and row.id not in filed_messages:
            v.problem("lost", f"message {row.id} filed without a submission")
    for s in subs:
        if status_of.get(s.message_id) != "filed":
            v.problem("duplicated", f"submission {s.reference} of a message not filed")
        folder = archive / s.folder
        if not folder.is_dir():
            v.problem("lost", f"{s.reference}: folder {s.folder} missing")
        elif _files_on_disk(folder) != by_sub.get(s.id, {}):
            v.problem("lost", f"{s.reference}: {s.folder} does not hold what was filed")
    known = {s.folder for s in subs}
    filed_root = archive / "filed"
    if filed_root.is_dir():
        for folder in sorted(p for p in filed_root.glob("*/*/*") if p.is_dir()):
            relative = folder.relative_to(archive).as_posix()
            if relative not in known:
                v.problem("duplicated", f"a folder no submission knows: {relative}")

    # Sent: every acknowledgement accepted by the SMTP server exactly once.
    outbox = query(
        db_url,
        "select id, key, purpose, submission_id, recipient, message_id_header, status, attempts, "
        "copied_to_sent from outbox",
    )
    acks = [o for o in outbox if o.purpose == "ack"]
    acked = {o.submission_id for o in acks}
    sub_of = {s.id: s for s in subs}
    for row in messages:
        ours = by_sha.get(row.sha256)
        answered = any(s.message_id == row.id and s.id in acked for s in subs)
        if ours is not None and ours.ack and row.status == "filed" and not answered:
            v.problem("lost", f"{ours.name}: filed without an acknowledgement")
    for o in outbox:
        if o.status in ("pending", "sending"):
            v.problem("stuck", f"outbox {o.key} left {o.status}")
        elif o.status == "cancelled" and o.purpose == "reminder":
            pass  # the State submitted before its reminder left: not sent, rightly
        elif o.status != "sent":
            v.problem("lost", f"outbox {o.key} {o.status}")
        elif not o.copied_to_sent:
            v.problem("stuck", f"outbox {o.key} sent but not copied to Sent")
    accepted = Counter(
        str(r.message["Message-ID"]).strip() for r in list(sink.messages) if r.message["Message-ID"]
    )
    pairs = Counter(
        (",".join(r.rcpt_tos), str(r.message["X-CCM-Reference"]))
        for r in list(sink.messages)
        if r.message["X-CCM-Reference"]
    )
    our_ids = {o.message_id_header for o in outbox}
    for message_id, n in accepted.items():
        if message_id not in our_ids:
            v.problem("duplicated", f"the sink holds a mail the outbox never had: {message_id}")
        elif n > 1:
            v.problem("duplicated", f"{message_id} accepted {n} times", n - 1)
    for (rcpt, reference), n in pairs.items():
        if n > 1:
            v.problems.append(f"duplicated: {reference} to {rcpt} accepted {n} times")
    for o in acks:
        if o.status == "sent" and accepted[o.message_id_header] == 0:
            v.problem("lost", f"{o.key} marked sent, never accepted by the SMTP server")
        sub = sub_of.get(o.submission_id)
        if sub is not None and f"ack:{sub.reference}" != o.key:
            v.problems.append(f"ack {o.key} for submission {sub.reference}")
    v.acks = sum(accepted[o.message_id_header] for o in acks)

    # The mailbox: each mail once, where its outcome sends it; one copy of each mail we sent.
    locations = query(
        db_url,
        "select message_id, action_state from message_location where current and "
        "action_state not in ('done', 'stale')",
    )
    for loc in locations:
        v.problem("stuck", f"message {loc.message_id}: mailbox action {loc.action_state}")
    boxes = folder_message_ids(imap, user, password)
    where: dict[str, list[str]] = {}
    for folder, ids in boxes.items():
        for message_id in ids:
            where.setdefault(message_id, []).append(folder)
    target_of = {row.sha256: row.target for row in messages}
    for mail in backlog:
        places = where.get(mail.message_id, [])
        wanted = (target_of.get(mail.sha256) or "").removeprefix("folder:")
        if not places:
            v.problem("lost", f"{mail.name}: gone from the mailbox")
        elif len(places) > 1:
            v.problem("duplicated", f"{mail.name}: in {places}", len(places) - 1)
        elif places[0] == "INBOX" or (wanted and places[0] != wanted):
            v.problem("stuck", f"{mail.name}: in {places[0]}, not in {wanted or 'its folder'}")
    sent_copies = Counter(boxes.get("Sent", []))
    for o in outbox:
        if o.status == "sent" and sent_copies[o.message_id_header] != 1:
            n = sent_copies[o.message_id_header]
            v.problem("duplicated" if n > 1 else "lost", f"{o.key}: {n} copies in Sent")
    return v


def assert_clean(verdict: Verdict, log: str = "") -> None:
    """Nothing lost, doubled or stuck; outcomes as the golden corpus says."""
    assert (verdict.lost, verdict.duplicated, verdict.stuck) == (0, 0, 0), (
        "\n".join(verdict.problems) + "\n" + log[-3000:]
    )
    assert not verdict.problems, "\n".join(verdict.problems)


# ------------------------------------------------------------------------------ servers we break


class RestartableSmtp:
    """An SMTP sink (tests/servers.py SmtpSink) that can be taken down and brought back on the
    same port: while down, connections are refused."""

    def __init__(self) -> None:
        self.sink = servers.SmtpSink()
        self.sink.port = servers.free_port()
        self._controller: Any = None

    @property
    def port(self) -> int:
        return self.sink.port

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        servers.wait_for(lambda: servers.port_is_free(self.port), 15, "SMTP port free")
        self._controller = Controller(
            self.sink,
            hostname=servers.LOCALHOST,
            port=self.port,
            ready_timeout=10,
            enable_SMTPUTF8=True,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def own_smtp() -> Iterator[RestartableSmtp]:
    server = RestartableSmtp()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Fault:
    """Break the IMAP conversation once: when the client sends ``command`` (b"UID FETCH",
    b"UID MOVE"), let ``after_bytes`` of the server's answer through, then call ``action``
    (restart Dovecot, say) and cut the connection; the client gets the rest of the answer
    never. ``fired`` says whether (and ``at`` when, monotonic) it happened."""

    command: bytes
    after_bytes: int
    action: Callable[[], object]
    fired: bool = False
    at: float = 0.0


class ImapProxy:
    """A TCP relay in front of Dovecot that times every use of the mailbox, and can break one
    exchange on purpose (``arm(Fault(...))``).

    The service keeps its IMAP connection open between polls (``kept_inbox``) and checks it
    with a NOOP before each use, all under the mailbox lock. A use runs from that NOOP (or
    from the connection's opening) to the last answer the server gave before the next one; a
    LOGOUT ends a connection outside any use. The client cannot have released the lock before
    it read that last answer, which is timed before it is relayed: two uses that overlap, on
    two connections, were two polls of one mailbox at once (``overlaps()``).
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.host, self.port = servers.LOCALHOST, servers.free_port()
        self.sessions = 0
        self.uses: list[list[float]] = []  # [start, end, session]
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((self.host, self.port))
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def arm(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def overlaps(self) -> list[tuple[list[float], list[float]]]:
        """Pairs of uses, on different connections, that were under way at the same time."""
        with self._lock:
            uses = sorted(list(u) for u in self.uses)
        found, latest = [], None
        for use in uses:
            if latest is not None and use[0] < latest[1] and use[2] != latest[2]:
                found.append((latest, use))
            if latest is None or use[1] > latest[1]:
                latest = use
        return found

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        watching: list[Fault] = []  # a fault whose command this session has sent
        answered = [0]
        with self._lock:
            self.sessions += 1
            session = float(self.sessions)
            use = [time.monotonic(), time.monotonic(), session]
            self.uses.append(use)
        state = {"use": use, "closing": False}

        def hang_up() -> None:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        def from_client() -> None:
            try:
                while chunk := client.recv(65536):
                    with self._lock:
                        if b" LOGOUT" in chunk:
                            state["closing"] = True
                        elif b" NOOP\r\n" in chunk:
                            now = time.monotonic()
                            state["use"] = [now, now, session]
                            self.uses.append(state["use"])  # type: ignore[arg-type]
                        for fault in self.faults:
                            if not fault.fired and fault not in watching and fault.command in chunk:
                                watching.append(fault)
                    upstream.sendall(chunk)
            except OSError:
                pass
            finally:
                hang_up()

        def from_server() -> None:
            try:
                while chunk := upstream.recv(65536):
                    with self._lock:
                        if not state["closing"]:
                            state["use"][1] = time.monotonic()  # type: ignore[index]
                    if watching:
                        fault, before = watching[0], answered[0]
                        answered[0] += len(chunk)
                        if answered[0] >= fault.after_bytes and not fault.fired:
                            fault.fired, fault.at = True, time.monotonic()
                            client.sendall(chunk[: fault.after_bytes - before])
                            fault.action()
                            return
                    client.sendall(chunk)
            except OSError:
                pass
            finally:
                hang_up()

        back = threading.Thread(target=from_server, daemon=True)
        back.start()
        from_client()
        back.join(60)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._closing = True
        self._listener.close()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def fault_env(make_env: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
    """``fault_env(db_url, CCM_X=...)``: the service's environment with FAULT_SETTINGS."""

    def make(db_url: str, **extra: str) -> dict[str, str]:
        return dict(make_env(db_url, **{**FAULT_SETTINGS, **extra}))

    return make
