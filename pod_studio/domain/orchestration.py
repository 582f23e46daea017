"""Domain layer: the durable job orchestrator's values, events and the prompt-lookup port.

Pure models: what a generation or publish job carries in the ledger (its payload), what the
queue view shows (``QueueEntry``/``QueueSnapshot``/``ServerStatus``), what a headless run
reports (``RunSummary``), the events the orchestrator pushes for every state change, and the
parsing of a ComfyUI ``/history`` entry (which images a finished prompt produced).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from pod_studio.domain.events import Event
from pod_studio.domain.jobs import JobKind, JobStatus
from pod_studio.domain.models import ImageRef, JobSpec
from pod_studio.domain.publishing import PublishTask

PAYLOAD_SCHEMA_VERSION = 1

PROMPT_STEP_PREFIX = "prompt-"
SAVE_STEP = "save"

RetrySchedule = Callable[[int], float]
"""Seconds to wait after failed attempt number n (1-based)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- payloads ----------------------------------------------------------------------------------


class GenerationPayload(_Value):
    """A generation job as stored in the ledger."""

    schema_version: int = PAYLOAD_SCHEMA_VERSION
    spec: JobSpec


class PublishPayload(_Value):
    """A publish job (one design × product template × platform) as stored in the ledger."""

    schema_version: int = PAYLOAD_SCHEMA_VERSION
    task: PublishTask


def prompt_step_name(number: int) -> str:
    return f"{PROMPT_STEP_PREFIX}{number}"


def prompt_step_key(server: str, prompt_id: str) -> str:
    """The idempotency key of a prompt step: which server holds which prompt id."""
    return f"{server}#{prompt_id}"


def parse_prompt_step_key(key: str) -> tuple[str, str]:
    """``(server, prompt_id)`` from ``prompt_step_key``'s text."""
    server, sep, prompt_id = key.rpartition("#")
    if not sep or not server or not prompt_id:
        raise ValueError(f"not a prompt step key: {key!r}")
    return server, prompt_id


