"""UI layer: ImageViewerDialog — one design, large, with its metadata and approve/reject.

Non-modal (``show()``/``open()``, never ``exec()``). The file is read by the gallery
controller off-thread; the dialog builds the pixmap from the bytes in its slot.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.gallery import GalleryController
from pod_studio.domain.models import GeneratedImage


class ImageViewerDialog(QDialog):
    """Shows ``image`` scaled to fit, with prompt, seed, size, duration, server and path."""

    def __init__(
        self, controller: GalleryController, image: GeneratedImage, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.image = image
        self._pixmap: QPixmap | None = None
        self.setObjectName("image_viewer")
        self.setModal(False)
        self.setWindowTitle(self.tr("Design — %1").replace("%1", image.prompt[:60]))
        self.resize(900, 700)

        self.image_label = QLabel(self.tr("Loading…"), self)
        self.image_label.setObjectName("viewer_image_label")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(200, 200)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("viewer_status_label")
        self.approve_button = QPushButton(self.tr("Approve"), self)
        self.approve_button.setObjectName("viewer_approve_button")
        self.reject_button = QPushButton(self.tr("Reject"), self)
        self.reject_button.setObjectName("viewer_reject_button")
        self.close_button = QPushButton(self.tr("Close"), self)
        self.close_button.setObjectName("viewer_close_button")

        self.fields: dict[str, QLabel] = {}
        form = QFormLayout()
        for key, label in (
            ("prompt", self.tr("Prompt")),
            ("negative", self.tr("Negative")),
            ("seed", self.tr("Seed")),
            ("size", self.tr("Size")),
            ("duration", self.tr("Duration")),
            ("server", self.tr("Server")),
            ("file", self.tr("File")),
        ):
            value = QLabel(self)
            value.setObjectName(f"viewer_{key}_label")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = value
            form.addRow(label, value)

        layout = QVBoxLayout(self)
        layout.addWidget(self.image_label, 1)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status_label)
        buttons.addStretch(1)
        buttons.addWidget(self.approve_button)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        self._show_metadata(image)
        self._connect_signals()
        controller.load_full(image)

    def _connect_signals(self) -> None:
        self.controller.sig_full_image_loaded.connect(self._on_controller_full_image_loaded)
        self.controller.sig_image_updated.connect(self._on_controller_image_updated)
        self.approve_button.clicked.connect(self._on_approve_clicked)
        self.reject_button.clicked.connect(self._on_reject_clicked)
        self.close_button.clicked.connect(self.accept)

    def _show_metadata(self, image: GeneratedImage) -> None:
        self.fields["prompt"].setText(image.prompt)
        self.fields["negative"].setText(image.negative or "—")
        self.fields["seed"].setText(str(image.seed))
        self.fields["size"].setText(f"{image.width} × {image.height}")
        self.fields["duration"].setText(f"{image.seconds:.1f} s")
        self.fields["server"].setText(image.server)
        self.fields["file"].setText(str(Path(image.file)))
        if image.approved is None:
            status = self.tr("Not reviewed")
        else:
            status = self.tr("Approved") if image.approved else self.tr("Rejected")
        self.status_label.setText(status)

    def has_image(self) -> bool:
        return self._pixmap is not None

    def _fit(self) -> None:
        if self._pixmap is None:
            return
        self.image_label.setPixmap(
            self._pixmap.scaled(
                self.image_label.size(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    @Slot(str, bytes)
    def _on_controller_full_image_loaded(self, image_id: str, data: bytes) -> None:
        if image_id != self.image.image_id:
            return
        qimage = QImage.fromData(data)
        if qimage.isNull():
            self.image_label.setText(self.tr("This file is not an image Qt can show."))
            return
        self._pixmap = QPixmap.fromImage(qimage)
        self._fit()

    @Slot(object)
    def _on_controller_image_updated(self, image: GeneratedImage) -> None:
        if image.image_id == self.image.image_id:
            self.image = image
            self._show_metadata(image)

    @Slot()
    def _on_approve_clicked(self) -> None:
        self.controller.set_approved(self.image.image_id, True)

    @Slot()
    def _on_reject_clicked(self) -> None:
        self.controller.set_approved(self.image.image_id, False)
