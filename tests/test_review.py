"""The review queue: a person decides, and the service files, answers and moves the mail."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted

from config.settings import load_settings
from tests.app import append, folder_subjects, run_cli
from tests.test_limits import mission_mail, pdf_of
from worker import intake, mailer, processing
from worker.processing import Decision, ReviewError, resolve_review
from worker.runtime import Context, build_context
from worker.samples import france_delegation, unsigned_delegation
from worker.store import Status

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)
SUBJECT = "7MSP - Délégation française"  # tests.test_limits.mission_mail


def run_everything(ctx: Context) -> None:
    result = intake.poll_once(ctx)
    for message_id in result.new + result.unfinished:
        processing.process_message(ctx, message_id)
    mailer.send_due(ctx.db, ctx.settings)
    intake.sync_mailbox(ctx)


@pytest.fixture
def queued(make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]) -> Context:
    """A service whose review queue holds the unsigned delegation list from a gmail address."""
    ctx = build_context(load_settings(make_env(sqlite_url)))
    append(dovecot, *account, unsigned_delegation(WHEN).raw)
    run_everything(ctx)
    assert [m.subject for m in ctx.db.review_queue()] == ["delegation list"]
    assert folder_subjects(dovecot, *account)["Needs review"] == ["delegation list"]
    return ctx


def test_resolving_files_acknowledges_and_moves_the_mail(
    queued: Context, dovecot: Any, account: tuple[str, str], smtp: Any
) -> None:
    (item,) = queued.db.review_queue()
    done = resolve_review(
        queued, item.id, Decision("GBR", ("delegation",), note="called the mission")
    )
    assert len(done.outbox_ids) == 1
    mailer.send_due(queued.db, queued.settings)
    intake.sync_mailbox(queued)

    (sub,) = queued.db.submissions_of(item.id)
    assert (sub.state_iso3, sub.kind) == ("GBR", "delegation")
    assert (queued.archive.root / sub.folder / "delegation.pdf").is_file()
    assert queued.db.review_queue() == []
    (ack,) = smtp.messages
    assert ack.rcpt_tos == ["d.smith1972@gmail.com"] and sub.reference in str(
        ack.message["Subject"]
    )
    folders = folder_subjects(dovecot, *account)
    assert folders["Needs review"] == []
    assert folders["Filed/United Kingdom of Great Britain and Northern Ireland"] == [
        "delegation list"
    ]


def test_setting_aside_files_nothing_and_answers_nobody(
    queued: Context, dovecot: Any, account: tuple[str, str], smtp: Any
) -> None:
    (item,) = queued.db.review_queue()
    done = resolve_review(queued, item.id, Decision(None, note="a private person"))
    intake.sync_mailbox(queued)
    assert done.outbox_ids == () and smtp.messages == []
    assert queued.db.submissions_of(item.id) == []
    assert folder_subjects(dovecot, *account)["Not submissions"] == ["delegation list"]


def test_a_decision_is_taken_once_and_bad_decisions_are_refused(queued: Context) -> None:
    (item,) = queued.db.review_queue()
    with pytest.raises(ReviewError, match="unknown State 'XXX'"):
        resolve_review(queued, item.id, Decision("XXX"))
    with pytest.raises(ReviewError, match="unknown kind 'minutes'"):
        resolve_review(queued, item.id, Decision("GBR", ("minutes",)))
    resolve_review(queued, item.id, Decision("GBR"))
    with pytest.raises(ReviewError, match="not in the review queue or in quarantine"):
        resolve_review(queued, item.id, Decision("IRL"))
    assert [s.state_iso3 for s in queued.db.submissions_of(item.id)] == ["GBR"]


def test_a_filed_message_cannot_be_resolved(
    make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]
) -> None:
    ctx = build_context(load_settings(make_env(sqlite_url)))
    append(dovecot, *account, france_delegation(WHEN).raw)
    run_everything(ctx)
    (message,) = ctx.db.recent_messages()
    with pytest.raises(ReviewError, match="not in the review queue or in quarantine"):
        resolve_review(ctx, message.id, Decision("CHE"))


def test_in_keyword_mode_the_keyword_changes_and_the_mail_stays(
    make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]
) -> None:
    ctx = build_context(load_settings(make_env(sqlite_url, CCM_MAILBOX_ACTION="keyword")))
    append(dovecot, *account, unsigned_delegation(WHEN).raw)
    run_everything(ctx)

    def flags() -> tuple[str, ...]:
        with MailBoxUnencrypted(dovecot.host, dovecot.port).login(*account) as box:
            (msg,) = list(box.fetch(mark_seen=False))
            return msg.flags

    assert "$CCM-Review" in flags()
    (item,) = ctx.db.review_queue()
    resolve_review(ctx, item.id, Decision("IRL"))
    intake.sync_mailbox(ctx)
    assert "$CCM-Filed" in flags() and "$CCM-Review" not in flags()


def test_the_cli_lists_the_queue_and_resolves_an_item(
    queued: Context, make_env: Any, sqlite_url: str, smtp: Any
) -> None:
    env = make_env(sqlite_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args)

    listed = cli("review", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (item,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert item["subject"] == "delegation list" and item["kinds"] == ["delegation"]
    assert item["reason"].startswith("State not certain")

    refused = cli("review", "resolve", str(item["id"]))
    assert refused.returncode == 2 and "--state ISO3 or --not-submission" in refused.stderr

    done = cli("review", "resolve", str(item["id"]), "--state", "gbr", "--kind", "delegation")
    assert done.returncode == 0, done.stderr
    assert "filed GBR (delegation)" in done.stdout and "sent 1" in done.stdout
    assert len(smtp.messages) == 1
    again = cli("review", "resolve", str(item["id"]), "--state", "GBR")
    assert again.returncode == 1 and "not in the review queue" in again.stderr


@pytest.fixture
def quarantined(make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]) -> Context:
    """A service whose quarantine holds France's delegation list, a PDF over the page limit."""
    ctx = build_context(load_settings(make_env(sqlite_url, CCM_MAX_PDF_PAGES="3")))
    append(dovecot, *account, mission_mail(("liste.pdf", pdf_of(4))), when=WHEN)
    run_everything(ctx)
    (item,) = ctx.db.review_queue(Status.quarantined)
    assert "liste.pdf" in (item.reason or "")
    assert folder_subjects(dovecot, *account)["Quarantine"] == [SUBJECT]
    return ctx


