"""Filing through the whole processing step: what a submission records about itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from config.settings import load_settings
from tests.app import keep
from worker import processing
from worker.runtime import Context, build_context
from worker.samples import australia_article7, france_delegation

WHEN = datetime(2017, 8, 14, 9, 0, tzinfo=UTC)


def body_of(raw: bytes) -> str:
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def keep_and_process(ctx: Context, raw: bytes, uid: int, when: datetime = WHEN) -> int:
    message_id, _ = keep(ctx, raw, uid, when)
    processing.process_message(ctx, message_id, now=when)  # processed as it arrives
    return message_id


def test_a_corrected_delegation_list_is_version_two_and_the_first_is_kept(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    first = keep_and_process(ctx, france_delegation(WHEN).raw, 1)
    corrected = france_delegation(datetime(2017, 8, 16, 10, 0, tzinfo=UTC)).raw  # new bytes
    second = keep_and_process(ctx, corrected, 2, datetime(2017, 8, 16, 10, 0, tzinfo=UTC))
    (v1,) = ctx.db.submissions_of(first)
    (v2,) = ctx.db.submissions_of(second)
    assert (v1.cycle, v1.version, v1.supersedes_id) == ("7MSP", 1, None)
    assert (v2.cycle, v2.version, v2.supersedes_id) == ("7MSP", 2, v1.id)
    assert (ctx.archive.root / v1.folder / "original.eml").is_file()  # nothing deleted
    assert [s.id for s in ctx.db.latest_submissions()] == [v2.id]


def test_the_roster_and_the_report_cover_are_stored_with_their_submissions(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    (delegation,) = ctx.db.submissions_of(keep_and_process(ctx, france_delegation(WHEN).raw, 1))
    (report,) = ctx.db.submissions_of(keep_and_process(ctx, australia_article7(WHEN).raw, 2))
    roster = json.loads(delegation.details)
    head = next(d for d in roster["delegates"] if d["role"] == "head")
    assert head["name"].endswith("Jean Dupont") and len(roster["delegates"]) == 3
    cover = json.loads(report.details)
    assert report.cycle == "2016" and cover["reporting_year"] == 2016
    assert cover["state_party"] == "Australia"
    assert {f["form"] for f in cover["forms"]} >= {"A", "B"}


def test_a_permanent_bounce_marks_the_address_as_failing(tmp_path: Path) -> None:
    from worker.samples import bounce

    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    keep_and_process(ctx, bounce(WHEN).raw, 1)
    (failing,) = ctx.db.failing_contacts()
    assert failing.address == "old.desk@mfa.example" and failing.failing
    assert "bounce" in failing.reason


def test_an_autoresponder_that_slips_past_the_loop_checks_gets_at_most_the_limit(
    tmp_path: Path,
) -> None:
    """A robot answering each of our mails with a new 'delegation list' is answered 3 times an
    hour, not once per mail."""
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    for uid in range(1, 11):
        when = datetime(2017, 8, 14, 9, uid, tzinfo=UTC)
        keep_and_process(ctx, france_delegation(when).raw, uid, when)
    statuses = [row.status for row in ctx.db.outbox_rows()]
    assert statuses.count("pending") == 3 and statuses.count("suppressed") == 7


def test_the_acknowledgement_measures_the_submission_against_its_deadline(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    keep_and_process(ctx, france_delegation(WHEN).raw, 1)
    late = datetime(2017, 8, 22, 9, 0, tzinfo=UTC)
    keep_and_process(ctx, australia_article7(late).raw, 2, late)
    on_time, overdue = (body_of(row.raw) for row in ctx.db.outbox_rows())
    assert "Date limite :     2017-08-18 — reçue dans les délais" in on_time  # in French
    assert "Deadline:       2017-04-30 — received 114 day(s) after the deadline" in overdue


def test_a_mail_with_too_little_text_is_answered_in_the_states_own_language(
    tmp_path: Path,
) -> None:
    from worker.samples import _mail, _raw, pdf_bytes

    msg = _mail("dfra.geneve@diplomatie.gouv.fr", "7MSP", "PJ.", WHEN)
    msg.add_attachment(
        pdf_bytes("Délégation de la France", ["Chef de délégation : M. Jean Dupont"]),
        maintype="application",
        subtype="pdf",
        filename="delegation.pdf",
    )
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    keep_and_process(ctx, _raw(msg), 1)
    (row,) = ctx.db.outbox_rows()
    assert row.subject.startswith("Accusé de réception")


def test_old_mail_read_for_the_first_time_is_filed_but_not_acknowledged(tmp_path: Path) -> None:
    """Connecting the service to an inbox that holds last year's mail must not answer it."""
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    message_id, _ = keep(ctx, france_delegation(WHEN).raw, 1, WHEN)
    processing.process_message(ctx, message_id, now=WHEN + timedelta(days=8))
    (submission,) = ctx.db.submissions_of(message_id)
    (ack,) = ctx.db.outbox_rows()
    assert submission.state_iso3 == "FRA"
    assert (ack.status, ack.last_error) == (
        "suppressed",
        "not acknowledged: received 8 days ago (older than 7 days: old mail read for the first"
        " time)",
    )
    # Within the week (an outage of a few days), it is acknowledged as usual.
    message_id, _ = keep(ctx, france_delegation(WHEN + timedelta(hours=1)).raw, 2, WHEN)
    processing.process_message(ctx, message_id, now=WHEN + timedelta(days=6))
    assert [r.status for r in ctx.db.outbox_rows()] == ["suppressed", "pending"]
