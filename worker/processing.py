"""Processing one kept message: analyse it, file it, queue its acknowledgement.

Plain functions over a ``Context``; the Celery task and the CLI call them the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from config.calendar import load_calendar, load_contacts
from config.registry import load_meetings
from parsers.analysis import ACKNOWLEDGED_KINDS, FILE, REVIEW, Analysis
from parsers.attachments import unpack
from parsers.cycle import article7_cycle, delegation_cycle
from parsers.limits import Limits, OverLimit
from parsers.message import UnparseableMessage
from parsers.states import State
from worker import mailer
from worker.compose import KIND_LABELS, Outgoing, ReceivedFile, compose_ack, renewed
from worker.logs import about_message, bind
from worker.runtime import Context, analyse_message, message_limits
from worker.store import (
    AckLimits,
    Message,
    Outcome,
    PlannedFile,
    PlannedSubmission,
    Sending,
    Status,
    StoredFile,
    utcnow,
)

log = logging.getLogger(__name__)


FOLDERS = {
    Status.needs_review: "Needs review",
    Status.not_submission: "Not submissions",
    Status.quarantined: "Quarantine",
}
KEYWORDS = {
    Status.filed: "$CCM-Filed",
    Status.needs_review: "$CCM-Review",
    Status.not_submission: "$CCM-NotSubmission",
    Status.quarantined: "$CCM-Quarantine",
}
OUTCOME_KEYWORDS = tuple(KEYWORDS.values())  # a message carries one of them at a time


def target_for(ctx: Context, status: Status, state_name: str | None = None) -> str:
    """'folder:Filed/France' or 'keyword:$CCM-Filed', as the settings ask."""
    if ctx.settings.mailbox_action.value == "keyword":
        return f"keyword:{KEYWORDS[status]}"
    if status is Status.filed:
        return f"folder:Filed/{state_name}"
    return f"folder:{FOLDERS[status]}"


@dataclass(frozen=True, slots=True)
class Processed:
    summary: str
    outbox_ids: tuple[int, ...] = ()  # acknowledgements to send now
    status: str = ""  # the outcome; '' when this call decided nothing
    references: tuple[str, ...] = ()  # of the submissions filed
    sending: tuple[Sending, ...] = ()  # acknowledgements claimed for this process (claim_acks)


@about_message  # its log lines carry message_id (and reference, once filed)
def process_message(
    ctx: Context,
    message_id: int,
    *,
    now: datetime | None = None,
    hold_acks: str = "",
    claim_acks: bool = False,
) -> Processed:
    """Process one message once: claim it, decide, file, queue acknowledgements, commit.

    ``hold_acks``: a reason to record every acknowledgement as suppressed instead (old mail
    imported by ``ccm-intake backfill``). ``claim_acks``: the acknowledgements are claimed
    for sending by this process in the same commit (``Processed.sending``)."""
    now = now or utcnow()
    row = ctx.db.claim_message(message_id, now, stale=timedelta(seconds=ctx.settings.claim_stale))
    if row is None:
        return Processed(f"message {message_id}: already processed or being processed")
    try:
        raw = ctx.archive.read(row.raw_path)
    except OSError as exc:
        # The bytes were committed before the row: this is a damaged archive, not bad mail.
        ctx.db.release_message(message_id)
        raise RuntimeError(f"message {message_id}: archive file unreadable: {exc}") from exc
    analysis: Analysis | None = None
    try:
        analysis = analyse_message(
            ctx.settings, ctx.registry, ctx.directory, raw, received=row.internaldate.date()
        )
    except UnparseableMessage as exc:
        outcome = _quarantine(ctx, f"unreadable message: {exc}")
    except OverLimit as exc:
        outcome = _quarantine(ctx, str(exc))
    except Exception as exc:  # the one per-message bulkhead: bad input never stops the worker
        log.exception("message %s: analysis failed", message_id)
        outcome = _quarantine(ctx, f"analysis failed: {type(exc).__name__}: {exc}")
    else:
        outcome = plan(ctx, analysis, raw, raw_sha256=row.sha256)
    done = _finish(
        ctx,
        row,
        analysis,
        outcome,
        now,
        give_back=Status.received,
        hold=hold_acks,
        claim=claim_acks,
    )
    bounce = analysis.automatic if analysis is not None else None
    if bounce is not None and bounce.kind == "bounce" and bounce.permanent:
        # Reported in the digest; reminders skip the address until someone fixes it.
        ctx.db.mark_contacts_failing(bounce.failed_recipients, bounce.reason, now)
    return done


def process_and_acknowledge(ctx: Context, message_id: int) -> Processed:
    """``process_message``, then its acknowledgements sent at once from this process (over
    its kept SMTP connection): a mission hears back as soon as its mail is filed, and a backlog
    queues no task per acknowledgement. One that cannot go now stays in the outbox, where the
    beat's outbox run finds it, at once or, if this process could not even record why,
    once its claim is stale."""
    done = process_message(ctx, message_id, claim_acks=True)
    for item in done.sending:
        try:
            mailer.send_claimed(ctx.db, ctx.settings, item)
        except Exception:  # the row waits in the outbox; the message is done
            log.exception("outbox %s: not sent now; the outbox run tries again", item.id)
    return done


class ReviewError(Exception):
    """A review decision that cannot be carried out; the message says why."""


# What `ccm-intake reprocess` may take up again: mail that was set aside or could not be read.
REOPENABLE = (Status.quarantined, Status.needs_review, Status.not_submission)


def reprocess(ctx: Context, message_id: int, *, now: datetime | None = None) -> Processed:
    """Process a quarantined, review or not-a-submission message again from its kept bytes,
    under today's settings (a raised limit, a mended registry). Filed mail is not: its
    corrections come as new versions."""
    if not ctx.db.reopen_message(message_id, allowed=REOPENABLE):
        raise ReviewError(
            f"message #{message_id} is not quarantined, in review or set aside: nothing to redo"
        )
    return process_message(ctx, message_id, now=now)


def resend_ack(ctx: Context, reference: str, *, now: datetime | None = None) -> int:
    """Queue the acknowledgement of ``reference`` once more (a mission says it never came);
    the outbox id. Raises ReviewError when there never was one."""
    now = now or utcnow()
    address = ctx.settings.service_address
    queued = ctx.db.queue_resend(
        reference, lambda original, key: renewed(original.raw, key, address, now), now
    )
    if queued is None:
        raise ReviewError(f"no acknowledgement was made for {reference!r}")
    return queued


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's decision on a message in the review queue."""

    state_iso3: str | None  # None: not a submission after all
    kinds: tuple[str, ...] = ()  # default: the kinds the analysis found ('other' if none)
    ack: bool = True
    note: str = ""


