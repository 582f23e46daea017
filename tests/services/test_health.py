"""HealthService: concurrent checks with timeouts, results as HealthChecked events."""

from __future__ import annotations

import asyncio

import pytest

from pod_studio.domain.errors import AuthenticationError, ServiceError
from pod_studio.domain.events import Event, HealthChecked
from pod_studio.services.health import HealthResult, HealthService
from pod_studio.services.ratelimit import NoBudget


async def ok() -> HealthResult:
    return HealthResult(reachable=True, auth_ok=True, detail="ComfyUI 0.3.40, cuda:0")


async def down() -> HealthResult:
    raise ServiceError("connection refused", service="printify",
                       user_message="Printify is unreachable.")  # fmt: skip


async def bad_token() -> HealthResult:
    raise AuthenticationError("401", service="etsy", user_message="Etsy rejected the token.")


async def hang() -> HealthResult:
    await asyncio.Event().wait()
    return HealthResult()


@pytest.mark.asyncio
async def test_check_now_runs_every_check_and_emits_events() -> None:
    events: list[Event] = []
    service = HealthService(
        {"comfyui": ok, "printify": down, "etsy": bad_token, "shopify": hang},
        events.append,
        timeout=0.05,
        budgets={"comfyui": NoBudget()},
    )
    results = await service.check_now()
    assert sorted(results) == ["comfyui", "etsy", "printify", "shopify"]
    assert len(events) == 4 and all(isinstance(e, HealthChecked) for e in events)

    comfy = results["comfyui"]
    assert comfy.reachable and comfy.auth_ok is True
    assert comfy.latency_ms is not None and comfy.latency_ms >= 0
    assert comfy.budget_left == "no limit" and "ComfyUI" in comfy.detail

    assert not results["printify"].reachable
    assert results["printify"].detail == "Printify is unreachable."
    assert results["printify"].latency_ms is None

    etsy = results["etsy"]
    assert etsy.reachable and etsy.auth_ok is False and "token" in etsy.detail

    shopify = results["shopify"]
    assert not shopify.reachable and "no answer within 0.05 s" in shopify.detail
    assert service.last["shopify"] is shopify


@pytest.mark.asyncio
async def test_checks_run_concurrently() -> None:
    both_running = asyncio.Event()
    running = 0

    async def waits_for_the_other() -> HealthResult:
        nonlocal running
        running += 1
        if running == 2:
            both_running.set()
        await both_running.wait()
        return HealthResult()

    service = HealthService({"a": waits_for_the_other, "b": waits_for_the_other},
                            lambda _e: None, timeout=5)  # fmt: skip
    results = await service.check_now()
    assert all(r.reachable for r in results.values())


@pytest.mark.asyncio
async def test_check_one_service() -> None:
    events: list[Event] = []
    service = HealthService({"comfyui": ok, "printify": down}, events.append)
    results = await service.check_now("comfyui")
    assert list(results) == ["comfyui"] and len(events) == 1
    with pytest.raises(KeyError):
        await service.check_now("nope")


@pytest.mark.asyncio
async def test_run_periodic_repeats_until_cancelled() -> None:
    events: list[Event] = []
    sleeps: list[float] = []
    third_round = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            third_round.set()
            await asyncio.Event().wait()  # park here until cancelled

    service = HealthService({"comfyui": ok}, events.append, interval=300, sleep=fake_sleep)
    task = asyncio.create_task(service.run_periodic())
    await third_round.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sleeps == [300, 300, 300]
    assert len(events) == 3


@pytest.mark.parametrize(("interval", "timeout"), [(0, 5), (300, float("nan")), (-1, 1)])
def test_bad_settings(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        HealthService({}, lambda _e: None, interval=interval, timeout=timeout)
