"""The kill -9 crash run: real ``pod-studio`` processes SIGKILLed at random points.

Worker (``python -m tests.e2e.crash_worker [--no-reconcile] [--until-idle]``): the app's
durable queue without the window, exactly what ``bootstrap`` runs: ``build_core()`` from
the settings in ``POD_STUDIO_HOME``, ``core.start()`` (instance lock, job database, servers,
crash recovery), then ``core.run_queue()`` until killed. ``--until-idle`` stops once nothing
is left to run (what ``pod-studio resume`` does). ``--no-reconcile`` builds the core with
``OrchestratorOptions(reconcile=False)``: the control run, which must show duplicates. It
prints the same progress lines as the commands (``pod_studio.cli.progress``) on stderr.

Supervisor (``supervise``): one POD Studio home whose settings point at a sandbox ComfyUI
server and at the Printify sandbox (``pod-studio sandbox printify``, a subprocess, reached
through ``CreateTrap``, a pass-through proxy that can kill the process the moment a product
create has landed and before its reply arrives). Rounds of: ``pod-studio generate`` (or
``resume``, or the queue worker) killed at random points until the round's quota, finished
with the same ``generate`` command; then ``pod-studio publish`` (or ``resume``, or the queue
worker) killed likewise, finished with the same ``publish``. Last, ``pod-studio resume``.
Kill points: a random delay after start, right after a chosen progress line, or right after
a create landed. Then it counts images per job (the gallery) and listings per design ×
product on each destination: folders in the export folder, products on the Printify sandbox
(read over its API, by the SKU marker of each idempotency key).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "tests.e2e.crash_worker"
TEMPLATE = "Crash tee"
PLATFORMS = ("export", "printify")
TOKEN = "crash-sandbox-token-5f1e"
IMAGE_SIZE = 512


# --- worker --------------------------------------------------------------------------------------


async def _worker(args: argparse.Namespace) -> int:
    from pod_studio.cli.progress import ProgressPrinter
    from pod_studio.composition.core import build_core
    from pod_studio.services.orchestrator import OrchestratorOptions

    options = OrchestratorOptions(reconcile=False) if args.no_reconcile else None
    core = build_core(sinks=[ProgressPrinter(sys.stderr)], options=options)
    try:
        await core.start()
        print("ready", file=sys.stderr, flush=True)
        if args.until_idle:
            summary = await core.orchestrator.run_until_idle(horizon=30.0)
            counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v)
            print(f"{'done' if summary.ok else 'unfinished'}: {counts}", flush=True)
            return 0 if summary.ok else 1
        await core.run_queue()
        return 0
    finally:
        await core.aclose()


def main(argv: list[str] | None = None) -> int:
    from pod_studio.composition.diagnostics import configure_logging, shutdown_logging

    parser = argparse.ArgumentParser(prog=WORKER_MODULE)
    parser.add_argument("--no-reconcile", action="store_true")
    parser.add_argument("--until-idle", action="store_true")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        return asyncio.run(_worker(args))
    finally:
        shutdown_logging()


# --- the create trap -----------------------------------------------------------------------------

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class CreateTrap:
    """A pass-through HTTP proxy in front of the Printify sandbox (run it in a
    ``ServerThread``). When armed, a product create is forwarded, lands on the sandbox, and
    then ``on_create`` runs (the supervisor kills the process) before the reply goes back."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.armed: Callable[[], bool] | None = None
        self._session: Any = None
        self._runner: Any = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        from aiohttp import ClientSession, ClientTimeout, web

        self._session = ClientSession(timeout=ClientTimeout(total=120), auto_decompress=False)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        return f"http://{host}:{sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as resp:
            data = await resp.read()
            status = resp.status
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
        is_create = request.method == "POST" and request.path.endswith("/products.json")
        trap = self.armed
        if is_create and trap is not None and trap():
            return web.Response(status=502)  # the client is dead; nobody reads this
        return web.Response(status=status, body=data, headers=out)


# --- running a process and killing it ------------------------------------------------------------


