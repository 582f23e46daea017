"""The Upscale button in the publish panel's Preview: a soft 1024 px design is upscaled on the
(sandbox) ComfyUI, the preview's DPI follows the print file, and the export prints from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageStat
from PySide6.QtCore import Qt

from pod_studio.ui.publish_panel import PublishPanel
from tests.ui.test_publish_preview import _cards, _open


def _tee_only(panel: PublishPanel) -> None:
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.tabs.setCurrentWidget(panel.preview_page)


def test_upscale_makes_a_sharp_print_file_that_the_export_uses(qtbot: Any, app_ctl: Any) -> None:
    window, panel = _open(qtbot, app_ctl, 1024)
    assert window.publish_panel is panel
    button = panel.preview_page.upscale_button
    assert not button.isVisibleTo(panel)  # no product chosen: nothing prints soft yet
    _tee_only(panel)
    (tee,) = _cards(panel)
    assert tee.dpi_label.text().startswith("68 DPI")
    assert button.isVisibleTo(panel) and button.isEnabled() and button.text() == "Upscale"

    with qtbot.waitSignal(panel.controller.sig_upscaled, timeout=60000) as done:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert button.text() == "Upscaling…" and not button.isEnabled()
    design = done.args[0]
    assert design.print_size == (4500, 4500)

    (tee,) = _cards(panel)
    assert tee.spec.dpi >= 150 and tee.dpi_label.text().startswith("300 DPI")
    assert "4500×4500 px" in tee.dpi_label.toolTip()
    assert not button.isVisibleTo(panel)  # nothing to upscale any more
    assert "4500×4500" in panel.preview_page.upscale_label.text()
    with Image.open(design.print_file) as im:
        assert im.size == (4500, 4500)
        upscaled = im.convert("RGB").resize((64, 64))
    with Image.open(design.file) as im:  # the same picture, only larger
        original = im.convert("RGB").resize((64, 64))
    assert max(ImageStat.Stat(ImageChops.difference(upscaled, original)).mean) < 8
    # the gallery has the new record too (a later panel prints from the print file)
    qtbot.waitUntil(lambda: any(i.print_file for i in app_ctl.gallery.images()), timeout=5000)

    # publishing no longer asks about low DPI: the first click queues the listing
    panel.platform_checks["export"].setChecked(True)
    assert panel.low_dpi_products() == []
    with qtbot.waitSignal(panel.controller.sig_publish_enqueued, timeout=10000):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    model = window.gallery.model
    qtbot.waitUntil(
        lambda: model.publish_lines(design.image_id).get("export") == "draft created",
        timeout=30000,
    )
    core = app_ctl.studio_parts.core
    (listing_file,) = (core.paths.data_dir / "export").glob("*/listing.json")
    listing = json.loads(listing_file.read_text(encoding="utf-8"))
    exported = listing_file.parent / listing["design"]["file"]
    assert exported.is_file()
    # the exported print file was made from the upscaled file, not the 1024 px design
    made = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in Path(core.publishing.work_dir).glob("*.json")
    ]
    (info,) = [m for m in made if m["sha256"] == listing["design"]["sha256"]]
    assert (info["source"]["width"], info["source"]["height"]) == (4500, 4500)


def test_upscale_errors_are_shown_and_nothing_is_lost(qtbot: Any, app_ctl: Any) -> None:
    window, panel = _open(qtbot, app_ctl, 1024)
    assert window.publish_panel is panel
    _tee_only(panel)
    button = panel.preview_page.upscale_button
    # the server goes away: the upscale cannot reach it
    app_ctl.studio_parts.on_sandbox(lambda box: box.fail_next(50, 400, match="/upload/image"))
    with qtbot.waitSignal(panel.controller.sig_upscale_failed, timeout=60000) as failed:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert "upload" in failed.args[0]
    label = panel.preview_page.upscale_label
    assert label.isVisibleTo(panel) and label.text().startswith("Upscale failed:")
    assert button.isEnabled() and button.text() == "Upscale"
    (tee,) = _cards(panel)
    assert tee.dpi_label.text().startswith("68 DPI")
    assert all(d.print_file is None for d in panel.designs)
