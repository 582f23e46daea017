"""Widget tests on the shipping engine (durable orchestrator over the SQLite ledger, sandbox
ComfyUI servers):
Generate goes through the queue; the queue dock shows every job from events; dead letters
with reasons and history; retry now; pause/resume; cancel; remove; move to another server;
regenerate from the gallery."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt

from pod_studio.domain.models import JobState
from pod_studio.domain.settings import AppSettings, RetryPolicySettings
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.queue_dock import FILTER_FAILED, QueueTableModel, retry_text
from tests.app.conftest import MakeStudio
from tests.ui.conftest import controller_for

COL = QueueTableModel


def _window(qtbot: Any, app: Any) -> MainWindow:
    window: MainWindow = app.studio_parts.window
    window.resize(1400, 900)
    window.show()
    return window


def _generate(qtbot: Any, window: MainWindow, text: str, variations: int = 1) -> None:
    editor = window.prompt_editor
    editor.width_spin.setValue(128)
    editor.height_spin.setValue(128)
    editor.prompts_edit.setPlainText(text)
    editor.variations_spin.setValue(variations)
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)


def _states(window: MainWindow) -> list[str]:
    return [r.state for r in window.queue_dock.model.rows()]


def test_generate_runs_through_the_durable_queue(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    dock = window.queue_dock
    assert dock.stack.currentWidget() is dock.empty_label
    _generate(qtbot, window, "retro sunset\nvintage cat")
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 2, timeout=10000)
    jobs = window.job_list.model.jobs()
    qtbot.waitUntil(lambda: all(j.state is JobState.DONE for j in jobs), timeout=3000)
    assert len(jobs) == 2 and all(j.fraction == 1.0 for j in jobs)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded", "succeeded"], timeout=3000)
    texts = dock.model.row_texts(jobs[0].job_id)
    assert texts[COL.COL_KIND] == "Generate"
    assert texts[COL.COL_LABEL] == "retro sunset"
    assert texts[COL.COL_STATE] == "done"
    assert texts[COL.COL_WHERE] == app_ctl.studio_parts.comfy.url
    assert dock.stack.currentWidget() is dock.splitter
    assert "2 done" in dock.summary_label.text()
    # the jobs are in the ledger: a fresh snapshot shows the same
    app_ctl.queue.refresh()
    with qtbot.waitSignal(app_ctl.queue.sig_rows_reset, timeout=3000) as reset:
        app_ctl.queue.refresh()
    assert {r.job_id for r in reset.args[0]} == {j.job_id for j in jobs}


def test_dead_letter_shows_reason_and_history_then_retry_now(qtbot: Any, app_ctl: Any) -> None:
    # the sampler fails once (an execution error: not retried, straight to the dead letters)
    app_ctl.studio_parts.on_sandbox(
        lambda box: box.error_next_prompt("KSampler", "CUDA out of memory")
    )
    window = _window(qtbot, app_ctl)
    dock = window.queue_dock
    _generate(qtbot, window, "broken design")
    qtbot.waitUntil(lambda: _states(window) == ["dead"], timeout=10000)
    row = dock.model.rows()[0]
    qtbot.waitUntil(lambda: bool(dock.model.job(row.job_id).history), timeout=3000)
    dock.tabs.setCurrentIndex(FILTER_FAILED)
    assert dock.tabs.tabText(FILTER_FAILED) == "Failed (1)"
    assert dock.visible_job_ids() == [row.job_id]
    texts = dock.model.row_texts(row.job_id)
    assert texts[COL.COL_STATE] == "failed"
    assert "CUDA out of memory" in texts[COL.COL_ERROR]
    dock.select_jobs([row.job_id])
    details = dock.details.toPlainText()
    assert "Reason: " in details and "CUDA out of memory" in details
    assert "Attempt history:" in details
    assert dock.retry_button.isEnabled() and not dock.cancel_button.isEnabled()
    # the job list shows the failure too
    job = window.job_list.model.job(row.job_id)
    assert job is not None and job.state is JobState.FAILED
    # fix the cause, retry now: the job runs again and lands in the gallery
    # the cause is gone (it failed once): retry now
    qtbot.mouseClick(dock.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=10000)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=3000)
    assert dock.tabs.tabText(FILTER_FAILED) == "Failed (0)"
    assert dock.visible_job_ids() == []


def test_pause_cancel_remove_resume(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    dock = window.queue_dock
    qtbot.mouseClick(dock.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app_ctl.queue.paused, timeout=3000)
    assert dock.pause_button.text() == "Resume queue" and dock.pause_button.isChecked()
    assert dock.summary_label.text().startswith("PAUSED")
    _generate(qtbot, window, "first\nsecond")
    qtbot.waitUntil(lambda: _states(window) == ["queued", "queued"], timeout=3000)
    first, second = (r.job_id for r in dock.model.rows())
    dock.select_jobs([first])
    assert dock.cancel_button.isEnabled()
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.model.job(first).state == "cancelled", timeout=3000)
    job = window.job_list.model.job(first)
    assert job is not None and job.state is JobState.CANCELLED
    dock.select_jobs([first])
    qtbot.mouseClick(dock.discard_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.model.job(first) is None, timeout=3000)
    assert window.job_list.model.job(first) is None
    qtbot.mouseClick(dock.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not app_ctl.queue.paused, timeout=3000)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=10000)
    assert dock.model.rows()[0].job_id == second
    # the cancelled job never reached the server
    assert len(app_ctl.studio_parts.sandbox().executed_prompt_ids) == 1


def test_retry_wait_counts_down_and_moves_to_another_server(
    qtbot: Any, comfy2: ServerThread, make_studio: MakeStudio, comfy: ServerThread
) -> None:
    other = comfy2
    # no quick retries inside the call: a refused prompt goes back to the queue at once
    no_retries = AppSettings().with_changes(retry={"comfyui": RetryPolicySettings(max_retries=0)})
    app = controller_for(make_studio([comfy, other], no_retries))
    studio = app.studio_parts
    urls = [comfy.url, other.url]
    # Both servers refuse their next prompt: the job fails on whichever the queue picks first
    # (the one whose connection and preflight finish first), and then moves to the other.
    for index in (0, 1):
        studio.on_sandbox(lambda box: box.fail_next(1, 503, match="/prompt"), index)
    window = _window(qtbot, app)
    dock = window.queue_dock
    _generate(qtbot, window, "lighthouse at dusk")
    qtbot.waitUntil(lambda: _states(window) == ["retry_wait"], timeout=10000)
    row = dock.model.rows()[0]
    texts = dock.model.row_texts(row.job_id)
    assert texts[COL.COL_STATE] == "retry later"
    assert re.fullmatch(r"in (9|10) min \(\d\d:\d\d\)", texts[COL.COL_NEXT]), texts
    assert texts[COL.COL_TRIES] == "1 / 3"
    assert texts[COL.COL_ERROR]
    first = texts[COL.COL_WHERE]
    assert first in urls
    target = 1 - urls.index(first)
    second = urls[target]
    studio.on_sandbox(lambda box: box.clear_faults(), target)
    job = window.job_list.model.job(row.job_id)
    assert job is not None and job.state is JobState.QUEUED and "retry" in job.detail
    dock.select_jobs([row.job_id])
    assert dock.move_button.isEnabled()
    menu = dock.open_move_menu()
    assert sorted(a.data() for a in menu.actions()) == sorted(urls)
    action = next(a for a in menu.actions() if a.data() == second)
    action.trigger()
    menu.close()
    qtbot.waitUntil(lambda: "will run on" in dock.message_label.text(), timeout=10000)
    qtbot.mouseClick(dock.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=10000)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=10000)
    assert window.gallery.model.images()[0].server == second
    assert studio.sandbox(target).executed_prompt_ids
    assert not studio.sandbox(1 - target).executed_prompt_ids


def test_gallery_regenerate_uses_the_same_prompt_with_a_new_seed(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    _generate(qtbot, window, "a fox in the snow")
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=10000)
    original = window.gallery.model.images()[0]
    window.gallery.list_view.selectAll()
    assert window.gallery.regenerate_button.isEnabled()
    with qtbot.waitSignal(app_ctl.gallery.sig_regenerated, timeout=3000):
        qtbot.mouseClick(window.gallery.regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 2, timeout=10000)
    new = next(i for i in window.gallery.model.images() if i.image_id != original.image_id)
    assert new.prompt == original.prompt
    assert new.seed != original.seed
    assert len(window.job_list.model.jobs()) == 2


def test_retry_text() -> None:
    assert retry_text(None, 100.0) == ""
    assert retry_text(90.0, 100.0) == "due now"
    assert retry_text(112.2, 100.0) == "in 13 s"
    assert retry_text(100.0 + 7200 + 600, 100.0).startswith("in 2 h 10 min (")
