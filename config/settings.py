"""Settings, read once from the environment (prefix ``CCM_``) and an optional file.

``load_settings()`` is the only place that reads them; everything else receives a
``Settings`` value. A bad value stops the program at start with a message that names
the setting (``CCM_IMAP_PORT: …``), never later with a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "CCM_"


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it and is fit for one log line."""


class Security(StrEnum):
    ssl = "ssl"
    starttls = "starttls"
    none = "none"


class AuthMethod(StrEnum):
    """How IMAP or SMTP logs in."""

    password = "password"  # noqa: S105 - the name of a method, not one
    oauth2 = "oauth2"  # an OAuth 2.0 access token (worker/oauth.py)


class OAuthFlow(StrEnum):
    client_credentials = "client_credentials"  # app-only (Microsoft 365 shared mailbox)
    refresh_token = "refresh_token"  # noqa: S105 - delegated: Gmail, a Microsoft user's own consent


class SaslMechanism(StrEnum):
    xoauth2 = "XOAUTH2"  # Microsoft's and Google's
    oauthbearer = "OAUTHBEARER"  # RFC 7628


class MailboxAction(StrEnum):
    """What happens to a processed message in the inbox."""

    move = "move"  # to Filed/<State>, Needs review or Not submissions
    keyword = "keyword"  # leave it where it is, add a keyword ($CCMFiled…)


class LogFormat(StrEnum):
    text = "text"
    json = "json"
    auto = "auto"


