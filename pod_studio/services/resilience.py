"""Services layer: retry policies, circuit breakers and rate budgets around every remote call.

Layering of one call (outside -> inside): ``ServiceGuard.call`` runs a fresh tenacity
``AsyncRetrying``; each attempt is admitted by the breaker (``CircuitOpenError`` fails fast
and is not retried), then waits for the rate budget, then runs ``fn`` (a half-open probe is
bounded by the breaker's ``probe_timeout``). Request-level retries cover seconds; anything
longer (a long ``Retry-After``, an open breaker, an empty retry budget) is raised so that
the job queue can reschedule the work.

``ResilienceHub`` owns one ``BreakerManager``, the rate budgets and the retry budgets of the
app, and hands out one ``ServiceGuard`` per (service, breaker).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from pod_studio.domain.breaker import (
    BreakerConfig,
    BreakerMetrics,
    BreakerState,
    CircuitBreaker,
    counts_as_failure,
)
from pod_studio.domain.errors import (
    AuthenticationError,
    CircuitOpenError,
    CircuitTrippedError,
    PodStudioError,
    PodTimeoutError,
    RateLimitError,
    is_retryable,
)
from pod_studio.domain.events import (
    BreakerChanged,
    EventSink,
    RetryOutcome,
    RetryScheduled,
    null_sink,
)
from pod_studio.services.ratelimit import RateBudget

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SERVICES = ("comfyui", "printify", "shopify", "etsy", "export")
_RETRY_AFTER_JITTER = 0.25  # spread parallel workers after a server-given wait


# --- policy ------------------------------------------------------------------------------------


class RetryPolicy(BaseModel):
    """How one service's calls are retried (request level: seconds, not hours)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_retries: int = Field(default=3, ge=0, le=20)
    initial_delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=30.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    jitter: float = Field(default=1.0, ge=0)
    retry_after_cap: float = Field(default=120.0, ge=0)
    total_budget_seconds: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _check_delays(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= initial_delay ({self.initial_delay})"
            )
        return self

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter included.

        The jitter is added after capping, so workers stay spread out once the
        exponential term has reached ``max_delay``.
        """
        exponent = max(0, attempt - 1)
        try:
            base = self.initial_delay * self.backoff_multiplier**exponent
        except OverflowError:
            base = self.max_delay
        base = min(base, self.max_delay) if math.isfinite(base) else self.max_delay
        return base + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)


DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    "comfyui": RetryPolicy(
        max_retries=3, initial_delay=1.0, max_delay=15.0, jitter=0.5,
        retry_after_cap=30.0, total_budget_seconds=60.0,
    ),
    "printify": RetryPolicy(
        max_retries=4, initial_delay=1.0, max_delay=30.0, jitter=1.0,
        retry_after_cap=120.0, total_budget_seconds=120.0,
    ),
    "shopify": RetryPolicy(
        max_retries=4, initial_delay=0.5, max_delay=20.0, jitter=0.5,
        retry_after_cap=60.0, total_budget_seconds=90.0,
    ),
    "etsy": RetryPolicy(
        max_retries=3, initial_delay=1.0, max_delay=30.0, jitter=1.0,
        retry_after_cap=120.0, total_budget_seconds=120.0,
    ),
    "export": RetryPolicy(
        max_retries=2, initial_delay=0.2, max_delay=2.0, jitter=0.1,
        retry_after_cap=5.0, total_budget_seconds=10.0,
    ),
}  # fmt: skip

DEFAULT_BREAKERS: dict[str, BreakerConfig] = {
    "comfyui": BreakerConfig(
        failure_threshold=3, window_seconds=60, reset_timeout=15, probe_timeout=30
    ),
    "printify": BreakerConfig(
        failure_threshold=5, window_seconds=60, reset_timeout=30, probe_timeout=20
    ),
    "shopify": BreakerConfig(
        failure_threshold=5, window_seconds=60, reset_timeout=30, probe_timeout=20
    ),
    "etsy": BreakerConfig(
        failure_threshold=5, window_seconds=60, reset_timeout=30, probe_timeout=20
    ),
    "export": BreakerConfig(
        failure_threshold=5, window_seconds=60, reset_timeout=10, probe_timeout=30
    ),
}


def service_of(breaker_name: str) -> str:
    """``"comfyui@127.0.0.1:8188"`` -> ``"comfyui"``."""
    return breaker_name.split("@", 1)[0]


# --- retry budget ------------------------------------------------------------------------------


class RetryBudget:
    """A per-service token bucket that bounds retries to a fraction of successes.

    Each successful attempt adds ``deposit`` tokens (up to ``capacity``); each retry costs
    one. With fewer than one token left there is no immediate retry: the error goes up and
    the job queue retries later, so retries cannot pile onto an overloaded server.

    The defaults allow, sustained, one retry per two successes (at most 1.5 x the load) and a
    burst of 20. Measured with ``bench.resilience``: one request in three failing needs about
    0.43 retries per success; the earlier 0.1 refused most of them, and every refused retry
    cost a whole job attempt (a new prompt) instead of one request.
    """

    def __init__(self, capacity: float = 20.0, deposit: float = 0.5) -> None:
        if not math.isfinite(capacity) or capacity < 1:
            raise ValueError(f"retry budget capacity must be a finite number >= 1, got {capacity}")
        if not math.isfinite(deposit) or deposit < 0:
            raise ValueError(f"retry budget deposit must be a finite number >= 0, got {deposit}")
        self.capacity = float(capacity)
        self.deposit = float(deposit)
        self._tokens = float(capacity)

    @property
    def tokens(self) -> float:
        return self._tokens

    def on_success(self) -> None:
        self._tokens = min(self.capacity, self._tokens + self.deposit)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


# --- breakers ----------------------------------------------------------------------------------


class BreakerManager:
    """One ``CircuitBreaker`` per name; every transition is pushed as ``BreakerChanged``."""

    def __init__(
        self,
        sink: EventSink = null_sink,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        config_for: Callable[[str], BreakerConfig] | None = None,
        *,
        is_failure: Callable[[BaseException], bool] = counts_as_failure,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._wall_clock = wall_clock
        self._config_for = config_for or (lambda _name: BreakerConfig())
        self._is_failure = is_failure
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name,
                self._config_for(name),
                clock=self._clock,
                wall_clock=self._wall_clock,
                is_failure=self._is_failure,
            )
            breaker.add_listener(self._on_transition)
            self._breakers[name] = breaker
        return breaker

    def announce(self) -> None:
        """Push every breaker's current state and counts (for views that start late)."""
        for name in sorted(self._breakers):
            breaker = self._breakers[name]
            self._on_transition(breaker, breaker.state, breaker.state)

    def announce_changing(self) -> None:
        """Push the state of breakers that are not closed (their "next attempt in" moves);
        nothing when all are closed, so an idle app stays idle."""
        for name in sorted(self._breakers):
            breaker = self._breakers[name]
            if breaker.state.value != "closed":
                self._on_transition(breaker, breaker.state, breaker.state)

    def names(self) -> list[str]:
        return sorted(self._breakers)

    def reset(self, name: str) -> None:
        breaker = self._breakers.get(name)
        if breaker is not None:
            breaker.reset()

    def reset_all(self) -> None:
        for breaker in list(self._breakers.values()):
            breaker.reset()

    def snapshot(self) -> list[BreakerMetrics]:
        return [self._breakers[name].metrics() for name in sorted(self._breakers)]

    def _on_transition(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        m = breaker.metrics()
        if old != new:
            log.info("breaker %s: %s -> %s", breaker.name, old, new)
        self._sink(
            BreakerChanged(
                name=breaker.name,
                old_state=str(old),
                new_state=str(new),
                failure_count=m.failure_count,
                success_count=m.success_count,
                last_failure_time=m.last_failure_time,
                next_attempt_time=m.next_attempt_time,
                last_error=m.last_error,
            )
        )


# --- the guard ---------------------------------------------------------------------------------


class CallRecorder(Protocol):
    """What a guard reports to the statistics (``StatsService`` implements it)."""

    def record_call(self, service: str, seconds: float, ok: bool) -> None: ...

    def record_retry(self, service: str) -> None: ...


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of ``exc`` for events and logs."""
    if isinstance(exc, PodStudioError):
        return f"{exc.kind}: {exc.message}"[:300]
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]


@dataclass
class _CallState:
    start: float
    attempts: int = 0
    next_wait: float = 0.0
    wait_reason: str = ""
    stop_reason: str = ""
    replacement: PodStudioError | None = None
    last_failure: PodStudioError | None = None  # the last real error of this call's attempts
    retried: bool = False
    hints: list[float] = field(default_factory=list)


class ServiceGuard:
    """The real ``CallGuard``: retry + circuit breaker + rate budget for one service."""

    def __init__(
        self,
        service: str,
        *,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        budget: RateBudget | None = None,
        sink: EventSink = null_sink,
        stats: CallRecorder | None = None,
        retry_budget: RetryBudget | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.policy = policy
        self.breaker = breaker
        self.budget = budget
        self.retry_budget = retry_budget
        self._sink = sink
        self._stats = stats
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T:
        state = _CallState(start=self._clock())

        def should_retry(retry_state: RetryCallState) -> bool:
            return self._should_retry(state, idempotent, retry_state)

        def before_sleep(retry_state: RetryCallState) -> None:
            self._before_sleep(state, operation, retry_state)

        retrying = AsyncRetrying(
            retry=should_retry,
            wait=lambda _rs: state.next_wait,
            stop=stop_after_attempt(self.policy.max_retries + 1),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    state.attempts = attempt.retry_state.attempt_number
                    result = await self._attempt(fn, cost, bucket)
                if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
                    if state.retried:
                        self._emit_outcome(operation, state, "succeeded")
                    return result
        except Exception as exc:
            final: BaseException = state.replacement or exc
            gave_up = is_retryable(final) and state.stop_reason != "not retried"
            self._emit_outcome(
                operation, state, "gave up" if gave_up else "failed", describe_error(final)
            )
            if state.replacement is not None:
                raise state.replacement from exc
            raise
        raise AssertionError("tenacity ended without a result")  # pragma: no cover

    # --- one attempt ----------------------------------------------------------------------------

    async def _attempt(self, fn: Callable[[], Awaitable[T]], cost: float, bucket: str | None) -> T:
        # The rate budget is waited for before the breaker admits the call: a wait (e.g. for
        # the publish window) is never a failure, holds no permit and cannot outlast a probe.
        # An open breaker still refuses at once, without spending budget.
        self.breaker.check()
        if self.budget is not None:
            await self.budget.acquire(cost, bucket)
        admission = self.breaker.admit()
        started = self._clock()

        try:
            if admission.probe:
                result = await self._probe(fn)
            else:
                result = await fn()
        except Exception as exc:
            self.breaker.record_failure(admission, exc)
            if self._stats is not None:
                self._stats.record_call(self.service, self._clock() - started, False)
            raise
        except BaseException:  # cancelled: says nothing about the remote
            self.breaker.release(admission)
            raise
        self.breaker.record_success(admission)
        if self.retry_budget is not None:
            self.retry_budget.on_success()
        if self._stats is not None:
            self._stats.record_call(self.service, self._clock() - started, True)
        return result

    async def _probe(self, fn: Callable[[], Awaitable[T]]) -> T:
        limit = self.breaker.config.probe_timeout
        try:
            async with asyncio.timeout(limit) as scope:
                return await fn()
        except TimeoutError as exc:
            if scope.expired():
                raise PodTimeoutError(
                    f"probe call gave no answer within {limit:g} s",
                    service=self.service,
                    user_message=f"{self.service} did not answer in time.",
                ) from exc
            raise

    # --- tenacity hooks -------------------------------------------------------------------------

    def _should_retry(
        self, state: _CallState, idempotent: bool, retry_state: RetryCallState
    ) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        if not isinstance(exc, Exception):
            return False  # cancellation and friends propagate untouched
        if isinstance(exc, CircuitOpenError) and state.last_failure is not None:
            # This call's own failures opened the breaker: it failed with them (a job is
            # charged for it, and told the real cause), then waits for the breaker like any
            # call. A call that meets a breaker already open gets a plain CircuitOpenError.
            state.stop_reason = "breaker opened"
            state.replacement = CircuitTrippedError(
                exc.service, exc.retry_in, cause=state.last_failure
            )
            return False
        if isinstance(exc, PodStudioError) and not isinstance(exc, CircuitOpenError):
            state.last_failure = exc
        if isinstance(exc, CircuitOpenError | AuthenticationError) or not is_retryable(exc):
            state.stop_reason = "not retried"
            return False
        if not idempotent and not isinstance(exc, RateLimitError):
            # The request may have landed: only the caller can tell, after reconciling.
            state.stop_reason = "not retried"
            return False
        policy = self.policy
        if retry_state.attempt_number > policy.max_retries:
            state.stop_reason = "attempts exhausted"
            return False
        remaining = policy.total_budget_seconds - (self._clock() - state.start)
        hint = self._retry_after(exc)
        if hint is not None:
            limit = max(0.0, min(policy.retry_after_cap, remaining))
            if hint > limit:
                state.stop_reason = "retry-after beyond budget"
                state.replacement = self._too_long_error(exc, hint, limit)
                return False
            wait = hint + self._rng.uniform(0.0, _RETRY_AFTER_JITTER)
            wait = min(wait, max(hint, remaining))
            reason = "Retry-After header"
        else:
            wait = policy.backoff(retry_state.attempt_number, self._rng)
            reason = "exponential backoff"
            if wait > remaining:
                state.stop_reason = "time budget exhausted"
                return False
        if self.retry_budget is not None and not self.retry_budget.try_spend():
            state.stop_reason = "retry budget exhausted"
            log.warning("%s: retry budget exhausted, not retrying now", self.service)
            return False
        state.next_wait = wait
        state.wait_reason = reason
        return True

    @staticmethod
    def _retry_after(exc: BaseException) -> float | None:
        if not isinstance(exc, RateLimitError):
            return None
        hint = exc.retry_after
        if hint is None or isinstance(hint, bool) or not isinstance(hint, int | float):
            return None
        if math.isnan(hint):
            return None
        return max(0.0, float(hint))

    def _too_long_error(self, exc: BaseException, hint: float, limit: float) -> RateLimitError:
        shown = "a very long time" if math.isinf(hint) else f"{hint:.0f} s"
        user = (
            f"{self.service} asked POD Studio to pause for {shown}; the step is "
            "put back in the queue and will be retried later."
        )
        if isinstance(exc, RateLimitError) and exc.user_message != exc.message:
            # The adapter or budget explained the wait (e.g. "the daily quota frees up at ..").
            user = f"{exc.user_message.rstrip()} The step is put back in the queue."
        error = RateLimitError(
            f"server asked to wait {shown}, more than the {limit:.0f} s this call may wait",
            retry_after=hint if math.isfinite(hint) else None,
            service=self.service,
            user_message=user,
        )
        if isinstance(exc, RateLimitError):
            error.status_code = exc.status_code
        return error

    def _before_sleep(self, state: _CallState, operation: str, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        cause = describe_error(exc) if exc is not None else ""
        state.retried = True
        log.warning(
            "%s %s: attempt %d failed (%s); retrying in %.2f s (%s)",
            self.service, operation, retry_state.attempt_number, cause,
            state.next_wait, state.wait_reason,
        )  # fmt: skip
        if self._stats is not None:
            self._stats.record_retry(self.service)
        self._sink(
            RetryScheduled(
                service=self.service,
                operation=operation,
                attempt=retry_state.attempt_number,
                cause=cause,
                wait_seconds=round(state.next_wait, 3),
                wait_reason=state.wait_reason,
            )
        )

    def _emit_outcome(
        self, operation: str, state: _CallState, outcome: str, cause: str = ""
    ) -> None:
        self._sink(
            RetryOutcome(
                service=self.service,
                operation=operation,
                attempts=max(1, state.attempts),
                outcome=outcome,
                cause=cause,
            )
        )


# --- the hub -----------------------------------------------------------------------------------


def _merge(default: BaseModel | BreakerConfig, override: Any, kind: type[Any]) -> Any:
    if isinstance(override, kind):
        return override
    if not isinstance(override, Mapping):
        raise ValueError(f"expected a {kind.__name__} or a mapping, got {type(override).__name__}")
    if kind is RetryPolicy:
        assert isinstance(default, RetryPolicy)
        return RetryPolicy.model_validate({**default.model_dump(), **override})
    assert isinstance(default, BreakerConfig)
    known = set(BreakerConfig.__dataclass_fields__)
    unknown = set(override) - known
    if unknown:
        raise ValueError(f"unknown breaker setting(s): {', '.join(sorted(map(str, unknown)))}")
    values = {name: getattr(default, name) for name in known}
    values.update(override)
    return BreakerConfig(**values)


class ResilienceHub:
    """The app's resilience state: breakers, rate budgets, retry budgets and guards.

    ``settings`` may hold ``"policies"`` and ``"breakers"`` (service -> ``RetryPolicy`` /
    ``BreakerConfig`` or a mapping of fields overriding the defaults) and
    ``"retry_budget"`` (``{"capacity": 20, "deposit": 0.5}``). Bad values raise
    ``ValueError`` naming the setting.
    """

    def __init__(
        self,
        sink: EventSink = null_sink,
        *,
        settings: Mapping[str, Any] | None = None,
        budgets: Mapping[str, RateBudget] | None = None,
        stats: CallRecorder | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        settings = dict(settings or {})
        unknown = set(settings) - {"policies", "breakers", "retry_budget"}
        if unknown:
            raise ValueError(f"unknown resilience setting(s): {', '.join(sorted(unknown))}")
        self._policies: dict[str, RetryPolicy] = dict(DEFAULT_POLICIES)
        for service, value in dict(settings.get("policies") or {}).items():
            base = self._policies.get(service, RetryPolicy())
            try:
                self._policies[service] = _merge(base, value, RetryPolicy)
            except ValueError as exc:
                raise ValueError(f"retry policy for {service!r}: {exc}") from exc
        self._breaker_configs: dict[str, BreakerConfig] = dict(DEFAULT_BREAKERS)
        for service, value in dict(settings.get("breakers") or {}).items():
            base_cfg = self._breaker_configs.get(service, BreakerConfig())
            try:
                self._breaker_configs[service] = _merge(base_cfg, value, BreakerConfig)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"breaker settings for {service!r}: {exc}") from exc
        rb = dict(settings.get("retry_budget") or {})
        self._retry_budget_args = (
            float(rb.get("capacity", 20.0)),
            float(rb.get("deposit", 0.5)),
        )
        RetryBudget(*self._retry_budget_args)  # validate now, not at the first call
        self._sink = sink
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.breakers = BreakerManager(
            sink, clock=clock, wall_clock=wall_clock, config_for=self.breaker_config_for
        )
        self.budgets: dict[str, RateBudget] = dict(budgets or {})
        self.retry_budgets: dict[str, RetryBudget] = {}
        self._guards: dict[tuple[str, str], ServiceGuard] = {}

    def policy_for(self, service: str) -> RetryPolicy:
        return self._policies.get(service, RetryPolicy())

    def breaker_config_for(self, name: str) -> BreakerConfig:
        return self._breaker_configs.get(service_of(name), BreakerConfig())

    def set_budget(self, service: str, budget: RateBudget) -> None:
        self.budgets[service] = budget
        for (svc, _name), guard in self._guards.items():
            if svc == service:
                guard.budget = budget

    def retry_budget_for(self, service: str) -> RetryBudget:
        budget = self.retry_budgets.get(service)
        if budget is None:
            budget = self.retry_budgets[service] = RetryBudget(*self._retry_budget_args)
        return budget

    def guard(self, service: str, breaker_name: str | None = None) -> ServiceGuard:
        """The guard for ``service`` (breaker ``breaker_name``, default: the service name)."""
        name = breaker_name or service
        key = (service, name)
        guard = self._guards.get(key)
        if guard is None:
            guard = ServiceGuard(
                service,
                policy=self.policy_for(service),
                breaker=self.breakers.get(name),
                budget=self.budgets.get(service),
                sink=self._sink,
                stats=self._stats,
                retry_budget=self.retry_budget_for(service),
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
            )
            self._guards[key] = guard
        return guard

    def snapshot(self) -> dict[str, Any]:
        """Breakers, budget texts and retry-budget levels, JSON-able (for the Health dock)."""
        return {
            "breakers": [m.as_dict() for m in self.breakers.snapshot()],
            "budgets": {name: b.describe() for name, b in sorted(self.budgets.items())},
            "retry_budgets": {
                name: round(b.tokens, 2) for name, b in sorted(self.retry_budgets.items())
            },
        }
