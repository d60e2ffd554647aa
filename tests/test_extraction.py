"""extract_isolated: a message's attachments read in a child process that cannot hang the
worker or eat its memory, holds nothing of the worker's, is kept from one message to the next
and replaced when it fails, and leaves no process behind, also from a daemonic process as in
Celery's prefork pool. Hostile behaviour is played by the functions of
``tests/extraction_targets.py``, named by ``target=``."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import time
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from parsers.attachments import Extraction, extract_all
from parsers.message import ParsedMessage, parse_message
from tests.extraction_targets import name, record_of
from worker import extraction
from worker.extraction import Limits, close_reader, extract_isolated, reader_pid, start_reader


def make_pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


def make_message(*, scan: bool = False) -> ParsedMessage:
    message = EmailMessage()
    message["From"] = "Mission of Chile <chile@example.org>"
    message["To"] = "ccm@unog.ch"
    message["Subject"] = "Delegation to the 7MSP"
    message.set_content("Please find attached our note and list.")
    message.add_attachment(
        make_pdf("Permanent Mission of Chile"),
        maintype="application",
        subtype="pdf",
        filename="nv.pdf",
    )
    pack = io.BytesIO()
    with zipfile.ZipFile(pack, "w") as archive:
        archive.writestr("liste.csv", "Nombre;Cargo\nSra. María Pérez;Embajadora\n")
        archive.writestr("nota.txt", "Delegación de Chile")
    message.add_attachment(pack.getvalue(), maintype="application", subtype="zip", filename="d.zip")
    if scan:
        image = Image.new("L", (1400, 200), 255)
        ImageDraw.Draw(image).text(
            (60, 60), "Permanent Mission of Chile", font=ImageFont.load_default(size=48), fill=0
        )
        scanned = io.BytesIO()
        image.save(scanned, format="PDF", resolution=200)  # no text layer: OCR in the child
        message.add_attachment(
            scanned.getvalue(), maintype="application", subtype="pdf", filename="scan.pdf"
        )
        png = io.BytesIO()
        image.save(png, format="PNG")
        message.add_attachment(png.getvalue(), maintype="image", subtype="png", filename="scan.png")
    return parse_message(message.as_bytes())


def descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def gone(pid: int) -> bool:
    """No such process, or a zombie that is not ours (init reaps it)."""
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE and process.ppid() != os.getpid()
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(autouse=True)
def leaves_no_process_behind() -> Iterator[None]:
    close_reader()
    before = descendants()
    yield
    assert len(descendants() - before) <= 1  # the kept reader, at most
    close_reader()
    assert descendants() - before == set()


# --------------------------------------------------------------------------- tests


def test_it_gives_what_extract_all_gives() -> None:
    msg = make_message(scan=shutil.which("tesseract") is not None)

    isolated = extract_isolated(msg)

    assert isolated == extract_all(msg)
    assert [x.error for x in isolated] == [None] * len(msg.attachments)
    assert all("Permanent Mission of Chile" in x.text for x in isolated[2:])
    assert isolated[1].parts[0].tables == (
        (("Nombre", "Cargo"), ("Sra. María Pérez", "Embajadora")),
    )


def test_it_passes_the_ocr_switch_to_the_child() -> None:
    msg = make_message(scan=True)

    isolated = extract_isolated(msg, Limits(ocr=False))

    assert isolated[-1].error == "image not read: OCR is off"


def test_a_message_without_attachments_needs_no_child() -> None:
    message = EmailMessage()
    message["From"] = "a@example.org"
    message.set_content("Hello")

    assert extract_isolated(parse_message(message.as_bytes())) == ()


def test_it_kills_a_hanging_extraction_at_the_time_limit() -> None:
    msg = make_message()
    started = time.monotonic()

    results = extract_isolated(msg, Limits(seconds=1), target=name("sleeps"))

    assert time.monotonic() - started < 3
    assert results == (
        Extraction("nv.pdf", "none", "", "over a limit: extraction timed out after 1 s"),
        Extraction("d.zip", "none", "", "over a limit: extraction timed out after 1 s"),
    )


def test_it_keeps_what_was_read_before_the_time_limit() -> None:
    results = extract_isolated(make_message(), Limits(seconds=2), target=name("first_then_sleeps"))

    assert [(x.name, x.text, x.error) for x in results] == [
        ("nv.pdf", "first one", None),
        ("d.zip", "", "over a limit: extraction timed out after 2 s"),
    ]


def test_it_kills_the_programs_the_extraction_started() -> None:
    record = record_of(os.getpid())
    record.unlink(missing_ok=True)

    results = extract_isolated(
        make_message(), Limits(seconds=2), target=name("starts_a_program_then_hangs")
    )

    child, grandchild = (int(pid) for pid in record.read_text().split())
    record.unlink()
    assert results[0].error == "over a limit: extraction timed out after 2 s"
    assert gone(child)
    deadline = time.monotonic() + 5
    while not gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(grandchild)


def test_it_stops_an_extraction_that_outgrows_the_memory_cap() -> None:
    started = time.monotonic()

    results = extract_isolated(
        make_message(), Limits(memory_mb=1024), target=name("allocates_2_gb")
    )

    assert time.monotonic() - started < 5
    assert [x.error for x in results] == [
        "over a limit: extraction failed: out of memory (limit 1024 MB)"
    ] * 2


def test_it_reports_a_crashed_extraction() -> None:
    results = extract_isolated(make_message(), target=name("segfaults"))

    assert [x.error for x in results] == [f"extraction process died (signal {signal.SIGSEGV})"] * 2


def test_it_reports_an_extraction_that_raised() -> None:
    results = extract_isolated(make_message(), target=name("raises"))

    assert [x.error for x in results] == ["extraction failed: ValueError: pypdf had a bad day"] * 2


def test_a_reader_that_cannot_start_is_an_error_for_each_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(extraction.sys, "executable", "/nonexistent/python3")

    results = extract_isolated(make_message())

    assert [x.error for x in results] == [
        "extraction could not start: the reader could not be started: "
        "[Errno 2] No such file or directory: '/nonexistent/python3'"
    ] * 2
    assert reader_pid() is None


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="seconds"):
        Limits(seconds=0)
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=1)


def _in_a_daemon(queue: Any, which: str) -> None:
    """What a Celery prefork child does: run the task's code in a daemonic process."""
    assert multiprocessing.current_process().daemon
    msg = make_message()
    if which == "normal":
        queue.put((extract_isolated(msg), extract_all(msg)))
    elif which == "hang":
        queue.put((extract_isolated(msg, Limits(seconds=1), target=name("sleeps")), None))
    else:
        queue.put((extract_isolated(msg, target=name("allocates_2_gb")), None))
    close_reader()
    queue.put(sorted(descendants()))


