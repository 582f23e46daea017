"""Composition (Qt-free): builds settings, adapters and services for the CLI and the GUI.

This is the only module that imports adapters and injects them into services. Both
``cli`` and ``bootstrap`` call it, so the headless commands and the app run the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from pod_studio.adapters.comfyui.client import ComfyUIClient, probe_server
from pod_studio.adapters.marketplaces.export import ExportMarketplace
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.adapters.storage.images import FolderImageStore, GalleryImageStore, make_thumbnail
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.metrics import render_prometheus, write_prometheus
from pod_studio.adapters.storage.paths import AppPaths, app_paths
from pod_studio.adapters.storage.resources import default_workflow_path
from pod_studio.adapters.storage.secrets import ChainSecretStore, Redactor, default_secret_store
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.adapters.storage.stats_store import JsonStatsStore
from pod_studio.domain.errors import PodStudioError, WorkflowError, user_message
from pod_studio.domain.events import BatchFinished, Event, EventSink, PublishDone
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore
from pod_studio.domain.publishing import PublishExecutor
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.generation import GenerationService
from pod_studio.services.health import HealthResult, HealthService
from pod_studio.services.orchestrator import (
    MarketplacePublishExecutor,
    Orchestrator,
    OrchestratorOptions,
)
from pod_studio.services.publishing import PublishService, RemoteCatalog
from pod_studio.services.resilience import ResilienceHub
from pod_studio.services.stats import StatsService

log = logging.getLogger(__name__)

MAX_WORKFLOW_BYTES = 20 * 1024 * 1024

# One redactor for the whole process: the log handlers mask every secret the store hands out.
REDACTOR = Redactor()


class FanoutSink:
    """An EventSink that hands every event to each of its sinks; one failing sink is logged."""

    def __init__(self, sinks: Iterable[EventSink] = ()) -> None:
        self._sinks: list[EventSink] = list(sinks)

    def add(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def remove(self, sink: EventSink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    def __call__(self, event: Event) -> None:
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:
                log.exception("event sink %r failed on %s", sink, type(event).__name__)


# --- settings and workflow -----------------------------------------------------------------


def load_settings(paths: AppPaths | None = None) -> tuple[AppSettings, list[str], SettingsStore]:
    paths = paths or app_paths()
    store = SettingsStore(paths.settings_file)
    result = store.load()
    return result.settings, list(result.warnings), store


def configured_servers() -> list[str]:
    settings, _warnings, _store = load_settings()
    return list(settings.comfyui_servers)


def load_template(
    path: str | Path | None,
    *,
    prompt_input: str | None = None,
    values: dict[str, Any] | None = None,
) -> WorkflowTemplate:
    """The workflow at ``path`` (API format), or the built-in text-to-image one."""
    source = Path(path) if path else default_workflow_path()
    try:
        size = source.stat().st_size
        if size > MAX_WORKFLOW_BYTES:
            raise WorkflowError(
                f"{source.name} is {size // 1024} KiB; that is not a workflow", service="workflow"
            )
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(
            f"{source.name} is not a text file (not a ComfyUI workflow)", service="workflow"
        ) from exc
    except OSError as exc:
        raise WorkflowError(
            f"cannot read workflow {source}: {exc.strerror or exc}", service="workflow"
        ) from exc
    template = WorkflowTemplate.from_json_text(text, name=source.name)
    if prompt_input:
        template = template.with_override("positive", prompt_input)
    if values:
        template = template.with_values(values)
    return template


def settings_template(settings: AppSettings) -> WorkflowTemplate:
    """The workflow the settings describe (file, prompt input and fixed inputs)."""
    return load_template(
        settings.workflow_path,
        prompt_input=settings.prompt_input_override,
        values=settings.workflow_values,
    )


def acquire_instance_lock(paths: AppPaths) -> FileLock:
    """One POD Studio (app or headless queue run) per data folder: two would work the same
    job queue. Raises a PodStudioError naming what to do when another one holds it."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(paths.data_dir / "pod-studio.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        raise PodStudioError(
            f"another POD Studio is using {paths.data_dir}",
            service="app",
            user_message="POD Studio is already running with this data folder (another window "
            "or a `pod-studio resume`). Close it first: two copies would work the same job "
            "queue.",
        ) from exc
    return lock


