"""ComfyUIClient against the sandbox ComfyUI server (real HTTP and websocket on 127.0.0.1).

Also holds the helpers the other ``test_comfyui_*`` modules import.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from pod_studio.adapters.comfyui.client import ComfyUIClient, default_workflow_text
from pod_studio.domain.errors import ExecutionError, JobInterruptedError, ValidationError
from pod_studio.domain.events import ConnectionChanged, Event
from pod_studio.domain.models import ConnectionState, JobSpec
from pod_studio.domain.ports import ImageGenerator, RunUpdate
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.sandbox.comfyui import ComfyUISandbox

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FAST: dict[str, Any] = {
    "poll_initial": 0.05,
    "poll_factor": 1.5,
    "poll_max": 0.5,
    "reconnect_initial": 0.02,
    "reconnect_max": 0.2,
}


def new_id() -> str:
    return str(uuid.uuid4())


def default_graph(
    prompt: str = "a red fox, flat vector", seed: int = 1, **job: Any
) -> dict[str, Any]:
    template = WorkflowTemplate.from_json_text(default_workflow_text())
    graph = template.build(JobSpec(job_id="j", prompt=prompt, seed=seed, **job))
    graph["5"]["inputs"]["width"] = 64
    graph["5"]["inputs"]["height"] = 64
    return graph


class Updates:
    """An ``on_update`` callback that records updates and lets a test await a kind."""

    def __init__(self) -> None:
        self.items: list[RunUpdate] = []
        self._events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def __call__(self, update: RunUpdate) -> None:
        self.items.append(update)
        self._events[update.kind].set()

    async def wait(self, kind: str, within: float = 10.0) -> None:
        await asyncio.wait_for(self._events[kind].wait(), within)

    def kinds(self) -> list[str]:
        return [u.kind for u in self.items]

    def of(self, kind: str) -> list[RunUpdate]:
        return [u for u in self.items if u.kind == kind]


class Events:
    """An ``EventSink`` that records events and lets a test await a connection state."""

    def __init__(self) -> None:
        self.items: list[Event] = []
        self._states: dict[ConnectionState, asyncio.Event] = defaultdict(asyncio.Event)

    def __call__(self, event: Event) -> None:
        self.items.append(event)
        if isinstance(event, ConnectionChanged):
            self._states[event.state].set()

    def connection(self) -> list[ConnectionChanged]:
        return [e for e in self.items if isinstance(e, ConnectionChanged)]

    async def wait_state(self, state: ConnectionState, within: float = 10.0) -> None:
        await asyncio.wait_for(self._states[state].wait(), within)

    def reset(self, state: ConnectionState) -> None:
        self._states[state].clear()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ComfyUISandbox]:
    async with ComfyUISandbox(seconds_per_job=0.1) as sb:
        yield sb


@pytest.fixture
def events() -> Events:
    return Events()


@pytest_asyncio.fixture
async def client(sandbox: ComfyUISandbox, events: Events) -> AsyncIterator[ComfyUIClient]:
    c = ComfyUIClient(sandbox.url, sink=events, **FAST)
    await c.start()
    await events.wait_state(ConnectionState.CONNECTED)
    try:
        yield c
    finally:
        await c.aclose()


pytestmark = pytest.mark.timeout(60)


# --- a normal run ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_implements_the_port(client: ComfyUIClient) -> None:
    assert isinstance(client, ImageGenerator)


@pytest.mark.asyncio
async def test_connect_reports_device_and_vram(
    client: ComfyUIClient, events: Events, sandbox: ComfyUISandbox
) -> None:
    states = [e.state for e in events.connection()]
    assert states[0] == ConnectionState.CONNECTING
    connected = [e for e in events.connection() if e.state == ConnectionState.CONNECTED][0]
    assert "Sandbox GPU (simulated)" in connected.device
    assert connected.vram_free is not None and connected.vram_free > 0
    assert connected.comfyui_version
    assert client.listener.server_flags.get("supports_preview_metadata") is True
    info = await client.system_info()
    assert info.url == sandbox.url and "Sandbox GPU" in info.devices[0].name
    assert "pod-demo-xl.safetensors" in await client.checkpoints()
    assert await client.queue_length() == 0
    assert "KSampler" in await client.object_info()


@pytest.mark.asyncio
async def test_normal_run_returns_png_bytes_with_progress_and_previews(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    updates = Updates()
    pid = new_id()
    result = await client.run(default_graph(), prompt_id=pid, on_update=updates)
    assert result.prompt_id == pid and result.server == sandbox.url
    assert len(result.images) == 1
    ref, data = result.images[0]
    assert data.startswith(PNG_MAGIC)
    assert ref.type == "output" and ref.subfolder == "pod_studio" and ref.node_id == "9"
    assert result.cached is False and result.seconds > 0
    kinds = updates.kinds()
    assert kinds[0] == "submitted"
    for kind in ("started", "executing", "progress", "preview"):
        assert kind in kinds, kind
    assert "resubmitted" not in kinds
    assert {u.node_class for u in updates.of("executing")} >= {"KSampler", "SaveImage"}
    progress = updates.of("progress")[-1]
    assert progress.node == "3" and progress.max > 0 and progress.value <= progress.max
    preview = updates.of("preview")[0]
    assert preview.mime.startswith("image/") and len(preview.data) > 0
    assert all(u.prompt_id == pid for u in updates.items)
    assert sandbox.executed_prompt_ids == [pid]


@pytest.mark.asyncio
async def test_cached_run_still_returns_images(client: ComfyUIClient) -> None:
    graph = default_graph(seed=5)
    first = await client.run(graph, prompt_id=new_id(), on_update=Updates())
    updates = Updates()
    second = await client.run(graph, prompt_id=new_id(), on_update=updates)
    assert second.cached is True
    assert "cached" in updates.kinds()
    assert [r.filename for r, _ in second.images] == [r.filename for r, _ in first.images]
    assert second.images[0][1] == first.images[0][1]


# --- failures --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bad_sampler_is_a_validation_error_with_node_detail(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    graph = default_graph()
    graph["3"]["inputs"]["sampler_name"] = "nope"
    with pytest.raises(ValidationError) as info:
        await client.run(graph, prompt_id=new_id(), on_update=Updates())
    err = info.value
    assert "Prompt outputs failed validation" in err.message
    assert any(
        line.startswith("node 3 (KSampler): sampler_name: 'nope' not in") for line in err.details
    ), err.details
    assert err.retryable is False
    assert sandbox.executed_prompt_ids == []


@pytest.mark.asyncio
async def test_runtime_error_names_node_and_class(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    sandbox.error_next_prompt("KSampler", "CUDA out of memory\nsecond line")
    with pytest.raises(ExecutionError) as info:
        await client.run(default_graph(), prompt_id=new_id(), on_update=Updates())
    err = info.value
    assert err.node_id == "3" and err.node_type == "KSampler"
    assert "CUDA out of memory" in err.exception_message
    assert "current_inputs" not in str(err) and "tensor" not in err.message


@pytest.mark.asyncio
async def test_cancelling_the_running_task_interrupts_it_and_the_next_completes(
    sandbox: ComfyUISandbox, client: ComfyUIClient
) -> None:
    sandbox.seconds_per_job = 3.0
    first_updates, second_updates = Updates(), Updates()
    first_id, second_id = new_id(), new_id()
    first = asyncio.create_task(
        client.run(default_graph(seed=11), prompt_id=first_id, on_update=first_updates)
    )
    await first_updates.wait("progress")
    sandbox.seconds_per_job = 0.1
    second = asyncio.create_task(
        client.run(default_graph(seed=12), prompt_id=second_id, on_update=second_updates)
    )
    await second_updates.wait("submitted")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    result = await asyncio.wait_for(second, 20)
    assert result.prompt_id == second_id and result.images
    assert sandbox.request_counts["POST /interrupt"] == 1
    history = await client.history_entry(first_id)
    assert history is not None and history["status"]["status_str"] == "error"
    assert history["status"]["messages"][-1][0] == "execution_interrupted"


@pytest.mark.asyncio
async def test_cancel_of_a_queued_prompt_removes_it_from_the_queue(
    sandbox: ComfyUISandbox, client: ComfyUIClient
) -> None:
    sandbox.pause()
    a_updates, b_updates = Updates(), Updates()
    a_id, b_id = new_id(), new_id()
    a = asyncio.create_task(client.run(default_graph(seed=21), prompt_id=a_id, on_update=a_updates))
    await a_updates.wait("submitted")
    b = asyncio.create_task(client.run(default_graph(seed=22), prompt_id=b_id, on_update=b_updates))
    await b_updates.wait("submitted")
    running, pending = await client.queue()
    assert b_id in pending
    await client.cancel(b_id)
    running, pending = await client.queue()
    assert b_id not in pending and b_id not in running
    with pytest.raises(JobInterruptedError):
        await asyncio.wait_for(b, 10)
    assert sandbox.request_counts["POST /interrupt"] == 0
    sandbox.resume()
    result = await asyncio.wait_for(a, 20)
    assert result.images
    assert b_id not in sandbox.executed_prompt_ids
    assert await client.history_entry(b_id) is None


# --- connection trouble ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_server_restart_mid_job_resubmits_and_finishes(
    sandbox: ComfyUISandbox, client: ComfyUIClient, events: Events
) -> None:
    sandbox.seconds_per_job = 1.0
    updates = Updates()
    pid = new_id()
    task = asyncio.create_task(client.run(default_graph(seed=31), prompt_id=pid, on_update=updates))
    await updates.wait("progress")
    events.reset(ConnectionState.CONNECTED)
    sandbox.seconds_per_job = 0.1
    await sandbox.restart(downtime=0.3)
    result = await asyncio.wait_for(task, 30)
    assert result.images and result.images[0][1].startswith(PNG_MAGIC)
    resubmitted = updates.of("resubmitted")
    assert len(resubmitted) == 1
    assert result.prompt_id == resubmitted[0].prompt_id != pid
    assert pid in resubmitted[0].detail
    assert "reconnecting" in updates.kinds()
    assert sandbox.executed_prompt_ids[-1] == result.prompt_id
    reconnecting = [e for e in events.connection() if e.state == ConnectionState.RECONNECTING]
    assert reconnecting and all(e.next_attempt_at is not None for e in reconnecting)
    await events.wait_state(ConnectionState.CONNECTED)


@pytest.mark.asyncio
async def test_websocket_drop_mid_job_still_completes(
    sandbox: ComfyUISandbox, client: ComfyUIClient, events: Events
) -> None:
    sandbox.seconds_per_job = 0.6
    updates = Updates()
    pid = new_id()
    task = asyncio.create_task(client.run(default_graph(seed=41), prompt_id=pid, on_update=updates))
    await updates.wait("progress")
    opened = client.listener.connections_opened
    events.reset(ConnectionState.CONNECTED)
    await sandbox.drop_websockets()
    result = await asyncio.wait_for(task, 30)
    assert result.prompt_id == pid and result.images  # not resubmitted: it survived
    assert "resubmitted" not in updates.kinds()
    assert "reconnecting" in updates.kinds()
    assert sandbox.executed_prompt_ids == [pid]
    await events.wait_state(ConnectionState.CONNECTED)
    assert client.listener.connections_opened == opened + 1
    # The new socket gets messages (the old one with the same clientId was closed first).
    again = Updates()
    await client.run(default_graph(seed=42), prompt_id=new_id(), on_update=again)
    assert "executing" in again.kinds() and "progress" in again.kinds()


@pytest.mark.asyncio
async def test_run_without_websocket_polls_history(sandbox: ComfyUISandbox) -> None:
    c = ComfyUIClient(sandbox.url, **FAST)  # never started: no websocket at all
    try:
        updates = Updates()
        pid = new_id()
        result = await c.run(default_graph(seed=51), prompt_id=pid, on_update=updates)
        assert result.prompt_id == pid and result.images[0][1].startswith(PNG_MAGIC)
        assert updates.kinds() == ["submitted", "finished"]
        assert any(key.startswith("GET /history/") for key in sandbox.request_counts)
    finally:
        await c.aclose()


@pytest.mark.asyncio
async def test_every_request_goes_through_the_guard(sandbox: ComfyUISandbox) -> None:
    calls: list[tuple[str, bool]] = []

    class RecordingGuard:
        async def call(
            self,
            operation: str,
            fn: Any,
            *,
            idempotent: bool = True,
            cost: float = 1.0,
            bucket: str | None = None,
        ) -> Any:
            calls.append((operation, idempotent))
            return await fn()

    c = ComfyUIClient(sandbox.url, guard=RecordingGuard(), **FAST)
    try:
        await c.run(default_graph(seed=61), prompt_id=new_id(), on_update=Updates())
    finally:
        await c.aclose()
    total_requests = sum(sandbox.request_counts.values())
    assert len(calls) == total_requests
    # the submit is retry-safe: a retry first asks whether the earlier POST landed
    assert ("submit", True) in calls and ("view", True) in calls


def _fast_guard() -> Any:
    from pod_studio.services.resilience import ResilienceHub

    hub = ResilienceHub(
        settings={
            "policies": {"comfyui": {"initial_delay": 0.01, "max_delay": 0.02, "jitter": 0.0}}
        }
    )
    return hub.guard("comfyui")


@pytest.mark.asyncio
async def test_a_failed_submit_is_retried_and_runs_once(sandbox: ComfyUISandbox) -> None:
    sandbox.fail_next(2, 503, match="/prompt")
    c = ComfyUIClient(sandbox.url, guard=_fast_guard(), **FAST)
    try:
        result = await c.run(default_graph(seed=71), prompt_id=new_id(), on_update=Updates())
    finally:
        await c.aclose()
    assert result.images and sandbox.request_counts["POST /prompt"] == 3
    assert sandbox.executed_prompt_ids.count(result.prompt_id) == 1


class _LoseFirstSubmitReply(httpx.AsyncBaseTransport):
    """Delivers the first POST /prompt to the server, then loses the reply (a read timeout)."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/prompt" and not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx.ReadTimeout("reply lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.asyncio
async def test_a_submit_whose_reply_was_lost_is_not_sent_again(sandbox: ComfyUISandbox) -> None:
    transport = _LoseFirstSubmitReply()
    c = ComfyUIClient(sandbox.url, guard=_fast_guard(), transport=transport, **FAST)
    try:
        result = await c.run(default_graph(seed=72), prompt_id=new_id(), on_update=Updates())
    finally:
        await c.aclose()
    assert transport.lost == 1 and result.images
    assert sandbox.request_counts["POST /prompt"] == 1  # the retry found it instead of resending
    assert sandbox.executed_prompt_ids.count(result.prompt_id) == 1
