"""Services layer: the ComfyUI servers the engine runs on, and the local one it looks after.

``ComfyUIServers`` holds the connected servers (each under its breaker, with its health
check), switches them at run time (settings saved, demo mode) and controls the local server
(start, stop, restart, free memory, interrupt, clear its queue). It builds nothing itself:
the composition injects a factory for the clients, one for the local server's service and
the test of a typed URL, so this module never imports an adapter.

Servers given on the command line (or demo mode) are *pinned*: saving other servers in the
settings then keeps them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from pod_studio.domain.errors import PodStudioError
from pod_studio.domain.models import ServerProblem
from pod_studio.domain.ports import ImageGenerator, ImageUpscaler
from pod_studio.domain.settings import ComfyUIProcessSettings
from pod_studio.domain.urls import check_server_urls
from pod_studio.domain.views import ComfyUIAction, ComfyUIServerView
from pod_studio.services.comfyui_process import ComfyUIServerService
from pod_studio.services.health import HealthCheck, HealthResult, HealthService
from pod_studio.services.lifecycle import BackgroundTasks, Closable, aclose_logged

log = logging.getLogger(__name__)

HEALTH_PREFIX = "comfyui"


class ComfyUIServer(ImageGenerator, ImageUpscaler, Protocol):
    """A connected ComfyUI server as the engine uses it."""

    async def diagnose(self, timeout: float = 5.0) -> tuple[ServerProblem, str]: ...  # noqa: ASYNC109


@dataclass(frozen=True)
class LocalServer:
    """The local server's service and the client it controls the server through."""

    service: ComfyUIServerService
    control: Closable


ServerFactory = Callable[[Sequence[str]], list[ComfyUIServer]]
LocalServerFactory = Callable[[ComfyUIProcessSettings], LocalServer | None]
TestServer = Callable[[str], Awaitable[str]]


def comfyui_breaker_name(url: str) -> str:
    """The breaker (and health check) name of the server at ``url``."""
    parts = urlsplit(url)
    return f"{HEALTH_PREFIX}@{parts.netloc or url}"


def comfyui_health(server: ComfyUIServer) -> HealthCheck:
    """The health check of one server: the status bar's words when it is not usable, else
    its device."""

    async def check() -> HealthResult:
        problem, line = await server.diagnose()
        if problem is not ServerProblem.NONE:
            # the same words as the status bar: not ComfyUI / offline / too old / busy
            return HealthResult(reachable=problem is not ServerProblem.OFFLINE, detail=line)
        info = await server.system_info()
        return HealthResult(reachable=True, auth_ok=None, detail=info.device_summary)

    return check


class ComfyUIServers:
    """The engine's ComfyUI servers and the local server's control."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        make_servers: ServerFactory,
        make_local: LocalServerFactory,
        local_settings: Callable[[], ComfyUIProcessSettings],
        test_server: TestServer,
        health: HealthService,
        tasks: BackgroundTasks,
        on_switch: Callable[[Sequence[ComfyUIServer]], None],
        pinned: bool = False,
    ) -> None:
        self._make_servers = make_servers
        self._make_local = make_local
        self._local_settings = local_settings
        self._test_server = test_server
        self._health = health
        self._tasks = tasks
        self._on_switch = on_switch
        self._pinned = pinned
        self._connected = False
        self._local: LocalServer | None = None
        self.generators: list[ComfyUIServer] = make_servers(check_server_urls(urls))
        self._register_health()

    # --- the servers the queue runs on -------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [g.url for g in self.generators]

    @property
    def pinned(self) -> bool:
        """True when the servers were given (command line, demo mode): settings keep them."""
        return self._pinned

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Set up the local server (in the background) and connect to every server."""
        self._connected = True
        await self.configure_local()
        for gen in self.generators:
            await gen.start()

    async def pin(self, urls: Sequence[str]) -> None:
        """Run on ``urls`` whatever the settings say from now on (demo mode)."""
        self._pinned = True
        await self.set_servers(urls)

    async def settings_servers(self, urls: Sequence[str]) -> None:
        """The servers saved in the settings: used unless the servers are pinned."""
        if not self._pinned:
            await self.set_servers(urls)

    async def set_servers(self, urls: Sequence[str]) -> None:
        """Switch to other servers while running; the old connections close in the background
        (a slow websocket close must not hold up the settings save; ``aclose`` waits)."""
        old = self.generators
        new = self._make_servers(check_server_urls(urls))
        self.generators = new
        self._on_switch(new)
        self._register_health()
        if self._connected:
            for gen in new:
                await gen.start()
        if old:
            self._tasks.spawn(_close_all(old), name="retire-comfyui-clients", finish=True)

    def _register_health(self) -> None:
        for name in self._health.services:
            if name.startswith(HEALTH_PREFIX):
                self._health.remove_check(name)
        for gen in self.generators:
            self._health.add_check(comfyui_breaker_name(gen.url), comfyui_health(gen))

    async def test(self, url: str) -> str:
        """What answers at ``url`` (the typed value, not the saved one), in one line."""
        return await self._test_server(url)

    async def checkpoints(self) -> list[str]:
        if not self.generators:
            return []
        return await self.generators[0].checkpoints()

    # --- the local server --------------------------------------------------------------------

    async def configure_local(self) -> None:
        """(Re)build the local server's service from the settings and, once connected, adopt
        a server left running or auto-start one in the background (a start can take minutes:
        loading models) and read its gauges."""
        await self.close_local()
        self._local = self._make_local(self._local_settings())
        if self._local is not None and self._connected:
            service = self._local.service
            service.start_gauges()
            self._tasks.spawn(service.on_app_start(), name="comfyui-start")

    @property
    def local(self) -> ComfyUIServerService | None:
        return self._local.service if self._local is not None else None

    def view(self) -> ComfyUIServerView:
        """The local server now (``managed`` false: no ComfyUI folder set up)."""
        server = self.local
        process = server.process if server is not None else None
        if server is None or process is None:
            return ComfyUIServerView(managed=False, url=self._local_settings().url)
        last = process.last_exit
        return ComfyUIServerView(
            managed=True,
            state=process.state.value,
            url=process.url,
            pid=process.pid,
            detail=last.summary if last is not None else "",
            log_lines=tuple(process.log_lines()),
        )

    async def control(self, action: ComfyUIAction) -> str:
        """Do ``action`` on the local server; returns what was done, in words."""
        server = self.local
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

    async def close_local(self) -> None:
        local, self._local = self._local, None
        if local is not None:
            await aclose_logged(local.service, "the local ComfyUI server's service")
            await aclose_logged(local.control, "the local ComfyUI server's control client")

    async def aclose(self) -> None:
        """Close the local server's service and every connection."""
        await self.close_local()
        generators, self.generators = self.generators, []
        await _close_all(generators)


async def _close_all(generators: Sequence[ComfyUIServer]) -> None:
    for gen in generators:
        await aclose_logged(gen, f"the connection to {gen.url}")