def comfyui_breaker_name(url: str) -> str:
    parts = urlsplit(url)
    return f"comfyui@{parts.netloc or url}"


def resilience_settings(settings: AppSettings) -> dict[str, Any]:
    """Only what the seller changed; the hub's tuned defaults apply everywhere else."""
    policies = {
        name: p.model_dump(exclude_defaults=True)
        for name, p in settings.retry.items()
        if p.model_dump(exclude_defaults=True)
    }
    breakers = {
        name: b.model_dump(exclude_defaults=True)
        for name, b in settings.breakers.items()
        if b.model_dump(exclude_defaults=True)
    }
    return {"policies": policies, "breakers": breakers}


def make_comfyui_clients(
    urls: Sequence[str], sink: EventSink, hub: ResilienceHub, **client_options: Any
) -> list[ComfyUIClient]:
    clients = []
    for url in urls:
        guard = hub.guard("comfyui", comfyui_breaker_name(url))
        clients.append(ComfyUIClient(url, sink=sink, guard=guard, **client_options))
    return clients


def _printify_health(client: PrintifyClient) -> Callable[[], Any]:
    async def check() -> HealthResult:
        ok, detail = await client.health_check()
        return HealthResult(reachable=ok, auth_ok=ok, detail=detail)

    return check


def _comfyui_health(client: ComfyUIClient) -> Callable[[], Any]:
    async def check() -> HealthResult:
        info = await client.system_info()
        return HealthResult(reachable=True, auth_ok=None, detail=info.device_summary)

    return check


# --- the app's core ------------------------------------------------------------------------


