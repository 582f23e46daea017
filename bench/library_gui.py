"""Benchmark part (run by ``bench.library`` in a fresh process): scrolling the gallery grid.

In the real main window, composed as ``pod-studio`` composes it (``build_core``, the
controllers, ``MainWindow``, the job queue running), on the design library of
``POD_STUDIO_HOME``: once the gallery holds every design, the stall probe of
``bench.generation`` (a precise 5 ms QTimer; how late each tick comes) runs on the idle
window, then while the grid scrolls from top to bottom, one page (the scroll bar's page step)
per 16 ms frame, then 1 s more for the last thumbnails. Prints one JSON line: the stalls of
each phase, the designs listed, the thumbnails shown, the frames scrolled and the process's
peak RSS.

    python -m bench.library_gui --server URL --designs N   (POD_STUDIO_HOME names the home)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time

SCROLL_FRAME_MS = 16


def run(server: str, designs: int, idle_seconds: float) -> dict[str, object]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from bench.generation import _Probe
    from pod_studio.app import gc_guard
    from pod_studio.bootstrap import compose_window
    from pod_studio.composition.core import build_core

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    gc_guard.install(app)  # as bootstrap.main does: collections run on the GUI thread
    collections: list[tuple[int, float]] = []
    if os.environ.get("BENCH_DEBUG"):
        import gc

        started: list[float] = [0.0]

        def timed(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                collections.append((info["generation"], (time.perf_counter() - started[0]) * 1e3))

        gc.callbacks.append(timed)

    async def measure() -> dict[str, object]:
        probe = _Probe()
        # the window as bootstrap composes it (queue, health checks, breaker announcements)
        parts = compose_window(build_core(servers=[server]))
        window = parts.window
        window.resize(1280, 800)
        grid = window.gallery
        t0 = time.perf_counter()
        while grid.model.rowCount() < designs:
            if time.perf_counter() - t0 > 60:
                raise RuntimeError(f"the gallery shows {grid.model.rowCount()} of {designs}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the first page's thumbnails, the connection settling
        idle = await probe.record(idle_seconds)

        bar = grid.list_view.verticalScrollBar()
        shown: set[str] = set()
        grid.controller.sig_thumbnail_ready.connect(lambda image_id, _data: shown.add(image_id))
        at_bottom = asyncio.Event()
        frames = [0]

        def step() -> None:
            frames[0] += 1
            bar.setValue(min(bar.maximum(), bar.value() + bar.pageStep()))
            if bar.value() >= bar.maximum():
                at_bottom.set()

        scroller = QTimer()
        scroller.setInterval(SCROLL_FRAME_MS)
        scroller.timeout.connect(step)
        bar.setValue(0)
        probe.start()
        started = time.perf_counter()
        scroller.start()
        await at_bottom.wait()
        scroller.stop()
        scroll_seconds = time.perf_counter() - started
        await asyncio.sleep(1.0)  # the last page's thumbnails
        scrolled = probe.stop()
        result: dict[str, object] = {
            "designs": grid.model.rowCount(),
            "idle": idle,
            "scroll": scrolled,
            "frames": frames[0],
            "scroll_seconds": scroll_seconds,
            "thumbnails": len(shown),
            "columns": grid.column_count(),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        if collections:
            print(
                "collections (generation, ms), longest:",
                sorted(collections, key=lambda c: c[1])[-5:],
            )
            print("longest stalls while scrolling:", sorted(scrolled)[-8:])
            worst = sorted(range(len(scrolled)), key=scrolled.__getitem__)[-4:]
            print("at ticks", worst, "of", len(scrolled))
        window.close()
        await parts.aclose()
        return result

    return qasync.run(measure())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--designs", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(run(args.server, args.designs, args.idle_seconds)), flush=True)


if __name__ == "__main__":
    main()