@about_message
def resolve_review(
    ctx: Context, message_id: int, decision: Decision, *, now: datetime | None = None
) -> Processed:
    """File a review item as decided — folder, acknowledgement and mailbox move included,
    as if it had been recognised — or set it aside as not a submission."""
    now = now or utcnow()
    if decision.state_iso3 is not None:
        try:
            ctx.registry.get(decision.state_iso3)
        except KeyError:
            raise ReviewError(
                f"unknown State {decision.state_iso3!r} (use ISO 3166 alpha-3)"
            ) from None
    unknown = [k for k in decision.kinds if k not in KIND_LABELS]
    if unknown:
        raise ReviewError(f"unknown kind {unknown[0]!r}: one of {', '.join(KIND_LABELS)}")
    claimed = ctx.db.claim_for_review(message_id, now)
    if claimed is None:
        raise ReviewError(f"message #{message_id} is not in the review queue or in quarantine")
    row, was = claimed
    try:
        raw = ctx.archive.read(row.raw_path)
    except OSError as exc:
        ctx.db.release_message(message_id, was)
        raise ReviewError(f"message #{message_id} cannot be read: {exc}") from exc
    analysis: Analysis | None = None
    unread = ""
    try:
        analysis = analyse_message(
            ctx.settings, ctx.registry, ctx.directory, raw, received=row.internaldate.date()
        )
    except Exception as exc:
        bad_input = isinstance(exc, (UnparseableMessage, OverLimit))
        if was is not Status.quarantined:
            ctx.db.release_message(message_id, was)
            if bad_input:
                raise ReviewError(f"message #{message_id} cannot be read: {exc}") from exc
            raise
        # Still unreadable: decided on what the person saw in it (their mail client).
        if not bad_input:
            log.exception("message %s: analysis failed again", message_id)
        unread = str(exc) if bad_input else f"analysis failed: {type(exc).__name__}: {exc}"
    who = f"decided in review{': ' + decision.note if decision.note else ''}"
    try:
        if analysis is None:
            outcome = _decided_unread(ctx, row, raw, decision, who, unread)
        elif decision.state_iso3 is None:
            outcome = Outcome(
                status=Status.not_submission,
                reason=f"not a submission ({who})",
                state_iso3=None,
                kind=analysis.kind.kind,
                language=analysis.language,
                analysis_json=json.dumps(analysis.summary(), ensure_ascii=False),
                target=target_for(ctx, Status.not_submission),
            )
        else:
            kinds = decision.kinds or analysis.kinds
            outcome = plan(
                ctx,
                analysis,
                raw,
                state_iso3=decision.state_iso3,
                kinds=kinds,
                ack=decision.ack and any(k in ACKNOWLEDGED_KINDS for k in kinds),
                reason=f"{', '.join(kinds)} from {decision.state_iso3} ({who})",
                raw_sha256=row.sha256,
            )
    except ReviewError:
        ctx.db.release_message(message_id, was)
        raise
    return _finish(ctx, row, analysis, outcome, now, give_back=was)


