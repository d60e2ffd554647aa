"""The database and the archive folder: the truth of the service.

Only this module opens SQLAlchemy sessions and writes under the archive. The raw
bytes of every message are kept content-addressed (``raw/ab/<sha256>.eml``); what is
filed for a State goes under ``filed/<ISO3> <State>/<kind>/<date>_<ref>/``.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from worker.compose import Outgoing
from worker.errors import IntakeError


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps none) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Status(enum.StrEnum):
    """Where a message stands. Every message ends in one of the last four."""

    received = "received"  # kept (raw bytes + row), not processed yet
    processing = "processing"  # claimed by a worker
    filed = "filed"  # one or more submissions under a State
    needs_review = "needs_review"  # unsure: a person decides
    not_submission = (
        "not_submission"  # auto-reply, bounce, list mail, correspondence without a State
    )
    quarantined = "quarantined"  # could not be read; kept with the reason


CLAIM_STALE = timedelta(minutes=10)  # a claimed message whose worker died is taken again
_MAX_REPLY_IDS = 20  # the last Message-IDs of a thread that are looked up in the outbox
FINAL = (Status.filed, Status.needs_review, Status.not_submission, Status.quarantined)


class MailboxState(Base):
    """How far the poller has read one folder of one account, and how its polls went."""

    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How long the last successful poll took, in seconds (for `ccm-intake metrics`).
    last_poll_seconds: Mapped[float | None] = mapped_column(Float)


class Message(Base):
    __tablename__ = "message"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    raw_path: Mapped[str] = mapped_column(String(200))
    internaldate: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default=Status.received, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    message_id_header: Mapped[str | None] = mapped_column(String(998), index=True)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    state_iso3: Mapped[str | None] = mapped_column(String(3))
    kind: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(2))
    analysis: Mapped[str] = mapped_column(Text, default="")  # JSON: the evidence, for review
    target: Mapped[str | None] = mapped_column(String(400))  # where the mailbox action puts it
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when its personal data was purged (worker/retention.py): the raw bytes, the filed
    # files and the fields above that name people are gone; the row, its SHA-256 (so the same
    # mail is never filed again), State, kind, status and dates stay.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageLocation(Base):
    """Where a message was seen on the server, and what is to be done to it there."""

    __tablename__ = "message_location"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    mailbox: Mapped[str] = mapped_column(String(400))
    uidvalidity: Mapped[int] = mapped_column(Integer)
    uid: Mapped[int] = mapped_column(Integer)
    target: Mapped[str | None] = mapped_column(
        String(400)
    )  # folder, or keyword with mailbox_action=keyword
    # waiting (for processing) | pending | done | stale (UIDVALIDITY changed) | failed
    action_state: Mapped[str] = mapped_column(String(10), default="waiting")
    action_error: Mapped[str] = mapped_column(Text, default="")
    # Where the message is now: a move makes the old place not current and records the new
    # one (from the server's COPYUID), so a later decision (a review resolved) can move it again.
    current: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Submission(Base):
    __tablename__ = "submission"
    __table_args__ = (UniqueConstraint("message_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    state_iso3: Mapped[str] = mapped_column(String(3), index=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    folder: Mapped[str] = mapped_column(String(400))  # relative to the archive root
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What it is for: the meeting ('7MSP') of a delegation, the reporting year ('2016') or
    # 'initial' of an Article 7 report. A later submission for the same State, kind and
    # cycle is the next version and supersedes this one, which is kept.
    cycle: Mapped[str] = mapped_column(String(20), default="", server_default="")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    details: Mapped[str] = mapped_column(Text, default="", server_default="")  # JSON: roster, forms


class FiledFile(Base):
    __tablename__ = "filed_file"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)


class Outbox(Base):
    """One row per mail we will ever send; ``key`` makes it happen once."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The acknowledgement limits (``_ack_limit_reached``) read these indexes alone: a row
        # holds its mail, and counting rows made every acknowledgement read the day's mails.
        Index(
            "ix_outbox_purpose_recipient_created", "purpose", "recipient", "created_at", "status"
        ),
        Index("ix_outbox_purpose_created", "purpose", "created_at", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))  # ack | reminder | digest
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id"))
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(Text)
    # Indexed: a mail that replies to one of ours is found by it (the loop guard).
    message_id_header: Mapped[str] = mapped_column(String(998), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    copied_to_sent: Mapped[bool] = mapped_column(Boolean, default=False)


class Reminder(Base):
    """The reminder ledger: one row per obligation x cycle x State x offset, written before the
    mail is queued, so that a second sweep, a restarted beat or a retry never sends it twice."""

    __tablename__ = "reminder"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    obligation: Mapped[str] = mapped_column(String(40))  # delegation | article7 | article7_initial
    cycle: Mapped[str] = mapped_column(String(20))  # '7MSP', '2016', 'initial'
    state_iso3: Mapped[str] = mapped_column(String(3), index=True)
    offset_days: Mapped[int] = mapped_column(Integer)  # days before the deadline; negative after
    due_date: Mapped[date] = mapped_column(Date)
    # queued | sent | cancelled (it arrived meanwhile) | no_contact | failed
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactHealth(Base):
    """An address that bounced for good is not written to blindly again."""

    __tablename__ = "contact_health"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    failing: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    last_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PurgeRun(Base):
    """One purge of personal data: when, up to which date, and how much went."""

    __tablename__ = "purge_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_before: Mapped[datetime] = mapped_column(UTCDateTime)  # mail received before this
    messages: Mapped[int] = mapped_column(Integer, default=0)
    raw_files: Mapped[int] = mapped_column(Integer, default=0)
    filed_folders: Mapped[int] = mapped_column(Integer, default=0)
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    outbox_rows: Mapped[int] = mapped_column(Integer, default=0)
    kept_waiting: Mapped[int] = mapped_column(Integer, default=0)  # in review: not purged
    started_by: Mapped[str] = mapped_column(String(20), default="command")  # command | schedule


def outbox_values(key: str, purpose: str, mail: Outgoing, now: datetime) -> dict[str, Any]:
    """The columns of a mail to send, due now; its ``key`` makes it happen once."""
    return {
        "key": key,
        "purpose": purpose,
        "recipient": mail.recipient,
        "subject": mail.subject,
        "message_id_header": mail.message_id,
        "raw": mail.raw,
        "created_at": now,
        "next_attempt_at": now,
    }


def outbox_row(key: str, purpose: str, mail: Outgoing, now: datetime) -> Outbox:
    """A mail to send, due now, as an ORM row."""
    return Outbox(**outbox_values(key, purpose, mail, now))


# The tables the hot path writes with Core statements (Database.finish_message).
_MESSAGE = cast(Table, Message.__table__)
_SUBMISSION = cast(Table, Submission.__table__)
_FILED_FILE = cast(Table, FiledFile.__table__)
_OUTBOX = cast(Table, Outbox.__table__)
_LOCATION = cast(Table, MessageLocation.__table__)


def _ack_limits_statement() -> Select[Any]:
    """This recipient's acknowledgements in the last hour and day, and everyone's in the last
    hour counted no further than the breaker's limit (a backlog's thousands are not counted
    each time one more is queued): one statement, three looks at two indexes, this
    recipient's from (purpose, recipient, created_at, status), everyone's from (purpose,
    created_at, status). Parameters: recipient, hour_ago, day_ago, all_limit."""
    counted = (Outbox.purpose == "ack", Outbox.status != "suppressed")
    mine = (*counted, Outbox.recipient == bindparam("recipient"))
    hour_ago = bindparam("hour_ago", type_=UTCDateTime())
    day_ago = bindparam("day_ago", type_=UTCDateTime())
    everyone = select(Outbox.id).where(*counted, Outbox.created_at >= hour_ago)
    return select(
        select(func.count()).where(*mine, Outbox.created_at >= hour_ago).scalar_subquery(),
        select(func.count()).where(*mine, Outbox.created_at >= day_ago).scalar_subquery(),
        select(func.count())
        .select_from(everyone.limit(bindparam("all_limit")).subquery())
        .scalar_subquery(),
    )


# Built once: statements that run for every filed mail, executed with their parameters
# (building and keying a statement cost more than running it on SQLite).
_ACK_LIMITS = _ack_limits_statement()
_LATEST_VERSION = (
    select(Submission.id, Submission.version)
    .where(
        Submission.state_iso3 == bindparam("state"),
        Submission.kind == bindparam("kind"),
        Submission.cycle == bindparam("cycle"),
    )
    .order_by(Submission.version.desc(), Submission.id.desc())
    .limit(1)
)
# finish_message's: the message as it is, and the rows it writes (values as parameters).
_STATUS_NOW = select(_MESSAGE.c.status, _MESSAGE.c.internaldate).where(
    _MESSAGE.c.id == bindparam("which")
)
_NEW_SUBMISSION = insert(_SUBMISSION).returning(_SUBMISSION.c.id)
_NEW_OUTBOX = insert(_OUTBOX).returning(_OUTBOX.c.id)
_DECIDED = update(_MESSAGE).where(_MESSAGE.c.id == bindparam("which"))
_OUTBOX_ROW = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("which"))
# Wherever the message is now, it goes where its outcome says; a place whose folder was
# recreated (stale) is left alone.
_TO_MOVE = update(_LOCATION).where(
    _LOCATION.c.message_id == bindparam("which"),
    _LOCATION.c.current.is_(True),
    _LOCATION.c.action_state != "stale",
)


