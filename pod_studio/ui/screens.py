"""UI layer: screenshots of the main window, each dock and each dialog (for reviews and docs).

``grab_all(window, out_dir)`` renders widgets with ``QWidget.grab()`` (works offscreen) and
saves PNGs; dialogs are opened non-modally, grabbed and closed again (the publish panel on its
Preview tab when a design is approved).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from PySide6.QtWidgets import QWidget

from pod_studio.ui.image_viewer import ImageViewerDialog
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.publish_panel import PublishPanel


def _save(widget: QWidget, path: Path) -> Path:
    QCoreApplication.processEvents()
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    return path


def grab_all(window: MainWindow, out_dir: Path | str) -> list[Path]:
    """Save PNGs of the window, its docks and dialogs into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if not window.isVisible():
        window.show()
    paths.append(_save(window, out / "main_window.png"))
    for dock in window.docks:
        was_visible = dock.isVisible()
        was_floating = dock.isFloating()
        dock.setFloating(True)
        dock.resize(720, 360)
        dock.show()
        paths.append(_save(dock, out / f"{dock.objectName()}.png"))
        dock.setFloating(was_floating)
        dock.setVisible(was_visible)
    settings = window.open_settings()
    paths.append(_save(settings, out / "settings_dialog.png"))
    settings.tabs.setCurrentWidget(settings.products_tab)
    paths.append(_save(settings, out / "settings_products.png"))
    settings.close()
    about = window.open_about()
    paths.append(_save(about, out / "about_box.png"))
    about.close()
    images = window.gallery.model.images()
    if images:
        viewer = window.gallery.open_viewer(images[0])
        _wait_for_image(viewer)
        paths.append(_save(viewer, out / "image_viewer.png"))
        viewer.close()
    approved = [i for i in images if i.approved is True]
    if approved:
        panel = window.open_publish_panel(approved[:1])
        for check in panel.template_checks.values():
            check.setChecked(True)
        panel.tabs.setCurrentWidget(panel.preview_page)
        _wait_for_mockups(panel)
        paths.append(_save(panel, out / "publish_preview.png"))
        panel.close()
    return paths


def _wait_for_mockups(panel: PublishPanel, timeout_ms: int = 3000) -> None:
    """Let the preview get the design's pixels (at most ``timeout_ms``)."""
    if panel.preview_page.has_image():
        return
    loop = QEventLoop()
    panel.controller.sig_design_image_ready.connect(loop.quit)
    panel.controller.sig_design_image_failed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    panel.controller.sig_design_image_ready.disconnect(loop.quit)
    panel.controller.sig_design_image_failed.disconnect(loop.quit)


def _wait_for_image(viewer: ImageViewerDialog, timeout_ms: int = 3000) -> None:
    """Let the viewer read its image (at most ``timeout_ms``) so the shot is not "Loading…"."""
    if viewer.has_image():
        return
    loop = QEventLoop()
    viewer.controller.sig_full_image_loaded.connect(loop.quit)
    viewer.controller.sig_load_failed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    viewer.controller.sig_full_image_loaded.disconnect(loop.quit)
    viewer.controller.sig_load_failed.disconnect(loop.quit)
