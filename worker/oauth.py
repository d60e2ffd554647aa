"""OAuth 2.0 access tokens for the IMAP and SMTP logins (Microsoft 365, Gmail, any RFC 6749
server), and the SASL strings that carry them (XOAUTH2, OAUTHBEARER).

Two ways to a token:

* **client credentials** (RFC 6749 §4.4): the app's own token, e.g. app-only access to a
  Microsoft 365 shared mailbox. For Microsoft (``CCM_OAUTH_TENANT``) it is asked through MSAL,
  Microsoft's own library; for any other provider with a plain token request.
* **refresh token** (RFC 6749 §6): a person consented once (Gmail, a delegated Microsoft
  account) and the refresh token from that consent is the seed. Providers may *rotate* it —
  answer a refresh with a new refresh token and refuse the old one from then on — so each new
  one is written down at once and used next time; the setting is only the first.

Tokens are kept in ``<data_dir>/oauth/token.json`` (0600, written atomically) with their
expiry, shared by every process of the service on the machine; a token with less than
``MARGIN`` left is replaced before use. Getting one is serialised by a file lock, so two
processes never spend the same rotating refresh token. The file also remembers the last
failure, which the digest reports with the client secret's and refresh token's end dates
(``credential_warnings``). No network in that part.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from config.settings import OAuthFlow, SaslMechanism, Settings
from worker.errors import IntakeError

log = logging.getLogger(__name__)

MARGIN = 300.0  # seconds: a token with less left than this is replaced before use
DEFAULT_LIFETIME = 3600.0  # when the endpoint does not say (expires_in is only RECOMMENDED)
HTTP_TIMEOUT = 30.0
WARN_DAYS = 30  # the digest warns this many days before a credential ends

# The scope asked for when CCM_OAUTH_SCOPE is empty.
MICROSOFT_APP_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_USER_SCOPE = (
    "https://outlook.office365.com/IMAP.AccessAsUser.All "
    "https://outlook.office365.com/SMTP.Send offline_access"
)
GOOGLE_SCOPE = "https://mail.google.com/"

# Answers of a token endpoint (RFC 6749 §5.2) that no retry will change: a person must act.
PERMANENT_ERRORS = {
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "unsupported_grant_type",
    "invalid_request",
}


class OAuthError(IntakeError):
    """No access token: the message says why, plainly, and what to do."""


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    expires_at: float  # epoch seconds
    fresh: bool  # obtained by this call (False: from the cache)

    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)


@dataclass
class _Kept:
    """What token.json holds."""

    key: str = ""  # which endpoint, client and scope the access token is for
    access_token: str = ""
    expires_at: float = 0.0
    seed: str = ""  # fingerprint of the settings' refresh token the chain below grew from
    refresh_token: str = ""  # the latest (rotated) refresh token
    refresh_token_since: float = 0.0
    refresh_token_expires_at: float = 0.0  # 0: not said
    failing_since: float = 0.0  # 0: the last request worked
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CredentialWarning:
    short: str  # for the digest's "Attention:" line
    detail: str  # the whole story, with what to do


# --------------------------------------------------------------------------- public


def default_scope(settings: Settings) -> str:
    if settings.oauth_scope:
        return settings.oauth_scope
    provider = settings.oauth_provider
    if provider == "microsoft":
        if settings.oauth_flow is OAuthFlow.client_credentials:
            return MICROSOFT_APP_SCOPE
        return MICROSOFT_USER_SCOPE
    if provider == "google":
        return GOOGLE_SCOPE
    return ""


def identity(settings: Settings) -> tuple[object, ...]:
    """What a login with a token depends on besides the server: a kept connection (IMAP,
    SMTP) is reused only while these are the same. The data directory holds the token cache."""
    return (
        settings.data_dir,
        settings.oauth_flow,
        settings.oauth_tenant,
        settings.oauth_authority,
        settings.oauth_token_url,
        settings.oauth_client_id,
        settings.oauth_client_secret.get_secret_value(),
        settings.oauth_refresh_token.get_secret_value(),
        settings.oauth_scope,
        settings.oauth_mechanism,
        settings.oauth_ca_file,
    )


def access_token(settings: Settings, *, now: float | None = None) -> Token:
    """A token with at least ``MARGIN`` seconds left: the kept one, or a new one."""
    path = token_path(settings)
    key = _key(settings)
    kept = _read(path)
    moment = time.time() if now is None else now
    if _usable(kept, key, moment):
        return Token(kept.access_token, kept.expires_at, fresh=False)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path.with_suffix(".lock")):
        kept = _read(path)  # again: another process may have just done it
        if _usable(kept, key, moment):
            return Token(kept.access_token, kept.expires_at, fresh=False)
        return _obtain(settings, path, kept, key, moment)


def forget_access_token(settings: Settings, token: Token) -> None:
    """The server refused ``token`` (revoked, or its permissions changed): never serve it
    again, so the next ``access_token`` asks for a new one."""
    path = token_path(settings)
    if not path.exists():
        return
    with _locked(path.with_suffix(".lock")):
        kept = _read(path)
        if kept.access_token == token.access_token:
            kept.access_token, kept.expires_at = "", 0.0
            _write(path, kept)


def sasl_response(mechanism: SaslMechanism, user: str, token: str, host: str, port: int) -> str:
    """The SASL initial response for ``mechanism`` (not yet base64-encoded)."""
    if mechanism is SaslMechanism.oauthbearer:
        # RFC 7628 §3.1: a GS2 header, then key=value pairs, each ended by ^A.
        authzid = user.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    # Google's and Microsoft's XOAUTH2.
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def token_path(settings: Settings) -> Path:
    return settings.data_dir / "oauth" / "token.json"


def credential_warnings(
    settings: Settings, today: date, *, warn_days: int = WARN_DAYS
) -> list[CredentialWarning]:
    """What will stop the OAuth logins soon, or already does; reads only the settings and the
    kept token file (no network). Empty when neither IMAP nor SMTP uses OAuth."""
    if "oauth2" not in (settings.imap_auth, settings.smtp_auth):
        return []
    warnings: list[CredentialWarning] = []
    ends = settings.oauth_secret_expires
    if ends is not None and (ends - today).days <= warn_days:
        days = (ends - today).days
        when = f"expired on {ends:%d %b %Y}" if days < 0 else f"expires on {ends:%d %b %Y}"
        left = "" if days < 0 else f" (in {days} day{'s' if days != 1 else ''})"
        warnings.append(
            CredentialWarning(
                short="mailbox app secret " + ("expired" if days < 0 else f"ends in {days} d"),
                detail=(
                    f"The OAuth client secret of app {settings.oauth_client_id} {when}{left}: "
                    "make a new one (Entra ID: App registrations, Certificates & secrets), "
                    "put it in CCM_OAUTH_CLIENT_SECRET and set CCM_OAUTH_SECRET_EXPIRES to "
                    "its end date; without it no mail is read or sent."
                ),
            )
        )
    kept = _read(token_path(settings))
    if kept.refresh_token_expires_at and settings.oauth_flow is OAuthFlow.refresh_token:
        ends = datetime.fromtimestamp(kept.refresh_token_expires_at, UTC).date()
        days = (ends - today).days
        if days <= warn_days:
            warnings.append(
                CredentialWarning(
                    short="mailbox sign-in " + ("expired" if days < 0 else f"ends in {days} d"),
                    detail=(
                        f"The OAuth refresh token for {settings.imap_user} "
                        + (
                            f"expired on {ends:%d %b %Y}"
                            if days < 0
                            else f"ends on "
                            f"{ends:%d %b %Y} (in {days} day{'s' if days != 1 else ''})"
                        )
                        + ": sign in again with the mailbox's account and put the new "
                        "refresh token in CCM_OAUTH_REFRESH_TOKEN."
                    ),
                )
            )
    if kept.failing_since:
        since = datetime.fromtimestamp(kept.failing_since, UTC)
        warnings.append(
            CredentialWarning(
                short="mailbox sign-in failing",
                detail=(
                    f"Getting an OAuth token has failed since {since:%d %b %Y %H:%M} UTC: "
                    f"{kept.last_error}"
                ),
            )
        )
    return warnings


# --------------------------------------------------------------------------- obtaining


def _obtain(settings: Settings, path: Path, kept: _Kept, key: str, now: float) -> Token:
    seed = settings.oauth_refresh_token.get_secret_value()
    fingerprint = _fingerprint(settings)
    if kept.seed != fingerprint:
        # A new refresh token in the settings (a person signed in again) starts a new chain.
        kept.seed, kept.refresh_token = fingerprint, seed
        kept.refresh_token_since, kept.refresh_token_expires_at = now, 0.0
    try:
        if settings.oauth_flow is OAuthFlow.refresh_token:
            answer = _post(
                settings,
                {
                    "grant_type": "refresh_token",
                    "refresh_token": kept.refresh_token,
                    "client_id": settings.oauth_client_id,
                    **_secret(settings),
                    **_scope(settings),
                },
            )
        elif settings.oauth_provider == "microsoft":
            answer = _msal_client_credentials(settings)
        else:
            answer = _post(
                settings,
                {
                    "grant_type": "client_credentials",
                    "client_id": settings.oauth_client_id,
                    **_secret(settings),
                    **_scope(settings),
                },
            )
        token = str(answer.get("access_token") or "")
        if not token:
            raise OAuthError(
                f"OAuth token endpoint {settings.oauth_endpoint} answered without an access_token"
            )
    except OAuthError as exc:
        if not kept.failing_since:
            kept.failing_since = now
        kept.last_error = str(exc)
        kept.access_token, kept.expires_at = "", 0.0
        _write(path, kept)
        raise
    lifetime = _number(answer.get("expires_in"), DEFAULT_LIFETIME)
    kept.key, kept.access_token, kept.expires_at = key, token, now + lifetime
    rotated = answer.get("refresh_token")
    if isinstance(rotated, str) and rotated and rotated != kept.refresh_token:
        kept.refresh_token, kept.refresh_token_since = rotated, now
        kept.refresh_token_expires_at = 0.0
        log.info("oauth: the token endpoint rotated the refresh token; the new one is kept")
    rt_lifetime = _number(answer.get("refresh_token_expires_in"), 0.0)
    if rt_lifetime:
        kept.refresh_token_expires_at = now + rt_lifetime
    kept.failing_since, kept.last_error = 0.0, ""
    _write(path, kept)  # before the token is used: a rotated refresh token must not be lost
    log.info(
        "oauth: new access token from %s, valid %d min", settings.oauth_endpoint, lifetime // 60
    )
    return Token(token, kept.expires_at, fresh=True)


def _secret(settings: Settings) -> dict[str, str]:
    secret = settings.oauth_client_secret.get_secret_value()
    return {"client_secret": secret} if secret else {}  # a public client has none


def _scope(settings: Settings) -> dict[str, str]:
    scope = default_scope(settings)
    return {"scope": scope} if scope else {}


def _number(value: object, default: float) -> float:
    try:
        return float(value) if value is not None else default  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _context(settings: Settings) -> ssl.SSLContext:
    ca_file = settings.oauth_ca_file
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _post(settings: Settings, form: dict[str, str]) -> dict[str, Any]:
    """One token request (RFC 6749 §4.4.2, §6); OAuthError says what went wrong."""
    url = settings.oauth_endpoint
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in the settings
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        method="POST",
    )
    context = _context(settings) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(  # noqa: S310 - https, or http to this machine only
            request, timeout=HTTP_TIMEOUT, context=context
        ) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise _refusal(settings, exc.code, exc.read()) from exc
    except ssl.SSLCertVerificationError as exc:
        raise OAuthError(
            f"OAuth token endpoint {url}: TLS certificate verification failed: "
            f"{exc.verify_message or exc.reason} (give its CA with CCM_OAUTH_CA_FILE)",
            permanent=True,
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthError(f"OAuth token endpoint {url} unreachable: {reason}") from exc
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise OAuthError(f"OAuth token endpoint {url} did not answer with JSON") from exc
    if not isinstance(answer, dict):
        raise OAuthError(f"OAuth token endpoint {url} did not answer with a JSON object")
    return answer


def _refusal(settings: Settings, status: int, body: bytes) -> OAuthError:
    """An error answer (RFC 6749 §5.2) as one plain line with what to do about it."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    code = str(answer.get("error") or f"HTTP {status}")
    said = str(answer.get("error_description") or "").strip().splitlines()
    words = f"{code}: {said[0][:200]}" if said else code
    url = settings.oauth_endpoint
    if code == "invalid_grant" and settings.oauth_flow is OAuthFlow.refresh_token:
        return OAuthError(
            f"the token endpoint {url} refused the refresh token ({words}): it was revoked, "
            "expired or already used; sign in again with the mailbox's account and put the new "
            "refresh token in CCM_OAUTH_REFRESH_TOKEN",
            permanent=True,
        )
    if code in ("invalid_client", "unauthorized_client"):
        return OAuthError(
            f"the token endpoint {url} refused the app ({words}): check CCM_OAUTH_CLIENT_ID "
            "and CCM_OAUTH_CLIENT_SECRET (has the secret expired?)",
            permanent=True,
        )
    if code == "invalid_scope":
        return OAuthError(
            f"the token endpoint {url} refused the scope {default_scope(settings)!r} ({words}):"
            " check CCM_OAUTH_SCOPE",
            permanent=True,
        )
    return OAuthError(
        f"the token endpoint {url} refused: {words}",
        permanent=code in PERMANENT_ERRORS or (400 <= status < 500 and status != 429),
    )


