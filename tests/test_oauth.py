"""OAuth 2.0 logins (XOAUTH2 / OAUTHBEARER) for IMAP and SMTP, for real.

A local authorization server (tests/oauth_server.py) issues, rotates and revokes tokens;
Dovecot's ``oauth2`` passdb and the SMTP sink check each token at its introspection endpoint,
as Microsoft 365 and Gmail check theirs. Nothing here talks to Microsoft or Google.
"""

from __future__ import annotations

import json
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from imap_tools import MailBoxUnencrypted
from pydantic import SecretStr

from config.settings import ConfigError, OAuthFlow, Settings, load_settings
from tests import servers
from tests.app import run_cli, service_env
from tests.oauth_server import TokenServer, token_server
from worker import oauth
from worker.digest import DigestData, render_digest
from worker.mailbox import MailboxError, open_inbox
from worker.mailer import SmtpError, send_raw
from worker.samples import australia_article7

# The OAuth SMTP sink asks for a login over plain TCP on loopback: aiosmtpd warns of it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MAILBOX = "ccm@unog.example"
CLIENT_ID = "ccm-intake-app"
CLIENT_SECRET = "app-secret-Zq81x"


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def idp() -> Iterator[TokenServer]:
    """The authorization server: app CLIENT_ID may open MAILBOX."""
    with token_server() as server:
        server.add_client(CLIENT_ID, CLIENT_SECRET, MAILBOX)
        yield server


@pytest.fixture(scope="module")
def oauth_dovecot(
    idp: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Dovecot]:
    try:
        with servers.dovecot_server(
            tmp_path_factory.mktemp("dovecot-oauth"), oauth2_introspection_url=idp.introspection_url
        ) as server:
            yield server
    except servers.ServerError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"dovecot unavailable: {exc}", pytrace=False)
        pytest.skip(f"dovecot unavailable: {exc}")


@pytest.fixture(scope="module")
def oauth_smtp(idp: TokenServer) -> Iterator[servers.OAuthSmtpSink]:
    with servers.smtp_sink(oauth2_introspection_url=idp.introspection_url) as sink:
        assert isinstance(sink, servers.OAuthSmtpSink)
        yield sink


def env_for(
    tmp_path: Path,
    idp: TokenServer,
    imap: Any,
    smtp: servers.SmtpSink,
    **extra: str,
) -> dict[str, str]:
    """A service that logs in to IMAP and SMTP with app tokens (client credentials)."""
    env = service_env(
        data_dir=tmp_path / "data",
        db_url=f"sqlite:///{tmp_path / 'ccm.db'}",
        broker_url="redis://127.0.0.1:1/0",  # never used: poll and check need no broker
        imap=imap,
        imap_user=MAILBOX,
        imap_password="",
        smtp_port=smtp.port,
        CCM_IMAP_AUTH="oauth2",
        CCM_SMTP_AUTH="oauth2",
        CCM_SMTP_USER=MAILBOX,
        CCM_OAUTH_TOKEN_URL=idp.token_url,
        CCM_OAUTH_CLIENT_ID=CLIENT_ID,
        CCM_OAUTH_CLIENT_SECRET=CLIENT_SECRET,
        CCM_OAUTH_SCOPE="mail",
    )
    env.pop("CCM_IMAP_PASSWORD")
    env.update(extra)
    return env


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings({k: v for k, v in env.items() if k.startswith("CCM_")})


def refresh_env(env: dict[str, str], idp: TokenServer) -> dict[str, str]:
    """The same service on the refresh-token flow (a person consented once: the seed)."""
    seed = idp.issue_refresh_token(CLIENT_ID, MAILBOX)
    return {**env, "CCM_OAUTH_FLOW": "refresh_token", "CCM_OAUTH_REFRESH_TOKEN": seed}


