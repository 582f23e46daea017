"""Services layer: GenerationService — turns a GenerationRequest into images on ComfyUI servers.

It plans one job per prompt × variation (each with its own seed), keeps every server's queue
fed with a small number of prompts in flight (so the GPU never waits for us, and is never
flooded), follows each prompt through the ``ImageGenerator`` port, stores the images through
the ``ImageStore`` port and pushes events for every change. Qt-free: the GUI and the CLI
share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pod_studio.domain.errors import (
    CircuitOpenError,
    ExecutionError,
    JobInterruptedError,
    PodStudioError,
    ValidationError,
    is_retryable,
    user_message,
)
from pod_studio.domain.events import (
    BatchFinished,
    EventSink,
    ImageReady,
    JobCancelled,
    JobFailed,
    JobNodeExecuting,
    JobProgress,
    JobQueued,
    JobResubmitted,
    JobStateChanged,
    PreviewFrame,
)
from pod_studio.domain.models import (
    GeneratedImage,
    GenerationRequest,
    JobSpec,
    JobState,
    plan_jobs,
    random_seed,
)
from pod_studio.domain.ports import ImageGenerator, ImageStore, RunUpdate
from pod_studio.domain.workflow import WorkflowTemplate

log = logging.getLogger(__name__)

SeedSource = Callable[[], int]

# How often a job may wait for an open circuit breaker before it fails.
MAX_BREAKER_WAITS = 20


@dataclass
class BatchResult:
    batch_id: str
    images: list[GeneratedImage] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # job_id -> reason
    cancelled: list[str] = field(default_factory=list)
    jobs: list[JobSpec] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.cancelled


@dataclass
class _JobRun:
    job: JobSpec
    attempts: int = 0
    state: JobState = JobState.QUEUED
    task: asyncio.Task[list[GeneratedImage]] | None = None
    cancel_requested: bool = False
    breaker_waits: int = 0
    retry_after: float = 0.0


class GenerationService:
    """Runs generation batches across one or more ComfyUI servers."""

    def __init__(
        self,
        generators: Sequence[ImageGenerator],
        store: ImageStore,
        template: WorkflowTemplate,
        sink: EventSink,
        *,
        in_flight_per_server: int = 2,
        max_attempts: int = 3,
        retry_delay: float = 1.0,
        seed_source: SeedSource = random_seed,
        filename_prefix: str = "pod_studio/img",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not generators:
            raise ValueError("at least one ComfyUI server is needed")
        if in_flight_per_server < 1:
            raise ValueError("in_flight_per_server must be at least 1")
        self._generators = list(generators)
        self._store = store
        self._template = template
        self._sink = sink
        self._in_flight = in_flight_per_server
        self._max_attempts = max(1, max_attempts)
        self._retry_delay = retry_delay
        self._seed_source = seed_source
        self._prefix = filename_prefix
        self._clock = clock
        self._runs: dict[str, _JobRun] = {}

    # -- configuration --------------------------------------------------------------------

    @property
    def template(self) -> WorkflowTemplate:
        return self._template

    def set_template(self, template: WorkflowTemplate) -> None:
        self._template = template

    @property
    def generators(self) -> list[ImageGenerator]:
        return list(self._generators)

    def set_generators(self, generators: Sequence[ImageGenerator]) -> None:
        if not generators:
            raise ValueError("at least one ComfyUI server is needed")
        self._generators = list(generators)

    # -- planning -------------------------------------------------------------------------

    def plan(self, request: GenerationRequest, *, batch_id: str | None = None) -> list[JobSpec]:
        """One job per prompt × variation; a fixed seed gives seed, seed+1, ... per prompt."""
        return plan_jobs(request, batch_id=batch_id, seed_source=self._seed_source)

    async def preflight(self) -> list[str]:
        """Problems that would make every job fail on the first server (missing nodes/models)."""
        info = await self._generators[0].object_info()
        return self._template.preflight(info)

    # -- running --------------------------------------------------------------------------

    async def run_batch(
        self, request: GenerationRequest, *, batch_id: str | None = None
    ) -> BatchResult:
        jobs = self.plan(request, batch_id=batch_id)
        return await self.run_jobs(jobs)

    async def run_jobs(self, jobs: Sequence[JobSpec]) -> BatchResult:
        """Run ``jobs`` to the end (done, failed or cancelled). Never raises for a job's error."""
        batch_id = jobs[0].batch_id if jobs else uuid.uuid4().hex[:12]
        result = BatchResult(batch_id=batch_id, jobs=list(jobs))
        if not jobs:
            return result
        # Build every graph first: a workflow that cannot take these inputs fails the batch
        # up front instead of job by job.
        for job in jobs:
            self._template.build(job, filename_prefix=self._prefix)
        started = self._clock()
        queue: asyncio.Queue[_JobRun] = asyncio.Queue()
        for job in jobs:
            run = _JobRun(job)
            self._runs[job.job_id] = run
            self._sink(
                JobQueued(job_id=job.job_id, batch_id=batch_id, prompt=job.prompt, seed=job.seed)
            )
            queue.put_nowait(run)
        remaining = len(jobs)
        all_done = asyncio.Event()

        def finished() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                all_done.set()

        async def worker(gen: ImageGenerator) -> None:
            while True:
                run = await queue.get()
                if run.cancel_requested:
                    self._finish_cancelled(run, result)
                    finished()
                    continue
                outcome = await self._attempt(gen, run, result)
                if outcome == "retry":
                    queue.put_nowait(run)
                    # A failing server should not drain the queue: this worker waits (for the
                    # breaker's probe time when it is open) while the other servers go on.
                    await asyncio.sleep(max(self._retry_delay, run.retry_after))
                else:
                    finished()

        workers = [
            asyncio.create_task(worker(gen), name=f"gen-worker-{i}-{k}")
            for i, gen in enumerate(self._generators)
            for k in range(self._in_flight)
        ]
        try:
            await all_done.wait()
        finally:
            for w in workers:
                w.cancel()
            for w in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
            for job in jobs:
                self._runs.pop(job.job_id, None)
        result.seconds = self._clock() - started
        self._sink(
            BatchFinished(
                batch_id=batch_id,
                succeeded=len(jobs) - len(result.failures) - len(result.cancelled),
                failed=len(result.failures),
                cancelled=len(result.cancelled),
                seconds=result.seconds,
            )
        )
        return result

    async def _attempt(self, gen: ImageGenerator, run: _JobRun, result: BatchResult) -> str:
        job = run.job
        run.attempts += 1
        run.state = JobState.RUNNING
        task = asyncio.create_task(self._run_one(gen, job), name=f"job-{job.job_id[:8]}")
        run.task = task
        try:
            images = await task
        except asyncio.CancelledError:
            if run.cancel_requested and not _current_task_cancelling():
                self._finish_cancelled(run, result)
                return "done"
            raise
        except PodStudioError as exc:
            run.task = None
            if isinstance(exc, JobInterruptedError) and run.cancel_requested:
                self._finish_cancelled(run, result)
                return "done"
            if isinstance(exc, CircuitOpenError) and run.breaker_waits < MAX_BREAKER_WAITS:
                # Not the job's fault: wait for the breaker's probe, without using an attempt.
                run.attempts -= 1
                run.breaker_waits += 1
                run.retry_after = exc.retry_in
                run.state = JobState.QUEUED
                self._sink(
                    JobStateChanged(
                        job_id=job.job_id, state=JobState.QUEUED, detail=exc.user_message
                    )
                )
                return "retry"
            run.retry_after = 0.0
            if is_retryable(exc) and run.attempts < self._max_attempts:
                log.info("job %s attempt %d failed (%s); will retry", job.job_id, run.attempts, exc)
                run.state = JobState.QUEUED
                self._sink(
                    JobStateChanged(
                        job_id=job.job_id,
                        state=JobState.QUEUED,
                        detail=f"retrying: {exc.user_message}",
                    )
                )
                return "retry"
            self._fail(run, result, exc)
            return "done"
        except Exception as exc:
            log.exception("job %s crashed", job.job_id)
            self._fail(run, result, exc)
            return "done"
        run.task = None
        run.state = JobState.DONE
        result.images.extend(images)
        self._sink(JobStateChanged(job_id=job.job_id, state=JobState.DONE, server=gen.url))
        return "done"

    async def _run_one(self, gen: ImageGenerator, job: JobSpec) -> list[GeneratedImage]:
        graph = self._template.build(job, filename_prefix=self._prefix)
        prompt_id = str(uuid.uuid4())
        current = {"prompt_id": prompt_id}
        node_classes = {nid: str(n.get("class_type", "")) for nid, n in graph.items()}
        self._sink(
            JobStateChanged(
                job_id=job.job_id, state=JobState.RUNNING, server=gen.url, prompt_id=prompt_id
            )
        )

        def on_update(u: RunUpdate) -> None:
            if u.kind == "progress":
                self._sink(
                    JobProgress(
                        job_id=job.job_id,
                        value=u.value,
                        max=u.max,
                        node=u.node,
                        node_class=u.node_class or node_classes.get(u.node, ""),
                    )
                )
            elif u.kind == "executing":
                self._sink(
                    JobNodeExecuting(
                        job_id=job.job_id,
                        node=u.node,
                        node_class=u.node_class or node_classes.get(u.node, ""),
                    )
                )
            elif u.kind == "preview":
                self._sink(PreviewFrame(job_id=job.job_id, mime=u.mime, data=u.data))
            elif u.kind == "resubmitted":
                self._sink(
                    JobResubmitted(
                        job_id=job.job_id,
                        old_prompt_id=current["prompt_id"],
                        new_prompt_id=u.prompt_id,
                        server=gen.url,
                        reason=u.detail or "server lost the prompt",
                    )
                )
                current["prompt_id"] = u.prompt_id

        res = await gen.run(graph, prompt_id=prompt_id, on_update=on_update)
        if not res.images:
            raise ExecutionError(
                node_id="-",
                node_type="(outputs)",
                exception_message="the workflow finished without any image; "
                "does it end in a SaveImage node?",
            )
        saved: list[GeneratedImage] = []
        for ref, data in res.images:
            image = await self._store.save(
                job, data, ref=ref, server=res.server, prompt_id=res.prompt_id, seconds=res.seconds
            )
            saved.append(image)
            self._sink(ImageReady(job_id=job.job_id, image=image))
        return saved

    def _fail(self, run: _JobRun, result: BatchResult, exc: BaseException) -> None:
        run.state = JobState.FAILED
        reason = user_message(exc)
        if isinstance(exc, ValidationError) and exc.details:
            reason = reason + ": " + "; ".join(exc.details[:5])
        result.failures[run.job.job_id] = reason
        kind = exc.kind if isinstance(exc, PodStudioError) else type(exc).__name__
        self._sink(
            JobFailed(
                job_id=run.job.job_id, reason=reason, error_kind=kind, retryable=is_retryable(exc)
            )
        )
        self._sink(JobStateChanged(job_id=run.job.job_id, state=JobState.FAILED, detail=reason))

    def _finish_cancelled(self, run: _JobRun, result: BatchResult) -> None:
        run.state = JobState.CANCELLED
        result.cancelled.append(run.job.job_id)
        self._sink(JobCancelled(job_id=run.job.job_id))
        self._sink(JobStateChanged(job_id=run.job.job_id, state=JobState.CANCELLED))

    # -- control --------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        """Cancel one job: a queued one is skipped, a running one is removed or interrupted."""
        run = self._runs.get(job_id)
        if run is None or run.state.is_terminal:
            return False
        run.cancel_requested = True
        if run.task is not None and not run.task.done():
            run.task.cancel()
        return True

    def cancel_all(self) -> int:
        return sum(1 for job_id in list(self._runs) if self.cancel(job_id))

    def job_state(self, job_id: str) -> JobState | None:
        run = self._runs.get(job_id)
        return run.state if run else None


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())
