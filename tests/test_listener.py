"""Push intake: IDLE on a real Dovecot notices new mail, and survives the server going away."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from config.settings import load_settings
from tests.app import append, wait_until
from worker.listener import ListenerState, listen
from worker.samples import france_delegation


@pytest.fixture
def listening(
    make_env: Any, sqlite_url: str
) -> Iterator[tuple[list[float], ListenerState, threading.Event]]:
    settings = load_settings(make_env(sqlite_url))
    news: list[float] = []
    state, stop = ListenerState(), threading.Event()
    thread = threading.Thread(
        target=listen,
        args=(settings, lambda: news.append(1.0), stop),
        kwargs={"idle_slice": 5.0, "state": state},
        daemon=True,
    )
    thread.start()
    try:
        wait_until(lambda: state.connections == 1 and news, 20, "the listener to connect")
        yield news, state, stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the listener did not stop"


def test_new_mail_triggers_a_poll_while_idle(
    listening: tuple[list[float], ListenerState, threading.Event],
    dovecot: Any,
    account: tuple[str, str],
) -> None:
    news, state, _ = listening
    assert state.idle is True
    before = len(news)
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    wait_until(lambda: len(news) > before, 20, "a notification")
    assert state.notifications >= 1


def test_it_reconnects_after_the_server_restarts(
    listening: tuple[list[float], ListenerState, threading.Event],
    dovecot: Any,
    account: tuple[str, str],
) -> None:
    news, state, _ = listening
    dovecot.stop()
    try:
        wait_until(lambda: state.failures >= 1, 30, "the listener to notice")
    finally:
        dovecot.start()
    wait_until(lambda: state.connections >= 2, 60, "a new connection")
    before = len(news)
    append(dovecot, *account, france_delegation(datetime.now(UTC)).raw)
    wait_until(lambda: len(news) > before, 20, "a notification after the restart")
