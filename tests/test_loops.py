"""No mail loops (DESIGN invariant 4), end to end: autoresponders facing the running service.

Real Dovecot, Redis, aiosmtpd, SQLite or PostgreSQL and a real worker process. Each mission
sends one genuine delegation list; every mail the SMTP sink then receives for a responder's
address is turned into that responder's answer and APPENDed to the service's INBOX, round
after round, until nothing moves any more. The requirement: two autoresponders facing the
service exchange at most one reply per sender per day — here, the acknowledgement of the
genuine list and nothing else — every mail is kept, and the robots' mails are set aside as
automatic, with the reason, never filed as a submission.

The responders are the two kinds that slip past RFC 3834 checks:

* a vacation responder that ignores RFC 3834 (no ``Auto-Submitted``, no ``Precedence``),
  answers everything with "Out of office / Absence du bureau", keeps the subject, quotes
  the mail and attaches what it got, from the mission's own address;
* a registry robot whose answer looks like our own acknowledgement: "Acknowledgement of
  receipt CCM/7MSP/DEL/XXX/001", an ``X-Loop`` naming its own list, a Message-ID in our
  domain, threaded under our mail;

and, in a second run, responders that copy our ``X-Loop`` or our Message-ID (one of them
sending a PDF back). A third run is the person who corrects a list by replying to our
acknowledgement: filed as the next version, not acknowledged again the same day.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config.settings import load_settings
from tests.app import WorkerProcess, append, count, folder_subjects, keep, rows
from tests.golden.mail import DELEGATION, delegation_rows, message, note, pdf
from worker.compose import Outgoing
from worker.store import (
    Archive,
    Database,
    Outcome,
    PlannedFile,
    PlannedSubmission,
    Status,
    outbox_row,
)

SERVICE = "ccm@unog.ch"
# Personas: mission addresses of config/data/missions.csv, so each mail is known as its State's.
SWISS = "gen.vertretung@eda.admin.ch"  # the vacation responder
IRISH = "genevapmun@dfa.ie"  # the registry robot that looks like us
AUSTRIAN = "genf-ov@bmeia.gv.at"  # copies our X-Loop
CANADIAN = "genev@international.gc.ca"  # keeps our Message-ID and sends its PDF back
SPANISH = "rep.ginebra@maec.es"  # a person who corrects a list

MAX_ROUNDS = 10  # answers per responder before the run counts as a loop that did not stop
SETTLE_SECONDS = 240.0  # the whole exchange; far more than a few rounds take
QUIET_SECONDS = 4.0  # nothing pending and nothing new for this long: the exchange is over

Responder = Callable[[EmailMessage, int], bytes | None]  # (mail received, round) -> answer


# ---------------------------------------------------------------------------- the database


# ---------------------------------------------------------------------------- the mails


PEOPLE = {
    "en": [
        ("H.E. Mr Michael Gaffey, Ambassador", "Head of delegation"),
        ("Ms Aoife Ryan", "Adviser"),
    ],
    "fr": [
        ("S.E. M. Valentin Zellweger, Ambassadeur", "Chef de délégation"),
        ("Mme Anna Roth", "Conseillère"),
    ],
    "es": [
        ("Excmo. Sr. Juan Manuel González", "Jefe de la delegación"),
        ("Sra. Ana Ruiz", "Asesora"),
    ],
}


def delegation(address: str, mission: str, lang: str, state: str, of_state: str) -> bytes:
    """A mission's note verbale with its delegation list as a PDF: a genuine submission."""
    what = DELEGATION[lang].format(state=state, of_state=of_state)
    title = {"en": "Delegation of {s}", "fr": "Délégation {o}", "es": "Delegación {o}"}[lang]
    return message(
        formataddr((mission, address)),
        {
            "en": "7MSP - Delegation of {s}",
            "fr": "7MSP - Délégation {o}",
            "es": "7REP - Delegación {o}",
        }[lang].format(s=state, o=of_state),
        note(lang, mission, what),
        files=[
            pdf(
                f"Delegation {state} 7MSP.pdf",
                title.format(s=state, o=of_state),
                delegation_rows(lang, PEOPLE[lang]),
            )
        ],
        when=datetime.now(UTC),
        msgid=f"genuine-{address}",
    )


def _answer(sender: str, got: EmailMessage, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(got["From"])
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">"))
    msg.set_content(body)
    return msg


