"""What every step needs, built once per process from the settings."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import date

from config.registry import load_directory, load_meetings, load_registry
from config.settings import Settings, load_settings
from parsers.analysis import Analysis, analyse
from parsers.limits import KB, MB
from parsers.limits import Limits as ReaderLimits
from parsers.states import MissionDirectory, StateRegistry
from worker.extraction import Limits, extract_isolated
from worker.store import Archive, Database


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    db: Database
    archive: Archive
    registry: StateRegistry
    directory: MissionDirectory


def build_context(settings: Settings) -> Context:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.create_schema()
    archive = Archive(settings.archive_path)
    with contextlib.suppress(OSError):
        archive.clear_staging()  # what a worker killed mid-filing left (an hour old or more)
    return Context(
        settings=settings,
        db=db,
        archive=archive,
        registry=load_registry(),
        directory=load_directory(),
    )


_context: Context | None = None
_context_pid = -1


def get_context() -> Context:
    """The process's context; settings are read from the environment on first use."""
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        _context = build_context(load_settings())
        _context_pid = os.getpid()
    return _context


def analyse_message(
    settings: Settings,
    registry: StateRegistry,
    directory: MissionDirectory,
    raw: bytes,
    *,
    received: date | None = None,
    ocr: bool | None = None,
) -> Analysis:
    """``parsers.analysis.analyse`` with what the settings say; the worker and the CLI share it.

    Attachments are read in a child process under the settings' time and memory limits.
    """
    limits = extraction_limits(settings, ocr=ocr)
    return analyse(
        raw,
        registry=registry,
        directory=directory,
        own_addresses=(settings.service_address, settings.secretary_address),
        threshold=settings.state_threshold,
        authserv_ids=settings.trusted_authserv_ids,
        received=received,
        meetings=load_meetings(),
        extract=lambda msg: extract_isolated(msg, limits),
        limits=limits.readers,  # the readers' limits are the message's too
    )


def extraction_limits(settings: Settings, *, ocr: bool | None = None) -> Limits:
    """How the attachment reader is bounded (``worker.extraction``), from the settings."""
    return Limits(
        seconds=settings.extract_seconds,
        memory_mb=settings.extract_memory_mb,
        ocr=settings.ocr if ocr is None else ocr,
        readers=message_limits(settings),
    )


def message_limits(settings: Settings) -> ReaderLimits:
    """The ``CCM_MAX_…`` settings as ``parsers.limits.Limits`` (bytes, counts, seconds)."""
    return ReaderLimits(
        message_bytes=int(settings.max_message_mb * MB),
        header_bytes=int(settings.max_header_kb * KB),
        mime_depth=settings.max_mime_depth,
        attachments=settings.max_attachments,
        attachment_bytes=int(settings.max_attachment_mb * MB),
        zip_entries=settings.max_zip_entries,
        zip_bytes=int(settings.max_zip_mb * MB),
        zip_ratio=int(settings.max_zip_ratio),
        zip_depth=settings.max_zip_depth,
        pdf_pages=settings.max_pdf_pages,
        ocr_seconds=settings.ocr_seconds,
    )
