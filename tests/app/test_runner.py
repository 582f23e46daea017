"""TaskRunner: spawn, failure reporting (once), aclose cancels."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import ServiceError


def test_spawn_runs_named_task_and_keeps_it(qtbot: Any, qloop: asyncio.AbstractEventLoop) -> None:
    runner = TaskRunner()
    done = asyncio.Event()

    async def work() -> int:
        await done.wait()
        return 7

    task = runner.spawn(work(), name="work-1")
    assert task.get_name() == "work-1"
    assert runner.task_names() == ["work-1"]
    with qtbot.waitSignal(runner.sig_task_finished, timeout=2000) as blocker:
        done.set()
    assert blocker.args == ["work-1"]
    assert task.result() == 7
    assert runner.active == 0


def test_failure_is_reported_once_with_user_message(
    qtbot: Any, qloop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    runner = TaskRunner()
    failures: list[tuple[str, str]] = []
    runner.sig_task_failed.connect(lambda n, m: failures.append((n, m)))

    async def boom() -> None:
        raise ServiceError("5xx", service="comfyui", user_message="ComfyUI is down")

    with qtbot.waitSignal(runner.sig_task_finished, timeout=2000):
        runner.spawn(boom(), name="boom")
    assert failures == [("boom", "ComfyUI is down")]
    assert sum("task boom failed" in r.getMessage() for r in caplog.records) == 1


def test_cancelled_task_is_not_a_failure(qtbot: Any, qloop: asyncio.AbstractEventLoop) -> None:
    runner = TaskRunner()
    failures: list[str] = []
    runner.sig_task_failed.connect(lambda n, m: failures.append(n))
    task = runner.spawn(asyncio.Event().wait(), name="waiter")
    with qtbot.waitSignal(runner.sig_task_finished, timeout=2000):
        task.cancel()
    assert failures == []


def test_aclose_cancels_everything_and_refuses_new_work(
    qtbot: Any, qloop: asyncio.AbstractEventLoop
) -> None:
    runner = TaskRunner()
    cancelled: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    t1 = runner.spawn(forever("a"), name="a")
    t2 = runner.spawn(forever("b"), name="b")
    closer = asyncio.ensure_future(runner.aclose())
    qtbot.waitUntil(closer.done, timeout=2000)
    assert closer.exception() is None
    assert t1.cancelled() and t2.cancelled()
    assert sorted(cancelled) == ["a", "b"]
    assert runner.active == 0

    async def later() -> None:
        return None

    with pytest.raises(RuntimeError):
        runner.spawn(later(), name="late")


def test_aclose_cancels_again_a_task_that_swallowed_its_cancellation(
    qtbot: Any, qloop: asyncio.AbstractEventLoop
) -> None:
    """Python 3.11's ``wait_for`` can swallow a cancellation; shutdown must still end."""
    runner = TaskRunner()
    cancels: list[int] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels.append(1)
                if len(cancels) > 1:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = runner.spawn(stubborn(), name="stubborn")
    closer = asyncio.ensure_future(runner.aclose())
    qtbot.waitUntil(closer.done, timeout=3000)
    assert closer.exception() is None
    assert task.cancelled() and len(cancels) == 2
