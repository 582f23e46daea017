"""Services layer: run statistics, counted from events and from the call guards.

``StatsService`` is an ``EventSink``: feed it every event (the composition fans events out to it and
to the UI bridge). It counts pipeline figures from ``BatchFinished``, ``ImageReady``,
``JobFailed`` and ``PublishDone``, and breaker states from ``BreakerChanged``; it does not
forward events. Per-service call figures come from explicit calls by ``ServiceGuard`` and
the caches (``record_call``, ``record_retry``, ``record_cache``), not from ``RetryScheduled``,
so nothing is counted twice. After every change it pushes ``StatsUpdated`` to ``sink_out``,
at most once per ``min_interval`` seconds (a trailing update is scheduled on the running
loop, or sent by ``flush()``). Totals survive restarts through a ``StatsStore``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pod_studio.domain.breaker import BreakerState
from pod_studio.domain.events import (
    BatchFinished,
    BreakerChanged,
    Event,
    EventSink,
    ImageReady,
    JobFailed,
    PublishDone,
    StatsUpdated,
    null_sink,
)
from pod_studio.domain.stats import (
    DEFAULT_DURATION_SAMPLES,
    SCHEMA_VERSION,
    PipelineCounters,
    ServiceCounters,
    StatsStore,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class StatsService:
    """Counts what the app did; ``snapshot()`` is the JSON-able view of it."""

    def __init__(
        self,
        sink_out: EventSink = null_sink,
        store: StatsStore | None = None,
        clock: Clock = time.monotonic,
        *,
        wall_clock: Clock = time.time,
        min_interval: float = 0.25,
        max_samples: int = DEFAULT_DURATION_SAMPLES,
    ) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self._sink_out = sink_out
        self._store = store
        self._clock = clock
        self._wall_clock = wall_clock
        self._min_interval = min_interval
        self._max_samples = max_samples
        self._pipeline = PipelineCounters()
        self._services: dict[str, ServiceCounters] = {}
        self._breakers: dict[str, str] = {}
        self._last_emit: float | None = None
        self._dirty = False
        self._trailing: asyncio.TimerHandle | None = None

    # --- inputs -----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        p = self._pipeline
        match event:
            case BatchFinished(failed=failed):
                p.runs += 1
                if failed:
                    p.failed_runs += 1
                else:
                    p.successful_runs += 1
            case ImageReady():
                p.images += 1
            case JobFailed():
                p.job_failures += 1
            case PublishDone(ok=ok):
                if ok:
                    p.products += 1
                else:
                    p.publish_failures += 1
            case BreakerChanged(name=name, new_state=state):
                self._breakers[name] = state
            case _:
                return
        self._changed()

    def _service(self, service: str) -> ServiceCounters:
        counters = self._services.get(service)
        if counters is None:
            counters = ServiceCounters()
            counters.durations = type(counters.durations)(maxlen=self._max_samples)
            self._services[service] = counters
        return counters

    def record_call(self, service: str, seconds: float, ok: bool) -> None:
        counters = self._service(service)
        counters.calls += 1
        if not ok:
            counters.failures += 1
        if seconds >= 0:
            counters.durations.append(float(seconds))
        self._changed()

    def record_retry(self, service: str) -> None:
        self._service(service).retries += 1
        self._changed()

    def record_cache(self, service: str, hit: bool) -> None:
        counters = self._service(service)
        if hit:
            counters.cache_hits += 1
        else:
            counters.cache_misses += 1
        self._changed()

    def record_breaker(self, name: str, state: BreakerState | str) -> None:
        self._breakers[name] = str(state)
        self._changed()

    # --- outputs ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "updated_at": round(self._wall_clock(), 3),
            "pipeline": self._pipeline.snapshot(),
            "services": {name: c.snapshot() for name, c in sorted(self._services.items())},
            "breakers": dict(sorted(self._breakers.items())),
        }

    def _changed(self) -> None:
        self._dirty = True
        now = self._clock()
        if self._last_emit is None or now - self._last_emit >= self._min_interval:
            self._emit(now)
            return
        if self._trailing is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: flush() sends it
            delay = self._min_interval - (now - self._last_emit)
            self._trailing = loop.call_later(max(0.0, delay), self._trailing_emit)

    def _trailing_emit(self) -> None:
        self._trailing = None
        if self._dirty:
            self._emit(self._clock())

    def _emit(self, now: float) -> None:
        self._last_emit = now
        self._dirty = False
        self._sink_out(StatsUpdated(snapshot=self.snapshot()))

    def flush(self) -> None:
        """Send a pending ``StatsUpdated`` now (e.g. at the end of a batch or at shutdown)."""
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        if self._dirty:
            self._emit(self._clock())

    # --- persistence ------------------------------------------------------------------------

    def to_persisted(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "pipeline": self._pipeline.persisted(),
            "services": {name: c.persisted() for name, c in sorted(self._services.items())},
        }

    def restore(self, data: dict[str, Any] | None) -> None:
        """Adopt previously saved totals (unknown or broken fields are ignored)."""
        if not isinstance(data, dict):
            return
        if data.get("schema_version") != SCHEMA_VERSION:
            log.warning("ignoring saved statistics with schema %r", data.get("schema_version"))
            return
        pipeline = data.get("pipeline")
        if isinstance(pipeline, dict):
            self._pipeline = PipelineCounters.restore(pipeline)
        services = data.get("services")
        if isinstance(services, dict):
            for name, raw in services.items():
                if isinstance(name, str) and isinstance(raw, dict):
                    self._services[name] = ServiceCounters.restore(
                        raw, max_samples=self._max_samples
                    )

    def load(self) -> None:
        """Restore from the store (synchronous; call at start-up)."""
        if self._store is not None:
            self.restore(self._store.load())

    async def save(self) -> None:
        """Write the totals to the store from a worker thread."""
        if self._store is not None:
            await asyncio.to_thread(self._store.save, self.to_persisted())

    def reset(self) -> None:
        self._pipeline = PipelineCounters()
        self._services.clear()
        self._changed()
