"""UI layer: the job list — a table of every job with live state, progress and preview.

``JobTableModel`` is fed only by the event bridge's signals (queued, state, progress, node,
failed, and the durable queue's state changes); after a restart the unfinished jobs come
from the queue controller's snapshot. ``JobListView`` adds a progress-bar delegate, per-row
cancel (button, context menu, Delete key), a details line for the selected job and a
throttled live preview decoded from ``PreviewFrame`` bytes in the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QAction, QBrush, QImage, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.generation import GenerationController
from pod_studio.app.queue import QueueController, QueueRow
from pod_studio.domain.events import (
    JobFailed,
    JobNodeExecuting,
    JobProgress,
    JobQueued,
    JobStateChanged,
    PreviewFrame,
)
from pod_studio.domain.models import JobState
from pod_studio.domain.orchestration import QueueChanged
from pod_studio.ui.widgets import JOB_STATE_COLOURS, JobRowsModel, popup_row_menu

ModelIndex = QModelIndex | QPersistentModelIndex
PREVIEW_INTERVAL_MS = 150
PREVIEW_SIDE = 192

_QUEUE_STATES = {
    "queued": JobState.QUEUED,
    "retry_wait": JobState.QUEUED,
    "running": JobState.RUNNING,
    "succeeded": JobState.DONE,
    "dead": JobState.FAILED,
    "partially_published": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


@dataclass
class JobRow:
    job_id: str
    prompt: str
    seed: int | None
    state: JobState = JobState.QUEUED
    value: float = 0.0
    maximum: float = 0.0
    node: str = ""
    node_class: str = ""
    server: str = ""
    detail: str = ""

    @property
    def fraction(self) -> float:
        if self.state is JobState.DONE:
            return 1.0
        return self.value / self.maximum if self.maximum > 0 else 0.0

    @property
    def node_text(self) -> str:
        if self.node_class and self.node:
            return f"{self.node_class} ({self.node})"
        return self.node_class or self.node


class JobTableModel(JobRowsModel[JobRow]):
    """One row per job, in the order they were queued."""

    HEADERS = ("Prompt", "Seed", "State", "Progress", "Node", "Server")
    COL_PROMPT, COL_SEED, COL_STATE, COL_PROGRESS, COL_NODE, COL_SERVER = range(6)
    JobIdRole = Qt.ItemDataRole.UserRole + 1
    FractionRole = Qt.ItemDataRole.UserRole + 2

    # -- Qt model API ---------------------------------------------------------------------

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_PROMPT:
                return row.prompt
            if col == self.COL_SEED:
                return "" if row.seed is None else str(row.seed)
            if col == self.COL_STATE:
                if row.state is JobState.QUEUED and row.detail.startswith("will retry"):
                    return f"waiting — {row.detail}"  # why it waits, not just "queued"
                return row.state.value
            if col == self.COL_PROGRESS:
                return f"{round(row.fraction * 100)}%"
            if col == self.COL_NODE:
                return row.node_text
            if col == self.COL_SERVER:
                return row.server
        elif role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            colour = JOB_STATE_COLOURS.get(row.state.value)
            return QBrush(colour) if colour is not None else None
        elif role == Qt.ItemDataRole.ToolTipRole:
            if row.state is JobState.FAILED and row.detail:
                return row.detail
            if col == self.COL_PROMPT:
                return row.prompt
            return row.detail or None
        elif role == self.JobIdRole:
            return row.job_id
        elif role == self.FractionRole:
            return row.fraction
        return None

    # -- access ---------------------------------------------------------------------------

    def job_at(self, row: int) -> JobRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def jobs(self) -> list[JobRow]:
        return list(self._rows)

    def clear_finished(self) -> None:
        self._reset_rows(r for r in self._rows if not r.state.is_terminal)

    def _changed(self, job_id: str, first: int = 0, last: int | None = None) -> None:
        i = self._index[job_id]
        last_col = self.columnCount() - 1 if last is None else last
        self.dataChanged.emit(self.index(i, first), self.index(i, last_col))

    # -- slots fed by the bridge ----------------------------------------------------------

    @Slot(object)
    def _on_bridge_job_queued(self, event: JobQueued) -> None:
        if event.job_id in self._index:
            return
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(JobRow(event.job_id, event.prompt, event.seed, server=event.server))
        self._index[event.job_id] = n
        self.endInsertRows()

    @Slot(object)
    def _on_bridge_job_state_changed(self, event: JobStateChanged) -> None:
        row = self.job(event.job_id)
        if row is None:
            return
        row.state = event.state
        if event.server:
            row.server = event.server
        if event.state is JobState.FAILED:
            row.detail = event.detail or row.detail
        elif not (event.state is JobState.QUEUED and row.detail.startswith("will retry")):
            row.detail = event.detail
        if event.state is JobState.QUEUED:
            row.value, row.maximum = 0.0, 0.0
            row.node, row.node_class = "", ""
        if event.state is JobState.RUNNING:
            row.value, row.maximum = 0.0, 0.0
        if event.state.is_terminal:
            row.node, row.node_class = "", ""
        self._changed(event.job_id)

    @Slot(object)
    def _on_bridge_queue_changed(self, event: QueueChanged) -> None:
        """The durable queue's view of a job: covers what no JobStateChanged says (a queued
        job cancelled, a retry planned, a job removed)."""
        if event.state == "discarded":
            self.remove(event.job_id)
            return
        row = self.job(event.job_id)
        state = _QUEUE_STATES.get(event.state)
        if row is None or state is None:
            return
        if state is JobState.RUNNING and row.state is not JobState.RUNNING:
            row.value, row.maximum = 0.0, 0.0
        row.state = state
        if event.server:
            row.server = event.server
        if event.state == "retry_wait":
            when = ""
            if event.next_run_at:
                when = " at " + datetime.fromtimestamp(event.next_run_at).strftime("%H:%M")
            row.detail = f"will retry{when}" + (f": {event.last_error}" if event.last_error else "")
            row.value, row.maximum = 0.0, 0.0
        elif state is JobState.FAILED:
            row.detail = event.last_error or row.detail
        elif state is not JobState.RUNNING:
            row.detail = ""
        if state.is_terminal:
            row.node, row.node_class = "", ""
        self._changed(event.job_id)

    def add_queue_rows(self, rows: list[QueueRow]) -> None:
        """Unfinished generation jobs from the durable queue (after a restart)."""
        new = [
            r
            for r in rows
            if r.kind == "generate"
            and r.job_id not in self._index
            and r.state in ("queued", "retry_wait", "running")
        ]
        if not new:
            return
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n + len(new) - 1)
        for r in new:
            self._index[r.job_id] = len(self._rows)
            self._rows.append(
                JobRow(
                    r.job_id,
                    r.label,
                    None,
                    state=_QUEUE_STATES.get(r.state, JobState.QUEUED),
                    server=r.server,
                    detail=f"will retry: {r.last_error}" if r.state == "retry_wait" else "",
                )
            )
        self.endInsertRows()

    @Slot(object)
    def _on_bridge_job_progress(self, event: JobProgress) -> None:
        row = self.job(event.job_id)
        if row is None:
            return
        row.value, row.maximum = event.value, event.max
        if event.node:
            row.node, row.node_class = event.node, event.node_class
        self._changed(event.job_id, self.COL_PROGRESS, self.COL_NODE)

    @Slot(object)
    def _on_bridge_job_node_executed(self, event: JobNodeExecuting) -> None:
        row = self.job(event.job_id)
        if row is None:
            return
        row.node, row.node_class = event.node, event.node_class
        self._changed(event.job_id, self.COL_NODE, self.COL_NODE)

    @Slot(object)
    def _on_bridge_job_failed(self, event: JobFailed) -> None:
        row = self.job(event.job_id)
        if row is None:
            return
        row.detail = event.reason
        self._changed(event.job_id)


class ProgressDelegate(QStyledItemDelegate):
    """Paints the progress column as a progress bar."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        fraction = index.data(JobTableModel.FractionRole)
        if not isinstance(fraction, float):
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(3, 4, -3, -4)  # type: ignore[attr-defined]
        bar.minimum = 0
        bar.maximum = 100
        bar.progress = round(fraction * 100)
        bar.text = f"{bar.progress}%"
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class JobListView(QWidget):
    """The middle pane: every job of this session."""

    def __init__(
        self,
        controller: GenerationController,
        parent: QWidget | None = None,
        *,
        queue: QueueController | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.queue = queue
        self.setObjectName("job_list")
        self.model = JobTableModel(self)
        self._frames: dict[str, bytes] = {}
        self._preview_job: str | None = None
        self._last_frame_job: str | None = None

        self.table = QTableView(self)
        self.table.setObjectName("job_table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setItemDelegateForColumn(JobTableModel.COL_PROGRESS, ProgressDelegate(self))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        # Fixed widths: ResizeToContents would make Qt read every row on every progress
        # update, which stalls the GUI on big batches.
        header.setSectionResizeMode(JobTableModel.COL_PROMPT, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)
        header.resizeSection(JobTableModel.COL_SEED, 92)
        header.resizeSection(JobTableModel.COL_STATE, 74)
        header.resizeSection(JobTableModel.COL_PROGRESS, 110)

        self.cancel_button = QPushButton(self.tr("Cancel job"), self)
        self.cancel_button.setObjectName("cancel_job_button")
        self.cancel_button.setEnabled(False)
        self.clear_button = QPushButton(self.tr("Clear finished"), self)
        self.clear_button.setObjectName("clear_finished_button")
        self.details_label = QLabel(self)
        self.details_label.setObjectName("job_details_label")
        self.details_label.setWordWrap(True)
        self.details_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview_label = QLabel(self)
        self.preview_label.setObjectName("preview_label")
        self.preview_label.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setStyleSheet("border: 1px solid palette(mid); color: palette(mid);")
        self.preview_label.setText(self.tr("Live preview"))
        self.cancel_action = QAction(self.tr("Cancel job"), self)
        self.cancel_action.setObjectName("cancel_job_action")
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.table.addAction(self.cancel_action)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_INTERVAL_MS)

        title = QLabel(self.tr("Jobs"), self)
        title.setProperty("role", "heading")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        layout.addWidget(title)
        layout.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        side = QVBoxLayout()
        side.addWidget(self.details_label, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        side.addLayout(buttons)
        bottom.addLayout(side, 1)
        bottom.addWidget(self.preview_label)
        layout.addLayout(bottom)
        self._connect_signals()

    def _connect_signals(self) -> None:
        bridge = self.controller.bridge
        bridge.sig_job_queued.connect(self.model._on_bridge_job_queued)
        bridge.sig_job_state_changed.connect(self.model._on_bridge_job_state_changed)
        bridge.sig_job_progress.connect(self.model._on_bridge_job_progress)
        bridge.sig_job_node_executed.connect(self.model._on_bridge_job_node_executed)
        bridge.sig_job_failed.connect(self.model._on_bridge_job_failed)
        bridge.sig_queue_changed.connect(self.model._on_bridge_queue_changed)
        if self.queue is not None:
            self.queue.sig_rows_reset.connect(self._on_queue_rows_reset)
        bridge.sig_job_state_changed.connect(self._on_bridge_job_state_changed)
        bridge.sig_preview_frame.connect(self._on_bridge_preview_frame)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu_requested)
        self.model.dataChanged.connect(self._on_model_data_changed)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.cancel_action.triggered.connect(self._on_cancel_clicked)
        self.clear_button.clicked.connect(self._on_clear_clicked)
        self._preview_timer.timeout.connect(self._on_preview_timer_timeout)

    # -- helpers --------------------------------------------------------------------------

    def selected_job_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [r.job_id for r in (self.model.job_at(i) for i in rows) if r is not None]

    def select_job(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row is not None:
            self.table.selectRow(row)

    def cancel_selected(self) -> int:
        return sum(1 for job_id in self.selected_job_ids() if self.controller.cancel(job_id))

    def _update_details(self) -> None:
        ids = self.selected_job_ids()
        row = self.model.job(ids[0]) if ids else None
        if row is None:
            self.details_label.setText("")
            self.cancel_button.setEnabled(False)
            return
        self.cancel_button.setEnabled(
            any((r := self.model.job(j)) is not None and not r.state.is_terminal for j in ids)
        )
        text = row.state.value + (f" · seed {row.seed}" if row.seed is not None else "")
        if row.server:
            text += f" · {row.server}"
        if row.node_text and row.state is JobState.RUNNING:
            text += f" · {row.node_text}"
        if row.detail:
            text += "\n" + row.detail
        self.details_label.setText(text)

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _on_table_selection_changed(self) -> None:
        ids = self.selected_job_ids()
        self._preview_job = ids[0] if ids else None
        self._update_details()
        self._on_preview_timer_timeout()

    @Slot()
    def _on_model_data_changed(self) -> None:
        self._update_details()

    @Slot(QPoint)
    def _on_table_context_menu_requested(self, pos: QPoint) -> None:
        popup_row_menu(self, self.table, pos, "job_context_menu", [self.cancel_action])

    @Slot()
    def _on_cancel_clicked(self) -> None:
        self.cancel_selected()

    @Slot()
    def _on_clear_clicked(self) -> None:
        self.model.clear_finished()
        self._frames = {k: v for k, v in self._frames.items() if self.model.job(k) is not None}

    @Slot(list)
    def _on_queue_rows_reset(self, rows: list[QueueRow]) -> None:
        self.model.add_queue_rows(rows)

    @Slot(object)
    def _on_bridge_job_state_changed(self, event: JobStateChanged) -> None:
        if event.state.is_terminal:
            self._frames.pop(event.job_id, None)

    @Slot(object)
    def _on_bridge_preview_frame(self, event: PreviewFrame) -> None:
        self._frames[event.job_id] = event.data
        self._last_frame_job = event.job_id
        if not self._preview_timer.isActive():
            self._preview_timer.start()

    @Slot()
    def _on_preview_timer_timeout(self) -> None:
        job_id = self._preview_job if self._preview_job in self._frames else self._last_frame_job
        data = self._frames.get(job_id) if job_id else None
        if data is None:
            return
        image = QImage.fromData(data)
        if image.isNull():
            return
        pixmap = QPixmap.fromImage(image).scaled(
            PREVIEW_SIDE,
            PREVIEW_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.preview_label.setPixmap(pixmap)
        self.preview_label.setProperty("job_id", job_id)
