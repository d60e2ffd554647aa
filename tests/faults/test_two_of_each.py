"""Scenario 4: two workers and two beats at once, as two `ccm-intake run` processes.

Each runs a Celery worker (two pool processes) with an embedded beat, so every periodic task
is sent twice: the poll, the outbox sweep, the reminder sweep, the daily digest. Holding the
design to it: one poll of the mailbox at a time (timed on the wire by a relay in front of
Dovecot), each mail filed once even when several versions of one State's submission are
processed side by side, one reminder per ledger key and one digest for the day, counted at
the SMTP server.

Reminders are made due today by a calendar whose meeting (8MSP) takes delegations in 14 days
(offset 14); the digest by CCM_DIGEST_TIME set to the coming minute, Geneva time.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from config.settings import load_settings
from tests.app import wait_until
from tests.faults.conftest import (
    ImapProxy,
    append_all,
    assert_clean,
    copies_of,
    mix,
    mixed_backlog,
    query,
    seeded,
    sized,
    start_worker,
    verdict_for,
    wait_settled,
    workers,
)

pytestmark = pytest.mark.faults

MAILS = sized(24, 120)
VERSIONS = sized(10, 16)  # sends of one delegation, processed side by side
GENEVA = ZoneInfo("Europe/Zurich")


def calendar(path: Path, today: datetime) -> Path:
    """A calendar whose only reminders are due today: 8MSP delegations in 14 days."""
    due = (today + timedelta(days=14)).date()
    path.write_text(
        f"""timezone = "Europe/Zurich"
[reminders]
remind = ["state_party", "signatory"]
offsets = [14]
overdue_after = 0
working_days_only = false
send_from = "00:00"

[[meeting]]
code = "8MSP"
delegations_due = {due.isoformat()}
invited = ["state_party", "signatory", "non_signatory"]
venue = {{ en = "Palais des Nations, Geneva" }}
label = {{ en = "Details of delegations for the {{meeting}}", \
fr = "Composition des délégations pour la {{meeting}}", \
es = "Composición de las delegaciones para la {{meeting}}" }}
""",
        encoding="utf-8",
    )
    return path


def next_minute(now: datetime) -> datetime:
    """The start of a minute at least 10 s away (both beats are up within a few seconds):
    when beat's crontab fires the digest."""
    return (now + timedelta(seconds=70)).replace(second=0, microsecond=0)


def tasks_run(log: str, name: str) -> list[str]:
    """What each run of task ``name`` returned, from Celery's 'succeeded' lines."""
    return re.findall(rf"Task {re.escape(name)}\[[^\]]+\] succeeded in [\d.e-]+s: '([^']*)'", log)


