"""Reminders against real servers: the ledger on SQLite and PostgreSQL, mails through aiosmtpd.

The clock is frozen by passing ``now`` to the step (and by time-machine for the task). The
calendar and the (illustrative) contacts are the packaged ones: 119 States are reminded of
the 7MSP delegations (States Parties and signatories), 21 of them have a contact.
"""

from __future__ import annotations

import json
import multiprocessing
import secrets
import threading
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from config.calendar import load_contacts
from config.settings import load_settings
from tests.app import run_cli
from tests.servers import SmtpSink
from worker import mailer, processing, reminders
from worker.compose import stable_message_id
from worker.runtime import Context, build_context
from worker.samples import france_delegation
from worker.store import Message, Status, Submission

GENEVA = ZoneInfo("Europe/Zurich")
WITH_CONTACT = set(load_contacts())  # all 21 are States Parties or signatories
REMINDED = 119  # 100 States Parties + 19 signatories


def at(day: date, hour: int = 9) -> datetime:
    """``hour`` o'clock in Geneva on ``day``, as the aware UTC time the worker sees."""
    return datetime.combine(day, time(hour), tzinfo=GENEVA).astimezone(UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def settings_for(db_url: str, data_dir: Path, smtp_port: int) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "database_url": db_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "imap_sent_folder": "",
    }


def make_context(overrides: dict[str, Any]) -> Context:
    return build_context(load_settings({}, **overrides))


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, smtp: SmtpSink) -> Any:
    smtp.clear()
    context = make_context(settings_for(db_url, tmp_path, smtp.port))
    yield context
    context.db.dispose()


@pytest.fixture
def lite(sqlite_url: str, tmp_path: Path, smtp: SmtpSink) -> Any:
    """The same on SQLite only, for the tests that do not depend on the database."""
    smtp.clear()
    context = make_context(settings_for(sqlite_url, tmp_path, smtp.port))
    yield context
    context.db.dispose()


def sweep(ctx: Context, day: date, *, send: bool = True) -> int:
    now = at(day)
    written = reminders.send_due_reminders_once(ctx, now)
    if send:
        mailer.send_due(ctx.db, ctx.settings, now=now)
    return written


def file_submission(ctx: Context, iso3: str, kind: str, cycle: str, when: datetime) -> str:
    """A submission as processing files it: message row + submission row, one commit."""
    with ctx.db.session() as s:
        message = Message(
            sha256=secrets.token_hex(32),
            size=1,
            raw_path="raw/none.eml",
            internaldate=when,
            status=Status.filed,
            state_iso3=iso3,
            kind=kind,
        )
        s.add(message)
        s.flush()
        reference = f"CCM-{when.year}-T{message.id:04d}"
        s.add(
            Submission(
                message_id=message.id,
                kind=kind,
                state_iso3=iso3,
                reference=reference,
                received_at=when,
                folder=f"filed/{iso3}/{kind}/{reference}",
                cycle=cycle,
            )
        )
    return reference


def ledger(ctx: Context) -> dict[str, str]:
    return {row.key: row.status for row in ctx.db.reminder_rows()}


def received_by(smtp: SmtpSink) -> Counter[str]:
    """Reminders received by the SMTP server, per recipient (acknowledgements not counted)."""
    return Counter(
        rcpt for m in smtp.messages if m.message["X-CCM-Reminder"] for rcpt in m.rcpt_tos
    )


FRANCE = "dfra.geneve@diplomatie.gouv.fr"
MEXICO = "mision.ginebra@sre.gob.mx"
AUSTRALIA = "geneva.mission@dfat.gov.au"


# --- the 2017 delegation cycle -----------------------------------------------------------------


