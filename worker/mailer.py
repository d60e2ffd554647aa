"""The SMTP wire. Only this module imports smtplib.

``send_due`` drains the outbox: each row is claimed with a conditional update, sent,
and marked sent; a temporary failure comes back later with backoff, a permanent one
(5xx) is marked failed with the server's words.
"""

from __future__ import annotations

import atexit
import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload

from config.settings import AuthMethod, Security, Settings
from worker import oauth
from worker.errors import IntakeError
from worker.logs import bind, each_with, log_context
from worker.store import Database, Sending, utcnow
from worker.tls import client_context, describe_verify_error, warn_plaintext

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
SENT_RECORD_RETRY = 60.0  # seconds spent recording an accepted mail while the database is away
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)


class SmtpError(IntakeError):
    pass


def send_raw(settings: Settings, raw: bytes, sender: str, recipients: list[str]) -> None:
    """Hand one message to the SMTP server; SmtpError says whether a retry can help."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with _kept_client(settings, where) as client:
            refused = client.sendmail(sender, recipients, raw)
    except ssl.SSLCertVerificationError as exc:
        # Not permanent: once the CA is configured, the mail in the outbox can still go.
        raise SmtpError(
            f"SMTP server {where}: TLS certificate verification failed: "
            f"{describe_verify_error(exc)} (give its CA with CCM_SMTP_CA_FILE)"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        raise SmtpError(
            f"SMTP {where} refused {sorted(exc.recipients)}: {codes}", permanent=permanent
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpError(f"SMTP login at {where} refused: {exc.smtp_code}", permanent=False) from exc
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        raise SmtpError(
            f"SMTP {where}: {exc.smtp_code} {text}", permanent=exc.smtp_code >= 500
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpError(f"SMTP server {where} unreachable: {exc}") from exc
    if refused:
        raise SmtpError(f"SMTP {where} refused some recipients: {refused}", permanent=True)


# --------------------------------------------------------------------------- a kept connection

KEEP_SECONDS = 30.0  # idle this long, the kept connection is closed rather than reused
KEEP_AT_MOST = 600.0  # ... and this long after its login (an OAuth token it logged in with ages)


@dataclass
class _Kept:
    key: tuple[object, ...]
    pid: int
    client: smtplib.SMTP
    opened: float
    used: float

    def serves(self, key: tuple[object, ...]) -> bool:
        now = time.monotonic()
        return (
            self.key == key
            and now - self.used < KEEP_SECONDS
            and now - self.opened < KEEP_AT_MOST
            and _answers(self.client)
        )


_kept: _Kept | None = None
_kept_lock = threading.Lock()


def _key(settings: Settings) -> tuple[object, ...]:
    """What makes a connection: a change of any of these opens a new one."""
    return (
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_security,
        settings.smtp_user,
        settings.smtp_auth,
        settings.smtp_password.get_secret_value(),
        settings.smtp_tls_verify,
        settings.smtp_ca_file,
        settings.smtp_timeout,
        *oauth.identity(settings),
    )


def _connect(settings: Settings, where: str) -> smtplib.SMTP:
    """Connected, over TLS as the settings say, and logged in."""
    context = _tls_context(settings)
    client = _open(settings, context)
    try:
        if settings.smtp_security is Security.starttls:
            client.starttls(context=context)
        _log_in(client, settings, where)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


@contextmanager
def _kept_client(settings: Settings, where: str) -> Iterator[smtplib.SMTP]:
    """A logged-in connection, kept for this process's next mail: a backlog's acknowledgements
    went out over a new connection each, and connecting, EHLO and login were a third of the
    time spent sending (docs/PERFORMANCE.md). Before reuse the connection must be this
    process's own, under the same settings, used in the last ``KEEP_SECONDS`` and answer a
    NOOP; a block that raises closes it, so that a mail is never sent on a connection in an
    unknown state. A concurrent use opens a connection of its own."""
    global _kept
    key, pid = _key(settings), os.getpid()
    with _kept_lock:
        kept, _kept = _kept, None
    if kept is not None and kept.pid != pid:
        kept = None  # a forked copy: the socket is the parent's, not ours to use or close
    if kept is not None and not kept.serves(key):
        _close(kept.client)
        kept = None
    if kept is None:
        now = time.monotonic()
        kept = _Kept(key, pid, _connect(settings, where), now, now)
    try:
        yield kept.client
    except BaseException:
        _close(kept.client)
        raise
    kept.used = time.monotonic()
    with _kept_lock:
        if _kept is None:
            _kept, kept = kept, None
    if kept is not None:  # another block put its own back first
        _close(kept.client)


def _answers(client: smtplib.SMTP) -> bool:
    try:
        return client.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def close_kept() -> None:
    """QUIT this process's kept connection, if any (at exit, and for tests)."""
    global _kept
    with _kept_lock:
        kept, _kept = _kept, None
    if kept is not None and kept.pid == os.getpid():
        _close(kept.client)


