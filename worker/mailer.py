"""The SMTP wire. Only this module imports smtplib.

``send_due`` drains the outbox: each row is claimed with a conditional update, sent,
and marked sent; a temporary failure comes back later with backoff, a permanent one
(5xx) is marked failed with the server's words.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.settings import Security, Settings
from worker.errors import IntakeError
from worker.store import Database, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)


class SmtpError(IntakeError):
    pass


def send_raw(settings: Settings, raw: bytes, sender: str, recipients: list[str]) -> None:
    """Hand one message to the SMTP server; SmtpError says whether a retry can help."""
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        client: smtplib.SMTP
        if settings.smtp_security is Security.ssl:
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        with client:
            if settings.smtp_security is Security.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            refused = client.sendmail(sender, recipients, raw)
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


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"sent {self.sent}, deferred {self.deferred}, failed {self.failed}"


def backoff(attempts: int) -> timedelta:
    delay: timedelta = BACKOFF_BASE * (2 ** max(attempts - 1, 0))
    return min(delay, BACKOFF_MAX)


def send_due(
    db: Database, settings: Settings, *, only: int | None = None, now: datetime | None = None
) -> SendResult:
    """Send what is due (or just outbox row ``only``). Safe to run anywhere, any number of times."""
    now = now or utcnow()
    sent = deferred = failed = 0
    for outbox_id in [only] if only is not None else db.due_outbox(now):
        item = db.claim_outbox(outbox_id, now)
        if item is None:
            continue  # someone else has it, or it is done
        # Reminders (worker/reminders.py) are re-checked at send time: a State that has
        # submitted since its reminder was queued is not reminded. The check is a store query
        # that also cancels the outbox and ledger rows.
        if item.purpose == "reminder" and not db.reminder_still_needed(item.id):
            log.info("reminder %s to %s cancelled: submitted meanwhile", item.key, item.recipient)
            continue
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
            if give_up:
                failed += 1
                if item.purpose == "reminder":  # the reminder ledger follows its mail
                    db.settle_reminders(item.id)
            else:
                deferred += 1
            continue
        db.outbox_sent(item.id, utcnow())
        if item.purpose == "reminder":  # the reminder ledger follows its mail
            db.settle_reminders(item.id)
        log.info("sent %s to %s", item.key, item.recipient)
        sent += 1
    return SendResult(sent, deferred, failed)
