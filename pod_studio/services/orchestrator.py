"""Services layer: the durable job orchestrator (generation and publishing over the job ledger).

Every job — a prompt to generate, a design × product × platform to publish — is a row in the
``JobLedger``; every side effect is preceded by a durable intent and followed by its result,
so a crash at any point resumes without losing or duplicating work. The ``Orchestrator`` is
the engine's one public face: it owns the running jobs and the drive loop (claim, start,
settle each outcome in the ledger) and composes one collaborator per concern, each with its
own state:

- Generation (``GenerationRun``, ``services/queue_generation.py``): the prompt id is
  recorded (step ``prompt-N``, key ``server#prompt_id``) BEFORE the POST. On resume the
  prompt is looked up on its server (``/history``, ``/queue``): finished → its images are
  downloaded; still queued → followed; vanished → resubmitted. Images are saved under a
  ``save`` step; an interrupted save is reconciled with the image store (images already
  stored for the job are not stored again).
- Publishing (``PublishRun``, ``services/queue_publish.py``): each step goes through a
  ``StepJournal``; a step found in flight is reconciled with the platform
  (``PublishExecutor.reconcile``, a lookup by idempotency key) before anything is sent again.
- Scheduling (``Scheduler``, ``services/scheduler.py``): each ComfyUI server gets a queue
  sized from measured times (at least 2 prompts); a job goes to the least busy eligible
  server (breaker closed, workflow preflight passed); when a server's breaker opens its jobs
  go back to the queue for another server; an open server is probed so it gets work again
  once it answers. Publish jobs run in parallel, bounded per platform.
- Events (``QueueReporter``, ``services/queue_events.py``): a ``QueueChanged`` per ledger
  change, publish job states, dead letters, finished batches.
- Failures: retryable → ``retry_wait`` with the injectable schedule (1 min, 5 min, 30 min,
  2 h); permanent or exhausted → ``dead`` (the dead-letter queue) with the attempt history.

Qt-free; events for every state change go to the ``EventSink``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pod_studio.domain.errors import (
    CircuitTrippedError,
    PodStudioError,
    ValidationError,
    is_retryable,
    user_message,
    wait_seconds,
)
from pod_studio.domain.events import EventSink, JobQueued
from pod_studio.domain.jobs import ErrorKind, JobKind, JobStatus, idempotency_key
from pod_studio.domain.ledger_port import JobLedger, JobNotRunningError, JobRecord, LedgerError
from pod_studio.domain.models import GeneratedImage, GenerationRequest, JobSpec, plan_jobs
from pod_studio.domain.orchestration import (
    DesignPublishState,
    GenerationPayload,
    JobMoved,
    PublishPayload,
    QueueChanged,
    QueueEntry,
    QueuePaused,
    QueueSnapshot,
    RunSummary,
    ServerStatus,
    publish_job_id,
)
from pod_studio.domain.ports import ImageGenerator, ImageStore
from pod_studio.domain.publishing import PublishExecutor, PublishTask
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.queue_events import QueueReporter
from pod_studio.services.queue_generation import GenerationRun
from pod_studio.services.queue_options import OrchestratorOptions
from pod_studio.services.queue_publish import PublishRun
from pod_studio.services.queue_views import attempt_history, queue_entry
from pod_studio.services.scheduler import BreakerLookup, Scheduler, ServerSlot

__all__ = ["Orchestrator", "OrchestratorOptions", "queue_entry"]

log = logging.getLogger(__name__)


@dataclass
class _Active:
    job_id: str
    kind: JobKind
    task: asyncio.Task[None] | None = None
    server: ServerSlot | None = None
    cancel_reason: str | None = None  # "cancel", "server", "move"; None = shutdown


class Orchestrator:
    """Drives the durable queue: dispatch, resume, retry, dead-letter, pause.

    The public face of the engine. It owns the running jobs (their tasks) and the drive loop,
    and composes the collaborators that do the rest: the ``Scheduler`` (server slots,
    capacity, picking, probing), the ``GenerationRun`` and the ``PublishRun`` (one job each
    time), and the ``QueueReporter`` (the queue's events)."""

    def __init__(
        self,
        ledger: JobLedger,
        generators: Sequence[ImageGenerator],
        store: ImageStore,
        template: WorkflowTemplate,
        sink: EventSink,
        *,
        publishers: Mapping[str, PublishExecutor] | None = None,
        breaker_state: BreakerLookup | None = None,
        clock: Callable[[], float] = time.time,
        options: OrchestratorOptions | None = None,
    ) -> None:
        self.options = options or OrchestratorOptions()
        if self.options.in_flight_per_server < 1:
            raise ValueError("in_flight_per_server must be at least 1")
        self._ledger = ledger
        self._sink = sink
        self._clock = clock
        self._active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._last_progress = 0.0
        self._driving = False
        self._scheduler = Scheduler(
            generators,
            template,
            options=self.options,
            clock=clock,
            poke=self._poke,
            breaker_state=breaker_state,
        )
        self._reporter = QueueReporter(ledger, sink, clock=clock, server_of=self._active_server)
        self._generation = GenerationRun(
            ledger,
            store,
            template,
            scheduler=self._scheduler,
            reporter=self._reporter,
            sink=sink,
            options=self.options,
        )
        self._publishing = PublishRun(
            ledger, reporter=self._reporter, sink=sink, options=self.options, publishers=publishers
        )

    # --- configuration ------------------------------------------------------------------------

    @property
    def template(self) -> WorkflowTemplate:
        return self._generation.template

    def set_template(self, template: WorkflowTemplate) -> None:
        self._generation.set_template(template)
        self._scheduler.set_template(template)
        self._poke()

    def set_generators(self, generators: Sequence[ImageGenerator]) -> None:
        """Switch servers; jobs running on a removed server go back to the queue."""
        for slot in self._scheduler.set_generators(generators):
            self._evict(slot, "move", "server removed from the settings")
        self._poke()

    def set_publisher(self, platform: str, executor: PublishExecutor) -> None:
        self._publishing.set_publisher(platform, executor)
        self._poke()

    # --- enqueueing ---------------------------------------------------------------------------

    def plan(self, request: GenerationRequest, *, batch_id: str | None = None) -> list[JobSpec]:
        """One job per prompt × variation; a fixed seed gives seed, seed+1, ... per prompt."""
        return plan_jobs(request, batch_id=batch_id)

    async def enqueue_generation(
        self, work: GenerationRequest | Sequence[JobSpec], *, batch_id: str | None = None
    ) -> list[str]:
        """Record generation jobs durably (a job id already in the ledger is kept as it is)."""
        specs = self.plan(work, batch_id=batch_id) if isinstance(work, GenerationRequest) else work
        for spec in specs:  # a workflow that cannot take these inputs fails up front
            self._generation.check(spec)
        ids: list[str] = []
        for spec in specs:
            ids.append(spec.job_id)
            if await self._ledger.get_job(spec.job_id) is not None:
                continue
            self._reporter.track(spec.batch_id, spec.job_id)
            payload = GenerationPayload(spec=spec).model_dump(mode="json")
            rec = await self._ledger.add_job(
                JobKind.GENERATE,
                payload,
                job_id=spec.job_id,
                max_attempts=self.options.max_attempts,
            )
            self._sink(
                JobQueued(
                    job_id=spec.job_id, batch_id=spec.batch_id, prompt=spec.prompt, seed=spec.seed
                )
            )
            self._reporter.changed(rec)
        self._poke()
        return ids

    async def enqueue_publish(
        self,
        designs: Sequence[GeneratedImage],
        templates: Sequence[str],
        platforms: Sequence[str],
        *,
        draft: bool = True,
    ) -> list[str]:
        """One job per design × product template × platform, keyed by its idempotency key;
        a task that already has a job keeps it (never a second listing)."""
        ids: list[str] = []
        for design in designs:
            for template_name in templates:
                for platform in platforms:
                    key = idempotency_key(design.sha256, template_name, platform)
                    job_id = publish_job_id(key)
                    ids.append(job_id)
                    if await self._ledger.get_job(job_id) is not None:
                        continue
                    task = PublishTask(
                        job_id=job_id,
                        design_id=design.image_id,
                        design_path=design.print_path,  # the upscaled print file, if any
                        design_sha256=design.sha256,
                        prompt=design.prompt,
                        template_name=template_name,
                        platform=platform,
                        idem_key=key,
                        draft=draft,
                        listing=design.listing,
                    )
                    rec = await self._ledger.add_job(
                        JobKind.PUBLISH,
                        PublishPayload(task=task).model_dump(mode="json"),
                        job_id=job_id,
                        max_attempts=self.options.max_attempts,
                    )
                    self._reporter.changed(rec)
                    self._reporter.publish(task, "queued")
        self._poke()
        return ids

    # --- control ------------------------------------------------------------------------------

    async def pause(self) -> None:
        """Stop claiming new work (running jobs finish). Durable across restarts."""
        await self._ledger.set_paused(True)
        self._sink(QueuePaused(paused=True))

    async def resume(self) -> None:
        await self._ledger.set_paused(False)
        self._sink(QueuePaused(paused=False))
        self._poke()

    async def is_paused(self) -> bool:
        return await self._ledger.is_paused()

    async def retry_now(self, job_id: str) -> JobRecord:
        """Requeue a dead, cancelled or waiting job now (attempts reset; done steps stay done)."""
        rec = await self._ledger.manual_retry(job_id, now=self._clock())
        self._reporter.changed(rec)
        self._poke()
        return rec

    async def retry_all_dead(self) -> list[str]:
        ids = []
        for job in await self._ledger.list_jobs([JobStatus.DEAD]):
            await self.retry_now(job.id)
            ids.append(job.id)
        return ids

    async def discard(self, job_id: str) -> bool:
        """Remove a job that is not running (with its steps and history)."""
        if job_id in self._active:
            raise LedgerError(
                f"job {job_id} is running; cancel it first",
                user_message="Cancel the job before removing it.",
            )
        removed = await self._ledger.discard(job_id)
        if removed:
            self._sink(QueueChanged(job_id=job_id, kind="", state="discarded"))
        return removed

    async def cancel(self, job_id: str) -> bool:
        active = self._active.get(job_id)
        if active is not None and active.task is not None and not active.task.done():
            active.cancel_reason = "cancel"
            active.task.cancel()
            return True
        job = await self._ledger.get_job(job_id)
        if job is None or job.state not in (JobStatus.QUEUED, JobStatus.RETRY_WAIT):
            return False
        rec = await self._ledger.mark_cancelled(job_id)
        self._reporter.changed(rec)
        return True

    async def move_to_server(self, job_id: str, url: str) -> bool:
        """Run a generation job on ``url`` (from now on, while that server is eligible)."""
        self._scheduler.pin(job_id, url)
        active = self._active.get(job_id)
        if (
            active is not None
            and active.server is not None
            and active.server.url != url
            and active.task is not None
            and not active.task.done()
        ):
            active.cancel_reason = "move"
            active.task.cancel()
        self._poke()
        return True

    # --- start-up recovery --------------------------------------------------------------------

    async def recover(self) -> dict[str, int]:
        """Requeue jobs a crash left running; reconcile publish steps left in flight with their
        platform. Prompts left in flight are looked up on their server when their job runs."""
        requeued = await self._ledger.requeue_running()
        found = missing = 0
        for step in await self._ledger.in_flight_steps():
            job = await self._ledger.get_job(step.job_id)
            if job is None or job.kind is not JobKind.PUBLISH:
                continue
            try:
                landed = await self._publishing.reconcile(job)
            except PodStudioError as exc:
                log.warning("could not reconcile job %s yet: %s", job.id, exc)
                continue
            found += landed[0]
            missing += landed[1]
        await self._reporter.track_unfinished()
        for job_id in requeued:
            rec = await self._ledger.get_job(job_id)
            if rec is not None:
                self._reporter.changed(rec)
        self._poke()
        return {"requeued": len(requeued), "landed": found, "not_landed": missing}

    # --- running ------------------------------------------------------------------------------

    async def run_until_idle(self, *, horizon: float | None = None) -> RunSummary:
        """Headless: process everything due (waiting for retries due within ``horizon``
        seconds), then return what is left."""
        started = self._clock()
        await self._drive(
            until_idle=True, horizon=self.options.idle_horizon if horizon is None else horizon
        )
        return await self.summary(seconds=self._clock() - started)

    async def run_until_done(
        self, job_ids: Sequence[str], *, horizon: float | None = None
    ) -> RunSummary:
        """Headless: run the queue until each of ``job_ids`` is done, dead or cancelled, or
        waits for a retry due later than ``horizon`` seconds (other due jobs run meanwhile:
        it is the same queue)."""
        started = self._clock()
        await self._drive(
            until_idle=True,
            horizon=self.options.idle_horizon if horizon is None else horizon,
            targets=set(job_ids),
        )
        return await self.summary(seconds=self._clock() - started)

    async def run_forever(self) -> None:
        """The app: keep the queue moving until cancelled."""
        await self._drive(until_idle=False, horizon=0.0)

    async def aclose(self) -> None:
        """Stop every running job (they stay ``running`` in the ledger: the next start
        resumes them) and the scheduler's probes."""
        tasks = [a.task for a in self._active.values() if a.task is not None]
        tasks += self._scheduler.helper_tasks()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def summary(self, *, seconds: float = 0.0) -> RunSummary:
        counts = await self._ledger.counts()
        dead = {j.id: j.last_error or "" for j in await self._ledger.list_jobs([JobStatus.DEAD])}
        return RunSummary(
            counts={k.value: v for k, v in counts.items()},
            dead=dead,
            waiting=counts[JobStatus.RETRY_WAIT],
            queued=counts[JobStatus.QUEUED],
            paused=await self._ledger.is_paused(),
            seconds=seconds,
        )

    def _poke(self) -> None:
        self._wake.set()

    async def _drive(
        self, *, until_idle: bool, horizon: float, targets: set[str] | None = None
    ) -> None:
        if self._driving:
            raise RuntimeError("the orchestrator is already running")
        self._driving = True
        self._last_progress = self._clock()
        try:
            while True:
                self._wake.clear()
                for slot in self._scheduler.watch():
                    self._evict(slot, "server", f"the circuit breaker of {slot.url} is open")
                if await self._claim_and_start():
                    self._last_progress = self._clock()
                timeout = min(self.options.tick, self._scheduler.next_stuck_in())
                if not until_idle and not self._active and self._scheduler.settled():
                    # idle: sleep until the next job is due or something pokes the queue
                    # (enqueue, retry, settings), not a scheduling pass every tick
                    timeout = await self._idle_timeout()
                if until_idle and not self._active:
                    wait = await self._idle_wait(horizon, targets)
                    if wait is None:
                        return
                    timeout = min(timeout, wait)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the wait finishes, and the loop would go on after aclose().
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, timeout)):
                        await self._wake.wait()
        finally:
            self._driving = False
            if not until_idle:
                await self.aclose()

    async def _idle_wait(self, horizon: float, targets: set[str] | None = None) -> float | None:
        """None when the headless run should end, else how long to wait."""
        counts = await self._ledger.counts()
        if counts[JobStatus.QUEUED] + counts[JobStatus.RETRY_WAIT] == 0:
            return None
        if await self._ledger.is_paused():
            return None
        now = self._clock()
        pending = await self._ledger.list_jobs([JobStatus.QUEUED, JobStatus.RETRY_WAIT])
        if targets is not None:
            pending = [j for j in pending if j.id in targets]
        # a listing for a platform that is not set up waits (uncharged) until it is: that
        # does not happen during a headless run, so the run does not wait for it
        pending = [
            j
            for j in pending
            if (j.kind is JobKind.GENERATE and self._scheduler)
            or (j.kind is JobKind.PUBLISH and self._publishing.can_run(j))
        ]
        if not pending:
            return None
        next_due = min(j.next_run_at for j in pending)
        if next_due <= now:
            # due but not claimable: no eligible server (yet)
            if now - self._last_progress > self.options.stall_timeout:
                log.warning("nothing could run for %.0f s; stopping", now - self._last_progress)
                return None
            return self.options.tick
        if next_due - now > horizon:
            return None
        self._last_progress = max(self._last_progress, now)
        return next_due - now

    async def _idle_timeout(self) -> float:
        due = await self._ledger.next_due()
        if due is None:
            return self.options.idle_wake
        return min(self.options.idle_wake, max(self.options.tick, due - self._clock()))

    def _evict(self, server: ServerSlot, reason: str, detail: str) -> None:
        """Send the jobs running on ``server`` back to the queue (for another server)."""
        for job_id in list(server.running):
            active = self._active.get(job_id)
            if active is None or active.task is None or active.task.done():
                continue
            if active.cancel_reason is None:
                active.cancel_reason = reason
                log.info("moving job %s off %s: %s", job_id, server.url, detail)
                self._sink(JobMoved(job_id=job_id, from_server=server.url, reason=detail))
                active.task.cancel()

    def servers(self) -> list[ServerStatus]:
        return self._scheduler.statuses()

    # --- claiming -----------------------------------------------------------------------------

    async def _claim_and_start(self) -> int:
        started = 0
        now = self._clock()
        capacity = self._scheduler.capacity()
        if capacity > 0:
            jobs = await self._ledger.claim_ready(
                now,
                capacity,
                owner=self.options.owner,
                lease_seconds=self.options.lease_seconds,
                kind=JobKind.GENERATE,
            )
            for job in jobs:
                self._reporter.changed(job)
                server = self._scheduler.pick(job)
                if server is None:
                    rec = await self._ledger.mark_waiting(
                        job.id, "waiting for a ComfyUI server", now + self.options.tick
                    )
                    self._reporter.changed(rec)
                    continue
                self._start(job, server)
                started += 1
        busy = sum(1 for a in self._active.values() if a.kind is JobKind.PUBLISH)
        free = self.options.publish_concurrency - busy
        if free > 0 and self._publishing:
            jobs = await self._ledger.claim_ready(
                now,
                free,
                owner=self.options.owner,
                lease_seconds=self.options.lease_seconds,
                kind=JobKind.PUBLISH,
            )
            for job in jobs:
                self._reporter.changed(job)
                self._start(job, None)
                started += 1
        return started

    def _start(self, job: JobRecord, server: ServerSlot | None) -> None:
        active = _Active(job.id, job.kind, server=server)
        self._active[job.id] = active
        if server is not None:
            self._scheduler.take(server, job.id)
        coro = self._run_job(job, active)
        active.task = asyncio.create_task(coro, name=f"{job.kind.value}-{job.id[:12]}")

    async def _run_job(self, job: JobRecord, active: _Active) -> None:
        try:
            if job.kind is JobKind.GENERATE:
                assert active.server is not None
                await self._generation.run(job, active.server)
            else:
                await self._publishing.run(job)
        except asyncio.CancelledError:
            reason = active.cancel_reason
            if reason is None:
                raise  # shutdown: the job stays running in the ledger and resumes next start
            await self._settle(self._after_cancel(job, active, reason), job.id)
        except JobNotRunningError:
            log.info("job %s is no longer running here", job.id)
        except LedgerError:
            # the outcome could not be recorded: the job stays running and resumes next start
            log.exception("job %s: the job database failed", job.id)
        except PodStudioError as exc:
            await self._settle(self._failed(job, exc), job.id)
        except Exception as exc:
            log.exception("job %s crashed", job.id)
            await self._settle(self._failed(job, exc), job.id)
        finally:
            if active.server is not None:
                self._scheduler.release(active.server, job.id)
            if self._active.get(job.id) is active:
                del self._active[job.id]
            self._last_progress = self._clock()
            self._poke()

    async def _settle(self, outcome: Any, job_id: str) -> None:
        """Record a job's outcome; if even that fails, the job resumes at the next start."""
        try:
            await outcome
        except (PodStudioError, ValueError):
            log.exception("job %s: its outcome could not be recorded", job_id)

    async def _after_cancel(self, job: JobRecord, active: _Active, reason: str) -> None:
        if reason == "cancel":
            rec = await self._ledger.mark_cancelled(job.id)
            self._reporter.changed(rec)
            if job.kind is JobKind.GENERATE:
                self._generation.cancelled(job)
            return
        where = active.server.url if active.server else ""
        why = "server unavailable" if reason == "server" else "moved by the seller"
        rec = await self._ledger.mark_waiting(job.id, f"moved off {where}: {why}", self._clock())
        self._reporter.changed(rec)

    async def _failed(self, job: JobRecord, exc: BaseException) -> None:
        reason = user_message(exc)
        if isinstance(exc, ValidationError) and exc.details:
            missing = [d for d in exc.details[:5] if d not in reason]
            if missing:  # a message that already names its details is not told twice
                reason = reason.rstrip(".") + ": " + "; ".join(missing)
        now = self._clock()
        wait = wait_seconds(exc)
        if wait is not None:
            # not the job's fault: another server (generation) or after the breaker's reset
            # timeout / once the service is set up (publishing); no attempt is charged
            delay = 0.0 if job.kind is JobKind.GENERATE else max(0.0, wait)
            rec = await self._ledger.mark_waiting(job.id, reason, now + delay)
        elif is_retryable(exc):
            exhausted = job.attempts >= job.max_attempts  # the ledger dead-letters it
            delay = 0.0 if exhausted else self.options.retry_delay(max(1, job.attempts))
            if isinstance(exc, CircuitTrippedError):
                # charged, then due as soon as a server takes it (generation: another one,
                # or this one once its breaker lets a probe through)
                delay = 0.0 if job.kind is JobKind.GENERATE else exc.retry_in
            rec = await self._ledger.mark_retry(job.id, reason, ErrorKind.TRANSIENT, now + delay)
        else:
            rec = await self._ledger.mark_dead(job.id, reason, ErrorKind.PERMANENT)
        self._reporter.changed(rec)
        if job.kind is JobKind.GENERATE:
            self._generation.failed(job, rec, reason, exc)
        else:
            await self._publishing.failed(job, rec, reason)
        if rec.state is JobStatus.DEAD:
            await self._reporter.dead(rec)

    # --- views --------------------------------------------------------------------------------

    async def design_states(self) -> list[DesignPublishState]:
        """Each design's publishing state (published, partially published, failed, ...)."""
        return await self._publishing.design_states()

    async def dead_letters(self) -> list[tuple[QueueEntry, list[str]]]:
        """Each dead job with its full attempt history (oldest first)."""
        out = []
        for job in await self._ledger.list_jobs([JobStatus.DEAD]):
            history = attempt_history(await self._ledger.attempts(job.id))
            out.append((self._entry(job), history))
        return out

    def _entry(self, job: JobRecord) -> QueueEntry:
        return queue_entry(job, self._active_server(job.id))

    def _active_server(self, job_id: str) -> str:
        active = self._active.get(job_id)
        return active.server.url if active is not None and active.server is not None else ""

    async def snapshot(self) -> QueueSnapshot:
        """The queue view: every job, counts, servers, paused flag."""
        jobs = await self._ledger.list_jobs()
        counts = await self._ledger.counts()
        return QueueSnapshot(
            paused=await self._ledger.is_paused(),
            entries=[self._entry(j) for j in jobs],
            counts={k.value: v for k, v in counts.items()},
            servers=self.servers(),
        )