def test_a_quarantined_mail_still_unreadable_is_filed_as_received_and_answered_by_no_one(
    quarantined: Context, dovecot: Any, account: tuple[str, str], smtp: Any
) -> None:
    (item,) = quarantined.db.review_queue(Status.quarantined)
    # Nothing to compose an answer from, nothing to tell its kinds from: the person says.
    with pytest.raises(ReviewError, match="add --no-ack"):
        resolve_review(quarantined, item.id, Decision("FRA", ("delegation",)))
    with pytest.raises(ReviewError, match="with --kind"):
        resolve_review(quarantined, item.id, Decision("FRA", ack=False))
    assert [m.id for m in quarantined.db.review_queue(Status.quarantined)] == [item.id]

    done = resolve_review(
        quarantined, item.id, Decision("FRA", ("delegation",), ack=False, note="read in Outlook")
    )
    intake.sync_mailbox(quarantined)

    assert done.outbox_ids == () and smtp.messages == []
    (sub,) = quarantined.db.submissions_of(item.id)
    assert (sub.state_iso3, sub.kind, sub.cycle) == ("FRA", "delegation", "7MSP")
    folder = quarantined.archive.root / sub.folder
    assert [p.name for p in folder.iterdir()] == ["original.eml"]
    assert (folder / "original.eml").read_bytes() == quarantined.archive.read(item.raw_path)
    assert quarantined.db.review_queue(Status.quarantined) == []
    folders = folder_subjects(dovecot, *account)
    assert folders["Quarantine"] == [] and folders["Filed/France"] == [SUBJECT]


def test_a_quarantined_mail_readable_now_is_filed_and_answered_as_any_other(
    quarantined: Context, make_env: Any, sqlite_url: str, smtp: Any
) -> None:
    # CCM_ACK_MAX_AGE_DAYS=0: the mail arrived in 2017, which the default would hold back
    env = make_env(sqlite_url, CCM_MAX_PDF_PAGES="10", CCM_ACK_MAX_AGE_DAYS="0")
    raised = build_context(load_settings(env))
    (item,) = raised.db.review_queue(Status.quarantined)
    done = resolve_review(raised, item.id, Decision("FRA", ("delegation",)))
    mailer.send_due(raised.db, raised.settings)
    (sub,) = raised.db.submissions_of(item.id)
    assert sorted(p.name for p in (raised.archive.root / sub.folder).iterdir()) == [
        "liste.pdf",
        "original.eml",
    ]
    assert len(done.outbox_ids) == 1
    (ack,) = smtp.messages
    assert ack.rcpt_tos == ["mission.france@diplomatie.gouv.fr"]


def test_a_quarantined_mail_can_be_set_aside_from_the_command_line(
    quarantined: Context, make_env: Any, sqlite_url: str, dovecot: Any, account: tuple[str, str]
) -> None:
    env = make_env(sqlite_url, CCM_MAX_PDF_PAGES="3")
    listed = run_cli(env, "review", "list", "--quarantined", "--json")
    assert listed.returncode == 0, listed.stderr
    (item,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert item["subject"] == SUBJECT and "liste.pdf" in item["reason"]
    assert run_cli(env, "review", "list", "--json").stdout == ""  # not in the review queue

    done = run_cli(env, "review", "resolve", str(item["id"]), "--not-submission")
    assert done.returncode == 0, done.stderr
    assert folder_subjects(dovecot, *account)["Not submissions"] == [SUBJECT]
    again = run_cli(env, "review", "resolve", str(item["id"]), "--not-submission")
    assert again.returncode == 1 and "not in the review queue or in quarantine" in again.stderr
