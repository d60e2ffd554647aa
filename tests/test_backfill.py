"""`ccm-intake backfill --since DATE`: an inbox that already holds mail is imported from a date
on, against the real Dovecot, and none of it is acknowledged; the polls go on from there."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from imap_tools import MailBoxUnencrypted

from config.settings import load_settings
from tests import servers
from tests.app import run_cli
from worker.runtime import build_context
from worker.samples import australia_article7, france_delegation, mexico_delegation


def append_at(dovecot: Any, user: str, password: str, raw: bytes, when: datetime) -> None:
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(user, password) as box:
        box.append(raw, "INBOX", dt=when)


def test_backfill_files_mail_since_the_date_answers_none_and_polls_go_on(
    sqlite_url: str,
    make_env: Any,
    dovecot: servers.Dovecot,
    account: tuple[str, str],
    smtp: servers.SmtpSink,
) -> None:
    env = make_env(sqlite_url, CCM_MAILBOX_ACTION="keyword")  # the mail stays in INBOX
    user, password = account
    december = datetime(2016, 12, 5, 9, 0, tzinfo=UTC)
    august = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)
    append_at(dovecot, user, password, australia_article7(december).raw, december)  # too old
    append_at(dovecot, user, password, france_delegation(august).raw, august)
    append_at(dovecot, user, password, mexico_delegation(august).raw, august)

    done = run_cli(env, "backfill", "--since", "2017-08-01")

    assert done.returncode == 0, done.stderr
    assert "2 message(s) found, 2 new, 0 kept already; filed 2; no acknowledgement sent" in (
        done.stdout
    )
    ctx = build_context(load_settings(env))
    assert sorted(i for i, _, _, _ in ctx.db.filed_by_state()) == ["FRA", "MEX"]
    acks = ctx.db.outbox_rows()
    assert {(r.status, r.last_error) for r in acks} == {
        ("suppressed", "held back: imported by backfill since 2017-08-01")
    }

    # The next poll starts after the folder's last message: Australia's old report stays on
    # the server, unread; new mail is read and acknowledged as usual.
    append_at(dovecot, user, password, australia_article7(datetime.now(UTC)).raw, datetime.now(UTC))
    polled = run_cli(env, "poll")
    assert polled.returncode == 0, polled.stderr
    assert "fetched 1, new 1" in polled.stdout
    (sent,) = smtp.wait_for_count(1)
    assert "CCM/ART7/2016/AUS/001" in str(sent.message["Subject"])
    assert len(smtp.messages) == 1  # nothing for France and Mexico, ever

    again = run_cli(env, "backfill", "--since", "2017-08-01")  # twice: nothing new
    assert again.returncode == 0, again.stderr
    assert "3 message(s) found, 0 new, 3 kept already" in again.stdout


def test_backfill_refuses_a_date_it_cannot_read(sqlite_url: str, make_env: Any) -> None:
    done = run_cli(make_env(sqlite_url), "backfill", "--since", "last week")
    assert done.returncode == 2
    assert "--since must be a date as YYYY-MM-DD, not 'last week'" in done.stderr
