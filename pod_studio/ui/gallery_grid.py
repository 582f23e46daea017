"""UI layer: the gallery grid — the centre of the window.

``GridModel`` holds one card per design (thumbnail, state, print-check badge, publish lines)
and one per generation job still on its way (progress and the live preview frame);
``GridFilterProxy`` shows the cards of one filter (all, to review, approved, rejected,
published) minus the ones deleted but still undoable; ``CardPainter`` paints a card with
the palette's colours (dark mode works); ``GalleryGridView`` is the widget: a ``QListView``
in icon mode (uniform items, reflows with the width), the filter bar, the actions, the
keyboard review (arrows, A approve, R reject, Delete, Enter opens the viewer), the undo
bar, and image files dropped onto it (imported as designs to review). Approve / reject /
regenerate / publish / import go through the ``GalleryController``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.gallery import GalleryController, ImportResult
from pod_studio.app.gallery_filters import (
    FILTER_LABELS,
    STATE_WORDS,
    CardState,
    GalleryFilter,
    image_state,
    job_state,
    matches,
    published_platforms,
)
from pod_studio.app.gallery_trash import PendingDeletes
from pod_studio.app.queue import QueueRow
from pod_studio.domain.events import ImageReady, JobProgress, PreviewFrame
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.orchestration import QueueChanged
from pod_studio.ui.image_viewer import ImageViewerDialog
from pod_studio.ui.widgets import AMBER, BLUE, GREEN, GREY, RED, EmptyStateLabel

ModelIndex = QModelIndex | QPersistentModelIndex
THUMB_SIDE = 176
CARD_WIDTH = THUMB_SIDE + 16
CARD_TEXT_LINES = 2
CARD_GAP = 8  # between cards, at least
THUMB_BOX = QSize(CARD_WIDTH - 16, THUMB_SIDE - 8)  # where a card paints its image
# Cards keep the pixmaps of the designs shown last (a few screens' worth); a card scrolled far
# away gives its pixmap back and gets it again from the controller when it is shown.
MAX_PIXMAPS = 400
EXTRAS_DELAY_MS = 40  # while scrolling, ask for the shown cards' thumbnails this often
_QUIET_ROLES = frozenset({int(Qt.ItemDataRole.DecorationRole), int(Qt.ItemDataRole.ToolTipRole)})
STATE_COLOURS: dict[CardState, QColor] = {
    CardState.QUEUED: GREY,
    CardState.RUNNING: BLUE,
    CardState.WAITING: AMBER,
    CardState.DONE: GREY,
    CardState.APPROVED: GREEN,
    CardState.REJECTED: RED,
    CardState.PUBLISHED: BLUE,
}
BADGE_WORDS = {"pass": "Print ✓", "warn": "Print ⚠", "fail": "Print ✗"}
BADGE_COLOURS = {"pass": GREEN, "warn": AMBER, "fail": RED}
_ACTIVE_JOB_STATES = ("queued", "running", "retry_wait")


def dropped_files(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
    """The local files being dragged, unless they are only workflow JSON files (the window
    opens those)."""
    mime = event.mimeData()
    urls = mime.urls() if mime.hasUrls() else []
    files = [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]
    if all(Path(f).suffix.lower() == ".json" for f in files):
        return []
    return files


@dataclass
class Card:
    """One cell of the grid: a design (``image``) or a generation job still running."""

    key: str  # image id, or "job:<job id>"
    image: GeneratedImage | None = None
    job_id: str = ""
    job_status: str = ""
    wait_reason: str = ""
    progress: float = 0.0  # 0..1
    pixmap: QPixmap | None = None
    badge: tuple[str, list[str]] | None = None
    publish: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> CardState:
        if self.image is None:
            return job_state(self.job_status)
        return image_state(self.image, self.publish)


class GridModel(QAbstractListModel):
    """Running jobs first, then the designs, newest first."""

    CardRole = Qt.ItemDataRole.UserRole + 1
    StateRole = Qt.ItemDataRole.UserRole + 2
    KeyRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cards: list[Card] = []
        self._rows: dict[str, int] = {}
        self._pixmapped: OrderedDict[str, None] = OrderedDict()  # designs' cards, oldest first

    # -- reading --------------------------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._cards)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._cards):
            return None
        card = self._cards[index.row()]
        if role == self.CardRole:
            return card
        if role == self.StateRole:
            return card.state.value  # a StrEnum would reach Python again as a plain str
        if role == self.KeyRole:
            return card.key
        if role == Qt.ItemDataRole.DisplayRole:
            return card.image.prompt if card.image is not None else STATE_WORDS[card.state]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(card)
        return None

    @staticmethod
    def _tooltip(card: Card) -> str:
        if card.image is None:
            text = f"{STATE_WORDS[card.state]} — {round(card.progress * 100)} %"
            return text + (f"\n{card.wait_reason}" if card.wait_reason else "")
        image = card.image
        text = f"{image.prompt}\nseed {image.seed} · {image.width}×{image.height}"
        text += f" · {STATE_WORDS[card.state]}"
        if card.badge is not None:
            text += f"\n\nPrint check: {card.badge[0].upper()}"
            text += "".join(f"\n• {r}" for r in card.badge[1])
        if card.publish:
            text += "\n\nPublishing:" + "".join(f"\n• {p}: {t}" for p, t in card.publish.items())
        return text

    def card(self, key: str) -> Card | None:
        row = self._rows.get(key)
        return self._cards[row] if row is not None else None

    def images(self) -> list[GeneratedImage]:
        return [c.image for c in self._cards if c.image is not None]

    def filter_counts(self, hidden: set[str]) -> dict[GalleryFilter, int]:
        """How many cards each filter shows, leaving out the ``hidden`` keys. Read from the
        cards directly: the grid asks after every change, during a batch many times a second."""
        states = Counter(c.state for c in self._cards if c.key not in hidden)
        return {
            which: sum(n for state, n in states.items() if matches(which, state))
            for which in GalleryFilter
        }

    def has_thumbnail(self, image_id: str) -> bool:
        card = self.card(image_id)
        return card is not None and card.pixmap is not None

    def badge(self, image_id: str) -> tuple[str, list[str]] | None:
        card = self.card(image_id)
        return card.badge if card is not None else None

    def publish_lines(self, image_id: str) -> dict[str, str]:
        card = self.card(image_id)
        return dict(card.publish) if card is not None else {}

    # -- writing --------------------------------------------------------------------------

    def set_images(self, images: list[GeneratedImage]) -> None:
        old = {c.key: c for c in self._cards}
        self.beginResetModel()
        jobs = [c for c in self._cards if c.image is None]
        cards = []
        for image in images:
            previous = old.get(image.image_id)
            card = previous or Card(key=image.image_id)
            card.image = image
            cards.append(card)
        self._cards = jobs + cards
        self._pixmapped = OrderedDict(
            (k, None) for k in self._pixmapped if k in old and old[k].pixmap is not None
        )
        self._reindex()
        self.endResetModel()

    def upsert_image(self, image: GeneratedImage) -> None:
        """A new or changed design; a finished job's card gives way to it."""
        if image.job_id:
            self.remove(f"job:{image.job_id}")
        card = self.card(image.image_id)
        if card is not None:
            card.image = image
            self._changed(image.image_id)
            return
        row = sum(1 for c in self._cards if c.image is None)
        self.beginInsertRows(QModelIndex(), row, row)
        self._cards.insert(row, Card(key=image.image_id, image=image))
        self._reindex()
        self.endInsertRows()

    def upsert_job(self, job_id: str, status: str, reason: str = "") -> None:
        key = f"job:{job_id}"
        if status not in _ACTIVE_JOB_STATES:
            self.remove(key)
            return
        card = self.card(key)
        if card is None:
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._cards.insert(0, Card(key=key, job_id=job_id, job_status=status))
            self._reindex()
            self.endInsertRows()
            card = self._cards[0]
        card.job_status = status
        card.wait_reason = reason if status == "retry_wait" else ""
        self._changed(key)

    def set_progress(self, job_id: str, fraction: float) -> None:
        card = self.card(f"job:{job_id}")
        if card is not None:
            card.progress = max(0.0, min(1.0, fraction))
            card.job_status = "running"
            self._changed(card.key)

    def set_pixmap(self, key: str, pixmap: QPixmap) -> None:
        """The card's image; a design's card gives up the pixmap again when ``MAX_PIXMAPS``
        newer ones have come (it shows "Loading…" until asked for again)."""
        card = self.card(key)
        if card is None:
            return
        card.pixmap = pixmap
        self._changed(key, Qt.ItemDataRole.DecorationRole)
        if card.image is None:
            return
        self._pixmapped[key] = None
        self._pixmapped.move_to_end(key)
        while len(self._pixmapped) > MAX_PIXMAPS:
            old, _ = self._pixmapped.popitem(last=False)
            stale = self.card(old)
            if stale is not None:
                stale.pixmap = None
                self._changed(old, Qt.ItemDataRole.DecorationRole)

    def pixmap_count(self) -> int:
        return sum(1 for c in self._cards if c.pixmap is not None)

    def set_badge(self, image_id: str, badge: str, reasons: list[str]) -> None:
        card = self.card(image_id)
        if card is not None:
            card.badge = (badge, list(reasons))
            self._changed(image_id, Qt.ItemDataRole.ToolTipRole)

    def set_publish(self, image_id: str, lines: dict[str, str]) -> None:
        card = self.card(image_id)
        if card is not None:
            card.publish = dict(lines)
            self._changed(image_id)

    def remove(self, key: str) -> None:
        row = self._rows.get(key)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._cards[row]
        self._pixmapped.pop(key, None)
        self._reindex()
        self.endRemoveRows()

    def _changed(self, key: str, role: Qt.ItemDataRole | None = None) -> None:
        """``role``: only what that role shows changed (the image, the tooltip), not the
        card's state."""
        row = self._rows.get(key)
        if row is not None:
            idx = self.index(row)
            if role is None:
                self.dataChanged.emit(idx, idx)
            else:
                self.dataChanged.emit(idx, idx, [role])

    def _reindex(self) -> None:
        self._rows = {c.key: i for i, c in enumerate(self._cards)}