def test_across_the_7msp_cycle_reminders_go_out_on_their_days_and_stop_for_france(
    ctx: Context, smtp: SmtpSink
) -> None:
    """Daily sweeps from 15 July to 27 August: five reminder days; France files its
    delegation on 8 August and hears nothing after it."""
    busy: dict[date, int] = {}
    for day in days(date(2017, 7, 15), date(2017, 8, 27)):
        if day == date(2017, 8, 8):
            file_submission(ctx, "FRA", "delegation", "7MSP", at(day, 11))
        written = sweep(ctx, day)
        if written:
            busy[day] = written
    assert busy == {
        date(2017, 7, 19): REMINDED,
        date(2017, 8, 4): REMINDED,
        date(2017, 8, 11): REMINDED - 1,
        date(2017, 8, 16): REMINDED - 1,
        date(2017, 8, 25): REMINDED - 1,
    }
    book = ledger(ctx)
    assert {k for k in book if ":FRA:" in k} == {
        "delegation:7MSP:FRA:30",
        "delegation:7MSP:FRA:14",
    }
    assert {k for k in book if ":MEX:" in k} == {
        f"delegation:7MSP:MEX:{n}" for n in (30, 14, 7, 2, -7)
    }
    assert not any(":USA:" in k for k in book)  # not a signatory: not reminded
    assert book["delegation:7MSP:AGO:7"] == "no_contact"  # a signatory without a contact
    assert book["delegation:7MSP:MEX:7"] == "sent"
    mails = received_by(smtp)
    assert mails[FRANCE] == 2 and mails[MEXICO] == 5
    assert sum(mails.values()) == 5 * len(WITH_CONTACT) - 3
    statuses = Counter(book.values())
    assert statuses == {"sent": 5 * len(WITH_CONTACT) - 3, "no_contact": 5 * (REMINDED - 21)}


def test_a_delegation_filed_by_processing_stops_the_next_reminders(
    lite: Context, smtp: SmtpSink
) -> None:
    ctx = lite
    sweep(ctx, date(2017, 8, 11))
    assert received_by(smtp)[FRANCE] == 1
    raw = france_delegation(at(date(2017, 8, 14))).raw
    sha, relative = ctx.archive.put_raw(raw)
    message_id, _ = ctx.db.record_message(
        mailbox="test/INBOX",
        uidvalidity=1,
        uid=1,
        internaldate=at(date(2017, 8, 14)),
        sha256=sha,
        raw_path=relative,
        size=len(raw),
        message_id_header=None,
        from_addr=FRANCE,
        subject="7MSP",
    )
    processing.process_message(ctx, message_id, now=at(date(2017, 8, 14)))
    (filed,) = ctx.db.submissions_of(message_id)
    assert (filed.state_iso3, filed.kind, filed.cycle) == ("FRA", "delegation", "7MSP")
    smtp.clear()
    sweep(ctx, date(2017, 8, 16))
    reminded = received_by(smtp)
    assert FRANCE not in reminded and reminded[MEXICO] == 1
    assert "delegation:7MSP:FRA:2" not in ledger(ctx)


def test_a_reminder_queued_before_the_submission_arrived_is_cancelled_at_send_time(
    ctx: Context, smtp: SmtpSink
) -> None:
    sweep(ctx, date(2017, 8, 11), send=False)
    assert ledger(ctx)["delegation:7MSP:FRA:7"] == "queued"
    reference = file_submission(ctx, "FRA", "delegation", "7MSP", at(date(2017, 8, 11), 10))
    result = mailer.send_due(ctx.db, ctx.settings, now=at(date(2017, 8, 11), 10))
    assert result.sent == len(WITH_CONTACT) - 1
    assert FRANCE not in received_by(smtp) and received_by(smtp)[MEXICO] == 1
    (row,) = [r for r in ctx.db.reminder_rows() if r.key == "delegation:7MSP:FRA:7"]
    assert row.status == "cancelled" and reference in row.reason
    (mail,) = [o for o in ctx.db.outbox_rows() if o.key == "reminder:delegation:7MSP:FRA:7"]
    assert mail.status == "cancelled" and reference in mail.last_error
    # Nothing brings it back: the next sweep and the next outbox run leave it alone.
    assert sweep(ctx, date(2017, 8, 11)) == 0
    assert FRANCE not in received_by(smtp)


# --- nothing twice ----------------------------------------------------------------------------


