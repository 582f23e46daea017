"""Tests for domain/jobs.py: transition tables, retry schedule, idempotency keys."""

from __future__ import annotations

import itertools

import pytest

from pod_studio.domain.errors import (
    AuthenticationError,
    PodStudioError,
    ServiceError,
    ValidationError,
)
from pod_studio.domain.jobs import (
    JOB_TRANSITIONS,
    MAX_ATTEMPTS,
    MAX_RETRY_DELAY,
    STEP_TRANSITIONS,
    ErrorKind,
    IllegalTransitionError,
    JobStatus,
    StepStatus,
    assert_transition,
    attempts_exhausted,
    classify_error,
    idempotency_key,
    is_legal_transition,
    next_retry_delay,
)

EXPECTED_JOB = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "partially_published"),
    ("running", "retry_wait"),
    ("running", "dead"),
    ("running", "cancelled"),
    ("running", "queued"),
    ("retry_wait", "running"),
    ("retry_wait", "queued"),
    ("retry_wait", "cancelled"),
    ("retry_wait", "dead"),
    ("partially_published", "queued"),
    ("dead", "queued"),
    ("cancelled", "queued"),
}
EXPECTED_STEP = {
    ("pending", "in_flight"),
    ("pending", "cancelled"),
    ("pending", "dead"),
    ("in_flight", "done"),
    ("in_flight", "failed"),
    ("in_flight", "pending"),
    ("in_flight", "dead"),
    ("in_flight", "cancelled"),
    ("failed", "in_flight"),
    ("failed", "pending"),
    ("failed", "dead"),
    ("failed", "cancelled"),
    ("dead", "pending"),
    ("cancelled", "pending"),
}


def test_tables_cover_every_state() -> None:
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert set(STEP_TRANSITIONS) == set(StepStatus)


@pytest.mark.parametrize("old,new", list(itertools.product(JobStatus, JobStatus)))
def test_every_job_pair_matches_the_table(old: JobStatus, new: JobStatus) -> None:
    legal = (old.value, new.value) in EXPECTED_JOB
    assert is_legal_transition("job", old, new) is legal
    if legal:
        assert_transition("job", old, new)
    else:
        with pytest.raises(IllegalTransitionError) as info:
            assert_transition("job", old, new)
        assert info.value.old == old.value and info.value.new == new.value
        assert isinstance(info.value, PodStudioError)


@pytest.mark.parametrize("old,new", list(itertools.product(StepStatus, StepStatus)))
def test_every_step_pair_matches_the_table(old: StepStatus, new: StepStatus) -> None:
    legal = (old.value, new.value) in EXPECTED_STEP
    assert is_legal_transition("step", old, new) is legal
    if not legal:
        with pytest.raises(IllegalTransitionError):
            assert_transition("step", old, new)


def test_terminal_states_and_done_are_final() -> None:
    assert JOB_TRANSITIONS[JobStatus.SUCCEEDED] == frozenset()
    assert STEP_TRANSITIONS[StepStatus.DONE] == frozenset()
    assert JobStatus.DEAD.is_terminal and not JobStatus.RETRY_WAIT.is_terminal


def test_unknown_states_are_illegal() -> None:
    assert not is_legal_transition("job", "queued", "bogus")
    assert not is_legal_transition("step", "nope", "done")
    with pytest.raises(IllegalTransitionError):
        assert_transition("job", "bogus", "running")


def test_retry_schedule() -> None:
    assert [next_retry_delay(a) for a in (1, 2, 3, 4, 5, 50)] == [
        60.0,
        300.0,
        1800.0,
        7200.0,
        7200.0,
        7200.0,
    ]
    assert next_retry_delay(0) == 60.0
    assert next_retry_delay(3, jitter=0.1, rng=lambda: 1.0) == pytest.approx(1980.0)
    assert next_retry_delay(3, jitter=0.1, rng=lambda: 0.0) == pytest.approx(1620.0)
    assert next_retry_delay(9, jitter=0.5, rng=lambda: 1.0) <= MAX_RETRY_DELAY * 1.5
    assert not attempts_exhausted(MAX_ATTEMPTS - 1)
    assert attempts_exhausted(MAX_ATTEMPTS)


def test_classify_error() -> None:
    assert classify_error(ServiceError("down")) is ErrorKind.TRANSIENT
    assert classify_error(ValidationError("bad")) is ErrorKind.PERMANENT
    assert classify_error(AuthenticationError("401")) is ErrorKind.PERMANENT
    assert classify_error(RuntimeError("x")) is ErrorKind.PERMANENT


def test_idempotency_key_is_deterministic_and_short() -> None:
    a = idempotency_key("AB" * 32, "tee-black", "printify")
    assert a == idempotency_key("ab" * 32, " tee-black ", "Printify")
    assert a.startswith("pod-") and len(a) == 20
    int(a[4:], 16)
    assert a != idempotency_key("ab" * 32, "tee-black", "shopify")
    assert a != idempotency_key("ab" * 32, "tee-white", "printify")
    with pytest.raises(ValueError):
        idempotency_key("", "tee", "printify")
