"""A headless orchestrator run that the crash test kills with SIGKILL, and its supervisor.

Worker (``python -m tests.e2e.crash_worker --ledger DB --server URL ...``): generates
``--jobs`` images on the sandbox ComfyUI server(s) through the durable ``Orchestrator``, then
publishes each image as one product to two destinations: the local export folder
(``ExportMarketplace``) and a counting sandbox platform (``CountingMarketplace``: a new
record per create, like a real platform, so a blind re-create shows up as a duplicate). It
prints ``READY`` once recovered and a ``PHASE <name> <detail>`` line before each side effect,
so the supervisor can kill it at chosen points (mid-download, mid-save, mid-create).

Supervisor (``supervise``): starts the worker, kills it at seeded random points (a random delay
after READY, or on a phase marker), restarts it until it finishes, then counts images per
job, listings per key and orphans on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_NAME = "Classic T-shirt"
PLATFORMS = ("export", "sandbox")
WORKER_MODULE = "tests.e2e.crash_worker"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- worker --------------------------------------------------------------------------------------


class CountingMarketplace:
    """A platform that keeps every create as its own record (``<root>/<key>/<id>.json``)."""

    name = "sandbox"

    def __init__(self, root: Path, reply_delay: float = 0.03) -> None:
        self.root = root
        self.reply_delay = reply_delay

    def _records(self, key: str) -> list[Path]:
        folder = self.root / key
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def _remote(self, path: Path) -> Any:
        from pod_studio.domain.marketplace import ListingStatus, RemoteListing

        data = json.loads(path.read_text(encoding="utf-8"))
        return RemoteListing(
            platform=self.name,
            remote_id=path.stem,
            status=ListingStatus(data["status"]),
            title=data["title"],
            external_ids={"idem_key": data["idem_key"]},
        )

    async def find_existing(self, idem_key: str) -> Any:
        records = await asyncio.to_thread(self._records, idem_key)
        return self._remote(records[0]) if records else None

    def _write(self, key: str, title: str) -> Path:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex[:12]}.json"
        tmp = path.with_suffix(".tmp")
        body = {"idem_key": key, "title": title, "status": "draft"}
        body["created_at"] = datetime.now(UTC).isoformat()
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    async def create_listing(self, spec: Any) -> Any:
        _say(f"PHASE create {spec.idem_key}")
        path = await asyncio.to_thread(self._write, spec.idem_key, spec.title)
        _say(f"PHASE created {spec.idem_key}")
        await asyncio.sleep(self.reply_delay)  # the reply is on its way back
        return self._remote(path)

    async def publish(self, listing: Any) -> Any:
        return listing


async def _worker(args: argparse.Namespace) -> int:
    from pod_studio.adapters.comfyui.client import ComfyUIClient, default_workflow_text
    from pod_studio.adapters.marketplaces.export import ExportMarketplace
    from pod_studio.adapters.storage.images import GalleryImageStore
    from pod_studio.adapters.storage.ledger import SqliteJobLedger
    from pod_studio.domain.events import Event, JobStateChanged
    from pod_studio.domain.models import ImageRef, JobSpec, JobState
    from pod_studio.domain.workflow import WorkflowTemplate
    from pod_studio.services.orchestrator import (
        MarketplacePublishExecutor,
        Orchestrator,
        OrchestratorOptions,
    )
    from pod_studio.services.resilience import ResilienceHub

    class TracingClient(ComfyUIClient):
        async def fetch_image(self, ref: ImageRef) -> bytes:
            _say(f"PHASE download {ref.filename}")
            return await super().fetch_image(ref)

    class TracingStore(GalleryImageStore):
        async def save(self, job: JobSpec, data: bytes, **kw: Any) -> Any:
            _say(f"PHASE save {job.job_id}")
            return await super().save(job, data, **kw)

    def sink(event: Event) -> None:
        if isinstance(event, JobStateChanged) and event.state is JobState.RUNNING:
            _say(f"PHASE submit {event.job_id}")

    ledger = SqliteJobLedger(args.ledger)
    await ledger.open()
    hub = ResilienceHub(settings={"breakers": {"comfyui": {"reset_timeout": 0.5}}})
    clients = [
        TracingClient(
            url,
            guard=hub.guard("comfyui", f"comfyui@{url.split('://')[-1]}"),
            poll_initial=0.05,
            poll_max=0.3,
            reconnect_initial=0.02,
            reconnect_max=0.2,
        )
        for url in args.server
    ]
    for c in clients:
        await c.start()
    store = TracingStore(args.images)
    template = WorkflowTemplate.from_json_text(default_workflow_text())
    publishers = {
        "export": MarketplacePublishExecutor(ExportMarketplace(args.export)),
        "sandbox": MarketplacePublishExecutor(CountingMarketplace(args.platform)),
    }
    options = OrchestratorOptions(
        reconcile=not args.no_reconcile,
        tick=0.05,
        poll_interval=0.05,
        probe_interval=0.2,
        retry_delay=lambda _n: 0.05,
        max_attempts=50,
        idle_horizon=2.0,
        stall_timeout=20.0,
    )
    orch = Orchestrator(
        ledger,
        clients,
        store,
        template,
        sink,
        publishers=publishers,
        breaker_state=lambda url: hub.breakers.get(f"comfyui@{url.split('://')[-1]}").state.value,
        options=options,
    )
    try:
        await orch.recover()
        _say("READY")
        specs = [
            JobSpec(
                job_id=f"gen-{i:05d}",
                prompt=f"crash test design {i}",
                seed=1000 + i,
                width=args.size,
                height=args.size,
                batch_id="crash",
            )
            for i in range(args.jobs)
        ]
        await orch.enqueue_generation(specs)
        first = await orch.run_until_idle()
        if first.counts.get("dead", 0):
            _say("FAILED " + json.dumps(first.dead))
        images = await store.list_images()
        await orch.enqueue_publish(images, [TEMPLATE_NAME], list(PLATFORMS))
        summary = await orch.run_until_idle()
        _say("DONE " + json.dumps({"counts": summary.counts, "dead": summary.dead}))
        return 0 if summary.ok else 1
    finally:
        for c in clients:
            await c.aclose()
        await ledger.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=WORKER_MODULE)
    parser.add_argument("--ledger", required=True, type=Path)
    parser.add_argument("--server", action="append", required=True)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--export", required=True, type=Path)
    parser.add_argument("--platform", required=True, type=Path)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--no-reconcile", action="store_true")
    args = parser.parse_args(argv)
    return asyncio.run(_worker(args))


# --- supervisor ----------------------------------------------------------------------------------


@dataclass
class CrashReport:
    runs: int = 0
    kills: int = 0
    kill_points: collections.Counter[str] = field(default_factory=collections.Counter)
    jobs: int = 0
    images: int = 0
    images_per_job: dict[str, int] = field(default_factory=dict)
    orphan_image_files: int = 0
    listings: dict[str, dict[str, int]] = field(default_factory=dict)  # platform -> key -> n
    final_output: str = ""
    seconds: float = 0.0

    @property
    def duplicate_images(self) -> int:
        return sum(n - 1 for n in self.images_per_job.values() if n > 1)

    @property
    def lost_images(self) -> int:
        return self.jobs - sum(1 for n in self.images_per_job.values() if n >= 1)

    @property
    def duplicate_listings(self) -> int:
        return sum(n - 1 for keys in self.listings.values() for n in keys.values() if n > 1)

    def expected_listings(self) -> int:
        return self.images * len(PLATFORMS)

    @property
    def listings_total(self) -> int:
        return sum(len(keys) for keys in self.listings.values())

    def lines(self) -> list[str]:
        return [
            f"runs {self.runs}, SIGKILLs {self.kills} "
            f"(at: {', '.join(f'{k} {v}' for k, v in sorted(self.kill_points.items()))})",
            f"jobs {self.jobs}, images {self.images}, duplicate images {self.duplicate_images}, "
            f"lost images {self.lost_images}, orphan image files {self.orphan_image_files}",
            f"listings {self.listings_total} of {self.expected_listings()} expected, "
            f"duplicate listings {self.duplicate_listings}",
            f"wall time {self.seconds:.1f} s",
        ]


def _reader(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line.rstrip("\n"))
    out.put(None)


def _phase(line: str) -> str | None:
    if line == "READY":
        return "startup"
    if line.startswith("PHASE "):
        return line.split()[1]
    return None


def supervise(
    work: Path,
    servers: list[str],
    *,
    jobs: int,
    kills: int,
    seed: int,
    reconcile: bool = True,
    delay: tuple[float, float] = (0.02, 0.35),
    more_jobs: int = 4,
    run_timeout: float = 120.0,
    marker_wait: float = 1.5,
) -> CrashReport:
    """Run the worker until it finishes, SIGKILLing it ``kills`` times at seeded points.

    When the batch finishes before enough kills, ``more_jobs`` jobs are added and the next
    run continues the same ledger (so a fast machine still sees every kill).
    """
    rng = random.Random(seed)
    report = CrashReport()
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    images, export, platform = work / "images", work / "export", work / "platform"
    log_path = work / "worker-stderr.log"
    total_jobs = jobs
    modes = ("random", "random", "download", "save", "create", "created")
    cycle: list[str] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log_path, "a", encoding="utf-8") as errlog:
        while True:
            cmd = [sys.executable, "-m", WORKER_MODULE, "--ledger", str(work / "jobs.db")]
            for url in servers:
                cmd += ["--server", url]
            cmd += ["--images", str(images), "--export", str(export), "--platform", str(platform)]
            cmd += ["--jobs", str(total_jobs)]
            if not reconcile:
                cmd.append("--no-reconcile")
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errlog, text=True
            )
            report.runs += 1
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
            kill = report.kills < kills
            if not cycle:
                cycle = list(modes)
                rng.shuffle(cycle)
            mode = cycle.pop()
            wait = rng.uniform(*delay)
            last = "startup"
            deadline: float | None = None
            eof = False
            done_line = ""
            run_deadline = time.monotonic() + run_timeout
            while True:
                now = time.monotonic()
                if now > run_deadline:
                    proc.kill()
                    raise AssertionError(f"worker run {report.runs} hung; see {log_path}")
                if kill and deadline is not None and now >= deadline:
                    break
                timeout = (deadline - now) if (kill and deadline is not None) else 1.0
                try:
                    line = lines.get(timeout=max(0.0, timeout))
                except queue.Empty:
                    continue
                if line is None:
                    eof = True
                    break
                if line.startswith("DONE "):
                    done_line = line
                phase = _phase(line)
                if phase is None:
                    continue
                last = phase
                if not kill:
                    continue
                if phase == "startup" and mode == "random":
                    deadline = time.monotonic() + wait
                elif phase == "startup":
                    deadline = time.monotonic() + marker_wait  # if the marker never comes
                elif mode != "random" and phase == mode:
                    break
            if not eof:
                proc.kill()
                proc.wait()
                report.kills += 1
                report.kill_points[last] += 1
                continue
            rc = proc.wait()
            if rc != 0:
                raise AssertionError(f"worker exited {rc} ({done_line}); see {log_path}")
            if report.kills < kills:
                total_jobs += more_jobs  # finished too soon: give the next run more work
                continue
            report.final_output = done_line
            break
    report.seconds = time.monotonic() - started
    report.jobs = total_jobs
    _count(report, images, {"export": export, "sandbox": platform})
    return report


def _count(report: CrashReport, images: Path, platforms: dict[str, Path]) -> None:
    per_job: collections.Counter[str] = collections.Counter()
    named: set[str] = set()
    for sidecar in images.glob("*.json"):
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        per_job[data["job_id"]] += 1
        named.add(Path(data["file"]).name)
    report.images_per_job = dict(per_job)
    report.images = sum(per_job.values())
    report.orphan_image_files = sum(
        1 for p in images.iterdir() if p.suffix in (".png", ".jpg", ".webp") and p.name not in named
    )
    export = platforms["export"]
    report.listings["export"] = {
        json.loads((d / "listing.json").read_text(encoding="utf-8"))["idem_key"]: 1
        for d in export.iterdir()
        if d.is_dir() and (d / "listing.json").is_file()
    }
    sandbox = platforms["sandbox"]
    report.listings["sandbox"] = {
        d.name: len(list(d.glob("*.json"))) for d in sandbox.iterdir() if d.is_dir()
    }


if __name__ == "__main__":
    sys.exit(main())
