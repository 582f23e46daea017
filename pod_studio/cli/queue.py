"""CLI layer: the durable job queue, headless.

- ``pod-studio queue [--json] [--pause | --unpause]``: every job (queued, running, waiting and
  why, dead-lettered, done) with counts; pause or resume the whole queue.
- ``pod-studio retry ID | --all-dead``: requeue a dead (or cancelled, waiting) job now.
- ``pod-studio discard ID``: remove a job that is not running.
- ``pod-studio resume``: recover what a crash left and finish whatever the queue holds, then
  exit: 0 only if nothing is left failed or unfinished.

``retry``, ``discard`` and ``resume`` run through the engine (``composition.headless``), so
they take the data folder like the window does; ``queue`` only reads the job database.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pod_studio.cli import exits
from pod_studio.cli.progress import ProgressPrinter
from pod_studio.composition.headless import open_core, open_ledger
from pod_studio.domain.jobs import JobStatus
from pod_studio.domain.ledger_port import JobLedger, UnknownJobError
from pod_studio.domain.orchestration import QueueSnapshot
from pod_studio.domain.urls import check_server_urls
from pod_studio.services.queue_views import queue_entry

COMMANDS = ("queue", "retry", "discard", "resume")


def add_commands(sub: Any) -> None:
    q = sub.add_parser(
        "queue",
        help="list the durable job queue (and the dead-letter queue)",
        description="Lists every job recorded in the job database: state, attempts, next "
        "try and why it waits, last error. Dead jobs form the dead-letter queue.",
    )
    q.add_argument("--json", action="store_true", help="machine-readable output")
    pause = q.add_mutually_exclusive_group()
    pause.add_argument("--pause", action="store_true", help="pause the whole queue")
    pause.add_argument("--unpause", action="store_true", help="resume a paused queue")

    r = sub.add_parser(
        "retry",
        help="requeue a failed job now",
        description="Requeues a dead, cancelled or waiting job (attempts reset; steps already "
        "done are not redone). Run `pod-studio resume` (or the app) to process it.",
    )
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("job_id", nargs="?", metavar="ID", help="the job's id (`pod-studio queue`)")
    target.add_argument("--all-dead", action="store_true", help="every dead-lettered job")

    d = sub.add_parser("discard", help="remove a job that is not running")
    d.add_argument("job_id", metavar="ID", help="the job's id (`pod-studio queue`)")

    s = sub.add_parser(
        "resume",
        help="finish every unfinished job headless, then exit",
        description="Recovers what a crash left (prompts on the server, listings in flight), "
        "runs every queued job and retries due soon, then exits. " + exits.POLICY,
    )
    s.add_argument("--server", action="append", metavar="URL", help="ComfyUI base URL")
    s.add_argument(
        "--horizon",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wait for retries due within this many seconds (default 300)",
    )
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress on stderr")


async def run(args: argparse.Namespace) -> int:
    if args.command == "queue":
        return await _queue(args)
    if args.command == "retry":
        return await _retry(args)
    if args.command == "discard":
        return await _discard(args)
    return await _resume(args)


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


async def _queue(args: argparse.Namespace) -> int:
    async with open_ledger() as ledger:
        if args.pause or args.unpause:
            await ledger.set_paused(bool(args.pause))
        snap = await _snapshot(ledger)
    if args.json:
        sys.stdout.write(json.dumps(snap.model_dump(mode="json"), indent=2) + "\n")
    else:
        sys.stdout.write(format_queue(snap) + "\n")
    return exits.OK


async def _retry(args: argparse.Namespace) -> int:
    async with open_core(connect=False) as core:
        if args.all_dead:
            ids = await core.orchestrator.retry_all_dead()
        else:
            if await core.ledger.get_job(args.job_id) is None:
                raise UnknownJobError(
                    f"no job {args.job_id!r}", user_message=f"There is no job {args.job_id}."
                )
            await core.orchestrator.retry_now(args.job_id)
            ids = [args.job_id]
    for job_id in ids:
        sys.stdout.write(f"requeued {job_id}\n")
    if not ids:
        sys.stdout.write("the dead-letter queue is empty\n")
    else:
        sys.stdout.write("run `pod-studio resume` (or open the app) to process it\n")
    return exits.OK


async def _discard(args: argparse.Namespace) -> int:
    async with open_core(connect=False) as core:
        removed = await core.orchestrator.discard(args.job_id)
    sys.stdout.write(("removed " if removed else "no job ") + args.job_id + "\n")
    return exits.OK if removed else exits.FAILED


async def _resume(args: argparse.Namespace) -> int:
    printer = ProgressPrinter(sys.stderr, quiet=args.quiet)
    servers = check_server_urls(args.server or [])
    async with open_core(sinks=[printer], servers=servers or None) as core:
        summary = await core.orchestrator.run_until_idle(horizon=args.horizon)
    if args.json:
        body = summary.model_dump(mode="json") | {"ok": summary.ok}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v)
        sys.stdout.write(f"{'done' if summary.ok else 'unfinished'}: {counts or 'no jobs'}\n")
        for job_id, reason in summary.dead.items():
            sys.stdout.write(f"  dead {job_id}: {reason}\n")
    return exits.OK if summary.ok else exits.FAILED


__all__ = ["COMMANDS", "add_commands", "format_queue", "run"]
