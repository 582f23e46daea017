"""Sandbox layer: a stand-in for a stock ComfyUI 0.3.64 server (HTTP + websocket, aiohttp).

Speaks the protocol recorded in the ComfyUI contract: the same routes (also under ``/api``), the
same JSON shapes, validation errors, websocket message sequences, binary preview frames,
execution cache, history, queue and interrupt semantics, and the real server's oddities (origin
check, reused-clientId pitfall, no close frame on stop). Pictures are rendered with Pillow from
the prompt text and seed. Faults: the API of ``base.SandboxServer`` on every HTTP route but the
websocket (``fail_next``, ``hang_next``, ``malformed_next``, ``rate_limit_next``,
``commit_then_timeout_next`` on ``POST /prompt``, ``slow_seconds``, ``fault_rate``), and
ComfyUI's own: runtime errors (``error_next_prompt``), lost websocket messages, a refused
websocket, ``pause`` (the GPU stops between steps; the HTTP API still answers), ``restart``.
Imports nothing else from ``pod_studio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import ipaddress
import json
import mimetypes
import os
import shutil
import struct
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Unpack

from aiohttp import WSMsgType, web
from PIL import Image

from pod_studio.sandbox import _comfy_render as render
from pod_studio.sandbox._comfy_nodes import (
    MODEL_FOLDERS,
    NODES,
    NodeError,
    NodeSpec,
    fake_tensor,
    file_digest,
    object_info_entry,
    resolve_input_image,
)
from pod_studio.sandbox._comfy_validate import PromptTypeError, validate_prompt
from pod_studio.sandbox.base import FaultOptions, Handler, SandboxServer

__all__ = ["DEFAULT_CHECKPOINTS", "ComfyUISandbox", "serve_forever"]

DEFAULT_CHECKPOINTS = ["pod-demo-xl.safetensors", "sd_xl_base_1.0.safetensors"]
COMFYUI_VERSION = "0.3.64"
MAX_UPLOAD_SIZE = 104857600
TROUBLE_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE}
DEFAULT_ERROR_MESSAGE = (
    "Allocation on device 0 would exceed allowed memory. (out of memory)\n"
    "Currently allocated     : 21.47 GiB\n"
    "Requested               : 3.00 GiB\n"
    "Device limit            : 23.99 GiB\n"
    "Free (according to CUDA): 0 bytes\n"
    "PyTorch limit (set by user-supplied memory fraction)\n"
    "                        : 17179869184.00 GiB"
)
_EXEC_TRACEBACK = [
    '  File "/opt/ComfyUI/execution.py", line 496, in execute\n    <source line omitted>\n',
    '  File "/opt/ComfyUI/execution.py", line 315, in get_output_data\n    <source line omitted>\n',
    '  File "/opt/ComfyUI/execution.py", line 289, in _async_map_node_over_list\n'
    "    <source line omitted>\n",
    '  File "/opt/ComfyUI/execution.py", line 277, in process_inputs\n    <source line omitted>\n',
]
_NODE_FRAMES = {
    "SaveImage": [
        '  File "/opt/ComfyUI/nodes.py", line 1590, in save_images\n    <source line omitted>\n',
        '  File "/opt/ComfyUI/folder_paths.py", line 397, in get_save_image_path\n'
        "    <source line omitted>\n",
    ],
    "KSampler": [
        '  File "/opt/ComfyUI/nodes.py", line 1525, in sample\n    <source line omitted>\n',
        '  File "/opt/ComfyUI/nodes.py", line 1492, in common_ksampler\n'
        "    <source line omitted>\n",
    ],
}

QueueItem = list[Any]  # [number, prompt_id, prompt, extra_data, outputs_to_execute]


class _Interrupted(Exception):
    """The interrupt flag was seen at a checkpoint."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _joined(root: str, *parts: str) -> str:
    """``os.path.abspath(os.path.join(root, *parts))`` for an absolute ``root`` (no I/O)."""
    return os.path.normpath(os.path.join(root, *parts))  # noqa: PTH118


def _trouble() -> web.Response:
    return web.Response(status=500, text=TROUBLE_TEXT, content_type="text/plain")


