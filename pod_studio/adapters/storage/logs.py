"""Adapters layer: logging set-up (rotating JSON-lines file under the log dir, optional stderr).

Records go from the root logger through a ``QueueHandler`` (redacted, extra fields defaulted)
to a ``QueueListener`` thread that does the file I/O, so logging never blocks the event loop.
``configure_logging`` is idempotent; ``shutdown_logging`` flushes and removes everything.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from pod_studio.adapters.storage.paths import AppPaths
from pod_studio.adapters.storage.secrets import Redactor

LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 5
EXTRA_FIELDS: dict[str, str] = {"service": "", "job_id": "", "server": ""}
"""Extra fields every record carries (``log.info(..., extra={"job_id": ...})``)."""

QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "websockets", "PIL", "asyncio.selector")

_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class ExtraDefaultsFilter(logging.Filter):
    """Gives every record the ``EXTRA_FIELDS`` so formats may use them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, default in EXTRA_FIELDS.items():
            if not hasattr(record, key):
                setattr(record, key, default)
        return True


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if value in ("", None) and key in EXTRA_FIELDS:
                continue
            entry[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


class _QueueHandler(logging.handlers.QueueHandler):
    """Keeps the traceback in ``exc_text`` (the stock one folds it into the message)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.message = record.msg
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        return record


class _LogFileHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file. A log that cannot be written (a full disk, a folder made
    read-only) is said once, in one line on stderr, and then left alone: the stock handler
    prints "--- Logging error ---" and a traceback for every record."""

    _failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if self._failed:
            return
        self._failed = True
        exc = sys.exc_info()[1]
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        try:
            sys.stderr.write(f"warning: cannot write the log {self.baseFilename}: {reason}\n")
        except (OSError, ValueError):
            pass

    def emit(self, record: logging.LogRecord) -> None:
        if not self._failed:
            super().emit(record)

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # flushing onto a full disk: the failure was said once already
            self.stream = None  # type: ignore[assignment]


class _State:
    def __init__(
        self,
        queue_handler: logging.handlers.QueueHandler,
        listener: logging.handlers.QueueListener,
        handlers: list[logging.Handler],
        previous_level: int,
    ) -> None:
        self.queue_handler = queue_handler
        self.listener = listener
        self.handlers = handlers
        self.previous_level = previous_level


_lock = threading.Lock()
_state: _State | None = None


def configure_logging(
    paths: AppPaths,
    level: int | str = logging.INFO,
    redactor: Redactor | None = None,
    *,
    stderr: bool = False,
    json_lines: bool = True,
) -> None:
    """Route the root logger to ``paths.log_file`` (rotating) and optionally stderr.

    Calling it again replaces the previous configuration (no doubled handlers).
    """
    global _state
    with _lock:
        _shutdown_locked()
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFileHandler(
            paths.log_file,
            maxBytes=LOG_MAX_BYTES,
            backupCount=LOG_BACKUPS,
            encoding="utf-8",
            delay=True,
        )
        file_handler.setFormatter(
            JsonLinesFormatter()
            if json_lines
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        handlers: list[logging.Handler] = [file_handler]
        if stderr:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            handlers.append(stream)

        q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        queue_handler = _QueueHandler(q)
        queue_handler.addFilter(ExtraDefaultsFilter())
        queue_handler.addFilter(redactor if redactor is not None else Redactor())
        listener = logging.handlers.QueueListener(q, *handlers, respect_handler_level=True)

        root = logging.getLogger()
        previous_level = root.level
        root.setLevel(level)
        root.addHandler(queue_handler)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        listener.start()
        _state = _State(queue_handler, listener, handlers, previous_level)


def _shutdown_locked() -> None:
    global _state
    state = _state
    if state is None:
        return
    _state = None
    root = logging.getLogger()
    root.removeHandler(state.queue_handler)
    state.listener.stop()  # drains the queue
    for handler in state.handlers:
        handler.close()
    state.queue_handler.close()
    root.setLevel(state.previous_level)


def shutdown_logging() -> None:
    """Flush pending records to the file and remove the handlers (safe to call twice)."""
    with _lock:
        _shutdown_locked()


def is_configured() -> bool:
    return _state is not None
