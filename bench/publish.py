"""Benchmark: publish 50 products (upload + create + publish each) to the Printify sandbox.

The sandbox enforces Printify's account-wide limits as sliding windows, time-scaled
(``--time-scale 0.05``: windows 20x shorter, the same request rate: 600/min global becomes 30
per 3 s, catalog 100/min becomes 5 per 3 s). The publish allowance is kept at its real 200
(per a 90 s window): a 50-product batch uses a quarter of it in reality, and scaling it to 10
would make the whole run wait on publishing alone.

Workload: 25 print-ready designs (2400 x 3000 PNG) x 2 templates (tee, hoodie), publish on.
The prepare step is stubbed (the design is its own print file): rendering is CPU work that
has nothing to do with the limits, and the tests cover it.

Rows, measured in the same run:

- baseline: fires every product's requests concurrently (catalog, upload, create, publish),
  retries a 429 with exponential backoff (0.25 s x 2^n, capped at 8 s, + jitter); no cache,
  no upload dedup.
- ours: the shipped engine (``open_core`` + ``run_publish``, what ``pod-studio publish``
  runs: a durable publish job per product, ``PublishService`` over the engine's
  ``PrintifyClient`` with the ResilienceHub guard and the app's ``PrintifyBudget``: each
  window counted exactly, rate smoothed to 10/s), given the sandbox's time-scaled windows.

Figures: wall time / floor, where floor is the least time the windows allow for the requests
that row got admitted (per bucket: (ceil(n / limit) - 1) x window, the max over buckets);
429 responses; API calls. Medians over ``--runs``.

    .venv/bin/python -m bench.publish --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import io
import logging
import math
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.composition.headless import open_core, run_publish
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import ImageInfo, PrintFileInfo
from pod_studio.domain.products import ProductTemplate, default_templates
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.services.ratelimit import PrintifyBudget, RateBudget

TOKEN = "bench-token"
PUBLISH_ALLOWANCE = 200


# --- sandbox with admitted-hit counters --------------------------------------------------------


def make_sandbox(time_scale: float) -> tuple[PrintifySandbox, collections.Counter[str]]:
    sandbox = PrintifySandbox(
        tokens={TOKEN}, time_scale=time_scale, publish_limit=PUBLISH_ALLOWANCE
    )
    admitted: collections.Counter[str] = collections.Counter()
    for name, bucket in sandbox.buckets.items():
        original = bucket.take

        def take(now: float, _name: str = name, _orig: Any = original) -> float | None:
            wait = _orig(now)
            if wait is None:
                admitted[_name] += 1
            return wait

        bucket.take = take  # type: ignore[method-assign]
    return sandbox, admitted


def floor_seconds(sandbox: PrintifySandbox, admitted: Mapping[str, int]) -> float:
    worst = 0.0
    for name, bucket in sandbox.buckets.items():
        n = admitted.get(name, 0)
        if n:
            worst = max(worst, (math.ceil(n / bucket.limit) - 1) * bucket.window)
    return worst


# --- workload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """A print-ready design file of the benchmark."""

    design_id: str
    path: Path
    sha256: str
    prompt: str


def make_designs(folder: Path, count: int) -> list[Design]:
    rng = random.Random(7)
    designs = []
    for i in range(count):
        path = folder / f"design-{i:02d}.png"
        im = Image.new("RGBA", (2400, 3000), (0, 0, 0, 0))
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256), 255)
        ImageDraw.Draw(im).ellipse((100, 100, 2300, 2900), fill=color)
        im.save(path, "PNG", compress_level=1)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        designs.append(Design(design_id=path.stem, path=path, sha256=digest, prompt=f"bold {i}"))
    return designs


def print_ready(src: Path, dst: Path, width: int, height: int) -> PrintFileInfo:
    """The stubbed prepare step: the design is already print-ready; it is its own print file."""
    data = src.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    info = ImageInfo(
        width=w, height=h, mode="RGBA", has_alpha=True, has_transparency=True, file_size=len(data)
    )
    return PrintFileInfo(
        path=str(src),
        width=w,
        height=h,
        dpi=300,
        file_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        has_transparency=True,
        icc_converted=False,
        content_box=(0, 0, w, h),
        source=info,
    )


@dataclass
class RunResult:
    wall: float
    floor: float
    status_429: int
    calls: int
    ok: int
    by_route: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.wall / self.floor if self.floor > 0 else float("inf")


def as_image(design: Design) -> GeneratedImage:
    """A design as a gallery image (what ``pod-studio publish`` reads from a manifest)."""
    return GeneratedImage(
        image_id=uuid.uuid5(uuid.NAMESPACE_URL, str(design.path)).hex,
        job_id=design.design_id,
        prompt=design.prompt,
        seed=0,
        width=2400,
        height=3000,
        file=str(design.path),
        sha256=design.sha256,
        server="",
        prompt_id="",
        seconds=0.0,
    )


async def run_ours(
    designs: list[Design],
    templates: dict[str, ProductTemplate],
    time_scale: float,
    budget: RateBudget,
    work: Path,
) -> RunResult:
    """The shipped engine (``open_core`` + ``run_publish``, what ``pod-studio publish`` runs):
    one durable publish job per design x template, through ``PublishService`` over the
    engine's ``PrintifyClient`` and its ResilienceHub guard."""
    sandbox, admitted = make_sandbox(time_scale)
    await sandbox.start()
    settings = AppSettings().with_changes(
        printify={"base_url": sandbox.base_url, "shop_id": sandbox.shop_id},
        product_templates=[t.model_dump(mode="json") for t in templates.values()],
    )
    try:
        async with open_core(
            settings=settings,
            secrets=MemorySecretStore({"printify_token": TOKEN}),
            paths=app_paths(work),
            connect=False,
        ) as core:
            core.hub.set_budget("printify", budget)  # the sandbox's time-scaled windows
            await core.platforms.configure_printify()
            # the stubbed prepare step (see the module docstring); the rest is as shipped
            core.publishing._prepare = print_ready
            started = time.monotonic()
            results = await run_publish(
                core, [as_image(d) for d in designs], list(templates), ["printify"],
                draft=False, horizon=300.0,
            )  # fmt: skip
            wall = time.monotonic() - started
    finally:
        await sandbox.stop()
    failures = [r.detail for r in results if not r.ok]
    if failures:
        print(f"  ours: {len(failures)} failed, e.g. {failures[0]}", file=sys.stderr)
    return RunResult(
        wall=wall,
        floor=floor_seconds(sandbox, admitted),
        status_429=sandbox.status_429_count,
        calls=sum(sandbox.request_counts.values()),
        ok=sum(r.ok for r in results),
        by_route=dict(sandbox.request_counts),
    )


