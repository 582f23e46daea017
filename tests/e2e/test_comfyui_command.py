"""``pod-studio comfyui start|stop|status`` (``run_comfyui_command``) with the sandbox ComfyUI
as the server: start leaves it running, status and stop find it through the state file."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.composition.comfyui_process import (
    EXIT_FAILED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    build_comfyui_server_service,
    run_comfyui_command,
)
from pod_studio.domain.comfyui_process import ComfyUIGaugesUpdated, ProcessState
from pod_studio.domain.settings import ComfyUIProcessSettings
from pod_studio.services.comfyui_process import ComfyUISupervisor
from tests.adapters.test_comfyui_process import (
    Recorder,
    free_port,
    group_members,
    running,
    sandbox_command,
)

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here"),
]


def run(
    action: str,
    settings: ComfyUIProcessSettings,
    state: Path,
    command: list[str] | None = None,
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_comfyui_command(action, settings, state, out=out, err=err, command=command)
    return code, out.getvalue(), err.getvalue()


def test_start_status_stop(tmp_path: Path) -> None:
    port = free_port()
    settings = ComfyUIProcessSettings(port=port)
    state = tmp_path / "comfyui"
    command = sandbox_command(port)

    assert run("status", settings, state)[0] == EXIT_NOT_RUNNING

    code, out, err = run("start", settings, state, command=command)
    assert code == EXIT_OK, err
    assert "ComfyUI is ready: pid " in out and f"127.0.0.1:{port}" in out
    pid = int(out.split("pid ")[1].split(",")[0])
    try:
        assert running(pid)  # the command returned; the server runs on

        code, out, _ = run("start", settings, state, command=command)
        assert code == EXIT_OK and "already running" in out

        code, out, _ = run("status", settings, state)
        assert code == EXIT_OK
        assert f"pid {pid}" in out and "answering: yes" in out and "comfyui-server.log" in out
    finally:
        code, out, _ = run("stop", settings, state)
    assert code == EXIT_OK and "stopped (SIGINT)" in out
    assert not running(pid) and group_members(pid) == []
    assert run("status", settings, state)[0] == EXIT_NOT_RUNNING
    assert "nothing to stop" in run("stop", settings, state)[1]


def test_start_reports_why_it_failed(tmp_path: Path) -> None:
    settings = ComfyUIProcessSettings(port=free_port())
    crash = [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(1)"]
    code, _, err = run("start", settings, tmp_path, command=crash)
    assert code == EXIT_FAILED
    assert "exited with code 1" in err and "out of memory" in err
    assert "| CUDA out of memory" in err

    code, _, err = run("start", ComfyUIProcessSettings(), tmp_path)
    assert code == EXIT_USAGE and "ComfyUI folder" in err
    assert run("restart-everything", settings, tmp_path)[0] == EXIT_USAGE


@pytest.mark.asyncio
async def test_the_dock_service_starts_watches_and_stops_the_server(tmp_path: Path) -> None:
    port = free_port()
    settings = ComfyUIProcessSettings(enabled=True, folder="/unused", port=port, auto_start=True)
    events = Recorder()
    service = build_comfyui_server_service(
        settings, tmp_path, sink=events, command=sandbox_command(port)
    )
    assert service.process is not None and service.managed
    try:
        assert await service.on_app_start() is ProcessState.READY
        pid = service.process.pid
        assert pid is not None
        gauges = await service.read_gauges()
        assert gauges.queue_length == 0 and gauges.vram_total
        first = events.items[-1]
        assert isinstance(first, ComfyUIGaugesUpdated) and first.gauges == gauges
        service.start_gauges()  # the periodic reads push events too
        await events.wait_for(lambda e: isinstance(e, ComfyUIGaugesUpdated) and e is not first)
        await service.free_memory()
        await service.interrupt_all()
        await service.clear_queue()
    finally:
        await service.aclose()
        control = service._control
        assert isinstance(control, ComfyUIClient)
        await control.aclose()
    assert not running(pid) and group_members(pid) == []


@pytest.mark.asyncio
async def test_the_dock_service_adopts_a_server_left_running(tmp_path: Path) -> None:
    port = free_port()
    command = sandbox_command(port)
    settings = ComfyUIProcessSettings(enabled=True, folder="/unused", port=port)
    code, out, err = await asyncio.to_thread(run, "start", settings, tmp_path, command)
    assert code == EXIT_OK, err
    pid = int(out.split("pid ")[1].split(",")[0])
    service = build_comfyui_server_service(settings, tmp_path, command=command)
    try:
        assert await service.on_app_start() is ProcessState.READY
        process = service.process
        assert isinstance(process, ComfyUISupervisor)
        assert process.pid == pid and process.spawns == 0
    finally:
        await service.aclose()  # not keep-running: the adopted server is stopped
        control = service._control
        assert isinstance(control, ComfyUIClient)
        await control.aclose()
    assert not running(pid) and group_members(pid) == []
