"""Composition (Qt-free): the one function that builds POD Studio's engine, ``build_core``.

The engine is the durable ``Orchestrator`` over the SQLite job ledger, with the ComfyUI
clients, the gallery, the ``PublishService`` (export folder, Printify) and the resilience hub
(breakers, retry policies, rate budgets) all built from the seller's settings. The window
(``bootstrap``), every headless command (``cli``), the tests, the benchmarks and the crash
worker build it here, so they all run the same code. Only ``composition`` imports adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock, Timeout

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.marketplaces.etsy import EtsyClient
from pod_studio.adapters.marketplaces.etsy_oauth import EtsyAuth
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.adapters.marketplaces.shopify import ShopifyClient
from pod_studio.adapters.storage.images import GalleryImageStore, make_thumbnail
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.paths import AppPaths, app_paths
from pod_studio.adapters.storage.resources import default_workflow_path
from pod_studio.adapters.storage.secrets import Redactor, default_secret_store
from pod_studio.adapters.storage.seller_costs import JsonSellerCostStore
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.adapters.storage.stats_store import JsonStatsStore
from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.errors import PodStudioError, WorkflowError, user_message
from pod_studio.domain.events import BatchFinished, Event, EventSink, PublishDone
from pod_studio.domain.models import GeneratedImage, ServerProblem
from pod_studio.domain.ports import SellerCostStore
from pod_studio.domain.pricing import ProfitLine
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.settings import AppSettings, SecretName, SecretStorePort
from pod_studio.domain.urls import check_server_urls
from pod_studio.domain.views import (
    ComfyUIAction,
    ComfyUIServerView,
    PlatformChoice,
    WorkflowReport,
)
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.comfyui_process import ComfyUIServerService
from pod_studio.services.health import HealthResult, HealthService
from pod_studio.services.orchestrator import Orchestrator, OrchestratorOptions
from pod_studio.services.publishing import PublishService
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


def comfyui_state_dir(paths: AppPaths | None = None) -> Path:
    """Where the local ComfyUI server's state file and log live."""
    return (paths or app_paths()).data_dir / "comfyui"


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


def _shopify_health(client: ShopifyClient) -> Callable[[], Any]:
    async def check() -> HealthResult:
        ok, detail = await client.health_check()
        return HealthResult(reachable=ok, auth_ok=ok, detail=detail)

    return check


def _etsy_health(client: EtsyClient) -> Callable[[], Any]:
    async def check() -> HealthResult:
        ok, detail = await client.health_check()
        left = client.remaining_today()
        if left is not None:
            detail = f"{detail}; {left} request(s) left today"
        return HealthResult(reachable=ok, auth_ok=ok, detail=detail)

    return check


def _registered(secrets: SecretStorePort | None) -> SecretStorePort:
    """The default store registers every value it reads with the log redactor; a store
    handed in (tests, embedding) has its current values registered up front instead."""
    if secrets is None:
        return default_secret_store(redactor=REDACTOR)
    for name in SecretName:
        with contextlib.suppress(Exception):  # a store that cannot be read has nothing to leak
            REDACTOR.register_secret(secrets.get(name))
    return secrets


def _comfyui_health(client: ComfyUIClient) -> Callable[[], Any]:

    async def check() -> HealthResult:
        problem, line = await client.diagnose()
        if problem is not ServerProblem.NONE:
            # the same words as the status bar: not ComfyUI / offline / too old / busy
            return HealthResult(reachable=problem is not ServerProblem.OFFLINE, detail=line)
        info = await client.system_info()
        return HealthResult(reachable=True, auth_ok=None, detail=info.device_summary)

    return check


# --- the engine ----------------------------------------------------------------------------


