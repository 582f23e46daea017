"""E2E: SIGKILL real ``pod-studio`` processes at random points; nothing is lost or duplicated.

``pod-studio generate``, ``pod-studio publish``, ``pod-studio resume`` and the app's queue
(``tests/e2e/crash_worker.py``: ``build_core`` + ``start`` + ``run_queue``, no window) run
against a sandbox ComfyUI server, the export folder and the Printify sandbox (a subprocess),
and are killed at least 20 times (random delays, after progress lines, right after a product
create landed). The documented commands finish the work. The control run, with
reconciliation off in the queue worker, must show duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from tests.e2e.crash_worker import supervise, supervise_control

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.2)) as server:
        yield server


def test_kill_9_twenty_times_loses_and_duplicates_nothing(
    comfy: ServerThread, tmp_path: Path
) -> None:
    report = supervise(
        tmp_path / "run", comfy.url, kills=20, seed=7, prompts=1, variations=3, per_round=20
    )
    lines = "\n".join(report.lines())
    assert report.total_kills >= 20, lines
    kinds = {key.split(" ", 1)[0] for key in report.kills}
    assert {"generate", "publish"} <= kinds, lines
    assert report.final.startswith("done"), lines
    assert report.jobs >= 3 and report.lost_images == 0 and report.duplicate_images == 0, lines
    assert report.lost_listings() == 0 and report.duplicate_listings() == 0, lines


def test_control_without_reconciliation_shows_duplicates(
    comfy: ServerThread, tmp_path: Path
) -> None:
    """The same create-landed kills with reconciliation off: blind re-creates duplicate."""
    report = supervise_control(tmp_path / "control", comfy.url, kills=3, seed=3)
    lines = "\n".join(report.lines())
    assert report.kills["queue after 'create landed'"] >= 1, lines
    assert report.duplicate_listings("printify") > 0, lines
