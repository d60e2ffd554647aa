"""Everything the service decides about one message, from its bytes alone.

``analyse`` is what both the worker and ``ccm-intake classify`` call: parse, read the
attachments, tell auto-replies apart, classify the kind, identify the State, and say
what should happen — file, review, or leave as not a submission — with the evidence.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from parsers.article7 import Article7Report, extract_article7
from parsers.attachments import Extraction, extract_all
from parsers.authres import SenderAuth, sender_auth
from parsers.autoreply import Automatic, classify_automatic
from parsers.classify import KindResult, classify_kind
from parsers.cycle import Meeting, article7_cycle, delegation_cycle
from parsers.delegation import Roster, extract_roster, meeting_from_text
from parsers.evidence import Evidence
from parsers.language import language_of
from parsers.limits import Limits, OverLimit, check_attachments, check_raw
from parsers.message import ParsedMessage, parse_message
from parsers.states import MissionDirectory, StateRegistry, StateResult, identify_state

FILE = "file"
REVIEW = "review"
NOT_SUBMISSION = "not_submission"

# Kinds that a mission expects to be acknowledged. Other correspondence from a known
# State is filed under it but not answered automatically: a "thank you" to our
# acknowledgement must not start a conversation with a robot.
ACKNOWLEDGED_KINDS = frozenset({"delegation", "article7"})


@dataclass(frozen=True, slots=True)
class Analysis:
    message: ParsedMessage
    extractions: tuple[Extraction, ...]
    state: StateResult
    kind: KindResult
    language: str
    auto_reason: str | None
    automatic: Automatic | None  # for a bounce, who failed and whether for good
    sender: SenderAuth
    roster: Roster | None  # what a delegation list says
    article7: Article7Report | None  # what a transparency report says about itself
    cycles: dict[str, str]  # kind -> '7MSP' / '2016' / 'initial'
    language_sure: bool  # False: too little text to tell; the State's own language may serve
    outcome: str  # FILE | REVIEW | NOT_SUBMISSION
    reason: str  # one line, for the log, the digest and the review queue
    ack: bool

    @property
    def kinds(self) -> tuple[str, ...]:
        """The submissions this message makes: one per kind, 'other' when none."""
        return self.kind.kinds or ("other",)

    @property
    def confidence(self) -> float:
        if self.outcome == FILE:
            return round(min(self.state.confidence, self.kind.confidence), 3)
        return round(self.state.confidence, 3)

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return self.state.evidence + self.kind.evidence

    def details_json(self, kind: str) -> str:
        """What a submission of ``kind`` says (roster, report cover), as JSON; '' if nothing."""
        found: object = {"delegation": self.roster, "article7": self.article7}.get(kind)
        if found is None:
            return ""
        return json.dumps(dataclasses.asdict(found), ensure_ascii=False, default=str)  # type: ignore[call-overload]

    def summary(self) -> dict[str, object]:
        """The dry-run record ``ccm-intake classify --json`` prints."""
        return {
            "state": self.state.iso3 if self.outcome == FILE else None,
            "kind": self.kind.kind,
            "kinds": list(self.kind.kinds),
            "confidence": self.confidence,
            "ack": self.ack,
            "review": self.outcome == REVIEW,
            "outcome": self.outcome,
            "reason": self.reason,
            "language": self.language,
            "auto_reply": self.auto_reason,
            "sender_auth": self.sender.verdict,
            "candidates": [[iso3, round(score, 3)] for iso3, score in self.state.candidates[:5]],
            "evidence": [e.as_dict() for e in self.evidence],
            "cycles": self.cycles,
            "details": {kind: json.loads(self.details_json(kind) or "null") for kind in self.kinds},
            "attachments": [
                {"name": x.name, "method": x.method, "chars": len(x.text), "error": x.error}
                for x in self.extractions
            ],
            "defects": list(self.message.defects),
        }


def analyse(
    raw: bytes,
    *,
    registry: StateRegistry,
    directory: MissionDirectory,
    own_addresses: Iterable[str] = (),
    threshold: float = 0.75,
    authserv_ids: Iterable[str] = (),
    received: date | None = None,
    meetings: Sequence[Meeting] = (),
    extract: Callable[[ParsedMessage], Sequence[Extraction]] | None = None,
    limits: Limits | None = None,
) -> Analysis:
    """Decide about one message. Raises ``UnparseableMessage`` only for bytes that are no
    mail, and ``OverLimit`` for a message over one of ``limits`` (the size of the message,
    its headers, its nesting, its attachments; a reader stopped by a limit).

    ``authserv_ids`` names our own mail server(s): their Authentication-Results decide
    whether the sender's address may count as evidence. ``received`` (the server's date)
    and ``meetings`` place a submission in its cycle; ``extract`` reads the attachments
    (the worker passes one that runs under a time and memory limit).
    """
    limits = limits or Limits()
    problem = check_raw(raw, limits)
    if problem is not None:
        raise OverLimit(problem)
    msg = parse_message(raw)
    problem = check_attachments([(a.safe_name, len(a.data)) for a in msg.attachments], limits)
    if problem is not None:
        raise OverLimit(problem)
    extractions = tuple(extract(msg)) if extract is not None else extract_all(msg, limits=limits)
    stopped = next((r for x in extractions if (r := x.limit_reached()) is not None), None)
    if stopped is not None:
        raise OverLimit(stopped)
    automatic = classify_automatic(msg, own_addresses)
    auto = automatic.reason if automatic is not None else None
    sender = sender_auth(msg.headers, msg.from_addr, authserv_ids)
    kind = classify_kind(msg, extractions, own_addresses=own_addresses)
    state = identify_state(
        from_addr=msg.from_addr,
        reply_to=msg.reply_to,
        subject=msg.subject,
        body=msg.text,
        attachment_texts=[x.text for x in extractions if x.text],
        registry=registry,
        directory=directory,
        threshold=threshold,
        sender_distrust=None if sender.trusted else sender.detail,
    )
    found_language = language_of(" ".join([msg.subject, msg.text[:5000]]))
    language = found_language or "en"
    outcome, reason = _decide(auto, sender, state, kind)
    if kind.kind == "spam" and state.iso3 is not None:
        # A spam filter's verdict on a mail a mission evidently sent: a person decides.
        kind = classify_kind(msg, extractions, own_addresses=own_addresses, robots=False)
        outcome, reason = REVIEW, f"spam filter verdict on mail from {state.iso3}: {auto}"
    ack = outcome == FILE and any(k in ACKNOWLEDGED_KINDS for k in kind.kinds)
    day = received or (msg.date.date() if msg.date else date(1970, 1, 1))
    roster, report, cycles = _content(msg, extractions, kind.kinds, day, meetings)
    return Analysis(
        msg,
        extractions,
        state,
        kind,
        language,
        auto,
        automatic,
        sender,
        roster,
        report,
        cycles,
        found_language is not None,
        outcome,
        reason,
        ack,
    )


def _content(
    msg: ParsedMessage,
    extractions: Sequence[Extraction],
    kinds: Sequence[str],
    received: date,
    meetings: Sequence[Meeting],
) -> tuple[Roster | None, Article7Report | None, dict[str, str]]:
    """Read what each submission says, and which meeting or year it is for."""
    texts = [(x.name, x.text) for x in extractions if x.text]
    tables = [(x.name, table) for x in extractions for table in x.tables]
    roster = report = None
    cycles: dict[str, str] = {}
    if "delegation" in kinds:
        roster = extract_roster(body=msg.text, texts=texts, tables=tables)
        named = roster.meeting or meeting_from_text(f"{msg.subject}\n{msg.text}")
        cycles["delegation"] = delegation_cycle(named, received, meetings)
    if "article7" in kinds:
        report = extract_article7(body=msg.text, texts=texts, tables=tables, received=received)
        cycles["article7"] = article7_cycle(report.reporting_year, report.initial, received)
    return roster, report, cycles


def _decide(
    auto: str | None, sender: SenderAuth, state: StateResult, kind: KindResult
) -> tuple[str, str]:
    if auto is not None:
        return NOT_SUBMISSION, f"automatic mail: {auto}"
    if not sender.trusted:
        # Possibly spoofed: never filed under a State, never answered; a person looks.
        return REVIEW, f"sender failed authentication: {sender.detail}"
    if state.iso3 is not None:
        what = ", ".join(kind.kinds) or "correspondence"
        return FILE, f"{what} from {state.iso3}: {state.reason}"
    if kind.kinds or state.candidates:
        return REVIEW, f"State not certain: {state.reason}"
    return NOT_SUBMISSION, "no State and nothing that looks like a submission"