@dataclass(frozen=True)
class KillPlan:
    """When to SIGKILL: ``after`` seconds after start (``line`` empty), or ``after`` seconds
    after the ``nth`` progress line starting with ``line``, or (``line == "create landed"``)
    when the ``nth`` product create has reached Printify. ``fallback`` kills anyway."""

    line: str = ""
    nth: int = 1
    after: float = 0.0
    fallback: float | None = None

    @property
    def label(self) -> str:
        return f"after {self.line!r}" if self.line else "random delay"


@dataclass
class RunResult:
    rc: int | None
    killed: bool
    lines: list[str]
    stdout: str
    why: str = ""  # the kill point that fired


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pump(stream: Any, out: queue.Queue[str | None]) -> None:
    for line in stream:
        out.put(line.rstrip("\n"))
    out.put(None)


@dataclass
class Home:
    """A POD Studio home for the run, its sandboxes and how to start ``pod-studio``."""

    root: Path
    comfy_url: str
    printify_url: str  # the sandbox itself
    trap: CreateTrap
    env: dict[str, str]
    log: Path

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def pod(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "pod_studio", *argv]

    def worker(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", WORKER_MODULE, *argv]

    def run(
        self, cmd: Sequence[str], plan: KillPlan | None, *, timeout: float = 240.0
    ) -> RunResult:
        """Run ``cmd`` to its end, or SIGKILL it as ``plan`` says."""
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(cmd[2:])}   # kill {plan.label if plan else 'never'}\n")
        out_path = self.root / "last-stdout.txt"
        with open(out_path, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                list(cmd),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
            )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True).start()
        killed = threading.Event()
        creates = [0]
        why = [""]

        def kill(reason: str) -> None:
            if not killed.is_set():
                why[0] = reason
                killed.set()
                proc.kill()

        def on_create() -> bool:
            creates[0] += 1
            if plan is not None and plan.line == "create landed" and creates[0] >= plan.nth:
                kill("after 'create landed'")
                return True
            return False

        self.trap.armed = on_create
        started = time.monotonic()
        deadline: float | None = None
        if plan is not None and not plan.line:
            deadline = started + plan.after
        elif plan is not None and plan.fallback is not None:
            deadline = started + plan.fallback
        seen = 0
        got: list[str] = []
        try:
            while True:
                now = time.monotonic()
                if now - started > timeout:
                    kill("hung")
                    raise AssertionError(f"{' '.join(cmd[2:])} hung; see {self.log}")
                if deadline is not None and now >= deadline:
                    kill(plan.label if plan is not None and seen else "random delay")
                wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    continue
                if line is None:
                    break
                got.append(line)
                if plan is not None and plan.line and line.startswith(plan.line):
                    seen += 1
                    if seen == plan.nth:
                        if plan.after <= 0:
                            kill(plan.label)
                        else:
                            deadline = time.monotonic() + plan.after
            rc = proc.wait()
        finally:
            self.trap.armed = None
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        stdout = out_path.read_text(encoding="utf-8")
        with open(self.log, "a", encoding="utf-8") as log:
            log.write("\n".join(got) + "\n" + stdout)
            log.write(f"-> {'SIGKILL' if killed.is_set() else f'exit {rc}'}\n")
        return RunResult(None if killed.is_set() else rc, killed.is_set(), got, stdout, why[0])


