"""UI layer: the gallery — a thumbnail grid of generated designs with approve/reject marks.

``GalleryModel`` holds the images and their thumbnails (``QPixmap`` built in the GUI thread
from the PNG bytes the controller made off-thread). Double-click or Enter opens the
non-modal ``ImageViewerDialog``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.gallery import GalleryController
from pod_studio.domain.models import GeneratedImage
from pod_studio.ui.image_viewer import ImageViewerDialog
from pod_studio.ui.widgets import EmptyStateLabel

ModelIndex = QModelIndex | QPersistentModelIndex
ICON_SIDE = 160
_APPROVED_BG = QColor(46, 157, 79, 40)
_REJECTED_BG = QColor(208, 69, 59, 40)


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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: list[GeneratedImage] = []
        self._rows: dict[str, int] = {}
        self._pixmaps: dict[str, QPixmap] = {}

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
            return f"{image.prompt}\nseed {image.seed} · {image.width}×{image.height} · {status}"
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


class GalleryView(QWidget):
    """The right pane: every design, with approve/reject."""

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
        self.list_view.setGridSize(QSize(ICON_SIDE + 24, ICON_SIDE + 44))
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
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
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
        for image in self.selected_images():
            self.controller.set_approved(image.image_id, approved)

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _update_empty_state(self) -> None:
        n = self.model.rowCount()
        self.stack.setCurrentWidget(self.list_view if n else self.empty_label)
        self.count_label.setText(self.tr("%n design(s)", "", n) if n else "")

    @Slot()
    def _on_selection_changed(self) -> None:
        has = bool(self.list_view.selectionModel().selectedIndexes())
        for button in (self.approve_button, self.reject_button, self.open_button):
            button.setEnabled(has)

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
