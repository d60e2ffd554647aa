"""`ccm-intake mailbox check`: can the service reach, log in to and use its mailbox?

Each check is one line that says plainly what works or what is wrong and what to change.
The IMAP part goes as far as it can (reach, TLS, OAuth token, login, folders, IDLE); the SMTP
part logs in and sends nothing. Nothing is left behind: a folder made to see whether folders
can be made is removed at once.
"""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from config.settings import AuthMethod, MailboxAction, Security, Settings
from worker import oauth
from worker.mailbox import Inbox, MailboxError, open_inbox
from worker.mailer import check_smtp
from worker.tls import is_loopback

# Where the service moves mail (worker/processing.py); "Filed" holds one folder per State.
MOVE_FOLDERS = ("Filed", "Needs review", "Not submissions", "Quarantine")


class Outcome(StrEnum):
    ok = "ok"
    warn = "warn"  # works, but someone should know (no IDLE, TLS not verified)
    fail = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    outcome: Outcome
    what: str
    detail: str

    @property
    def mark(self) -> str:
        return {"ok": "✓", "warn": "!", "fail": "✗"}[self.outcome]

    def __str__(self) -> str:
        return f"{self.mark} {self.what}: {self.detail}"


def ok(what: str, detail: str) -> Check:
    return Check(Outcome.ok, what, detail)


def fail(what: str, detail: str) -> Check:
    return Check(Outcome.fail, what, detail)


