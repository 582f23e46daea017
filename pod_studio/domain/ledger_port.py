"""Domain layer: the durable job ledger port and the rows it returns.

Services drive jobs through ``JobLedger`` (implemented by ``adapters/storage/ledger.py``).
Times are POSIX seconds (floats). Every state change obeys ``domain/jobs.py``'s tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pod_studio.domain.errors import ExitClass, PodStudioError
from pod_studio.domain.jobs import MAX_ATTEMPTS, ErrorKind, JobKind, JobStatus, StepStatus


class LedgerError(PodStudioError):
    """The job database cannot be used (corrupt, locked, disk full, unknown job...)."""

    default_retryable = False

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message, service="ledger", user_message=user_message)


class LedgerLockedError(LedgerError):
    """Another process holds the job database (a second POD Studio, a backup tool)."""


class UnknownJobError(LedgerError):
    """No job (or step) with that id."""

    exit_class = ExitClass.BAD_INPUT


class JobNotRunningError(LedgerError):
    """A step was started for a job that is not ``running`` (cancelled meanwhile, or stale)."""


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepRecord(_Row):
    job_id: str
    step: str
    idem_key: str
    state: StepStatus
    remote_ref: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0


class AttemptRecord(_Row):
    id: int
    job_id: str
    step: str | None = None
    at: float
    outcome: str
    error_kind: ErrorKind | None = None
    error: str | None = None


class JobRecord(_Row):
    id: str
    kind: JobKind
    state: JobStatus
    payload: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    max_attempts: int = MAX_ATTEMPTS
    next_run_at: float
    lease_owner: str | None = None
    lease_until: float | None = None
    last_error: str | None = None
    last_error_kind: ErrorKind | None = None
    server: str | None = None
    created_at: float
    updated_at: float
    steps: list[StepRecord] = Field(default_factory=list)

    def step(self, name: str) -> StepRecord | None:
        return next((s for s in self.steps if s.step == name), None)


class JobLedger(Protocol):
    """Durable job queue with per-step intents. Every method is async and transactional."""

    async def open(self) -> list[str]:
        """Open (or create/migrate) the store. Returns warnings for the seller (e.g. a
        corrupt database moved aside). Other methods open it on first use too."""
        ...

    async def aclose(self) -> None: ...

    async def add_job(
        self,
        kind: JobKind,
        payload: Mapping[str, Any],
        *,
        job_id: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        next_run_at: float | None = None,
        server: str | None = None,
        steps: Mapping[str, str] | None = None,
    ) -> JobRecord:
        """Queue a job. ``steps`` maps step name -> idempotency key (created ``pending``)."""
        ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_jobs(
        self, states: Iterable[JobStatus] | None = None, *, kind: JobKind | None = None
    ) -> list[JobRecord]: ...

    async def claim_ready(
        self,
        now: float,
        limit: int,
        *,
        owner: str = "",
        lease_seconds: float = 600.0,
        kind: JobKind | None = None,
    ) -> list[JobRecord]:
        """Move due ``queued``/``retry_wait`` jobs to ``running`` (oldest due first), counting
        an attempt and leasing them to ``owner``. Returns [] while the queue is paused."""
        ...

    async def requeue_running(self, *, lease_expired_before: float | None = None) -> list[str]:
        """``running`` -> ``queued`` for every running job (start-up recovery), or only those
        whose lease ended before the given time. Returns their ids."""
        ...

    async def record_intent(self, job_id: str, step: str, idem_key: str) -> StepRecord:
        """Step -> ``in_flight``, committed BEFORE the side effect (creates the step if new)."""
        ...

    async def record_result(
        self, job_id: str, step: str, remote_ref: str | None = None
    ) -> StepRecord: ...

    async def record_step_failed(
        self, job_id: str, step: str, error: str, kind: ErrorKind
    ) -> StepRecord: ...

    async def reset_step(self, job_id: str, step: str) -> StepRecord:
        """``in_flight``/``failed`` -> ``pending`` (reconciliation found nothing remote)."""
        ...

    async def mark_retry(
        self, job_id: str, error: str, kind: ErrorKind, next_run_at: float
    ) -> JobRecord:
        """``running`` -> ``retry_wait``; -> ``dead`` instead when attempts are exhausted."""
        ...

    async def mark_waiting(self, job_id: str, reason: str, next_run_at: float) -> JobRecord:
        """Back to waiting, the claim's attempt refunded (not the job's own failure)."""

    async def mark_dead(
        self, job_id: str, reason: str, kind: ErrorKind = ErrorKind.PERMANENT
    ) -> JobRecord: ...

    async def mark_succeeded(self, job_id: str, *, partial: bool = False) -> JobRecord: ...

    async def mark_cancelled(self, job_id: str) -> JobRecord: ...

    async def manual_retry(self, job_id: str, *, now: float | None = None) -> JobRecord:
        """dead/cancelled/partially_published -> queued, attempts reset; done steps stay done."""
        ...

    async def discard(self, job_id: str) -> bool:
        """Delete a job that is not running (with its steps and attempts)."""
        ...

    async def in_flight_steps(self) -> list[StepRecord]: ...

    async def attempts(self, job_id: str) -> list[AttemptRecord]: ...

    async def counts(self) -> dict[JobStatus, int]: ...

    async def next_due(self) -> float | None:
        """When the next queued or waiting job is due (None: nothing is)."""

    async def set_paused(self, paused: bool) -> None: ...

    async def is_paused(self) -> bool: ...
