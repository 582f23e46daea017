"""Benchmark: does the GPU ever wait, and what does following a prompt cost?

1. Long jobs with the websocket up: a batch of ``--long-jobs`` prompts of ``--long-seconds``
   each (default 20 x 15 s, as real GPU jobs are 10-60 s) through the shipped engine
   (``open_core`` + ``run_generation``, what ``pod-studio generate`` runs), beside the common
   polling client (POST /prompt, GET /history with backoff 2 s x1.5 up to 10 s, 3 in flight)
   on a second sandbox at the same time. Prints HTTP requests per image (target <= 2.05),
   ``/history`` and ``/queue`` requests (target 0 for POD Studio) and span / sum of
   execution times.
2. The websocket refused (``/ws`` answers 404, as behind a proxy that does not pass
   websockets on): span / sum of execution times (target <= 1.05, as with it up) for
   ``--jobs`` prompts of ``--seconds`` each, beside the same batch with the socket up,
   and the longest time the simulated GPU sat with nothing queued. Median of ``--runs``.

    .venv/bin/python -m bench.gpu_busy [--runs 3] [--jobs 20] [--seconds 0.5]
        [--long-jobs 20] [--long-seconds 15] [--skip-long]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._common import isolate_home, median, table

DEFAULT_WORKFLOW = (
    Path(__file__).resolve().parents[1] / "resources" / "workflows" / "default_txt2img.json"
)


@dataclass
class Figures:
    span_over_exec: float  # first execution start -> last execution end, over their sum
    requests_per_image: float
    polls: int  # GET /history/... and GET /queue requests
    longest_idle: float  # seconds the GPU had nothing to run between two prompts


def _figures(sb: Any, requests: int, images: int) -> Figures:
    log = sorted(sb.execution_log, key=lambda item: item[1])
    busy = sum(end - start for _pid, start, end in log)
    gaps = [log[i][1] - log[i - 1][2] for i in range(1, len(log))]
    polls = sum(n for key, n in sb.request_counts.items() if key.startswith("GET /history"))
    polls += sb.request_counts["GET /queue"]
    return Figures(
        (log[-1][2] - log[0][1]) / busy,
        requests / max(1, images),
        polls,
        max(gaps, default=0.0),
    )


async def run_pod_studio(jobs: int, seconds: float, *, refuse_ws: bool) -> Figures:
    from pod_studio.composition.headless import open_core, run_generation
    from pod_studio.domain.models import GenerationRequest
    from pod_studio.sandbox.comfyui import ComfyUISandbox

    async with ComfyUISandbox(seconds_per_job=seconds, steps=4) as sb:
        sb.refuse_websocket = refuse_ws
        out = Path(os.environ["POD_STUDIO_HOME"]) / f"out-{uuid.uuid4().hex[:6]}"
        request = GenerationRequest(
            prompts=[f"gpu busy {i} {out.name}" for i in range(jobs)], width=256, height=256
        )
        async with open_core(servers=[sb.url]) as core:
            if not refuse_ws:
                await core.generators[0].wait_connected(5)
            before = sum(sb.request_counts.values()) - sb.request_counts["GET /ws"]
            outcome = await run_generation(core, request, out, horizon=60.0)
            after = sum(sb.request_counts.values()) - sb.request_counts["GET /ws"]
        assert outcome.ok, (outcome.failures, outcome.unfinished)
        return _figures(sb, after - before, len(outcome.images))


async def run_polling_baseline(jobs: int, seconds: float) -> Figures:
    """The common client: POST /prompt, poll /history with backoff; 3 prompts in flight."""
    from pod_studio.sandbox.comfyui import ComfyUISandbox

    text = DEFAULT_WORKFLOW.read_text(encoding="utf-8")
    async with ComfyUISandbox(seconds_per_job=seconds, steps=4) as sb:
        images = 0
        slots = asyncio.Semaphore(3)
        async with httpx.AsyncClient(base_url=sb.url, timeout=60) as client:

            async def one(i: int) -> None:
                nonlocal images
                graph: dict[str, Any] = json.loads(text)
                graph["6"]["inputs"]["text"] = f"baseline {i}"
                graph["3"]["inputs"]["seed"] = i
                async with slots:
                    pid = (await client.post("/prompt", json={"prompt": graph})).json()["prompt_id"]
                    delay = 2.0
                    while True:
                        await asyncio.sleep(delay)
                        history = (await client.get(f"/history/{pid}")).json()
                        if pid in history:
                            break
                        delay = min(delay * 1.5, 10.0)
                    for output in history[pid]["outputs"].values():
                        for image in output.get("images", []):
                            await client.get("/view", params=image)
                            images += 1

            before = sum(sb.request_counts.values())
            await asyncio.gather(*(one(i) for i in range(jobs)))
            requests = sum(sb.request_counts.values()) - before
        return _figures(sb, requests, images)


async def long_jobs(jobs: int, seconds: float) -> tuple[Figures, Figures]:
    """Both clients at once, each on its own sandbox: the wait is the jobs', not the CPU's."""
    ours, base = await asyncio.gather(
        run_pod_studio(jobs, seconds, refuse_ws=False), run_polling_baseline(jobs, seconds)
    )
    return ours, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--long-jobs", type=int, default=20)
    parser.add_argument("--long-seconds", type=float, default=15.0)
    parser.add_argument("--skip-long", action="store_true")
    args = parser.parse_args()
    isolate_home()

    def row(name: str, figs: list[Figures]) -> list[object]:
        return [
            name,
            median([f.span_over_exec for f in figs]),
            median([f.requests_per_image for f in figs]),
            median([float(f.polls) for f in figs]),
            median([f.longest_idle for f in figs]),
        ]

    headers = [
        "client",
        "span/exec (<=1.05)",
        "HTTP req/image",
        "/history+/queue requests",
        "longest GPU idle s",
    ]
    up = [
        asyncio.run(run_pod_studio(args.jobs, args.seconds, refuse_ws=False))
        for _ in range(args.runs)
    ]
    down = [
        asyncio.run(run_pod_studio(args.jobs, args.seconds, refuse_ws=True))
        for _ in range(args.runs)
    ]
    print(
        f"GPU busy: {args.jobs} jobs x {args.seconds:g} s on the sandbox, median of "
        f"{args.runs} runs"
    )
    print(
        table(
            headers,
            [row("POD Studio, websocket up", up), row("POD Studio, websocket refused", down)],
        )
    )
    if not args.skip_long:
        started = time.perf_counter()
        ours, base = asyncio.run(long_jobs(args.long_jobs, args.long_seconds))
        print(
            f"\nlong jobs: {args.long_jobs} x {args.long_seconds:g} s, websocket up, one run "
            f"({time.perf_counter() - started:.0f} s); target <= 2.05 req/image and no "
            "/history or /queue request"
        )
        print(
            table(
                headers,
                [row("POD Studio", [ours]), row("baseline poll (3 in flight)", [base])],
            )
        )


if __name__ == "__main__":
    main()
