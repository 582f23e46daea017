"""Benchmark: the design library at 1,000 and 10,000 designs.

One home (``POD_STUDIO_HOME``) is filled through the gallery store as generation fills it
(512x512 PNG designs; the thumbnails the window makes from them are 256 px), first to 1,000
designs, then to 10,000. At each size it prints:
  - listing the gallery through the SQLite index (what the window does at start and on every
    refresh) beside the baseline of reading every JSON sidecar (the earlier scan), measured
    in the same run (median of --runs); the cost of adding one more design (median of 20: it
    must not grow with the library) and this process's RSS;
  - start to a painted gallery: ``pod-studio --exit-after-paint`` (the real entry, offscreen)
    from spawning the process until the window has painted the gallery's first cards
    (median of --runs; the first run makes the first page's thumbnails), beside the same
    start on an empty library;
  - scrolling: in the real main window (``bench.library_gui``, a fresh process), the GUI
    event-loop stall (how late each tick of a precise 5 ms timer comes: p50, p99, max) on the
    idle window and while the grid scrolls top to bottom one page per 16 ms frame, with the
    thumbnails shown and the window process's peak RSS;
  - the headless output folder (``pod-studio generate --out DIR``): the cost of adding one
    image to a manifest that lists that many, in time and bytes written (median of 20).
Targets: gallery painted < 2 s from start; stall p99 < 16 ms, max < 33 ms; add O(1);
RSS < 500 MB; the manifest appended (bytes per image independent of its size).

    .venv/bin/python -m bench.library [--runs 3] [--sizes 1000,10000] [--skip-gui]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench._common import median, pct, table
from pod_studio.adapters.storage.images import GalleryImageStore, OutputFolder
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec

SIZES = (1_000, 10_000)
PAINT_TARGET_S = 2.0
ROOT = Path(__file__).resolve().parents[1]


def design_png() -> bytes:
    """A 512x512 design (a gradient: decoding it costs what a real one of that size does)."""
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((512, 512)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def sidecar_scan(folder: Path) -> int:
    """The baseline: open and parse every record, as the gallery did before the index."""
    images = [
        GeneratedImage.model_validate_json(p.read_bytes())
        for p in folder.glob("*.json")
        if len(p.stem) == 32
    ]
    images.sort(key=lambda i: (i.created_at, i.image_id), reverse=True)
    return len(images)


async def _fill(store: GalleryImageStore, start: int, count: int, data: bytes) -> None:
    for n in range(start, start + count):
        spec = JobSpec(job_id=f"job{n:06d}", prompt=f"design number {n}", seed=n)
        await store.save(spec, data, ref=ImageRef(filename="x.png"), server="s", prompt_id="p",
                         seconds=0.1)  # fmt: skip


async def _add_seconds(store: GalleryImageStore, start: int, data: bytes) -> float:
    times = []
    for n in range(20):
        t0 = time.perf_counter()
        await _fill(store, start + n, 1, data)
        times.append(time.perf_counter() - t0)
    return median(times)


def _written_bytes() -> int:
    """Bytes this process has handed to write() so far (Linux), or -1."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def manifest_add(out: Path, listed: list[GeneratedImage], extra: list[GeneratedImage]
                 ) -> tuple[float, float]:  # fmt: skip
    """(median seconds, median bytes written) to add one image to a manifest of
    ``len(listed)`` entries, one ``OutputFolder.write`` per image (the images themselves are
    already in the folder, so only the manifest is written)."""
    shutil.rmtree(out, ignore_errors=True)
    OutputFolder(out).write(listed)
    times, written = [], []
    for image in extra:
        target = OutputFolder(out)
        before, t0 = _written_bytes(), time.perf_counter()
        target.write([image])
        times.append(time.perf_counter() - t0)
        written.append(float(_written_bytes() - before))
    entries = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(entries) == len(listed) + len(extra)
    return median(times), median(written)


def _child_env(home: Path) -> dict[str, str]:
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
                POD_STUDIO_HOME=str(home))  # fmt: skip


