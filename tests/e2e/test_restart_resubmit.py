"""E2E: the sandbox ComfyUI restarts mid-batch (queue and history wiped): every lost prompt is
resubmitted and no job is left stuck."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pod_studio.domain.events import ImageReady, JobResubmitted
from pod_studio.domain.models import GenerationRequest
from pod_studio.sandbox.comfyui import ComfyUISandbox
from tests.e2e.orchestrator_kit import Recorder, started_core

pytestmark = pytest.mark.timeout(60)


@pytest.mark.asyncio
async def test_restart_mid_batch_resubmits_lost_prompts(tmp_path: Path) -> None:
    async with ComfyUISandbox(seconds_per_job=0.1) as sandbox:
        events = Recorder()
        async with started_core(tmp_path / "home", [sandbox.url], events) as core:
            request = GenerationRequest(
                prompts=["a fox", "an owl"], variations=5, seed=1, width=256, height=256
            )
            ids = await core.orchestrator.enqueue_generation(request)
            runner = asyncio.create_task(core.orchestrator.run_until_idle())
            await events.until(lambda: len(events.of(ImageReady)) >= 3)
            running, pending = await core.generators[0].queue()
            lost = set(running) | set(pending)
            assert lost, "the restart should catch prompts in flight"
            before = len(sandbox.executed_prompt_ids)
            await sandbox.restart(downtime=0.3)  # queue and history are gone
            summary = await asyncio.wait_for(runner, 45)

            assert summary.ok, summary
            jobs = [await core.ledger.get_job(i) for i in ids]
            assert all(j is not None and j.state.value == "succeeded" for j in jobs)
            images = await core.store.list_images()
            per_job = {i: sum(1 for im in images if im.job_id == i) for i in ids}
            assert set(per_job.values()) == {1}, per_job  # none lost, none twice
            # every job whose prompt the restart lost got its image from a new prompt
            rerun = set(sandbox.executed_prompt_ids[before:])
            for job in jobs:
                assert job is not None
                prompts = {s.idem_key.rpartition("#")[2] for s in job.steps if s.step != "save"}
                if prompts & lost:
                    image = next(im for im in images if im.job_id == job.id)
                    assert image.prompt_id not in lost
                    assert image.prompt_id in rerun


@pytest.mark.asyncio
async def test_jobs_survive_a_managed_server_that_is_killed_and_auto_restarted(
    tmp_path: Path,
) -> None:
    """The managed ComfyUI (the sandbox as a real subprocess) is SIGKILLed mid-batch; it is
    restarted on the same port and every job still ends with exactly one image."""
    import os
    import signal
    import sys

    from pod_studio.composition.comfyui_process import supervised_comfyui
    from tests.adapters.test_comfyui_process import child_env, free_port, sandbox_command

    port = free_port()
    server = supervised_comfyui(
        sandbox_command(port, "--seconds-per-job", "0.3"),
        port=port,
        env=child_env(),
        ready_poll=0.05,
        restart_delay=0.1,
    )
    await server.start()
    try:
        events = Recorder()
        async with started_core(tmp_path / "home", [server.url], events) as core:
            request = GenerationRequest(prompts=["a fox", "an owl"], variations=3, seed=1)
            ids = await core.orchestrator.enqueue_generation(request)
            runner = asyncio.create_task(core.orchestrator.run_until_idle())
            await events.until(lambda: len(events.of(ImageReady)) >= 1)
            first = server.pid
            assert first is not None and sys.platform != "win32"

            os.kill(first, signal.SIGKILL)

            summary = await asyncio.wait_for(runner, 60)
            assert summary.ok, summary
            assert server.restarts == 1 and server.pid not in (None, first)
            jobs = [await core.ledger.get_job(i) for i in ids]
            assert all(j is not None and j.state.value == "succeeded" for j in jobs)
            images = await core.store.list_images()
            per_job = {i: sum(1 for im in images if im.job_id == i) for i in ids}
            assert set(per_job.values()) == {1}, per_job
            # The kill caught work in flight: some prompt was submitted again.
            resubmitted = events.of(JobResubmitted)
            retried = [j for j in jobs if j is not None and len(j.steps) > 2]
            assert resubmitted or retried
    finally:
        await server.stop()
        await server.aclose()