@dataclass
class Core:
    """Everything POD Studio runs on, without Qt. ``bootstrap`` adds the Qt bridge to ``sink``;
    the headless commands add their progress printer (``composition.headless.open_core``)."""

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
    ledger: SqliteJobLedger
    orchestrator: Orchestrator
    secrets: SecretStorePort
    publishing: PublishService
    client_options: dict[str, Any] = field(default_factory=dict)
    # servers given on the command line (or demo mode) win over the settings' servers
    _servers_pinned: bool = False
    _templates: list[ProductTemplate] | None = None
    # the seller's own provider costs per template and size (Settings → Products)
    seller_cost_store: SellerCostStore | None = None
    printify: PrintifyClient | None = None
    printify_problem: str = ""
    shopify: ShopifyClient | None = None
    shopify_problem: str = ""
    etsy: EtsyClient | None = None
    etsy_auth: EtsyAuth | None = None
    etsy_problem: str = ""
    ledger_warnings: list[str] = field(default_factory=list)
    # the local ComfyUI server POD Studio looks after (settings.comfyui_process.enabled)
    comfyui_server: ComfyUIServerService | None = None
    comfyui_options: dict[str, Any] = field(default_factory=dict)
    _comfyui_control: ComfyUIClient | None = None
    _started: bool = False
    _lock: FileLock | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def template(self) -> WorkflowTemplate:
        return self.orchestrator.template

    async def start(self, *, connect: bool = True) -> None:
        """Take the data folder, open the job database, connect to the servers (unless
        ``connect`` is false: queue-only commands), resume what a crash left."""
        self._lock = await asyncio.to_thread(acquire_instance_lock, self.paths)
        try:
            self.ledger_warnings.extend(await self.ledger.open())
        except BaseException:
            self._lock.release()
            self._lock = None
            raise
        self._started = True
        if not connect:
            return
        self.configure_comfyui_server()
        await self._start_comfyui_server()
        for gen in self.generators:
            await gen.start()
        await self.configure_platforms()
        await self.orchestrator.recover()

    async def configure_printify(self) -> None:
        """(Re)build the Printify client from the stored token (read off the event loop)."""
        from pod_studio.composition.publishing import (
            build_printify_client,
            printify_platform,
            printify_token_help,
            read_printify_token,
        )

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
            self.publishing.set_platform("printify", printify_platform(client, self.paths))
            self.health.add_check("printify", _printify_health(client))
        else:
            self.printify_problem = self.printify_problem or printify_token_help()
            self.publishing.set_platform("printify", None)
        self.orchestrator.set_publisher("printify", self.publishing)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()

    async def configure_shopify(self) -> None:
        """(Re)build the Shopify client from the settings and the stored token."""
        from pod_studio.composition.publishing import (
            build_shopify_client,
            read_shopify_secrets,
            shopify_platform,
            shopify_setup_help,
        )

        old, self.shopify = self.shopify, None
        self.shopify_problem = ""
        token = secret = None
        if self.settings.shopify.shop_domain:
            try:
                token, secret = await asyncio.to_thread(
                    read_shopify_secrets, self.settings, self.secrets
                )
            except PodStudioError as exc:
                self.shopify_problem = user_message(exc)
        if self.settings.shopify.shop_domain and (token or secret):
            try:
                client = build_shopify_client(
                    self.settings, self.hub, token=token, client_secret=secret
                )
            except (PodStudioError, ValueError) as exc:
                self.shopify_problem = user_message(exc)
            else:
                self.shopify = client
                self.publishing.set_platform("shopify", shopify_platform(client))
                self.health.add_check("shopify", _shopify_health(client))
        if self.shopify is None:
            self.shopify_problem = self.shopify_problem or shopify_setup_help()
            self.publishing.set_platform("shopify", None)
        self.orchestrator.set_publisher("shopify", self.publishing)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()

    async def configure_etsy(self) -> None:
        """(Re)build the Etsy client when the shop is connected (tokens in the keyring)."""
        from pod_studio.composition.publishing import (
            build_etsy_auth,
            build_etsy_client,
            etsy_platform,
            etsy_setup_help,
        )

        old, old_auth = self.etsy, self.etsy_auth
        self.etsy, self.etsy_auth, self.etsy_problem = None, None, ""
        auth = build_etsy_auth(self.settings, self.secrets)
        try:
            connected = await auth.is_connected()
        except PodStudioError as exc:
            connected, self.etsy_problem = False, user_message(exc)
        if connected:
            client = build_etsy_client(
                self.settings, auth, self.hub, self.paths, catalog=self.printify
            )
            self.etsy, self.etsy_auth = client, auth
            self.publishing.set_platform("etsy", etsy_platform(client))
            self.health.add_check("etsy", _etsy_health(client))
        else:
            await auth.aclose()
            self.etsy_problem = self.etsy_problem or etsy_setup_help()
            self.publishing.set_platform("etsy", None)
        self.orchestrator.set_publisher("etsy", self.publishing)
        for closing in (old, old_auth):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing.aclose()

    async def connect_etsy(self, open_browser: Callable[[str], object]) -> str:
        """The desktop OAuth flow (browser, one-shot listener on 127.0.0.1); returns the
        shop's name. Tokens go to the keyring before they are used."""
        from pod_studio.composition.publishing import build_etsy_auth

        auth = build_etsy_auth(self.settings, self.secrets)
        try:
            await auth.connect(open_browser)
        finally:
            await auth.aclose()
        await self.configure_etsy()
        if self.etsy is None:
            return "connected"
        shops = await self.etsy.shops()
        return shops[0].title if shops else "connected (no shop on this account)"

    async def configure_platforms(self) -> None:
        await self.configure_printify()
        await self.configure_shopify()
        await self.configure_etsy()

    async def save_secret(self, name: str, value: str) -> None:
        """Store a secret in the OS keyring (never in settings), then use it."""
        await asyncio.to_thread(self.secrets.set, name, value)
        REDACTOR.register_secret(value)
        await self.configure_platforms()

    # --- the local ComfyUI server --------------------------------------------------------

    def configure_comfyui_server(self) -> None:
        """Build the local server's service when the settings enable it (not started)."""
        from pod_studio.composition.comfyui_process import build_comfyui_server_service

        section = self.settings.comfyui_process
        options = dict(self.comfyui_options)
        if not section.enabled and "command" not in options:
            self.comfyui_server = None
            return
        control = ComfyUIClient(section.url)
        self._comfyui_control = control
        self.comfyui_server = build_comfyui_server_service(
            section, comfyui_state_dir(self.paths), sink=self.sink, control=control, **options
        )

    async def _start_comfyui_server(self) -> None:
        """Adopt a server left running or auto-start one, in the background (a start can
        take minutes: loading models), and read the gauges while it runs."""
        server = self.comfyui_server
        if server is None:
            return
        server.start_gauges()
        self._tasks.append(
            asyncio.get_running_loop().create_task(server.on_app_start(), name="comfyui-start")
        )

    async def _close_comfyui_server(self) -> None:
        server, self.comfyui_server = self.comfyui_server, None
        control, self._comfyui_control = self._comfyui_control, None
        if server is not None:
            try:
                await server.aclose()
            except Exception:
                log.exception("closing the local ComfyUI server failed")
        if control is not None:
            with contextlib.suppress(Exception):
                await control.aclose()

    def comfyui_server_view(self) -> ComfyUIServerView:
        """The local server now (``managed`` false: no ComfyUI folder set up)."""
        server = self.comfyui_server
        process = server.process if server is not None else None
        if server is None or process is None:
            return ComfyUIServerView(managed=False, url=self.settings.comfyui_process.url)
        last = process.last_exit
        return ComfyUIServerView(
            managed=True,
            state=process.state.value,
            url=process.url,
            pid=process.pid,
            detail=last.summary if last is not None else "",
            log_lines=tuple(process.log_lines()),
        )

    async def control_comfyui(self, action: ComfyUIAction) -> str:
        """Do ``action`` on the local server; returns what was done, in words."""
        server = self.comfyui_server
        if server is None:
            raise PodStudioError(
                "no local ComfyUI server",
                service="comfyui-process",
                user_message="ComfyUI is not set up: choose the ComfyUI folder in Settings.",
            )
        match action:
            case ComfyUIAction.START:
                await server.start()
                return "ComfyUI is running"
            case ComfyUIAction.STOP:
                reason = await server.stop()
                return reason.summary if reason is not None else "ComfyUI was not running"
            case ComfyUIAction.RESTART:
                await server.restart()
                return "ComfyUI restarted"
            case ComfyUIAction.FREE_MEMORY:
                await server.free_memory()
                return "models unloaded and memory freed"
            case ComfyUIAction.INTERRUPT_ALL:
                await server.interrupt_all()
                return "the running prompt was interrupted"
            case ComfyUIAction.CLEAR_QUEUE:
                await server.clear_queue()
                return "the waiting prompts were removed"

    # --- Shopify and Etsy settings ---------------------------------------------------------

    async def test_shopify(self) -> str:
        """A verdict on the saved Shopify connection (raises a PodStudioError when it fails)."""
        if self.shopify is None:
            text = self.shopify_problem or "Shopify is not set up"
            raise PodStudioError(text, service="shopify", user_message=text)
        ok, text = await self.shopify.health_check()
        if not ok:
            raise PodStudioError(text, service="shopify", user_message=text)
        return str(text)

    def _need_etsy(self) -> EtsyClient:
        if self.etsy is None:
            text = self.etsy_problem or "Etsy is not connected"
            raise PodStudioError(text, service="etsy", user_message=text)
        return self.etsy

    async def test_etsy(self) -> str:
        ok, text = await self._need_etsy().health_check()
        if not ok:
            raise PodStudioError(text, service="etsy", user_message=text)
        return str(text)

    async def etsy_choices(self) -> dict[str, list[tuple[str, str]]]:
        """The connected shop's lists as [(id, label)]: "shops", "shipping_profiles",
        "return_policies", "readiness_states"."""
        etsy = self._need_etsy()
        shops = [(str(s.id), str(s.title)) for s in await etsy.shops()]
        return {
            "shops": shops,
            "shipping_profiles": [(str(c.id), c.label) for c in await etsy.shipping_profiles()],
            "return_policies": [(str(c.id), c.label) for c in await etsy.return_policies()],
            "readiness_states": [(str(c.id), c.label) for c in await etsy.readiness_states()],
        }

    async def disconnect_etsy(self) -> None:
        """Forget the Etsy tokens (keyring) and stop offering Etsy."""
        from pod_studio.composition.publishing import build_etsy_auth

        auth = self.etsy_auth or build_etsy_auth(self.settings, self.secrets)
        try:
            await auth.disconnect()
        finally:
            if auth is not self.etsy_auth:
                await auth.aclose()
        await self.configure_etsy()

    def platforms(self) -> list[tuple[str, bool, str]]:
        """(platform, usable, why not) for the publish panel and the publish command."""
        return [
            ("export", True, ""),
            ("printify", self.printify is not None, self.printify_problem),
            ("shopify", self.shopify is not None, self.shopify_problem),
            ("etsy", self.etsy is not None, self.etsy_problem),
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
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._close_comfyui_server()
        try:
            await self.orchestrator.aclose()
        except Exception:
            log.exception("closing the job queue failed")
        for gen in self.generators:
            try:
                await gen.aclose()
            except Exception:
                log.exception("closing %s failed", gen.url)
        for client in (self.printify, self.shopify, self.etsy, self.etsy_auth):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self.printify = self.shopify = self.etsy = self.etsy_auth = None
        try:
            await self.stats.save()
        except Exception:
            log.exception("saving statistics failed")
        if self._started:
            await self.ledger.aclose()
            self._started = False
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def set_comfyui_servers(self, urls: Sequence[str]) -> None:
        """Switch to other ComfyUI servers (settings change, demo mode) while running."""
        old = self.generators
        new = make_comfyui_clients(
            check_server_urls(urls), self.sink, self.hub, **self.client_options
        )

        self.generators = new
        self.orchestrator.set_generators(new)
        self._register_health()
        if self._started:
            for gen in new:
                await gen.start()
        if old:
            # The old connections close in the background: a slow websocket close handshake
            # must not hold up the settings save (aclose waits for them).
            task = asyncio.create_task(self._retire(old), name="retire-comfyui-clients")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(generators: Sequence[Any]) -> None:
        for gen in generators:
            with contextlib.suppress(Exception):
                await gen.aclose()

    async def save_settings(self, settings: AppSettings) -> None:
        """Save, then apply what changed: product templates, the Printify account."""
        from pod_studio.composition.publishing import load_product_templates

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
            self.orchestrator.set_template(template)
        if settings.product_templates != old.product_templates:
            self.publishing.templates = dict(load_product_templates(settings))
            self._templates = None
        if settings.comfyui_process != old.comfyui_process and self._started:
            await self._close_comfyui_server()
            self.configure_comfyui_server()
            await self._start_comfyui_server()
        if settings.comfyui_servers != old.comfyui_servers and not self._servers_pinned:
            await self.set_comfyui_servers(settings.comfyui_servers)
        if settings.printify != old.printify and self._started:
            if settings.printify.base_url != old.printify.base_url:
                self.hub.breakers.reset("printify")  # a new endpoint starts with a clean slate
            await self.configure_printify()
        if settings.etsy != old.etsy and self._started:
            await self.configure_etsy()
        if settings.shopify != old.shopify and self._started:
            if settings.shopify.base_url != old.shopify.base_url:
                self.hub.breakers.reset("shopify")
            await self.configure_shopify()

    def preflight_design(self, image: GeneratedImage, template_name: str) -> tuple[str, list[str]]:
        """(badge, reasons) for ``image`` as a print file of the template (blocking: run it in
        a worker thread)."""
        from pod_studio.adapters.imaging import read_image_info
        from pod_studio.domain.preflight import preflight
        from pod_studio.services.publishing import DEFAULT_PRINT_AREA, MAX_PRINT_FILE_BYTES

        template = self.publishing.templates.get(template_name)
        scale = template.placement.scale if template is not None else 1.0
        garment = template is None or template.product_type in ("t-shirt", "hoodie", "sweatshirt")
        info = read_image_info(Path(image.print_path))
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

    # --- what the window asks of the engine (app.context.Studio) ----------------------------

    @property
    def server_urls(self) -> list[str]:
        return [g.url for g in self.generators]

    def product_templates(self) -> list[ProductTemplate]:
        """The seller's product templates (read again only when the settings change)."""
        if self._templates is None:
            self._templates = list(self.publishing.templates.values())
        return list(self._templates)

    def seller_costs(self) -> SellerCosts:
        """The seller's cost table as the profit preview uses it."""
        return self.publishing.seller_costs

    async def save_seller_costs(self, costs: SellerCosts) -> None:
        """Write the seller's cost table (atomically) and use it in the next preview."""
        if self.seller_cost_store is not None:
            await asyncio.to_thread(self.seller_cost_store.save, costs)
        self.publishing.seller_costs = costs

    async def open_workflow(self, path: str) -> WorkflowReport:
        """Load the workflow at ``path``, check it against the first server, and keep it in
        the settings (a workflow that does not load is refused and nothing changes)."""
        settings = self.settings.with_changes(workflow_path=path)
        template = await asyncio.to_thread(settings_template, settings)
        problems: list[str] = []
        if self.generators:
            try:
                info = await self.generators[0].object_info()
                problems = template.preflight(info)
            except PodStudioError as exc:
                problems = [f"could not check against the server: {user_message(exc)}"]
        await self.save_settings(settings)
        return WorkflowReport(
            template.name or Path(path).name, workflow_summary(template), problems
        )

    async def check_workflow(self) -> WorkflowReport:
        """The current workflow checked against the first server (nothing is saved)."""
        template = self.template
        if not self.generators:
            return WorkflowReport(template.name or "workflow", workflow_summary(template), [])
        info = await self.generators[0].object_info()
        return WorkflowReport(
            template.name or "built-in workflow",
            workflow_summary(template),
            template.preflight(info),
        )

    async def list_checkpoints(self) -> list[str]:
        if not self.generators:
            return []
        return await self.generators[0].checkpoints()

    async def upscale_design(
        self, image: GeneratedImage, template_names: Sequence[str]
    ) -> GeneratedImage:
        """Upscale ``image`` on a ComfyUI server for 300 DPI on the widest of the templates
        and keep the result as its print file (``services.upscale``); the updated design."""
        from pod_studio.adapters.storage.images import MAX_IMAGE_PIXELS
        from pod_studio.services.upscale import upscale_design

        by_name = {t.name: t for t in self.product_templates()}
        templates = [by_name[n] for n in template_names if n in by_name]
        # servers the queue would use now first (breaker closed, checks passed), then the rest
        eligible = {s.url for s in self.orchestrator.servers() if s.eligible}
        servers = sorted(self.generators, key=lambda g: g.url not in eligible)
        return await upscale_design(
            image, templates, servers, self.store, max_pixels=MAX_IMAGE_PIXELS
        )

    async def test_comfyui(self, url: str) -> str:
        """What answers at ``url`` (the typed value, not the saved one), in one line."""
        from pod_studio.composition.diagnostics import doctor

        report = await doctor(url)
        lines = report.text.splitlines()
        if not report.ok:
            raise PodStudioError(
                lines[1].strip() if len(lines) > 1 else lines[0], service="comfyui"
            )
        return lines[0].lstrip("✓ ")

    def reset_breaker(self, name: str | None) -> None:
        if name is None:
            self.hub.breakers.reset_all()
        else:
            self.hub.breakers.reset(name)

    async def check_health(self) -> None:
        await self.health.check_now()

    async def list_platforms(self) -> list[PlatformChoice]:
        return [
            PlatformChoice(name, PLATFORM_LABELS.get(name, name.capitalize()), ok, reason)
            for name, ok, reason in self.platforms()
        ]

    async def profit_preview(self, image: GeneratedImage, template_name: str) -> list[ProfitLine]:
        return list(await self.publishing.profit_preview(image, template_name))

    async def printify_mockups(self, design_sha256: str, template_name: str) -> list[bytes]:
        """Printify's own mockup images of this design as this product (at most a few), once
        its Printify draft exists; ``[]`` before (no job yet, or not created yet)."""
        from pod_studio.adapters.marketplaces.mockup_images import download_mockups
        from pod_studio.domain.jobs import StepStatus, idempotency_key
        from pod_studio.domain.orchestration import publish_job_id

        client = self.printify
        if client is None or not design_sha256 or not template_name:
            return []
        key = idempotency_key(design_sha256, template_name, "printify")
        job = await self.ledger.get_job(publish_job_id(key))
        step = job.step("create") if job is not None else None
        if step is None or step.state is not StepStatus.DONE or not step.remote_ref:
            return []
        listing = await client.get_listing(step.remote_ref)
        # a plain client of its own: the API token never goes to the image host
        return await download_mockups(listing.images, service="printify")

    def describe_secrets(self) -> str:
        return str(self.secrets.describe())

    async def _printify_client_for(
        self, base_url: str | None, token: str | None
    ) -> tuple[PrintifyClient, bool]:
        """(client, temporary): the live client, or a throwaway one (own breaker) for values
        typed in the dialog but not saved yet."""
        from pod_studio.composition.publishing import build_printify_client, read_printify_token

        same_url = base_url is None or base_url.rstrip("/") == self.settings.printify.base_url
        if token is None and same_url and self.printify is not None:
            return self.printify, False
        if token is None:
            token = await asyncio.to_thread(read_printify_token, self.secrets)
        if not token:
            raise PodStudioError(
                "no Printify token",
                service="printify",
                user_message="Paste a Printify API token first.",
            )
        REDACTOR.register_secret(token)
        scratch = ResilienceHub(lambda _e: None)
        client = build_printify_client(
            self.settings, self.secrets, scratch, self.paths, base_url=base_url, token=token
        )
        return client, True

    async def printify_shops(
        self, base_url: str | None = None, token: str | None = None
    ) -> list[tuple[str, str]]:
        client, temporary = await self._printify_client_for(base_url, token)
        try:
            return [(str(s.id), str(s.title)) for s in await client.shops()]
        finally:
            if temporary:
                await client.aclose()

    async def test_printify(self, base_url: str | None = None, token: str | None = None) -> str:
        client, temporary = await self._printify_client_for(base_url, token)
        try:
            ok, text = await client.health_check()
        finally:
            if temporary:
                await client.aclose()
        if not ok:
            raise PodStudioError(text, service="printify", user_message=text)
        return str(text)


PLATFORM_LABELS = {
    "export": "Export folder",
    "printify": "Printify",
    "shopify": "Shopify",
    "etsy": "Etsy",
}


def workflow_summary(template: WorkflowTemplate) -> str:
    """Where the job's inputs go in the workflow, in one line."""
    m = template.mapping
    parts = [f"prompt → {m.positive}" if m.positive else "no prompt input found"]
    if m.negative:
        parts.append(f"negative → {m.negative}")
    if m.seed:
        parts.append(f"seed → {m.seed}")
    if m.width and m.height:
        parts.append(f"size → {m.width}, {m.height}")
    if m.checkpoint:
        parts.append(f"model → {m.checkpoint}")
    return "; ".join(parts)


def build_core(
    *,
    paths: AppPaths | None = None,
    settings: AppSettings | None = None,
    servers: Sequence[str] | None = None,
    template: WorkflowTemplate | None = None,
    sinks: Iterable[EventSink] = (),
    secrets: SecretStorePort | None = None,
    options: OrchestratorOptions | None = None,
    client_options: dict[str, Any] | None = None,
    resilience: dict[str, Any] | None = None,
    comfyui_options: dict[str, Any] | None = None,
) -> Core:
    """The engine, from the seller's settings (each argument overrides one part of them:
    ``servers`` the ComfyUI servers (``[]``: none, for work that needs no ComfyUI),
    ``template`` the workflow, ``options`` the queue's tuning, ``client_options`` the ComfyUI
    clients', ``resilience`` the retry policies and breakers, ``secrets`` the secret store,
    ``comfyui_options`` the local ComfyUI server's process: ``command`` replaces its command
    line (tests, demo), the rest go to ``ComfyUIProcess``)."""
    from pod_studio.composition.publishing import (
        build_export_marketplace,
        build_publish_service,
        export_platform,
        load_product_templates,
    )

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
    hub = ResilienceHub(sink, settings=resilience or resilience_settings(settings), stats=stats)
    # A URL with a user name or password is refused here too (not only on the command line).
    urls = check_server_urls(settings.comfyui_servers if servers is None else servers)
    client_options = dict(client_options or {})
    generators = make_comfyui_clients(urls, sink, hub, **client_options)
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
    orchestrator = Orchestrator(
        ledger,
        generators,
        store,
        template,
        sink,
        publishers={"export": publishing},
        breaker_state=lambda url: hub.breakers.get(comfyui_breaker_name(url)).state.value,
        options=options
        or OrchestratorOptions(in_flight_per_server=settings.max_in_flight_per_server),
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
        ledger=ledger,
        orchestrator=orchestrator,
        secrets=_registered(secrets),
        publishing=publishing,
        seller_cost_store=seller_cost_store,
        client_options=client_options,
        comfyui_options=dict(comfyui_options or {}),
        _servers_pinned=servers is not None,
    )
    core._register_health()
    sink.add(core.on_event)
    return core