@dataclass
class Core:
    """Everything the app runs on, without Qt. ``bootstrap`` adds the Qt bridge to ``sink``."""

    paths: AppPaths
    settings: AppSettings
    settings_store: SettingsStore
    settings_warnings: list[str]
    sink: FanoutSink
    stats: StatsService
    hub: ResilienceHub
    health: HealthService
    generators: list[ComfyUIClient]
    store: GalleryImageStore
    generation: GenerationService
    ledger: SqliteJobLedger
    orchestrator: Orchestrator
    secrets: ChainSecretStore
    publishing: PublishService
    printify: PrintifyClient | None = None
    printify_problem: str = ""
    ledger_warnings: list[str] = field(default_factory=list)
    _started: bool = False
    _lock: FileLock | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> None:
        """Open the job database, connect to the servers, resume what a crash left."""
        self._lock = await asyncio.to_thread(acquire_instance_lock, self.paths)
        self.ledger_warnings.extend(await self.ledger.open())
        for gen in self.generators:
            await gen.start()
        self._started = True
        await self.configure_printify()
        await self.orchestrator.recover()

    async def configure_printify(self) -> None:
        """(Re)build the Printify client from the stored token (read off the event loop)."""
        from pod_studio.wiring_publish import build_printify_client, read_printify_token

        try:
            token = await asyncio.to_thread(read_printify_token, self.secrets)
        except PodStudioError as exc:
            token, self.printify_problem = None, user_message(exc)
        old, self.printify = self.printify, None
        if token:
            client = build_printify_client(
                self.settings, self.secrets, self.hub, self.paths, token=token
            )
            self.printify, self.printify_problem = client, ""
            self.publishing.set_marketplace(
                "printify", client, RemoteCatalog(client, costs=self.publishing.cost_book)
            )
            self.orchestrator.set_publisher("printify", self.publishing)
            self.health.add_check("printify", _printify_health(client))
        else:
            from pod_studio.wiring_publish import printify_token_help

            self.printify_problem = self.printify_problem or printify_token_help()
            self.publishing.set_marketplace("printify", None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()

    async def save_secret(self, name: str, value: str) -> None:
        """Store a secret in the OS keyring (never in settings), then use it."""
        await asyncio.to_thread(self.secrets.set, name, value)
        REDACTOR.register_secret(value)
        await self.configure_printify()

    def platforms(self) -> list[tuple[str, bool, str]]:
        """(platform, usable, why not) for the publish panel."""
        return [
            ("export", True, ""),
            ("printify", self.printify is not None, self.printify_problem),
        ]

    def on_event(self, event: Event) -> None:
        """Save the statistics after each batch and each publish result (a crash keeps them)."""
        if isinstance(event, BatchFinished | PublishDone):
            self._tasks = [t for t in self._tasks if not t.done()]
            if not any(t.get_name() == "save-stats" for t in self._tasks):
                with contextlib.suppress(RuntimeError):  # no running loop: saved at exit
                    task = asyncio.get_running_loop().create_task(
                        self.stats.save(), name="save-stats"
                    )
                    self._tasks.append(task)

    async def run_queue(self) -> None:
        """The durable queue's worker loop (runs until cancelled)."""
        await self.orchestrator.run_forever()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self.orchestrator.aclose()
        except Exception:
            log.exception("closing the job queue failed")
        for gen in self.generators:
            try:
                await gen.aclose()
            except Exception:
                log.exception("closing %s failed", gen.url)
        if self.printify is not None:
            with contextlib.suppress(Exception):
                await self.printify.aclose()
        try:
            await self.stats.save()
        except Exception:
            log.exception("saving statistics failed")
        if self._started:
            await self.ledger.aclose()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def set_comfyui_servers(self, urls: Sequence[str]) -> None:
        """Switch to other ComfyUI servers (settings change, demo mode) while running."""
        old = self.generators
        new = make_comfyui_clients(urls, self.sink, self.hub)
        self.generators = new
        self.generation.set_generators(new)
        self.orchestrator.set_generators(new)
        self._register_health()
        if self._started:
            for gen in new:
                await gen.start()
        for gen in old:
            with contextlib.suppress(Exception):
                await gen.aclose()

    async def save_settings(self, settings: AppSettings) -> None:
        """Save, then apply what changed: product templates, the Printify account."""
        from pod_studio.wiring_publish import load_product_templates

        workflow_changed = (
            settings.workflow_path != self.settings.workflow_path
            or settings.prompt_input_override != self.settings.prompt_input_override
            or settings.workflow_values != self.settings.workflow_values
        )
        template = None
        if workflow_changed:  # a workflow that does not load is refused before saving
            template = await asyncio.to_thread(settings_template, settings)
        await asyncio.to_thread(self.settings_store.save, settings)
        old, self.settings = self.settings, settings
        if template is not None:
            self.generation.set_template(template)
            self.orchestrator.set_template(template)
        if settings.product_templates != old.product_templates:
            self.publishing.templates = dict(load_product_templates(settings))
        if settings.printify != old.printify and self._started:
            await self.configure_printify()

    def preflight_design(self, image: GeneratedImage, template_name: str) -> tuple[str, list[str]]:
        """(badge, reasons) for ``image`` as a print file of the template (blocking: run it in
        a worker thread)."""
        from pod_studio.adapters.imaging import read_image_info
        from pod_studio.domain.preflight import preflight
        from pod_studio.services.publishing import DEFAULT_PRINT_AREA, MAX_PRINT_FILE_BYTES

        template = self.publishing.templates.get(template_name)
        scale = template.placement.scale if template is not None else 1.0
        garment = template is None or template.product_type in ("t-shirt", "hoodie", "sweatshirt")
        info = read_image_info(Path(image.file))
        result = preflight(
            info, DEFAULT_PRINT_AREA, MAX_PRINT_FILE_BYTES, scale=scale, garment=garment
        )
        return result.badge.value, list(result.reasons)

    def _register_health(self) -> None:
        for name in [s for s in self.health.services if s.startswith("comfyui")]:
            self.health._checks.pop(name, None)
        for gen in self.generators:
            self.health.add_check(comfyui_breaker_name(gen.url), _comfyui_health(gen))

    def thumbnail(self, image: GeneratedImage) -> bytes:
        """PNG thumbnail bytes (blocking: call it in a worker thread)."""
        return make_thumbnail(
            Path(image.file), 256, cache_dir=self.paths.thumbnails_dir, sha256=image.sha256
        )

    async def load_workflow(self, path: str) -> WorkflowTemplate:
        template = await asyncio.to_thread(
            settings_template, self.settings.with_changes(workflow_path=path)
        )
        self.generation.set_template(template)
        self.orchestrator.set_template(template)
        return template


def build_core(
    *,
    paths: AppPaths | None = None,
    settings: AppSettings | None = None,
    servers: Sequence[str] | None = None,
    template: WorkflowTemplate | None = None,
    sinks: Iterable[EventSink] = (),
) -> Core:
    paths = (paths or app_paths()).ensure()
    loaded, warnings, settings_store = load_settings(paths)
    settings = settings or loaded
    sink = FanoutSink(sinks)
    stats = StatsService(sink, JsonStatsStore(paths.stats_file))
    try:
        stats.load()
    except Exception:
        log.exception("statistics could not be loaded; starting from zero")
    sink.add(stats)
    hub = ResilienceHub(sink, settings=resilience_settings(settings), stats=stats)
    urls = list(servers or settings.comfyui_servers)
    generators = make_comfyui_clients(urls, sink, hub)
    health = HealthService({}, sink, budgets=hub.budgets)
    if template is None:
        try:
            template = settings_template(settings)
        except WorkflowError as exc:
            warnings.append(f"{user_message(exc)} — using the built-in workflow instead")
            template = load_template(None)
    store = GalleryImageStore(paths.images_dir, thumbnails_dir=paths.thumbnails_dir)
    generation = GenerationService(
        generators,
        store,
        template,
        sink,
        in_flight_per_server=settings.max_in_flight_per_server,
    )
    from pod_studio.wiring_publish import (
        build_export_marketplace,
        build_publish_service,
        load_product_templates,
    )

    ledger = SqliteJobLedger(paths.ledger_file)
    publishing = build_publish_service(
        {"export": build_export_marketplace(settings, paths)},
        load_product_templates(settings),
        sink=sink,
        paths=paths,
    )
    orchestrator = Orchestrator(
        ledger,
        generators,
        store,
        template,
        sink,
        publishers={"export": publishing},
        breaker_state=lambda url: hub.breakers.get(comfyui_breaker_name(url)).state.value,
        options=OrchestratorOptions(in_flight_per_server=settings.max_in_flight_per_server),
    )
    core = Core(
        paths=paths,
        settings=settings,
        settings_store=settings_store,
        settings_warnings=warnings,
        sink=sink,
        stats=stats,
        hub=hub,
        health=health,
        generators=generators,
        store=store,
        generation=generation,
        ledger=ledger,
        orchestrator=orchestrator,
        secrets=default_secret_store(redactor=REDACTOR),
        publishing=publishing,
    )
    core._register_health()
    sink.add(core.on_event)
    return core


# --- headless generation -------------------------------------------------------------------


@dataclass
class HeadlessGeneration:
    service: GenerationService
    generators: list[ComfyUIClient]
    store: ImageStore

    async def preflight_all(self) -> list[str]:
        """Problems per server: unreachable, missing node classes or model files."""
        problems: list[str] = []
        for gen in self.generators:
            try:
                info = await gen.object_info()
            except PodStudioError as exc:
                problems.append(f"{gen.url}: {user_message(exc)}")
                continue
            for p in self.service.template.preflight(info):
                problems.append(f"{gen.url}: {p}")
        return problems


@contextlib.asynccontextmanager
async def headless_generation(
    *,
    servers: Sequence[str] | None,
    out_dir: Path,
    template: WorkflowTemplate,
    sink: EventSink,
    in_flight_per_server: int | None = None,
    client_options: dict[str, Any] | None = None,
    resilience: dict[str, Any] | None = None,
) -> AsyncIterator[HeadlessGeneration]:
    """A generation pipeline writing into ``out_dir`` (``resilience`` overrides settings)."""
    paths = app_paths().ensure()
    settings, _warnings, _store = load_settings(paths)
    urls = list(servers or settings.comfyui_servers)
    fan = FanoutSink([sink])
    # headless runs count in the statistics too (`pod-studio stats`, the Statistics dock)
    stats = StatsService(store=JsonStatsStore(paths.stats_file))
    try:
        stats.load()
    except Exception:
        log.exception("statistics could not be loaded; counting from zero")
    fan.add(stats)
    hub = ResilienceHub(fan, settings=resilience or resilience_settings(settings), stats=stats)
    generators = make_comfyui_clients(urls, fan, hub, **(client_options or {}))
    store = FolderImageStore(out_dir)
    service = GenerationService(
        generators,
        store,
        template,
        fan,
        in_flight_per_server=in_flight_per_server or settings.max_in_flight_per_server,
    )
    try:
        for gen in generators:
            await gen.start()
        yield HeadlessGeneration(service, generators, store)
    finally:
        for gen in generators:
            with contextlib.suppress(Exception):
                await gen.aclose()
        try:
            await stats.save()
        except Exception:
            log.exception("saving statistics failed")


# --- the durable queue ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_ledger(paths: AppPaths | None = None) -> AsyncIterator[SqliteJobLedger]:
    """The job database, opened (warnings go to stderr and the log) and closed after use."""
    paths = (paths or app_paths()).ensure()
    ledger = SqliteJobLedger(paths.ledger_file)
    try:
        for warning in await ledger.open():
            log.warning("job database: %s", warning)
            print(f"warning: {warning}", file=sys.stderr)
        yield ledger
    finally:
        await ledger.aclose()


@dataclass
class OrchestratorHandle:
    orchestrator: Orchestrator
    ledger: SqliteJobLedger
    hub: ResilienceHub


@contextlib.asynccontextmanager
async def open_orchestrator(
    *,
    sink: EventSink,
    servers: Sequence[str] | None = None,
    export_dir: Path | None = None,
    publishers: dict[str, PublishExecutor] | None = None,
    paths: AppPaths | None = None,
    options: OrchestratorOptions | None = None,
) -> AsyncIterator[OrchestratorHandle]:
    """The orchestrator over the app's ledger, gallery, ComfyUI servers and export folder."""
    paths = (paths or app_paths()).ensure()
    settings, _warnings, _store = load_settings(paths)
    fan = FanoutSink([sink])
    hub = ResilienceHub(fan, settings=resilience_settings(settings))
    urls = list(servers or settings.comfyui_servers)
    clients = make_comfyui_clients(urls, fan, hub)
    template = load_template(settings.workflow_path, prompt_input=settings.prompt_input_override)
    export = Path(export_dir or settings.export_dir or paths.export_dir)
    all_publishers: dict[str, PublishExecutor] = {
        "export": MarketplacePublishExecutor(ExportMarketplace(export))
    }
    all_publishers.update(publishers or {})
    ledger = SqliteJobLedger(paths.ledger_file)
    opts = options or OrchestratorOptions(in_flight_per_server=settings.max_in_flight_per_server)
    orch = Orchestrator(
        ledger,
        clients,
        GalleryImageStore(paths.images_dir, thumbnails_dir=paths.thumbnails_dir),
        template,
        fan,
        publishers=all_publishers,
        breaker_state=lambda url: hub.breakers.get(comfyui_breaker_name(url)).state.value,
        options=opts,
    )
    lock = await asyncio.to_thread(acquire_instance_lock, paths)
    try:
        for warning in await ledger.open():
            log.warning("job database: %s", warning)
            print(f"warning: {warning}", file=sys.stderr)
        for client in clients:
            await client.start()
        yield OrchestratorHandle(orch, ledger, hub)
    finally:
        await orch.aclose()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        await ledger.aclose()
        lock.release()


# --- doctor and stats ----------------------------------------------------------------------


@dataclass
class DoctorReport:
    ok: bool
    text: str


async def doctor(url: str) -> DoctorReport:
    started = time.perf_counter()
    try:
        info = await probe_server(url, timeout=5.0)
    except PodStudioError as exc:
        return DoctorReport(
            False,
            f"✗ {url}\n  not usable: {user_message(exc)}\n"
            "  Start ComfyUI (python main.py --listen 127.0.0.1 --port 8188), "
            "check the URL, or try `pod-studio --demo`.",
        )
    ms = (time.perf_counter() - started) * 1000
    lines = [
        f"✓ {url} answers as ComfyUI {info.comfyui_version or '(version unknown)'} in {ms:.0f} ms"
    ]
    for d in info.devices:
        lines.append(
            f"  device: {d.name} ({d.type}), VRAM {d.vram_free / 1024**3:.1f} GB free "
            f"of {d.vram_total / 1024**3:.1f} GB"
        )
    if not info.devices:
        lines.append("  device: none reported")
    if info.queue_remaining is not None:
        lines.append(f"  queue: {info.queue_remaining} prompt(s) waiting or running")
    if info.python_version:
        lines.append(
            f"  python {info.python_version.split()[0]}, pytorch {info.pytorch_version or '?'}"
        )
    lines.append("  verdict: ready to generate")
    return DoctorReport(True, "\n".join(lines))


def load_stats_snapshot() -> dict[str, Any]:
    paths = app_paths()
    stats = StatsService(store=JsonStatsStore(paths.stats_file))
    stats.load()
    return stats.snapshot()


def export_prometheus(snapshot: dict[str, Any], path: Path) -> None:
    write_prometheus(snapshot, path)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    return render_prometheus(snapshot)


def format_stats(snapshot: dict[str, Any]) -> str:
    pipe = snapshot.get("pipeline", {})
    lines = ["Pipeline"]
    for key in (
        "runs",
        "successful_runs",
        "failed_runs",
        "success_rate",
        "images",
        "products",
        "errors",
        "avg_products_per_run",
    ):
        if key in pipe:
            value = pipe[key]
            if key == "success_rate" and isinstance(value, int | float):
                value = f"{value * 100:.1f} %"
            lines.append(f"  {key.replace('_', ' '):<24} {value}")
    services = snapshot.get("services", {})
    if services:
        lines.append("Services")
        for name, c in sorted(services.items()):
            lines.append(
                f"  {name:<24} calls {c.get('calls', 0)}, failures {c.get('failures', 0)}, "
                f"retries {c.get('retries', 0)}, p50 {c.get('p50_ms', '-')} ms, "
                f"p95 {c.get('p95_ms', '-')} ms"
            )
    breakers = snapshot.get("breakers", {})
    if breakers:
        lines.append("Circuit breakers")
        for name, state in sorted(breakers.items()):
            lines.append(f"  {name:<24} {state}")
    return "\n".join(lines)


# --- files and logging for the composition roots -------------------------------------------


def resource_file(*parts: str) -> Path | None:
    from pod_studio.adapters.storage.resources import resource_path

    path = resource_path(*parts)
    return path if path.exists() else None


def configure_logging(*, stderr: bool = False) -> None:
    from pod_studio.adapters.storage.logs import configure_logging as _configure

    _configure(app_paths().ensure(), redactor=REDACTOR, stderr=stderr)


def shutdown_logging() -> None:
    from pod_studio.adapters.storage.logs import shutdown_logging as _shutdown

    _shutdown()


# --- self test (for packaged builds) -------------------------------------------------------


def selftest() -> list[tuple[str, bool, str]]:
    """Checks a frozen or fresh install can do its work: (check, ok, detail) per check.

    Every module imports, SQLite runs in WAL mode in the data folder, the keyring has backends,
    and Pillow writes and reads a PNG with an sRGB profile (print files need both).
    """
    import importlib
    import io
    import pkgutil
    import sqlite3
    import tempfile

    import keyring
    from PIL import Image

    import pod_studio
    from pod_studio.adapters.imaging import SRGB_ICC

    results: list[tuple[str, bool, str]] = []
    failed: list[str] = []
    count = 0
    for mod in pkgutil.walk_packages(pod_studio.__path__, "pod_studio."):
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
            count += 1
        except Exception as exc:  # noqa: BLE001 - a self test reports whatever broke
            failed.append(f"{mod.name}: {type(exc).__name__}: {exc}")
    results.append(("modules import", not failed, "; ".join(failed) or f"{count} modules"))
    paths = app_paths().ensure()
    try:
        with tempfile.TemporaryDirectory(dir=paths.data_dir) as tmp:
            conn = sqlite3.connect(Path(tmp) / "selftest.sqlite3")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.close()
        results.append(("SQLite WAL in the data folder", mode == "wal", f"{paths.data_dir}"))
    except (OSError, sqlite3.Error) as exc:
        results.append(("SQLite WAL in the data folder", False, str(exc)))
    backends = [
        type(b).__module__ + "." + type(b).__name__ for b in keyring.backend.get_all_keyring()
    ]
    # informational: a headless machine legitimately has no secure keyring
    results.append(("keyring backends", True, ", ".join(backends) or "none"))
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(
        buf, "PNG", icc_profile=SRGB_ICC, dpi=(300, 300)
    )
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        ok = im.info.get("icc_profile") == SRGB_ICC and round(im.info["dpi"][0]) == 300
    results.append(("PNG with sRGB profile and 300 DPI", ok, "Pillow round trip"))
    return results
