"""Hostile stand-ins for the attachment readers, run by worker/extraction.py's reader process.

The reader is a new interpreter that imports what it runs by name, so these live in a module
of their own: ``extract_isolated(msg, target=name("sleeps"))``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from parsers.attachments import Extraction
from parsers.limits import Limits
from parsers.message import ParsedMessage


def name(function: str) -> str:
    """The name ``extract_isolated`` takes for one of the functions below."""
    return f"{__name__}:{function}"


def record_of(worker: int) -> Path:
    """Where ``starts_a_program_then_hangs`` writes its own and its program's pids, for the
    test process ``worker`` that started the reader."""
    return Path(tempfile.gettempdir()) / f"ccm-test-reader-{worker}"


def sleeps(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterable[Extraction]:
    time.sleep(600)
    return ()


def first_then_sleeps(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterator[Extraction]:
    yield Extraction(msg.attachments[0].safe_name, "text", "first one", None)
    time.sleep(600)


def allocates_2_gb(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterable[Extraction]:
    hog = bytearray(2 * 1024 * 1024 * 1024)
    return [Extraction("x", "text", str(len(hog)), None)]


def segfaults(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterable[Extraction]:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)
    return ()


def raises(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterable[Extraction]:
    raise ValueError("pypdf had a bad day")


def starts_a_program_then_hangs(
    msg: ParsedMessage, *, ocr: bool, limits: Limits
) -> Iterable[Extraction]:
    """A stand-in for a tesseract run that never ends: the grandchild must die too."""
    program = subprocess.Popen(["sleep", "600"])
    record_of(os.getppid()).write_text(f"{os.getpid()} {program.pid}")
    program.wait()
    return ()


def tells_what_it_holds(msg: ParsedMessage, *, ocr: bool, limits: Limits) -> Iterable[Extraction]:
    """What a file that took over the reader could reach: its environment and its open
    descriptors, as the text of the first attachment's result."""
    descriptors = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    held = {"environ": dict(os.environ), "fds": descriptors}
    return [Extraction(msg.attachments[0].safe_name, "text", json.dumps(held), None)]
