"""App layer: TaskRunner — the one place where the GUI starts asyncio tasks.

It keeps a strong reference to every task (so none is garbage-collected mid-flight), names
it, logs a failure once, turns it into ``sig_task_failed(name, message)`` and cancels
everything still running in ``aclose()`` (awaited by the composition root at shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from pod_studio.app import qt_compat
from pod_studio.domain.errors import user_message

log = logging.getLogger(__name__)

qt_compat.install()

T = TypeVar("T")

GIVE_UP_AFTER = 5.0  # seconds
CANCEL_AGAIN_AFTER = 0.5  # seconds


class TaskRunner(QObject):
    """Spawns named tasks on the running (qasync) loop and reports their failures.

    Signals:
        sig_task_failed(str name, str message): a task raised (not cancelled); ``message``
            is fit for the seller.
        sig_task_finished(str name): a task ended (success, failure or cancellation).
    """

    sig_task_failed = Signal(str, str)
    sig_task_finished = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def active(self) -> int:
        """How many tasks are still running."""
        return sum(1 for t in self._tasks if not t.done())

    def task_names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks if not t.done())

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task called ``name`` on the running loop."""
        if self._closed:
            coro.close()
            raise RuntimeError("the task runner is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        name = task.get_name()
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:
                log.error("task %s failed", name, exc_info=exc)
                self.sig_task_failed.emit(name, user_message(exc))
        self.sig_task_finished.emit(name)

    async def aclose(self) -> None:
        """Cancel every running task and wait until they have all ended.

        A task that is still running a moment after its cancellation is cancelled again:
        on Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives just as its
        inner future completes, and a worker loop built on it would otherwise keep going.
        """
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIVE_UP_AFTER
        while True:
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                return
            if loop.time() >= deadline:
                # A task waiting on a worker thread cannot end before the thread does; the app
                # must still be able to quit (qasync issue #115).
                log.warning(
                    "tasks still running at shutdown: %s",
                    ", ".join(sorted(t.get_name() for t in pending)),
                )
                return
            for task in pending:
                task.cancel()
            # Failures were already reported by _on_task_done; our own cancellation propagates.
            await asyncio.wait(pending, timeout=CANCEL_AGAIN_AFTER)
