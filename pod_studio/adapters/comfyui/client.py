"""Adapter layer (ComfyUI): ``ComfyUIClient``, the REST + websocket client that implements the
``ImageGenerator`` port.

How a run goes (see the ComfyUI contract):

1. ``POST /prompt`` with our stable ``client_id`` and the caller's ``prompt_id``; a 400 becomes
   a ``ValidationError`` with one line per node error.
2. The websocket listener routes every message of that prompt to the waiting ``run()``; it ends
   on ``execution_success`` (or ``executing`` with ``node: null``), ``execution_error`` or
   ``execution_interrupted``. Images named by ``executed`` (also re-sent for cached runs) are
   fetched with ``GET /view`` and returned as bytes.
3. While the socket is down, ``run()`` polls ``GET /history/{id}`` with exponential backoff. After
   every reconnect (and on every poll) it reconciles with ``/history`` and ``/queue``: finished →
   completed from history; queued/running → keep waiting; gone (server restarted) → resubmitted
   under a new prompt id.
4. Cancelling the task that awaits ``run()`` deletes the prompt from the queue or interrupts it.

Every HTTP request runs through the injected ``CallGuard`` so services can add retries and a
circuit breaker; httpx errors are mapped once, in ``errors.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from pod_studio import USER_AGENT
from pod_studio.adapters.comfyui.errors import (
    SERVICE,
    error_for_status,
    excerpt,
    execution_error,
    failed_outputs,
    format_node_errors,
    interrupted_error,
    json_body,
    map_transport_error,
    not_comfyui,
    validation_error,
)
from pod_studio.adapters.comfyui.frames import PreviewImageFrame, ProgressTextFrame, parse_frame
from pod_studio.adapters.comfyui.listener import ConnectFn, WebsocketListener
from pod_studio.adapters.comfyui.names import safe_local_name, sanitize_ref
from pod_studio.adapters.http_edge import (
    ERROR_BODY_LIMIT,
    IMAGE_LIMIT,
    JSON_LIMIT,
    pixel_guard,
    read_bounded,
)
from pod_studio.adapters.storage import resources
from pod_studio.domain.comfyui_process import ComfyUIGauges
from pod_studio.domain.errors import (
    JobInterruptedError,
    PodStudioError,
    PromptLostError,
    ServiceError,
    TimeoutError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.events import ConnectionChanged, EventSink, null_sink
from pod_studio.domain.models import (
    ConnectionState,
    DeviceInfo,
    ImageRef,
    ServerInfo,
    ServerProblem,
)
from pod_studio.domain.ports import (
    CallGuard,
    PassthroughGuard,
    RunResult,
    RunUpdate,
    UpdateCallback,
)
from pod_studio.domain.urls import check_server_url
from pod_studio.domain.workflow import output_classes_from

__all__ = [
    "ComfyUIClient",
    "default_workflow_path",
    "default_workflow_text",
    "probe_server",
    "safe_local_name",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
# Hedged GETs (see ComfyUIClient._hedged). Tuned with bench.resilience: without them a hung
# GET cost the whole read timeout (60 s by default) and held its job.
HEDGE_FIRST, HEDGE_MIN, HEDGE_MAX = 0.5, 0.05, 5.0
_TERMINAL_TYPES = ("execution_success", "execution_error", "execution_interrupted")
_CANCEL_TIMEOUT = 10.0
# The gallery refuses images above 40 MP (adapters/storage/images.py); /view stops reading as
# soon as the image header says so instead of downloading the whole file first.
MAX_VIEW_PIXELS = 40_000_000
# GET /features: max_upload_size (stock ComfyUI: 100 MiB)
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


def default_workflow_path() -> Path:
    """The shipped ``workflows/default_txt2img.json`` (see ``adapters.storage.resources``)."""
    return resources.default_workflow_path()


def default_workflow_text() -> str:
    return default_workflow_path().read_text(encoding="utf-8")


def normalize_url(url: str) -> str:
    """``host:port`` → ``http://host:port``; no trailing slash."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    return text.rstrip("/")


def _ws_url(base: str, client_id: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path, f"clientId={client_id}", ""))


# Client-chosen prompt ids, execution_success and preview metadata are all there by 0.3.
MIN_COMFYUI_VERSION = (0, 3, 0)
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    m = _VERSION_RE.match(text.strip())
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def what_answered(response: httpx.Response) -> str:
    """A short description of a reply that is not ComfyUI's: status, type, server, title."""
    ctype = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    parts = [f"HTTP {response.status_code}", ctype]
    server = response.headers.get("server", "").strip()
    if server:
        parts.append(f"server {excerpt(server, 40)}")
    m = _TITLE_RE.search(response.content[:65536].decode("utf-8", "replace"))
    if m and m[1].strip():
        parts.append(f"page title “{excerpt(m[1], 60)}”")
    return ", ".join(parts)


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _Run:
    """One ``run()`` in flight. ``prompt_id`` changes when the prompt is resubmitted."""

    prompt_id: str
    graph: dict[str, Any]
    inbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    started: float = field(default_factory=time.monotonic)
    posted: bool = False  # a POST /prompt went out (it may have landed)
    accepted: bool = False  # the server answered it: the prompt is on its queue
    finished: bool = False
    cancel_requested: bool = False
    resubmits: int = 0
    exec_started: float | None = None  # when the server said it started executing it
    images: list[tuple[Any, Any, Any, str]] = field(default_factory=list)  # name, sub, type, node
    cached_nodes: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.images.clear()
        self.cached_nodes.clear()
        self.accepted = False
        self.exec_started = None

    def node_class(self, node_id: str) -> str:
        node = self.graph.get(node_id)
        return str(node.get("class_type", "")) if isinstance(node, dict) else ""


