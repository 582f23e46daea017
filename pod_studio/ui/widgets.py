"""UI layer: small shared widgets and colours (status dot, sparkline, empty-state label)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Sized
from typing import Any, Generic, Protocol, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QAction, QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from pod_studio.app.generation import MAX_SIDE, MIN_SIDE, SIDE_STEP

GREEN = QColor("#2e9d4f")
RED = QColor("#d0453b")
AMBER = QColor("#d9931a")
BLUE = QColor("#2f7bd6")
GREY = QColor("#8a8f98")

CONNECTION_COLOURS = {
    "connected": GREEN,
    "connecting": AMBER,
    "reconnecting": AMBER,
    "offline": RED,
}

JOB_STATE_COLOURS = {
    "queued": GREY,
    "running": BLUE,
    "done": GREEN,
    "failed": RED,
    "cancelled": AMBER,
}

BREAKER_COLOURS = {
    "closed": GREEN,
    "open": RED,
    "half_open": AMBER,
}


def breaker_key(state: str) -> str:
    """Normalise "HALF-OPEN", "half_open", "CircuitState.OPEN" ... to closed/open/half_open."""
    s = state.rsplit(".", 1)[-1].strip().lower().replace("-", "_").replace(" ", "_")
    return s


class StatusDot(QWidget):
    """A small filled circle in a state colour."""

    def __init__(self, parent: QWidget | None = None, diameter: int = 10) -> None:
        super().__init__(parent)
        self._colour = GREY
        self._diameter = diameter
        self.setFixedSize(diameter + 4, diameter + 4)

    def colour(self) -> QColor:
        return QColor(self._colour)

    def set_colour(self, colour: QColor) -> None:
        self._colour = QColor(colour)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._colour)
        painter.drawEllipse(QRectF(2, 2, self._diameter, self._diameter))
        painter.end()


class Sparkline(QWidget):
    """A tiny line chart of recent values (no axes), drawn with QPainter."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        colour: QColor = BLUE,
        fixed_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(parent)
        self._values: list[float] = []
        self._colour = QColor(colour)
        self._range = fixed_range
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(160, 40)

    def values(self) -> list[float]:
        return list(self._values)

    def set_values(self, values: Sequence[float]) -> None:
        self._values = [float(v) for v in values]
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(2, 4, -2, -4)
        painter.setPen(QPen(QColor(0, 0, 0, 30), 1))
        painter.drawLine(rect.bottomLeft(), rect.bottomRight())
        values = self._values
        if len(values) >= 2:
            lo, hi = self._range or (min(values), max(values))
            span = (hi - lo) or 1.0
            step = rect.width() / (len(values) - 1)
            path = QPainterPath()
            for i, v in enumerate(values):
                y = rect.bottom() - (min(max(v, lo), hi) - lo) / span * rect.height()
                point = QPointF(rect.left() + i * step, y)
                if i == 0:
                    path.moveTo(point)
                else:
                    path.lineTo(point)
            painter.setPen(QPen(self._colour, 1.6))
            painter.drawPath(path)
        elif values:
            painter.setPen(QPen(self._colour, 3))
            painter.drawPoint(QPointF(rect.center().x(), rect.center().y()))
        painter.end()


class EmptyStateLabel(QLabel):
    """A centred, muted, word-wrapped hint shown instead of an empty table or grid."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setProperty("role", "empty-state")
        self.setStyleSheet("color: #7a808a; padding: 16px;")


class HeaderedTableModel(QAbstractTableModel):
    """A flat table model: ``HEADERS`` name the columns, ``_rows`` holds one entry per row.

    Subclasses add ``data`` (and their own row storage and updates).
    """

    HEADERS: Sequence[str] = ()
    _rows: Sized

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.tr(self.HEADERS[section])
        return None


class _JobKeyed(Protocol):
    @property
    def job_id(self) -> str: ...


_R = TypeVar("_R", bound=_JobKeyed)


class JobRowsModel(HeaderedTableModel, Generic[_R]):
    """A ``HeaderedTableModel`` whose rows are keyed by ``job_id``, kept in insertion order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_R] = []
        self._index: dict[str, int] = {}

    def row_of(self, job_id: str) -> int | None:
        return self._index.get(job_id)

    def job(self, job_id: str) -> _R | None:
        i = self._index.get(job_id)
        return self._rows[i] if i is not None else None

    def _reset_rows(self, rows: Iterable[_R]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._index = {r.job_id: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def remove(self, job_id: str) -> None:
        i = self._index.get(job_id)
        if i is None:
            return
        self.beginRemoveRows(QModelIndex(), i, i)
        del self._rows[i]
        self._index = {r.job_id: n for n, r in enumerate(self._rows)}
        self.endRemoveRows()


def popup_row_menu(
    parent: QWidget, view: QAbstractItemView, pos: QPoint, name: str, actions: Sequence[QAction]
) -> None:
    """Pop up a context menu of ``actions`` for the row under ``pos`` (nothing off the rows)."""
    if not view.indexAt(pos).isValid():
        return
    menu = QMenu(parent)
    menu.setObjectName(name)
    for action in actions:
        menu.addAction(action)
    menu.popup(view.viewport().mapToGlobal(pos))


def side_spin(parent: QWidget, name: str, value: int) -> QSpinBox:
    """A spin box for an image side in pixels, within the sides ComfyUI accepts."""
    spin = QSpinBox(parent)
    spin.setObjectName(name)
    spin.setRange(MIN_SIDE, MAX_SIDE)
    spin.setSingleStep(SIDE_STEP)
    spin.setSuffix(" px")
    spin.setValue(max(MIN_SIDE, min(int(value), MAX_SIDE)))
    return spin


def size_row(parent: QWidget, width: QSpinBox, height: QSpinBox) -> QHBoxLayout:
    """``width × height`` side by side, for a form row."""
    row = QHBoxLayout()
    row.addWidget(width)
    row.addWidget(QLabel("×", parent))
    row.addWidget(height)
    return row