def post_refresh(idp: TokenServer, refresh_token: str) -> tuple[int, dict[str, Any]]:
    """A refresh request as anyone could send it, straight to the endpoint."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    request = urllib.request.Request(idp.token_url, urllib.parse.urlencode(form).encode())  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def kept(settings: Settings) -> dict[str, Any]:
    return dict(json.loads(oauth.token_path(settings).read_text()))


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CCM_OAUTH_CLIENT_ID: needed with CCM_IMAP_AUTH=oauth2"),
        (
            {"CCM_OAUTH_CLIENT_ID": "app"},
            "CCM_OAUTH_TOKEN_URL: needed with CCM_IMAP_AUTH=oauth2 (or CCM_OAUTH_TENANT",
        ),
        (
            {"CCM_OAUTH_CLIENT_ID": "app", "CCM_OAUTH_TENANT": "t", "CCM_OAUTH_TOKEN_URL": "x"},
            "CCM_OAUTH_TOKEN_URL: give it or CCM_OAUTH_TENANT (Microsoft 365), not both",
        ),
        (
            {"CCM_OAUTH_CLIENT_ID": "app", "CCM_OAUTH_TOKEN_URL": "http://idp.example.org/t"},
            "CCM_OAUTH_TOKEN_URL: must be an https:// URL",
        ),
        (
            {"CCM_OAUTH_CLIENT_ID": "app", "CCM_OAUTH_TENANT": "contoso.onmicrosoft.com"},
            "CCM_OAUTH_CLIENT_SECRET: needed for CCM_OAUTH_FLOW=client_credentials",
        ),
        (
            {
                "CCM_OAUTH_CLIENT_ID": "app",
                "CCM_OAUTH_TENANT": "t",
                "CCM_OAUTH_CLIENT_SECRET": "s",
                "CCM_OAUTH_AUTHORITY": "http://127.0.0.1:8080",
            },
            "CCM_OAUTH_AUTHORITY: must be an https:// URL",
        ),
        (
            {
                "CCM_OAUTH_CLIENT_ID": "app",
                "CCM_OAUTH_TOKEN_URL": "https://oauth2.googleapis.com/token",
                "CCM_OAUTH_CLIENT_SECRET": "s",
            },
            "CCM_OAUTH_FLOW: Gmail gives mailboxes no client-credentials tokens",
        ),
        (
            {
                "CCM_OAUTH_CLIENT_ID": "app",
                "CCM_OAUTH_TOKEN_URL": "https://oauth2.googleapis.com/token",
                "CCM_OAUTH_FLOW": "refresh_token",
            },
            "CCM_OAUTH_REFRESH_TOKEN: needed for CCM_OAUTH_FLOW=refresh_token",
        ),
        (
            {
                "CCM_OAUTH_CLIENT_ID": "app",
                "CCM_OAUTH_TENANT": "t",
                "CCM_OAUTH_CLIENT_SECRET": "s",
                "CCM_IMAP_AUTH": "password",
                "CCM_SMTP_AUTH": "oauth2",
            },
            "CCM_SMTP_USER: needed with CCM_SMTP_AUTH=oauth2",
        ),
        ({"CCM_OAUTH_MECHANISM": "PLAIN"}, "CCM_OAUTH_MECHANISM: Input should be 'XOAUTH2'"),
    ],
)
def test_oauth_settings_that_cannot_work_are_named_in_one_line(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"CCM_IMAP_AUTH": "oauth2", **env})
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)


def test_the_tenant_makes_microsofts_token_url_and_each_provider_has_its_mail_scope() -> None:
    microsoft = load_settings(
        {
            "CCM_IMAP_AUTH": "oauth2",
            "CCM_OAUTH_TENANT": "contoso.onmicrosoft.com",
            "CCM_OAUTH_CLIENT_ID": "app",
            "CCM_OAUTH_CLIENT_SECRET": "s",
        }
    )
    assert microsoft.oauth_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert oauth.default_scope(microsoft) == "https://outlook.office365.com/.default"
    delegated = microsoft.model_copy(
        update={"oauth_flow": OAuthFlow.refresh_token, "oauth_refresh_token": SecretStr("x")}
    )
    assert "IMAP.AccessAsUser.All" in oauth.default_scope(delegated)
    gmail = load_settings(
        {
            "CCM_IMAP_AUTH": "oauth2",
            "CCM_OAUTH_TOKEN_URL": "https://oauth2.googleapis.com/token",
            "CCM_OAUTH_CLIENT_ID": "app",
            "CCM_OAUTH_FLOW": "refresh_token",
            "CCM_OAUTH_REFRESH_TOKEN": "1//seed",
        }
    )
    assert (gmail.oauth_provider, oauth.default_scope(gmail)) == (
        "google",
        "https://mail.google.com/",
    )


def test_oauth_secrets_come_from_files_and_are_never_shown(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("file-secret-9QxZ\n")
    (tmp_path / "refresh").write_text("file-refresh-7TgW\n")
    s = load_settings(
        {
            "CCM_IMAP_AUTH": "oauth2",
            "CCM_OAUTH_TOKEN_URL": "https://idp.example.org/token",
            "CCM_OAUTH_CLIENT_ID": "app",
            "CCM_OAUTH_FLOW": "refresh_token",
            "CCM_OAUTH_CLIENT_SECRET": "plain",
            "CCM_OAUTH_CLIENT_SECRET_FILE": str(tmp_path / "secret"),
            "CCM_OAUTH_REFRESH_TOKEN_FILE": str(tmp_path / "refresh"),
        }
    )
    assert s.oauth_client_secret.get_secret_value() == "file-secret-9QxZ"
    assert s.oauth_refresh_token.get_secret_value() == "file-refresh-7TgW"
    assert "file-secret-9QxZ" not in repr(s) and "file-refresh-7TgW" not in repr(s)


def test_the_log_masks_the_oauth_secrets_of_the_settings() -> None:
    from worker.redaction import secret_values

    s = load_settings(
        {
            "CCM_IMAP_AUTH": "oauth2",
            "CCM_OAUTH_TOKEN_URL": "https://idp.example.org/token",
            "CCM_OAUTH_CLIENT_ID": "app",
            "CCM_OAUTH_FLOW": "refresh_token",
            "CCM_OAUTH_CLIENT_SECRET": "client-secret-4Rk",
            "CCM_OAUTH_REFRESH_TOKEN": "refresh-token-8Jq",
        }
    )
    assert {"client-secret-4Rk", "refresh-token-8Jq"} <= set(secret_values(s))


def test_the_sasl_strings_are_those_of_the_specifications() -> None:
    xoauth2 = oauth.sasl_response(oauth.SaslMechanism.xoauth2, "a@b.org", "T0K", "h", 993)
    assert xoauth2 == "user=a@b.org\x01auth=Bearer T0K\x01\x01"
    bearer = oauth.sasl_response(oauth.SaslMechanism.oauthbearer, "a,b=c@d.org", "T0K", "h", 993)
    assert bearer == "n,a=a=2Cb=3Dc@d.org,\x01host=h\x01port=993\x01auth=Bearer T0K\x01\x01"


# --------------------------------------------------------------------------- tokens


def test_an_app_token_is_kept_with_its_expiry_and_replaced_when_five_minutes_are_left(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    settings = settings_for(env_for(tmp_path, idp, _FakeImap(), oauth_smtp))
    before = len(idp.grants)
    first = oauth.access_token(settings)
    again = oauth.access_token(settings)
    assert first.fresh and not again.fresh and again.access_token == first.access_token
    assert idp.grants[before:] == ["client_credentials"]

    path = oauth.token_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert kept(settings)["expires_at"] == pytest.approx(time.time() + 3600, abs=30)

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=54), tick=False):
        assert oauth.access_token(settings).access_token == first.access_token  # 6 min left
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=56), tick=False):
        renewed = oauth.access_token(settings)  # 4 min left: replaced before use
    assert renewed.fresh and renewed.access_token != first.access_token
    assert idp.grants[before:] == ["client_credentials"] * 2


def test_a_rotated_refresh_token_is_saved_and_used_and_the_old_one_is_refused(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    env = refresh_env(env_for(tmp_path, idp, _FakeImap(), oauth_smtp), idp)
    seed = env["CCM_OAUTH_REFRESH_TOKEN"]
    settings = settings_for(env)

    oauth.access_token(settings)
    second = kept(settings)["refresh_token"]
    assert second.startswith("rt-") and second != seed
    assert post_refresh(idp, seed) == (
        400,
        {
            "error": "invalid_grant",
            "error_description": "AADSTS70008: The refresh token has expired or is revoked.",
        },
    )

    # A later process (the settings still hold only the seed) uses the saved one.
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=False):
        token = oauth.access_token(settings_for(env))
    assert token.fresh
    third = kept(settings)["refresh_token"]
    assert third not in (seed, second)
    assert post_refresh(idp, second)[0] == 400
    assert second not in idp.refresh_tokens and third in idp.refresh_tokens


def test_a_new_refresh_token_in_the_settings_starts_a_new_chain(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    env = refresh_env(env_for(tmp_path, idp, _FakeImap(), oauth_smtp), idp)
    oauth.access_token(settings_for(env))
    idp.revoke_all(MAILBOX)  # signed out everywhere; a person signs in again:
    renewed = refresh_env(env, idp)
    token = oauth.access_token(settings_for(renewed))
    assert token.fresh and idp.is_active(token.access_token)


def test_a_revoked_refresh_token_is_a_permanent_plain_error_remembered_for_the_digest(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    settings = settings_for(refresh_env(env_for(tmp_path, idp, _FakeImap(), oauth_smtp), idp))
    token = oauth.access_token(settings)
    idp.revoke(kept(settings)["refresh_token"])
    oauth.forget_access_token(settings, token)

    with pytest.raises(oauth.OAuthError) as caught:
        oauth.access_token(settings)
    assert caught.value.permanent
    assert str(caught.value).startswith(
        f"the token endpoint {idp.token_url} refused the refresh token (invalid_grant: "
        "AADSTS70008: The refresh token has expired or is revoked.): it was revoked, expired "
        "or already used; sign in again"
    )
    assert "CCM_OAUTH_REFRESH_TOKEN" in str(caught.value)

    (warning,) = oauth.credential_warnings(settings, date.today())
    assert warning.short == "mailbox sign-in failing"
    assert "refused the refresh token" in warning.detail


def test_a_wrong_client_secret_and_an_unreachable_endpoint_are_told_apart(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    env = env_for(tmp_path, idp, _FakeImap(), oauth_smtp)
    with pytest.raises(oauth.OAuthError) as wrong:
        oauth.access_token(settings_for({**env, "CCM_OAUTH_CLIENT_SECRET": "not-the-secret"}))
    assert wrong.value.permanent
    assert "refused the app (invalid_client: AADSTS7000215: Invalid client secret.)" in str(
        wrong.value
    )
    assert "check CCM_OAUTH_CLIENT_ID and CCM_OAUTH_CLIENT_SECRET" in str(wrong.value)

    nobody = f"http://127.0.0.1:{servers.free_port()}/token"
    with pytest.raises(oauth.OAuthError) as down:
        oauth.access_token(settings_for({**env, "CCM_OAUTH_TOKEN_URL": nobody}))
    assert not down.value.permanent  # the outbox and the poll try again later
    assert str(down.value).startswith(f"OAuth token endpoint {nobody} unreachable:")


def test_msal_gets_microsofts_app_token_from_a_tenant_over_https(
    tmp_path: Path, oauth_smtp: servers.SmtpSink
) -> None:
    """The Microsoft path (CCM_OAUTH_TENANT) goes through MSAL: tenant discovery and the
    client-credentials request, against a local HTTPS endpoint with a test CA."""
    certs = servers.make_certificates(tmp_path / "certs")
    with token_server(tls=certs.server_context()) as https_idp:
        https_idp.add_client(CLIENT_ID, CLIENT_SECRET, MAILBOX)
        env = env_for(tmp_path, https_idp, _FakeImap(), oauth_smtp)
        del env["CCM_OAUTH_TOKEN_URL"], env["CCM_OAUTH_SCOPE"]
        env.update(
            CCM_OAUTH_TENANT="contoso.onmicrosoft.com",
            CCM_OAUTH_AUTHORITY=https_idp.base,
            CCM_OAUTH_CA_FILE=str(certs.ca),
        )
        settings = settings_for(env)
        assert settings.oauth_provider == "microsoft"

        token = oauth.access_token(settings)
        assert token.fresh and https_idp.is_active(token.access_token)
        assert https_idp.grants == ["client_credentials"]
        assert https_idp.introspect(token.access_token)["scope"] == oauth.MICROSOFT_APP_SCOPE

        oauth.forget_access_token(settings, token)
        wrong = settings.model_copy(update={"oauth_client_secret": SecretStr("expired")})
        with pytest.raises(oauth.OAuthError) as caught:
            oauth.access_token(wrong)
        assert caught.value.permanent
        assert "refused the app (invalid_client: AADSTS7000215" in str(caught.value)

        # Without the test CA, the endpoint's certificate cannot be verified: said so plainly.
        untrusted = settings.model_copy(update={"oauth_ca_file": None})
        with pytest.raises(oauth.OAuthError) as unverified:
            oauth.access_token(untrusted)
        assert "Microsoft sign-in at" in str(unverified.value)
        assert "CERTIFICATE_VERIFY_FAILED" in str(unverified.value)


# --------------------------------------------------------------------------- IMAP and SMTP


class _FakeImap:
    """Where a test that never logs in to IMAP says its server is."""

    host = "127.0.0.1"
    port = 9


def append_as(imap: servers.Dovecot, idp: TokenServer, raw: bytes) -> None:
    """Put a mail in MAILBOX's inbox, logged in with a token of the app's."""
    _, answer = idp.token(
        {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        None,
    )
    box = MailBoxUnencrypted(imap.host, imap.port)
    box.xoauth2(MAILBOX, answer["access_token"], initial_folder=None)
    try:
        box.append(raw, "INBOX")
    finally:
        box.logout()


def test_the_poll_reads_and_answers_with_app_tokens_over_xoauth2(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    oauth_smtp.clear()
    env = env_for(tmp_path, idp, oauth_dovecot, oauth_smtp, CCM_MAILBOX_ACTION="keyword")
    append_as(oauth_dovecot, idp, australia_article7(datetime.now(UTC)).raw)

    done = run_cli(env, "poll")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "fetched 1, new 1" in done.stdout
    (ack,) = oauth_smtp.wait_for_count(1)
    assert "CCM/ART7/" in str(ack.message["Subject"])
    assert ack.login == MAILBOX  # the sink takes no mail without a checked token
    assert oauth_smtp.logins[-1] == ("XOAUTH2", MAILBOX, True)
    assert "Traceback" not in done.stderr
    assert "method=XOAUTH2" in oauth_dovecot.log.read_text()


def test_oauthbearer_works_for_imap_and_smtp(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    oauth_smtp.clear()
    settings = settings_for(
        env_for(tmp_path, idp, oauth_dovecot, oauth_smtp, CCM_OAUTH_MECHANISM="OAUTHBEARER")
    )
    with open_inbox(settings) as inbox:
        assert inbox.message_count("INBOX") is not None
    send_raw(settings, b"Subject: hello\r\n\r\nhi\r\n", MAILBOX, ["x@example.org"])
    (mail,) = oauth_smtp.wait_for_count(1)
    assert mail.login == MAILBOX and oauth_smtp.logins[-1] == ("OAUTHBEARER", MAILBOX, True)
    assert "method=OAUTHBEARER" in oauth_dovecot.log.read_text()


def test_a_token_the_server_refuses_is_replaced_once_then_the_login_works(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    settings = settings_for(env_for(tmp_path, idp, oauth_dovecot, oauth_smtp))
    first = oauth.access_token(settings)
    idp.revoke(first.access_token)  # an administrator ended the session
    grants = len(idp.grants)

    with open_inbox(settings) as inbox:
        assert inbox.message_count("INBOX") is not None
    assert len(idp.grants) == grants + 1
    assert kept(settings)["access_token"] != first.access_token

    idp.revoke(kept(settings)["access_token"])
    oauth_smtp.clear()
    send_raw(settings, b"Subject: again\r\n\r\nhi\r\n", MAILBOX, ["x@example.org"])
    assert oauth_smtp.wait_for_count(1)[0].login == MAILBOX
    assert len(idp.grants) == grants + 2


def test_an_app_without_access_to_the_mailbox_is_refused_plainly(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    """A valid token for another mailbox: Dovecot refuses it (the username must match)."""
    idp.add_client("other-app", "other-secret", "someone-else@unog.example")
    env = env_for(
        tmp_path,
        idp,
        oauth_dovecot,
        oauth_smtp,
        CCM_OAUTH_CLIENT_ID="other-app",
        CCM_OAUTH_CLIENT_SECRET="other-secret",
    )
    with pytest.raises(MailboxError) as caught, open_inbox(settings_for(env)):
        pass
    assert caught.value.permanent
    message = str(caught.value)
    assert message.startswith(
        f"IMAP login as {MAILBOX!r} at 127.0.0.1:{oauth_dovecot.port} with XOAUTH2 refused the "
        f"OAuth token from {idp.token_url}: [AUTHENTICATIONFAILED]"
    )
    assert "has the app been given access to this mailbox" in message

    with pytest.raises(SmtpError) as smtp_refused:
        send_raw(settings_for(env), b"Subject: x\r\n\r\nx\r\n", MAILBOX, ["x@example.org"])
    assert "535" in str(smtp_refused.value)
    assert not smtp_refused.value.permanent  # the mail waits in the outbox for a person


def test_a_revoked_sign_in_is_one_plain_line_from_the_poll_and_the_check(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    env = refresh_env(env_for(tmp_path, idp, oauth_dovecot, oauth_smtp), idp)
    good = run_cli(env, "poll")
    assert good.returncode == 0, good.stdout + good.stderr
    idp.revoke_all(MAILBOX)  # the account's sessions were revoked by its administrator

    poll = run_cli(env, "poll")
    assert poll.returncode == 1
    (line,) = [x for x in poll.stderr.splitlines() if x.startswith("ccm-intake:")]
    assert f"IMAP login as {MAILBOX!r}: the token endpoint {idp.token_url} refused" in line
    assert "sign in again" in line and "CCM_OAUTH_REFRESH_TOKEN" in line
    assert "Traceback" not in poll.stdout + poll.stderr

    check = run_cli(env, "mailbox", "check")
    assert check.returncode == 1
    lines = check.stdout.splitlines()
    assert lines[0].startswith(f"✗ OAuth token: the token endpoint {idp.token_url} refused the")
    assert "✗ IMAP login: not tried: no OAuth token (see above)" in lines
    assert "✗ SMTP login: not tried: no OAuth token (see above)" in lines
    seed = env["CCM_OAUTH_REFRESH_TOKEN"]
    assert seed not in check.stdout + check.stderr + poll.stdout + poll.stderr


def test_mailbox_check_with_oauth_passes_every_check(
    tmp_path: Path,
    idp: TokenServer,
    oauth_dovecot: servers.Dovecot,
    oauth_smtp: servers.OAuthSmtpSink,
) -> None:
    oauth_smtp.clear()
    env = env_for(tmp_path, idp, oauth_dovecot, oauth_smtp)
    done = run_cli(env, "mailbox", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"✓ OAuth token: new token from {idp.token_url} (client_credentials)"
    )
    assert f"✓ IMAP login: logged in as {MAILBOX!r} with XOAUTH2" in lines
    assert f"✓ SMTP login: logged in as {MAILBOX!r} with XOAUTH2; no mail sent" in lines
    assert lines[-1] == "all checks passed"
    assert oauth_smtp.messages == []
    assert CLIENT_SECRET not in done.stdout + done.stderr


# --------------------------------------------------------------------------- the digest


def test_the_digest_warns_of_a_client_secret_that_ends_within_a_month(tmp_path: Path) -> None:
    base = {
        "CCM_DATA_DIR": str(tmp_path),
        "CCM_IMAP_AUTH": "oauth2",
        "CCM_OAUTH_TENANT": "contoso.onmicrosoft.com",
        "CCM_OAUTH_CLIENT_ID": "11111111-2222",
        "CCM_OAUTH_CLIENT_SECRET": "s3cret-value",
    }
    today = date(2017, 8, 17)
    far = load_settings({**base, "CCM_OAUTH_SECRET_EXPIRES": "2017-12-31"})
    assert oauth.credential_warnings(far, today) == []
    soon = load_settings({**base, "CCM_OAUTH_SECRET_EXPIRES": "2017-08-29"})
    (warning,) = oauth.credential_warnings(soon, today)
    assert warning.short == "mailbox app secret ends in 12 d"
    assert warning.detail.startswith(
        "The OAuth client secret of app 11111111-2222 expires on 29 Aug 2017 (in 12 days): "
        "make a new one"
    )
    assert oauth.credential_warnings(soon, date(2017, 9, 2))[0].short == (
        "mailbox app secret expired"
    )
    passwords = load_settings({"CCM_DATA_DIR": str(tmp_path)})
    assert oauth.credential_warnings(passwords, today) == []

    until = datetime(2017, 8, 17, 6, 0, tzinfo=UTC)
    data = DigestData(
        today=today, since=until - timedelta(days=1), until=until, credentials=(warning,)
    )
    subject, text, html = render_digest(data)
    assert "attention: " in subject and "mailbox app secret ends in 12 d" in subject
    assert f"MAILBOX SIGN-IN: {warning.detail}" in text
    assert "Mailbox sign-in" in html and "expires on 29 Aug 2017 (in 12 days)" in html


def test_the_digest_warns_of_a_refresh_token_whose_end_the_provider_announced(
    tmp_path: Path, idp: TokenServer, oauth_smtp: servers.SmtpSink
) -> None:
    settings = settings_for(refresh_env(env_for(tmp_path, idp, _FakeImap(), oauth_smtp), idp))
    idp.refresh_lifetime = 10 * 86400  # a Google app in "testing": a week or so
    try:
        oauth.access_token(settings)
    finally:
        idp.refresh_lifetime = None
    (warning,) = oauth.credential_warnings(settings, date.today())
    assert warning.short == "mailbox sign-in ends in 10 d"
    assert "sign in again with the mailbox's account" in warning.detail
