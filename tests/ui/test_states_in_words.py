"""States that read well: the retry log newest first with causes in words and a readable
wait; a done job shows no stale error; a waiting job says why."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from pod_studio.app.queue import QueueRow
from pod_studio.app.wording import cause_in_words, wait_in_words
from pod_studio.domain.events import RetryOutcome, RetryScheduled
from pod_studio.ui.docks import RetryLogModel
from pod_studio.ui.queue_dock import QueueTableModel, details_text


def test_causes_in_words() -> None:
    assert cause_in_words("ReadTimeout: timed out") == "The service took too long to answer"
    assert cause_in_words("RateLimitError: 429") == "The service asked us to slow down"
    assert cause_in_words("SomethingOdd: disk quota reached") == "Disk quota reached"
    assert cause_in_words("") == ""
    assert wait_in_words(30.2, "Retry-After header") == "30 s, as the service asked"
    assert wait_in_words(1.25, "exponential backoff") == "1.2 s, growing pause"


def test_retry_log_newest_first_in_words(qapp: Any) -> None:
    model = RetryLogModel(limit=2)
    for n, cause in enumerate(["ConnectError: [Errno 111]", "ReadTimeout: timed out"]):
        model.append_event(
            RetryScheduled(
                service="comfyui",
                operation=f"op{n}",
                attempt=n + 1,
                cause=cause,
                wait_seconds=2.0,
                wait_reason="exponential backoff",
            )
        )
    model.append_event(
        RetryOutcome(
            service="printify",
            operation="op2",
            attempts=3,
            outcome="gave up",
            cause="ServiceUnavailableError: 503",
        )
    )
    rows = model.rows()
    assert [r[2] for r in rows] == ["op2", "op1"]  # newest first; the oldest dropped off
    assert rows[0][4] == "The service is busy or down for a moment"
    assert rows[1][5] == "2.0 s, growing pause"
    tip = model.index(1, RetryLogModel.COL_CAUSE).data(Qt.ItemDataRole.ToolTipRole)
    assert tip == "ReadTimeout: timed out"  # the technical cause stays at hand


def test_queue_reason_is_never_stale(qapp: Any) -> None:
    model = QueueTableModel()
    done = QueueRow("a", "generate", "cat", "succeeded", attempts=2, last_error="ComfyUI busy")
    waiting = QueueRow(
        "b",
        "generate",
        "dog",
        "retry_wait",
        next_run_at=None,
        last_error="ComfyUI is busy; trying again soon",
    )
    model.set_rows([done, waiting])
    assert model.row_texts("a")[QueueTableModel.COL_ERROR] == ""
    assert "Last error" not in details_text(done, 0.0)
    assert model.row_texts("b")[QueueTableModel.COL_ERROR] == (
        "Waiting: ComfyUI is busy; trying again soon"
    )
    assert "Waiting because: ComfyUI is busy" in details_text(waiting, 0.0)
