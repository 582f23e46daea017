"""Headless commands of ``pod-studio`` (no Qt): generate, doctor, stats, sandbox.

Every command shares the composition in ``wiring`` with the GUI. Progress and diagnostics go
to stderr; results (manifests, JSON) go to files or stdout. Exit status 0 means everything
asked for was done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError as PydanticValidationError

from pod_studio import __version__, cli_publish, wiring
from pod_studio.cli_queue import QUEUE_COMMANDS, add_queue_commands, run_queue_command
from pod_studio.domain.errors import PodStudioError, ValidationError, user_message
from pod_studio.domain.events import (
    BatchFinished,
    Event,
    ImageReady,
    JobFailed,
    JobQueued,
    JobResubmitted,
    JobStateChanged,
    RetryScheduled,
)
from pod_studio.domain.models import MAX_PROMPTS_PER_BATCH, GenerationRequest, JobState

COMMANDS = ("generate", "publish", "doctor", "stats", "sandbox", *QUEUE_COMMANDS)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def wants_cli(argv: Sequence[str]) -> bool:
    """True when ``argv`` names a headless command (or asks for the top-level help/version)."""
    if not argv:
        return False
    first = argv[0]
    return first in COMMANDS or first in ("-h", "--help", "--version")


def _parse_set(values: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise PodStudioError(
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
            raise PodStudioError(f"cannot read prompts file {path}: {exc}", service="cli") from exc
        prompts.extend(line for line in text.splitlines() if line.strip())
    return prompts


class _ProgressPrinter:
    """An event sink that reports generation progress on stderr, one line per change."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._total = 0
        self._done = 0
        self._prompts: dict[str, str] = {}

    def _say(self, text: str) -> None:
        if not self._quiet:
            print(text, file=self._stream, flush=True)

    def __call__(self, event: Event) -> None:
        match event:
            case JobQueued(job_id=job_id, prompt=prompt, seed=seed):
                self._total += 1
                self._prompts[job_id] = f"{prompt[:50]!r} seed {seed}"
            case JobStateChanged(job_id=job_id, state=JobState.RUNNING, server=server):
                self._say(f"running  {self._prompts.get(job_id, job_id)} on {server}")
            case ImageReady(job_id=job_id, image=image):
                self._done += 1
                self._say(
                    f"[{self._done}] image  {Path(image.file).name} "
                    f"({image.width}x{image.height}, {image.seconds:.1f} s)"
                )
            case JobFailed(job_id=job_id, reason=reason):
                self._say(f"failed   {self._prompts.get(job_id, job_id)}: {reason}")
            case JobResubmitted(job_id=job_id, reason=reason):
                self._say(f"resubmit {self._prompts.get(job_id, job_id)}: {reason}")
            case RetryScheduled(
                service=service, operation=op, attempt=n, cause=cause, wait_seconds=wait
            ):
                self._say(f"retry    {service} {op} attempt {n} in {wait:.1f} s: {cause}")
            case BatchFinished(succeeded=ok, failed=bad, cancelled=cancelled, seconds=secs):
                self._say(f"finished {ok} ok, {bad} failed, {cancelled} cancelled in {secs:.1f} s")
            case _:
                pass


async def _generate(args: argparse.Namespace) -> int:
    err = sys.stderr
    prompts = _read_prompts(args)
    if not prompts:
        print("error: no prompts: give --prompt TEXT (repeatable) or --prompts-file FILE", file=err)
        return EXIT_USAGE
    if len(prompts) > MAX_PROMPTS_PER_BATCH:
        print(
            f"error: {len(prompts)} prompts; one batch takes at most "
            f"{MAX_PROMPTS_PER_BATCH}. Split the file.",
            file=err,
        )
        return EXIT_USAGE
    overrides = _parse_set(args.set or [])
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
        print(f"error: {first.get('loc', ('',))[0]}: {first.get('msg')}", file=err)
        return EXIT_USAGE
    template = wiring.load_template(args.workflow, prompt_input=args.prompt_input)
    out_dir = Path(args.out)
    printer = _ProgressPrinter(err, quiet=args.quiet)
    async with wiring.headless_generation(
        servers=args.server, out_dir=out_dir, template=template, sink=printer
    ) as gen:
        problems = await gen.preflight_all()
        if problems:
            for p in problems:
                print(f"error: {p}", file=err)
            return EXIT_FAILED
        result = await gen.service.run_batch(request)
    for job in result.jobs:
        if job.job_id in result.failures:
            print(
                f"FAILED {job.prompt[:60]!r} seed {job.seed}: {result.failures[job.job_id]}",
                file=err,
            )
    print(
        f"{len(result.images)} image(s) written to {out_dir} "
        f"(manifest: {out_dir / 'manifest.json'})",
        file=err,
    )
    return EXIT_OK if result.ok and len(result.failures) == 0 else EXIT_FAILED


