"""Every public test mail through the whole pipeline: kept, decided, with a reason; no crash."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import load_settings
from tests.app import keep
from worker import processing
from worker.runtime import build_context
from worker.store import FINAL

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
NOT_MAIL = frozenset({".tsv", ".csv", ".md"})


def corpus_files() -> list[Path]:
    if not CORPORA.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no corpora at {CORPORA}")
        pytest.skip(f"no corpora at {CORPORA}")
    return sorted(p for p in CORPORA.rglob("*") if p.is_file() and p.suffix not in NOT_MAIL)


def breakdown(files: int, mails: int, outcomes: Counter[str], quarantined: Counter[str]) -> str:
    """One line for the run's summary: how many went through, and how each ended."""
    crashes = sum(n for why, n in quarantined.items() if why.startswith("analysis failed"))
    why = ", ".join(f"{n} {reason}" for reason, n in quarantined.most_common())
    return (
        f"corpus: {files} files ({mails} distinct mails) through the pipeline: "
        f"{crashes} crashes, {outcomes['not_submission']} not a submission, "
        f"{outcomes['needs_review']} to review, {outcomes['quarantined']} quarantined"
        + (f" ({why})" if why else "")
        + f", {outcomes['filed']} filed"
    )


def test_every_corpus_mail_is_kept_and_ends_with_an_outcome_and_a_reason(
    tmp_path: Path, report: Callable[[str], None]
) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    when = datetime(2017, 8, 14, tzinfo=UTC)
    ids: dict[int, str] = {}
    files = corpus_files()
    for uid, path in enumerate(files, start=1):
        message_id, created = keep(ctx, path.read_bytes(), uid, when)
        if created:
            ids[message_id] = path.relative_to(CORPORA).as_posix()
            processing.process_message(ctx, message_id)
    outcomes: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()  # by reason
    problems = []
    for message in ctx.db.recent_messages(len(ids) + 10):
        outcomes[message.status] += 1
        if message.status == "quarantined":
            quarantined[message.reason] += 1
        if message.reason.startswith("analysis failed"):  # the bulkhead caught a crash
            problems.append(f"{ids[message.id]}: {message.reason}")
        if message.status not in FINAL or not message.reason:
            problems.append(f"{ids[message.id]}: {message.status} {message.reason!r}")
        if message.status == "filed":
            problems.append(
                f"{ids[message.id]}: filed under {message.state_iso3} ({message.reason})"
            )
    report(breakdown(len(files), len(ids), outcomes, quarantined))
    assert len(ids) > 500
    # None of these public test mails comes from a mission: filing one would be a wrong State.
    assert problems == []
