"""The secretary's daily digest: its numbers match the database, it is queued once a day
whatever runs it, it reads well in Outlook, and it goes out at 08:00 Geneva time."""

from __future__ import annotations

import email.policy
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
import time_machine

from config.calendar import load_calendar, load_contacts
from config.registry import load_registry
from config.settings import load_settings
from parsers.headers import peek
from parsers.obligations import Obligation, ObligationStatus, obligation_status
from tests.app import ROOT, run_cli
from tests.golden.build import cases
from worker import mailer, processing
from worker.app import create_app
from worker.compose import stable_message_id
from worker.digest import (
    AckNotSent,
    DigestData,
    FailingContact,
    GenevaCrontab,
    NewSubmission,
    PollHealth,
    Quarantined,
    ReviewItem,
    build_digest,
    digest_expires,
    digest_key,
    digest_schedule,
    queue_digest_once,
    render_digest,
)
from worker.reminders import send_due_reminders_once
from worker.runtime import Context, build_context
from worker.samples import (
    australia_article7,
    france_delegation,
    mexico_delegation,
    out_of_office,
    senegal_from_freemail,
    unsigned_delegation,
)

SECRETARY = "secretary.ccm@unog.ch"


def at(day: int, hour: int, minute: int = 0, month: int = 8) -> datetime:
    """An instant of 2017 in UTC (Geneva is UTC+2 in August)."""
    return datetime(2017, month, day, hour, minute, tzinfo=UTC)


# The digest of Thursday 17 August 2017, the day before delegations for the 7MSP are due; the
# one before it went out on Wednesday at 08:00 Geneva (06:00 UTC).
PREVIOUS, DIGEST = at(16, 6), at(17, 6)
TODAY = date(2017, 8, 17)


# --- the 2017 cycle, built through the service's own steps ------------------------------------


def bounce_for(address: str, when: datetime) -> bytes:
    """Our mail server's delivery status notification: ``address`` does not exist (5.1.1)."""
    lines = [
        "Return-Path: <>",
        "From: Mail Delivery System <MAILER-DAEMON@smtp.unog.ch>",
        "To: ccm@unog.ch",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {make_msgid(domain='smtp.unog.ch')}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"',
        "",
        "--B0UND",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is the mail system at host smtp.unog.ch.",
        "Your message could not be delivered to one or more recipients.",
        "",
        "--B0UND",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; smtp.unog.ch",
        "",
        f"Final-Recipient: rfc822; {address}",
        "Action: failed",
        "Status: 5.1.1",
        f"Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User unknown",
        "",
        "--B0UND--",
        "",
    ]
    return "\r\n".join(lines).encode()


GARBAGE = b"\x00\x00\x00\x1a\xff\xfe PK\x03\x04 half a zip file saved as .eml\r\n"


@dataclass
class Cycle:
    """A service that has lived through 12-17 August 2017, and what it was sent."""

    ctx: Context
    env: dict[str, str]
    new_in_window: tuple[str, ...]  # ISO3 of the submissions filed since the previous digest
    delegations: tuple[str, ...]  # ISO3 of every State that sent its 7MSP delegation
    failed_ack_to: str


class Mailroom:
    def __init__(self, ctx: Context, smtp: Any) -> None:
        self.ctx, self.smtp, self.uid = ctx, smtp, 0

    def receive(self, raw: bytes, when: datetime) -> int:
        """What a poll and a worker do with one mail arriving at ``when``: keep it, process
        it, send its acknowledgement — with the clock at ``when``."""
        self.uid += 1
        ctx = self.ctx
        with time_machine.travel(when):
            sha, path = ctx.archive.put_raw(raw)
            head = peek(raw)
            message_id, _ = ctx.db.record_message(
                mailbox=ctx.settings.mailbox_key,
                uidvalidity=1,
                uid=self.uid,
                internaldate=when,
                sha256=sha,
                raw_path=path,
                size=len(raw),
                message_id_header=head.message_id,
                from_addr=head.from_addr,
                subject=head.subject,
            )
            processing.process_message(ctx, message_id, now=when)
            mailer.send_due(ctx.db, ctx.settings, now=when)
        return message_id

    def at(self, when: datetime) -> time_machine.travel:
        return time_machine.travel(when)


def golden(*names: str) -> dict[str, bytes]:
    found = {c.name: c.raw for c in cases() if c.name in names}
    assert sorted(found) == sorted(names)
    return found


