"""The database and the archive: claims, unique keys, safe paths, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from tests import servers
from worker import store
from worker.compose import Outgoing
from worker.store import (
    AckLimits,
    Archive,
    ArchiveError,
    Database,
    Finished,
    Incoming,
    MessageLocation,
    Outcome,
    PlannedFile,
    PlannedSubmission,
    Status,
    reference_for,
    safe_component,
)

NOW = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Database:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    database = Database(str(url))
    database.create_schema()
    request.addfinalizer(database.dispose)
    return database


def test_a_sqlite_commit_is_on_disk_before_the_mailbox_or_the_mail_server_hears_of_it(
    sqlite_url: str,
) -> None:
    # Every commit is followed by something outside the database (a move, a sent
    # acknowledgement) that a power cut cannot take back: the commit must not be either.
    database = Database(str(sqlite_url))
    database.create_schema()
    try:
        # two connections open at once: each new connection, not only the first
        with database.engine.connect() as first, database.engine.connect() as second:
            for connection in (first, second):
                raw = connection.connection.dbapi_connection
                assert raw is not None
                cur = raw.cursor()
                assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                assert cur.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
                cur.close()
    finally:
        database.dispose()


def keep(
    db: Database, archive: Archive, raw: bytes, uid: int, uidvalidity: int = 7
) -> tuple[int, bool]:
    sha, path = archive.put_raw(raw)
    return db.record_message(
        mailbox="box",
        uidvalidity=uidvalidity,
        uid=uid,
        internaldate=NOW,
        sha256=sha,
        raw_path=path,
        size=len(raw),
        message_id_header="<m@x>",
        from_addr="a@b.c",
        subject="s",
    )


def filed(state: str = "FRA", ack: bool = True) -> Outcome:
    return Outcome(
        status=Status.filed,
        reason="test",
        state_iso3=state,
        kind="delegation",
        language="fr",
        analysis_json="{}",
        target="folder:Filed/France",
        submissions=(
            PlannedSubmission(
                "delegation",
                state,
                f"{state} France",
                files(("original.eml", b"raw"), ("../../etc/passwd", b"x")),
                ack,
            ),
        ),
    )


def files(*named: tuple[str, bytes]) -> list[PlannedFile]:
    return [PlannedFile.of(name, data) for name, data in named]


def outgoing(reference: str, _planned: PlannedSubmission, _stored: object) -> Outgoing:
    return Outgoing(
        "dfra@diplomatie.gouv.fr", f"ack {reference}", f"<{reference}@unog.ch>", b"raw ack"
    )


def test_the_same_bytes_are_one_message_whatever_their_uid(db: Database, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    first = keep(db, archive, b"Subject: a\r\n\r\nbody", uid=1)
    again = keep(db, archive, b"Subject: a\r\n\r\nbody", uid=1)
    moved = keep(db, archive, b"Subject: a\r\n\r\nbody", uid=9, uidvalidity=8)
    assert first[1] and not again[1] and not moved[1]
    assert first[0] == again[0] == moved[0]
    assert db.mailbox_position("box") == (7, 1)


def test_a_message_is_claimed_by_one_worker_and_a_dead_claim_expires(
    db: Database, tmp_path: Path
) -> None:
    message_id, _ = keep(db, Archive(tmp_path), b"x", uid=1)
    assert db.claim_message(message_id, NOW, stale=timedelta(minutes=10)) is not None
    assert db.claim_message(message_id, NOW, stale=timedelta(minutes=10)) is None
    assert (
        db.claim_message(message_id, NOW + timedelta(minutes=11), stale=timedelta(minutes=10))
        is not None
    )


def test_filing_writes_files_rows_and_one_outbox_row_in_one_commit(
    db: Database, tmp_path: Path
) -> None:
    archive = Archive(tmp_path)
    message_id, _ = keep(db, archive, b"x", uid=1)
    db.claim_message(message_id, NOW, stale=timedelta(minutes=10))
    finished = db.finish_message(archive, message_id, filed(), outgoing, now=NOW)
    assert len(finished.outbox_ids) == 1 and finished.sending == ()
    (sub,) = db.submissions_of(message_id)
    assert sub.reference == "CCM/2017/DEL/FRA/001"  # no meeting known: the year stands in
    assert finished.references == (sub.reference,)
    folder = tmp_path / sub.folder
    assert sorted(p.name for p in folder.iterdir()) == ["original.eml", "passwd"]
    assert folder.is_relative_to(tmp_path / "filed" / "FRA France" / "delegation")
    # Finishing again (a retried task) changes nothing.
    assert db.finish_message(archive, message_id, filed(), outgoing, now=NOW) == Finished()
    assert len(db.outbox_rows()) == 1


def test_a_failed_commit_leaves_no_files_behind(db: Database, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    message_id, _ = keep(db, archive, b"x", uid=1)
    db.claim_message(message_id, NOW, stale=timedelta(minutes=10))

    def broken(reference: str, planned: PlannedSubmission, stored: object) -> Outgoing:
        raise RuntimeError("composition failed")

    with pytest.raises(RuntimeError):
        db.finish_message(archive, message_id, filed(), broken, now=NOW)
    assert not (tmp_path / "filed").exists() or not any((tmp_path / "filed").rglob("*.eml"))
    assert db.submissions_of(message_id) == []


def file_mails(
    db: Database, archive: Archive, count: int, *, claim_acks: bool = False
) -> list[Finished]:
    """``count`` mails from one mission filed, two acknowledgements an hour allowed."""
    done = []
    for uid in range(1, count + 1):
        message_id, _ = keep(db, archive, f"mail {uid}".encode(), uid=uid)
        db.claim_message(message_id, NOW, stale=timedelta(minutes=10))
        limits = AckLimits(per_recipient_hour=2)
        done.append(
            db.finish_message(
                archive, message_id, filed(), outgoing, now=NOW, ack_limits=limits,
                claim_acks=claim_acks,
            )
        )  # fmt: skip
    return done


def test_acknowledgements_beyond_the_rate_limit_are_recorded_as_suppressed(
    db: Database, tmp_path: Path
) -> None:
    queued = [i for done in file_mails(db, Archive(tmp_path), 4) for i in done.outbox_ids]
    assert len(queued) == 2
    assert [r.status for r in db.outbox_rows()] == [
        "pending",
        "pending",
        "suppressed",
        "suppressed",
    ]


def test_acknowledgements_claimed_in_the_filing_commit_are_no_one_elses_until_stale(
    db: Database, tmp_path: Path
) -> None:
    sending = []
    for finished in file_mails(db, Archive(tmp_path), 3, claim_acks=True):
        assert finished.outbox_ids == tuple(item.id for item in finished.sending)
        sending += finished.sending
    # The third was over the limit: suppressed, so not handed out for sending.
    assert [r.status for r in db.outbox_rows()] == ["sending", "sending", "suppressed"]
    first = sending[0]
    assert (first.key, first.recipient, first.attempts) == (
        "ack:CCM/2017/DEL/FRA/001",
        "dfra@diplomatie.gouv.fr",
        1,
    )
    assert first.raw == outgoing("CCM/2017/DEL/FRA/001", filed().submissions[0], []).raw
    # Nobody else takes them: not the outbox run, not another claim ...
    assert db.due_outbox(NOW) == []
    assert db.claim_outbox(first.id, NOW) is None
    # ... until the claim is stale (the worker died between the commit and the send).
    assert db.due_outbox(NOW + timedelta(minutes=11)) == [first.id, sending[1].id]
    taken = db.claim_outbox(first.id, NOW + timedelta(minutes=11))
    assert taken is not None and taken.attempts == 2


def test_an_outbox_row_is_claimed_once_and_a_stuck_send_is_retried_later(
    db: Database, tmp_path: Path
) -> None:
    archive = Archive(tmp_path)
    message_id, _ = keep(db, archive, b"x", uid=1)
    db.claim_message(message_id, NOW, stale=timedelta(minutes=10))
    (outbox_id,) = db.finish_message(archive, message_id, filed(), outgoing, now=NOW).outbox_ids
    assert db.claim_outbox(outbox_id, NOW) is not None
    assert db.claim_outbox(outbox_id, NOW) is None
    assert db.due_outbox(NOW) == []
    assert db.due_outbox(NOW + timedelta(minutes=11)) == [outbox_id]
    db.outbox_sent(outbox_id, NOW)
    assert db.claim_outbox(outbox_id, NOW + timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("wanted", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\TEMP\\nsmail.png", "nsmail.png"),
        ("report\r\n.pdf", "report_.pdf"),
        ("..", "file"),
        ("", "file"),
        ("." * 5 + "hidden", "hidden"),
    ],
)
def test_file_names_cannot_escape_or_hide(wanted: str, safe: str, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    (stored,) = archive.file_folder("filed/X/y", [PlannedFile.of(wanted, b"data")])
    assert stored.name == safe_component(wanted)
    path = tmp_path / "filed/X/y" / stored.name
    assert path.read_bytes() == b"data" and path.parent == tmp_path / "filed/X/y"
    assert stored.name == safe


def test_long_names_keep_their_extension_and_clashing_names_are_numbered(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    stored = archive.file_folder(
        "f",
        [
            PlannedFile.of(n, d)
            for n, d in [("a" * 300 + ".pdf", b"1"), ("list.pdf", b"2"), ("LIST.pdf", b"3")]
        ],
    )
    assert stored[0].name.endswith(".pdf") and len(stored[0].name) <= 120
    assert [s.name for s in stored[1:]] == ["list.pdf", "LIST (2).pdf"]
    assert stored[2].sha256 == hashlib.sha256(b"3").hexdigest()


@pytest.mark.parametrize(
    "folder", ["../outside", "filed/../../outside", "/tmp/outside", "filed//x", "./x", "x/\x00"]
)
def test_a_folder_outside_the_archive_is_refused(tmp_path: Path, folder: str) -> None:
    with pytest.raises(ArchiveError, match="escapes the archive"):
        Archive(tmp_path / "archive").file_folder(folder, [PlannedFile.of("x", b"")])
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_directory_the_operator_linked_elsewhere_is_followed(tmp_path: Path) -> None:
    (tmp_path / "archive").mkdir()
    (tmp_path / "other-disk").mkdir()
    (tmp_path / "archive" / "filed").symlink_to(tmp_path / "other-disk")
    archive = Archive(tmp_path / "archive")

    archive.file_folder("filed/France/x", [PlannedFile.of("a.pdf", b"1")])

    assert (tmp_path / "other-disk" / "France" / "x" / "a.pdf").read_bytes() == b"1"


def test_a_later_list_for_the_same_meeting_supersedes_the_earlier_one_which_is_kept(
    db: Database, tmp_path: Path
) -> None:
    archive = Archive(tmp_path)

    def file_list(raw: bytes, uid: int, state: str, cycle: str) -> int:
        message_id, _ = keep(db, archive, raw, uid=uid)
        db.claim_message(message_id, NOW, stale=timedelta(minutes=10))
        planned = PlannedSubmission(
            "delegation", state, f"{state} X", [PlannedFile.of("l.pdf", raw)], False, cycle
        )
        outcome = Outcome(
            Status.filed, "t", state, "delegation", "en", "{}", "folder:F", (planned,)
        )
        db.finish_message(archive, message_id, outcome, outgoing, now=NOW)
        (sub,) = db.submissions_of(message_id)
        return sub.id

    first = file_list(b"first list", 1, "FRA", "7MSP")
    second = file_list(b"corrected list", 2, "FRA", "7MSP")
    other_meeting = file_list(b"next year", 3, "FRA", "8MSP")
    other_state = file_list(b"swiss list", 4, "CHE", "7MSP")
    versions = {
        s.id: (s.version, s.supersedes_id) for m in (1, 2, 3, 4) for s in db.submissions_of(m)
    }
    assert versions[first] == (1, None)
    assert versions[second] == (2, first)
    assert versions[other_meeting] == (1, None) and versions[other_state] == (1, None)


def test_the_daily_limit_and_the_breaker_hold_too(db: Database, tmp_path: Path) -> None:
    archive = Archive(tmp_path)

    def one(uid: int, when: datetime, recipient: str, limits: AckLimits) -> str:
        message_id, _ = keep(db, archive, f"mail {uid}".encode(), uid=uid)
        db.claim_message(message_id, when, stale=timedelta(minutes=10))

        def to(reference: str, _p: PlannedSubmission, _s: object) -> Outgoing:
            return Outgoing(recipient, "s", f"<{reference}@unog.ch>", b"raw")

        db.finish_message(archive, message_id, filed(), to, now=when, ack_limits=limits)
        return db.outbox_rows()[-1].last_error

    daily = AckLimits(per_recipient_hour=3, per_recipient_day=4, all_per_hour=100)
    errors = [one(i, NOW + timedelta(hours=2 * i), "a@x.org", daily) for i in range(1, 7)]
    assert errors[:4] == ["", "", "", ""]
    assert errors[4] == "rate limit: 4 a day to a@x.org"
    breaker = AckLimits(per_recipient_hour=3, per_recipient_day=10, all_per_hour=2)
    late = NOW + timedelta(days=3)
    errors = [one(10 + i, late, f"r{i}@x.org", breaker) for i in range(3)]
    assert errors == ["", "", "breaker: 2 acknowledgements in the last hour in all"]


@pytest.mark.parametrize(
    ("kind", "cycle", "number", "expected"),
    [
        ("delegation", "7MSP", 1, "CCM/7MSP/DEL/CHE/001"),
        ("delegation", "7MSP", 2, "CCM/7MSP/DEL/CHE/002"),
        ("article7", "2016", 1, "CCM/ART7/2016/CHE/001"),
        ("article7", "initial", 1, "CCM/ART7/INITIAL/CHE/001"),
        ("other", "", 3, "CCM/COR/2017/CHE/003"),
    ],
)
def test_references_say_what_for_which_cycle_which_state_and_which_one(
    kind: str, cycle: str, number: int, expected: str
) -> None:
    assert reference_for(kind, cycle, "CHE", number, 2017) == expected


def test_staged_files_are_moved_into_place_and_leftovers_cleared(tmp_path: Path) -> None:
    """Filing writes a submission's files under .staging before its transaction and moves the
    folder into place inside it, replacing what a killed worker left there; staging folders
    a killed worker left are cleared once they are an hour old."""
    archive = Archive(tmp_path / "archive")
    (tmp_path / "archive" / "filed" / "X").mkdir(parents=True)
    (tmp_path / "archive" / "filed" / "X" / "half-written.pdf").write_bytes(b"%PDF-")
    staging, stored = archive.stage(files(("a.pdf", b"one"), ("b.docx", b"two")))

    archive.place(staging, "filed/X")

    folder = tmp_path / "archive" / "filed" / "X"
    assert sorted(p.name for p in folder.iterdir()) == ["a.pdf", "b.docx"]
    assert [s.name for s in stored] == ["a.pdf", "b.docx"]
    assert not (tmp_path / "archive" / staging).exists()
    left, _ = archive.stage(files(("c.pdf", b"three")))
    fresh, _ = archive.stage(files(("d.pdf", b"four")))
    hour_ago = time.time() - 3700
    os.utime(tmp_path / "archive" / left, (hour_ago, hour_ago))
    assert archive.clear_staging() == 1
    assert not (tmp_path / "archive" / left).exists()
    assert (tmp_path / "archive" / fresh / "d.pdf").read_bytes() == b"four"


def test_moved_messages_record_their_new_places_once(db: Database, tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    ids = [keep(db, archive, f"mail {uid}".encode(), uid=uid)[0] for uid in (1, 2, 3)]
    sha, path = archive.put_raw(b"mail 1")  # a poll of Filed/ saw the first there already
    db.record_messages("box/Filed", 9, [Incoming(50, NOW, sha, path, 6, None, "", "")])
    with db.session() as s:
        inbox = s.scalars(select(MessageLocation).where(MessageLocation.mailbox == "box"))
        places = {loc.message_id: loc.id for loc in inbox}
    db.locations_moved(
        [
            (places[ids[0]], "box/Filed", 9, 50),  # known already: not recorded twice
            (places[ids[1]], "box/Filed", 9, 51),
            (places[ids[2]], "box/Filed", None, None),  # the server did not say where
            (999, "box/Filed", 9, 52),  # no such place
        ]
    )
    with db.session() as s:
        found = sorted(
            (loc.message_id, loc.mailbox, loc.uid, loc.current, loc.action_state)
            for loc in s.scalars(select(MessageLocation))
        )
    assert found == [
        (ids[0], "box", 1, False, "done"),
        (ids[0], "box/Filed", 50, True, "waiting"),
        (ids[1], "box", 2, False, "done"),
        (ids[1], "box/Filed", 51, True, "done"),
        (ids[2], "box", 3, False, "done"),
    ]


def test_kept_mails_names_are_made_durable_once_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's raw mails: every file's directory is fsynced before the rows that point at
    them are committed (a rename is not durable until its directory is), and once each."""
    synced: list[Path] = []
    real = store._fsync_directory
    monkeypatch.setattr(store, "_fsync_directory", lambda p: (synced.append(p), real(p)))
    archive = Archive(tmp_path)
    raws = [b"one", b"two", b"one", b"three"]
    kept = archive.put_raws(raws)
    assert [sha for sha, _ in kept] == [hashlib.sha256(r).hexdigest() for r in raws]
    parents = {(archive.root / relative).parent for _, relative in kept}
    assert sorted(synced) == sorted(parents)  # each directory once
    for (_, relative), raw in zip(kept, raws, strict=True):
        assert (archive.root / relative).read_bytes() == raw
    synced.clear()
    assert archive.put_raws(raws) == kept and synced == []  # kept already: nothing to sync
    assert list((archive.root / "raw" / ".staging").iterdir()) == []  # nothing left behind


