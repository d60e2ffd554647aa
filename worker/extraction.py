"""Reading a message's attachments in a child process, with a time limit and a memory cap.

A hostile PDF can send pypdf into a loop or make PDFium allocate gigabytes; an OCR run can
take minutes. So the readers of ``parsers.attachments`` run in a forked child: the child caps
its own address space (``RLIMIT_AS``), leads a process group of its own (so tesseract, antiword
and catdoc go with it), and sends each attachment's result to the parent over a pipe as soon
as it is done. The parent waits until the deadline, then kills the whole group.

``os.fork`` and ``os.pipe`` are used directly, not ``multiprocessing``: Celery's prefork pool
runs tasks in daemonic processes, which ``multiprocessing`` does not allow to have children.
Results travel as JSON, not pickle: the child has just parsed hostile bytes, and the parent
should not run whatever a compromised child might send it.

``extract_isolated`` never raises: every attachment gets an :class:`Extraction`, with the
reason (timed out, out of memory, died) when its reader could not finish. The attachments done
before a time-out keep their results.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import struct
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import NoReturn, Protocol

from parsers.attachments import Extraction, iter_extractions
from parsers.limits import Limits as ReaderLimits
from parsers.limits import over_limit
from parsers.message import ParsedMessage

_HEADER = struct.Struct("!cQ")  # frame kind, payload length
_RESULT, _DONE, _NO_MEMORY, _FAILED = b"X", b"D", b"M", b"F"
_EXIT_NO_MEMORY, _EXIT_FAILED = 3, 70
_MAX_FRAME = 256 * 1024 * 1024  # one attachment's result; 200 000 characters is ~1.2 MB
# Signals whose handlers the child must not inherit from a Celery worker or a test runner.
_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for reading one message.

    ``memory_mb`` is the child's whole address space (``RLIMIT_AS``), the part inherited from
    the worker included (a Celery worker is some 150 MB of it); tesseract, antiword and catdoc
    get the same cap each.
    """

    seconds: float = 60.0  # the whole message
    memory_mb: int = 1024
    ocr: bool = True
    readers: ReaderLimits = field(default_factory=ReaderLimits)  # pages, zips, OCR time

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"Limits.seconds must be positive, not {self.seconds}")
        if self.memory_mb < 64:
            raise ValueError(f"Limits.memory_mb must be at least 64, not {self.memory_mb}")


class Target(Protocol):
    """What the child runs: ``parsers.attachments.iter_extractions`` (tests pass others)."""

    def __call__(
        self, msg: ParsedMessage, *, ocr: bool, limits: ReaderLimits
    ) -> Iterable[Extraction]: ...


# --------------------------------------------------------------------------- the wire


def _encode(extraction: Extraction) -> bytes:
    # ensure_ascii keeps any lone surrogate a reader produced intact through the pipe.
    return json.dumps(asdict(extraction), separators=(",", ":")).encode("ascii")


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"bad {what}")
    return value


def _decode(value: object, depth: int = 0) -> Extraction:
    """An Extraction from the child's JSON, checked field by field."""
    if not isinstance(value, dict) or depth > 20:
        raise ValueError("not an extraction")
    name, method, text, error = (value.get(k) for k in ("name", "method", "text", "error"))
    ocr, tables, parts = value.get("ocr"), value.get("tables"), value.get("parts")
    if not (isinstance(name, str) and isinstance(method, str) and isinstance(text, str)):
        raise ValueError("bad name, method or text")
    if not (error is None or isinstance(error, str)) or not isinstance(ocr, bool):
        raise ValueError("bad error or ocr")
    if not isinstance(tables, list) or not isinstance(parts, list):
        raise ValueError("bad tables or parts")
    checked_tables = tuple(
        tuple(tuple(_strings(row, "row")) for row in table)
        for table in tables
        if isinstance(table, list)
    )
    if len(checked_tables) != len(tables):
        raise ValueError("bad table")
    return Extraction(
        name=name,
        method=method,
        text=text,
        error=error,
        tables=checked_tables,
        ocr=ocr,
        parts=tuple(_decode(part, depth + 1) for part in parts),
    )