class GridFilterProxy(QSortFilterProxyModel):
    """The cards of one filter, without the hidden (deleted, still undoable) ones."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.which = GalleryFilter.ALL
        self.hidden: set[str] = set()

    def set_filter(self, which: GalleryFilter) -> None:
        self.beginFilterChange()
        self.which = which
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_hidden(self, hidden: set[str]) -> None:
        self.beginFilterChange()
        self.hidden = set(hidden)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        if index.data(GridModel.KeyRole) in self.hidden:
            return False
        state = index.data(GridModel.StateRole)
        return isinstance(state, str) and matches(self.which, CardState(state))


def card_pixmap(image: QImage, ratio: float = 1.0) -> QPixmap:
    """``image`` as a card shows it: fitted once into ``THUMB_BOX`` (at the screen's pixel
    ratio), so painting a card never scales."""
    box = THUMB_BOX * ratio
    if image.width() > box.width() or image.height() > box.height():
        image = image.scaled(
            box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def card_height(metrics: QFontMetrics) -> int:
    return THUMB_SIDE + 10 + metrics.height() * CARD_TEXT_LINES


class CardDelegate(QStyledItemDelegate):
    """Paints a card: the image (or the live preview), a state chip, the print badge, a
    progress bar while generating, then the prompt and where it is published."""

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        return QSize(CARD_WIDTH, card_height(QFontMetrics(option.font)))  # type: ignore[attr-defined]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        card = index.data(GridModel.CardRole)
        if not isinstance(card, Card):
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        palette: QPalette = option.palette  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        metrics = QFontMetrics(option.font)  # type: ignore[attr-defined]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = rect.adjusted(3, 3, -3, -3)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(box, 6, 6)
        selected = bool(state & QStyle.StateFlag.State_Selected)
        thumb = QRect(box.left() + 5, box.top() + 5, box.width() - 10, THUMB_SIDE - 8)
        self._paint_image(painter, palette, card, thumb)
        self._paint_chips(painter, metrics, card, thumb)
        if card.image is None:
            bar = QRect(thumb.left(), thumb.bottom() - 5, thumb.width(), 6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(palette.color(QPalette.ColorRole.Mid))
            painter.drawRoundedRect(bar, 3, 3)
            done = QRect(bar.left(), bar.top(), round(bar.width() * card.progress), bar.height())
            painter.setBrush(STATE_COLOURS[card.state])
            painter.drawRoundedRect(done, 3, 3)
        text_colour = palette.color(QPalette.ColorRole.Text)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        y = thumb.bottom() + 4
        width = box.width() - 10
        if card.image is None:  # why it waits, in words, on up to two lines
            painter.setPen(QPen(muted))
            painter.drawText(
                QRect(box.left() + 5, y, width, metrics.height() * CARD_TEXT_LINES),
                int(
                    Qt.AlignmentFlag.AlignLeft
                    | Qt.AlignmentFlag.AlignTop
                    | Qt.TextFlag.TextWordWrap
                ),
                card.wait_reason or "Generating a new design",
            )
        for text, colour in self._lines(card, text_colour, muted)[:CARD_TEXT_LINES]:
            painter.setPen(QPen(colour))
            shown = metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)
            painter.drawText(
                QRect(box.left() + 5, y, width, metrics.height()),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                shown,
            )
            y += metrics.height()
        if selected:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 3))
            painter.drawRoundedRect(box.adjusted(1, 1, -1, -1), 6, 6)
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 1))
            painter.drawRoundedRect(box, 6, 6)
        painter.restore()

    @staticmethod
    def _paint_image(painter: QPainter, palette: QPalette, card: Card, thumb: QRect) -> None:
        pixmap = card.pixmap
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize()
            if size.width() > thumb.width() or size.height() > thumb.height():
                size = size.scaled(thumb.size(), Qt.AspectRatioMode.KeepAspectRatio)
            x = thumb.left() + (thumb.width() - size.width()) // 2
            y = thumb.top() + (thumb.height() - size.height()) // 2
            painter.drawPixmap(QRect(x, y, size.width(), size.height()), pixmap)
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(thumb, 4, 4)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.PlaceholderText)))
        if card.image is not None:
            words = "Loading…"
        elif card.state is CardState.RUNNING:
            words = "Starting…"
        else:
            words = "Waiting for the server…"
        painter.drawText(thumb, Qt.AlignmentFlag.AlignCenter, words)

    @staticmethod
    def _paint_chips(painter: QPainter, metrics: QFontMetrics, card: Card, thumb: QRect) -> None:
        chips: list[tuple[str, QColor, bool]] = []  # text, colour, left/right
        words = STATE_WORDS[card.state]
        if card.image is None and card.state is CardState.RUNNING:
            words += f" {round(card.progress * 100)} %"
        chips.append((words, STATE_COLOURS[card.state], True))
        if card.badge is not None:
            badge = card.badge[0]
            chips.append((BADGE_WORDS.get(badge, badge), BADGE_COLOURS.get(badge, GREY), False))
        for text, colour, left in chips:
            w = metrics.horizontalAdvance(text) + 12
            h = metrics.height() + 4
            x = thumb.left() + 4 if left else thumb.right() - 4 - w
            chip = QRect(x, thumb.top() + 4, w, h)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(chip, h / 2, h / 2)
            painter.setPen(QPen(QColor("white")))
            painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, text)

    @staticmethod
    def _lines(card: Card, text: QColor, muted: QColor) -> list[tuple[str, QColor]]:
        if card.image is None:
            return []  # painted above, word-wrapped
        lines = [(card.image.prompt, text)]
        live = published_platforms(card.publish)
        if live:
            lines.append(("Live on " + ", ".join(live), GREEN))
        else:
            for platform, words in card.publish.items():
                lines.append((f"{platform}: {words}", AMBER))
                break
            else:
                lines.append(
                    (f"seed {card.image.seed} · {card.image.width}×{card.image.height}", muted)
                )
        return lines


class SteppingViewer(ImageViewerDialog):
    """The image viewer with Previous / Next over the cards the grid shows, and A / R keys."""

    def __init__(self, grid: GalleryGridView, image: GeneratedImage) -> None:
        super().__init__(grid.controller, image, grid)
        self.grid = grid
        self.prev_button = QPushButton(self.tr("◀ Previous"), self)
        self.prev_button.setObjectName("viewer_prev_button")
        self.next_button = QPushButton(self.tr("Next ▶"), self)
        self.next_button.setObjectName("viewer_next_button")
        outer = self.layout()
        last = outer.itemAt(outer.count() - 1) if outer is not None else None
        buttons = last.layout() if last is not None else None
        if isinstance(buttons, QHBoxLayout):
            buttons.insertWidget(0, self.prev_button)
            buttons.insertWidget(1, self.next_button)
        self.prev_button.clicked.connect(self.show_previous)
        self.next_button.clicked.connect(self.show_next)

    def show_image(self, image: GeneratedImage) -> None:
        self.image = image
        self._pixmap = None
        self.image_label.setText(self.tr("Loading…"))
        self.setWindowTitle(self.tr("Design — %1").replace("%1", image.prompt[:60]))
        self._show_metadata(image)
        self.controller.load_full(image)
        self.grid.select_image(image.image_id)

    @Slot()
    def show_previous(self) -> None:
        image = self.grid.neighbour(self.image.image_id, -1)
        if image is not None:
            self.show_image(image)

    @Slot()
    def show_next(self) -> None:
        image = self.grid.neighbour(self.image.image_id, +1)
        if image is not None:
            self.show_image(image)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Left:
            self.show_previous()
        elif key == Qt.Key.Key_Right:
            self.show_next()
        elif key == Qt.Key.Key_A:
            self.controller.set_approved(self.image.image_id, True)
        elif key == Qt.Key.Key_R:
            self.controller.set_approved(self.image.image_id, False)
        else:
            super().keyPressEvent(event)


class UndoBar(QFrame):
    """A transient strip: "2 designs deleted — Undo"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undo_bar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.ToolTipBase)
        self.label = QLabel(self)
        self.label.setObjectName("undo_label")
        self.label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.undo_button = QPushButton(self.tr("Undo"), self)
        self.undo_button.setObjectName("undo_button")
        self.undo_button.setToolTip(self.tr("Bring the deleted designs back (Ctrl+Z)"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.undo_button)


class GalleryGridView(QWidget):
    """The gallery at the centre of the window. Dropping PNG, JPEG or WebP files onto it
    imports them as designs to review (the file name is the prompt).

    Signals:
        sig_publish_requested(list[GeneratedImage]): publish these approved designs.
        sig_import_reported(str text): what a drop of files did, in words.
    """

    sig_publish_requested = Signal(list)
    sig_import_reported = Signal(str)

    def __init__(
        self,
        controller: GalleryController,
        bridge: QtEventBridge | None = None,
        parent: QWidget | None = None,
        *,
        undo_window_ms: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("gallery_grid")
        self.model = GridModel(self)
        self.proxy = GridFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        kwargs = {} if undo_window_ms is None else {"window_ms": undo_window_ms}
        self.deletes = PendingDeletes(controller.runner, controller.store, parent=self, **kwargs)
        self.viewer: SteppingViewer | None = None

        self.list_view = QListView(self)
        self.list_view.setObjectName("gallery_grid_list")
        self.list_view.setModel(self.proxy)
        self.list_view.setViewMode(QListView.ViewMode.IconMode)
        self.list_view.setResizeMode(QListView.ResizeMode.Adjust)
        self.list_view.setMovement(QListView.Movement.Static)
        self.list_view.setFlow(QListView.Flow.LeftToRight)
        self.list_view.setWrapping(True)
        self.list_view.setUniformItemSizes(True)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list_view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.list_view.setMouseTracking(True)
        self.delegate = CardDelegate(self.list_view)
        self.list_view.setItemDelegate(self.delegate)
        self._cell_height = card_height(self.list_view.fontMetrics()) + CARD_GAP
        self.list_view.setGridSize(QSize(CARD_WIDTH + CARD_GAP, self._cell_height))
        self.list_view.viewport().installEventFilter(self)
        self.list_view.setMinimumWidth(CARD_WIDTH + 40)
        self.list_view.installEventFilter(self)
        self._extras_timer = QTimer(self)
        self._extras_timer.setSingleShot(True)
        self._extras_timer.setInterval(EXTRAS_DELAY_MS)

        self.filter_buttons: dict[GalleryFilter, QToolButton] = {}
        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        filters = QHBoxLayout()
        filters.setSpacing(4)
        for which in GalleryFilter:
            button = QToolButton(self)
            button.setObjectName(f"filter_{which.value}_button")
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setText(FILTER_LABELS[which])
            button.clicked.connect(lambda _c=False, w=which: self.set_filter(w))
            self.filter_group.addButton(button)
            self.filter_buttons[which] = button
            filters.addWidget(button)
        self.filter_buttons[GalleryFilter.ALL].setChecked(True)
        filters.addStretch(1)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("gallery_count_label")
        filters.addWidget(self.count_label)

        self.empty_label = EmptyStateLabel(
            self.tr(
                "No designs yet — write a prompt and press Generate, or drop PNG, JPEG or "
                "WebP files here"
            ),
            self,
        )
        self.empty_label.setObjectName("gallery_empty_label")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.list_view)
        self.stack.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.undo_bar = UndoBar(self)
        self.undo_bar.hide()
        self.error_label = QLabel(self)
        self.error_label.setObjectName("gallery_error_label")
        self.error_label.setWordWrap(True)
        error_palette = self.error_label.palette()
        error_palette.setColor(QPalette.ColorRole.WindowText, RED)
        self.error_label.setPalette(error_palette)
        self.error_label.hide()

        def action(name: str, text: str, tip: str) -> QPushButton:
            button = QPushButton(text, self)
            button.setObjectName(name)
            button.setToolTip(tip)
            return button

        self.approve_button = action("approve_button", self.tr("Approve"), self.tr("Approve (A)"))
        self.reject_button = action("reject_button", self.tr("Reject"), self.tr("Reject (R)"))
        self.regenerate_button = action(
            "regenerate_button",
            self.tr("Regenerate"),
            self.tr("Generate the same prompt again with a new seed"),
        )
        self.delete_button = action(
            "delete_button", self.tr("Delete"), self.tr("Delete (Del); Ctrl+Z brings it back")
        )
        self.open_button = action("open_image_button", self.tr("Open"), self.tr("Open (Enter)"))
        self.publish_button = action(
            "publish_button", self.tr("Publish…"), self.tr("Publish the selected approved designs")
        )
        self.publish_button.setDefault(False)
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        for b in (self.approve_button, self.reject_button, self.regenerate_button):
            buttons.addWidget(b)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.publish_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(filters)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.undo_bar)
        layout.addWidget(self.error_label)
        layout.addLayout(buttons)

        self.setAcceptDrops(controller.can_import)
        self.undo_shortcut = QShortcut(QKeySequence.StandardKey.Undo, self)
        self.undo_shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._fit_cards()
        self._connect_signals(bridge)
        self._refresh_state()

    def _connect_signals(self, bridge: QtEventBridge | None) -> None:
        c = self.controller
        c.sig_images_loaded.connect(self._on_controller_images_loaded)
        c.sig_image_added.connect(self._on_controller_image_changed)
        c.sig_image_updated.connect(self._on_controller_image_changed)
        c.sig_card_image_ready.connect(self._on_controller_card_image_ready)
        c.sig_load_failed.connect(self._on_controller_load_failed)
        c.sig_badge_ready.connect(self._on_controller_badge_ready)
        c.sig_publish_status_changed.connect(self._on_controller_publish_status_changed)
        c.sig_import_finished.connect(self._on_controller_import_finished)
        if bridge is not None:
            bridge.sig_queue_changed.connect(self._on_bridge_queue_changed)
            bridge.sig_job_progress.connect(self._on_bridge_job_progress)
            bridge.sig_preview_frame.connect(self._on_bridge_preview_frame)
            bridge.sig_image_ready.connect(self._on_bridge_image_ready)
        self.deletes.sig_hidden.connect(self._on_deletes_changed)
        self.deletes.sig_restored.connect(self._on_deletes_restored)
        self.deletes.sig_deleted.connect(self._on_deletes_deleted)
        self.deletes.sig_failed.connect(self._on_controller_load_failed)
        self.undo_bar.undo_button.clicked.connect(self.undo_delete)
        self.undo_shortcut.activated.connect(self.undo_delete)
        self.approve_button.clicked.connect(lambda: self.approve_selected())
        self.reject_button.clicked.connect(lambda: self.reject_selected())
        self.regenerate_button.clicked.connect(self._on_regenerate_clicked)
        self.delete_button.clicked.connect(self.delete_selected)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.publish_button.clicked.connect(self._on_publish_clicked)
        self.list_view.activated.connect(self._on_list_activated)
        self.list_view.selectionModel().selectionChanged.connect(self._refresh_state)
        for signal in (
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.layoutChanged,
        ):
            signal.connect(self._refresh_state)
            signal.connect(self._schedule_extras)
        self.model.dataChanged.connect(self._on_model_data_changed)
        self.list_view.verticalScrollBar().valueChanged.connect(self._schedule_extras)
        self._extras_timer.timeout.connect(self._request_shown_extras)

    # -- queries --------------------------------------------------------------------------

    def column_count(self) -> int:
        """How many cards fit side by side at the current width."""
        cell = CARD_WIDTH + CARD_GAP
        if self.list_view.isVisible():
            width = self.list_view.viewport().width()
        else:  # empty gallery: what the list would get in the same place
            scroll = self.list_view.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            width = self.stack.width() - 2 * self.list_view.frameWidth() - scroll
        return max(1, width // max(1, cell))

    def visible_rows(self) -> range:
        """The proxy rows of the cards in the viewport (empty when none is)."""
        view = self.list_view
        rows = self.proxy.rowCount()
        if not rows or not view.isVisible():
            return range(0)
        area = view.viewport().rect()
        grid = view.gridSize()
        first = last = -1
        for y in range(area.top(), area.top() + grid.height() + 1, 8):
            index = view.indexAt(QPoint(grid.width() // 2, y))
            if index.isValid():
                first = index.row()
                break
        else:
            first = 0
        for y in range(area.bottom(), area.bottom() - grid.height() - 1, -8):
            for x in range(area.right(), 0, -max(8, grid.width() // 2)):
                index = view.indexAt(QPoint(x, y))
                if index.isValid():
                    last = index.row()
                    break
            if last >= 0:
                break
        else:  # not laid out yet: as many as the viewport holds
            cells = max(1, area.width() // max(1, grid.width()))
            cells *= area.height() // max(1, grid.height()) + 1
            last = min(rows, first + cells) - 1
        return range(first, max(first, last) + 1)

    def shown_images(self) -> list[GeneratedImage]:
        """The designs the current filter shows, in grid order."""
        out = []
        for row in range(self.proxy.rowCount()):
            card = self.proxy.index(row, 0).data(GridModel.CardRole)
            if isinstance(card, Card) and card.image is not None:
                out.append(card.image)
        return out

    def selected_images(self) -> list[GeneratedImage]:
        rows = sorted(i.row() for i in self.list_view.selectionModel().selectedIndexes())
        out = []
        for row in rows:
            card = self.proxy.index(row, 0).data(GridModel.CardRole)
            if isinstance(card, Card) and card.image is not None:
                out.append(card.image)
        return out

    def neighbour(self, image_id: str, step: int) -> GeneratedImage | None:
        shown = self.shown_images()
        ids = [i.image_id for i in shown]
        if image_id not in ids:
            return shown[0] if shown else None
        at = ids.index(image_id) + step
        return shown[at] if 0 <= at < len(shown) else None

    def select_image(self, image_id: str) -> None:
        row = self.model._rows.get(image_id)
        if row is None:
            return
        index = self.proxy.mapFromSource(self.model.index(row))
        if index.isValid():
            self.list_view.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
            self.list_view.scrollTo(index)

    def select_images(self, image_ids: list[str]) -> None:
        """Select exactly these designs (those the filter shows)."""
        selection = QItemSelection()
        for image_id in image_ids:
            row = self.model._rows.get(image_id)
            if row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(row))
            if index.isValid():
                selection.select(index, index)
        self.list_view.selectionModel().select(
            selection, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )

    # -- actions --------------------------------------------------------------------------

    def set_filter(self, which: GalleryFilter) -> None:
        self.filter_buttons[which].setChecked(True)
        self.proxy.set_filter(which)
        self._refresh_state()

    def approve_selected(self, advance: bool = False) -> None:
        self._review(True, advance)

    def reject_selected(self, advance: bool = False) -> None:
        self._review(False, advance)

    def _review(self, approved: bool, advance: bool) -> None:
        """Mark the selection. From the keyboard (A/R, ``advance``) a single design's review
        moves on to the next one; the buttons keep the selection, so Publish… right after
        Approve publishes what was just approved."""
        selected = self.selected_images()
        self.controller.set_approved([i.image_id for i in selected], approved)
        if advance and len(selected) == 1:
            following = self.neighbour(selected[0].image_id, +1)
            if following is not None:
                self.select_image(following.image_id)

    def delete_selected(self) -> None:
        selected = self.selected_images()
        if not selected:
            return
        following = self.neighbour(selected[-1].image_id, +1)
        self.deletes.delete(selected)
        if following is not None:
            self.select_image(following.image_id)

    @Slot()
    def undo_delete(self) -> bool:
        return self.deletes.undo()

    def open_viewer(self, image: GeneratedImage) -> SteppingViewer:
        if self.viewer is None:
            self.viewer = SteppingViewer(self, image)
            self.viewer.finished.connect(self._on_viewer_finished)
        else:
            self.viewer.show_image(image)
        self.viewer.show()
        self.viewer.raise_()
        return self.viewer

    @Slot(list)
    def show_queue_rows(self, rows: list[QueueRow]) -> None:
        """Generation jobs the queue still holds (e.g. after a restart) get their cards."""
        for row in rows:
            if row.kind == "generate" and row.state in _ACTIVE_JOB_STATES:
                self.model.upsert_job(row.job_id, row.state, row.last_error)

    def flush(self) -> None:
        """At close: designs still waiting for their undo window go to the trash now."""
        self.deletes.flush()

    # -- dropping files --------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = dropped_files(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        if self.controller.import_files(files):
            self.error_label.hide()
            self.sig_import_reported.emit(self.tr("Importing %n file(s)…", "", len(files)))

    # -- keyboard -------------------------------------------------------------------------

    def _spread(self) -> None:
        """Share the row's spare width between the cards (no ragged gap at the right)."""
        width = self.list_view.viewport().width()
        base = CARD_WIDTH + CARD_GAP
        columns = max(1, width // base)
        cell = max(base, (width - 2) // columns)  # a hair of slack: the last column must fit
        if self.list_view.gridSize().width() != cell:
            self.list_view.setGridSize(QSize(cell, self._cell_height))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.list_view.viewport() and event.type() == QEvent.Type.Resize:
            self._spread()
            self._schedule_extras()
            return False
        if watched is self.list_view and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
                return False
            key = event.key()
            if key == Qt.Key.Key_A:
                self.approve_selected(advance=True)
                return True
            if key == Qt.Key.Key_R:
                self.reject_selected(advance=True)
                return True
            if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                self.delete_selected()
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._on_open_clicked()
                return True
        return super().eventFilter(watched, event)

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _refresh_state(self) -> None:
        shown = self.proxy.rowCount()
        total = self.model.rowCount()
        self.stack.setCurrentWidget(self.list_view if total else self.empty_label)
        self.count_label.setText(self.tr("%n design(s)", "", shown) if total else "")
        counts = self.model.filter_counts(self.proxy.hidden)
        for which, tool in self.filter_buttons.items():
            tool.setText(f"{FILTER_LABELS[which]} ({counts[which]})")
        selected = self.selected_images()
        has = bool(selected)
        for button in (self.approve_button, self.reject_button, self.delete_button):
            button.setEnabled(has)
        self.open_button.setEnabled(has)
        self.regenerate_button.setEnabled(has and self.controller.can_regenerate)
        approved = [i for i in selected if i.approved is True]
        self.publish_button.setEnabled(bool(approved))

    @Slot(list)
    def _on_controller_images_loaded(self, images: list[GeneratedImage]) -> None:
        self.error_label.hide()
        self.model.set_images(images)
        for image in images:
            status = self.controller.publish_status(image.image_id)
            if status:
                self.model.set_publish(image.image_id, status)
        self._request_shown_extras()

    @Slot()
    def _schedule_extras(self) -> None:
        """Soon (at most every ``EXTRAS_DELAY_MS`` while scrolling): the thumbnails and print
        badges of the cards then shown."""
        if not self._extras_timer.isActive():
            self._extras_timer.start()

    @Slot()
    def _request_shown_extras(self) -> None:
        """Thumbnails and badges for the cards in view and the screen after them, nothing
        else: a library of 10,000 designs decodes what the seller looks at."""
        shown = self.visible_rows()
        if not shown:
            return
        ahead = range(shown.start, min(self.proxy.rowCount(), shown.stop + len(shown)))
        thumbs, badges = [], []
        for row in ahead:
            card = self.proxy.index(row, 0).data(GridModel.CardRole)
            if not isinstance(card, Card) or card.image is None:
                continue
            if card.pixmap is None or card.pixmap.isNull():
                thumbs.append(card.image)
            if card.badge is None:
                badges.append(card.image)
        self.controller.want_thumbnails(thumbs)
        self.controller.want_badges(badges)

    @Slot(QModelIndex, QModelIndex, list)
    def _on_model_data_changed(
        self, _first: QModelIndex, _last: QModelIndex, roles: list[int] | None = None
    ) -> None:
        if roles and _QUIET_ROLES.issuperset(int(r) for r in roles):
            # an image or a badge: the filters and buttons stay as they are; a card in view
            # whose image was given back (newer ones came in) asks for it again
            if int(Qt.ItemDataRole.DecorationRole) in (int(r) for r in roles):
                card = _first.data(GridModel.CardRole)
                row = self.proxy.mapFromSource(_first).row()
                shown = self.visible_rows()
                if isinstance(card, Card) and card.pixmap is None and row in shown:
                    self._schedule_extras()
            return
        self._refresh_state()

    @Slot(object)
    def _on_controller_image_changed(self, image: GeneratedImage) -> None:
        self.model.upsert_image(image)
        self._request_extras(image)

    def _fit_cards(self) -> None:
        ratio = self.devicePixelRatioF()
        self.controller.card_fit = (
            round(THUMB_BOX.width() * ratio),
            round(THUMB_BOX.height() * ratio),
        )

    def _request_extras(self, image: GeneratedImage) -> None:
        card = self.model.card(image.image_id)
        if card is None:
            return
        if card.pixmap is None or card.pixmap.isNull():
            self.controller.load_thumbnail(image)
        if card.badge is None:
            self.controller.load_badge(image)
        status = self.controller.publish_status(image.image_id)
        if status:
            self.model.set_publish(image.image_id, status)

    @Slot(str, QImage)
    def _on_controller_card_image_ready(self, image_id: str, image: QImage) -> None:
        self.model.set_pixmap(image_id, card_pixmap(image, self.devicePixelRatioF()))

    @Slot(str, str, list)
    def _on_controller_badge_ready(self, image_id: str, badge: str, reasons: list[str]) -> None:
        self.model.set_badge(image_id, badge, reasons)

    @Slot(str, dict)
    def _on_controller_publish_status_changed(self, image_id: str, lines: dict[str, str]) -> None:
        self.model.set_publish(image_id, lines)

    @Slot(object)
    def _on_controller_import_finished(self, result: ImportResult) -> None:
        text = result.text()
        if result.skipped:
            self.error_label.setText(text)
            self.error_label.show()
        if result.imported and self.proxy.which not in (GalleryFilter.ALL, GalleryFilter.TO_REVIEW):
            self.set_filter(GalleryFilter.TO_REVIEW)  # where the new cards are
        if result.imported:
            self.select_images([i.image_id for i in result.imported])
        self.sig_import_reported.emit(text)

    @Slot(str)
    def _on_controller_load_failed(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    @Slot(object)
    def _on_bridge_queue_changed(self, event: QueueChanged) -> None:
        if event.kind == "generate":
            self.model.upsert_job(event.job_id, event.state, event.last_error)

    @Slot(object)
    def _on_bridge_job_progress(self, event: JobProgress) -> None:
        if event.max > 0:
            self.model.set_progress(event.job_id, event.value / event.max)

    @Slot(object)
    def _on_bridge_preview_frame(self, event: PreviewFrame) -> None:
        qimage = QImage.fromData(event.data)
        if not qimage.isNull():
            self.model.set_pixmap(
                f"job:{event.job_id}", card_pixmap(qimage, self.devicePixelRatioF())
            )

    @Slot(object)
    def _on_bridge_image_ready(self, event: ImageReady) -> None:
        self.model.remove(f"job:{event.job_id}")

    @Slot(list)
    def _on_deletes_changed(self, ids: list[str]) -> None:
        self.proxy.set_hidden(self.deletes.hidden_ids())
        self.undo_bar.label.setText(
            self.tr("%n design(s) deleted — they go to the trash folder", "", len(ids))
        )
        self.undo_bar.show()

    @Slot(list)
    def _on_deletes_restored(self, ids: list[str]) -> None:
        self.proxy.set_hidden(self.deletes.hidden_ids())
        self.undo_bar.hide()
        if ids:
            self.select_image(ids[0])

    @Slot(list)
    def _on_deletes_deleted(self, ids: list[str]) -> None:
        for image_id in ids:
            self.model.remove(image_id)
        self.proxy.set_hidden(self.deletes.hidden_ids())
        if not self.deletes.pending:
            self.undo_bar.hide()

    @Slot()
    def _on_regenerate_clicked(self) -> None:
        self.controller.regenerate(self.selected_images())

    @Slot()
    def _on_publish_clicked(self) -> None:
        approved = [i for i in self.selected_images() if i.approved is True]
        if approved:
            self.sig_publish_requested.emit(approved)

    @Slot()
    def _on_open_clicked(self) -> None:
        selected = self.selected_images()
        if selected:
            self.open_viewer(selected[0])

    @Slot(QModelIndex)
    def _on_list_activated(self, index: QModelIndex) -> None:
        card = index.data(GridModel.CardRole)
        if isinstance(card, Card) and card.image is not None:
            self.open_viewer(card.image)

    @Slot()
    def _on_viewer_finished(self) -> None:
        self.viewer = None
