"""Domain layer: run statistics counters, percentiles and the ``StatsStore`` port (pure).

``services/stats.py`` feeds these counters from events and from the call guards;
``adapters/storage/stats_store.py`` persists them as JSON so totals survive a restart.
Snapshots are plain JSON-able dicts with stable keys (the Stats dock, the CLI and the
Prometheus export all read the same shape).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

SCHEMA_VERSION = 1
DEFAULT_DURATION_SAMPLES = 512


def percentile(samples: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) of ``samples`` by linear interpolation; ``None`` if empty."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    if not samples:
        return None
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = math.ceil(pos)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


def _ratio(num: int, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def _count(value: Any) -> int:
    """A persisted counter, or 0 when the stored value is not a sane count."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value) or value < 0:
        return 0
    return int(value)


@dataclass
class PipelineCounters:
    runs: int = 0
    successful_runs: int = 0
    failed_runs: int = 0
    images: int = 0
    products: int = 0
    job_failures: int = 0
    publish_failures: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "successful_runs": self.successful_runs,
            "failed_runs": self.failed_runs,
            "success_rate": _ratio(self.successful_runs, self.runs),
            "images": self.images,
            "products": self.products,
            "job_failures": self.job_failures,
            "publish_failures": self.publish_failures,
            "errors": self.job_failures + self.publish_failures,
            "avg_products_per_run": _ratio(self.products, self.runs),
        }

    def persisted(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> PipelineCounters:
        return cls(**{f.name: _count(data.get(f.name)) for f in fields(cls)})


@dataclass
class ServiceCounters:
    calls: int = 0
    failures: int = 0
    retries: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=DEFAULT_DURATION_SAMPLES))

    def snapshot(self) -> dict[str, Any]:
        samples = list(self.durations)
        p50 = percentile(samples, 0.5)
        p95 = percentile(samples, 0.95)
        return {
            "calls": self.calls,
            "failures": self.failures,
            "successes": self.calls - self.failures,
            "retries": self.retries,
            "failure_rate": _ratio(self.failures, self.calls),
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_hit_rate": _ratio(self.cache_hits, self.cache_hits + self.cache_misses),
            "p50_seconds": None if p50 is None else round(p50, 6),
            "p95_seconds": None if p95 is None else round(p95, 6),
        }

    def persisted(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failures": self.failures,
            "retries": self.retries,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "durations": [round(d, 6) for d in self.durations],
        }

    @classmethod
    def restore(
        cls, data: Mapping[str, Any], *, max_samples: int = DEFAULT_DURATION_SAMPLES
    ) -> ServiceCounters:
        raw = data.get("durations")
        samples: Iterable[Any] = raw if isinstance(raw, list) else []
        durations: deque[float] = deque(maxlen=max_samples)
        for value in samples:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(value) and value >= 0:
                durations.append(float(value))
        calls = _count(data.get("calls"))
        return cls(
            calls=calls,
            failures=min(_count(data.get("failures")), calls),
            retries=_count(data.get("retries")),
            cache_hits=_count(data.get("cache_hits")),
            cache_misses=_count(data.get("cache_misses")),
            durations=durations,
        )


class StatsStore(Protocol):
    """Where cumulative statistics are kept between runs (synchronous; call via a thread)."""

    def load(self) -> dict[str, Any] | None:
        """The last saved data, or ``None`` when there is none (or it was unreadable)."""

    def save(self, data: dict[str, Any]) -> None: ...
