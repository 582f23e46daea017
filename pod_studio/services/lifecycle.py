"""Services layer: the engine's background tasks and the closing of what it built.

``BackgroundTasks`` is the one way the engine (outside the queue's own workers) runs work in
the background: a strong reference per task, a name, a failure logged once, and ``aclose()``
that cancels what still runs and waits for it. ``aclose_logged`` closes one resource on the
way out; a failure there is logged with what was being closed and why it is let go (the
rest still closes), never swallowed silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Closable(Protocol):
    async def aclose(self) -> None: ...


async def aclose_logged(resource: Closable | None, what: str) -> None:
    """Close ``resource`` (``None``: nothing); a failure is logged, not raised: it is being
    replaced or the engine is shutting down, and what comes after must still close."""
    if resource is None:
        return
    try:
        await resource.aclose()
    except Exception:
        log.warning("closing %s failed; it is dropped anyway", what, exc_info=True)


class BackgroundTasks:
    """Named background tasks the engine owns until ``aclose()``."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finish: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str, finish: bool = False
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; ``finish``: ``aclose()`` lets it end (a close
        under way) instead of cancelling it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if finish:
            self._finish.add(task)
        task.add_done_callback(self._done)
        return task

    def named(self, name: str) -> list[asyncio.Task[Any]]:
        """The tasks called ``name`` that have not finished."""
        return [t for t in self._tasks if t.get_name() == name and not t.done()]

    def running(self, name: str) -> bool:
        return bool(self.named(name))

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._finish.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def aclose(self) -> None:
        """Cancel what still runs (but the tasks spawned with ``finish``) and wait for all."""
        tasks = list(self._tasks)
        for task in tasks:
            if task not in self._finish:
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
