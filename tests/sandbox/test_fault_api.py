"""One fault API on every stand-in: the same calls, the same outcome, over real HTTP.

Each row names a stand-in, the headers its API needs, a request its ``match`` selects and one it
does not; every test runs the same fault calls against all four.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from pod_studio.sandbox.base import SandboxServer
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.etsy import ALL_SCOPES as ETSY_SCOPES
from pod_studio.sandbox.etsy import EtsySandbox
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.shopify import ShopifySandbox

GRAPHQL = "/admin/api/2026-04/graphql.json"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class StandIn:
    name: str
    make: Callable[[], SandboxServer]
    headers: Callable[[SandboxServer], dict[str, str]]
    match: str  # selects ``matching``, not ``other``
    matching: Call
    other: Call


def _etsy_headers(server: SandboxServer) -> dict[str, str]:
    assert isinstance(server, EtsySandbox)
    token = f"{server.user_id}.fault-api-token"
    server.access_tokens[token] = (time.monotonic() + 3600, ETSY_SCOPES)
    return {"x-api-key": "sandboxkeystring:sandboxsecret", "Authorization": f"Bearer {token}"}


STAND_INS = [
    StandIn(
        "comfyui",
        ComfyUISandbox,
        lambda _s: {},
        "/queue",
        Call("GET", "/queue"),
        Call("GET", "/system_stats"),
    ),
    StandIn(
        "printify",
        PrintifySandbox,
        lambda _s: {"Authorization": "Bearer sandbox-token", "User-Agent": "fault-api-test"},
        "catalog",
        Call("GET", "/v1/catalog/blueprints.json"),
        Call("GET", "/v1/shops.json"),
    ),
    StandIn(
        "shopify",
        ShopifySandbox,
        lambda _s: {"X-Shopify-Access-Token": "shpat_sandbox"},
        "publications",
        Call("POST", GRAPHQL, {"query": "{ publications(first: 5) { nodes { id } } }"}),
        Call("POST", GRAPHQL, {"query": "{ shop { name } }"}),
    ),
    StandIn(
        "etsy",
        lambda: EtsySandbox(per_second=1000),
        _etsy_headers,
        "/users/me",
        Call("GET", "/v3/application/users/me"),
        Call("GET", "/v3/application/openapi-ping"),
    ),
]


@dataclass
class Running:
    row: StandIn
    server: SandboxServer
    http: httpx.AsyncClient

    async def send(self, call: Call, read_timeout: float = 10.0) -> httpx.Response:
        timeout = httpx.Timeout(10.0, read=read_timeout)
        return await self.http.request(call.method, call.path, json=call.body, timeout=timeout)

    async def matching(self, read_timeout: float = 10.0) -> httpx.Response:
        return await self.send(self.row.matching, read_timeout)

    async def other(self) -> httpx.Response:
        return await self.send(self.row.other)


@pytest_asyncio.fixture(params=STAND_INS, ids=[row.name for row in STAND_INS])
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    row: StandIn = request.param
    async with row.make() as server:
        headers = row.headers(server)
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            yield Running(row, server, http)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 503, 404])
async def test_fail_next_hits_n_matching_requests_only_then_serves(
    running: Running, status: int
) -> None:
    assert (await running.matching()).status_code == 200
    running.server.fail_next(2, status, match=running.row.match)
    assert (await running.other()).status_code == 200
    assert (await running.matching()).status_code == status
    assert (await running.other()).status_code == 200
    assert (await running.matching()).status_code == status
    assert (await running.matching()).status_code == 200
    assert (await running.other()).status_code == 200


@pytest.mark.asyncio
async def test_fail_next_without_match_hits_the_next_requests(running: Running) -> None:
    running.server.fail_next()
    assert (await running.other()).status_code == 500
    assert (await running.matching()).status_code == 200


@pytest.mark.asyncio
async def test_rate_limit_next_answers_429_with_retry_after(running: Running) -> None:
    running.server.rate_limit_next(1, retry_after=7, match=running.row.match)
    assert (await running.other()).status_code == 200
    limited = await running.matching()
    assert limited.status_code == 429 and limited.headers["Retry-After"].startswith("7")
    running.server.rate_limit_next(1, retry_after=None)
    unsaid = await running.matching()
    assert unsaid.status_code == 429 and "Retry-After" not in unsaid.headers
    assert (await running.matching()).status_code == 200


@pytest.mark.asyncio
async def test_hang_next_answers_late_with_a_server_error(running: Running) -> None:
    running.server.hang_seconds = 0.3
    running.server.hang_next(1, match=running.row.match)
    assert (await running.other()).status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        await running.matching(read_timeout=0.05)
    running.server.hang_next(1, match=running.row.match)
    started = time.perf_counter()
    late = await running.matching()
    assert late.status_code == 500 and time.perf_counter() - started >= 0.3
    assert (await running.matching()).status_code == 200


@pytest.mark.asyncio
async def test_malformed_next_cuts_a_successful_body(running: Running) -> None:
    running.server.malformed_next(1, match=running.row.match)
    assert (await running.other()).status_code == 200
    garbled = await running.matching()
    assert garbled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbled.content)
    json.loads((await running.matching()).content)


@pytest.mark.asyncio
async def test_random_faults_and_clear_faults(running: Running) -> None:
    server = running.server
    server.fault_rate = 1.0
    server.fault_kinds = ["503"]
    assert (await running.matching()).status_code == 503
    assert server.random_faults["503"] >= 1
    server.fault_rate = 0.0
    server.fail_next(5, 502)
    server.rate_limit_next(5)
    server.hang_next(5)
    server.malformed_next(5)
    server.clear_faults()
    ok = await running.matching()
    assert ok.status_code == 200
    json.loads(ok.content)


@pytest.mark.asyncio
async def test_slow_seconds_delays_every_api_answer(running: Running) -> None:
    running.server.slow_seconds = 0.3
    with pytest.raises(httpx.ReadTimeout):
        await running.matching(read_timeout=0.05)
    running.server.slow_seconds = 0.0
    assert (await running.matching()).status_code == 200


@pytest.mark.asyncio
async def test_pause_holds_api_requests_until_resume(running: Running) -> None:
    running.server.pause()
    if running.server.pause_holds_requests:
        with pytest.raises(httpx.ReadTimeout):
            await running.matching(read_timeout=0.2)
    else:  # ComfyUI: the GPU waits, the HTTP API answers
        assert (await running.matching()).status_code == 200
    running.server.resume()
    assert (await running.matching()).status_code == 200


def test_commit_then_timeout_next_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        PrintifySandbox().commit_then_timeout_next(1, mode="explode")
