"""Intake: keep every new message of the inbox, then carry out pending mailbox actions.

``poll_once`` holds the first invariant: the raw bytes go to the archive and the row to
the database in one commit before anything else happens to a message, and the folder's
last UID moves in that same commit, so a crash at any point loses nothing and a re-poll
keeps nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from config.settings import Settings
from parsers.headers import peek
from worker.mailbox import ConnectionLost, Inbox, MailboxError, RawMail, kept_inbox, open_inbox
from worker.processing import OUTCOME_KEYWORDS
from worker.runtime import Context
from worker.store import Incoming, PendingAction, utcnow

log = logging.getLogger(__name__)

Opener = Callable[[Settings], AbstractContextManager[Inbox]]

# Mails kept in one commit, and handed on together to processing: large enough that a backlog
# costs a commit and a queued task per group, small enough that its first mails are processed
# while the rest is still fetched (docs/PERFORMANCE.md).
KEEP_GROUP = 10
KEEP_GROUP_BYTES = 8 * 1024 * 1024  # ... or fewer, once they hold this much


@dataclass(frozen=True, slots=True)
class PollResult:
    fetched: int = 0
    new: tuple[int, ...] = ()  # message ids to process
    duplicates: int = 0
    uidvalidity_changed: bool = False
    actions: int = 0
    copies: int = 0
    unfinished: tuple[int, ...] = ()  # kept earlier, never finished: process again

    def __str__(self) -> str:
        text = f"fetched {self.fetched}, new {len(self.new)}, duplicates {self.duplicates}"
        text += f", mailbox actions {self.actions}, copies to Sent {self.copies}"
        if self.unfinished:
            text += f", re-queued {len(self.unfinished)}"
        if self.uidvalidity_changed:
            text += " (UIDVALIDITY changed: folder re-read)"
        return text


def poll_once(
    ctx: Context,
    *,
    opener: Opener = kept_inbox,
    now: datetime | None = None,
    on_new: Callable[[tuple[int, ...]], object] | None = None,
) -> PollResult:
    """Fetch and keep what is new in the inbox; apply due mailbox actions.

    A backlog is kept ``KEEP_GROUP`` mails at a time, each group in one commit. ``on_new(message
    ids)`` is called as soon as a group is kept, so that processing can start while the rest
    of a backlog is still being fetched.
    The connection stays open for the next poll of this process (``kept_inbox``): an idle
    poll is then a NOOP, SELECT and SEARCH, not a new login (docs/PERFORMANCE.md).
    """
    settings, key = ctx.settings, ctx.settings.mailbox_key
    fetched = duplicates = 0
    new: list[int] = []
    with opener(settings) as inbox:
        folder = inbox.select(settings.imap_folder)
        position = ctx.db.mailbox_position(key)
        if position is not None and position[0] == 0:
            position = None  # a failed poll's health row: this folder was never read
        changed = position is not None and position[0] != folder.uidvalidity
        if position is None or changed:
            ctx.db.reset_mailbox(key, folder.uidvalidity)
            last_uid = 0
        else:
            last_uid = position[1]
        uids = inbox.uids_after(last_uid)
        for group in _groups(inbox.fetch_raw(uids), KEEP_GROUP):
            fetched += len(group)
            kept = keep_mails(ctx, key, folder.uidvalidity, group)
            fresh = tuple(message_id for message_id, created in kept if created)
            duplicates += len(kept) - len(fresh)
            new.extend(fresh)
            if fresh and on_new is not None:
                on_new(fresh)
        if uids:
            # UIDs that vanished between SEARCH and FETCH (expunged) are passed over for good.
            ctx.db.advance_mailbox(key, folder.uidvalidity, max(uids))
        actions = apply_mailbox_actions(ctx, inbox)
        copies = copy_sent_mail(ctx, inbox)
    grace = timedelta(seconds=settings.retry_grace)  # a message not processed by then lost its task
    stale = timedelta(seconds=settings.claim_stale)  # a claim whose worker died is taken again
    unfinished = ctx.db.unfinished_messages(now or utcnow(), grace=grace, stale=stale)
    return PollResult(
        fetched=fetched,
        new=tuple(new),
        duplicates=duplicates,
        uidvalidity_changed=changed,
        actions=actions,
        copies=copies,
        unfinished=tuple(i for i in unfinished if i not in new),
    )


def keep_mail(ctx: Context, mailbox: str, uidvalidity: int, mail: RawMail) -> tuple[int, bool]:
    """The raw bytes on disk first, then the row and its location in one commit: (message id,
    whether it is new)."""
    return keep_mails(ctx, mailbox, uidvalidity, [mail])[0]


def keep_mails(
    ctx: Context, mailbox: str, uidvalidity: int, mails: Sequence[RawMail]
) -> list[tuple[int, bool]]:
    """``keep_mail`` for a group: every mail's bytes on disk first, then all the rows in one
    commit. A crash in between keeps none of the rows, and the next poll fetches them again."""
    incoming = []
    kept = ctx.archive.put_raws([mail.raw for mail in mails])
    for mail, (sha, relative) in zip(mails, kept, strict=True):
        head = peek(mail.raw)
        incoming.append(
            Incoming(
                uid=mail.uid,
                internaldate=mail.internaldate,
                sha256=sha,
                raw_path=relative,
                size=len(mail.raw),
                message_id_header=head.message_id,
                from_addr=head.from_addr,
                subject=head.subject,
            )
        )
    return ctx.db.record_messages(mailbox, uidvalidity, incoming)


def _groups(mails: Iterable[RawMail], size: int) -> Iterator[list[RawMail]]:
    """``size`` mails at a time, or fewer once they hold ``KEEP_GROUP_BYTES``: a backlog of
    large mails must not be held ten at a time (the fetch holds one FETCH's answer)."""
    group: list[RawMail] = []
    held = 0
    for mail in mails:
        group.append(mail)
        held += len(mail.raw)
        if len(group) >= size or held >= KEEP_GROUP_BYTES:
            yield group
            group, held = [], 0
    if group:
        yield group


@dataclass(frozen=True, slots=True)
class Backfilled:
    found: int  # messages received since the date
    new: tuple[int, ...]  # kept now, to process
    duplicates: int  # kept already
    position: int  # the folder's last UID from now on


def backfill(
    ctx: Context,
    since: date,
    *,
    opener: Opener = open_inbox,
    progress: Callable[[int, int], None] | None = None,
) -> Backfilled:
    """Keep every message of the watched folder received on or after ``since`` (what a first
    poll would have read from the folder's start, without the older years), and move the
    folder's position to its last UID, so that the polls go on from there. Processing, with
    acknowledgements held back, is the caller's (``ccm-intake backfill``)."""
    settings, key = ctx.settings, ctx.settings.mailbox_key
    new: list[int] = []
    duplicates = 0
    with opener(settings) as inbox:
        folder = inbox.select(settings.imap_folder)
        position = ctx.db.mailbox_position(key)
        if position is None or position[0] != folder.uidvalidity:
            ctx.db.reset_mailbox(key, folder.uidvalidity)
        uids = inbox.uids_since(since)
        last = max(inbox.uids_after(0), default=0)
        for done, mail in enumerate(inbox.fetch_raw(uids), start=1):
            message_id, created = keep_mail(ctx, key, folder.uidvalidity, mail)
            if created:
                new.append(message_id)
            else:
                duplicates += 1
            if progress is not None:
                progress(done, len(uids))
        ctx.db.advance_mailbox(key, folder.uidvalidity, last)  # never backwards
    stored = ctx.db.mailbox_position(key)
    return Backfilled(len(uids), tuple(new), duplicates, stored[1] if stored else last)


def sync_mailbox(ctx: Context, *, opener: Opener = kept_inbox) -> tuple[int, int]:
    """Only the mailbox side: apply due actions and copy sent mail. Returns (actions, copies)."""
    with opener(ctx.settings) as inbox:
        return apply_mailbox_actions(ctx, inbox), copy_sent_mail(ctx, inbox)


def apply_mailbox_actions(ctx: Context, inbox: Inbox) -> int:
    """Move decided messages to their folder (or set their keyword). Returns how many.

    Works in every folder where a message currently is, not only the polled one: a review
    resolved later moves the mail out of "Needs review". The messages of one folder bound for
    the same place go in one UID MOVE (a round trip per message was most of a sync's time,
    and more over a real network); a move the server refuses is tried message by message, so
    that one bad message costs only itself. Each move records where the message went, from
    the server's COPYUID or, failing that, a look-up by Message-ID.
    """
    settings, done = ctx.settings, 0
    lost: list[tuple[PendingAction, str]] = []  # moved, but the server did not say where
    by_folder: dict[str, dict[str, list[PendingAction]]] = {}
    for action in ctx.db.pending_actions(settings.account_key):
        by_folder.setdefault(action.folder, {}).setdefault(action.target, []).append(action)
    selected: tuple[str, int] | None = None
    for folder, by_target in by_folder.items():
        for target, actions in by_target.items():
            try:
                if selected is None or selected[0] != folder:
                    selected = (folder, inbox.select(folder).uidvalidity)
                current = [a for a in actions if a.uidvalidity == selected[1]]
                for action in actions:
                    if action.uidvalidity != selected[1]:
                        ctx.db.action_done(
                            action.location_id, error="folder recreated (UIDVALIDITY)"
                        )
                how, _, what = target.partition(":")
                if how == "keyword":
                    done += _set_keywords(ctx, inbox, current, what)
                    continue
                destination = inbox.folder_name(*what.split("/"))
                if destination == folder:
                    for action in current:
                        ctx.db.action_done(action.location_id)  # already where it belongs
                    continue
                for start in range(0, len(current), MOVE_GROUP):
                    group = current[start : start + MOVE_GROUP]
                    moved, missed = _move(ctx, inbox, group, destination)
                    lost += missed
                    done += moved
            except ConnectionLost:
                raise  # the next poll carries on where this one stopped
            except MailboxError as exc:
                log.warning("mailbox actions to %s in %s failed: %s", target, folder, exc)
                for action in actions:
                    ctx.db.action_done(action.location_id, error=str(exc))
    for action, destination in lost:
        found = inbox.find(destination, action.message_id_header, action.sha256)
        ctx.db.location_moved(
            action.location_id, settings.folder_key(destination), *(found or (None, None))
        )
    if lost:
        inbox.select(settings.imap_folder)
    return done


MOVE_GROUP = 100  # messages in one UID MOVE


def _move(
    ctx: Context, inbox: Inbox, actions: list[PendingAction], destination: str
) -> tuple[int, list[tuple[PendingAction, str]]]:
    """Move ``actions``' messages (of the selected folder) to ``destination``: (how many were
    moved, those the server did not say where it put)."""
    key = ctx.settings.folder_key(destination)
    try:
        placed = inbox.move_many([a.uid for a in actions], destination)
    except ConnectionLost:
        raise
    except MailboxError as exc:
        if len(actions) == 1:
            log.warning("mailbox action %s for UID %s failed: %s", destination, actions[0].uid, exc)
            ctx.db.action_done(actions[0].location_id, error=str(exc))
            return 0, []
        moved, lost = 0, list[tuple[PendingAction, str]]()
        for action in actions:  # find the one the server will not move
            one, missed = _move(ctx, inbox, [action], destination)
            moved, lost = moved + one, lost + missed
        return moved, lost
    ctx.db.locations_moved(
        [(a.location_id, key, *placed[a.uid]) for a in actions if a.uid in placed]
    )
    return len(actions), [(a, destination) for a in actions if a.uid not in placed]


def _set_keywords(ctx: Context, inbox: Inbox, actions: list[PendingAction], keyword: str) -> int:
    done = 0
    for action in actions:
        try:
            inbox.set_keyword(action.uid, keyword, replacing=OUTCOME_KEYWORDS)
        except ConnectionLost:
            raise
        except MailboxError as exc:
            log.warning("mailbox action %s for UID %s failed: %s", keyword, action.uid, exc)
            ctx.db.action_done(action.location_id, error=str(exc))
            continue
        ctx.db.action_done(action.location_id)
        done += 1
    return done


def copy_sent_mail(ctx: Context, inbox: Inbox) -> int:
    """Keep a copy of each sent mail in the Sent folder, as a person's mail client would.

    Each copy is looked for before it is appended: one appended just before the database lost
    our note of it (a restart, a worker killed) is there already — appending it again left
    two (tests/faults, PostgreSQL restarted mid-run).
    """
    folder = ctx.settings.imap_sent_folder
    if not folder:
        return 0
    copied: list[int] = []
    sent = inbox.folder_name(*folder.split("/"))
    try:
        for outbox_id, raw in ctx.db.uncopied_sent():
            inbox.ensure_folder(sent)
            there = inbox.find(sent, peek(raw).message_id, hashlib.sha256(raw).hexdigest())
            if there is None:
                inbox.append(raw, sent, seen=True)
            copied.append(outbox_id)
    finally:
        # Recorded for the group at once, also when a later one failed. A copy whose record
        # is lost all the same is found by the look above next time, not appended again.
        ctx.db.mark_copied(copied)
    return len(copied)
