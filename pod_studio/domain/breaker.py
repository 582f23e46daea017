"""Domain layer: the circuit breaker state machine (pure, synchronous, clock injected).

CLOSED -> OPEN once, within ``window_seconds``, there are at least ``failure_threshold``
counted failures AND they are at least ``failure_rate`` of the calls that ended there (a busy
server with sporadic faults keeps serving; a dead one fails every call and opens at once);
OPEN -> HALF_OPEN once ``reset_timeout`` has passed (checked lazily in ``admit``);
HALF_OPEN admits exactly one probe: its success closes the breaker, its failure re-opens it.

The breaker never awaits anything: ``admit`` checks and updates state in one synchronous
step, so concurrent coroutines cannot both become the probe. Applying ``probe_timeout`` to
the awaited call is the service wrapper's job; as a safety net a probe that was neither
recorded nor released within ``probe_timeout`` is treated as failed on the next ``admit``.

Every admission carries the breaker's generation: results of calls admitted before a state
change (a slow call that was admitted while CLOSED and ends after the breaker opened) update
the counters but never change the state.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pod_studio.domain.errors import (
    APIError,
    CircuitOpenError,
    PodStudioError,
    ServiceError,
    TimeoutError,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class BreakerConfig:
    """When a breaker opens and how long it stays open.

    ``failure_threshold`` counted failures within ``window_seconds`` open the breaker when
    they are at least ``failure_rate`` of the calls that ended in that window (1.0: only
    when every call failed; the default 0.5 is the usual failure-rate rule, so one fault in
    three on a busy server does not stop the work); it lets one probe through after
    ``reset_timeout`` seconds; a probe taking longer than ``probe_timeout`` seconds counts
    as failed.
    """

    failure_threshold: int = 5
    window_seconds: float = 60.0
    reset_timeout: float = 30.0
    probe_timeout: float = 20.0
    failure_rate: float = 0.5

    def __post_init__(self) -> None:
        threshold = self.failure_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValueError(f"failure_threshold must be an integer >= 1, got {threshold!r}")
        _positive("window_seconds", self.window_seconds)
        _positive("reset_timeout", self.reset_timeout)
        _positive("probe_timeout", self.probe_timeout)
        _positive("failure_rate", self.failure_rate)
        if self.failure_rate > 1:
            raise ValueError(f"failure_rate must be at most 1, got {self.failure_rate!r}")


@dataclass(frozen=True)
class Admission:
    """A permit to make one call; hand it back with ``record_*`` or ``release``."""

    breaker: str
    probe: bool
    generation: int


@dataclass(frozen=True)
class BreakerMetrics:
    """A snapshot of one breaker (times: ``last_failure_time``/``next_attempt_time`` are
    wall-clock epoch seconds, for display and countdowns)."""

    name: str
    state: BreakerState
    failure_count: int
    success_count: int
    total_failures: int
    last_failure_time: float | None
    next_attempt_time: float | None
    last_error: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": str(self.state),
            "failure_count": self.failure_count,
            "success_count": self.success_count,
            "total_failures": self.total_failures,
            "last_failure_time": self.last_failure_time,
            "next_attempt_time": self.next_attempt_time,
            "last_error": self.last_error,
        }


def counts_as_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says something about the remote's health.

    5xx (``ServiceError``), garbage bodies (``UpstreamDataError``), timeouts and transport
    errors that were not mapped (``OSError``, ``EOFError``) count. The request's own faults
    (``ValidationError``, ``AuthenticationError``, 4xx ``APIError``) and throttling
    (``RateLimitError``, owned by the rate budget) do not; neither do cancellations.
    """
    if not isinstance(exc, Exception):
        return False
    if isinstance(exc, ServiceError | TimeoutError):
        return True
    if isinstance(exc, APIError):
        status = exc.status_code
        return type(exc) is APIError and status is not None and (status >= 500 or status == 408)
    if isinstance(exc, PodStudioError):
        return False
    return isinstance(exc, OSError | EOFError)


Listener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PodStudioError):
        return f"{exc.kind}: {exc.message}"[:300]
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]