def _thread(msg: EmailMessage, got: EmailMessage) -> None:
    msg["In-Reply-To"] = str(got["Message-ID"])
    msg["References"] = f"{got.get('References', '')} {got['Message-ID']}".strip()


def _quoted(got: EmailMessage) -> str:
    part = got.get_body(("plain",))
    content = part.get_content() if part is not None else ""
    return "".join(f"> {line}\n" for line in content.splitlines())


def vacation_responder(got: EmailMessage, rounds: int) -> bytes:
    """Answers everything, RFC 3834 or not: no Auto-Submitted, no Precedence, the subject
    kept, the mail quoted and what it got attached."""
    msg = _answer(
        formataddr(("Mission permanente de la Suisse", SWISS)),
        got,
        f"RE: {got['Subject']}",
        "Out of office / Absence du bureau\n\n"
        "Thank you for your message. I am out of the office until 4 September 2017 with "
        "limited access to e-mail.\n"
        "Je suis absent du bureau jusqu'au 4 septembre 2017. Pour toute question urgente, "
        "veuillez écrire à la Mission.\n\n"
        f"-----Original Message-----\nFrom: {got['From']}\nSubject: {got['Subject']}\n\n"
        + _quoted(got),
    )
    _thread(msg, got)
    msg.add_attachment(got)  # message/rfc822: what it received, sent back
    return msg.as_bytes(policy=SMTP)


def lookalike_responder(got: EmailMessage, rounds: int) -> bytes:
    """A registry robot whose receipts look like our acknowledgements: our subject, a
    reference of our form, an X-Loop naming its own list, a Message-ID in our domain."""
    reference = f"CCM/7MSP/DEL/XXX/{rounds + 1:03d}"
    msg = _answer(
        formataddr(("Permanent Mission of Ireland", IRISH)),
        got,
        f"Acknowledgement of receipt {reference}: Details of delegation — Ireland",
        "The registry of the Permanent Mission of Ireland acknowledges receipt of the "
        "following submission.\n\n"
        f"Reference:      {reference}\n"
        "Submission:     Details of delegation\n"
        f"Your message:   {got['Subject']}\n\n"
        "This acknowledgement was sent automatically; no signature is required.\n",
    )
    del msg["Message-ID"]
    msg["Message-ID"] = f"<receipt.{rounds}.{int(time.time())}@unog.ch>"
    msg["X-Loop"] = "registry@dfa.ie"
    _thread(msg, got)
    return msg.as_bytes(policy=SMTP)


def xloop_copier(got: EmailMessage, rounds: int) -> bytes:
    """A list server at the mission that copies the X-Loop of what it forwards."""
    msg = _answer(
        formataddr(("Ständige Vertretung Österreichs", AUSTRIAN)),
        got,
        f"RE: {got['Subject']}",
        "Your message has been received and passed to the desk officer.\n",
    )
    msg["X-Loop"] = str(got["X-Loop"])
    _thread(msg, got)
    return msg.as_bytes(policy=SMTP)


def message_id_keeper(got: EmailMessage, rounds: int) -> bytes:
    """A gateway that keeps the Message-ID of what it got and sends the mission's list back."""
    msg = _answer(
        formataddr(("Permanent Mission of Canada", CANADIAN)),
        got,
        f"RE: {got['Subject']}",
        "Please find attached the delegation list of Canada on file.\n",
    )
    del msg["Message-ID"]
    msg["Message-ID"] = str(got["Message-ID"])
    _thread(msg, got)
    name, data, ctype = pdf(
        "Delegation Canada 7MSP.pdf", "Delegation of Canada", ["Head of delegation: Ms L. Smith"]
    )
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


def correcting_person(got: EmailMessage, rounds: int) -> bytes | None:
    """A person at the Spanish mission who answers our acknowledgement, once, with the
    corrected list (as our acknowledgement invites: "if this is wrong, reply")."""
    if rounds:
        return None
    msg = _answer(
        formataddr(("Misión Permanente de España", SPANISH)),
        got,
        f"RE: {got['Subject']}",
        "Estimados colegas:\n\nAdjuntamos la lista corregida de la delegación de España a la "
        "Séptima Reunión de los Estados Partes: se añade un asesor.\n\nAtentamente,\n"
        "Misión Permanente de España\n\n"
        f"-----Mensaje original-----\nDe: {got['From']}\nAsunto: {got['Subject']}\n\n"
        + _quoted(got),
    )
    _thread(msg, got)
    people = [*PEOPLE["es"], ("Sr. Luis Martín", "Asesor")]
    name, data, ctype = pdf(
        "Delegacion Espana corregida.pdf", "Delegación de España", delegation_rows("es", people)
    )
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


