"""Helpers for the orchestrator e2e tests: the shipped engine (``open_core``) over sandbox
ComfyUI servers, tuned to react in tenths of a second, and an event recorder to wait on."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.composition.core import Core, comfyui_breaker_name
from pod_studio.composition.headless import open_core
from pod_studio.composition.overrides import (
    BreakerOverride,
    ComfyUIClientOverrides,
    ResilienceOverrides,
    RetryOverride,
)
from pod_studio.domain.events import Event, ImageReady
from pod_studio.services.orchestrator import OrchestratorOptions

FAST_CLIENT = ComfyUIClientOverrides(
    poll_initial=0.05, poll_factor=1.5, poll_max=0.3, reconnect_initial=0.02, reconnect_max=0.2
)
FAST_RESILIENCE = ResilienceOverrides(
    policies={"comfyui": RetryOverride(max_retries=1, initial_delay=0.05, max_delay=0.1)},
    breakers={"comfyui": BreakerOverride(failure_threshold=3, reset_timeout=0.3)},
)
FAST_OPTIONS = OrchestratorOptions(
    tick=0.05,
    poll_interval=0.05,
    probe_interval=0.1,
    retry_delay=lambda _n: 0.05,
    idle_horizon=2.0,
    stall_timeout=15.0,
    max_attempts=20,
)

breaker_name = comfyui_breaker_name


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


@asynccontextmanager
async def started_core(
    home: Path, urls: Sequence[str], events: Recorder, **options: Any
) -> AsyncIterator[Core]:
    """The engine the app runs (``build_core`` via ``open_core``), on ``urls``, started."""
    async with open_core(
        sinks=[events],
        servers=urls,
        paths=app_paths(home),
        secrets=MemorySecretStore(),
        options=replace(FAST_OPTIONS, **options),
        comfyui_client=FAST_CLIENT,
        resilience=FAST_RESILIENCE,
    ) as core:
        yield core
