"""The IMAP wire. Only this module imports imap_tools or imaplib.

Every failure of the library or the network comes out as ``MailboxError``, which says
whether trying again later can help.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import imaplib
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError
from imap_tools.mailbox import BaseMailBox
from imap_tools.utils import encode_folder

from config.settings import AuthMethod, Security, Settings
from worker import oauth
from worker.errors import IntakeError
from worker.tls import client_context, describe_verify_error, warn_plaintext

FETCH_CHUNK = 50  # messages per UID FETCH: keeps round trips few
# ... and bytes per UID FETCH: the poller holds one FETCH's answer at a time, so a backlog of
# large mails costs it this much (or one mail, if larger), not 50 of them (docs/PERFORMANCE.md).
FETCH_BYTES = 32 * 1024 * 1024


class MailboxError(IntakeError):
    """The inbox could not be reached or did not do what was asked."""


class ConnectionLost(MailboxError):
    """The connection broke mid-conversation: nothing more can be done on it."""


@dataclass(frozen=True, slots=True)
class FolderState:
    uidvalidity: int
    uidnext: int


@dataclass(frozen=True, slots=True)
class RawMail:
    uid: int
    internaldate: datetime
    raw: bytes


_FETCH_HEAD = re.compile(rb"UID (\d+)")
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", re.I)
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_RFC822_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _uid_set(text: bytes) -> list[int]:
    """The UIDs of an IMAP sequence set as COPYUID gives them (``4,7:9``), in its order."""
    uids: list[int] = []
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        if not last:
            uids.append(int(first))
            continue
        low, high = sorted((int(first), int(last)))
        if high - low > 100_000:
            return []  # not an answer to a move of ours
        uids.extend(range(low, high + 1))
    return uids


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class Inbox:
    """One logged-in IMAP connection."""

    def __init__(self, box: BaseMailBox, settings: Settings) -> None:
        self._box = box
        self._settings = settings
        self._delimiter: str | None = None
        self._known_folders: set[str] = set()

    # -- reading ---------------------------------------------------------------------

    def select(self, folder: str) -> FolderState:
        """Select ``folder`` read-write and say where its UIDs stand.

        UIDVALIDITY and UIDNEXT are read from the SELECT's own answer (RFC 3501 §6.3.1), which
        describes the folder as now selected. A STATUS first would ask about the folder this
        kept connection already has selected, and a server may answer that from the selected
        (possibly deleted and recreated) folder's state: RFC 3501 §6.3.10 advises against it.
        """
        with _translated(f"select {folder!r}"):
            self._box.folder.set(folder)
            said = self._box.client.untagged_responses  # what this SELECT said, nothing older
            validity, after = said.get("UIDVALIDITY", [b""])[-1], said.get("UIDNEXT", [b""])[-1]
            if (
                isinstance(validity, bytes)
                and isinstance(after, bytes)
                and (validity + after).isdigit()
            ):
                return FolderState(uidvalidity=int(validity), uidnext=int(after))
            status = self._box.folder.status(folder, ["UIDVALIDITY", "UIDNEXT"])
        return FolderState(uidvalidity=status["UIDVALIDITY"], uidnext=status["UIDNEXT"])

    def uids_after(self, last_uid: int) -> list[int]:
        with _translated("search"):
            typ, data = self._box.client.uid("SEARCH", f"UID {last_uid + 1}:*")
        if typ != "OK":
            raise MailboxError(f"IMAP UID SEARCH failed: {data!r}")
        found = (int(x) for x in b" ".join(d for d in data if d).split())
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    def uids_since(self, day: date) -> list[int]:
        """UIDs of the messages whose INTERNALDATE is on or after ``day`` (RFC 3501 SINCE)."""
        month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
        criterion = f"{day.day}-{month[day.month - 1]}-{day.year}"  # not %b: locale-free
        with _translated("search"):
            typ, data = self._box.client.uid("SEARCH", "SINCE", criterion)
        if typ != "OK":
            raise MailboxError(f"IMAP UID SEARCH SINCE failed: {data!r}")
        return sorted(int(x) for x in b" ".join(d for d in data if d).split())

    def _sizes(self, uids: Sequence[int]) -> dict[int, int]:
        with _translated("fetch sizes"):
            typ, data = self._box.client.uid("FETCH", ",".join(map(str, uids)), "(RFC822.SIZE)")
        sizes: dict[int, int] = {}
        for item in data if typ == "OK" else ():
            head = item[0] if isinstance(item, tuple) else item
            uid, size = _FETCH_HEAD.search(head or b""), _RFC822_SIZE.search(head or b"")
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _batches(self, uids: Sequence[int]) -> Iterator[Sequence[int]]:
        """``uids`` in FETCHes of at most ``FETCH_CHUNK`` messages and ``FETCH_BYTES``."""
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            sizes = self._sizes(chunk)  # one short round trip; a UID gone since has no size
            batch: list[int] = []
            size = 0
            for uid in chunk:
                if batch and size + sizes.get(uid, 0) > FETCH_BYTES:
                    yield batch
                    batch, size = [], 0
                batch.append(uid)
                size += sizes.get(uid, 0)
            if batch:
                yield batch

    def fetch_raw(self, uids: Sequence[int]) -> Iterator[RawMail]:
        """The exact bytes and INTERNALDATE of each message, without setting \\Seen."""
        for chunk in self._batches(uids):
            with _translated("fetch"):
                typ, data = self._box.client.uid(
                    "FETCH", ",".join(map(str, chunk)), "(UID INTERNALDATE BODY.PEEK[])"
                )
            if typ != "OK":
                raise MailboxError(f"IMAP UID FETCH failed: {data!r}")
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head, raw = item
                uid_match = _FETCH_HEAD.search(head)
                date_match = _INTERNALDATE.search(head)
                if uid_match is None:
                    continue
                yield RawMail(int(uid_match.group(1)), _internaldate(date_match), bytes(raw))

    # -- waiting ---------------------------------------------------------------------------

    @property
    def supports_idle(self) -> bool:
        """IDLE (RFC 2177) as the server says after login (imaplib caches the pre-login list)."""
        with _translated("capability"):
            typ, data = self._box.client.capability()
        words = b" ".join(d for d in data if isinstance(d, bytes)).upper().split()
        return typ == "OK" and b"IDLE" in words

    def wait_for_news(self, seconds: float) -> bool:
        """IDLE on the selected folder for at most ``seconds``; True when mail arrived."""
        with _translated("idle"):
            responses = self._box.idle.wait(timeout=seconds)
        return any(b"EXISTS" in line.upper() or b"RECENT" in line.upper() for line in responses)

    # -- checking (ccm-intake mailbox check) ----------------------------------------------

    def message_count(self, folder: str) -> int | None:
        """How many messages ``folder`` holds; None when there is no such folder."""
        with _translated(f"status {folder!r}"):
            if not self._box.folder.exists(folder):
                return None
            return int(self._box.folder.status(folder, ["MESSAGES"])["MESSAGES"])

    def folder_names(self) -> list[str]:
        with _translated("list"):
            return sorted(f.name for f in self._box.folder.list())

    def try_create(self, folder: str) -> None:
        """Create ``folder`` and delete it again; MailboxError says why it cannot be made."""
        with _translated(f"create {folder!r}"):
            self._box.folder.create(folder)
            self._box.folder.delete(folder)

    # -- acting ------------------------------------------------------------------------

    @property
    def delimiter(self) -> str:
        if self._delimiter is None:
            with _translated("list"):
                folders = self._box.folder.list()
            self._delimiter = next((f.delim for f in folders if f.delim), "/")
            self._known_folders = {f.name for f in folders}
        return self._delimiter

    def folder_name(self, *parts: str) -> str:
        """Join parts with the server's hierarchy delimiter, keeping it out of each part."""
        delim = self.delimiter
        return delim.join(p.replace(delim, "-").strip() for p in parts)

    def ensure_folder(self, folder: str) -> None:
        if folder in self._known_folders or folder.upper() == "INBOX":
            return
        with _translated(f"create {folder!r}"):
            if not self._box.folder.exists(folder):
                self._box.folder.create(folder)
        self._known_folders.add(folder)

    def move(self, uid: int, folder: str) -> tuple[int, int] | None:
        """Move one message; returns its (UIDVALIDITY, UID) in ``folder`` when the server
        says (UIDPLUS COPYUID), else None."""
        return self.move_many([uid], folder).get(uid)

    def move_many(self, uids: Sequence[int], folder: str) -> dict[int, tuple[int, int]]:
        """Move these messages with one command; for each the server placed and said so
        (UIDPLUS COPYUID), its (UIDVALIDITY, UID) in ``folder``. A UID missing from the
        answer was not moved or not reported: look for it (``find``)."""
        if not uids:
            return {}
        self.ensure_folder(folder)
        client = self._box.client
        wanted = ",".join(str(uid) for uid in uids)
        with _translated(f"move to {folder!r}"):
            client.untagged_responses.pop("OK", None)
            if "MOVE" in client.capabilities:
                typ, data = client.uid("MOVE", wanted, encode_folder(folder).decode("ascii"))
            else:  # RFC 3501 alone: copy, then delete just these
                typ, data = client.uid("COPY", wanted, encode_folder(folder).decode("ascii"))
                if typ == "OK":
                    client.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Deleted)")
                    if "UIDPLUS" in client.capabilities:
                        client.uid("EXPUNGE", wanted)
                    else:
                        client.expunge()
            if typ != "OK":
                raise MailboxError(f"IMAP move to {folder!r} failed: {data!r}")
            said = [d for d in data if isinstance(d, bytes)]
            said += [d for d in client.untagged_responses.pop("OK", []) if isinstance(d, bytes)]
        placed: dict[int, tuple[int, int]] = {}
        for text in said:
            match = _COPYUID.search(text)
            if match:
                sources, targets = _uid_set(match.group(2)), _uid_set(match.group(3))
                if len(sources) == len(targets):  # else the answer cannot be read: look
                    validity = int(match.group(1))
                    placed.update((a, (validity, b)) for a, b in zip(sources, targets, strict=True))
        return {uid: placed[uid] for uid in uids if uid in placed}

    def find(
        self, folder: str, message_id_header: str | None, sha256: str
    ) -> tuple[int, int] | None:
        """(UIDVALIDITY, UID) of the message with these bytes in ``folder``, looked up by its
        Message-ID and checked by its SHA-256; None when it is not there (or has no ID)."""
        if not message_id_header:
            return None
        state = self.select(folder)
        quoted = '"' + message_id_header.replace("\\", "\\\\").replace('"', '\\"') + '"'
        with _translated(f"search {folder!r}"):
            typ, data = self._box.client.uid("SEARCH", "HEADER", "Message-ID", quoted)
        if typ != "OK":
            return None
        candidates = [int(x) for x in b" ".join(d for d in data if d).split()][:10]
        for mail in self.fetch_raw(candidates):
            if hashlib.sha256(mail.raw).hexdigest() == sha256:
                return state.uidvalidity, mail.uid
        return None

    def set_keyword(self, uid: int, keyword: str, *, replacing: tuple[str, ...] = ()) -> None:
        """Add ``keyword``, taking away the ones it replaces (one outcome keyword at a time)."""
        # Not BaseMailBox.flag(): it EXPUNGEs after every STORE.
        others = [k for k in replacing if k != keyword]
        with _translated("store"):
            if others:
                self._box.client.uid("STORE", str(uid), "-FLAGS.SILENT", f"({' '.join(others)})")
            typ, data = self._box.client.uid("STORE", str(uid), "+FLAGS.SILENT", f"({keyword})")
        if typ != "OK":
            raise MailboxError(f"IMAP STORE {keyword} failed: {data!r}")

    def append(self, raw: bytes, folder: str, *, seen: bool = False) -> None:
        self.ensure_folder(folder)
        with _translated(f"append to {folder!r}"):
            self._box.append(raw, folder, flag_set=["\\Seen"] if seen else [])