def _choices(data: dict[str, Any], node: str, field_name: str) -> list[str]:
    """The choice list of a combo input in an ``/object_info`` entry: ``[[...], {...}]``, or
    the newer ``["COMBO", {"options": [...]}]``."""
    info = data.get(node)
    spec: Any = None
    if isinstance(info, dict):
        inputs = info.get("input")
        if isinstance(inputs, dict) and isinstance(inputs.get("required"), dict):
            spec = inputs["required"].get(field_name)
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            return [str(x) for x in spec[0]]
        if len(spec) > 1 and isinstance(spec[1], dict) and isinstance(spec[1].get("options"), list):
            return [str(x) for x in spec[1]["options"]]
    return []


@dataclass
class _CancelBatch:
    """Prompts to cancel with one look at the queue (see ``ComfyUIClient.cancel``)."""

    ids: set[str]
    done: asyncio.Future[None]


class _Finished(Exception):
    """Internal: the prompt ended successfully (raised out of message handling)."""


def _rejects_the_graph(data: Any) -> bool:
    """A ``POST /prompt`` answer that refuses the graph: node errors, or an error object,
    with no prompt id (an accepted prompt may carry node errors for some of its outputs)."""
    if not isinstance(data, dict) or isinstance(data.get("prompt_id"), str):
        return False
    node_errors = data.get("node_errors")
    return (
        bool(node_errors) and isinstance(node_errors, dict) or isinstance(data.get("error"), dict)
    )


