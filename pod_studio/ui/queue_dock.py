"""UI layer: QueueDock — the durable job queue: every job with its state, server, attempts,
next retry time and last error; cancel / retry now / move to another server / discard; the
failed jobs (dead letters) with their reasons and attempt history; pause and resume.

A pure view of ``QueueController``: rows come from its signals, actions go to its methods.
The "Move to server…" menu is a non-modal popup; nothing here runs a nested event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QAction, QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabBar,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from PySide6.QtWidgets import QDockWidget as _QDockWidget

from pod_studio.app.queue import (
    ACTION_CANCEL,
    ACTION_DISCARD,
    ACTION_MOVE,
    ACTION_RETRY,
    ACTIVE_STATES,
    QueueController,
    QueueRow,
    describe_counts,
)
from pod_studio.domain.orchestration import ServerStatus
from pod_studio.ui.widgets import (
    AMBER,
    BLUE,
    GREEN,
    GREY,
    RED,
    EmptyStateLabel,
    JobRowsModel,
    popup_row_menu,
)

ModelIndex = QModelIndex | QPersistentModelIndex

STATE_COLOURS = {
    "queued": GREY,
    "retry_wait": AMBER,
    "running": BLUE,
    "succeeded": GREEN,
    "partially_published": RED,
    "dead": RED,
    "cancelled": AMBER,
}

FILTER_ALL, FILTER_ACTIVE, FILTER_FAILED = range(3)


def retry_text(next_run_at: float | None, now: float) -> str:
    """ "in 4 min (14:32)", "in 12 s", "due now" or "" when no retry is planned."""
    if next_run_at is None:
        return ""
    left = next_run_at - now
    if left <= 0:
        return "due now"
    at = datetime.fromtimestamp(next_run_at).strftime("%H:%M")
    if left < 60:
        return f"in {int(left + 0.999)} s"
    if left < 3600:
        return f"in {int(left // 60)} min ({at})"
    return f"in {int(left // 3600)} h {int(left % 3600 // 60)} min ({at})"


# A job that ended well: an error of an earlier attempt is history, not its state.
_SETTLED = ("succeeded", "cancelled")


def reason_text(row: QueueRow) -> str:
    """The queue table's Reason cell: why a job waits or failed; nothing stale once done."""
    if row.state in _SETTLED:
        return row.note
    if row.state == "retry_wait" and row.last_error:
        return f"Waiting: {row.last_error}"
    return row.last_error or row.note


def details_text(row: QueueRow, now: float) -> str:
    """The details pane: what the job is, where it stands, why it failed and its history."""
    kind = "Publish" if row.kind == "publish" else "Generate"
    lines = [f"{kind}: {row.label}", f"State: {row.state_text}"]
    where = row.platform if row.kind == "publish" else row.server
    if where:
        lines.append(("Platform: " if row.kind == "publish" else "Server: ") + where)
    if row.max_attempts:
        lines.append(f"Attempts: {row.attempts} of {row.max_attempts}")
    when = retry_text(row.next_run_at, now)
    if when and row.state == "retry_wait":
        lines.append(f"Next try: {when}")
    if row.note:
        lines.append(row.note[:1].upper() + row.note[1:])
    if row.last_error and row.state not in _SETTLED:
        label = {"retry_wait": "Waiting because: "}.get(row.state, "Last error: ")
        lines.append(("Reason: " if row.is_dead else label) + row.last_error)
    if row.history:
        lines.append("Attempt history:")
        lines.extend(f"  {i + 1}. {h}" for i, h in enumerate(row.history))
    lines.append(f"Job id: {row.job_id}")
    return "\n".join(lines)


