"""Services layer: active health checks of every remote, on demand and periodically.

A check is an async callable returning a ``HealthResult`` (the composition builds them, e.g. from
``generator.system_info()`` or a cheap marketplace ping through the service's guard with no
retries). Each check runs with its own timeout; all run concurrently. The outcome of each is
pushed as ``HealthChecked``. A check that raises is reported as unreachable (or reachable
with ``auth_ok=False`` for an ``AuthenticationError``); nothing here raises to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from pod_studio.domain.errors import AuthenticationError, user_message
from pod_studio.domain.events import EventSink, HealthChecked
from pod_studio.services.ratelimit import RateBudget

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class HealthResult:
    """What one check found. ``latency_ms`` is filled by ``HealthService`` when omitted."""

    reachable: bool = True
    auth_ok: bool | None = None
    latency_ms: float | None = None
    detail: str = ""


HealthCheck = Callable[[], Awaitable[HealthResult]]


class HealthService:
    """Runs the health checks and reports each result as ``HealthChecked``."""

    def __init__(
        self,
        checks: Mapping[str, HealthCheck],
        sink: EventSink,
        interval: float = 300.0,
        timeout: float = 5.0,
        *,
        budgets: Mapping[str, RateBudget] | None = None,
        clock: Clock = time.perf_counter,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"interval must be a finite number > 0, got {interval!r}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a finite number > 0, got {timeout!r}")
        self._checks = dict(checks)
        self._sink = sink
        self.interval = interval
        self.timeout = timeout
        self._budgets = budgets if budgets is not None else {}
        self._clock = clock
        self._sleep = sleep
        self.last: dict[str, HealthChecked] = {}

    @property
    def services(self) -> list[str]:
        return sorted(self._checks)

    def add_check(self, service: str, check: HealthCheck) -> None:
        self._checks[service] = check

    def remove_check(self, service: str) -> None:
        """Stop checking ``service`` (a server or platform that is gone); its last result
        stays in ``last``."""
        self._checks.pop(service, None)

    async def check_now(self, service: str | None = None) -> dict[str, HealthChecked]:
        """Run one check (or all, concurrently) and return the events that were pushed."""
        if service is not None:
            if service not in self._checks:
                raise KeyError(f"no health check for {service!r}")
            names = [service]
        else:
            names = sorted(self._checks)
        events = await asyncio.gather(*(self._run_one(name) for name in names))
        return dict(zip(names, events, strict=True))

    async def _run_one(self, service: str) -> HealthChecked:
        check = self._checks[service]
        started = self._clock()
        try:
            async with asyncio.timeout(self.timeout):
                result = await check()
        except TimeoutError:
            result = HealthResult(reachable=False, detail=f"no answer within {self.timeout:g} s")
        except AuthenticationError as exc:
            result = HealthResult(reachable=True, auth_ok=False, detail=user_message(exc))
        except Exception as exc:
            log.info("health check %s failed: %s", service, type(exc).__name__, exc_info=True)
            result = HealthResult(reachable=False, detail=user_message(exc))
        latency = result.latency_ms
        if latency is None and result.reachable:
            latency = round((self._clock() - started) * 1000.0, 1)
        budget = self._budgets.get(service)
        event = HealthChecked(
            service=service,
            reachable=result.reachable,
            auth_ok=result.auth_ok,
            latency_ms=latency,
            budget_left=budget.describe() if budget is not None else "",
            detail=result.detail,
        )
        self.last[service] = event
        self._sink(event)
        return event

    async def run_periodic(self) -> None:
        """Check everything now and then every ``interval`` seconds, until cancelled."""
        while True:
            await self.check_now()
            await self._sleep(self.interval)