class LogLevel(StrEnum):
    debug = "DEBUG"
    info = "INFO"
    warning = "WARNING"
    error = "ERROR"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        # CCM_LOG_LEVEL=info works as well as INFO.
        return next((m for m in cls if isinstance(value, str) and m.value == value.upper()), None)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The inbox.
    imap_host: str = "127.0.0.1"
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_security: Security = Security.ssl
    imap_user: str = "ccm"
    imap_password: SecretStr = SecretStr("")
    imap_password_file: Path | None = None
    imap_folder: str = "INBOX"
    imap_sent_folder: str = "Sent"  # a copy of every mail we send; '' to keep none
    imap_timeout: float = Field(default=30.0, gt=0)
    # TLS (ssl, starttls): the server's certificate and host name are verified against the
    # system's CAs, or only those of imap_ca_file (PEM) when set. Turning verification off
    # lets anyone on the path read the password; the service says so in its log.
    imap_tls_verify: bool = True
    imap_ca_file: Path | None = None

    # The way out.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Security = Security.starttls
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_password_file: Path | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_tls_verify: bool = True  # as for IMAP
    smtp_ca_file: Path | None = None

    # OAuth 2.0 instead of passwords (Microsoft 365, Gmail): worker/oauth.py. IMAP and SMTP
    # each log in with their password or with the one access token these settings obtain.
    imap_auth: AuthMethod = AuthMethod.password
    smtp_auth: AuthMethod = AuthMethod.password
    oauth_flow: OAuthFlow = OAuthFlow.client_credentials
    # Microsoft: the tenant (ID or domain) makes the token URL on oauth_authority (another
    # cloud has another login host). Any other provider: its token endpoint.
    oauth_tenant: str = ""
    oauth_authority: str = "https://login.microsoftonline.com"
    oauth_token_url: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr = SecretStr("")
    oauth_client_secret_file: Path | None = None
    # Only the seed: the provider may rotate it, and the rotated one is kept in the data
    # directory (worker/oauth.py) and used from then on.
    oauth_refresh_token: SecretStr = SecretStr("")
    oauth_refresh_token_file: Path | None = None
    oauth_scope: str = ""  # default: the provider's mail scope (worker/oauth.py)
    oauth_mechanism: SaslMechanism = SaslMechanism.xoauth2
    # The client secret's end date (Entra ID shows it): the digest warns weeks ahead.
    oauth_secret_expires: date | None = None
    oauth_ca_file: Path | None = None  # a PEM CA bundle for the token endpoint's TLS

    # Where things are kept.
    data_dir: Path = Path("./var")
    # The URLs may carry a password; they are left out of repr() and shown only with the
    # password masked (redact_url). Better: give it as *_PASSWORD or *_PASSWORD_FILE, which
    # is put into the URL at load.
    database_url: str = Field(default="", repr=False)  # default: sqlite:///<data_dir>/ccm.db
    database_password: SecretStr = SecretStr("")
    database_password_file: Path | None = None
    archive_dir: Path | None = None  # default: <data_dir>/archive
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)
    broker_password: SecretStr = SecretStr("")  # Redis' requirepass (AUTH)
    broker_password_file: Path | None = None
    # Personal data (rosters, addresses, the mails themselves) older than this many days is
    # purged by a daily task, as `ccm-intake purge --before` does by hand; 0 keeps it all.
    retention_days: int = Field(default=0, ge=0)

    # Logs, on stderr: `text` for a terminal, `json` (one object a line, what docker-compose
    # sets) for a log collector, `auto`: JSON unless stderr is a terminal (worker/logs.py).
    log_format: LogFormat = LogFormat.text
    log_level: LogLevel = LogLevel.info

    # Who we are and whom we tell.
    service_address: str = "ccm@unog.ch"
    service_name: str = "Convention on Cluster Munitions — Secretariat"
    secretary_address: str = "ccm@unog.ch"

    # Behaviour.
    poll_interval: float = Field(default=60.0, ge=1)
    outbox_interval: float = Field(default=30.0, ge=1)
    mailbox_action: MailboxAction = MailboxAction.move
    state_threshold: float = Field(default=0.75, gt=0, le=1)
    # Our mail server's name in Authentication-Results (comma-separated if several); a sender
    # it saw fail SPF/DKIM/DMARC is not trusted. Empty: not checked.
    authserv_ids: str = ""
    # Acknowledgements: at most this many per recipient per hour and per day, and at most
    # ack_global_per_hour in all (a breaker against a loop we did not foresee).
    ack_rate_limit: int = Field(default=3, ge=1)
    ack_rate_limit_day: int = Field(default=10, ge=1)
    ack_global_per_hour: int = Field(default=200, ge=1)
    # Mail received longer ago than this is filed but not acknowledged (0: no such limit).
    ack_max_age_days: int = Field(default=7, ge=0)
    # Deadlines: the calendar file (default: config/data/calendar.toml), whether reminders go
    # out, and when the secretary's digest is sent (Geneva time).
    calendar_file: Path | None = None
    reminders_enabled: bool = True
    reminder_interval: float = Field(default=900.0, ge=10)  # seconds between reminder sweeps
    digest_time: str = "08:00"
    # "Intake has stopped": one mail to the secretary when no poll has succeeded for this
    # many minutes, one when polls work again; 0: no such mail.
    alert_after_minutes: float = Field(default=15.0, ge=0)
    # Seconds before a kept but unprocessed message is queued again (its task was lost).
    retry_grace: float = Field(default=120.0, ge=0)
    # Seconds after which a claim whose worker died (kill -9, lost machine) is taken again:
    # a message left "processing", an outbox mail left "sending". It must outlast the
    # longest legitimate claim (extract_seconds, smtp_timeout); a retaken outbox claim is
    # the one case where a mail can go out twice (with the same Message-ID).
    claim_stale: float = Field(default=600.0, ge=1)
    # Reading attachments: each message's extraction runs in a child process with these
    # bounds; OCR (Tesseract) reads scans when a PDF has no text layer.
    extract_seconds: float = Field(default=60.0, gt=0)
    extract_memory_mb: int = Field(default=1024, ge=64)
    ocr: bool = True
    ocr_seconds: float = Field(default=60.0, gt=0)  # one page
    # What one message may ask for; past any of these it is quarantined with the reason
    # (parsers/limits.py). Sizes in MB or KB as named, decoded sizes for attachments.
    max_message_mb: float = Field(default=50.0, gt=0)
    max_header_kb: float = Field(default=256.0, gt=0)
    max_mime_depth: int = Field(default=20, ge=1)
    max_attachments: int = Field(default=100, ge=1)
    max_attachment_mb: float = Field(default=30.0, gt=0)
    max_zip_entries: int = Field(default=1000, ge=1)
    max_zip_mb: float = Field(default=200.0, gt=0)
    max_zip_ratio: float = Field(default=200.0, gt=1)
    max_zip_depth: int = Field(default=2, ge=1)
    max_pdf_pages: int = Field(default=500, ge=1)

    @field_validator("service_address", "secretary_address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c.isspace() for c in value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value.lower()

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError("must be HH:MM (Geneva time)")
        return f"{int(hours):02d}:{int(minutes):02d}"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "redis+socket://", "memory://")):
            raise ValueError("must be a redis:// URL")
        return value

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        # *_FILE wins over the plain variable: that is how container secrets arrive.
        for name in (
            "imap_password",
            "smtp_password",
            "database_password",
            "broker_password",
            "oauth_client_secret",
            "oauth_refresh_token",
        ):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            try:
                secret = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()}_FILE: cannot read {path}: {exc.strerror}"
                ) from exc
            object.__setattr__(self, name, SecretStr(secret))
        # The database's and the broker's passwords go into their URLs, where the drivers
        # look for them; given twice, neither is guessed to be the right one.
        for url_field, secret_field in (
            ("database_url", "database_password"),
            ("broker_url", "broker_password"),
        ):
            secret = getattr(self, secret_field).get_secret_value()
            if secret:
                merged = url_with_password(getattr(self, url_field), secret)
                if merged is None:
                    raise ValueError(
                        f"{ENV_PREFIX}{secret_field.upper()}: {ENV_PREFIX}{url_field.upper()} "
                        "has no host to log in to, or a password of its own: give it once"
                    )
                object.__setattr__(self, url_field, merged)
        for name in ("imap_ca_file", "smtp_ca_file", "oauth_ca_file"):
            ca_file: Path | None = getattr(self, name)
            if ca_file is not None:
                problem = _unusable_ca_file(ca_file)
                if problem:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()}: {problem}")
        problem = self._oauth_problem()
        if problem:
            raise ValueError(f"{ENV_PREFIX}{problem}")
        return self

    def _oauth_problem(self) -> str:
        """What is missing or contradictory for OAuth ('' when nothing), naming the setting."""
        users = [w for w in ("IMAP", "SMTP") if getattr(self, f"{w.lower()}_auth") == "oauth2"]
        if not users:
            return ""
        why = f"needed with CCM_{users[0]}_AUTH=oauth2"
        if not self.oauth_client_id:
            return f"OAUTH_CLIENT_ID: {why} (the app's client ID)"
        if self.oauth_tenant and self.oauth_token_url:
            return "OAUTH_TOKEN_URL: give it or CCM_OAUTH_TENANT (Microsoft 365), not both"
        if not (self.oauth_tenant or self.oauth_token_url):
            return f"OAUTH_TOKEN_URL: {why} (or CCM_OAUTH_TENANT for Microsoft 365)"
        token_url = urlsplit(self.oauth_token_url)
        if self.oauth_token_url and not (
            (token_url.scheme == "https" and token_url.hostname)
            # plain http only to a token endpoint on this machine (the tests')
            or (token_url.scheme == "http" and _is_loopback(token_url.hostname or ""))
        ):
            return f"OAUTH_TOKEN_URL: must be an https:// URL (got {self.oauth_token_url!r})"
        authority = urlsplit(self.oauth_authority)
        if self.oauth_tenant and not (authority.scheme == "https" and authority.hostname):
            # MSAL, which asks Microsoft for app tokens, speaks nothing else.
            return f"OAUTH_AUTHORITY: must be an https:// URL (got {self.oauth_authority!r})"
        if self.oauth_flow is OAuthFlow.client_credentials:
            if self.oauth_provider == "google":
                return (
                    "OAUTH_FLOW: Gmail gives mailboxes no client-credentials tokens: "
                    "use refresh_token"
                )
            if not self.oauth_client_secret.get_secret_value():
                return "OAUTH_CLIENT_SECRET: needed for CCM_OAUTH_FLOW=client_credentials"
        elif not self.oauth_refresh_token.get_secret_value():
            return "OAUTH_REFRESH_TOKEN: needed for CCM_OAUTH_FLOW=refresh_token (the first one)"
        if self.smtp_auth is AuthMethod.oauth2 and not self.smtp_user:
            return "SMTP_USER: needed with CCM_SMTP_AUTH=oauth2 (the mailbox's address)"
        return ""

    # Derived values: one rule each, in one place.
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'ccm.db').resolve()}"

    @property
    def archive_path(self) -> Path:
        return (self.archive_dir or self.data_dir / "archive").resolve()

    @property
    def trusted_authserv_ids(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.authserv_ids.split(",") if a.strip())

    @property
    def oauth_endpoint(self) -> str:
        """The token endpoint: Microsoft's for the tenant, or the one given."""
        if self.oauth_tenant:
            return f"{self.oauth_authority.rstrip('/')}/{self.oauth_tenant}/oauth2/v2.0/token"
        return self.oauth_token_url

    @property
    def oauth_provider(self) -> str:
        """'microsoft', 'google' or 'other': it decides the default scope and MSAL's use."""
        host = (urlsplit(self.oauth_endpoint).hostname or "").lower()
        if self.oauth_tenant or host.startswith("login.microsoftonline."):
            return "microsoft"
        if host == "google.com" or host.endswith((".google.com", ".googleapis.com")):
            return "google"
        return "other"

    @property
    def account_key(self) -> str:
        """Names the mailbox account in the database: folder keys start with it."""
        return f"{self.imap_user}@{self.imap_host}:{self.imap_port}"

    def folder_key(self, folder: str) -> str:
        return f"{self.account_key}/{folder}"

    @property
    def mailbox_key(self) -> str:
        """Names the polled folder in the database and in the poll lock."""
        return self.folder_key(self.imap_folder)


