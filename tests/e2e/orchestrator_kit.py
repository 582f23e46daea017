"""Helpers for the orchestrator e2e tests: an in-process stack over sandbox ComfyUI servers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pod_studio.adapters.comfyui.client import ComfyUIClient, default_workflow_text
from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.domain.events import Event, ImageReady
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.orchestrator import Orchestrator, OrchestratorOptions
from pod_studio.services.resilience import ResilienceHub

FAST_CLIENT = {
    "poll_initial": 0.05,
    "poll_factor": 1.5,
    "poll_max": 0.3,
    "reconnect_initial": 0.02,
    "reconnect_max": 0.2,
}
FAST_RESILIENCE = {
    "policies": {"comfyui": {"max_retries": 1, "initial_delay": 0.05, "max_delay": 0.1}},
    "breakers": {"comfyui": {"failure_threshold": 3, "reset_timeout": 0.3}},
}


def breaker_name(url: str) -> str:
    return "comfyui@" + url.split("://", 1)[-1]


@dataclass
class Recorder:
    """An EventSink that records events and wakes waiters on conditions."""

    items: list[Event] = field(default_factory=list)
    _waiters: list[tuple[Callable[[], bool], asyncio.Event]] = field(default_factory=list)
    images_by_server: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __call__(self, event: Event) -> None:
        self.items.append(event)
        if isinstance(event, ImageReady):
            self.images_by_server[event.image.server] += 1
        for cond, flag in self._waiters:
            if cond():
                flag.set()

    async def until(self, cond: Callable[[], bool], within: float = 30.0) -> None:
        flag = asyncio.Event()
        if cond():
            return
        self._waiters.append((cond, flag))
        try:
            await asyncio.wait_for(flag.wait(), within)
        finally:
            self._waiters.remove((cond, flag))

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.items if isinstance(e, kind)]


@dataclass
class Stack:
    orch: Orchestrator
    ledger: SqliteJobLedger
    hub: ResilienceHub
    clients: list[ComfyUIClient]
    store: GalleryImageStore
    events: Recorder


@asynccontextmanager
async def orchestrator_stack(
    tmp: Path, urls: Sequence[str], **options: object
) -> AsyncIterator[Stack]:
    events = Recorder()
    hub = ResilienceHub(events, settings=FAST_RESILIENCE)
    clients = [
        ComfyUIClient(u, sink=events, guard=hub.guard("comfyui", breaker_name(u)), **FAST_CLIENT)
        for u in urls
    ]
    ledger = SqliteJobLedger(tmp / "jobs.db")
    await ledger.open()
    store = GalleryImageStore(tmp / "images")
    opts = OrchestratorOptions(
        tick=0.05,
        poll_interval=0.05,
        probe_interval=0.1,
        retry_delay=lambda _n: 0.05,
        idle_horizon=2.0,
        stall_timeout=15.0,
        max_attempts=20,
    )
    for key, value in options.items():
        setattr(opts, key, value)
    orch = Orchestrator(
        ledger,
        clients,
        store,
        WorkflowTemplate.from_json_text(default_workflow_text()),
        events,
        breaker_state=lambda url: hub.breakers.get(breaker_name(url)).state.value,
        options=opts,
    )
    for c in clients:
        await c.start()
    try:
        yield Stack(orch, ledger, hub, clients, store, events)
    finally:
        await orch.aclose()
        for c in clients:
            await c.aclose()
        await ledger.aclose()
