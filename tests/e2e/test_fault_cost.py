"""E2E: what keeps faults cheap, on the shipped engine over the sandbox ComfyUI: a hung GET
is hedged, a hung submit or a slow download does not hold the GPU back, a preflight that
cannot be read does not stop the work, and with the websocket refused the server is kept
further ahead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.composition.core import Core
from pod_studio.domain.events import ImageReady
from pod_studio.domain.models import GenerationRequest
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.adapters.test_comfyui_client import FAST, PNG_MAGIC, Updates, default_graph, new_id
from tests.e2e.orchestrator_kit import Recorder, started_core

pytestmark = pytest.mark.timeout(60)


def _ready(ev: Recorder) -> set[str]:
    return {e.job_id for e in ev.of(ImageReady)}  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_hung_download_gets_a_twin_instead_of_waiting_for_the_read_timeout() -> None:
    async with ComfyUISandbox(seconds_per_job=0.05) as sb:
        sb.hang_seconds = 120.0
        # a read timeout far beyond the test's own: only the hedge can finish the run
        client = ComfyUIClient(sb.url, timeout=httpx.Timeout(300.0, connect=5.0), **FAST)
        async with client:
            assert await client.wait_connected(5)
            sb.hang_next(1, match="/view")
            result = await client.run(
                default_graph(seed=3), prompt_id=new_id(), on_update=Updates()
            )
        assert result.images[0][1].startswith(PNG_MAGIC)
        assert sb.request_counts["GET /view"] == 2  # the hung one and its twin


@asynccontextmanager
async def queue_running(core: Core) -> AsyncIterator[None]:
    """The queue loop the app runs, stopped at the end of the block."""
    task = asyncio.create_task(core.run_queue())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _enqueue(core: Core, n: int) -> Sequence[Any]:
    return await core.orchestrator.enqueue_generation(
        GenerationRequest(prompts=["a fox"], variations=n, seed=5, width=128, height=128)
    )


@asynccontextmanager
async def one_prompt_at_a_time(
    home: Path, ev: Recorder
) -> AsyncIterator[tuple[ComfyUISandbox, Core]]:
    """A connected engine that keeps one prompt per server, on a sandbox whose hung
    requests stay hung for longer than any test."""
    async with (
        ComfyUISandbox(seconds_per_job=0.05) as sb,
        started_core(home, [sb.url], ev, in_flight_per_server=1) as core,
    ):
        sb.hang_seconds = 120.0
        assert await core.generators[0].wait_connected(5)
        yield sb, core


@pytest.mark.asyncio
async def test_a_hung_submit_lets_the_next_job_run(tmp_path: Path) -> None:
    ev = Recorder()
    async with one_prompt_at_a_time(tmp_path / "home", ev) as (sb, core):
        sb.hang_next(1, match="/prompt")
        ids = await _enqueue(core, 3)
        async with queue_running(core):
            # one job's POST /prompt never gets an answer; the two others still finish
            await ev.until(lambda: len(_ready(ev)) >= 2, within=30)
            assert len(sb.completed_prompt_ids()) == 2
            assert _ready(ev) < {str(i) for i in ids}


@pytest.mark.asyncio
async def test_a_stuck_download_does_not_hold_the_next_prompt_back(tmp_path: Path) -> None:
    ev = Recorder()
    async with one_prompt_at_a_time(tmp_path / "home", ev) as (sb, core):
        sb.hang_next(2, match="/view")  # the first download and its twin both hang
        await _enqueue(core, 3)
        async with queue_running(core):
            await ev.until(lambda: len(_ready(ev)) >= 2, within=30)
            # the server ran every prompt while the first job was still downloading
            assert len(sb.completed_prompt_ids()) == 3


@pytest.mark.asyncio
async def test_an_unreadable_object_info_does_not_stop_the_work(tmp_path: Path) -> None:
    ev = Recorder()
    async with (
        ComfyUISandbox(seconds_per_job=0.05) as sb,
        started_core(tmp_path / "home", [sb.url], ev) as core,
    ):
        sb.fail_next(1000, 500, match="/object_info")
        ids = await _enqueue(core, 2)
        async with queue_running(core):
            await ev.until(lambda: _ready(ev) == {str(i) for i in ids}, within=30)
        assert sb.request_counts["GET /object_info"] >= 1  # it was asked, and never answered


@pytest.mark.asyncio
async def test_with_the_websocket_refused_the_server_is_kept_further_ahead(
    tmp_path: Path,
) -> None:
    ev = Recorder()
    async with ComfyUISandbox(seconds_per_job=0.05) as sb:
        sb.refuse_websocket = True
        async with started_core(tmp_path / "home", [sb.url], ev) as core:
            ids = await _enqueue(core, 16)
            async with queue_running(core):
                await ev.until(lambda: _ready(ev) == {str(i) for i in ids}, within=45)
            assert not core.generators[0].connected
        # completions are seen only when polled: more than the two prompts kept with the
        # socket up wait on the server, so it has the next one when it finishes one
        assert sb.peak_queue > 2