def settings_env(tmp_path: Path, db_url: str, smtp: Any) -> dict[str, str]:
    return {
        "CCM_DATA_DIR": str(tmp_path / "data"),
        "CCM_DATABASE_URL": db_url,
        "CCM_IMAP_HOST": "imap.unog.ch",
        "CCM_SMTP_HOST": "127.0.0.1",
        "CCM_SMTP_PORT": str(smtp.port),
        "CCM_SMTP_SECURITY": "none",
        "CCM_SECRETARY_ADDRESS": SECRETARY,
        "CCM_OCR": "false",
    }


def live_through_the_2017_cycle(tmp_path: Path, db_url: str, smtp: Any) -> Cycle:
    env = settings_env(tmp_path, db_url, smtp)
    ctx = build_context(load_settings(env))
    smtp.clear()
    room = Mailroom(ctx, smtp)
    g = golden(
        "che-delegation-body-fr",
        "deu-delegation-docx-en",
        "chl-delegation-pdf-es",
        "nzl-delegation-en",
        "esp-article7-pdf-es",
        "irl-article7-docx-en",
    )
    # Before the previous digest: Spain's report in April, four delegations in August.
    room.receive(g["esp-article7-pdf-es"], at(20, 9, month=4))
    room.receive(g["che-delegation-body-fr"], at(12, 10))
    room.receive(g["deu-delegation-docx-en"], at(14, 9, 30))
    room.receive(g["chl-delegation-pdf-es"], at(14, 15, 5))
    room.receive(g["nzl-delegation-en"], at(15, 22, 40))
    room.receive(out_of_office(at(15, 8)).raw, at(15, 8))
    ctx.db.poll_succeeded(ctx.settings.mailbox_key, at(16, 5, 59))
    assert queue_digest_once(ctx, PREVIOUS)  # Wednesday's digest
    mailer.send_due(ctx.db, ctx.settings, now=PREVIOUS)

    # Wednesday 16 August: the 2-day reminders go out at 08:05 Geneva...
    with room.at(at(16, 6, 5)):
        assert send_due_reminders_once(ctx, at(16, 6, 5)) > 0
        mailer.send_due(ctx.db, ctx.settings, now=at(16, 6, 5))
    # ...Japan's mission address bounces...
    room.receive(bounce_for("mission@gv.mofa.go.jp", at(16, 6, 20)), at(16, 6, 20))
    # ...and the day's mail comes in: delegations on time, two Article 7 reports late, a
    # list nobody signed, a file that is not a mail.
    room.receive(france_delegation(at(16, 9, 30)).raw, at(16, 9, 30))
    room.receive(australia_article7(at(16, 10, 15)).raw, at(16, 10, 15))
    smtp.fail_next(1, 550)  # Mexico's acknowledgement is refused for good
    room.receive(mexico_delegation(at(16, 13, 0)).raw, at(16, 13, 0))
    room.receive(g["irl-article7-docx-en"], at(16, 14, 45))
    room.receive(unsigned_delegation(at(16, 15, 10)).raw, at(16, 15, 10))
    room.receive(GARBAGE, at(16, 16, 0))
    room.receive(senegal_from_freemail(at(16, 17, 20)).raw, at(16, 17, 20))
    # The inbox was unreachable for a while in the night, then read again.
    ctx.db.poll_failed(
        ctx.settings.mailbox_key, "IMAP server imap.unog.ch:993 unreachable: timed out", at(17, 1)
    )
    ctx.db.poll_succeeded(ctx.settings.mailbox_key, at(17, 5, 59))
    return Cycle(
        ctx=ctx,
        env=env,
        new_in_window=("FRA", "AUS", "MEX", "IRL", "SEN"),
        delegations=("CHE", "DEU", "CHL", "NZL", "FRA", "MEX", "SEN"),
        failed_ack_to="mision.ginebra@sre.gob.mx",
    )


@pytest.fixture
def cycle(tmp_path: Path, db_url: str, smtp: Any) -> Iterator[Cycle]:
    built = live_through_the_2017_cycle(tmp_path, db_url, smtp)
    yield built
    built.ctx.db.dispose()


def text_part(raw: bytes) -> tuple[EmailMessage, str, str]:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    content = (str(p.get_content()).replace("\r\n", "\n") for p in (plain, html))
    return msg, next(content), next(content)


