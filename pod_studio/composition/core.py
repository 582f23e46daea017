"""Composition (Qt-free): the one function that builds POD Studio's engine, ``build_core``.

The engine is the durable ``Orchestrator`` over the SQLite job ledger, with the ComfyUI
servers, the gallery, the ``PublishService`` and its platforms, and the resilience hub
(breakers, retry policies, rate budgets), all built from the seller's settings. The window
(``bootstrap``), every headless command (``cli``), the tests, the benchmarks and the crash
worker build it here, so they all run the same code. Only ``composition`` imports adapters:
the services that change the engine at run time (``SettingsService``, ``ComfyUIServers``,
``PlatformRegistry``, ``DesignService``) get what they build injected (``builders``).
``Core`` is the record of what was built, with its start and its one shutdown (an
``AsyncExitStack``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from pod_studio.adapters.storage.images import GalleryImageStore, make_thumbnail
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.paths import AppPaths, app_paths
from pod_studio.adapters.storage.seller_costs import JsonSellerCostStore
from pod_studio.adapters.storage.stats_store import JsonStatsStore
from pod_studio.composition.builders import (
    REDACTOR,
    FanoutSink,
    acquire_instance_lock,
    comfyui_state_dir,
    configured_servers,
    load_settings,
    load_template,
    local_server_factory,
    logged_close,
    make_comfyui_clients,
    platform_builders,
    registered_secrets,
    resilience_settings,
    settings_template,
    test_comfyui,
)
from pod_studio.composition.overrides import (
    ComfyUIClientOverrides,
    LocalServerOverrides,
    ResilienceOverrides,
)
from pod_studio.domain.errors import WorkflowError, user_message
from pod_studio.domain.events import BatchFinished, Event, EventSink, PublishDone
from pod_studio.domain.settings import AppSettings, SecretStorePort
from pod_studio.domain.urls import check_server_urls
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.comfyui_servers import ComfyUIServer, ComfyUIServers, comfyui_breaker_name
from pod_studio.services.designs import DesignService
from pod_studio.services.health import HealthService
from pod_studio.services.lifecycle import BackgroundTasks
from pod_studio.services.orchestrator import Orchestrator, OrchestratorOptions
from pod_studio.services.platforms import PlatformRegistry
from pod_studio.services.publishing import PublishService
from pod_studio.services.resilience import ResilienceHub
from pod_studio.services.settings_apply import SettingsService
from pod_studio.services.stats import StatsService

# the helpers other modules take from here
__all__ = [
    "REDACTOR",
    "Core",
    "FanoutSink",
    "acquire_instance_lock",
    "build_core",
    "comfyui_breaker_name",
    "comfyui_state_dir",
    "configured_servers",
    "load_settings",
    "load_template",
    "settings_template",
]

log = logging.getLogger(__name__)


# --- the engine ----------------------------------------------------------------------------


@dataclass
class Core:
    """What ``build_core`` built, without Qt. ``bootstrap`` adds the Qt bridge to ``sink``;
    the headless commands add their progress printer (``composition.headless.open_core``).
    The window reaches it through small ports (``app.context``): ``orchestrator`` (the
    queue), ``designs``, ``platforms``, ``comfyui``, ``config`` (the settings) and the
    core itself for the breakers and health checks."""

    paths: AppPaths
    settings_warnings: list[str]
    sink: FanoutSink
    stats: StatsService
    hub: ResilienceHub
    health: HealthService
    store: GalleryImageStore
    ledger: SqliteJobLedger
    orchestrator: Orchestrator
    secrets: SecretStorePort
    publishing: PublishService
    comfyui: ComfyUIServers
    platforms: PlatformRegistry
    config: SettingsService
    designs: DesignService
    tasks: BackgroundTasks
    ledger_warnings: list[str] = field(default_factory=list)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    # what start() opened (the data folder's lock, the job database): closed last
    _opened: AsyncExitStack = field(default_factory=AsyncExitStack)
    started: bool = False

    @property
    def settings(self) -> AppSettings:
        return self.config.settings

    @property
    def generators(self) -> list[ComfyUIServer]:
        return self.comfyui.generators

    @property
    def template(self) -> WorkflowTemplate:
        return self.orchestrator.template

    async def start(self, *, connect: bool = True) -> None:
        """Take the data folder, open the job database, connect to the servers (unless
        ``connect`` is false: queue-only commands), resume what a crash left."""
        lock = await asyncio.to_thread(acquire_instance_lock, self.paths)
        self._opened.callback(lock.release)
        try:
            self.ledger_warnings.extend(await self.ledger.open())
        except BaseException:
            await self._opened.aclose()
            raise
        self._opened.push_async_callback(self.ledger.aclose)
        self.started = True
        if not connect:
            return
        await self.comfyui.connect()
        await self.platforms.configure_all()
        self.config.platforms_live = True
        await self.orchestrator.recover()

    def on_event(self, event: Event) -> None:
        """Save the statistics after each batch and each publish result (a crash keeps them)."""
        if isinstance(event, BatchFinished | PublishDone) and not self.tasks.running("save-stats"):
            try:
                self.tasks.spawn(self.stats.save(), name="save-stats")
            except RuntimeError:
                log.debug("no running loop: the statistics are saved at exit")

    async def run_queue(self) -> None:
        """The durable queue's worker loop (runs until cancelled)."""
        await self.orchestrator.run_forever()

    def reset_breaker(self, name: str | None) -> None:
        if name is None:
            self.hub.breakers.reset_all()
        else:
            self.hub.breakers.reset(name)

    async def check_health(self) -> None:
        await self.health.check_now()

    async def aclose(self) -> None:
        """Stop the background work, the local server, the queue, every connection; save the
        statistics; close the job database and release the data folder (in that order)."""
        await self._stack.aclose()
        self.started = False


