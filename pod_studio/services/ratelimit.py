"""Services layer: rate budgets, the client-side half of each vendor's rate limits.

A ``RateBudget`` is awaited before every attempt of a remote call (``ServiceGuard`` does it)
and is re-synchronised from what the server reports (``observe_response``; the composition
hands that bound method to the adapter, which calls it with each response's headers and body).

- ``PrintifyBudget``: exact sliding windows (600/min, catalog 100/min, publish 200 per
  30 min), the global rate smoothed to 20/s by an aiolimiter leaky bucket.
- ``ShopifyCostBucket``: a small calculated-cost bucket mirroring GraphQL ``throttleStatus``.
- ``EtsyBudget``: pyrate-limiter's SQLite bucket, so the per-day quota survives restarts.
- ``NoBudget``: for services without limits (ComfyUI on the seller's machine, file export).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aiolimiter import AsyncLimiter
from pyrate_limiter import Duration, Rate, RateItem, SQLiteBucket

from pod_studio.domain.errors import RateLimitError

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_EPSILON = 1e-6


@runtime_checkable
class RateBudget(Protocol):
    """The client-side rate limit of one remote service."""

    async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
        """Wait until ``cost`` units may be spent (``bucket`` names an extra limit)."""

    def describe(self) -> str:
        """A short "budget left" text for the Health dock."""

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None:
        """Re-synchronise from what the server reported in a response."""


class NoBudget:
    """No client-side limit."""

    async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
        return None

    def describe(self) -> str:
        return "no limit"

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None:
        return None


def _check_cost(cost: float) -> float:
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
        raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
    if cost < 0:
        raise ValueError(f"cost must be >= 0, got {cost!r}")
    return float(cost)


# --- Printify ----------------------------------------------------------------------------------


class SlidingWindow:
    """At most ``limit`` calls in any ``window`` seconds, counted the way the server counts.

    Hand-written because the leaky buckets of aiolimiter admit a full burst and then a full
    window's worth more, which is above what a server with a per-window limit allows (the
    measured effect was 429s from Printify's sandbox). ``margin`` keeps a little distance
    from the edge for network latency jitter.
    """

    def __init__(
        self, limit: int, window: float, *, margin: float = 0.0, clock: Clock = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        if not math.isfinite(window) or window <= 0:
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        self.limit = limit
        self.window = window
        self.margin = max(0.0, margin)
        self._clock = clock
        self._hits: collections.deque[float] = collections.deque()

    def wait_time(self) -> float:
        """Seconds until one more call fits (0 when it fits now)."""
        now = self._clock()
        span = self.window + self.margin
        while self._hits and self._hits[0] <= now - span:
            self._hits.popleft()
        if len(self._hits) < self.limit:
            return 0.0
        return self._hits[0] + span - now

    def take(self) -> None:
        self._hits.append(self._clock())

    @property
    def used(self) -> int:
        self.wait_time()
        return len(self._hits)


class PrintifyBudget:
    """Printify: 600 requests/min per account, 100/min for the catalog API
    (``bucket="catalog"``) and 200 per 30 min for publishing (``bucket="publish"``).

    Each window is counted exactly (``SlidingWindow``), so the server never has to say 429;
    on top of that the global rate is smoothed to 20/s with aiolimiter, so a batch spends
    the minute's 600 calls over half a minute, not its first second (smoothing at the
    window's own average, 10/s, cost ~5 % of a 50-product batch in ``bench.publish``: the
    limiter then binds as tightly as the window). ``scale`` divides every period
    (``scale=20`` runs 20 x faster, for tests and benchmarks); ``margin`` is real seconds.
    Limiters are created lazily on the running loop (aiolimiter binds to one loop).
    """

    SPECS: dict[str, tuple[float, float]] = {
        "global": (600.0, 60.0),
        "catalog": (100.0, 60.0),
        "publish": (200.0, 30 * 60.0),
    }
    SMOOTH = (20.0, 1.0)  # 20 per second, burst 20

    def __init__(
        self,
        scale: float = 1.0,
        *,
        limits: Mapping[str, tuple[float, float]] | None = None,
        margin: float = 0.25,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``limits`` replaces some of ``SPECS`` ({bucket: (calls, window seconds)}), e.g. a
        sandbox's time-scaled windows; ``scale`` then still divides every window."""
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        specs = {**self.SPECS, **dict(limits or {})}
        unknown = set(specs) - set(self.SPECS)
        if unknown:
            raise ValueError(f"unknown Printify budget(s): {', '.join(sorted(unknown))}")
        self.scale = scale
        self._sleep = sleep
        self._windows = {
            name: SlidingWindow(int(limit), period / scale, margin=margin, clock=clock)
            for name, (limit, period) in specs.items()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._smooth: AsyncLimiter | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._remaining_hint: int | None = None

    def _loop_bound(self) -> tuple[AsyncLimiter, dict[str, asyncio.Lock]]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._smooth is None:
            self._loop = loop
            rate, period = self.SMOOTH
            self._smooth = AsyncLimiter(rate, period / self.scale)
            self._locks = {name: asyncio.Lock() for name in self._windows}
        return self._smooth, self._locks

    async def _wait_for(self, names: list[str]) -> None:
        while True:
            wait = max(self._windows[n].wait_time() for n in names)
            if wait <= 0:
                return
            await self._sleep(wait)

    async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
        """One lock per bucket, always taken in the order bucket → global. A call waiting for
        its bucket's window (the publish window can be minutes) holds only that bucket's
        lock: global and catalog calls go on meanwhile. Within a bucket, slots are taken in
        arrival order."""
        _check_cost(cost)
        if bucket is not None and bucket not in self.SPECS:
            raise ValueError(f"unknown Printify budget {bucket!r} (use 'catalog' or 'publish')")
        extra = bucket if bucket not in (None, "global") else None
        smooth, locks = self._loop_bound()
        async with contextlib.AsyncExitStack() as stack:
            if extra is not None:
                await stack.enter_async_context(locks[extra])
                await self._wait_for([extra])  # only this bucket's callers wait behind us
            names = ["global"] + ([extra] if extra is not None else [])
            async with locks["global"]:
                # Nobody else takes from ``extra`` while we hold its lock, so its window only
                # frees up while we wait for the global one.
                await self._wait_for(names)
                for n in names:
                    self._windows[n].take()
        await smooth.acquire()

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None:
        # Printify reports nothing but 429 + Retry-After (handled by the guard); some
        # deployments add X-RateLimit-Remaining, which is shown when present.
        lowered = {k.lower(): v for k, v in headers.items()}
        raw = lowered.get("x-ratelimit-remaining")
        if raw is not None and raw.strip().isdigit():
            self._remaining_hint = int(raw.strip())

    def describe(self) -> str:
        text = " · ".join(
            f"{name} {w.limit - w.used}/{w.limit}" for name, w in self._windows.items()
        )
        if self._remaining_hint is not None:
            text += f" · server says {self._remaining_hint} left"
        return text


# --- Shopify -----------------------------------------------------------------------------------


class ShopifyCostBucket:
    """Shopify GraphQL Admin: a calculated-cost leaky bucket mirrored from the server.

    Hand-written rather than aiolimiter: the server reports its bucket after every call
    (``extensions.cost.throttleStatus``: ``maximumAvailable``, ``currentlyAvailable``,
    ``restoreRate``), and those figures depend on the plan and change over time. aiolimiter
    keeps its level private and has no way to set it to the server's figures, so it would
    drift; this bucket adopts the server's numbers on every response.
    """

    def __init__(
        self,
        capacity: float = 2000.0,
        restore_rate: float = 100.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not math.isfinite(capacity) or capacity <= 0:
            raise ValueError(f"capacity must be a finite number > 0, got {capacity!r}")
        if not math.isfinite(restore_rate) or restore_rate <= 0:
            raise ValueError(f"restore_rate must be a finite number > 0, got {restore_rate!r}")
        self.capacity = float(capacity)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._sleep = sleep
        self._available = self.capacity
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def available(self) -> float:
        self._refill()
        return self._available

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._available = min(self.capacity, self._available + elapsed * self.restore_rate)
        self._stamp = now

    def wait_time(self, cost: float) -> float:
        """Seconds until ``cost`` points are available (0 if they are now)."""
        cost = min(_check_cost(cost), self.capacity)
        self._refill()
        return max(0.0, (cost - self._available) / self.restore_rate)

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock

    async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
        cost = min(_check_cost(cost), self.capacity)
        async with self._get_lock():  # first come, first served
            while True:
                self._refill()
                if self._available + _EPSILON >= cost:  # tolerate float rounding
                    self._available = max(0.0, self._available - cost)
                    return
                await self._sleep((cost - self._available) / self.restore_rate)

    def sync(self, throttle_status: Mapping[str, Any]) -> None:
        """Adopt the server's bucket (``throttleStatus`` of a GraphQL response)."""
        self._refill()

        def number(key: str) -> float | None:
            value = throttle_status.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value) if math.isfinite(value) else None

        maximum = number("maximumAvailable")
        if maximum is not None and maximum > 0:
            self.capacity = maximum
        rate = number("restoreRate")
        if rate is not None and rate > 0:
            self.restore_rate = rate
        current = number("currentlyAvailable")
        if current is not None:
            self._available = current
        self._available = min(max(self._available, 0.0), self.capacity)

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None:
        if not isinstance(body, Mapping):
            return
        extensions = body.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
        status = cost.get("throttleStatus") if isinstance(cost, Mapping) else None
        if isinstance(status, Mapping):
            self.sync(status)

    def describe(self) -> str:
        return f"{self.available:.0f}/{self.capacity:.0f} points (restores {self.restore_rate:g}/s)"


# --- Etsy --------------------------------------------------------------------------------------


class EtsyBudget:
    """Etsy Open API v3: ``per_second`` requests/s and ``per_day`` per rolling day.

    The log lives in an SQLite file (pyrate-limiter ``SQLiteBucket``), so the day's count
    survives a restart. When the day quota is used up, ``acquire`` raises a retryable
    ``RateLimitError`` at once (``retry_after`` = when the quota frees up) instead of
    sleeping for hours, so the step goes back to the queue; it does the same when the
    server's ``x-remaining-today`` drops to ``reserve`` or below (then ``retry_after`` is
    ``recheck_seconds``: after that one request goes out to read fresh headers).
    ``day_seconds`` shortens the "day" for tests; ``per_second=None`` disables the
    per-second limit.
    """

    def __init__(
        self,
        db_path: Path | str,
        per_second: int | None = 10,
        per_day: int = 10_000,
        *,
        day_seconds: float = 86_400.0,
        reserve: int = 0,
        recheck_seconds: float = 900.0,
        table: str = "etsy_budget",
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        if isinstance(per_day, bool) or not isinstance(per_day, int) or per_day < 1:
            raise ValueError(f"per_day must be an integer >= 1, got {per_day!r}")
        if per_second is not None and (
            isinstance(per_second, bool) or not isinstance(per_second, int) or per_second < 1
        ):
            raise ValueError(f"per_second must be an integer >= 1 or None, got {per_second!r}")
        if per_second is not None and per_second >= per_day:
            raise ValueError("per_second must be smaller than per_day")
        if not math.isfinite(day_seconds) or day_seconds < 2:
            raise ValueError(f"day_seconds must be a finite number >= 2, got {day_seconds!r}")
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValueError(f"reserve must be an integer >= 0, got {reserve!r}")
        self.per_second = per_second
        self.per_day = per_day
        self.reserve = reserve
        self._day_ms = int(day_seconds * 1000)
        rates = [Rate(per_day, self._day_ms)]
        if per_second is not None:
            rates.insert(0, Rate(per_second, Duration.SECOND))
        path = Path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Typed as Any: pyrate-limiter's bucket API is sync-or-async and partly untyped.
        self._bucket: Any = SQLiteBucket.init_from_file(
            rates, table=table, db_path=str(path), create_new_table=True
        )
        self._sleep = sleep
        self._clock = clock
        self.recheck_seconds = recheck_seconds
        self._server_seen_at = 0.0
        self._used_today: int | None = None
        self._server_remaining: int | None = None
        self._server_limit: int | None = None
        bucket: Any = self._bucket
        now = int(bucket.now())
        bucket.leak(now)
        self._used_today = int(bucket.count())

    def _try_put(self, weight: int) -> tuple[bool, bool, float]:
        """(admitted, day quota hit, seconds to wait). Runs in a worker thread."""
        bucket: Any = self._bucket
        now = int(bucket.now())
        bucket.leak(now)
        item = RateItem("etsy", now, weight=weight)
        decision = bucket.put_decision(item)
        self._used_today = int(bucket.count())
        if decision.allowed:
            return True, False, 0.0
        failing = decision.failing_rate
        day_hit = failing is not None and failing.interval == self._day_ms
        wait_ms = decision.retry_after_ms
        if wait_ms is None:
            wait_ms = int(bucket.waiting(item))
        wait = wait_ms / 1000 if wait_ms >= 0 else self._day_ms / 1000
        return False, day_hit, max(wait, 0.001)

    async def acquire(self, cost: float = 1.0, bucket: str | None = None) -> None:
        weight = max(1, math.ceil(_check_cost(cost)))
        if self._server_remaining is not None and self._server_remaining <= self.reserve:
            waited = self._clock() - self._server_seen_at
            if waited < self.recheck_seconds:
                raise self._quota_error(
                    self.recheck_seconds - waited,
                    "Etsy reports its daily request quota nearly used up",
                )
        while True:
            admitted, day_hit, wait = await asyncio.to_thread(self._try_put, weight)
            if admitted:
                if self._server_remaining is not None:
                    self._server_remaining -= weight
                return
            if day_hit:
                raise self._quota_error(wait, "Etsy daily request quota used up")
            await self._sleep(wait)

    def _quota_error(self, retry_after: float | None, message: str) -> RateLimitError:
        hours = f" (about {retry_after / 3600:.1f} h)" if retry_after else ""
        return RateLimitError(
            message,
            retry_after=retry_after,
            service="etsy",
            user_message=f"{message}; Etsy calls resume when the quota frees up{hours}.",
        )

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None:
        lowered = {k.lower(): v.strip() for k, v in headers.items()}
        remaining = lowered.get("x-remaining-today", "")
        if remaining.isdigit():
            self._server_remaining = int(remaining)
            self._server_seen_at = self._clock()
        limit = lowered.get("x-limit-per-day", "")
        if limit.isdigit():
            self._server_limit = int(limit)

    def describe(self) -> str:
        if self._server_remaining is not None:
            limit = self._server_limit or self.per_day
            return f"{max(self._server_remaining, 0)}/{limit} requests left today"
        used = self._used_today or 0
        return f"{max(self.per_day - used, 0)}/{self.per_day} requests left today"

    def close(self) -> None:
        self._bucket.close()
