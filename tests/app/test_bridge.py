"""QtEventBridge: one signal per event kind; events from other threads reach the GUI thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from PySide6.QtCore import QThread

from pod_studio.app.bridge import QtEventBridge
from pod_studio.domain.events import (
    BatchFinished,
    BreakerChanged,
    ConnectionChanged,
    Event,
    HealthChecked,
    ImageReady,
    JobCancelled,
    JobFailed,
    JobNodeExecuting,
    JobProgress,
    JobQueued,
    JobResubmitted,
    JobStateChanged,
    PreviewFrame,
    PublishDone,
    PublishStepChanged,
    RetryOutcome,
    RetryScheduled,
    StatsUpdated,
)
from pod_studio.domain.models import ConnectionState, GeneratedImage, JobState

_IMAGE = GeneratedImage(
    image_id="i",
    job_id="j",
    prompt="p",
    seed=1,
    width=8,
    height=8,
    file="/tmp/x.png",
    sha256="0",
    server="s",
    prompt_id="q",
    seconds=1.0,
)

CASES: list[tuple[Event, str]] = [
    (JobQueued(job_id="j", prompt="p", seed=1), "sig_job_queued"),
    (JobStateChanged(job_id="j", state=JobState.RUNNING), "sig_job_state_changed"),
    (JobProgress(job_id="j", value=1, max=2), "sig_job_progress"),
    (JobNodeExecuting(job_id="j", node="3"), "sig_job_node_executed"),
    (PreviewFrame(job_id="j", mime="image/png", data=b"x"), "sig_preview_frame"),
    (ImageReady(job_id="j", image=_IMAGE), "sig_image_ready"),
    (JobFailed(job_id="j", reason="r"), "sig_job_failed"),
    (JobCancelled(job_id="j"), "sig_job_cancelled"),
    (
        JobResubmitted(job_id="j", old_prompt_id="a", new_prompt_id="b", server="s", reason="r"),
        "sig_job_resubmitted",
    ),
    (
        BatchFinished(batch_id="b", succeeded=1, failed=0, cancelled=0, seconds=1.0),
        "sig_batch_finished",
    ),
    (ConnectionChanged(server="s", state=ConnectionState.OFFLINE), "sig_connection_changed"),
    (
        RetryScheduled(
            service="s",
            operation="o",
            attempt=1,
            cause="c",
            wait_seconds=1.0,
            wait_reason="backoff",
        ),
        "sig_retry_scheduled",
    ),
    (
        RetryOutcome(service="s", operation="o", attempts=2, outcome="succeeded"),
        "sig_retry_outcome",
    ),
    (BreakerChanged(name="n", old_state="closed", new_state="open"), "sig_breaker_changed"),
    (StatsUpdated(snapshot={"runs": 1}), "sig_stats_updated"),
    (HealthChecked(service="s", reachable=True), "sig_health_checked"),
    (
        PublishStepChanged(design_id="d", product="t", platform="p", state="s"),
        "sig_publish_step_changed",
    ),
    (PublishDone(design_id="d", platform="p", ok=True), "sig_publish_done"),
]


@pytest.mark.parametrize(("event", "signal"), CASES, ids=[s for _, s in CASES])
def test_each_event_kind_emits_its_signal(qtbot: Any, event: Event, signal: str) -> None:
    bridge = QtEventBridge()
    others: list[str] = []
    for name in {s for _, s in CASES} - {signal}:
        getattr(bridge, name).connect(lambda _e, n=name: others.append(n))
    with qtbot.waitSignal(getattr(bridge, signal), timeout=1000) as blocker:
        bridge(event)
    assert blocker.args == [event]
    assert others == []


def test_unknown_event_goes_to_other_signal(qtbot: Any) -> None:
    class Custom(Event):
        x: int = 1

    bridge = QtEventBridge()
    with qtbot.waitSignal(bridge.sig_other_event, timeout=1000) as blocker:
        bridge(Custom())
    assert isinstance(blocker.args[0], Custom)


def test_event_from_worker_thread_arrives_on_gui_thread(qtbot: Any) -> None:
    bridge = QtEventBridge()
    seen: list[tuple[Event, bool]] = []
    bridge.sig_job_progress.connect(
        lambda e: seen.append((e, QThread.currentThread() is bridge.thread()))
    )
    events = [JobProgress(job_id="j", value=i, max=50) for i in range(50)]

    def push() -> None:
        for e in events:
            bridge(e)

    worker = threading.Thread(target=push)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 50, timeout=2000)
    assert [e for e, _ in seen] == events
    assert all(on_gui for _, on_gui in seen)
