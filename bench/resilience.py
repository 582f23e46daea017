"""Benchmark: the reliability toolkit under injected faults, and the catalog cache.

1. 100 generation jobs on the sandbox ComfyUI with 30 % of HTTP requests failing
   (500, 503, 429 with Retry-After, connection reset, timeout), run by the shipped engine
   (``open_core`` + ``run_generation``, what ``pod-studio generate`` runs)
   - as tuned (retry policy + circuit breaker + job-level retries), and
   - as a baseline with every retry off (one attempt per request, one attempt per job);
   both also run fault-free, so the extra time the faults cost is measured in the same run.
   Prints success rate (target 100 %) and extra time over the fault-free run.
2. Catalog-style calls per run, cold vs warm (the persistent cache survives a restart).

    .venv/bin/python -m bench.resilience [--jobs 100] [--fault-rate 0.3] [--runs 3]
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
from pod_studio.composition.overrides import (
    BreakerOverride,
    ComfyUIClientOverrides,
    ResilienceOverrides,
    RetryOverride,
)

FAULT_KINDS = ["500", "503", "429", "reset", "timeout"]
# Faster than the shipped defaults so a bench run takes seconds; same mechanisms.
BENCH_RESILIENCE = ResilienceOverrides(
    policies={
        "comfyui": RetryOverride(
            max_retries=4,
            initial_delay=0.05,
            max_delay=0.5,
            jitter=0.05,
            retry_after_cap=2.0,
            total_budget_seconds=20.0,
        )
    },
    breakers={
        "comfyui": BreakerOverride(
            failure_threshold=8, window_seconds=5.0, reset_timeout=0.5, probe_timeout=5.0
        )
    },
)


# The baseline: the same engine with every retry off (one attempt per request, one per job).
NO_RETRIES = ResilienceOverrides(
    policies={"comfyui": RetryOverride(max_retries=0)},
    breakers={"comfyui": BreakerOverride(failure_threshold=1_000_000)},
)


async def run(
    jobs: int, fault_rate: float, *, resilient: bool, seed: int = 7
) -> tuple[float, float]:
    """(success rate, wall seconds) for one pipeline on a fresh sandbox, both through the
    shipped engine (``open_core`` + ``run_generation``, what ``pod-studio generate`` runs);
    ``seed`` picks which requests fail."""
    from pod_studio.adapters.storage.paths import app_paths
    from pod_studio.composition.headless import open_core, run_generation
    from pod_studio.domain.models import GenerationRequest
    from pod_studio.sandbox.comfyui import ComfyUISandbox
    from pod_studio.services.orchestrator import OrchestratorOptions

    sandbox = ComfyUISandbox(seconds_per_job=0.02, steps=1, rng_seed=seed)
    async with sandbox as sb:
        sb.fault_kinds = list(FAULT_KINDS)
        sb.hang_seconds = 2.0
        run_dir = Path(os.environ["POD_STUDIO_HOME"]) / f"run-{uuid.uuid4().hex[:6]}"
        request = GenerationRequest(
            prompts=[f"fault bench {i}" for i in range(jobs)], width=128, height=128
        )
        timeout = httpx.Timeout(connect=1.0, read=1.0, write=1.0, pool=1.0)
        if resilient:
            options = OrchestratorOptions(retry_delay=lambda _n: 0.05, max_attempts=10)
            client = ComfyUIClientOverrides(timeout=timeout)
            resilience = BENCH_RESILIENCE
        else:
            options = OrchestratorOptions(max_attempts=1)
            client = ComfyUIClientOverrides(timeout=timeout, poll_initial=0.2, poll_max=1.0)
            resilience = NO_RETRIES
        async with open_core(
            servers=[sb.url],
            paths=app_paths(run_dir),
            options=options,
            comfyui_client=client,
            resilience=resilience,
        ) as core:
            await core.generators[0].wait_connected(5)
            sb.fault_rate = fault_rate
            started = time.perf_counter()
            outcome = await run_generation(core, request, run_dir / "out", horizon=30.0)
            wall = time.perf_counter() - started
    for reason in list(outcome.failures.values())[:5]:
        print(f"  failed ({'resilient' if resilient else 'baseline'}): {reason[:160]}")
    return len(outcome.images) / jobs, wall


async def catalog_calls() -> tuple[int, int]:
    """Catalog requests to the Printify sandbox: first run (cold) vs a restarted app (warm),
    through the engine's own Printify client (``build_core`` + ``configure_printify``)."""
    from pod_studio.adapters.storage.secrets import MemorySecretStore
    from pod_studio.composition.headless import open_core
    from pod_studio.domain.settings import AppSettings
    from pod_studio.sandbox.printify import PrintifySandbox

    counts: list[int] = []
    async with PrintifySandbox() as sb:
        settings = AppSettings().with_changes(
            printify={"base_url": sb.base_url, "shop_id": sb.shop_id}
        )
        secrets = MemorySecretStore({"printify_token": "sandbox-token"})
        for _restart in range(2):
            async with open_core(settings=settings, secrets=secrets, connect=False) as core:
                await core.platforms.configure_printify()
                client = core.platforms.printify
                assert client is not None, core.platforms.problems["printify"]
                before = sum(n for k, n in sb.request_counts.items() if "/catalog/" in k)
                for blueprint in (12, 77):
                    providers = await client.print_providers(blueprint)
                    for p in providers:
                        await client.variants(blueprint, p.id)
                        await client.shipping(blueprint, p.id)
                counts.append(
                    sum(n for k, n in sb.request_counts.items() if "/catalog/" in k) - before
                )
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("pod_studio").setLevel(logging.ERROR)  # the retry log is not the output
    isolate_home()
    rows = []
    for name, resilient in (
        ("POD Studio (retry + breaker)", True),
        ("baseline, no retries", False),
    ):
        # each run its own fault pattern (seed), the same ones for both pipelines
        faulty = [
            asyncio.run(run(args.jobs, args.fault_rate, resilient=resilient, seed=7 + i))
            for i in range(args.runs)
        ]
        clean = [asyncio.run(run(args.jobs, 0.0, resilient=resilient)) for _ in range(args.runs)]
        rate = median([f[0] for f in faulty])
        wall_f, wall_c = median([f[1] for f in faulty]), median([c[1] for c in clean])
        rows.append([name, f"{rate * 100:.0f} %", wall_c, wall_f, f"{wall_f / wall_c:.2f} x"])
    print(
        f"resilience: {args.jobs} jobs, {args.fault_rate * 100:.0f} % of requests faulty "
        f"({', '.join(FAULT_KINDS)}), median of {args.runs} run(s)"
    )
    print(
        table(
            [
                "pipeline",
                "success (target 100 %)",
                "fault-free s",
                "with faults s",
                "faults / fault-free (target <= 2.5 x)",
            ],
            rows,
        )
    )
    cold, warm = asyncio.run(catalog_calls())
    print(f"\ncatalog requests per run: cold {cold}, warm after restart {warm} (target 0)")


if __name__ == "__main__":
    main()
