"""Domain layer: events that services push to an ``EventSink``.

Events are frozen pydantic models. In tests the sink is ``list.append``; in the app it is
the Qt event bridge (``app/bridge.py``), which emits one typed Qt signal per kind. Docks and
views are pure views of these events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pod_studio.domain.models import ConnectionState, GeneratedImage, JobState


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    at: datetime = Field(default_factory=_now)


EventSink = Callable[[Event], None]


def null_sink(_event: Event) -> None:
    """A sink that drops everything (for callers that do not watch)."""


# --- generation ------------------------------------------------------------------------------


class JobQueued(Event):
    job_id: str
    batch_id: str = ""
    prompt: str
    seed: int
    server: str = ""


class JobStateChanged(Event):
    job_id: str
    state: JobState
    server: str = ""
    prompt_id: str = ""
    detail: str = ""


class JobProgress(Event):
    job_id: str
    value: float
    max: float
    node: str = ""
    node_class: str = ""


class JobNodeExecuting(Event):
    job_id: str
    node: str
    node_class: str = ""


class PreviewFrame(Event):
    job_id: str
    mime: str
    data: bytes


class ImageReady(Event):
    job_id: str
    image: GeneratedImage


class JobFailed(Event):
    job_id: str
    reason: str
    error_kind: str = ""
    retryable: bool = False
    exit_class: int = 1  # domain.errors.ExitClass of the error: what a command exits with


class JobCancelled(Event):
    job_id: str


class JobResubmitted(Event):
    job_id: str
    old_prompt_id: str
    new_prompt_id: str
    server: str
    reason: str


class BatchFinished(Event):
    batch_id: str
    succeeded: int
    failed: int
    cancelled: int
    seconds: float


class ConnectionChanged(Event):
    server: str
    state: ConnectionState
    detail: str = ""
    next_attempt_at: datetime | None = None
    device: str = ""
    vram_free: int | None = None
    comfyui_version: str = ""
    problem: str = ""  # a ServerProblem value when state is offline and the cause is known


# --- resilience ------------------------------------------------------------------------------


class RetryScheduled(Event):
    service: str
    operation: str
    attempt: int
    cause: str
    wait_seconds: float
    wait_reason: str  # e.g. "Retry-After header", "exponential backoff"


class RetryOutcome(Event):
    """The end of a retried call: ``outcome`` is "succeeded", "gave up" or "failed"."""

    service: str
    operation: str
    attempts: int
    outcome: str
    cause: str = ""


class BreakerChanged(Event):
    name: str
    old_state: str
    new_state: str
    failure_count: int = 0
    success_count: int = 0
    last_failure_time: float | None = None
    next_attempt_time: float | None = None  # wall-clock epoch seconds, for countdowns
    last_error: str = ""


class StatsUpdated(Event):
    snapshot: dict[str, Any]


class HealthChecked(Event):
    service: str
    reachable: bool
    auth_ok: bool | None = None
    latency_ms: float | None = None
    budget_left: str = ""
    detail: str = ""


# --- publishing ------------------------------------------------------------------------------


class PublishStepChanged(Event):
    design_id: str
    product: str
    platform: str
    state: str
    detail: str = ""
    remote_id: str = ""


class PublishDone(Event):
    design_id: str
    platform: str
    ok: bool
    detail: str = ""
