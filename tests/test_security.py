"""Security: verified TLS, secrets kept out of every log, a password on Redis, JSON only.

All against real servers on loopback: a Dovecot with TLS (a CA and certificate made by the
test), aiosmtpd with STARTTLS and with implicit TLS, a Redis that requires a password, the
throwaway PostgreSQL, and the real worker and command line as a user runs them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import redis
from sqlalchemy.engine import make_url

from config.settings import ConfigError, Settings, load_settings
from tests import servers
from tests.app import ROOT, WorkerProcess, append, count, rows, run_cli, service_env, wait_until
from worker import tls
from worker.compose import Outgoing
from worker.mailbox import MailboxError, open_inbox
from worker.mailer import SmtpError, send_due, send_raw
from worker.samples import france_delegation
from worker.store import Database, utcnow

# Distinctive secrets, with the characters that a URL must encode.
IMAP_SECRET = "imap-Sekr3t+/%x7"
WRONG_IMAP_SECRET = "wrong-Imap-Pw/7c1e"
SMTP_SECRET = "smtp-Sekr3t 9a/b"
BROKER_SECRET = "br0ker Sekr3t/@%#?"
WRONG_BROKER_SECRET = "wrong-Br0ker-c3d4"
DB_SECRET = "db-Sekr3t/@:x%5"
ALL_SECRETS = (IMAP_SECRET, WRONG_IMAP_SECRET, SMTP_SECRET, BROKER_SECRET, WRONG_BROKER_SECRET)
ALL_SECRETS += (DB_SECRET,)


def leaked(text: str) -> list[str]:
    """The secrets (in any of the forms they take in a URL) that ``text`` shows."""
    found = []
    for secret in ALL_SECRETS:
        for form in {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}:
            if form in text:
                found.append(form)
    return found


# ================================================================ TLS: servers with certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> servers.TlsFiles:
    """A CA and a certificate it signed for 127.0.0.1 and localhost."""
    try:
        return servers.make_certificates(tmp_path_factory.mktemp("certs"))
    except servers.ServerError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tls_dovecot(
    tmp_path_factory: pytest.TempPathFactory, certs: servers.TlsFiles
) -> Iterator[servers.Dovecot]:
    """Dovecot with TLS: STARTTLS on ``.port``, implicit TLS on ``.ssl_port``."""
    with contextlib.ExitStack() as stack:
        try:
            server = servers.dovecot_server(tmp_path_factory.mktemp("dovecot-tls"), tls=certs)
            yield stack.enter_context(server)
        except servers.ServerError as exc:
            pytest.skip(f"dovecot unavailable: {exc}")


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the 'verification is off' warning as a fresh process would."""
    monkeypatch.setattr(tls, "_warned", set())


def imap_settings(server: servers.Dovecot, security: str, **extra: str) -> Settings:
    port = server.ssl_port if security == "ssl" else server.port
    return load_settings(
        {
            "CCM_IMAP_HOST": "127.0.0.1",
            "CCM_IMAP_PORT": str(port),
            "CCM_IMAP_SECURITY": security,
            "CCM_IMAP_USER": "alice",
            "CCM_IMAP_PASSWORD": "alicepw",
            **extra,
        }
    )


def logins(server: servers.Dovecot) -> int:
    return server.log.read_text(errors="replace").count("Login: user=<alice>")


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_imap_refuses_a_certificate_it_cannot_verify_before_sending_the_password(
    tls_dovecot: servers.Dovecot, security: str
) -> None:
    before = logins(tls_dovecot)
    with pytest.raises(MailboxError) as caught, open_inbox(imap_settings(tls_dovecot, security)):
        pass
    message = str(caught.value)
    assert "TLS certificate verification failed" in message, message
    assert "unable to get local issuer certificate" in message
    assert "CCM_IMAP_CA_FILE" in message and "\n" not in message
    assert caught.value.permanent
    assert logins(tls_dovecot) == before  # it never logged in


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_imap_over_tls_works_with_the_servers_ca_given(
    tls_dovecot: servers.Dovecot, certs: servers.TlsFiles, security: str, host: str
) -> None:
    settings = imap_settings(
        tls_dovecot, security, CCM_IMAP_CA_FILE=str(certs.ca), CCM_IMAP_HOST=host
    )
    with open_inbox(settings) as inbox:
        assert inbox.select("INBOX").uidvalidity > 0


