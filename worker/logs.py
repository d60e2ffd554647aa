"""Logs: one JSON object a line for machines, readable text for people, and on every line
that concerns a message its id and reference.

``CCM_LOG_FORMAT`` picks the form: ``text`` (the default), ``json`` (what docker-compose.yml
sets), or ``auto`` (JSON unless stderr is a terminal). ``CCM_LOG_LEVEL`` the level
(``--loglevel`` of a command wins). ``configure`` sets up the root logger's one handler;
Celery's own lines (the worker, beat, its pool processes, task results) go through the same
handler, because ``take_over_celery_logging`` tells Celery that logging is set up already.

What a line concerns is carried in a context variable: processing sets ``message_id`` (and
``reference`` once filed), the mailer ``outbox_id``, the Celery task signals ``task_id`` and
``task``; every record emitted meanwhile, by us or a library, carries them as fields
(JSON) or as a ``[message_id=… reference=…]`` suffix (text). Secrets are masked before any
of this, when the record is made (worker/redaction.py).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TextIO, TypeVar

if TYPE_CHECKING:
    from config.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

FORMATS = ("text", "json", "auto")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The fields a line can carry about what it concerns, in the order text shows them.
CONTEXT_FIELDS = (
    "message_id",
    "message_ids",
    "reference",
    "outbox_id",
    "outbox_key",
    "mailbox",
    "task",
    "task_id",
)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_DATEFMT = "%Y-%m-%d %H:%M:%S"
# Celery's "Task ccm.process[…] received/succeeded" lines name the task's arguments only as
# their repr; for these tasks the one argument says which message or outbox row it is.
_TASK_ARGUMENT = {"ccm.process": "message_id", "ccm.send_outbox": "outbox_id"}
_ONE_INT = re.compile(r"^\(?\[?(\d+),?\]?\)?$")
# ... and for a group of messages (ccm.process_many), its one argument is their list.
_INT_LIST = re.compile(r"^\(?\[(\d+(?:, \d+)*)\],?\)?$")

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("ccm_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every record emitted inside the block carries these fields (None ones are left out)."""
    token = _context.set(MappingProxyType({**_context.get(), **_present(fields)}))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Add fields to the current context, until the enclosing ``log_context`` (or task) ends:
    e.g. the reference, known only once a message is filed."""
    _context.set(MappingProxyType({**_context.get(), **_present(fields)}))


def about_message(
    func: Callable[Concatenate[Any, int, P], R],
) -> Callable[Concatenate[Any, int, P], R]:
    """For ``f(ctx, message_id, ...)``: every record inside carries ``message_id``."""

    @functools.wraps(func)
    def wrapper(ctx: Any, message_id: int, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with log_context(message_id=message_id):
            return func(ctx, message_id, *args, **kwargs)

    return wrapper


def each_with(field: str, values: Iterable[T]) -> Iterator[T]:
    """``for v in each_with('outbox_id', ids)``: the loop's body logs with ``outbox_id=v``
    (and whatever it binds), dropped when the next item comes."""
    for value in values:
        with log_context(**{field: value}):
            yield value


def current_context() -> dict[str, object]:
    return dict(_context.get())


def _present(fields: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in fields.items() if v is not None and v != ""}


class ContextFilter(logging.Filter):
    """Puts the context's fields on each record (a field the record has already wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        data = getattr(record, "data", None)  # Celery's task lines: extra={'data': {...}}
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            if not hasattr(record, "task"):
                record.task = data["name"]
            if not hasattr(record, "task_id") and data.get("id"):
                record.task_id = str(data["id"])
            field = _TASK_ARGUMENT.get(data["name"])
            found = _ONE_INT.match(str(data.get("args", "")).strip())
            if field and found and not hasattr(record, field):
                setattr(record, field, int(found.group(1)))
            group = _INT_LIST.match(str(data.get("args", "")).strip())
            if data["name"] == "ccm.process_many" and group and not hasattr(record, "message_ids"):
                record.message_ids = [int(n) for n in group.group(1).split(", ")]
        return True


def _context_of(record: logging.LogRecord) -> dict[str, object]:
    return {key: getattr(record, key) for key in CONTEXT_FIELDS if hasattr(record, key)}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, process, the
    context fields, and the exception's traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update(_context_of(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # worker/redaction.py has already masked it when it was made
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with what it concerns at the end: ``… [message_id=3 reference=…]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATEFMT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = _context_of(record)
        if context:
            line += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        return line


class _Handler(logging.StreamHandler[TextIO]):
    """Ours: configure() replaces it, and leaves any other handler (pytest's) alone."""


def wants_json(fmt: str, stream: Any = None) -> bool:
    if fmt == "auto":
        stream = sys.stderr if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        return not (callable(isatty) and isatty())
    return fmt == "json"


def configure(level: str | int = "INFO", fmt: str = "text") -> logging.Handler:
    """The root logger writes to stderr in ``fmt`` (text, json or auto) from ``level`` up."""
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(fmt) else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings (Celery's "running as root", deprecations) become log records too,
    # so that in JSON mode every line of stderr is JSON.
    logging.captureWarnings(True)
    # mail-parser logs ~90 DEBUG lines per message and a WARNING for every part type it does
    # not handle itself ("Email content 'png' not handled"): parsers/message.py reads those.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    return handler


def configured() -> bool:
    return any(isinstance(h, _Handler) for h in logging.getLogger().handlers)


def take_over_celery_logging(settings: Settings) -> None:
    """Celery configures no handler of its own (nor its task formatter, nor redirects of
    stdout): its records go to ours. ``celery -A worker.app worker`` started by hand gets our
    handler too, in the settings' format at the level it was given."""
    from celery import signals

    def receiver(loglevel: int | str | None = None, **_: Any) -> None:
        if not configured():
            configure(loglevel or settings.log_level, settings.log_format)

    signals.setup_logging.connect(receiver, weak=False)

    def task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        name = getattr(task, "name", None)
        # A fresh context per task; what the task binds (its message's reference) is dropped
        # when it ends.
        _context.set(MappingProxyType(_present({"task": name, "task_id": task_id})))

    def task_ended(**_: Any) -> None:
        _context.set(_EMPTY)

    signals.task_prerun.connect(task_started, weak=False)
    signals.task_postrun.connect(task_ended, weak=False)
