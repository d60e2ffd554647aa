"""Reading a message's attachments in a child process, with a time limit and a memory cap.

A hostile PDF can send pypdf into a loop or make PDFium allocate gigabytes; an OCR run can
take minutes. So the readers of ``parsers.attachments`` run in a child process, the *reader*:
it caps its own address space (``RLIMIT_AS``), leads a process group of its own (so tesseract,
antiword and catdoc go with it), and sends each attachment's result to the parent over a pipe
as soon as it is done. The parent waits until the deadline, then kills the whole group.

The reader is a new Python interpreter (``subprocess``, fork and exec), not a fork of the
worker: it starts with none of the worker's memory, so nothing it holds (settings, secrets,
connections, mail being processed) is within reach of a hostile file; it inherits only its two
channels and an environment without the worker's settings (``_reader_env``), and its memory
is its own instead of shared with, and counted twice for, the worker's. It imports its
libraries when it starts, not when the first message comes (``scripts/benchmark --only
steps`` prints what a start costs).

The reader is kept from one message to the next (one per worker process): starting one for
every message cost more than reading most messages' files. A reader that timed out, ran out of
memory, failed or died is replaced by a new one, as is one that has read ``READER_MESSAGES``
messages or grown by ``READER_GROWTH_MB`` (a large file read). What it has read before stays in
it until then; its answers are checked field by field either way.

The files go to the reader as framed bytes; results come back as JSON, not pickle: the child
has just parsed hostile bytes, and the parent should not run whatever a compromised child
might send it. ``multiprocessing`` is not used: Celery's prefork pool runs tasks in daemonic
processes, which ``multiprocessing`` does not allow to have children.

What the reader runs is named by a string, ``"module:function"`` (``DEFAULT_TARGET``; tests
name hostile stand-ins), which the new interpreter imports.

``extract_isolated`` never raises: every attachment gets an :class:`Extraction`, with the
reason (timed out, out of memory, died) when its reader could not finish. The attachments done
before a time-out keep their results.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from parsers.attachments import Extraction
from parsers.limits import Limits as ReaderLimits
from parsers.limits import over_limit
from parsers.message import Attachment, ParsedMessage

_HEADER = struct.Struct("!cQ")  # frame kind, payload length
_RESULT, _DONE, _NO_MEMORY, _FAILED = b"X", b"D", b"M", b"F"  # reader -> worker
_REQUEST, _FILE = b"Q", b"B"  # worker -> reader: a message's files, then their bytes
_PR_SET_PDEATHSIG = 1  # prctl(2)
READER_MESSAGES = 500  # messages one reader process reads before a fresh one replaces it
READER_GROWTH_MB = 64  # ... or once it has grown by this much (a large file read)
PIPE_BYTES = 1024 * 1024  # the request socket's send buffer: a typical file in one go
_EXIT_NO_MEMORY, _EXIT_FAILED = 3, 70
DEFAULT_TARGET = "parsers.attachments:iter_extractions"
# What the default target imports on first use, imported when its reader starts instead.
_PRELOAD = ("pypdf", "docx", "openpyxl")
# The environment a reader gets: what the readers and the programs they run (tesseract,
# antiword, catdoc) need, and nothing of the worker's settings or secrets.
_ENV_KEEP = ("PATH", "HOME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "TESSDATA_PREFIX")
_ENV_KEEP_PREFIXES = ("LC_",)
# The new interpreter's first words: take the worker's import path, then serve.
_BOOT = (
    "import json, sys; about = json.loads(sys.argv[1]); sys.path[:] = about['path']; "
    "from worker.extraction import serve; serve(about)"
)
_MAX_FRAME = 256 * 1024 * 1024  # one attachment's result; 200 000 characters is ~1.2 MB
# Signals whose handlers the child must not inherit from a Celery worker or a test runner.
_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for reading one message.

    ``memory_mb`` is the reader's whole address space (``RLIMIT_AS``), its interpreter and
    libraries included; tesseract, antiword and catdoc get the same cap each.
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


Target = Callable[..., Iterable[Extraction]]  # called (msg, *, ocr=..., limits=...)


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


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from the request socket ``fd``; None at its end before all came. One
    ``recv`` waits for all of them, into the bytes object it returns: a 25 MB file is held
    once, not once more in pieces."""
    channel = socket.socket(fileno=fd)
    try:
        chunks, left = [], size
        while left:
            chunk = channel.recv(left, socket.MSG_WAITALL)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        channel.detach()  # the descriptor stays open for the next frame
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_frame(fd: int) -> tuple[bytes, bytes] | None:
    head = _read_exactly(fd, _HEADER.size)
    if head is None:
        return None
    kind, length = _HEADER.unpack(head)
    payload = _read_exactly(fd, length)
    return None if payload is None else (kind, payload)


