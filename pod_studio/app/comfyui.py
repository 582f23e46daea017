"""App layer: ComfyUIServerController — the local ComfyUI server for the ComfyUI dock.

It passes the bridge's server events on as typed signals, runs the dock's buttons (start,
stop, restart, free memory, interrupt all, clear queue) through the ``TaskRunner`` and says
each outcome in words. ``describe_state`` turns a ``ProcessState`` into the dock's words.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from PySide6.QtCore import QObject, Signal

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.comfyui_process import (
    ComfyUIGaugesUpdated,
    ComfyUILogLine,
    ComfyUIProcessChanged,
)
from pod_studio.domain.errors import user_message
from pod_studio.domain.views import ComfyUIAction, ComfyUIServerView

log = logging.getLogger(__name__)

_STATE_WORDS = {
    "stopped": "Stopped",
    "starting": "Starting… (loading; ComfyUI does not answer yet)",
    "ready": "Running",
    "stopping": "Stopping…",
    "exited": "Ended unexpectedly",
    "failed": "Not running (it failed and was not restarted)",
}

_ACTION_WORDS = {
    ComfyUIAction.START: "starting ComfyUI…",
    ComfyUIAction.STOP: "stopping ComfyUI…",
    ComfyUIAction.RESTART: "restarting ComfyUI…",
    ComfyUIAction.FREE_MEMORY: "freeing memory…",
    ComfyUIAction.INTERRUPT_ALL: "interrupting…",
    ComfyUIAction.CLEAR_QUEUE: "clearing the queue…",
}

NOT_SET_UP = (
    "ComfyUI is not set up here: choose the ComfyUI folder in Settings → ComfyUI server "
    "to let POD Studio start and stop it."
)


def describe_state(state: str) -> str:
    """The dock's words for a ``ProcessState`` value."""
    return _STATE_WORDS.get(state, state)


class ComfyUIServerController(QObject):
    """Signals:
    sig_process_changed(ComfyUIProcessChanged), sig_log_line(ComfyUILogLine),
    sig_gauges_updated(ComfyUIGaugesUpdated): the server's events, from the bridge.
    sig_action_started(str action, str words): a button's work began.
    sig_action_finished(str action, bool ok, str message): it ended (message in words).
    sig_view_changed(): the server was set up again (settings saved); read ``view()``.
    """

    sig_process_changed = Signal(object)
    sig_log_line = Signal(object)
    sig_gauges_updated = Signal(object)
    sig_action_started = Signal(str, str)
    sig_action_finished = Signal(str, bool, str)
    sig_view_changed = Signal()

    def __init__(
        self,
        runner: TaskRunner,
        bridge: QtEventBridge,
        view: Callable[[], ComfyUIServerView],
        control: Callable[[ComfyUIAction], Awaitable[str]],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._view = view
        self._control = control
        self._busy: set[ComfyUIAction] = set()
        bridge.sig_comfyui_process_changed.connect(self._on_bridge_process_changed)
        bridge.sig_comfyui_log_line.connect(self._on_bridge_log_line)
        bridge.sig_comfyui_gauges_updated.connect(self._on_bridge_gauges_updated)

    def view(self) -> ComfyUIServerView:
        return self._view()

    def settings_changed(self, _settings: object = None) -> None:
        """Connect to the settings' saved signal: the Core rebuilt the server from them."""
        self.sig_view_changed.emit()

    def busy(self, action: ComfyUIAction) -> bool:
        return action in self._busy

    def run(self, action: ComfyUIAction) -> bool:
        """Do ``action`` in the background; False when it is already under way."""
        if action in self._busy:
            return False
        self._busy.add(action)
        self.sig_action_started.emit(action.value, _ACTION_WORDS[action])
        self._runner.spawn(self._run(action), name=f"comfyui-{action.value}")
        return True

    async def _run(self, action: ComfyUIAction) -> None:
        try:
            message = await self._control(action)
        except Exception as exc:  # noqa: BLE001 - shown in the dock, in words
            log.info("ComfyUI %s failed: %s", action.value, exc)
            self.sig_action_finished.emit(action.value, False, user_message(exc))
            return
        finally:
            self._busy.discard(action)
        self.sig_action_finished.emit(action.value, True, message)

    def _on_bridge_process_changed(self, event: ComfyUIProcessChanged) -> None:
        self.sig_process_changed.emit(event)

    def _on_bridge_log_line(self, event: ComfyUILogLine) -> None:
        self.sig_log_line.emit(event)

    def _on_bridge_gauges_updated(self, event: ComfyUIGaugesUpdated) -> None:
        self.sig_gauges_updated.emit(event)