@pytest.mark.parametrize("which", ["normal", "hang", "memory"])
def test_it_works_inside_a_daemonic_process_as_in_celery(which: str) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    daemon = context.Process(target=_in_a_daemon, args=(queue, which), daemon=True)
    daemon.start()
    try:
        isolated, expected = queue.get(timeout=30)
        left_in_daemon = queue.get(timeout=5)
    finally:
        daemon.join(timeout=10)
    assert daemon.exitcode == 0
    assert left_in_daemon == []
    if which == "normal":
        assert isolated == expected
    elif which == "hang":
        assert [x.error for x in isolated] == ["over a limit: extraction timed out after 1 s"] * 2
    else:
        assert [x.error for x in isolated] == [
            "over a limit: extraction failed: out of memory (limit 1024 MB)"
        ] * 2


def test_one_reader_reads_message_after_message() -> None:
    msg = make_message()

    first = extract_isolated(msg)
    pid = reader_pid()
    again = [extract_isolated(msg) for _ in range(3)]

    assert pid is not None and not gone(pid)
    assert reader_pid() == pid
    assert again == [first] * 3 == [extract_all(msg)] * 3


@pytest.mark.parametrize("target", ["sleeps", "segfaults", "raises", "allocates_2_gb"])
def test_a_reader_that_failed_is_replaced_for_the_next_message(target: str) -> None:
    msg = make_message()
    extract_isolated(msg)
    before = reader_pid()
    assert before is not None

    failed = extract_isolated(msg, Limits(seconds=1), target=name(target))
    after = extract_isolated(msg)

    assert all(x.error for x in failed)
    assert gone(before)
    assert reader_pid() not in (None, before)
    assert after == extract_all(msg)