@pytest.mark.usefixtures("fresh_warnings")
def test_imap_with_verification_off_works_and_says_so_once(
    tls_dovecot: servers.Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.tls")
    for security in ("ssl", "starttls", "ssl"):
        with open_inbox(imap_settings(tls_dovecot, security, CCM_IMAP_TLS_VERIFY="false")) as inbox:
            inbox.select("INBOX")
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "worker.tls"]
    assert "TLS certificate verification is OFF (CCM_IMAP_TLS_VERIFY=false)" in warning


@pytest.mark.usefixtures("fresh_warnings")
def test_a_plain_connection_off_this_machine_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.tls")
    for host in ("127.0.0.1", "localhost", "::1"):
        tls.warn_plaintext("IMAP", host)  # the loopback test servers: nothing to say
    assert caplog.records == []
    tls.warn_plaintext("SMTP", "smtp.example.org")
    tls.warn_plaintext("SMTP", "smtp.example.org")
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "SMTP: no TLS (CCM_SMTP_SECURITY=none) to smtp.example.org" in warning


def test_a_poll_against_an_unverifiable_server_fails_in_one_line(
    tls_dovecot: servers.Dovecot, tmp_path: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "CCM_DATA_DIR": str(tmp_path),
        "CCM_IMAP_HOST": "127.0.0.1",
        "CCM_IMAP_PORT": str(tls_dovecot.ssl_port),
        "CCM_IMAP_USER": "alice",
        "CCM_IMAP_PASSWORD": "alicepw",
    }  # CCM_IMAP_SECURITY=ssl is the default
    done = run_cli(env, "poll")
    assert done.returncode == 1
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("ccm-intake:")]
    assert f"IMAP server 127.0.0.1:{tls_dovecot.ssl_port}: TLS certificate verification" in line
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture(params=["starttls", "ssl"])
def tls_sink(
    request: pytest.FixtureRequest, certs: servers.TlsFiles
) -> Iterator[tuple[servers.SmtpSink, str]]:
    """aiosmtpd requiring STARTTLS, or speaking TLS from the start (as on port 465)."""
    with servers.smtp_sink(tls=certs, implicit=request.param == "ssl") as sink:
        yield sink, request.param


def smtp_settings(sink: servers.SmtpSink, security: str, **extra: str) -> Settings:
    return load_settings(
        {
            "CCM_SMTP_HOST": "127.0.0.1",
            "CCM_SMTP_PORT": str(sink.port),
            "CCM_SMTP_SECURITY": security,
            **extra,
        }
    )


def a_mail(subject: str = "test") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ccm@unog.ch", "mission@example.org", subject
    msg.set_content("hello")
    return msg.as_bytes()


def test_smtp_refuses_a_certificate_it_cannot_verify(
    tls_sink: tuple[servers.SmtpSink, str],
) -> None:
    sink, security = tls_sink
    with pytest.raises(SmtpError) as caught:
        send_raw(smtp_settings(sink, security), a_mail(), "ccm@unog.ch", ["mission@example.org"])
    message = str(caught.value)
    assert f"SMTP server 127.0.0.1:{sink.port}: TLS certificate verification failed" in message
    assert "CCM_SMTP_CA_FILE" in message
    assert not caught.value.permanent  # the outbox keeps it until the CA is configured
    assert sink.messages == []


def test_smtp_over_tls_delivers_with_the_servers_ca_given(
    tls_sink: tuple[servers.SmtpSink, str], certs: servers.TlsFiles
) -> None:
    sink, security = tls_sink
    settings = smtp_settings(sink, security, CCM_SMTP_CA_FILE=str(certs.ca))
    send_raw(settings, a_mail("verified"), "ccm@unog.ch", ["mission@example.org"])
    (record,) = sink.wait_for_count(1)
    assert record.message["Subject"] == "verified"


@pytest.mark.usefixtures("fresh_warnings")
def test_smtp_with_verification_off_delivers_and_says_so_once(
    tls_sink: tuple[servers.SmtpSink, str], caplog: pytest.LogCaptureFixture
) -> None:
    sink, security = tls_sink
    caplog.set_level(logging.WARNING, logger="worker.tls")
    settings = smtp_settings(sink, security, CCM_SMTP_TLS_VERIFY="false")
    for n in range(2):
        send_raw(settings, a_mail(f"unverified {n}"), "ccm@unog.ch", ["mission@example.org"])
    assert len(sink.wait_for_count(2)) == 2
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "worker.tls"]
    assert "TLS certificate verification is OFF (CCM_SMTP_TLS_VERIFY=false)" in warning