class ComfyUIClient:
    """A ComfyUI server: REST for requests, one websocket for live updates."""

    def __init__(
        self,
        url: str,
        *,
        sink: EventSink = null_sink,
        guard: CallGuard | None = None,
        client_id: str | None = None,
        timeout: httpx.Timeout | None = None,
        poll_initial: float = 2.0,
        poll_factor: float = 1.5,
        poll_max: float = 10.0,
        silence_check: float = 300.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        offline_grace: float = 300.0,
        max_resubmits: int = 3,
        ws_connect: ConnectFn | None = None,
        max_image_bytes: int = IMAGE_LIMIT,
    ) -> None:
        # Entries (settings, command line, window, build_core) refuse URL user-info; this is
        # the last line: a password must not reach breaker names, manifests or messages.
        self._url = check_server_url(normalize_url(url))
        self._sink = sink
        self._guard: CallGuard = guard or PassthroughGuard()
        self._client_id = client_id or uuid.uuid4().hex
        self._poll_initial = max(0.001, poll_initial)
        self._poll_factor = max(1.0, poll_factor)
        self._poll_max = max(self._poll_initial, poll_max)
        # with the socket up, a run silent for this long is checked once (safety net only)
        self._silence_check = max(self._poll_max, silence_check)
        self.queue_remaining: int | None = None  # from the last ``status`` broadcast
        self._offline_grace = offline_grace
        self._max_resubmits = max_resubmits
        self._max_image_bytes = max_image_bytes
        self._http = httpx.AsyncClient(
            base_url=self._url,
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self._listener = WebsocketListener(
            _ws_url(self._url, self._client_id),
            on_text=self._on_ws_text,
            on_binary=self._on_ws_binary,
            on_up=self._on_ws_up,
            on_down=self._on_ws_down,
            on_state=self._on_ws_state,
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
            connect=ws_connect,
        )
        self._started = False
        self._closed = False
        self._runs: dict[str, _Run] = {}
        self._current_prompt: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._latency: dict[str, deque[float]] = {}  # operation -> recent GET latencies
        self._cancel_batch: _CancelBatch | None = None

    # --- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        """True while the websocket is up."""
        return self._listener.is_connected

    @property
    def listener(self) -> WebsocketListener:
        return self._listener

    async def wait_connected(self, within: float = 10.0) -> bool:
        return await self._listener.wait_connected(within)

    # --- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("ComfyUIClient is closed")
        if not self._started:
            self._started = True
            self._listener.start()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._listener.aclose()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
        self._emit(ConnectionState.OFFLINE, "client closed")

    async def __aenter__(self) -> ComfyUIClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- HTTP -------------------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        handle: Callable[[httpx.Response], T],
        *,
        idempotent: bool = True,
        limit: int = JSON_LIMIT,
        what: str = "",
        check_head: Callable[[bytes], None] | None = None,
        **kwargs: Any,
    ) -> T:
        async def once() -> T:
            try:
                response = await self._bounded(
                    method, path, operation, limit=limit, what=what, check_head=check_head, **kwargs
                )
            except httpx.HTTPError as exc:
                raise map_transport_error(exc, url=self._url, operation=operation) from exc
            return handle(response)

        if method == "GET":
            return await self._guard.call(
                operation, lambda: self._hedged(operation, once), idempotent=idempotent
            )
        return await self._guard.call(operation, once, idempotent=idempotent)

    def _hedge_delay(self, operation: str) -> float:
        """When a GET still unanswered gets a twin: four times the operation's median
        latency of late (0.5 s before it has any), within 50 ms .. 5 s."""
        seen = sorted(self._latency.get(operation, ()))
        if not seen:
            return HEDGE_FIRST
        return min(HEDGE_MAX, max(HEDGE_MIN, 4 * seen[len(seen) // 2]))

    async def _hedged(self, operation: str, once: Callable[[], Awaitable[T]]) -> T:
        """A hedged GET: if the first request is slower than usual, a second one goes out and
        the first answer wins (a GET changes nothing, so two are safe). A hung request then
        costs a hedge delay, not the read timeout. The breaker and the retry log see one
        attempt; it fails only if both requests failed."""
        started = time.monotonic()
        first = asyncio.ensure_future(once())
        tasks = [first]
        try:
            done, _ = await asyncio.wait(tasks, timeout=self._hedge_delay(operation))
            if not done:
                tasks.append(asyncio.ensure_future(once()))
            error: BaseException | None = None
            for next_done in asyncio.as_completed(tasks):
                try:
                    result = await next_done
                except Exception as exc:  # noqa: BLE001 - the twin may still answer
                    error = error or exc
                    continue
                samples = self._latency.setdefault(operation, deque(maxlen=16))
                samples.append(time.monotonic() - started)
                return result
            assert error is not None
            raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _bounded(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        limit: int = JSON_LIMIT,
        what: str = "",
        check_head: Callable[[bytes], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request whose body is read within ``limit`` bytes (error bodies: an excerpt)."""
        async with self._http.stream(method, path, **kwargs) as streamed:
            ok = 200 <= streamed.status_code < 300
            return await read_bounded(
                streamed,
                limit=limit if ok else ERROR_BODY_LIMIT,
                what=what or f"the {operation} reply",
                server=self._url,
                service=SERVICE,
                truncate=not ok,
                check_head=check_head if ok else None,
            )

    def _json(self, operation: str, *, core: bool = True) -> Callable[[httpx.Response], Any]:
        def handle(response: httpx.Response) -> Any:
            err = error_for_status(response, url=self._url, operation=operation, core=core)
            if err is not None:
                raise err
            return json_body(response, url=self._url, operation=operation)

        return handle

    def _empty(self, operation: str) -> Callable[[httpx.Response], None]:
        def handle(response: httpx.Response) -> None:
            err = error_for_status(response, url=self._url, operation=operation)
            if err is not None:
                raise err

        return handle

    async def _get_json(self, operation: str, path: str, **kwargs: Any) -> Any:
        return await self._call(operation, "GET", path, self._json(operation), **kwargs)

    # --- information ------------------------------------------------------------------------

    async def system_info(self) -> ServerInfo:
        """``GET /system_stats`` as ``ServerInfo``; a clear error if this is not ComfyUI."""
        data = await self._get_json("system_stats", "/system_stats")
        return self._parse_system_stats(data)

    def _parse_system_stats(self, data: Any) -> ServerInfo:
        if not isinstance(data, dict) or not isinstance(data.get("system"), dict):
            raise not_comfyui(self._url, "system_stats", "/system_stats has no 'system' object")
        devices_raw = data.get("devices", [])
        if not isinstance(devices_raw, list):
            raise not_comfyui(self._url, "system_stats", "/system_stats 'devices' is not a list")
        system = data["system"]

        def text(key: str) -> str:
            value = system.get(key)
            return value if isinstance(value, str) else ""

        devices = []
        for dev in devices_raw:
            if not isinstance(dev, dict):
                continue
            devices.append(
                DeviceInfo(
                    name=str(dev.get("name", "")),
                    type=str(dev.get("type", "") or ""),
                    vram_total=int(dev["vram_total"]) if _is_int(dev.get("vram_total")) else 0,
                    vram_free=int(dev["vram_free"]) if _is_int(dev.get("vram_free")) else 0,
                )
            )
        return ServerInfo(
            url=self._url,
            comfyui_version=text("comfyui_version"),
            python_version=text("python_version"),
            pytorch_version=text("pytorch_version"),
            os=text("os"),
            devices=devices,
        )

    async def diagnose(self, timeout: float = 5.0) -> tuple[ServerProblem, str]:  # noqa: ASYNC109
        """What is wrong with this server, if anything: (problem, seller-readable line).

        One ``GET /system_stats`` outside the call guard (a diagnosis never trips a breaker):
        nothing answers → offline; no answer in time → busy; an answer that is not ComfyUI's
        (an HTML page, another API) → not ComfyUI, naming what answered; ComfyUI older than
        ``MIN_COMFYUI_VERSION`` → wrong version."""
        url = self._url
        try:
            response = await asyncio.wait_for(
                self._bounded("GET", "/system_stats", "system_stats", limit=1024 * 1024),
                timeout,
            )
        except (builtins.TimeoutError, httpx.TimeoutException):
            return ServerProblem.BUSY, f"ComfyUI at {url} is busy: no answer within {timeout:g} s"
        except httpx.HTTPError:
            return ServerProblem.OFFLINE, f"nothing answers at {url}"
        except UpstreamDataError as exc:
            return ServerProblem.NOT_COMFYUI, f"{url} is not a ComfyUI server ({exc.user_message})"
        try:
            data = json.loads(response.content) if 200 <= response.status_code < 300 else None
        except (ValueError, UnicodeDecodeError):
            data = None
        system = data.get("system") if isinstance(data, dict) else None
        if not isinstance(system, dict):
            return ServerProblem.NOT_COMFYUI, (
                f"{url} is not a ComfyUI server (it answered {what_answered(response)})"
            )
        version = system.get("comfyui_version")
        parsed = _version_tuple(version) if isinstance(version, str) else None
        if parsed is None or parsed < MIN_COMFYUI_VERSION:
            need = ".".join(str(p) for p in MIN_COMFYUI_VERSION)
            shown = version if isinstance(version, str) and version else "an unknown version"
            return ServerProblem.WRONG_VERSION, (
                f"{url} runs ComfyUI {excerpt(shown, 40)}; POD Studio needs {need} or newer"
            )
        return ServerProblem.NONE, f"ComfyUI {version} answers at {url}"

    async def object_info(self) -> dict[str, Any]:
        data = await self._get_json("object_info", "/object_info")
        if not isinstance(data, dict):
            raise not_comfyui(self._url, "object_info", "/object_info is not an object")
        return data

    async def checkpoints(self) -> list[str]:
        """Checkpoint file names the server offers (``CheckpointLoaderSimple.ckpt_name``)."""
        data = await self._get_json("object_info", "/object_info/CheckpointLoaderSimple")
        if not isinstance(data, dict):
            raise not_comfyui(self._url, "checkpoints", "/object_info/... is not an object")
        return _choices(data, "CheckpointLoaderSimple", "ckpt_name")

    async def upscale_models(self) -> list[str]:
        """Upscale model files the server offers (``UpscaleModelLoader.model_name``); empty
        when it has none or does not know the node."""
        data = await self._get_json("object_info", "/object_info/UpscaleModelLoader")
        if not isinstance(data, dict):
            raise not_comfyui(self._url, "upscale_models", "/object_info/... is not an object")
        return _choices(data, "UpscaleModelLoader", "model_name")

    async def upload_image(self, data: bytes, filename: str, *, subfolder: str = "") -> str:
        """``POST /upload/image`` (multipart, ``type=input``, ``overwrite=true``), like the
        ComfyUI front end; returns the name a ``LoadImage`` node takes ("sub/name.png").
        Overwriting makes a retry land on the same file, so the call is retried freely."""
        if not data:
            raise ValidationError("upload_image: no image data", service=SERVICE)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValidationError(
                f"upload_image: {len(data):,} bytes is above ComfyUI's upload limit",
                service=SERVICE,
                user_message="The design is larger than ComfyUI accepts for an upload "
                f"({MAX_UPLOAD_BYTES // (1024 * 1024)} MB).",
            )
        fields = {"type": "input", "overwrite": "true"}
        if subfolder:
            fields["subfolder"] = subfolder

        def handle(response: httpx.Response) -> str:
            if response.status_code == 400:
                raise ValidationError(
                    f"upload_image: ComfyUI at {self._url} refused the upload of {filename} "
                    "(HTTP 400)",
                    service=SERVICE,
                    user_message=f"ComfyUI at {self._url} refused the design's upload.",
                )
            reply = self._json("upload_image")(response)
            name = reply.get("name") if isinstance(reply, dict) else None
            if not isinstance(name, str) or not name:
                raise not_comfyui(self._url, "upload_image", "the upload reply has no name")
            folder = reply.get("subfolder") if isinstance(reply, dict) else ""
            return f"{folder}/{name}" if isinstance(folder, str) and folder else name

        return await self._call(
            "upload_image",
            "POST",
            "/upload/image",
            handle,
            files={"image": (filename, data, "image/png")},
            data=fields,
        )

    async def queue_length(self) -> int:
        """Prompts queued or running on the server (``GET /prompt``)."""
        data = await self._get_json("queue_length", "/prompt")
        try:
            value = data["exec_info"]["queue_remaining"]
        except (KeyError, TypeError) as exc:
            raise not_comfyui(self._url, "queue_length", "/prompt has no queue_remaining") from exc
        if not _is_int(value):
            raise not_comfyui(self._url, "queue_length", "queue_remaining is not a number")
        return int(value)

    async def queue(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids) from ``GET /queue``."""
        data = await self._get_json("queue", "/queue")
        if not isinstance(data, dict):
            raise not_comfyui(self._url, "queue", "/queue is not an object")

        def ids(key: str) -> list[str]:
            items = data.get(key)
            found: list[str] = []
            for item in items if isinstance(items, list) else []:
                if isinstance(item, list) and len(item) > 1:
                    found.append(str(item[1]))
                elif isinstance(item, dict) and "prompt_id" in item:
                    found.append(str(item["prompt_id"]))
            return found

        return ids("queue_running"), ids("queue_pending")

    async def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        """The ``/history/{id}`` entry, or ``None`` when the server does not know the id."""
        data = await self._get_json("history", f"/history/{prompt_id}")
        if not isinstance(data, dict):
            raise not_comfyui(self._url, "history", "/history is not an object")
        entry = data.get(prompt_id)
        return entry if isinstance(entry, dict) else None

    # --- server control (the ComfyUI dock) ---------------------------------------------------

    async def free_memory(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """``POST /free``: ComfyUI sets flags and unloads models / frees memory between
        prompts (the 200 comes before anything is freed)."""
        body = {"unload_models": unload_models, "free_memory": free_memory}
        await self._call("free", "POST", "/free", self._empty("free"), json=body)

    async def interrupt_all(self) -> None:
        """``POST /interrupt`` without a ``prompt_id``: stops whatever prompt is running."""
        await self._call("interrupt_all", "POST", "/interrupt", self._empty("interrupt_all"))

    async def clear_queue(self) -> None:
        """``POST /queue {"clear": true}``: drops every pending prompt (not the running one)."""
        await self._call(
            "queue_clear", "POST", "/queue", self._empty("queue_clear"), json={"clear": True}
        )

    async def gauges(self) -> ComfyUIGauges:
        """Queue length (``/queue``) and VRAM of the first device (``/system_stats``)."""
        running, pending = await self.queue()
        info = await self.system_info()
        device = info.devices[0] if info.devices else None
        return ComfyUIGauges(
            url=self._url,
            queue_running=len(running),
            queue_pending=len(pending),
            device=device.name if device is not None else "",
            vram_total=device.vram_total if device is not None else None,
            vram_free=device.vram_free if device is not None else None,
        )

    # --- cancel -----------------------------------------------------------------------------

    async def cancel(self, prompt_id: str) -> None:
        """Delete ``prompt_id`` from the queue, or interrupt it if it is running.

        Cancels that arrive together (a batch stopped at once) go out together: the queued
        prompts are deleted in one request before the running one is interrupted, so none of
        them starts (and is interrupted in turn) in between."""
        run = self._runs.get(prompt_id)
        if run is not None:
            run.cancel_requested = True
        batch = self._cancel_batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._cancel_batch = _CancelBatch(set(), loop.create_future())
            # an awaiter cancelled before the end must not leave the error unretrieved
            batch.done.add_done_callback(lambda f: f.cancelled() or f.exception())
            task = asyncio.create_task(self._cancel_many(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.ids.add(prompt_id)
        await asyncio.shield(batch.done)

    async def _cancel_many(self, batch: _CancelBatch) -> None:
        try:
            running, pending = await self.queue()
            if self._cancel_batch is batch:
                self._cancel_batch = None  # later cancels make a batch of their own
            queued = sorted(p for p in batch.ids if p in pending)
            if queued:
                await self._call(
                    "queue_delete",
                    "POST",
                    "/queue",
                    self._empty("queue_delete"),
                    json={"delete": queued},
                )
                running, _ = await self.queue()  # one may have started meanwhile
                for pid in queued:
                    run = self._runs.get(pid)
                    if run is not None and pid not in running:
                        run.inbox.put_nowait(("deleted", None))
            for pid in sorted(batch.ids & set(running)):
                await self._call(
                    "interrupt",
                    "POST",
                    "/interrupt",
                    self._empty("interrupt"),
                    json={"prompt_id": pid},
                )
        except Exception as exc:  # noqa: BLE001 - handed to every cancel waiting on it
            if self._cancel_batch is batch:
                self._cancel_batch = None
            if not batch.done.done():
                batch.done.set_exception(exc)
        except BaseException:
            if self._cancel_batch is batch:
                self._cancel_batch = None
            batch.done.cancel()
            raise
        else:
            if not batch.done.done():
                batch.done.set_result(None)

    async def _cancel_quietly(self, prompt_id: str) -> None:
        try:
            await asyncio.wait_for(self.cancel(prompt_id), _CANCEL_TIMEOUT)
        except (PodStudioError, builtins.TimeoutError, RuntimeError) as exc:
            log.warning("could not cancel prompt %s on %s: %s", prompt_id, self._url, exc)

    # --- run --------------------------------------------------------------------------------

    async def run(
        self, graph: dict[str, Any], *, prompt_id: str, on_update: UpdateCallback
    ) -> RunResult:
        """Submit ``graph`` as ``prompt_id``, follow it to the end and fetch its images."""
        run = _Run(prompt_id=prompt_id, graph=graph)
        self._runs[prompt_id] = run

        def update(kind: str, **fields: Any) -> None:
            fields.setdefault("prompt_id", run.prompt_id)
            try:
                on_update(RunUpdate(kind=kind, **fields))
            except Exception:
                log.exception("an on_update callback failed")

        try:
            return await self._drive(run, update)
        except asyncio.CancelledError:
            if run.posted and not run.finished:
                task = asyncio.create_task(self._cancel_quietly(run.prompt_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                try:
                    await asyncio.shield(task)
                except asyncio.CancelledError:
                    pass  # cancelled again: the cancel request still finishes in the background
            raise
        finally:
            run.finished = True
            if self._runs.get(run.prompt_id) is run:
                del self._runs[run.prompt_id]

    async def _drive(self, run: _Run, update: Callable[..., None]) -> RunResult:
        if self._started and not self._listener.is_connected:
            await self._listener.wait_connected(min(self._poll_initial, 1.0))
        await self._submit(run, update)
        update("submitted", detail=f"queued on {self._url}")
        return await self._follow(run, update)

    async def _submit(self, run: _Run, update: Callable[..., None]) -> None:
        body = {"prompt": run.graph, "client_id": self._client_id, "prompt_id": run.prompt_id}

        def handle(response: httpx.Response) -> Any:
            if response.status_code == 400:
                try:
                    data = json_body(response, url=self._url, operation="submit")
                except UpstreamDataError:
                    data = {"error": {"message": excerpt(response.text) or "HTTP 400"}}
                raise validation_error(data, run.graph)
            try:
                data = json_body(response, url=self._url, operation="submit")
            except UpstreamDataError:
                data = None
            if _rejects_the_graph(data):
                # ComfyUI's own validation of the graph, whatever status it came with (a
                # proxy or an older server may send it with 200 or 500): bad input, named
                raise validation_error(data, run.graph)
            err = error_for_status(response, url=self._url, operation="submit")
            if err is not None:
                raise err
            return json_body(response, url=self._url, operation="submit")

        run.posted = True
        attempts = 0

        async def once() -> Any:
            # We chose the prompt id, so a retry can first ask whether the earlier POST landed
            # (reconcile before resending): that makes the submit safe to retry.
            nonlocal attempts
            attempts += 1
            if attempts > 1 and await self._prompt_known(run.prompt_id):
                return {"prompt_id": run.prompt_id, "number": -1, "node_errors": {}}
            try:
                response = await self._bounded("POST", "/prompt", "submit", json=body)
            except httpx.HTTPError as exc:
                raise map_transport_error(exc, url=self._url, operation="submit") from exc
            return handle(response)

        data = await self._guard.call("submit", once, idempotent=True)
        run.accepted = True
        if not isinstance(data, dict) or not isinstance(data.get("prompt_id"), str):
            raise not_comfyui(self._url, "submit", "POST /prompt returned no prompt_id")
        if data["prompt_id"] != run.prompt_id:
            log.warning("server renamed prompt %s to %s", run.prompt_id, data["prompt_id"])
            self._rekey(run, data["prompt_id"])
        node_errors = data.get("node_errors")
        if isinstance(node_errors, dict) and node_errors:
            lines = format_node_errors(node_errors, run.graph)
            outputs = self._output_nodes(run.graph)
            still_running = outputs - failed_outputs(node_errors)
            if not still_running:
                await self._cancel_quietly(run.prompt_id)
                raise ValidationError(
                    "ComfyUI rejected every output of the workflow",
                    details=lines,
                    service=SERVICE,
                )
            update(
                "submitted",
                detail="warning: part of the workflow was rejected: " + "; ".join(lines[:3]),
            )

    async def _prompt_known(self, prompt_id: str) -> bool:
        """Is ``prompt_id`` queued, running or in history? (False when that cannot be told.)"""
        try:
            # hedged like every GET: a hung look-up must not hold the submit for a read timeout
            queue = (
                await self._hedged("queue", lambda: self._bounded("GET", "/queue", "queue"))
            ).json()
            for key in ("queue_running", "queue_pending"):
                for item in queue.get(key, []):
                    if isinstance(item, list) and len(item) > 1 and item[1] == prompt_id:
                        return True
            path = f"/history/{prompt_id}"
            history = (
                await self._hedged("history", lambda: self._bounded("GET", path, "history"))
            ).json()
            return isinstance(history, dict) and prompt_id in history
        except (httpx.HTTPError, ValueError, AttributeError, UpstreamDataError):
            return False

    @staticmethod
    def _output_nodes(graph: dict[str, Any]) -> set[str]:
        classes = output_classes_from(None)
        found = {
            nid
            for nid, node in graph.items()
            if isinstance(node, dict) and node.get("class_type") in classes
        }
        if found:
            return found
        linked = {
            str(v[0])
            for node in graph.values()
            if isinstance(node, dict)
            for v in (node.get("inputs") or {}).values()
            if isinstance(v, list) and len(v) == 2
        }
        return {nid for nid in graph if nid not in linked}

    def _rekey(self, run: _Run, new_id: str) -> None:
        if self._runs.get(run.prompt_id) is run:
            del self._runs[run.prompt_id]
        run.prompt_id = new_id
        self._runs[new_id] = run

    async def _follow(self, run: _Run, update: Callable[..., None]) -> RunResult:
        """Follow the prompt: from the websocket while it is up (no polling, however long the
        job: a queued prompt gets no messages of its own, so the ``status`` broadcast saying
        the queue is empty, a reconnect, or a very long silence trigger the one check);
        by polling ``/history`` with backoff only while the socket is down."""
        interval = self._poll_initial
        offline_since: float | None = None
        while True:
            connected = self._listener.is_connected
            wait = self._silence_check if connected else interval
            item: tuple[str, Any] | None
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands
                # as a message arrives, and a cancelled job then waits for its prompt to end
                async with asyncio.timeout(wait):
                    item = await run.inbox.get()
            except builtins.TimeoutError:
                item = None
            try:
                if item is None or item[0] in ("up", "idle"):
                    if item is not None:
                        interval = self._poll_initial
                    elif not connected:
                        interval = min(interval * self._poll_factor, self._poll_max)
                    try:
                        result = await self._reconcile(run, update)
                    except (ServiceError, TimeoutError) as exc:
                        if isinstance(exc, UpstreamDataError | PromptLostError):
                            raise
                        now = time.monotonic()
                        offline_since = offline_since or now
                        if now - offline_since > self._offline_grace:
                            raise ServiceError(
                                f"lost ComfyUI at {self._url} for {now - offline_since:.0f} s "
                                f"while prompt {run.prompt_id} was running: {exc.message}",
                                service=SERVICE,
                            ) from exc
                        log.info("polling %s failed: %s", self._url, exc.message)
                        continue
                    offline_since = None
                    if result is not None:
                        return result
                elif item[0] == "down":
                    interval = self._poll_initial
                    update("reconnecting", detail=f"live connection lost ({item[1]}); polling")
                elif item[0] == "deleted":
                    raise JobInterruptedError(
                        f"prompt {run.prompt_id} was removed from the queue",
                        service=SERVICE,
                        user_message="The generation was cancelled before it started.",
                    )
                elif item[0] == "preview":
                    frame: PreviewImageFrame = item[1]
                    update("preview", node=frame.node_id or "", mime=frame.mime, data=frame.data)
                elif item[0] == "msg":
                    self._handle_message(run, item[1], update)
            except _Finished:
                return await self._complete(run, None, update)

    def _handle_message(self, run: _Run, msg: dict[str, Any], update: Callable[..., None]) -> None:
        kind = msg.get("type")
        data: dict[str, Any] = msg["data"]
        if kind == "execution_start":
            run.exec_started = time.monotonic()
            update("started")
        elif kind == "execution_cached":
            nodes = data.get("nodes")
            run.cached_nodes = {str(n) for n in nodes} if isinstance(nodes, list) else set()
            if run.cached_nodes:
                update("cached", detail=f"{len(run.cached_nodes)} node(s) served from cache")
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                raise _Finished
            update("executing", node=str(node), node_class=run.node_class(str(node)))
        elif kind == "progress":
            value, maximum = data.get("value"), data.get("max")
            if isinstance(value, int | float) and isinstance(maximum, int | float):
                node = str(data.get("node") or "")
                update(
                    "progress",
                    node=node,
                    node_class=run.node_class(node),
                    value=float(value),
                    max=float(maximum),
                )
        elif kind == "executed":
            self._collect(run, str(data.get("node") or ""), data.get("output"))
        elif kind == "execution_success":
            raise _Finished
        elif kind == "execution_error":
            raise execution_error(data, run.graph)
        elif kind == "execution_interrupted":
            raise interrupted_error(run.prompt_id, data)

    @staticmethod
    def _collect(run: _Run, node_id: str, output: Any) -> None:
        if not isinstance(output, dict):
            return
        images = output.get("images")
        for img in images if isinstance(images, list) else []:
            if not isinstance(img, dict):
                continue
            key = (
                img.get("filename"),
                img.get("subfolder", ""),
                img.get("type", "output"),
                node_id,
            )
            if key not in run.images:
                run.images.append(key)

    async def _reconcile(self, run: _Run, update: Callable[..., None]) -> RunResult | None:
        """Ask the server where the prompt is. A result when it finished, ``None`` while it is
        queued or running; resubmits a prompt the server lost."""
        entry = await self.history_entry(run.prompt_id)
        if entry is None:
            running, pending = await self.queue()
            if run.prompt_id in running or run.prompt_id in pending:
                return None
            entry = await self.history_entry(run.prompt_id)  # it may have just finished
        if entry is not None:
            return await self._complete(run, entry, update)
        if run.cancel_requested:
            raise JobInterruptedError(
                f"prompt {run.prompt_id} was cancelled",
                service=SERVICE,
                user_message="The generation was cancelled.",
            )
        await self._resubmit(run, update)
        return None

    async def _resubmit(self, run: _Run, update: Callable[..., None]) -> None:
        if run.resubmits >= self._max_resubmits:
            raise PromptLostError(
                f"ComfyUI at {self._url} lost prompt {run.prompt_id} "
                f"{run.resubmits + 1} times (server restarts?)",
                service=SERVICE,
            )
        run.resubmits += 1
        old = run.prompt_id
        self._rekey(run, str(uuid.uuid4()))
        run.reset()
        log.warning("prompt %s vanished from %s; resubmitting as %s", old, self._url, run.prompt_id)
        update(
            "resubmitted",
            detail=f"ComfyUI lost prompt {old} (server restart?); resubmitted as {run.prompt_id}",
        )
        await self._submit(run, update)

    def _history_outcome(self, run: _Run, entry: dict[str, Any]) -> None:
        """Raise the error a finished history entry records; collect its images."""
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        assert isinstance(status, dict)
        messages = status.get("messages") if isinstance(status.get("messages"), list) else []
        assert isinstance(messages, list)
        for message in messages:
            if (
                isinstance(message, list)
                and len(message) == 2
                and message[0] == "execution_cached"
                and isinstance(message[1], dict)
            ):
                nodes = message[1].get("nodes")
                if isinstance(nodes, list):
                    run.cached_nodes.update(str(n) for n in nodes)
        if status.get("status_str") == "error" or status.get("completed") is False:
            for message in reversed(messages):
                if not (isinstance(message, list) and len(message) == 2):
                    continue
                kind, data = message
                data = data if isinstance(data, dict) else {}
                if kind == "execution_error":
                    raise execution_error(data, run.graph)
                if kind == "execution_interrupted":
                    raise interrupted_error(run.prompt_id, data)
            if status.get("status_str") == "error":
                raise ServiceError(
                    f"ComfyUI reports prompt {run.prompt_id} failed without details",
                    service=SERVICE,
                    retryable=False,
                )
        outputs = entry.get("outputs")
        if isinstance(outputs, dict):
            for node_id, output in outputs.items():
                self._collect(run, str(node_id), output)

    async def _complete(
        self, run: _Run, entry: dict[str, Any] | None, update: Callable[..., None]
    ) -> RunResult:
        # the server is done with it: only the downloads are left
        update("finished", value=self._exec_seconds(run, entry))
        if entry is not None:
            self._history_outcome(run, entry)
        elif not run.images:
            found = await self.history_entry(run.prompt_id)
            if found is not None:
                self._history_outcome(run, found)
        refs: list[ImageRef] = []
        rejected: list[UpstreamDataError] = []
        for filename, subfolder, kind, node_id in run.images:
            try:
                refs.append(sanitize_ref(filename, subfolder, kind, node_id=node_id))
            except UpstreamDataError as exc:
                log.warning("%s", exc.message)
                rejected.append(exc)
        saved = [r for r in refs if r.type == "output"]
        refs = saved or refs
        if not refs:
            if rejected:
                raise rejected[0]
            raise UpstreamDataError(
                f"ComfyUI finished prompt {run.prompt_id} but reported no images; does the "
                "workflow end in a SaveImage node?",
                service=SERVICE,
                retryable=False,
            )
        images = [(ref, await self.fetch_image(ref)) for ref in refs]
        run.finished = True
        cached = bool(run.cached_nodes) and all(r.node_id in run.cached_nodes for r in refs)
        return RunResult(
            prompt_id=run.prompt_id,
            server=self._url,
            images=images,
            cached=cached,
            seconds=time.monotonic() - run.started,
        )

    @staticmethod
    def _exec_seconds(run: _Run, entry: dict[str, Any] | None) -> float:
        """How long the server took to execute the prompt (0: not known): from the
        timestamps of its history entry, else from when the socket said it started."""
        if entry is not None:
            stamps: dict[str, float] = {}
            status = entry.get("status")
            messages = status.get("messages") if isinstance(status, dict) else None
            for message in messages if isinstance(messages, list) else []:
                if isinstance(message, list) and len(message) == 2:
                    kind, data = message
                    stamp = data.get("timestamp") if isinstance(data, dict) else None
                    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
                        stamps[str(kind)] = float(stamp)
            start, end = stamps.get("execution_start"), stamps.get("execution_success")
            if start is not None and end is not None and end >= start:
                return (end - start) / 1000.0
        if run.exec_started is not None:
            return max(0.0, time.monotonic() - run.exec_started)
        return 0.0

    def follow_lag(self) -> float:
        """How late a finished prompt may be noticed: 0 with the socket up (the server says
        so at once), the longest polling interval while it is down."""
        return 0.0 if self._listener.is_connected else self._poll_max

    async def fetch_image(self, ref: ImageRef) -> bytes:
        """``GET /view`` of a (sanitised) output reference."""
        safe = sanitize_ref(ref.filename, ref.subfolder, ref.type, node_id=ref.node_id)

        def handle(response: httpx.Response) -> bytes:
            if response.status_code == 404:
                raise UpstreamDataError(
                    f"ComfyUI at {self._url} has no image {safe.subfolder}/{safe.filename} "
                    f"({safe.type}) although it reported it",
                    status_code=404,
                    service=SERVICE,
                    retryable=False,
                )
            err = error_for_status(response, url=self._url, operation="view")
            if err is not None:
                raise err
            if not response.content:
                raise UpstreamDataError(
                    f"ComfyUI at {self._url} sent an empty file for {safe.filename}",
                    service=SERVICE,
                )
            return response.content

        params = {"filename": safe.filename, "subfolder": safe.subfolder, "type": safe.type}
        what = f"the image {safe.filename}"
        return await self._call(
            "view",
            "GET",
            "/view",
            handle,
            params=params,
            limit=self._max_image_bytes,
            what=what,
            check_head=pixel_guard(
                max_pixels=MAX_VIEW_PIXELS, what=what, server=self._url, service=SERVICE
            ),
        )

    # --- websocket callbacks ----------------------------------------------------------------

    def _on_ws_text(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        data = msg.get("data")
        if kind == "status" and isinstance(data, dict):
            self._on_status(data)
            return
        if not isinstance(data, dict) or kind in ("progress_state", None):
            return  # progress_state is a chatty snapshot: not forwarded
        prompt_id = data.get("prompt_id")
        if not isinstance(prompt_id, str):
            return
        if kind in ("execution_start", "executing"):
            self._current_prompt = prompt_id if data.get("node", "") is not None else None
        elif kind in _TERMINAL_TYPES and self._current_prompt == prompt_id:
            self._current_prompt = None
        run = self._runs.get(prompt_id)
        if run is not None:
            run.inbox.put_nowait(("msg", msg))

    def _on_status(self, data: dict[str, Any]) -> None:
        """ComfyUI broadcasts ``status`` on every queue change. An empty queue while a run is
        still open means its end was missed (a dropped message): check it once."""
        try:
            remaining = data["status"]["exec_info"]["queue_remaining"]
        except (KeyError, TypeError):
            return
        if isinstance(remaining, int) and not isinstance(remaining, bool):
            self.queue_remaining = remaining
            if remaining == 0:
                # only prompts the server has accepted: one still being submitted (its POST
                # unanswered or retried) is not missing, just not there yet
                for run in list(self._runs.values()):
                    if run.accepted:
                        run.inbox.put_nowait(("idle", None))

    def _on_ws_binary(self, raw: bytes) -> None:
        frame = parse_frame(raw)
        if isinstance(frame, ProgressTextFrame):
            log.debug("progress text from node %s: %.200s", frame.node_id, frame.text)
            return
        if frame is None:
            return
        prompt_id = frame.prompt_id or self._current_prompt
        run = self._runs.get(prompt_id) if prompt_id else None
        if run is not None:
            run.inbox.put_nowait(("preview", frame))

    def _on_ws_up(self) -> None:
        for run in list(self._runs.values()):
            run.inbox.put_nowait(("up", None))
        task = asyncio.create_task(self._announce_connected())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_ws_down(self, reason: str) -> None:
        self._current_prompt = None
        for run in list(self._runs.values()):
            run.inbox.put_nowait(("down", reason))

    def _on_ws_state(
        self, state: ConnectionState, detail: str, next_attempt_at: datetime | None
    ) -> None:
        if state is not ConnectionState.OFFLINE or self._closed:
            self._emit(state, detail, next_attempt_at=next_attempt_at)
            return
        # Offline: tell "nothing answers" from "not ComfyUI", "too old" and "busy" before
        # saying so (the websocket's own reason, e.g. InvalidMessage, means nothing to a seller).
        task = asyncio.create_task(self._announce_offline(detail, next_attempt_at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_offline(self, detail: str, next_attempt_at: datetime | None) -> None:
        log.info("ComfyUI at %s is unreachable over the websocket: %s", self._url, detail)
        try:
            problem, line = await self.diagnose(timeout=5.0)
        except Exception:  # a diagnosis must never kill the listener's state reporting
            log.exception("diagnosing %s failed", self._url)
            problem, line = ServerProblem.OFFLINE, detail
        if problem is ServerProblem.NONE:
            problem, line = ServerProblem.OFFLINE, detail
        if not self._listener.is_connected and not self._closed:
            self._emit(
                ConnectionState.OFFLINE,
                line if problem is not ServerProblem.OFFLINE else detail,
                next_attempt_at=next_attempt_at,
                problem=problem.value,
            )

    async def _announce_connected(self) -> None:
        try:
            info = await asyncio.wait_for(self.system_info(), 10.0)
        except (PodStudioError, builtins.TimeoutError) as exc:
            self._emit(ConnectionState.CONNECTED, f"connected; system_stats failed: {exc}")
            return
        device = info.devices[0] if info.devices else None
        self._emit(
            ConnectionState.CONNECTED,
            f"connected to ComfyUI {info.comfyui_version}".strip(),
            device=device.name if device else "",
            vram_free=device.vram_free if device else None,
            comfyui_version=info.comfyui_version,
        )

    def _emit(self, state: ConnectionState, detail: str = "", **fields: Any) -> None:
        try:
            self._sink(ConnectionChanged(server=self._url, state=state, detail=detail, **fields))
        except Exception:
            log.exception("the event sink failed")


async def diagnose_server(url: str, timeout: float = 5.0) -> tuple[ServerProblem, str]:  # noqa: ASYNC109
    """``ComfyUIClient.diagnose`` for one URL (doctor, the window's connection test)."""
    client = ComfyUIClient(url, timeout=httpx.Timeout(timeout))
    try:
        return await client.diagnose(timeout=timeout)
    finally:
        await client.aclose()


async def probe_server(url: str, timeout: float = 5.0) -> ServerInfo:  # noqa: ASYNC109
    """One ``/system_stats`` request (``pod-studio doctor``), with the queue length if known."""
    client = ComfyUIClient(url, timeout=httpx.Timeout(timeout))
    try:
        info = await client.system_info()
        try:
            remaining = await client.queue_length()
        except PodStudioError:
            return info
        return info.model_copy(update={"queue_remaining": remaining})
    finally:
        await client.aclose()