atexit.register(close_kept)


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.smtp_security is Security.none:
        warn_plaintext("SMTP", settings.smtp_host)
        return None
    return client_context(
        "SMTP",
        verify=settings.smtp_tls_verify,
        ca_file=settings.smtp_ca_file,
        host=settings.smtp_host,
    )


def _open(settings: Settings, context: ssl.SSLContext | None) -> smtplib.SMTP:
    """Connected (over TLS already for ``ssl``), not yet logged in."""
    if settings.smtp_security is Security.ssl:
        return smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout, context=context
        )
    return smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)


def _log_in(client: smtplib.SMTP, settings: Settings, where: str) -> str:
    """Log in as the settings say; returns how, for ``check_smtp``."""
    user = settings.smtp_user
    if settings.smtp_auth is AuthMethod.oauth2:
        return _oauth_login(client, settings, where)
    if not user:
        return "no login (CCM_SMTP_USER is empty)"
    client.login(user, settings.smtp_password.get_secret_value())
    return f"logged in as {user!r} with a password"


def _oauth_login(client: smtplib.SMTP, settings: Settings, where: str) -> str:
    """AUTH with an OAuth access token (worker/oauth.py). A refused token that came from the
    cache may have been revoked since: it is forgotten and a new one tried, once. OAuth
    trouble is never ``permanent`` here: the mail waits in the outbox until a person fixes it.
    """
    client.ehlo_or_helo_if_needed()
    mechanism = settings.oauth_mechanism.value
    offered = str(client.esmtp_features.get("auth", "")).upper().split()
    if mechanism not in offered:
        raise SmtpError(
            f"SMTP server {where} does not offer {mechanism} logins (it offers "
            f"{', '.join(offered) or 'none'}): set CCM_OAUTH_MECHANISM or CCM_SMTP_AUTH"
        )
    user = settings.smtp_user
    for attempt in (1, 2):
        try:
            token = oauth.access_token(settings)
        except oauth.OAuthError as exc:
            raise SmtpError(f"SMTP login as {user!r}: {exc}") from exc
        response = oauth.sasl_response(
            settings.oauth_mechanism,
            user,
            token.access_token,
            host=settings.smtp_host,
            port=settings.smtp_port,
        )
        try:
            client.auth(mechanism, _Responder(response), initial_response_ok=True)
        except smtplib.SMTPAuthenticationError:
            oauth.forget_access_token(settings, token)
            if attempt == 1 and not token.fresh:
                continue
            raise
        break
    return f"logged in as {user!r} with {mechanism}"


class _Responder:
    """smtplib's side of AUTH: ``first`` as the initial response; an empty answer to the
    error challenge a server may send after a refusal (RFC 7628 §3.2.3)."""

    def __init__(self, first: str) -> None:
        self.first = first

    @overload
    def __call__(self, challenge: None = None, /) -> str: ...
    @overload
    def __call__(self, challenge: bytes, /) -> str: ...
    def __call__(self, challenge: bytes | None = None, /) -> str:
        return self.first if challenge is None else ""