class _ExecutionList:
    """ComfyUI's ``ExecutionList``: pending nodes, block counts and the UX-friendly pick."""

    def __init__(self, prompt: dict[str, Any], is_cached: Callable[[str], bool]) -> None:
        self.prompt = prompt
        self.is_cached = is_cached
        self.pending: dict[str, None] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, None]] = {}

    def add_node(self, unique_id: str) -> None:
        stack = [unique_id]
        links: list[tuple[str, str]] = []
        while stack:
            node_id = stack.pop()
            if node_id in self.pending:
                continue
            self.pending[node_id] = None
            self.block_count[node_id] = 0
            self.blocking[node_id] = {}
            for value in self.prompt[node_id].get("inputs", {}).values():
                if _is_link(value) and value[0] in self.prompt:
                    if not self.is_cached(value[0]):
                        stack.append(value[0])
                    links.append((value[0], node_id))
        for source, target in links:
            if not self.is_cached(source):
                self.add_node(source)
                if target not in self.blocking[source]:
                    self.blocking[source][target] = None
                    self.block_count[target] += 1

    def _is_output(self, node_id: str) -> bool:
        spec = NODES.get(self.prompt[node_id]["class_type"])
        return bool(spec and spec.output_node)

    def next_node(self) -> str | None:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            return None
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self.blocking[node_id]):
                return node_id
        for node_id in ready:
            for blocked in self.blocking[node_id]:
                if any(self._is_output(b) for b in self.blocking.get(blocked, {})):
                    return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        self.pending.pop(node_id, None)
        for blocked in self.blocking.get(node_id, {}):
            self.block_count[blocked] -= 1


class _RunContext:
    """What a running node sees (implements ``_comfy_nodes.NodeContext``)."""

    def __init__(self, sandbox: ComfyUISandbox, run: _PromptRun, node_id: str) -> None:
        self._sandbox = sandbox
        self._run = run
        self.node_id = node_id
        self.prompt = run.prompt
        self.extra_data = run.extra_data
        self.output_dir = sandbox.output_dir
        self.temp_dir = sandbox.temp_dir
        self.input_dir = sandbox.input_dir
        self.sampler_steps = sandbox.steps
        self.seconds_per_job = sandbox.seconds_per_job
        self.preview_every = sandbox.preview_every

    async def checkpoint(self) -> None:
        await self._sandbox._checkpoint()

    async def progress(
        self, value: int, total: int, preview: tuple[str, Image.Image] | None
    ) -> None:
        await self._sandbox._checkpoint()
        await self._run.progress(self.node_id, value, total, preview)

    async def progress_text(self, text: str) -> None:
        node = self.node_id.encode()
        payload = struct.pack(">I", len(node)) + node + text.encode()
        await self._sandbox._send_bytes(3, payload, None)

    async def render(self, text: str, seed: int, width: int, height: int) -> Image.Image:
        return await asyncio.to_thread(render.render_design, text, seed, width, height)