def _send(fd: int, kind: bytes, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(kind, len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


# --------------------------------------------------------------------------- the child


def _child(fd: int, msg: ParsedMessage, limits: Limits, target: Target) -> NoReturn:
    """Run in the forked child: never returns, never runs the parent's clean-up code."""
    code = _EXIT_FAILED
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        for signum in _RESET_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        cap = limits.memory_mb * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        for extraction in target(msg, ocr=limits.ocr, limits=limits.readers):
            _send(fd, _RESULT, _encode(extraction))
        _send(fd, _DONE, b"")
        code = 0
    except MemoryError:
        code = _EXIT_NO_MEMORY
        with contextlib.suppress(BaseException):
            _send(fd, _NO_MEMORY, b"")
    except BaseException as exc:  # noqa: BLE001 - the child's bulkhead: report, then exit
        with contextlib.suppress(BaseException):
            _send(fd, _FAILED, f"{type(exc).__name__}: {exc}"[:300].encode("utf-8", "replace"))
    finally:
        os._exit(code)


# --------------------------------------------------------------------------- the parent


@dataclass(slots=True)
class _Outcome:
    results: list[Extraction]
    ending: str = "eof"  # done | timeout | memory | failed | eof | garbled
    detail: str = ""


def _collect(fd: int, deadline: float) -> _Outcome:
    """Read frames until the child says it is done, the pipe closes, or the deadline passes."""
    outcome = _Outcome(results=[])
    buffer = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            outcome.ending = "timeout"
            return outcome
        if not poller.poll(max(1, int(left * 1000))):
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return outcome  # the child is gone without saying why: its exit status will
        buffer += chunk
        while len(buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(buffer)
            if length > _MAX_FRAME:
                outcome.ending, outcome.detail = "garbled", "a result too large"
                return outcome
            if len(buffer) < _HEADER.size + length:
                break
            payload = bytes(buffer[_HEADER.size : _HEADER.size + length])
            del buffer[: _HEADER.size + length]
            if kind == _RESULT:
                try:
                    outcome.results.append(_decode(json.loads(payload)))
                except (ValueError, RecursionError) as exc:
                    outcome.ending, outcome.detail = "garbled", str(exc)[:100]
                    return outcome
            elif kind == _DONE:
                outcome.ending = "done"
                return outcome
            elif kind == _NO_MEMORY:
                outcome.ending = "memory"
                return outcome
            elif kind == _FAILED:
                outcome.ending = "failed"
                outcome.detail = payload.decode("utf-8", "replace")
                return outcome
            else:
                outcome.ending, outcome.detail = "garbled", f"frame kind {kind!r}"
                return outcome


def _kill_and_reap(pid: int) -> int | None:
    """SIGKILL the child's process group (tesseract included), then reap the child.

    The group is killed before the child is reaped: until then its number cannot be given to
    another process group. Returns the wait status, or None if someone else reaped it.
    """
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return status


def _await_exit(pid: int, deadline: float) -> None:
    """Let a child that closed its pipe finish exiting (until the deadline), without reaping
    it (WNOWAIT): its status is read when it is reaped, after its group is killed."""
    while time.monotonic() < deadline:
        try:
            exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is not None:
            return
        time.sleep(0.002)


def _why_it_died(status: int | None) -> str:
    if status is None:
        return "extraction process died"
    if os.WIFSIGNALED(status):
        return f"extraction process died (signal {os.WTERMSIG(status)})"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
    if code == _EXIT_NO_MEMORY:
        return over_limit("extraction failed: out of memory")
    return f"extraction process died (exit {code})"


def _fill(msg: ParsedMessage, done: list[Extraction], error: str) -> tuple[Extraction, ...]:
    """The results the child sent, then ``error`` for every attachment it did not finish."""
    rest = msg.attachments[len(done) :]
    return (*done, *(Extraction(att.safe_name, "none", "", error) for att in rest))


def extract_isolated(
    msg: ParsedMessage, limits: Limits = Limits(), *, target: Target = iter_extractions
) -> tuple[Extraction, ...]:
    """``parsers.attachments.extract_all(msg)`` in a child process bounded by ``limits``.

    Never raises. Safe to call from a daemonic process (a Celery prefork worker).
    """
    if not msg.attachments and target is iter_extractions:
        return ()
    deadline = time.monotonic() + limits.seconds
    try:
        read_fd, write_fd = os.pipe()
    except OSError as exc:
        return _fill(msg, [], f"extraction could not start: {exc.strerror or exc}")
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return _fill(msg, [], f"extraction could not start: {exc.strerror or exc}")
    if pid == 0:  # the child
        try:
            os.close(read_fd)
            _child(write_fd, msg, limits, target)
        finally:
            os._exit(_EXIT_FAILED)
    os.close(write_fd)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also done by the child: whichever runs first
    try:
        outcome = _collect(read_fd, deadline)
        if outcome.ending == "eof":
            _await_exit(pid, deadline)
    except Exception as exc:  # noqa: BLE001 - the parent's bulkhead: never raise to the task
        outcome = _Outcome(results=[], ending="failed", detail=f"{type(exc).__name__}: {exc}")
    finally:
        os.close(read_fd)
        status = _kill_and_reap(pid)
    if outcome.ending == "done":
        return tuple(outcome.results)
    # Time and memory are limits like the readers' own: a message that needs more of either
    # is quarantined (parsers.limits), not half-filed.
    if outcome.ending == "timeout":
        return _fill(
            msg, outcome.results, over_limit(f"extraction timed out after {limits.seconds:g} s")
        )
    if outcome.ending == "memory":
        return _fill(
            msg,
            outcome.results,
            over_limit(f"extraction failed: out of memory (limit {limits.memory_mb} MB)"),
        )
    if outcome.ending == "failed":
        return _fill(msg, outcome.results, f"extraction failed: {outcome.detail}"[:300])
    if outcome.ending == "garbled":
        return _fill(
            msg, outcome.results, f"extraction failed: unreadable result ({outcome.detail})"
        )
    return _fill(msg, outcome.results, _why_it_died(status))
