"""Dock tests: events through the bridge become rows, labels, countdowns and exports."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from pod_studio.composition.core import comfyui_breaker_name
from pod_studio.domain.errors import ServiceError
from pod_studio.domain.events import (
    BreakerChanged,
    HealthChecked,
    ImageReady,
    JobStateChanged,
    RetryOutcome,
    RetryScheduled,
    StatsUpdated,
)
from pod_studio.domain.models import GeneratedImage, JobState
from pod_studio.ui.docks import BreakersDock, HealthDock, RetryLogDock, StatsDock
from pod_studio.ui.widgets import RED


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_breakers_dock_shows_open_with_countdown_and_resets(qtbot: Any, app_ctl: Any) -> None:
    clock = Clock()
    dock = BreakersDock(app_ctl.resilience, clock=clock)
    qtbot.addWidget(dock)
    assert dock.stack.currentWidget() is dock.empty_label
    assert "No breakers yet" in dock.empty_label.text()
    app_ctl.bridge(
        BreakerChanged(
            name="printify",
            old_state="closed",
            new_state="open",
            failure_count=5,
            success_count=12,
            next_attempt_time=clock.now + 30,
            last_error="503 Service Unavailable",
        )
    )
    name, state, fails, oks, error, nxt, _ = dock.row_texts("printify")
    assert (name, state, fails, oks, error) == (
        "printify",
        "OPEN",
        "5",
        "12",
        "503 Service Unavailable",
    )
    assert nxt == "probe in 30 s"
    assert dock.table.item(0, dock.COL_STATE).foreground().color() == RED
    assert dock.timer.isActive()
    clock.now += 12
    dock.timer.timeout.emit()
    assert dock.row_texts("printify")[dock.COL_NEXT] == "probe in 18 s"
    clock.now += 40
    dock.timer.timeout.emit()
    assert dock.row_texts("printify")[dock.COL_NEXT] == "probe due"
    app_ctl.bridge(BreakerChanged(name="printify", old_state="open", new_state="half_open"))
    assert dock.row_texts("printify")[dock.COL_STATE] == "HALF-OPEN"
    app_ctl.bridge(BreakerChanged(name="printify", old_state="half_open", new_state="closed"))
    assert dock.row_texts("printify")[dock.COL_STATE] == "CLOSED"
    assert not dock.timer.isActive()
    # the buttons reset the engine's real breaker
    breaker = app_ctl.studio_parts.core.hub.breakers.get("printify")

    def trip() -> None:
        for _ in range(5):  # the printify threshold
            breaker.record_failure(breaker.admit(), ServiceError("503", service="printify"))
        qtbot.waitUntil(lambda: dock.row_texts("printify")[dock.COL_STATE] == "OPEN", timeout=3000)

    trip()
    reset = dock.table.cellWidget(0, dock.COL_RESET)
    qtbot.mouseClick(reset, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.row_texts("printify")[dock.COL_STATE] == "CLOSED", timeout=3000)
    assert breaker.state.value == "closed"
    trip()
    qtbot.mouseClick(dock.reset_all_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.row_texts("printify")[dock.COL_STATE] == "CLOSED", timeout=3000)
    assert breaker.state.value == "closed"


def _retry_events() -> list[Any]:
    return [
        RetryScheduled(
            service="printify",
            operation="create_product",
            attempt=1,
            cause="429 Too Many Requests",
            wait_seconds=2.0,
            wait_reason="Retry-After header",
        ),
        RetryScheduled(
            service="comfyui",
            operation="system_stats",
            attempt=1,
            cause="connection refused",
            wait_seconds=0.5,
            wait_reason="exponential backoff",
        ),
        RetryOutcome(
            service="printify", operation="create_product", attempts=2, outcome="succeeded"
        ),
        RetryOutcome(
            service="comfyui",
            operation="system_stats",
            attempts=5,
            outcome="gave up",
            cause="connection refused",
        ),
    ]


def test_retry_log_filters_and_exports_csv(qtbot: Any, app_ctl: Any, tmp_path: Path) -> None:
    dock = RetryLogDock(app_ctl.resilience)
    qtbot.addWidget(dock)
    assert dock.stack.currentWidget() is dock.empty_label
    for event in _retry_events():
        app_ctl.bridge(event)
    assert dock.proxy.rowCount() == 4
    first = dock.visible_rows()[-1]  # newest first: the first event is the last row
    assert first[1:] == (
        "printify",
        "create_product",
        "1",
        "429 Too Many Requests",
        "2.0 s, as the service asked",
        "retrying",
    )
    dock.service_filter.setCurrentIndex(dock.service_filter.findData("comfyui"))
    assert [r[6] for r in dock.visible_rows()] == ["gave up", "retrying"]
    dock.outcome_filter.setCurrentIndex(dock.outcome_filter.findData("gave up"))
    assert len(dock.visible_rows()) == 1
    target = tmp_path / "retries.csv"
    with qtbot.waitSignal(app_ctl.resilience.sig_export_finished, timeout=3000) as done:
        dock._on_export_file_selected(str(target))
    assert done.args[1] is True
    with target.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(dock.model.HEADERS)
    assert rows[1][1:] == ["comfyui", "system_stats", "5", "Connection refused", "", "gave up"]
    assert len(rows) == 2
    assert "1 rows written" in dock.message_label.text()


def test_retry_log_is_a_bounded_ring(qtbot: Any, app_ctl: Any) -> None:
    from pod_studio.ui.docks import RetryLogModel

    model = RetryLogModel(limit=3)
    for i in range(5):
        model.append_event(
            RetryScheduled(
                service="s",
                operation=f"op{i}",
                attempt=1,
                cause="c",
                wait_seconds=1,
                wait_reason="r",
            )
        )
    assert [r[2] for r in model.rows()] == ["op4", "op3", "op2"]  # newest first


def test_stats_dock_shows_snapshot_and_sparklines(qtbot: Any, app_ctl: Any) -> None:
    dock = StatsDock(app_ctl.stats)
    qtbot.addWidget(dock)
    assert "No statistics yet" in dock.empty_label.text()
    app_ctl.bridge(
        StatsUpdated(
            snapshot={
                "runs": 12,
                "success_rate": 0.75,
                "images": 40,
                "products": 18,
                "errors": 3,
                "avg_products_per_run": 1.5,
                "services": {
                    "printify": {
                        "calls": 20,
                        "failures": 2,
                        "retries": 4,
                        "cache_hits": 5,
                        "cache_misses": 5,
                        "cache_hit_rate": 0.5,
                        "p50_seconds": 0.12,
                        "p95_seconds": 0.9,
                    },
                    "comfyui": {
                        "calls": 3,
                        "cache_hits": 0,
                        "cache_misses": 0,
                        "cache_hit_rate": 0.0,
                    },
                },
            }
        )
    )
    assert dock.value_labels["runs"].text() == "12"
    assert dock.value_labels["success_rate"].text() == "75%"
    assert dock.value_labels["avg_products_per_run"].text() == "1.50"
    row = [dock.services_table.item(1, c).text() for c in range(7)]
    assert row == ["printify", "20", "2", "4", "50%", "120 ms", "900 ms"]
    assert dock.services_table.item(0, 4).text() == "—"  # ComfyUI calls are not cached
    image = GeneratedImage(
        image_id="i",
        job_id="j",
        prompt="p",
        seed=1,
        width=8,
        height=8,
        file="/x.png",
        sha256="0",
        server="s",
        prompt_id="q",
        seconds=2.5,
    )
    app_ctl.bridge(ImageReady(job_id="j", image=image))
    app_ctl.bridge(JobStateChanged(job_id="j", state=JobState.DONE))
    app_ctl.bridge(JobStateChanged(job_id="k", state=JobState.FAILED))
    assert dock.durations_spark.values() == [2.5]
    assert dock.success_spark.values() == [1.0, 0.5]
    assert "50%" in dock.success_label.text()


def test_health_dock_rows_and_check_now(qtbot: Any, app_ctl: Any) -> None:
    dock = HealthDock(app_ctl.resilience)
    qtbot.addWidget(dock)
    app_ctl.bridge(
        HealthChecked(
            service="printify",
            reachable=True,
            auth_ok=False,
            latency_ms=231.4,
            budget_left="58/60 per min",
            detail="401 token expired",
        )
    )
    texts = dock.row_texts("printify")
    assert texts[:5] == ["printify", "yes", "failed", "231 ms", "58/60 per min"]
    assert texts[6] == "401 token expired"
    assert dock.check_button.isEnabled()
    # "Check now" asks the engine's health service: the sandbox ComfyUI answers
    name = comfyui_breaker_name(app_ctl.studio_parts.comfy.url)
    qtbot.mouseClick(dock.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: name in dock._rows, timeout=10000)
    qtbot.waitUntil(lambda: dock.check_button.isEnabled(), timeout=10000)
    assert dock.row_texts(name)[1] == "yes"


def test_stats_dock_shows_no_success_rate_before_the_first_run(qtbot: Any, app_ctl: Any) -> None:
    dock = StatsDock(app_ctl.stats)
    qtbot.addWidget(dock)
    app_ctl.bridge(StatsUpdated(snapshot={"pipeline": {"runs": 0, "success_rate": 0.0}}))
    assert dock.value_labels["success_rate"].text() == "—"