# --- the numbers ----------------------------------------------------------------------------


def test_the_digest_says_what_the_database_holds(cycle: Cycle) -> None:
    ctx = cycle.ctx
    assert queue_digest_once(ctx, DIGEST)
    (row,) = [r for r in ctx.db.outbox_rows() if r.key == "digest:2017-08-17"]
    assert row.recipient == SECRETARY and row.purpose == "digest" and row.status == "pending"
    _, text, _ = text_part(row.raw)
    names = {s.iso3: s.name_en for s in load_registry()}

    # New since Wednesday's digest: exactly the submissions filed in the window, with their
    # references, and whether each met its deadline.
    new = ctx.db.submissions_filed_between(PREVIOUS, DIGEST)
    assert sorted(s.state_iso3 for s in new) == sorted(cycle.new_in_window)
    assert f"NEW SUBMISSIONS ({len(new)})" in text
    section = text.split("NEW SUBMISSIONS", 1)[1].split("REVIEW QUEUE", 1)[0]
    for sub in new:
        line = next(li for li in section.splitlines() if sub.reference in li)
        assert names[sub.state_iso3] in line
        if sub.kind == "article7":  # the 2016 reports were due on 30 April 2017
            assert "late by 108 days" in line, line
        else:
            assert "on time" in line, line
    assert "Spain" not in section and "Germany" not in section  # before the window

    # Deadlines: the 7MSP delegations received / expected, straight from the database.
    filed = {(s.state_iso3, s.kind, s.cycle) for s in ctx.db.latest_submissions()}
    delegations = sorted(i for i, k, c in filed if (k, c) == ("delegation", "7MSP"))
    assert delegations == sorted(cycle.delegations)
    statuses = obligation_status(load_calendar(), load_registry(), filed, load_contacts(), TODAY)
    msp = next(s for s in statuses if s.obligation.cycle == "7MSP")
    assert len(msp.received) == len(delegations) == 7
    assert f"{len(msp.received)} of {len(msp.expected)} received" in text
    assert (
        "Details of delegations for the Seventh Meeting of States Parties: due Fri 18 Aug" in text
    )
    assert "1 day left" in text
    missing = text.split("Still missing", 1)[1].split("\n\n", 1)[0]
    assert "France" not in missing and "Switzerland" not in missing
    assert "Austria" in missing and "Japan" in missing
    assert f"no contact on file: {len(msp.no_contact)}" in missing
    assert f"{names[msp.no_contact[0]]}*" in missing  # marked, not listed twice

    # The review queue, with why.
    (waiting,) = ctx.db.review_queue()
    assert "REVIEW QUEUE (1)" in text and waiting.reason in text and "d.smith1972@gmail.com" in text

    # Reminders: the 2-day reminders of Wednesday, to every State missing with a contact.
    sent = [r for r in ctx.db.reminder_rows() if r.status == "sent"]
    assert sent and f"REMINDERS SENT ({len(sent)})" in text
    assert "2 days before" in text and "France" in text.split("REMINDERS SENT", 1)[1]

    # Bounces and failing contacts: Japan's address, named with its State.
    assert "Failing: mission@gv.mofa.go.jp (Japan)" in text
    assert "Bounce Wed 16 Aug 08:20 from mailer-daemon@smtp.unog.ch" in text

    # Acknowledgements not sent: Mexico's, refused by the server, with its words.
    acks = text.split("ACKNOWLEDGEMENTS NOT SENT (1)", 1)[1].split("HEALTH", 1)[0]
    assert cycle.failed_ack_to in acks and "failed" in acks and "550" in acks
    assert "Mexico" in acks

    # Health: the last good poll, the night's error, the quarantined file.
    assert "last successful poll: Thu 17 Aug 07:59" in text
    assert "IMAP server imap.unog.ch:993 unreachable: timed out (Thu 17 Aug 03:00)" in text
    assert "STILL FAILING" not in text
    assert "Quarantined since the last digest: 1 (1 in all)" in text
    assert "unreadable message" in text
    assert "ccm-intake review resolve ID --not-submission" in text  # and how to clear it


