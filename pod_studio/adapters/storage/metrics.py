"""Adapters layer: Prometheus text export of a statistics snapshot.

A private ``CollectorRegistry`` per export (nothing global, tests stay isolated) with one
collector that turns ``StatsService.snapshot()`` into metric families. ``write_prometheus``
uses ``write_to_textfile`` (temp file + ``os.replace``), for node_exporter's textfile
collector or for a support bundle.

Series: ``pod_runs_total{outcome}``, ``pod_images_total``, ``pod_products_total``,
``pod_errors_total{kind}``, ``pod_run_success_ratio``, ``pod_http_requests_total{service,
outcome}``, ``pod_retries_total{service}``, ``pod_cache_requests_total{service,result}``,
``pod_call_duration_seconds{service,quantile}`` (gauges), ``pod_circuit_state{service}``
(0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CIRCUIT_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        pipeline = snap.get("pipeline") or {}
        services = snap.get("services") or {}
        breakers = snap.get("breakers") or {}

        runs = CounterMetricFamily("pod_runs", "Finished batch runs.", labels=["outcome"])
        runs.add_metric(["success"], _num(pipeline.get("successful_runs")))
        runs.add_metric(["failure"], _num(pipeline.get("failed_runs")))
        yield runs
        yield CounterMetricFamily(
            "pod_images", "Images generated.", value=_num(pipeline.get("images"))
        )
        yield CounterMetricFamily(
            "pod_products", "Products published.", value=_num(pipeline.get("products"))
        )
        errors = CounterMetricFamily("pod_errors", "Failed jobs and publishes.", labels=["kind"])
        errors.add_metric(["job"], _num(pipeline.get("job_failures")))
        errors.add_metric(["publish"], _num(pipeline.get("publish_failures")))
        yield errors
        yield GaugeMetricFamily(
            "pod_run_success_ratio",
            "Share of runs without a failed job.",
            value=_num(pipeline.get("success_rate")),
        )

        requests = CounterMetricFamily(
            "pod_http_requests", "Remote call attempts.", labels=["service", "outcome"]
        )
        retries = CounterMetricFamily("pod_retries", "Retries scheduled.", labels=["service"])
        cache = CounterMetricFamily(
            "pod_cache_requests", "Cache lookups.", labels=["service", "result"]
        )
        duration = GaugeMetricFamily(
            "pod_call_duration_seconds",
            "Recent call durations (quantiles over the last samples).",
            labels=["service", "quantile"],
        )
        for name, figures in sorted(services.items()):
            calls = _num(figures.get("calls"))
            failures = _num(figures.get("failures"))
            requests.add_metric([name, "ok"], max(0.0, calls - failures))
            requests.add_metric([name, "error"], failures)
            retries.add_metric([name], _num(figures.get("retries")))
            cache.add_metric([name, "hit"], _num(figures.get("cache_hits")))
            cache.add_metric([name, "miss"], _num(figures.get("cache_misses")))
            for quantile, key in (("0.5", "p50_seconds"), ("0.95", "p95_seconds")):
                if figures.get(key) is not None:
                    duration.add_metric([name, quantile], _num(figures.get(key)))
        yield requests
        yield retries
        yield cache
        yield duration

        circuit = GaugeMetricFamily(
            "pod_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["service"],
        )
        for name, state in sorted(breakers.items()):
            circuit.add_metric([name], CIRCUIT_STATE_VALUES.get(str(state), 2.0))
        yield circuit


def _registry(snapshot: Mapping[str, Any]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def render_prometheus(snapshot: Mapping[str, Any]) -> str:
    """The snapshot in the Prometheus text exposition format."""
    return generate_latest(_registry(snapshot)).decode("utf-8")


def write_prometheus(snapshot: Mapping[str, Any], path: Path | str) -> Path:
    """Write the snapshot atomically to ``path`` (a ``.prom`` file). Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(target), _registry(snapshot))
    return target
