"""The operating-system side of a local ComfyUI server (``adapters/comfyui/process.py``)
against a stand-in server run as a real subprocess: the sandbox ComfyUI (``python -m
pod_studio sandbox comfyui --port N``) and small ``python -c`` programs. The process is run
as the app runs it, under its supervisor (``composition.comfyui_process.supervised_comfyui``);
the restart policy itself is tested in ``tests/services/test_comfyui_supervisor.py``.

Every wait is on an event or a condition with a timeout; processes and process groups are
checked with the OS (psutil, ``os.killpg``) after each stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from pod_studio.adapters.comfyui.process import (
    MARKER,
    STATE_FILE_NAME,
    ComfyUIProcess,
    LogBuffer,
    command_from_settings,
    live_record,
    probe_ready,
    read_record,
    stop_recorded,
)
from pod_studio.composition.comfyui_process import supervised_comfyui
from pod_studio.domain.comfyui_process import (
    ComfyUILogLine,
    ComfyUIProcessChanged,
    ProcessState,
    ServerProcessError,
    ServerRecord,
)
from pod_studio.domain.events import Event
from pod_studio.domain.settings import ComfyUIProcessSettings
from pod_studio.services.comfyui_process import ComfyUISupervisor

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_command(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pod_studio", "sandbox", "comfyui", "--port", str(port), *extra]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group ``pgid``."""
    found: list[int] = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Recorder:
    """An ``EventSink`` that records events and lets a test await one that matches."""

    def __init__(self) -> None:
        self.items: list[Event] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []

    def __call__(self, event: Event) -> None:
        self.items.append(event)
        for match, future in list(self._waiters):
            if not future.done() and match(event):
                future.set_result(event)

    def states(self) -> list[ProcessState]:
        return [e.state for e in self.items if isinstance(e, ComfyUIProcessChanged)]

    def changes(self, state: ProcessState | None = None) -> list[ComfyUIProcessChanged]:
        return [
            e
            for e in self.items
            if isinstance(e, ComfyUIProcessChanged) and (state is None or e.state is state)
        ]

    async def wait_for(self, match: Callable[[Event], bool], within: float = 30.0) -> Event:
        """The first recorded event that matches (already seen, or still to come)."""
        for event in self.items:
            if match(event):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        entry = (match, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self._waiters.remove(entry)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def made() -> AsyncIterator[list[ComfyUISupervisor]]:
    """Servers a test made; each is stopped (nothing left running) at the end."""
    servers: list[ComfyUISupervisor] = []
    yield servers
    for proc in servers:
        await proc.stop()
        await proc.aclose()


def make(
    made: list[ComfyUISupervisor], command: Sequence[str], port: int, **options: Any
) -> ComfyUISupervisor:
    """A supervised server, as the app makes it (``supervised_comfyui``)."""
    options.setdefault("env", child_env())
    options.setdefault("ready_timeout", 30.0)
    options.setdefault("ready_poll", 0.05)
    options.setdefault("restart_delay", 0.05)
    options.setdefault("interrupt_timeout", 10.0)
    proc = supervised_comfyui(command, port=port, **options)
    made.append(proc)
    return proc


def output(proc: ComfyUISupervisor) -> LogBuffer:
    """The server's kept output."""
    assert isinstance(proc.process, ComfyUIProcess)
    return proc.process.log


# --- start, readiness, stop ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_waits_for_system_stats_and_stop_leaves_nothing_behind(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port), port, sink=recorder)
    assert not await probe_ready(proc.url)

    await proc.start()

    assert proc.state is ProcessState.READY
    assert await probe_ready(proc.url)
    pid = proc.pid
    assert pid is not None and running(pid)
    assert os.getpgid(pid) == pid  # its own process group (start_new_session)
    assert output(proc).search("LISTENING ON"), output(proc).lines()
    assert output(proc).lines()[0].startswith(f"{MARKER} started ComfyUI (pid {pid})")

    reason = await proc.stop()

    assert reason is not None and reason.requested
    assert reason.returncode == 0  # the sandbox, like ComfyUI, ends cleanly on SIGINT
    assert "stopped on SIGINT" in reason.summary
    assert "Stopped server" in reason.last_lines
    assert not running(pid)
    assert group_members(pid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not await probe_ready(proc.url)
    assert proc.state is ProcessState.STOPPED and proc.pid is None
    assert recorder.states() == [
        ProcessState.STARTING,
        ProcessState.READY,
        ProcessState.STOPPING,
        ProcessState.STOPPED,
    ]
    lines = [e for e in recorder.items if isinstance(e, ComfyUILogLine)]
    assert [e.line for e in lines] == output(proc).lines()
    assert [e.number for e in lines] == list(range(1, len(lines) + 1))


@pytest.mark.asyncio
async def test_start_refuses_a_port_in_use(made: list[ComfyUISupervisor]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        proc = make(made, sandbox_command(port), port)
        with pytest.raises(ServerProcessError, match="already in use"):
            await proc.start()
    assert proc.spawns == 0


# --- graceful stop ---------------------------------------------------------------------------

# A server that ignores SIGINT and SIGTERM is not possible with SIGKILL; this one ignores
# SIGINT (so the stop escalates to SIGTERM) and leaves a helper in its process group that
# ignores both (so the leftover sweep must kill it).
_STUBBORN = """
import signal, subprocess, sys
helper = subprocess.Popen([sys.executable, "-c",
    "import signal, time\\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
    "print('helper', flush=True)\\n"
    "time.sleep(120)"])
print('helper pid', helper.pid, flush=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)
from pod_studio.sandbox import comfyui
comfyui.serve_forever('127.0.0.1', int(sys.argv[1]))
"""


@pytest.mark.asyncio
async def test_stop_escalates_and_kills_the_whole_process_group(
    made: list[ComfyUISupervisor],
) -> None:
    port = free_port()
    command = [sys.executable, "-c", _STUBBORN, str(port)]
    proc = make(made, command, port, interrupt_timeout=0.5, terminate_timeout=5.0)
    await proc.start()
    pid = proc.pid
    assert pid is not None
    helper_lines = [line for line in output(proc).lines() if line.startswith("helper pid ")]
    assert helper_lines, output(proc).lines()
    helper = int(helper_lines[0].split()[-1])
    assert sorted(group_members(pid)) == sorted([pid, helper])

    reason = await proc.stop()

    assert reason is not None
    assert "did not stop within 0.5 s of SIGINT; terminated" in reason.summary
    assert reason.returncode == -signal.SIGTERM
    assert not running(pid) and not running(helper)
    assert group_members(pid) == []


# --- output ----------------------------------------------------------------------------------


def test_log_buffer_is_bounded_and_searchable() -> None:
    buf = LogBuffer(3)
    for line in ["Starting server", "Loading model", "CUDA Out Of Memory", "retry", "ok"]:
        buf.append(line)
    assert buf.lines() == ["CUDA Out Of Memory", "retry", "ok"]
    assert (len(buf), buf.total, buf.dropped, buf.capacity) == (3, 5, 2, 3)
    assert buf.search("out of memory") == [(3, "CUDA Out Of Memory")]
    assert buf.search("out of memory", case_sensitive=True) == []
    assert buf.search("Loading") == []  # fell off the ring
    assert buf.since(4) == [(5, "ok")]
    assert buf.tail(2) == ["retry", "ok"] and buf.tail(0) == []
    with pytest.raises(ValueError):
        LogBuffer(0)


_CHATTY = r"""
import sys
out = sys.stdout.buffer
for i in range(50):
    out.write(b"line %d\n" % i)
out.write(b"progress 10%\rprogress 50%\rprogress 100%\n")
snowman = "caf\u00e9 \u2603\n".encode()
out.write(snowman[:4]); out.flush(); out.write(snowman[4:])
out.write(b"no newline at the end")
out.flush()
"""


@pytest.mark.asyncio
async def test_output_lines_reach_the_ring_buffer_and_the_listeners(
    made: list[ComfyUISupervisor], recorder: Recorder
) -> None:
    seen: list[str] = []
    proc = make(
        made,
        [sys.executable, "-c", _CHATTY],
        free_port(),
        sink=recorder,
        on_line=seen.append,
        log_capacity=10,
        auto_restart=False,
    )
    with pytest.raises(ServerProcessError, match="exited normally"):
        await proc.start()

    assert len(output(proc)) == 10
    assert output(proc).total == 1 + 50 + 3  # marker, 50 lines, progress, café, last partial
    assert output(proc).tail(3) == ["progress 100%", "café ☃", "no newline at the end"]
    assert seen == [e.line for e in recorder.items if isinstance(e, ComfyUILogLine)]
    assert len(seen) == output(proc).total


# --- keep-running mode, the state file, stale pids -------------------------------------------


@pytest.mark.asyncio
async def test_keep_running_leaves_the_server_for_another_process_to_stop(
    made: list[ComfyUISupervisor], tmp_path: Path, recorder: Recorder
) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    proc = make(
        made, sandbox_command(port), port, state_dir=state_dir, keep_running=True, sink=recorder
    )
    await proc.start()
    pid = proc.pid
    assert pid is not None
    # The output goes to a log file (a pipe would break when the app exits) and is tailed.
    await recorder.wait_for(lambda e: isinstance(e, ComfyUILogLine) and "listening on" in e.line)

    record = live_record(state_dir)
    assert record is not None
    assert (record.pid, record.pgid, record.port) == (pid, pid, port)
    assert record.log_file is not None
    assert await asyncio.to_thread(Path(record.log_file).is_file)

    await proc.aclose()  # the app exits

    assert running(pid) and await probe_ready(record.url)
    assert live_record(state_dir) == record

    reason = await stop_recorded(state_dir)  # `pod-studio comfyui stop`

    assert reason is not None and "stopped (SIGINT)" in reason.summary
    assert "Stopped server" in reason.last_lines  # read from the log file
    assert not running(pid) and group_members(pid) == []
    assert read_record(state_dir) is None
    assert await stop_recorded(state_dir) is None


@pytest.mark.asyncio
async def test_app_exit_stops_a_server_it_does_not_keep(
    made: list[ComfyUISupervisor], tmp_path: Path
) -> None:
    port = free_port()
    proc = make(made, sandbox_command(port), port, state_dir=tmp_path)
    await proc.start()
    pid = proc.pid
    assert pid is not None and live_record(tmp_path) is not None  # findable after a crash

    await proc.aclose()

    assert not running(pid) and group_members(pid) == []
    assert read_record(tmp_path) is None


def _write(state_dir: Path, **fields: Any) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    data = {"pid": 1, "port": 8188, "started_at": "2026-01-01T00:00:00Z", **fields}
    (state_dir / STATE_FILE_NAME).write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.asyncio
async def test_stale_records_are_removed(tmp_path: Path) -> None:
    done = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await done.wait()
    _write(tmp_path, pid=done.pid)
    assert read_record(tmp_path) is not None
    assert live_record(tmp_path) is None  # the pid is gone
    assert not (tmp_path / STATE_FILE_NAME).exists()

    me = psutil.Process()
    _write(tmp_path, pid=me.pid, create_time=me.create_time() - 3600)
    assert live_record(tmp_path) is None  # the pid was reused by another process

    _write(tmp_path, pid=me.pid, create_time=me.create_time())
    record = live_record(tmp_path)
    assert isinstance(record, ServerRecord) and record.pid == me.pid

    (tmp_path / STATE_FILE_NAME).write_text("{not json", encoding="utf-8")
    assert read_record(tmp_path) is None
    assert await asyncio.to_thread(lambda: list(tmp_path.glob(f"{STATE_FILE_NAME}.corrupt-*")))


# --- the command line from settings -----------------------------------------------------------


def test_command_from_settings(tmp_path: Path) -> None:
    folder = tmp_path / "ComfyUI"
    folder.mkdir()
    settings = ComfyUIProcessSettings(folder=str(folder), port=8190, extra_args="--lowvram")
    with pytest.raises(ServerProcessError, match="no main.py"):
        command_from_settings(settings)
    (folder / "main.py").write_text("", encoding="utf-8")
    venv_python = folder / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("", encoding="utf-8")

    assert command_from_settings(settings) == [
        str(venv_python),
        str(folder / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        "8190",
        "--lowvram",
    ]
    chosen = settings.model_copy(update={"python": sys.executable})
    assert command_from_settings(chosen)[0] == sys.executable
    missing = settings.model_copy(update={"python": str(tmp_path / "nope" / "python")})
    with pytest.raises(ServerProcessError, match="not found"):
        command_from_settings(missing)
    with pytest.raises(ServerProcessError, match="no ComfyUI folder"):
        command_from_settings(ComfyUIProcessSettings())
