"""The golden corpus (tests/golden/build.py): the service decides as a careful clerk would.

One test per mail, named after the case; a case the code still gets wrong is a strict xfail
with its reason, so fixing it shows up as a failure asking to remove the mark. Whatever the
marks say, no mail may be filed under a State other than the clerk's.
"""

from __future__ import annotations

import functools
from collections import Counter

import pytest

from config.registry import load_directory, load_registry
from parsers.analysis import analyse
from tests.golden.build import (
    AUTOMATIC,
    SUBMISSIONS,
    Case,
    Decision,
    cases,
    confidently_wrong,
    expected,
    observed,
)

CASES = cases()
OWN = ("ccm@unog.ch",)


@functools.cache
def decide(name: str) -> Decision:
    """What ``ccm-intake classify`` would print for the case, as (state, kind, ack, review)."""
    case = next(c for c in CASES if c.name == name)
    analysis = analyse(
        case.raw,
        registry=load_registry(),
        directory=load_directory(),
        own_addresses=OWN,
        authserv_ids=case.authserv,
    )
    return observed(analysis.summary())


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.reason)] if case.xfail else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_the_service_decides_as_a_careful_clerk(case: Case) -> None:
    assert decide(case.name) == expected(case)


def test_no_mail_is_filed_under_a_wrong_state() -> None:
    """The worst error: a confident State that is not the sender's, xfail or not."""
    wrong = [
        f"{c.name}: filed under {decide(c.name)[0]}, the clerk says {c.state}"
        for c in CASES
        if confidently_wrong(c, decide(c.name))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_corpus_covers_what_the_issue_asks() -> None:
    kinds = Counter(c.kind for c in CASES)
    langs = Counter(c.lang for c in CASES)
    categories = Counter(c.category for c in CASES)
    assert len(CASES) >= 80
    assert all(langs[lang] >= 15 for lang in ("en", "fr", "es")), langs
    assert all(kinds[k] >= 3 for k in AUTOMATIC), kinds
    assert all(kinds[k] >= 10 for k in ("delegation", "article7")), kinds
    assert kinds["article7+delegation"] >= 1 and kinds["other"] >= 5, kinds
    assert categories["trap"] >= 15 and categories["capital"] >= 3, categories
    assert all(
        c.ack == (c.state is not None and c.kind in SUBMISSIONS and not c.review) for c in CASES
    )
    assert len({c.state for c in CASES if c.state}) >= 40
