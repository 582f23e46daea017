"""UI layer: the live docks — circuit breakers, retry log, statistics and service health.

Each dock is a pure view of events relayed by its controller; it has an objectName (so
``QMainWindow.saveState`` can restore it) and a useful empty state.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from PySide6.QtWidgets import QDockWidget as _QDockWidget

from pod_studio.app.status import ResilienceController, StatsController
from pod_studio.app.wording import cause_in_words, wait_in_words
from pod_studio.domain.events import (
    BreakerChanged,
    HealthChecked,
    RetryOutcome,
    RetryScheduled,
)
from pod_studio.ui.widgets import (
    AMBER,
    BREAKER_COLOURS,
    GREEN,
    GREY,
    RED,
    EmptyStateLabel,
    HeaderedTableModel,
    Sparkline,
    breaker_key,
)

ModelIndex = QModelIndex | QPersistentModelIndex
RETRY_LOG_LIMIT = 5000
ALL = "__all__"

_BREAKER_WORDS = {"closed": "CLOSED", "open": "OPEN", "half_open": "HALF-OPEN"}


def _readonly_table(parent: QWidget, name: str, headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers), parent)
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().setVisible(False)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _stack(parent: QWidget, empty: QLabel, content: QWidget) -> QStackedWidget:
    stack = QStackedWidget(parent)
    stack.addWidget(empty)
    stack.addWidget(content)
    return stack


def countdown_text(next_attempt_time: float | None, now: float) -> str:
    """ "probe in 12 s" / "probe due" / "" for a breaker's next half-open probe."""
    if next_attempt_time is None:
        return ""
    left = next_attempt_time - now
    if left <= 0:
        return "probe due"
    if left >= 120:
        return f"probe in {int(left // 60)} min {int(left % 60)} s"
    return f"probe in {int(left + 0.999)} s"


class _Dock(_QDockWidget):
    def __init__(self, title: str, name: str, parent: QWidget | None) -> None:
        super().__init__(title, parent)
        self.setObjectName(name)
        self.toggleViewAction().setObjectName(f"{name}_toggle")
        self.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)


# --- breakers ----------------------------------------------------------------------------


