"""Benchmark: generation throughput and latency, POD Studio's client vs the common polling client.

Runs 20 jobs on the sandbox ComfyUI (0.25 s per job) with
  - POD Studio: the shipped engine (``open_core`` + ``run_generation``, what ``pod-studio
    generate`` runs: the durable queue over ComfyUIClient, websocket, 2 prompts in flight), and
  - baseline: the common client (POST /prompt, poll /history with backoff 2 s x1.5 up to 10 s,
    at most 3 prompts in flight),
and prints for both: wall time / sum of execution times (1.0 = the GPU never waits), HTTP
requests per image, and completion-to-event latency p50/p95 (server finished -> client has
the image). Then the two-server case (40 jobs on one sandbox vs two, through the durable
orchestrator: the wall-time ratio), and the GUI event-loop stall (p50, p99 and max of how late
each tick of a 5 ms timer comes) during a 100-image batch with live previews in the real main
window, beside the same probe on the idle window and on an empty PySide6 window in the same
process. Each figure is the median of --runs runs.

    .venv/bin/python -m bench.generation [--runs 3] [--jobs 20] [--gui-images 100]
        [--skip-gui] [--skip-two-servers] [--only-gui]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import isolate_home, median, pct, table

SECONDS_PER_JOB = 0.25
DEFAULT_WORKFLOW = (
    Path(__file__).resolve().parents[1] / "resources" / "workflows" / "default_txt2img.json"
)


@dataclass
class RunFigures:
    wall_over_exec: float
    requests_per_image: float
    latency_p50_ms: float
    latency_p95_ms: float
    images: int


def _exec_total(log: list[tuple[str, float, float]]) -> float:
    return sum(end - start for _pid, start, end in log)


async def run_pod_studio(jobs: int) -> RunFigures:
    """The shipped engine (``open_core``: what ``pod-studio generate`` runs), one batch."""
    from pod_studio.composition.headless import open_core, run_generation
    from pod_studio.domain.events import Event, ImageReady
    from pod_studio.domain.models import GenerationRequest
    from pod_studio.sandbox.comfyui import ComfyUISandbox

    async with ComfyUISandbox(seconds_per_job=SECONDS_PER_JOB, steps=4) as sb:
        seen: dict[str, float] = {}

        def sink(event: Event) -> None:
            if isinstance(event, ImageReady):
                seen[event.image.prompt_id] = time.perf_counter()

        out = Path(os.environ["POD_STUDIO_HOME"]) / f"out-{uuid.uuid4().hex[:6]}"
        request = GenerationRequest(
            prompts=[f"benchmark prompt {i} {out.name}" for i in range(jobs)],
            width=256,
            height=256,
        )
        async with open_core(sinks=[sink], servers=[sb.url]) as core:
            await core.generators[0].wait_connected(5)
            before = sum(sb.request_counts.values())
            started = time.perf_counter()
            outcome = await run_generation(core, request, out)
            wall = time.perf_counter() - started
            requests = sum(sb.request_counts.values()) - before
        assert outcome.ok, (outcome.failures, outcome.unfinished)
        finish = {pid: end for pid, _s, end in sb.execution_log}
        lat = [(seen[pid] - finish[pid]) * 1000 for pid in seen if pid in finish]
        return RunFigures(
            wall / _exec_total(sb.execution_log),
            requests / len(outcome.images),
            pct(lat, 0.5),
            pct(lat, 0.95),
            len(outcome.images),
        )


async def run_baseline(jobs: int) -> RunFigures:
    """The common way: POST /prompt, then poll /history with backoff; 3 prompts in flight."""
    from pod_studio.sandbox.comfyui import ComfyUISandbox

    graph_text = DEFAULT_WORKFLOW.read_text(encoding="utf-8")

    async with ComfyUISandbox(seconds_per_job=SECONDS_PER_JOB, steps=4) as sb:
        seen: dict[str, float] = {}
        images = 0
        sem = asyncio.Semaphore(3)
        async with httpx.AsyncClient(base_url=sb.url, timeout=30) as client:

            async def one(i: int) -> None:
                nonlocal images
                graph: dict[str, Any] = json.loads(graph_text)
                graph["6"]["inputs"]["text"] = f"benchmark prompt {i}"
                graph["3"]["inputs"]["seed"] = i
                graph["5"]["inputs"]["width"] = graph["5"]["inputs"]["height"] = 256
                async with sem:
                    r = await client.post("/prompt", json={"prompt": graph})
                    pid = r.json()["prompt_id"]
                    delay = 2.0
                    while True:
                        await asyncio.sleep(delay)
                        h = (await client.get(f"/history/{pid}")).json()
                        if pid in h:
                            seen[pid] = time.perf_counter()
                            break
                        delay = min(delay * 1.5, 10.0)
                    for out in h[pid]["outputs"].values():
                        for img in out.get("images", []):
                            await client.get("/view", params=img)
                            images += 1

            before = sum(sb.request_counts.values())
            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(jobs)))
            wall = time.perf_counter() - started
            requests = sum(sb.request_counts.values()) - before
        finish = {pid: end for pid, _s, end in sb.execution_log}
        lat = [(seen[pid] - finish[pid]) * 1000 for pid in seen if pid in finish]
        return RunFigures(
            wall / _exec_total(sb.execution_log),
            requests / images,
            pct(lat, 0.5),
            pct(lat, 0.95),
            images,
        )


@contextlib.contextmanager
def sandbox_process(seconds_per_job: float) -> Iterator[str]:
    """A sandbox ComfyUI in a child process (``pod-studio sandbox comfyui``); yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pod_studio",
            "sandbox",
            "comfyui",
            "--port",
            str(port),
            "--seconds-per-job",
            str(seconds_per_job),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ComfyUI sandbox listening on ..."
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