def test_two_sweeps_of_the_same_day_record_and_send_each_reminder_once(
    ctx: Context, smtp: SmtpSink
) -> None:
    assert sweep(ctx, date(2017, 8, 11)) == REMINDED
    assert sweep(ctx, date(2017, 8, 11)) == 0
    later = reminders.send_due_reminders_once(ctx, at(date(2017, 8, 11), 17))  # a restarted beat
    assert later == 0
    assert len(ledger(ctx)) == REMINDED
    assert len(ctx.db.outbox_rows()) == len(WITH_CONTACT)
    assert sorted(received_by(smtp).values()) == [1] * len(WITH_CONTACT)


def test_two_sweeps_at_once_in_threads_write_one_row_and_one_mail_per_key(
    ctx: Context, smtp: SmtpSink
) -> None:
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(reminders.send_due_reminders_once(ctx, at(date(2017, 8, 11))))
            mailer.send_due(ctx.db, ctx.settings, now=at(date(2017, 8, 11)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(results) == REMINDED  # each key recorded by exactly one of them
    keys = [r.key for r in ctx.db.reminder_rows()]
    assert len(keys) == len(set(keys)) == REMINDED
    assert len(ctx.db.outbox_rows()) == len(WITH_CONTACT)
    assert sorted(received_by(smtp).values()) == [1] * len(WITH_CONTACT)


def _sweep_in_a_process(overrides: dict[str, Any], when: str, barrier: Any, results: Any) -> None:
    ctx = make_context(overrides)
    barrier.wait()
    written = reminders.send_due_reminders_once(ctx, datetime.fromisoformat(when))
    sent = mailer.send_due(ctx.db, ctx.settings, now=datetime.fromisoformat(when)).sent
    results.put((written, sent))


def test_two_beats_in_two_processes_write_one_row_and_one_mail_per_key(
    ctx: Context, smtp: SmtpSink
) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    overrides = settings_for(ctx.settings.db_url, ctx.settings.data_dir, smtp.port)
    when = at(date(2017, 8, 11)).isoformat()
    procs = [
        spawn.Process(target=_sweep_in_a_process, args=(overrides, when, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(w for w, _ in outcomes) == REMINDED
    assert sum(s for _, s in outcomes) == len(WITH_CONTACT)
    keys = [r.key for r in ctx.db.reminder_rows()]
    assert len(keys) == len(set(keys)) == REMINDED
    assert sorted(received_by(smtp).values()) == [1] * len(WITH_CONTACT)


def test_after_an_outage_one_reminder_per_state_the_latest_missed(
    ctx: Context, smtp: SmtpSink
) -> None:
    """Sweeps until 1 August, none from 2 to 11 August (the 14- and 7-day reminders fall in
    it), then again on the 12th: one reminder each, the 7-day one, and no burst."""
    for day in days(date(2017, 7, 15), date(2017, 8, 1)):
        sweep(ctx, day)
    smtp.clear()
    assert sweep(ctx, date(2017, 8, 12)) == REMINDED
    book = ledger(ctx)
    assert not any(k.endswith(":14") for k in book)
    assert sum(k.endswith(":7") for k in book) == REMINDED
    assert sorted(received_by(smtp).values()) == [1] * len(WITH_CONTACT)
    (mail,) = [m for m in smtp.messages if FRANCE in m.rcpt_tos]
    assert "dans 6 jours" in body(mail.message)  # written on the 12th, for the 18th
    smtp.clear()
    assert sweep(ctx, date(2017, 8, 13)) == 0 and not smtp.messages
    assert sweep(ctx, date(2017, 8, 16)) == REMINDED  # and then back on schedule


# --- what the mails say ------------------------------------------------------------------------


def body(message: Any) -> str:
    parsed: EmailMessage = message_from_bytes(message.as_bytes(), policy=default_policy)
    part = parsed.get_body(("plain",))  # type: ignore[attr-defined]
    return str(part.get_content())


def test_reminders_reach_the_missions_in_french_spanish_and_english_marked_automatic(
    lite: Context, smtp: SmtpSink
) -> None:
    sweep(lite, date(2017, 8, 11))
    by = {m.rcpt_tos[0]: m.message for m in smtp.messages}
    fr, es, en = by[FRANCE], by[MEXICO], by[AUSTRALIA]
    assert " ".join(fr["Subject"].split()) == (
        "Rappel : Composition des délégations pour la Septième Réunion des États parties"
        " — France, attendu le vendredi 18 août 2017"
    )
    assert es["Subject"].startswith("Recordatorio: Composición de las delegaciones para la")
    assert " ".join(en["Subject"].split()) == (
        "Reminder: Details of delegations for the Seventh Meeting of States Parties"
        " — Australia, due Friday 18 August 2017"
    )
    for message, lang in ((fr, "fr"), (es, "es"), (en, "en")):
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Auto-Response-Suppress"] == "All"
        assert message["Content-Language"] == lang
        assert message["From"].endswith("<ccm@unog.ch>")
        assert "ccm@unog.ch" in body(message)
    assert fr["Message-ID"] == stable_message_id("reminder:delegation:7MSP:FRA:7", "ccm@unog.ch")
    assert "Date limite :     vendredi 18 août 2017 (dans 7 jours)" in body(fr)
    assert "du 4 au 6 septembre 2017" in body(fr)
    assert "Plazo:            viernes 18 de agosto de 2017 (dentro de 7 días)" in body(es)
    assert "reply to this message, or write to ccm@unog.ch" in body(en)


def test_an_overdue_notice_and_an_article7_reminder_say_so(lite: Context, smtp: SmtpSink) -> None:
    sweep(lite, date(2017, 8, 25))
    by = {m.rcpt_tos[0]: m.message for m in smtp.messages}
    assert by[FRANCE]["Subject"].startswith("En retard : Composition des délégations")
    assert "(en retard de 7 jours)" in body(by[FRANCE])
    assert "(vencido hace 7 días)" in body(by[MEXICO])
    smtp.clear()
    sweep(lite, date(2017, 4, 28))
    by = {m.rcpt_tos[0]: m.message for m in smtp.messages}
    assert " ".join(by[AUSTRALIA]["Subject"].split()) == (
        "Reminder: Annual Article 7 transparency report covering 2016 — Australia,"
        " due Sunday 30 April 2017"
    )
    assert "covering 1 January to 31 December 2016" in body(by[AUSTRALIA])
    assert "du 1er janvier au 31 décembre 2016" in body(by[FRANCE])
    assert "Nigeria" not in " ".join(m.message["Subject"] for m in smtp.messages)  # signatory
    (mexico,) = [r for r in lite.db.reminder_rows() if r.key == "article7:2016:MEX:2"]
    assert "EIF unconfirmed" in mexico.reason


def test_a_failing_contact_is_not_written_to(lite: Context, smtp: SmtpSink) -> None:
    lite.db.mark_contacts_failing([FRANCE], "550 5.1.1 user unknown", at(date(2017, 8, 1)))
    sweep(lite, date(2017, 8, 11))
    (row,) = [r for r in lite.db.reminder_rows() if r.key == "delegation:7MSP:FRA:7"]
    assert row.status == "failed" and "contact failing" in row.reason
    assert row.outbox_id is None and FRANCE not in received_by(smtp)


# --- the schedule, the task and the plan -------------------------------------------------------


def test_beat_sweeps_for_reminders_only_when_enabled_and_each_run_expires() -> None:
    from worker.app import create_app

    on = create_app(load_settings({}, reminder_interval=600))
    entry = on.conf.beat_schedule["send-reminders"]
    assert entry["task"] == "ccm.remind" and entry["schedule"] == 600
    assert entry["options"]["expires"] == pytest.approx(540)
    off = create_app(load_settings({}, reminders_enabled=False))
    assert "send-reminders" not in off.conf.beat_schedule


def test_the_task_sweeps_on_the_clock_and_queues_each_mail_for_sending(
    lite: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks, "get_context", lambda: lite)
    monkeypatch.setattr(tasks.send_outbox, "delay", queued.append)
    with time_machine.travel(at(date(2017, 8, 11)), tick=False):
        assert tasks.remind.run() == f"reminders: {REMINDED} recorded"
        assert tasks.remind.run() == "reminders: 0 recorded"
    assert sorted(queued) == sorted(o.id for o in lite.db.outbox_rows())
    assert len(queued) == len(WITH_CONTACT)


def plan(env: dict[str, str], day: str) -> list[dict[str, Any]]:
    done = run_cli(env, "reminders", "plan", "--today", day, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def cli_env(**values: str) -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CCM_")} | values


def test_the_plan_lists_every_state_due_with_or_without_a_contact_and_writes_nothing(
    tmp_path: Path,
) -> None:
    rows = plan(cli_env(CCM_DATA_DIR=str(tmp_path / "data")), "2017-08-11")
    assert not (tmp_path / "data").exists()  # no database created
    assert len(rows) == REMINDED
    by = {r["state"]: r for r in rows}
    assert by["FRA"] == {
        "state": "FRA",
        "obligation": "delegation",
        "cycle": "7MSP",
        "offset_days": 7,
        "due_date": "2017-08-18",
        "reminder_date": "2017-08-11",
        "contact": FRANCE,
        "language": "fr",
        "reason": "7 days before the deadline 2017-08-18",
        "sendable": True,
    }
    assert by["AGO"]["contact"] is None and by["AGO"]["sendable"] is False
    assert "no contact" in by["AGO"]["reason"]
    assert "USA" not in by
    assert sum(r["sendable"] for r in rows) == len(WITH_CONTACT)


def test_the_plan_reads_what_was_filed_and_what_the_ledger_holds(
    lite: Context, tmp_path: Path
) -> None:
    file_submission(lite, "FRA", "article7", "2016", at(date(2017, 4, 20)))
    lite.db.mark_contacts_failing([AUSTRALIA], "bounced", at(date(2017, 4, 1)))
    lite.db.record_reminder(  # as an earlier sweep of the day would have
        key="article7:2016:MEX:2",
        obligation="article7",
        cycle="2016",
        state_iso3="MEX",
        offset_days=2,
        due_date=date(2017, 4, 30),
        status="queued",
        reason="",
        mail=None,
        now=at(date(2017, 4, 28)),
    )
    env = cli_env(CCM_DATA_DIR=str(tmp_path), CCM_DATABASE_URL=lite.settings.db_url)
    by = {(r["state"], r["obligation"]): r for r in plan(env, "2017-04-28")}
    assert ("FRA", "article7") not in by  # filed
    assert by[("MEX", "article7")]["sendable"] is False
    assert "already in the ledger (queued)" in by[("MEX", "article7")]["reason"]
    assert "EIF unconfirmed" in by[("MEX", "article7")]["reason"]
    assert by[("AUS", "article7")]["sendable"] is False
    assert "contact failing" in by[("AUS", "article7")]["reason"]
    assert by[("CHE", "article7")]["sendable"] is True


def test_the_plan_of_a_later_day_lists_only_that_days_reminders(tmp_path: Path) -> None:
    """Run in 2026 for 12 August 2017, the day after the 7-day reminders: with no ledger they
    count as missed and would be caught up — which is what the plan says."""
    rows = plan(cli_env(CCM_DATA_DIR=str(tmp_path / "data")), "2017-08-12")
    assert {r["offset_days"] for r in rows} == {7}
    assert all(r["reason"].startswith("catch-up of the reminder of 2017-08-11") for r in rows)


def test_a_days_reminders_wait_for_the_morning_in_geneva(lite: Context, smtp: SmtpSink) -> None:
    """The calendar's send_from is 08:00: the sweeps of the night leave them for later."""
    sweep(lite, date(2017, 8, 4))  # the 14-day reminders, on their day
    night = datetime.combine(date(2017, 8, 11), time(0, 20), tzinfo=GENEVA)
    assert reminders.send_due_reminders_once(lite, night) == 0
    early = datetime.combine(date(2017, 8, 11), time(7, 59), tzinfo=GENEVA)
    assert reminders.send_due_reminders_once(lite, early) == 0
    morning = datetime.combine(date(2017, 8, 11), time(8, 0), tzinfo=GENEVA)
    assert reminders.send_due_reminders_once(lite, morning) == REMINDED
