"""Widget tests for the publish panel's Preview tab: a mockup of the design on each chosen
product with its effective DPI, and the low-DPI question before publishing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication

from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.mockup_view import MockupCard, garment_colour
from pod_studio.ui.publish_panel import PublishPanel
from pod_studio.ui.screens import grab_all
from pod_studio.ui.widgets import AMBER, RED
from tests.ui._helpers import shot, use_style
from tests.ui.test_publishing_ui import _approve_and_open_panel, _generate, _window


def _cards(panel: PublishPanel) -> list[MockupCard]:
    return list(panel.preview_page.cards)


def _open(qtbot: Any, app_ctl: Any, side: int) -> tuple[MainWindow, PublishPanel]:
    """The window (keep it: the panel is its child) and its publish panel for one design."""
    window = _window(qtbot, app_ctl)
    _generate(qtbot, window, ["retro sunset over mountains"], side)
    ids = [i.image_id for i in window.gallery.model.images()]
    return window, _approve_and_open_panel(qtbot, window, ids)


def test_the_preview_shows_one_mockup_per_chosen_product(qtbot: Any, app_ctl: Any) -> None:
    window, panel = _open(qtbot, app_ctl, 1024)
    assert window.publish_panel is panel
    tabs = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    assert "Preview" in tabs
    panel.tabs.setCurrentWidget(panel.preview_page)
    assert _cards(panel) == [] and panel.preview_page.empty_label.isVisible()

    panel.template_checks["Classic T-shirt"].setChecked(True)
    assert [c.spec.template for c in _cards(panel)] == ["Classic T-shirt"]
    panel.template_checks["Pullover Hoodie"].setChecked(True)
    assert [c.spec.template for c in _cards(panel)] == ["Classic T-shirt", "Pullover Hoodie"]
    assert not panel.preview_page.empty_label.isVisible()
    panel.template_checks["Classic T-shirt"].setChecked(False)
    (hoodie,) = _cards(panel)
    assert hoodie.spec.template == "Pullover Hoodie"
    assert hoodie.spec.colour == "Black"  # the template's first colour
    assert "Black" in hoodie.title_label.text()
    assert hoodie.title_label.toolTip().startswith("Hoodie in Black")

    # the design's pixels arrive from the worker thread and are drawn into the print area
    qtbot.waitUntil(lambda: _cards(panel)[0].canvas.image is not None, timeout=10000)
    canvas = hoodie.canvas
    # the card is laid out when the event loop gets to it
    qtbot.waitUntil(lambda: canvas.print_area_rect().width() > 40, timeout=5000)
    area = canvas.print_area_rect()
    assert area.width() > 40 and area.height() > area.width()  # a portrait front print
    assert canvas.rect().toRectF().contains(area)

    # 1024 px across a 15 in wide print at scale 0.9: ~76 DPI, soft, amber
    assert hoodie.dpi_label.text().startswith("76 DPI")
    assert "soft" in hoodie.dpi_label.text()
    assert hoodie.dpi_colour == AMBER
    assert "1024×1024 px" in hoodie.dpi_label.toolTip()
    panel.template_checks["Classic T-shirt"].setChecked(True)
    tee = next(c for c in _cards(panel) if c.spec.template == "Classic T-shirt")
    assert tee.dpi_label.text().startswith("68 DPI") and tee.dpi_colour == AMBER
    assert tee.spec.colour == "White"


def test_a_128_px_design_fails_and_publishing_asks_first(qtbot: Any, app_ctl: Any) -> None:
    window, panel = _open(qtbot, app_ctl, 128)
    assert window.publish_panel is panel
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.platform_checks["export"].setChecked(True)
    (tee,) = _cards(panel)
    assert tee.spec.dpi < 60
    assert tee.dpi_label.text().startswith("8 DPI")
    assert "too low" in tee.dpi_label.text()
    assert tee.dpi_colour == RED

    # the first click does not publish: it says why and shows the Preview
    ready = panel.publish_button.text()
    with qtbot.assertNotEmitted(panel.controller.sig_publish_enqueued, wait=300):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert panel.publish_button.text() == "Publish anyway (low DPI)"
    assert panel.publish_button.isEnabled()
    assert panel.tabs.currentWidget() is panel.preview_page
    assert "Classic T-shirt" in panel.message_label.toolTip()
    assert "8 DPI" in panel.message_label.text()
    assert not panel.isModal()

    # changing the choice takes the question back: the next click asks again
    panel.template_checks["Pullover Hoodie"].setChecked(True)
    assert panel.publish_button.text() != "Publish anyway (low DPI)"
    assert panel.message_label.text() == ""
    panel.template_checks["Pullover Hoodie"].setChecked(False)
    assert panel.publish_button.text() == ready
    with qtbot.assertNotEmitted(panel.controller.sig_publish_enqueued, wait=100):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert panel.publish_button.text() == "Publish anyway (low DPI)"

    # the second click publishes
    with qtbot.waitSignal(panel.controller.sig_publish_enqueued, timeout=10000) as queued:
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert len(queued.args[0]) == 1


def test_garment_colours_by_name() -> None:
    assert garment_colour("Black") == QColor("#1e1e20")
    assert garment_colour("Heather Grey") == garment_colour("heather gray")
    assert garment_colour("Navy").blue() > garment_colour("Navy").red()
    assert garment_colour("Vintage Heather Navy") == garment_colour("Navy")
    assert garment_colour("Mystery Teal") == QColor("#c9c5bd")  # neutral when unknown


def test_screenshot_of_the_preview_tab(qtbot: Any, app_ctl: Any) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    use_style(app)
    try:
        window, panel = _open(qtbot, app_ctl, 1024)
        assert window.publish_panel is panel
        for check in panel.template_checks.values():
            check.setChecked(True)
        panel.tabs.setCurrentWidget(panel.preview_page)
        panel.resize(760, 720)
        qtbot.waitUntil(
            lambda: all(c.canvas.image is not None for c in _cards(panel)), timeout=10000
        )
        path = shot(panel, "publish_preview_tab")
        assert path.stat().st_size > 10_000
    finally:
        app.setStyleSheet("")


def test_grab_all_shoots_the_preview_of_an_approved_design(
    qtbot: Any, app_ctl: Any, tmp_path: Path
) -> None:
    window, panel = _open(qtbot, app_ctl, 1024)
    panel.close()
    paths = grab_all(window, tmp_path / "shots")
    assert (tmp_path / "shots" / "publish_preview.png") in paths
    assert (tmp_path / "shots" / "publish_preview.png").stat().st_size > 10_000


def test_every_shape_draws_its_print_area_inside_the_product(qtbot: Any) -> None:
    from pod_studio.app.mockups import MockupShape, mockup_spec
    from pod_studio.domain.models import GeneratedImage
    from pod_studio.domain.products import PriceRule, ProductTemplate
    from pod_studio.ui.mockup_view import MockupCanvas

    design = GeneratedImage(
        image_id="d1", job_id="j1", prompt="p", seed=1, width=2048, height=2048, file="/x.png",
        sha256="0" * 64, server="s", prompt_id="p1", seconds=1.0,
    )  # fmt: skip
    shapes = {"t-shirt": MockupShape.TEE, "hoodie": MockupShape.HOODIE, "mug": MockupShape.MUG}
    shapes["poster"] = MockupShape.OTHER
    for product_type, shape in shapes.items():
        template = ProductTemplate(
            name=product_type, product_type=product_type, blueprint_id=1, print_provider_id=1,
            colors=["Heather Grey"], sizes=["One size"], price=PriceRule(base="10.00"),
        )  # fmt: skip
        spec = mockup_spec(design, template)
        assert spec.shape is shape
        canvas = MockupCanvas(spec)
        qtbot.addWidget(canvas)
        canvas.resize(220, 200)
        image = QImage(32, 32, QImage.Format.Format_ARGB32)
        image.fill(QColor("red"))
        canvas.set_image(image)
        assert not canvas.grab().isNull()
        area = canvas.print_area_rect()
        assert canvas.rect().toRectF().contains(area)
        w, h = spec.area
        assert abs(area.height() / area.width() - h / w) < 0.01
    # an 11 oz mug's wrap is narrow: 2048 px print at ~248 DPI
    mug = mockup_spec(design, template.model_copy(update={"product_type": "mug"}))
    assert round(mug.dpi) == 248 and not mug.low_resolution
