"""ComfyUIClient edge cases with ``httpx.MockTransport`` (no websocket: the client polls)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pod_studio.adapters.comfyui.client import ComfyUIClient, probe_server
from pod_studio.adapters.comfyui.names import safe_local_name, sanitize_ref
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    JobInterruptedError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.errors import TimeoutError as PodTimeoutError
from pod_studio.domain.models import ImageRef
from tests.adapters.test_comfyui_client import FAST, PNG_MAGIC, Updates, default_graph

pytestmark = pytest.mark.timeout(30)

PNG = PNG_MAGIC + b"fake-png-body"
URL = "http://comfy.test:8188"


class FakeComfy:
    """A scripted ComfyUI for MockTransport: one prompt, a fixed history entry."""

    def __init__(self, outputs: dict[str, Any], *, status: dict[str, Any] | None = None) -> None:
        self.outputs = outputs
        self.status = status or {"status_str": "success", "completed": True, "messages": []}
        self.prompt_id = ""
        self.requests: list[httpx.Request] = []
        self.post_prompt: Callable[[dict[str, Any]], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/prompt":
            body = json.loads(request.content)
            self.prompt_id = body["prompt_id"]
            if self.post_prompt is not None:
                return self.post_prompt(body)
            return httpx.Response(
                200, json={"prompt_id": self.prompt_id, "number": 0, "node_errors": {}}
            )
        if path.startswith("/history/"):
            pid = path.rsplit("/", 1)[1]
            if pid != self.prompt_id:
                return httpx.Response(200, json={})
            entry = {
                "prompt": [0, pid, {}, {}, ["9"]],
                "outputs": self.outputs,
                "status": self.status,
            }
            return httpx.Response(200, json={pid: entry})
        if path == "/queue":
            return httpx.Response(200, json={"queue_running": [], "queue_pending": []})
        if path == "/view":
            return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
        return httpx.Response(404)

    def views(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/view"]


def make_client(handler: Callable[[httpx.Request], httpx.Response]) -> ComfyUIClient:
    return ComfyUIClient(URL, transport=httpx.MockTransport(handler), **FAST)


def images(*items: tuple[str, str, str]) -> dict[str, Any]:
    return {"9": {"images": [{"filename": f, "subfolder": s, "type": t} for f, s, t in items]}}


# --- file names ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_malicious_filename_is_rejected_and_never_fetched() -> None:
    fake = FakeComfy(images(("../../etc/passwd", "", "output")))
    client = make_client(fake)
    try:
        with pytest.raises(UpstreamDataError, match="unsafe output name") as info:
            await client.run(default_graph(), prompt_id="p1", on_update=Updates())
        assert info.value.retryable is False
    finally:
        await client.aclose()
    assert fake.views() == []


@pytest.mark.asyncio
async def test_unsafe_entries_are_skipped_when_safe_ones_exist() -> None:
    fake = FakeComfy(
        images(
            ("ok_00001_.png", "pod_studio/./batch", "output"),
            ("x.png", "../..", "output"),
            ("y.png", "/abs", "output"),
            ("z\x00.png", "", "output"),
        )
    )
    client = make_client(fake)
    try:
        result = await client.run(default_graph(), prompt_id="p2", on_update=Updates())
    finally:
        await client.aclose()
    assert [(r.filename, r.subfolder) for r, _ in result.images] == [
        ("ok_00001_.png", "pod_studio/batch")
    ]
    assert result.images[0][1] == PNG
    (view,) = fake.views()
    assert dict(view.url.params) == {
        "filename": "ok_00001_.png",
        "subfolder": "pod_studio/batch",
        "type": "output",
    }


@pytest.mark.parametrize(
    ("filename", "subfolder", "kind"),
    [
        ("../x.png", "", "output"),
        ("a/b.png", "", "output"),
        ("a\\b.png", "", "output"),
        ("..", "", "output"),
        ("C:evil.png", "", "output"),
        ("x.png", "a/../../b", "output"),
        ("x.png", "C:\\Windows", "output"),
        ("x.png", "\\\\server\\share", "output"),
        ("x.png", "", "../output"),
        ("", "", "output"),
        ("bad\x01.png", "", "output"),
    ],
)
def test_sanitize_ref_rejects(filename: str, subfolder: str, kind: str) -> None:
    with pytest.raises(UpstreamDataError):
        sanitize_ref(filename, subfolder, kind)


def test_sanitize_ref_normalises_subfolders() -> None:
    ref = sanitize_ref("img_00001_.png", "pod_studio\\./a//b", "output", node_id="9")
    assert ref == ImageRef(
        filename="img_00001_.png", subfolder="pod_studio/a/b", type="output", node_id="9"
    )
    assert sanitize_ref("p.png", None, "temp").subfolder == ""


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (ImageRef(filename="img_00001_.png", subfolder="pod_studio"), "pod_studio_img_00001_.png"),
        (ImageRef(filename="a b?.png"), "a_b_.png"),
        (ImageRef(filename="..png"), "png"),
        (ImageRef(filename="con.png"), "_con.png"),
        (ImageRef(filename="x" * 300 + ".png"), "x" * 176 + ".png"),
    ],
)
def test_safe_local_name(ref: ImageRef, expected: str) -> None:
    name = safe_local_name(ref)
    assert name == expected
    assert "/" not in name and "\\" not in name and ".." not in name


# --- POST /prompt replies --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_partial_node_errors_warn_and_run_on() -> None:
    fake = FakeComfy(images(("ok.png", "", "output")))
    graph = default_graph()
    graph["10"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}

    def partial(body: dict[str, Any]) -> httpx.Response:
        errors = {
            "10": {
                "errors": [
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": "images",
                        "extra_info": {"input_name": "images"},
                    }
                ],
                "dependent_outputs": ["10"],
                "class_type": "SaveImage",
            }
        }
        return httpx.Response(
            200, json={"prompt_id": body["prompt_id"], "number": 3, "node_errors": errors}
        )

    fake.post_prompt = partial
    updates = Updates()
    client = make_client(fake)
    try:
        result = await client.run(graph, prompt_id="p3", on_update=updates)
    finally:
        await client.aclose()
    assert result.images
    warning = [u.detail for u in updates.of("submitted") if u.detail.startswith("warning")]
    assert warning == [
        "warning: part of the workflow was rejected: node 10 (SaveImage): images: "
        "Required input is missing"
    ]


@pytest.mark.asyncio
async def test_validation_400_lines_for_recorded_errors() -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            "1": {
                "errors": [
                    {
                        "type": "value_bigger_than_max",
                        "message": "Value 999999 bigger than max of 16384",
                        "details": "width",
                        "extra_info": {"input_name": "width", "received_value": 999999},
                    },
                    {
                        "type": "invalid_input_type",
                        "message": "Failed to convert an input value to a INT value",
                        "details": "height, wide, invalid literal for int() with base 10: 'wide'",
                        "extra_info": {
                            "input_name": "height",
                            "exception_message": "invalid literal for int() with base 10: 'wide'",
                        },
                    },
                ],
                "dependent_outputs": ["2"],
                "class_type": "EmptyImage",
            },
            "2": {
                "errors": [
                    {
                        "type": "exception_during_validation",
                        "message": "Exception when validating node",
                        "details": "'77'",
                        "extra_info": {"exception_type": "KeyError", "traceback": ["x"]},
                    }
                ],
                "dependent_outputs": ["2"],
                "class_type": "SaveImage",
            },
        },
    }
    fake = FakeComfy({})
    fake.post_prompt = lambda _body: httpx.Response(400, json=body)
    client = make_client(fake)
    try:
        with pytest.raises(ValidationError) as info:
            await client.run(default_graph(), prompt_id="p4", on_update=Updates())
    finally:
        await client.aclose()
    assert info.value.details == [
        "node 1 (EmptyImage): width: Value 999999 bigger than max of 16384",
        "node 1 (EmptyImage): height: Failed to convert an input value to a INT value "
        "(invalid literal for int() with base 10: 'wide')",
        "node 2 (SaveImage): Exception when validating node: '77'",
    ]
    assert "Prompt outputs failed validation" in info.value.message


@pytest.mark.asyncio
async def test_invalid_prompt_without_node_errors_uses_top_details() -> None:
    body = {
        "error": {
            "type": "invalid_prompt",
            "message": "Cannot execute because node NoSuchNode does not exist.",
            "details": "Node ID '#1'",
            "extra_info": {},
        },
        "node_errors": {},
    }
    fake = FakeComfy({})
    fake.post_prompt = lambda _body: httpx.Response(400, json=body)
    client = make_client(fake)
    try:
        with pytest.raises(ValidationError) as info:
            await client.run(default_graph(), prompt_id="p5", on_update=Updates())
    finally:
        await client.aclose()
    assert "NoSuchNode does not exist" in info.value.message
    assert info.value.details == ["Node ID '#1'"]


@pytest.mark.asyncio
async def test_500_trouble_page_is_a_retryable_service_error() -> None:
    fake = FakeComfy({})
    fake.post_prompt = lambda _body: httpx.Response(
        500, text="500 Internal Server Error\n\nServer got itself in trouble"
    )
    client = make_client(fake)
    try:
        with pytest.raises(ServiceError) as info:
            await client.run(default_graph(), prompt_id="p6", on_update=Updates())
    finally:
        await client.aclose()
    assert info.value.retryable is True and info.value.status_code == 500
    assert "Server got itself in trouble" in info.value.message


@pytest.mark.asyncio
async def test_history_error_and_interrupt_are_reported_when_polling() -> None:
    error_data = {
        "prompt_id": "p7",
        "node_id": "3",
        "node_type": "KSampler",
        "exception_message": "boom\n" + "x" * 5000,
        "exception_type": "RuntimeError",
        "traceback": ["..."],
        "current_inputs": {"seed": ["SECRET-TENSOR"]},
    }
    fake = FakeComfy(
        {},
        status={
            "status_str": "error",
            "completed": False,
            "messages": [["execution_start", {}], ["execution_error", error_data]],
        },
    )
    client = make_client(fake)
    try:
        from pod_studio.domain.errors import ExecutionError

        with pytest.raises(ExecutionError) as info:
            await client.run(default_graph(), prompt_id="p7", on_update=Updates())
        assert info.value.node_id == "3" and info.value.node_type == "KSampler"
        assert len(info.value.exception_message) <= 2000
        assert "SECRET-TENSOR" not in repr(vars(info.value))
        fake.status = {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_interrupted", {"node_id": "3", "node_type": "KSampler"}]],
        }
        with pytest.raises(JobInterruptedError, match="node 3"):
            await client.run(default_graph(), prompt_id="p8", on_update=Updates())
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_finished_without_images_is_an_error_not_a_success() -> None:
    fake = FakeComfy({})
    client = make_client(fake)
    try:
        with pytest.raises(UpstreamDataError, match="no images"):
            await client.run(default_graph(), prompt_id="p9", on_update=Updates())
    finally:
        await client.aclose()


# --- not ComfyUI / unreachable ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_html_server_is_not_comfyui() -> None:
    def html(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            text="<html><body>Router login</body></html>",
            headers={"content-type": "text/html"},
        )

    client = make_client(html)
    try:
        with pytest.raises(UpstreamDataError, match="is this a ComfyUI server"):
            await client.system_info()
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("response", "error", "needle"),
    [
        (httpx.Response(404), APIError, "not a ComfyUI server?"),
        (httpx.Response(200, json={"hello": "world"}), UpstreamDataError, "no 'system' object"),
        (httpx.Response(200, json=[1, 2]), UpstreamDataError, "is this a ComfyUI server"),
        (httpx.Response(403), AuthenticationError, "refused access"),
        (httpx.Response(502, text="bad gateway"), ServiceError, "HTTP 502"),
    ],
)
@pytest.mark.asyncio
async def test_system_info_errors(response: httpx.Response, error: type, needle: str) -> None:
    client = make_client(lambda _request: response)
    try:
        with pytest.raises(error, match=needle) as info:
            await client.system_info()
        assert info.value.service == "comfyui"
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_timeout_maps_to_retryable_timeout_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = make_client(slow)
    try:
        with pytest.raises(PodTimeoutError) as info:
            await client.system_info()
        assert info.value.retryable is True
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_unreachable_url_is_a_helpful_service_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ServiceError) as info:
        await probe_server(url, timeout=2.0)
    assert f"cannot reach ComfyUI at {url}: is it running?" in info.value.message
    assert info.value.user_message == f"Cannot reach ComfyUI at {url}: is it running?"
    assert info.value.retryable is True


@pytest.mark.asyncio
async def test_probe_server_reads_system_stats_and_queue() -> None:
    from pod_studio.sandbox.comfyui import ComfyUISandbox

    async with ComfyUISandbox(seconds_per_job=0.1) as sb:
        info = await probe_server(sb.url)
    assert info.url == sb.url and info.comfyui_version and info.queue_remaining == 0
    assert "Sandbox GPU" in info.device_summary


@pytest.mark.asyncio
async def test_429_from_a_proxy_is_a_rate_limit_error_with_the_servers_hint() -> None:
    from pod_studio.domain.errors import RateLimitError

    client = make_client(
        lambda req: httpx.Response(429, text="slow down", headers={"Retry-After": "7"})
    )
    try:
        with pytest.raises(RateLimitError) as info:
            await client.system_info()
    finally:
        await client.aclose()
    assert info.value.retry_after == 7.0
    assert info.value.retryable