def _internaldate(match: re.Match[bytes] | None) -> datetime:
    if match is not None:
        parsed = imaplib.Internaldate2tuple(b'INTERNALDATE "' + match.group(1) + b'"')
        if parsed is not None:
            return datetime.fromtimestamp(time.mktime(parsed), UTC)
    return datetime.now(UTC)  # the server gave none: the time we saw it is the next best


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except MailboxError:
        raise
    except MailboxLoginError as exc:
        raise MailboxError(f"IMAP login refused: {_describe(exc)}", permanent=True) from exc
    except (OSError, EOFError, ssl.SSLError, imaplib.IMAP4.abort) as exc:
        raise ConnectionLost(f"IMAP connection lost during {action}: {_describe(exc)}") from exc
    except (ImapToolsError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"IMAP {action} failed: {_describe(exc)}") from exc


def _refresh_capabilities(box: BaseMailBox) -> None:
    """Ask for the capabilities again once logged in: imaplib keeps the list the server gave
    in its greeting, and Dovecot (as others) names MOVE and UIDPLUS only after the login.

    Without them ``Inbox.move`` took its RFC 3501 road: COPY, STORE \\Deleted and a plain
    EXPUNGE, which is not atomic — a connection lost after the COPY left the mail twice in its
    folder once the move was retried (tests/faults, Dovecot restarted mid-move) — and expunges
    every \\Deleted mail of the folder, not only ours.
    """
    client = box.client
    with _translated("capability"):
        typ, data = client.capability()
    said = data[-1] if data else None
    if typ == "OK" and isinstance(said, bytes):
        client.capabilities = tuple(said.decode("ascii", "replace").upper().split())


