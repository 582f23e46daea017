"""Benchmark: an idle app stays idle.

1. The engine (``build_core``, the window's queue loop without the window) on the sandbox
   ComfyUI with nothing queued: the scheduling passes that open a write transaction on the job
   database (``claim_ready``) over a 20 s window. Baseline, measured in the same run: the same
   engine with its idle sleep set to the busy tick (what it did before: a pass every 0.5 s).
   Target: at most one transaction per 5 s idle.
2. The whole window (``pod-studio --server URL``, offscreen, in a child process, through
   ``bootstrap.main``): timer and socket wake-ups of its event loop per minute over
   ``--seconds`` after a settling period, by source (Qt timers, asyncio timers under qasync,
   socket notifiers), beside an empty PySide6 window on a qasync loop. Target: no source
   wakes more than once per 5 s (12 per minute).

    .venv/bin/python -m bench.idle [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import isolate_home, table
from bench.generation import sandbox_process
from pod_studio.composition.core import build_core
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.services.orchestrator import OrchestratorOptions

WINDOW = 20.0


async def _count(url: str, options: OrchestratorOptions) -> int:
    core = build_core(servers=[url], options=options)
    claims = 0
    original = core.ledger.claim_ready

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await original(*args, **kwargs)

    core.ledger.claim_ready = counting  # type: ignore[method-assign]
    await core.start()
    runner = asyncio.create_task(core.run_queue())
    await asyncio.sleep(3.0)  # settle: connect, workflow check
    claims = 0
    started = time.monotonic()
    await asyncio.sleep(WINDOW)
    elapsed = time.monotonic() - started
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await core.aclose()
    return round(claims * 60.0 / elapsed)


# Run in a child process: counts the wake-ups of an idle window's event loop by source.
WINDOW_PROBE = r"""
import collections, json, os, sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

settle, seconds, url = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
app = QApplication([sys.argv[0]])
counts = collections.Counter()
state = {"on": False}


# A wake-up: the first timer or socket event after 100 ms of quiet (qasync runs even
# call_soon as a 0 ms Qt timer, so the events of one burst are counted once).
class Count(QObject):

    last = 0.0

    def eventFilter(self, watched, event):
        kind = event.type()
        wanted = kind in (QEvent.Type.Timer, QEvent.Type.SockAct)
        if state["on"] and watched is not stopper and wanted:
            now = time.monotonic()
            if now - self.last > 0.1:
                if kind == QEvent.Type.SockAct:
                    counts["socket"] += 1
                else:
                    name = type(watched).__name__
                    label = watched.objectName() or name
                    counts["asyncio timer" if name == "_SimpleTimer" else f"Qt timer: {label}"] += 1
            self.last = now
        return False


counter = Count()
app.installEventFilter(counter)


def start():
    state["on"] = True
    stopper.start(int(seconds * 1000))


def stop():
    state["on"] = False
    print(json.dumps(dict(counts)), flush=True)
    for widget in app.topLevelWidgets():
        if hasattr(widget, "quit"):
            widget.quit()
            return
    app.quit()


stopper = QTimer()
stopper.setSingleShot(True)
stopper.timeout.connect(stop)
QTimer.singleShot(int(settle * 1000), start)
if url == "-":
    import qasync, asyncio
    window = QMainWindow()
    window.show()

    async def idle():
        await asyncio.sleep(settle + seconds + 1)

    qasync.run(idle())
else:
    from pod_studio import bootstrap
    from pod_studio.cli.main import parse_args
    bootstrap.main(parse_args(["--server", url]))
"""


def window_wakeups(url: str, settle: float, seconds: float) -> dict[str, float]:
    """Wake-ups per minute by source for the window on ``url`` ("-": an empty window)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env["POD_STUDIO_HOME"] = tempfile.mkdtemp(prefix="pod-bench-idle-")
    out = subprocess.run(
        [sys.executable, "-c", WINDOW_PROBE, str(settle), str(seconds), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=settle + seconds + 60,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    found = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not found:
        raise RuntimeError(f"the window probe printed no counts: {out.stderr[-2000:]}")
    last = found[-1]
    return {k: v * 60.0 / seconds for k, v in json.loads(last).items()}


async def engine() -> None:
    isolate_home()
    async with ComfyUISandbox(seconds_per_job=0.1) as comfy:
        ours = await _count(comfy.url, OrchestratorOptions())
        isolate_home()
        base = await _count(comfy.url, OrchestratorOptions(idle_wake=0.5))
    print(f"idle engine, {WINDOW:.0f} s window: write transactions per minute")
    print(table(["engine", "per minute"], [["POD Studio", ours], ["baseline (0.5 s tick)", base]]))
    print("target: <= 12 per minute (one per 5 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(engine())
    empty = window_wakeups("-", args.settle, args.seconds)
    with sandbox_process(seconds_per_job=0.1) as url:
        ours = window_wakeups(url, args.settle, args.seconds)
    sources = sorted(set(ours) | set(empty))
    print(f"\nidle window, {args.seconds:.0f} s after {args.settle:.0f} s to settle:")
    rows = [[name, ours.get(name, 0.0), empty.get(name, 0.0)] for name in sources]
    rows.append(["all", sum(ours.values()), sum(empty.values())])
    print(table(["wake-ups per minute", "POD Studio", "empty PySide6 window"], rows))
    print("target: no source above 12 per minute (once per 5 s)")


if __name__ == "__main__":
    main()