PROBE_MS = 5
STALL_P99_TARGET_MS = 16.0
STALL_MAX_TARGET_MS = 33.0


@dataclass
class StallRun:
    """Every stall of one run (ms a 5 ms timer tick came late) and the preview frames shown."""

    empty: list[float]
    idle: list[float]
    batch: list[float]
    previews: int
    batch_seconds: float


class _Probe:
    """A precise 5 ms QTimer on the GUI thread; each tick records how late it came (ms)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.stalls: list[float] = []
        self._last = 0.0
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(PROBE_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, (now - self._last) * 1000 - PROBE_MS))
        self._last = now

    async def record(self, seconds: float) -> list[float]:
        self.start()
        await asyncio.sleep(seconds)
        return self.stop()

    def start(self) -> None:
        self.stalls = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> list[float]:
        self._timer.stop()
        return self.stalls[1:]  # the first tick measures the start-up of the timer itself


def gui_stall(images: int) -> StallRun:
    """One run of the stall probe: an empty PySide6 window, then the real main window idle,
    then during an ``images`` batch with live previews (until the batch is in the gallery,
    plus 1 s for thumbnails)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    isolate_home()  # each run starts with an empty gallery and job database
    import qasync
    from PySide6.QtWidgets import QApplication, QMainWindow

    from pod_studio.app import gc_guard
    from pod_studio.bootstrap import compose_window
    from pod_studio.composition.core import build_core
    from pod_studio.domain.models import GenerationRequest

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    gc_guard.install(app)  # as bootstrap.main: garbage is collected on the GUI thread

    async def measure() -> StallRun:
        probe = _Probe()
        empty_window = QMainWindow()
        empty_window.show()
        await asyncio.sleep(0.3)
        empty = await probe.record(3.0)
        empty_window.close()
        # The sandbox runs in its own process, as a real ComfyUI would: rendering PNGs in this
        # process would compete for the GIL and blame the GUI for the server's work.
        with sandbox_process(seconds_per_job=0.02) as url:
            # the window as bootstrap composes it: connect, resume, keep the durable queue
            # moving, check health, announce breakers
            parts = compose_window(build_core(servers=[url]))
            core, ctl, bridge, window = parts.core, parts.controller, parts.bridge, parts.window
            await asyncio.sleep(0.5)  # let the runner open the ledger and connect
            await core.generators[0].wait_connected(10)
            await asyncio.sleep(0.5)
            idle = await probe.record(3.0)
            previews, ready = [0], [0]
            all_in = asyncio.Event()

            def preview_shown(_event: object) -> None:
                previews[0] += 1

            def image_ready(_event: object) -> None:
                ready[0] += 1
                if ready[0] >= images:
                    all_in.set()

            bridge.sig_preview_frame.connect(preview_shown)
            bridge.sig_image_ready.connect(image_ready)
            probe.start()
            t_start = time.perf_counter()
            ctl.generation.start(
                GenerationRequest(
                    prompts=[f"stall probe {i}" for i in range(images)], width=512, height=512
                )
            )
            await all_in.wait()  # every image of the batch has arrived
            batch_seconds = time.perf_counter() - t_start
            await asyncio.sleep(1.0)  # thumbnails and gallery refresh after the batch
            batch = probe.stop()
            if os.environ.get("BENCH_DEBUG"):
                print(f"batch {batch_seconds:.2f} s, longest stalls", sorted(batch)[-8:])
            window.close()
            await parts.aclose()
            return StallRun(empty, idle, batch, previews[0], batch_seconds)

    return qasync.run(measure())  # type: ignore[no-any-return]


