"""Fixtures for the app and ui tests: the real GenerationService, or the real Orchestrator
over a SQLite job ledger in ``tmp_path``, with in-memory fakes for ComfyUI and the images."""

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


@dataclass
class QueueParts:
    runner: Any
    bridge: Any
    orchestrator: Any
    ledger: Any
    store: MemoryStore
    generators: list[FakeGenerator]
    settings: SettingsBox
    export_dir: Path


def pump_until_done(future: Any, timeout_ms: int = 5000) -> None:
    """Run the Qt event loop (and so the qasync loop) until ``future`` is done."""
    from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QEventLoop

    deadline = QDeadlineTimer(timeout_ms)
    while not future.done() and not deadline.hasExpired():
        # process events (and so the qasync loop) as they come, waiting for at most 5 ms
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 5)


@pytest.fixture
def queue_parts(
    qloop: asyncio.AbstractEventLoop, executor: Any, tmp_path: Path
) -> Iterator[QueueParts]:
    """The durable orchestrator over two fake servers, a SQLite ledger and an export folder;
    its worker loop runs in the TaskRunner (as in the app). Retries wait 10 minutes."""
    from pod_studio.adapters.marketplaces.export import ExportMarketplace
    from pod_studio.adapters.storage.ledger import SqliteJobLedger
    from pod_studio.app.bridge import QtEventBridge
    from pod_studio.app.runner import TaskRunner
    from pod_studio.services.orchestrator import (
        MarketplacePublishExecutor,
        Orchestrator,
        OrchestratorOptions,
    )

    runner = TaskRunner()
    bridge = QtEventBridge()
    store = MemoryStore(tmp_path / "images")
    generators = [FakeGenerator("http://127.0.0.1:8188"), FakeGenerator("http://127.0.0.1:8189")]
    ledger = SqliteJobLedger(tmp_path / "jobs.sqlite")
    export_dir = tmp_path / "export"
    orchestrator = Orchestrator(
        ledger,
        generators,
        store,
        template(),
        bridge,
        publishers={"export": MarketplacePublishExecutor(ExportMarketplace(export_dir))},
        options=OrchestratorOptions(
            in_flight_per_server=1, retry_delay=lambda _n: 600.0, tick=0.05, max_attempts=3
        ),
    )
    opened = asyncio.ensure_future(ledger.open())
    pump_until_done(opened)
    opened.result()
    runner.spawn(orchestrator.run_forever(), name="job-queue")
    yield QueueParts(
        runner, bridge, orchestrator, ledger, store, generators, SettingsBox(), export_dir
    )
    for gen in generators:
        gen.release.set()

    async def close() -> None:
        await runner.aclose()
        await ledger.aclose()

    closing = asyncio.ensure_future(close())
    pump_until_done(closing)
    closing.result()
