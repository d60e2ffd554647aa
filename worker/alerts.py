""" "Intake has stopped": the silent failure of every mail-fetching tool, said out loud.

When no poll of a watched folder has succeeded for ``CCM_ALERT_AFTER_MINUTES`` (15), the
secretary gets one mail saying so, with the last error; when polls succeed again, one mail
saying that too. Each is an outbox row whose key names the outage (the folder and the moment
of its last success), so however many workers and beats run the check, and however often,
each outage gives one alert and one all-clear. Everything is read from the database: a
Redis that lost its keys changes nothing here.

The check runs in the beat schedule. If the whole service is down nothing here runs: that
is for the metrics endpoint (``ccm_mailbox_last_success_timestamp_seconds``) and whoever
watches it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from zoneinfo import ZoneInfo

from worker.compose import Outgoing, mark_automatic, stable_message_id
from worker.runtime import Context
from worker.store import MailboxState

log = logging.getLogger(__name__)

GENEVA = ZoneInfo("Europe/Zurich")
STOPPED, RECOVERED = "alert:intake-stopped", "alert:intake-recovered"


def _local(moment: datetime) -> str:
    return moment.astimezone(GENEVA).strftime("%a %d %b %Y %H:%M")


def _outage_start(box: MailboxState) -> datetime | None:
    """When the folder's polls last worked (or, never having worked, since when they have
    been tried); None when there is no failure to speak of."""
    if box.last_error_at is None:
        return None
    if box.last_success_at is not None:
        return box.last_success_at if box.last_error_at > box.last_success_at else None
    return box.updated_at  # never read: the row was made by the first failed poll


def _key(kind: str, box: MailboxState, since: datetime) -> str:
    return f"{kind}:{box.mailbox}:{since.isoformat(timespec='seconds')}"


def _mail(ctx: Context, key: str, subject: str, text: str, now: datetime) -> Outgoing:
    settings = ctx.settings
    message_id = stable_message_id(key, settings.service_address)
    msg = EmailMessage()
    msg["From"] = formataddr((settings.service_name, settings.service_address))
    msg["To"] = settings.secretary_address
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    mark_automatic(msg, "auto-generated", settings.service_address)
    msg["Content-Language"] = "en"
    msg.set_content(text)
    raw = msg.as_bytes(policy=SMTP_POLICY)
    return Outgoing(settings.secretary_address, subject, message_id, raw)


def check_intake(ctx: Context, now: datetime) -> list[int]:
    """Queue the alerts and all-clears due now; their outbox ids (to send at once)."""
    after = timedelta(minutes=ctx.settings.alert_after_minutes)
    if after <= timedelta(0):
        return []
    queued: list[int] = []
    for box in ctx.db.mailbox_health():
        since = _outage_start(box)
        folder = box.mailbox.rpartition("/")[2] or box.mailbox
        if since is not None and now - since >= after:
            key = _key(STOPPED, box, since)
            minutes = int((now - since).total_seconds() // 60)
            text = (
                f"No poll of the folder {folder} ({box.mailbox}) has succeeded since"
                f" {_local(since)} (Geneva), {minutes} minutes ago.\n\n"
                f"Last error, at {_local(box.last_error_at or now)}:\n    {box.last_error}\n\n"
                "Mail sent to the secretariat in the meantime is waiting on the server: nothing"
                " is lost, but nothing is filed or acknowledged until the polls work again.\n"
                "Check the mailbox login and the server (`ccm-intake poll` runs one poll and says"
                " what fails), and the worker's log.\n\n"
                "You will get one more mail when intake resumes.\n"
            )
            subject = f"ccm-intake: intake has stopped — no mail read since {_local(since)}"
            outbox_id = ctx.db.queue_outbox_once(
                key, "alert", _mail(ctx, key, subject, text, now), now
            )
            if outbox_id is not None:
                log.warning("alert: %s", subject)
                queued.append(outbox_id)
        if box.last_success_at is None:
            continue
        # An outage that was alerted and is over: say so, once.
        prefix = f"{STOPPED}:{box.mailbox}:"
        for stopped in ctx.db.outbox_keys(prefix):
            moment = datetime.fromisoformat(stopped.removeprefix(prefix))
            if box.last_success_at <= moment:
                continue
            key = stopped.replace(STOPPED, RECOVERED, 1)
            subject = (
                f"ccm-intake: intake has resumed — mail read again at {_local(box.last_success_at)}"
            )
            text = (
                f"Polls of {folder} ({box.mailbox}) succeed again since"
                f" {_local(box.last_success_at)} (Geneva). The mail that arrived during the"
                " outage is being read now; tomorrow's digest lists it.\n"
            )
            outbox_id = ctx.db.queue_outbox_once(
                key, "alert", _mail(ctx, key, subject, text, now), now
            )
            if outbox_id is not None:
                log.info("alert: %s", subject)
                queued.append(outbox_id)
    return queued