def test_smtp_checks_the_host_name_as_well_as_the_chain(tmp_path: Path) -> None:
    """A certificate from a trusted CA, but for another server, is refused."""
    other = servers.make_certificates(tmp_path, names="DNS:mail.example.org")
    with servers.smtp_sink(tls=other) as sink:
        settings = smtp_settings(sink, "starttls", CCM_SMTP_CA_FILE=str(other.ca))
        with pytest.raises(SmtpError, match=r"IP address mismatch.*'127\.0\.0\.1'"):
            send_raw(settings, a_mail(), "ccm@unog.ch", ["mission@example.org"])
        assert sink.messages == []


def test_an_acknowledgement_for_an_unverifiable_server_waits_in_the_outbox(
    certs: servers.TlsFiles, sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    db.create_schema()
    with servers.smtp_sink(tls=certs) as sink:
        settings = smtp_settings(sink, "starttls")
        mail = Outgoing("mission@example.org", "ack", "<ack-1@unog.ch>", a_mail("ack"))
        outbox_id = db.queue_outbox_once("ack:test", "ack", mail, utcnow())
        result = send_due(db, settings)
        assert (result.sent, result.deferred, result.failed) == (0, 1, 0)
        (row,) = db.outbox_rows()
        assert row.id == outbox_id and row.status == "pending"
        assert "TLS certificate verification failed" in row.last_error
        # Once the CA is known, it goes.
        with_ca = smtp_settings(sink, "starttls", CCM_SMTP_CA_FILE=str(certs.ca))
        later = utcnow() + timedelta(hours=3)  # past the backoff
        assert send_due(db, with_ca, only=outbox_id, now=later).sent == 1
        assert len(sink.wait_for_count(1)) == 1
    db.dispose()


# ====================================================================== settings


def test_a_ca_file_must_be_a_readable_pem_bundle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CCM_IMAP_CA_FILE: no such file: /nonexistent"):
        load_settings({"CCM_IMAP_CA_FILE": "/nonexistent/ca.pem"})
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"^CCM_SMTP_CA_FILE: not a usable PEM CA bundle"):
        load_settings({"CCM_SMTP_CA_FILE": str(junk)})


def test_broker_and_database_passwords_go_into_their_urls_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "broker").write_text(BROKER_SECRET + "\n")
    (tmp_path / "db").write_text(DB_SECRET + "\n")
    s = load_settings(
        {
            "CCM_BROKER_URL": "redis://redis.internal:6379/0",
            "CCM_BROKER_PASSWORD_FILE": str(tmp_path / "broker"),
            "CCM_DATABASE_URL": "postgresql+psycopg://ccm@db.internal:5432/ccm",
            "CCM_DATABASE_PASSWORD_FILE": str(tmp_path / "db"),
        }
    )
    client = redis.Redis.from_url(s.broker_url)
    assert client.connection_pool.connection_kwargs["password"] == BROKER_SECRET
    assert client.connection_pool.connection_kwargs["host"] == "redis.internal"
    client.close()
    url = make_url(s.db_url)
    assert (url.username, url.password, url.host, url.database) == (
        "ccm",
        DB_SECRET,
        "db.internal",
        "ccm",
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"CCM_BROKER_URL": "redis://:inline-pw@h:6379/0", "CCM_BROKER_PASSWORD": "x" * 8},
            "CCM_BROKER_PASSWORD: CCM_BROKER_URL has no host to log in to, or a password",
        ),
        (
            {"CCM_DATABASE_PASSWORD": "x" * 8},  # the SQLite default has no server
            "CCM_DATABASE_PASSWORD: CCM_DATABASE_URL has no host",
        ),
    ],
)
def test_a_password_is_given_once(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(says)
    assert "x" * 8 not in str(caught.value) and "inline-pw" not in str(caught.value)


def test_the_settings_repr_shows_no_secret() -> None:
    s = load_settings(
        {
            "CCM_IMAP_PASSWORD": IMAP_SECRET,
            "CCM_SMTP_PASSWORD": SMTP_SECRET,
            "CCM_BROKER_PASSWORD": BROKER_SECRET,
            "CCM_DATABASE_URL": f"postgresql+psycopg://ccm:{quote(DB_SECRET, safe='')}@db/ccm",
        }
    )
    assert make_url(s.db_url).password == DB_SECRET
    for shown in (repr(s), str(s), f"{s!r}"):
        assert leaked(shown) == [], shown


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        (
            {"CCM_DATABASE_URL": f"mysql://ccm:{quote(DB_SECRET, safe='')}@db/ccm"},
            "CCM_DATABASE_URL: must start with sqlite:/// or postgresql+psycopg:// "
            "(got 'mysql://ccm:***@db/ccm')",
        ),
        (
            {"CCM_BROKER_URL": f"amqp://u:{quote(BROKER_SECRET, safe='')}@mq/"},
            "CCM_BROKER_URL: must be a redis:// URL (got 'amqp://u:***@mq/')",
        ),
    ],
)
def test_a_bad_url_is_named_with_its_password_masked(env: dict[str, str], shown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value) == shown


