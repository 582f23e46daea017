"""With the websocket up, the client follows prompts from ComfyUI's messages alone: no
``/history`` or ``/queue`` polls, however long the job and however many prompts wait in the
queue (a queued prompt gets no messages of its own). A lost end-of-run message is caught by
the ``status`` broadcast of an empty queue, with one check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.domain.models import ConnectionState
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.adapters.test_comfyui_client import FAST, Events, Updates, default_graph, new_id

pytestmark = pytest.mark.timeout(60)


@pytest_asyncio.fixture
async def slow_sandbox() -> AsyncIterator[ComfyUISandbox]:
    # each job runs 2 s: four times the client's longest poll interval (FAST: 0.5 s)
    async with ComfyUISandbox(seconds_per_job=2.0, steps=4) as sb:
        yield sb


@pytest_asyncio.fixture
async def client(slow_sandbox: ComfyUISandbox) -> AsyncIterator[ComfyUIClient]:
    events = Events()
    c = ComfyUIClient(slow_sandbox.url, sink=events, **FAST)
    await c.start()
    await events.wait_state(ConnectionState.CONNECTED)
    try:
        yield c
    finally:
        await c.aclose()


def polls(sandbox: ComfyUISandbox) -> int:
    return sum(
        n
        for key, n in sandbox.request_counts.items()
        if key.startswith(("GET /history", "GET /queue"))
    )


@pytest.mark.asyncio
async def test_long_queued_jobs_make_no_polls_with_the_socket_up(
    slow_sandbox: ComfyUISandbox, client: ComfyUIClient
) -> None:
    runs = [
        client.run(default_graph(seed=n), prompt_id=new_id(), on_update=Updates()) for n in range(3)
    ]
    results = await asyncio.gather(*runs)
    assert all(r.images for r in results)
    assert polls(slow_sandbox) == 0, dict(slow_sandbox.request_counts)


@pytest.mark.asyncio
async def test_a_lost_end_of_run_is_caught_when_the_queue_empties(
    slow_sandbox: ComfyUISandbox, client: ComfyUIClient
) -> None:
    slow_sandbox.drop_messages = {"executing", "execution_success", "executed"}
    result = await client.run(default_graph(), prompt_id=new_id(), on_update=Updates())
    assert result.images
    assert 1 <= polls(slow_sandbox) <= 3, dict(slow_sandbox.request_counts)


@pytest.mark.asyncio
async def test_cancelling_a_whole_batch_deletes_the_queued_prompts_before_the_running_one_stops(
    slow_sandbox: ComfyUISandbox, client: ComfyUIClient
) -> None:
    updates = [Updates() for _ in range(4)]
    tasks = [
        asyncio.create_task(
            client.run(default_graph(seed=40 + n), prompt_id=new_id(), on_update=updates[n])
        )
        for n in range(4)
    ]
    for u in updates:
        await u.wait("submitted")
    first = [asyncio.create_task(u.wait("started")) for u in updates]
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    for waiter in first:
        waiter.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    running = slow_sandbox.executed_prompt_ids
    # only the prompt that was running when the batch stopped ever ran: the three queued
    # ones went in one delete, before the interrupt could let the next one start
    assert len(running) == 1, running
    assert slow_sandbox.request_counts["POST /queue"] == 1
    assert slow_sandbox.request_counts["POST /interrupt"] == 1