# ---------------------------------------------------------------------------- the exchange


@dataclass
class Exchange:
    appended: list[bytes] = field(default_factory=list)  # every mail put into the INBOX
    answers: Counter[str] = field(default_factory=Counter)  # responder -> answers it sent
    sent_to: Counter[str] = field(default_factory=Counter)  # address -> mails the service sent

    def figures(self) -> str:
        return (
            f"{len(self.appended)} mails into the inbox, answers {dict(self.answers)}, "
            f"service mails {dict(self.sent_to)}"
        )


def run_exchange(
    db_url: str,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    first: list[bytes],
    responders: dict[str, Responder],
) -> Exchange:
    """Put ``first`` into the inbox, then answer every mail the service sends a responder,
    until everything is processed, nothing waits to be sent and no new mail came for
    QUIET_SECONDS. Fails if a responder had to answer more than MAX_ROUNDS times."""
    user, password = account
    ex = Exchange()

    def put(raw: bytes) -> None:
        append(dovecot, user, password, raw)
        ex.appended.append(raw)

    def settled() -> bool:
        return (
            count(db_url, "select count(*) from message") == len(ex.appended)
            and count(
                db_url, "select count(*) from message where status in ('received', 'processing')"
            )
            == 0
            and count(db_url, "select count(*) from outbox where status in ('pending', 'sending')")
            == 0
            and folder_subjects(dovecot, user, password).get("INBOX") == []
        )

    for raw in first:
        put(raw)
    seen = 0
    quiet_since: float | None = None
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        new = list(smtp.messages[seen:])
        seen += len(new)
        for record in new:
            for rcpt in record.rcpt_tos:
                ex.sent_to[rcpt.lower()] += 1
                responder = responders.get(rcpt.lower())
                if responder is None:
                    continue
                answer = responder(record.message, ex.answers[rcpt.lower()])
                if answer is not None:
                    ex.answers[rcpt.lower()] += 1
                    put(answer)
        assert max(ex.answers.values(), default=0) <= MAX_ROUNDS, (
            f"the loop did not stop: {ex.figures()}"
        )
        if new or not settled():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            return ex
        assert time.monotonic() < deadline, f"the exchange never settled: {ex.figures()}"
        time.sleep(0.5)


def assert_every_mail_kept(db_url: str, env: dict[str, str], ex: Exchange) -> None:
    """Nothing lost: one message row per mail put into the inbox, its bytes in the archive."""
    archive = load_settings(env).archive_path
    kept = {sha for (sha,) in rows(db_url, "select sha256 from message")}
    for raw in ex.appended:
        sha = hashlib.sha256(raw).hexdigest()
        assert sha in kept
        assert (archive / "raw" / sha[:2] / f"{sha}.eml").read_bytes() == raw
    assert len(kept) == len(ex.appended)


def from_rows(db_url: str, address: str) -> list[tuple[str, str, str]]:
    """(status, kind, reason) of every message from ``address``, in arrival order."""
    sql = "select status, kind, reason from message where lower(from_addr) = :a order by id"
    return [(status, kind, reason) for status, kind, reason in rows(db_url, sql, a=address)]


