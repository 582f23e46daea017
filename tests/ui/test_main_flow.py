"""Widget tests on the shipping engine (a sandbox ComfyUI): prompt editor → jobs → gallery,
cancel from the job list, window chrome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt

from pod_studio.domain.events import ConnectionChanged
from pod_studio.domain.models import ConnectionState, JobState
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.screens import grab_all
from tests.app.conftest import MakeStudio
from tests.ui.conftest import controller_for


def _window(qtbot: Any, app_ctl: Any) -> MainWindow:
    window: MainWindow = app_ctl.studio_parts.window
    return window


def test_generate_from_editor_fills_job_list_and_gallery(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    window.show()
    editor = window.prompt_editor
    assert not editor.generate_button.isEnabled()
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    qtbot.keyClicks(editor.prompts_edit, "retro sunset")
    qtbot.keyClick(editor.prompts_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(editor.prompts_edit, "vintage cat")
    editor.variations_spin.setValue(2)
    assert editor.job_count_label.text() == "2 prompts × 2 variations = 4 jobs"
    assert editor.generate_button.isEnabled()
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 4, timeout=15000)
    jobs = window.job_list.model.jobs()
    assert len(jobs) == 4
    qtbot.waitUntil(lambda: all(j.state is JobState.DONE for j in jobs), timeout=3000)
    assert all(j.fraction == 1.0 for j in jobs)
    qtbot.waitUntil(
        lambda: all(
            window.gallery.model.has_thumbnail(i.image_id) for i in window.gallery.model.images()
        ),
        timeout=5000,
    )
    assert window.gallery.stack.currentWidget() is window.gallery.list_view
    # checkpoints were loaded when the window was shown
    qtbot.waitUntil(lambda: window.prompt_editor.checkpoint_combo.count() == 3, timeout=2000)


def test_editor_shows_validation_inline(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    editor = window.prompt_editor
    editor.prompts_edit.setPlainText("\n".join(f"p{i}" for i in range(1001)))
    assert not editor.generate_button.isEnabled()
    assert "1,000" in editor.message_label.text()
    editor.prompts_edit.setPlainText("x" * 1200)
    assert editor.generate_button.isEnabled()
    assert "very long" in editor.message_label.text()


def test_cancel_running_job_from_job_list(qtbot: Any, app_ctl: Any) -> None:
    studio = app_ctl.studio_parts
    # a slow server: the first prompt runs for seconds (previews, then the cancel lands)
    studio.on_sandbox(lambda box: setattr(box, "seconds_per_job", 4.0))
    window = _window(qtbot, app_ctl)
    editor = window.prompt_editor
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    editor.prompts_edit.setPlainText("one\ntwo")
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)
    model = window.job_list.model
    qtbot.waitUntil(
        lambda: model.rowCount() == 2 and any(j.state is JobState.RUNNING for j in model.jobs()),
        timeout=10000,
    )
    assert editor.cancel_all_button.isEnabled()
    first = next(j for j in model.jobs() if j.state is JobState.RUNNING)
    row = model.jobs().index(first)
    window.job_list.select_job(first.job_id)
    assert window.job_list.cancel_button.isEnabled()
    # the live preview of the selected job was decoded from the PreviewFrame
    qtbot.waitUntil(
        lambda: (
            window.job_list.preview_label.pixmap() is not None
            and not window.job_list.preview_label.pixmap().isNull()
        ),
        timeout=10000,
    )
    qtbot.mouseClick(window.job_list.cancel_button, Qt.MouseButton.LeftButton)
    state_col = model.index(row, model.COL_STATE)
    studio.on_sandbox(lambda box: setattr(box, "seconds_per_job", 0.05))
    qtbot.waitUntil(lambda: state_col.data() == "cancelled", timeout=10000)
    other = next(j for j in model.jobs() if j.job_id != first.job_id)
    qtbot.waitUntil(lambda: model.job(other.job_id).state is JobState.DONE, timeout=10000)
    qtbot.waitUntil(lambda: not editor.cancel_all_button.isEnabled(), timeout=5000)
    assert len(window.gallery.model.images()) == 1
    assert studio.sandbox().request_counts["POST /interrupt"] >= 1  # stopped on the server


def test_failed_job_shows_reason(qtbot: Any, app_ctl: Any) -> None:
    app_ctl.studio_parts.on_sandbox(
        lambda box: box.error_next_prompt("KSampler", "CUDA out of memory")
    )
    window = _window(qtbot, app_ctl)
    window.prompt_editor.width_spin.setValue(128)
    window.prompt_editor.height_spin.setValue(128)
    window.prompt_editor.prompts_edit.setPlainText("bad design")
    window.prompt_editor.generate_button.click()
    model = window.job_list.model
    qtbot.waitUntil(
        lambda: model.rowCount() == 1 and model.jobs()[0].state is JobState.FAILED, timeout=10000
    )
    tooltip = model.index(0, model.COL_STATE).data(Qt.ItemDataRole.ToolTipRole)
    assert "CUDA out of memory" in tooltip
    window.job_list.select_job(model.jobs()[0].job_id)
    assert "CUDA out of memory" in window.job_list.details_label.text()


def test_offline_banner_and_demo_button(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    window.show()
    assert not window.banner.isVisible()
    app_ctl.bridge(
        ConnectionChanged(
            server="http://127.0.0.1:8188", state=ConnectionState.OFFLINE, detail="refused"
        )
    )
    assert window.banner.isVisible()
    assert "offline" in window.connection_label.text()
    with qtbot.waitSignal(app_ctl.sig_demo_requested, timeout=1000):
        qtbot.mouseClick(window.banner.demo_button, Qt.MouseButton.LeftButton)
    app_ctl.bridge(
        ConnectionChanged(
            server="http://127.0.0.1:8188", state=ConnectionState.CONNECTED, device="GPU"
        )
    )
    assert not window.banner.isVisible()
    assert window.connection_label.text().startswith("Connected")


def test_demo_title_and_no_demo_button(qtbot: Any, make_studio: MakeStudio) -> None:
    window = make_studio(compose=False).compose(demo=True).window
    assert window.windowTitle() == "POD Studio — Demo"
    assert window.banner.demo_button.isHidden()


def test_window_saves_and_restores_dock_state(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    window.show()
    window.retry_dock.setFloating(True)
    window.health_dock.hide()
    with qtbot.waitSignal(app_ctl.sig_close_requested, timeout=1000):
        window.close()
    assert app_ctl.close_requested
    core = app_ctl.studio_parts.core
    qtbot.waitUntil(lambda: bool(core.settings.window.state_b64), timeout=5000)

    again = _window(qtbot, app_ctl)
    again.show()
    assert again.retry_dock.isFloating()
    assert not again.health_dock.isVisible()
    assert again.breakers_dock.isVisible()


def test_settings_dialog_saves_servers(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    dialog = window.open_settings()
    assert dialog.isVisible() and not dialog.isModal()
    dialog.server_url_edit.setText("not a url")
    dialog.add_server_button.click()
    # refused, in words: what was typed and why it is not a URL
    assert "not a url" in dialog.error_label.text() and "space" in dialog.error_label.text()
    dialog.server_url_edit.setText("http://10.0.0.9:8188/")
    dialog.add_server_button.click()
    assert dialog.server_urls() == ["http://127.0.0.1:8188", "http://10.0.0.9:8188"]
    dialog.in_flight_spin.setValue(3)
    with qtbot.waitSignal(app_ctl.settings.sig_settings_saved, timeout=2000):
        dialog.save_button.click()
    value = app_ctl.studio_parts.core.settings
    assert value.comfyui_servers == ["http://127.0.0.1:8188", "http://10.0.0.9:8188"]
    assert value.max_in_flight_per_server == 3
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=1000)


def test_gallery_viewer_approves(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    window.prompt_editor.prompts_edit.setPlainText("flower")
    window.prompt_editor.generate_button.click()
    gallery = window.gallery
    qtbot.waitUntil(lambda: len(gallery.model.images()) == 1, timeout=3000)
    image = gallery.model.images()[0]
    viewer = gallery.open_viewer(image)
    qtbot.waitUntil(viewer.has_image, timeout=3000)
    assert viewer.fields["seed"].text() == str(image.seed)
    viewer.approve_button.click()
    qtbot.waitUntil(lambda: gallery.model.images()[0].approved is True, timeout=2000)
    card = gallery.model.card(image.image_id)
    assert card is not None and card.state.value == "approved"
    assert viewer.status_label.text() == "Approved"


def test_grab_all_writes_pngs(qtbot: Any, app_ctl: Any, tmp_path: Path) -> None:
    window = _window(qtbot, app_ctl)
    window.show()
    paths = grab_all(window, tmp_path / "shots")
    names = {p.name for p in paths}
    assert {"main_window.png", "breakers_dock.png", "settings_dialog.png"} <= names
    assert "settings_products.png" in names
    assert all(p.stat().st_size > 0 for p in paths)


def test_saving_other_servers_in_settings_switches_the_running_app(
    qtbot: Any, comfy2: Any, make_studio: Any, comfy: Any
) -> None:
    other = comfy2
    app = controller_for(make_studio([comfy], pin=False))
    core = app.studio_parts.core
    window = _window(qtbot, app)
    window.show()
    dialog = window.open_settings()
    dialog.servers_list.setCurrentRow(0)
    dialog.remove_server_button.click()
    dialog.server_url_edit.setText(other.url)
    dialog.add_server_button.click()
    assert dialog.server_urls() == [other.url]
    with qtbot.waitSignal(app.settings.sig_settings_saved, timeout=5000):
        dialog.save_button.click()
    assert core.comfyui.urls == [other.url]  # applied at once, no restart
    qtbot.waitUntil(
        lambda: window.connection_label.text().startswith(f"Connected to {other.url}"),
        timeout=10000,
    )
    # the status bar names the one server in use, not the one removed
    assert window.connection_label.text() == app.connection.status_text()
    assert "Second GPU" in window.connection_label.text()
    assert "more" not in window.connection_label.text(), window.connection_label.text()
    editor = window.prompt_editor
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    editor.prompts_edit.setPlainText("on the new server")
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=15000)
    assert window.gallery.model.images()[0].server == other.url
    assert other.server.executed_prompt_ids and not comfy.server.executed_prompt_ids
