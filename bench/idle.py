"""Benchmark: an idle engine stays idle.

Starts the engine (``build_core``, the window's queue loop without the window) on the sandbox
ComfyUI with nothing queued and counts, over a 20 s window, the scheduling passes that open a
write transaction on the job database (``claim_ready``). Baseline, measured in the same run:
the same engine with its idle sleep set to the busy tick (what it did before: a pass every
0.5 s). Target: at most one transaction per 5 s idle.

    .venv/bin/python -m bench.idle
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._common import isolate_home, table
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


async def main() -> None:
    isolate_home()
    async with ComfyUISandbox(seconds_per_job=0.1) as comfy:
        ours = await _count(comfy.url, OrchestratorOptions())
        isolate_home()
        base = await _count(comfy.url, OrchestratorOptions(idle_wake=0.5))
    print(f"idle engine, {WINDOW:.0f} s window: write transactions per minute")
    print(table(["engine", "per minute"], [["POD Studio", ours], ["baseline (0.5 s tick)", base]]))
    print("target: <= 12 per minute (one per 5 s)")


if __name__ == "__main__":
    asyncio.run(main())