def _request(
    attachments: tuple[Attachment, ...], ocr: bool, readers: ReaderLimits
) -> Iterator[bytes | memoryview]:
    """One message's work for the reader: a JSON frame describing it, then each file's bytes
    (as pieces to write one after the other: the files are not copied into one buffer)."""
    about = {
        "ocr": ocr,
        "limits": asdict(readers),
        "files": [
            {
                "filename": a.filename,
                "safe_name": a.safe_name,
                "content_type": a.content_type,
                "sha256": a.sha256,
                "inline": a.inline,
            }
            for a in attachments
        ],
    }
    head = json.dumps(about, separators=(",", ":")).encode("utf-8", "surrogatepass")
    yield _HEADER.pack(_REQUEST, len(head)) + head
    for a in attachments:
        yield _HEADER.pack(_FILE, len(a.data))
        yield memoryview(a.data)


def _take_request(fd: int) -> tuple[ParsedMessage, bool, ReaderLimits] | None:
    """The next message to read (only its attachments are filled in), or None at the end."""
    frame = _read_frame(fd)
    if frame is None or frame[0] != _REQUEST:
        return None
    about = json.loads(frame[1].decode("utf-8", "surrogatepass"))
    files = []
    for meta in about["files"]:
        data = _read_frame(fd)
        if data is None or data[0] != _FILE:
            return None
        files.append(Attachment(data=data[1], **meta))
    msg = ParsedMessage(
        message_id=None, subject="", from_addr="", from_name="", reply_to=(), to=(), cc=(),
        date=None, in_reply_to=None, references=(), headers=(), text="",
        attachments=tuple(files), defects=(),
    )  # fmt: skip
    return msg, bool(about["ocr"]), ReaderLimits(**about["limits"])


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def _reader_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in _ENV_KEEP or name.startswith(_ENV_KEEP_PREFIXES)
    }


