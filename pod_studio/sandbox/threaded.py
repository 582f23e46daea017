"""Sandbox layer: run an async sandbox server on its own event loop in a daemon thread.

Used by Qt tests, CLI subprocess tests and demo mode, where the caller's thread must not (or
cannot) run the server's loop. Any object with ``async start(host, port) -> str`` and
``async stop()`` works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar, cast

T = TypeVar("T")

__all__ = ["ServerThread"]


class ServerThread:
    """Runs ``server`` on a private event loop in a daemon thread."""

    def __init__(self, server: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def _run(self) -> None:
        # A plain selector loop, never the process's policy: under the GUI that policy makes
        # Qt event loops, which cannot run in a second thread.
        loop = asyncio.SelectorEventLoop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 10) -> str:
        """Start the loop thread and the server; block until it listens; return its URL."""
        if self._thread is not None:
            return self.url
        self._thread = threading.Thread(target=self._run, name="sandbox-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sandbox loop did not start")
        url = self.call(lambda: self.server.start(self.host, self.port), timeout=timeout)
        self.url = str(url)
        return self.url

    def call(self, fn: Callable[[], Awaitable[T]] | Callable[[], T], timeout: float = 10) -> T:
        """Run ``fn`` on the server's loop (awaiting it if it returns an awaitable)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("ServerThread is not started")

        async def _invoke() -> T:
            result = fn()
            if inspect.isawaitable(result):
                return cast(T, await result)
            return result

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(_invoke(), loop)
        return future.result(timeout)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server, then the loop, and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.call(self.server.stop, timeout=timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None
            self._loop = None
            self._ready.clear()

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