class _PromptRun:
    """The state of one prompt's execution (messages, progress snapshot, executed nodes)."""

    def __init__(self, sandbox: ComfyUISandbox, item: QueueItem) -> None:
        self.sandbox = sandbox
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item
        client = self.extra_data.get("client_id") if isinstance(self.extra_data, dict) else None
        self.client_id: str | None = str(client) if client is not None else None
        self.messages: list[list[Any]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []

    async def add_message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            await self.sandbox._send_json(event, data, self.client_id)

    async def send(self, event: str, data: dict[str, Any]) -> None:
        if self.client_id is not None:
            await self.sandbox._send_json(event, data, self.client_id)

    async def send_executed(self, node_id: str, ui: Any) -> None:
        await self.send(
            "executed",
            {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id},
        )

    def _state(self, node_id: str, value: float, total: float, state: str) -> dict[str, Any]:
        return {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    async def _send_states(self) -> None:
        data = {"prompt_id": self.prompt_id, "nodes": json.loads(json.dumps(self.states))}
        await self.sandbox._send_json("progress_state", data, self.client_id)

    async def start_node(self, node_id: str) -> None:
        self.states[node_id] = self._state(node_id, 0.0, 1.0, "running")
        await self._send_states()

    async def finish_node(self, node_id: str) -> None:
        current = self.states.get(node_id)
        if current is None:
            self.states[node_id] = self._state(node_id, 1, 1, "finished")
        else:
            current["value"] = current["max"]
            current["state"] = "finished"
        await self._send_states()

    async def progress(
        self, node_id: str, value: int, total: int, preview: tuple[str, Image.Image] | None
    ) -> None:
        self.states[node_id] = self._state(node_id, value, total, "running")
        await self._send_states()
        sandbox = self.sandbox
        with_metadata = self.client_id is not None and sandbox._supports_metadata(self.client_id)
        image_bytes = b""
        fmt = "PNG"
        if preview is not None:
            fmt, picture = preview
            image_bytes = await asyncio.to_thread(render.encode, picture, fmt)
        if preview is not None and with_metadata:
            metadata = {
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
                "image_type": "image/png" if fmt == "PNG" else "image/jpeg",
            }
            meta = json.dumps(metadata).encode()
            payload = struct.pack(">I", len(meta)) + meta + image_bytes
            await sandbox._send_bytes(4, payload, self.client_id)
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id}
        await sandbox._send_json("progress", progress, self.client_id)
        if preview is not None and not with_metadata:
            payload = struct.pack(">I", 1 if fmt == "JPEG" else 2) + image_bytes
            await sandbox._send_bytes(1, payload, self.client_id)


class ComfyUISandbox(SandboxServer):
    """A faithful, fault-injectable stand-in for a ComfyUI server on 127.0.0.1."""

    title = "ComfyUI sandbox"
    client_max_size = MAX_UPLOAD_SIZE
    pause_holds_requests = False  # pause() stops the GPU, not the HTTP API
    abort_on_stop = True  # stop() is a killed server: sockets dropped, no close frame
    shutdown_timeout = 0.5
    farewell = "Stopped server"  # what ComfyUI prints on Ctrl-C / SIGINT

    def __init__(
        self,
        *,
        seconds_per_job: float = 0.5,
        steps: int = 8,
        preview_every: int = 2,
        output_dir: Path | None = None,
        checkpoints: list[str] | None = None,
        upscale_models: list[str] | None = None,
        device_name: str = "Sandbox GPU (simulated)",
        vram_total: int = 24 * 1024**3,
        **faults: Unpack[FaultOptions],
    ) -> None:
        # A random fault is "500" (aiohttp's trouble page) unless ``fault_kinds`` says more.
        faults.setdefault("fault_kinds", ["500"])
        super().__init__(**faults)
        self.seconds_per_job = seconds_per_job
        self.steps = max(1, steps)
        self.preview_every = max(1, preview_every)
        self.checkpoints = list(DEFAULT_CHECKPOINTS if checkpoints is None else checkpoints)
        # files in models/upscale_models (none by default: a stock install ships none)
        self.upscale_models = list(upscale_models or [])
        self.device_name = device_name
        self.vram_total = vram_total
        self.executed_prompt_ids: list[str] = []
        # (prompt_id, started, finished) in time.perf_counter() seconds, one per execution:
        # benchmarks compare these with when a client noticed the end.
        self.execution_log: list[tuple[str, float, float]] = []

        self._base_dir = Path(tempfile.mkdtemp(prefix="pod-comfy-sandbox-"))
        self.output_dir = Path(output_dir) if output_dir is not None else self._base_dir / "output"
        self.input_dir = self._base_dir / "input"
        self.temp_dir = self._base_dir / "temp"
        for folder in (self.output_dir, self.input_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        render.solid(512, 512, 0x7F7F7F).save(self.input_dir / "example.png")

        # /ws answers 404, as behind a proxy that does not pass websockets on
        self.refuse_websocket = False
        # the most prompts queued or running at once (how far ahead a client keeps the GPU)
        self.peak_queue = 0
        self._inject: tuple[str, str] | None = None
        # websocket message types never delivered (a fault: e.g. {"executing",
        # "execution_success"} loses the end of every run)
        self.drop_messages: set[str] = set()

        self._number = 0
        self._pending: list[QueueItem] = []
        self._running: QueueItem | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._cache: dict[str, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._socket_meta: dict[str, dict[str, Any]] = {}
        self._ws_transports: set[asyncio.Transport] = set()
        self._generation = 0
        self._client_id: str | None = None
        self._last_node_id: str | None = None
        self._interrupt = False
        # POST /free only sets flags; the worker acts on them between prompts (like
        # ComfyUI's prompt_worker reading ``q.get_flags()``).
        self._flags: dict[str, bool] = {}
        self.models_loaded = False  # a model stays resident in VRAM after a run
        self.free_requests: list[dict[str, bool]] = []

        self._work: asyncio.Event | None = None
        self._worker_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def banner(self) -> str:
        url = self.url
        return f"ComfyUI sandbox listening on {url} (Ctrl-C to stop)\nTo see the GUI go to: {url}"

    async def on_start(self) -> None:
        self._work = asyncio.Event()
        self._worker_task = asyncio.create_task(self._worker(), name="comfy-sandbox-worker")

    async def on_stop(self) -> None:
        await self._stop_worker()

    async def before_abort(self) -> None:
        await self.drop_websockets()

    async def _stop_worker(self) -> None:
        task, self._worker_task = self._worker_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        await super().stop()
        shutil.rmtree(self._base_dir, ignore_errors=True)

    async def restart(self, downtime: float = 0.0) -> None:
        """Like a killed server: sockets dropped without close frame, state wiped, same port."""
        await self._stop_worker()
        self._generation += 1
        await self._close_listener()
        self._wipe_state()
        if downtime > 0:
            await asyncio.sleep(downtime)
        await self._listen(self.host, self.port)
        self._worker_task = asyncio.create_task(self._worker(), name="comfy-sandbox-worker")

    def _wipe_state(self) -> None:
        self._number = 0
        self._pending.clear()
        self._running = None
        self._history.clear()
        self._cache.clear()
        self._sockets.clear()
        self._socket_meta.clear()
        self._client_id = None
        self._last_node_id = None
        self._interrupt = False
        self._flags.clear()
        self.models_loaded = False
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(parents=True, exist_ok=True)

    async def drop_websockets(self) -> None:
        """Abort every websocket's transport: clients see an abnormal closure (no close frame)."""
        for transport in list(self._ws_transports):
            transport.abort()
        self._ws_transports.clear()
        await asyncio.sleep(0)

    # ------------------------------------------------------------------ knobs

    def completed_prompt_ids(self) -> list[str]:
        """The executed prompts that ran to the end (not interrupted, not failed)."""
        return [
            pid
            for pid, entry in self._history.items()
            if entry.get("status", {}).get("completed") is True
        ]

    def interrupted_prompt_ids(self) -> list[str]:
        """The executed prompts that were interrupted (cancelled mid-run)."""
        return [
            pid
            for pid, entry in self._history.items()
            if any(
                isinstance(m, list) and m and m[0] == "execution_interrupted"
                for m in entry.get("status", {}).get("messages", [])
            )
        ]

    def error_next_prompt(
        self, node_type: str = "KSampler", message: str = DEFAULT_ERROR_MESSAGE
    ) -> None:
        """The next execution of a ``node_type`` node fails with ``execution_error``."""
        self._inject = (node_type, message)

    # ------------------------------------------------------------------ sending

    async def _send_raw(self, ws: web.WebSocketResponse, data: str | bytes) -> None:
        if ws.closed:
            return
        try:
            if isinstance(data, bytes):
                await ws.send_bytes(data)
            else:
                await ws.send_str(data)
        except (ConnectionError, RuntimeError, OSError):
            return

    async def _send_json(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        if event in self.drop_messages:
            return  # fault: a message lost on the way
        text = json.dumps({"type": event, "data": data})
        if sid is None:
            for ws in list(self._sockets.values()):
                await self._send_raw(ws, text)
        elif sid in self._sockets:
            await self._send_raw(self._sockets[sid], text)

    async def _send_bytes(self, event: int, payload: bytes, sid: str | None) -> None:
        frame = struct.pack(">I", event) + payload
        if sid is None:
            for ws in list(self._sockets.values()):
                await self._send_raw(ws, frame)
        elif sid in self._sockets:
            await self._send_raw(self._sockets[sid], frame)

    def _supports_metadata(self, sid: str) -> bool:
        flags = self._socket_meta.get(sid, {}).get("feature_flags", {})
        return bool(isinstance(flags, dict) and flags.get("supports_preview_metadata"))

    def _queue_info(self) -> dict[str, Any]:
        remaining = len(self._pending) + (1 if self._running is not None else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    async def _queue_updated(self) -> None:
        await self._send_json("status", {"status": self._queue_info()}, None)

    # ------------------------------------------------------------------ queue / worker

    async def _put(self, item: QueueItem) -> None:
        self._pending.append(item)
        queued = len(self._pending) + (1 if self._running is not None else 0)
        self.peak_queue = max(self.peak_queue, queued)
        await self._queue_updated()
        if self._work is not None:
            self._work.set()

    def _sorted_pending(self) -> list[QueueItem]:
        return sorted(self._pending, key=lambda it: (it[0], str(it[1])))

    def _apply_flags(self) -> None:
        flags, self._flags = self._flags, {}
        free_memory = flags.get("free_memory", False)
        if flags.get("unload_models", free_memory):
            self.models_loaded = False
        if free_memory:
            self._cache.clear()

    async def _worker(self) -> None:
        assert self._work is not None
        while True:
            self._apply_flags()
            while not self._pending:
                self._work.clear()
                await self._work.wait()
                self._apply_flags()
            item = self._sorted_pending()[0]
            self._pending.remove(item)
            self._running = item
            await self._queue_updated()
            run = _PromptRun(self, item)
            self.executed_prompt_ids.append(str(item[1]))
            exec_started = time.perf_counter()
            success, result = await self._execute(run)
            self.models_loaded = True
            self.execution_log.append((str(item[1]), exec_started, time.perf_counter()))
            status = {
                "status_str": "success" if success else "error",
                "completed": success,
                "messages": run.messages,
            }
            entry = {
                "prompt": list(item),
                "outputs": result.get("outputs", {}),
                "status": status,
                "meta": result.get("meta", {}),
            }
            self._history[str(item[1])] = json.loads(json.dumps(entry))
            while len(self._history) > 10000:
                self._history.pop(next(iter(self._history)))
            self._running = None
            await self._queue_updated()
            if run.client_id is not None:
                await self._send_json(
                    "executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id
                )
            self._client_id = None
            self._last_node_id = None

    async def _checkpoint(self) -> None:
        await self.until_resumed()
        if self._interrupt:
            self._interrupt = False
            raise _Interrupted

    # ------------------------------------------------------------------ execution

    def _signatures(self, prompt: dict[str, Any]) -> dict[str, str]:
        memo: dict[str, str] = {}
        visiting: set[str] = set()

        def sig(node_id: str) -> str:
            if node_id in memo:
                return memo[node_id]
            if node_id in visiting:
                return uuid.uuid4().hex
            visiting.add(node_id)
            node = prompt[node_id]
            class_type = node.get("class_type")
            spec = NODES.get(class_type) if isinstance(class_type, str) else None
            parts: list[Any] = [class_type]
            inputs = node.get("inputs", {})
            for name in sorted(inputs):
                value = inputs[name]
                if _is_link(value) and value[0] in prompt:
                    parts.append([name, sig(value[0]), value[1]])
                else:
                    parts.append([name, json.dumps(value, sort_keys=True, default=str)])
            if spec is not None and spec.never_cached:
                parts.append(uuid.uuid4().hex)
            if spec is not None and "unique_id" in spec.hidden:
                parts.append(node_id)
            if class_type == "LoadImage":
                path = resolve_input_image(str(inputs.get("image", "")), self._dirs())
                parts.append(file_digest(path) if path is not None else None)
            visiting.discard(node_id)
            digest = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
            memo[node_id] = digest
            return digest

        return {node_id: sig(node_id) for node_id in prompt}

    def _dirs(self) -> dict[str, Path]:
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}

    async def _execute(self, run: _PromptRun) -> tuple[bool, dict[str, Any]]:
        prompt = run.prompt
        self._interrupt = False
        self._client_id = run.client_id
        await run.add_message(
            "execution_start", {"prompt_id": run.prompt_id, "timestamp": _now_ms()}
        )
        signatures = self._signatures(prompt)
        live = set(signatures.values())
        self._cache = {k: v for k, v in self._cache.items() if k in live}
        inject = self._inject

        def is_cached(node_id: str) -> bool:
            if inject is not None and prompt[node_id].get("class_type") == inject[0]:
                return False
            return signatures[node_id] in self._cache

        cached = [node_id for node_id in prompt if is_cached(node_id)]
        await run.add_message(
            "execution_cached",
            {"nodes": cached, "prompt_id": run.prompt_id, "timestamp": _now_ms()},
        )
        plan = _ExecutionList(prompt, is_cached)
        for output in run.outputs:
            plan.add_node(output)
        ui_outputs: dict[str, Any] = {}
        results: dict[str, tuple[Any, ...]] = {}
        while True:
            node_id = plan.next_node()
            if node_id is None:
                break
            class_type = prompt[node_id]["class_type"]
            spec = NODES[class_type]
            if is_cached(node_id):
                outputs, ui = self._cache[signatures[node_id]]
                results[node_id] = outputs
                await run.send_executed(node_id, ui)  # a cached node says so even without ui
                if ui:
                    ui_outputs[node_id] = ui
                await run.finish_node(node_id)
                plan.complete(node_id)
                continue
            await run.start_node(node_id)
            self._last_node_id = node_id
            await run.send(
                "executing", {"node": node_id, "display_node": node_id, "prompt_id": run.prompt_id}
            )
            inputs: dict[str, Any] = {}
            try:
                await self._checkpoint()
                inputs = self._resolve_inputs(prompt, node_id, results, signatures)
                if inject is not None and class_type == inject[0] and self._inject == inject:
                    self._inject = None
                    message = inject[1]
                    kind = "torch.OutOfMemoryError" if "out of memory" in message else "Exception"
                    raise NodeError(message, kind)
                outputs, ui = await spec.run(_RunContext(self, run, node_id), inputs)
            except _Interrupted:
                await run.add_message(
                    "execution_interrupted",
                    {
                        "prompt_id": run.prompt_id,
                        "node_id": node_id,
                        "node_type": class_type,
                        "executed": list(run.executed),
                        "timestamp": _now_ms(),
                    },
                    broadcast=True,
                )
                return False, {}
            except Exception as exc:  # noqa: BLE001 - a node failure becomes execution_error
                await self._report_error(run, node_id, spec, inputs, exc)
                return False, {}
            self._cache[signatures[node_id]] = (outputs, ui)
            results[node_id] = outputs
            run.executed.append(node_id)
            if ui:
                ui_outputs[node_id] = ui
                await run.send_executed(node_id, ui)
            await run.finish_node(node_id)
            plan.complete(node_id)
        await run.add_message(
            "execution_success", {"prompt_id": run.prompt_id, "timestamp": _now_ms()}
        )
        meta = {
            node_id: {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            for node_id in ui_outputs
        }
        return True, {"outputs": ui_outputs, "meta": meta}

    def _resolve_inputs(
        self,
        prompt: dict[str, Any],
        node_id: str,
        results: dict[str, tuple[Any, ...]],
        signatures: dict[str, str],
    ) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for name, value in prompt[node_id].get("inputs", {}).items():
            if _is_link(value) and value[0] in prompt:
                source = results.get(value[0])
                if source is None:
                    source = self._cache[signatures[value[0]]][0]
                resolved[name] = source[value[1]]
            else:
                resolved[name] = value
        return resolved

    async def _report_error(
        self,
        run: _PromptRun,
        node_id: str,
        spec: NodeSpec,
        inputs: dict[str, Any],
        exc: Exception,
    ) -> None:
        if isinstance(exc, NodeError):
            exception_type = exc.exception_type
        else:
            module = type(exc).__module__
            name = type(exc).__qualname__
            exception_type = name if module == "builtins" else f"{module}.{name}"
        current_inputs: dict[str, list[Any]] = {}
        for name, value in inputs.items():
            if isinstance(value, list) and value and isinstance(value[0], Image.Image):
                current_inputs[name] = [fake_tensor(value)]
            elif value is None or isinstance(value, (int, float, bool, str)):
                current_inputs[name] = [value]
            else:
                current_inputs[name] = [str(value)]
        if "prompt" in spec.hidden:
            current_inputs["prompt"] = [str(run.prompt)]
            extra = (
                run.extra_data.get("extra_pnginfo") if isinstance(run.extra_data, dict) else None
            )
            current_inputs["extra_pnginfo"] = [str(extra)]
        payload = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": spec.name,
            "executed": list(run.executed),
            "exception_message": f"{exc}\n",
            "exception_type": exception_type,
            "traceback": _EXEC_TRACEBACK + _NODE_FRAMES.get(spec.name, []),
            "current_inputs": current_inputs,
            "current_outputs": list(run.prompt),
            "timestamp": _now_ms(),
        }
        await run.add_message("execution_error", payload)

    # ------------------------------------------------------------------ HTTP plumbing

    def add_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/ws", self._ws_handler),
            ("GET", "/system_stats", self._system_stats),
            ("GET", "/features", self._features),
            ("GET", "/prompt", self._get_prompt),
            ("POST", "/prompt", self._post_prompt),
            ("GET", "/queue", self._get_queue),
            ("POST", "/queue", self._post_queue),
            ("POST", "/interrupt", self._post_interrupt),
            ("POST", "/free", self._post_free),
            ("GET", "/history", self._get_history),
            ("GET", "/history/{prompt_id}", self._get_history_item),
            ("POST", "/history", self._post_history),
            ("GET", "/object_info", self._object_info),
            ("GET", "/object_info/{node_class}", self._object_info_one),
            ("GET", "/embeddings", self._embeddings),
            ("GET", "/models", self._models),
            ("GET", "/models/{folder}", self._models_folder),
            ("GET", "/view", self._view),
            ("POST", "/upload/image", self._upload_image),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)

    def _origin_forbidden(self, request: web.Request) -> bool:
        host = request.headers.get("Host")
        origin = request.headers.get("Origin")
        if host is None or origin is None:
            return False
        host_domain: str | None = host.lower()
        parsed = urllib.parse.urlparse(origin)
        origin_domain: str | None = parsed.netloc.lower()
        host_parsed = urllib.parse.urlsplit("//" + (host_domain or ""))
        loopback = _is_loopback(host_parsed.hostname)
        try:
            origin_port = parsed.port
        except ValueError:
            origin_port = None
        try:
            host_port = host_parsed.port
        except ValueError:
            host_port = None
        if origin_port is None:
            host_domain = host_parsed.hostname
        if host_port is None:
            origin_domain = parsed.hostname
        return bool(loopback and host_domain and origin_domain and host_domain != origin_domain)

    def count_key(self, request: web.Request) -> str:
        path = request.path
        if path == "/api" or path.startswith("/api/"):
            path = path[4:] or "/"
        return f"{request.method} {path}"

    def fault_key(self, request: web.Request) -> str:
        return self.count_key(request)

    def faultable(self, request: web.Request) -> bool:
        return self.count_key(request) != "GET /ws"

    async def admit(self, request: web.Request) -> web.StreamResponse | None:
        if self._origin_forbidden(request):
            return web.Response(status=403)
        if self.refuse_websocket and not self.faultable(request):
            return web.Response(status=404, text="404: Not Found")
        return None

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(status=404)

    def error_response(self, status: int) -> web.Response:
        return _trouble() if status == 500 else super().error_response(status)

    # ------------------------------------------------------------------ websocket

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        generation = self._generation
        transport = request.transport
        if transport is not None:
            self._ws_transports.add(transport)
        sid = request.query.get("clientId", "")
        if sid:
            self._sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self._sockets[sid] = ws
        self._socket_meta[sid] = {"feature_flags": {}}
        try:
            await self._send_json("status", {"status": self._queue_info(), "sid": sid}, sid)
            if self._client_id == sid and self._last_node_id is not None:
                await self._send_json("executing", {"node": self._last_node_id}, sid)
            first = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    continue
                if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                    flags = data.get("data", {})
                    if sid in self._socket_meta:
                        self._socket_meta[sid]["feature_flags"] = flags
                    await self._send_json("feature_flags", dict(SERVER_FEATURES), sid)
                first = False
        finally:
            if generation == self._generation:
                self._sockets.pop(sid, None)
                self._socket_meta.pop(sid, None)
            if transport is not None:
                self._ws_transports.discard(transport)
        return ws

    # ------------------------------------------------------------------ routes

    async def _system_stats(self, request: web.Request) -> web.StreamResponse:
        ram_total = 32 * 1024**3
        used = self.vram_total // 8 if self._running is not None else self.vram_total // 24
        if self.models_loaded:
            used += self.vram_total // 4
        body = {
            "system": {
                "os": os.name,
                "ram_total": ram_total,
                "ram_free": ram_total - 6 * 1024**3,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "1.27.10",
                "installed_templates_version": "0.1.95",
                "required_templates_version": "0.1.95",
                "python_version": sys.version,
                "pytorch_version": "2.14.1+cu130",
                "embedded_python": False,
                "argv": ["main.py", "--listen", self.host, "--port", str(self.port)],
            },
            "devices": [
                {
                    "name": f"cuda:0 {self.device_name} : cudaMallocAsync",
                    "type": "cuda",
                    "index": 0,
                    "vram_total": self.vram_total,
                    "vram_free": self.vram_total - used,
                    "torch_vram_total": self.vram_total // 2,
                    "torch_vram_free": self.vram_total // 2 - used // 2,
                }
            ],
        }
        return web.json_response(body)

    async def _features(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(dict(SERVER_FEATURES))

    async def _get_prompt(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._queue_info())

    async def _post_prompt(self, request: web.Request) -> web.StreamResponse:
        try:
            data = json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _trouble()
        if not isinstance(data, dict):
            return _trouble()
        if "number" in data:
            try:
                number: float | int = float(data["number"])
            except (TypeError, ValueError):
                return _trouble()
        else:
            number = self._number
            if data.get("front"):
                number = -number
            self._number += 1
        if "prompt" not in data:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = data["prompt"]
        prompt_id = str(data["prompt_id"]) if "prompt_id" in data else str(uuid.uuid4())
        try:
            valid, error_body, outputs, node_errors = validate_prompt(
                prompt, self._node_info, self._image_exists
            )
        except PromptTypeError:
            return _trouble()
        extra_data = data.get("extra_data", {})
        if not isinstance(extra_data, dict):
            return _trouble()
        if "client_id" in data:
            extra_data["client_id"] = data["client_id"]
        if not valid:
            return web.json_response({"error": error_body, "node_errors": node_errors}, status=400)
        if isinstance(prompt, list):
            prompt = {}
        await self._put([number, prompt_id, prompt, extra_data, outputs])
        dropped = await self.commit_fault(request)
        if dropped is not None:
            return dropped
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}
        )

    def _node_info(self, class_type: str) -> dict[str, Any]:
        return object_info_entry(class_type, self.checkpoints, self.input_dir, self.upscale_models)

    def _image_exists(self, name: str) -> bool:
        return resolve_input_image(name, self._dirs()) is not None

    async def _get_queue(self, request: web.Request) -> web.StreamResponse:
        running = [self._running] if self._running is not None else []
        return web.json_response(
            json.loads(
                json.dumps({"queue_running": running, "queue_pending": self._sorted_pending()})
            )
        )

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    async def _post_queue(self, request: web.Request) -> web.StreamResponse:
        data = await self._json_body(request)
        if not isinstance(data, dict):
            return _trouble()
        if data.get("clear"):
            self._pending.clear()
            await self._queue_updated()
        for prompt_id in data.get("delete", []) or []:
            for item in list(self._pending):
                if item[1] == prompt_id:
                    self._pending.remove(item)
                    await self._queue_updated()
                    break
        return web.Response(status=200)

    async def _post_interrupt(self, request: web.Request) -> web.StreamResponse:
        data = await self._json_body(request)
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if prompt_id:
            if self._running is not None and self._running[1] == prompt_id:
                self._interrupt = True
        else:
            self._interrupt = True
        return web.Response(status=200)

    async def _post_free(self, request: web.Request) -> web.StreamResponse:
        # Like server.py: ``await request.json()`` (a bad body is aiohttp's 500 page), flags
        # set only when true, 200 with an empty body before anything is freed.
        data = await self._json_body(request)
        if not isinstance(data, dict):
            return _trouble()
        unload_models = bool(data.get("unload_models", False))
        free_memory = bool(data.get("free_memory", False))
        self.free_requests.append({"unload_models": unload_models, "free_memory": free_memory})
        if unload_models:
            self._flags["unload_models"] = True
        if free_memory:
            self._flags["free_memory"] = True
        if self._work is not None and (unload_models or free_memory):
            self._work.set()
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.StreamResponse:
        try:
            max_items = int(request.query["max_items"]) if "max_items" in request.query else None
            offset = int(request.query.get("offset", -1))
        except ValueError:
            return _trouble()
        if offset < 0 and max_items is not None:
            offset = len(self._history) - max_items
        out: dict[str, Any] = {}
        for index, key in enumerate(self._history):
            if index >= offset:
                out[key] = self._history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return web.json_response(out)

    async def _get_history_item(self, request: web.Request) -> web.StreamResponse:
        prompt_id = request.match_info["prompt_id"]
        if prompt_id in self._history:
            return web.json_response({prompt_id: self._history[prompt_id]})
        return web.json_response({})

    async def _post_history(self, request: web.Request) -> web.StreamResponse:
        data = await self._json_body(request)
        if not isinstance(data, dict):
            return _trouble()
        if data.get("clear"):
            self._history.clear()
        for prompt_id in data.get("delete", []) or []:
            self._history.pop(prompt_id, None)
        return web.Response(status=200)

    async def _object_info(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({name: self._node_info(name) for name in NODES})

    async def _object_info_one(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["node_class"]
        if name not in NODES:
            return web.json_response({})
        return web.json_response({name: self._node_info(name)})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([])

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(list(MODEL_FOLDERS))

    async def _models_folder(self, request: web.Request) -> web.StreamResponse:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        if folder == "upscale_models":
            return web.json_response(list(self.upscale_models))
        return web.json_response(list(self.checkpoints) if folder == "checkpoints" else [])

    async def _view(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        name = query["filename"]
        base: Path | None = None
        for kind in ("input", "output", "temp"):
            if name.endswith(f" [{kind}]"):
                name = name[: -len(kind) - 3]
                base = self._dirs()[kind]
        if not name or name[0] == "/" or ".." in name:
            return web.Response(status=400)
        if base is None:
            base = self._dirs().get(query.get("type", "output"))
        if base is None:
            return web.Response(status=400)
        root = str(base.resolve())
        folder = root
        if "subfolder" in query:
            full = _joined(root, query["subfolder"])
            if os.path.commonpath((full, root)) != root:
                return web.Response(status=403)
            folder = full
        filename = os.path.basename(name)  # noqa: PTH119
        path = Path(folder) / filename
        if not path.is_file():
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        channel = query.get("channel", "rgba")
        if "preview" in query:
            info = query["preview"].split(";")
            wants_alpha = "a" in query.get("channel", "")
            fmt = info[0] if info[0] in ("webp", "jpeg") and not wants_alpha else "webp"
            quality = int(info[-1]) if info[-1].isdigit() else 90
            body = await asyncio.to_thread(
                self._reencode, path, fmt, quality, query.get("channel", "")
            )
            return web.Response(body=body, content_type=f"image/{fmt}", headers=disposition)
        if channel == "rgb":
            body = await asyncio.to_thread(self._reencode, path, "png", 0, "rgb")
            return web.Response(body=body, content_type="image/png", headers=disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in {"text/html", "application/xhtml+xml", "text/javascript", "text/css"}:
            content_type = "application/octet-stream"
        body = await asyncio.to_thread(path.read_bytes)
        return web.Response(body=body, headers={**disposition, "Content-Type": content_type})

    @staticmethod
    def _reencode(path: Path, fmt: str, quality: int, channel: str) -> bytes:
        buffer = io.BytesIO()
        with Image.open(path) as img:
            picture = img.convert("RGB") if fmt == "jpeg" or channel == "rgb" else img.copy()
        if fmt == "png":
            picture.save(buffer, format="PNG")
        else:
            picture.save(buffer, format=fmt.upper(), quality=quality)
        return buffer.getvalue()

    async def _upload_image(self, request: web.Request) -> web.StreamResponse:
        try:
            post = await request.post()
        except ValueError:
            return web.Response(status=400)
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        base = self._dirs().get(kind, self.input_dir)
        if kind not in self._dirs():
            kind = "input"
        subfolder = str(post.get("subfolder", ""))
        root = str(base.resolve())
        folder = _joined(root, subfolder)
        filename = image.filename
        target = _joined(folder, filename)
        if os.path.commonpath((root, target)) != root:
            return web.Response(status=400)
        data = image.file.read()
        result = await asyncio.to_thread(
            self._store_upload, Path(folder), filename, data, str(post.get("overwrite", ""))
        )
        return web.json_response({"name": result, "subfolder": subfolder, "type": kind})

    @staticmethod
    def _store_upload(folder: Path, filename: str, data: bytes, overwrite: str) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        stem, suffix = os.path.splitext(filename)  # noqa: PTH122
        if overwrite not in ("true", "1"):
            index = 1
            while path.exists():
                if path.read_bytes() == data:
                    return filename
                filename = f"{stem} ({index}){suffix}"
                path = folder / filename
                index += 1
        path.write_bytes(data)
        return filename


def serve_forever(host: str, port: int, **options: Any) -> None:
    """Run a sandbox until Ctrl-C (``pod-studio sandbox comfyui``)."""
    ComfyUISandbox(**options).serve_forever(host, port)