def _msal_client_credentials(settings: Settings) -> dict[str, Any]:
    """Microsoft's app-only token through MSAL (it speaks to Entra ID as Microsoft intends:
    tenant discovery, its own telemetry headers and error codes)."""
    import msal  # not at module level: only Microsoft's client credentials need it

    authority = f"{settings.oauth_authority.rstrip('/')}/{settings.oauth_tenant}"
    try:
        app = msal.ConfidentialClientApplication(
            settings.oauth_client_id,
            client_credential=settings.oauth_client_secret.get_secret_value(),
            authority=authority,
            # No instance discovery: Microsoft's own hosts need none, and another host
            # (CCM_OAUTH_AUTHORITY) is the operator's choice, not Microsoft's to vet.
            instance_discovery=False,
            http_client=_msal_session(settings),
            token_cache=msal.TokenCache(),  # ours is token.json; MSAL's lives in memory
        )
        answer = app.acquire_token_for_client(scopes=[default_scope(settings)])
    except ValueError as exc:  # authority discovery: an unknown tenant, a bad host
        raise OAuthError(
            f"Microsoft sign-in at {authority} failed: {str(exc).splitlines()[0][:300]} "
            "(check CCM_OAUTH_TENANT)",
            permanent=True,
        ) from exc
    except OSError as exc:  # requests' ConnectionError, SSLError and Timeout are OSErrors
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise OAuthError(
                f"Microsoft sign-in at {authority}: TLS certificate verification failed "
                "(CERTIFICATE_VERIFY_FAILED; give its CA with CCM_OAUTH_CA_FILE)",
                permanent=True,
            ) from exc
        raise OAuthError(f"Microsoft sign-in at {authority} unreachable: {exc}") from exc
    if not isinstance(answer, dict):
        raise OAuthError(f"Microsoft sign-in at {authority} gave no answer")
    if "error" in answer:
        status = 400 if answer["error"] in PERMANENT_ERRORS else 503
        body = json.dumps(answer).encode()
        raise _refusal(settings, status, body)
    return answer


