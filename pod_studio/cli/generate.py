"""CLI layer: ``pod-studio generate`` — one batch of the durable queue, run headless.

The batch runs on the same engine as the window (``composition.headless``): killing the
command and running it again resumes the batch (finished jobs are never generated again).
``--out DIR`` and ``DIR/manifest.json`` are a view of the batch's finished jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from pod_studio.cli import exits
from pod_studio.cli.progress import ProgressPrinter
from pod_studio.composition.core import load_template
from pod_studio.composition.headless import (
    check_output_folder,
    open_core,
    preflight_servers,
    run_generation,
)
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.events import Event, EventSink, JobFailed
from pod_studio.domain.models import MAX_PROMPTS_PER_BATCH, GenerationRequest
from pod_studio.domain.urls import check_server_urls


def add_command(sub: Any) -> None:
    g = sub.add_parser(
        "generate",
        help="generate images headless and write them with a manifest.json",
        description="Generate one job per prompt × variation on one or more ComfyUI servers, "
        "through the durable job queue. Writes every image into --out plus OUT/manifest.json. "
        "The same command run again resumes the batch (nothing is generated twice). "
        + exits.POLICY,
    )
    g.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="ComfyUI base URL (repeat for several servers; default from settings, "
        "else http://127.0.0.1:8188)",
    )
    g.add_argument(
        "--workflow",
        metavar="FILE",
        help="a ComfyUI workflow saved in API format (default: the one in Settings, else the "
        "built-in text-to-image)",
    )
    g.add_argument(
        "--prompt-input",
        metavar="NODE.INPUT",
        help="where the prompt text goes, e.g. 6.text (default: detected)",
    )
    g.add_argument(
        "--set",
        action="append",
        metavar="NODE.INPUT=VALUE",
        help="set any workflow input, e.g. --set 3.steps=30 (repeatable)",
    )
    src = g.add_mutually_exclusive_group()
    src.add_argument("--prompt", action="append", metavar="TEXT", help="a prompt (repeatable)")
    src.add_argument("--prompts-file", metavar="FILE", help="a text file, one prompt per line")
    g.add_argument("--negative", metavar="TEXT", help="negative prompt")
    g.add_argument(
        "--variations",
        type=int,
        default=1,
        metavar="N",
        help="images per prompt, each with its own seed (default 1)",
    )
    g.add_argument("--seed", type=int, metavar="N", help="fixed seed (variations use N, N+1, ...)")
    g.add_argument("--width", type=int, metavar="PX", help="image width (default: workflow's)")
    g.add_argument("--height", type=int, metavar="PX", help="image height (default: workflow's)")
    g.add_argument("--checkpoint", metavar="NAME", help="checkpoint file on the server")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument(
        "--horizon",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wait for retries due within this many seconds (default 300)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")


def parse_set(values: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ValidationError(
                f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. --set 3.steps=30",
                service="cli",
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _read_prompts(args: argparse.Namespace) -> list[str]:
    prompts: list[str] = list(args.prompt or [])
    if args.prompts_file:
        path = Path(args.prompts_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read prompts file {path}: {exc}", service="cli") from exc
        prompts.extend(line for line in text.splitlines() if line.strip())
    return prompts


async def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    prompts = _read_prompts(args)
    if not prompts:
        print("error: no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE", file=err)
        return exits.USAGE
    if len(prompts) > MAX_PROMPTS_PER_BATCH:
        print(
            f"error: {len(prompts)} prompts; one batch takes at most "
            f"{MAX_PROMPTS_PER_BATCH}. Split the file.",
            file=err,
        )
        return exits.USAGE
    servers = check_server_urls(args.server or [])
    overrides = parse_set(args.set or [])
    try:
        request = GenerationRequest(
            prompts=prompts,
            negative=args.negative or "",
            variations=args.variations,
            seed=args.seed,
            width=args.width,
            height=args.height,
            checkpoint=args.checkpoint,
            overrides=overrides,
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        print(f"error: {first.get('loc', ('',))[0]}: {message}", file=err)
        return exits.USAGE
    template = None
    if args.workflow or args.prompt_input:
        template = load_template(args.workflow, prompt_input=args.prompt_input)
    out_dir = Path(args.out)
    await asyncio.to_thread(check_output_folder, out_dir)
    printer = ProgressPrinter(err, quiet=args.quiet)
    failed: dict[str, int] = {}  # job id -> exit class, for the jobs that failed in this run

    def note_failure(event: Event) -> None:
        if isinstance(event, JobFailed):
            failed[event.job_id] = event.exit_class

    sinks: list[EventSink] = [printer, note_failure]
    async with open_core(sinks=sinks, servers=servers or None, template=template) as core:
        from pod_studio.composition.headless import batch_specs

        problems = await preflight_servers(core, batch_specs(request, core.template, out_dir)[0])
        if problems and len(problems) >= len(core.generators):
            for p in problems:
                print(f"error: {p}", file=err)
            # every server unreachable: 3; any bad input (a missing node or model): 2
            return min(int(p.exit_class) for p in problems)
        for p in problems:
            print(f"warning: {p}", file=err)
        outcome = await run_generation(core, request, out_dir, horizon=args.horizon)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=err)
    if outcome.resumed:
        print(f"resumed a batch: {outcome.resumed} job(s) were recorded earlier", file=err)
    for job_id, reason in outcome.failures.items():
        print(f"FAILED {job_id}: {reason}", file=err)
    for line in outcome.unfinished:
        print(f"UNFINISHED {line} (run the same command again, or `pod-studio resume`)", file=err)
    print(f"{len(outcome.images)} image(s) in {out_dir} (manifest: {outcome.manifest})", file=err)
    classes = [failed.get(job_id, exits.FAILED) for job_id in outcome.failures]
    return exits.for_failures(classes, unfinished=bool(outcome.unfinished))
