"""Domain layer: a local ComfyUI server process looked after by POD Studio (pure, no I/O).

- ``ProcessState``: where the managed server is (stopped, starting, ready, stopping, exited,
  failed).
- ``ExitReason`` / ``describe_exit``: why it ended, in words: exit code or signal, the last
  lines it printed and an out-of-memory hint.
- ``ServerRecord``: what the state file says about a server started in keep-running mode, so
  another ``pod-studio`` process can find, query and stop it.
- ``ComfyUIGauges``: queue length and VRAM as read from ``/queue`` and ``/system_stats``.
- Events: ``ComfyUIProcessChanged``, ``ComfyUILogLine``, ``ComfyUIGaugesUpdated``.
- ``ServerProcessError``: the error kind for a server that would not start or keeps dying.
- Ports: ``ServerProcessPort`` (the operating-system side of one server process: spawn,
  adopt, readiness, stop, output, state file), ``ComfyUIProcessPort`` (the supervised server
  the dock and the commands use) and ``ComfyUIControlPort`` (the server's control calls), so
  services and the app never see the adapters.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from pod_studio.domain.errors import ServiceError
from pod_studio.domain.events import Event

SERVER_RECORD_SCHEMA_VERSION = 1
SERVICE = "comfyui-process"

# What ComfyUI / PyTorch / the kernel print when memory runs out.
_OOM_RE = re.compile(
    r"CUDA out of memory|OutOfMemoryError|out of memory|\bOOM\b|MemoryError|"
    r"^Killed$|\bKilled\b.*\bprocess\b|Allocation on device",
    re.IGNORECASE | re.MULTILINE,
)


class ProcessState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # spawned, /system_stats does not answer yet
    READY = "ready"  # /system_stats answered
    STOPPING = "stopping"
    EXITED = "exited"  # died without being asked to (a restart may follow)
    FAILED = "failed"  # given up: would not start, or the crash-loop breaker opened


class ExitReason(BaseModel):
    """Why a server process ended, for the seller and the log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    returncode: int | None = None  # None: unknown (not our child) or did not exit yet
    signal_name: str = ""  # "SIGKILL" when the return code says a signal ended it
    out_of_memory: bool = False  # the output mentions running out of memory
    last_lines: tuple[str, ...] = ()
    requested: bool = False  # we asked it to stop
    summary: str = ""


def looks_out_of_memory(lines: Sequence[str]) -> bool:
    """True when ``lines`` mention CUDA/host out-of-memory or a kernel OOM kill."""
    return any(_OOM_RE.search(line) for line in lines)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(
    returncode: int | None,
    lines: Sequence[str],
    *,
    requested: bool = False,
    tail: int = 8,
    note: str = "",
) -> ExitReason:
    """An ``ExitReason`` from a return code (negative = killed by that signal, as asyncio and
    subprocess report it) and the last lines of output."""
    last = tuple(line for line in lines if line.strip())[-tail:]
    oom = looks_out_of_memory(last)
    sig = _signal_name(-returncode) if returncode is not None and returncode < 0 else ""
    if note:
        head = note
    elif returncode is None:
        head = "ComfyUI ended (exit code unknown: it was not started by this process)"
    elif sig:
        head = f"ComfyUI was killed by {sig}"
        if sig == "SIGKILL" and not requested:
            head += " (the operating system's out-of-memory killer sends this signal)"
    elif returncode == 0:
        head = "ComfyUI exited normally (exit code 0)"
    else:
        head = f"ComfyUI exited with code {returncode}"
    parts = [head]
    if oom:
        parts.append(
            "it ran out of memory: try smaller images or batches, fewer models at once, "
            "or ComfyUI's --lowvram / --novram options"
        )
    if last:
        parts.append("last output: " + " | ".join(line.strip()[:200] for line in last[-3:]))
    return ExitReason(
        returncode=returncode,
        signal_name=sig,
        out_of_memory=oom,
        last_lines=last,
        requested=requested,
        summary="; ".join(parts),
    )


class ServerRecord(BaseModel):
    """The state file of a server started by ``pod-studio`` (one per state folder)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SERVER_RECORD_SCHEMA_VERSION
    pid: int = Field(gt=0)
    pgid: int | None = None
    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    started_at: datetime
    create_time: float | None = None  # the OS's start time of ``pid`` (detects pid reuse)
    command: list[str] = Field(default_factory=list)
    log_file: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ComfyUIGauges(BaseModel):
    """Queue length and VRAM of one server at one moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    queue_running: int = 0
    queue_pending: int = 0
    device: str = ""
    vram_total: int | None = None
    vram_free: int | None = None

    @property
    def queue_length(self) -> int:
        return self.queue_running + self.queue_pending

    @property
    def vram_used_fraction(self) -> float | None:
        if not self.vram_total or self.vram_free is None:
            return None
        return max(0.0, min(1.0, 1.0 - self.vram_free / self.vram_total))