# --- the database ----------------------------------------------------------------


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the poller write while workers read; busy_timeout (via timeout=30)
            # makes concurrent writers wait instead of failing. synchronous=FULL syncs the
            # log at each commit: a commit is followed by a move in the mailbox or a sent
            # acknowledgement, and under NORMAL a power cut could take back the commit but
            # not what followed it (a kept mail forgotten once moved out of the inbox, an
            # acknowledgement sent twice). It costs a backlog about 10 % (docs/PERFORMANCE.md).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    engine = create_engine(url)

    # A pooled connection is pinged before use only when it has been idle: the server may have
    # been restarted meanwhile. A ping on every checkout (``pool_pre_ping``) was a round trip
    # per transaction, 3 % of the pool's time in a backlog on PostgreSQL; a connection used a
    # moment ago and broken since fails its statement, which invalidates the pool's
    # connections, and the work is given back and done again (tests/faults).
    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure: the pool discards it and connects again
            raise DisconnectionError(str(exc)) from exc

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _used_now(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    return engine


PING_AFTER_IDLE = 1.0  # seconds


def _new_message(mail: Incoming) -> Message:
    header_id = mail.message_id_header
    return Message(
        sha256=mail.sha256,
        size=mail.size,
        raw_path=mail.raw_path,
        internaldate=mail.internaldate,
        message_id_header=(header_id or None) and header_id[:998],
        from_addr=mail.from_addr[:320],
        subject=mail.subject,
        status=Status.received,
    )


class Database:
    """An engine and its sessions, created lazily per process (Celery forks workers)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pid = -1
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            self._engine = make_engine(self.url)
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
            self._pid = os.getpid()
        return self._engine

    def _alembic(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        return config

    def create_schema(self) -> None:
        """Bring the schema to the newest migration (a no-op when it is there already).

        Several processes start at once (worker, beat, CLI): a lock makes them migrate one
        after the other — an advisory lock on PostgreSQL, a file lock beside a SQLite file.
        """
        from alembic import command

        config = self._alembic()
        with self._migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7243001)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def new_migration(self, message: str) -> None:
        """Write a migration for what the models changed (against this, up-to-date, database)."""
        from alembic import command

        self.create_schema()
        config = self._alembic()
        versions = Path(__file__).with_name("migrations") / "versions"
        number = 1 + max((int(p.name[:4]) for p in versions.glob("[0-9]" * 4 + "_*.py")), default=0)
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=f"{number:04d}")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        self.engine  # noqa: B018 - makes the sessionmaker for this process
        assert self._sessions is not None
        with self._sessions.begin() as session:
            yield session

    # -- intake ------------------------------------------------------------------------

    def mailbox_position(self, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID kept) for a folder, or None before its first poll."""
        with self.session() as s:
            row = s.get(MailboxState, mailbox)
            return None if row is None else (row.uidvalidity, row.last_uid)

    def reset_mailbox(self, mailbox: str, uidvalidity: int) -> int:
        """The folder's UIDs changed meaning: start from UID 0; old locations go stale."""
        with self.session() as s:
            row = s.get(MailboxState, mailbox)
            if row is None:
                s.add(MailboxState(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0))
                return 0
            row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, 0, utcnow()
            result = s.execute(
                update(MessageLocation)
                .where(
                    MessageLocation.mailbox == mailbox,
                    MessageLocation.uidvalidity != uidvalidity,
                    MessageLocation.action_state.in_(("waiting", "pending")),
                )
                .values(action_state="stale")
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def record_message(
        self,
        *,
        mailbox: str,
        uidvalidity: int,
        uid: int,
        internaldate: datetime,
        sha256: str,
        raw_path: str,
        size: int,
        message_id_header: str | None,
        from_addr: str,
        subject: str,
    ) -> tuple[int, bool]:
        """Keep one fetched message and advance the folder's last UID, in one commit.

        Returns (message id, True when these bytes are new). The same bytes seen again
        (re-poll, re-APPEND, a new UIDVALIDITY) add only a location.
        """
        incoming = Incoming(
            uid, internaldate, sha256, raw_path, size, message_id_header, from_addr, subject
        )
        return self.record_messages(mailbox, uidvalidity, [incoming])[0]

    def record_messages(
        self, mailbox: str, uidvalidity: int, incoming: Sequence[Incoming]
    ) -> list[tuple[int, bool]]:
        """``record_message`` for several messages of one folder, in one commit (a poll keeps a
        backlog a group at a time: a commit per mail was a fifth of the poll's time), and with
        one look-up of the group's bytes and one of its places rather than two per message."""
        kept: list[tuple[int, bool]] = []
        with self.session() as s:
            state = s.get(MailboxState, mailbox)
            known = {
                m.sha256: m
                for m in s.scalars(
                    select(Message).where(Message.sha256.in_({m.sha256 for m in incoming}))
                )
            }
            placed = set(
                s.scalars(
                    select(MessageLocation.uid).where(
                        MessageLocation.mailbox == mailbox,
                        MessageLocation.uidvalidity == uidvalidity,
                        MessageLocation.uid.in_({m.uid for m in incoming}),
                    )
                )
            )
            messages: list[tuple[Incoming, Message, bool]] = []
            for mail in incoming:
                message = known.get(mail.sha256)
                created = message is None
                if message is None:  # new bytes; the same bytes twice in a group are one
                    message = known[mail.sha256] = _new_message(mail)
                    s.add(message)
                messages.append((mail, message, created))
            s.flush()  # the new messages' ids
            for mail, message, created in messages:
                kept.append((message.id, created))
                if mail.uid not in placed:
                    placed.add(mail.uid)
                    final = message.status in FINAL
                    s.add(
                        MessageLocation(
                            message_id=message.id,
                            mailbox=mailbox,
                            uidvalidity=uidvalidity,
                            uid=mail.uid,
                            target=message.target if final else None,
                            action_state="pending" if final else "waiting",
                        )
                    )
                if state is None:
                    state = MailboxState(
                        mailbox=mailbox, uidvalidity=uidvalidity, last_uid=mail.uid
                    )
                    s.add(state)
                elif state.uidvalidity == uidvalidity and mail.uid > state.last_uid:
                    state.last_uid, state.updated_at = mail.uid, utcnow()
        return kept

    def advance_mailbox(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        with self.session() as s:
            state = s.get(MailboxState, mailbox)
            if state is None:
                s.add(MailboxState(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid))
            elif state.uidvalidity == uidvalidity and last_uid > state.last_uid:
                state.last_uid, state.updated_at = last_uid, utcnow()

    def unfinished_messages(
        self, now: datetime, *, grace: timedelta, stale: timedelta
    ) -> list[int]:
        """Messages kept but not processed: their task was lost (broker restart) or died."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Message.id)
                    .where(
                        or_(
                            (Message.status == Status.received)
                            & (Message.stored_at <= now - grace),
                            (Message.status == Status.processing)
                            & (Message.claimed_at <= now - stale),
                        )
                    )
                    .order_by(Message.id)
                )
            )

    # -- processing ----------------------------------------------------------------------

    def claim_message(self, message_id: int, now: datetime, *, stale: timedelta) -> Message | None:
        """Take a message for processing; None when it is done or another worker has it."""
        with self.session() as s:
            return s.scalars(
                update(Message)
                .where(
                    Message.id == message_id,
                    or_(
                        Message.status == Status.received,
                        (Message.status == Status.processing) & (Message.claimed_at <= now - stale),
                    ),
                )
                .values(status=Status.processing, claimed_at=now)
                .returning(Message)
                .execution_options(synchronize_session=False)  # a new session holds nothing
            ).one_or_none()

    def claim_for_review(self, message_id: int, now: datetime) -> tuple[Message, Status] | None:
        """Take a message waiting for a person (in the review queue or quarantined) to decide
        it: the row and the status it had; None if it is in neither."""
        with self.session() as s:
            before = s.scalar(select(Message.status).where(Message.id == message_id))
            if before not in (Status.needs_review, Status.quarantined):
                return None
            result = s.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == before)
                .values(status=Status.processing, claimed_at=now)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None  # decided meanwhile by someone else
            row = s.get(Message, message_id)
            assert row is not None
            return row, Status(before)

    def review_queue(self, status: Status = Status.needs_review) -> list[Message]:
        """The messages waiting for a person, oldest first: the review queue, or those
        quarantined (``status``)."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Message)
                    .where(Message.status == status)
                    .order_by(Message.internaldate, Message.id)
                )
            )

    def release_message(self, message_id: int, status: Status = Status.received) -> bool:
        """Give a claimed message back (processing failed in a way a retry may fix).

        Best effort: when the database itself is what failed, the claim simply goes stale
        and the message is taken again after ``CLAIM_STALE``.
        """
        try:
            with self.session() as s:
                s.execute(
                    update(Message)
                    .where(Message.id == message_id, Message.status == Status.processing)
                    .values(status=status, claimed_at=None)
                )
        except SQLAlchemyError:
            return False
        return True

    def reopen_message(self, message_id: int, *, allowed: Iterable[Status]) -> bool:
        """Set a decided message back to *received*, so that it is processed again (after a
        limit was raised, the registry mended...). Only from the ``allowed`` statuses; False
        when the message is in none of them. Its submissions, if any, stay."""
        with self.session() as s:
            done = s.execute(
                update(Message)
                .where(Message.id == message_id, Message.status.in_([str(a) for a in allowed]))
                .values(status=Status.received, claimed_at=None)
            )
            return bool(getattr(done, "rowcount", 0))

    def message_ids_with(self, status: Status) -> list[int]:
        with self.session() as s:
            return list(
                s.scalars(select(Message.id).where(Message.status == status).order_by(Message.id))
            )

    def message_of_reference(self, reference: str) -> int | None:
        with self.session() as s:
            return s.scalar(select(Submission.message_id).where(Submission.reference == reference))

    def queue_resend(
        self, reference: str, mail: Callable[[Outbox, str], Outgoing], now: datetime
    ) -> int | None:
        """Queue the acknowledgement of ``reference`` once more, as a new mail (its own key
        ``ack:REF:resend:N`` and Message-ID, from ``mail(original, key)``), whatever the
        rate limits say: a person asked for it. None when no acknowledgement was ever made
        for it."""
        base = f"ack:{reference}"
        with self.session() as s:
            original = s.scalar(select(Outbox).where(Outbox.key == base))
            if original is None:
                return None
            earlier = s.scalar(
                select(func.count(Outbox.id)).where(
                    Outbox.key.startswith(f"{base}:resend:", autoescape=True)
                )
            )
            key = f"{base}:resend:{(earlier or 0) + 1}"
            row = outbox_row(key, "ack", mail(original, key), now)
            row.submission_id = original.submission_id
            s.add(row)
            s.flush()
            return row.id

    def finish_message(
        self,
        archive: Archive,
        message_id: int,
        outcome: Outcome,
        compose_ack: Callable[[str, PlannedSubmission, list[StoredFile]], Outgoing | None],
        *,
        now: datetime,
        ack_limits: AckLimits | None = None,
        original: tuple[str, str] | None = None,
        claim_acks: bool = False,
    ) -> Finished:
        """Record an outcome, file its submissions and queue their acknowledgements — one commit.

        ``original``: the message's (sha256, raw path), so that its filed copy is a link.
        ``claim_acks``: the acknowledgements are claimed for sending by the caller, in this
        commit (``Finished.sending``), rather than left for ``claim_outbox``; one the caller
        then fails to send is taken again once its claim is stale, like any other.

        If the commit fails, the folders written for it are removed again, so nothing is filed
        that the database does not know.
        """
        written: list[str] = []
        # Each submission's files are written (and fsynced) before the transaction, and only
        # moved into place inside it: the database's write lock is no longer held while files
        # are written, which kept the other pool processes waiting (docs/PERFORMANCE.md).
        staged: list[tuple[str, list[StoredFile]]] = []
        try:
            originals = dict([original]) if original else None
            for planned in outcome.submissions:
                staged.append(archive.stage(planned.files, originals=originals))
            # Core statements on the session's connection, without the ORM's unit of work
            # (flushes, identity map) around them: this is the hot path of a backlog.
            with self.session() as session:
                s = session.connection()
                found = s.execute(_STATUS_NOW, {"which": message_id}).one_or_none()
                if found is None or found.status != Status.processing:
                    return Finished()
                received: datetime = found.internaldate
                limits = ack_limits or AckLimits()
                references: list[str] = []
                going: list[int] = []  # outbox rows to send: pending, or claimed for the caller
                sending: list[Sending] = []
                for planned, (staging, stored) in zip(outcome.submissions, staged, strict=True):
                    previous = self._latest_version(s, planned)
                    version = previous.version + 1 if previous else 1
                    number = version
                    if planned.kind == "other" or not planned.cycle:
                        number = self._count_in_year(s, planned, received.year) + 1  # this one
                    reference = reference_for(
                        planned.kind, planned.cycle, planned.state_iso3, number, received.year
                    )
                    date = received.astimezone(UTC).strftime("%Y-%m-%d")
                    state_folder = safe_component(planned.state_folder)
                    folder = (
                        f"filed/{state_folder}/{planned.kind}/{date}_{reference.replace('/', '-')}"
                    )
                    # The reference is unique and names the folder: claim it in the database
                    # before writing there. Two versions of one State's submission filed at
                    # the same moment both count the same number; the second used to write
                    # into the first's folder and, when its commit then failed on the
                    # reference, remove that folder — a filing the database holds, gone
                    # (tests/faults, two workers). Now the second fails here, having written
                    # nothing, and is processed again as the next version.
                    submission_id: int = s.execute(
                        _NEW_SUBMISSION,
                        {
                            "message_id": message_id,
                            "kind": planned.kind,
                            "state_iso3": planned.state_iso3,
                            "reference": reference,
                            "received_at": received,
                            "folder": folder,
                            "cycle": planned.cycle,
                            "version": version,
                            "supersedes_id": previous.id if previous else None,
                            "details": planned.details_json,
                        },
                    ).scalar_one()
                    references.append(reference)
                    # Ours now, so anything already there is what a worker killed between
                    # writing and committing left behind: the folder is replaced whole.
                    written.append(folder)
                    archive.place(staging, folder)
                    if stored:
                        s.execute(
                            insert(_FILED_FILE),
                            [
                                {
                                    "submission_id": submission_id,
                                    "name": f.name,
                                    "original_name": f.original_name,
                                    "sha256": f.sha256,
                                    "size": f.size,
                                }
                                for f in stored
                            ],
                        )
                    ack = compose_ack(reference, planned, stored) if planned.ack else None
                    if ack is None:
                        continue
                    over = (
                        limits.hold
                        or _too_old(received, now, limits.max_age)
                        or self._reply_limit_reached(s, planned.replies_to, ack.recipient, now)
                        or self._ack_limit_reached(s, ack.recipient, now, limits)
                    )
                    status = "suppressed" if over else "sending" if claim_acks else "pending"
                    row = outbox_values(f"ack:{reference}", "ack", ack, now)
                    row.update(submission_id=submission_id, status=status, last_error=over)
                    if status == "sending":
                        row.update(claimed_at=now, attempts=1)
                    outbox_id: int = s.execute(_NEW_OUTBOX, row).scalar_one()
                    if status != "suppressed":
                        going.append(outbox_id)
                    if status == "sending":
                        sending.append(
                            Sending(outbox_id, row["key"], "ack", ack.recipient, ack.raw, 1)
                        )
                s.execute(
                    _DECIDED,
                    {
                        "which": message_id,
                        "status": outcome.status.value,
                        "reason": outcome.reason[:2000],
                        "state_iso3": outcome.state_iso3,
                        "kind": outcome.kind,
                        "language": outcome.language,
                        "analysis": outcome.analysis_json,
                        "target": outcome.target,
                        "processed_at": now,
                    },
                )
                s.execute(
                    _TO_MOVE,
                    {
                        "which": message_id,
                        "target": outcome.target,
                        "action_state": "pending",
                        "action_error": "",
                    },
                )
                return Finished(tuple(going), tuple(references), tuple(sending))
        except IntegrityError as exc:
            for folder in written:
                archive.remove_folder(folder)
            raise Conflict(f"message {message_id}: {_first_line(exc.orig)}") from exc
        except BaseException:
            for folder in written:
                archive.remove_folder(folder)
            raise
        finally:
            for staging, _ in staged:
                archive.remove_folder(staging)  # not placed: nothing was filed from it

    @staticmethod
    def _count_in_year(s: Connection, planned: PlannedSubmission, year: int) -> int:
        """How many of this State's submissions of this kind the year holds so far."""
        start = datetime(year, 1, 1, tzinfo=UTC)
        return int(
            s.scalar(
                select(func.count(Submission.id)).where(
                    Submission.state_iso3 == planned.state_iso3,
                    Submission.kind == planned.kind,
                    Submission.received_at >= start,
                    Submission.received_at < start.replace(year=year + 1),
                )
            )
            or 0
        )

    @staticmethod
    def _latest_version(s: Connection, planned: PlannedSubmission) -> Row[int, int] | None:
        """(id, version) of the newest submission of this State, kind and cycle."""
        if not planned.cycle or planned.kind == "other":
            return None  # correspondence has no versions
        return s.execute(
            _LATEST_VERSION,
            {"state": planned.state_iso3, "kind": planned.kind, "cycle": planned.cycle},
        ).first()

    @staticmethod
    def _reply_limit_reached(
        s: Connection, replies_to: tuple[str, ...], recipient: str, now: datetime
    ) -> str:
        """Why the acknowledgement of a reply to our own mail must not go out ('' when it may).

        A mail that answers one we sent (its In-Reply-To or References name a Message-ID in
        the outbox) is what an autoresponder sends back, whatever it looks like; so such a
        mail gets an acknowledgement only if its sender has had none from us in the last
        24 hours. Two robots that slip past every check in parsers.autoreply thus exchange
        one mail a day, not the hourly limit's three.

        A person who corrects a list by replying to our acknowledgement the same day is
        filed (the new version, kept) but not acknowledged again: such a reply cannot be
        told from a robot's that sends a file back, the mission already knows from this
        morning's acknowledgement that we are listening, and the acknowledgement is recorded
        as suppressed with this reason, which the digest lists for the secretary. A fresh
        mail, a reply the next day, or a list sent in reply to a reminder (no
        acknowledgement yet) is acknowledged as usual. Checked here, in the same transaction
        as the outbox row, because the database is the truth, not Redis.
        """
        ids = tuple(dict.fromkeys(i for i in replies_to if i))[-_MAX_REPLY_IDS:]
        if not ids:
            return ""
        ours = s.scalar(select(Outbox.id).where(Outbox.message_id_header.in_(ids)).limit(1))
        if ours is None:
            return ""
        acknowledged = s.scalar(
            select(func.count(Outbox.id)).where(
                Outbox.purpose == "ack",
                # Going or gone out: one that failed or was held reached nobody.
                Outbox.status.in_(("pending", "sending", "sent")),
                Outbox.recipient == recipient,
                Outbox.created_at >= now - timedelta(days=1),
            )
        )
        if acknowledged:
            return (
                f"loop guard: a reply to our own mail; {recipient} had an acknowledgement"
                " in the last 24 hours"
            )
        return ""

    @staticmethod
    def _ack_limit_reached(s: Connection, recipient: str, now: datetime, limits: AckLimits) -> str:
        """Why this acknowledgement must not go out ('' when it may): the per-recipient
        limits hold even against an autoresponder that slips past the loop checks, and the
        breaker against any loop nobody foresaw."""
        to_hour, to_day, all_hour = s.execute(
            _ACK_LIMITS,
            {
                "recipient": recipient,
                "hour_ago": now - timedelta(hours=1),
                "day_ago": now - timedelta(days=1),
                "all_limit": limits.all_per_hour,
            },
        ).one()
        if to_hour >= limits.per_recipient_hour:
            return f"rate limit: {limits.per_recipient_hour} an hour to {recipient}"
        if to_day >= limits.per_recipient_day:
            return f"rate limit: {limits.per_recipient_day} a day to {recipient}"
        if all_hour >= limits.all_per_hour:
            return f"breaker: {limits.all_per_hour} acknowledgements in the last hour in all"
        return ""

    # -- mailbox actions --------------------------------------------------------------------

    def pending_actions(self, account: str) -> list[PendingAction]:
        """Mailbox actions due anywhere in this account, grouped by folder."""
        with self.session() as s:
            rows = s.execute(
                select(MessageLocation, Message.message_id_header, Message.sha256)
                .join(Message, Message.id == MessageLocation.message_id)
                .where(
                    MessageLocation.mailbox.startswith(f"{account}/", autoescape=True),
                    MessageLocation.action_state == "pending",
                    MessageLocation.current.is_(True),
                )
                .order_by(MessageLocation.mailbox, MessageLocation.uid)
            )
            return [
                PendingAction(
                    location_id=loc.id,
                    message_id=loc.message_id,
                    folder=loc.mailbox[len(account) + 1 :],
                    uidvalidity=loc.uidvalidity,
                    uid=loc.uid,
                    target=loc.target or "",
                    message_id_header=header,
                    sha256=sha,
                )
                for loc, header, sha in rows
            ]

    def action_done(self, location_id: int, error: str = "") -> None:
        with self.session() as s:
            s.execute(
                update(MessageLocation)
                .where(MessageLocation.id == location_id)
                .values(action_state="failed" if error else "done", action_error=error[:2000])
            )

    def location_moved(
        self, location_id: int, mailbox: str, uidvalidity: int | None, uid: int | None
    ) -> None:
        """The message left this place; record where it went (when the server told us)."""
        self.locations_moved([(location_id, mailbox, uidvalidity, uid)])

    def locations_moved(self, moves: Sequence[tuple[int, str, int | None, int | None]]) -> None:
        """``location_moved`` for several messages (location id, folder, UIDVALIDITY, UID),
        in one commit, with one look-up of the old places and one of the new per folder."""
        with self.session() as s:
            old = {
                loc.id: loc
                for loc in s.scalars(
                    select(MessageLocation).where(MessageLocation.id.in_({m[0] for m in moves}))
                )
            }
            uids: dict[tuple[str, int], set[int]] = {}
            for _, mailbox, uidvalidity, uid in moves:
                if uidvalidity is not None and uid is not None:
                    uids.setdefault((mailbox, uidvalidity), set()).add(uid)
            known = {
                (mailbox, uidvalidity, uid)
                for (mailbox, uidvalidity), wanted in uids.items()
                for uid in s.scalars(
                    select(MessageLocation.uid).where(
                        MessageLocation.mailbox == mailbox,
                        MessageLocation.uidvalidity == uidvalidity,
                        MessageLocation.uid.in_(wanted),
                    )
                )
            }
            for location_id, mailbox, uidvalidity, uid in moves:
                place = old.get(location_id)
                if place is None:
                    continue
                place.action_state, place.current = "done", False
                if uidvalidity is None or uid is None:
                    continue  # the server did not say: the message can no longer be moved by us
                if (mailbox, uidvalidity, uid) not in known:
                    known.add((mailbox, uidvalidity, uid))
                    s.add(
                        MessageLocation(
                            message_id=place.message_id,
                            mailbox=mailbox,
                            uidvalidity=uidvalidity,
                            uid=uid,
                            target=None,
                            action_state="done",
                            current=True,
                        )
                    )

    # -- outbox ----------------------------------------------------------------------------

    def due_outbox(self, now: datetime, *, stale: timedelta = timedelta(minutes=10)) -> list[int]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Outbox.id)
                    .where(
                        or_(
                            (Outbox.status == "pending") & (Outbox.next_attempt_at <= now),
                            (Outbox.status == "sending") & (Outbox.claimed_at <= now - stale),
                        )
                    )
                    .order_by(Outbox.id)
                    .limit(200)
                )
            )

    def claim_outbox(
        self, outbox_id: int, now: datetime, *, stale: timedelta = timedelta(minutes=10)
    ) -> Sending | None:
        """Take one outbox row for sending. A row stuck in 'sending' (its worker died between
        SMTP and the commit) is taken again after ``stale``: the only window in which a mail
        can go out twice, and then with the same Message-ID."""
        with self.session() as s:
            result = s.scalars(
                update(Outbox)
                .where(
                    Outbox.id == outbox_id,
                    or_(
                        (Outbox.status == "pending") & (Outbox.next_attempt_at <= now),
                        (Outbox.status == "sending") & (Outbox.claimed_at <= now - stale),
                    ),
                )
                .values(status="sending", claimed_at=now, attempts=Outbox.attempts + 1)
                .returning(Outbox)
                .execution_options(synchronize_session=False)
            )
            row = result.one_or_none()
            return None if row is None else _sending(row)

    def outbox_sent(self, outbox_id: int, when: datetime, *, retry_for: float = 0.0) -> None:
        """Record that the SMTP server accepted the mail. Unrecorded, the row would be taken
        again once its claim is stale and the mail sent a second time, so a database that is
        away (a restart takes seconds) is tried again for up to ``retry_for`` seconds: without
        it, each PostgreSQL restart in the middle of sending doubled a mail (tests/faults)."""
        deadline, pause = time.monotonic() + retry_for, 0.1
        while True:
            try:
                with self.session() as s:
                    s.connection().execute(
                        _OUTBOX_ROW,
                        {"which": outbox_id, "status": "sent", "sent_at": when, "last_error": ""},
                    )
                return
            except OperationalError:  # the connection, not the statement: worth another try
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def outbox_failed(self, outbox_id: int, error: str, *, retry_at: datetime | None) -> None:
        with self.session() as s:
            values: dict[str, Any] = {"last_error": error[:2000]}
            if retry_at is None:
                values["status"] = "failed"
            else:
                values.update(status="pending", next_attempt_at=retry_at, claimed_at=None)
            s.execute(update(Outbox).where(Outbox.id == outbox_id).values(**values))

    def mark_contacts_failing(self, addresses: Iterable[str], reason: str, when: datetime) -> int:
        """A permanent bounce: these addresses are not written to blindly again."""
        count = 0
        with self.session() as s:
            for address in {a.strip().lower() for a in addresses if "@" in a}:
                row = s.get(ContactHealth, address) or ContactHealth(address=address)
                row.failing, row.reason, row.last_bounce_at, row.updated_at = (
                    True,
                    reason,
                    when,
                    when,
                )
                s.add(row)
                count += 1
        return count

    def failing_contacts(self) -> list[ContactHealth]:
        with self.session() as s:
            return list(s.scalars(select(ContactHealth).where(ContactHealth.failing.is_(True))))

    def uncopied_sent(self, limit: int = 50) -> list[tuple[int, bytes]]:
        with self.session() as s:
            rows = s.execute(
                select(Outbox.id, Outbox.raw)
                .where(Outbox.status == "sent", Outbox.copied_to_sent.is_(False))
                .order_by(Outbox.id)
                .limit(limit)
            )
            return [(i, raw) for i, raw in rows]

    def mark_copied(self, outbox_ids: Iterable[int]) -> None:
        """These sent mails have their copy in the Sent folder (one statement for a group)."""
        ids = list(outbox_ids)
        if not ids:
            return
        with self.session() as s:
            s.execute(update(Outbox).where(Outbox.id.in_(ids)).values(copied_to_sent=True))

    # -- digest ------------------------------------------------------------------------------

    def outbox_key_exists(self, key: str) -> bool:
        with self.session() as s:
            return s.scalar(select(Outbox.id).where(Outbox.key == key)) is not None

    def outbox_keys(self, prefix: str) -> list[str]:
        """The keys of the outbox rows that start with ``prefix``, oldest first."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Outbox.key)
                    .where(Outbox.key.startswith(prefix, autoescape=True))
                    .order_by(Outbox.id)
                )
            )

    def queue_outbox_once(
        self, key: str, purpose: str, mail: Outgoing, now: datetime
    ) -> int | None:
        """Queue one mail under its unique key: its outbox id, or None when the key was taken
        already — by an earlier run or, at the same moment, by another worker (the unique
        index decides; the loser's insert fails and is rolled back)."""
        try:
            with self.session() as s:
                row = outbox_row(key, purpose, mail, now)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            if self.outbox_key_exists(key):
                return None
            raise

    def previous_digest_at(self, key: str) -> datetime | None:
        """When the digest before ``key`` ('digest:YYYY-MM-DD') was queued: where the next
        digest's "since the last digest" begins."""
        with self.session() as s:
            return s.scalar(
                select(Outbox.created_at)
                .where(Outbox.purpose == "digest", Outbox.key < key)
                .order_by(Outbox.key.desc())
                .limit(1)
            )

    def submissions_filed_between(self, since: datetime, until: datetime) -> list[Submission]:
        """Filed in [since, until) — by filing time, so that a mail received before one digest
        and filed after it (a review resolved, a slow queue) is in the next one."""
        with self.session() as s:
            return list(
                s.scalars(
                    select(Submission)
                    .where(Submission.created_at >= since, Submission.created_at < until)
                    .order_by(Submission.created_at, Submission.id)
                )
            )

    def reminders_sent_between(self, since: datetime, until: datetime) -> list[Reminder]:
        """Reminder ledger rows 'sent' whose mail left in [since, until) (their outbox row's
        sent_at; the ledger row's own time when it has none)."""
        when = func.coalesce(Outbox.sent_at, Reminder.created_at)
        with self.session() as s:
            return list(
                s.scalars(
                    select(Reminder)
                    .outerjoin(Outbox, Outbox.id == Reminder.outbox_id)
                    .where(Reminder.status == "sent", when >= since, when < until)
                    .order_by(Reminder.obligation, Reminder.cycle, Reminder.state_iso3)
                )
            )

    def bounces_between(self, since: datetime, until: datetime) -> list[Message]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Message)
                    .where(
                        Message.kind == "bounce",
                        Message.processed_at >= since,
                        Message.processed_at < until,
                    )
                    .order_by(Message.internaldate, Message.id)
                )
            )

    def acks_not_sent_between(
        self, since: datetime, until: datetime
    ) -> list[tuple[Outbox, Submission | None]]:
        """Acknowledgements that will not go out (failed, suppressed, cancelled), by when that
        was decided: the last attempt, or the row's creation when it was never tried."""
        when = func.coalesce(Outbox.claimed_at, Outbox.created_at)
        with self.session() as s:
            rows = s.execute(
                select(Outbox, Submission)
                .outerjoin(Submission, Submission.id == Outbox.submission_id)
                .where(
                    Outbox.purpose == "ack",
                    Outbox.status.in_(("failed", "suppressed", "cancelled")),
                    when >= since,
                    when < until,
                )
                .order_by(Outbox.id)
            )
            return [(row, sub) for row, sub in rows]

    def quarantined_between(self, since: datetime, until: datetime) -> list[Message]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Message)
                    .where(
                        Message.status == Status.quarantined,
                        Message.processed_at >= since,
                        Message.processed_at < until,
                    )
                    .order_by(Message.internaldate, Message.id)
                )
            )

    def mailbox_health(self) -> list[MailboxState]:
        with self.session() as s:
            return list(s.scalars(select(MailboxState).order_by(MailboxState.mailbox)))

    def poll_succeeded(self, mailbox: str, now: datetime, *, seconds: float | None = None) -> None:
        with self.session() as s:
            s.execute(
                update(MailboxState)
                .where(MailboxState.mailbox == mailbox)
                .values(last_success_at=now, last_poll_seconds=seconds)
            )

    def poll_failed(self, mailbox: str, error: str, now: datetime) -> None:
        """Record why a poll failed. Before the first successful poll there is no row yet:
        one is made with UIDVALIDITY 0, which no server gives (RFC 3501: non-zero), so the
        first successful poll reads the folder from its start as it would have anyway."""
        with self.session() as s:
            row = s.get(MailboxState, mailbox)
            if row is None:
                row = MailboxState(mailbox=mailbox, uidvalidity=0, last_uid=0)
                s.add(row)
            row.last_error, row.last_error_at = error[:2000], now

    # -- reminders ---------------------------------------------------------------------------

    def submitted_keys(self) -> set[tuple[str, str, str]]:
        """(ISO3, kind, cycle) of everything filed, any version: what reminders are met by."""
        with self.session() as s:
            rows = s.execute(
                select(Submission.state_iso3, Submission.kind, Submission.cycle).distinct()
            )
            return {(iso3, kind, cycle) for iso3, kind, cycle in rows}

    def reminder_statuses(self, keys: Iterable[str]) -> dict[str, str]:
        """The ledger status of those of ``keys`` already in the ledger."""
        wanted = sorted(set(keys))
        found: dict[str, str] = {}
        with self.session() as s:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                rows = s.execute(
                    select(Reminder.key, Reminder.status).where(Reminder.key.in_(chunk))
                )
                found.update({key: status for key, status in rows})
        return found

    def record_reminder(
        self,
        *,
        key: str,
        obligation: str,
        cycle: str,
        state_iso3: str,
        offset_days: int,
        due_date: date,
        status: str,
        reason: str,
        mail: Outgoing | None,
        now: datetime,
    ) -> tuple[bool, int | None]:
        """Write a reminder's ledger row and, with a ``mail``, its outbox row — one commit.

        The ledger row goes in first: its unique key is what makes a reminder happen once.
        Returns (False, None) when the key is in the ledger already (an earlier sweep, or
        another worker at the same moment: its insert wins, ours is rolled back); else
        (True, the outbox id or None).
        """
        try:
            with self.session() as s:
                row = Reminder(
                    key=key,
                    obligation=obligation,
                    cycle=cycle,
                    state_iso3=state_iso3,
                    offset_days=offset_days,
                    due_date=due_date,
                    status=status,
                    reason=reason[:2000],
                    created_at=now,
                )
                s.add(row)
                s.flush()  # the unique key decides here, before anything is queued
                if mail is None:
                    return True, None
                outbox = outbox_row(f"reminder:{key}", "reminder", mail, now)
                s.add(outbox)
                s.flush()
                row.outbox_id = outbox.id
                return True, outbox.id
        except IntegrityError:
            if key in self.reminder_statuses([key]):
                return False, None
            raise

    def reminder_still_needed(self, outbox_id: int) -> bool:
        """Checked just before a reminder's mail goes out: False (and the outbox row and the
        ledger row cancelled, with why) when the State has submitted meanwhile."""
        from parsers.obligations import submission_for

        with self.session() as s:
            reminder = s.scalar(select(Reminder).where(Reminder.outbox_id == outbox_id))
            if reminder is None:
                return True
            kind, cycle = submission_for(reminder.obligation, reminder.cycle)
            sub = s.scalar(
                select(Submission)
                .where(
                    Submission.state_iso3 == reminder.state_iso3,
                    Submission.kind == kind,
                    Submission.cycle == cycle,
                )
                .order_by(Submission.id)
                .limit(1)
            )
            if sub is None:
                return True
            reason = f"received meanwhile: {sub.reference} ({kind} {cycle})"
            s.execute(
                update(Outbox)
                .where(Outbox.id == outbox_id, Outbox.status.in_(("pending", "sending")))
                .values(status="cancelled", last_error=reason)
            )
            reminder.status, reminder.reason = "cancelled", reason
            return False

    def settle_reminders(self, outbox_id: int | None = None) -> int:
        """Bring 'queued' ledger rows in line with their mail: sent, failed (with the
        server's words) or cancelled. For one outbox row, or all."""
        settled = 0
        with self.session() as s:
            query = (
                select(Reminder, Outbox.status, Outbox.last_error)
                .join(Outbox, Outbox.id == Reminder.outbox_id)
                .where(
                    Reminder.status == "queued",
                    Outbox.status.in_(("sent", "failed", "cancelled")),
                )
            )
            if outbox_id is not None:
                query = query.where(Reminder.outbox_id == outbox_id)
            for reminder, status, error in s.execute(query):
                reminder.status = status
                if status != "sent":
                    reminder.reason = f"{reminder.reason}; {error}"[:2000]
                settled += 1
        return settled

    def reminder_rows(self) -> list[Reminder]:
        with self.session() as s:
            return list(s.scalars(select(Reminder).order_by(Reminder.id)))

    # -- reporting ---------------------------------------------------------------------------

    def status_counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(Message.status, func.count(Message.id)).group_by(Message.status)
            )
            return {status: int(n) for status, n in rows}

    def filed_by_state(self) -> list[tuple[str, str, int, datetime]]:
        """(ISO3, kind, submissions, latest received) for every State with something filed."""
        with self.session() as s:
            rows = s.execute(
                select(
                    Submission.state_iso3,
                    Submission.kind,
                    func.count(Submission.id),
                    func.max(Submission.received_at),
                )
                .group_by(Submission.state_iso3, Submission.kind)
                .order_by(Submission.state_iso3, Submission.kind)
            )
            return [(iso3, kind, int(n), _aware(latest)) for iso3, kind, n, latest in rows]

    def latest_submissions(self) -> list[Submission]:
        """The newest version of each State's submission per kind and cycle."""
        with self.session() as s:
            superseded = select(Submission.supersedes_id).where(
                Submission.supersedes_id.is_not(None)
            )
            return list(
                s.scalars(
                    select(Submission)
                    .where(Submission.id.not_in(superseded))
                    .order_by(Submission.state_iso3, Submission.kind, Submission.cycle)
                )
            )

    def outbox_counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Outbox.status, func.count(Outbox.id)).group_by(Outbox.status))
            return {status: int(n) for status, n in rows}

    def monitoring(self) -> Monitoring:
        """What `ccm-intake metrics` shows, read in one transaction (worker/metrics.py)."""
        with self.session() as s:
            statuses = s.execute(
                select(Message.status, func.count(Message.id)).group_by(Message.status)
            )
            outbox = s.execute(
                select(Outbox.purpose, Outbox.status, func.count(Outbox.id)).group_by(
                    Outbox.purpose, Outbox.status
                )
            )
            unfinished = s.scalar(
                select(func.min(Message.stored_at)).where(
                    Message.status.in_([Status.received, Status.processing])
                )
            )
            pending = s.scalar(
                select(func.min(Outbox.created_at)).where(Outbox.status.in_(["pending", "sending"]))
            )
            return Monitoring(
                messages={status: int(n) for status, n in statuses},
                outbox={(purpose, status): int(n) for purpose, status, n in outbox},
                oldest_unfinished=_aware(unfinished) if unfinished else None,
                oldest_pending_outbox=_aware(pending) if pending else None,
                mailboxes=list(s.scalars(select(MailboxState).order_by(MailboxState.mailbox))),
            )

    def recent_messages(self, limit: int = 50) -> list[Message]:
        with self.session() as s:
            return list(s.scalars(select(Message).order_by(Message.id.desc()).limit(limit)))

    def all_submissions(self, kind: str) -> list[Submission]:
        """Every submission of ``kind``, every version, in the order they were filed."""
        with self.session() as s:
            return list(
                s.scalars(select(Submission).where(Submission.kind == kind).order_by(Submission.id))
            )

    def submissions_of(self, message_id: int) -> list[Submission]:
        with self.session() as s:
            return list(s.scalars(select(Submission).where(Submission.message_id == message_id)))

    def outbox_rows(self) -> list[Outbox]:
        with self.session() as s:
            return list(s.scalars(select(Outbox).order_by(Outbox.id)))

    # -- retention (worker/retention.py) ---------------------------------------------------

    def purge_candidates(self, before: datetime) -> list[PurgeCandidate]:
        """Messages received before ``before`` whose personal data may go, oldest first:
        decided ones (filed, not a submission, quarantined) not purged yet. What waits for
        a person (review) or for a worker is left alone."""
        wanted = (
            Message.internaldate < before,
            Message.status.in_(PURGEABLE),
            Message.purged_at.is_(None),
        )
        with self.session() as s:
            folders: dict[int, list[tuple[str, str]]] = {}
            rows = s.execute(
                select(Submission.message_id, Submission.reference, Submission.folder)
                .join(Message, Message.id == Submission.message_id)
                .where(*wanted)
                .order_by(Submission.id)
            )
            for message_id, reference, folder in rows:
                folders.setdefault(message_id, []).append((reference, folder))
            return [
                PurgeCandidate(
                    message_id=m.id,
                    internaldate=m.internaldate,
                    status=m.status,
                    state_iso3=m.state_iso3,
                    kind=m.kind,
                    raw_path=m.raw_path,
                    submissions=tuple(folders.get(m.id, ())),
                )
                for m in s.scalars(
                    select(Message).where(*wanted).order_by(Message.internaldate, Message.id)
                )
            ]

    def waiting_before(self, before: datetime) -> int:
        """Messages received before ``before`` that a purge leaves alone: not decided yet."""
        with self.session() as s:
            return int(
                s.scalar(
                    select(func.count(Message.id)).where(
                        Message.internaldate < before,
                        Message.status.not_in(PURGEABLE),
                        Message.purged_at.is_(None),
                    )
                )
                or 0
            )

    def purge_message(
        self, message_id: int, now: datetime, redact_details: Callable[[str, str], str]
    ) -> tuple[int, int]:
        """Clear what names people in one message's rows — its addresses, subject, evidence,
        its submissions' rosters (``redact_details(kind, details)`` keeps the rest), its
        files' names, its acknowledgements' text — in one commit. The facts stay: State,
        kind, reference, version, status, dates, SHA-256 and sizes. Returns (submissions,
        outbox rows) cleared; (0, 0) when it was purged already."""
        with self.session() as s:
            message = s.get(Message, message_id)
            if message is None or message.purged_at is not None:
                return 0, 0
            message.from_addr, message.subject, message.message_id_header = "", "", None
            message.analysis, message.reason, message.purged_at = "", "", now
            subs = list(s.scalars(select(Submission).where(Submission.message_id == message_id)))
            for sub in subs:
                sub.details = redact_details(sub.kind, sub.details)
            ids = [sub.id for sub in subs]
            if not ids:
                return 0, 0
            s.execute(
                update(FiledFile)
                .where(FiledFile.submission_id.in_(ids))
                .values(name="", original_name="")
            )
            # An acknowledgement still unsent this late is not sent at all.
            s.execute(
                update(Outbox)
                .where(Outbox.submission_id.in_(ids), Outbox.status.in_(("pending", "sending")))
                .values(status="cancelled", last_error="purged before it was sent")
            )
            cleared = s.execute(
                update(Outbox)
                .where(Outbox.submission_id.in_(ids))
                .values(raw=b"", recipient="", subject="", copied_to_sent=True)
            )
            return len(ids), int(cleared.rowcount or 0)  # type: ignore[attr-defined]

    def purge_outbox_before(self, before: datetime, *, dry_run: bool = False) -> int:
        """Clear the text and recipient of other mail sent (or given up) before ``before``:
        digests and reminders. Acknowledgements go with their message (purge_message)."""
        wanted = (
            Outbox.created_at < before,
            Outbox.submission_id.is_(None),
            Outbox.status.in_(("sent", "failed", "suppressed", "cancelled")),
            Outbox.recipient != "",
        )
        with self.session() as s:
            if dry_run:
                return int(s.scalar(select(func.count(Outbox.id)).where(*wanted)) or 0)
            result = s.execute(
                update(Outbox)
                .where(*wanted)
                .values(raw=b"", recipient="", subject="", copied_to_sent=True)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def record_purge(self, run: PurgeRun) -> int:
        with self.session() as s:
            s.add(run)
            s.flush()
            return run.id

    def purge_runs(self) -> list[PurgeRun]:
        with self.session() as s:
            return list(s.scalars(select(PurgeRun).order_by(PurgeRun.id)))

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _aware(value: datetime | str) -> datetime:
    # func.max() bypasses the column type on SQLite and returns the stored text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


PURGEABLE = (Status.filed, Status.not_submission, Status.quarantined)


@dataclass(frozen=True, slots=True)
class PurgeCandidate:
    """A message whose personal data a purge removes (nothing personal in here itself)."""

    message_id: int
    internaldate: datetime
    status: str
    state_iso3: str | None
    kind: str | None
    raw_path: str
    submissions: tuple[tuple[str, str], ...]  # (reference, folder)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A fetched message as ``record_messages`` keeps it (its bytes are in the archive)."""

    uid: int
    internaldate: datetime
    sha256: str
    raw_path: str
    size: int
    message_id_header: str | None
    from_addr: str
    subject: str


@dataclass(frozen=True, slots=True)
class Sending:
    """An outbox row claimed for sending (status 'sending'): what the mailer needs of it."""

    id: int
    key: str
    purpose: str
    recipient: str
    raw: bytes
    attempts: int


def _sending(row: Outbox) -> Sending:
    return Sending(row.id, row.key, row.purpose, row.recipient, row.raw, row.attempts)


@dataclass(frozen=True, slots=True)
class Finished:
    """What ``finish_message`` committed."""

    outbox_ids: tuple[int, ...] = ()  # acknowledgements queued to go out
    references: tuple[str, ...] = ()  # of the submissions filed
    sending: tuple[Sending, ...] = ()  # those of them claimed for the caller (claim_acks)


@dataclass(frozen=True, slots=True)
class PendingAction:
    location_id: int
    message_id: int
    folder: str
    uidvalidity: int
    uid: int
    target: str  # 'folder:Filed/France' or 'keyword:$CCM-Filed'
    message_id_header: str | None
    sha256: str


def reference_for(kind: str, cycle: str, iso3: str, number: int, year: int) -> str:
    """The reference a mission quotes: what, for which meeting or year, which State, which one.

    ``CCM/7MSP/DEL/CHE/001`` (details of delegation for the 7th Meeting), ``CCM/ART7/2016/FRA/001``
    (the report on 2016), ``CCM/ART7/INITIAL/NZL/001``, ``CCM/COR/2017/MEX/003`` (other mail).
    A later version of the same submission counts up: ``…/002``.
    """
    if kind == "delegation":
        return f"CCM/{cycle or year}/DEL/{iso3}/{number:03d}"
    if kind == "article7":
        return f"CCM/ART7/{(cycle or str(year - 1)).upper()}/{iso3}/{number:03d}"
    return f"CCM/COR/{year}/{iso3}/{number:03d}"


# --- what processing hands to the store ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """A file to go into a submission's folder, with the SHA-256 the parser found already."""

    name: str  # as wanted: made safe and unique when it is written
    data: bytes
    sha256: str

    @classmethod
    def of(cls, name: str, data: bytes) -> PlannedFile:
        return cls(name, data, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, slots=True)
class PlannedSubmission:
    kind: str
    state_iso3: str
    state_folder: str  # "<ISO3> <State name>"
    files: list[PlannedFile]  # the original .eml first
    ack: bool
    cycle: str = ""
    details_json: str = ""
    # The Message-IDs the mail answers (In-Reply-To, References): when one is a mail we sent,
    # the loop guard of Database._reply_limit_reached applies to its acknowledgement.
    replies_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Monitoring:
    """Counts and ages for the metrics, all from the database (Database.monitoring)."""

    messages: dict[str, int]  # by status
    outbox: dict[tuple[str, str], int]  # by (purpose, status)
    oldest_unfinished: datetime | None  # stored_at of the oldest message kept, not finished
    oldest_pending_outbox: datetime | None  # created_at of the oldest mail not yet sent
    mailboxes: list[MailboxState]


@dataclass(frozen=True, slots=True)
class AckLimits:
    per_recipient_hour: int = 3
    per_recipient_day: int = 10
    all_per_hour: int = 200
    # Mail that reached the inbox longer ago than this is filed but not acknowledged: a
    # first poll of an inbox holding years of mail, or a backfill, must not answer it all.
    max_age: timedelta | None = timedelta(days=7)
    hold: str = ""  # a reason to suppress every acknowledgement (a backfill of old mail)


def _too_old(received: datetime, now: datetime, max_age: timedelta | None) -> str:
    """Why mail received at ``received`` is too old to acknowledge ('' when it is not)."""
    if max_age is None or now - received <= max_age:
        return ""
    return (
        f"not acknowledged: received {(now - received).days} days ago"
        f" (older than {max_age.days} days: old mail read for the first time)"
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    reason: str
    state_iso3: str | None
    kind: str | None
    language: str | None
    analysis_json: str
    target: str | None
    submissions: tuple[PlannedSubmission, ...] = ()


# --- the archive -------------------------------------------------------------------


_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\ud800-\udfff]+')  # lone surrogates: no UTF-8


def safe_component(text: str, *, limit: int = 120, fallback: str = "file") -> str:
    """One path component that cannot escape its folder or upset a file system."""
    text = unicodedata.normalize("NFC", text)
    # A name that carries a path ("../../etc/passwd", "C:\\TEMP\\x.png") keeps its last part.
    text = next((part for part in reversed(re.split(r"[/\\]", text)) if part.strip(". ")), "")
    # Dots and spaces go from the front together: ". .x" must not leave a hidden ".x".
    text = re.sub(r"^[\s.]+", "", _UNSAFE.sub("_", text)).strip()
    if len(text) > limit:
        stem, dot, ext = text.rpartition(".")
        text = (
            (stem[: limit - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else text[:limit]
        )
    while len(text.encode()) > 240:  # 120 four-byte characters overflow the 255-byte limit
        stem, dot, ext = text.rpartition(".")
        text = f"{stem[:-1]}.{ext}" if dot and len(stem) > 1 and len(ext) <= 10 else text[:-1]
    return text or fallback


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    original_name: str
    sha256: str
    size: int


class ArchiveError(Exception):
    pass


class Conflict(IntakeError):
    """Another worker committed first what this transaction counted on (the same State's
    submission numbered at the same moment by two workers): nothing was kept, and doing it
    again now succeeds."""


def _first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


class Archive:
    """The folder that holds raw messages and filed submissions."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _inside(self, relative: str) -> Path:
        """The archive's path for ``relative``, which must name a place under the root: no
        leading slash, no empty, ``.`` or ``..`` part, no NUL. Checked on the text, not by
        resolving the path (a system call per directory, several times per filed mail): only
        the service writes in the archive, and a directory an operator links elsewhere
        (``filed`` on another disk) is followed."""
        parts = relative.split("/")
        if "\x00" in relative or any(part in ("", ".", "..") for part in parts):
            raise ArchiveError(f"path escapes the archive: {relative!r}")
        return self.root.joinpath(*parts)

    def _write_tombstone(self, path: Path, data: bytes) -> None:
        """Write a small file under ``raw/`` whole or not at all, durably: staged under
        ``raw/.staging/`` (where ``clear_staging`` sweeps what a killed worker left), synced,
        renamed into place, its directory synced."""
        staging = self._inside(RAW_STAGING)
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / f"{os.getpid()}-{path.name}"
        staged.unlink(missing_ok=True)  # a killed process's, which had this pid
        try:
            _write_new(staged, data)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, path)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)

    def put_raw(self, raw: bytes) -> tuple[str, str]:
        """Keep the bytes of a message; returns (sha256, relative path). Idempotent."""
        return self.put_raws([raw])[0]

    def put_raws(self, raws: Sequence[bytes]) -> list[tuple[str, str]]:
        """``put_raw`` for a group, made durable before the caller commits rows that point at
        the files: each new file is written under ``raw/.staging/`` (where ``clear_staging``
        clears what a killed worker left), all of them are fsynced, then each is renamed into
        place and each directory that gained one is fsynced once. Writing the whole group
        before the first fsync lets one journal commit carry several files."""
        kept: list[tuple[str, str]] = []
        writing: dict[str, tuple[int, Path, Path]] = {}  # sha256 -> (fd, staged, final)
        placed = False
        try:
            for raw in raws:
                sha = hashlib.sha256(raw).hexdigest()
                relative = f"raw/{sha[:2]}/{sha}.eml"
                kept.append((sha, relative))
                path = self._inside(relative)
                if sha in writing:
                    continue
                if self._inside(_tombstone(relative)).exists():
                    continue  # purged (worker/retention.py): the same mail is not kept again
                if path.exists() and path.stat().st_size == len(raw):
                    continue
                if not writing:
                    self._inside(RAW_STAGING).mkdir(parents=True, exist_ok=True)
                staged = self._inside(f"{RAW_STAGING}/{os.getpid()}-{sha}")
                staged.unlink(missing_ok=True)  # a killed process's, which had this pid
                # Read-only: the mail as received is evidence, and a filed copy shares its inode.
                fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
                writing[sha] = (fd, staged, path)
                _write_all(fd, raw)
            for fd, _, _ in writing.values():
                os.fsync(fd)
            grown: set[Path] = set()
            for _, staged, path in writing.values():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, path)
                grown.add(path.parent)
            for directory in grown:
                _fsync_directory(directory)
            placed = True
        finally:
            for fd, staged, _ in writing.values():
                os.close(fd)
                if not placed:
                    staged.unlink(missing_ok=True)
        return kept

    def read(self, relative: str) -> bytes:
        return self._inside(relative).read_bytes()

    def file_folder(
        self,
        relative_folder: str,
        files: Sequence[PlannedFile],
        *,
        originals: Mapping[str, str] | None = None,
    ) -> list[StoredFile]:
        """Write ``files`` into a new folder of their own; names made safe and unique. Each is
        written in place, not through a temporary name: nobody looks into the folder before
        it is complete (``stage`` then ``place`` moves it whole).

        A file whose bytes are a raw mail the archive keeps already (``originals``: sha256 to
        its path) becomes a hard link to it rather than a second copy: a filed mail's
        ``original.eml`` no longer costs its size twice, nor a write and an fsync."""
        folder = self._inside(relative_folder)
        folder.mkdir(parents=True, exist_ok=True)
        stored: list[StoredFile] = []
        used: set[str] = set()
        for file in files:
            name = safe_component(file.name)
            stem, dot, ext = name.rpartition(".")
            if not dot:
                stem, ext = name, ""
            n = 1
            while name.casefold() in used:
                n += 1
                name = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
            used.add(name.casefold())
            path, sha = folder / name, file.sha256  # one safe component: no / and no dot first
            if not (originals and sha in originals and self._link(originals[sha], path, file.data)):
                _write_new(path, file.data)
            stored.append(StoredFile(name, file.name, sha, len(file.data)))
        return stored

    def _link(self, relative_original: str, path: Path, data: bytes) -> bool:
        """Hard-link ``path`` to a kept raw mail holding ``data``; False when it cannot be
        (another file system, no links there, the raw mail purged or not as expected)."""
        original = self._inside(relative_original)
        try:
            if original.stat().st_size != len(data):
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(original, path)
        except OSError:
            return False
        return True

    def stage(
        self, files: Sequence[PlannedFile], *, originals: Mapping[str, str] | None = None
    ) -> tuple[str, list[StoredFile]]:
        """``file_folder`` into a new folder under ``.staging/``, for ``place`` to move where
        it belongs; (the staging folder, what was stored). The folder's entries are durable
        when this returns."""
        relative = f"{STAGING}/{uuid.uuid4().hex}"
        stored = self.file_folder(relative, files, originals=originals)
        _fsync_directory(self._inside(relative))
        return relative, stored

    def place(self, staging: str, relative_folder: str) -> None:
        """Move a staged folder to ``relative_folder``, replacing whatever is there (what a
        worker killed between writing and committing left behind); the move is made durable
        before this returns."""
        source, target = self._inside(staging), self._inside(relative_folder)
        self.remove_folder(relative_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        _fsync_directory(target.parent)

    def clear_staging(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove what a killed worker left being written: a submission's folder under
        ``.staging/``, a raw mail under ``raw/.staging/``; how many."""
        cleared = 0
        limit = time.time() - older_than.total_seconds()
        for root in (self._inside(STAGING), self._inside(RAW_STAGING)):
            if not root.is_dir():
                continue
            for entry in root.iterdir():
                with contextlib.suppress(OSError):
                    if entry.lstat().st_mtime < limit:
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry)
                        else:
                            entry.unlink()
                        cleared += 1
        return cleared

    def remove_folder(self, relative_folder: str) -> None:
        """Undo a filing whose transaction failed (best effort; files only, then the folder)."""
        folder = self._inside(relative_folder)
        if folder.is_dir():
            for child in folder.iterdir():
                child.unlink(missing_ok=True)
            folder.rmdir()

    # -- retention (worker/retention.py) --------------------------------------------------

    def purge_raw(self, relative: str, when: datetime) -> bool:
        """Delete a message's raw bytes for good, leaving a tombstone (its date, nothing
        else) so that a later poll of the same mail keeps no copy. True if bytes were there."""
        tombstone = self._inside(_tombstone(relative))
        if not tombstone.exists():
            self._write_tombstone(tombstone, when.date().isoformat().encode())
        path = self._inside(relative)
        existed = path.exists()
        if existed:
            path.unlink(missing_ok=True)
            _fsync_directory(path.parent)  # gone for good before the purge is recorded
        return existed

    def purge_folder(self, relative_folder: str) -> bool:
        """Delete a filed submission's folder and what is in it. True if it was there."""
        folder = self._inside(relative_folder)
        if not relative_folder or folder == self.root or not folder.is_dir():
            return False
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:  # another purge got there first
            return False
        return True


STAGING = ".staging"  # in the archive: submissions' files written before their transaction
# Raw mails being written, inside raw/ so that a raw/ an operator links to another disk
# still renames within one file system.
RAW_STAGING = "raw/.staging"


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with ``data``, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _tombstone(relative_raw: str) -> str:
    return relative_raw.removesuffix(".eml") + ".purged"
