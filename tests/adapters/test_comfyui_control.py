"""Server control calls of ComfyUIClient (free memory, interrupt all, clear the queue, gauges)
against the sandbox ComfyUI on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.domain.errors import JobInterruptedError
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.adapters.test_comfyui_client import FAST, Updates, default_graph, new_id

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ComfyUISandbox]:
    async with ComfyUISandbox(seconds_per_job=0.1) as sb:
        yield sb


@pytest_asyncio.fixture
async def client(sandbox: ComfyUISandbox) -> AsyncIterator[ComfyUIClient]:
    c = ComfyUIClient(sandbox.url, **FAST)
    await c.start()
    assert await c.wait_connected(10)
    try:
        yield c
    finally:
        await c.aclose()


async def post_prompt(url: str, seed: int) -> str:
    """Queue a prompt as another ComfyUI client would (not followed by our client)."""
    prompt_id = new_id()
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/prompt", json={"prompt": default_graph(seed=seed), "prompt_id": prompt_id}
        )
    assert response.status_code == 200, response.text
    return prompt_id


async def until_queue(client: ComfyUIClient, running: int, pending: int) -> None:
    """Read /queue until it shows ``running`` and ``pending`` prompts (within 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        gauges = await client.gauges()
        if (gauges.queue_running, gauges.queue_pending) == (running, pending):
            return
    raise AssertionError(f"queue never showed {running} running, {pending} pending")


@pytest.mark.asyncio
async def test_gauges_read_queue_and_vram(client: ComfyUIClient, sandbox: ComfyUISandbox) -> None:
    idle = await client.gauges()
    assert idle.url == sandbox.url
    assert (idle.queue_running, idle.queue_pending, idle.queue_length) == (0, 0, 0)
    assert "Sandbox GPU" in idle.device
    assert idle.vram_total == sandbox.vram_total
    assert idle.vram_free is not None and 0 < idle.vram_free < sandbox.vram_total
    fraction = idle.vram_used_fraction
    assert fraction is not None and 0 < fraction < 1

    sandbox.pause()
    await post_prompt(sandbox.url, 1)
    await post_prompt(sandbox.url, 2)
    await until_queue(client, running=1, pending=1)
    busy = await client.gauges()
    assert busy.queue_length == 2
    assert busy.vram_free is not None and busy.vram_free < idle.vram_free
    sandbox.resume()


@pytest.mark.asyncio
async def test_free_memory_unloads_models_and_empties_the_cache(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    graph = default_graph(seed=9)
    await client.run(graph, prompt_id=new_id(), on_update=Updates())
    loaded = await client.gauges()
    assert sandbox.models_loaded

    await client.free_memory()

    assert sandbox.free_requests == [{"unload_models": True, "free_memory": True}]
    assert loaded.vram_free is not None
    deadline = time.monotonic() + 10  # ComfyUI frees between prompts, after answering
    while (await client.gauges()).vram_free == loaded.vram_free:
        assert time.monotonic() < deadline, "VRAM was never freed"
    freed = await client.gauges()
    assert freed.vram_free is not None and freed.vram_free > loaded.vram_free
    assert not sandbox.models_loaded
    again = await client.run(graph, prompt_id=new_id(), on_update=Updates())
    assert again.cached is False  # free_memory also drops the execution cache


@pytest.mark.asyncio
async def test_free_memory_flags_are_sent_as_asked(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    await client.free_memory(unload_models=True, free_memory=False)
    assert sandbox.free_requests == [{"unload_models": True, "free_memory": False}]


@pytest.mark.asyncio
async def test_interrupt_all_stops_the_running_prompt(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    sandbox.pause()
    task = asyncio.create_task(client.run(default_graph(), prompt_id=new_id(), on_update=Updates()))
    await until_queue(client, running=1, pending=0)

    await client.interrupt_all()
    sandbox.resume()

    with pytest.raises(JobInterruptedError):
        await task


@pytest.mark.asyncio
async def test_clear_queue_drops_pending_prompts_only(
    client: ComfyUIClient, sandbox: ComfyUISandbox
) -> None:
    sandbox.pause()
    running = await post_prompt(sandbox.url, 1)
    pending = await post_prompt(sandbox.url, 2)
    await until_queue(client, running=1, pending=1)

    await client.clear_queue()

    assert await client.queue() == ([running], [])
    sandbox.resume()
    await until_queue(client, running=0, pending=0)
    assert await client.history_entry(running) is not None
    assert await client.history_entry(pending) is None
    assert pending not in sandbox.executed_prompt_ids