def print_gui_stall(images: int, runs: int) -> None:
    """The stall figures, median of ``runs`` runs, beside the empty window and the targets."""
    results = [gui_stall(images) for _ in range(runs)]

    def row(name: str, pick: Any) -> list[object]:
        samples = [pick(r) for r in results]
        return [
            name,
            median([pct(s, 0.5) for s in samples]),
            median([pct(s, 0.99) for s in samples]),
            median([max(s) for s in samples]),
            median([float(len(s)) for s in samples]),
        ]

    print(
        f"\nGUI event-loop stall: how late a {PROBE_MS} ms timer tick comes (ms), "
        f"median of {runs} runs; the batch: {images} images with live previews "
        f"(median {median([float(r.previews) for r in results]):.0f} preview frames, "
        f"{median([r.batch_seconds for r in results]):.1f} s until the last image, then 1 s more)"
    )
    print(
        table(
            [
                "window",
                "p50",
                f"p99 (target <{STALL_P99_TARGET_MS:.0f})",
                f"max (target <{STALL_MAX_TARGET_MS:.0f})",
                "ticks",
            ],
            [
                row("empty PySide6 window", lambda r: r.empty),
                row("POD Studio idle", lambda r: r.idle),
                row(f"POD Studio, {images}-image batch", lambda r: r.batch),
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--gui-images", type=int, default=100)
    parser.add_argument("--skip-gui", action="store_true")
    parser.add_argument("--skip-two-servers", action="store_true")
    parser.add_argument("--only-gui", action="store_true", help="just the GUI stall probe")
    args = parser.parse_args()
    isolate_home()
    if args.only_gui:
        print_gui_stall(args.gui_images, args.runs)
        return
    ours = [asyncio.run(run_pod_studio(args.jobs)) for _ in range(args.runs)]
    base = [asyncio.run(run_baseline(args.jobs)) for _ in range(args.runs)]

    def row(name: str, figs: list[RunFigures]) -> list[object]:
        return [
            name,
            median([f.wall_over_exec for f in figs]),
            median([f.requests_per_image for f in figs]),
            median([f.latency_p50_ms for f in figs]),
            median([f.latency_p95_ms for f in figs]),
        ]

    print(
        f"generation: {args.jobs} jobs x {SECONDS_PER_JOB} s on the sandbox, "
        f"median of {args.runs} runs"
    )
    print(
        table(
            [
                "client",
                "wall/exec (target <=1.02)",
                "HTTP req/image (<=3)",
                "latency p50 ms",
                "latency p95 ms (<100)",
            ],
            [row("POD Studio", ours), row("baseline poll", base)],
        )
    )
    if not args.skip_two_servers:
        from bench.generation_two_servers import run as run_servers

        one, _ = asyncio.run(run_servers(1, 40, SECONDS_PER_JOB, 256))
        two, per_server = asyncio.run(run_servers(2, 40, SECONDS_PER_JOB, 256))
        print(
            f"\ntwo ComfyUI servers, 40 jobs: one server {one:.2f} s, two servers {two:.2f} s "
            f"(images per server {sorted(per_server.values())}), ratio {two / one:.2f} "
            "(ideal 0.50)"
        )
    if not args.skip_gui:
        print_gui_stall(args.gui_images, args.runs)


if __name__ == "__main__":
    main()