# ---------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_two_autoresponders_facing_the_service_get_one_acknowledgement_each_and_the_loop_stops(
    tmp_path: Path, dovecot: Any, account: tuple[str, str], smtp: Any, db_url: str, make_env: Any
) -> None:
    env = make_env(db_url, CCM_REMINDERS_ENABLED="false")
    first = [
        delegation(SWISS, "Mission permanente de la Suisse", "fr", "Suisse", "de la Suisse"),
        delegation(IRISH, "Permanent Mission of Ireland", "en", "Ireland", "Ireland"),
    ]
    responders: dict[str, Responder] = {SWISS: vacation_responder, IRISH: lookalike_responder}
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        ex = run_exchange(db_url, dovecot, account, smtp, first, responders)
        log = worker.text()
    print(f"\nloop run ({db_url.split(':')[0]}): {ex.figures()}")

    # One mail from the service to each responder, the acknowledgement of its genuine list;
    # each robot answered it once and was not answered back: the loop stopped.
    assert ex.sent_to == Counter({SWISS: 1, IRISH: 1}), log
    assert ex.answers == Counter({SWISS: 1, IRISH: 1})
    subjects = {m.rcpt_tos[0].lower(): str(m.message["Subject"]) for m in smtp.messages}
    assert "CCM/7MSP/DEL/CHE/001" in subjects[SWISS]
    assert "CCM/7MSP/DEL/IRL/001" in subjects[IRISH]
    assert rows(db_url, "select key, status from outbox order by key") == [
        ("ack:CCM/7MSP/DEL/CHE/001", "sent"),
        ("ack:CCM/7MSP/DEL/IRL/001", "sent"),
    ]

    # The robots' answers: kept, known as automatic with the reason, filed as nothing.
    for address, reason in ((SWISS, "out-of-office text"), (IRISH, "acknowledgement-of-receipt")):
        (genuine, robot) = from_rows(db_url, address)
        assert genuine[:2] == ("filed", "delegation")
        assert robot[0] == "not_submission" and robot[1] == "auto_reply", robot
        assert robot[2].startswith("automatic mail: ") and reason in robot[2], robot
    assert rows(db_url, "select state_iso3, kind, version from submission order by state_iso3") == [
        ("CHE", "delegation", 1),
        ("IRL", "delegation", 1),
    ]
    assert_every_mail_kept(db_url, env, ex)
    user, password = account
    folders = folder_subjects(dovecot, user, password)
    assert len(folders["Not submissions"]) == 2
    assert len(folders["Filed/Switzerland"]) == len(folders["Filed/Ireland"]) == 1


@pytest.mark.slow
def test_responders_that_copy_our_loop_header_or_message_id_are_known_as_our_mail_back(
    tmp_path: Path,
    dovecot: Any,
    account: tuple[str, str],
    smtp: Any,
    sqlite_url: str,
    make_env: Any,
) -> None:
    env = make_env(sqlite_url, CCM_REMINDERS_ENABLED="false")
    first = [
        delegation(AUSTRIAN, "Permanent Mission of Austria", "en", "Austria", "Austria"),
        delegation(CANADIAN, "Permanent Mission of Canada", "en", "Canada", "Canada"),
    ]
    responders: dict[str, Responder] = {AUSTRIAN: xloop_copier, CANADIAN: message_id_keeper}
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        ex = run_exchange(sqlite_url, dovecot, account, smtp, first, responders)
        log = worker.text()
    print(f"\ncopycat run: {ex.figures()}")

    assert ex.sent_to == Counter({AUSTRIAN: 1, CANADIAN: 1}), log
    assert ex.answers == Counter({AUSTRIAN: 1, CANADIAN: 1})
    for address, reason in ((AUSTRIAN, "X-Loop: ccm@unog.ch"), (CANADIAN, "Message-ID is ours")):
        (genuine, robot) = from_rows(sqlite_url, address)
        assert genuine[:2] == ("filed", "delegation")
        assert robot[0] == "not_submission", robot
        assert "our own mail came back" in robot[2] and reason in robot[2], robot
    # The PDF the gateway sent back is kept with its mail, not filed as a second list.
    assert count(sqlite_url, "select count(*) from submission") == 2
    assert count(sqlite_url, "select count(*) from outbox") == 2
    assert_every_mail_kept(sqlite_url, env, ex)


@pytest.mark.slow
def test_a_person_who_corrects_a_list_by_replying_to_our_acknowledgement_is_filed_not_acked_again(
    tmp_path: Path, dovecot: Any, account: tuple[str, str], smtp: Any, db_url: str, make_env: Any
) -> None:
    """The correction is a submission (the next version, kept and filed); its acknowledgement
    is held by the loop guard, since its sender had one from us today — recorded as
    suppressed, with the reason, for the digest."""
    env = make_env(db_url, CCM_REMINDERS_ENABLED="false")
    first = [delegation(SPANISH, "Misión Permanente de España", "es", "España", "de España")]
    with WorkerProcess(env, tmp_path / "worker.log") as worker:
        ex = run_exchange(db_url, dovecot, account, smtp, first, {SPANISH: correcting_person})
        log = worker.text()
    print(f"\ncorrection run ({db_url.split(':')[0]}): {ex.figures()}")

    assert ex.sent_to == Counter({SPANISH: 1}), log
    assert ex.answers == Counter({SPANISH: 1})
    assert [row[:2] for row in from_rows(db_url, SPANISH)] == [
        ("filed", "delegation"),
        ("filed", "delegation"),
    ]
    versions = rows(
        db_url,
        "select s.reference, s.version, p.reference from submission s "
        "left join submission p on p.id = s.supersedes_id order by s.version",
    )
    assert versions == [
        ("CCM/7MSP/DEL/ESP/001", 1, None),
        ("CCM/7MSP/DEL/ESP/002", 2, "CCM/7MSP/DEL/ESP/001"),
    ]
    outbox = rows(db_url, "select key, status, last_error from outbox order by key")
    assert [row[:2] for row in outbox] == [
        ("ack:CCM/7MSP/DEL/ESP/001", "sent"),
        ("ack:CCM/7MSP/DEL/ESP/002", "suppressed"),
    ]
    assert "loop guard" in outbox[1][2] and SPANISH in outbox[1][2]
    # Both lists are in the archive, each with the mail it came in.
    archive = load_settings(env).archive_path
    folders = [
        folder for (folder,) in rows(db_url, "select folder from submission order by version")
    ]
    for folder, raw in zip(folders, ex.appended, strict=True):
        assert (archive / folder / "original.eml").read_bytes() == raw
    assert_every_mail_kept(db_url, env, ex)