def test_a_reader_killed_between_messages_is_replaced_at_once() -> None:
    msg = make_message()
    extract_isolated(msg)
    pid = reader_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)

    assert extract_isolated(msg) == extract_all(msg)  # not "extraction process died"
    assert reader_pid() not in (None, pid)


def test_a_reader_is_retired_after_its_quota_of_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extraction, "READER_MESSAGES", 2)
    msg = make_message()
    extract_isolated(msg)
    first = reader_pid()

    results = [extract_isolated(msg) for _ in range(2)]

    assert results == [extract_all(msg)] * 2  # the retiring reader's answer still counts
    assert first is not None and gone(first)
    assert reader_pid() not in (None, first)


def test_a_reader_that_grew_by_reading_a_large_file_is_retired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(extraction, "READER_GROWTH_MB", -1)  # any reading at all
    msg = make_message()

    extract_isolated(msg)

    assert reader_pid() is None


def test_the_reader_lets_go_of_the_workers_sockets() -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    try:
        extract_isolated(make_message())
        pid = reader_pid()
        assert pid is not None
        client.close()  # the worker drops its connection: the other end must see it closed
        served.settimeout(5)
        assert served.recv(1) == b""
        inherited = {c.laddr for c in psutil.Process(pid).net_connections()}
        assert listener.getsockname() not in inherited
    finally:
        for sock in (client, served, listener):
            sock.close()


def test_the_reader_holds_none_of_the_workers_settings_or_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file that takes the reader over finds no secret in its environment and no descriptor
    but its own two channels and the standard three."""
    monkeypatch.setenv("CCM_SMTP_PASSWORD", "not-for-the-reader")
    monkeypatch.setenv("CCM_DATABASE_URL", "postgresql://ccm:not-for-the-reader@127.0.0.1/ccm")
    monkeypatch.setenv("PYTHONPATH", "/not/for/the/reader")
    database = open(__file__, "rb")  # noqa: SIM115 - an open file of the worker's
    try:
        (result,) = extract_isolated(make_message(), target=name("tells_what_it_holds"))[:1]
    finally:
        database.close()

    held = json.loads(result.text)
    assert "not-for-the-reader" not in result.text
    assert not [key for key in held["environ"] if key.startswith(("CCM_", "PYTHON"))]
    assert held["environ"]["PATH"] == os.environ["PATH"]  # tesseract and the others are found
    assert len(held["fds"]) <= 3 + 2 + 1  # stdin/out/err, the two channels, listdir's own


def test_a_reader_started_ahead_loads_its_libraries_before_the_first_message() -> None:
    start_reader()
    pid = reader_pid()
    assert pid is not None

    def mapped() -> str:
        return Path(f"/proc/{pid}/maps").read_text()

    deadline = time.monotonic() + 20
    while "lxml" not in mapped() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "lxml" in mapped()  # python-docx's and openpyxl's parser, imported at start


def test_a_concurrent_thread_gets_a_reader_of_its_own() -> None:
    import threading

    msg = make_message()
    extract_isolated(msg)
    kept = reader_pid()
    results: list[Any] = []
    with extraction._reader_lock:  # the kept reader is busy
        thread = threading.Thread(target=lambda: results.append(extract_isolated(msg)))
        thread.start()
        thread.join(timeout=30)

    assert results == [extract_all(msg)]
    assert reader_pid() == kept


def test_a_reader_started_ahead_reads_the_next_message() -> None:
    start_reader()
    ahead = reader_pid()
    start_reader()  # one is ready: nothing more is started

    assert ahead is not None and reader_pid() == ahead
    msg = make_message()
    assert extract_isolated(msg) == extract_all(msg)
    assert reader_pid() == ahead
