"""The poll lock and the backoff, on a real Redis."""

from __future__ import annotations

from typing import Any

import redis

from worker.coordination import BACKOFF_MAX, PollGuard


def guard(redis_srv: Any, key: str) -> PollGuard:
    return PollGuard(redis.Redis.from_url(redis_srv.url), key)


def test_only_one_poll_holds_a_mailbox_at_a_time(redis_srv: Any) -> None:
    first, second = guard(redis_srv, "box-a"), guard(redis_srv, "box-a")
    with first.lock() as mine:
        assert mine
        with second.lock() as theirs:
            assert not theirs
        with guard(redis_srv, "box-b").lock() as other_mailbox:
            assert other_mailbox
    with second.lock() as now_free:
        assert now_free


def test_failures_double_the_wait_up_to_a_ceiling_and_success_resets_it(redis_srv: Any) -> None:
    g = guard(redis_srv, "box-backoff")
    g.succeeded()
    assert g.failed(60) == (1, 60)
    assert g.backing_off() == 0  # the first failure waits for the next beat only
    assert g.failed(60) == (2, 120)
    assert 110 < g.backing_off() <= 120
    for _ in range(10):
        failures, delay = g.failed(60)
    assert (failures, delay) == (12, BACKOFF_MAX)
    g.succeeded()
    assert g.backing_off() == 0
    assert g.failed(60) == (1, 60)


def test_a_broker_that_forgot_everything_forgets_the_backoff_too(redis_srv: Any) -> None:
    g = guard(redis_srv, "box-forget")
    g.failed(60)
    g.failed(60)
    redis_srv.restart()
    g = guard(redis_srv, "box-forget")
    assert g.backing_off() == 0
    with g.lock() as mine:
        assert mine
