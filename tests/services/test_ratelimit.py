"""Rate budgets: Shopify cost bucket (fake clock), Printify smoothing, Etsy day quota on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pod_studio.domain.errors import RateLimitError, is_retryable
from pod_studio.services.ratelimit import (
    EtsyBudget,
    NoBudget,
    PrintifyBudget,
    RateBudget,
    ShopifyCostBucket,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_every_budget_satisfies_the_protocol(tmp_path: Path) -> None:
    etsy = EtsyBudget(tmp_path / "etsy.sqlite")
    try:
        for budget in (NoBudget(), PrintifyBudget(), ShopifyCostBucket(), etsy):
            assert isinstance(budget, RateBudget)
    finally:
        etsy.close()


@pytest.mark.asyncio
async def test_no_budget() -> None:
    budget = NoBudget()
    await budget.acquire(1e9)
    assert budget.describe() == "no limit"


# --- Shopify -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_shopify_bucket_waits_cost_minus_available_over_rate() -> None:
    t = FakeTime()
    bucket = ShopifyCostBucket(capacity=100, restore_rate=50, clock=t, sleep=t.sleep)
    granted: list[float] = []
    for _ in range(5):
        await bucket.acquire(40)
        granted.append(round(t.now, 6))
    assert granted == [0.0, 0.0, 0.4, 1.2, 2.0]


@pytest.mark.asyncio
async def test_shopify_bucket_serves_concurrent_callers_in_order() -> None:
    t = FakeTime()
    bucket = ShopifyCostBucket(capacity=100, restore_rate=50, clock=t, sleep=t.sleep)
    order: list[int] = []

    async def take(i: int) -> None:
        await bucket.acquire(60)
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(4)))
    assert order == [0, 1, 2, 3]
    assert t.now == pytest.approx((4 * 60 - 100) / 50)  # 240 points, 100 in the bucket


@pytest.mark.asyncio
async def test_shopify_bucket_resyncs_from_throttle_status() -> None:
    t = FakeTime()
    bucket = ShopifyCostBucket(capacity=1000, restore_rate=50, clock=t, sleep=t.sleep)
    body = {
        "data": {},
        "extensions": {
            "cost": {
                "requestedQueryCost": 100,
                "actualQueryCost": 12,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": 150,
                    "restoreRate": 100.0,
                },
            }
        },
    }
    bucket.observe_response({}, body)
    assert bucket.capacity == 2000 and bucket.restore_rate == 100
    assert bucket.describe() == "150/2000 points (restores 100/s)"
    assert bucket.wait_time(400) == pytest.approx(2.5)
    await bucket.acquire(400)
    assert t.sleeps == [pytest.approx(2.5)]
    assert bucket.available == pytest.approx(0)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        {"extensions": None},
        {"extensions": {"cost": {"throttleStatus": {"currentlyAvailable": "lots"}}}},
        {"extensions": {"cost": {"throttleStatus": {"maximumAvailable": float("nan")}}}},
        {"extensions": {"cost": {"throttleStatus": {"restoreRate": -5}}}},
    ],
)
def test_shopify_bucket_ignores_garbage(body: object) -> None:
    t = FakeTime()
    bucket = ShopifyCostBucket(capacity=1000, restore_rate=50, clock=t)
    bucket.observe_response({}, body)
    assert (bucket.capacity, bucket.restore_rate, bucket.available) == (1000, 50, 1000)


def test_shopify_bucket_clamps_server_figures() -> None:
    bucket = ShopifyCostBucket(capacity=1000, restore_rate=50, clock=lambda: 0.0)
    bucket.sync({"maximumAvailable": 500, "currentlyAvailable": 900})
    assert bucket.available == 500
    bucket.sync({"currentlyAvailable": -3})
    assert bucket.available == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"capacity": 0}, "capacity"), ({"restore_rate": float("nan")}, "restore_rate")],
)
def test_shopify_bad_config(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShopifyCostBucket(**kwargs)


@pytest.mark.asyncio
async def test_shopify_bad_cost() -> None:
    with pytest.raises(ValueError, match="cost"):
        await ShopifyCostBucket().acquire(float("inf"))


# --- Printify ----------------------------------------------------------------------------------


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.asyncio
async def test_printify_never_exceeds_any_window() -> None:
    fake = _FakeTime()
    # scale 1000: catalog 100 per 60 ms of the fake clock; smoothing 10 per ms of loop time.
    budget = PrintifyBudget(scale=1000, margin=0.0, clock=fake.clock, sleep=fake.sleep)
    stamps: list[float] = []
    for _ in range(250):
        await budget.acquire(bucket="catalog")
        stamps.append(fake.now)
    window = 60 / 1000
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:] if u < t + window)
        assert in_window <= 100
    # ...and it does not wait more than the windows require: 250 calls need 2 full windows.
    assert stamps[-1] == pytest.approx(2 * window)


@pytest.mark.asyncio
async def test_printify_is_smooth_after_the_burst() -> None:
    budget = PrintifyBudget(scale=50)  # 20 per 20 ms: 1000 requests/s
    loop = asyncio.get_running_loop()
    start = loop.time()
    done: list[float] = []

    async def one() -> None:
        await budget.acquire()
        done.append(loop.time() - start)

    await asyncio.gather(*(one() for _ in range(60)))
    assert len(done) == 60
    # 20 at once, the other 40 at 1000/s: the last one cannot come before 40 ms.
    assert done[-1] >= 0.9 * 40 / 1000
    assert done == sorted(done)


@pytest.mark.asyncio
async def test_printify_catalog_and_publish_buckets() -> None:
    budget = PrintifyBudget()
    await budget.acquire(bucket="catalog")
    await budget.acquire(bucket="publish")
    text = budget.describe()
    assert "global 598/600" in text
    assert "catalog 99/100" in text
    assert "publish 199/200" in text
    with pytest.raises(ValueError, match="unknown Printify budget"):
        await budget.acquire(bucket="orders")
    await budget.acquire(cost=50)  # one request, whatever its weight


def test_printify_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale"):
        PrintifyBudget(scale=0)


def test_printify_describe_before_use() -> None:
    assert PrintifyBudget().describe() == "global 600/600 · catalog 100/100 · publish 200/200"


# --- Etsy --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_etsy_day_quota_survives_restarts(tmp_path: Path) -> None:
    db = tmp_path / "limits" / "etsy.sqlite"
    granted = []
    for share in (5, 5):
        budget = EtsyBudget(db, per_second=None, per_day=12, day_seconds=3600)
        for _ in range(share):
            await budget.acquire()
        granted.append(share)
        budget.close()
    budget = EtsyBudget(db, per_second=None, per_day=12, day_seconds=3600)
    assert budget.describe() == "2/12 requests left today"
    await budget.acquire()
    await budget.acquire()
    with pytest.raises(RateLimitError) as info:
        await budget.acquire()
    budget.close()
    err = info.value
    assert is_retryable(err)  # back to the queue, not a permanent failure
    assert err.retry_after is not None and 3500 <= err.retry_after <= 3600
    assert "daily" in err.user_message


@pytest.mark.asyncio
async def test_etsy_per_second_limit_waits(tmp_path: Path) -> None:
    waits: list[float] = []

    class Stop(Exception):
        pass

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise Stop

    budget = EtsyBudget(tmp_path / "e.sqlite", per_second=2, per_day=100, sleep=sleep)
    await budget.acquire()
    await budget.acquire()
    with pytest.raises(Stop):
        await budget.acquire()
    budget.close()
    assert len(waits) == 1 and 0 < waits[0] <= 1.1


@pytest.mark.asyncio
async def test_etsy_stops_early_when_server_reports_low_quota(tmp_path: Path) -> None:
    now = [1000.0]
    budget = EtsyBudget(tmp_path / "e.sqlite", reserve=5, recheck_seconds=600, clock=lambda: now[0])
    budget.observe_response({"X-Remaining-Today": "5", "X-Limit-Per-Day": "10000"})
    assert budget.describe() == "5/10000 requests left today"
    now[0] += 100
    with pytest.raises(RateLimitError, match="nearly used up") as info:
        await budget.acquire()
    assert info.value.retryable and info.value.retry_after == pytest.approx(500)
    now[0] += 500  # after the re-check interval one request may go out to read fresh headers
    await budget.acquire()
    budget.observe_response({"x-remaining-today": "900"})
    await budget.acquire()
    assert budget.describe() == "899/10000 requests left today"
    budget.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_day": 0}, "per_day"),
        ({"per_second": 0}, "per_second"),
        ({"per_second": 20, "per_day": 10}, "per_second"),
        ({"day_seconds": float("nan")}, "day_seconds"),
        ({"reserve": -1}, "reserve"),
    ],
)
def test_etsy_bad_config(tmp_path: Path, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EtsyBudget(tmp_path / "e.sqlite", **kwargs)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_printify_publish_wait_does_not_stall_other_buckets() -> None:
    """A call waiting minutes for the publish window holds only the publish lock."""
    waiting = asyncio.Event()
    release = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        waiting.set()
        await release.wait()

    budget = PrintifyBudget(limits={"publish": (1.0, 1800.0)}, margin=0.0, sleep=sleep)
    await budget.acquire(bucket="publish")  # the window's only slot
    second_publish = asyncio.create_task(budget.acquire(bucket="publish"))
    await waiting.wait()  # it is now sleeping for the publish window
    await asyncio.wait_for(budget.acquire(), 2.0)  # a plain call is not stuck behind it
    await asyncio.wait_for(budget.acquire(bucket="catalog"), 2.0)
    assert not second_publish.done()
    assert "publish 0/1" in budget.describe() and "catalog 99/100" in budget.describe()
    second_publish.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second_publish