def test_a_config_file_line_without_a_name_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "ccm.env"
    config.write_text(f"CCM_IMAP_HOST=imap.example.org\n{SMTP_SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"CCM_CONFIG_FILE": str(config)})
    assert str(caught.value) == f"{config}:2: expected NAME=value"


def test_the_log_masks_the_secrets_whoever_logs_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The last line of defence: a library that puts a password in a message or an
    exception still writes ***."""
    from worker import redaction

    monkeypatch.setattr(redaction, "_secrets", [])
    monkeypatch.setattr(redaction, "_original_factory", redaction._original_factory)
    factory = logging.getLogRecordFactory()
    settings = load_settings(
        {
            "CCM_IMAP_PASSWORD": IMAP_SECRET,
            "CCM_BROKER_PASSWORD": BROKER_SECRET,
            "CCM_DATABASE_URL": f"postgresql+psycopg://ccm:{quote(DB_SECRET, safe='')}@db/ccm",
        }
    )
    caplog.set_level(logging.INFO, logger="some.library")
    library = logging.getLogger("some.library")
    try:
        redaction.protect_logs(settings)
        library.info("connecting to %s", settings.broker_url)
        library.info("dsn %s", settings.db_url)
        try:
            raise RuntimeError(f"LOGIN alice {IMAP_SECRET!r} refused")
        except RuntimeError:
            library.exception("login failed")
    finally:
        logging.setLogRecordFactory(factory)
    assert "connecting to redis://:***@127.0.0.1:6379/0" in caplog.text
    assert "dsn postgresql+psycopg://ccm:***@db/ccm" in caplog.text
    assert "RuntimeError: LOGIN alice '***' refused" in caplog.text
    assert leaked(caplog.text) == []


# ================================================= Redis with a password, secrets in logs


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.RedisServer]:
    """A Redis that requires BROKER_SECRET."""
    with contextlib.ExitStack() as stack:
        try:
            server = servers.redis_server(
                tmp_path_factory.mktemp("redis-pw"), password=BROKER_SECRET
            )
            yield stack.enter_context(server)
        except servers.ServerError as exc:
            pytest.skip(f"redis unavailable: {exc}")


@pytest.fixture
def protected_broker(protected_redis: servers.RedisServer, tmp_path: Path) -> dict[str, str]:
    """Its settings: a URL without the password, and the password in a file, as in compose."""
    client = redis.Redis.from_url(protected_redis.url)
    client.flushall()
    client.close()
    secret = tmp_path / "broker_password"
    secret.write_text(BROKER_SECRET)
    return {
        "CCM_BROKER_URL": protected_redis.bare_url,
        "CCM_BROKER_PASSWORD_FILE": str(secret),
    }


@pytest.fixture
def secret_account(dovecot: servers.Dovecot) -> tuple[str, str]:
    user = f"ccm{secrets.token_hex(4)}"
    dovecot.add_user(user, IMAP_SECRET)
    return user, IMAP_SECRET


def secret_env(
    tmp_path: Path,
    dovecot: servers.Dovecot,
    user: str,
    smtp: servers.SmtpSink,
    db_url: str,
    broker: dict[str, str],
    **extra: str,
) -> dict[str, str]:
    """A service environment in which every secret the service can have is set."""
    env = service_env(
        data_dir=tmp_path / "data",
        db_url=db_url,
        broker_url=broker["CCM_BROKER_URL"],
        imap=dovecot,
        imap_user=user,
        imap_password=IMAP_SECRET,
        smtp_port=smtp.port,
        CCM_SMTP_PASSWORD=SMTP_SECRET,  # no CCM_SMTP_USER: the sink takes mail without AUTH
        **{k: v for k, v in broker.items() if k != "CCM_BROKER_URL"},
    )
    env.update(extra)
    return env


@pytest.mark.slow
def test_a_worker_on_a_password_protected_redis_files_and_acknowledges(
    tmp_path: Path,
    dovecot: servers.Dovecot,
    secret_account: tuple[str, str],
    smtp: servers.SmtpSink,
    pg_url: str,
    protected_broker: dict[str, str],
) -> None:
    """Poll → file → acknowledge through a Redis that requires a password, every secret set
    (the database's as CCM_DATABASE_PASSWORD), the worker logging at DEBUG: none shows."""
    smtp.clear()
    user, _ = secret_account
    env = secret_env(
        tmp_path, dovecot, user, smtp, pg_url, protected_broker, CCM_DATABASE_PASSWORD=DB_SECRET
    )
    sample = france_delegation(datetime.now(UTC))
    with WorkerProcess(env, tmp_path / "worker.log", "--loglevel", "DEBUG") as worker:
        append(dovecot, user, IMAP_SECRET, sample.raw)
        wait_until(lambda: count(pg_url, "select count(*) from submission"), 60, "a submission")
        (ack,) = smtp.wait_for_count(1, timeout=60)
        log = worker.text()
    assert rows(pg_url, "select state_iso3, kind from submission") == [("FRA", "delegation")]
    assert ack.rcpt_tos == ["dfra.geneve@diplomatie.gouv.fr"]
    assert "transport:   redis://:**@127.0.0.1" in log  # Celery's banner, password masked
    assert leaked(log) == [], leaked(log)


@pytest.mark.slow
def test_a_wrong_broker_password_is_one_line_per_retry_not_a_traceback(
    tmp_path: Path,
    dovecot: servers.Dovecot,
    secret_account: tuple[str, str],
    smtp: servers.SmtpSink,
    sqlite_url: str,
    protected_redis: servers.RedisServer,
) -> None:
    user, _ = secret_account
    broker = {
        "CCM_BROKER_URL": protected_redis.bare_url,
        "CCM_BROKER_PASSWORD": WRONG_BROKER_SECRET,
    }
    env = secret_env(tmp_path, dovecot, user, smtp, sqlite_url, broker)
    refused = f"Cannot connect to redis://:**@127.0.0.1:{protected_redis.port}/0: invalid"
    worker = WorkerProcess(env, tmp_path / "worker.log").start(wait_ready=False)
    try:
        wait_until(lambda: worker.text().count(refused) >= 2, 60, "two refused connections")
        assert not worker.proc_exited()  # it keeps trying
        log = worker.text()
    finally:
        worker.stop()
    lines = [line for line in log.splitlines() if "Cannot connect to" in line]
    assert all(refused in line and "username-password" in line for line in lines), lines
    assert "Traceback" not in log
    assert leaked(log) == [], leaked(log)


def test_no_secret_reaches_the_screen_or_the_log_of_a_command(
    tmp_path: Path,
    dovecot: servers.Dovecot,
    secret_account: tuple[str, str],
    smtp: servers.SmtpSink,
    pg_url: str,
    protected_redis: servers.RedisServer,
    protected_broker: dict[str, str],
) -> None:
    """`status`, `poll` (working, and with a refused login), `listen` on a broker that refuses
    its password, a database that cannot be reached or parsed, configuration errors: the
    output says what is wrong and never shows a password, plain or URL-encoded."""
    user, _ = secret_account
    db_password = {"CCM_DATABASE_PASSWORD": DB_SECRET}
    good = secret_env(tmp_path, dovecot, user, smtp, pg_url, protected_broker, **db_password)
    closed = servers.free_port()
    config_file = tmp_path / "ccm.env"
    config_file.write_text(f"CCM_IMAP_HOST=imap.example.org\nCCM_SMTP_PASSWORD {SMTP_SECRET}\n")
    runs: list[tuple[str, dict[str, str], tuple[str, ...], int, str]] = [
        ("status", good, ("status",), 0, "messages"),
        (
            "db upgrade",
            good,
            ("db", "upgrade"),
            0,
            "schema up to date: postgresql+psycopg://postgres:***@",
        ),
        ("poll", good, ("poll",), 0, "poll: fetched"),
        (
            "refused login",
            {**good, "CCM_IMAP_PASSWORD": WRONG_IMAP_SECRET},
            ("poll",),
            1,
            f"IMAP login as '{user}'",
        ),
        (
            "database down",
            {**good, "CCM_DATABASE_URL": f"postgresql+psycopg://ccm@127.0.0.1:{closed}/ccm"},
            ("status",),
            2,
            "cannot open the database (postgresql+psycopg://ccm:***@127.0.0.1",
        ),
        (
            "database URL unparseable",
            {
                **good,
                "CCM_DATABASE_URL": "postgresql+psycopg://ccm@127.0.0.1:port/ccm",
            },
            ("status",),
            2,
            "cannot open the database",
        ),
        (
            "bad database URL",
            {**good, "CCM_DATABASE_URL": f"mysql://ccm:{quote(DB_SECRET, safe='')}@db/ccm"},
            ("status",),
            2,
            "configuration error: CCM_DATABASE_URL",
        ),
        (
            "bad broker URL",
            {**good, "CCM_BROKER_URL": f"amqp://u:{quote(BROKER_SECRET, safe='')}@mq/"},
            ("run",),
            2,
            "configuration error: CCM_BROKER_URL",
        ),
        (
            "config file",
            {**good, "CCM_CONFIG_FILE": str(config_file)},
            ("status",),
            2,
            "expected NAME=value",
        ),
    ]
    for name, env, args, code, says in runs:
        done = run_cli(env, *args)
        output = done.stdout + done.stderr
        assert done.returncode == code, (name, output)
        assert says in output, (name, output)
        assert "Traceback" not in output, (name, output)
        assert leaked(output) == [], (name, output)

    # The IDLE listener, whose poll cannot be queued: the broker refuses its password.
    listener_env = {**good, "CCM_BROKER_PASSWORD": WRONG_BROKER_SECRET}
    listener_env.pop("CCM_BROKER_PASSWORD_FILE")
    log = tmp_path / "listen.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "listen"],
            cwd=ROOT,
            env=listener_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "cannot queue a poll" in log.read_text(), 60, "the listener's warning")
        assert proc.poll() is None  # it keeps listening; the beat poll is the safety net
    finally:
        servers.stop_process(proc)
    text_ = log.read_text()
    assert re.search(r"cannot queue a poll on redis://:\*\*\*@127\.0\.0\.1:\d+/0", text_), text_
    assert "Traceback" not in text_
    assert leaked(text_) == [], leaked(text_)


# ======================================================================= JSON only


class _Evidence:
    """Unpickling this creates a file: proof that a pickled message was deserialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.mark.slow
def test_a_pickled_message_on_the_queue_is_refused_and_never_run(
    tmp_path: Path, make_env: Any, sqlite_url: str, broker: str
) -> None:
    from celery import Celery

    evidence = tmp_path / "unpickled"
    sender = Celery("attacker", broker=broker)
    sender.conf.accept_content = ["pickle", "json"]
    with WorkerProcess(make_env(sqlite_url), tmp_path / "worker.log") as worker:
        sent = sender.send_task("ccm.send_outbox", args=[_Evidence(evidence)], serializer="pickle")
        wait_until(
            lambda: "Refusing to deserialize untrusted content of type pickle" in worker.text(),
            60,
            "the worker to refuse the pickled message",
        )
        client = redis.Redis.from_url(broker)
        try:
            # Dropped, not left on the queue or kept unacknowledged for a redelivery.
            wait_until(
                lambda: client.llen("celery") == 0 and client.hlen("unacked") == 0,
                30,
                "the message to be dropped",
            )
        finally:
            client.close()
        log = worker.text()
    assert not evidence.exists()
    assert f"ccm.send_outbox[{sent.id}] received" not in log
    sender.close()


def test_the_app_accepts_json_only() -> None:
    from worker.app import app

    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json" and app.conf.result_serializer == "json"