@contextmanager
def open_inbox(settings: Settings) -> Iterator[Inbox]:
    """Connect and log in; MailboxError names the server and what went wrong."""
    where = f"{settings.imap_host}:{settings.imap_port}"
    timeout = settings.imap_timeout
    try:
        box: BaseMailBox
        if settings.imap_security is Security.none:
            warn_plaintext("IMAP", settings.imap_host)
            box = MailBoxUnencrypted(settings.imap_host, settings.imap_port, timeout=timeout)
        else:
            # Always an explicit context: given none, imaplib checks no certificate at all.
            context = client_context(
                "IMAP",
                verify=settings.imap_tls_verify,
                ca_file=settings.imap_ca_file,
                host=settings.imap_host,
            )
            mailbox = MailBox if settings.imap_security is Security.ssl else MailBoxStartTls
            box = mailbox(
                settings.imap_host, settings.imap_port, timeout=timeout, ssl_context=context
            )
    except ssl.SSLCertVerificationError as exc:
        raise MailboxError(
            f"IMAP server {where}: TLS certificate verification failed: "
            f"{describe_verify_error(exc)} (give its CA with CCM_IMAP_CA_FILE)",
            permanent=True,
        ) from exc
    except (TimeoutError, OSError, imaplib.IMAP4.error, ssl.SSLError, ImapToolsError) as exc:
        raise MailboxError(f"IMAP server {where} unreachable: {_describe(exc)}") from exc
    try:
        try:
            if settings.imap_auth is AuthMethod.oauth2:
                _oauth_login(box, settings, where)
            else:
                box.login(
                    settings.imap_user,
                    settings.imap_password.get_secret_value(),
                    initial_folder=None,
                )
        except MailboxLoginError as exc:
            raise MailboxError(
                f"IMAP login as {settings.imap_user!r} at {where} refused: {_describe(exc)}",
                permanent=True,
            ) from exc
        except (ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"IMAP login at {where} failed: {_describe(exc)}") from exc
        _refresh_capabilities(box)
        yield Inbox(box, settings)
    finally:
        # The connection is going away either way.
        with contextlib.suppress(ImapToolsError, imaplib.IMAP4.error, OSError):
            box.logout()