class QueueTableModel(JobRowsModel[QueueRow]):
    """One row per job of the durable queue."""

    HEADERS = ("Job", "Design / product", "State", "Server / platform", "Tries", "Next try",
               "Reason")  # fmt: skip
    COL_KIND, COL_LABEL, COL_STATE, COL_WHERE, COL_TRIES, COL_NEXT, COL_ERROR = range(7)
    JobIdRole = Qt.ItemDataRole.UserRole + 1
    StateRole = Qt.ItemDataRole.UserRole + 2

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(parent)
        self._clock = clock

    def _text(self, row: QueueRow, col: int) -> str:
        if col == self.COL_KIND:
            return self.tr("Publish") if row.kind == "publish" else self.tr("Generate")
        if col == self.COL_LABEL:
            return row.label
        if col == self.COL_STATE:
            return row.state_text
        if col == self.COL_WHERE:
            return row.platform if row.kind == "publish" else row.server
        if col == self.COL_TRIES:
            if not row.max_attempts or row.state == "succeeded":
                return str(row.attempts)
            return f"{row.attempts} / {row.max_attempts}"
        if col == self.COL_NEXT:
            return retry_text(row.next_run_at, self._clock()) if row.state == "retry_wait" else ""
        if col == self.COL_ERROR:
            return reason_text(row)
        return ""

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col in (self.COL_ERROR, self.COL_STATE) and (row.history or row.last_error):
                return details_text(row, self._clock())
            text = self._text(row, col)
            return text or None
        if role == Qt.ItemDataRole.ForegroundRole and col == self.COL_STATE:
            colour = STATE_COLOURS.get(row.state)
            return QBrush(colour) if colour is not None else None
        if role == self.JobIdRole:
            return row.job_id
        if role == self.StateRole:
            return row.state
        return None

    # -- access -----------------------------------------------------------------------------

    def rows(self) -> list[QueueRow]:
        return list(self._rows)

    def row_texts(self, job_id: str) -> list[str]:
        row = self.job(job_id)
        return [] if row is None else [self._text(row, c) for c in range(len(self.HEADERS))]

    def has_waiting(self) -> bool:
        return any(r.state == "retry_wait" for r in self._rows)

    # -- updates ----------------------------------------------------------------------------

    def set_rows(self, rows: list[QueueRow]) -> None:
        self._reset_rows(rows)

    def upsert(self, row: QueueRow) -> None:
        i = self._index.get(row.job_id)
        if i is None:
            n = len(self._rows)
            self.beginInsertRows(QModelIndex(), n, n)
            self._rows.append(row)
            self._index[row.job_id] = n
            self.endInsertRows()
            return
        self._rows[i] = row
        self.dataChanged.emit(self.index(i, 0), self.index(i, self.columnCount() - 1))

    def refresh_countdowns(self) -> None:
        if self._rows:
            self.dataChanged.emit(
                self.index(0, self.COL_NEXT),
                self.index(len(self._rows) - 1, self.COL_NEXT),
                [Qt.ItemDataRole.DisplayRole],
            )


