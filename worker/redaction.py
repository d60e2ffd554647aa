"""Secrets stay out of the log: a last line of defence behind not printing them at all.

The service never formats a password into a message on purpose (URLs are shown through
``config.settings.redact_url``), but libraries do what they do: an exception may carry a
connection string, a debug line a command. ``protect_logs(settings)`` installs a log record
factory that masks the settings' secrets — as written, and as they appear percent-encoded
in a URL — in every record's message and traceback, whatever handler writes it later
(ours, or the ones Celery sets up). ``scrub(text)`` does the same for what a command prints.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from config.settings import Settings

MASK = "***"
# Shorter values are not masked: they would turn ordinary words of the log into stars, and a
# password that short is no secret anyway.
MIN_SECRET_LENGTH = 6

_secrets: list[str] = []
_lock = threading.Lock()
_original_factory: Callable[..., logging.LogRecord] | None = None


def url_password(url: str) -> str:
    """The password in ``url`` (decoded), or ''."""
    try:
        userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    except ValueError:
        return ""
    return unquote(userinfo.partition(":")[2]) if at else ""


def secret_values(settings: Settings) -> list[str]:
    """Every secret of the settings, in each form it may take in text; longest first."""
    secrets = {
        settings.imap_password.get_secret_value(),
        settings.smtp_password.get_secret_value(),
        settings.database_password.get_secret_value(),
        settings.broker_password.get_secret_value(),
        settings.oauth_client_secret.get_secret_value(),
        settings.oauth_refresh_token.get_secret_value(),
        url_password(settings.db_url),
        url_password(settings.broker_url),
    }
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            encoded = (quote(secret), quote(secret, safe=""), quote_plus(secret))
            forms.update({secret, repr(secret)[1:-1], *encoded})
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub(text: str) -> str:
    """``text`` with the secrets of the settings given to ``protect_logs`` masked."""
    return redact(text, _secrets)


def protect_logs(settings: Settings) -> None:
    """From now on, mask these settings' secrets in every log record of the process
    (and of the processes it forks). Calling it again replaces the secrets."""
    global _original_factory
    values = secret_values(settings)
    with _lock:
        _secrets[:] = values
        current = logging.getLogRecordFactory()
        if current is not _redacting_factory:
            _original_factory = current
            logging.setLogRecordFactory(_redacting_factory)


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _original_factory is not None
    record = _original_factory(*args, **kwargs)
    secrets = _secrets
    if not secrets:
        return record
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
        return record
    masked = redact(message, secrets)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatted now, masked, and kept: Formatter.format uses exc_text when it is set.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)
    return record
