"""Services layer: projections of the job ledger for the queue views (pure functions).

``queue_entry`` turns a ledger row into what the queue dock and ``pod-studio queue`` show;
``design_state`` sums up a design's publish jobs (published, partially published, failed, in
progress); ``latest_prompt_step`` finds the generation job's newest ComfyUI prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pydantic

from pod_studio.domain.jobs import JobKind, JobStatus
from pod_studio.domain.ledger_port import JobRecord, StepRecord
from pod_studio.domain.orchestration import (
    DesignPublishState,
    GenerationPayload,
    PublishPayload,
    QueueEntry,
    StepView,
    parse_prompt_step_key,
    prompt_step_number,
)


def attempt_history(attempts: Sequence[object]) -> list[str]:
    """One line per attempt, oldest first: outcome, step, error."""
    lines = []
    for a in attempts:
        outcome, step, error = (getattr(a, n, "") for n in ("outcome", "step", "error"))
        lines.append(f"{outcome}{' ' + step if step else ''}{': ' + error if error else ''}")
    return lines


def latest_prompt_step(job: JobRecord) -> StepRecord | None:
    steps = [(n, s) for s in job.steps if (n := prompt_step_number(s.step)) is not None]
    return max(steps, key=lambda p: p[0])[1] if steps else None


def queue_entry(job: JobRecord, server: str = "") -> QueueEntry:
    """A ledger row as the queue view shows it."""
    label, platform, design_id = job.id, "", ""
    if job.kind is JobKind.GENERATE:
        with contextlib.suppress(pydantic.ValidationError):  # a payload of another version
            label = GenerationPayload.model_validate(job.payload).spec.prompt
        latest = latest_prompt_step(job)
        if not server and latest is not None:
            with contextlib.suppress(ValueError):
                server = parse_prompt_step_key(latest.idem_key)[0]
    else:
        with contextlib.suppress(pydantic.ValidationError):  # a payload of another version
            task = PublishPayload.model_validate(job.payload).task
            label = f"{task.template_name} @ {task.platform}"
            platform, design_id = task.platform, task.design_id
    return QueueEntry(
        job_id=job.id,
        kind=job.kind,
        state=job.state,
        label=label,
        server=server,
        platform=platform,
        design_id=design_id,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        next_run_at=job.next_run_at,
        last_error=job.last_error or "",
        last_error_kind=job.last_error_kind.value if job.last_error_kind else "",
        created_at=job.created_at,
        updated_at=job.updated_at,
        steps=[
            StepView(name=s.step, state=s.state.value, remote_ref=s.remote_ref, attempts=s.attempts)
            for s in job.steps
        ],
    )


def design_state(design_id: str, jobs: Sequence[JobRecord]) -> DesignPublishState:
    reasons: dict[str, str] = {}
    ok = failed = 0
    for job in jobs:
        task = PublishPayload.model_validate(job.payload).task
        where = f"{task.template_name} @ {task.platform}"
        if job.state is JobStatus.SUCCEEDED:
            ok += 1
        elif job.state.is_terminal:
            failed += 1
            reasons[where] = job.last_error or job.state.value
        else:
            return DesignPublishState(design_id=design_id, state="in progress")
    if failed == 0:
        state = "published"
    elif ok == 0:
        state = "failed"
    else:
        state = "partially published"
    return DesignPublishState(design_id=design_id, state=state, reasons=reasons)
