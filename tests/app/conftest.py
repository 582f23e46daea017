"""Fixtures for the app and ui tests: the shipping engine (``build_core`` → ``Core``, the
durable orchestrator over the SQLite ledger in the test's POD_STUDIO_HOME) on sandbox ComfyUI
servers running in threads, with an in-memory secret store instead of the OS keyring, and
the window the app ships over it (``bootstrap.compose_window``).

``make_studio(...)`` builds and starts one and composes its window (its queue in the window's
``TaskRunner``); ``compose=False`` leaves the window for the test to compose after its own
set-up (``studio.compose(demo=...)``). ``studio`` is the default one on one sandbox. Failing
or slow generations come from the sandbox's own fault knobs (``fail_next``,
``error_next_prompt``, ``pause``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.app.app_controller import AppController
from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.bootstrap import ComposedWindow, compose_window
from pod_studio.composition.core import Core, build_core
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.services.orchestrator import OrchestratorOptions

# retries wait 10 minutes: a test sees ``retry_wait`` and retries by hand
RETRY_DELAY = 600.0


def pump_until_done(future: Any, timeout_ms: int = 10000) -> None:
    """Run the Qt event loop (and so the qasync loop) until ``future`` is done."""
    from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QEventLoop

    deadline = QDeadlineTimer(timeout_ms)
    while not future.done() and not deadline.hasExpired():
        # process events (and so the qasync loop) as they come, waiting for at most 5 ms
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 5)


def run(coro: Any, timeout_ms: int = 10000) -> Any:
    """Run ``coro`` on the qasync loop from a test and return its result."""
    future = asyncio.ensure_future(coro)
    pump_until_done(future, timeout_ms)
    return future.result()


def sandbox_thread(**options: Any) -> ServerThread:
    options.setdefault("seconds_per_job", 0.05)
    options.setdefault("steps", 2)
    options.setdefault("preview_every", 1)
    return ServerThread(ComfyUISandbox(**options))


@dataclass
class Studio:
    """One running engine and the window composed over it."""

    core: Core
    secrets: MemorySecretStore
    servers: list[ServerThread]
    parts: ComposedWindow | None = None

    def compose(self, *, demo: bool = False, show: bool = False) -> ComposedWindow:
        """The window over this engine, as the app composes it (once); not shown unless
        ``show`` (a test shows it when it wants the window's start: gallery, checkpoints,
        the set-up on a first start)."""
        assert self.parts is None, "the window is composed once"
        self.parts = compose_window(self.core, demo=demo, show=show)
        return self.parts

    def _composed(self) -> ComposedWindow:
        assert self.parts is not None, "compose the window first (make_studio(compose=False))"
        return self.parts

    @property
    def runner(self) -> TaskRunner:
        return self._composed().runner

    @property
    def bridge(self) -> QtEventBridge:
        return self._composed().bridge

    @property
    def controller(self) -> AppController:
        return self._composed().controller

    @property
    def window(self) -> Any:
        return self._composed().window

    @property
    def comfy(self) -> ServerThread:
        return self.servers[0]

    def sandbox(self, index: int = 0) -> ComfyUISandbox:
        server: ComfyUISandbox = self.servers[index].server
        return server

    def on_sandbox(self, fn: Callable[[ComfyUISandbox], Any], index: int = 0) -> Any:
        """Call ``fn(sandbox)`` on the sandbox's own loop (its knobs are not thread-safe)."""
        box = self.sandbox(index)
        return self.servers[index].call(lambda: fn(box))


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with sandbox_thread() as thread:
        yield thread


@pytest.fixture
def comfy2() -> Iterator[ServerThread]:
    """A second sandbox ("Second GPU"); list it before ``make_studio`` in a test's arguments
    so it outlives the engine that uses it."""
    with sandbox_thread(device_name="Second GPU") as thread:
        yield thread


MakeStudio = Callable[..., Studio]


@pytest.fixture
def make_studio(qloop: asyncio.AbstractEventLoop, comfy: ServerThread) -> Iterator[MakeStudio]:
    """``make_studio(servers=None, settings=None, pin=True, compose=True, **options)``: the
    engine on ``servers`` (default: the ``comfy`` sandbox), started, with its window.
    ``pin=False`` takes the servers from the settings instead (so saving other servers in
    Settings switches to them)."""
    made: list[Studio] = []

    def make(
        servers: list[ServerThread] | None = None,
        settings: AppSettings | None = None,
        *,
        pin: bool = True,
        compose: bool = True,
        **options: Any,
    ) -> Studio:
        threads = servers or [comfy]
        urls = [t.url for t in threads]
        opts: dict[str, Any] = {
            "tick": 0.05,
            "in_flight_per_server": 1,
            "retry_delay": lambda _n: RETRY_DELAY,
            "max_attempts": 3,
            "probe_interval": 0.5,
        }
        opts.update(options)
        secrets = MemorySecretStore()
        if not pin:
            settings = (settings or AppSettings()).with_changes(comfyui_servers=urls)
        core = build_core(
            servers=urls if pin else None,
            settings=settings,
            secrets=secrets,
            options=OrchestratorOptions(**opts),
        )
        run(core.start())
        studio = Studio(core, secrets, threads)
        made.append(studio)
        if compose:
            studio.compose()
        return studio

    yield make

    async def close(studio: Studio) -> None:
        if studio.parts is not None:
            await studio.parts.aclose()
        else:
            await studio.core.aclose()

    for studio in made:
        for i, thread in enumerate(studio.servers):
            if thread.url and thread._loop is not None:  # nothing stays held
                studio.on_sandbox(lambda box: box.resume(), i)
        run(close(studio), 15000)


@pytest.fixture
def studio(make_studio: MakeStudio) -> Studio:
    return make_studio()