def _responder(first: bytes) -> Callable[[bytes], bytes]:
    """The client's side of AUTHENTICATE: ``first``, then empty answers. After a refusal the
    server may send an error challenge (RFC 7628 §3.2.3) that wants an empty answer before
    its NO."""
    answers = iter((first,))
    return lambda _challenge: next(answers, b"")


def _oauth_login(box: BaseMailBox, settings: Settings, where: str) -> None:
    """AUTHENTICATE with an OAuth access token (XOAUTH2 or OAUTHBEARER, worker/oauth.py).

    A refused token that came from the cache may have been revoked since: it is forgotten and
    a new one tried, once. A refusal of a new token is a person's to fix (the app's rights).
    """
    mechanism = settings.oauth_mechanism.value
    user = settings.imap_user
    offered = sorted(c[5:] for c in box.client.capabilities if c.startswith("AUTH="))
    if mechanism not in offered:
        raise MailboxError(
            f"IMAP server {where} does not offer {mechanism} logins (it offers "
            f"{', '.join(offered) or 'none'}): set CCM_OAUTH_MECHANISM or CCM_IMAP_AUTH",
            permanent=True,
        )
    for attempt in (1, 2):
        try:
            token = oauth.access_token(settings)
        except oauth.OAuthError as exc:
            raise MailboxError(f"IMAP login as {user!r}: {exc}", permanent=exc.permanent) from exc
        response = oauth.sasl_response(
            settings.oauth_mechanism,
            user,
            token.access_token,
            host=settings.imap_host,
            port=settings.imap_port,
        )
        try:
            box.client.authenticate(mechanism, _responder(response.encode()))
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            oauth.forget_access_token(settings, token)
            if attempt == 1 and not token.fresh:
                continue
            raise MailboxError(
                f"IMAP login as {user!r} at {where} with {mechanism} refused the OAuth token "
                f"from {settings.oauth_endpoint}: {_describe(exc)} (has the app been given "
                "access to this mailbox, e.g. IMAP.AccessAsApp and a mailbox permission?)",
                permanent=True,
            ) from exc
        return


