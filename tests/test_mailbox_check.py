"""`ccm-intake mailbox check` against the real Dovecot and SMTP sink: one plain line per
check, exit 0 when all pass and 1 when one fails. (OAuth logins: tests/test_oauth.py.)"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted

from tests import servers
from tests.app import run_cli, service_env


@pytest.fixture
def smtp() -> Iterator[servers.SmtpSink]:
    """A sink of this test's own: the session's may still get a late mail from another."""
    with servers.smtp_sink() as sink:
        yield sink


@pytest.fixture
def env(
    tmp_path: Path, dovecot: servers.Dovecot, account: tuple[str, str], smtp: servers.SmtpSink
) -> dict[str, str]:
    user, password = account
    return service_env(
        data_dir=tmp_path / "data",
        db_url=f"sqlite:///{tmp_path / 'ccm.db'}",
        broker_url="redis://127.0.0.1:1/0",  # the check needs no broker
        imap=dovecot,
        imap_user=user,
        imap_password=password,
        smtp_port=smtp.port,
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()


def test_everything_is_checked_and_passes_on_a_good_mailbox(
    env: dict[str, str], dovecot: servers.Dovecot, account: tuple[str, str], smtp: servers.SmtpSink
) -> None:
    user, password = account
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(user, password) as box:
        box.append(b"Subject: one\r\n\r\nbody\r\n", "INBOX")
        box.append(b"Subject: two\r\n\r\nbody\r\n", "INBOX")

    done = run_cli(env, "mailbox", "check")

    assert done.returncode == 0, done.stdout + done.stderr
    got = lines(done)
    probe = re.fullmatch(
        r"✓ folders for sorted mail: 'Filed', 'Needs review', 'Not submissions', 'Quarantine' "
        r"will be made when needed \(folders can be made: '(ccm-intake check \w+)' was made "
        r"and removed\)",
        got[5],
    )
    assert probe, got[5]
    assert got[:5] + got[6:] == [
        f"✓ IMAP server: 127.0.0.1:{dovecot.port} answers (127.0.0.1)",
        "✓ IMAP TLS: not used (CCM_IMAP_SECURITY=none), a server on this machine",
        f"✓ IMAP login: logged in as {user!r} with a password",
        "✓ watched folder: 'INBOX' holds 2 messages",
        "✓ Sent folder: 'Sent' holds 0 messages",
        "✓ IMAP IDLE: supported: `ccm-intake listen` sees new mail at once",
        f"✓ SMTP server: 127.0.0.1:{smtp.port} answers (127.0.0.1)",
        "✓ SMTP TLS: not used (CCM_SMTP_SECURITY=none), a server on this machine",
        "✓ SMTP login: no login (CCM_SMTP_USER is empty); no mail sent",
        "all checks passed",
    ]
    assert smtp.messages == []
    assert password not in done.stdout + done.stderr
    with MailBoxUnencrypted(dovecot.host, dovecot.port).login(user, password) as box:
        assert sorted(f.name for f in box.folder.list()) == ["INBOX", "Sent", "Trash"]


def test_a_wrong_password_is_named_and_the_rest_of_imap_is_not_tried(
    env: dict[str, str], dovecot: servers.Dovecot, account: tuple[str, str]
) -> None:
    user, _ = account
    done = run_cli({**env, "CCM_IMAP_PASSWORD": "not-the-password"}, "mailbox", "check")
    assert done.returncode == 1
    (failed,) = [x for x in lines(done) if x.startswith("✗")]
    assert failed.startswith(
        f"✗ IMAP login: IMAP login as {user!r} at 127.0.0.1:{dovecot.port} refused: "
    )
    assert "[AUTHENTICATIONFAILED] Authentication failed." in failed
    assert failed.endswith("(check CCM_IMAP_USER and CCM_IMAP_PASSWORD)")
    assert not any("watched folder" in x for x in lines(done))
    assert any(x.startswith("✓ SMTP login") for x in lines(done))  # SMTP is checked anyway
    assert lines(done)[-1] == "1 check(s) failed"
    assert "not-the-password" not in done.stdout + done.stderr


def test_an_unknown_folder_is_named_with_the_folders_there_are(env: dict[str, str]) -> None:
    done = run_cli({**env, "CCM_IMAP_FOLDER": "Inbox/Missions"}, "mailbox", "check")
    assert done.returncode == 1
    assert (
        "✗ watched folder: 'Inbox/Missions' does not exist (CCM_IMAP_FOLDER); the mailbox "
        "has: 'INBOX', 'Sent', 'Trash'"
    ) in lines(done)


def test_an_smtp_server_that_is_down_is_said_plainly(env: dict[str, str]) -> None:
    port = servers.free_port()
    done = run_cli({**env, "CCM_SMTP_PORT": str(port)}, "mailbox", "check")
    assert done.returncode == 1
    (smtp_line,) = [x for x in lines(done) if x.startswith("✗")]
    assert smtp_line == (
        f"✗ SMTP server: 127.0.0.1:{port} (127.0.0.1) does not answer: Connection refused "
        "(check CCM_SMTP_HOST and CCM_SMTP_PORT, and that a firewall lets it through)"
    )
    assert any(x.startswith("✓ IMAP IDLE") for x in lines(done))


def test_an_unknown_host_is_said_plainly(env: dict[str, str]) -> None:
    done = run_cli({**env, "CCM_IMAP_HOST": "imap.invalid"}, "mailbox", "check")
    assert done.returncode == 1
    assert lines(done)[0].startswith("✗ IMAP server: cannot find 'imap.invalid': ")
    assert lines(done)[0].endswith("(check CCM_IMAP_HOST)")


def test_keyword_mode_needs_no_folders(env: dict[str, str]) -> None:
    done = run_cli({**env, "CCM_MAILBOX_ACTION": "keyword"}, "mailbox", "check")
    assert done.returncode == 0, done.stdout
    assert (
        "✓ folders for sorted mail: none needed: mail stays in 'INBOX' with $CCM-… keywords"
    ) in lines(done)


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Dovecot]:
    base = tmp_path_factory.mktemp("check-tls")
    try:
        certs = servers.make_certificates(base / "certs")
        with servers.dovecot_server(base / "dovecot", tls=certs) as server:
            yield server
    except servers.ServerError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"dovecot unavailable: {exc}", pytrace=False)
        pytest.skip(f"dovecot unavailable: {exc}")


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_tls_is_verified_and_an_unknown_ca_is_a_failed_check(
    env: dict[str, str], tls_dovecot: servers.Dovecot, security: str
) -> None:
    assert tls_dovecot.tls is not None
    port = tls_dovecot.ssl_port if security == "ssl" else tls_dovecot.port
    tls_env = {
        **env,
        "CCM_IMAP_SECURITY": security,
        "CCM_IMAP_PORT": str(port),
        "CCM_IMAP_USER": "alice",
        "CCM_IMAP_PASSWORD": "alicepw",
    }
    untrusted = run_cli(tls_env, "mailbox", "check")
    assert untrusted.returncode == 1
    assert (
        f"✗ IMAP TLS: IMAP server 127.0.0.1:{port}: TLS certificate verification failed: "
        "unable to get local issuer certificate (give its CA with CCM_IMAP_CA_FILE)"
    ) in lines(untrusted)
    assert not any(x.startswith("✓ IMAP login") for x in lines(untrusted))

    trusted = run_cli({**tls_env, "CCM_IMAP_CA_FILE": str(tls_dovecot.tls.ca)}, "mailbox", "check")
    assert trusted.returncode == 0, trusted.stdout
    assert f"✓ IMAP TLS: {security}, certificate and host name verified" in lines(trusted)
    assert "✓ IMAP login: logged in as 'alice' with a password" in lines(trusted)
