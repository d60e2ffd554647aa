"""Retention: `ccm-intake purge` removes the personal data of old mail and keeps the facts.

Mission mails go through the real pipeline (Dovecot, poll, processing, SMTP sink) on SQLite
and on PostgreSQL; then the mail received before the cut-off loses its raw bytes, its filed
files and the fields that name people, while who submitted what, when and under which
reference stays — and the same mail polled again is recognised, not filed a second time.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted
from sqlalchemy import create_engine, text

from config.settings import load_settings
from tests.app import run_cli
from worker import intake, mailer, processing
from worker.compose import Outgoing
from worker.retention import day_start, purge, redacted_details
from worker.runtime import Context, build_context
from worker.samples import france_delegation, mexico_delegation, out_of_office, unsigned_delegation

OLD = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)  # before the cut-off
NEW = datetime(2017, 10, 2, 9, 0, tzinfo=UTC)  # after it
CUTOFF = day_start(datetime(2017, 9, 1).date())

# What the old mails say about people: none of it may be left anywhere after the purge.
PERSONAL = (
    "Jean Dupont",
    "Claire Martin",
    "Luc Bernard",
    "dfra.geneve@diplomatie.gouv.fr",
    "Composition de la délégation française",
    "kari.nordmann@mfa.no",
    "Kari Nordmann",
)


def append(dovecot: Any, account: tuple[str, str], raw: bytes, when: datetime) -> None:
    """APPEND with an INTERNALDATE: when the mail was received, as far as the service knows."""
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(*account) as box:
        box.append(raw, "INBOX", dt=when)


def run_everything(ctx: Context) -> intake.PollResult:
    result = intake.poll_once(ctx)
    for message_id in result.new + result.unfinished:
        processing.process_message(ctx, message_id)
    mailer.send_due(ctx.db, ctx.settings)
    intake.sync_mailbox(ctx)
    return result


def table(db_url: str, sql: str) -> list[Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def everything_in(db_url: str) -> str:
    """Every text and binary value of every table, as one string to search."""
    found = []
    tables = ("message", "submission", "filed_file", "outbox", "message_location", "reminder")
    for query in (f"select * from {name}" for name in tables):  # noqa: S608 - fixed names
        for row in table(db_url, query):
            for value in row:
                if isinstance(value, bytes | memoryview):
                    found.append(bytes(value).decode("utf-8", "replace"))
                elif isinstance(value, str):
                    found.append(value)
    return "\n".join(found)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


Service = tuple[Context, dict[str, str], bytes]


@pytest.fixture
def service(
    make_env: Any, db_url: str, dovecot: Any, account: tuple[str, str], smtp: Any
) -> Service:
    """France (filed, acknowledged) and an out-of-office reply (not a submission) received
    before the cut-off, an unsigned list (waiting for review) too, Mexico after it.
    Gives the context, the environment and France's mail."""
    # Acknowledged at the time: no age limit on acknowledging these 2017 mails.
    env = make_env(db_url, CCM_ACK_MAX_AGE_DAYS="0")
    ctx = build_context(load_settings(env))
    france = france_delegation(OLD).raw
    append(dovecot, account, france, OLD)
    append(dovecot, account, out_of_office(OLD).raw, OLD)
    append(dovecot, account, unsigned_delegation(OLD).raw, OLD)
    append(dovecot, account, mexico_delegation(NEW).raw, NEW)
    run_everything(ctx)
    statuses = dict(table(db_url, "select subject, status from message"))
    assert statuses == {
        "7MSP - Composition de la délégation française": "filed",
        "Automatic reply: CCM 7MSP - reminder": "not_submission",
        "delegation list": "needs_review",
        "Composición de la delegación de México - Séptima Reunión de los Estados Partes": "filed",
    }
    assert len(smtp.messages) == 2  # France and Mexico acknowledged
    return ctx, env, france


