"""Services layer: the local ComfyUI server use cases behind the ComfyUI dock.

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

from pod_studio.domain.comfyui_process import (
    ComfyUIControlPort,
    ComfyUIGauges,
    ComfyUIGaugesUpdated,
    ComfyUIProcessPort,
    ExitReason,
    ProcessState,
    ServerProcessError,
)
from pod_studio.domain.errors import PodStudioError
from pod_studio.domain.events import EventSink, null_sink
from pod_studio.domain.settings import ComfyUIProcessSettings

log = logging.getLogger(__name__)


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
