"""The circuit breaker state machine: tables, configuration checks and a stateful property test."""

from __future__ import annotations

import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pod_studio.domain.breaker import (
    Admission,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    counts_as_failure,
)
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    CircuitOpenError,
    PodTimeoutError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    threshold: int = 3, window: float = 60.0, reset: float = 30.0, probe: float = 10.0
) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "printify",
        BreakerConfig(
            failure_threshold=threshold,
            window_seconds=window,
            reset_timeout=reset,
            probe_timeout=probe,
        ),
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0 + clock.now,
    )
    transitions: list[tuple[str, str]] = []
    breaker.add_listener(lambda _b, old, new: transitions.append((str(old), str(new))))
    return breaker, clock, transitions


def fail(breaker: CircuitBreaker, exc: Exception | None = None) -> None:
    breaker.record_failure(breaker.admit(), exc or ServiceError("503", status_code=503))


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -3}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": math.nan}, "window_seconds"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"reset_timeout": math.inf}, "reset_timeout"),
        ({"probe_timeout": 0}, "probe_timeout"),
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"probe_timeout": "5"}, "probe_timeout"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


# --- what counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "counts"),
    [
        (ServiceError("503", status_code=503), True),
        (UpstreamDataError("truncated JSON"), True),
        (PodTimeoutError("read timeout"), True),
        (ConnectionResetError("reset"), True),
        (APIError("bad gateway", status_code=502), True),
        (ValidationError("bad price"), False),
        (AuthenticationError("401", status_code=401), False),
        (RateLimitError("429", retry_after=2), False),
        (APIError("not found", status_code=404), False),
        (KeyError("bug"), False),
    ],
)
def test_failure_classification(exc: Exception, counts: bool) -> None:
    assert counts_as_failure(exc) is counts


def test_non_counting_errors_never_open() -> None:
    breaker, _clock, _ = make(threshold=2)
    for _ in range(10):
        fail(breaker, ValidationError("bad input"))
        fail(breaker, RateLimitError("slow down"))
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().failure_count == 0


# --- transitions -------------------------------------------------------------------------------


def test_full_cycle_and_metrics() -> None:
    breaker, clock, transitions = make(threshold=3, reset=30)
    fail(breaker)
    fail(breaker)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, PodTimeoutError("read timed out"))
    assert breaker.state is BreakerState.OPEN
    m = breaker.metrics()
    assert m.failure_count == 3
    assert m.next_attempt_time == pytest.approx(1_700_000_000.0 + clock.now + 30)
    assert m.last_failure_time == pytest.approx(1_700_000_000.0 + clock.now)
    assert "read timed out" in m.last_error

    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        breaker.admit()
    assert info.value.retry_in == pytest.approx(20)
    assert "read timed out" in str(info.value)

    clock.advance(20)
    probe = breaker.admit()
    assert probe.probe and breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.admit()  # only one probe
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().failure_count == 0
    assert breaker.metrics().next_attempt_time is None
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failures_outside_the_window_do_not_add_up() -> None:
    breaker, clock, _ = make(threshold=3, window=10)
    for _ in range(5):
        fail(breaker)
        fail(breaker)
        clock.advance(11)
    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens() -> None:
    breaker, clock, transitions = make(threshold=1, reset=5)
    fail(breaker)
    clock.advance(5)
    probe = breaker.admit()
    breaker.record_failure(probe, ServiceError("still down"))
    assert breaker.state is BreakerState.OPEN
    assert breaker.metrics().last_error.endswith("still down")
    assert transitions[-2:] == [("open", "half_open"), ("half_open", "open")]


def test_released_probe_frees_the_slot() -> None:
    breaker, clock, _ = make(threshold=1, reset=5)
    fail(breaker)
    clock.advance(5)
    probe = breaker.admit()
    breaker.release(probe)  # e.g. cancelled
    second = breaker.admit()
    assert second.probe
    breaker.record_failure(second, ValidationError("our fault"))  # not counted: frees slot
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.admit().probe