def test_a_purge_removes_the_personal_data_of_old_mail_and_keeps_the_facts(
    service: Service, db_url: str
) -> None:
    ctx, _, _ = service
    archive = ctx.archive.root
    before_subs = {
        r[0]: r[1:]
        for r in table(
            db_url,
            "select reference, state_iso3, kind, cycle, version, received_at from submission",
        )
    }
    # The morning digest of that time went to the secretary, naming senders and subjects.
    digest = Outgoing("secretary@example.org", "digest", "<d@unog.ch>", b"Kari Nordmann wrote")
    digest_id = ctx.db.queue_outbox_once("digest:2017-08-15", "digest", digest, OLD)
    assert digest_id is not None
    ctx.db.outbox_sent(digest_id, OLD)
    france_folder = next(s.folder for s in ctx.db.latest_submissions() if s.state_iso3 == "FRA")
    mexico_folder = next(s.folder for s in ctx.db.latest_submissions() if s.state_iso3 == "MEX")
    assert "Jean Dupont" in everything_in(db_url)

    report = purge(ctx, CUTOFF, now=datetime(2018, 1, 5, tzinfo=UTC))

    assert (report.messages, report.raw_files, report.filed_folders) == (2, 2, 1)
    assert (report.submissions, report.kept_waiting) == (1, 1)
    assert report.outbox_rows == 2  # France's acknowledgement and the digest
    # Nothing that names a person is left of the old mail: not in a table, not on disk.
    stored = everything_in(db_url)
    for personal in PERSONAL:
        assert personal not in stored, personal
    on_disk = b"".join(p.read_bytes() for p in files_under(archive))
    for personal in PERSONAL:
        assert personal.encode() not in on_disk, personal
    assert not (archive / france_folder).exists()
    # The facts stay: who submitted what, for which meeting, when, under which reference.
    after_subs = {
        r[0]: r[1:]
        for r in table(
            db_url,
            "select reference, state_iso3, kind, cycle, version, received_at from submission",
        )
    }
    assert after_subs == before_subs
    france = next(s for s in ctx.db.latest_submissions() if s.state_iso3 == "FRA")
    details = json.loads(france.details)
    assert details["delegate_count"] == 3 and details["purged"] == "2018-01-05"
    assert details["roles"].get("head") == 1
    rows = table(
        db_url,
        "select status, state_iso3, kind, sha256, from_addr, subject, purged_at from message "
        "where purged_at is not null order by id",
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("filed", "FRA", "delegation"),
        ("not_submission", "NOR", "auto_reply"),
    ]
    assert all(len(r[3]) == 64 and r[4] == "" and r[5] == "" for r in rows)
    # The mail received after the cut-off and the one waiting for a person are untouched.
    assert (archive / mexico_folder).is_dir()
    assert "Jorge Lomónaco" in stored
    (waiting,) = ctx.db.review_queue()
    assert waiting.subject == "delegation list" and (archive / waiting.raw_path).is_file()
    # The purge is on record, with its counts.
    (run,) = ctx.db.purge_runs()
    assert (run.messages, run.raw_files, run.filed_folders, run.kept_waiting) == (2, 2, 1, 1)
    assert run.purged_before == CUTOFF and run.started_by == "command"
    # The digest's key stays, so it is never sent again; its text and recipient are gone.
    (row,) = [r for r in ctx.db.outbox_rows() if r.key == "digest:2017-08-15"]
    assert (row.status, row.raw, row.recipient) == ("sent", b"", "")