class CircuitBreaker:
    """One breaker per remote (service, or service@server). Not thread-safe: use it from the
    event loop thread only (every method is synchronous and short)."""

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._is_failure = is_failure
        self._listeners: list[Listener] = []
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures: deque[float] = deque()
        self._successes: deque[float] = deque()  # within the window, for the failure rate
        self._success_count = 0
        self._total_failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._last_failure_wall: float | None = None
        self._last_error = ""

    # --- queries -----------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        return self._state

    def metrics(self) -> BreakerMetrics:
        now = self._clock()
        self._prune(now)
        next_attempt: float | None = None
        if self._state is BreakerState.OPEN:
            remaining = max(0.0, self._opened_at + self.config.reset_timeout - now)
            next_attempt = self._wall_clock() + remaining
        return BreakerMetrics(
            name=self.name,
            state=self._state,
            failure_count=len(self._failures),
            success_count=self._success_count,
            total_failures=self._total_failures,
            last_failure_time=self._last_failure_wall,
            next_attempt_time=next_attempt,
            last_error=self._last_error,
        )

    @property
    def probe_in_flight(self) -> bool:
        return self._probe_started is not None

    def counts(self, exc: BaseException) -> bool:
        return self._is_failure(exc)

    # --- listeners ---------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners.remove(fn)

    # --- the state machine -------------------------------------------------------------------

    def check(self) -> None:
        """``CircuitOpenError`` if ``admit()`` would refuse now; changes nothing (so a caller
        can wait for its rate budget first and take its permit, or probe, only after)."""
        self._refuse_while_waiting(self._clock())

    def admit(self) -> Admission:
        """A permit for one call, or ``CircuitOpenError`` (nothing remote is touched)."""
        now = self._clock()
        self._refuse_while_waiting(now)
        if self._state is BreakerState.OPEN:
            self._transition(BreakerState.HALF_OPEN)  # the reset timeout has passed
        if self._state is BreakerState.HALF_OPEN:
            if self._probe_started is not None:  # a probe older than the probe timeout
                self._total_failures += 1
                self._note_failure(f"probe gave no answer within {self.config.probe_timeout:g} s")
                self._open(now)
                raise CircuitOpenError(
                    self.name, self.config.reset_timeout, last_error=self._last_error
                )
            self._probe_started = now
            return Admission(self.name, probe=True, generation=self._generation)
        return Admission(self.name, probe=False, generation=self._generation)

    def record_success(self, admission: Admission) -> None:
        self._success_count += 1
        now = self._clock()
        self._successes.append(now)
        self._prune(now)
        if self._is_current_probe(admission):
            self._probe_started = None
            self._failures.clear()
            self._successes.clear()
            self._transition(BreakerState.CLOSED)

    def record_failure(self, admission: Admission, exc: BaseException) -> None:
        """Count ``exc`` if it says the remote is unhealthy; otherwise just free the permit."""
        if not self._is_failure(exc):
            self.release(admission)
            return
        now = self._clock()
        self._total_failures += 1
        self._note_failure(_describe(exc))
        if self._is_current_probe(admission):
            self._probe_started = None
            self._failures.append(now)
            self._open(now)
            return
        if admission.generation != self._generation or self._state is not BreakerState.CLOSED:
            return  # a late result from before the last transition: counted, not acted upon
        self._failures.append(now)
        self._prune(now)
        failures = len(self._failures)
        if failures < self.config.failure_threshold:
            return
        if failures >= self.config.failure_rate * (failures + len(self._successes)):
            self._open(now)

    def release(self, admission: Admission) -> None:
        """The call ended without saying anything about the remote (cancelled, 4xx ...)."""
        if self._is_current_probe(admission):
            self._probe_started = None

    def reset(self) -> None:
        """Back to CLOSED with clean counters (the seller pressed "reset")."""
        self._failures.clear()
        self._successes.clear()
        self._success_count = 0
        self._total_failures = 0
        self._probe_started = None
        self._last_failure_wall = None
        self._last_error = ""
        if self._state is BreakerState.CLOSED:
            self._generation += 1
        else:
            self._transition(BreakerState.CLOSED)

    # --- internals ---------------------------------------------------------------------------

    def _refuse_while_waiting(self, now: float) -> None:
        """``CircuitOpenError`` while OPEN within ``reset_timeout``, or while HALF_OPEN with
        its probe running within ``probe_timeout``."""
        if self._state is BreakerState.OPEN:
            elapsed, limit = now - self._opened_at, self.config.reset_timeout
        elif self._state is BreakerState.HALF_OPEN and self._probe_started is not None:
            elapsed, limit = now - self._probe_started, self.config.probe_timeout
        else:
            return
        if elapsed < limit:
            raise CircuitOpenError(self.name, limit - elapsed, last_error=self._last_error or None)

    def _is_current_probe(self, admission: Admission) -> bool:
        return (
            admission.probe
            and admission.generation == self._generation
            and self._state is BreakerState.HALF_OPEN
            and self._probe_started is not None
        )

    def _note_failure(self, text: str) -> None:
        self._last_failure_wall = self._wall_clock()
        self._last_error = text

    def _prune(self, now: float) -> None:
        horizon = now - self.config.window_seconds
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
        while self._successes and self._successes[0] <= horizon:
            self._successes.popleft()

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._probe_started = None
        self._transition(BreakerState.OPEN)

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        self._generation += 1
        if new is not BreakerState.HALF_OPEN:
            self._probe_started = None
        for fn in list(self._listeners):
            try:
                fn(self, old, new)
            except Exception:
                log.exception("breaker listener failed on %s: %s -> %s", self.name, old, new)
