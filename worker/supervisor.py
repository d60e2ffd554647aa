"""Keep the Celery worker running: it runs in a child process, started again if it dies.

Celery 5.7 with kombu 5.7 and Redis gives up when the broker restarts while it holds
unacknowledged tasks — which a worker with ``acks_late`` always does: it closes the lost
connection twice, then hands tasks back or acknowledges them through a transport already torn
down (``AttributeError: 'NoneType' object has no attribute 'hostname'`` / ``'client'``),
logs "Unrecoverable error" and exits. tests/faults/test_broker_wipe.py found it. Redis holds
no truth here (DESIGN §6), so a worker started again loses nothing: the poll re-queues what
was kept but not finished, the outbox sweep sends what is due, and claims of the dead worker
go stale after ``CCM_CLAIM_STALE``. docker-compose restarts a container whose process exits;
this does the same for ``ccm-intake run`` wherever it runs, and much sooner.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

RESTART_FIRST = 1.0  # seconds before the first restart
RESTART_MAX = 60.0  # the delay doubles for a worker that keeps dying, up to this
HEALTHY_AFTER = 60.0  # a worker that ran this long before it died is restarted at once again
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _die_with(parent: int) -> None:
    """Linux: have the kernel send SIGTERM (a warm shutdown) if the supervisor dies, so that a
    worker never runs on unsupervised after its ``ccm-intake run`` was killed."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def _run_child(start: Callable[[], object], parent: int) -> int:
    for signum in _FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    # A process group of its own: when the worker dies, what it leaves (its embedded beat
    # lives on after a SIGKILL of Celery's main process) can be ended with it.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _die_with(parent)
    try:
        start()
    except SystemExit as exc:  # how Celery's command line ends
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:  # noqa: BLE001 - the child's last word, then its exit status says it
        traceback.print_exc()
        return 1
    return 0


def supervise(start: Callable[[], object]) -> int:
    """Run ``start()`` in a forked child until it ends on request; returns its exit status.

    SIGTERM, SIGINT and SIGQUIT are passed on to the child (Celery's warm and cold shutdown)
    and end the supervision. A child that ends without being asked to — whatever its status:
    a service is not done while nobody stopped it — is started again, after a delay that
    doubles while it keeps dying young.
    """
    stopping = threading.Event()
    child = 0
    received: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stopping.set()
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    delay, supervisor = RESTART_FIRST, os.getpid()
    while True:
        began = time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:  # pragma: no cover - the child leaves through os._exit
            code = _run_child(start, supervisor)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(child, 0)
        with contextlib.suppress(OSError):  # whatever the dead worker left running
            os.killpg(child, signal.SIGKILL)
        child = 0
        code = os.waitstatus_to_exitcode(status)
        if stopping.is_set():
            asked = ", ".join(signal.Signals(n).name for n in received) or "nothing"
            log.info("worker ended with status %s (asked to stop by: %s)", code, asked)
            return code if code >= 0 else 128 - code  # killed by a signal: 128 + its number
        if time.monotonic() - began >= HEALTHY_AFTER:
            delay = RESTART_FIRST
        how = f"exit status {code}" if code >= 0 else f"signal {-code}"
        log.error("worker stopped on its own (%s); starting it again in %.0f s", how, delay)
        if stopping.wait(delay):
            return code if code >= 0 else 128 - code
        delay = min(delay * 2, RESTART_MAX)