@contextlib.contextmanager
def crash_home(root: Path, comfy_url: str) -> Iterator[Home]:
    """A home whose settings use ``comfy_url`` and a Printify sandbox subprocess (behind a
    ``CreateTrap``); the token comes from ``POD_PRINTIFY_TOKEN``, as a seller's CI would."""
    from pod_studio.domain.products import PrintPlacement, default_templates
    from pod_studio.domain.settings import SETTINGS_SCHEMA_VERSION
    from pod_studio.sandbox.threaded import ServerThread

    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POD_")}
    env |= {
        "POD_STUDIO_HOME": str(root / "home"),
        "POD_PRINTIFY_TOKEN": TOKEN,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONPATH": str(ROOT),
    }
    port = _free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "pod_studio", "sandbox", "printify", "--port", str(port)]
        + ["--token", TOKEN],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        banner = sandbox.stdout.readline()  # printed once it listens
        if "Printify sandbox on" not in banner:
            raise AssertionError(f"the Printify sandbox did not start: {banner!r}")
        printify_url = f"http://127.0.0.1:{port}"
        trap = CreateTrap(printify_url)
        with ServerThread(trap) as proxy:
            tee = default_templates()[0]
            template = tee.model_copy(
                update={
                    "name": TEMPLATE,
                    "colors": ["White"],
                    "sizes": ["XS"],
                    "placement": PrintPlacement(scale=0.5),
                    "price": tee.price.model_copy(update={"size_overrides": {}}),
                }
            )
            settings = {
                "schema_version": SETTINGS_SCHEMA_VERSION,
                "comfyui_servers": [comfy_url],
                "printify": {"base_url": proxy.url},
                "export_dir": str(root / "export"),
                "product_templates": [template.model_dump(mode="json")],
            }
            config = root / "home" / "config"
            config.mkdir(parents=True, exist_ok=True)
            (config / "settings.json").write_text(json.dumps(settings, indent=2), "utf-8")
            yield Home(root, comfy_url, printify_url, trap, env, root / "processes.log")
    finally:
        sandbox.kill()
        sandbox.wait()


# --- counting ------------------------------------------------------------------------------------


@dataclass
class Batch:
    prompts: list[str]
    variations: int
    seed: int
    out: Path

    def generate_args(self) -> list[str]:
        argv = ["generate"]
        for p in self.prompts:
            argv += ["--prompt", p]
        argv += ["--variations", str(self.variations), "--seed", str(self.seed)]
        argv += ["--width", str(IMAGE_SIZE), "--height", str(IMAGE_SIZE)]
        return [*argv, "--out", str(self.out), "--horizon", "60"]

    def publish_args(self) -> list[str]:
        argv = ["publish", "--manifest", str(self.out), "--template", TEMPLATE]
        for p in PLATFORMS:
            argv += ["--platform", p]
        return [*argv, "--horizon", "60"]

    def job_ids(self) -> list[tuple[str, str]]:
        """(job id, label) of every job of the batch (as ``generate`` derives them)."""
        from pod_studio.composition.core import load_template
        from pod_studio.composition.headless import batch_specs
        from pod_studio.domain.models import GenerationRequest

        request = GenerationRequest(
            prompts=self.prompts,
            variations=self.variations,
            seed=self.seed,
            width=IMAGE_SIZE,
            height=IMAGE_SIZE,
        )
        specs = batch_specs(request, load_template(None), self.out)
        return [(s.job_id, f"{s.prompt} #{s.seed}") for s in specs]


@dataclass
class CrashReport:
    runs: int = 0
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    jobs: int = 0
    images_per_job: dict[str, int] = field(default_factory=dict)
    # (design label, product) -> platform -> listings found
    listings: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    final: str = ""
    seconds: float = 0.0

    @property
    def total_kills(self) -> int:
        return sum(self.kills.values())

    @property
    def images(self) -> int:
        return sum(self.images_per_job.values())

    @property
    def lost_images(self) -> int:
        return sum(1 for n in self.images_per_job.values() if n == 0)

    @property
    def duplicate_images(self) -> int:
        return sum(n - 1 for n in self.images_per_job.values() if n > 1)

    def lost_listings(self, platform: str | None = None) -> int:
        return sum(
            1
            for per in self.listings.values()
            for p, n in per.items()
            if n == 0 and platform in (None, p)
        )

    def duplicate_listings(self, platform: str | None = None) -> int:
        return sum(
            n - 1
            for per in self.listings.values()
            for p, n in per.items()
            if n > 1 and platform in (None, p)
        )

    def lines(self) -> list[str]:
        by_kind: collections.Counter[str] = collections.Counter()
        for key, n in self.kills.items():
            by_kind[key.split(" ", 1)[0]] += n
        out = [
            f"runs {self.runs}, SIGKILLs {self.total_kills} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))})",
            "  kill points: " + ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())),
            f"jobs {self.jobs}, images {self.images}: lost {self.lost_images}, "
            f"duplicate {self.duplicate_images}",
        ]
        for platform in PLATFORMS:
            found = sum(per.get(platform, 0) for per in self.listings.values())
            out.append(
                f"{platform} listings {found} of {len(self.listings)} expected: "
                f"lost {self.lost_listings(platform)}, "
                f"duplicate {self.duplicate_listings(platform)}"
            )
        out.append(f"{'design':<34} {'product':<10} images " + " ".join(PLATFORMS))
        for (design, product), per in sorted(self.listings.items()):
            out.append(
                f"{design[:34]:<34} {product:<10} {per.get('images', 0):>6} "
                + " ".join(f"{per.get(p, 0):>{len(p)}}" for p in PLATFORMS)
            )
        out.append(f"final: {self.final.strip()}")
        out.append(f"wall time {self.seconds:.1f} s")
        return out


