"""Benchmark: 40 generation jobs on one sandbox ComfyUI server, then on two, through the
shipped engine (``open_core``, the durable queue as the app and ``pod-studio generate`` run
it); prints both wall times (measured in the same run) and their ratio.

Each sandbox server simulates a GPU with ``--seconds-per-job`` per prompt; with two servers
the orchestrator keeps both queues fed, so the two-server wall time should be about half.

    .venv/bin/python bench/generation_two_servers.py [--jobs 40] [--seconds-per-job 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pod_studio.adapters.storage.paths import app_paths  # noqa: E402
from pod_studio.composition.headless import open_core  # noqa: E402
from pod_studio.domain.events import Event, ImageReady  # noqa: E402
from pod_studio.domain.models import GenerationRequest  # noqa: E402
from pod_studio.sandbox.comfyui import ComfyUISandbox  # noqa: E402


async def run(n_servers: int, jobs: int, seconds: float, size: int) -> tuple[float, dict[str, int]]:
    sandboxes = [ComfyUISandbox(seconds_per_job=seconds) for _ in range(n_servers)]
    for sb in sandboxes:
        await sb.start()
    try:
        per_server: collections.Counter[str] = collections.Counter()

        def sink(event: Event) -> None:
            if isinstance(event, ImageReady):
                per_server[event.image.server] += 1

        with tempfile.TemporaryDirectory(prefix="pod-gen2-") as tmp:
            async with open_core(
                sinks=[sink], servers=[sb.url for sb in sandboxes], paths=app_paths(tmp)
            ) as core:
                request = GenerationRequest(
                    prompts=["a retro sunset over mountains"],
                    variations=jobs,
                    seed=1,
                    width=size,
                    height=size,
                )
                ids = await core.orchestrator.enqueue_generation(request)
                started = time.perf_counter()
                summary = await core.orchestrator.run_until_done(ids, horizon=60.0)
                wall = time.perf_counter() - started
                if not summary.ok:
                    raise SystemExit(f"batch failed: {summary}")
                return wall, dict(per_server)
    finally:
        for sb in sandboxes:
            await sb.stop()


async def amain(args: argparse.Namespace) -> None:
    one, _ = await run(1, args.jobs, args.seconds_per_job, args.size)
    two, per_server = await run(2, args.jobs, args.seconds_per_job, args.size)
    print(f"jobs {args.jobs}, {args.seconds_per_job} s per prompt, {args.size} px")
    print(f"one server:  {one:.2f} s")
    print(f"two servers: {two:.2f} s  (images per server: {sorted(per_server.values())})")
    print(f"ratio two/one: {two / one:.2f}  (ideal 0.50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seconds-per-job", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=256)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
