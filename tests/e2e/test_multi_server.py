"""E2E: two sandbox ComfyUI servers; one dies mid-batch. Its jobs finish on the other, its
breaker shows OPEN, and once it is back it gets work again."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from pod_studio.domain.events import BreakerChanged, ImageReady
from pod_studio.domain.models import GenerationRequest
from pod_studio.domain.orchestration import JobMoved
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.e2e.orchestrator_kit import Recorder, breaker_name, started_core

pytestmark = pytest.mark.timeout(60)


@pytest.mark.asyncio
async def test_dead_server_jobs_move_and_it_gets_work_when_back(tmp_path: Path) -> None:
    ev = Recorder()
    async with (
        ComfyUISandbox(seconds_per_job=0.1) as a,
        ComfyUISandbox(seconds_per_job=0.1) as b,
        started_core(tmp_path / "home", [a.url, b.url], ev) as core,
    ):
        ids = await core.orchestrator.enqueue_generation(
            GenerationRequest(prompts=["a fox"], variations=12, seed=5, width=256, height=256)
        )
        loop = asyncio.create_task(core.run_queue())  # what the app runs
        try:
            await ev.until(lambda: ev.images_by_server[a.url] >= 2)
            down = asyncio.create_task(a.restart(downtime=2.0))  # dead for 2 s, then back
            name = breaker_name(a.url)
            await ev.until(
                lambda: any(
                    isinstance(e, BreakerChanged) and e.name == name and e.new_state == "open"
                    for e in ev.items
                )
            )
            assert core.hub.breakers.get(name).state.value == "open"
            status = {s.url: s for s in core.orchestrator.servers()}
            assert status[a.url].breaker == "open" and not status[a.url].eligible

            done = {str(i) for i in ids}

            def batch_done() -> bool:
                return done <= {e.job_id for e in ev.of(ImageReady)}  # type: ignore[attr-defined]

            await ev.until(batch_done, within=20)
            jobs = [await core.ledger.get_job(i) for i in ids]
            assert all(j is not None and j.state.value == "succeeded" for j in jobs)
            moved = [e for e in ev.of(JobMoved) if e.from_server == a.url]  # type: ignore[attr-defined]
            moved_ids = {e.job_id for e in moved}
            assert moved_ids, "the dead server's running jobs should have been moved"
            for image in await core.store.list_images():
                if image.job_id in moved_ids:
                    assert image.server == b.url  # the dead server's jobs finished on the other
            images = await core.store.list_images()
            assert sorted(im.job_id for im in images) == sorted(ids)  # one image per job

            await down  # a is back: its breaker closes after a probe, and it gets work again
            await ev.until(
                lambda: (
                    core.hub.breakers.get(name).state.value == "closed"
                    or (core.orchestrator.servers()[0].breaker == "closed")
                )
            )
            served_before = ev.images_by_server[a.url]
            more = await core.orchestrator.enqueue_generation(
                GenerationRequest(prompts=["an owl"], variations=8, seed=9, width=256, height=256)
            )
            await ev.until(
                lambda: set(more) <= {e.job_id for e in ev.of(ImageReady)},  # type: ignore[attr-defined]
                within=20,
            )
            assert ev.images_by_server[a.url] > served_before
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
