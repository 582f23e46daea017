"""ServiceGuard / BreakerManager / ResilienceHub: retries, breakers and events, no real waiting."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pod_studio.domain.breaker import BreakerConfig, BreakerState, CircuitBreaker
from pod_studio.domain.errors import (
    AuthenticationError,
    CircuitOpenError,
    CircuitTrippedError,
    PodTimeoutError,
    RateLimitError,
    ServiceError,
    ValidationError,
    wait_seconds,
)
from pod_studio.domain.events import (
    BreakerChanged,
    Event,
    RetryOutcome,
    RetryScheduled,
)
from pod_studio.services.resilience import (
    DEFAULT_POLICIES,
    BreakerManager,
    ResilienceHub,
    RetryBudget,
    RetryPolicy,
    ServiceGuard,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Env:
    """A guard wired to a fake clock, a recording sleep and a recording sink."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.events: list[Event] = []
        self.calls: list[tuple[str, float, bool]] = []
        self.retries: list[str] = []
        self.manager = BreakerManager(
            self.events.append,
            clock=self.clock,
            wall_clock=lambda: 1_700_000_000.0 + self.clock.now,
            config_for=lambda _n: breaker or BreakerConfig(failure_threshold=3),
        )
        self.guard = ServiceGuard(
            "printify",
            policy=policy
            or RetryPolicy(
                max_retries=3, initial_delay=1, max_delay=8, jitter=0, total_budget_seconds=60
            ),
            breaker=self.manager.get("printify"),
            sink=self.events.append,
            stats=self,
            retry_budget=retry_budget,
            sleep=self.sleep,
            clock=self.clock,
            rng=random.Random(7),
        )

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.now += seconds
        await asyncio.sleep(0)

    def record_call(self, service: str, seconds: float, ok: bool) -> None:
        self.calls.append((service, seconds, ok))

    def record_retry(self, service: str) -> None:
        self.retries.append(service)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def script(*steps: Exception | str) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An async fn that raises/returns the given steps in order, counting its calls."""
    calls = [0]

    async def fn() -> str:
        step = steps[min(calls[0], len(steps) - 1)]
        calls[0] += 1
        if isinstance(step, Exception):
            raise step
        return step

    return fn, calls


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_5xx_5xx_then_ok_with_exponential_backoff_and_events_in_order() -> None:
    env = Env()
    fn, calls = script(ServiceError("502", status_code=502), ServiceError("503"), "ok")
    assert await env.guard.call("get_shops", fn) == "ok"
    assert calls[0] == 3
    assert env.sleeps == [1.0, 2.0]
    kinds = [type(e).__name__ for e in env.events]
    assert kinds == ["RetryScheduled", "RetryScheduled", "RetryOutcome"]
    first, second = env.of(RetryScheduled)
    assert (first.attempt, first.wait_seconds, first.wait_reason) == (
        1,
        1.0,
        "exponential backoff",
    )
    assert second.attempt == 2 and "ServiceError" in second.cause
    outcome = env.of(RetryOutcome)[0]
    assert (outcome.outcome, outcome.attempts, outcome.operation) == ("succeeded", 3, "get_shops")
    assert [ok for _s, _d, ok in env.calls] == [False, False, True]
    assert env.retries == ["printify", "printify"]


@pytest.mark.asyncio
async def test_first_try_success_emits_nothing() -> None:
    env = Env()
    fn, _ = script("ok")
    assert await env.guard.call("op", fn) == "ok"
    assert env.events == [] and env.sleeps == []


@pytest.mark.asyncio
async def test_429_retry_after_is_honoured() -> None:
    env = Env()
    fn, calls = script(RateLimitError("429", retry_after=7.0), "ok")
    assert await env.guard.call("create", fn) == "ok"
    assert calls[0] == 2
    assert len(env.sleeps) == 1
    assert 7.0 <= env.sleeps[0] <= 7.25  # the hint plus a little jitter, never earlier
    event = env.of(RetryScheduled)[0]
    assert event.wait_reason == "Retry-After header"


@pytest.mark.asyncio
async def test_retry_after_beyond_budget_fails_at_once_with_clear_message() -> None:
    env = Env()
    fn, calls = script(RateLimitError("429", retry_after=300.0, service="printify"), "ok")
    with pytest.raises(RateLimitError) as info:
        await env.guard.call("publish", fn)
    assert calls[0] == 1 and env.sleeps == []
    err = info.value
    assert err.retry_after == 300.0
    assert "300 s" in err.user_message and "retried later" in err.user_message
    assert isinstance(err.__cause__, RateLimitError)
    outcome = env.of(RetryOutcome)[0]
    assert outcome.outcome == "gave up" and "300 s" in outcome.cause


@pytest.mark.asyncio
async def test_retry_after_above_cap_is_not_slept_early() -> None:
    env = Env(RetryPolicy(retry_after_cap=10, total_budget_seconds=600, jitter=0))
    fn, calls = script(RateLimitError("429", retry_after=30), "ok")
    with pytest.raises(RateLimitError, match="30 s"):
        await env.guard.call("op", fn)
    assert calls[0] == 1 and env.sleeps == []


@pytest.mark.asyncio
async def test_infinite_retry_after_gives_up() -> None:
    env = Env()
    fn, calls = script(RateLimitError("429", retry_after=math.inf), "ok")
    with pytest.raises(RateLimitError, match="very long"):
        await env.guard.call("op", fn)
    assert calls[0] == 1


@pytest.mark.asyncio
async def test_authentication_error_is_not_retried() -> None:
    env = Env()
    fn, calls = script(AuthenticationError("401", status_code=401), "ok")
    with pytest.raises(AuthenticationError):
        await env.guard.call("op", fn)
    assert calls[0] == 1 and env.sleeps == []
    assert env.of(RetryOutcome)[0].outcome == "failed"
    assert env.guard.breaker.metrics().failure_count == 0


@pytest.mark.asyncio
async def test_validation_error_is_not_retried() -> None:
    env = Env()
    fn, calls = script(ValidationError("bad price"), "ok")
    with pytest.raises(ValidationError):
        await env.guard.call("op", fn)
    assert calls[0] == 1


@pytest.mark.asyncio
async def test_attempts_are_bounded() -> None:
    env = Env(breaker=BreakerConfig(failure_threshold=50))
    fn, calls = script(ServiceError("503"))
    with pytest.raises(ServiceError):
        await env.guard.call("op", fn)
    assert calls[0] == 4  # 1 + max_retries
    assert env.sleeps == [1.0, 2.0, 4.0]
    assert env.of(RetryOutcome)[0].outcome == "gave up"


@pytest.mark.asyncio
async def test_time_budget_stops_backoff() -> None:
    env = Env(
        RetryPolicy(max_retries=10, initial_delay=4, max_delay=100, jitter=0,
                    total_budget_seconds=10),
        breaker=BreakerConfig(failure_threshold=50),
    )  # fmt: skip
    fn, calls = script(ServiceError("503"))
    with pytest.raises(ServiceError):
        await env.guard.call("op", fn)
    assert env.sleeps == [4.0]  # the next wait (8 s) would end after the 10 s budget
    assert calls[0] == 2


@pytest.mark.asyncio
async def test_non_idempotent_call_is_not_retried_after_timeout() -> None:
    env = Env()
    fn, calls = script(PodTimeoutError("read timeout"), "created")
    with pytest.raises(PodTimeoutError):
        await env.guard.call("create_product", fn, idempotent=False)
    assert calls[0] == 1 and env.sleeps == []


@pytest.mark.asyncio
async def test_non_idempotent_call_is_retried_after_429() -> None:
    env = Env()
    fn, calls = script(RateLimitError("429", retry_after=1), "created")
    assert await env.guard.call("create_product", fn, idempotent=False) == "created"
    assert calls[0] == 2


@pytest.mark.asyncio
async def test_retry_budget_limits_retries() -> None:
    budget = RetryBudget(capacity=1, deposit=0.1)
    env = Env(retry_budget=budget, breaker=BreakerConfig(failure_threshold=50))
    fn, calls = script(ServiceError("503"))
    with pytest.raises(ServiceError):
        await env.guard.call("op", fn)
    assert calls[0] == 2  # one retry, then the bucket is empty
    assert budget.tokens == 0.0
    ok, _ = script("ok")
    for _ in range(10):
        await env.guard.call("op", ok)
    assert budget.tokens == pytest.approx(1.0)


@pytest.mark.asyncio
async def test_concurrent_calls_count_attempts_separately() -> None:
    env = Env(breaker=BreakerConfig(failure_threshold=50))
    fn_a, calls_a = script(ServiceError("a1"), ServiceError("a2"), "a")
    fn_b, calls_b = script(ServiceError("b1"), ServiceError("b2"), ServiceError("b3"), "b")
    results = await asyncio.gather(env.guard.call("a", fn_a), env.guard.call("b", fn_b))
    assert results == ["a", "b"]
    assert (calls_a[0], calls_b[0]) == (3, 4)
    outcomes = {e.operation: e.attempts for e in env.of(RetryOutcome)}
    assert outcomes == {"a": 3, "b": 4}


@pytest.mark.asyncio
async def test_cancellation_propagates_and_is_not_retried() -> None:
    env = Env()
    started = asyncio.Event()

    async def hang() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(env.guard.call("op", hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.sleeps == [] and env.guard.breaker.metrics().failure_count == 0


# --- breaker integration -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_breaker_opens_after_threshold_and_fails_fast() -> None:
    env = Env(RetryPolicy(max_retries=0))
    fn, calls = script(ServiceError("503"))
    for _ in range(3):
        with pytest.raises(ServiceError):
            await env.guard.call("op", fn)
    assert env.guard.breaker.state is BreakerState.OPEN
    changed = env.of(BreakerChanged)
    assert [(e.old_state, e.new_state) for e in changed] == [("closed", "open")]
    assert changed[0].failure_count == 3 and changed[0].next_attempt_time is not None
    with pytest.raises(CircuitOpenError) as info:
        await env.guard.call("op", fn)
    assert calls[0] == 3  # fn not called while open
    assert info.value.retry_in > 0


@pytest.mark.asyncio
async def test_breaker_opening_mid_retry_stops_retrying_with_the_calls_own_error() -> None:
    """The call whose failures opened the breaker failed with them (a job is charged for
    it); the next call meets the open breaker and is paused (uncharged)."""
    env = Env(breaker=BreakerConfig(failure_threshold=2))
    fn, calls = script(ServiceError("503"))
    with pytest.raises(CircuitTrippedError) as info:
        await env.guard.call("op", fn)
    assert "503" in info.value.user_message and info.value.retryable
    assert wait_seconds(info.value) is None  # a failure of the call: charged
    assert calls[0] == 2 and len(env.sleeps) == 2
    assert env.of(RetryOutcome)[0].outcome == "gave up"
    with pytest.raises(CircuitOpenError) as paused:
        await env.guard.call("op", fn)
    assert not isinstance(paused.value, CircuitTrippedError)
    assert wait_seconds(paused.value) is not None  # met the open breaker: uncharged
    assert calls[0] == 2


@pytest.mark.asyncio
async def test_exactly_one_probe_reaches_backend_when_20_calls_race() -> None:
    env = Env(RetryPolicy(max_retries=0), breaker=BreakerConfig(1, 60, 30, 20))
    failing, _ = script(ServiceError("down"))
    with pytest.raises(ServiceError):
        await env.guard.call("op", failing)
    assert env.guard.breaker.state is BreakerState.OPEN
    env.clock.now += 30

    hits = 0
    entered = asyncio.Event()
    release = asyncio.Event()

    async def backend() -> str:
        nonlocal hits
        hits += 1
        entered.set()
        await release.wait()
        return "recovered"

    tasks = [asyncio.create_task(env.guard.call("op", backend)) for _ in range(20)]
    await entered.wait()
    done, _pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 19
    assert all(isinstance(t.exception(), CircuitOpenError) for t in rejected)
    assert hits == 1
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("recovered") == 1
    assert env.guard.breaker.state is BreakerState.CLOSED
    states = [(e.old_state, e.new_state) for e in env.of(BreakerChanged)]
    assert states == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


@pytest.mark.asyncio
async def test_hung_probe_times_out_and_reopens() -> None:
    clock = FakeClock()
    manager = BreakerManager(clock=clock, config_for=lambda _n: BreakerConfig(1, 60, 10, 0.05))
    guard = ServiceGuard(
        "comfyui", policy=RetryPolicy(max_retries=0), breaker=manager.get("comfyui@x")
    )
    failing, _ = script(ServiceError("down"))
    with pytest.raises(ServiceError):
        await guard.call("op", failing)
    clock.now += 10  # the reset timeout has passed: the next call is the probe

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    with pytest.raises(PodTimeoutError, match="probe"):
        await guard.call("op", hang)
    assert guard.breaker.state is BreakerState.OPEN


@pytest.mark.asyncio
async def test_rate_budget_is_acquired_each_attempt_with_cost_and_bucket() -> None:
    env = Env()
    acquired: list[tuple[float, str | None]] = []

    class Budget:
        async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
            acquired.append((cost, bucket))

        def describe(self) -> str:
            return "plenty"

        def observe_response(self, headers: Any, body: Any = None) -> None:
            return None

    env.guard.budget = Budget()
    fn, _ = script(ServiceError("503"), "ok")
    await env.guard.call("catalog", fn, cost=2.0, bucket="catalog")
    assert acquired == [(2.0, "catalog"), (2.0, "catalog")]


@pytest.mark.asyncio
async def test_budget_refusal_does_not_hold_the_probe() -> None:
    breaker = CircuitBreaker("etsy", BreakerConfig(1, 60, 1, 20), clock=lambda: 0.0)
    breaker.record_failure(breaker.admit(), ServiceError("x"))
    breaker._opened_at = -5.0  # reset timeout elapsed

    class Refusing:
        async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
            raise RateLimitError("quota", retry_after=None)

        def describe(self) -> str:
            return ""

        def observe_response(self, headers: Any, body: Any = None) -> None:
            return None

    guard = ServiceGuard("etsy", policy=RetryPolicy(max_retries=0), breaker=breaker,
                         budget=Refusing())  # fmt: skip
    ok, calls = script("ok")
    with pytest.raises(RateLimitError):
        await guard.call("op", ok)
    assert calls[0] == 0 and not breaker.probe_in_flight


# --- policy and hub ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"initial_delay": -0.5}, "initial_delay"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"jitter": float("nan")}, "jitter"),
        ({"total_budget_seconds": 0}, "total_budget_seconds"),
        ({"retry_after_cap": float("inf")}, "retry_after_cap"),
        ({"initial_delay": 10, "max_delay": 5}, "max_delay"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_policy_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_backoff_keeps_jitter_when_saturated() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=5, backoff_multiplier=2, jitter=1)
    rng = random.Random(1)
    waits = [policy.backoff(50, rng) for _ in range(20)]
    assert all(5.0 <= w <= 6.0 for w in waits)
    assert len(set(waits)) > 1
    assert policy.backoff(10_000, rng) <= 6.0


def test_defaults_exist_for_every_service() -> None:
    assert set(DEFAULT_POLICIES) == {"comfyui", "printify", "shopify", "etsy", "export"}


def test_hub_settings_and_guards() -> None:
    events: list[Event] = []
    hub = ResilienceHub(
        events.append,
        settings={
            "policies": {"printify": {"max_retries": 1}},
            "breakers": {"comfyui": {"failure_threshold": 2}},
        },
    )
    assert hub.policy_for("printify").max_retries == 1
    assert hub.policy_for("printify").max_delay == DEFAULT_POLICIES["printify"].max_delay
    guard = hub.guard("comfyui", "comfyui@127.0.0.1:8188")
    assert guard.breaker.name == "comfyui@127.0.0.1:8188"
    assert guard.breaker.config.failure_threshold == 2
    assert hub.guard("comfyui", "comfyui@127.0.0.1:8188") is guard
    assert hub.guard("comfyui", "comfyui@10.0.0.2:8188").breaker is not guard.breaker
    snap = hub.snapshot()
    assert [b["name"] for b in snap["breakers"]] == [
        "comfyui@10.0.0.2:8188",
        "comfyui@127.0.0.1:8188",
    ]
    assert snap["retry_budgets"] == {"comfyui": 20.0}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"policies": {"printify": {"max_retries": -2}}}, "printify"),
        ({"breakers": {"etsy": {"failure_threshold": 0}}}, "failure_threshold"),
        ({"breakers": {"etsy": {"reset_timeout": float("nan")}}}, "reset_timeout"),
        ({"breakers": {"etsy": {"colour": "red"}}}, "colour"),
        ({"retry_budget": {"capacity": 0}}, "capacity"),
        ({"polices": {}}, "polices"),
    ],
)
def test_hub_refuses_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResilienceHub(settings=settings)


@pytest.mark.asyncio
async def test_hub_reset_emits_breaker_changed() -> None:
    events: list[Event] = []
    hub = ResilienceHub(events.append, settings={"breakers": {"shopify": {"failure_threshold": 1}}})
    guard = hub.guard("shopify")
    fn, _ = script(ServiceError("500"))
    with pytest.raises(ServiceError):
        await ServiceGuard(
            "shopify", policy=RetryPolicy(max_retries=0), breaker=guard.breaker
        ).call("op", fn)
    hub.breakers.reset_all()
    changes = [(e.name, e.new_state) for e in events if isinstance(e, BreakerChanged)]
    assert changes == [("shopify", "open"), ("shopify", "closed")]


@pytest.mark.asyncio
async def test_hub_feeds_statistics() -> None:
    from pod_studio.services.stats import StatsService

    stats = StatsService()
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    hub = ResilienceHub(stats, stats=stats, sleep=fake_sleep)
    fn, _ = script(ServiceError("502"), "ok")
    assert await hub.guard("printify").call("op", fn) == "ok"
    figures = stats.snapshot()["services"]["printify"]
    assert (figures["calls"], figures["failures"], figures["retries"]) == (2, 1, 1)
    assert len(sleeps) == 1


def test_announce_pushes_every_breaker_state_for_late_views() -> None:
    from pod_studio.domain.events import BreakerChanged
    from pod_studio.services.resilience import BreakerManager

    seen: list[BreakerChanged] = []
    manager = BreakerManager(lambda e: seen.append(e) if isinstance(e, BreakerChanged) else None)
    manager.get("printify")
    manager.get("comfyui@127.0.0.1:8188")
    assert seen == []
    manager.announce()
    assert [(e.name, e.old_state, e.new_state) for e in seen] == [
        ("comfyui@127.0.0.1:8188", "closed", "closed"),
        ("printify", "closed", "closed"),
    ]


@pytest.mark.asyncio
async def test_breaker_admits_the_probe_only_after_the_budget_wait() -> None:
    """Waiting for a rate window is not a failure and does not hold the half-open probe."""
    clock = FakeClock()
    breaker = CircuitBreaker("printify", BreakerConfig(1, 60, 10, 5.0), clock=clock)
    entered = asyncio.Event()
    release = asyncio.Event()

    class Slow:
        async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
            entered.set()
            await release.wait()

        def describe(self) -> str:
            return "slow"

        def observe_response(self, headers: Any, body: Any = None) -> None:
            return None

    guard = ServiceGuard(
        "printify", policy=RetryPolicy(max_retries=0), breaker=breaker, budget=Slow()
    )
    failing, _ = script(ServiceError("down"))
    release.set()
    with pytest.raises(ServiceError):
        await guard.call("op", failing)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):  # still open: refused at once, budget untouched
        await guard.call("op", failing)
    clock.now += 60  # the reset timeout has passed: the next call will be the probe
    release.clear()
    entered.clear()
    ok, calls = script("ok")
    task = asyncio.create_task(guard.call("op", ok))
    await entered.wait()
    clock.now += 30  # a long wait for the window: longer than the probe timeout
    assert not breaker.probe_in_flight and breaker.state is BreakerState.OPEN
    release.set()
    assert await task == "ok"
    assert calls[0] == 1 and breaker.state is BreakerState.CLOSED