def printify_products(base_url: str) -> list[dict[str, Any]]:
    """Every product of the sandbox's shop, read over its API."""
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}", "User-Agent": "pod-studio-crash-count"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        shop = http.get("/v1/shops.json").raise_for_status().json()[0]["id"]
        products: list[dict[str, Any]] = []
        page = 1
        while True:
            body = (
                http.get(f"/v1/shops/{shop}/products.json", params={"page": page, "limit": 50})
                .raise_for_status()
                .json()
            )
            products.extend(body["data"])
            if body["current_page"] >= body["last_page"]:
                return products
            page += 1


def count(report: CrashReport, home: Home, batches: Sequence[Batch]) -> None:
    from pod_studio.adapters.marketplaces.printify import marker_for
    from pod_studio.domain.jobs import idempotency_key

    images_dir = home.root / "home" / "data" / "images"
    shas: dict[str, list[str]] = collections.defaultdict(list)
    for sidecar in images_dir.glob("*.json"):
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        shas[data["job_id"]].append(data["sha256"])
    export: collections.Counter[str] = collections.Counter()
    if home.export_dir.is_dir():
        for folder in home.export_dir.iterdir():
            listing = folder / "listing.json"
            if listing.is_file():
                export[json.loads(listing.read_text(encoding="utf-8"))["idem_key"]] += 1
    printify: collections.Counter[str] = collections.Counter()
    for product in printify_products(home.printify_url):
        markers = {str(v.get("sku", "")).rsplit("-", 1)[0] for v in product["variants"]}
        for marker in markers:
            printify[marker] += 1
    for batch in batches:
        for job_id, label in batch.job_ids():
            report.jobs += 1
            found = shas.get(job_id, [])
            report.images_per_job[job_id] = len(found)
            per: dict[str, int] = {"images": len(found), "export": 0, "printify": 0}
            for sha in dict.fromkeys(found):
                per["export"] += export[idempotency_key(sha, TEMPLATE, "export")]
                per["printify"] += printify[marker_for(idempotency_key(sha, TEMPLATE, "printify"))]
            report.listings[(label, TEMPLATE)] = per


# --- the supervisor ------------------------------------------------------------------------------

LINE_POINTS = {
    "generate": [("running", 0.3), ("[", 0.05)],
    "publish": [
        ("prepare:done", 0.3),
        ("upload:done", 0.2),
        ("create landed", 0.0),
        ("create:done", 0.0),
        ("listed", 0.0),
    ],
}


def _plan(rng: random.Random, stage: str, runner: str) -> KillPlan:
    fallback = rng.uniform(2.0, 6.0) if runner == "queue" else None
    if rng.random() < 0.3:  # the random delay after start (a Python start takes ~1.5 s)
        return KillPlan(after=rng.uniform(0.5, 5.0))
    line, extra = rng.choice(LINE_POINTS[stage])
    return KillPlan(
        line=line, nth=rng.randint(1, 2), after=rng.uniform(0, extra), fallback=fallback
    )