def _die_with(parent: int) -> None:
    """Have the kernel kill this reader when the worker process that started it dies, even
    by SIGKILL; if that already happened, exit now."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(_EXIT_FAILED)


def _resolve(name: str) -> Target:
    module, _, attribute = name.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    if not callable(target):
        raise TypeError(f"{name} is not callable")
    return target  # type: ignore[no-any-return]


def serve(about: dict[str, Any]) -> NoReturn:
    """The reader's main: serve messages until the request socket closes; never returns.

    ``about`` comes from the worker (``_Reader``): the descriptors of the two channels, the
    worker's process id, the memory cap, the target's name and when to retire."""
    requests, replies = int(about["requests"]), int(about["replies"])
    code = _EXIT_FAILED
    try:
        _die_with(int(about["parent"]))
        for signum in _RESET_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        cap = int(about["memory_mb"]) * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        target = _resolve(str(about["target"]))
        if about["target"] == DEFAULT_TARGET:
            for module in _PRELOAD:
                importlib.import_module(module)
        started_kb, served = _rss_kb(), 0
        while (work := _take_request(requests)) is not None:
            msg, ocr, readers = work
            for extraction in target(msg, ocr=ocr, limits=readers):
                _send(replies, _RESULT, _encode(extraction))
            del msg, work
            served += 1
            grown_mb = (_rss_kb() - started_kb) / 1024
            retire = served >= about["messages"] or grown_mb > about["growth_mb"]
            _send(replies, _DONE, b"retire" if retire else b"")
            if retire:
                break
        code = 0
    except MemoryError:
        code = _EXIT_NO_MEMORY
        with contextlib.suppress(BaseException):
            _send(replies, _NO_MEMORY, b"")
    except BaseException as exc:  # noqa: BLE001 - the reader's bulkhead: report, then exit
        with contextlib.suppress(BaseException):
            _send(replies, _FAILED, f"{type(exc).__name__}: {exc}"[:300].encode("utf-8", "replace"))
    finally:
        os._exit(code)


# --------------------------------------------------------------------------- the parent


@dataclass(slots=True)
class _Outcome:
    results: list[Extraction]
    ending: str = "eof"  # done | retire | timeout | memory | failed | eof | garbled
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
                outcome.ending = "retire" if payload == b"retire" else "done"
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


def _kill_and_reap(process: subprocess.Popen[bytes]) -> int | None:
    """SIGKILL the reader's process group (tesseract included), then reap the reader.

    The group is killed before the reader is reaped: until then its number cannot be given to
    another process group. Returns its return code (minus the signal that killed it), or None
    if someone else reaped it.
    """
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(process.pid, signal.SIGKILL)  # not Popen.kill: its poll() would reap it
    try:
        _, status = os.waitpid(process.pid, 0)
    except ChildProcessError:
        process.returncode = -1  # reaped elsewhere; Popen must not wait for it again
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode


def _await_exit(pid: int, deadline: float) -> None:
    """Let a reader that closed its pipe finish exiting (until the deadline), without reaping
    it (WNOWAIT): its status is read when it is reaped, after its group is killed."""
    while time.monotonic() < deadline:
        try:
            exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is not None:
            return
        time.sleep(0.002)


def _why_it_died(code: int | None) -> str:
    if code is None:
        return "extraction process died"
    if code < 0:
        return f"extraction process died (signal {-code})"
    if code == _EXIT_NO_MEMORY:
        return over_limit("extraction failed: out of memory")
    return f"extraction process died (exit {code})"


def _fill(msg: ParsedMessage, done: list[Extraction], error: str) -> tuple[Extraction, ...]:
    """The results the child sent, then ``error`` for every attachment it did not finish."""
    rest = msg.attachments[len(done) :]
    return (*done, *(Extraction(att.safe_name, "none", "", error) for att in rest))


class _Reader:
    """One reader process: started once, then fed message after message."""

    def __init__(self, limits: Limits, target: str) -> None:
        self.memory_mb, self.target, self.owner = limits.memory_mb, target, os.getpid()
        # Requests go over a socket, not a pipe: the reader can then take each file in one
        # recv (MSG_WAITALL), into one buffer.
        there, here = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            here.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIPE_BYTES)
        requests_read, self.requests = there.detach(), here.detach()
        try:
            self.replies, replies_write = os.pipe()
        except OSError:
            os.close(requests_read)
            os.close(self.requests)
            raise
        about = {
            "path": sys.path,
            "requests": requests_read,
            "replies": replies_write,
            "parent": self.owner,
            "memory_mb": limits.memory_mb,
            "target": target,
            "messages": READER_MESSAGES,
            "growth_mb": READER_GROWTH_MB,
        }
        try:
            # close_fds (the default): the reader gets its two channels and nothing else of
            # the worker's (Redis, IMAP, the database). -I: no PYTHON* variables, no user site.
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
                [sys.executable, "-I", "-c", _BOOT, json.dumps(about)],
                pass_fds=(requests_read, replies_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=_reader_env(),
                process_group=0,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (self.requests, self.replies):
                os.close(fd)
            raise OSError(f"the reader could not be started: {exc}") from exc
        finally:
            os.close(requests_read)
            os.close(replies_write)
        self.pid = self.process.pid

    def serves(self, limits: Limits, target: str) -> bool:
        return (
            self.owner == os.getpid()
            and self.memory_mb == limits.memory_mb
            and self.target == target
        )

    def read(self, msg: ParsedMessage, limits: Limits, deadline: float) -> _Outcome:
        try:
            for piece in _request(msg.attachments, limits.ocr, limits.readers):
                _write_all(self.requests, piece)
        except OSError as exc:  # the reader died while it waited (EPIPE)
            return _Outcome(results=[], ending="gone", detail=str(exc))
        outcome = _collect(self.replies, deadline)
        if outcome.ending == "eof":
            _await_exit(self.pid, deadline)
        return outcome

    def stop(self) -> int | None:
        """Close the channels, kill the reader's group, reap it; its return code."""
        for fd in (self.requests, self.replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.owner != os.getpid():
            self.process.returncode = -1  # a forked copy of the worker: not its child
            return None
        return _kill_and_reap(self.process)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_reader: _Reader | None = None
_reader_lock = threading.Lock()


def close_reader() -> None:
    """Stop this process's reader, if it has one (at exit, and for tests)."""
    global _reader
    with _reader_lock:
        reader, _reader = _reader, None
    if reader is not None:
        reader.stop()


atexit.register(close_reader)


def reader_pid() -> int | None:
    """The PID of this process's kept reader, if it has one (for measurements and tests)."""
    reader = _reader
    return reader.pid if reader is not None else None


def start_reader(limits: Limits = Limits(), *, target: str = DEFAULT_TARGET) -> None:
    """Have a reader ready for the next message, started now. Called when the worker process
    starts and after each task, so that the reader's start (the interpreter and the readers'
    libraries: ``scripts/benchmark --only steps``) is not in a message's way."""
    global _reader
    if not _reader_lock.acquire(blocking=False):
        return
    try:
        if _reader is not None and _reader.serves(limits, target):
            return
        if _reader is not None:
            _reader.stop()
            _reader = None
        with contextlib.suppress(OSError):
            _reader = _Reader(limits, target)
    finally:
        _reader_lock.release()


def extract_isolated(
    msg: ParsedMessage, limits: Limits = Limits(), *, target: str = DEFAULT_TARGET
) -> tuple[Extraction, ...]:
    """``parsers.attachments.extract_all(msg)`` in a child process bounded by ``limits``.

    The reader process is kept for the next message: a process for every message was most of
    the cost of reading its attachments (docs/PERFORMANCE.md). It is
    replaced after it times out, runs out of memory, fails or dies, after
    ``READER_MESSAGES`` messages, and when it has grown by ``READER_GROWTH_MB``. A thread
    that finds it in use gets a reader of its own for one message.

    Never raises. Safe to call from a daemonic process (a Celery prefork worker).
    """
    global _reader
    if not msg.attachments and target == DEFAULT_TARGET:
        return ()
    deadline = time.monotonic() + limits.seconds
    shared = _reader_lock.acquire(blocking=False)
    reader = None
    try:
        if shared:
            reader, _reader = _reader, None
            if reader is not None and not reader.serves(limits, target):
                reader.stop()
                reader = None
        for attempt in (1, 2):
            if reader is None:
                try:
                    reader = _Reader(limits, target)
                except OSError as exc:
                    return _fill(msg, [], f"extraction could not start: {exc.strerror or exc}")
            try:
                outcome = reader.read(msg, limits, deadline)
            except Exception as exc:  # noqa: BLE001 - the parent's bulkhead: never raise
                outcome = _Outcome(
                    results=[], ending="failed", detail=f"{type(exc).__name__}: {exc}"
                )
            if outcome.ending == "gone" and attempt == 1:
                reader.stop()  # it died between two messages: once more with a new one
                reader = None
                continue
            break
        if outcome.ending == "done" and shared:
            _reader, reader = reader, None  # kept for the next message
            return tuple(outcome.results)
        status = reader.stop() if reader is not None else None
        reader = None
    finally:
        if reader is not None:
            reader.stop()
        if shared:
            _reader_lock.release()
    if outcome.ending in ("done", "retire"):
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
