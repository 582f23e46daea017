"""Benchmark: the reliability toolkit under injected faults, and the catalog cache.

1. 100 generation jobs on the sandbox ComfyUI with 30 % of HTTP requests failing
   (500, 503, 429 with Retry-After, connection reset, timeout), run by
   - POD Studio's pipeline (retry policy + circuit breaker + job-level retries), and
   - a baseline without retries (one attempt per request, one attempt per job);
   both also run fault-free, so the extra time the faults cost is measured in the same run.
   Prints success rate (target 100 %) and extra time over the fault-free run.
2. Catalog-style calls per run, cold vs warm (the persistent cache survives a restart).

    .venv/bin/python -m bench.resilience [--jobs 100] [--fault-rate 0.3] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
import uuid
from pathlib import Path

import httpx

from bench._common import isolate_home, median, table

FAULT_KINDS = ["500", "503", "429", "reset", "timeout"]
# Faster than the shipped defaults so a bench run takes seconds; same mechanisms.
BENCH_RESILIENCE = {
    "policies": {
        "comfyui": {
            "max_retries": 4,
            "initial_delay": 0.05,
            "max_delay": 0.5,
            "jitter": 0.05,
            "retry_after_cap": 2.0,
            "total_budget_seconds": 20.0,
        }
    },
    "breakers": {
        "comfyui": {
            "failure_threshold": 8,
            "window_seconds": 5.0,
            "reset_timeout": 0.5,
            "probe_timeout": 5.0,
        }
    },
}


async def run(jobs: int, fault_rate: float, *, resilient: bool) -> tuple[float, float]:
    """(success rate, wall seconds) for one pipeline on a fresh sandbox."""
    from pod_studio import wiring
    from pod_studio.adapters.comfyui.client import ComfyUIClient
    from pod_studio.adapters.storage.images import FolderImageStore
    from pod_studio.domain.events import null_sink
    from pod_studio.domain.models import GenerationRequest
    from pod_studio.sandbox.comfyui import ComfyUISandbox
    from pod_studio.services.generation import GenerationService

    sandbox = ComfyUISandbox(seconds_per_job=0.02, steps=1, rng_seed=7)
    async with sandbox as sb:
        sb.fault_kinds = list(FAULT_KINDS)
        sb.hang_seconds = 2.0
        template = wiring.load_template(None)
        out = Path(os.environ["POD_STUDIO_HOME"]) / f"out-{uuid.uuid4().hex[:6]}"
        request = GenerationRequest(
            prompts=[f"fault bench {i}" for i in range(jobs)], width=128, height=128
        )
        timeout = httpx.Timeout(connect=1.0, read=1.0, write=1.0, pool=1.0)
        if resilient:
            async with wiring.headless_generation(
                servers=[sb.url],
                out_dir=out,
                template=template,
                sink=null_sink,
                client_options={"timeout": timeout},
                resilience=BENCH_RESILIENCE,
            ) as gen:
                gen.service._retry_delay = 0.05
                gen.service._max_attempts = 10
                await gen.generators[0].wait_connected(5)
                sb.fault_rate = fault_rate
                started = time.perf_counter()
                result = await gen.service.run_batch(request)
        else:
            client = ComfyUIClient(sb.url, timeout=timeout, poll_initial=0.2, poll_max=1.0)
            service = GenerationService(
                [client], FolderImageStore(out), template, null_sink, max_attempts=1
            )
            await client.start()
            await client.wait_connected(5)
            sb.fault_rate = fault_rate
            started = time.perf_counter()
            try:
                result = await service.run_batch(request)
            finally:
                await client.aclose()
        wall = time.perf_counter() - started
    for reason in list(result.failures.values())[:5]:
        print(f"  failed ({'resilient' if resilient else 'baseline'}): {reason[:160]}")
    ok = jobs - len(result.failures) - len(result.cancelled)
    return ok / jobs, wall


async def catalog_calls() -> tuple[int, int]:
    """Catalog requests to the Printify sandbox: first run (cold) vs a restarted app (warm)."""
    from pod_studio.adapters.marketplaces.printify import PrintifyClient
    from pod_studio.adapters.storage.cache import DiskCache
    from pod_studio.adapters.storage.paths import app_paths
    from pod_studio.sandbox.printify import PrintifySandbox
    from pod_studio.services.cache import AsyncTTLCache, CachedLoader

    cache_dir = app_paths().catalog_cache_dir
    counts: list[int] = []
    async with PrintifySandbox() as sb:
        for _restart in range(2):
            disk = DiskCache(cache_dir)
            loader = CachedLoader(AsyncTTLCache(maxsize=256, ttl=3600), disk, default_ttl=3600)
            client = PrintifyClient(
                lambda: "sandbox-token",
                base_url=sb.base_url,
                shop_id=sb.shop_id,
                catalog_cache=loader,
            )
            before = sum(n for k, n in sb.request_counts.items() if "/catalog/" in k)
            for blueprint in (12, 77):
                providers = await client.print_providers(blueprint)
                for p in providers:
                    await client.variants(blueprint, p.id)
                    await client.shipping(blueprint, p.id)
            counts.append(sum(n for k, n in sb.request_counts.items() if "/catalog/" in k) - before)
            await client.aclose()
            disk.close()
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("pod_studio").setLevel(logging.ERROR)  # the retry log is not the output
    isolate_home()
    rows = []
    for name, resilient in (
        ("POD Studio (retry + breaker)", True),
        ("baseline, no retries", False),
    ):
        faulty = [
            asyncio.run(run(args.jobs, args.fault_rate, resilient=resilient))
            for _ in range(args.runs)
        ]
        clean = [asyncio.run(run(args.jobs, 0.0, resilient=resilient)) for _ in range(args.runs)]
        rate = median([f[0] for f in faulty])
        wall_f, wall_c = median([f[1] for f in faulty]), median([c[1] for c in clean])
        rows.append(
            [name, f"{rate * 100:.0f} %", wall_c, wall_f, f"+{(wall_f / wall_c - 1) * 100:.0f} %"]
        )
    print(
        f"resilience: {args.jobs} jobs, {args.fault_rate * 100:.0f} % of requests faulty "
        f"({', '.join(FAULT_KINDS)}), median of {args.runs} run(s)"
    )
    print(
        table(
            ["pipeline", "success (target 100 %)", "fault-free s", "with faults s", "extra time"],
            rows,
        )
    )
    cold, warm = asyncio.run(catalog_calls())
    print(f"\ncatalog requests per run: cold {cold}, warm after restart {warm} (target 0)")


if __name__ == "__main__":
    main()