def _decided_unread(
    ctx: Context, row: Message, raw: bytes, decision: Decision, who: str, unread: str
) -> Outcome:
    """A person's decision on a quarantined message that still cannot be read: set aside, or
    filed as received (the mail alone, its attachments inside it). Nothing in it can be
    answered from, so it is filed only without an acknowledgement, and only under the kinds
    the person names."""
    if decision.state_iso3 is None:
        return Outcome(
            status=Status.not_submission,
            reason=f"not a submission ({who}; unread: {unread})",
            state_iso3=None,
            kind=None,
            language=None,
            analysis_json=json.dumps({"error": unread}),
            target=target_for(ctx, Status.not_submission),
        )
    if not decision.kinds:
        raise ReviewError(
            f"message #{row.id} still cannot be read ({unread}): say what it is with --kind"
        )
    if decision.ack:
        raise ReviewError(
            f"message #{row.id} still cannot be read ({unread}): it can be filed as received "
            "but not acknowledged from what it says; add --no-ack (and answer it yourself)"
        )
    state = ctx.registry.get(decision.state_iso3)
    received = row.internaldate.date()
    cycles = {
        "delegation": delegation_cycle(None, received, load_meetings()),
        "article7": article7_cycle(None, None, received),
    }
    original = [PlannedFile("original.eml", raw, row.sha256)]
    return Outcome(
        status=Status.filed,
        reason=f"{', '.join(decision.kinds)} from {state.iso3} ({who}; filed unread: {unread})",
        state_iso3=state.iso3,
        kind=decision.kinds[0],
        language=None,
        analysis_json=json.dumps({"error": unread}),
        target=target_for(ctx, Status.filed, state.name_en),
        submissions=tuple(
            PlannedSubmission(
                kind=kind,
                state_iso3=state.iso3,
                state_folder=f"{state.iso3} {state.name_en}",
                files=original,
                ack=False,
                cycle=cycles.get(kind, ""),
            )
            for kind in decision.kinds
        ),
    )


def _finish(
    ctx: Context,
    row: Message,
    analysis: Analysis | None,
    outcome: Outcome,
    now: datetime,
    *,
    give_back: Status,
    hold: str = "",
    claim: bool = False,
) -> Processed:
    def ack(
        reference: str, planned: PlannedSubmission, stored: list[StoredFile]
    ) -> Outgoing | None:
        return _compose_ack(ctx, row, analysis, reference, planned, stored, now)

    try:
        finished = ctx.db.finish_message(
            ctx.archive,
            row.id,
            outcome,
            ack,
            now=now,
            ack_limits=AckLimits(
                per_recipient_hour=ctx.settings.ack_rate_limit,
                per_recipient_day=ctx.settings.ack_rate_limit_day,
                all_per_hour=ctx.settings.ack_global_per_hour,
                max_age=timedelta(days=ctx.settings.ack_max_age_days)
                if ctx.settings.ack_max_age_days
                else None,
                hold=hold,
            ),
            original=(row.sha256, row.raw_path),
            claim_acks=claim,
        )
    except Exception:
        # Nothing was committed: give the message back at once rather than after the
        # claim goes stale.
        ctx.db.release_message(row.id, give_back)
        raise
    if finished.references:
        bind(reference=", ".join(finished.references))  # on this line and the task's own
    summary = f"message {row.id}: {outcome.status.value}"
    if outcome.state_iso3:
        summary += f" {outcome.state_iso3}"
    if outcome.submissions:
        summary += f" ({', '.join(p.kind for p in outcome.submissions)})"
    summary += f", {len(finished.outbox_ids)} ack(s) queued — {outcome.reason}"
    log.info(summary)
    return Processed(
        summary,
        finished.outbox_ids,
        outcome.status.value,
        finished.references,
        finished.sending,
    )


def _quarantine(ctx: Context, reason: str) -> Outcome:
    return Outcome(
        status=Status.quarantined,
        reason=reason,
        state_iso3=None,
        kind=None,
        language=None,
        analysis_json=json.dumps({"error": reason}),
        target=target_for(ctx, Status.quarantined),
    )