def _msal_session(settings: Settings) -> Any:
    """The requests session MSAL talks through: proxies from the environment as usual, a
    timeout on every request, and CCM_OAUTH_CA_FILE, when set, winning over
    REQUESTS_CA_BUNDLE (which requests otherwise lets override a session's ``verify``)."""
    import requests

    ca_file = settings.oauth_ca_file

    class Session(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", HTTP_TIMEOUT)
            return super().request(*args, **kwargs)

        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
            chosen = super().merge_environment_settings(*args, **kwargs)
            if ca_file is not None:
                chosen["verify"] = str(ca_file)
            return chosen

    session = Session()
    session.mount("https://", requests.adapters.HTTPAdapter(max_retries=1))
    return session


# --------------------------------------------------------------------------- the kept file


def _key(settings: Settings) -> str:
    """What the kept access token was got with: a change of any of these (a new seed is a
    new sign-in, perhaps of another account) needs a new one."""
    what = "\n".join(
        (
            settings.oauth_flow.value,
            settings.oauth_endpoint,
            settings.oauth_client_id,
            default_scope(settings),
            _fingerprint(settings),
        )
    )
    return hashlib.sha256(what.encode()).hexdigest()[:32]


def _fingerprint(settings: Settings) -> str:
    seed = settings.oauth_refresh_token.get_secret_value()
    return hashlib.sha256(seed.encode()).hexdigest() if seed else ""


def _usable(kept: _Kept, key: str, now: float) -> bool:
    return bool(kept.access_token) and kept.key == key and kept.expires_at - now > MARGIN


def _read(path: Path) -> _Kept:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _Kept()
    except (OSError, ValueError) as exc:
        log.warning("oauth: %s unreadable (%s): starting afresh", path, exc)
        return _Kept()
    known = {k: v for k, v in data.items() if k in _Kept.__dataclass_fields__}
    return _Kept(**known)


def _write(path: Path, kept: _Kept) -> None:
    """Atomically, 0600 from the start: a crash leaves the old file or the new, never half,
    and no moment when another user could read the tokens."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".token.", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(kept), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename on disk, too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """One process at a time gets a token (a rotated refresh token may be spent once)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
