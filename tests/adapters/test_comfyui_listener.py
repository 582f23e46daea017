"""The websocket listener: feature flags first, reconnect with backoff, and the old socket fully
closed before a new one opens with the same clientId (ComfyUI contract, trace 13)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from pod_studio.adapters.comfyui.listener import WebsocketListener, WsConnection
from pod_studio.domain.models import ConnectionState

pytestmark = pytest.mark.timeout(30)

STATUS = json.dumps(
    {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc"}}
)


class FakeSocket:
    """Delivers the initial status, then ``messages``, then drops without a close frame."""

    def __init__(
        self,
        number: int,
        log: list[tuple[str, int]],
        messages: list[str | bytes],
        hold: asyncio.Event | None = None,
    ) -> None:
        self.number = number
        self.log = log
        self.queue: list[str | bytes] = [STATUS, *messages]
        self.hold = hold
        self.sent: list[str] = []
        self.closed = False

    async def recv(self) -> str | bytes:
        if self.queue:
            return self.queue.pop(0)
        if self.hold is not None:
            await self.hold.wait()
        raise ConnectionClosedError(None, None)

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        await asyncio.sleep(0.01)  # a slow close: the next socket must still wait for it
        self.closed = True
        self.log.append(("closed", self.number))

    async def wait_closed(self) -> None:
        assert self.closed


@pytest.mark.asyncio
async def test_reconnects_only_after_the_old_socket_is_closed() -> None:
    log: list[tuple[str, int]] = []
    sockets: list[FakeSocket] = []
    texts: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    states: list[tuple[ConnectionState, datetime | None]] = []
    ups: list[int] = []
    downs: list[str] = []
    hold = asyncio.Event()
    done = asyncio.Event()

    async def connect(url: str) -> WsConnection:
        number = len(sockets) + 1 + sum(1 for kind, _ in log if kind == "refused")
        log.append(("open", number))
        assert url == "ws://x/ws?clientId=abc"
        if number == 3:
            log.append(("refused", number))
            raise OSError("connection refused")
        messages: list[str | bytes] = (
            [
                '{"type": "executing", "data": {"node": "3", "prompt_id": "p"}}',
                b"\x00\x00\x00\x01",
                "not json",
                "[1]",
            ]
            if number == 1
            else []
        )
        sock = FakeSocket(number, log, messages, hold=hold if number >= 4 else None)
        sockets.append(sock)
        if number >= 4:
            done.set()
        return sock

    listener = WebsocketListener(
        "ws://x/ws?clientId=abc",
        on_text=texts.append,
        on_binary=binaries.append,
        on_up=lambda: ups.append(len(ups)),
        on_down=downs.append,
        on_state=lambda state, _detail, at: states.append((state, at)),
        reconnect_initial=0.01,
        reconnect_max=0.05,
        connect=connect,
    )
    listener.start()
    await asyncio.wait_for(done.wait(), 10)
    assert await listener.wait_connected(5)
    await listener.aclose()

    # every new socket was opened only after the previous one had finished closing
    opens = [n for kind, n in log if kind == "open"]
    for number in opens[1:]:
        previous = [s for s in sockets if s.number < number]
        if previous:
            last = max(previous, key=lambda s: s.number)
            assert log.index(("closed", last.number)) < log.index(("open", number))
    assert all(s.closed for s in sockets)  # aclose closed the last one too
    # feature_flags is the first (and only) message we send on each socket
    for sock in sockets:
        assert json.loads(sock.sent[0]) == {
            "type": "feature_flags",
            "data": {"supports_preview_metadata": True, "max_upload_size": 104857600},
        }
    # the status, then the one message routed; garbage ignored
    assert [m["type"] for m in texts][:2] == ["status", "executing"]
    assert binaries[0] == b"\x00\x00\x00\x01"
    assert len(ups) >= 3 and len(downs) >= 2
    assert states[0][0] == ConnectionState.CONNECTING
    reconnecting = [at for state, at in states if state == ConnectionState.RECONNECTING]
    assert len(reconnecting) >= 3 and all(at is not None for at in reconnecting)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    def make(r: float) -> WebsocketListener:
        return WebsocketListener(
            "ws://x/ws",
            on_text=print,
            on_binary=print,
            on_up=lambda: None,
            on_down=print,
            on_state=lambda *_: None,
            reconnect_initial=0.5,
            reconnect_max=10.0,
            rng=lambda: r,
        )

    high, low = make(1.0), make(0.0)
    assert [high.backoff(a) for a in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [low.backoff(a) for a in range(3)] == [0.25, 0.5, 1.0]
    assert high.backoff(10_000) == 10.0


@pytest.mark.asyncio
async def test_unreachable_server_reports_offline_with_next_attempt() -> None:
    states: list[tuple[ConnectionState, str, datetime | None]] = []
    attempts = 0
    third = asyncio.Event()

    async def refuse(url: str) -> WsConnection:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            third.set()
        raise OSError("[Errno 111] Connect call failed")

    listener = WebsocketListener(
        "ws://127.0.0.1:9/ws?clientId=abc",
        on_text=print,
        on_binary=print,
        on_up=lambda: None,
        on_down=print,
        on_state=lambda state, detail, at: states.append((state, detail, at)),
        reconnect_initial=0.01,
        reconnect_max=0.02,
        connect=refuse,
    )
    listener.start()
    await asyncio.wait_for(third.wait(), 5)
    await listener.aclose()
    assert states[0][0] == ConnectionState.CONNECTING
    offline = [s for s in states[1:] if s[0] == ConnectionState.OFFLINE]
    assert len(offline) == len(states) - 1 >= 2
    assert all(at is not None and "Connect call failed" in detail for _, detail, at in offline)
    assert not listener.is_connected


class FirstMessageSocket:
    """Holds the first message until the test releases it; after it, nothing more arrives."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.first: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.closed = False

    async def recv(self) -> str | bytes:
        if not self.first.done():
            self.waiting.set()
            return await self.first
        await asyncio.Event().wait()  # a quiet server
        raise AssertionError("unreachable")

    async def send(self, message: str) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


@pytest.mark.asyncio
async def test_closing_as_the_first_message_arrives_still_stops_the_listener() -> None:
    """Quitting the app right after it opened: the cancel lands in the same loop turn as the
    server's first message. The listener must stop (on Python 3.11 ``asyncio.wait_for``
    returns the message instead and the shutdown waits forever)."""
    sock = FirstMessageSocket()

    async def connect(url: str) -> WsConnection:
        return sock

    listener = WebsocketListener(
        "ws://x/ws?clientId=abc",
        on_text=lambda _m: None,
        on_binary=lambda _b: None,
        on_up=lambda: None,
        on_down=lambda _r: None,
        on_state=lambda _s, _d, _a: None,
        connect=connect,
    )
    listener.start()
    await sock.waiting.wait()
    sock.first.set_result(STATUS)
    async with asyncio.timeout(5):
        await listener.aclose()
    assert not listener.running and sock.closed
