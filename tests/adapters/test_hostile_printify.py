"""Hostile-input corpus for the Printify adapter, against a tiny aiohttp server on 127.0.0.1.

Kinds covered: garbage JSON on 200, HTML error pages (502 and 422), wrong shapes (several),
401/403/404/422 JSON bodies, Retry-After garbage (and hypothesis over ``parse_retry_after``),
a huge Content-Length. Every message is clear and never carries the token.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from pod_studio.adapters.marketplaces.printify import RETRY_AFTER_CAP, PrintifyClient
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    PodStudioError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.retry_after import parse_retry_after
from tests.adapters.test_hostile_comfyui import HTML, Hostile, html, json_reply

pytestmark = pytest.mark.timeout(60)

TOKEN = "pf-SECRET-token-0123456789abcdef"


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def client_for(server: Hostile) -> PrintifyClient:
    return PrintifyClient(lambda: TOKEN, base_url=server.url, shop_id=1)


async def shops_error(server: Hostile) -> PodStudioError:
    client = client_for(server)
    try:
        with pytest.raises(PodStudioError) as info:
            await client.shops()
    finally:
        await client.aclose()
    assert TOKEN not in str(info.value) and TOKEN not in info.value.user_message
    return info.value


def status(code: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=code, headers=headers)

    return handler


@pytest.mark.asyncio
async def test_garbage_json_on_200(hostile: Hostile) -> None:
    async def garbage(_request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"id": 1, "title": ', content_type="application/json")

    hostile.routes["/v1/shops.json"] = garbage
    err = await shops_error(hostile)
    assert isinstance(err, UpstreamDataError) and "garbled" in err.user_message


@pytest.mark.parametrize("code", [502, 422])
@pytest.mark.asyncio
async def test_html_error_pages_are_named_not_quoted(hostile: Hostile, code: int) -> None:
    hostile.routes["/v1/shops.json"] = html(code)
    err = await shops_error(hostile)
    assert isinstance(err, ServiceError if code == 502 else ValidationError)
    assert "<" not in err.user_message and "doctype" not in str(err).lower()
    if code == 422:
        assert "an HTML page “Router login”" in err.user_message


@pytest.mark.parametrize(
    "body",
    [{"data": []}, [1, 2], [{"title": "no id"}], "shops", None],
)
@pytest.mark.asyncio
async def test_wrong_shapes_are_unexpected_replies(hostile: Hostile, body: Any) -> None:
    hostile.routes["/v1/shops.json"] = json_reply(body)
    err = await shops_error(hostile)
    assert isinstance(err, UpstreamDataError)
    assert err.user_message == "Printify sent an unexpected shops reply."


@pytest.mark.parametrize(
    "code,body,kind,words",
    [
        (401, {"error": "Unauthenticated."}, AuthenticationError, "rejected the API token"),
        (403, {"errors": {"reason": "scope"}}, AuthenticationError, "not allowed"),
        (404, {"message": "Not found"}, APIError, "not found"),
        (422, {"errors": {"reason": ["title too long"]}}, ValidationError, "title too long"),
        (422, {"errors": "x" * 5000}, ValidationError, "rejected the request"),
    ],
)
@pytest.mark.asyncio
async def test_error_bodies_become_clear_messages(
    hostile: Hostile, code: int, body: Any, kind: type[PodStudioError], words: str
) -> None:
    hostile.routes["/v1/shops.json"] = status(code, body)
    err = await shops_error(hostile)
    assert isinstance(err, kind) and words in err.user_message
    assert len(err.user_message) < 600


@pytest.mark.parametrize(
    "value,expected",
    [
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("-5", None),
        ("1e9", None),
        ("99999999999999999999", RETRY_AFTER_CAP),
        ("7", 7.0),
    ],
)
@pytest.mark.asyncio
async def test_retry_after_garbage_is_bounded(
    hostile: Hostile, value: str, expected: float | None
) -> None:
    hostile.routes["/v1/shops.json"] = status(429, {"error": "slow down"}, {"Retry-After": value})
    err = await shops_error(hostile)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == expected


@pytest.mark.asyncio
async def test_huge_content_length_is_refused(hostile: Hostile) -> None:
    async def claim(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 5 * 1024**3
        await response.prepare(request)
        await response.write(b"[")
        await hostile.release.wait()
        return response

    hostile.routes["/v1/shops.json"] = claim
    err = await shops_error(hostile)
    assert isinstance(err, UpstreamDataError) and not err.retryable
    assert "64 MB limit" in err.user_message and "Printify" in err.user_message


@pytest.mark.asyncio
async def test_the_client_still_works_after_hostile_replies(hostile: Hostile) -> None:
    hostile.routes["/v1/shops.json"] = html(502)
    client = client_for(hostile)
    try:
        with pytest.raises(ServiceError):
            await client.shops()
        hostile.routes["/v1/shops.json"] = json_reply([{"id": 7, "title": "Shop"}])
        [shop] = await client.shops()
        assert shop.id == "7"
    finally:
        await client.aclose()
    assert HTML  # the same HTML page as the ComfyUI corpus


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=60),
        st.integers().map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
    ),
    st.floats(min_value=0, max_value=4e9),
)
def test_parse_retry_after_is_always_none_or_within_the_cap(value: str | None, now: float) -> None:
    wait = parse_retry_after(value, now=now, cap=600.0)
    assert wait is None or (math.isfinite(wait) and 0.0 <= wait <= 600.0)
