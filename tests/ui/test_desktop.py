"""Widget tests for the window's desktop side, on the shipping engine (a sandbox ComfyUI):
notifications when a batch ends (tray message or status bar), the tray icon's tooltip and
menu, closing to the tray and the desktop settings."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from pod_studio.app.app_controller import AppController
from pod_studio.app.notifications import (
    Notice,
    generation_notice,
    publish_notice,
    queue_summary,
    worth_notifying,
)
from pod_studio.domain.events import BatchFinished
from pod_studio.domain.orchestration import QueueChanged
from pod_studio.domain.settings import AppSettings
from pod_studio.ui import tray as tray_module
from pod_studio.ui.main_window import MainWindow
from tests.app.conftest import MakeStudio
from tests.ui.conftest import controller_for


def _app(make_studio: MakeStudio, **desktop: Any) -> AppController:
    settings = AppSettings().with_changes(desktop={"notify_after_seconds": 0, **desktop})
    ctl: AppController = controller_for(make_studio(settings=settings))
    return ctl


def _window(qtbot: Any, app: AppController) -> MainWindow:
    window: MainWindow = app.studio_parts.window
    window.show()
    return window


@pytest.fixture
def with_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A desktop that shows tray icons (the offscreen platform has none)."""
    monkeypatch.setattr(tray_module, "tray_available", lambda: True)


@pytest.fixture
def no_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tray_module, "tray_available", lambda: False)


# --- what a notice says, and when -------------------------------------------------------