def build_core(
    *,
    paths: AppPaths | None = None,
    settings: AppSettings | None = None,
    servers: Sequence[str] | None = None,
    template: WorkflowTemplate | None = None,
    sinks: Iterable[EventSink] = (),
    secrets: SecretStorePort | None = None,
    options: OrchestratorOptions | None = None,
    comfyui_client: ComfyUIClientOverrides | None = None,
    resilience: ResilienceOverrides | None = None,
    local_server: LocalServerOverrides | None = None,
) -> Core:
    """The engine, from the seller's settings (each argument overrides one part of them:
    ``servers`` the ComfyUI servers (``[]``: none, for work that needs no ComfyUI; given
    servers are pinned: saved settings do not switch them), ``template`` the workflow,
    ``options`` the queue's tuning, ``comfyui_client`` the ComfyUI clients', ``resilience``
    the retry policies and breakers, ``secrets`` the secret store, ``local_server`` the local
    ComfyUI server's process)."""
    from pod_studio.adapters.imaging import read_image_info
    from pod_studio.adapters.storage.images import MAX_IMAGE_PIXELS
    from pod_studio.composition.publishing import (
        build_export_marketplace,
        build_publish_service,
        export_platform,
        load_product_templates,
    )

    paths = (paths or app_paths()).ensure()
    loaded, warnings, settings_store = load_settings(paths)
    settings = settings or loaded
    secrets = registered_secrets(secrets)
    sink = FanoutSink(sinks)
    stats = StatsService(sink, JsonStatsStore(paths.stats_file))
    try:
        stats.load()
    except Exception:
        log.exception("statistics could not be loaded; starting from zero")
    sink.add(stats)
    hub_settings = resilience.hub_settings() if resilience else resilience_settings(settings)
    hub = ResilienceHub(sink, settings=hub_settings, stats=stats)
    health = HealthService({}, sink, budgets=hub.budgets)
    if template is None:
        try:
            template = settings_template(settings)
        except WorkflowError as exc:
            warnings.append(f"{user_message(exc)} — using the built-in workflow instead")
            template = load_template(None)
    store = GalleryImageStore(paths.images_dir, thumbnails_dir=paths.thumbnails_dir)
    ledger = SqliteJobLedger(paths.ledger_file)
    seller_cost_store = JsonSellerCostStore(paths.seller_costs_file)
    publishing = build_publish_service(
        [export_platform(build_export_marketplace(settings, paths))],
        load_product_templates(settings),
        sink=sink,
        paths=paths,
    )
    publishing.seller_costs = seller_cost_store.load()
    tasks = BackgroundTasks()
    # A URL with a user name or password is refused here too (not only on the command line).
    urls = check_server_urls(settings.comfyui_servers if servers is None else servers)
    comfyui = ComfyUIServers(
        urls,
        make_servers=lambda us: make_comfyui_clients(us, sink, hub, comfyui_client),
        make_local=local_server_factory(paths, sink, local_server or LocalServerOverrides()),
        local_settings=lambda: config.settings.comfyui_process,
        test_server=test_comfyui,
        health=health,
        tasks=tasks,
        on_switch=lambda generators: orchestrator.set_generators(generators),
        pinned=servers is not None,
    )
    orchestrator = Orchestrator(
        ledger,
        comfyui.generators,
        store,
        template,
        sink,
        publishers={"export": publishing},
        breaker_state=lambda url: hub.breakers.get(comfyui_breaker_name(url)).state.value,
        options=options
        or OrchestratorOptions(in_flight_per_server=settings.max_in_flight_per_server),
    )
    platforms = PlatformRegistry(
        platform_builders(secrets, hub, paths),
        settings=lambda: config.settings,
        publishing=publishing,
        orchestrator=orchestrator,
        health=health,
        breakers=hub.breakers,
        ledger=ledger,
    )
    config = SettingsService(
        settings,
        write=settings_store.save,
        load_workflow=settings_template,
        load_templates=load_product_templates,
        orchestrator=orchestrator,
        publishing=publishing,
        servers=comfyui,
        platforms=platforms,
    )
    designs = DesignService(
        store,
        publishing=publishing,
        orchestrator=orchestrator,
        servers=comfyui,
        cost_store=seller_cost_store,
        thumbnail=lambda image: make_thumbnail(
            Path(image.file), 256, cache_dir=paths.thumbnails_dir, sha256=image.sha256
        ),
        read_image_info=read_image_info,
        max_pixels=MAX_IMAGE_PIXELS,
    )
    core = Core(
        paths=paths,
        settings_warnings=warnings,
        sink=sink,
        stats=stats,
        hub=hub,
        health=health,
        store=store,
        ledger=ledger,
        orchestrator=orchestrator,
        secrets=secrets,
        publishing=publishing,
        comfyui=comfyui,
        platforms=platforms,
        config=config,
        designs=designs,
        tasks=tasks,
    )
    # The one shutdown, last in first out: what start() opened (job database, data folder)
    # closes last, after the statistics are saved; the background tasks stop first.
    stack = core._stack
    stack.push_async_callback(core._opened.aclose)
    stack.push_async_callback(logged_close(stats.save, "saving statistics"))
    stack.push_async_callback(platforms.aclose)
    stack.push_async_callback(comfyui.aclose)
    stack.push_async_callback(logged_close(orchestrator.aclose, "closing the job queue"))
    stack.push_async_callback(comfyui.close_local)
    stack.push_async_callback(tasks.aclose)
    sink.add(core.on_event)
    return core