# --------------------------------------------------------------------------- a kept connection

KEEP_SECONDS = 20 * 60  # unused this long, a kept connection is opened anew (RFC 3501 §5.4)


@dataclass
class _Kept:
    key: tuple[object, ...]
    pid: int
    stack: contextlib.ExitStack
    box: BaseMailBox
    last_used: float


_kept: _Kept | None = None
_kept_lock = threading.Lock()


def _key(settings: Settings) -> tuple[object, ...]:
    """What makes a connection: a change of any of these opens a new one."""
    return (
        settings.imap_host,
        settings.imap_port,
        settings.imap_security,
        settings.imap_user,
        settings.imap_auth,
        settings.imap_password.get_secret_value(),
        settings.imap_tls_verify,
        settings.imap_ca_file,
        settings.imap_timeout,
        *oauth.identity(settings),
    )


def _drop(kept: _Kept) -> None:
    """Log out of a kept connection. One inherited across a fork is cut loose first: a LOGOUT
    from the child would end the parent's session on the same socket."""
    if kept.pid != os.getpid():
        sock = getattr(kept.box.client, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                os.close(sock.detach())  # this process's copy only; LOGOUT now fails, unsent
    kept.stack.close()  # open_inbox's own clean-up: LOGOUT, errors suppressed


def _answers(kept: _Kept, key: tuple[object, ...]) -> bool:
    """Whether a kept connection may serve: same settings and process, recently used, and
    still answering (a NOOP: a restarted server or a dropped link shows here, not mid-poll)."""
    if kept.pid != os.getpid() or kept.key != key:
        return False
    if time.monotonic() - kept.last_used > KEEP_SECONDS:
        return False
    try:
        typ, _ = kept.box.client.noop()
    except (OSError, EOFError, ssl.SSLError, imaplib.IMAP4.error, ImapToolsError):
        return False
    return typ == "OK"


@contextmanager
def kept_inbox(settings: Settings) -> Iterator[Inbox]:
    """``open_inbox``, but the logged-in connection stays open for this process's next use.

    Connecting and logging in were most of an idle poll (docs/PERFORMANCE.md). Before each use
    the kept connection must answer a NOOP; if it does not (the server restarted, the link
    broke, it sat unused past ``KEEP_SECONDS``), or the settings changed, or this is a forked
    child, a new one is opened. A block that raises drops its connection, so the next use
    starts clean. A nested or concurrent use opens a connection of its own.
    """
    global _kept
    key = _key(settings)
    with _kept_lock:
        kept, _kept = _kept, None  # taken out while in use
    if kept is not None and not _answers(kept, key):
        _drop(kept)
        kept = None
    if kept is None:
        stack = contextlib.ExitStack()
        opened = stack.enter_context(open_inbox(settings))  # MailboxError: nothing is open
        kept = _Kept(key, os.getpid(), stack, opened._box, time.monotonic())
    try:
        yield Inbox(kept.box, settings)  # a fresh Inbox: folder names are listed anew
    except BaseException:
        _drop(kept)
        raise
    kept.last_used = time.monotonic()
    with _kept_lock:
        if _kept is None:
            _kept, kept = kept, None
    if kept is not None:  # another block put its own back first
        _drop(kept)


def close_kept() -> None:
    """Log out of this process's kept connection, if any (at exit, and for tests)."""
    global _kept
    with _kept_lock:
        kept, _kept = _kept, None
    if kept is not None:
        _drop(kept)


atexit.register(close_kept)