def prompt_step_number(step: str) -> int | None:
    if not step.startswith(PROMPT_STEP_PREFIX):
        return None
    tail = step[len(PROMPT_STEP_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def publish_job_id(idem_key: str) -> str:
    """One publish job per idempotency key (design × product × platform)."""
    return f"pub-{idem_key}"


# --- ComfyUI history ---------------------------------------------------------------------------


class HistoryOutcome(_Value):
    """What ``/history/{id}`` says about a prompt that left the queue."""

    ok: bool
    images: list[ImageRef] = Field(default_factory=list)
    error: str = ""


def parse_history_entry(entry: Mapping[str, Any]) -> HistoryOutcome:
    """Images a finished prompt saved (``type == "output"`` preferred), or why it failed."""
    status = entry.get("status")
    status = status if isinstance(status, Mapping) else {}
    if status.get("status_str") == "error" or status.get("completed") is False:
        return HistoryOutcome(ok=False, error="ComfyUI reports the prompt failed")
    outputs = entry.get("outputs")
    refs: list[ImageRef] = []
    if isinstance(outputs, Mapping):
        for node_id, output in outputs.items():
            images = output.get("images") if isinstance(output, Mapping) else None
            for img in images if isinstance(images, list) else []:
                if not isinstance(img, Mapping) or not isinstance(img.get("filename"), str):
                    continue
                refs.append(
                    ImageRef(
                        filename=img["filename"],
                        subfolder=str(img.get("subfolder") or ""),
                        type=str(img.get("type") or "output"),
                        node_id=str(node_id),
                    )
                )
    saved = [r for r in refs if r.type == "output"]
    refs = saved or refs
    if not refs:
        return HistoryOutcome(ok=False, error="the prompt finished without images")
    return HistoryOutcome(ok=True, images=refs)


@runtime_checkable
class PromptLookup(Protocol):
    """What the orchestrator needs from a ComfyUI server to resume a prompt after a restart
    (``ComfyUIClient`` has these methods)."""

    async def queue(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids)."""
        ...

    async def history_entry(self, prompt_id: str) -> dict[str, Any] | None: ...

    async def fetch_image(self, ref: ImageRef) -> bytes: ...


@runtime_checkable
class FollowLag(Protocol):
    """How late a ComfyUI client may notice that a prompt finished (``ComfyUIClient``)."""

    def follow_lag(self) -> float:
        """0 while the live channel is up; the polling interval while it is down."""
        ...


# --- the queue view ----------------------------------------------------------------------------


class StepView(_Value):
    name: str
    state: str
    remote_ref: str | None = None
    attempts: int = 0


class QueueEntry(_Value):
    """One job as the queue / dead-letter panel shows it."""

    job_id: str
    kind: JobKind
    state: JobStatus
    label: str  # the prompt, or "design → product @ platform"
    server: str = ""
    platform: str = ""
    design_id: str = ""
    attempts: int = 0
    max_attempts: int = 0
    next_run_at: float = 0.0
    last_error: str = ""
    last_error_kind: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    steps: list[StepView] = Field(default_factory=list)


class ServerStatus(_Value):
    url: str
    breaker: str
    in_flight: int
    capacity: int
    eligible: bool
    problems: list[str] = Field(default_factory=list)


class QueueSnapshot(_Value):
    paused: bool
    entries: list[QueueEntry]
    counts: dict[str, int]
    servers: list[ServerStatus] = Field(default_factory=list)

    def dead(self) -> list[QueueEntry]:
        return [e for e in self.entries if e.state is JobStatus.DEAD]


class DesignPublishState(_Value):
    """How one design fared across its products × platforms."""

    design_id: str
    state: str  # "published", "partially published", "failed", "in progress"
    reasons: dict[str, str] = Field(default_factory=dict)  # "template @ platform" -> reason


class RunSummary(_Value):
    """What a headless ``run_until_idle`` left behind."""

    counts: dict[str, int]
    dead: dict[str, str] = Field(default_factory=dict)  # job id -> reason
    waiting: int = 0  # retry_wait not due within the horizon
    queued: int = 0  # queued but not runnable (no eligible server, paused)
    paused: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing left failed or unfinished."""
        unfinished = (
            self.counts.get(JobStatus.QUEUED.value, 0)
            + self.counts.get(JobStatus.RUNNING.value, 0)
            + self.counts.get(JobStatus.RETRY_WAIT.value, 0)
        )
        failed = self.counts.get(JobStatus.DEAD.value, 0) + self.counts.get(
            JobStatus.PARTIALLY_PUBLISHED.value, 0
        )
        return unfinished == 0 and failed == 0


# --- events ------------------------------------------------------------------------------------


class QueueChanged(Event):
    """A job of the durable queue changed state (feeds the job list and the queue panel)."""

    job_id: str
    kind: str
    state: str
    server: str = ""
    attempts: int = 0
    next_run_at: float | None = None
    last_error: str = ""


class DeadLettered(Event):
    """A job went to the dead-letter queue: its reason and the attempt history."""

    job_id: str
    kind: str
    reason: str
    attempts: int
    history: list[str] = Field(default_factory=list)


class JobMoved(Event):
    """A generation job left a server (breaker open, or the seller moved it)."""

    job_id: str
    from_server: str
    to_server: str = ""
    reason: str = ""


class QueuePaused(Event):
    paused: bool


class PublishJobChanged(Event):
    """One design × product × platform task changed state."""

    job_id: str
    design_id: str
    template: str
    platform: str
    state: str
    detail: str = ""
    remote_id: str = ""


class DesignPublishChanged(Event):
    """Every task of a design ended: published, partially published or failed."""

    design_id: str
    state: str
    reasons: dict[str, str] = Field(default_factory=dict)
