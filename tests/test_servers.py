"""The throwaway servers of conftest.py really work, and behave as the tests assume."""

from __future__ import annotations

import smtplib
import socket
import time
from email.message import EmailMessage

import pytest
import redis
import sqlalchemy as sa
from imap_tools import AND, MailBoxUnencrypted

try:
    from tests import servers
except ImportError:
    import servers  # type: ignore[no-redef]


def raw_mail(subject: str, body: str = "Bonjour,\r\nci-joint la note verbale.\r\n") -> bytes:
    """A mail as it arrives on the wire: CRLF, 8-bit UTF-8 body, no re-encoding."""
    return (
        "From: Mission permanente <mission@example.test>\r\n"
        "To: ccm@example.test\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{time.time_ns()}@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def fetch_raw(mb: MailBoxUnencrypted, uid: str) -> bytes:
    typ, data = mb.client.uid("FETCH", uid, "(BODY.PEEK[])")
    assert typ == "OK"
    return bytes(data[0][1])


def login(
    dovecot: servers.Dovecot, user: str | None = None, password: str | None = None
) -> MailBoxUnencrypted:
    return MailBoxUnencrypted(dovecot.host, dovecot.port, timeout=10).login(
        user or dovecot.user, password or dovecot.password
    )


# ------------------------------------------------------------------ Dovecot


def test_dovecot_gives_back_an_appended_mail_byte_for_byte(dovecot: servers.Dovecot) -> None:
    raw = raw_mail("Délégation du Chili — 7MSP", "Señoras y señores,\r\n\r\n.dot line\r\nFin.\r\n")
    with login(dovecot) as mb:
        mb.folder.set("INBOX")
        typ, _ = mb.append(raw, "INBOX", flag_set=[])
        assert typ == "OK"
        uid = mb.uids(AND(subject="7MSP"))[-1]
        assert fetch_raw(mb, uid) == raw
        assert mb.folder.status("INBOX")["UIDVALIDITY"] > 0


def test_dovecot_uses_slash_as_separator_and_takes_non_ascii_folder_names(
    dovecot: servers.Dovecot,
) -> None:
    raw = raw_mail("Rapport article 7")
    folder = "Filed/Côte d'Ivoire"
    with login(dovecot) as mb:
        assert {f.name for f in mb.folder.list()} >= {"INBOX", "Sent", "Trash"}
        if not mb.folder.exists(folder):
            mb.folder.create(folder)
        mb.folder.create("Filed/St. Kitts and Nevis")  # '.' is allowed too
        listed = {f.name: f.delim for f in mb.folder.list("Filed")}
        assert listed[folder] == "/"
        assert "Filed/St. Kitts and Nevis" in listed

        mb.append(raw, "INBOX", flag_set=[])
        mb.folder.set("INBOX")
        uid = mb.uids(AND(subject="Rapport article 7"))[-1]
        mb.move(uid, folder)
        assert mb.uids(AND(subject="Rapport article 7")) == []

        mb.folder.set(folder)
        moved = mb.uids(AND(subject="Rapport article 7"))
        assert len(moved) == 1
        assert fetch_raw(mb, moved[0]) == raw


def test_dovecot_keeps_users_apart_and_takes_new_ones(dovecot: servers.Dovecot) -> None:
    with login(dovecot, "bob", "bobpw") as mb:
        mb.append(raw_mail("for bob only"), "INBOX")
    dovecot.add_user("carol", "carolpw")
    with login(dovecot, "carol", "carolpw") as mb:
        mb.folder.set("INBOX")
        assert mb.uids(AND(subject="for bob only")) == []
    with pytest.raises(Exception, match=r"AUTHENTICATIONFAILED|Authentication failed"):
        login(dovecot, "carol", "wrong")


def test_dovecot_can_be_stopped_and_started_on_the_same_port(dovecot: servers.Dovecot) -> None:
    with login(dovecot) as mb:
        mb.append(raw_mail("survives a restart"), "INBOX")
    port = dovecot.port
    dovecot.stop()
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((dovecot.host, dovecot.port), timeout=2).close()
    finally:
        dovecot.start()
    assert dovecot.port == port
    with login(dovecot) as mb:
        mb.folder.set("INBOX")
        assert len(mb.uids(AND(subject="survives a restart"))) == 1


# ------------------------------------------------------------------ Redis


def test_redis_answers_and_a_restart_loses_everything(redis_srv: servers.RedisServer) -> None:
    client = redis.Redis.from_url(redis_srv.url, socket_timeout=5)
    try:
        assert client.ping()
        client.set("in-flight", "task")
        old_pid = redis_srv.proc.pid if redis_srv.proc else None
        redis_srv.restart()
        assert redis_srv.proc is not None and redis_srv.proc.pid != old_pid
        assert client.get("in-flight") is None  # the client reconnects by itself
    finally:
        client.close()


# ------------------------------------------------------------------ PostgreSQL


def test_postgres_gives_each_test_its_own_database(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(pg_url)
    try:
        meta = sa.MetaData()
        states = sa.Table(
            "states",
            meta,
            sa.Column("code", sa.String(3), primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
        )
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(states.insert(), [{"code": "CIV", "name": "Côte d'Ivoire"}])
            assert conn.execute(sa.select(states.c.name)).scalar_one() == "Côte d'Ivoire"
            database = conn.execute(sa.text("select current_database()")).scalar_one()
            assert database == pg_url.rsplit("/", 1)[1]
    finally:
        engine.dispose()


def test_sqlite_url_is_a_fresh_file(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select count(*) from sqlite_master")).scalar_one() == 0
    finally:
        engine.dispose()


# ------------------------------------------------------------------ SMTP


def ack(to: str = "mission@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "ccm@example.test"
    msg["To"] = to
    msg["Subject"] = "Accusé de réception"
    msg.set_content("Nous accusons réception de votre note.")
    return msg


def test_smtp_sink_receives_what_smtplib_sends(smtp: servers.SmtpSink) -> None:
    smtp.clear()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.send_message(ack(), to_addrs=["mission@example.test", "cc@example.test"])
    (record,) = smtp.wait_for_count(1, timeout=5)
    assert record.mail_from == "ccm@example.test"
    assert record.rcpt_tos == ["mission@example.test", "cc@example.test"]
    assert record.message["Subject"] == "Accusé de réception"
    assert "Nous accusons" in record.message.get_content()
    assert record.raw.startswith(b"From: ccm@example.test\r\n")


def test_smtp_sink_refuses_temporarily_when_told(smtp: servers.SmtpSink) -> None:
    smtp.clear()
    smtp.fail_next(1)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            client.send_message(ack())
        assert refused.value.smtp_code == 451
        client.send_message(ack())  # the retry goes through
    assert len(smtp.wait_for_count(1)) == 1


def test_smtp_sink_can_refuse_at_mail_or_rcpt_and_permanently(smtp: servers.SmtpSink) -> None:
    smtp.clear()
    smtp.fail_next(1, code=550, stage="mail")
    smtp.fail_next(1, stage="rcpt")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as sender:
            client.send_message(ack())
        assert sender.value.smtp_code == 550
        with pytest.raises(smtplib.SMTPRecipientsRefused) as rcpt:
            client.send_message(ack("a@example.test, b@example.test"))
        assert {code for code, _ in rcpt.value.recipients.values()} == {451}
        client.send_message(ack())
    assert [r.rcpt_tos for r in smtp.wait_for_count(1)] == [["mission@example.test"]]
    with pytest.raises(TimeoutError):
        smtp.wait_for_count(2, timeout=0.2)
