"""Every public test mail through the whole pipeline: kept, decided, with a reason; no crash."""

from __future__ import annotations

import os
from collections import Counter
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


def test_every_corpus_mail_is_kept_and_ends_with_an_outcome_and_a_reason(tmp_path: Path) -> None:
    ctx = build_context(load_settings({"CCM_DATA_DIR": str(tmp_path)}))
    when = datetime(2017, 8, 14, tzinfo=UTC)
    ids: dict[int, str] = {}
    for uid, path in enumerate(corpus_files(), start=1):
        message_id, created = keep(ctx, path.read_bytes(), uid, when)
        if created:
            ids[message_id] = path.relative_to(CORPORA).as_posix()
            processing.process_message(ctx, message_id)
    outcomes: Counter[str] = Counter()
    problems = []
    for message in ctx.db.recent_messages(len(ids) + 10):
        outcomes[message.status] += 1
        if message.status not in FINAL or not message.reason:
            problems.append(f"{ids[message.id]}: {message.status} {message.reason!r}")
        if message.status == "filed":
            problems.append(
                f"{ids[message.id]}: filed under {message.state_iso3} ({message.reason})"
            )
    print(f"\n{len(ids)} corpus mails: {dict(outcomes)}")
    assert len(ids) > 500
    # None of these public test mails comes from a mission: filing one would be a wrong State.
    assert problems == []
