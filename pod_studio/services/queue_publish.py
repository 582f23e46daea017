"""Services layer: running one publish job of the durable queue.

- ``LedgerJournal``: the ``StepJournal`` the ``PublishExecutor`` (``PublishService``, the one
  publish path) writes its intents and results through: one publish job, backed by the job
  ledger, with an event per step.
- ``PublishRun``: the publish jobs: a job runs its platform's executor (bounded per
  platform), steps a crash left in flight are reconciled with the platform before anything
  is sent again, and the design's overall state (published, partially published, failed) is
  announced when its last listing ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pod_studio.domain.errors import ServiceUnavailableError
from pod_studio.domain.events import EventSink, PublishDone, PublishStepChanged
from pod_studio.domain.jobs import JobKind, JobStatus, StepStatus
from pod_studio.domain.ledger_port import JobLedger, JobRecord
from pod_studio.domain.orchestration import (
    DesignPublishChanged,
    DesignPublishState,
    PublishPayload,
)
from pod_studio.domain.publishing import PublishExecutor, PublishTask
from pod_studio.services.queue_events import QueueReporter
from pod_studio.services.queue_options import OrchestratorOptions
from pod_studio.services.queue_views import design_state

log = logging.getLogger(__name__)


def serves(executor: PublishExecutor, platform: str) -> bool:
    """Whether ``executor`` can publish to ``platform`` now. The ``PublishService`` is the
    executor of every platform and keeps the usable ones in ``marketplaces`` (Printify leaves
    it while no token is set); an executor without that map serves its platform."""
    markets = getattr(executor, "marketplaces", None)
    return markets is None or platform in markets


def step_key(task: PublishTask, step: str) -> str:
    return f"{task.idem_key}:{step}"


class LedgerJournal:
    """A ``StepJournal`` bound to one publish job."""

    def __init__(
        self, ledger: JobLedger, job: JobRecord, task: PublishTask, sink: EventSink
    ) -> None:
        self._ledger = ledger
        self._job_id = job.id
        self._task = task
        self._sink = sink
        self._states: dict[str, tuple[StepStatus, str | None]] = {
            s.step: (s.state, s.remote_ref) for s in job.steps
        }

    def completed(self, step: str) -> str | None:
        state, ref = self._states.get(step, (StepStatus.PENDING, None))
        if state is StepStatus.DONE:
            return ref if ref is not None else ""
        return None

    def is_done(self, step: str) -> bool:
        return self._states.get(step, (StepStatus.PENDING, None))[0] is StepStatus.DONE

    async def intent(self, step: str) -> None:
        state, _ref = self._states.get(step, (StepStatus.PENDING, None))
        if state is StepStatus.IN_FLIGHT:
            await self._ledger.reset_step(self._job_id, step)
        rec = await self._ledger.record_intent(self._job_id, step, step_key(self._task, step))
        self._states[step] = (rec.state, rec.remote_ref)
        self._emit(step, "in_flight")

    async def done(self, step: str, remote_ref: str | None = None) -> None:
        rec = await self._ledger.record_result(self._job_id, step, remote_ref)
        self._states[step] = (rec.state, rec.remote_ref)
        # the PublishService announces "<step>:done" itself: one event per fact

    def _emit(self, step: str, state: str, remote_id: str = "") -> None:
        self._sink(
            PublishStepChanged(
                design_id=self._task.design_id,
                product=self._task.template_name,
                platform=self._task.platform,
                state=f"{step}:{state}",
                remote_id=remote_id,
            )
        )


class PublishRun:
    """Runs publish jobs through each platform's executor, bounded per platform."""

    def __init__(
        self,
        ledger: JobLedger,
        *,
        reporter: QueueReporter,
        sink: EventSink,
        options: OrchestratorOptions,
        publishers: Mapping[str, PublishExecutor] | None = None,
    ) -> None:
        self._ledger = ledger
        self._reporter = reporter
        self._sink = sink
        self._options = options
        self._publishers: dict[str, PublishExecutor] = dict(publishers or {})
        self._platform_slots: dict[str, asyncio.Semaphore] = {}

    def set_publisher(self, platform: str, executor: PublishExecutor) -> None:
        self._publishers[platform] = executor

    def __bool__(self) -> bool:
        """Whether any platform has an executor."""
        return bool(self._publishers)

    def can_run(self, job: JobRecord) -> bool:
        """Whether ``job``'s platform can take it now (a platform that is not set up makes it
        wait, uncharged, until it is)."""
        try:
            platform = PublishPayload.model_validate(job.payload).task.platform
        except ValueError:
            return bool(self._publishers)  # claimed, it fails with its own reason
        executor = self._publishers.get(platform)
        return executor is not None and serves(executor, platform)

    async def run(self, job: JobRecord) -> None:
        task = PublishPayload.model_validate(job.payload).task
        executor = self._publishers.get(task.platform)
        if executor is None or not serves(executor, task.platform):
            raise ServiceUnavailableError(
                f"no publisher for platform {task.platform!r}",
                service=task.platform,
                user_message=f"{task.platform.capitalize()} is not set up yet; the listing "
                "waits until it is (Settings).",
            )
        slots = self._platform_slots.get(task.platform)
        if slots is None:
            slots = asyncio.Semaphore(self._options.per_platform_concurrency)
            self._platform_slots[task.platform] = slots
        async with slots:
            self._reporter.publish(task, "running")
            if any(s.state is StepStatus.IN_FLIGHT for s in job.steps):
                await self.reconcile(job)
                fresh = await self._ledger.get_job(job.id)
                job = fresh if fresh is not None else job
            journal = LedgerJournal(self._ledger, job, task, self._sink)
            listing = await executor.execute(task, journal)
        rec = await self._ledger.mark_succeeded(job.id)
        self._reporter.changed(rec)
        self._reporter.publish(task, rec.state.value, remote_id=listing.remote_id)
        self._sink(
            PublishDone(
                design_id=task.design_id,
                platform=task.platform,
                ok=True,
                detail=listing.url or listing.remote_id,
            )
        )
        await self._design_check(task.design_id)

    async def failed(self, job: JobRecord, rec: JobRecord, reason: str) -> None:
        """Announce a failed attempt (``rec``: the job as the ledger left it)."""
        task = PublishPayload.model_validate(job.payload).task
        self._reporter.publish(task, rec.state.value, detail=reason)
        if rec.state is JobStatus.DEAD:
            self._sink(
                PublishDone(
                    design_id=task.design_id, platform=task.platform, ok=False, detail=reason
                )
            )
            await self._design_check(task.design_id)

    async def design_states(self) -> list[DesignPublishState]:
        by_design: dict[str, list[JobRecord]] = {}
        for job in await self._ledger.list_jobs(kind=JobKind.PUBLISH):
            task = PublishPayload.model_validate(job.payload).task
            by_design.setdefault(task.design_id, []).append(job)
        return [design_state(d, jobs) for d, jobs in by_design.items()]

    async def _design_check(self, design_id: str) -> None:
        jobs = [
            j
            for j in await self._ledger.list_jobs(kind=JobKind.PUBLISH)
            if PublishPayload.model_validate(j.payload).task.design_id == design_id
        ]
        state = design_state(design_id, jobs)
        if state.state != "in progress":
            self._sink(
                DesignPublishChanged(design_id=design_id, state=state.state, reasons=state.reasons)
            )

    async def reconcile(self, job: JobRecord) -> tuple[int, int]:
        """Settle the steps a crash left in flight with the platform: (landed, not landed)."""
        task = PublishPayload.model_validate(job.payload).task
        executor = self._publishers.get(task.platform)
        found = missing = 0
        for step in job.steps:
            if step.state is not StepStatus.IN_FLIGHT:
                continue
            ref: str | None = None
            if executor is None or not serves(executor, task.platform):
                continue  # nothing can tell yet whether it landed: ask once it is set up
            if self._options.reconcile:
                ref = await executor.reconcile(task, step.step)
            if ref is not None:
                await self._ledger.record_result(job.id, step.step, ref)
                found += 1
            else:
                await self._ledger.reset_step(job.id, step.step)
                missing += 1
        return found, missing
