"""The restart policy of a local ComfyUI server (``ComfyUISupervisor``) over a real
subprocess: the sandbox ComfyUI and small ``python -c`` programs. A requested restart is no
crash; a server that never answers is stopped, not restarted; a server killed under it is
restarted (its running prompt resubmitted by the client); a crash loop opens its breaker and
is given up with the reason in words; without auto-restart a death is final; a server left
running is adopted and stopped like one it started.

Every wait is on an event or a condition with a timeout; processes and process groups are
checked with the OS after each stop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.comfyui.process import probe_ready, read_record
from pod_studio.domain.breaker import BreakerState
from pod_studio.domain.comfyui_process import (
    ComfyUILogLine,
    ComfyUIProcessChanged,
    ProcessState,
    ServerProcessError,
)
from pod_studio.domain.errors import TimeoutError as PodTimeoutError
from pod_studio.services.comfyui_process import ComfyUISupervisor
from tests.adapters.test_comfyui_client import FAST, Updates, default_graph, new_id
from tests.adapters.test_comfyui_process import (
    Recorder,
    free_port,
    group_members,
    made,
    make,
    recorder,
    running,
    sandbox_command,
)

__all__ = ["made", "recorder"]  # fixtures

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here"),
]


@pytest.mark.asyncio
async def test_restart_replaces_the_process(made: list[ComfyUISupervisor]) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port), port)
    await proc.start()
    first = proc.pid
    assert first is not None

    await proc.restart()

    second = proc.pid
    assert proc.state is ProcessState.READY
    assert second is not None and second != first
    assert not running(first) and group_members(first) == []
    assert await probe_ready(proc.url)
    assert proc.spawns == 2 and proc.restarts == 0  # a requested restart is no crash


@pytest.mark.asyncio
async def test_readiness_is_bounded_and_the_silent_process_is_stopped(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    silent = [sys.executable, "-c", "import time; print('loading', flush=True); time.sleep(60)"]
    proc = make(made, silent, port, ready_timeout=0.5, sink=recorder)

    with pytest.raises(PodTimeoutError, match="did not answer") as caught:
        await proc.start()

    assert "within 0.5 s" in caught.value.user_message
    assert proc.state is ProcessState.FAILED
    assert proc.spawns == 1  # a server that never answers is not restarted
    pid = recorder.changes(ProcessState.EXITED)[0].pid
    assert pid is not None and not running(pid) and group_members(pid) == []


@pytest.mark.asyncio
async def test_killed_server_is_restarted_and_the_reason_is_given(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port), port, sink=recorder)
    await proc.start()
    first = proc.pid
    assert first is not None

    os.kill(first, signal.SIGKILL)

    exited = await recorder.wait_for(
        lambda e: isinstance(e, ComfyUIProcessChanged) and e.state is ProcessState.EXITED
    )
    assert isinstance(exited, ComfyUIProcessChanged)
    assert exited.returncode == -signal.SIGKILL and exited.pid == first
    assert "killed by SIGKILL" in exited.detail and "out-of-memory killer" in exited.detail
    await recorder.wait_for(
        lambda e: (
            isinstance(e, ComfyUIProcessChanged)
            and e.state is ProcessState.READY
            and e.restarts == 1
        )
    )
    assert proc.state is ProcessState.READY
    assert proc.pid not in (None, first)
    assert await probe_ready(proc.url)
    assert proc.last_exit is not None and proc.last_exit.signal_name == "SIGKILL"
    assert proc.breaker.state is BreakerState.CLOSED


@pytest.mark.asyncio
async def test_crash_loop_opens_the_breaker_with_an_out_of_memory_reason(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    crash = [
        sys.executable,
        "-c",
        "import sys; print('torch.OutOfMemoryError: CUDA out of memory'); sys.exit(1)",
    ]
    proc = make(made, crash, port, sink=recorder)

    with pytest.raises(ServerProcessError) as caught:
        await proc.start()

    threshold = proc.breaker.config.failure_threshold
    assert proc.breaker.state is BreakerState.OPEN
    assert proc.spawns == threshold  # stopped after the breaker opened, not restarted forever
    assert proc.state is ProcessState.FAILED
    message = caught.value.user_message
    assert f"died {threshold} times" in message and "not restarting" in message
    assert "exited with code 1" in message and "out of memory" in message
    assert caught.value.reason is not None and caught.value.reason.out_of_memory
    assert recorder.states().count(ProcessState.EXITED) == threshold
    assert recorder.states()[-1] is ProcessState.FAILED
    failed = recorder.changes(ProcessState.FAILED)[-1]
    assert failed.out_of_memory and failed.returncode == 1

    # Start again by hand: the breaker is reset and the loop runs (and stops) once more.
    with pytest.raises(ServerProcessError):
        await proc.start()
    assert proc.spawns == 2 * threshold


@pytest.mark.asyncio
async def test_without_auto_restart_a_death_is_final(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port), port, sink=recorder, auto_restart=False)
    await proc.start()
    pid = proc.pid
    assert pid is not None

    os.kill(pid, signal.SIGKILL)

    assert await proc.wait_for_state(ProcessState.FAILED, within=30) is ProcessState.FAILED
    assert proc.spawns == 1
    assert proc.failure is not None and "SIGKILL" in proc.failure.user_message


@pytest.mark.asyncio
async def test_running_prompt_is_resubmitted_after_the_server_is_restarted(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port, "--seconds-per-job", "1.5"), port, sink=recorder)
    await proc.start()
    first = proc.pid
    assert first is not None
    client = ComfyUIClient(proc.url, **FAST)
    await client.start()
    try:
        assert await client.wait_connected(10)
        updates = Updates()
        task = asyncio.create_task(
            client.run(default_graph(), prompt_id=new_id(), on_update=updates)
        )
        await updates.wait("started")

        os.kill(first, signal.SIGKILL)

        result = await asyncio.wait_for(task, 60)
    finally:
        await client.aclose()
    assert updates.of("resubmitted"), updates.kinds()
    assert result.images
    assert proc.restarts == 1 and proc.pid not in (None, first)


@pytest.mark.asyncio
async def test_attach_adopts_a_kept_server_and_stops_it(
    made: list[ComfyUISupervisor], tmp_path: Path, recorder: Recorder
) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    first = make(made, sandbox_command(port), port, state_dir=state_dir, keep_running=True)
    await first.start()
    pid = first.pid
    await first.detach()

    other = make(made, sandbox_command(port), port, state_dir=state_dir, sink=recorder)
    with pytest.raises(ServerProcessError, match="already runs"):
        await other.start()
    assert await other.attach()

    assert other.state is ProcessState.READY and other.pid == pid
    reason = await other.stop()
    assert reason is not None and reason.requested
    assert pid is not None and not running(pid) and group_members(pid) == []
    assert read_record(state_dir) is None
    # The adopted server's last words come from its log file.
    await recorder.wait_for(
        lambda e: isinstance(e, ComfyUILogLine) and e.line == "Stopped server", within=10
    )