def test_a_group_that_fails_to_be_kept_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group whose files cannot all be made durable (a disk error on an fsync) raises, and
    leaves neither a half-kept mail at its final name nor a staged file."""
    archive = Archive(tmp_path)
    calls = 0
    real = os.fsync

    def second_fails(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(store.os, "fsync", second_fails)
    with pytest.raises(OSError, match="Input/output"):
        archive.put_raws([b"one", b"two", b"three"])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(store.os, "fsync", real)
    kept = archive.put_raws([b"one", b"two", b"three"])  # the next poll keeps them
    assert [(tmp_path / relative).read_bytes() for _, relative in kept] == [
        b"one",
        b"two",
        b"three",
    ]


def test_raw_mails_a_killed_worker_left_half_written_are_cleared(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    staging = tmp_path / "raw" / ".staging"
    staging.mkdir(parents=True)
    old, recent = staging / "4242-aa", staging / "4343-bb"
    old.write_bytes(b"From: half")
    recent.write_bytes(b"From: being written now")
    hour_ago = time.time() - 3700
    os.utime(old, (hour_ago, hour_ago))
    assert archive.clear_staging() == 1
    assert not old.exists() and recent.exists()


def test_a_purged_mail_leaves_its_tombstone_and_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = Archive(tmp_path)
    (_, first), (_, second) = archive.put_raws([b"From: a\r\n\r\none", b"From: b\r\n\r\ntwo"])
    when = datetime(2018, 1, 5, tzinfo=UTC)
    assert archive.purge_raw(first, when)
    assert not (tmp_path / first).exists()
    assert (tmp_path / first).with_suffix(".purged").read_text() == "2018-01-05"
    assert list((tmp_path / "raw" / ".staging").iterdir()) == []

    def refused(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", refused)
    with pytest.raises(OSError):
        archive.purge_raw(second, when)
    # Not purged, and no tombstone half-made: the mail is still there to purge next time.
    assert (tmp_path / second).exists()
    assert not (tmp_path / second).with_suffix(".purged").exists()
    assert list((tmp_path / "raw" / ".staging").iterdir()) == []


def test_a_filed_mail_is_a_link_to_the_kept_raw_mail_not_a_second_copy(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    sha, relative = archive.put_raw(raw)

    staging, stored = archive.stage(
        files(("original.eml", raw), ("list.pdf", b"%PDF-1.4")), originals={sha: relative}
    )
    archive.place(staging, "filed/X")

    kept, filed = tmp_path / "archive" / relative, tmp_path / "archive" / "filed/X/original.eml"
    assert filed.read_bytes() == raw and os.path.samefile(kept, filed)
    assert kept.stat().st_mode & 0o777 == 0o444  # evidence: nobody edits it by accident
    assert stored[0].sha256 == sha
    other = archive.stage(files(("original.eml", raw + b"changed")), originals={sha: relative})
    assert not os.path.samefile(kept, tmp_path / "archive" / other[0] / "original.eml")


def test_a_pooled_postgresql_connection_is_checked_after_idling_and_replaced_if_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted server: a connection idle longer than PING_AFTER_IDLE is pinged at checkout
    and replaced; one used a moment before fails its statement once, after which the pool's
    connections are all new. Nothing is lost either way: the work is done again."""
    with servers.postgres_server(tmp_path / "pg") as postgres:
        db = Database(postgres.url(postgres.create_database("ccm")))
        db.create_schema()
        try:
            assert db.status_counts() == {}
            postgres.restart()
            monkeypatch.setattr(store, "PING_AFTER_IDLE", 0.0)  # idle long enough: pinged
            assert db.status_counts() == {}
            monkeypatch.setattr(store, "PING_AFTER_IDLE", 3600.0)  # just used: trusted
            postgres.restart()
            with pytest.raises(OperationalError):
                db.status_counts()
            assert db.status_counts() == {}  # the pool was invalidated and connects again
        finally:
            db.dispose()
