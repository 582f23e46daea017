"""Hostile-input corpus for the ComfyUI adapter: a tiny aiohttp server on 127.0.0.1 that
answers like something that is not (quite) ComfyUI. Each case asserts a clear message naming
the server, and that the client stays usable afterwards.

Kinds covered: HTML on 200, HTML on the websocket port, wrong JSON shapes (several), a
too-old version, a stalled server (busy), a stall mid-body, a huge Content-Length, an endless
chunked body (2 GB, bounded memory), an image header promising too many pixels, garbage and
truncated websocket frames, binary frames with lying lengths (hypothesis), path-traversal file
names (hypothesis).
"""

from __future__ import annotations

import asyncio
import json
import struct
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.comfyui.frames import (
    PREVIEW_IMAGE_WITH_METADATA,
    TEXT,
    PreviewImageFrame,
    ProgressTextFrame,
    parse_frame,
)
from pod_studio.adapters.comfyui.names import sanitize_ref
from pod_studio.app.wording import describe_connection
from pod_studio.domain.errors import TimeoutError as PodTimeoutError
from pod_studio.domain.errors import UpstreamDataError
from pod_studio.domain.events import ConnectionChanged, Event
from pod_studio.domain.models import ConnectionState, ImageRef, ServerProblem
from tests.adapters.test_comfyui_client import FAST

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HTML = "<!doctype html><html><head><title>Router login</title></head><body>hi</body></html>"
GOOD_STATS = {
    "system": {"comfyui_version": "0.3.64", "os": "posix", "python_version": "3.12"},
    "devices": [],
}


