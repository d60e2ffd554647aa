"""Coordination through Redis: a lock per mailbox and a backoff after failures.

Redis holds no truth: if it loses these keys, at worst two polls overlap (the database's
unique keys make that harmless) or a failing server is tried a little sooner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

import redis

BACKOFF_MAX = 900.0  # seconds: a server down for hours is still tried every 15 minutes
LOCK_TIMEOUT = 600  # seconds: a poll that dies holding the lock frees it by then


class PollGuard:
    def __init__(self, client: redis.Redis[bytes], mailbox_key: str) -> None:
        self._redis = client
        self._lock_key = f"ccm:lock:mailbox:{mailbox_key}"
        self._failures_key = f"ccm:poll:failures:{mailbox_key}"
        self._backoff_key = f"ccm:poll:backoff:{mailbox_key}"

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Yields True when this process holds the mailbox, False when another one does."""
        lock = self._redis.lock(self._lock_key, timeout=LOCK_TIMEOUT, blocking=False)
        acquired = bool(lock.acquire(blocking=False))
        try:
            yield acquired
        finally:
            if acquired:
                # If it expired while we worked, there is nothing to give back.
                with contextlib.suppress(redis.exceptions.LockError):
                    lock.release()

    def backing_off(self) -> float:
        """Seconds left before the next attempt is due (0 when it is due now)."""
        ttl = self._redis.pttl(self._backoff_key)
        return max(float(ttl), 0.0) / 1000 if ttl and ttl > 0 else 0.0

    def failed(self, interval: float) -> tuple[int, float]:
        """Count a failure; returns (consecutive failures, seconds until the next try)."""
        failures = int(self._redis.incr(self._failures_key))
        self._redis.expire(self._failures_key, int(BACKOFF_MAX * 4))
        delay = min(interval * 2 ** (failures - 1), BACKOFF_MAX)
        if failures > 1:
            self._redis.set(self._backoff_key, 1, px=int(delay * 1000))
        return failures, delay if failures > 1 else interval

    def succeeded(self) -> None:
        self._redis.delete(self._failures_key, self._backoff_key)
