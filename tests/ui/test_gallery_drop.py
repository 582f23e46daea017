"""Widget tests for image files dropped onto the gallery, on the shipping engine: good ones
become designs to review (through the gallery controller and the design library), bad ones
are skipped with their reason, a workflow JSON is left to the window, and an imported
design publishes like a generated one."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from pod_studio.app.gallery import ImportResult
from pod_studio.app.gallery_filters import GalleryFilter
from pod_studio.ui import tray as tray_module
from tests.app.conftest import MakeStudio, run
from tests.ui._helpers import ROOT
from tests.ui.test_desktop import _app, _window


@pytest.fixture
def no_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tray_module, "tray_available", lambda: False)


def _image_file(path: Path, fmt: str, size: tuple[int, int] = (96, 64)) -> Path:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format=fmt)
    path.write_bytes(out.getvalue())
    return path


def _drop(widget: Any, files: list[Path]) -> tuple[bool, QDropEvent]:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    args = (
        QPoint(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(*args)
    enter.ignore()
    QApplication.sendEvent(widget, enter)  # Qt delivers a drop only after an accepted enter
    drop = QDropEvent(*args)
    if enter.isAccepted():
        QApplication.sendEvent(widget, drop)
    return enter.isAccepted(), drop


def test_dropping_images_onto_the_gallery_imports_them_to_review(
    qtbot: Any, app_ctl: Any, tmp_path: Path
) -> None:
    window = app_ctl.studio_parts.window
    window.show()
    gallery = window.gallery
    assert gallery.acceptDrops()
    good = [
        _image_file(tmp_path / "Retro Sunset.png", "PNG"),
        _image_file(tmp_path / "vintage-cat.jpg", "JPEG"),
    ]
    broken = tmp_path / "broken.webp"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 not really")
    with qtbot.waitSignal(app_ctl.gallery.sig_import_finished, timeout=20000) as finished:
        accepted, _drop_event = _drop(gallery, [good[0], broken, good[1]])
    assert accepted
    result = finished.args[0]
    assert isinstance(result, ImportResult)
    assert sorted(i.prompt for i in result.imported) == ["Retro Sunset", "vintage-cat"]
    assert result.skipped == [("broken.webp", "damaged or not an image (it cannot be decoded)")]
    assert result.text() == (
        "2 designs imported — To review; 1 file skipped: broken.webp (damaged or not an "
        "image (it cannot be decoded))"
    )
    # the cards are there, "To review", with no seed or server
    model = gallery.model
    assert sorted(i.prompt for i in model.images()) == ["Retro Sunset", "vintage-cat"]
    for image in model.images():
        card = model.card(image.image_id)
        assert card is not None and card.state.value == "done"
        assert image.server == "" and image.seed == 0 and image.approved is None
        assert (image.width, image.height) == (96, 64)
    row = model.index(0)
    assert "To review" in str(row.data(Qt.ItemDataRole.ToolTipRole))
    assert gallery.filter_buttons[GalleryFilter.ALL].text() == "All (2)"
    assert gallery.filter_buttons[GalleryFilter.TO_REVIEW].text() == "To review (2)"
    assert not gallery.error_label.isHidden() and "broken.webp" in gallery.error_label.text()
    assert window.statusBar().currentMessage() == result.text()
    assert sorted(i.image_id for i in gallery.selected_images()) == sorted(
        i.image_id for i in result.imported
    )
    qtbot.waitUntil(
        lambda: all(model.has_thumbnail(i.image_id) for i in model.images()), timeout=10000
    )
    # they are in the design library, and the originals stay where they were
    stored = run(app_ctl.studio_parts.core.store.list_images())
    assert sorted(i.prompt for i in stored) == ["Retro Sunset", "vintage-cat"]
    assert all(Path(i.file).parent != tmp_path for i in stored) and good[0].exists()


def test_gallery_drop_refuses_wrong_files_with_reasons(
    qtbot: Any, app_ctl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pod_studio.adapters.storage import images

    window = app_ctl.studio_parts.window
    window.show()
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    huge = _image_file(tmp_path / "huge.png", "PNG", (400, 300))  # plain: a few bytes
    heavy = tmp_path / "heavy.png"
    Image.frombytes("RGB", (80, 80), os.urandom(80 * 80 * 3)).save(heavy, format="PNG")
    gif = tmp_path / "anim.png"
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    assert huge.stat().st_size < 5000 < heavy.stat().st_size
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100_000)
    monkeypatch.setattr(images, "MAX_IMPORT_BYTES", 5000)
    with qtbot.waitSignal(app_ctl.gallery.sig_import_finished, timeout=20000) as finished:
        accepted, _ = _drop(window.gallery, [notes, huge, heavy, gif])
    assert accepted
    result = finished.args[0]
    assert result.imported == []
    reasons = dict(result.skipped)
    assert reasons["notes.txt"] == "not a PNG, JPEG or WebP image"
    assert reasons["huge.png"] == "too many pixels (the limit is 0.1 megapixels)"
    assert (
        reasons["heavy.png"].startswith("too large (")
        and "the limit is 5 KB" in reasons["heavy.png"]
    )
    assert reasons["anim.png"] == "not a PNG, JPEG or WebP image: GIF"
    assert window.gallery.model.images() == []
    assert "4 files skipped" in window.gallery.error_label.text()


def test_a_workflow_json_dropped_on_the_gallery_is_left_to_the_window(
    qtbot: Any, app_ctl: Any, tmp_path: Path
) -> None:
    window = app_ctl.studio_parts.window
    window.show()
    flow = tmp_path / "flow.json"
    flow.write_bytes((ROOT / "resources" / "workflows" / "default_txt2img.json").read_bytes())
    imports: list[Any] = []
    app_ctl.gallery.sig_import_finished.connect(imports.append)
    with qtbot.waitSignal(app_ctl.workflow.sig_workflow_loaded, timeout=20000) as loaded:
        accepted, _ = _drop(window.gallery, [flow])  # the gallery passes it on to the window
    assert accepted and loaded.args[0] == "flow.json"
    assert imports == [] and window.gallery.model.rowCount() == 0


def test_publishing_an_imported_and_a_generated_design_notifies_once(
    qtbot: Any, make_studio: MakeStudio, no_tray: None, tmp_path: Path
) -> None:
    from tests.ui.test_publishing_ui import _approve_and_open_panel, _generate, _publish

    app = _app(make_studio)
    window = _window(qtbot, app)
    _generate(qtbot, window, ["retro sunset"], 1024)
    with qtbot.waitSignal(app.gallery.sig_import_finished, timeout=20000):
        _drop(window.gallery, [_image_file(tmp_path / "tiny logo.png", "PNG")])
    model = window.gallery.model
    assert sorted(i.prompt for i in model.images()) == ["retro sunset", "tiny logo"]
    panel = _approve_and_open_panel(qtbot, window, [i.image_id for i in model.images()])
    told: list[tuple[str, str]] = []
    window.tray.sig_notified.connect(lambda title, text: told.append((title, text)))
    _publish(qtbot, panel, ["Classic T-shirt"])
    # the 96×64 px import cannot be printed: its listing fails, the other one is drafted
    qtbot.waitUntil(lambda: bool(told), timeout=30000)
    assert told == [("Publishing done", "Publishing done: 1 listing, 1 failed — see Job queue")]
    assert window.statusBar().currentMessage() == told[0][1]
