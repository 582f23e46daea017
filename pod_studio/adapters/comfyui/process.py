"""Adapter layer (ComfyUI): the operating-system side of a local ComfyUI server.

- ``ComfyUIProcess``: one server process: spawn it (``loop.subprocess_exec``, or ``Popen``
  writing to a log file) in a new session (its own process group), stdout and stderr merged,
  or adopt one left running; lines go into a bounded ``LogBuffer`` and to line listeners /
  the event sink (``ComfyUILogLine``).
  ``wait_ready`` polls ``GET /system_stats`` (bounded by ``ready_timeout``). Stop: SIGINT to
  the process group (ComfyUI stops cleanly on it), then SIGTERM, then SIGKILL after
  timeouts; members of the group still alive after the leader exited are killed too.
  When to start, restart or give up is not decided here: that is the supervisor's policy
  (``services/comfyui_process.py``: restart rules and the crash-loop breaker).
- Keep-running mode: the output goes to a log file instead of a pipe (a pipe would break when
  POD Studio exits), the file is tailed, and a state file (pid, port, start time) lets another
  ``pod-studio`` process find the server (``live_record``), ask it (``probe_ready``) and stop it
  (``stop_recorded``); ``ComfyUIProcess.adopt`` watches such a server.
- ``command_from_settings``: the ComfyUI command line (its folder, its Python).

psutil is used for what the standard library cannot do portably: process start times
(telling a live pid from a reused one) and waiting for a process that is not our child.
On Windows the group is a ``CREATE_NEW_PROCESS_GROUP`` and "interrupt" is CTRL_BREAK.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
from pydantic import ValidationError as PydanticValidationError

from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside
from pod_studio.domain.comfyui_process import (
    ComfyUILogLine,
    ExitReason,
    ServerProcessError,
    ServerRecord,
    describe_exit,
)
from pod_studio.domain.events import EventSink, null_sink
from pod_studio.domain.settings import ComfyUIProcessSettings

__all__ = [
    "STATE_FILE_NAME",
    "ComfyUIProcess",
    "LineListener",
    "LogBuffer",
    "command_from_settings",
    "comfyui_command",
    "live_record",
    "probe_ready",
    "read_record",
    "stop_recorded",
]

log = logging.getLogger(__name__)

STATE_FILE_NAME = "comfyui-server.json"
LOG_FILE_NAME = "comfyui-server.log"
_WINDOWS = sys.platform == "win32"
_READ_CHUNK = 65536
_TAIL_INTERVAL = 0.2  # seconds between reads of a log file that has nothing new
_POLL_INTERVAL = 0.1  # seconds between exit checks of a process without exit notification

LineListener = Callable[[str], None]
MARKER = "[POD Studio]"  # prefix of the lines POD Studio itself adds to the log


def comfyui_command(
    python: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    port: int,
    extra_args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
) -> list[str]:
    """``[python, <folder>/main.py, --listen, host, --port, N, *extra_args]``."""
    return [
        os.fspath(python),
        os.fspath(Path(folder) / "main.py"),
        "--listen",
        host,
        "--port",
        str(port),
        *extra_args,
    ]


def _find_python(folder: Path) -> str:
    candidates = [
        folder / "venv" / "bin" / "python",
        folder / ".venv" / "bin" / "python",
        folder / "venv" / "Scripts" / "python.exe",
        folder / ".venv" / "Scripts" / "python.exe",
        folder.parent / "python_embeded" / "python.exe",  # the Windows portable build
    ]
    for candidate in candidates:
        if candidate.is_file():
            return os.fspath(candidate)
    return shutil.which("python3") or shutil.which("python") or sys.executable


def command_from_settings(settings: ComfyUIProcessSettings) -> list[str]:
    """The command line for the configured ComfyUI; ``ServerProcessError`` when the folder
    or the interpreter is missing."""
    if not settings.folder:
        raise ServerProcessError(
            "no ComfyUI folder configured",
            user_message="Choose the ComfyUI folder (the one with main.py) in the settings.",
        )
    folder = Path(settings.folder).expanduser()
    if not (folder / "main.py").is_file():
        raise ServerProcessError(
            f"{folder} has no main.py",
            user_message=f"{folder} does not look like a ComfyUI folder (no main.py).",
        )
    python = settings.python or _find_python(folder)
    if settings.python and not (Path(python).expanduser().is_file() or shutil.which(python)):
        raise ServerProcessError(
            f"Python interpreter {python!r} not found",
            user_message=f"The Python interpreter {python} was not found.",
        )
    return comfyui_command(python, folder, settings.port, settings.extra_args)


# --- the log buffer --------------------------------------------------------------------------


class LogBuffer:
    """The last ``capacity`` lines of output (a ring: older lines fall off)."""

    def __init__(self, capacity: int = 5000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._lines: deque[tuple[int, str]] = deque(maxlen=capacity)
        self._count = 0

    @property
    def capacity(self) -> int:
        return self._lines.maxlen or 0

    @property
    def total(self) -> int:
        """Lines seen since the buffer was made (including those that fell off)."""
        return self._count

    @property
    def dropped(self) -> int:
        return self._count - len(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def append(self, line: str) -> int:
        """Add a line; return its 1-based number."""
        self._count += 1
        self._lines.append((self._count, line))
        return self._count

    def lines(self) -> list[str]:
        return [line for _, line in self._lines]

    def tail(self, n: int) -> list[str]:
        if n <= 0:
            return []
        return [line for _, line in list(self._lines)[-n:]]

    def since(self, number: int) -> list[tuple[int, str]]:
        """(number, line) of the kept lines numbered above ``number``."""
        return [(n, line) for n, line in self._lines if n > number]

    def search(self, text: str, *, case_sensitive: bool = False) -> list[tuple[int, str]]:
        """(number, line) of every kept line containing ``text``."""
        if not text:
            return []
        if case_sensitive:
            return [(n, line) for n, line in self._lines if text in line]
        needle = text.casefold()
        return [(n, line) for n, line in self._lines if needle in line.casefold()]

    def clear(self) -> None:
        self._lines.clear()


class _LineSplitter:
    """Bytes in, complete lines out. A carriage return without a newline (progress bars)
    overwrites the line, as a terminal shows it; only the final text is kept."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._partial + self._decoder.decode(data)
        *complete, self._partial = text.split("\n")
        return [self._clean(line) for line in complete]

    def flush(self) -> list[str]:
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        return [self._clean(rest)] if rest.strip() else []

    @staticmethod
    def _clean(line: str) -> str:
        line = line.rstrip("\r")
        return line.rsplit("\r", 1)[-1]