async def _doctor(args: argparse.Namespace) -> int:
    servers = args.server or wiring.configured_servers()
    worst = EXIT_OK
    for url in servers:
        report = await wiring.doctor(url)
        print(report.text)
        if not report.ok:
            worst = EXIT_UNREACHABLE
    return worst


def _stats(args: argparse.Namespace) -> int:
    snapshot = wiring.load_stats_snapshot()
    if args.json:
        print(json.dumps(snapshot, indent=2, sort_keys=True, default=str))
    else:
        print(wiring.format_stats(snapshot))
    if args.prometheus:
        wiring.export_prometheus(snapshot, Path(args.prometheus))
        print(f"Prometheus text written to {args.prometheus}", file=sys.stderr)
    return EXIT_OK


def _sandbox(args: argparse.Namespace) -> int:
    if args.kind == "comfyui":
        from pod_studio.sandbox import comfyui

        comfyui.serve_forever(
            args.host,
            args.port,
            seconds_per_job=args.seconds_per_job,
            fault_rate=args.fault_rate,
        )
    else:
        from pod_studio.sandbox import printify

        printify.main(["--host", args.host, "--port", str(args.port)])
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pod-studio",
        description="POD Studio: generate print-on-demand designs on ComfyUI and publish them. "
        "Without a command the desktop app opens (add --demo to run it on the built-in "
        "sandbox servers).",
    )
    parser.add_argument("--version", action="version", version=f"pod-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser(
        "generate",
        help="generate images headless and write them with a manifest.json",
        description="Generate one job per prompt × variation on one or more ComfyUI servers. "
        "Writes every image into --out plus OUT/manifest.json. Exit status 0 only when every "
        "job produced its images.",
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
        help="a ComfyUI workflow saved in API format (default: built-in text-to-image)",
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
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="fixed seed (variations use N, N+1, ...); default random",
    )
    g.add_argument("--width", type=int, metavar="PX")
    g.add_argument("--height", type=int, metavar="PX")
    g.add_argument("--checkpoint", metavar="NAME", help="checkpoint file on the server")
    g.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")

    d = sub.add_parser(
        "doctor",
        help="check a ComfyUI server and print a verdict",
        description="Checks each server: reachable, version, device, VRAM, queue length.",
    )
    d.add_argument("--server", action="append", metavar="URL")

    s = sub.add_parser(
        "stats",
        help="print the run statistics the Statistics dock shows",
        description="Prints pipeline and per-service statistics.",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--prometheus", metavar="FILE", help="also write Prometheus text to FILE")

    sb = sub.add_parser(
        "sandbox",
        help="run a stand-in server (for demos and tests)",
        description="Runs a sandbox server speaking the real protocol on 127.0.0.1 until Ctrl-C.",
    )
    cli_publish.add_publish_command(sub)
    add_queue_commands(sub)
    sb.add_argument("kind", choices=["comfyui", "printify"])
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument(
        "--port", type=int, default=None, help="port (default: 8188 for comfyui, 8790 for printify)"
    )
    sb.add_argument("--seconds-per-job", type=float, default=1.0)
    sb.add_argument("--fault-rate", type=float, default=0.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    started = time.monotonic()
    try:
        if args.command in QUEUE_COMMANDS:
            return run_queue_command(args)
        if args.command == "generate":
            return asyncio.run(_generate(args))
        if args.command == "publish":
            return asyncio.run(cli_publish.run_publish(args))
        if args.command == "doctor":
            return asyncio.run(_doctor(args))
        if args.command == "stats":
            return _stats(args)
        if args.command == "sandbox":
            return _sandbox(args)
    except PodStudioError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        details = getattr(exc, "details", None)
        for line in details or []:
            print(f"  - {line}", file=sys.stderr)
        bad_input = exc.service == "cli" or isinstance(exc, ValidationError)
        return EXIT_USAGE if bad_input else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