def test_two_workers_and_two_beats_poll_one_at_a_time_and_send_each_mail_once(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    pg_url: str,
    fault_env: Any,
    figures: list[dict[str, Any]],
) -> None:
    seed, rng = seeded("two of each")
    user, password = account
    proxy = ImapProxy(dovecot.host, dovecot.port)
    now = datetime.now(GENEVA)
    digest_at = next_minute(now)
    env = fault_env(
        pg_url,
        CCM_IMAP_PORT=str(proxy.port),
        CCM_REMINDERS_ENABLED="true",
        CCM_REMINDER_INTERVAL="10",
        CCM_CALENDAR_FILE=str(calendar(tmp_path / "calendar.toml", now)),
        CCM_DIGEST_TIME=digest_at.strftime("%H:%M"),
    )
    mixed = mixed_backlog(MAILS, rng, "two")
    versions = copies_of("fra-delegation-pdf-fr", VERSIONS, "two")
    backlog = mixed + versions
    try:
        with workers(env, tmp_path / "logs") as running:
            for name in ("a", "b"):
                log = tmp_path / "logs" / f"worker-{name}.log"
                running.append(start_worker(env, log, "--concurrency", "2", ready=False))
            wait_until(lambda: all(" ready." in w.text() for w in running), 90, "both ready")
            append_all(dovecot, user, password, mixed[: MAILS // 2])
            # The versions arrive together, so that both workers file them at once.
            append_all(dovecot, user, password, versions + mixed[MAILS // 2 :])
            wait_until(
                lambda: datetime.now(GENEVA) > digest_at + timedelta(seconds=5),
                150,
                f"the digest minute {digest_at:%H:%M} Geneva",
            )
            wait_until(
                lambda: query(pg_url, "select count(*) from outbox where purpose = 'digest'")[0][0],
                60,
                "the digest queued",
            )
            recover = wait_settled(pg_url, len(backlog))
            logs = [w.text() for w in running]
    finally:
        proxy.close()
    both = "\n".join(logs)
    overlaps = proxy.overlaps()
    ledger = query(
        pg_url,
        "select r.key, r.status, o.message_id_header from reminder r "
        "left join outbox o on o.id = r.outbox_id",
    )
    at_sink = [r.message for r in list(smtp.messages)]
    reminders_at_sink = Counter(str(m["X-CCM-Reminder"]) for m in at_sink if m["X-CCM-Reminder"])
    digests = query(
        pg_url, "select key, message_id_header, status from outbox where purpose = 'digest'"
    )
    digest_ids = {d.message_id_header for d in digests}
    digests_at_sink = sum(1 for m in at_sink if str(m["Message-ID"]).strip() in digest_ids)
    digest_runs = tasks_run(both, "ccm.digest")
    remind_runs = tasks_run(both, "ccm.remind")
    polls = [tasks_run(log, "ccm.poll") for log in logs]
    verdict = verdict_for(env, pg_url, backlog, smtp, dovecot, account)
    sent_keys = {r.key for r in ledger if r.status == "sent"}
    figures.append(
        {
            "scenario": "two workers and two beats",
            "database": "postgresql",
            "seed": seed,
            "rounds": 1,
            "mix": mix(backlog),
            "versions_side_by_side": VERSIONS,
            "recover_s": recover,
            "imap_uses": len(proxy.uses),
            "poll_overlaps": len(overlaps),
            "polls_run": [len(p) for p in polls],
            "polls_turned_away": sum(r.startswith("poll: another poll") for p in polls for r in p),
            "reminder_sweeps": len(remind_runs),
            "reminder_keys": len(ledger),
            "reminders_at_sink": sum(reminders_at_sink.values()),
            "digest_runs": len(digest_runs),
            "digests_at_sink": digests_at_sink,
            # Versions of one submission filed at the same moment: the later one is refused by
            # the unique reference and filed again as the next version (worker/store.py).
            "version_races": len(
                re.findall(r"ccm\.process\[[^\]]+\] (?:retry|raised).*submission_reference", both)
            ),
            **verdict.figures(),
        }
    )
    assert not overlaps, f"two polls of one mailbox at once: {overlaps[:3]}"
    assert all(polls), "each worker polled"  # both took part
    assert len(digest_runs) >= 2, digest_runs  # both beats asked for it...
    assert (len(digests), digests_at_sink) == (1, 1), (digests, digest_runs)  # ...it went once
    assert sent_keys, "no reminder was due: the calendar did not make any"
    assert len(remind_runs) >= 2, remind_runs
    assert set(reminders_at_sink) == sent_keys, (sorted(reminders_at_sink), sorted(sent_keys))
    assert all(n == 1 for n in reminders_at_sink.values()), reminders_at_sink.most_common(3)
    assert_clean(verdict, both)


def test_two_versions_filed_at_the_same_moment_each_keep_their_folder(
    pg_url: str, fault_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the scenario above can only hope to meet, made certain: while one version of
    France's delegation is being filed (its folder moved into place slowly, inside its
    transaction), a second is processed. Both count "version 1"; the second must be refused
    before it touches the first one's folder — it used to write into it and then, refused at
    its commit, delete it — and be filed as the next version when processed again."""
    import threading

    from tests.app import keep
    from worker import processing
    from worker.runtime import build_context
    from worker.store import Archive

    ctx = build_context(load_settings(fault_env(pg_url)))
    first, second = copies_of("fra-delegation-pdf-fr", 2, "race")
    now = datetime.now(UTC)
    ids = [keep(ctx, mail.raw, uid, now)[0] for uid, mail in enumerate((first, second), 1)]
    writing, original = threading.Event(), Archive.place

    def slow_place(self: Archive, staging: str, folder: str) -> Any:
        if not writing.is_set():  # the first filing: hold its transaction open a while
            writing.set()
            time.sleep(2)
        return original(self, staging, folder)

    monkeypatch.setattr(Archive, "place", slow_place)
    outcome: list[str] = []
    one = threading.Thread(target=lambda: processing.process_message(ctx, ids[0]))
    one.start()
    assert writing.wait(30), "the first filing never reached its files"
    try:
        processing.process_message(ctx, ids[1])
        outcome.append("filed at once")
    except Exception as exc:  # refused: processed again below, as the poll would
        outcome.append(type(exc).__name__)
    one.join(30)
    processing.process_message(ctx, ids[1])
    subs = query(pg_url, "select id, message_id, reference, folder from submission order by id")
    files = query(pg_url, "select submission_id, name, sha256 from filed_file")
    assert [s.message_id for s in subs] == ids, subs
    assert [s.reference for s in subs] == ["CCM/7MSP/DEL/FRA/001", "CCM/7MSP/DEL/FRA/002"]
    for sub in subs:  # each folder holds exactly what was filed for it
        on_disk = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (ctx.archive.root / sub.folder).iterdir()
        }
        assert on_disk == {f.name: f.sha256 for f in files if f.submission_id == sub.id}, sub
    assert (ctx.archive.root / subs[0].folder / "original.eml").read_bytes() == first.raw
    # Refused on the unique reference (worker/store.py says Conflict; the task retries it).
    assert outcome in (["Conflict"], ["IntegrityError"]), outcome
