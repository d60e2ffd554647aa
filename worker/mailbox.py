"""The IMAP wire. Only this module imports imap_tools or imaplib.

Every failure of the library or the network comes out as ``MailboxError``, which says
whether trying again later can help.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError, MailboxLoginError
from imap_tools.mailbox import BaseMailBox
from imap_tools.utils import encode_folder

from config.settings import Security, Settings
from worker.errors import IntakeError

FETCH_CHUNK = 50  # messages per UID FETCH: bounds memory, keeps round trips few


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
        """Select ``folder`` read-write and say where its UIDs stand."""
        with _translated(f"select {folder!r}"):
            status = self._box.folder.status(folder, ["UIDVALIDITY", "UIDNEXT"])
            self._box.folder.set(folder)
        return FolderState(uidvalidity=status["UIDVALIDITY"], uidnext=status["UIDNEXT"])

    def uids_after(self, last_uid: int) -> list[int]:
        with _translated("search"):
            typ, data = self._box.client.uid("SEARCH", f"UID {last_uid + 1}:*")
        if typ != "OK":
            raise MailboxError(f"IMAP UID SEARCH failed: {data!r}")
        found = (int(x) for x in b" ".join(d for d in data if d).split())
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    def fetch_raw(self, uids: Sequence[int]) -> Iterator[RawMail]:
        """The exact bytes and INTERNALDATE of each message, without setting \\Seen."""
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
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
        self.ensure_folder(folder)
        client = self._box.client
        with _translated(f"move to {folder!r}"):
            client.untagged_responses.pop("OK", None)
            if "MOVE" in client.capabilities:
                typ, data = client.uid("MOVE", str(uid), encode_folder(folder).decode("ascii"))
            else:  # RFC 3501 alone: copy, then delete just this one
                typ, data = client.uid("COPY", str(uid), encode_folder(folder).decode("ascii"))
                if typ == "OK":
                    client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
                    if "UIDPLUS" in client.capabilities:
                        client.uid("EXPUNGE", str(uid))
                    else:
                        client.expunge()
            if typ != "OK":
                raise MailboxError(f"IMAP move to {folder!r} failed: {data!r}")
            said = [d for d in data if isinstance(d, bytes)]
            said += [d for d in client.untagged_responses.pop("OK", []) if isinstance(d, bytes)]
        for text in said:
            match = _COPYUID.search(text)
            if match and match.group(3).isdigit():
                return int(match.group(1)), int(match.group(3))
        return None

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


@contextmanager
def open_inbox(settings: Settings) -> Iterator[Inbox]:
    """Connect and log in; MailboxError names the server and what went wrong."""
    where = f"{settings.imap_host}:{settings.imap_port}"
    timeout = settings.imap_timeout
    try:
        box: BaseMailBox
        if settings.imap_security is Security.ssl:
            box = MailBox(settings.imap_host, settings.imap_port, timeout=timeout)
        elif settings.imap_security is Security.starttls:
            box = MailBoxStartTls(settings.imap_host, settings.imap_port, timeout=timeout)
        else:
            box = MailBoxUnencrypted(settings.imap_host, settings.imap_port, timeout=timeout)
    except (TimeoutError, OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        raise MailboxError(f"IMAP server {where} unreachable: {_describe(exc)}") from exc
    try:
        try:
            box.login(
                settings.imap_user, settings.imap_password.get_secret_value(), initial_folder=None
            )
        except MailboxLoginError as exc:
            raise MailboxError(
                f"IMAP login as {settings.imap_user!r} at {where} refused: {_describe(exc)}",
                permanent=True,
            ) from exc
        except (ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
            raise MailboxError(f"IMAP login at {where} failed: {_describe(exc)}") from exc
        yield Inbox(box, settings)
    finally:
        # The connection is going away either way.
        with contextlib.suppress(ImapToolsError, imaplib.IMAP4.error, OSError):
            box.logout()