class Hostile:
    """An aiohttp app whose routes each test sets; records nothing but what it is told."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.url = ""
        self.release = asyncio.Event()  # stalled handlers wait on it
        self._runner: web.AppRunner | None = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text=HTML, content_type="text/html")
        return await handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def html(status: int = 200) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=HTML, content_type="text/html")

    return handler


def json_reply(body: Any) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body)

    return handler


def client_for(server: Hostile, **options: Any) -> ComfyUIClient:
    return ComfyUIClient(server.url, **{**FAST, **options})


# --- not ComfyUI / wrong shapes / version / busy --------------------------------------------


@pytest.mark.asyncio
async def test_html_on_200_is_not_comfyui_naming_what_answered(hostile: Hostile) -> None:
    hostile.routes["/system_stats"] = html()
    async with client_for(hostile) as client:
        problem, line = await client.diagnose(timeout=5.0)
        assert problem is ServerProblem.NOT_COMFYUI
        assert hostile.url in line and "not a ComfyUI server" in line
        assert "text/html" in line and "Router login" in line
        with pytest.raises(UpstreamDataError, match="not JSON") as info:
            await client.system_info()
        assert "not like a ComfyUI server" in info.value.user_message


@pytest.mark.asyncio
async def test_html_server_on_the_websocket_port_is_not_reported_as_offline(
    hostile: Hostile,
) -> None:
    hostile.routes["/system_stats"] = html()
    hostile.routes["/ws"] = html()
    events: list[Event] = []
    seen = asyncio.Event()

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, ConnectionChanged) and event.problem:
            seen.set()

    async with client_for(hostile, sink=sink):
        await asyncio.wait_for(seen.wait(), 20.0)
    [event] = [e for e in events if isinstance(e, ConnectionChanged) and e.problem]
    assert event.state is ConnectionState.OFFLINE
    assert event.problem == ServerProblem.NOT_COMFYUI.value
    text = describe_connection(event)
    assert "not a ComfyUI server" in text and "Router login" in text
    assert "InvalidMessage" not in text and "InvalidStatus" not in text
    assert "start ComfyUI" not in text


@pytest.mark.parametrize(
    "path,body,call",
    [
        ("/system_stats", [], "system_info"),
        ("/system_stats", {"system": "yes"}, "system_info"),
        ("/system_stats", {"system": {}, "devices": "gpu"}, "system_info"),
        ("/prompt", {"exec_info": "x"}, "queue_length"),
        ("/prompt", {"exec_info": {"queue_remaining": "3"}}, "queue_length"),
        ("/queue", [1, 2], "queue"),
        ("/object_info", "text", "object_info"),
        ("/history/abc", [None], "history_entry"),
    ],
)
@pytest.mark.asyncio
async def test_wrong_json_shapes_are_clear_errors(
    hostile: Hostile, path: str, body: Any, call: str
) -> None:
    hostile.routes[path] = json_reply(body)
    hostile.routes["/system_stats"] = hostile.routes.get("/system_stats", json_reply(GOOD_STATS))
    async with client_for(hostile) as client:
        method = getattr(client, call)
        with pytest.raises(UpstreamDataError) as info:
            await (method("abc") if call == "history_entry" else method())
        assert hostile.url in str(info.value) and "ComfyUI server" in str(info.value)
        if path != "/system_stats":  # the client is still usable afterwards
            assert (await client.system_info()).comfyui_version == "0.3.64"


@pytest.mark.asyncio
async def test_too_old_comfyui_is_wrong_version(hostile: Hostile) -> None:
    hostile.routes["/system_stats"] = json_reply({"system": {"comfyui_version": "0.2.7"}})
    async with client_for(hostile) as client:
        problem, line = await client.diagnose()
    assert problem is ServerProblem.WRONG_VERSION
    assert "0.2.7" in line and "0.3.0 or newer" in line
    text = describe_connection(
        ConnectionChanged(
            server=hostile.url, state=ConnectionState.OFFLINE, detail=line, problem=problem
        )
    )
    assert "update ComfyUI" in text


@pytest.mark.asyncio
async def test_a_server_that_never_answers_is_busy(hostile: Hostile) -> None:
    async def stall(_request: web.Request) -> web.StreamResponse:
        await hostile.release.wait()
        return web.json_response(GOOD_STATS)

    hostile.routes["/system_stats"] = stall
    async with client_for(hostile) as client:
        problem, line = await client.diagnose(timeout=0.3)
    assert problem is ServerProblem.BUSY and "busy" in line and hostile.url in line


@pytest.mark.asyncio
async def test_nothing_listening_is_offline() -> None:
    async with ComfyUIClient("http://127.0.0.1:9", **FAST) as client:
        problem, line = await client.diagnose(timeout=2.0)
    assert problem is ServerProblem.OFFLINE and "nothing answers" in line


# --- /view: sizes, stalls, headers ---------------------------------------------------------

REF = ImageRef(filename="out_00001_.png", subfolder="", type="output")


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    )


@pytest.mark.asyncio
async def test_huge_content_length_is_refused_before_reading(hostile: Hostile) -> None:
    sent = 0

    async def claim(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 2 * 1024**3
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"\0" * 65536)
            sent += 65536
        await hostile.release.wait()
        return response

    hostile.routes["/view"] = claim
    async with client_for(hostile) as client:
        with pytest.raises(UpstreamDataError) as info:
            await client.fetch_image(REF)
    message = str(info.value)
    assert "256 MB limit" in message and "2,147,483,648" in message and hostile.url in message
    assert not info.value.retryable


@pytest.mark.asyncio
async def test_an_endless_2gb_body_is_refused_within_bounded_memory(hostile: Hostile) -> None:
    """No Content-Length, 2 GB streamed in chunks: the read stops at the cap, memory stays
    bounded (measured with tracemalloc), and the server sees the connection dropped."""
    chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024 - 8)
    stopped = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(2048):  # 2 GB if nobody stops reading
                await response.write(chunk)
        except (ConnectionError, OSError):
            stopped.set()
        return response

    hostile.routes["/view"] = endless
    limit = 8 * 1024 * 1024
    async with client_for(hostile, max_image_bytes=limit) as client:
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamDataError, match="8 MB limit"):
                await client.fetch_image(REF)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * limit, f"peak {peak:,} bytes"
    await asyncio.wait_for(stopped.wait(), 10.0)


@pytest.mark.asyncio
async def test_an_image_header_promising_too_many_pixels_stops_the_download(
    hostile: Hostile,
) -> None:
    written = 0

    async def bomb(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(png_header(100_000, 100_000))
        try:
            for _ in range(4096):
                await response.write(b"\0" * 65536)
                written += 65536
        except (ConnectionError, OSError):
            pass
        return response

    hostile.routes["/view"] = bomb
    async with client_for(hostile) as client:
        with pytest.raises(UpstreamDataError) as info:
            await client.fetch_image(REF)
    assert "100000x100000" in str(info.value) and "40 MP" in info.value.user_message
    assert written < 4096 * 65536  # it did not wait for the whole body


@pytest.mark.asyncio
async def test_a_server_that_stalls_mid_body_times_out(hostile: Hostile) -> None:
    async def half(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 100_000
        await response.prepare(request)
        await response.write(png_header(64, 64))
        await hostile.release.wait()
        return response

    hostile.routes["/view"] = half
    async with client_for(hostile, timeout=httpx.Timeout(0.5, connect=2.0)) as client:
        with pytest.raises(PodTimeoutError) as info:
            await client.fetch_image(REF)
    assert hostile.url in str(info.value) and info.value.retryable


@pytest.mark.asyncio
async def test_html_error_page_body_is_read_only_as_an_excerpt(hostile: Hostile) -> None:
    async def big_error(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text=HTML * 100_000, content_type="text/html")

    hostile.routes["/system_stats"] = big_error
    async with client_for(hostile) as client:
        with pytest.raises(Exception) as info:
            await client.system_info()
    assert "HTTP 502" in str(info.value) and len(str(info.value)) < 1000


# --- websocket frames -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_garbage_and_truncated_websocket_frames_are_ignored(hostile: Hostile) -> None:
    hostile.routes["/system_stats"] = json_reply(GOOD_STATS)
    delivered = asyncio.Event()

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str(json.dumps({"type": "status", "data": {"status": {}}}))
        for junk in ('{"type": "executing", "data": {"prompt_id": ', "not json", "[1,2]", "null"):
            await sock.send_str(junk)
        for junk in (b"", b"\x00\x00", struct.pack(">II", 2, 99999) + b"{}", b"\xff" * 40):
            await sock.send_bytes(junk)
        await sock.send_bytes(struct.pack(">II", TEXT, 5000) + b"abc")  # lying length
        await sock.send_str(json.dumps({"type": "feature_flags", "data": {"marker": True}}))
        delivered.set()
        async for msg in sock:
            if msg.type is WSMsgType.CLOSE:
                break
        return sock

    hostile.routes["/ws"] = ws
    async with client_for(hostile) as client:
        assert await client.wait_connected(10.0)
        await asyncio.wait_for(delivered.wait(), 10.0)
        for _ in range(500):  # the listener reads in order: wait for the marker to arrive
            if client.listener.server_flags.get("marker"):
                break
            await asyncio.sleep(0.01)
        assert client.listener.server_flags == {"marker": True}
        assert client.connected  # nothing above dropped the socket
        assert (await client.system_info()).comfyui_version == "0.3.64"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_parse_frame_never_raises_on_garbage(raw: bytes) -> None:
    frame = parse_frame(raw)
    assert frame is None or isinstance(frame, PreviewImageFrame | ProgressTextFrame)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([PREVIEW_IMAGE_WITH_METADATA, TEXT]),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.binary(max_size=64),
)
def test_a_binary_frame_with_a_lying_length_is_ignored_or_bounded(
    event: int, length: int, payload: bytes
) -> None:
    raw = struct.pack(">II", event, length) + payload
    frame = parse_frame(raw)
    if length > len(payload):
        assert frame is None
    if isinstance(frame, PreviewImageFrame):
        assert len(frame.data) <= len(payload)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("ab./\\:.%0C"), max_size=20),
)
def test_file_names_never_escape_the_folder(filename: str, subfolder: str) -> None:
    try:
        ref = sanitize_ref(filename, subfolder)
    except UpstreamDataError as exc:
        assert "ComfyUI" in str(exc) or exc.user_message
        return
    assert "/" not in ref.filename and "\\" not in ref.filename
    assert ref.filename not in ("..", ".")
    parts = ref.subfolder.split("/") if ref.subfolder else []
    assert ".." not in parts and not ref.subfolder.startswith("/")


@pytest.mark.parametrize(
    "filename,subfolder",
    [
        ("../../etc/passwd", ""),
        ("ok.png", "../.."),
        ("ok.png", "/etc"),
        ("ok.png", "C:\\Windows"),
        ("..", ""),
        ("a\\..\\b.png", ""),
    ],
)
def test_path_traversal_names_are_refused(filename: str, subfolder: str) -> None:
    with pytest.raises(UpstreamDataError):
        sanitize_ref(filename, subfolder)


@pytest.mark.asyncio
async def test_a_websocket_message_above_the_cap_closes_with_a_clear_reason(
    hostile: Hostile,
) -> None:
    hostile.routes["/system_stats"] = json_reply(GOOD_STATS)
    sent_big = asyncio.Event()

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str(json.dumps({"type": "status", "data": {"status": {}}}))
        if not sent_big.is_set():
            sent_big.set()
            await sock.send_bytes(b"\0" * (17 * 1024 * 1024))
        async for msg in sock:
            if msg.type is WSMsgType.CLOSE:
                break
        return sock

    hostile.routes["/ws"] = ws
    dropped = asyncio.Event()
    events: list[ConnectionChanged] = []

    def sink(event: Event) -> None:
        if isinstance(event, ConnectionChanged):
            events.append(event)
            if event.state is ConnectionState.RECONNECTING:
                dropped.set()

    async with client_for(hostile, sink=sink) as client:
        await asyncio.wait_for(dropped.wait(), 20.0)
        assert await client.wait_connected(10.0)  # it reconnects; the next socket is fine
    [drop, *_] = [e for e in events if e.state is ConnectionState.RECONNECTING]
    assert "larger than the 16 MB limit" in drop.detail
    assert f"ws://127.0.0.1:{hostile.url.rsplit(':', 1)[1]}" in drop.detail


@pytest.mark.parametrize(
    "stats,words",
    [
        (None, "not a ComfyUI server"),
        ({"system": {"comfyui_version": "0.1.2"}}, "Update ComfyUI"),
    ],
)
@pytest.mark.asyncio
async def test_doctor_uses_the_same_words(hostile: Hostile, stats: Any, words: str) -> None:
    from pod_studio.composition.diagnostics import doctor

    hostile.routes["/system_stats"] = html() if stats is None else json_reply(stats)
    hostile.routes["/prompt"] = json_reply({"exec_info": {"queue_remaining": 0}})
    report = await doctor(hostile.url)
    assert not report.ok and words in report.text and hostile.url in report.text


@pytest.mark.asyncio
async def test_doctor_refuses_a_url_with_a_password_without_repeating_it() -> None:
    from pod_studio.composition.diagnostics import doctor

    report = await doctor("http://admin:pw-secret-3@127.0.0.1:8188")
    assert not report.ok and "user name or password" in report.text
    assert "pw-secret-3" not in report.text
