"""E2E: SIGKILL the headless orchestrator at random points; nothing is lost or duplicated.

A real worker process (``tests/e2e/crash_worker.py``) runs a batch against a sandbox
ComfyUI server and two publish destinations; it is killed at least 20 times (random delays
and phase markers: mid-download, mid-save, mid-create, right after a create landed) and
restarted until it finishes. The control run without reconciliation must show duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from tests.e2e.crash_worker import supervise

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05)) as server:
        yield server


def test_kill_9_twenty_times_loses_and_duplicates_nothing(
    comfy: ServerThread, tmp_path: Path
) -> None:
    report = supervise(tmp_path / "run", [comfy.url], jobs=8, kills=20, seed=7)
    assert report.kills >= 20, report.lines()
    assert report.kill_points["download"] >= 1, report.kill_points
    assert report.kill_points["created"] + report.kill_points["create"] >= 1, report.kill_points
    assert '"dead": {}' in report.final_output, report.final_output
    assert report.images == report.jobs
    assert report.duplicate_images == 0
    assert report.lost_images == 0
    assert report.listings_total == report.expected_listings()
    assert report.duplicate_listings == 0, report.lines()


def test_control_without_reconciliation_shows_duplicates(
    comfy: ServerThread, tmp_path: Path
) -> None:
    """The same kills with reconciliation off: a blind re-create duplicates listings."""
    report = supervise(tmp_path / "control", [comfy.url], jobs=4, kills=6, seed=3, reconcile=False)
    assert report.kill_points["created"] >= 1, report.kill_points
    assert report.duplicate_listings > 0, report.lines()
