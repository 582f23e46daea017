"""Composition (Qt-free): the parts ``build_core`` assembles.

Loading the settings and the workflow, the data folder's lock, the process-wide log
redactor, the event fan-out, and the factories the services get injected: the ComfyUI
clients, the local ComfyUI server, the test of a typed server URL, the platforms' clients
(``PlatformBuilders``). Only ``composition`` imports adapters.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.storage.paths import AppPaths, app_paths
from pod_studio.adapters.storage.resources import default_workflow_path
from pod_studio.adapters.storage.secrets import Redactor, default_secret_store
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.composition.overrides import ComfyUIClientOverrides, LocalServerOverrides
from pod_studio.domain.errors import PodStudioError, WorkflowError
from pod_studio.domain.events import Event, EventSink
from pod_studio.domain.settings import (
    AppSettings,
    ComfyUIProcessSettings,
    SecretName,
    SecretStorePort,
)
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.comfyui_servers import ComfyUIServer, LocalServer, comfyui_breaker_name
from pod_studio.services.platforms import PlatformBuilders
from pod_studio.services.resilience import ResilienceHub

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


def registered_secrets(secrets: SecretStorePort | None) -> SecretStorePort:
    """The default store registers every value it reads with the log redactor; a store
    handed in (tests, embedding) has its current values registered up front instead."""
    if secrets is None:
        return default_secret_store(redactor=REDACTOR)
    for name in SecretName:
        try:
            value = secrets.get(name)
        except Exception:
            # a store that cannot be read has nothing to leak; it says so again when used
            log.info("secret %s not readable for the redactor", name, exc_info=True)
            continue
        REDACTOR.register_secret(value)
    return secrets


# --- what the services get injected ----------------------------------------------------------


def make_comfyui_clients(
    urls: Sequence[str],
    sink: EventSink,
    hub: ResilienceHub,
    overrides: ComfyUIClientOverrides | None = None,
) -> list[ComfyUIServer]:
    """One client per server, each under its own breaker."""
    options = (overrides or ComfyUIClientOverrides()).kwargs()
    return [
        ComfyUIClient(url, sink=sink, guard=hub.guard("comfyui", comfyui_breaker_name(url)),
                      **options)
        for url in urls
    ]  # fmt: skip


def local_server_factory(
    paths: AppPaths, sink: EventSink, overrides: LocalServerOverrides
) -> Callable[[ComfyUIProcessSettings], LocalServer | None]:
    def make(section: ComfyUIProcessSettings) -> LocalServer | None:
        from pod_studio.composition.comfyui_process import build_comfyui_server_service

        if not section.enabled and not overrides.enable:
            return None
        control = ComfyUIClient(section.url)
        service = build_comfyui_server_service(
            section, comfyui_state_dir(paths), sink=sink, control=control, **overrides.kwargs()
        )
        return LocalServer(service, control)

    return make


async def test_comfyui(url: str) -> str:
    """What answers at ``url``, in one line (raises a PodStudioError when it is not usable)."""
    from pod_studio.composition.diagnostics import doctor

    report = await doctor(url)
    lines = report.text.splitlines()
    if not report.ok:
        raise PodStudioError(lines[1].strip() if len(lines) > 1 else lines[0], service="comfyui")
    return lines[0].lstrip("✓ ")


def platform_builders(
    secrets: SecretStorePort, hub: ResilienceHub, paths: AppPaths
) -> PlatformBuilders:
    from pod_studio.adapters.marketplaces.etsy import EtsyClient
    from pod_studio.adapters.marketplaces.etsy_oauth import EtsyAuth
    from pod_studio.adapters.marketplaces.mockup_images import download_mockups
    from pod_studio.adapters.marketplaces.shopify import ShopifyClient
    from pod_studio.composition import publishing as pub
    from pod_studio.domain.publishing import PublishPlatform
    from pod_studio.services.platforms import EtsyAuthPort, EtsyPort, PlatformClient, PrintifyPort

    def scratch_printify(settings: AppSettings, token: str, base_url: str | None) -> PrintifyPort:
        own = ResilienceHub(lambda _e: None)  # its own breaker: a typo must not open the real one
        return pub.build_printify_client(
            settings, secrets, own, paths, base_url=base_url, token=token
        )

    def etsy(settings: AppSettings, auth: EtsyAuthPort, catalog: PrintifyPort | None) -> EtsyPort:
        assert isinstance(auth, EtsyAuth)
        return pub.build_etsy_client(settings, auth, hub, paths, catalog=catalog)

    def printify_platform(client: PrintifyPort) -> PublishPlatform:
        return pub.printify_platform(client, paths)

    def shopify_platform(client: PlatformClient) -> PublishPlatform:
        assert isinstance(client, ShopifyClient)
        return pub.shopify_platform(client)

    def etsy_platform(client: EtsyPort) -> PublishPlatform:
        assert isinstance(client, EtsyClient)
        return pub.etsy_platform(client)

    async def mockups(urls: Sequence[str]) -> list[bytes]:
        # a plain client of its own: the API token never goes to the image host
        return await download_mockups(urls, service="printify")

    return PlatformBuilders(
        read_printify_token=lambda: pub.read_printify_token(secrets),
        printify=lambda s, token: pub.build_printify_client(s, secrets, hub, paths, token=token),
        scratch_printify=scratch_printify,
        read_shopify_secrets=lambda s: pub.read_shopify_secrets(s, secrets),
        shopify=lambda s, token, secret: pub.build_shopify_client(
            s, hub, token=token, client_secret=secret
        ),
        printify_platform=printify_platform,
        shopify_platform=shopify_platform,
        etsy_platform=etsy_platform,
        etsy_auth=lambda s: pub.build_etsy_auth(s, secrets),
        etsy=etsy,
        download_mockups=mockups,
        save_secret=secrets.set,
        register_secret=REDACTOR.register_secret,
        describe_secrets=lambda: str(secrets.describe()),
        printify_help=pub.printify_token_help(),
        shopify_help=pub.shopify_setup_help(),
        etsy_help=pub.etsy_setup_help(),
    )


def logged_close(close: Callable[[], Awaitable[Any]], what: str) -> Callable[[], Awaitable[None]]:
    """``close`` for the exit stack: a failure is logged (what failed and that the shutdown
    goes on), so the rest still closes."""

    async def run() -> None:
        try:
            await close()
        except Exception:
            log.exception("%s failed; shutting down the rest", what)

    return run
