"""UI layer: the gallery — a grid of design cards: the image, its approval mark, its print
preflight badge and its publish status per platform; approve / reject / regenerate; select
several and "Publish…".

``GalleryModel`` holds the images, thumbnails (``QPixmap`` built in the GUI thread from the
PNG bytes the controller made off-thread), badges and publish lines; ``CardDelegate`` paints
each card. Double-click or Enter opens the non-modal ``ImageViewerDialog``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.gallery import GalleryController
from pod_studio.domain.models import GeneratedImage
from pod_studio.ui.image_viewer import ImageViewerDialog
from pod_studio.ui.widgets import AMBER, BLUE, GREEN, RED, EmptyStateLabel

ModelIndex = QModelIndex | QPersistentModelIndex
ICON_SIDE = 160
CARD_WIDTH = ICON_SIDE + 40
CARD_TEXT_LINES = 4
_APPROVED_BG = QColor(46, 157, 79, 40)
_REJECTED_BG = QColor(208, 69, 59, 40)
_TEXT = QColor("#2b2f36")
_MUTED = QColor("#7a808a")
_SELECTED_TINT = QColor(47, 123, 214, 45)
_BADGE_WORDS = {"pass": "Print ✓", "warn": "Print ⚠", "fail": "Print ✗"}
_BADGE_COLOURS = {"pass": GREEN, "warn": AMBER, "fail": RED}


def publish_colour(text: str) -> QColor:
    if text.startswith("failed"):
        return RED
    if text.startswith(("published", "draft created")):
        return GREEN
    if text.startswith(("will retry", "cancelled")):
        return AMBER
    return BLUE


def mark_text(approved: bool | None) -> str:
    if approved is True:
        return "✓ "
    if approved is False:
        return "✗ "
    return ""


class GalleryModel(QAbstractListModel):
    """Images, newest first."""

    ImageRole = Qt.ItemDataRole.UserRole + 1
    ImageIdRole = Qt.ItemDataRole.UserRole + 2
    LinesRole = Qt.ItemDataRole.UserRole + 3  # list[(text, QColor)] under the image

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: list[GeneratedImage] = []
        self._rows: dict[str, int] = {}
        self._pixmaps: dict[str, QPixmap] = {}
        self._badges: dict[str, tuple[str, list[str]]] = {}
        self._publish: dict[str, dict[str, str]] = {}

    def card_lines(self, image: GeneratedImage) -> list[tuple[str, QColor]]:
        """What the card shows under the image: prompt, marks, then one line per platform."""
        prompt = image.prompt if len(image.prompt) <= 60 else image.prompt[:59] + "…"
        lines: list[tuple[str, QColor]] = [(prompt, _TEXT)]
        marks: list[str] = []
        colour = _MUTED
        if image.approved is True:
            marks.append("✓ Approved")
            colour = GREEN
        elif image.approved is False:
            marks.append("✗ Rejected")
            colour = RED
        badge = self._badges.get(image.image_id)
        if badge is not None:
            marks.append(_BADGE_WORDS.get(badge[0], badge[0]))
            if badge[0] != "pass" or colour is _MUTED:
                colour = _BADGE_COLOURS.get(badge[0], colour)
        lines.append((" · ".join(marks) or "not reviewed", colour))
        for platform, text in self._publish.get(image.image_id, {}).items():
            lines.append((f"{platform}: {text}", publish_colour(text)))
        return lines

    def badge(self, image_id: str) -> tuple[str, list[str]] | None:
        return self._badges.get(image_id)

    def publish_lines(self, image_id: str) -> dict[str, str]:
        return dict(self._publish.get(image_id, {}))

    def set_badge(self, image_id: str, badge: str, reasons: list[str]) -> None:
        self._badges[image_id] = (badge, list(reasons))
        self._row_changed(image_id)

    def set_publish(self, image_id: str, lines: dict[str, str]) -> None:
        self._publish[image_id] = dict(lines)
        self._row_changed(image_id)

    def _row_changed(self, image_id: str) -> None:
        row = self._rows.get(image_id)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._images)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        image = self._images[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            prompt = image.prompt if len(image.prompt) <= 40 else image.prompt[:39] + "…"
            return mark_text(image.approved) + prompt
        if role == Qt.ItemDataRole.DecorationRole:
            return self._pixmaps.get(image.image_id)
        if role == Qt.ItemDataRole.ToolTipRole:
            status = {True: "approved", False: "rejected", None: "not reviewed"}[image.approved]
            text = f"{image.prompt}\nseed {image.seed} · {image.width}×{image.height} · {status}"
            badge = self._badges.get(image.image_id)
            if badge is not None:
                text += f"\n\nPrint check: {badge[0].upper()}"
                text += "".join(f"\n• {r}" for r in badge[1])
            publish = self._publish.get(image.image_id)
            if publish:
                text += "\n\nPublishing:" + "".join(f"\n• {p}: {t}" for p, t in publish.items())
            return text
        if role == self.LinesRole:
            return self.card_lines(image)
        if role == Qt.ItemDataRole.BackgroundRole:
            if image.approved is True:
                return QBrush(_APPROVED_BG)
            if image.approved is False:
                return QBrush(_REJECTED_BG)
            return None
        if role == self.ImageRole:
            return image
        if role == self.ImageIdRole:
            return image.image_id
        return None

    def images(self) -> list[GeneratedImage]:
        return list(self._images)

    def image_at(self, row: int) -> GeneratedImage | None:
        return self._images[row] if 0 <= row < len(self._images) else None

    def row_of(self, image_id: str) -> int | None:
        return self._rows.get(image_id)

    def has_thumbnail(self, image_id: str) -> bool:
        return image_id in self._pixmaps

    def set_images(self, images: list[GeneratedImage]) -> None:
        self.beginResetModel()
        self._images = list(images)
        self._reindex()
        self.endResetModel()

    def add_image(self, image: GeneratedImage) -> None:
        if image.image_id in self._rows:
            self.update_image(image)
            return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._images.insert(0, image)
        self._reindex()
        self.endInsertRows()

    def update_image(self, image: GeneratedImage) -> None:
        row = self._rows.get(image.image_id)
        if row is None:
            self.add_image(image)
            return
        self._images[row] = image
        idx = self.index(row)
        self.dataChanged.emit(idx, idx)

    def set_thumbnail(self, image_id: str, pixmap: QPixmap) -> None:
        self._pixmaps[image_id] = pixmap
        row = self._rows.get(image_id)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    def _reindex(self) -> None:
        self._rows = {img.image_id: i for i, img in enumerate(self._images)}


class CardDelegate(QStyledItemDelegate):
    """Paints a design card: the thumbnail, then coloured, elided text lines."""

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        line = QFontMetrics(option.font).height()  # type: ignore[attr-defined]
        return QSize(CARD_WIDTH, ICON_SIDE + 12 + line * CARD_TEXT_LINES)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        rect: QRect = option.rect  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = rect.adjusted(2, 2, -2, -2)
        background = index.data(Qt.ItemDataRole.BackgroundRole)
        if isinstance(background, QBrush):
            painter.fillRect(card, background)
        if state & QStyle.StateFlag.State_Selected:
            # a frame and a light tint: the coloured status lines stay readable
            painter.fillRect(card, _SELECTED_TINT)
            painter.setPen(QPen(BLUE, 2))
            painter.drawRoundedRect(card.adjusted(1, 1, -1, -1), 4, 4)
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(QPen(_MUTED, 1))
            painter.drawRoundedRect(card, 4, 4)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        top = rect.top() + 6
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            x = rect.left() + (rect.width() - pixmap.width()) // 2
            y = top + (ICON_SIDE - pixmap.height()) // 2
            painter.drawPixmap(x, y, pixmap)
        else:
            painter.setPen(QPen(_MUTED))
            box = QRect(rect.left() + 20, top, rect.width() - 40, ICON_SIDE)
            painter.drawRect(box)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "…")
        metrics = QFontMetrics(option.font)  # type: ignore[attr-defined]
        y = top + ICON_SIDE + 4
        width = rect.width() - 8
        lines = index.data(GalleryModel.LinesRole) or []
        for text, colour in lines[:CARD_TEXT_LINES]:
            painter.setPen(QPen(colour))
            shown = metrics.elidedText(str(text), Qt.TextElideMode.ElideRight, width)
            painter.drawText(
                QRect(rect.left() + 4, y, width, metrics.height()),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter),
                shown,
            )
            y += metrics.height()
        painter.restore()


class GalleryView(QWidget):
    """The right pane: every design, with approve / reject / regenerate and "Publish…".

    Signals:
        sig_publish_requested(list[GeneratedImage]): the seller wants to publish these
            (approved) designs; the main window opens the publish panel.
    """

    sig_publish_requested = Signal(list)

    def __init__(self, controller: GalleryController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("gallery")
        self.model = GalleryModel(self)
        self._viewers: dict[str, ImageViewerDialog] = {}

        self.list_view = QListView(self)
        self.list_view.setObjectName("gallery_list")
        self.list_view.setModel(self.model)
        self.list_view.setViewMode(QListView.ViewMode.IconMode)
        self.list_view.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.delegate = CardDelegate(self.list_view)
        self.list_view.setItemDelegate(self.delegate)
        line = self.list_view.fontMetrics().height()
        self.list_view.setGridSize(QSize(CARD_WIDTH + 8, ICON_SIDE + 20 + line * CARD_TEXT_LINES))
        self.list_view.setResizeMode(QListView.ResizeMode.Adjust)
        self.list_view.setMovement(QListView.Movement.Static)
        self.list_view.setUniformItemSizes(True)
        self.list_view.setWordWrap(True)
        self.list_view.setSpacing(6)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.empty_label = EmptyStateLabel(
            self.tr("No designs yet — write a prompt and press Generate"), self
        )
        self.empty_label.setObjectName("gallery_empty_label")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.list_view)

        self.approve_button = QPushButton(self.tr("Approve"), self)
        self.approve_button.setObjectName("approve_button")
        self.reject_button = QPushButton(self.tr("Reject"), self)
        self.reject_button.setObjectName("reject_button")
        self.regenerate_button = QPushButton(self.tr("Regenerate"), self)
        self.regenerate_button.setObjectName("regenerate_button")
        self.regenerate_button.setToolTip(self.tr("Generate the same prompt again with a new seed"))
        self.publish_button = QPushButton(self.tr("Publish…"), self)
        self.publish_button.setObjectName("publish_button")
        self.publish_button.setToolTip(self.tr("Publish the selected approved designs"))
        self.open_button = QPushButton(self.tr("Open…"), self)
        self.open_button.setObjectName("open_image_button")
        self.count_label = QLabel(self)
        self.count_label.setObjectName("gallery_count_label")
        self.error_label = QLabel(self)
        self.error_label.setObjectName("gallery_error_label")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.hide()

        title = QLabel(self.tr("Gallery"), self)
        title.setProperty("role", "heading")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(6)
        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.count_label)
        layout.addLayout(head)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.error_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.approve_button)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.regenerate_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.publish_button)
        layout.addLayout(buttons)
        self._connect_signals()
        self._on_selection_changed()
        self._update_empty_state()

    def _connect_signals(self) -> None:
        c = self.controller
        c.sig_images_loaded.connect(self._on_controller_images_loaded)
        c.sig_image_added.connect(self._on_controller_image_added)
        c.sig_image_updated.connect(self._on_controller_image_updated)
        c.sig_thumbnail_ready.connect(self._on_controller_thumbnail_ready)
        c.sig_load_failed.connect(self._on_controller_load_failed)
        c.sig_badge_ready.connect(self._on_controller_badge_ready)
        c.sig_publish_status_changed.connect(self._on_controller_publish_status_changed)
        self.regenerate_button.clicked.connect(self._on_regenerate_clicked)
        self.publish_button.clicked.connect(self._on_publish_clicked)
        self.model.dataChanged.connect(self._on_selection_changed)
        self.list_view.activated.connect(self._on_list_activated)
        self.list_view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.approve_button.clicked.connect(self._on_approve_clicked)
        self.reject_button.clicked.connect(self._on_reject_clicked)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.modelReset.connect(self._update_empty_state)

    # -- helpers --------------------------------------------------------------------------

    def selected_images(self) -> list[GeneratedImage]:
        rows = sorted(i.row() for i in self.list_view.selectionModel().selectedIndexes())
        return [img for img in (self.model.image_at(r) for r in rows) if img is not None]

    def open_viewer(self, image: GeneratedImage) -> ImageViewerDialog:
        viewer = self._viewers.get(image.image_id)
        if viewer is None:
            viewer = ImageViewerDialog(self.controller, image, self)
            viewer.finished.connect(lambda _r, i=image.image_id: self._viewers.pop(i, None))
            self._viewers[image.image_id] = viewer
        viewer.show()
        viewer.raise_()
        return viewer

    def _set_selected(self, approved: bool | None) -> None:
        self.controller.set_approved([i.image_id for i in self.selected_images()], approved)

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _update_empty_state(self) -> None:
        n = self.model.rowCount()
        self.stack.setCurrentWidget(self.list_view if n else self.empty_label)
        self.count_label.setText(self.tr("%n design(s)", "", n) if n else "")

    @Slot()
    def _on_selection_changed(self) -> None:
        selected = self.selected_images()
        has = bool(selected)
        for button in (self.approve_button, self.reject_button, self.open_button):
            button.setEnabled(has)
        self.regenerate_button.setEnabled(has and self.controller.can_regenerate)
        approved = [i for i in selected if i.approved is True]
        self.publish_button.setEnabled(bool(approved))
        if has and not approved:
            self.publish_button.setToolTip(self.tr("Approve a design before publishing it"))
        else:
            self.publish_button.setToolTip(self.tr("Publish the selected approved designs"))

    @Slot(str, str, list)
    def _on_controller_badge_ready(self, image_id: str, badge: str, reasons: list[str]) -> None:
        self.model.set_badge(image_id, badge, reasons)

    @Slot(str, dict)
    def _on_controller_publish_status_changed(self, image_id: str, lines: dict[str, str]) -> None:
        self.model.set_publish(image_id, lines)

    @Slot()
    def _on_regenerate_clicked(self) -> None:
        self.controller.regenerate(self.selected_images())

    @Slot()
    def _on_publish_clicked(self) -> None:
        approved = [i for i in self.selected_images() if i.approved is True]
        if approved:
            self.sig_publish_requested.emit(approved)

    @Slot(list)
    def _on_controller_images_loaded(self, images: list[GeneratedImage]) -> None:
        self.error_label.hide()
        self.model.set_images(images)
        for image in images:
            self._request_thumbnail(image)

    @Slot(object)
    def _on_controller_image_added(self, image: GeneratedImage) -> None:
        self.model.add_image(image)
        self._request_thumbnail(image)

    @Slot(object)
    def _on_controller_image_updated(self, image: GeneratedImage) -> None:
        self.model.update_image(image)

    def _request_thumbnail(self, image: GeneratedImage) -> None:
        if not self.model.has_thumbnail(image.image_id):
            self.controller.load_thumbnail(image)
        if self.model.badge(image.image_id) is None:
            self.controller.load_badge(image)
        status = self.controller.publish_status(image.image_id)
        if status:
            self.model.set_publish(image.image_id, status)

    @Slot(str, bytes)
    def _on_controller_thumbnail_ready(self, image_id: str, data: bytes) -> None:
        qimage = QImage.fromData(data)
        if qimage.isNull():
            return
        pixmap = QPixmap.fromImage(qimage)
        if pixmap.width() > ICON_SIDE or pixmap.height() > ICON_SIDE:
            pixmap = pixmap.scaled(
                ICON_SIDE,
                ICON_SIDE,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        self.model.set_thumbnail(image_id, pixmap)

    @Slot(str)
    def _on_controller_load_failed(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    @Slot(QModelIndex)
    def _on_list_activated(self, index: QModelIndex) -> None:
        image = self.model.image_at(index.row())
        if image is not None:
            self.open_viewer(image)

    @Slot()
    def _on_approve_clicked(self) -> None:
        self._set_selected(True)

    @Slot()
    def _on_reject_clicked(self) -> None:
        self._set_selected(False)

    @Slot()
    def _on_open_clicked(self) -> None:
        for image in self.selected_images()[:5]:
            self.open_viewer(image)
