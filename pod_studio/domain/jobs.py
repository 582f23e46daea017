"""Domain layer: durable job and step states, their legal transitions, retry schedule, keys.

The transition tables below are the single source of truth: the job ledger refuses any state
change they do not list (``assert_transition``). Side effects follow the step protocol:
a step goes ``in_flight`` (durable intent) before the remote call and ``done`` after it; an
``in_flight`` step found at start-up is ambiguous and must be reconciled with the remote.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Literal

from pod_studio.domain.errors import PodStudioError, is_retryable


class JobKind(StrEnum):
    GENERATE = "generate"
    PUBLISH = "publish"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    PARTIALLY_PUBLISHED = "partially_published"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """No automatic progress from here (a manual retry may still requeue it)."""
        return self in _TERMINAL_JOB


class StepStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class ErrorKind(StrEnum):
    """How a failure is treated: retried later, given up on, or checked with the remote first."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AMBIGUOUS = "ambiguous"
    WAIT = "wait"  # not a failure of the job: it waits, uncharged


_TERMINAL_JOB = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIALLY_PUBLISHED, JobStatus.DEAD, JobStatus.CANCELLED}
)

_J = JobStatus
_S = StepStatus

# old state -> the states it may move to. Nothing else is legal (not even old -> old).
JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # claimed by a worker, or cancelled before it ran
    _J.QUEUED: frozenset({_J.RUNNING, _J.CANCELLED}),
    # finished, failed (retry later / give up), cancelled, or requeued (lease lost, app restart)
    _J.RUNNING: frozenset(
        {_J.SUCCEEDED, _J.PARTIALLY_PUBLISHED, _J.RETRY_WAIT, _J.DEAD, _J.CANCELLED, _J.QUEUED}
    ),
    # due again (claimed), "retry now" (queued), cancelled, or given up by the seller
    _J.RETRY_WAIT: frozenset({_J.RUNNING, _J.QUEUED, _J.CANCELLED, _J.DEAD}),
    _J.SUCCEEDED: frozenset(),
    # manual retry of the platforms that failed
    _J.PARTIALLY_PUBLISHED: frozenset({_J.QUEUED}),
    # manual retry (the dead-letter queue)
    _J.DEAD: frozenset({_J.QUEUED}),
    # manual retry of a cancelled job
    _J.CANCELLED: frozenset({_J.QUEUED}),
}

STEP_TRANSITIONS: Mapping[StepStatus, frozenset[StepStatus]] = {
    # intent recorded (before the side effect), or the job ended first
    _S.PENDING: frozenset({_S.IN_FLIGHT, _S.CANCELLED, _S.DEAD}),
    # done; failed for sure; reconciled as "did not land" (pending); given up; cancelled
    _S.IN_FLIGHT: frozenset({_S.DONE, _S.FAILED, _S.PENDING, _S.DEAD, _S.CANCELLED}),
    _S.DONE: frozenset(),
    # next attempt, reset, given up, cancelled
    _S.FAILED: frozenset({_S.IN_FLIGHT, _S.PENDING, _S.DEAD, _S.CANCELLED}),
    # manual retry
    _S.DEAD: frozenset({_S.PENDING}),
    _S.CANCELLED: frozenset({_S.PENDING}),
}

TransitionKind = Literal["job", "step"]


class IllegalTransitionError(PodStudioError):
    """A state change the transition tables do not allow (a bug, or a stale caller)."""

    default_retryable = False

    def __init__(self, kind: str, old: str, new: str) -> None:
        super().__init__(
            f"illegal {kind} transition {old} -> {new}",
            service="ledger",
            user_message=f"This {kind} cannot go from '{old}' to '{new}'.",
        )
        self.transition_kind = kind
        self.old = old
        self.new = new


def is_legal_transition(kind: TransitionKind, old: str, new: str) -> bool:
    if kind == "job":
        try:
            return JobStatus(new) in JOB_TRANSITIONS[JobStatus(old)]
        except ValueError:
            return False
    if kind == "step":
        try:
            return StepStatus(new) in STEP_TRANSITIONS[StepStatus(old)]
        except ValueError:
            return False
    return False


def assert_transition(kind: TransitionKind, old: str, new: str) -> None:
    """Raise ``IllegalTransitionError`` unless the table allows ``old -> new`` for ``kind``."""
    if not is_legal_transition(kind, old, new):
        raise IllegalTransitionError(kind, str(old), str(new))


# --- retry schedule --------------------------------------------------------------------------

RETRY_SCHEDULE: tuple[float, ...] = (60.0, 300.0, 1800.0, 7200.0)
"""Delays after the 1st, 2nd, 3rd, 4th+ failure (1 min, 5 min, 30 min, 2 h; then capped)."""

MAX_RETRY_DELAY = RETRY_SCHEDULE[-1]
MAX_ATTEMPTS = 6
"""Default number of runs of a job before it goes to the dead-letter queue."""


def next_retry_delay(
    attempt: int, *, jitter: float = 0.0, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``jitter`` spreads the delay by up to ±jitter (0.1 → ±10 %); the result never exceeds
    ``MAX_RETRY_DELAY * (1 + jitter)`` and is never negative.
    """
    if attempt < 1:
        attempt = 1
    base = RETRY_SCHEDULE[min(attempt, len(RETRY_SCHEDULE)) - 1]
    if jitter <= 0:
        return base
    jitter = min(jitter, 1.0)
    return max(0.0, base * (1.0 + jitter * (2.0 * rng() - 1.0)))


def attempts_exhausted(attempts: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    return attempts >= max_attempts


def classify_error(exc: BaseException) -> ErrorKind:
    """Transient when retrying may help, permanent otherwise (ambiguity is the caller's call)."""
    return ErrorKind.TRANSIENT if is_retryable(exc) else ErrorKind.PERMANENT


# --- idempotency -----------------------------------------------------------------------------


def idempotency_key(design_sha256: str, product_template: str, platform: str) -> str:
    """A short deterministic key for "this design, as this product, on this platform"."""
    parts = (design_sha256.strip().lower(), product_template.strip(), platform.strip().lower())
    if not all(parts):
        raise ValueError("idempotency_key needs a design hash, a product template and a platform")
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return "pod-" + digest[:16]