def test_with_retention_days_the_daily_task_purges_what_is_older(
    service: Service, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import housekeeping
    from worker.app import create_app

    ctx, _, _ = service
    assert "purge-personal-data" not in create_app(ctx.settings).conf.beat_schedule
    kept_five_years = ctx.settings.model_copy(update={"retention_days": 1825})
    assert "purge-personal-data" in create_app(kept_five_years).conf.beat_schedule
    monkeypatch.setattr(housekeeping, "get_context", lambda: ctx)
    assert housekeeping.purge_expired() == (
        "purge: nothing to do, CCM_RETENTION_DAYS=0 keeps everything"
    )
    monkeypatch.setattr(housekeeping, "get_context", lambda: replace(ctx, settings=kept_five_years))

    said = housekeeping.purge_expired()

    # 2017's mail is more than five years old by now; all of it that is decided goes.
    assert "the personal data of 3 message(s)" in said, said
    (run,) = ctx.db.purge_runs()
    assert run.started_by == "schedule" and run.messages == 3 and run.kept_waiting == 1


def test_a_purged_mail_polled_again_is_not_filed_or_kept_again(
    service: Service,
    db_url: str,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
) -> None:
    ctx, _, france = service
    purge(ctx, CUTOFF)
    submissions = table(db_url, "select id, reference from submission order by id")
    acks = len(smtp.messages)

    # The mission sends the very same mail again (or the folder is re-read).
    append(dovecot, account, france, OLD)
    result = run_everything(ctx)

    assert (result.fetched, result.new, result.duplicates) == (1, (), 1)
    assert table(db_url, "select id, reference from submission order by id") == submissions
    assert len(smtp.messages) == acks  # not acknowledged again
    # Nor are its bytes kept again: the archive holds a tombstone, not the mail.
    ((raw_path,),) = table(
        db_url, "select raw_path from message where subject = '' and kind = 'delegation'"
    )
    assert not (ctx.archive.root / raw_path).exists()
    assert (ctx.archive.root / raw_path).with_suffix(".purged").is_file()
    sender = b"dfra.geneve@diplomatie.gouv.fr"
    assert all(sender not in p.read_bytes() for p in files_under(ctx.archive.root))
    assert table(db_url, "select count(*) from message")[0][0] == 4
    # A second purge finds nothing more to do.
    again = purge(ctx, CUTOFF)
    assert (again.messages, again.raw_files, again.filed_folders) == (0, 0, 0)


def test_a_dry_run_lists_what_would_go_and_changes_nothing(service: Service, db_url: str) -> None:
    ctx, env, _ = service
    files = files_under(ctx.archive.root)
    stored = everything_in(db_url)

    done = run_cli(env, "purge", "--before", "2017-09-01", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert "would remove the personal data of 2 message(s)" in done.stdout
    assert "1 message(s) not decided yet kept" in done.stdout
    assert "FRA" in done.stdout and "raw/" in done.stdout
    assert files_under(ctx.archive.root) == files
    assert everything_in(db_url) == stored
    assert ctx.db.purge_runs() == []

    done = run_cli(env, "purge", "--before", "2017-09-01")
    assert done.returncode == 0, done.stderr
    assert "removed the personal data of 2 message(s)" in done.stdout
    status = run_cli(env, "status")
    assert status.returncode == 0, status.stderr
    # Reports keep working: France is still filed, with its reference and roster size.
    assert "CCM/7MSP/DEL/FRA/001" in status.stdout
    assert "3 delegate(s), names purged" in status.stdout


@pytest.mark.parametrize(
    ("args", "extra", "says"),
    [
        ((), {}, "give --before YYYY-MM-DD (or set CCM_RETENTION_DAYS)"),
        (("--before", "2099-01-01"), {}, "is in the future"),
        (("--before", "last year"), {}, "is not a date"),
    ],
)
def test_a_purge_without_a_clear_date_does_nothing(
    tmp_path: Path, args: tuple[str, ...], extra: dict[str, str], says: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "CCM_DATA_DIR": str(tmp_path), **extra}
    done = run_cli(env, "purge", *args)
    assert done.returncode == 2
    assert says in done.stderr
    assert not (tmp_path / "ccm.db").exists()


def test_retention_days_sets_the_default_cut_off(tmp_path: Path, sqlite_url: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CCM_DATA_DIR": str(tmp_path),
        "CCM_DATABASE_URL": sqlite_url,
        "CCM_RETENTION_DAYS": "1825",
    }
    done = run_cli(env, "purge", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would remove the personal data of 0 message(s)" in done.stdout


def test_the_details_keep_counts_and_facts_and_lose_names() -> None:
    roster = {
        "delegates": [
            {"name": "Jean Dupont", "role": "head", "email": "j.dupont@example.org"},
            {"name": "Claire Martin", "role": "alternate", "email": ""},
        ],
        "meeting": "7MSP",
        "source": "Délégation.pdf",
        "warnings": ["Jean Dupont: no title"],
    }
    kept = json.loads(redacted_details("delegation", json.dumps(roster)))
    assert kept == {
        "purged": kept["purged"],
        "delegate_count": 2,
        "roles": {"alternate": 1, "head": 1},
        "meeting": "7MSP",
    }
    report = {
        "state_party": "Australia",
        "reporting_year": 2016,
        "initial": False,
        "forms": [{"form": "A", "status": "changed", "evidence": "contact: Ms Jane Roe"}],
        "warnings": ["contact Jane Roe"],
    }
    kept = json.loads(redacted_details("article7", json.dumps(report)))
    assert kept["forms"] == [{"form": "A", "status": "changed"}]
    assert kept["reporting_year"] == 2016 and "Jane Roe" not in json.dumps(kept)
    assert redacted_details("other", "") == ""