def test_hung_probe_times_out_on_next_admit() -> None:
    breaker, clock, transitions = make(threshold=1, reset=5, probe=10)
    fail(breaker)
    clock.advance(5)
    hung = breaker.admit()
    clock.advance(9)
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    clock.advance(1)
    with pytest.raises(CircuitOpenError):
        breaker.admit()  # the probe is declared failed: open again
    assert breaker.state is BreakerState.OPEN
    assert "probe" in breaker.metrics().last_error
    breaker.record_success(hung)  # a late answer of a stale probe changes nothing
    assert breaker.state is BreakerState.OPEN
    assert transitions[-1] == ("half_open", "open")


def test_stale_admission_cannot_close_or_reopen() -> None:
    breaker, clock, _ = make(threshold=1, reset=5)
    slow = breaker.admit()  # admitted while closed
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    breaker.record_success(slow)
    assert breaker.state is BreakerState.OPEN
    clock.advance(5)
    probe = breaker.admit()
    breaker.record_failure(slow, ServiceError("late"))
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED


def test_reset_closes_and_clears() -> None:
    breaker, _clock, transitions = make(threshold=1)
    fail(breaker)
    breaker.reset()
    m = breaker.metrics()
    assert m.state is BreakerState.CLOSED and m.failure_count == 0 and m.last_error == ""
    assert transitions[-1] == ("open", "closed")


def test_listener_error_does_not_break_the_breaker() -> None:
    breaker, _clock, transitions = make(threshold=1)

    def broken(*_args: object) -> None:
        raise RuntimeError("listener bug")

    breaker._listeners.insert(0, broken)
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert transitions == [("closed", "open")]


def succeed(breaker: CircuitBreaker) -> None:
    breaker.record_success(breaker.admit())


def test_sporadic_faults_below_the_failure_rate_keep_it_closed() -> None:
    breaker, clock, transitions = make(threshold=3)
    for i in range(100):  # three faults in ten calls, more than the threshold in the window
        clock.advance(0.1)
        if i % 10 in (2, 5, 8):
            fail(breaker)
        else:
            succeed(breaker)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.metrics().failure_count == 30
    assert transitions == []


def test_a_server_that_starts_failing_every_call_opens_it_despite_earlier_successes() -> None:
    breaker, clock, transitions = make(threshold=3)
    for _ in range(5):
        succeed(breaker)
    for _ in range(4):
        clock.advance(1.0)
        fail(breaker)
    assert breaker.state is BreakerState.CLOSED  # 4 of 9 calls failed: below one half
    clock.advance(1.0)
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert transitions == [("closed", "open")]


def test_old_successes_leave_the_window() -> None:
    breaker, clock, _ = make(threshold=3, window=10.0)
    for _ in range(20):
        succeed(breaker)
    clock.advance(11.0)
    for _ in range(3):
        fail(breaker)
    assert breaker.state is BreakerState.OPEN


# --- property test -----------------------------------------------------------------------------

ERRORS: list[Exception] = [
    ServiceError("503", status_code=503),
    PodTimeoutError("timeout"),
    ValidationError("bad"),
    RateLimitError("429"),
    AuthenticationError("401"),
]


