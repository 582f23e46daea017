"""Services layer: the local ComfyUI server POD Studio looks after.

``ComfyUISupervisor`` is the restart policy over one server process (``ServerProcessPort``,
the operating-system side in ``adapters/comfyui/process.py``): ``start()`` returns once the
server answers; a server that died on its own is restarted after ``restart_delay``, guarded
by a crash-loop ``CircuitBreaker`` (three deaths within two minutes: not restarted again); a
server that never answered within its ready timeout is stopped and not restarted; every
state change goes to the event sink as ``ComfyUIProcessChanged``, with the reason in words
(exit code or signal, last lines, an out-of-memory hint).

``ComfyUIServerService`` ties a managed process (``ComfyUIProcessPort``, may be ``None`` when
the seller runs ComfyUI elsewhere) to the server's control calls (``ComfyUIControlPort``):

- app start: adopt a server left running, or start one when ``auto_start`` is on;
- start / stop / restart, free memory, interrupt all, clear the queue;
- gauges (queue length, VRAM) read every ``gauge_interval`` seconds while the server is ready
  and pushed as ``ComfyUIGaugesUpdated`` events; a failed read is logged, never raised;
- app exit: stop the server unless keep-running mode leaves it running.

Jobs that were running when the server died need nothing here: the ComfyUI client reconciles
every prompt with ``/history`` and ``/queue`` once the server answers again and resubmits the
ones it lost (``RunUpdate`` kind "resubmitted" → ``JobResubmitted``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pod_studio.domain.breaker import BreakerConfig, CircuitBreaker
from pod_studio.domain.comfyui_process import (
    SERVICE,
    ComfyUIControlPort,
    ComfyUIGauges,
    ComfyUIGaugesUpdated,
    ComfyUIProcessChanged,
    ComfyUIProcessPort,
    ExitReason,
    ProcessState,
    ServerProcessError,
    ServerProcessPort,
    describe_exit,
)
from pod_studio.domain.errors import CircuitOpenError, PodStudioError
from pod_studio.domain.errors import TimeoutError as PodTimeoutError
from pod_studio.domain.events import EventSink, null_sink
from pod_studio.domain.settings import ComfyUIProcessSettings

__all__ = ["ComfyUIServerService", "ComfyUISupervisor", "default_process_breaker"]

log = logging.getLogger(__name__)

# why a run ended: (the reason, readiness timed out, it had been ready); None: stopped on request
_Outcome = tuple[ExitReason, bool, bool] | None


def default_process_breaker(name: str = "comfyui-process") -> CircuitBreaker:
    """Three deaths within two minutes is a crash loop: stop restarting."""
    return CircuitBreaker(
        name, BreakerConfig(failure_threshold=3, window_seconds=120.0, reset_timeout=60.0)
    )


class ComfyUISupervisor:
    """A local ComfyUI server: start, stop, restart, auto-restart, adopt.

    Use it from the event-loop thread. ``start()`` returns once the server answers
    ``/system_stats``. It raises ``ServerProcessError`` when the server will not run (it died
    at start and the crash-loop breaker opened, or it died and auto-restart is off, or the
    port is taken) and the domain ``TimeoutError`` when it never answered within the ready
    timeout (then it is stopped and not restarted).
    """

    def __init__(
        self,
        process: ServerProcessPort,
        *,
        sink: EventSink = null_sink,
        auto_restart: bool = True,
        restart_delay: float = 2.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.process = process
        self._sink = sink
        self.auto_restart = auto_restart
        self._restart_delay = restart_delay
        self.breaker = breaker or default_process_breaker()
        self._state = ProcessState.STOPPED
        self._changed = asyncio.Condition()
        self._supervisor: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stop_requested = False
        self._detaching = False
        self._failure: PodStudioError | None = None
        self._restarts = 0
        self.last_exit: ExitReason | None = None
        self._closed = False

    # --- queries -------------------------------------------------------------------------------

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def pid(self) -> int | None:
        """The running server's pid (``None`` when none runs)."""
        return self.process.pid

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def keep_running(self) -> bool:
        return self.process.keep_running

    @property
    def restarts(self) -> int:
        """Automatic restarts since the last ``start()``."""
        return self._restarts

    @property
    def spawns(self) -> int:
        """Processes spawned since the process object was made."""
        return self.process.spawns

    @property
    def failure(self) -> PodStudioError | None:
        """Why the server was given up on (state FAILED), else ``None``."""
        return self._failure

    def log_lines(self) -> list[str]:
        """The kept output lines, oldest first."""
        return self.process.log_lines()

    def search_log(self, text: str) -> list[tuple[int, str]]:
        """(number, line) of the kept lines containing ``text`` (case-insensitive)."""
        return self.process.search_log(text)

    async def wait_for_state(self, *states: ProcessState, within: float = 30.0) -> ProcessState:
        """Wait until the state is one of ``states`` and return it (the builtin
        ``TimeoutError`` after ``within`` seconds)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self._state in states), within)
            return self._state

    # --- start / stop / restart ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the server (unless it runs) and wait until it answers ``/system_stats``."""
        async with self._lock:
            if self._closed:
                raise ServerProcessError("this ComfyUI process object was closed")
            if self._supervisor is None or self._supervisor.done():
                self.process.check_free()
                self._reset_for_start()
                await self._set_state(
                    ProcessState.STARTING, detail=" ".join(self.process.command[:2])
                )
                self._supervisor = asyncio.create_task(
                    self._supervise(adopted=False), name=f"comfyui-process:{self.process.port}"
                )
        await self._wait_settled()

    async def attach(self) -> bool:
        """Adopt the server the state file names (left running by an earlier POD Studio, or
        started by ``pod-studio comfyui start``). True when one runs and is now watched; it is
        then stopped and auto-restarted like a server this object started."""
        async with self._lock:
            if self._closed:
                return False
            if self._supervisor is not None and not self._supervisor.done():
                return True
            pid = await self.process.adopt()
            if pid is None:
                return False
            self._reset_for_start()
            await self._set_state(ProcessState.STARTING, detail=f"adopting pid {pid}")
            self._supervisor = asyncio.create_task(
                self._supervise(adopted=True), name=f"comfyui-process:{self.process.port}"
            )
        try:
            await self._wait_settled()
        except PodStudioError as exc:
            log.warning("could not adopt ComfyUI (pid %s): %s", pid, exc)
            return False
        return True

    async def stop(self) -> ExitReason | None:
        """Stop gracefully (SIGINT, then SIGTERM, then SIGKILL on the process group) and wait
        until nothing of it is left. Returns how it ended; ``None`` when nothing ran."""
        async with self._lock:
            return await self._stop_locked()

    async def restart(self) -> None:
        async with self._lock:
            await self._stop_locked()
        await self.start()

    async def detach(self) -> None:
        """Stop watching and leave the server running (its output goes to the log file)."""
        async with self._lock:
            if self.process.piped and self.process.alive:
                raise ServerProcessError(
                    "a server whose output is a pipe cannot be left running; "
                    "start it with keep_running=True"
                )
            await self._detach_locked()

    async def aclose(self) -> None:
        """At app exit: stop the server, unless keep-running mode leaves it running."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.process.keep_running and not self.process.piped:
                await self._detach_locked()
            else:
                await self._stop_locked()
        await self.process.aclose()

    # --- internals -----------------------------------------------------------------------------

    def _reset_for_start(self) -> None:
        self._stop_requested = False
        self._detaching = False
        self._failure = None
        self._restarts = 0
        self.breaker.reset()

    async def _wait_settled(self) -> None:
        # Bounded: every start attempt is bounded by the ready timeout, and the breaker
        # bounds the number of attempts.
        attempts = self.breaker.config.failure_threshold + 1
        within = attempts * (self.process.ready_timeout + self._restart_delay + 30.0)
        state = await self.wait_for_state(
            ProcessState.READY, ProcessState.FAILED, ProcessState.STOPPED, within=within
        )
        if state is ProcessState.READY:
            return
        if state is ProcessState.FAILED and self._failure is not None:
            raise self._failure
        raise ServerProcessError(
            "ComfyUI was stopped before it became ready",
            reason=self.last_exit,
            user_message="ComfyUI was stopped before it became ready.",
        )

    async def _supervise(self, *, adopted: bool) -> None:
        try:
            await self._supervise_loop(adopted)
        except asyncio.CancelledError:
            if not self._detaching and self.process.alive:
                await self.process.terminate()
            raise
        except Exception as exc:  # a bug here must not leave a server nobody watches
            log.exception("the ComfyUI supervisor failed")
            if self.process.alive:
                await self.process.terminate()
            self._failure = ServerProcessError(f"the ComfyUI supervisor failed: {exc}")
            await self._set_state(ProcessState.FAILED, detail=self._failure.message)

    async def _supervise_loop(self, adopted: bool) -> None:
        first = True
        while True:
            try:
                admission = self.breaker.admit()
            except CircuitOpenError:
                await self._give_up()
                return
            if not first:
                self._restarts += 1
                await self._set_state(
                    ProcessState.STARTING,
                    detail=f"restarting in {self._restart_delay:g} s (restart {self._restarts})",
                )
                await asyncio.sleep(self._restart_delay)
            if first and adopted:
                outcome = await self._follow(spawned=False)
            else:
                outcome = await self._run_once()
            first = False
            if self._stop_requested or outcome is None:
                return
            reason, timed_out, was_ready = outcome
            self.last_exit = reason
            if was_ready:
                self.breaker.record_success(admission)
            self.breaker.record_failure(admission, ServerProcessError(reason.summary))
            await self._set_state(
                ProcessState.EXITED,
                detail=reason.summary,
                returncode=reason.returncode,
                out_of_memory=reason.out_of_memory,
            )
            if timed_out:
                self._failure = PodTimeoutError(
                    reason.summary, service=SERVICE, user_message=reason.summary, retryable=False
                )
                await self._set_state(ProcessState.FAILED, detail=reason.summary)
                return
            if not self.auto_restart:
                self._failure = ServerProcessError(
                    reason.summary, reason=reason, user_message=reason.summary
                )
                await self._set_state(ProcessState.FAILED, detail=reason.summary)
                return

    async def _give_up(self) -> None:
        reason = self.last_exit
        cause = reason.summary if reason is not None else "it kept dying"
        config = self.breaker.config
        message = (
            f"ComfyUI died {config.failure_threshold} times within {config.window_seconds:g} s;"
            f" not restarting it again. {cause}"
        )
        self._failure = ServerProcessError(message, reason=reason, user_message=message)
        await self._set_state(
            ProcessState.FAILED,
            detail=message,
            returncode=reason.returncode if reason is not None else None,
            out_of_memory=reason.out_of_memory if reason is not None else False,
        )

    async def _run_once(self) -> _Outcome:
        """Spawn, wait until ready, wait until it ends."""
        try:
            await self.process.spawn()
        except OSError as exc:
            command = " ".join(self.process.command[:2])
            note = f"ComfyUI could not be started ({command}): {exc}"
            return describe_exit(None, [], note=note), False, False
        return await self._follow(spawned=True)

    async def _follow(self, *, spawned: bool) -> _Outcome:
        process = self.process
        ready = await process.wait_ready()
        if self._stop_requested:
            return None
        if ready is None:
            note = (
                f"ComfyUI did not answer on {process.url}/system_stats within "
                f"{process.ready_timeout:g} s; it was stopped"
            )
            await process.terminate()
            await process.drain()
            process.forget()
            return process.exit_reason(note=note), True, False
        if ready:
            if spawned:
                process.record()
            await self._set_state(ProcessState.READY, detail=f"answering on {process.url}")
            await process.wait_exit()
        await process.drain()
        if self._stop_requested:
            return None
        process.forget()
        return process.exit_reason(), False, bool(ready)

    async def _stop_locked(self) -> ExitReason | None:
        self._stop_requested = True
        process = self.process
        supervisor = self._supervisor
        reason: ExitReason | None = None
        if process.alive:
            await self._set_state(ProcessState.STOPPING, detail="stopping (SIGINT)")
            how = await process.terminate()
            await process.drain()
            reason = process.exit_reason(
                requested=True, note=f"ComfyUI (pid {process.run_pid}) {how}"
            )
            self.last_exit = reason
            process.forget()
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        self._supervisor = None
        await process.stop_output()
        if self._state is not ProcessState.STOPPED:
            await self._set_state(
                ProcessState.STOPPED,
                detail=reason.summary if reason is not None else "stopped",
                returncode=reason.returncode if reason is not None else None,
            )
        return reason

    async def _detach_locked(self) -> None:
        self._stop_requested = True
        self._detaching = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self.process.detach()
        if self._state is not ProcessState.STOPPED:
            await self._set_state(ProcessState.STOPPED, detail="left running (keep-running mode)")

    async def _set_state(
        self,
        state: ProcessState,
        *,
        detail: str = "",
        returncode: int | None = None,
        out_of_memory: bool = False,
    ) -> None:
        async with self._changed:
            self._state = state
            self._changed.notify_all()
        try:
            self._sink(
                ComfyUIProcessChanged(
                    state=state,
                    pid=self.process.run_pid,
                    port=self.process.port,
                    url=self.process.url,
                    detail=detail,
                    returncode=returncode,
                    out_of_memory=out_of_memory,
                    restarts=self._restarts,
                )
            )
        except Exception:
            log.exception("the event sink failed")


class ComfyUIServerService:
    """Use it from the event-loop thread; call ``aclose()`` at app exit."""

    def __init__(
        self,
        settings: ComfyUIProcessSettings,
        control: ComfyUIControlPort,
        process: ComfyUIProcessPort | None = None,
        *,
        sink: EventSink = null_sink,
        gauge_interval: float = 2.0,
    ) -> None:
        self.settings = settings
        self.process = process
        self._control = control
        self._sink = sink
        self._gauge_interval = gauge_interval
        self._gauges_task: asyncio.Task[None] | None = None
        self.last_gauges: ComfyUIGauges | None = None

    @property
    def managed(self) -> bool:
        """True when POD Studio looks after the server process."""
        return self.process is not None

    def _need_process(self) -> ComfyUIProcessPort:
        if self.process is None:
            raise ServerProcessError(
                "POD Studio does not manage a ComfyUI server",
                user_message="Set the ComfyUI folder in the settings to let POD Studio start "
                "and stop ComfyUI.",
            )
        return self.process

    # --- lifecycle -----------------------------------------------------------------------------

    async def on_app_start(self) -> ProcessState | None:
        """Adopt a server left running; else start one if ``auto_start``. Returns the state
        (``None`` when nothing is managed). A start failure is logged and shown by events."""
        process = self.process
        if process is None:
            return None
        try:
            if not await process.attach() and self.settings.auto_start:
                await process.start()
        except PodStudioError as exc:
            log.warning("ComfyUI did not start: %s", exc)
        return process.state

    async def start(self) -> None:
        await self._need_process().start()

    async def stop(self) -> ExitReason | None:
        return await self._need_process().stop()

    async def restart(self) -> None:
        await self._need_process().restart()

    async def aclose(self) -> None:
        await self.stop_gauges()
        if self.process is not None:
            await self.process.aclose()

    # --- control -------------------------------------------------------------------------------

    async def free_memory(self) -> None:
        await self._control.free_memory(unload_models=True, free_memory=True)

    async def interrupt_all(self) -> None:
        await self._control.interrupt_all()

    async def clear_queue(self) -> None:
        await self._control.clear_queue()

    # --- gauges --------------------------------------------------------------------------------

    async def read_gauges(self) -> ComfyUIGauges:
        gauges = await self._control.gauges()
        self.last_gauges = gauges
        self._sink(ComfyUIGaugesUpdated(gauges=gauges))
        return gauges

    def start_gauges(self) -> None:
        """Read the gauges every ``gauge_interval`` seconds until ``stop_gauges()``."""
        if self._gauges_task is None or self._gauges_task.done():
            self._gauges_task = asyncio.create_task(self._gauges_loop(), name="comfyui-gauges")

    async def stop_gauges(self) -> None:
        task, self._gauges_task = self._gauges_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _gauges_loop(self) -> None:
        while True:
            process = self.process
            if process is None or process.state is ProcessState.READY:
                try:
                    await self.read_gauges()
                except PodStudioError as exc:
                    log.debug("gauges of ComfyUI unavailable: %s", exc)
            # A periodic read: the gauges have no change notification to wait for.
            await asyncio.sleep(self._gauge_interval)