def scroll_stall(home: Path, url: str, designs: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.library_gui", "--server", url, "--designs", str(designs)],
        capture_output=True, text=True, env=_child_env(home), cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"bench.library_gui failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _finish_setup(home: Path, url: str) -> None:
    from pod_studio.adapters.storage.settings_store import SettingsStore
    from pod_studio.domain.settings import AppSettings

    paths = app_paths(home).ensure()
    SettingsStore(paths.settings_file).save(AppSettings(comfyui_servers=[url], first_run_done=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--skip-gui", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    from bench.generation import sandbox_process
    from bench.startup import time_to_paint

    tmp = Path(tempfile.mkdtemp(prefix="pod-bench-library-"))
    home, empty = tmp / "home", tmp / "empty"
    paths = app_paths(home)
    data = design_png()
    store = GalleryImageStore(paths.images_dir, thumbnails_dir=paths.thumbnails_dir)
    app = [sys.executable, "-m", "pod_studio", "--exit-after-paint"]
    lists, paints, stalls, manifests = [], [], [], []
    filled = 0
    try:
        with sandbox_process(seconds_per_job=0.5) as url:
            _finish_setup(home, url)
            _finish_setup(empty, url)
            if not args.skip_gui:
                time_to_paint([*app, "--server", url], empty)  # warm-up
                base = median([time_to_paint([*app, "--server", url], empty)
                               for _ in range(args.runs)])  # fmt: skip
                paints.append(["0 (empty library)", base, "", ""])
            for size in sizes:
                asyncio.run(_fill(store, filled, size - filled, data))
                filled = size
                index_times, scan_times = [], []
                for _ in range(args.runs):
                    fresh = GalleryImageStore(paths.images_dir)  # a window starting
                    t0 = time.perf_counter()
                    listed = asyncio.run(fresh.list_images())
                    index_times.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    scanned = sidecar_scan(paths.images_dir)
                    scan_times.append(time.perf_counter() - t0)
                assert len(listed) >= size and scanned >= size
                add = asyncio.run(_add_seconds(store, filled, data))
                filled += 20
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ri, rs = median(index_times), median(scan_times)
                lists.append([size, f"{ri * 1000:.0f} ms", f"{rs * 1000:.0f} ms", f"{rs / ri:.1f}x",
                              f"{add * 1000:.2f} ms", f"{rss:.0f} MB"])  # fmt: skip
                every = asyncio.run(fresh.list_images())
                secs, wrote = manifest_add(tmp / "out", every[20 : size + 20], every[:20])
                manifests.append([size, f"{secs * 1000:.2f} ms", f"{wrote / 1024:.1f} KB"])
                if args.skip_gui:
                    continue
                times = [time_to_paint([*app, "--server", url], home) for _ in range(args.runs)]
                paints.append([size, median(times), min(times), max(times)])
                stalls.append((size, scroll_stall(home, url, filled)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("design library: list through the index vs the sidecar scan (median of "
          f"{args.runs}); add one design (median of 20)")  # fmt: skip
    print(table(["designs", "index list", "sidecar scan", "speed-up", "add one", "max RSS"],
                lists))  # fmt: skip
    print("targets: add one does not grow with size; RSS < 500 MB")
    print("\nheadless output folder: add one image to a manifest of that many (median of 20)")
    print(table(["entries", "time per image", "bytes written per image"], manifests))
    print("target: appended, not rewritten (bytes per image independent of the entries)")
    if args.skip_gui:
        return
    print(
        f"\nstart to the gallery painted with its first cards (s), pod-studio "
        f"--exit-after-paint, offscreen, median of {args.runs} (target < {PAINT_TARGET_S} s)"
    )
    print(table(["designs", "median s", "min s", "max s"], paints))
    rows = []
    for size, r in stalls:
        for name, key in (("idle window", "idle"), ("scrolling the grid", "scroll")):
            s = r[key]
            rows.append([size, name, pct(s, 0.5), pct(s, 0.99), max(s), len(s)])
    print(
        "\nGUI event-loop stall (ms a 5 ms timer tick comes late), the real main window, "
        "scrolling top to bottom one page per 16 ms frame"
    )
    print(table(["designs", "window", "p50", "p99 (target <16)", "max (target <33)", "ticks"],
                rows))  # fmt: skip
    for size, r in stalls:
        print(f"{size} designs: scrolled {r['frames']} pages in {r['scroll_seconds']:.1f} s "
              f"({r['columns']} columns), {r['thumbnails']} thumbnails shown, window process "
              f"peak RSS {r['rss_mb']:.0f} MB (target < 500 MB)")  # fmt: skip


if __name__ == "__main__":
    main()