class ServerProcessError(ServiceError):
    """The managed ComfyUI would not start, did not answer in time, or keeps dying."""

    def __init__(
        self,
        message: str,
        *,
        reason: ExitReason | None = None,
        user_message: str | None = None,
        retryable: bool | None = False,
    ) -> None:
        super().__init__(message, service=SERVICE, user_message=user_message, retryable=retryable)
        self.reason = reason


# --- events ----------------------------------------------------------------------------------


class ComfyUIProcessChanged(Event):
    """The managed server changed state. ``detail`` says why in words (exit reason, breaker)."""

    state: ProcessState
    pid: int | None = None
    port: int = 0
    url: str = ""
    detail: str = ""
    returncode: int | None = None
    out_of_memory: bool = False
    restarts: int = 0


class ComfyUILogLine(Event):
    """One line the managed server printed (stdout and stderr merged)."""

    line: str
    pid: int | None = None
    number: int = 0  # 1-based count of lines seen since POD Studio started watching


class ComfyUIGaugesUpdated(Event):
    gauges: ComfyUIGauges


# --- ports -----------------------------------------------------------------------------------


class ServerProcessPort(Protocol):
    """One local ComfyUI server process as the operating system runs it
    (``adapters/comfyui/process.py``). One run at a time: the last spawned or adopted."""

    @property
    def pid(self) -> int | None:
        """The running server's pid (``None`` when none runs)."""
        ...

    @property
    def run_pid(self) -> int | None:
        """The last run's pid, running or ended."""
        ...

    @property
    def alive(self) -> bool: ...

    @property
    def piped(self) -> bool:
        """The last run's output is a pipe (it cannot outlive POD Studio)."""
        ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...

    @property
    def command(self) -> list[str]: ...

    @property
    def keep_running(self) -> bool: ...

    @property
    def ready_timeout(self) -> float: ...

    @property
    def spawns(self) -> int: ...

    @property
    def log_file(self) -> Path | None:
        """Where the output goes in keep-running mode (``None``: a pipe)."""
        ...

    def log_lines(self) -> list[str]: ...

    def search_log(self, text: str) -> list[tuple[int, str]]: ...

    def exit_reason(self, *, requested: bool = False, note: str = "") -> ExitReason: ...

    def check_free(self) -> None:
        """``ServerProcessError`` when a new server could not run (one already does)."""
        ...

    async def adopt(self) -> int | None:
        """Watch a server left running (state file): its pid, or ``None``."""
        ...

    async def spawn(self) -> None:
        """Start a new run (``OSError`` when the program cannot start)."""
        ...

    async def wait_ready(self) -> bool | None:
        """True once it answers; False if it ended first; None when it never answered."""
        ...

    async def wait_exit(self) -> None: ...

    def record(self) -> None: ...

    def forget(self) -> None: ...

    async def terminate(self) -> str:
        """Stop it (interrupt, terminate, kill its group); how it ended, in words."""
        ...

    async def drain(self) -> None: ...

    async def stop_output(self) -> None: ...

    async def detach(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ComfyUIProcessPort(Protocol):
    """A ComfyUI server process POD Studio looks after (``adapters/comfyui/process.py``)."""

    @property
    def state(self) -> ProcessState: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def url(self) -> str: ...

    @property
    def keep_running(self) -> bool: ...

    @property
    def last_exit(self) -> ExitReason | None: ...

    def log_lines(self) -> list[str]: ...

    def search_log(self, text: str) -> list[tuple[int, str]]: ...

    async def start(self) -> None: ...

    async def stop(self) -> ExitReason | None: ...

    async def restart(self) -> None: ...

    async def attach(self) -> bool: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ComfyUIControlPort(Protocol):
    """Control calls of a ComfyUI server (``ComfyUIClient`` implements them)."""

    async def free_memory(
        self, *, unload_models: bool = True, free_memory: bool = True
    ) -> None: ...

    async def interrupt_all(self) -> None: ...

    async def clear_queue(self) -> None: ...

    async def gauges(self) -> ComfyUIGauges: ...
