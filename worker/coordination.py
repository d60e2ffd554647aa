"""Coordination through Redis: a lock per mailbox and a backoff after failures.

Redis holds no truth: if it loses these keys, at worst two polls overlap (the database's
unique keys make that harmless) or a failing server is tried a little sooner.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

BACKOFF_MAX = 900.0  # seconds: a server down for hours is still tried every 15 minutes
# The mailbox lock is a lease: LOCK_TIMEOUT seconds, renewed every third of that while its
# holder works. A poller killed with -9 (or cut off from Redis) stops renewing, and the mailbox
# is free again within LOCK_TIMEOUT; a fixed 600 s lock kept every poll, mailbox action and
# re-queue of a killed worker's messages waiting ten minutes (found by tests/faults).
LOCK_TIMEOUT = 30  # seconds


class PollGuard:
    def __init__(self, client: redis.Redis[bytes], mailbox_key: str) -> None:
        self._redis = client
        self._lock_key = f"ccm:lock:mailbox:{mailbox_key}"
        self._failures_key = f"ccm:poll:failures:{mailbox_key}"
        self._backoff_key = f"ccm:poll:backoff:{mailbox_key}"

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Yields True when this process holds the mailbox, False when another one does."""
        # thread_local=False: the token must be seen by the renewing thread too.
        lock = self._redis.lock(
            self._lock_key, timeout=LOCK_TIMEOUT, blocking=False, thread_local=False
        )
        acquired = bool(lock.acquire(blocking=False))
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lock, done), daemon=True)
        if acquired:
            renewer.start()
        try:
            yield acquired
        finally:
            done.set()
            if acquired:
                renewer.join()
                # If it expired while we worked, there is nothing to give back.
                with contextlib.suppress(redis.exceptions.LockError):
                    lock.release()

    @staticmethod
    def _renew(lock: redis.lock.Lock, done: threading.Event) -> None:
        """Keep the lease while the holder works; give up once it is lost (expired, wiped)."""
        while not done.wait(LOCK_TIMEOUT / 3):
            try:
                lock.reacquire()  # a full LOCK_TIMEOUT again, only if the lock is still ours
            except redis.exceptions.RedisError:  # LockError included
                return

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
