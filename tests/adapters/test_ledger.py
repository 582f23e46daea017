"""Tests for adapters/storage/ledger.py: the SQLite job ledger."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pod_studio.adapters.storage.ledger import SCHEMA_VERSION, SqliteJobLedger
from pod_studio.domain.jobs import (
    JOB_TRANSITIONS,
    ErrorKind,
    IllegalTransitionError,
    JobKind,
    JobStatus,
    StepStatus,
)
from pod_studio.domain.ledger_port import (
    JobLedger,
    JobNotRunningError,
    LedgerError,
    LedgerLockedError,
    UnknownJobError,
)


def glob(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteJobLedger]:
    led = SqliteJobLedger(tmp_path / "jobs.sqlite3", clock=FakeClock())
    assert await led.open() == []
    yield led
    await led.aclose()


def test_implements_the_port(tmp_path: Path) -> None:
    led: JobLedger = SqliteJobLedger(tmp_path / "x.sqlite3")
    assert led is not None


@pytest.mark.asyncio
async def test_add_get_list_and_counts(ledger: SqliteJobLedger) -> None:
    a = await ledger.add_job(
        JobKind.PUBLISH, {"design": "abc", "n": 1}, steps={"create": "pod-1", "publish": "pod-2"}
    )
    b = await ledger.add_job(JobKind.GENERATE, {"prompt": "cat"}, job_id="gen-1", server="s1")
    assert (
        a.state is JobStatus.QUEUED and a.attempts == 0 and a.payload == {"design": "abc", "n": 1}
    )
    assert [s.step for s in a.steps] == ["create", "publish"]
    assert all(s.state is StepStatus.PENDING for s in a.steps)
    assert b.id == "gen-1" and b.server == "s1"

    got = await ledger.get_job(a.id)
    assert got == a
    assert await ledger.get_job("missing") is None
    assert [j.id for j in await ledger.list_jobs()] == [a.id, "gen-1"]
    assert [j.id for j in await ledger.list_jobs(kind=JobKind.GENERATE)] == ["gen-1"]
    assert await ledger.list_jobs([JobStatus.DEAD]) == []
    counts = await ledger.counts()
    assert counts[JobStatus.QUEUED] == 2 and counts[JobStatus.DEAD] == 0
    assert set(counts) == set(JobStatus)

    with pytest.raises(LedgerError, match="already exists"):
        await ledger.add_job(JobKind.GENERATE, {}, job_id="gen-1")
    with pytest.raises(LedgerError, match="not JSON"):
        await ledger.add_job(JobKind.GENERATE, {"x": object()})


@pytest.mark.asyncio
async def test_claim_ready_respects_due_time_limit_and_pause(ledger: SqliteJobLedger) -> None:
    early = await ledger.add_job(JobKind.GENERATE, {}, next_run_at=10.0)
    late = await ledger.add_job(JobKind.GENERATE, {}, next_run_at=5000.0)
    other = await ledger.add_job(JobKind.GENERATE, {}, next_run_at=20.0)

    await ledger.set_paused(True)
    assert await ledger.is_paused()
    assert await ledger.claim_ready(now=100.0, limit=10) == []
    await ledger.set_paused(False)

    claimed = await ledger.claim_ready(now=100.0, limit=1, owner="w1", lease_seconds=30)
    assert [j.id for j in claimed] == [early.id]
    job = claimed[0]
    assert job.state is JobStatus.RUNNING and job.attempts == 1
    assert job.lease_owner == "w1" and job.lease_until == 130.0

    claimed = await ledger.claim_ready(now=100.0, limit=10)
    assert [j.id for j in claimed] == [other.id]
    assert (await ledger.get_job(late.id)).state is JobStatus.QUEUED  # type: ignore[union-attr]
    assert await ledger.claim_ready(now=100.0, limit=0) == []


@pytest.mark.asyncio
async def test_intent_is_durable_before_the_side_effect(
    ledger: SqliteJobLedger, tmp_path: Path
) -> None:
    job = await ledger.add_job(JobKind.PUBLISH, {})
    await ledger.claim_ready(now=2000.0, limit=1)
    seen_by_another_process: list[Any] = []

    async def side_effect() -> str:
        # A separate connection (as after a crash) already sees the intent.
        observer = SqliteJobLedger(tmp_path / "jobs.sqlite3")
        try:
            seen_by_another_process.extend(await observer.in_flight_steps())
        finally:
            await observer.aclose()
        return "remote-42"

    step = await ledger.record_intent(job.id, "create", "pod-abc")
    assert step.state is StepStatus.IN_FLIGHT and step.attempts == 1
    ref = await side_effect()
    done = await ledger.record_result(job.id, "create", ref)

    assert [(s.job_id, s.step, s.idem_key) for s in seen_by_another_process] == [
        (job.id, "create", "pod-abc")
    ]
    assert done.state is StepStatus.DONE and done.remote_ref == "remote-42"
    assert done.finished_at is not None
    assert await ledger.in_flight_steps() == []
    outcomes = [a.outcome for a in await ledger.attempts(job.id)]
    assert outcomes == ["queued", "claimed", "intent", "step_done"]


@pytest.mark.asyncio
async def test_step_rules(ledger: SqliteJobLedger) -> None:
    job = await ledger.add_job(JobKind.PUBLISH, {}, steps={"create": "pod-k1"})
    with pytest.raises(JobNotRunningError):
        await ledger.record_intent(job.id, "create", "pod-k1")
    await ledger.claim_ready(now=5000.0, limit=5)
    with pytest.raises(IllegalTransitionError):
        await ledger.record_result(job.id, "create", "x")  # pending -> done skips the intent
    with pytest.raises(LedgerError, match="idempotency key"):
        await ledger.record_intent(job.id, "create", "pod-other")
    await ledger.record_intent(job.id, "create", "pod-k1")
    failed = await ledger.record_step_failed(job.id, "create", "HTTP 500", ErrorKind.TRANSIENT)
    assert failed.state is StepStatus.FAILED
    again = await ledger.record_intent(job.id, "create", "pod-k1")
    assert again.attempts == 2
    reset = await ledger.reset_step(job.id, "create")
    assert reset.state is StepStatus.PENDING
    with pytest.raises(UnknownJobError):
        await ledger.record_result(job.id, "nope", None)
    with pytest.raises(UnknownJobError):
        await ledger.record_intent("missing", "create", "pod-zz")

    other = await ledger.add_job(JobKind.PUBLISH, {})
    await ledger.claim_ready(now=5000.0, limit=5)
    with pytest.raises(LedgerError, match="already used by job"):
        await ledger.record_intent(other.id, "create", "pod-k1")


@pytest.mark.asyncio
async def test_retry_then_dead_then_manual_retry_keeps_done_steps(
    ledger: SqliteJobLedger,
) -> None:
    job = await ledger.add_job(JobKind.PUBLISH, {}, max_attempts=2)
    await ledger.claim_ready(now=5000.0, limit=1)
    await ledger.record_intent(job.id, "upload", "pod-up")
    await ledger.record_result(job.id, "upload", "img-1")
    await ledger.record_intent(job.id, "create", "pod-cr")
    await ledger.record_step_failed(job.id, "create", "HTTP 503", ErrorKind.TRANSIENT)

    waiting = await ledger.mark_retry(job.id, "HTTP 503", ErrorKind.TRANSIENT, next_run_at=6000.0)
    assert waiting.state is JobStatus.RETRY_WAIT
    assert waiting.last_error == "HTTP 503" and waiting.last_error_kind is ErrorKind.TRANSIENT
    assert await ledger.claim_ready(now=5999.0, limit=1) == []
    [again] = await ledger.claim_ready(now=6000.0, limit=1)
    assert again.attempts == 2

    dead = await ledger.mark_retry(job.id, "HTTP 503 again", ErrorKind.TRANSIENT, 7000.0)
    assert dead.state is JobStatus.DEAD
    assert dead.last_error is not None and "gave up after 2 attempts" in dead.last_error
    assert dead.step("create").state is StepStatus.DEAD  # type: ignore[union-attr]
    assert dead.step("upload").state is StepStatus.DONE  # type: ignore[union-attr]
    assert (await ledger.counts())[JobStatus.DEAD] == 1

    retried = await ledger.manual_retry(job.id, now=8000.0)
    assert retried.state is JobStatus.QUEUED and retried.attempts == 0
    assert retried.next_run_at == 8000.0
    assert retried.step("upload").state is StepStatus.DONE  # type: ignore[union-attr]
    assert retried.step("upload").remote_ref == "img-1"  # type: ignore[union-attr]
    assert retried.step("create").state is StepStatus.PENDING  # type: ignore[union-attr]
    with pytest.raises(IllegalTransitionError):
        await ledger.manual_retry(job.id)  # queued -> queued


@pytest.mark.asyncio
async def test_illegal_transitions_change_nothing(ledger: SqliteJobLedger) -> None:
    job = await ledger.add_job(JobKind.GENERATE, {})
    with pytest.raises(IllegalTransitionError):
        await ledger.mark_succeeded(job.id)
    with pytest.raises(IllegalTransitionError):
        await ledger.mark_dead(job.id, "no")
    assert (await ledger.get_job(job.id)).state is JobStatus.QUEUED  # type: ignore[union-attr]
    await ledger.mark_cancelled(job.id)
    with pytest.raises(IllegalTransitionError):
        await ledger.mark_cancelled(job.id)
    with pytest.raises(UnknownJobError):
        await ledger.mark_cancelled("missing")


@pytest.mark.asyncio
async def test_succeeded_partial_cancel_discard_requeue(ledger: SqliteJobLedger) -> None:
    a = await ledger.add_job(JobKind.PUBLISH, {})
    b = await ledger.add_job(JobKind.PUBLISH, {})
    c = await ledger.add_job(JobKind.PUBLISH, {}, steps={"create": "pod-c"})
    await ledger.claim_ready(now=5000.0, limit=10, lease_seconds=100)
    assert (await ledger.mark_succeeded(a.id)).state is JobStatus.SUCCEEDED
    assert (await ledger.mark_succeeded(b.id, partial=True)).state is (
        JobStatus.PARTIALLY_PUBLISHED
    )
    with pytest.raises(LedgerError, match="cancel it"):
        await ledger.discard(c.id)
    assert await ledger.requeue_running(lease_expired_before=5050.0) == []
    assert await ledger.requeue_running(lease_expired_before=5200.0) == [c.id]
    cancelled = await ledger.mark_cancelled(c.id)
    assert cancelled.step("create").state is StepStatus.CANCELLED  # type: ignore[union-attr]
    assert await ledger.discard(c.id) is True
    assert await ledger.discard(c.id) is False
    assert await ledger.get_job(c.id) is None
    assert await ledger.attempts(c.id) == []


@pytest.mark.asyncio
async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobLedger(path)
    job = await first.add_job(JobKind.PUBLISH, {"k": [1, 2]}, steps={"create": "pod-r"})
    await first.claim_ready(now=1e12, limit=1)
    await first.record_intent(job.id, "create", "pod-r")
    await first.set_paused(True)
    before = await first.get_job(job.id)
    await first.aclose()
    with pytest.raises(LedgerError, match="closed"):
        await first.get_job(job.id)

    second = SqliteJobLedger(path)
    try:
        assert await second.open() == []
        assert await second.get_job(job.id) == before
        assert await second.is_paused()
        assert [s.idem_key for s in await second.in_flight_steps()] == ["pod-r"]
        assert await second.requeue_running() == [job.id]
        assert await second.integrity_check() == "ok"
    finally:
        await second.aclose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_corrupt_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    garbage = b"this is not sqlite" + bytes(range(256)) * 40
    path.write_bytes(garbage)
    led = SqliteJobLedger(path)
    try:
        warnings = await led.open()
        assert len(warnings) == 1 and "moved aside" in warnings[0]
        backups = glob(tmp_path, "jobs.sqlite3.corrupt-*")
        assert len(backups) == 1 and backups[0].name in warnings[0]
        assert backups[0].read_bytes() == garbage
        job = await led.add_job(JobKind.GENERATE, {})
        assert (await led.get_job(job.id)) is not None
        assert await led.integrity_check() == "ok"
    finally:
        await led.aclose()


@pytest.mark.asyncio
async def test_newer_schema_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    conn.close()
    led = SqliteJobLedger(path)
    try:
        with pytest.raises(LedgerError) as info:
            await led.open()
        assert "newer POD Studio" in info.value.user_message
        assert not glob(tmp_path, "*.corrupt-*")
    finally:
        await led.aclose()


@pytest.mark.asyncio
async def test_locked_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    led = SqliteJobLedger(path, busy_timeout_ms=50)
    await led.open()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(LedgerLockedError) as info:
            await led.add_job(JobKind.GENERATE, {})
        assert "already running" in info.value.user_message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await led.add_job(JobKind.GENERATE, {})).state is JobStatus.QUEUED
    await led.aclose()


# --- crash simulation --------------------------------------------------------------------


def _crash_child(path: str, ready: Any, mode: str) -> None:
    """Runs in a child process that the test kills with SIGKILL."""

    async def committed() -> None:
        led = SqliteJobLedger(path)
        for i in range(5):
            await led.add_job(
                JobKind.PUBLISH,
                {"i": i},
                job_id=f"committed-{i}",
                steps={"a": f"pod-a{i}", "b": f"pod-b{i}", "c": f"pod-c{i}"},
            )
        if mode == "loop":
            ready.set()
            i = 0
            while True:  # killed somewhere in here, most likely mid-transaction
                i += 1
                await led.add_job(
                    JobKind.PUBLISH,
                    {"i": i},
                    job_id=f"loop-{i}",
                    steps={"a": f"pod-la{i}", "b": f"pod-lb{i}", "c": f"pod-lc{i}"},
                )
        await led.aclose()

    asyncio.run(committed())
    if mode == "open-transaction":
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO job(id, kind, state, payload, next_run_at, created_at, updated_at)"
            " VALUES ('half', 'publish', 'queued', '{}', 0, 0, 0)"
        )
        conn.execute(
            "INSERT INTO step(job_id, step, idem_key, state) VALUES ('half','a','pod-h','pending')"
        )
        ready.set()
        multiprocessing.Event().wait()  # never set: we die here, transaction open


@pytest.mark.parametrize("mode", ["open-transaction", "loop"])
@pytest.mark.asyncio
async def test_sigkill_mid_transaction_leaves_no_half_rows(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "jobs.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_crash_child, args=(str(path), ready, mode), daemon=True)
    proc.start()
    try:
        assert await asyncio.to_thread(ready.wait, 60), "child never got ready"
    finally:
        proc.kill()  # SIGKILL on POSIX
        await asyncio.to_thread(proc.join, 30)
    assert proc.exitcode is not None and proc.exitcode != 0

    led = SqliteJobLedger(path)
    try:
        assert await led.open() == []
        assert await led.integrity_check() == "ok"
        jobs = await led.list_jobs()
        ids = {j.id for j in jobs}
        assert {f"committed-{i}" for i in range(5)} <= ids
        assert "half" not in ids
        for job in jobs:  # every job is whole: all three steps or none of it
            assert [s.step for s in job.steps] == ["a", "b", "c"], job.id
        # and the database still takes writes
        await led.add_job(JobKind.GENERATE, {}, job_id="after-crash")
    finally:
        await led.aclose()


# --- model-based test ----------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Drives the ledger with random operations and compares it with a dict model."""

    MAX_ATTEMPTS = 2

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        self.loop = asyncio.new_event_loop()
        self.ledger = SqliteJobLedger(Path(self._dir.name) / "jobs.sqlite3")
        self.model: dict[str, tuple[JobStatus, int]] = {}
        self.order: list[str] = []
        self.paused = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.ledger.aclose())
        self.loop.close()
        self._dir.cleanup()

    def pick(self, i: int) -> str:
        return self.order[i % len(self.order)]

    def expect(self, job_id: str, target: JobStatus, coro_fn: Any, **changes: Any) -> None:
        state, attempts = self.model[job_id]
        if target in JOB_TRANSITIONS[state]:
            self.run(coro_fn())
            self.model[job_id] = (target, changes.get("attempts", attempts))
        else:
            with pytest.raises(IllegalTransitionError):
                self.run(coro_fn())

    @rule()
    def add(self) -> None:
        job = self.run(
            self.ledger.add_job(
                JobKind.PUBLISH, {}, max_attempts=self.MAX_ATTEMPTS, next_run_at=0.0
            )
        )
        self.model[job.id] = (JobStatus.QUEUED, 0)
        self.order.append(job.id)

    @rule()
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self.run(self.ledger.set_paused(self.paused))

    @rule()
    def claim(self) -> None:
        claimed = self.run(self.ledger.claim_ready(now=1.0, limit=1000))
        expected = set()
        if not self.paused:
            for jid, (state, attempts) in self.model.items():
                if state in (JobStatus.QUEUED, JobStatus.RETRY_WAIT):
                    expected.add(jid)
                    self.model[jid] = (JobStatus.RUNNING, attempts + 1)
        assert {j.id for j in claimed} == expected

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50))
    def retry(self, i: int) -> None:
        jid = self.pick(i)
        if jid not in self.model:
            return
        state, attempts = self.model[jid]
        target = JobStatus.DEAD if attempts >= self.MAX_ATTEMPTS else JobStatus.RETRY_WAIT
        self.expect(jid, target, lambda: self.ledger.mark_retry(jid, "e", ErrorKind.TRANSIENT, 0.0))

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50))
    def dead(self, i: int) -> None:
        jid = self.pick(i)
        if jid in self.model:
            self.expect(jid, JobStatus.DEAD, lambda: self.ledger.mark_dead(jid, "r"))

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50), partial=st.booleans())
    def succeed(self, i: int, partial: bool) -> None:
        jid = self.pick(i)
        if jid in self.model:
            target = JobStatus.PARTIALLY_PUBLISHED if partial else JobStatus.SUCCEEDED
            self.expect(jid, target, lambda: self.ledger.mark_succeeded(jid, partial=partial))

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50))
    def cancel(self, i: int) -> None:
        jid = self.pick(i)
        if jid in self.model:
            self.expect(jid, JobStatus.CANCELLED, lambda: self.ledger.mark_cancelled(jid))

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50))
    def manual_retry(self, i: int) -> None:
        jid = self.pick(i)
        if jid in self.model:
            self.expect(
                jid, JobStatus.QUEUED, lambda: self.ledger.manual_retry(jid, now=0.0), attempts=0
            )

    @precondition(lambda self: bool(self.order))
    @rule(i=st.integers(0, 50))
    def discard(self, i: int) -> None:
        jid = self.pick(i)
        if jid not in self.model:
            assert self.run(self.ledger.discard(jid)) is False
        elif self.model[jid][0] is JobStatus.RUNNING:
            with pytest.raises(LedgerError):
                self.run(self.ledger.discard(jid))
        else:
            assert self.run(self.ledger.discard(jid)) is True
            del self.model[jid]

    @rule()
    def requeue(self) -> None:
        ids = self.run(self.ledger.requeue_running())
        running = {j for j, (s, _) in self.model.items() if s is JobStatus.RUNNING}
        assert set(ids) == running
        for j in running:
            self.model[j] = (JobStatus.QUEUED, self.model[j][1])

    @invariant()
    def matches_model(self) -> None:
        jobs = self.run(self.ledger.list_jobs())
        assert {j.id: (j.state, j.attempts) for j in jobs} == self.model
        counts = self.run(self.ledger.counts())
        for status in JobStatus:
            assert counts[status] == sum(1 for s, _ in self.model.values() if s is status)


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