def warn(what: str, detail: str) -> Check:
    return Check(Outcome.warn, what, detail)


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in order, as it is done."""
    token_ok = True
    if AuthMethod.oauth2 in (settings.imap_auth, settings.smtp_auth):
        token_check = _token(settings)
        token_ok = token_check.outcome is not Outcome.fail
        yield token_check
    yield from _imap(settings, token_ok)
    yield from _smtp(settings, token_ok)


def passed(checks: list[Check]) -> bool:
    return all(c.outcome is not Outcome.fail for c in checks)


# --------------------------------------------------------------------------- pieces


def _reach(wire: str, host: str, port: int, timeout: float, setting: str) -> Check:
    what = f"{wire} server"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail(what, f"cannot find {host!r}: {exc.strerror} (check {setting}_HOST)")
    addresses = ", ".join(dict.fromkeys(str(info[4][0]) for info in infos))
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 15.0)):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return fail(
            what,
            f"{host}:{port} ({addresses}) does not answer: {reason} "
            f"(check {setting}_HOST and {setting}_PORT, and that a firewall lets it through)",
        )
    return ok(what, f"{host}:{port} answers ({addresses})")


def _token(settings: Settings) -> Check:
    what = "OAuth token"
    try:
        token = oauth.access_token(settings)
    except oauth.OAuthError as exc:
        return fail(what, str(exc))
    source = "new" if token.fresh else "kept"
    return ok(
        what,
        f"{source} token from {settings.oauth_endpoint} ({settings.oauth_flow.value}), "
        f"valid until {token.expires():%Y-%m-%d %H:%M} UTC",
    )


def _tls_note(wire: str, security: Security, verify: bool, host: str) -> Check:
    what = f"{wire} TLS"
    if security is Security.none:
        text = f"not used (CCM_{wire}_SECURITY=none)"
        if is_loopback(host):
            return ok(what, text + ", a server on this machine")
        return warn(what, text + ": the password and the mail cross the network in clear")
    if not verify:
        return warn(
            what, f"{security.value}, certificate NOT verified (CCM_{wire}_TLS_VERIFY=false)"
        )
    return ok(what, f"{security.value}, certificate and host name verified")


def _imap(settings: Settings, token_ok: bool) -> Iterator[Check]:
    reach = _reach(
        "IMAP", settings.imap_host, settings.imap_port, settings.imap_timeout, "CCM_IMAP"
    )
    yield reach
    if reach.outcome is Outcome.fail:
        return
    tls = _tls_note("IMAP", settings.imap_security, settings.imap_tls_verify, settings.imap_host)
    oauth_login = settings.imap_auth is AuthMethod.oauth2
    if oauth_login and not token_ok:
        yield tls if settings.imap_security is Security.none else ok("IMAP TLS", "not tried")
        yield fail("IMAP login", "not tried: no OAuth token (see above)")
        return
    how = f"with {settings.oauth_mechanism.value}" if oauth_login else "with a password"
    try:
        with open_inbox(settings) as inbox:
            yield tls
            yield ok("IMAP login", f"logged in as {settings.imap_user!r} {how}")
            yield from _folders(settings, inbox)
            yield (
                ok("IMAP IDLE", "supported: `ccm-intake listen` sees new mail at once")
                if inbox.supports_idle
                else warn(
                    "IMAP IDLE",
                    "not offered: `ccm-intake listen` cannot run; the poll every "
                    f"{settings.poll_interval:.0f} s still reads the mail",
                )
            )
    except MailboxError as exc:
        if isinstance(exc.__cause__, ssl.SSLError):
            yield fail("IMAP TLS", str(exc))
        elif exc.permanent:
            yield tls
            hint = "" if oauth_login else " (check CCM_IMAP_USER and CCM_IMAP_PASSWORD)"
            yield fail("IMAP login", f"{exc}{hint}")
        else:
            yield fail("IMAP", str(exc))


def _folders(settings: Settings, inbox: Inbox) -> Iterator[Check]:
    names = inbox.folder_names()
    folder = settings.imap_folder
    count = inbox.message_count(folder)
    if count is None:
        yield fail(
            "watched folder",
            f"{folder!r} does not exist (CCM_IMAP_FOLDER); the mailbox has: "
            + ", ".join(repr(n) for n in names),
        )
    else:
        yield ok("watched folder", f"{folder!r} holds {count} message{'s' * (count != 1)}")
    sent = settings.imap_sent_folder
    to_make: list[str] = []
    if not sent:
        yield ok("Sent folder", "none: no copies of sent mail are kept (CCM_IMAP_SENT_FOLDER)")
    else:
        sent_count = inbox.message_count(sent)
        if sent_count is None:
            to_make.append(sent)
            yield ok("Sent folder", f"{sent!r} does not exist yet: made with the first mail sent")
        else:
            yield ok("Sent folder", f"{sent!r} holds {sent_count} message{'s' * (sent_count != 1)}")
    if settings.mailbox_action is MailboxAction.keyword:
        what = "folders for sorted mail"
        yield ok(what, f"none needed: mail stays in {folder!r} with $CCM-… keywords")
        return
    to_make += [f for f in MOVE_FOLDERS if f not in names]
    what = "folders for sorted mail"
    if not to_make:
        yield ok(what, ", ".join(repr(f) for f in MOVE_FOLDERS) + " exist")
        return
    probe = f"ccm-intake check {secrets.token_hex(3)}"
    try:
        inbox.try_create(probe)
    except MailboxError as exc:
        yield fail(
            what,
            f"{', '.join(repr(f) for f in to_make)} do not exist and cannot be made: {exc} "
            "(create them, or set CCM_MAILBOX_ACTION=keyword)",
        )
        return
    yield ok(
        what,
        f"{', '.join(repr(f) for f in to_make)} will be made when needed "
        f"(folders can be made: {probe!r} was made and removed)",
    )


def _smtp(settings: Settings, token_ok: bool) -> Iterator[Check]:
    reach = _reach(
        "SMTP", settings.smtp_host, settings.smtp_port, settings.smtp_timeout, "CCM_SMTP"
    )
    yield reach
    if reach.outcome is Outcome.fail:
        return
    if settings.smtp_auth is AuthMethod.oauth2 and not token_ok:
        yield fail("SMTP login", "not tried: no OAuth token (see above)")
        return
    steps = check_smtp(settings)
    if settings.smtp_security is Security.none:
        yield _tls_note("SMTP", settings.smtp_security, True, settings.smtp_host)
    for step, good, detail in steps:
        what = f"SMTP {step}"
        if not good:
            yield fail(what, detail)
        elif step == "TLS" and not settings.smtp_tls_verify:
            yield warn(what, detail)
        else:
            yield ok(what, detail + ("; no mail sent" if step == "login" else ""))
