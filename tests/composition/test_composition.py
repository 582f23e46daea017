"""The Qt-free composition (``composition.core``): settings drive the workflow; a bad
override is refused, not saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from pod_studio.composition import core as composition
from pod_studio.domain.errors import WorkflowError
from pod_studio.domain.models import JobSpec
from pod_studio.domain.settings import AppSettings

JOB = JobSpec(job_id="j", prompt="a fox", seed=5)


def test_settings_overrides_reach_the_graph() -> None:
    settings = AppSettings().with_changes(
        prompt_input_override="7.text", workflow_values={"3.steps": 7, "3.cfg": 4.5}
    )
    core = composition.build_core(settings=settings, servers=["http://127.0.0.1:9"])
    graph = core.template.build(JOB)
    assert graph["7"]["inputs"]["text"] == "a fox"  # the prompt went where the seller said
    assert graph["3"]["inputs"]["steps"] == 7
    assert graph["3"]["inputs"]["cfg"] == 4.5


@pytest.mark.asyncio
async def test_a_workflow_override_that_does_not_fit_is_refused_before_saving(
    _isolated_home: Path,
) -> None:
    core = composition.build_core(servers=["http://127.0.0.1:9"])
    before = core.settings
    bad = before.with_changes(prompt_input_override="99.text")
    with pytest.raises(WorkflowError, match="99"):
        await core.config.save(bad)
    assert core.settings is before
    assert not core.paths.settings_file.exists()
    good = before.with_changes(workflow_values={"3.steps": 12})
    await core.config.save(good)
    assert core.orchestrator.template.build(JOB)["3"]["inputs"]["steps"] == 12
    assert '"3.steps": 12' in core.paths.settings_file.read_text(encoding="utf-8")


@pytest.mark.asyncio
async def test_a_second_copy_on_the_same_data_folder_is_refused(_isolated_home: Path) -> None:
    from pod_studio.domain.errors import PodStudioError

    first = composition.build_core(servers=["http://127.0.0.1:9"])
    second = composition.build_core(servers=["http://127.0.0.1:9"])
    lock = composition.acquire_instance_lock(first.paths)
    try:
        with pytest.raises(PodStudioError) as info:
            await second.start()
        assert "already running" in info.value.user_message
    finally:
        lock.release()
    again = composition.acquire_instance_lock(second.paths)  # free once the first one let go
    again.release()


@pytest.mark.asyncio
async def test_a_corrupt_job_database_is_set_aside_and_reported(_isolated_home: Path) -> None:
    core = composition.build_core(servers=["http://127.0.0.1:9"])
    core.paths.ledger_file.parent.mkdir(parents=True, exist_ok=True)
    core.paths.ledger_file.write_bytes(b"this is not a database" * 100)
    await core.start()
    try:
        assert core.ledger_warnings, "the seller must hear about it"
        assert any("corrupt" in w.lower() or "moved" in w.lower() for w in core.ledger_warnings)
        assert list(core.paths.ledger_file.parent.glob("jobs.sqlite3.corrupt-*"))
        assert await core.ledger.counts() is not None  # a fresh database works
    finally:
        await core.aclose()


@pytest.mark.asyncio
async def test_statistics_are_saved_after_each_batch(_isolated_home: Path) -> None:
    import asyncio
    import json

    from pod_studio.domain.events import BatchFinished

    core = composition.build_core(servers=["http://127.0.0.1:9"])
    core.sink(BatchFinished(batch_id="b", succeeded=3, failed=1, cancelled=0, seconds=2.0))
    saves = core.tasks.named("save-stats")
    assert len(saves) == 1
    await asyncio.gather(*saves)
    saved = json.loads(core.paths.stats_file.read_text(encoding="utf-8"))
    assert saved["pipeline"]["runs"] == 1 and saved["pipeline"]["failed_runs"] == 1


@pytest.mark.asyncio
async def test_a_failing_close_is_logged_and_the_rest_still_closes(
    _isolated_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The one shutdown: statistics that cannot be written are logged with what failed, and
    the job database and the data folder are still let go (a next start works)."""
    core = composition.build_core(servers=["http://127.0.0.1:9"])
    await core.start(connect=False)
    core.paths.stats_file.unlink(missing_ok=True)
    core.paths.stats_file.mkdir(parents=True)  # a folder where the file goes: the save fails
    with caplog.at_level("ERROR"):
        await core.aclose()
    assert any("saving statistics failed" in r.getMessage() for r in caplog.records)
    again = composition.build_core(servers=["http://127.0.0.1:9"])
    await again.start(connect=False)  # the lock was released
    await again.aclose()
    await core.aclose()  # a second close does nothing


@pytest.mark.asyncio
async def test_background_tasks_cancel_on_close_but_let_closes_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncio

    from pod_studio.services.lifecycle import BackgroundTasks, aclose_logged

    tasks = BackgroundTasks()
    closed: list[str] = []
    gate = asyncio.Event()

    async def closing() -> None:
        await gate.wait()
        closed.append("closed")

    async def forever() -> None:
        await asyncio.Event().wait()

    async def broken() -> None:
        raise RuntimeError("boom")

    tasks.spawn(closing(), name="retire", finish=True)
    waiter = tasks.spawn(forever(), name="wait")
    tasks.spawn(broken(), name="broken")
    await asyncio.sleep(0)
    assert tasks.running("retire") and tasks.running("wait") and not tasks.running("broken")
    closing_all = asyncio.ensure_future(tasks.aclose())
    await asyncio.sleep(0)
    gate.set()
    await closing_all
    assert closed == ["closed"] and waiter.cancelled()
    assert any("background task broken failed" in r.getMessage() for r in caplog.records)

    class Stuck:
        async def aclose(self) -> None:
            raise OSError("socket gone")

    with caplog.at_level("WARNING"):
        await aclose_logged(Stuck(), "the old client")
    assert any("closing the old client failed" in r.getMessage() for r in caplog.records)
