"""UI layer: the publish panel's Preview tab — the design drawn on each chosen product.

``MockupCanvas`` paints a t-shirt, hoodie or mug silhouette in the product's first colour with
QPainter, outlines the print area and scales the design into it as the template places it
(scale, x, y, angle; what falls outside the print area does not print). Under each mockup the
effective DPI of the design on that product, green / amber / red by the preflight levels.
The design's pixels come as a small PNG from the controller (made off the GUI thread).
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import (
    QBrush,
    QColor,
    QIcon,
    QImage,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.mockups import MockupShape, MockupSpec
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import PreflightBadge
from pod_studio.ui.widgets import AMBER, GREEN, RED

# Garment colour names as sellers and Printify spell them -> a swatch colour.
GARMENT_COLOURS: dict[str, str] = {
    "white": "#f5f5f2",
    "black": "#1e1e20",
    "navy": "#1f2b47",
    "heather grey": "#a3a5a8",
    "sport grey": "#9fa2a6",
    "dark heather": "#4a4c50",
    "charcoal": "#3d3f43",
    "ash": "#d4d5d2",
    "grey": "#9a9da1",
    "red": "#b8282e",
    "maroon": "#5c1f2b",
    "royal": "#2a51a3",
    "royal blue": "#2a51a3",
    "light blue": "#a8c8e6",
    "forest green": "#234a32",
    "military green": "#5a5e3e",
    "irish green": "#2f8f4e",
    "purple": "#52336e",
    "pink": "#f0b6c8",
    "light pink": "#f6d3dc",
    "orange": "#e2702a",
    "gold": "#e9a93a",
    "yellow": "#f1d54a",
    "sand": "#d8c7a6",
    "natural": "#efe7d6",
    "cream": "#f1ead8",
    "brown": "#5b3e2b",
}
NEUTRAL_GARMENT = "#c9c5bd"
LEVEL_COLOURS = {PreflightBadge.FAIL: RED, PreflightBadge.WARN: AMBER, PreflightBadge.PASS: GREEN}


def garment_colour(name: str) -> QColor:
    """The swatch of a colour name ("Heather Grey" -> grey); a neutral beige when unknown."""
    key = " ".join(name.casefold().replace("gray", "grey").split())
    if key in GARMENT_COLOURS:
        return QColor(GARMENT_COLOURS[key])
    for word in sorted(GARMENT_COLOURS, key=len, reverse=True):
        if word in key:
            return QColor(GARMENT_COLOURS[word])
    return QColor(NEUTRAL_GARMENT)


def _is_dark(colour: QColor) -> bool:
    return 0.299 * colour.red() + 0.587 * colour.green() + 0.114 * colour.blue() < 140


# Silhouettes in a 100 x 110 box (mug: 100 x 80); print areas as (left, top, width) in it.
_TEE = [(38, 4), (20, 9), (0, 30), (12, 43), (22, 35), (22, 108), (78, 108), (78, 35), (88, 43)]
_TEE += [(100, 30), (80, 9), (62, 4)]
_HOODIE = [(36, 8), (19, 12), (4, 40), (2, 100), (13, 101), (22, 48), (22, 108), (78, 108)]
_HOODIE += [(78, 48), (87, 101), (98, 100), (96, 40), (81, 12), (64, 8)]
_AREAS = {MockupShape.TEE: (31.0, 20.0, 38.0), MockupShape.HOODIE: (32.0, 24.0, 36.0)}


class MockupCanvas(QWidget):
    """One product silhouette with the print area and the design in it."""

    def __init__(self, spec: MockupSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.image: QImage | None = None
        self.message = self.tr("Loading the design…")
        self.setMinimumSize(120, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(220, 230)

    def set_image(self, image: QImage | None, message: str = "") -> None:
        self.image = image
        self.message = message
        self.update()

    def print_area_rect(self) -> QRectF:
        """The print area in widget pixels (for tests and drawing)."""
        box = self._box()
        return self._area_in(box)

    # -- geometry ---------------------------------------------------------------------

    def _units(self) -> tuple[float, float]:
        return (100.0, 80.0) if self.spec.shape is MockupShape.MUG else (100.0, 110.0)

    def _box(self) -> QRectF:
        uw, uh = self._units()
        margin = 8.0
        w, h = self.width() - 2 * margin, self.height() - 2 * margin
        k = min(w / uw, h / uh)
        return QRectF(margin + (w - uw * k) / 2, margin + (h - uh * k) / 2, uw * k, uh * k)

    def _area_in(self, box: QRectF) -> QRectF:
        k = box.width() / 100.0
        aw, ah = self.spec.area
        aspect = ah / aw
        if self.spec.shape in _AREAS:
            left, top, width = _AREAS[self.spec.shape]
        elif self.spec.shape is MockupShape.MUG:
            # the side of the wrap that faces the buyer, as wide as the print's aspect allows
            width = min(56.0, 52.0 / aspect)
            left, top = 8.0 + (64.0 - width) / 2, 40.0 - width * aspect / 2
        else:
            width = min(70.0, 90.0 / aspect)
            left, top = (100.0 - width) / 2, 55.0 - width * aspect / 2
        return QRectF(box.left() + left * k, box.top() + top * k, width * k, width * aspect * k)

    def _outline(self, box: QRectF) -> QPainterPath:
        k = box.width() / 100.0

        def pt(x: float, y: float) -> QPointF:
            return QPointF(box.left() + x * k, box.top() + y * k)

        path = QPainterPath()
        shape = self.spec.shape
        if shape in (MockupShape.TEE, MockupShape.HOODIE):
            points = _TEE if shape is MockupShape.TEE else _HOODIE
            path.moveTo(pt(*points[0]))
            for x, y in points[1:]:
                path.lineTo(pt(x, y))
            # the neckline, scooped between the last point and the first
            first, last = points[0], points[-1]
            dip = 10 if shape is MockupShape.TEE else 9
            path.quadTo(pt(50, last[1] + dip), pt(*first))
            path.closeSubpath()
        elif shape is MockupShape.MUG:
            path.addRoundedRect(QRectF(pt(8, 8), pt(72, 76)), 4 * k, 4 * k)
            handle = QPainterPath()
            handle.addRoundedRect(QRectF(pt(64, 20), pt(94, 62)), 14 * k, 14 * k)
            hole = QPainterPath()
            hole.addRoundedRect(QRectF(pt(70, 28), pt(86, 54)), 8 * k, 8 * k)
            path = path.united(handle.subtracted(hole))
        else:
            path.addRoundedRect(QRectF(pt(4, 4), pt(96, 106)), 6 * k, 6 * k)
        return path

    # -- painting ---------------------------------------------------------------------

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        box = self._box()
        fill = garment_colour(self.spec.colour)
        dark = _is_dark(fill)
        outline = self._outline(box)
        painter.setPen(QPen(fill.darker(135) if not dark else fill.lighter(160), 1.2))
        painter.setBrush(fill)
        painter.drawPath(outline)
        self._paint_details(painter, box, fill, dark)

        area = self._area_in(box)
        if self.image is not None and not self.image.isNull():
            painter.save()
            painter.setClipRect(area)
            p = self.spec.placement
            width = area.width() * p.scale
            height = width * self.image.height() / max(1, self.image.width())
            centre = QPointF(area.left() + p.x * area.width(), area.top() + p.y * area.height())
            painter.translate(centre)
            painter.rotate(p.angle)
            painter.drawImage(QRectF(-width / 2, -height / 2, width, height), self.image)
            painter.restore()
        else:
            hatch = QColor(255, 255, 255, 60) if dark else QColor(40, 60, 90, 40)
            painter.fillRect(area, QBrush(hatch, Qt.BrushStyle.BDiagPattern))
            if self.message:
                painter.setPen(QColor("#6b7079"))
                line = QRectF(0, self.height() - 16, self.width(), 16)
                text = self.fontMetrics().elidedText(
                    self.message, Qt.TextElideMode.ElideRight, self.width() - 8
                )
                painter.drawText(line, Qt.AlignmentFlag.AlignCenter, text)
        pen = QPen(QColor(255, 255, 255, 170) if dark else QColor(40, 60, 90, 150), 1)
        pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(area)
        painter.end()

    def _paint_details(self, painter: QPainter, box: QRectF, fill: QColor, dark: bool) -> None:
        """Seams that make the shape read as the product."""
        k = box.width() / 100.0
        seam = QPen(fill.lighter(125) if dark else fill.darker(118), 1.0)
        painter.setPen(seam)
        painter.setBrush(Qt.BrushStyle.NoBrush)

        def pt(x: float, y: float) -> QPointF:
            return QPointF(box.left() + x * k, box.top() + y * k)

        shape = self.spec.shape
        if shape is MockupShape.TEE:
            collar = QPainterPath(pt(38, 4))
            collar.quadTo(pt(50, 18), pt(62, 4))
            painter.drawPath(collar)
            painter.drawLine(pt(22, 35), pt(20, 10))
            painter.drawLine(pt(78, 35), pt(80, 10))
        elif shape is MockupShape.HOODIE:
            hood = QPainterPath(pt(36, 8))
            hood.cubicTo(pt(36, -4), pt(64, -4), pt(64, 8))
            painter.setBrush(fill.darker(112) if not dark else fill.lighter(115))
            painter.drawPath(hood)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawLine(pt(46, 17), pt(45, 32))  # drawstrings
            painter.drawLine(pt(54, 17), pt(55, 32))
            pocket = QPainterPath(pt(30, 96))
            pocket.lineTo(pt(34, 80))
            pocket.lineTo(pt(66, 80))
            pocket.lineTo(pt(70, 96))
            painter.drawPath(pocket)
            painter.drawLine(pt(22, 100), pt(78, 100))  # waistband
        elif shape is MockupShape.MUG:
            painter.drawLine(pt(10, 14), pt(70, 14))


class MockupCard(QFrame):
    """A mockup with the product's name, its colour and the design's DPI on it, and under
    it Printify's own mockups once its draft exists (click one to enlarge it)."""

    THUMB = 56
    ENLARGED = 720

    def __init__(self, spec: MockupSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.setObjectName(f"mockup_card_{spec.template}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(4)
        # the product and the colour it is shown in, on one line: the drawing gets the height
        self.title_label = QLabel(
            f"<b>{escape(spec.template)}</b> "
            f"<span style='color:#7a808a'>· {escape(spec.colour)}</span>",
            self,
        )
        self.title_label.setObjectName("mockup_title_label")
        self.title_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.canvas = MockupCanvas(spec, self)
        self.title_label.setToolTip(
            self.tr("%1 in %2, the template's first colour")
            .replace("%1", spec.product_label)
            .replace("%2", spec.colour)
        )
        self.dpi_label = QLabel(spec.dpi_text(), self)
        self.dpi_label.setObjectName("mockup_dpi_label")
        self.dpi_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.dpi_label.setWordWrap(True)
        self.dpi_label.setToolTip(spec.detail_text())
        self.dpi_colour = LEVEL_COLOURS[spec.level]
        self.dpi_label.setStyleSheet(f"color: {self.dpi_colour.name()}; font-weight: 600;")
        layout.addWidget(self.title_label)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.dpi_label)
        # Printify's own renders of this product, once its draft exists
        self.platform_label = QLabel(self.tr("Printify's mockups appear after its draft is made"))
        self.platform_label.setObjectName("mockup_platform_label")
        self.platform_label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.platform_label.setWordWrap(True)
        self.platform_label.setStyleSheet("color: #7a808a;")
        self._strip = QHBoxLayout()
        self._strip.setSpacing(4)
        self._strip.addStretch(1)
        self._strip.addStretch(1)
        self.platform_thumbs: list[QToolButton] = []
        self._platform_images: list[QImage] = []
        self.enlarged: QDialog | None = None
        layout.addWidget(self.platform_label)
        layout.addLayout(self._strip)

    def set_platform_mockups(self, images: list[bytes]) -> None:
        """Show these mockup images (JPEG/PNG bytes) as a strip of thumbnails."""
        for button in self.platform_thumbs:
            self._strip.removeWidget(button)
            button.deleteLater()
        self.platform_thumbs = []
        self._platform_images = [i for i in (QImage.fromData(d) for d in images) if not i.isNull()]
        for n, image in enumerate(self._platform_images):
            button = QToolButton(self)
            button.setObjectName(f"mockup_platform_thumb_{n}")
            button.setIcon(
                QIcon(
                    QPixmap.fromImage(
                        image.scaled(
                            self.THUMB,
                            self.THUMB,
                            Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.SmoothTransformation,
                        )
                    )
                )
            )
            button.setIconSize(QSize(self.THUMB, self.THUMB))
            button.setAutoRaise(True)
            button.setToolTip(self.tr("Click to enlarge"))
            button.clicked.connect(lambda _checked=False, i=n: self.enlarge(i))
            self._strip.insertWidget(1 + n, button)
            self.platform_thumbs.append(button)
        if self._platform_images:
            self.platform_label.setText(self.tr("Printify's mockups"))
        else:
            self.platform_label.setText(
                self.tr("Printify's mockups appear after its draft is made")
            )

    def enlarge(self, index: int) -> None:
        """One of Printify's mockups, large, in a window of its own (non-modal)."""
        if not 0 <= index < len(self._platform_images):
            return
        image = self._platform_images[index]
        if self.enlarged is None:
            self.enlarged = QDialog(self)
            self.enlarged.setObjectName("mockup_platform_enlarged")
            self.enlarged.setWindowTitle(
                self.tr("Printify's mockup — %1").replace("%1", self.spec.template)
            )
            box = QVBoxLayout(self.enlarged)
            big = QLabel(self.enlarged)
            big.setObjectName("mockup_platform_big_label")
            big.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.addWidget(big)
        big_label = self.enlarged.findChild(QLabel, "mockup_platform_big_label")
        assert isinstance(big_label, QLabel)
        pixmap = QPixmap.fromImage(image)
        if pixmap.width() > self.ENLARGED or pixmap.height() > self.ENLARGED:
            pixmap = pixmap.scaled(
                self.ENLARGED,
                self.ENLARGED,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        big_label.setPixmap(pixmap)
        self.enlarged.open()


class MockupPreview(QWidget):
    """The Preview tab: one mockup per chosen product, for one design at a time.

    Signals:
    sig_design_wanted(GeneratedImage): show this design; the panel asks its controller for
        the design's pixels and calls ``set_design_image``.
    sig_upscale_wanted(GeneratedImage): the seller clicked Upscale for the current design.
    """

    sig_design_wanted = Signal(object)
    sig_upscale_wanted = Signal(object)
    COLUMNS = 3

    def __init__(self, designs: list[GeneratedImage], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preview_page")
        self.designs = list(designs)
        self.cards: list[MockupCard] = []
        self._images: dict[str, QImage] = {}
        self._problems: dict[str, str] = {}
        self._platform: dict[tuple[str, str], list[bytes]] = {}
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.design_combo = QComboBox(self)
        self.design_combo.setObjectName("preview_design_combo")
        for design in self.designs:
            self.design_combo.addItem(self._combo_text(design))
        self.design_combo.setVisible(len(self.designs) > 1)
        top.addWidget(self.design_combo, 1)
        # below the print warning level on a chosen product: upscale it on ComfyUI
        self.upscale_label = QLabel(self)
        self.upscale_label.setObjectName("preview_upscale_label")
        self.upscale_label.setWordWrap(True)
        self.upscale_label.setVisible(False)
        top.addWidget(self.upscale_label, 1)
        self.upscale_button = QPushButton(self.tr("Upscale"), self)
        self.upscale_button.setObjectName("preview_upscale_button")
        self.upscale_button.setToolTip(
            self.tr(
                "Upscale the design on your ComfyUI server for 300 DPI on the largest chosen "
                "product; the upscaled copy becomes its print file."
            )
        )
        self.upscale_button.setVisible(False)
        top.addWidget(self.upscale_button)
        layout.addLayout(top)
        self.empty_label = QLabel(self.tr("Choose a product to see the design on it."), self)
        self.empty_label.setObjectName("preview_empty_label")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setStyleSheet("color: #7a808a;")
        layout.addWidget(self.empty_label)
        # the cards share the tab's height (no scrolling: a seller offers a few products)
        self._grid_host = QWidget(self)
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._grid_host, 1)
        self.note_label = QLabel(
            self.tr(
                "Drawn on each product's usual front print area (dashed) as the template "
                "places the design; the platform's own mockups come with the draft."
            ),
            self,
        )
        self.note_label.setObjectName("preview_note_label")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("color: #7a808a;")
        layout.addWidget(self.note_label)
        self.design_combo.currentIndexChanged.connect(self._on_design_combo_changed)
        self.upscale_button.clicked.connect(self._on_upscale_clicked)

    def _combo_text(self, design: GeneratedImage) -> str:
        prompt = design.prompt if len(design.prompt) <= 60 else design.prompt[:59] + "…"
        w, h = design.print_size
        return f"{prompt} ({w}×{h})"

    def replace_design(self, design: GeneratedImage) -> None:
        """The same design with new data (an upscaled print file): cards follow its size."""
        for i, known in enumerate(self.designs):
            if known.image_id == design.image_id:
                self.designs[i] = design
                self.design_combo.setItemText(i, self._combo_text(design))

    def set_upscale_state(self, *, offered: bool, busy: bool) -> None:
        """Show Upscale when the design prints soft (``offered``), "Upscaling…" (disabled)
        while it runs."""
        self.upscale_button.setVisible(offered or busy)
        self.upscale_button.setEnabled(offered and not busy)
        self.upscale_button.setText(self.tr("Upscaling…") if busy else self.tr("Upscale"))

    def show_upscale_message(self, message: str, *, error: bool) -> None:
        """What the last upscale did (an error in red), or nothing."""
        colour = RED if error else GREEN
        self.upscale_label.setStyleSheet(f"color: {colour.name()};")
        self.upscale_label.setText(message)
        self.upscale_label.setVisible(bool(message))

    @Slot()
    def _on_upscale_clicked(self) -> None:
        design = self.current_design()
        if design is not None:
            self.sig_upscale_wanted.emit(design)

    def current_design(self) -> GeneratedImage | None:
        i = self.design_combo.currentIndex()
        return self.designs[i] if 0 <= i < len(self.designs) else None

    def has_image(self) -> bool:
        """The current design's pixels are here (the mockups show it)."""
        design = self.current_design()
        return design is not None and design.image_id in self._images

    def set_specs(self, specs: list[MockupSpec]) -> None:
        """Show one card per spec (the chosen products, for the current design)."""
        for card in self.cards:
            self._grid.removeWidget(card)
            card.hide()  # not painted again while its deletion waits for the event loop
            card.deleteLater()
        self.cards = []
        for i, spec in enumerate(specs):
            card = MockupCard(spec, self._grid_host)
            self.cards.append(card)
            self._grid.addWidget(card, i // self.COLUMNS, i % self.COLUMNS)
        self.empty_label.setVisible(not specs)
        self._grid_host.setVisible(bool(specs))
        self._apply_image()

    def set_design_image(self, image_id: str, data: bytes) -> None:
        image = QImage.fromData(data)
        if image.isNull():
            self._problems[image_id] = self.tr("The design could not be read.")
        else:
            self._images[image_id] = image
        self._apply_image()

    def set_design_problem(self, image_id: str, message: str) -> None:
        self._problems[image_id] = message
        self._apply_image()

    def set_platform_mockups(self, image_id: str, template: str, images: list[bytes]) -> None:
        """Printify's own mockups of a design on a product (shown on that card when the
        design is the one shown)."""
        self._platform[(image_id, template)] = list(images)
        design = self.current_design()
        if design is not None and design.image_id == image_id:
            for card in self.cards:
                if card.spec.template == template:
                    card.set_platform_mockups(list(images))

    def _apply_image(self) -> None:
        design = self.current_design()
        if design is None:
            return
        for card in self.cards:
            found = self._platform.get((design.image_id, card.spec.template))
            if found is not None or card.platform_thumbs:
                card.set_platform_mockups(found or [])
        image = self._images.get(design.image_id)
        problem = self._problems.get(design.image_id, "")
        for card in self.cards:
            card.canvas.set_image(
                image, "" if image is not None else problem or card.canvas.message
            )

    @Slot(int)
    def _on_design_combo_changed(self, _index: int) -> None:
        design = self.current_design()
        if design is not None:
            self.sig_design_wanted.emit(design)
