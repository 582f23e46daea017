"""CLI layer (Qt-free): the durable job queue commands of ``pod-studio``.

- ``pod-studio queue [--json] [--pause | --unpause]``: every job of the ledger (queued,
  running, waiting to retry, dead-lettered, done) with counts; pause/resume the whole queue.
- ``pod-studio retry ID | --all-dead``: requeue a dead (or cancelled, waiting) job now.
- ``pod-studio discard ID``: remove a job that is not running.
- ``pod-studio resume``: headless; recover what a crash left, finish whatever the ledger says
  is unfinished, then exit 0 only if nothing is left failed or unfinished.

``add_queue_commands(subparsers)`` registers them; ``run_queue_command(args)`` runs one.
``wiring.open_orchestrator()`` is the composition the headless resume runs on (the same pieces the
app wires).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pod_studio import wiring
from pod_studio.domain.errors import PodStudioError, user_message
from pod_studio.domain.events import Event, ImageReady, JobFailed, PublishDone
from pod_studio.domain.jobs import JobStatus
from pod_studio.domain.ledger_port import JobLedger, UnknownJobError
from pod_studio.domain.orchestration import DeadLettered, QueueSnapshot
from pod_studio.services.orchestrator import (
    queue_entry,
)

QUEUE_COMMANDS = ("queue", "retry", "resume", "discard")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_queue_commands(subparsers: Any) -> None:
    """Register ``queue``, ``retry``, ``discard`` and ``resume`` on an argparse subparsers."""
    q = subparsers.add_parser(
        "queue",
        help="list the durable job queue (and the dead-letter queue)",
        description="Lists every job recorded in the job database: state, attempts, next "
        "retry, last error. Dead jobs form the dead-letter queue.",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    pause = q.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true", help="pause the whole queue")
    pause.add_argument("--unpause", action="store_true", help="resume a paused queue")

    r = subparsers.add_parser(
        "retry",
        help="requeue a failed job now",
        description="Requeues a dead, cancelled or waiting job (attempts reset; steps already "
        "done are not redone). Run `pod-studio resume` (or the app) to process it.",
    )
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("job_id", nargs="?", metavar="ID")
    target.add_argument("--all-dead", action="store_true", help="every dead-lettered job")

    d = subparsers.add_parser("discard", help="remove a job that is not running")
    d.add_argument("job_id", metavar="ID")

    s = subparsers.add_parser(
        "resume",
        help="finish every unfinished job headless, then exit",
        description="Recovers what a crash left (prompts on the server, listings in flight), "
        "runs every queued job and retries due soon, then exits: 0 only if nothing is left "
        "failed or unfinished.",
    )
    s.add_argument("--server", action="append", metavar="URL", help="ComfyUI base URL")
    s.add_argument("--export-dir", metavar="DIR", help="export folder (default: settings)")
    s.add_argument(
        "--horizon",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wait for retries due within this many seconds (default 300)",
    )
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")


def run_queue_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "queue":
            return asyncio.run(_queue(args, sys.stdout))
        if args.command == "retry":
            return asyncio.run(_retry(args, sys.stdout))
        if args.command == "discard":
            return asyncio.run(_discard(args, sys.stdout))
        if args.command == "resume":
            return asyncio.run(_resume(args, sys.stdout))
    except PodStudioError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"error: unknown command {args.command}", file=sys.stderr)
    return EXIT_USAGE


# --- ledger-only commands ------------------------------------------------------------------------


async def _snapshot(ledger: JobLedger) -> QueueSnapshot:
    counts = await ledger.counts()
    return QueueSnapshot(
        paused=await ledger.is_paused(),
        entries=[queue_entry(j) for j in await ledger.list_jobs()],
        counts={k.value: v for k, v in counts.items()},
    )


def format_queue(snapshot: QueueSnapshot, now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"queue {'PAUSED' if snapshot.paused else 'running'}"]
    for e in snapshot.entries:
        when = ""
        if e.state is JobStatus.RETRY_WAIT:
            when = f" next try in {max(0.0, e.next_run_at - now):.0f} s"
        show_error = e.last_error and (e.state is JobStatus.DEAD or not e.state.is_terminal)
        error = f" — {e.last_error}" if show_error else ""
        lines.append(
            f"  {e.state.value:<12} {e.kind.value:<8} {e.attempts}/{e.max_attempts} "
            f"{e.job_id}  {e.label[:60]}{when}{error}"
        )
    counts = ", ".join(f"{k} {v}" for k, v in snapshot.counts.items() if v)
    lines.append(f"total: {counts or 'no jobs'}")
    dead = snapshot.dead()
    if dead:
        lines.append(f"dead-letter queue: {len(dead)} (retry with `pod-studio retry --all-dead`)")
    return "\n".join(lines)


async def _queue(args: argparse.Namespace, out: TextIO) -> int:
    async with wiring.open_ledger() as ledger:
        if args.pause or args.unpause:
            await ledger.set_paused(bool(args.pause))
        snap = await _snapshot(ledger)
    if args.json:
        out.write(json.dumps(snap.model_dump(mode="json"), indent=2) + "\n")
    else:
        out.write(format_queue(snap) + "\n")
    return EXIT_OK


async def _retry(args: argparse.Namespace, out: TextIO) -> int:
    async with wiring.open_ledger() as ledger:
        if args.all_dead:
            ids = [j.id for j in await ledger.list_jobs([JobStatus.DEAD])]
        else:
            if await ledger.get_job(args.job_id) is None:
                raise UnknownJobError(
                    f"no job {args.job_id!r}", user_message=f"There is no job {args.job_id}."
                )
            ids = [args.job_id]
        for job_id in ids:
            await ledger.manual_retry(job_id)
            out.write(f"requeued {job_id}\n")
    if not ids:
        out.write("the dead-letter queue is empty\n")
    return EXIT_OK


async def _discard(args: argparse.Namespace, out: TextIO) -> int:
    async with wiring.open_ledger() as ledger:
        removed = await ledger.discard(args.job_id)
    out.write(("removed " if removed else "no job ") + args.job_id + "\n")
    return EXIT_OK if removed else EXIT_FAILED


# --- resume ------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, ImageReady):
            print(f"image {event.image.file}", file=sys.stderr)
        elif isinstance(event, JobFailed):
            print(f"job {event.job_id} failed: {event.reason}", file=sys.stderr)
        elif isinstance(event, PublishDone):
            state = "published" if event.ok else "failed"
            print(f"{event.platform}: design {event.design_id} {state}", file=sys.stderr)
        elif isinstance(event, DeadLettered):
            print(f"dead-lettered {event.job_id}: {event.reason}", file=sys.stderr)


async def _resume(args: argparse.Namespace, out: TextIO) -> int:
    export = Path(args.export_dir) if args.export_dir else None
    async with wiring.open_orchestrator(
        sink=_Progress(args.quiet), servers=args.server, export_dir=export
    ) as handle:
        report = await handle.orchestrator.recover()
        if not args.quiet:
            print(
                f"recovered: {report['requeued']} job(s) requeued, {report['landed']} step(s) "
                f"found done remotely, {report['not_landed']} to redo",
                file=sys.stderr,
            )
        summary = await handle.orchestrator.run_until_idle(horizon=args.horizon)
    if args.json:
        body = summary.model_dump(mode="json") | {"ok": summary.ok}
        out.write(json.dumps(body, indent=2) + "\n")
    else:
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v)
        out.write(f"{'done' if summary.ok else 'unfinished'}: {counts or 'no jobs'}\n")
        for job_id, reason in summary.dead.items():
            out.write(f"  dead {job_id}: {reason}\n")
    return EXIT_OK if summary.ok else EXIT_FAILED