async def run_baseline(
    designs: list[Design], templates: dict[str, ProductTemplate], time_scale: float
) -> RunResult:
    sandbox, admitted = make_sandbox(time_scale)
    await sandbox.start()
    rng = random.Random(11)
    shop = sandbox.shop_id
    headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "naive/1.0"}

    async def call(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
        for attempt in range(20):
            response = await http.request(method, path, json=body, headers=headers)
            if response.status_code != 429:
                response.raise_for_status()
                return response.json()
            await asyncio.sleep(min(8.0, 0.25 * 2**attempt) + rng.uniform(0, 0.25))
        raise RuntimeError(f"{method} {path}: still 429")

    async def product(http: httpx.AsyncClient, design: Design, tpl: ProductTemplate) -> bool:
        catalog = await call(
            http,
            "GET",
            f"/v1/catalog/blueprints/{tpl.blueprint_id}/print_providers/"
            f"{tpl.print_provider_id}/variants.json",
        )
        ids = [
            v["id"]
            for v in catalog["variants"]
            if v["options"]["color"] in tpl.colors and v["options"]["size"] in tpl.sizes
        ]
        contents = base64.b64encode(design.path.read_bytes()).decode("ascii")
        image = await call(
            http,
            "POST",
            "/v1/uploads/images.json",
            {"file_name": design.path.name, "contents": contents},
        )
        body = {
            "title": f"{design.prompt} {tpl.product_label}",
            "description": design.prompt,
            "tags": [],
            "blueprint_id": tpl.blueprint_id,
            "print_provider_id": tpl.print_provider_id,
            "variants": [{"id": i, "price": 2499, "is_enabled": True} for i in ids],
            "print_areas": [
                {
                    "variant_ids": ids,
                    "placeholders": [
                        {
                            "position": "front",
                            "images": [
                                {"id": image["id"], "x": 0.5, "y": 0.5, "scale": 1, "angle": 0}
                            ],
                        }
                    ],
                }
            ],
        }
        created = await call(http, "POST", f"/v1/shops/{shop}/products.json", body)
        await call(
            http,
            "POST",
            f"/v1/shops/{shop}/products/{created['id']}/publish.json",
            {"title": True, "description": True, "images": True, "variants": True, "tags": True},
        )
        return True

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    try:
        async with httpx.AsyncClient(
            base_url=sandbox.base_url, timeout=60.0, limits=limits
        ) as http:
            started = time.monotonic()
            done = await asyncio.gather(
                *(product(http, d, t) for d in designs for t in templates.values()),
                return_exceptions=True,
            )
            wall = time.monotonic() - started
    finally:
        await sandbox.stop()
    return RunResult(
        wall=wall,
        floor=floor_seconds(sandbox, admitted),
        status_429=sandbox.status_429_count,
        calls=sum(sandbox.request_counts.values()),
        ok=sum(1 for d in done if d is True),
        by_route=dict(sandbox.request_counts),
    )


def shipped_budget(time_scale: float, margin: float) -> PrintifyBudget:
    """The app's ``PrintifyBudget`` with the sandbox's time-scaled windows."""
    return PrintifyBudget(
        limits={
            "global": (max(1, round(600 * time_scale)), 60.0 * time_scale),
            "catalog": (max(1, round(100 * time_scale)), 60.0 * time_scale),
            "publish": (PUBLISH_ALLOWANCE, 1800.0 * time_scale),
        },
        margin=margin,
    )


async def main_async(args: argparse.Namespace) -> None:
    templates = {t.name: t for t in default_templates()}
    per_design = len(templates)
    count = max(1, args.products // per_design)
    rows: dict[str, list[RunResult]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        designs = make_designs(folder, count)
        print(
            f"{count * per_design} products ({count} designs x {per_design} templates), "
            f"time_scale {args.time_scale}, {args.runs} run(s)",
            file=sys.stderr,
        )
        for run in range(args.runs):
            for name, job in (
                ("baseline (concurrent + 429 backoff)", lambda: run_baseline(
                    designs, templates, args.time_scale)),
                # each run in a home of its own: a second run in the same one finds the
                # products made already (the durable jobs are done) and makes no call
                ("ours (PrintifyBudget)", lambda run=run: run_ours(
                    designs, templates, args.time_scale,
                    shipped_budget(args.time_scale, args.margin), folder / f"w{run + 1}")),
            ):  # fmt: skip
                if args.only and args.only not in name:
                    continue
                result = await job()
                rows[name].append(result)
                print(
                    f"  run {run + 1} {name}: {result.wall:.1f} s, floor {result.floor:.1f} s, "
                    f"429s {result.status_429}, calls {result.calls}, ok {result.ok}",
                    file=sys.stderr,
                )
    print()
    print(
        f"{'approach':<38} {'wall s':>7} {'floor s':>8} {'wall/floor':>10} {'429s':>5} "
        f"{'API calls':>9} {'uploads':>7} {'catalog':>7} {'ok':>4}"
    )
    for name, results in rows.items():
        med: Callable[[Callable[[RunResult], float]], float] = lambda f, rs=results: (  # noqa: E731
            statistics.median(f(r) for r in rs)
        )
        uploads = med(lambda r: r.by_route.get("POST /v1/uploads/images.json", 0))
        catalog = med(
            lambda r: sum(n for k, n in r.by_route.items() if k.startswith("GET /v1/catalog"))
        )
        print(
            f"{name:<38} {med(lambda r: r.wall):>7.1f} {med(lambda r: r.floor):>8.1f} "
            f"{med(lambda r: r.ratio):>10.2f} {med(lambda r: r.status_429):>5.0f} "
            f"{med(lambda r: r.calls):>9.0f} {uploads:>7.0f} {catalog:>7.0f} "
            f"{med(lambda r: r.ok):>4.0f}"
        )
    print(
        "\nfloor: least time the sandbox's sliding windows allow for the requests each row got "
        "admitted; medians over the runs."
    )


def main() -> None:
    logging.getLogger("pod_studio").setLevel(logging.ERROR)  # retries are counted, not logged
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help=(
            "seconds the sliding-window budget adds to each window (request latency jitter); "
            "the app's 0.25 s is 0.4 %% of Printify's 60 s window, 0.05 s is 1.7 %% of the "
            "sandbox's time-scaled 3 s window and still ten times its latency"
        ),
    )
    parser.add_argument("--only", help="run only the rows whose name contains this text")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
