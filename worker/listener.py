"""Push intake: IMAP IDLE on the inbox, and a poll the moment mail arrives.

The poll it triggers is the same idempotent poll the beat runs, so a lost notification costs
only latency: the beat poll stays as the safety net. IDLE is re-issued every few minutes
(RFC 2177 asks for less than 29), a broken connection is re-opened with backoff, and a
server without IDLE leaves the work to the beat poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from config.settings import Settings
from worker.intake import Opener
from worker.mailbox import MailboxError, open_inbox

log = logging.getLogger(__name__)

IDLE_SLICE = 240.0  # seconds: one IDLE, then the next (well under the 29 minutes of RFC 2177)
BACKOFF_MAX = 300.0


@dataclass
class ListenerState:
    """What the listener has done, for its log and its tests."""

    connections: int = 0
    notifications: int = 0
    failures: int = 0
    idle: bool | None = None  # whether the server offers IDLE, once known


def listen(
    settings: Settings,
    on_news: Callable[[], None],
    stop: threading.Event,
    *,
    opener: Opener = open_inbox,
    idle_slice: float = IDLE_SLICE,
    state: ListenerState | None = None,
) -> ListenerState:
    """Watch the inbox until ``stop`` is set; call ``on_news`` when mail may have arrived."""
    state = state or ListenerState()
    backoff = 1.0
    while not stop.is_set():
        try:
            with opener(settings) as inbox:
                inbox.select(settings.imap_folder)
                state.connections += 1
                state.idle = inbox.supports_idle
                if not state.idle:
                    log.warning("listen: the server offers no IDLE; the beat poll does the work")
                    stop.wait(BACKOFF_MAX)
                    continue
                backoff = 1.0
                on_news()  # whatever arrived while we were not listening
                while not stop.is_set():
                    if inbox.wait_for_news(idle_slice):
                        state.notifications += 1
                        on_news()
        except MailboxError as exc:
            state.failures += 1
            log.warning("listen: %s; reconnecting in %.0f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
    return state
