"""UI layer: ComfyUIDock — the local ComfyUI server POD Studio looks after.

A pure view of the server's events (``ComfyUIServerController``): the state in words, the
exit reason, Start / Stop / Restart, Free memory, Interrupt all, Clear queue, the queue
length and a VRAM gauge, and a bounded log (the last ``LOG_LINES`` lines) with a search box.
When no ComfyUI folder is set up it says so and points at Settings.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.comfyui import NOT_SET_UP, ComfyUIServerController, describe_state
from pod_studio.domain.comfyui_process import (
    ComfyUIGaugesUpdated,
    ComfyUILogLine,
    ComfyUIProcessChanged,
)
from pod_studio.domain.views import ComfyUIAction

LOG_LINES = 2000
_GIB = 1024**3

_STATE_COLOURS = {
    "ready": "#2e9d4f",
    "starting": "#b26a00",
    "stopping": "#b26a00",
    "stopped": "#6b7280",
    "exited": "#c0392b",
    "failed": "#c0392b",
}

# which buttons make sense in which state
_ENABLED = {
    ComfyUIAction.START: {"stopped", "exited", "failed"},
    ComfyUIAction.STOP: {"starting", "ready", "exited"},
    ComfyUIAction.RESTART: {"ready", "exited", "failed", "starting"},
    ComfyUIAction.FREE_MEMORY: {"ready"},
    ComfyUIAction.INTERRUPT_ALL: {"ready"},
    ComfyUIAction.CLEAR_QUEUE: {"ready"},
}


class ComfyUIDock(QDockWidget):
    """Signals: sig_settings_requested(): the seller asked to set ComfyUI up."""

    sig_settings_requested = Signal()

    def __init__(self, controller: ComfyUIServerController, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("ComfyUI server"), parent)
        self.controller = controller
        self.setObjectName("comfyui_dock")
        self.toggleViewAction().setObjectName("comfyui_dock_toggle")
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.state = "stopped"
        self.stack = QStackedWidget(self)
        self.stack.setObjectName("comfyui_stack")
        self._build_empty()
        self._build_server()
        self.setWidget(self.stack)
        self._connect_signals()
        self.refresh()

    # -- construction -------------------------------------------------------------------

    def _build_empty(self) -> None:
        page = QWidget(self.stack)
        layout = QVBoxLayout(page)
        self.empty_label = QLabel(self.tr(NOT_SET_UP), page)
        self.empty_label.setObjectName("comfyui_empty_label")
        self.empty_label.setWordWrap(True)
        self.open_settings_button = QPushButton(self.tr("Open Settings…"), page)
        self.open_settings_button.setObjectName("comfyui_open_settings_button")
        layout.addWidget(self.empty_label)
        layout.addWidget(self.open_settings_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self.empty_page = page
        self.stack.addWidget(page)

    def _button(self, text: str, name: str, action: ComfyUIAction) -> QPushButton:
        button = QPushButton(text, self.server_page)
        button.setObjectName(name)
        button.clicked.connect(lambda: self.controller.run(action))
        self.buttons[action] = button
        return button

    def _build_server(self) -> None:
        self.server_page = QWidget(self.stack)
        self.buttons: dict[ComfyUIAction, QPushButton] = {}
        self.state_label = QLabel(self.server_page)
        self.state_label.setObjectName("comfyui_state_label")
        self.state_label.setStyleSheet("font-weight: 600;")
        self.url_label = QLabel(self.server_page)
        self.url_label.setObjectName("comfyui_url_label")
        self.detail_label = QLabel(self.server_page)
        self.detail_label.setObjectName("comfyui_detail_label")
        self.detail_label.setWordWrap(True)
        self.message_label = QLabel(self.server_page)
        self.message_label.setObjectName("comfyui_message_label")
        self.message_label.setWordWrap(True)

        row1 = QHBoxLayout()
        row1.addWidget(self._button(self.tr("Start"), "comfyui_start_button", ComfyUIAction.START))
        row1.addWidget(self._button(self.tr("Stop"), "comfyui_stop_button", ComfyUIAction.STOP))
        row1.addWidget(
            self._button(self.tr("Restart"), "comfyui_restart_button", ComfyUIAction.RESTART)
        )
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(
            self._button(
                self.tr("Free memory"), "comfyui_free_memory_button", ComfyUIAction.FREE_MEMORY
            )
        )
        row2.addWidget(
            self._button(
                self.tr("Interrupt all"), "comfyui_interrupt_button", ComfyUIAction.INTERRUPT_ALL
            )
        )
        row2.addWidget(
            self._button(
                self.tr("Clear queue"), "comfyui_clear_queue_button", ComfyUIAction.CLEAR_QUEUE
            )
        )
        row2.addStretch(1)

        self.queue_label = QLabel(self.tr("Queue: —"), self.server_page)
        self.queue_label.setObjectName("comfyui_queue_label")
        self.vram_bar = QProgressBar(self.server_page)
        self.vram_bar.setObjectName("comfyui_vram_bar")
        self.vram_bar.setRange(0, 100)
        self.vram_bar.setValue(0)
        self.vram_bar.setFormat(self.tr("VRAM: unknown"))
        self.vram_bar.setTextVisible(True)
        gauges = QGridLayout()
        gauges.addWidget(self.queue_label, 0, 0)
        gauges.addWidget(self.vram_bar, 0, 1)
        gauges.setColumnStretch(1, 1)

        self.search_edit = QLineEdit(self.server_page)
        self.search_edit.setObjectName("comfyui_log_search")
        self.search_edit.setPlaceholderText(self.tr("Search the log (Enter: next match)"))
        self.search_edit.setClearButtonEnabled(True)
        self.search_result_label = QLabel(self.server_page)
        self.search_result_label.setObjectName("comfyui_search_result_label")
        self.log_view = QPlainTextEdit(self.server_page)
        self.log_view.setObjectName("comfyui_log_view")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(LOG_LINES)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setStyleSheet("font-family: monospace;")
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_edit, 1)
        search_row.addWidget(self.search_result_label)

        layout = QVBoxLayout(self.server_page)
        top = QHBoxLayout()
        top.addWidget(self.state_label)
        top.addStretch(1)
        top.addWidget(self.url_label)
        layout.addLayout(top)
        layout.addWidget(self.detail_label)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(gauges)
        layout.addWidget(self.message_label)
        layout.addLayout(search_row)
        layout.addWidget(self.log_view, 1)
        self.stack.addWidget(self.server_page)

    def _connect_signals(self) -> None:
        c = self.controller
        c.sig_process_changed.connect(self._on_controller_process_changed)
        c.sig_log_line.connect(self._on_controller_log_line)
        c.sig_gauges_updated.connect(self._on_controller_gauges_updated)
        c.sig_action_started.connect(self._on_controller_action_started)
        c.sig_action_finished.connect(self._on_controller_action_finished)
        c.sig_view_changed.connect(self.refresh)
        self.open_settings_button.clicked.connect(self.sig_settings_requested)
        self.search_edit.returnPressed.connect(self.find_next)
        self.search_edit.textChanged.connect(self._on_search_text_changed)

    # -- state --------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Show the server as it is now (after a settings change, at start)."""
        view = self.controller.view()
        if not view.managed:
            self.stack.setCurrentWidget(self.empty_page)
            return
        self.stack.setCurrentWidget(self.server_page)
        self.url_label.setText(view.url)
        self.log_view.setPlainText("\n".join(view.log_lines[-LOG_LINES:]))
        self._show_state(view.state, view.detail, view.pid)

    def _show_state(self, state: str, detail: str, pid: int | None) -> None:
        self.state = state
        words = describe_state(state)
        if pid is not None and state in ("starting", "ready"):
            words += self.tr(" (pid {pid})").format(pid=pid)
        self.state_label.setText(words)
        colour = _STATE_COLOURS.get(state, "#6b7280")
        self.state_label.setStyleSheet(f"font-weight: 600; color: {colour};")
        # why it ended is worth a line; while it runs the detail (command, address) is a tooltip
        ended = state in ("stopped", "exited", "failed")
        self.detail_label.setText(detail if ended else "")
        self.detail_label.setVisible(ended and bool(detail))
        self.state_label.setToolTip("" if ended else detail)
        for action, button in self.buttons.items():
            button.setEnabled(state in _ENABLED[action] and not self.controller.busy(action))
        if state != "ready":
            self.queue_label.setText(self.tr("Queue: —"))
            self.vram_bar.setValue(0)
            self.vram_bar.setFormat(self.tr("VRAM: unknown"))

    @Slot(object)
    def _on_controller_process_changed(self, event: ComfyUIProcessChanged) -> None:
        if self.stack.currentWidget() is not self.server_page:
            self.stack.setCurrentWidget(self.server_page)
        if event.url:
            self.url_label.setText(event.url)
        detail = event.detail
        if event.restarts and event.state in ("starting", "ready"):
            detail = (detail + "; " if detail else "") + self.tr(
                "restarted {n} time(s) after a crash"
            ).format(n=event.restarts)
        if event.state.value in ("exited", "failed"):
            self.message_label.setText("")  # an earlier "✓ running" no longer holds
        self._show_state(event.state.value, detail, event.pid)

    @Slot(object)
    def _on_controller_log_line(self, event: ComfyUILogLine) -> None:
        self.log_view.appendPlainText(event.line)

    @Slot(object)
    def _on_controller_gauges_updated(self, event: ComfyUIGaugesUpdated) -> None:
        g = event.gauges
        self.queue_label.setText(
            self.tr("Queue: {running} running, {pending} waiting").format(
                running=g.queue_running, pending=g.queue_pending
            )
        )
        used = g.vram_used_fraction
        if used is None or not g.vram_total:
            self.vram_bar.setValue(0)
            self.vram_bar.setFormat(
                self.tr("VRAM: unknown") + (f" ({g.device})" if g.device else "")
            )
            return
        used_gib = (g.vram_total - (g.vram_free or 0)) / _GIB
        self.vram_bar.setValue(round(used * 100))
        self.vram_bar.setFormat(
            self.tr("VRAM {used:.1f} / {total:.1f} GiB ({pct}%)").format(
                used=used_gib, total=g.vram_total / _GIB, pct=round(used * 100)
            )
        )
        self.vram_bar.setToolTip(g.device)

    @Slot(str, str)
    def _on_controller_action_started(self, action: str, words: str) -> None:
        self.buttons[ComfyUIAction(action)].setEnabled(False)
        self.message_label.setStyleSheet("")
        self.message_label.setText(words)

    @Slot(str, bool, str)
    def _on_controller_action_finished(self, action: str, ok: bool, message: str) -> None:
        self.message_label.setStyleSheet("color: #2e9d4f;" if ok else "color: #c0392b;")
        self.message_label.setText(("✓ " if ok else "✗ ") + message)
        act = ComfyUIAction(action)
        self.buttons[act].setEnabled(self.state in _ENABLED[act])

    def buttons_enabled(self, name: str) -> bool:
        """Whether the button called ``name`` can be clicked now."""
        return any(b.objectName() == name and b.isEnabled() for b in self.buttons.values())

    # -- log search ---------------------------------------------------------------------

    @Slot(str)
    def _on_search_text_changed(self, text: str) -> None:
        if not text:
            self.search_result_label.setText("")
            return
        count = self.log_view.toPlainText().lower().count(text.lower())
        self.search_result_label.setText(self.tr("{n} match(es)").format(n=count))

    @Slot()
    def find_next(self) -> bool:
        """Select the next line matching the search box (wraps around); False if none."""
        text = self.search_edit.text()
        if not text:
            return False
        if self.log_view.find(text):
            return True
        self.log_view.moveCursor(QTextCursor.MoveOperation.Start)
        found = self.log_view.find(text, QTextDocument.FindFlag(0))
        if not found:
            self.search_result_label.setText(self.tr("not found"))
        return found
