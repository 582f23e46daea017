"""Adapter layer (ComfyUI): the websocket listener with reconnect.

One task keeps one socket open to ``/ws?clientId=<id>`` for the life of the client:

- after the server's first ``status`` message it sends ``feature_flags`` (so previews arrive as
  type 4 frames that name their prompt);
- every text message (JSON object) and binary frame goes to the owner's callbacks;
- when the socket drops (a server stop sends no close frame) or a connect fails, it waits a
  jittered exponential backoff and tries again, for ever, until ``aclose`` (state
  ``reconnecting`` just after a drop, ``offline`` when the server stays unreachable);
- the old socket is always closed completely **before** a new one is opened with the same
  ``clientId``: ComfyUI stops delivering to the new socket if an old socket with that id closes
  after it (see the ComfyUI contract, "reused clientId pitfall").
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import websockets
from websockets.exceptions import ConnectionClosed, WebSocketException

from pod_studio import USER_AGENT
from pod_studio.domain.models import ConnectionState

log = logging.getLogger(__name__)

FEATURE_FLAGS: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": 104857600}
# Previews are small JPEGs and status messages a few KB; a bigger frame closes the socket
# (websockets enforces max_size before buffering the frame).
MAX_FRAME_BYTES = 16 * 1024 * 1024
OFFLINE_AFTER_ATTEMPTS = 3


class WsConnection(Protocol):
    """The part of ``websockets.asyncio.client.ClientConnection`` the listener uses."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


ConnectFn = Callable[[str], Awaitable[WsConnection]]


async def default_connect(url: str) -> WsConnection:
    """Open a websocket with bounded timeouts, keepalive pings and room for big previews."""
    conn = await websockets.connect(
        url,
        open_timeout=5.0,
        close_timeout=2.0,
        ping_interval=10.0,
        ping_timeout=10.0,
        max_size=MAX_FRAME_BYTES,
        max_queue=8,
        user_agent_header=USER_AGENT,
    )
    return conn  # type: ignore[return-value]


def _too_big(exc: BaseException, url: str) -> str | None:
    """The reason for a socket we closed because a message passed ``MAX_FRAME_BYTES``."""
    sent = getattr(exc, "sent", None)
    if isinstance(exc, ConnectionClosed) and sent is not None and sent.code == 1009:
        host = urlsplit(url)._replace(path="", query="").geturl()
        return (
            f"{host} sent a websocket message larger than the "
            f"{MAX_FRAME_BYTES // (1024 * 1024)} MB limit; the connection was closed"
        )
    return None


class WebsocketListener:
    """Keeps a socket open and reports messages and connection changes to callbacks."""

    def __init__(
        self,
        ws_url: str,
        *,
        on_text: Callable[[dict[str, Any]], None],
        on_binary: Callable[[bytes], None],
        on_up: Callable[[], None],
        on_down: Callable[[str], None],
        on_state: Callable[[ConnectionState, str, datetime | None], None],
        reconnect_initial: float = 0.5,
        reconnect_max: float = 10.0,
        connect: ConnectFn | None = None,
        first_message_timeout: float = 5.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._url = ws_url
        self._on_text = on_text
        self._on_binary = on_binary
        self._on_up = on_up
        self._on_down = on_down
        self._on_state = on_state
        self._initial = max(0.001, reconnect_initial)
        self._max = max(self._initial, reconnect_max)
        self._connect = connect or default_connect
        self._first_timeout = first_message_timeout
        self._rng = rng
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.server_flags: dict[str, Any] = {}
        self._drop_reason: str | None = None  # a drop worth naming (a message too big)
        self.connections_opened = 0

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_connected(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):  # not wait_for: it can swallow a cancel on 3.11
                await self._connected.wait()
        except builtins.TimeoutError:
            return False
        return True

    def start(self) -> None:
        if self.running:
            return
        self._task = asyncio.create_task(self._run(), name=f"comfyui-listener {self._url}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._connected.clear()

    def backoff(self, attempt: int) -> float:
        """Jittered exponential delay before reconnect attempt ``attempt`` (0-based)."""
        base = min(self._max, self._initial * (2.0 ** min(attempt, 30)))
        return base * (0.5 + 0.5 * self._rng())

    async def _run(self) -> None:
        attempt = 0
        ever_up = False
        self._on_state(ConnectionState.CONNECTING, f"connecting to {self._url}", None)
        while True:
            reason = await self._session()
            if reason is None:
                attempt = 0  # it was up: start the backoff over
                ever_up = True
                reason = self._drop_reason or "connection lost"
            delay = self.backoff(attempt)
            attempt += 1
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
            # RECONNECTING right after losing a socket; OFFLINE when the server has not been
            # reachable for several attempts (or ever since start).
            state = (
                ConnectionState.RECONNECTING
                if ever_up and attempt <= OFFLINE_AFTER_ATTEMPTS
                else ConnectionState.OFFLINE
            )
            self._on_state(state, reason, next_at)
            await asyncio.sleep(delay)

    async def _session(self) -> str | None:
        """One socket's life. Returns why it failed before it was up, or ``None`` if it was
        up and then dropped. The socket is fully closed before this returns."""
        ws: WsConnection | None = None
        self._drop_reason = None
        was_up = False
        reason: str | None = None
        try:
            ws = await self._connect(self._url)
            self.connections_opened += 1
            # not wait_for: on 3.11 a cancel that lands as the message arrives is lost there,
            # and the listener (and the app's shutdown) would wait on the socket forever
            async with asyncio.timeout(self._first_timeout):
                first = await ws.recv()
            await ws.send(json.dumps({"type": "feature_flags", "data": FEATURE_FLAGS}))
            self._connected.set()
            was_up = True
            self._on_up()
            self._dispatch(first)
            while True:
                self._dispatch(await ws.recv())
        except (OSError, WebSocketException, builtins.TimeoutError) as exc:
            self._drop_reason = _too_big(exc, self._url)  # said instead of "connection lost"
            reason = self._drop_reason or f"{type(exc).__name__}: {exc}"[:300]
            log.info("ComfyUI websocket %s: %s", self._url, reason)
        except Exception as exc:  # keep the listener alive whatever a callback does
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("ComfyUI websocket listener failed; reconnecting")
        finally:
            self._connected.clear()
            if ws is not None:
                await self._close_fully(ws)
            if was_up:
                self._on_down(reason or "connection lost")

        return None if was_up else reason

    async def _close_fully(self, ws: WsConnection) -> None:
        try:
            async with asyncio.timeout(5.0):
                await ws.close()
            async with asyncio.timeout(5.0):
                await ws.wait_closed()
        except (OSError, WebSocketException, builtins.TimeoutError) as exc:
            log.debug("closing the old websocket: %s", exc)

    def _dispatch(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes | bytearray | memoryview):
            try:
                self._on_binary(bytes(raw))
            except Exception:
                log.exception("handling a binary websocket frame failed")
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            log.debug("ignoring a websocket text message that is not JSON: %.80s", raw)
            return
        if not isinstance(msg, dict):
            log.debug("ignoring a websocket message that is not an object")
            return
        if msg.get("type") == "feature_flags" and isinstance(msg.get("data"), dict):
            self.server_flags = dict(msg["data"])
            return
        try:
            self._on_text(msg)
        except Exception:
            log.exception("handling a websocket message failed")
