"""The decision as a whole: file, review or leave alone, and whether to answer."""

from __future__ import annotations

from datetime import UTC, datetime

from config.registry import load_directory, load_registry
from parsers.analysis import FILE, NOT_SUBMISSION, REVIEW, Analysis, analyse
from worker.samples import france_delegation, out_of_office

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


def decide(raw: bytes, authserv_ids: tuple[str, ...] = ()) -> Analysis:
    return analyse(
        raw, registry=load_registry(), directory=load_directory(), authserv_ids=authserv_ids
    )


def with_header(raw: bytes, header: str) -> bytes:
    return header.encode() + b"\r\n" + raw


def test_a_mission_note_is_filed_and_acknowledged() -> None:
    result = decide(france_delegation(WHEN).raw)
    assert (result.outcome, result.state.iso3, result.ack) == (FILE, "FRA", True)
    assert result.summary()["state"] == "FRA"


def test_a_sender_our_server_saw_fail_dmarc_goes_to_review_unanswered() -> None:
    spoofed = with_header(
        france_delegation(WHEN).raw,
        "Authentication-Results: mx.unog.ch; dmarc=fail (p=none) header.from=diplomatie.gouv.fr",
    )
    result = decide(spoofed, authserv_ids=("mx.unog.ch",))
    assert result.outcome == REVIEW and not result.ack
    assert result.summary()["state"] is None
    assert result.reason.startswith("sender failed authentication: dmarc=fail")
    assert any(e.rule == "sender-not-authenticated" for e in result.state.evidence)
    # The sender's domain no longer counts as evidence for France.
    assert not any(
        e.rule.startswith("sender-") and e.target == "FRA" for e in result.state.evidence
    )


def test_a_forged_pass_from_another_server_changes_nothing() -> None:
    forged = with_header(
        france_delegation(WHEN).raw,
        "Authentication-Results: mx.unog.ch.attacker.example; dmarc=pass "
        "header.from=diplomatie.gouv.fr",
    )
    result = decide(forged, authserv_ids=("mx.unog.ch",))
    assert result.outcome == FILE and result.sender.verdict == "unknown"


def test_an_automatic_reply_is_not_a_submission_and_gets_no_answer() -> None:
    result = decide(out_of_office(WHEN).raw)
    assert (result.outcome, result.ack) == (NOT_SUBMISSION, False)
    assert result.reason.startswith("automatic mail")