def _stage(
    home: Home,
    report: CrashReport,
    rng: random.Random,
    stage: str,
    finish: list[str],
    quota: int,
    *,
    worker: Sequence[str] = (),
) -> None:
    """Kill ``stage``'s command (or ``resume``, or the queue worker) ``quota`` times, then run
    ``finish`` (the same command) to its end."""
    runners = {stage: home.pod(*finish), "resume": home.pod("resume", "--horizon", "60")}
    runners["queue"] = home.worker(*worker)
    names = [stage, stage, stage, "resume", "queue"]
    kills = attempts = 0
    while kills < quota and attempts < quota * 3:
        attempts += 1
        runner = rng.choice(names)
        plan = _plan(rng, stage, runner)
        result = home.run(runners[runner], plan)
        report.runs += 1
        if result.killed:
            kills += 1
            report.kills[f"{runner} {result.why}"] += 1
        elif runner == stage and result.rc == 0:
            break  # the stage's work is done: a kill now would find nothing to interrupt
    result = home.run(home.pod(*finish), None)
    report.runs += 1
    if result.rc != 0:
        raise AssertionError(f"{' '.join(finish)} exited {result.rc}; see {home.log}")


def supervise(
    work: Path,
    comfy_url: str,
    *,
    kills: int,
    seed: int,
    prompts: int = 2,
    variations: int = 2,
    per_round: int = 12,
) -> CrashReport:
    """Rounds (a new batch each) of generate and publish, killed at random points, until
    ``kills`` SIGKILLs; then ``pod-studio resume``; then count."""
    rng = random.Random(seed)
    report = CrashReport()
    started = time.monotonic()
    batches: list[Batch] = []
    with crash_home(work, comfy_url) as home:
        n = 0
        while report.total_kills < kills:
            n += 1
            left = kills - report.total_kills
            quota = min(per_round, left)
            batch = Batch(
                [f"crash design {n}-{i}" for i in range(prompts)],
                variations,
                seed * 1000 + n,
                work / f"out-{n}",
            )
            batches.append(batch)
            _stage(home, report, rng, "generate", batch.generate_args(), (quota + 1) // 2)
            _stage(home, report, rng, "publish", batch.publish_args(), quota // 2 or 1)
        final = home.run(home.pod("resume", "--horizon", "60"), None)
        report.runs += 1
        report.final = final.stdout
        if final.rc != 0:
            raise AssertionError(f"resume exited {final.rc}: {final.stdout}; see {home.log}")
        count(report, home, batches)
    report.seconds = time.monotonic() - started
    return report


def supervise_control(work: Path, comfy_url: str, *, kills: int, seed: int) -> CrashReport:
    """The control: the same kills at "create landed", with reconciliation off in the queue
    worker that finishes the work (``OrchestratorOptions(reconcile=False)``)."""
    rng = random.Random(seed)
    report = CrashReport()
    started = time.monotonic()
    batch = Batch(["control design"], 2, seed, work / "out")
    with crash_home(work, comfy_url) as home:
        done = home.run(home.pod(*batch.generate_args()), None)
        report.runs += 1
        if done.rc != 0:
            raise AssertionError(f"generate exited {done.rc}; see {home.log}")
        first = home.run(home.pod(*batch.publish_args()), KillPlan(line="create landed"))
        report.runs += 1
        report.kills["publish after 'create landed'"] += int(first.killed)
        attempts = 0
        while report.total_kills < kills and attempts < kills * 3:
            attempts += 1
            plan = KillPlan(line="create landed", fallback=rng.uniform(4.0, 8.0))
            result = home.run(home.worker("--no-reconcile"), plan)
            report.runs += 1
            if result.killed:
                report.kills[f"queue {result.why}"] += 1
        final = home.run(home.worker("--no-reconcile", "--until-idle"), None)
        report.runs += 1
        report.final = final.stdout
        count(report, home, [batch])
    report.seconds = time.monotonic() - started
    return report


if __name__ == "__main__":
    sys.exit(main())