def test_a_digest_counts_from_the_previous_one_or_the_last_24_hours(
    tmp_path: Path, sqlite_url: str, smtp: Any
) -> None:
    ctx = build_context(load_settings(settings_env(tmp_path, sqlite_url, smtp)))
    first = build_digest(ctx, TODAY, now=DIGEST, obligations=lambda *_: ())
    assert (first.since, first.until) == (DIGEST - timedelta(hours=24), DIGEST)
    assert queue_digest_once(ctx, PREVIOUS - timedelta(days=3), obligations=lambda *_: ())
    later = build_digest(ctx, TODAY, now=DIGEST, obligations=lambda *_: ())
    assert later.since == PREVIOUS - timedelta(days=3)  # a missed day is not lost


# --- once a day ------------------------------------------------------------------------------


def test_the_digest_is_queued_once_a_day_however_often_it_is_asked(
    tmp_path: Path, db_url: str, smtp: Any
) -> None:
    ctx = build_context(load_settings(settings_env(tmp_path, db_url, smtp)))
    assert queue_digest_once(ctx, DIGEST) is True
    assert queue_digest_once(ctx, DIGEST + timedelta(minutes=1)) is False  # a retry
    # Two workers (or two beats) at the same moment, each with its own connections.
    other = build_context(load_settings(settings_env(tmp_path, db_url, smtp)))
    barrier, results = threading.Barrier(2), []
    later = DIGEST + timedelta(days=1)

    def run(c: Context) -> None:
        barrier.wait()
        results.append(queue_digest_once(c, later))

    threads = [threading.Thread(target=run, args=(c,)) for c in (ctx, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [False, True]
    keys = [r.key for r in ctx.db.outbox_rows() if r.purpose == "digest"]
    assert keys == ["digest:2017-08-17", "digest:2017-08-18"]
    # The day is Geneva's: 23:30 UTC on the 17th is already the 18th there.
    assert queue_digest_once(ctx, at(17, 23, 30)) is False
    ctx.db.dispose()
    other.db.dispose()


def test_the_digest_reaches_the_secretary_as_text_and_html_marked_automatic(
    tmp_path: Path, sqlite_url: str, smtp: Any
) -> None:
    ctx = build_context(load_settings(settings_env(tmp_path, sqlite_url, smtp)))
    smtp.clear()
    assert queue_digest_once(ctx, DIGEST)
    assert mailer.send_due(ctx.db, ctx.settings, now=DIGEST).sent == 1
    assert mailer.send_due(ctx.db, ctx.settings, now=DIGEST + timedelta(hours=1)).sent == 0
    (got,) = smtp.wait_for_count(1)
    assert got.rcpt_tos == [SECRETARY]
    msg, text, html = text_part(got.raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] == stable_message_id("digest:2017-08-17", "ccm@unog.ch")
    assert msg["To"] == SECRETARY
    assert str(msg["Subject"]).startswith("CCM daily digest, Thu 17 Aug 2017: 0 new, 0 to review")
    assert "Thursday 17 August 2017" in text and "Thursday 17 August 2017" in html


# --- what it looks like --------------------------------------------------------------------


def data_by_hand() -> DigestData:
    """A digest built from records, without a database: render_digest is pure."""
    msp = Obligation(
        kind="delegation",
        cycle="7MSP",
        label={"en": "Details of delegations for the 7MSP"},
        due=date(2017, 8, 18),
    )
    a7 = Obligation(
        kind="article7",
        cycle="2017",
        label={"en": "Annual Article 7 report covering 2017"},
        due=date(2018, 4, 30),
    )
    return DigestData(
        today=TODAY,
        since=PREVIOUS,
        until=DIGEST,
        new_submissions=(
            NewSubmission("FRA", "delegation", "7MSP", 1, "CCM/7MSP/DEL/FRA/001", at(16, 9), None),
            NewSubmission(
                "AUS", "article7", "2016", 2, "CCM-2017-00009", at(16, 10), date(2017, 4, 30)
            ),
        ),
        review=(ReviewItem(7, at(16, 15), "x@example.org", "<script>alert(1)</script>", "why"),),
        obligations=(
            ObligationStatus(
                obligation=a7,
                expected=("AUT", "FRA"),
                received=(),
                missing=("AUT", "FRA"),
                no_contact=(),
                days_left=256,
            ),
            ObligationStatus(
                obligation=msp,
                expected=("AUT", "FRA", "JPN", "NZL"),
                received=("FRA",),
                missing=("AUT", "JPN", "NZL"),
                no_contact=("NZL",),
                days_left=1,
            ),
        ),
        failing_contacts=(FailingContact("a@b.jp", "550 user unknown", at(16, 6), ("JPN",)),),
        acks_not_sent=(
            AckNotSent("CCM-2017-00010", "MEX", "m@sre.gob.mx", "suppressed", "rate", at(16, 1)),
        ),
        polls=(PollHealth("ccm@imap:993/INBOX", at(16, 5), "refused", at(17, 5)),),
        quarantined=(Quarantined(9, at(16, 16), "", "", "unreadable message: no header"),),
        quarantined_total=3,
        state_names={"FRA": "France", "AUS": "Australia", "AUT": "Austria", "JPN": "Japan"},
    )


def test_the_html_is_tables_and_inline_styles_only_for_outlook() -> None:
    subject, text, html = render_digest(data_by_hand())
    assert html.startswith("<!DOCTYPE html>")
    assert "<style" not in html.lower() and "class=" not in html.lower()
    assert not re.search(r"(src|href)\s*=|url\(|@import|<link|<img|<script", html, re.I)
    assert "flex" not in html and "grid" not in html
    widths = [int(w) for w in re.findall(r'<table[^>]*\swidth="(\d+)"', html)]
    assert widths and max(widths) <= 680
    assert all(int(px) <= 680 for px in re.findall(r"width:\s*(\d+)px", html))
    # The 7MSP bar: 1 of 4, a quarter filled, amber (a day left), painted with bgcolor.
    assert re.search(r'<td width="25%" height="12" bgcolor="#b26a00"', html)
    assert "&lt;script&gt;" in html  # strangers' subjects are escaped
    # Coming deadlines first; the far one gives counts, not a hundred names.
    assert text.index("7MSP") < text.index("covering 2017")
    assert "Austria, Japan, New Zealand" not in text  # NZL has no name here: shown as ISO3
    assert "Austria, Japan, NZL*" in text
    assert "Still missing: 2, of which 0 with no contact on file" in text
    assert "late by 108 days" in text and "no deadline" in text
    assert "STILL FAILING" in text  # the last error came after the last success
    assert "attention" in subject and "the inbox could not be read" in subject


@pytest.mark.slow
def test_the_preview_renders_in_a_browser_and_the_screenshot_is_kept(
    tmp_path: Path, sqlite_url: str, smtp: Any
) -> None:
    """docs/digest.png is made here, from the 2017 fixture, by headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)", pytrace=False)
        pytest.skip("chromium is not installed: apt-get install --no-install-recommends chromium")
    built = live_through_the_2017_cycle(tmp_path, sqlite_url, smtp)
    before = [(r.key, r.status) for r in built.ctx.db.outbox_rows()]
    page = tmp_path / "digest.html"
    done = run_cli(built.env, "digest", "preview", "--today", "2017-08-17", "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert [(r.key, r.status) for r in built.ctx.db.outbox_rows()] == before  # nothing written
    html = page.read_text(encoding="utf-8")
    assert "Still missing (112)" in html and "Japan" in html
    png = ROOT / "docs" / "digest.png"
    png.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        shot = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                "--window-size=720,1400",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    built.ctx.db.dispose()


def test_preview_refuses_a_bad_date_and_a_missing_database(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "CCM_DATA_DIR": str(tmp_path / "none")}
    bad = run_cli(env, "digest", "preview", "--today", "17/08/2017", "--out", "x.html")
    assert bad.returncode == 2 and "is not a date" in bad.stderr
    missing = run_cli(env, "digest", "preview", "--out", str(tmp_path / "x.html"))
    assert missing.returncode == 1 and "no database" in missing.stderr
    assert not (tmp_path / "none").exists()  # a preview creates nothing
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ccm.db").write_bytes(b"")  # there, but never migrated
    env["CCM_DATA_DIR"] = str(tmp_path / "empty")
    unmigrated = run_cli(env, "digest", "preview", "--out", str(tmp_path / "x.html"))
    assert unmigrated.returncode == 1 and "ccm-intake db upgrade" in unmigrated.stderr
    assert "Traceback" not in unmigrated.stderr and not (tmp_path / "x.html").exists()


# --- when ----------------------------------------------------------------------------------


def next_run(schedule: GenevaCrontab, last_run: datetime) -> datetime:
    """When beat will run the entry next, given its last run (the clock set to that moment)."""
    with time_machine.travel(last_run, tick=False):
        return last_run + schedule.remaining_estimate(last_run)


@pytest.mark.parametrize(
    ("last_run", "expected"),
    [
        # Summer (CEST, UTC+2): 08:00 in Geneva is 06:00 UTC.
        (at(16, 6), at(17, 6)),
        (at(16, 23, 30), at(17, 6)),  # 01:30 in Geneva on the 17th
        # Winter (CET, UTC+1): 07:00 UTC.
        (datetime(2017, 1, 16, 7, tzinfo=UTC), datetime(2017, 1, 17, 7, tzinfo=UTC)),
        # The nights the clocks change: 23 hours, then 25 hours between two digests.
        (datetime(2017, 3, 25, 7, tzinfo=UTC), datetime(2017, 3, 26, 6, tzinfo=UTC)),
        (datetime(2017, 10, 28, 6, tzinfo=UTC), datetime(2017, 10, 29, 7, tzinfo=UTC)),
    ],
)
def test_the_digest_fires_at_eight_in_geneva_summer_and_winter(
    last_run: datetime, expected: datetime
) -> None:
    app = create_app(load_settings({}))
    entry = app.conf.beat_schedule["daily-digest"]
    assert entry["task"] == "ccm.digest"
    schedule = entry["schedule"]
    assert isinstance(schedule, GenevaCrontab)
    schedule.app = app  # as beat does; the app itself stays in UTC
    assert str(app.conf.timezone) == "UTC"
    assert next_run(schedule, last_run) == expected
    # Due at that moment, not a minute before.
    with time_machine.travel(expected - timedelta(minutes=1), tick=False):
        assert not schedule.is_due(last_run).is_due
    with time_machine.travel(expected, tick=False):
        assert schedule.is_due(last_run).is_due


def test_a_late_digest_task_expires_before_the_next_and_before_geneva_midnight() -> None:
    app = create_app(load_settings({"CCM_DIGEST_TIME": "7:30"}))
    entry = app.conf.beat_schedule["daily-digest"]
    assert entry["options"]["expires"] == 12 * 3600
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({7}, {30})
    assert digest_expires("23:30") == 29 * 60
    assert digest_schedule("08:00").tz.key == "Europe/Zurich"  # type: ignore[attr-defined]
    assert digest_key(TODAY) == "digest:2017-08-17"


# --- the tasks -----------------------------------------------------------------------------


@pytest.fixture
def service_environ(
    make_env: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The process environment of a worker on this test's servers; the context rebuilt."""
    from worker import runtime

    env = dict(make_env(sqlite_url))
    for key in [k for k in os.environ if k.startswith("CCM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("CCM_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setattr(runtime, "_context", None)
    return env


def test_each_poll_records_how_it_went_for_the_digest(
    service_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import runtime, tasks

    # The login is refused: the error is kept, before any poll ever succeeded.
    monkeypatch.setenv("CCM_IMAP_PASSWORD", "not-the-password")
    assert tasks.poll().startswith("poll failed")
    ctx = runtime.get_context()
    (state,) = ctx.db.mailbox_health()
    assert state.last_success_at is None and state.last_error_at is not None
    assert "login" in state.last_error.lower(), state.last_error
    # Right again (and no backoff after one failure): the success is recorded, the error
    # stays for the record but no longer counts as current.
    monkeypatch.setenv("CCM_IMAP_PASSWORD", service_environ["CCM_IMAP_PASSWORD"])
    monkeypatch.setattr(runtime, "_context", None)
    assert tasks.poll().startswith("poll: fetched 0")
    ctx = runtime.get_context()
    (state,) = ctx.db.mailbox_health()
    assert state.last_success_at is not None and state.last_error_at is not None
    assert state.last_success_at > state.last_error_at
    assert not PollHealth(
        state.mailbox, state.last_success_at, state.last_error, state.last_error_at
    ).failing


def test_the_digest_task_queues_once_and_asks_for_sending(
    service_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import runtime, tasks

    asked: list[object] = []
    monkeypatch.setattr(tasks.send_outbox, "delay", lambda *a: asked.append(a))
    assert tasks.send_digest().startswith("digest: queued for")
    assert tasks.send_digest() == "digest: today's is queued already"
    assert asked == [()]
    rows = [r for r in runtime.get_context().db.outbox_rows() if r.purpose == "digest"]
    assert len(rows) == 1 and rows[0].status == "pending"