def url_with_password(url: str, password: str) -> str | None:
    """``url`` with ``password`` put in (percent-encoded); None when it has no host to log in
    to or holds a password already."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not hostport or (at and ":" in userinfo):
        return None
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact_url(url: str) -> str:
    """``url`` fit for a log line or a screen: a password in it (``user:pw@`` or
    ``?password=``) is shown as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}:***@{hostport}")
    if parts.query:
        query = [
            (k, "***" if "password" in k.lower() else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unusable_ca_file(path: Path) -> str:
    """Why ``path`` cannot serve as a CA bundle ('' when it can)."""
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:  # ssl.SSLError is an OSError too
        return f"not a usable PEM CA bundle: {path} ({exc.strerror or exc})"
    return ""


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{ENV_PREFIX}CONFIG_FILE: cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            # The line is not shown: it may be a secret pasted without its name.
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        values[key.strip().lower().removeprefix(ENV_PREFIX.lower())] = value.strip().strip("\"'")
    return values


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings once; raise ConfigError naming the first bad one.

    ``CCM_CONFIG_FILE`` names an optional file of ``CCM_NAME=value`` lines; the
    environment wins over it and ``overrides`` win over both.
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    config_file = env.get(f"{ENV_PREFIX}CONFIG_FILE")
    if config_file:
        values.update(_read_env_file(Path(config_file)))
    prefix = ENV_PREFIX.lower()
    for key, value in env.items():
        if key.lower().startswith(prefix) and key.upper() != f"{ENV_PREFIX}CONFIG_FILE":
            values[key.lower().removeprefix(prefix)] = value
    known = set(Settings.model_fields)
    # Typos fail loudly; CCM_TEST_* and CCM_DEMO_* belong to the test suite and the demo.
    unknown = sorted(k for k in values if k not in known and not k.startswith(("test_", "demo_")))
    if unknown:
        raise ConfigError(f"{ENV_PREFIX}{unknown[0].upper()}: unknown setting")
    values = {k: v for k, v in values.items() if k in known}
    values.update(overrides)
    try:
        # Values are passed explicitly so that the environment is read exactly once, here.
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith(ENV_PREFIX):  # the validator already named the setting
        return message
    got = error.get("input")
    if isinstance(got, str) and field in ("database_url", "broker_url"):
        got = redact_url(got)
    secret = "password" in field or "secret" in field or "token" in field
    shown = "" if isinstance(got, dict) or got is None or secret else f" (got {got!r})"
    return f"{ENV_PREFIX}{field.upper()}: {message}{shown}"