# ---------------------------------------------------------------------------- the loop guard
# The store's rule, without servers: a reply to a mail we sent gets an acknowledgement only
# if its sender had none from us in the last 24 hours.

NOW = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


@dataclass
class Store:
    db: Database
    archive: Archive
    uid: int = 0

    def submit(self, sender: str, when: datetime, replies_to: tuple[str, ...] = ()) -> Any:
        """File one delegation from ``sender``; the outbox row of its acknowledgement."""
        self.uid += 1
        kept = SimpleNamespace(db=self.db, archive=self.archive)
        message_id, _ = keep(kept, f"mail {self.uid}".encode(), self.uid, when)
        self.db.claim_message(message_id, when, stale=timedelta(minutes=10))
        planned = PlannedSubmission(
            "delegation",
            "ESP",
            "ESP Spain",
            [PlannedFile.of("original.eml", b"raw")],
            True,
            "7MSP",
            replies_to=replies_to,
        )
        outcome = Outcome(
            Status.filed,
            "test",
            "ESP",
            "delegation",
            "es",
            "{}",
            "folder:Filed/Spain",
            (planned,),
        )

        def ack(reference: str, _p: PlannedSubmission, _s: object) -> Outgoing:
            return Outgoing(sender, f"ack {reference}", f"<ack.{self.uid}@unog.ch>", b"raw")

        self.db.finish_message(self.archive, message_id, outcome, ack, now=when)
        return self.db.outbox_rows()[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    database = Database(str(url))
    database.create_schema()
    request.addfinalizer(database.dispose)
    return Store(database, Archive(tmp_path / "archive"))


def test_a_reply_to_our_acknowledgement_the_same_day_is_filed_but_not_acknowledged(
    store: Store,
) -> None:
    first = store.submit(SPANISH, NOW)
    again = store.submit(SPANISH, NOW + timedelta(hours=5), ("<x@y>", first.message_id_header))

    assert first.status == "pending"
    assert again.status == "suppressed" and again.last_error.startswith("loop guard")


def test_a_reply_to_our_acknowledgement_a_day_later_is_acknowledged(store: Store) -> None:
    first = store.submit(SPANISH, NOW)
    later = store.submit(SPANISH, NOW + timedelta(hours=25), (first.message_id_header,))

    assert later.status == "pending"


def test_a_list_sent_in_reply_to_our_reminder_is_acknowledged(store: Store) -> None:
    """Answering the reminder with the list is what missions do: no acknowledgement yet today."""
    reminder = Outgoing(SPANISH, "Recordatorio", "<reminder.esp@unog.ch>", b"raw")
    with store.db.session() as s:
        s.add(outbox_row("reminder:7MSP:ESP:14", "reminder", reminder, NOW))
    answer = store.submit(SPANISH, NOW + timedelta(hours=1), ("<reminder.esp@unog.ch>",))

    assert answer.status == "pending"


def test_a_second_fresh_list_the_same_day_is_not_held_by_the_loop_guard(store: Store) -> None:
    """A new mail, not a reply to ours, is only under the hourly and daily rate limits."""
    store.submit(SPANISH, NOW)
    fresh = store.submit(SPANISH, NOW + timedelta(hours=2), ("<earlier@maec.es>",))

    assert fresh.status == "pending"
