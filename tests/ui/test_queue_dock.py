"""Widget tests on the real durable orchestrator (SQLite ledger in tmp_path, fake servers):
Generate goes through the queue; the queue dock shows every job from events; dead letters
with reasons and history; retry now; pause/resume; cancel; remove; move to another server;
regenerate from the gallery."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt

from pod_studio.domain.models import JobState
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.queue_dock import FILTER_FAILED, QueueTableModel, retry_text

COL = QueueTableModel


def _window(qtbot: Any, app: Any) -> MainWindow:
    window = MainWindow(app)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def _generate(qtbot: Any, window: MainWindow, text: str, variations: int = 1) -> None:
    editor = window.prompt_editor
    editor.prompts_edit.setPlainText(text)
    editor.variations_spin.setValue(variations)
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)


def _states(window: MainWindow) -> list[str]:
    return [r.state for r in window.queue_dock.model.rows()]


def test_generate_runs_through_the_durable_queue(qtbot: Any, queue_app: Any) -> None:
    window = _window(qtbot, queue_app)
    dock = window.queue_dock
    assert dock.stack.currentWidget() is dock.empty_label
    _generate(qtbot, window, "retro sunset\nvintage cat")
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 2, timeout=5000)
    jobs = window.job_list.model.jobs()
    qtbot.waitUntil(lambda: all(j.state is JobState.DONE for j in jobs), timeout=3000)
    assert len(jobs) == 2 and all(j.fraction == 1.0 for j in jobs)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded", "succeeded"], timeout=3000)
    texts = dock.model.row_texts(jobs[0].job_id)
    assert texts[COL.COL_KIND] == "Generate"
    assert texts[COL.COL_LABEL] == "retro sunset"
    assert texts[COL.COL_STATE] == "done"
    assert texts[COL.COL_WHERE].startswith("http://127.0.0.1:818")
    assert dock.stack.currentWidget() is dock.splitter
    assert "2 done" in dock.summary_label.text()
    # the jobs are in the ledger: a fresh snapshot shows the same
    queue_app.queue.refresh()
    with qtbot.waitSignal(queue_app.queue.sig_rows_reset, timeout=3000) as reset:
        queue_app.queue.refresh()
    assert {r.job_id for r in reset.args[0]} == {j.job_id for j in jobs}


def test_dead_letter_shows_reason_and_history_then_retry_now(qtbot: Any, queue_app: Any) -> None:
    for gen in queue_app.parts.generators:
        gen.fail_prompts = ("broken",)
    window = _window(qtbot, queue_app)
    dock = window.queue_dock
    _generate(qtbot, window, "broken design")
    qtbot.waitUntil(lambda: _states(window) == ["dead"], timeout=5000)
    row = dock.model.rows()[0]
    qtbot.waitUntil(lambda: bool(dock.model.job(row.job_id).history), timeout=3000)
    dock.tabs.setCurrentIndex(FILTER_FAILED)
    assert dock.tabs.tabText(FILTER_FAILED) == "Failed (1)"
    assert dock.visible_job_ids() == [row.job_id]
    texts = dock.model.row_texts(row.job_id)
    assert texts[COL.COL_STATE] == "failed"
    assert "the GPU fell over" in texts[COL.COL_ERROR]
    dock.select_jobs([row.job_id])
    details = dock.details.toPlainText()
    assert "Reason: the GPU fell over" in details
    assert "Attempt history:" in details
    assert dock.retry_button.isEnabled() and not dock.cancel_button.isEnabled()
    # the job list shows the failure too
    job = window.job_list.model.job(row.job_id)
    assert job is not None and job.state is JobState.FAILED
    # fix the cause, retry now: the job runs again and lands in the gallery
    for gen in queue_app.parts.generators:
        gen.fail_prompts = ()
    qtbot.mouseClick(dock.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=5000)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 1, timeout=3000)
    assert dock.tabs.tabText(FILTER_FAILED) == "Failed (0)"
    assert dock.visible_job_ids() == []


def test_pause_cancel_remove_resume(qtbot: Any, queue_app: Any) -> None:
    window = _window(qtbot, queue_app)
    dock = window.queue_dock
    qtbot.mouseClick(dock.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: queue_app.queue.paused, timeout=3000)
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
    qtbot.waitUntil(lambda: not queue_app.queue.paused, timeout=3000)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=5000)
    assert dock.model.rows()[0].job_id == second
    assert sum(g.runs for g in queue_app.parts.generators) == 1  # the cancelled job never ran


def test_retry_wait_counts_down_and_moves_to_another_server(qtbot: Any, queue_app: Any) -> None:
    first, other = queue_app.parts.generators
    first.transient_failures = 1
    other.transient_failures = 1
    window = _window(qtbot, queue_app)
    dock = window.queue_dock
    _generate(qtbot, window, "lighthouse at dusk")
    qtbot.waitUntil(lambda: _states(window) == ["retry_wait"], timeout=5000)
    row = dock.model.rows()[0]
    texts = dock.model.row_texts(row.job_id)
    assert texts[COL.COL_STATE] == "retry later"
    assert re.fullmatch(r"in (9|10) min \(\d\d:\d\d\)", texts[COL.COL_NEXT]), texts
    assert texts[COL.COL_TRIES] == "1 / 3"
    assert "the server is busy" in texts[COL.COL_ERROR]
    job = window.job_list.model.job(row.job_id)
    assert job is not None and job.state is JobState.QUEUED and "will retry" in job.detail
    ran_on = first if first.runs else other
    target = other if ran_on is first else first
    target.transient_failures = 0
    dock.select_jobs([row.job_id])
    assert dock.move_button.isEnabled()
    menu = dock.open_move_menu()
    urls = [a.data() for a in menu.actions()]
    assert urls == [first.url, other.url]
    action = next(a for a in menu.actions() if a.data() == target.url)
    action.trigger()
    menu.close()
    qtbot.waitUntil(lambda: "will run on" in dock.message_label.text(), timeout=3000)
    qtbot.mouseClick(dock.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _states(window) == ["succeeded"], timeout=5000)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 1, timeout=3000)
    assert window.gallery.model.images()[0].server == target.url


def test_gallery_regenerate_uses_the_same_prompt_with_a_new_seed(
    qtbot: Any, queue_app: Any
) -> None:
    window = _window(qtbot, queue_app)
    _generate(qtbot, window, "a fox in the snow")
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 1, timeout=5000)
    original = window.gallery.model.images()[0]
    window.gallery.list_view.selectAll()
    assert window.gallery.regenerate_button.isEnabled()
    with qtbot.waitSignal(queue_app.gallery.sig_regenerated, timeout=3000):
        qtbot.mouseClick(window.gallery.regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 2, timeout=5000)
    new = next(i for i in window.gallery.model.images() if i.image_id != original.image_id)
    assert new.prompt == original.prompt
    assert new.seed != original.seed
    assert len(window.job_list.model.jobs()) == 2


def test_retry_text() -> None:
    assert retry_text(None, 100.0) == ""
    assert retry_text(90.0, 100.0) == "due now"
    assert retry_text(112.2, 100.0) == "in 13 s"
    assert retry_text(100.0 + 7200 + 600, 100.0).startswith("in 2 h 10 min (")