class QueueFilterModel(QSortFilterProxyModel):
    """All jobs, the active ones, or the failed ones (the dead-letter list)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mode = FILTER_ALL

    def set_mode(self, mode: int) -> None:
        self._mode = mode
        self.invalidate()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        if self._mode == FILTER_ALL:
            return True
        state = (
            self.sourceModel().index(source_row, 0, source_parent).data(QueueTableModel.StateRole)
        )
        if self._mode == FILTER_ACTIVE:
            return state in ACTIVE_STATES
        return state in ("dead", "partially_published")


class QueueDock(_QDockWidget):
    """The durable job queue and its dead letters."""

    def __init__(
        self,
        controller: QueueController,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(self.tr("Job queue"), parent)
        self.setObjectName("queue_dock")
        self.toggleViewAction().setObjectName("queue_dock_toggle")
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.controller = controller
        self._clock = clock
        self._move_menu: QMenu | None = None
        body = QWidget(self)

        self.model = QueueTableModel(self, clock=clock)
        self.proxy = QueueFilterModel(self)
        self.proxy.setSourceModel(self.model)
        self.tabs = QTabBar(body)
        self.tabs.setObjectName("queue_filter_tabs")
        self.tabs.addTab(self.tr("All jobs"))
        self.tabs.addTab(self.tr("Active"))
        self.tabs.addTab(self.tr("Failed"))
        self.tabs.setDrawBase(False)
        self.summary_label = QLabel(body)
        self.summary_label.setObjectName("queue_summary_label")
        self.pause_button = QPushButton(self.tr("Pause queue"), body)
        self.pause_button.setObjectName("pause_queue_button")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip(
            self.tr("Paused: running jobs finish, nothing new starts (kept after a restart)")
        )

        self.table = QTableView(body)
        self.table.setObjectName("queue_table")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        header = self.table.horizontalHeader()
        header.setMinimumSectionSize(40)
        header.setSectionResizeMode(QueueTableModel.COL_LABEL, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in (
            (QueueTableModel.COL_KIND, 72),
            (QueueTableModel.COL_LABEL, 260),
            (QueueTableModel.COL_STATE, 104),
            (QueueTableModel.COL_WHERE, 180),
            (QueueTableModel.COL_TRIES, 52),
            (QueueTableModel.COL_NEXT, 120),
        ):
            header.resizeSection(col, width)

        self.details = QPlainTextEdit(body)
        self.details.setObjectName("queue_details")
        self.details.setReadOnly(True)
        self.details.setPlaceholderText(
            self.tr("Select a job to see why it failed and every attempt it made.")
        )
        self.empty_label = EmptyStateLabel(
            self.tr(
                "The queue is empty. Jobs you start with Generate or Publish show up here, "
                "and they survive a restart of POD Studio."
            ),
            body,
        )
        self.empty_label.setObjectName("queue_empty_label")
        self.splitter = QSplitter(Qt.Orientation.Horizontal, body)
        self.splitter.setObjectName("queue_splitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 280])
        self.stack = QStackedWidget(body)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.splitter)

        self.cancel_button = QPushButton(self.tr("Cancel"), body)
        self.cancel_button.setObjectName("queue_cancel_button")
        self.retry_button = QPushButton(self.tr("Retry now"), body)
        self.retry_button.setObjectName("queue_retry_button")
        self.move_button = QPushButton(self.tr("Move to server…"), body)
        self.move_button.setObjectName("queue_move_button")
        self.discard_button = QPushButton(self.tr("Remove"), body)
        self.discard_button.setObjectName("queue_discard_button")
        self.discard_button.setToolTip(self.tr("Remove the job and its history from the queue"))
        self.retry_dead_button = QPushButton(self.tr("Retry all failed"), body)
        self.retry_dead_button.setObjectName("queue_retry_dead_button")
        self.message_label = QLabel(body)
        self.message_label.setObjectName("queue_message_label")
        self.message_label.setWordWrap(True)
        self.cancel_action = QAction(self.tr("Cancel"), self)
        self.cancel_action.setObjectName("queue_cancel_action")
        self.retry_action = QAction(self.tr("Retry now"), self)
        self.retry_action.setObjectName("queue_retry_action")
        self.discard_action = QAction(self.tr("Remove"), self)
        self.discard_action.setObjectName("queue_discard_action")

        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        top.addWidget(self.tabs)
        top.addWidget(self.summary_label, 1)
        top.addWidget(self.pause_button)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)
        buttons = QHBoxLayout()
        for button in (self.cancel_button, self.retry_button, self.move_button):
            buttons.addWidget(button)
        buttons.addWidget(self.discard_button)
        buttons.addWidget(self.message_label, 1)
        buttons.addWidget(self.retry_dead_button)
        layout.addLayout(buttons)
        self.setWidget(body)

        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self._connect_signals()
        if not controller.available:
            self.empty_label.setText(self.tr("The job queue is not available in this setup."))
            self.pause_button.setEnabled(False)
        self.model.set_rows(controller.rows())
        self._on_controller_paused_changed(controller.paused)
        self._after_rows_changed()

    def _connect_signals(self) -> None:
        c = self.controller
        c.sig_rows_reset.connect(self._on_controller_rows_reset)
        c.sig_row_changed.connect(self._on_controller_row_changed)
        c.sig_row_removed.connect(self._on_controller_row_removed)
        c.sig_paused_changed.connect(self._on_controller_paused_changed)
        c.sig_action_done.connect(self._on_controller_action_done)
        c.sig_action_failed.connect(self._on_controller_action_failed)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu_requested)
        self.pause_button.clicked.connect(self._on_pause_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.cancel_action.triggered.connect(self._on_cancel_clicked)
        self.retry_button.clicked.connect(self._on_retry_clicked)
        self.retry_action.triggered.connect(self._on_retry_clicked)
        self.discard_button.clicked.connect(self._on_discard_clicked)
        self.discard_action.triggered.connect(self._on_discard_clicked)
        self.move_button.clicked.connect(self._on_move_clicked)
        self.retry_dead_button.clicked.connect(self._on_retry_dead_clicked)
        self.timer.timeout.connect(self._on_timer_timeout)

    # -- helpers ----------------------------------------------------------------------------

    def selected_job_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        ids = [self.proxy.index(r, 0).data(QueueTableModel.JobIdRole) for r in rows]
        return [str(i) for i in ids if i]

    def select_jobs(self, job_ids: list[str]) -> None:
        self.table.clearSelection()
        selection = self.table.selectionModel()
        for job_id in job_ids:
            row = self.model.row_of(job_id)
            if row is None:
                continue
            proxy_index = self.proxy.mapFromSource(self.model.index(row, 0))
            if proxy_index.isValid():
                selection.select(
                    proxy_index,
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )

    def visible_job_ids(self) -> list[str]:
        return [
            str(self.proxy.index(r, 0).data(QueueTableModel.JobIdRole))
            for r in range(self.proxy.rowCount())
        ]

    def _after_rows_changed(self) -> None:
        rows = self.model.rows()
        self.stack.setCurrentWidget(self.splitter if rows else self.empty_label)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        failed = counts.get("dead", 0) + counts.get("partially_published", 0)
        self.tabs.setTabText(FILTER_FAILED, self.tr("Failed (%1)").replace("%1", str(failed)))
        active = sum(counts.get(s, 0) for s in ACTIVE_STATES)
        self.tabs.setTabText(FILTER_ACTIVE, self.tr("Active (%1)").replace("%1", str(active)))
        summary = describe_counts(counts)
        if self.controller.paused:
            summary = self.tr("PAUSED") + (f" · {summary}" if summary else "")
        self.summary_label.setText(summary)
        self.retry_dead_button.setEnabled(self.controller.available and failed > 0)
        if self.model.has_waiting():
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()
        self._update_actions()

    def _update_actions(self) -> None:
        ids = self.selected_job_ids()
        actions = self.controller.actions_for(ids)
        can_move = ACTION_MOVE in actions and len(self.controller.server_urls()) > 1
        for widget, action in (
            (self.cancel_button, ACTION_CANCEL),
            (self.retry_button, ACTION_RETRY),
            (self.discard_button, ACTION_DISCARD),
        ):
            widget.setEnabled(action in actions)
        self.cancel_action.setEnabled(ACTION_CANCEL in actions)
        self.retry_action.setEnabled(ACTION_RETRY in actions)
        self.discard_action.setEnabled(ACTION_DISCARD in actions)
        self.move_button.setEnabled(can_move)
        row = self.model.job(ids[0]) if ids else None
        self.details.setPlainText(details_text(row, self._clock()) if row is not None else "")

    def open_move_menu(self) -> QMenu:
        """The non-modal list of servers to move the selected jobs to."""
        menu = QMenu(self)
        menu.setObjectName("queue_move_menu")
        current = {
            r.server for j in self.selected_job_ids() if (r := self.model.job(j)) is not None
        }
        for status in self.controller.servers():
            action = menu.addAction(_server_text(status))
            action.setObjectName(f"move_to_{status.url}")
            action.setData(status.url)
            action.setEnabled(status.url not in current or len(current) > 1)
            action.triggered.connect(lambda _c=False, u=status.url: self._on_move_chosen(u))
        self._move_menu = menu
        menu.popup(self.move_button.mapToGlobal(QPoint(0, self.move_button.height())))
        return menu

    # -- slots ------------------------------------------------------------------------------

    @Slot(list)
    def _on_controller_rows_reset(self, rows: list[QueueRow]) -> None:
        selected = self.selected_job_ids()
        self.model.set_rows(rows)
        self.select_jobs(selected)
        self._after_rows_changed()

    @Slot(object)
    def _on_controller_row_changed(self, row: QueueRow) -> None:
        self.model.upsert(row)
        self._after_rows_changed()

    @Slot(str)
    def _on_controller_row_removed(self, job_id: str) -> None:
        self.model.remove(job_id)
        self._after_rows_changed()

    @Slot(bool)
    def _on_controller_paused_changed(self, paused: bool) -> None:
        self.pause_button.setChecked(paused)
        self.pause_button.setText(self.tr("Resume queue") if paused else self.tr("Pause queue"))
        self._after_rows_changed()

    @Slot(str)
    def _on_controller_action_done(self, message: str) -> None:
        self.message_label.setStyleSheet("")
        self.message_label.setText(message)

    @Slot(str)
    def _on_controller_action_failed(self, message: str) -> None:
        self.message_label.setStyleSheet("color: #c0392b;")
        self.message_label.setText(message)

    @Slot(int)
    def _on_tabs_current_changed(self, index: int) -> None:
        self.proxy.set_mode(index)
        self._update_actions()

    @Slot()
    def _on_table_selection_changed(self) -> None:
        self._update_actions()

    @Slot(QPoint)
    def _on_table_context_menu_requested(self, pos: QPoint) -> None:
        popup_row_menu(
            self,
            self.table,
            pos,
            "queue_context_menu",
            [self.cancel_action, self.retry_action, self.discard_action],
        )

    @Slot()
    def _on_pause_clicked(self) -> None:
        want = self.pause_button.isChecked()
        self.pause_button.setChecked(self.controller.paused)  # the event sets it for real
        self.controller.set_paused(want)

    @Slot()
    def _on_cancel_clicked(self) -> None:
        self.controller.cancel(self.selected_job_ids())

    @Slot()
    def _on_retry_clicked(self) -> None:
        self.controller.retry_now(self.selected_job_ids())

    @Slot()
    def _on_discard_clicked(self) -> None:
        self.controller.discard(self.selected_job_ids())

    @Slot()
    def _on_retry_dead_clicked(self) -> None:
        self.controller.retry_all_dead()

    @Slot()
    def _on_move_clicked(self) -> None:
        self.open_move_menu()

    def _on_move_chosen(self, url: str) -> None:
        self.controller.move_to_server(self.selected_job_ids(), url)

    @Slot()
    def _on_timer_timeout(self) -> None:
        self.model.refresh_countdowns()


def _server_text(status: ServerStatus) -> str:
    text = f"{status.url}  ({status.in_flight}/{status.capacity} busy"
    if status.breaker != "closed":
        text += f", breaker {status.breaker.replace('_', '-')}"
    elif not status.eligible:
        text += ", not ready"
    return text + ")"