class BreakerMachine(RuleBasedStateMachine):
    """Random admits, outcomes, releases and time advances keep the invariants."""

    THRESHOLD = 3
    WINDOW = 20.0
    RESET = 15.0
    PROBE = 8.0

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "svc",
            BreakerConfig(self.THRESHOLD, self.WINDOW, self.RESET, self.PROBE),
            clock=self.clock,
            wall_clock=self.clock,
        )
        self.breaker.add_listener(self._on_transition)
        self.outstanding: list[Admission] = []
        self.closed_failures: list[float] = []  # counted failures of the current closed period
        self.successes: list[float] = []  # every success since the breaker last closed
        self.closed_generation_admissions: set[int] = set()
        self.last_action = ""
        self.violations: list[str] = []

    def _on_transition(self, _b: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        # The breaker shields itself from listener errors, so violations are collected and
        # asserted by an invariant.
        try:
            self._check_transition(old, new)
        except AssertionError as exc:
            self.violations.append(f"{old}->{new}: {exc}")

    def _check_transition(self, old: BreakerState, new: BreakerState) -> None:
        now = self.clock.now
        if old is BreakerState.CLOSED and new is BreakerState.OPEN:
            assert self._over_limits(now), "opened below the failure count or rate"
        if old is BreakerState.HALF_OPEN and new is BreakerState.OPEN:
            assert self.last_action in ("probe failed", "admit"), self.last_action
        if new is BreakerState.CLOSED:
            assert old is BreakerState.HALF_OPEN
            assert self.last_action == "probe succeeded"
            self.closed_failures = []
            self.successes = []
            self.closed_generation_admissions = set()

    def _over_limits(self, now: float) -> bool:
        failures = len([t for t in self.closed_failures if t > now - self.WINDOW])
        successes = len([t for t in self.successes if t > now - self.WINDOW])
        rate = self.breaker.config.failure_rate
        return failures >= self.THRESHOLD and failures >= rate * (failures + successes)

    @rule()
    def admit(self) -> None:
        self.last_action = "admit"
        try:
            admission = self.breaker.admit()
        except CircuitOpenError as exc:
            assert self.breaker.state is not BreakerState.CLOSED
            assert exc.retry_in >= 0
            return
        if not admission.probe:
            assert self.breaker.state is BreakerState.CLOSED
            self.closed_generation_admissions.add(id(admission))
        self.outstanding.append(admission)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def succeed(self, data: st.DataObject) -> None:
        admission = self.outstanding.pop(data.draw(st.integers(0, len(self.outstanding) - 1)))
        is_current_probe = admission.probe and self.breaker.probe_in_flight
        self.last_action = "probe succeeded" if is_current_probe else "success"
        self.successes.append(self.clock.now)
        self.breaker.record_success(admission)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), error=st.sampled_from(ERRORS))
    def fail(self, data: st.DataObject, error: Exception) -> None:
        admission = self.outstanding.pop(data.draw(st.integers(0, len(self.outstanding) - 1)))
        self.last_action = "probe failed" if admission.probe else "failure"
        counted = (
            counts_as_failure(error)
            and not admission.probe
            and self.breaker.state is BreakerState.CLOSED
            and id(admission) in self.closed_generation_admissions
        )
        if counted:
            self.closed_failures.append(self.clock.now)
        self.breaker.record_failure(admission, error)
        if counted and self.breaker.state is BreakerState.CLOSED:
            assert not self._over_limits(self.clock.now), "stayed closed over the limits"

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        admission = self.outstanding.pop(data.draw(st.integers(0, len(self.outstanding) - 1)))
        self.last_action = "release"
        self.breaker.release(admission)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 7.0, 9.0, 16.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def transitions_were_legal(self) -> None:
        assert not self.violations

    @invariant()
    def at_most_one_probe(self) -> None:
        live_probes = [
            a for a in self.outstanding if a.probe and a.generation == self.breaker._generation
        ]
        if self.breaker.state is BreakerState.HALF_OPEN:
            assert len(live_probes) <= 1
            assert (len(live_probes) == 1) == self.breaker.probe_in_flight
        else:
            assert not live_probes

    @invariant()
    def metrics_consistent(self) -> None:
        m = self.breaker.metrics()
        assert m.state is self.breaker.state
        assert (m.next_attempt_time is not None) == (m.state is BreakerState.OPEN)
        if m.next_attempt_time is not None:
            assert m.next_attempt_time >= self.clock.now - 1e-9
        assert 0 <= m.failure_count <= m.total_failures
        if m.total_failures:
            assert m.last_failure_time is not None and m.last_error


BreakerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestBreakerProperties = BreakerMachine.TestCase
