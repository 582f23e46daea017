"""Services layer: ``GenerationRun``, running the generation jobs of the durable queue.

The prompt id is recorded (step ``prompt-N``, key ``server#prompt_id``) BEFORE the POST. On
resume the prompt is looked up on its server (``/history``, ``/queue``): finished → its
images are downloaded; still queued → followed; vanished → resubmitted. Images are saved
under a ``save`` step; an interrupted save is reconciled with the image store (images already
stored for the job are not stored again). The workflow is checked against the server's
``/object_info`` with the job's own inputs (checkpoint, size, overrides) before it is sent.
The server's slot is the ``Scheduler``'s: it hears when the prompt was accepted and when the
GPU finished it; the job's progress, previews and outcome go to the event sink.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pod_studio.domain.errors import (
    ExecutionError,
    PodStudioError,
    ValidationError,
    exit_class,
)
from pod_studio.domain.events import (
    EventSink,
    ImageReady,
    JobFailed,
    JobNodeExecuting,
    JobProgress,
    JobResubmitted,
    JobStateChanged,
    PreviewFrame,
)
from pod_studio.domain.jobs import ErrorKind, JobStatus, StepStatus
from pod_studio.domain.ledger_port import JobLedger, JobRecord
from pod_studio.domain.models import ImageRef, JobSpec, JobState
from pod_studio.domain.orchestration import (
    SAVE_STEP,
    GenerationPayload,
    PromptLookup,
    parse_history_entry,
    parse_prompt_step_key,
    prompt_step_key,
    prompt_step_name,
    prompt_step_number,
)
from pod_studio.domain.ports import ImageStore, RunUpdate
from pod_studio.domain.workflow import WorkflowTemplate, preflight_graph
from pod_studio.services.queue_events import QueueReporter
from pod_studio.services.queue_options import OrchestratorOptions
from pod_studio.services.queue_views import latest_prompt_step
from pod_studio.services.scheduler import Scheduler, ServerSlot

__all__ = ["GenerationRun"]

log = logging.getLogger(__name__)

# a failed attempt as the job list shows it
_STATE_FOR_LIST: dict[JobStatus, JobState] = {
    JobStatus.QUEUED: JobState.QUEUED,
    JobStatus.RETRY_WAIT: JobState.QUEUED,
    JobStatus.RUNNING: JobState.RUNNING,
    JobStatus.SUCCEEDED: JobState.DONE,
    JobStatus.PARTIALLY_PUBLISHED: JobState.FAILED,
    JobStatus.DEAD: JobState.FAILED,
    JobStatus.CANCELLED: JobState.CANCELLED,
}


class GenerationRun:
    """Runs generation jobs: submit or resume the prompt, save the images, report."""

    def __init__(
        self,
        ledger: JobLedger,
        store: ImageStore,
        template: WorkflowTemplate,
        *,
        scheduler: Scheduler,
        reporter: QueueReporter,
        sink: EventSink,
        options: OrchestratorOptions,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._template = template
        self._scheduler = scheduler
        self._reporter = reporter
        self._sink = sink
        self._options = options

    @property
    def template(self) -> WorkflowTemplate:
        return self._template

    def set_template(self, template: WorkflowTemplate) -> None:
        self._template = template

    def check(self, spec: JobSpec) -> None:
        """Raise when the workflow cannot take this job's inputs (before it is queued)."""
        self._template.build(spec, filename_prefix=self._options.filename_prefix)

    def cancelled(self, job: JobRecord) -> None:
        self._sink(JobStateChanged(job_id=job.id, state=JobState.CANCELLED))

    def failed(self, job: JobRecord, rec: JobRecord, reason: str, exc: BaseException) -> None:
        """Announce a failed attempt (``rec``: the job as the ledger left it)."""
        kind = exc.kind if isinstance(exc, PodStudioError) else type(exc).__name__
        if rec.state is JobStatus.DEAD:
            self._sink(
                JobFailed(
                    job_id=job.id,
                    reason=reason,
                    error_kind=kind,
                    retryable=False,
                    exit_class=int(exit_class(exc)),
                )
            )
        self._sink(
            JobStateChanged(
                job_id=job.id,
                state=_STATE_FOR_LIST[rec.state],
                detail=reason if rec.state is JobStatus.DEAD else f"retrying: {reason}",
            )
        )

    async def run(self, job: JobRecord, server: ServerSlot) -> None:
        """Run ``job`` on ``server`` (a prompt recorded before a restart is looked up on its
        own server first)."""
        spec = GenerationPayload.model_validate(job.payload).spec
        save = job.step(SAVE_STEP)
        if save is not None and save.state is StepStatus.DONE:
            await self._generation_done(job, server.url)
            return
        images: list[tuple[ImageRef, bytes]] | None = None
        prompt_server, prompt_id, seconds = server.url, "", 0.0
        latest = latest_prompt_step(job)
        if latest is not None and latest.state in (StepStatus.IN_FLIGHT, StepStatus.DONE):
            self._scheduler.resumed(server, job.id)  # submitted before the restart
            found: list[tuple[ImageRef, bytes]] | None = None
            if self._options.reconcile:
                try:
                    url, pid = parse_prompt_step_key(latest.idem_key)
                except ValueError:
                    url, pid = "", ""
                pid = latest.remote_ref or pid
                found = await self._resume_prompt(url, pid, job.id)
                if found is not None:
                    images, prompt_server, prompt_id = found, url, pid
                    if latest.state is StepStatus.IN_FLIGHT:
                        await self._ledger.record_result(job.id, latest.step, pid)
            if found is None and latest.state is StepStatus.IN_FLIGHT:
                await self._ledger.record_step_failed(
                    job.id,
                    latest.step,
                    "the server no longer has this prompt",
                    ErrorKind.AMBIGUOUS,
                )
        if images is None:
            images, prompt_server, prompt_id, seconds = await self._submit(job, spec, server)
        await self._save(job, spec, images, prompt_server, prompt_id, seconds)
        await self._generation_done(job, prompt_server)

    async def _submit(
        self, job: JobRecord, spec: JobSpec, server: ServerSlot
    ) -> tuple[list[tuple[ImageRef, bytes]], str, str, float]:
        numbers = [n for s in job.steps if (n := prompt_step_number(s.step)) is not None]
        step = prompt_step_name(max(numbers, default=0) + 1)
        graph = self._template.build(spec, filename_prefix=self._options.filename_prefix)
        if server.object_info is not None:
            problems = preflight_graph(graph, server.object_info)
            if problems:
                raise ValidationError(
                    f"{server.url} cannot run this job: {problems[0]}",
                    service="comfyui",
                    user_message=f"{server.url} cannot run this job: {problems[0]}",
                    details=problems,
                )
        prompt_id = str(uuid.uuid4())
        await self._ledger.record_intent(job.id, step, prompt_step_key(server.url, prompt_id))
        self._sink(
            JobStateChanged(
                job_id=job.id, state=JobState.RUNNING, server=server.url, prompt_id=prompt_id
            )
        )
        res = await server.gen.run(
            graph,
            prompt_id=prompt_id,
            on_update=self._updates(job.id, server, prompt_id, graph),
        )
        if not res.images:
            raise ExecutionError(
                node_id="-",
                node_type="(outputs)",
                exception_message="the workflow finished without any image",
            )
        await self._ledger.record_result(job.id, step, res.prompt_id)
        return list(res.images), res.server, res.prompt_id, res.seconds

    def _updates(
        self, job_id: str, slot: ServerSlot, prompt_id: str, graph: Mapping[str, Any]
    ) -> Callable[[RunUpdate], None]:
        classes = {nid: str(n.get("class_type", "")) for nid, n in graph.items()}
        current = {"prompt_id": prompt_id}
        server = slot.url

        def on_update(u: RunUpdate) -> None:
            if u.kind == "submitted":
                self._scheduler.submitted(slot, job_id)
            elif u.kind == "finished":
                self._scheduler.finished(slot, job_id, u.value)
            elif u.kind == "progress":
                self._sink(
                    JobProgress(
                        job_id=job_id,
                        value=u.value,
                        max=u.max,
                        node=u.node,
                        node_class=u.node_class or classes.get(u.node, ""),
                    )
                )
            elif u.kind == "executing":
                self._sink(
                    JobNodeExecuting(
                        job_id=job_id,
                        node=u.node,
                        node_class=u.node_class or classes.get(u.node, ""),
                    )
                )
            elif u.kind == "preview":
                self._sink(PreviewFrame(job_id=job_id, mime=u.mime, data=u.data))
            elif u.kind == "resubmitted":
                self._sink(
                    JobResubmitted(
                        job_id=job_id,
                        old_prompt_id=current["prompt_id"],
                        new_prompt_id=u.prompt_id,
                        server=server,
                        reason=u.detail or "server lost the prompt",
                    )
                )
                current["prompt_id"] = u.prompt_id

        return on_update

    async def _resume_prompt(
        self, url: str, prompt_id: str, job_id: str
    ) -> list[tuple[ImageRef, bytes]] | None:
        """The images of a prompt submitted before a restart, or None when it is gone."""
        gen = self._scheduler.generator(url)
        if gen is None or not prompt_id or not isinstance(gen, PromptLookup):
            return None
        try:
            while True:
                entry = await gen.history_entry(prompt_id)
                if entry is None:
                    running, pending = await gen.queue()
                    if prompt_id in running or prompt_id in pending:
                        self._sink(
                            JobStateChanged(
                                job_id=job_id,
                                state=JobState.RUNNING,
                                server=url,
                                prompt_id=prompt_id,
                                detail="resumed: still on the server",
                            )
                        )
                        await asyncio.sleep(self._options.poll_interval)
                        continue
                    entry = await gen.history_entry(prompt_id)  # it may have just finished
                    if entry is None:
                        log.info("prompt %s vanished from %s; resubmitting", prompt_id, url)
                        return None
                outcome = parse_history_entry(entry)
                if not outcome.ok:
                    return None
                return [(ref, await gen.fetch_image(ref)) for ref in outcome.images]
        except PodStudioError as exc:
            log.info("cannot look up prompt %s on %s (%s); resubmitting", prompt_id, url, exc)
            return None

    async def _save(
        self,
        job: JobRecord,
        spec: JobSpec,
        images: list[tuple[ImageRef, bytes]],
        server: str,
        prompt_id: str,
        seconds: float,
    ) -> None:
        step = job.step(SAVE_STEP)
        ids: list[str] = []
        if step is not None and step.state is StepStatus.IN_FLIGHT:
            # an earlier save was cut short: keep what reached the store
            if self._options.reconcile:
                ids = [i.image_id for i in await self._store.list_images() if i.job_id == job.id]
            await self._ledger.reset_step(job.id, SAVE_STEP)
        await self._ledger.record_intent(job.id, SAVE_STEP, f"{job.id}:{SAVE_STEP}")
        for ref, data in images[len(ids) :]:
            image = await self._store.save(
                spec, data, ref=ref, server=server, prompt_id=prompt_id, seconds=seconds
            )
            ids.append(image.image_id)
            self._sink(ImageReady(job_id=job.id, image=image))
        await self._ledger.record_result(job.id, SAVE_STEP, ",".join(ids))

    async def _generation_done(self, job: JobRecord, server: str) -> None:
        rec = await self._ledger.mark_succeeded(job.id)
        self._scheduler.unpin(job.id)
        self._reporter.changed(rec, server=server)
        self._sink(JobStateChanged(job_id=job.id, state=JobState.DONE, server=server))
