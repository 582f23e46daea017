"""CLI layer: ``pod-studio publish`` — the designs of a ``generate`` run, as listings.

Each design × template × platform is one publish job of the durable queue (keyed by its
idempotency key: a design named twice is one listing), run by the same engine and
``PublishService`` as the window. Each platform's credential is checked before anything is
queued: a platform that is not usable (no token, a wrong token, no shop) fails its own
listings at once and nothing else, and the same command run once it is fixed publishes them
(nothing to retry by hand). Breaker pauses and rate budgets are waited out. One line per
listing on stdout: ``OK|FAIL design | template | platform | id or reason``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pod_studio.cli import exits
from pod_studio.cli.progress import ProgressPrinter
from pod_studio.composition.core import load_settings
from pod_studio.composition.headless import ListingResult, open_core, read_manifest, run_publish
from pod_studio.composition.publishing import load_product_templates_checked
from pod_studio.domain.errors import PodStudioError, ValidationError, user_message
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.urls import check_server_url

PLATFORMS = ("printify", "shopify", "etsy", "export")


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "publish",
        help="publish the images of a generate run as products",
        description="Publishes every image of a generate run's manifest as each product "
        "template on each platform, through the durable job queue, and prints one line per "
        "listing. " + exits.POLICY,
    )
    p.add_argument(
        "--manifest", required=True, metavar="PATH", help="a generate run's manifest.json or folder"
    )
    p.add_argument(
        "--template",
        action="append",
        required=True,
        metavar="NAME",
        help="product template name (repeatable), e.g. 'Classic T-shirt'",
    )
    p.add_argument(
        "--platform",
        action="append",
        required=True,
        choices=PLATFORMS,
        help="where to publish (repeatable)",
    )
    p.add_argument("--draft", action="store_true", help="create drafts only (do not publish)")
    p.add_argument(
        "--templates-file",
        metavar="FILE",
        help='product templates for this run ({"templates": [...]}; default: Settings)',
    )
    p.add_argument(
        "--printify-url", metavar="URL", help="Printify API base URL for this run (sandbox, proxy)"
    )
    p.add_argument("--shop-id", type=int, metavar="N", help="Printify shop id for this run")
    p.add_argument("--export-dir", metavar="DIR", help="export folder for this run")
    p.add_argument(
        "--horizon",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wait for retries due within this many seconds (default 300)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _for_this_run(
    settings: AppSettings, args: argparse.Namespace, templates: dict[str, ProductTemplate] | None
) -> AppSettings:
    """The settings with this run's overrides (not saved)."""
    changes: dict[str, Any] = {}
    printify = settings.printify.model_dump(mode="python")
    if args.printify_url:
        printify["base_url"] = check_server_url(args.printify_url)
    if args.shop_id is not None:
        printify["shop_id"] = args.shop_id
    if printify != settings.printify.model_dump(mode="python"):
        changes["printify"] = printify
    if args.export_dir:
        changes["export_dir"] = str(Path(args.export_dir).resolve())
    if templates is not None:
        changes["product_templates"] = [t.model_dump(mode="json") for t in templates.values()]
    return settings.with_changes(**changes) if changes else settings


def _line(result: ListingResult) -> str:
    mark = "OK  " if result.ok else "FAIL"
    name = Path(result.design.file).name
    return f"{mark} {name} | {result.template} | {result.platform} | {result.detail}"


async def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    designs, problems = await asyncio.to_thread(read_manifest, Path(args.manifest))
    settings, _warnings, _store = await asyncio.to_thread(load_settings)
    file = Path(args.templates_file) if args.templates_file else None
    templates, broken = await asyncio.to_thread(load_product_templates_checked, settings, file)
    settings = _for_this_run(settings, args, templates if file is not None else None)
    names = list(dict.fromkeys(args.template))
    unknown = [n for n in names if n not in templates and n not in broken]
    if unknown:
        known = ", ".join(repr(n) for n in sorted([*templates, *broken])) or "none"
        raise ValidationError(
            "unknown template",
            service="cli",
            user_message=f"no product template named {', '.join(map(repr, unknown))} "
            f"(known: {known})",
        )
    if not designs and not problems:
        raise ValidationError(
            "empty manifest", service="cli", user_message=f"{args.manifest} lists no images"
        )
    platforms = list(dict.fromkeys(args.platform))
    printer = ProgressPrinter(err, quiet=args.quiet)
    results: list[ListingResult] = []
    # publishing needs no ComfyUI: no server is contacted (generation jobs wait for the app)
    async with open_core(sinks=[printer], settings=settings, servers=[]) as core:
        usable: list[str] = []
        for platform, ok, reason in core.platforms.rows():
            if platform not in platforms:
                continue
            if ok:  # the credential is checked before anything is queued
                try:
                    await core.publishing.check_credentials(platform)
                except PodStudioError as exc:
                    ok, reason = False, user_message(exc)
            if ok:
                usable.append(platform)
            else:
                results += [
                    ListingResult(d, t, platform, False, reason) for d in designs for t in names
                ]
        good = [n for n in names if n in templates]
        for name in names:
            if name in broken:
                results += [
                    ListingResult(d, name, p, False, broken[name]) for d in designs for p in usable
                ]
        if usable and good:
            results += await run_publish(
                core, designs, good, usable, draft=args.draft, horizon=args.horizon
            )
    for line in problems:
        print(f"FAIL {line}", flush=True)
    for result in results:
        print(_line(result), flush=True)
    ok_count = sum(1 for r in results if r.ok)
    print(f"{ok_count} of {len(results)} listing(s) exist", file=err)
    if args.json:
        body = [
            {
                "design": r.design.file,
                "template": r.template,
                "platform": r.platform,
                "ok": r.ok,
                "detail": r.detail,
            }
            for r in results
        ]
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(body, indent=2), "utf-8")
    return exits.OK if ok_count == len(results) and not problems else exits.FAILED
