"""Composition: builds the managed ComfyUI process and runs ``pod-studio comfyui
start|stop|status`` (Qt-free; meant to move into ``pod_studio/composition/``).

- ``supervised_comfyui``: a ``ComfyUISupervisor`` (restart policy, ``services``) over a
  ``ComfyUIProcess`` (the operating-system side, ``adapters``) for a command line.
- ``build_comfyui_process``: the same from the settings section (the command line,
  auto-restart, keep-running mode, the state folder).
- ``build_comfyui_server_service``: the service behind the ComfyUI dock, with a control client.
- ``run_comfyui_command``: the body of the headless command. ``start`` starts the server in
  keep-running mode (output to a log file in the state folder), waits until it answers and
  leaves it running; ``status`` and ``stop`` find it through the state file, from any process.

Exit status: 0 done (``stop`` with nothing running included), 1 failed, 2 not configured or
unknown action, 3 ``status`` found no running server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pod_studio.adapters.comfyui.client import ComfyUIClient
from pod_studio.adapters.comfyui.process import (
    ComfyUIProcess,
    command_from_settings,
    live_record,
    probe_ready,
    stop_recorded,
)
from pod_studio.domain.breaker import CircuitBreaker
from pod_studio.domain.comfyui_process import ServerProcessError
from pod_studio.domain.errors import PodStudioError
from pod_studio.domain.events import EventSink, null_sink
from pod_studio.domain.settings import ComfyUIProcessSettings
from pod_studio.services.comfyui_process import ComfyUIServerService, ComfyUISupervisor

ACTIONS = ("start", "stop", "status")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def supervised_comfyui(
    command: Sequence[str],
    *,
    port: int,
    sink: EventSink = null_sink,
    auto_restart: bool = True,
    restart_delay: float = 2.0,
    breaker: CircuitBreaker | None = None,
    **options: Any,
) -> ComfyUISupervisor:
    """A local server run by ``command`` on ``port``; ``options`` go to ``ComfyUIProcess``
    (environment, timeouts, state folder, keep-running mode)."""
    process = ComfyUIProcess(command, port=port, sink=sink, **options)
    return ComfyUISupervisor(
        process,
        sink=sink,
        auto_restart=auto_restart,
        restart_delay=restart_delay,
        breaker=breaker,
    )


def build_comfyui_process(
    settings: ComfyUIProcessSettings,
    state_dir: Path,
    *,
    sink: EventSink = null_sink,
    command: Sequence[str] | None = None,
    keep_running: bool | None = None,
    auto_restart: bool | None = None,
    **options: Any,
) -> ComfyUISupervisor:
    """The managed server. ``command`` replaces the ComfyUI command line (tests, demo)."""
    argv = list(command) if command is not None else command_from_settings(settings)
    folder = Path(settings.folder).expanduser() if settings.folder and command is None else None
    return supervised_comfyui(
        argv,
        port=settings.port,
        cwd=folder,
        sink=sink,
        auto_restart=settings.auto_restart if auto_restart is None else auto_restart,
        keep_running=settings.keep_running_on_exit if keep_running is None else keep_running,
        state_dir=state_dir,
        **options,
    )


def build_comfyui_server_service(
    settings: ComfyUIProcessSettings,
    state_dir: Path,
    *,
    sink: EventSink = null_sink,
    control: ComfyUIClient | None = None,
    command: Sequence[str] | None = None,
    **options: Any,
) -> ComfyUIServerService:
    """The dock's service. Pass the app's ``ComfyUIClient`` for ``settings.url`` as
    ``control`` when there is one (else a client is made; the caller closes it).
    ``options`` go to ``supervised_comfyui`` (environment, timeouts, restart delay)."""
    process = (
        build_comfyui_process(settings, state_dir, sink=sink, command=command, **options)
        if settings.enabled or command is not None
        else None
    )
    client = control if control is not None else ComfyUIClient(settings.url)
    return ComfyUIServerService(settings, client, process, sink=sink)


def run_comfyui_command(
    action: str,
    settings: ComfyUIProcessSettings,
    paths_dir: Path,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    command: Sequence[str] | None = None,
    ready_timeout: float = 180.0,
) -> int:
    """``pod-studio comfyui start|stop|status``; ``paths_dir`` is the state folder (e.g.
    ``AppPaths.data_dir / "comfyui"``). Returns the exit status."""
    return asyncio.run(
        run_comfyui_command_async(
            action,
            settings,
            paths_dir,
            out=out or sys.stdout,
            err=err or sys.stderr,
            command=command,
            ready_timeout=ready_timeout,
        )
    )


async def run_comfyui_command_async(
    action: str,
    settings: ComfyUIProcessSettings,
    paths_dir: Path,
    *,
    out: TextIO,
    err: TextIO,
    command: Sequence[str] | None = None,
    ready_timeout: float = 180.0,
) -> int:
    if action == "status":
        return await _status(paths_dir, out)
    if action == "stop":
        return await _stop(paths_dir, out)
    if action == "start":
        return await _start(settings, paths_dir, out, err, command, ready_timeout)
    print(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}", file=err)
    return EXIT_USAGE


async def _status(state_dir: Path, out: TextIO) -> int:
    record = live_record(state_dir)
    if record is None:
        print("ComfyUI is not running (no server started by POD Studio)", file=out)
        return EXIT_NOT_RUNNING
    ready = await probe_ready(record.url)
    uptime = datetime.now(UTC) - record.started_at
    print(f"ComfyUI is running: pid {record.pid}, {record.url}", file=out)
    print(f"  answering: {'yes' if ready else 'no (starting, or hung)'}", file=out)
    print(
        f"  started:   {record.started_at.isoformat(timespec='seconds')} "
        f"(up {int(uptime.total_seconds())} s)",
        file=out,
    )
    if record.log_file:
        print(f"  log:       {record.log_file}", file=out)
    return EXIT_OK


async def _stop(state_dir: Path, out: TextIO) -> int:
    reason = await stop_recorded(state_dir)
    if reason is None:
        print("ComfyUI is not running (nothing to stop)", file=out)
    else:
        print(reason.summary, file=out)
    return EXIT_OK


async def _start(
    settings: ComfyUIProcessSettings,
    state_dir: Path,
    out: TextIO,
    err: TextIO,
    command: Sequence[str] | None,
    ready_timeout: float,
) -> int:
    record = live_record(state_dir)
    if record is not None:
        print(f"ComfyUI is already running: pid {record.pid}, {record.url}", file=out)
        return EXIT_OK
    try:
        process = build_comfyui_process(
            settings,
            state_dir,
            command=command,
            keep_running=True,  # the command exits; the server must outlive it
            auto_restart=False,  # nobody would be left to watch it
            ready_timeout=ready_timeout,
            emit_log_events=False,
        )
    except ServerProcessError as exc:
        print(exc.user_message, file=err)
        return EXIT_USAGE
    try:
        await process.start()
    except PodStudioError as exc:
        print(f"ComfyUI did not start: {exc.user_message}", file=err)
        for line in process.log_lines()[-15:]:
            print(f"  | {line}", file=err)
        await process.aclose()
        return EXIT_FAILED
    print(f"ComfyUI is ready: pid {process.pid}, {process.url}", file=out)
    if process.process.log_file is not None:
        print(f"  log: {process.process.log_file}", file=out)
    await process.aclose()  # keep-running: leaves the server running
    return EXIT_OK