def check_smtp(settings: Settings) -> list[tuple[str, bool, str]]:
    """Connect, TLS, log in, NOOP and QUIT, sending nothing: each step's (name, passed, what
    happened) for ``ccm-intake mailbox check``; the steps after a failed one are not tried."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    steps: list[tuple[str, bool, str]] = []
    context = _tls_context(settings)
    step = "connection"
    try:
        if settings.smtp_security is Security.ssl:
            step = "TLS"
        with _open(settings, context) as client:
            if settings.smtp_security is Security.starttls:
                step = "TLS"
                client.starttls(context=context)
            if context is not None:
                verified = (
                    "certificate verified"
                    if settings.smtp_tls_verify
                    else ("certificate NOT verified (CCM_SMTP_TLS_VERIFY=false)")
                )
                steps.append(("TLS", True, f"{settings.smtp_security.value}, {verified}"))
            step = "login"
            steps.append(("login", True, _log_in(client, settings, where)))
            step = "connection"
            client.noop()
    except ssl.SSLCertVerificationError as exc:
        steps.append(
            (
                step,
                False,
                f"certificate verification failed: "
                f"{describe_verify_error(exc)} (give its CA with CCM_SMTP_CA_FILE)",
            )
        )
    except smtplib.SMTPAuthenticationError as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        steps.append((step, False, f"refused: {exc.smtp_code} {text}"))
    except SmtpError as exc:
        steps.append((step, False, str(exc)))
    except (smtplib.SMTPException, OSError) as exc:
        steps.append((step, False, f"{type(exc).__name__}: {exc}"))
    return steps


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"sent {self.sent}, deferred {self.deferred}, failed {self.failed}"

    def __add__(self, other: SendResult) -> SendResult:
        return SendResult(
            self.sent + other.sent, self.deferred + other.deferred, self.failed + other.failed
        )


def backoff(attempts: int) -> timedelta:
    delay: timedelta = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(delay, BACKOFF_MAX)


def send_due(
    db: Database, settings: Settings, *, only: int | None = None, now: datetime | None = None
) -> SendResult:
    """Send what is due (or just outbox row ``only``). Safe to run anywhere, any number of times."""
    now = now or utcnow()
    total = SendResult()
    stale = timedelta(seconds=settings.claim_stale)  # a "sending" row whose worker died
    due = [only] if only is not None else db.due_outbox(now, stale=stale)
    for outbox_id in each_with("outbox_id", due):  # each row's lines carry its id (and key)
        item = db.claim_outbox(outbox_id, now, stale=stale)
        if item is None:
            continue  # someone else has it, or it is done
        total += _send_one(db, settings, item, now)
    return total


def send_claimed(db: Database, settings: Settings, item: Sending) -> SendResult:
    """Send one outbox row this process claimed already (``finish_message(claim_acks=True)``)."""
    with log_context(outbox_id=item.id):
        return _send_one(db, settings, item, utcnow())


def _send_one(db: Database, settings: Settings, item: Sending, now: datetime) -> SendResult:
    """Send a claimed row and record how it went."""
    ack_of = item.key.split(":")[1] if item.key.startswith("ack:") else None
    bind(outbox_key=item.key, reference=ack_of)
    # Reminders (worker/reminders.py) are re-checked at send time: a State that has
    # submitted since its reminder was queued is not reminded. The check is a store query
    # that also cancels the outbox and ledger rows.
    if item.purpose == "reminder" and not db.reminder_still_needed(item.id):
        log.info("reminder %s to %s cancelled: submitted meanwhile", item.key, item.recipient)
        return SendResult()
    try:
        send_raw(settings, item.raw, settings.service_address, [item.recipient])
    except SmtpError as exc:
        give_up = exc.permanent or item.attempts >= MAX_ATTEMPTS
        db.outbox_failed(
            item.id, str(exc), retry_at=None if give_up else now + backoff(item.attempts)
        )
        log.warning(
            "outbox %s to %s: %s%s",
            item.key,
            item.recipient,
            exc,
            "" if give_up else " (will retry)",
        )
        if item.purpose == "reminder" and give_up:  # the reminder ledger follows its mail
            db.settle_reminders(item.id)
        return SendResult(failed=1) if give_up else SendResult(deferred=1)
    # Accepted: record it even through a database restart (a mail not recorded as sent
    # goes out again once its claim is stale).
    db.outbox_sent(item.id, utcnow(), retry_for=SENT_RECORD_RETRY)
    if item.purpose == "reminder":  # the reminder ledger follows its mail
        db.settle_reminders(item.id)
    log.info("sent %s to %s", item.key, item.recipient)
    return SendResult(sent=1)