class BreakersDock(_Dock):
    """One row per circuit breaker, with a live countdown to the half-open probe."""

    HEADERS = ("Breaker", "State", "Failures", "Successes", "Last error", "Next probe", "")
    COL_NAME, COL_STATE, COL_FAIL, COL_OK, COL_ERROR, COL_NEXT, COL_RESET = range(7)

    def __init__(
        self,
        controller: ResilienceController,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(self.tr("Circuit breakers"), "breakers_dock", parent)
        self.controller = controller
        self._clock = clock
        self._rows: dict[str, int] = {}
        self._events: dict[str, BreakerChanged] = {}
        body = QWidget(self)
        self.table = _readonly_table(body, "breakers_table", [self.tr(h) for h in self.HEADERS])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(self.COL_ERROR, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.empty_label = EmptyStateLabel(
            self.tr("No breakers yet — they appear when POD Studio first talks to a service."),
            body,
        )
        self.empty_label.setObjectName("breakers_empty_label")
        self.stack = _stack(body, self.empty_label, self.table)
        self.reset_all_button = QPushButton(self.tr("Reset all"), body)
        self.reset_all_button.setObjectName("reset_all_breakers_button")
        self.reset_all_button.setEnabled(False)
        self.message_label = QLabel(body)
        self.message_label.setObjectName("breakers_message_label")
        self.message_label.setWordWrap(True)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.stack, 1)
        row = QHBoxLayout()
        row.addWidget(self.message_label, 1)
        row.addWidget(self.reset_all_button)
        layout.addLayout(row)
        self.setWidget(body)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self._connect_signals()
        for event in controller.breakers():
            self._on_controller_breaker_updated(event)

    def _connect_signals(self) -> None:
        self.controller.sig_breaker_updated.connect(self._on_controller_breaker_updated)
        self.controller.sig_action_failed.connect(self._on_controller_action_failed)
        self.reset_all_button.clicked.connect(self._on_reset_all_clicked)
        self.timer.timeout.connect(self._on_timer_timeout)

    def row_texts(self, name: str) -> list[str]:
        """The visible texts of ``name``'s row (for tests and screenshots)."""
        row = self._rows[name]
        texts = []
        for col in range(self.table.columnCount()):
            item = self.table.item(row, col)
            texts.append(item.text() if item is not None else "")
        return texts

    @Slot(object)
    def _on_controller_breaker_updated(self, event: BreakerChanged) -> None:
        row = self._rows.get(event.name)
        if row is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._rows[event.name] = row
            button = QPushButton(self.tr("Reset"), self.table)
            button.setObjectName(f"reset_breaker_{event.name}")
            button.setEnabled(self.controller.can_reset)
            button.clicked.connect(lambda _c=False, n=event.name: self.controller.reset(n))
            self.table.setCellWidget(row, self.COL_RESET, button)
        self._events[event.name] = event
        key = breaker_key(event.new_state)
        state_item = QTableWidgetItem(_BREAKER_WORDS.get(key, event.new_state.upper()))
        state_item.setForeground(QBrush(BREAKER_COLOURS.get(key, GREY)))
        font = state_item.font()
        font.setBold(True)
        state_item.setFont(font)
        self.table.setItem(row, self.COL_NAME, QTableWidgetItem(event.name))
        self.table.setItem(row, self.COL_STATE, state_item)
        self.table.setItem(row, self.COL_FAIL, QTableWidgetItem(str(event.failure_count)))
        self.table.setItem(row, self.COL_OK, QTableWidgetItem(str(event.success_count)))
        error = QTableWidgetItem(event.last_error or "—")
        error.setToolTip(event.last_error)
        self.table.setItem(row, self.COL_ERROR, error)
        self._update_countdown(event.name)
        self.stack.setCurrentWidget(self.table)
        self.reset_all_button.setEnabled(self.controller.can_reset)
        if any(breaker_key(e.new_state) != "closed" for e in self._events.values()):
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()

    def _update_countdown(self, name: str) -> None:
        event = self._events[name]
        key = breaker_key(event.new_state)
        if key == "open":
            text = countdown_text(event.next_attempt_time, self._clock())
        elif key == "half_open":
            text = "probing"
        else:
            text = ""
        self.table.setItem(self._rows[name], self.COL_NEXT, QTableWidgetItem(text))

    @Slot()
    def _on_timer_timeout(self) -> None:
        for name in self._events:
            self._update_countdown(name)

    @Slot()
    def _on_reset_all_clicked(self) -> None:
        self.controller.reset(None)

    @Slot(str)
    def _on_controller_action_failed(self, message: str) -> None:
        self.message_label.setText(message)


# --- retry log ---------------------------------------------------------------------------


class RetryLogModel(HeaderedTableModel):
    """A bounded ring buffer of retry events, newest first (the oldest rows drop off).

    The Cause column says what happened in words; its tooltip keeps the technical cause."""

    HEADERS = ("Time", "Service", "Operation", "Attempt", "Cause", "Wait", "Outcome")
    COL_SERVICE, COL_CAUSE, COL_WAIT, COL_OUTCOME = 1, 4, 5, 6

    def __init__(self, parent: QWidget | None = None, *, limit: int = RETRY_LOG_LIMIT) -> None:
        super().__init__(parent)
        self._rows: deque[tuple[str, ...]] = deque()
        self._limit = limit

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == self.COL_CAUSE:
            return row[len(self.HEADERS)] or row[self.COL_CAUSE]  # the technical cause
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return row[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == self.COL_OUTCOME:
            outcome = row[self.COL_OUTCOME]
            if outcome == "succeeded":
                return QBrush(GREEN)
            if outcome in ("gave up", "failed"):
                return QBrush(RED)
            return QBrush(AMBER)
        return None

    def rows(self) -> list[tuple[str, ...]]:
        """Newest first, one value per column."""
        return [r[: len(self.HEADERS)] for r in self._rows]

    def services(self) -> list[str]:
        return sorted({r[self.COL_SERVICE] for r in self._rows})

    def append_event(self, event: RetryScheduled | RetryOutcome) -> None:
        when = event.at.astimezone().strftime("%H:%M:%S")
        cause = cause_in_words(event.cause)
        if isinstance(event, RetryScheduled):
            wait = wait_in_words(event.wait_seconds, event.wait_reason)
            row = (
                when,
                event.service,
                event.operation,
                str(event.attempt),
                cause,
                wait,
                "retrying",
                event.cause,
            )
        else:
            row = (
                when,
                event.service,
                event.operation,
                str(event.attempts),
                cause,
                "",
                event.outcome,
                event.cause,
            )
        if len(self._rows) >= self._limit:
            last = len(self._rows) - 1
            self.beginRemoveRows(QModelIndex(), last, last)
            self._rows.pop()
            self.endRemoveRows()
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows.appendleft(row)
        self.endInsertRows()


class RetryFilterModel(QSortFilterProxyModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = ALL
        self._outcome = ALL

    def set_filters(self, service: str, outcome: str) -> None:
        self._service, self._outcome = service, outcome
        self.invalidate()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        service = model.index(source_row, RetryLogModel.COL_SERVICE, source_parent).data()
        outcome = model.index(source_row, RetryLogModel.COL_OUTCOME, source_parent).data()
        if self._service != ALL and service != self._service:
            return False
        return self._outcome == ALL or outcome == self._outcome


class RetryLogDock(_Dock):
    """Every retry: when, what, why, how long we waited and how it ended."""

    OUTCOMES = ("retrying", "succeeded", "gave up", "failed")

    def __init__(self, controller: ResilienceController, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Retry log"), "retry_log_dock", parent)
        self.controller = controller
        self._file_dialog: QFileDialog | None = None
        body = QWidget(self)
        self.model = RetryLogModel(self)
        self.proxy = RetryFilterModel(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView(body)
        self.table.setObjectName("retry_log_table")
        self.table.setModel(self.proxy)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(RetryLogModel.COL_CAUSE, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.service_filter = QComboBox(body)
        self.service_filter.setObjectName("retry_service_filter")
        self.service_filter.addItem(self.tr("All services"), ALL)
        self.outcome_filter = QComboBox(body)
        self.outcome_filter.setObjectName("retry_outcome_filter")
        self.outcome_filter.addItem(self.tr("All outcomes"), ALL)
        for outcome in self.OUTCOMES:
            self.outcome_filter.addItem(self.tr(outcome), outcome)
        self.export_button = QPushButton(self.tr("Export CSV…"), body)
        self.export_button.setObjectName("export_csv_button")
        self.message_label = QLabel(body)
        self.message_label.setObjectName("retry_log_message_label")
        self.empty_label = EmptyStateLabel(
            self.tr(
                "No retries yet — when a service hiccups, each retry and its reason shows up here."
            ),
            body,
        )
        self.empty_label.setObjectName("retry_log_empty_label")
        self.stack = _stack(body, self.empty_label, self.table)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        filters = QHBoxLayout()
        filters.addWidget(self.service_filter)
        filters.addWidget(self.outcome_filter)
        filters.addStretch(1)
        filters.addWidget(self.export_button)
        layout.addLayout(filters)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.message_label)
        self.setWidget(body)
        self._connect_signals()

    def _connect_signals(self) -> None:
        self.controller.sig_retry_logged.connect(self._on_controller_retry_logged)
        self.controller.sig_export_finished.connect(self._on_controller_export_finished)
        self.service_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.outcome_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.export_button.clicked.connect(self._on_export_clicked)

    def visible_rows(self) -> list[tuple[str, ...]]:
        out = []
        for r in range(self.proxy.rowCount()):
            out.append(
                tuple(str(self.proxy.index(r, c).data()) for c in range(self.proxy.columnCount()))
            )
        return out

    @Slot(object)
    def _on_controller_retry_logged(self, event: RetryScheduled | RetryOutcome) -> None:
        self.model.append_event(event)
        if self.service_filter.findData(event.service) < 0:
            self.service_filter.addItem(event.service, event.service)
        self.stack.setCurrentWidget(self.table)

    @Slot()
    def _on_filter_changed(self) -> None:
        self.proxy.set_filters(
            str(self.service_filter.currentData()), str(self.outcome_filter.currentData())
        )

    @Slot()
    def _on_export_clicked(self) -> None:
        dialog = QFileDialog(self, self.tr("Export retry log"))
        dialog.setObjectName("retry_export_dialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setNameFilter(self.tr("CSV files (*.csv)"))
        dialog.setDefaultSuffix("csv")
        dialog.selectFile("retry-log.csv")
        dialog.fileSelected.connect(self._on_export_file_selected)
        self._file_dialog = dialog
        dialog.open()

    @Slot(str)
    def _on_export_file_selected(self, path: str) -> None:
        """Export the rows the filters show to ``path`` (runs off the GUI thread)."""
        if not path:
            return
        header = [self.model.HEADERS[c] for c in range(self.model.columnCount())]
        self.controller.export_csv(path, header, self.visible_rows())
        self.message_label.setText(self.tr("Exporting…"))

    @Slot(str, bool, str)
    def _on_controller_export_finished(self, _path: str, ok: bool, message: str) -> None:
        self.message_label.setText(message)
        self.message_label.setStyleSheet("" if ok else "color: #c0392b;")


# --- statistics --------------------------------------------------------------------------


def _fmt_rate(value: Any) -> str:
    return f"{float(value) * 100:.0f}%" if isinstance(value, int | float) else "—"


def _fmt_num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _fmt_ms(seconds: Any) -> str:
    return f"{float(seconds) * 1000:.0f} ms" if isinstance(seconds, int | float) else "—"


class StatsDock(_Dock):
    """Run statistics from ``StatsUpdated`` snapshots, with sparklines of recent jobs."""

    PIPELINE = (
        ("runs", "Runs", _fmt_num),
        ("success_rate", "Success rate", _fmt_rate),
        ("images", "Images", _fmt_num),
        ("products", "Products", _fmt_num),
        ("errors", "Errors", _fmt_num),
        ("avg_products_per_run", "Avg products per run", _fmt_num),
    )
    SERVICE_HEADERS = ("Service", "Calls", "Failures", "Retries", "Cache hit rate", "p50", "p95")

    def __init__(self, controller: StatsController, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Statistics"), "stats_dock", parent)
        self.controller = controller
        body = QWidget(self)
        content = QWidget(body)
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        self.value_labels: dict[str, QLabel] = {}
        for i, (key, title, _fmt) in enumerate(self.PIPELINE):
            value = QLabel("—", content)
            value.setObjectName(f"stat_{key}_label")
            value.setStyleSheet("font-weight: 600;")
            self.value_labels[key] = value
            grid.addWidget(QLabel(self.tr(title), content), i // 2, (i % 2) * 2)
            grid.addWidget(value, i // 2, (i % 2) * 2 + 1)
        self.services_table = _readonly_table(
            content, "stats_services_table", [self.tr(h) for h in self.SERVICE_HEADERS]
        )
        self.durations_spark = Sparkline(content)
        self.durations_spark.setObjectName("durations_sparkline")
        self.success_spark = Sparkline(content, colour=GREEN, fixed_range=(0.0, 1.0))
        self.success_spark.setObjectName("success_sparkline")
        self.durations_label = QLabel(self.tr("Recent job durations"), content)
        self.durations_label.setObjectName("durations_caption")
        self.success_label = QLabel(self.tr("Success rate (recent jobs)"), content)
        self.success_label.setObjectName("success_caption")
        c_layout = QVBoxLayout(content)
        c_layout.setContentsMargins(0, 0, 0, 0)
        c_layout.addLayout(grid)
        c_layout.addWidget(self.services_table, 1)
        c_layout.addWidget(self.durations_label)
        c_layout.addWidget(self.durations_spark)
        c_layout.addWidget(self.success_label)
        c_layout.addWidget(self.success_spark)
        self.empty_label = EmptyStateLabel(
            self.tr("No statistics yet — numbers appear after the first generation run."), body
        )
        self.empty_label.setObjectName("stats_empty_label")
        self.stack = _stack(body, self.empty_label, content)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.stack)
        self.setWidget(body)
        self._connect_signals()
        if controller.snapshot():
            self._on_controller_stats_changed(controller.snapshot())

    def _connect_signals(self) -> None:
        self.controller.sig_stats_changed.connect(self._on_controller_stats_changed)
        self.controller.sig_history_changed.connect(self._on_controller_history_changed)

    @Slot(dict)
    def _on_controller_stats_changed(self, snapshot: dict[str, Any]) -> None:
        pipeline = snapshot.get("pipeline")
        top: dict[str, Any] = pipeline if isinstance(pipeline, dict) else snapshot
        for key, _title, fmt in self.PIPELINE:
            value = top.get(key)
            if key == "success_rate" and not top.get("runs"):
                value = None  # no run yet: a rate of 0 % would say every run failed
            self.value_labels[key].setText(fmt(value))
        services = snapshot.get("services")
        services = services if isinstance(services, dict) else {}
        self.services_table.setRowCount(len(services))
        for row, (name, s) in enumerate(sorted(services.items())):
            s = s if isinstance(s, dict) else {}
            values = [
                str(name),
                _fmt_num(s.get("calls")),
                _fmt_num(s.get("failures")),
                _fmt_num(s.get("retries")),
                _fmt_rate(s.get("cache_hit_rate"))
                if (s.get("cache_hits") or 0) + (s.get("cache_misses") or 0)
                else "—",  # this service is not cached
                _fmt_ms(s.get("p50_seconds")),
                _fmt_ms(s.get("p95_seconds")),
            ]
            for col, text in enumerate(values):
                self.services_table.setItem(row, col, QTableWidgetItem(text))
        self.stack.setCurrentIndex(1)

    @Slot(list, list)
    def _on_controller_history_changed(self, durations: list[float], rates: list[float]) -> None:
        self.durations_spark.set_values(durations)
        self.success_spark.set_values(rates)
        if durations:
            self.durations_label.setText(
                self.tr("Recent job durations (last %1 s)").replace("%1", f"{durations[-1]:.1f}")
            )
        if rates:
            self.success_label.setText(
                self.tr("Success rate (recent jobs): %1").replace("%1", f"{rates[-1] * 100:.0f}%")
            )
        self.stack.setCurrentIndex(1)


# --- health ------------------------------------------------------------------------------


class HealthDock(_Dock):
    """Per service: reachable, auth, latency, budget left; "Check now" runs the probes."""

    HEADERS = ("Service", "Reachable", "Auth", "Latency", "Budget left", "Checked", "Detail")

    def __init__(self, controller: ResilienceController, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Service health"), "health_dock", parent)
        self.controller = controller
        self._rows: dict[str, int] = {}
        body = QWidget(self)
        self.table = _readonly_table(body, "health_table", [self.tr(h) for h in self.HEADERS])
        self.empty_label = EmptyStateLabel(
            self.tr("No health checks yet — press “Check now” to probe every service."), body
        )
        self.empty_label.setObjectName("health_empty_label")
        self.stack = _stack(body, self.empty_label, self.table)
        self.check_button = QPushButton(self.tr("Check now"), body)
        self.check_button.setObjectName("health_check_button")
        self.check_button.setEnabled(controller.can_check_health)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.stack, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.check_button)
        layout.addLayout(row)
        self.setWidget(body)
        self._connect_signals()
        for event in controller.health():
            self._on_controller_health_updated(event)

    def _connect_signals(self) -> None:
        self.controller.sig_health_updated.connect(self._on_controller_health_updated)
        self.controller.sig_health_check_running.connect(self._on_controller_check_running)
        self.check_button.clicked.connect(self._on_check_clicked)

    def row_texts(self, service: str) -> list[str]:
        row = self._rows[service]
        return [
            (item.text() if (item := self.table.item(row, c)) is not None else "")
            for c in range(self.table.columnCount())
        ]

    @Slot(object)
    def _on_controller_health_updated(self, event: HealthChecked) -> None:
        row = self._rows.get(event.service)
        if row is None:
            row = self.table.rowCount()
            self.table.insertRow(row)
            self._rows[event.service] = row
        reachable = QTableWidgetItem(self.tr("yes") if event.reachable else self.tr("no"))
        reachable.setForeground(QBrush(GREEN if event.reachable else RED))
        if event.auth_ok is None:
            auth = QTableWidgetItem("—")
        else:
            auth = QTableWidgetItem(self.tr("ok") if event.auth_ok else self.tr("failed"))
            auth.setForeground(QBrush(GREEN if event.auth_ok else RED))
        latency = "—" if event.latency_ms is None else f"{event.latency_ms:.0f} ms"
        checked = datetime.fromtimestamp(event.at.timestamp()).strftime("%H:%M:%S")
        items = [
            QTableWidgetItem(event.service),
            reachable,
            auth,
            QTableWidgetItem(latency),
            QTableWidgetItem(event.budget_left or "—"),
            QTableWidgetItem(checked),
            QTableWidgetItem(event.detail),
        ]
        for col, item in enumerate(items):
            self.table.setItem(row, col, item)
        self.stack.setCurrentWidget(self.table)

    @Slot(bool)
    def _on_controller_check_running(self, running: bool) -> None:
        self.check_button.setEnabled(not running and self.controller.can_check_health)
        self.check_button.setText(self.tr("Checking…") if running else self.tr("Check now"))

    @Slot()
    def _on_check_clicked(self) -> None:
        self.controller.check_now()