# --- processes that may not be our children --------------------------------------------------


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _alive(pid: int, create_time: float | None) -> bool:
    """``pid`` runs and is the process we recorded (not a later one that reused the pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except (psutil.Error, OSError):
        return False
    return create_time is None or abs(started - create_time) < 1.0


def _group_alive(pgid: int) -> bool:
    if _WINDOWS:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_SIGTERM = signal.SIGTERM
_SIGKILL: int = getattr(signal, "SIGKILL", signal.SIGTERM)


def _signal_group(pid: int, pgid: int | None, sig: int) -> None:
    """Send ``sig`` to the server's process group (POSIX) or to the process (Windows)."""
    try:
        if _WINDOWS:
            if sig == signal.SIGINT:
                os.kill(pid, signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                proc = psutil.Process(pid)
                for member in [*proc.children(recursive=True), proc]:
                    if sig == _SIGKILL:
                        member.kill()
                    else:
                        member.terminate()
        else:
            os.killpg(pgid if pgid is not None else pid, sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


async def _wait_pid_gone(pid: int, create_time: float | None, within: float) -> bool:
    """Wait up to ``within`` seconds for a process that is not our child to end."""
    deadline = time.monotonic() + within
    while _alive(pid, create_time):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        # Polling: there is no portable way to wait for the end of a non-child process.
        await asyncio.sleep(min(0.05, left))
    return True


def _live_members(pgid: int) -> list[int]:
    """Pids of the group's processes that still run (a zombie has ended: only its parent, or
    init, can reap it)."""
    found: list[int] = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


async def _kill_leftovers(pgid: int | None, within: float = 5.0) -> None:
    """Kill what is left of the server's process group, and wait (bounded) until it has
    ended, so that a stop leaves nothing behind when it returns."""
    if pgid is None or _WINDOWS or not _group_alive(pgid):
        return
    log.warning("process group %s outlived its leader; killing it", pgid)
    _signal_group(pgid, pgid, _SIGKILL)
    deadline = time.monotonic() + within
    while await asyncio.to_thread(_live_members, pgid):
        left = deadline - time.monotonic()
        if left <= 0:
            log.warning("process group %s still runs %.0f s after SIGKILL", pgid, within)
            return
        # Polling: the members are not our children, so there is nothing to wait on.
        await asyncio.sleep(min(0.05, left))


# --- the state file --------------------------------------------------------------------------


def _state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE_NAME


def read_record(state_dir: Path) -> ServerRecord | None:
    """The recorded server, alive or not; a corrupt file is moved aside (and ``None``)."""
    path = _state_file(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    try:
        return ServerRecord.model_validate(json.loads(text))
    except (json.JSONDecodeError, PydanticValidationError, UnicodeDecodeError) as exc:
        move_aside(path, f"not a ComfyUI server record: {exc}"[:300])
        return None


def live_record(state_dir: Path) -> ServerRecord | None:
    """The recorded server if it still runs; a stale record (dead or reused pid) is removed."""
    record = read_record(state_dir)
    if record is None:
        return None
    if _alive(record.pid, record.create_time):
        return record
    log.info("removing stale ComfyUI server record (pid %s is gone)", record.pid)
    _state_file(state_dir).unlink(missing_ok=True)
    return None


def _write_record(state_dir: Path, record: ServerRecord) -> None:
    atomic_write_text(_state_file(state_dir), record.model_dump_json(indent=2))


def _remove_record(state_dir: Path, pid: int) -> None:
    record = read_record(state_dir)
    if record is not None and record.pid == pid:
        _state_file(state_dir).unlink(missing_ok=True)


async def probe_ready(url: str, *, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
    """True when ``GET {url}/system_stats`` answers 200 with ComfyUI's ``system`` object."""
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(timeout)) as client:
        return await _answers(client)


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        response = await client.get("/system_stats")
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("system"), dict)


async def stop_recorded(
    state_dir: Path, *, interrupt_timeout: float = 15.0, terminate_timeout: float = 5.0
) -> ExitReason | None:
    """Stop the server the state file names (from any process); ``None`` if none runs."""
    record = live_record(state_dir)
    if record is None:
        return None
    _signal_group(record.pid, record.pgid, signal.SIGINT)
    how = "stopped (SIGINT)"
    if not await _wait_pid_gone(record.pid, record.create_time, interrupt_timeout):
        _signal_group(record.pid, record.pgid, _SIGTERM)
        how = f"did not stop within {interrupt_timeout:g} s of SIGINT; terminated"
        if not await _wait_pid_gone(record.pid, record.create_time, terminate_timeout):
            _signal_group(record.pid, record.pgid, _SIGKILL)
            how = f"did not stop on SIGINT or SIGTERM; killed after {terminate_timeout:g} s"
            await _wait_pid_gone(record.pid, record.create_time, 5.0)
    await _kill_leftovers(record.pgid)
    _remove_record(state_dir, record.pid)
    lines = _read_log_tail(record.log_file)
    return describe_exit(None, lines, requested=True, note=f"ComfyUI (pid {record.pid}) {how}")


def _read_log_tail(log_file: str | None, max_bytes: int = 16384) -> list[str]:
    if not log_file:
        return []
    try:
        with open(log_file, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()


# --- the managed process ---------------------------------------------------------------------


class _PipeProtocol(asyncio.SubprocessProtocol):
    """Output and exit of a child whose stdout+stderr is a pipe.

    Used instead of ``asyncio.subprocess.Process``: its ``wait()`` returns only once every
    pipe is closed, so a grandchild holding the inherited stdout would hide the server's
    death. ``process_exited`` is called as soon as the child ends.
    """

    def __init__(self) -> None:
        self.on_data: Callable[[bytes], None] | None = None
        self.on_exit: Callable[[], object] | None = None
        self.early: list[bytes] = []  # output that came before the run was bound
        self.exited_early = False
        self.pipe_closed = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        if self.on_data is None:
            self.early.append(bytes(data))
        else:
            self.on_data(bytes(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.pipe_closed.set()

    def process_exited(self) -> None:
        if self.on_exit is None:
            self.exited_early = True
        else:
            self.on_exit()


class _Run:
    """One spawned (or adopted) server process."""

    def __init__(
        self,
        pid: int,
        *,
        create_time: float | None,
        transport: asyncio.SubprocessTransport | None = None,
        protocol: _PipeProtocol | None = None,
        popen: subprocess.Popen[bytes] | None = None,
        log_fh: IO[bytes] | None = None,
    ) -> None:
        self.pid = pid
        self.pgid: int | None = None if _WINDOWS else pid
        self.create_time = create_time
        self.transport = transport
        self.protocol = protocol
        self.popen = popen
        self.log_fh = log_fh
        self.splitter = _LineSplitter()
        self.reader: asyncio.Task[None] | None = None  # tails the log file (file mode)
        self.exited = asyncio.Event()
        self.returncode: int | None = None
        self.first_line = 0  # log lines numbered above this one are this run's output

    @property
    def piped(self) -> bool:
        return self.transport is not None

    @property
    def child(self) -> bool:
        return self.transport is not None or self.popen is not None

    def poll(self) -> bool:
        """True once the process has ended (records its return code when we can know it)."""
        if self.exited.is_set():
            return True
        code: int | None = None
        if self.transport is not None:
            code = self.transport.get_returncode()
            if code is None:
                return False
        elif self.popen is not None:
            code = self.popen.poll()
            if code is None:
                return False
        elif _alive(self.pid, self.create_time):
            return False
        self.returncode = code
        self.exited.set()
        return True

    async def wait(self, within: float | None = None) -> bool:
        """True once the process has ended (within ``within`` seconds, if given)."""
        deadline = None if within is None else time.monotonic() + within
        # A piped child sets ``exited`` from its protocol; the others are polled (a process
        # that is not our asyncio child has no exit notification). The poll also covers the
        # loop's shutdown, when no callback may run any more.
        step = 1.0 if self.transport is not None else _POLL_INTERVAL
        while not self.poll():
            wait = step
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = min(step, left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), wait)
        return True


# Popen objects of servers left running: referenced so that no ResourceWarning fires while
# POD Studio runs (a Popen never kills its process when collected).
_DETACHED: list[subprocess.Popen[bytes]] = []


class ComfyUIProcess:
    """One local ComfyUI server process, as the operating system sees it: spawn it (or adopt
    the one the state file names), tell when it answers, stop it (SIGINT, SIGTERM, SIGKILL on
    its process group), keep its output, and record it in the state file.

    It starts nothing by itself and restarts nothing: the supervisor
    (``services/comfyui_process.py``) decides when. One run at a time: the one spawned or
    adopted last (``alive`` while it runs). Use it from the event-loop thread.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        sink: EventSink = null_sink,
        on_line: LineListener | None = None,
        emit_log_events: bool = True,
        log_capacity: int = 5000,
        ready_timeout: float = 180.0,
        ready_poll: float = 0.25,
        interrupt_timeout: float = 15.0,
        terminate_timeout: float = 5.0,
        state_dir: str | os.PathLike[str] | None = None,
        keep_running: bool = False,
        log_file: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not command:
            raise ValueError("command must name a program")
        self._command = [os.fspath(part) for part in command]
        self._port = port
        self._host = host
        self._cwd = os.fspath(cwd) if cwd is not None else None
        self._env = dict(env) if env is not None else None
        self._sink = sink
        self._listeners: list[LineListener] = [on_line] if on_line is not None else []
        self._emit_log_events = emit_log_events
        self.log = LogBuffer(log_capacity)
        self._ready_timeout = ready_timeout
        self._ready_poll = ready_poll
        self._interrupt_timeout = interrupt_timeout
        self._terminate_timeout = terminate_timeout
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._keep_running = keep_running
        if log_file is not None:
            self._log_file: Path | None = Path(log_file)
        elif keep_running and self._state_dir is not None:
            self._log_file = self._state_dir / LOG_FILE_NAME
        else:
            self._log_file = None
        if keep_running and self._log_file is None:
            raise ValueError("keep_running needs a state_dir or a log_file (not a pipe)")
        self._transport = transport
        self._http = self._new_http()
        self._run: _Run | None = None
        self._spawns = 0

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(2.0), transport=self._transport
        )

    # --- queries -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The running server's pid (``None`` when none runs)."""
        run = self._run
        return run.pid if run is not None and not run.poll() else None

    @property
    def run_pid(self) -> int | None:
        """The pid of the last run, running or ended (``None``: none yet, or left running)."""
        return self._run.pid if self._run is not None else None

    @property
    def pgid(self) -> int | None:
        run = self._run
        return run.pgid if run is not None else None

    @property
    def alive(self) -> bool:
        """The last run still runs."""
        return self._run is not None and not self._run.poll()

    @property
    def piped(self) -> bool:
        """The last run's output is a pipe (it cannot outlive POD Studio)."""
        return self._run is not None and self._run.piped

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def command(self) -> list[str]:
        return list(self._command)

    @property
    def keep_running(self) -> bool:
        return self._keep_running

    @property
    def ready_timeout(self) -> float:
        return self._ready_timeout

    @property
    def spawns(self) -> int:
        """Processes spawned since this object was made."""
        return self._spawns

    @property
    def log_file(self) -> Path | None:
        return self._log_file

    def log_lines(self) -> list[str]:
        """The kept output lines, oldest first."""
        return self.log.lines()

    def search_log(self, text: str) -> list[tuple[int, str]]:
        """(number, line) of the kept lines containing ``text`` (case-insensitive)."""
        return self.log.search(text)

    def add_line_listener(self, fn: LineListener) -> None:
        self._listeners.append(fn)

    def remove_line_listener(self, fn: LineListener) -> None:
        self._listeners.remove(fn)

    def exit_reason(self, *, requested: bool = False, note: str = "") -> ExitReason:
        """Why the last run ended: its return code and what it printed."""
        run = self._run
        if run is None:
            return describe_exit(None, [], requested=requested, note=note)
        return describe_exit(run.returncode, self._lines_of(run), requested=requested, note=note)

    # --- a run ---------------------------------------------------------------------------------

    def check_free(self) -> None:
        """``ServerProcessError`` when a server recorded in the state file still runs, or
        the port is taken (a new server could not listen)."""
        if self._state_dir is not None:
            record = live_record(self._state_dir)
            if record is not None:
                raise ServerProcessError(
                    f"a ComfyUI server started by POD Studio already runs "
                    f"(pid {record.pid}, {record.url})",
                    user_message=f"ComfyUI already runs on {record.url} (pid {record.pid}). "
                    "Stop it first, or let POD Studio adopt it.",
                )
        if _port_in_use(self._host, self._port):
            raise ServerProcessError(
                f"port {self._port} on {self._host} is already in use",
                user_message=f"Port {self._port} is already in use: is another ComfyUI "
                "running? Stop it or choose another port in the settings.",
            )

    async def adopt(self) -> int | None:
        """Watch the server the state file names (left running by an earlier POD Studio, or
        started by ``pod-studio comfyui start``): its pid, or ``None`` when none runs."""
        if self._state_dir is None:
            return None
        record = live_record(self._state_dir)
        if record is None:
            return None
        if (record.host, record.port) != (self._host, self._port):
            self._host, self._port = record.host, record.port
            await self._http.aclose()
            self._http = self._new_http()
        if record.log_file:
            self._log_file = Path(record.log_file)
        run = _Run(record.pid, create_time=record.create_time)
        run.pgid = record.pgid
        self._run = run
        self._on_line(run, f"{MARKER} watching ComfyUI (pid {run.pid}) started earlier")
        run.first_line = self.log.total
        if record.log_file:
            run.reader = asyncio.create_task(
                self._tail_file(run, Path(record.log_file), from_end=True),
                name="comfyui-log-tail",
            )
        return record.pid

    async def spawn(self) -> None:
        """Start a new run (``OSError`` when the program cannot be started)."""
        env = dict(os.environ if self._env is None else self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.setdefault("PYTHONIOENCODING", "utf-8")
        kwargs: dict[str, Any] = {"cwd": self._cwd, "env": env}
        if _WINDOWS:
            kwargs["creationflags"] = 0x00000200  # CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        if self._log_file is None:
            run = await self._spawn_piped(kwargs)
        else:
            run = await self._spawn_to_file(self._log_file, kwargs)
        self._spawns += 1
        self._run = run
        log.info("started ComfyUI (pid %s): %s", run.pid, " ".join(self._command))

    async def wait_ready(self) -> bool | None:
        """True once /system_stats answers; False if the run ended first; None on timeout."""
        run = self._need_run()
        deadline = time.monotonic() + self._ready_timeout
        while not run.poll():
            if await _answers(self._http):
                return not run.poll()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # Polling: the server announces readiness only by answering.
            await run.wait(min(self._ready_poll, left))
        return False

    async def wait_exit(self) -> None:
        await self._need_run().wait()

    def record(self) -> None:
        """Write the state file for the run (so another process can find and stop it)."""
        run = self._need_run()
        if self._state_dir is None:
            return
        record = ServerRecord(
            pid=run.pid,
            pgid=run.pgid,
            port=self._port,
            host=self._host,
            started_at=datetime.now(UTC),
            create_time=run.create_time,
            command=self._command,
            log_file=os.fspath(self._log_file) if not run.piped and self._log_file else None,
        )
        _write_record(self._state_dir, record)

    def forget(self) -> None:
        """Remove the state file, if it names the run."""
        if self._state_dir is not None and self._run is not None:
            _remove_record(self._state_dir, self._run.pid)

    async def terminate(self) -> str:
        """SIGINT the group, then SIGTERM, then SIGKILL; returns how it ended."""
        run = self._need_run()
        how = "stopped on SIGINT"
        _signal_group(run.pid, run.pgid, signal.SIGINT)
        if not await run.wait(self._interrupt_timeout):
            log.warning("ComfyUI (pid %s) ignored SIGINT; terminating", run.pid)
            how = f"did not stop within {self._interrupt_timeout:g} s of SIGINT; terminated"
            _signal_group(run.pid, run.pgid, _SIGTERM)
            if not await run.wait(self._terminate_timeout):
                log.warning("ComfyUI (pid %s) ignored SIGTERM; killing", run.pid)
                how = "did not stop on SIGINT or SIGTERM; killed"
                _signal_group(run.pid, run.pgid, _SIGKILL)
                await run.wait(10.0)
        await _kill_leftovers(run.pgid)
        return how

    async def drain(self) -> None:
        """Let the reader take the last output, then release the run's resources."""
        run = self._need_run()
        if run.protocol is not None and run.transport is not None:
            # A helper left in the group could hold the pipe open: bounded.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.protocol.pipe_closed.wait(), 2.0)
            run.transport.close()  # the process has ended: this only closes the pipe
            for line in run.splitter.flush():
                self._on_line(run, line)
        reader = run.reader
        if reader is not None and not reader.done():
            try:
                await asyncio.wait_for(asyncio.shield(reader), 2.0)
            except TimeoutError:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        if run.log_fh is not None:
            run.log_fh.close()
            run.log_fh = None

    async def stop_output(self) -> None:
        """Stop following the run's log file."""
        run = self._run
        if run is not None and run.reader is not None and not run.reader.done():
            run.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.reader

    async def detach(self) -> None:
        """Stop watching the run and leave it running (its output goes to the log file)."""
        run = self._run
        if run is not None:
            if run.popen is not None and run.popen.poll() is None:
                _DETACHED.append(run.popen)
            await self.stop_output()
            if run.log_fh is not None:
                run.log_fh.close()  # the child keeps its own descriptor
                run.log_fh = None
        self._run = None

    async def aclose(self) -> None:
        await self._http.aclose()

    def _need_run(self) -> _Run:
        if self._run is None:
            raise ServerProcessError("no ComfyUI process was started")
        return self._run

    async def _spawn_piped(self, kwargs: dict[str, Any]) -> _Run:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            _PipeProtocol,
            *self._command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        pid = transport.get_pid()
        run = _Run(pid, create_time=_create_time(pid), transport=transport, protocol=protocol)
        self._on_line(run, f"{MARKER} started ComfyUI (pid {pid}): {' '.join(self._command)}")
        run.first_line = self.log.total

        def on_data(data: bytes) -> None:
            for line in run.splitter.feed(data):
                self._on_line(run, line)

        protocol.on_data = on_data
        protocol.on_exit = run.poll
        for chunk in protocol.early:
            on_data(chunk)
        protocol.early.clear()
        if protocol.exited_early:
            run.poll()
        return run

    async def _spawn_to_file(self, path: Path, kwargs: dict[str, Any]) -> _Run:
        # No pipe: the server must outlive POD Studio in keep-running mode. A plain Popen
        # (polled) rather than an asyncio transport, which kills its child when collected.
        def launch() -> tuple[subprocess.Popen[bytes], IO[bytes]]:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "wb")  # noqa: SIM115 - closed when the run ends or is detached
            try:
                popen = subprocess.Popen(
                    self._command,
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    **kwargs,
                )
            except BaseException:
                fh.close()
                raise
            return popen, fh

        popen, fh = await asyncio.to_thread(launch)
        run = _Run(popen.pid, create_time=_create_time(popen.pid), popen=popen, log_fh=fh)
        self._on_line(run, f"{MARKER} started ComfyUI (pid {run.pid}): {' '.join(self._command)}")
        run.first_line = self.log.total
        run.reader = asyncio.create_task(
            self._tail_file(run, path, from_end=False), name="comfyui-log-tail"
        )
        return run

    # --- output --------------------------------------------------------------------------------

    async def _tail_file(self, run: _Run, path: Path, *, from_end: bool) -> None:
        splitter = _LineSplitter()
        fh = await asyncio.to_thread(open, path, "rb")
        try:
            if from_end:
                fh.seek(0, os.SEEK_END)
            while True:
                data = await asyncio.to_thread(fh.read, _READ_CHUNK)
                if data:
                    for line in splitter.feed(data):
                        self._on_line(run, line)
                    continue
                if run.poll():
                    break
                # Polling: a regular file has no portable "more data" notification; the exit
                # event cuts the wait short.
                await run.wait(_TAIL_INTERVAL)
            for line in splitter.flush():
                self._on_line(run, line)
        finally:
            fh.close()

    def _lines_of(self, run: _Run) -> list[str]:
        return [line for _, line in self.log.since(run.first_line)]

    def _on_line(self, run: _Run, line: str) -> None:
        number = self.log.append(line)
        for fn in list(self._listeners):
            try:
                fn(line)
            except Exception:
                log.exception("a ComfyUI log listener failed")
        if self._emit_log_events:
            try:
                self._sink(ComfyUILogLine(line=line, pid=run.pid, number=number))
            except Exception:
                log.exception("the event sink failed")


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
