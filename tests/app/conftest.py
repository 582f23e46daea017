"""Fixtures for the app and ui tests: the real GenerationService over in-memory fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.app.fakes import FakeGenerator, MemoryStore, SettingsBox, template


@dataclass
class Parts:
    runner: Any
    bridge: Any
    service: Any
    store: MemoryStore
    generator: FakeGenerator
    settings: SettingsBox


@pytest.fixture
def executor(qloop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """A default executor for ``asyncio.to_thread`` that is shut down after the test.

    qasync keeps its default executor's threads until the loop is closed, which the shared
    ``qloop`` fixture never does; Qt then aborts at exit ("QThread: Destroyed while thread
    is still running").
    """
    import qasync

    pool = qasync.QThreadExecutor(2)
    qloop.set_default_executor(pool)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def parts(qloop: asyncio.AbstractEventLoop, executor: Any, tmp_path: Path) -> Iterator[Parts]:
    from pod_studio.app.bridge import QtEventBridge
    from pod_studio.app.runner import TaskRunner
    from pod_studio.services.generation import GenerationService

    runner = TaskRunner()
    bridge = QtEventBridge()
    store = MemoryStore(tmp_path / "images")
    generator = FakeGenerator()
    seeds = iter(range(1000, 100000))
    service = GenerationService(
        [generator],
        store,
        template(),
        bridge,
        in_flight_per_server=2,
        retry_delay=0.0,
        seed_source=lambda: next(seeds),
    )
    yield Parts(runner, bridge, service, store, generator, SettingsBox())
    generator.release.set()
