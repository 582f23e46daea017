"""Benchmark: cold start to a painted window, POD Studio vs an empty PySide6 window.

Each run spawns a fresh Python process and times, from just before the spawn, until the
process says its main window has painted:
  - POD Studio: ``python -m pod_studio --exit-after-paint --server URL`` (the ``pod-studio``
    entry: the start-up checks, logging, the composition, the controllers and the window),
    offscreen, in its own ``POD_STUDIO_HOME``, on a sandbox ComfyUI in another process (so
    connecting never waits). "returning" has finished the set-up and kept its job database
    and window layout from an earlier start; "first start" is an empty home (the set-up
    wizard opens beside the window);
  - baseline: a process that shows an empty PySide6 ``QMainWindow`` and reports its first
    paint the same way.
Prints the median and the spread of --runs runs each (interleaved, after one warm-up of
each), and the ratio to the baseline. The target is < 1.5 s.

    .venv/bin/python -m bench.startup [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import median, table
from bench.generation import sandbox_process

TARGET_S = 1.5
ROOT = Path(__file__).resolve().parents[1]

EMPTY_WINDOW = """
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication([])
window = QMainWindow()


class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if watched is window and event.type() == QEvent.Type.Paint:
            window.removeEventFilter(self)
            QTimer.singleShot(0, report)
        return False


def report():
    print("painted", flush=True)
    app.quit()


watch = FirstPaint()
window.installEventFilter(watch)
window.show()
app.exec()
"""


def time_to_paint(argv: list[str], home: Path | None = None) -> float:
    """Seconds from spawning ``argv`` until it prints "painted" (it then quits by itself)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    if home is not None:
        env["POD_STUDIO_HOME"] = str(home)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "painted":
            painted = time.perf_counter() - started
            break
    else:
        raise RuntimeError(f"{argv[:3]} exited ({proc.wait()}) without painting a window")
    if proc.wait(60) != 0:
        raise RuntimeError(f"{argv[:3]} painted, then exited with {proc.returncode}")
    return painted


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="pod-bench-start-") as tmp,
        sandbox_process(seconds_per_job=0.5) as url,
    ):
        app = [sys.executable, "-m", "pod_studio", "--exit-after-paint", "--server", url]
        empty = [sys.executable, "-c", EMPTY_WINDOW]
        returning = Path(tmp) / "returning"
        _finish_setup(returning, url)
        time_to_paint(app, returning)  # warm-up: the job database and the layout now exist
        time_to_paint(empty)
        figures: dict[str, list[float]] = {"returning": [], "first": [], "empty": []}
        for run in range(args.runs):
            figures["returning"].append(time_to_paint(app, returning))
            figures["first"].append(time_to_paint(app, Path(tmp) / f"first-{run}"))
            figures["empty"].append(time_to_paint(empty))
    base = median(figures["empty"])

    def row(name: str, key: str) -> list[object]:
        values = figures[key]
        return [name, median(values), min(values), max(values), median(values) / base]

    print(
        f"cold start to a painted window (s), a fresh process each time, offscreen, "
        f"median of {args.runs} runs (target < {TARGET_S} s)"
    )
    print(
        table(
            ["process", "median s", "min s", "max s", "x empty window"],
            [
                row("POD Studio, returning", "returning"),
                row("POD Studio, first start", "first"),
                row("empty PySide6 window", "empty"),
            ],
        )
    )


def _finish_setup(home: Path, url: str) -> None:
    """A home whose seller finished the set-up (no wizard on the next start)."""
    from pod_studio.adapters.storage.paths import app_paths
    from pod_studio.adapters.storage.settings_store import SettingsStore
    from pod_studio.domain.settings import AppSettings

    store = SettingsStore(app_paths(home).settings_file)
    store.save(AppSettings(comfyui_servers=[url], first_run_done=True))


if __name__ == "__main__":
    main()