def plan(
    ctx: Context,
    analysis: Analysis,
    raw: bytes,
    *,
    state_iso3: str | None = None,
    kinds: tuple[str, ...] | None = None,
    ack: bool | None = None,
    reason: str | None = None,
    raw_sha256: str = "",
) -> Outcome:
    """Turn an analysis into what the store records and files.

    The keyword arguments carry a person's decision (review) over the analysis's own;
    ``raw_sha256`` is the SHA-256 of ``raw`` when it is known (the message's row).
    """
    decided = state_iso3 or (analysis.state.iso3 if analysis.outcome == FILE else None)
    if decided is not None:
        status = Status.filed
        state = ctx.registry.get(decided)
        files = filed_files(analysis, raw, message_limits(ctx.settings), raw_sha256=raw_sha256)
        answer = analysis.ack if ack is None else ack
        # The loop guard (store: one acknowledgement a day for a reply to our own mail) is
        # for what the service decides alone; a person who resolves a review has decided.
        msg = analysis.message
        replies_to = (*msg.references, msg.in_reply_to or "") if ack is None else ()
        submissions = tuple(
            PlannedSubmission(
                kind=kind,
                state_iso3=state.iso3,
                state_folder=f"{state.iso3} {state.name_en}",
                files=files,
                ack=answer and kind in ACKNOWLEDGED_KINDS,
                cycle=analysis.cycles.get(kind, ""),
                details_json=analysis.details_json(kind),
                replies_to=replies_to,
            )
            for kind in (kinds or analysis.kinds)
        )
        target = target_for(ctx, status, state.name_en)
    else:
        status = Status.needs_review if analysis.outcome == REVIEW else Status.not_submission
        submissions, target = (), target_for(ctx, status)
    return Outcome(
        status=status,
        reason=reason or analysis.reason,
        # A State is recorded only when it is certain; a review item names none.
        state_iso3=_recorded_state(status, decided, analysis),
        kind=(kinds or analysis.kinds)[0] if status is Status.filed else analysis.kind.kind,
        language=analysis.language,
        analysis_json=json.dumps(analysis.summary(), ensure_ascii=False),
        target=target,
        submissions=submissions,
    )


def filed_files(
    analysis: Analysis, raw: bytes, limits: Limits | None = None, *, raw_sha256: str = ""
) -> list[PlannedFile]:
    """What goes into a submission's folder: the mail as received, each attachment, and the
    files inside containers (zip, .msg, winmail.dat) so that the secretary can open them,
    as deep as the reading went under the same ``limits``."""
    attachments = analysis.message.attachments
    original = PlannedFile("original.eml", raw, raw_sha256) if raw_sha256 else None
    files = [original or PlannedFile.of("original.eml", raw)]
    files += [PlannedFile(a.safe_name, a.data, a.sha256) for a in attachments]
    seen = {a.sha256 for a in attachments}
    for container in attachments:
        for inner in unpack(container, limits=limits):
            if inner.sha256 not in seen:  # a forwarded mail's files are also at the top
                seen.add(inner.sha256)
                files.append(PlannedFile(inner.safe_name, inner.data, inner.sha256))
    return files


def _recorded_state(status: Status, decided: str | None, analysis: Analysis) -> str | None:
    if status is Status.filed:
        return decided
    # A not-submission may still say who sent it (an out-of-office from a mission).
    return analysis.state.iso3 if status is Status.not_submission else None


def _compose_ack(
    ctx: Context,
    row: Message,
    analysis: Analysis | None,
    reference: str,
    planned: PlannedSubmission,
    stored: list[StoredFile],
    now: datetime,
) -> Outgoing | None:
    if analysis is None:
        return None
    msg = analysis.message
    recipient = (msg.reply_to[0] if msg.reply_to else msg.from_addr).strip()
    if "@" not in recipient:
        return None
    state = ctx.registry.get(planned.state_iso3)
    lang = analysis.language
    if not analysis.language_sure:
        # Too little text to tell (a bare "see attached"): the State's preferred language.
        contacts = load_contacts()
        lang = next((c.language for c in contacts.get(state.iso3, ())), lang)
    return compose_ack(
        key=f"ack:{reference}",
        lang=lang,
        reference=reference,
        kind=planned.kind,
        state_name=state.name(lang),
        received=row.internaldate,
        files=[ReceivedFile(f.name, f.sha256, f.size) for f in stored if f.name != "original.eml"],
        recipient=recipient,
        original_subject=msg.subject,
        original_message_id=msg.message_id,
        original_references=msg.references,
        service_address=ctx.settings.service_address,
        service_name=ctx.settings.service_name,
        now=now,
        deadline=deadline_for(ctx, planned.kind, planned.cycle, state),
    )


def deadline_for(ctx: Context, kind: str, cycle: str, state: State) -> date | None:
    """The deadline of the obligation this submission meets, from the calendar."""
    for obligation in load_calendar(ctx.settings.calendar_file).obligations:
        if obligation.submission == (kind, cycle):
            # A delegation from an invited observer has the meeting's date, owed or not.
            return obligation.due_for(state) or (obligation.due if kind == "delegation" else None)
    return None
