"""Settings, read once from the environment (prefix ``CCM_``) and an optional file.

``load_settings()`` is the only place that reads them; everything else receives a
``Settings`` value. A bad value stops the program at start with a message that names
the setting (``CCM_IMAP_PORT: …``), never later with a traceback.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

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


class MailboxAction(StrEnum):
    """What happens to a processed message in the inbox."""

    move = "move"  # to Filed/<State>, Needs review or Not submissions
    keyword = "keyword"  # leave it where it is, add a keyword ($CCMFiled…)


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

    # The way out.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Security = Security.starttls
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_password_file: Path | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)

    # Where things are kept.
    data_dir: Path = Path("./var")
    database_url: str = ""  # default: sqlite:///<data_dir>/ccm.db
    archive_dir: Path | None = None  # default: <data_dir>/archive
    broker_url: str = "redis://127.0.0.1:6379/0"

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
    # Deadlines: the calendar file (default: config/data/calendar.toml), whether reminders go
    # out, and when the secretary's digest is sent (Geneva time).
    calendar_file: Path | None = None
    reminders_enabled: bool = True
    reminder_interval: float = Field(default=900.0, ge=10)  # seconds between reminder sweeps
    digest_time: str = "08:00"
    # Seconds before a kept but unprocessed message is queued again (its task was lost).
    retry_grace: float = Field(default=120.0, ge=0)
    # Reading attachments: each message's extraction runs in a child process with these
    # bounds; OCR (Tesseract) reads scans when a PDF has no text layer.
    extract_seconds: float = Field(default=60.0, gt=0)
    extract_memory_mb: int = Field(default=1024, ge=64)
    ocr: bool = True

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
        for name in ("imap_password", "smtp_password"):
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
        return self

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
    def account_key(self) -> str:
        """Names the mailbox account in the database: folder keys start with it."""
        return f"{self.imap_user}@{self.imap_host}:{self.imap_port}"

    def folder_key(self, folder: str) -> str:
        return f"{self.account_key}/{folder}"

    @property
    def mailbox_key(self) -> str:
        """Names the polled folder in the database and in the poll lock."""
        return self.folder_key(self.imap_folder)


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
            raise ConfigError(f"{path}:{number}: expected NAME=value, got {line!r}")
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
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"{ENV_PREFIX}{field.upper()}: {message}{shown}"
