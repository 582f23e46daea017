"""Benchmark: the design library at 1,000 and 10,000 designs.

Prints, for each size: listing the gallery through the SQLite index (what the window does at
start and on every refresh) beside the baseline of reading every JSON record (the earlier
sidecar scan), measured in the same run (median of 3); the cost of adding one more design
at that size (median of 20: it must not grow with the library); and the process RSS.
Targets: listing 10,000 in well under 2 s, add O(1), RSS < 500 MB.

    .venv/bin/python -m bench.library
"""

from __future__ import annotations

import asyncio
import io
import resource
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench._common import median, table
from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec

SIZES = (1_000, 10_000)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 90, 40)).save(buf, "PNG")
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


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="pod-bench-library-"))
    data = _png()
    store = GalleryImageStore(root / "images")
    rows = []
    filled = 0
    try:
        for size in SIZES:
            await _fill(store, filled, size - filled, data)
            filled = size
            index_times, scan_times = [], []
            for _ in range(3):
                fresh = GalleryImageStore(root / "images")  # a window starting
                t0 = time.perf_counter()
                listed = len(await fresh.list_images())
                index_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                scanned = sidecar_scan(root / "images")
                scan_times.append(time.perf_counter() - t0)
            assert listed >= size and scanned >= size
            add = await _add_seconds(store, filled, data)
            filled += 20
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            ri, rs = median(index_times), median(scan_times)
            rows.append([size, f"{ri * 1000:.0f} ms", f"{rs * 1000:.0f} ms", f"{rs / ri:.1f}x",
                         f"{add * 1000:.2f} ms", f"{rss:.0f} MB"])  # fmt: skip
        print("design library: list through the index vs the sidecar scan (median of 3)")
        print(table(["designs", "index list", "sidecar scan", "speed-up", "add one", "max RSS"],
                    rows))  # fmt: skip
        print("targets: list 10,000 < 2 s; add one does not grow with size; RSS < 500 MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