def test_notices_say_what_happened_in_words() -> None:
    def gen(ok: int, failed: int, cancelled: int = 0) -> Notice | None:
        return generation_notice(
            BatchFinished(
                batch_id="b", succeeded=ok, failed=failed, cancelled=cancelled, seconds=30
            )
        )

    assert gen(6, 0) == Notice("generate", "Designs ready", "6 designs ready", 30)
    one = gen(6, 1)
    assert one is not None and one.text == "6 designs ready (1 failed) — see Job queue"
    assert not one.failed
    assert gen(1, 0, 2) == Notice("generate", "Designs ready", "1 design ready (2 cancelled)", 30)
    bad = gen(0, 3)
    assert bad is not None and bad.failed
    assert bad.text == "Generation failed: 3 designs — see Job queue"
    assert gen(0, 0, 4) is None  # the seller cancelled it: nothing to tell

    states = {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded"}
    done = publish_notice({**states, "e": "dead"}, 12.0)
    assert done is not None
    assert done.text == "Publishing done: 4 listings, 1 failed — see Job queue"
    assert publish_notice(states, 1.0) == Notice(
        "publish", "Publishing done", "Publishing done: 4 listings", 1.0
    )
    failed = publish_notice({"a": "dead", "b": "partially_published"}, 3.0)
    assert failed is not None and failed.failed
    assert failed.text == "Publishing failed: 2 listings — see Job queue"
    assert publish_notice({"a": "cancelled"}, 3.0) is None

    quick = Notice("generate", "Designs ready", "1 design ready", 4.0)
    assert not worth_notifying(quick, after_seconds=20, background=False)
    assert worth_notifying(quick, after_seconds=20, background=True)  # window hidden
    assert worth_notifying(quick, after_seconds=4, background=False)

    assert queue_summary({"running": 3, "queued": 4, "retry_wait": 1, "dead": 1}) == (
        "3 running, 5 queued, 1 failed"
    )
    assert queue_summary({"succeeded": 9}) == "nothing to do"
    assert queue_summary({"queued": 2}, paused=True) == "queue paused — 2 queued"


def test_old_settings_files_load_with_desktop_defaults() -> None:
    old = AppSettings.model_validate({"schema_version": 1, "comfyui_servers": ["http://h:1"]})
    assert old.desktop.notify and not old.desktop.notify_sound
    assert old.desktop.notify_after_seconds == 20.0 and not old.desktop.close_to_tray


# --- notifications in the window ----------------------------------------------------------


def test_generation_batch_notifies_through_the_tray(
    qtbot: Any, make_studio: MakeStudio, with_tray: None
) -> None:
    app = _app(make_studio)
    window = _window(qtbot, app)
    assert window.tray.available and window.tray.tray is not None
    studio = app.studio_parts  # type: ignore[attr-defined]
    studio.on_sandbox(lambda box: box.error_next_prompt("KSampler", "CUDA out of memory"))
    editor = window.prompt_editor
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    editor.prompts_edit.setPlainText("fails first\nretro sunset\nvintage cat")
    with qtbot.waitSignal(window.tray.sig_notified, timeout=30000) as told:
        editor.generate_button.click()
    assert told.args == ["Designs ready", "2 designs ready (1 failed) — see Job queue"]


def test_without_a_tray_the_notice_goes_to_the_status_bar_with_a_sound(
    qtbot: Any, make_studio: MakeStudio, no_tray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    beeps: list[int] = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    app = _app(make_studio, notify_sound=True)
    window = _window(qtbot, app)
    assert not window.tray.available
    editor = window.prompt_editor
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    editor.prompts_edit.setPlainText("retro sunset")
    with qtbot.waitSignal(window.tray.sig_notified, timeout=30000) as told:
        editor.generate_button.click()
    assert told.args == ["Designs ready", "1 design ready"]
    assert window.statusBar().currentMessage() == "1 design ready"
    assert beeps == [1]


def test_publish_batch_notifies_when_its_last_listing_ends(
    qtbot: Any, make_studio: MakeStudio, no_tray: None
) -> None:
    app = _app(make_studio)
    window = _window(qtbot, app)
    seen: list[tuple[str, str]] = []
    window.tray.sig_notified.connect(lambda title, text: seen.append((title, text)))
    # the first listing ended before Publish… announced its jobs (a fast export)
    app.bridge(QueueChanged(job_id="p1", kind="publish", state="succeeded"))
    app.publishing.sig_publish_enqueued.emit(["p1", "p2", "p3"])
    app.bridge(QueueChanged(job_id="p2", kind="publish", state="running"))
    app.bridge(QueueChanged(job_id="p2", kind="publish", state="succeeded"))
    assert seen == []  # p3 is still on its way
    with qtbot.waitSignal(window.tray.sig_notified, timeout=5000) as told:
        app.bridge(QueueChanged(job_id="p3", kind="publish", state="dead"))
    assert told.args == ["Publishing done", "Publishing done: 2 listings, 1 failed — see Job queue"]


def test_notifications_can_be_turned_off(
    qtbot: Any, make_studio: MakeStudio, no_tray: None
) -> None:
    app = _app(make_studio, notify=False)
    window = _window(qtbot, app)
    seen: list[Any] = []
    window.tray.sig_notified.connect(lambda *a: seen.append(a))
    with qtbot.waitSignal(app.notices.sig_batch_ended, timeout=5000):
        app.bridge(BatchFinished(batch_id="b", succeeded=2, failed=0, cancelled=0, seconds=99))
    assert seen == []


def test_settings_general_tab_saves_the_desktop_choices(qtbot: Any, app_ctl: Any) -> None:
    window = app_ctl.studio_parts.window
    dialog = window.open_settings()
    assert dialog.notify_check.isChecked() and dialog.notify_after_spin.value() == 20
    dialog.notify_after_spin.setValue(45)
    dialog.notify_sound_check.setChecked(True)
    dialog.close_to_tray_check.setChecked(True)
    with qtbot.waitSignal(app_ctl.settings.sig_settings_saved, timeout=10000):
        dialog.save_button.click()
    desktop = app_ctl.studio_parts.core.settings.desktop
    assert (desktop.notify_after_seconds, desktop.notify_sound, desktop.close_to_tray) == (
        45.0,
        True,
        True,
    )
    dialog.notify_check.setChecked(False)
    assert not dialog.notify_after_spin.isEnabled()


# --- the tray icon ------------------------------------------------------------------------


def test_tray_menu_shows_the_window_and_pauses_the_queue(
    qtbot: Any, make_studio: MakeStudio, with_tray: None
) -> None:
    app = _app(make_studio)
    window = _window(qtbot, app)
    desk = window.tray
    assert desk.tray is not None and not desk.tray.icon().isNull()
    names = [a.objectName() for a in desk.menu.actions() if a.objectName()]
    assert names == ["tray_show_action", "tray_pause_action", "tray_quit_action"]
    assert desk.tray.toolTip() == "POD Studio — nothing to do"
    # pause and resume reach the durable queue
    desk.pause_action.trigger()
    qtbot.waitUntil(lambda: app.queue.paused, timeout=10000)
    assert desk.pause_action.text() == "Resume queue"
    assert desk.tray.toolTip().startswith("POD Studio — queue paused")
    # while paused, a prompt waits in the queue: the tooltip counts it
    window.prompt_editor.width_spin.setValue(128)
    window.prompt_editor.height_spin.setValue(128)
    window.prompt_editor.prompts_edit.setPlainText("retro sunset")
    window.prompt_editor.generate_button.click()
    qtbot.waitUntil(
        lambda: desk.tray is not None and "1 queued" in desk.tray.toolTip(), timeout=10000
    )
    desk.pause_action.trigger()
    qtbot.waitUntil(lambda: not app.queue.paused, timeout=10000)
    assert desk.pause_action.text() == "Pause queue"
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=20000)
    # Show window brings back a hidden one
    window.hide()
    assert not window.isVisible()
    desk.show_action.trigger()
    assert window.isVisible()
    assert not app.close_requested


def test_close_to_tray_hides_and_quit_from_the_tray_shuts_down(
    qtbot: Any, make_studio: MakeStudio, with_tray: None
) -> None:
    app = _app(make_studio, close_to_tray=True)
    window = _window(qtbot, app)
    assert window.tray.keeps_running_on_close()
    window.close()
    assert not window.isVisible()
    assert not app.close_requested  # still running, in the tray
    window.tray.show_action.trigger()
    assert window.isVisible()
    window.close()
    assert not window.isVisible() and not app.close_requested
    with qtbot.waitSignal(app.sig_close_requested, timeout=5000):
        window.tray.quit_action.trigger()  # from the tray, the window hidden
    assert app.close_requested
    assert window.tray.tray is not None and not window.tray.tray.isVisible()


def test_file_quit_shuts_down_even_with_close_to_tray(
    qtbot: Any, make_studio: MakeStudio, with_tray: None
) -> None:
    app = _app(make_studio, close_to_tray=True)
    window = _window(qtbot, app)
    with qtbot.waitSignal(app.sig_close_requested, timeout=5000):
        window.quit_action.trigger()
    assert app.close_requested and not window.isVisible()


def test_close_quits_when_close_to_tray_is_off_or_there_is_no_tray(
    qtbot: Any, make_studio: MakeStudio, no_tray: None
) -> None:
    app = _app(make_studio, close_to_tray=True)  # on, but this desktop has no tray
    window = _window(qtbot, app)
    assert not window.tray.keeps_running_on_close()
    with qtbot.waitSignal(app.sig_close_requested, timeout=5000):
        window.close()
    assert app.close_requested
