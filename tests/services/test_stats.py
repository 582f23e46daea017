"""Run statistics: counting, throttled updates, persistence, Prometheus export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pod_studio.adapters.storage.metrics import render_prometheus, write_prometheus
from pod_studio.adapters.storage.stats_store import JsonStatsStore
from pod_studio.domain.events import (
    BatchFinished,
    BreakerChanged,
    Event,
    JobFailed,
    PublishDone,
    RetryScheduled,
    StatsUpdated,
)
from pod_studio.domain.stats import percentile
from pod_studio.services.stats import StatsService


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def image_ready(job_id: str) -> Event:
    from datetime import UTC, datetime

    from pod_studio.domain.events import ImageReady
    from pod_studio.domain.models import GeneratedImage

    image = GeneratedImage(
        image_id=f"img-{job_id}", job_id=job_id, prompt="cat", seed=1, width=64, height=64,
        file="/tmp/x.png", sha256="0" * 64, server="127.0.0.1:8188", prompt_id="p", seconds=1.0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return ImageReady(job_id=job_id, image=image)


def feed_run(stats: StatsService) -> None:
    stats(BatchFinished(batch_id="b1", succeeded=3, failed=0, cancelled=0, seconds=9.0))
    stats(BatchFinished(batch_id="b2", succeeded=1, failed=1, cancelled=0, seconds=4.0))
    for i in range(4):
        stats(image_ready(f"j{i}"))
    stats(JobFailed(job_id="j9", reason="node failed"))
    for ok in (True, True, True, False):
        stats(PublishDone(design_id="d", platform="printify", ok=ok))
    stats(BreakerChanged(name="printify", old_state="closed", new_state="open"))
    stats(RetryScheduled(service="printify", operation="x", attempt=1, cause="",
                         wait_seconds=1, wait_reason=""))  # fmt: skip


def test_pipeline_counts_from_events() -> None:
    stats = StatsService()
    feed_run(stats)
    p = stats.snapshot()["pipeline"]
    assert p == {
        "runs": 2,
        "successful_runs": 1,
        "failed_runs": 1,
        "success_rate": 0.5,
        "images": 4,
        "products": 3,
        "job_failures": 1,
        "publish_failures": 1,
        "errors": 2,
        "avg_products_per_run": 1.5,
    }
    assert stats.snapshot()["breakers"] == {"printify": "open"}


def test_service_counters_and_percentiles() -> None:
    stats = StatsService()
    for i in range(1, 101):
        stats.record_call("printify", i / 100, ok=i % 10 != 0)
    stats.record_retry("printify")
    stats.record_cache("printify", True)
    stats.record_cache("printify", True)
    stats.record_cache("printify", False)
    s = stats.snapshot()["services"]["printify"]
    assert s["calls"] == 100 and s["failures"] == 10 and s["successes"] == 90
    assert s["retries"] == 1
    assert s["cache_hit_rate"] == pytest.approx(2 / 3, abs=1e-5)
    assert s["p50_seconds"] == pytest.approx(0.505)
    assert s["p95_seconds"] == pytest.approx(0.9505)


def test_durations_are_bounded() -> None:
    stats = StatsService(max_samples=10)
    for i in range(1000):
        stats.record_call("etsy", float(i), ok=True)
    assert stats.snapshot()["services"]["etsy"]["p50_seconds"] == pytest.approx(994.5)
    assert len(stats.to_persisted()["services"]["etsy"]["durations"]) == 10


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_stats_updated_is_throttled_and_flushed() -> None:
    clock = FakeClock()
    out: list[Event] = []
    stats = StatsService(out.append, clock=clock, min_interval=0.25)
    stats.record_call("shopify", 0.1, ok=True)  # first change: sent at once
    for _ in range(50):
        stats.record_call("shopify", 0.1, ok=True)
    assert len(out) == 1
    clock.now = 0.3
    stats.record_retry("shopify")
    assert len(out) == 2
    stats.record_retry("shopify")
    stats.flush()
    assert len(out) == 3
    stats.flush()  # nothing pending
    assert len(out) == 3
    last = out[-1]
    assert isinstance(last, StatsUpdated)
    assert last.snapshot["services"]["shopify"]["calls"] == 51
    assert last.snapshot["services"]["shopify"]["retries"] == 2


@pytest.mark.asyncio
async def test_trailing_update_is_sent_on_the_loop() -> None:
    import asyncio

    out: list[Event] = []
    arrived = asyncio.Event()

    def sink(event: Event) -> None:
        out.append(event)
        if len(out) == 2:
            arrived.set()

    stats = StatsService(sink, min_interval=0.01)
    stats.record_retry("etsy")
    stats.record_retry("etsy")
    await asyncio.wait_for(arrived.wait(), 5)
    assert isinstance(out[-1], StatsUpdated)
    assert out[-1].snapshot["services"]["etsy"]["retries"] == 2


def test_snapshot_is_json_with_stable_keys() -> None:
    stats = StatsService(wall_clock=lambda: 1_700_000_000.0)
    feed_run(stats)
    stats.record_call("comfyui", 1.5, ok=True)
    snap = stats.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert list(snap) == ["schema_version", "updated_at", "pipeline", "services", "breakers"]
    assert snap["updated_at"] == 1_700_000_000.0


@pytest.mark.asyncio
async def test_persist_and_reload(tmp_path: Path) -> None:
    store = JsonStatsStore(tmp_path / "stats.json")
    stats = StatsService(store=store)
    feed_run(stats)
    stats.record_call("printify", 0.2, ok=False)
    stats.record_retry("printify")
    await stats.save()

    again = StatsService(store=JsonStatsStore(tmp_path / "stats.json"))
    again.load()
    before, after = stats.snapshot(), again.snapshot()
    assert after["pipeline"] == before["pipeline"]
    assert after["services"] == before["services"]
    again(BatchFinished(batch_id="b3", succeeded=1, failed=0, cancelled=0, seconds=1))
    assert again.snapshot()["pipeline"]["runs"] == 3


def test_corrupt_stats_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text("{not json", encoding="utf-8")
    stats = StatsService(store=JsonStatsStore(path))
    stats.load()
    assert stats.snapshot()["pipeline"]["runs"] == 0
    assert not path.exists()
    assert len(list(tmp_path.glob("stats.json.corrupt-*"))) == 1


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"schema_version": 99, "pipeline": {"runs": 5}},
        {"schema_version": 1, "pipeline": {"runs": "many", "images": -4, "products": 1e400}},
        {"schema_version": 1, "services": {"x": {"calls": 2, "failures": 9, "durations": "no"}}},
    ],
)
def test_restore_tolerates_bad_data(data: Any) -> None:
    stats = StatsService()
    stats.restore(data)
    snap = stats.snapshot()
    assert snap["pipeline"]["runs"] == 0 and snap["pipeline"]["images"] == 0
    if "x" in snap["services"]:
        assert snap["services"]["x"]["failures"] <= snap["services"]["x"]["calls"]


def test_prometheus_text_contains_the_series(tmp_path: Path) -> None:
    stats = StatsService()
    feed_run(stats)
    stats.record_call("printify", 0.2, ok=True)
    stats.record_call("printify", 0.4, ok=False)
    stats.record_retry("printify")
    stats.record_cache("printify", True)
    text = render_prometheus(stats.snapshot())
    for line in (
        'pod_runs_total{outcome="success"} 1.0',
        "pod_images_total 4.0",
        "pod_products_total 3.0",
        'pod_http_requests_total{outcome="ok",service="printify"} 1.0',
        'pod_http_requests_total{outcome="error",service="printify"} 1.0',
        'pod_retries_total{service="printify"} 1.0',
        'pod_circuit_state{service="printify"} 2.0',
        'pod_call_duration_seconds{quantile="0.5",service="printify"}',
        'pod_cache_requests_total{result="hit",service="printify"} 1.0',
    ):
        assert line in text, line
    path = write_prometheus(stats.snapshot(), tmp_path / "metrics" / "pod.prom")
    assert path.read_text(encoding="utf-8") == text


def test_prometheus_of_an_empty_snapshot() -> None:
    text = render_prometheus(StatsService().snapshot())
    assert "pod_images_total 0.0" in text
