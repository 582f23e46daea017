"""Tests for the Printify sandbox, spoken to with raw httpx (no POD Studio client code)."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread

TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@functools.cache
def png_bytes(size: tuple[int, int] = (800, 800)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[PrintifySandbox]:
    async with PrintifySandbox() as sb:
        yield sb


@pytest_asyncio.fixture
async def client(sandbox: PrintifySandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=AUTH, timeout=5) as c:
        yield c


async def upload(c: httpx.AsyncClient) -> str:
    r = await c.post(
        "/v1/uploads/images.json",
        json={"file_name": "d.png", "contents": base64.b64encode(png_bytes()).decode()},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def product_body(image_id: str, marker: str = "POD-ABC", angle: Any = 0) -> dict[str, Any]:
    return {
        "title": "Retro Sunset Tee",
        "description": "<p>Soft tee.</p>",
        "tags": ["retro"],
        "blueprint_id": 12,
        "print_provider_id": 99,
        "variants": [
            {"id": 18111, "price": 2499, "is_enabled": True, "sku": f"{marker}-18111"},
            {"id": 18112, "price": 2499, "is_enabled": True, "sku": f"{marker}-18112"},
        ],
        "print_areas": [
            {
                "variant_ids": [18111, 18112],
                "placeholders": [
                    {
                        "position": "front",
                        "images": [
                            {"id": image_id, "x": 0.5, "y": 0.5, "scale": 1.0, "angle": angle}
                        ],
                    }
                ],
            }
        ],
    }


def assert_error_shape(body: dict[str, Any], code: int) -> None:
    assert body["status"] == "error"
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["errors"]["code"] == code
    assert isinstance(body["errors"]["reason"], str)


# --- auth and headers -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_auth_401_shape_for_missing_wrong_and_non_bearer(sandbox: PrintifySandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Token {TOKEN}"}):
            r = await c.get("/v1/shops.json", headers=headers)
            assert r.status_code == 401
            assert_error_shape(r.json(), 401)
    assert sandbox.request_counts["GET /v1/shops.json"] == 3


@pytest.mark.asyncio
async def test_missing_scope_is_403() -> None:
    async with PrintifySandbox(tokens={"reader": {"catalog.read"}}) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url) as c:
            headers = {"Authorization": "Bearer reader"}
            assert (await c.get("/v1/catalog/blueprints.json", headers=headers)).status_code == 200
            r = await c.get("/v1/shops.json", headers=headers)
            assert r.status_code == 403
            assert_error_shape(r.json(), 403)


@pytest.mark.asyncio
async def test_user_agent_required_and_json_content_type(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    r = await client.get("/v1/shops.json", headers={"User-Agent": ""})
    assert r.status_code == 400
    assert "User-Agent" in r.json()["errors"]["reason"]
    r = await client.post(
        "/v1/uploads/images.json",
        content=b"file_name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert "application/json" in r.json()["errors"]["reason"]


# --- shops and catalog ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_shops_and_catalog_are_bare_json(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    shops = (await client.get("/v1/shops.json")).json()
    assert shops == [
        {
            "id": sandbox.shop_id,
            "title": "POD Studio Sandbox",
            "sales_channel": "shopify",
        }
    ]
    blueprints = (await client.get("/v1/catalog/blueprints.json")).json()
    assert {b["id"] for b in blueprints} == {12, 77}
    providers = (await client.get("/v1/catalog/blueprints/77/print_providers.json")).json()
    assert 99 in {p["id"] for p in providers} and 29 not in {p["id"] for p in providers}

    r = await client.get("/v1/catalog/blueprints/12/print_providers/99/variants.json")
    body = r.json()
    assert body["id"] == 99 and body["title"] == "Printify Choice"
    in_stock = body["variants"]
    v = next(v for v in in_stock if v["options"] == {"color": "Black", "size": "L"})
    assert v["placeholders"][0] == {"position": "front", "width": 4500, "height": 5700}
    xs = next(v for v in in_stock if v["options"] == {"color": "White", "size": "XS"})
    assert xs["placeholders"][0]["width"] == 3153  # placeholders differ per size
    everything = (
        await client.get(
            "/v1/catalog/blueprints/12/print_providers/99/variants.json",
            params={"show-out-of-stock": 1},
        )
    ).json()["variants"]
    assert len(everything) == len(in_stock) + 1

    r = await client.get("/v1/catalog/blueprints/77/print_providers/29/variants.json")
    assert r.status_code == 404
    assert_error_shape(r.json(), 404)
    ship = (await client.get("/v1/catalog/blueprints/12/print_providers/99/shipping.json")).json()
    assert ship["profiles"][0]["first_item"] == {"cost": 475, "currency": "USD"}


# --- uploads ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_upload_ids_limits_and_formats(client: httpx.AsyncClient) -> None:
    image_id = await upload(client)
    assert len(image_id) == 24 and int(image_id, 16) >= 0
    listed = (await client.get("/v1/uploads.json")).json()
    assert listed["total"] == 1 and listed["data"][0]["width"] == 800

    r = await client.post(
        "/v1/uploads/images.json",
        json={"file_name": "x.gif", "contents": base64.b64encode(b"GIF89a....").decode()},
    )
    assert r.status_code == 400 and r.json()["errors"]["reason"] == "error.file.wrong.format"
    assert r.json()["code"] == 8201
    r = await client.post("/v1/uploads/images.json", json={"file_name": "x.png", "contents": "%%"})
    assert r.status_code == 400
    r = await client.post(
        "/v1/uploads/images.json", json={"file_name": "x.png", "url": "https://example.com/a.png"}
    )
    assert r.status_code == 400 and r.json()["code"] == 10300


@pytest.mark.asyncio
async def test_upload_size_limit() -> None:
    async with PrintifySandbox(max_upload_bytes=1000) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:
            r = await c.post(
                "/v1/uploads/images.json",
                json={"file_name": "big.png", "contents": base64.b64encode(png_bytes()).decode()},
            )
    assert r.status_code == 400
    assert r.json()["errors"]["reason"] == "error.file.size.limit.exceeded"


# --- products ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_product_create_shape_and_paginator(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    image_id = await upload(client)
    path = f"/v1/shops/{sandbox.shop_id}/products.json"
    ids = []
    for i in range(3):
        r = await client.post(path, json=product_body(image_id, marker=f"POD-K{i}"))
        assert r.status_code == 200, r.text
        product = r.json()
        ids.append(product["id"])
        assert len(product["id"]) == 24
        assert product["is_locked"] is False and "external" not in product
        assert product["variants"][0]["cost"] == 1134
        assert product["variants"][0]["price"] == 2499
        image = product["print_areas"][0]["placeholders"][0]["images"][0]
        assert image["width"] == 800 and image["angle"] == 0
    assert sandbox.creates_per_key == {"POD-K0": 1, "POD-K1": 1, "POD-K2": 1}

    page1 = (await client.get(path, params={"limit": 2})).json()
    expected_keys = {
        "current_page", "data", "first_page_url", "from", "last_page", "last_page_url",
        "next_page_url", "path", "per_page", "prev_page_url", "to", "total",
    }  # fmt: skip
    assert set(page1) == expected_keys
    assert (page1["current_page"], page1["last_page"], page1["per_page"], page1["total"]) == (
        1, 2, 2, 3,
    )  # fmt: skip
    assert page1["next_page_url"] == "/?page=2" and page1["prev_page_url"] is None
    assert [p["id"] for p in page1["data"]] == [ids[2], ids[1]]  # newest first
    page2 = (await client.get(path, params={"limit": 2, "page": 2})).json()
    assert [p["id"] for p in page2["data"]] == [ids[0]] and page2["next_page_url"] is None
    r = await client.get(path, params={"limit": 51})
    assert r.status_code == 400


@pytest.mark.asyncio
async def test_product_validation(sandbox: PrintifySandbox, client: httpx.AsyncClient) -> None:
    image_id = await upload(client)
    path = f"/v1/shops/{sandbox.shop_id}/products.json"
    r = await client.post(path, json=product_body(image_id, angle=12.5))
    assert r.status_code == 400 and "angle" in r.json()["errors"]["reason"]
    body = product_body(image_id)
    body["variants"][0]["price"] = 24.99
    assert (await client.post(path, json=body)).status_code == 400
    body = product_body(image_id)
    body["print_provider_id"] = 29
    body["blueprint_id"] = 77
    assert (await client.post(path, json=body)).status_code == 400
    body = product_body(image_id)
    del body["description"]
    assert (await client.post(path, json=body)).status_code == 400
    r = await client.get("/v1/shops/999/products.json")
    assert r.status_code == 404
    assert sandbox.products == {}


@pytest.mark.asyncio
async def test_publish_lock_in_custom_shop() -> None:
    async with PrintifySandbox(publish_mode="custom") as sb:
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:
            image_id = await upload(c)
            base = f"/v1/shops/{sb.shop_id}/products"
            pid = (await c.post(base + ".json", json=product_body(image_id))).json()["id"]
            r = await c.post(f"{base}/{pid}/publish.json", json={"title": True, "images": True})
            assert r.status_code == 200 and r.json() == {}
            product = (await c.get(f"{base}/{pid}.json")).json()
            assert product["is_locked"] is True

            r = await c.put(f"{base}/{pid}.json", json={"title": "New"})
            assert r.status_code == 400
            assert_error_shape(r.json(), 8252)
            assert (await c.delete(f"{base}/{pid}.json")).status_code == 400
            assert (await c.post(f"{base}/{pid}/publish.json", json={})).status_code == 400

            r = await c.post(
                f"{base}/{pid}/publishing_succeeded.json",
                json={"external": {"id": "777", "handle": "https://shop.example/p/777"}},
            )
            assert r.status_code == 200
            product = (await c.get(f"{base}/{pid}.json")).json()
            assert product["is_locked"] is False
            assert product["external"] == {"id": "777", "handle": "https://shop.example/p/777"}
            r = await c.put(f"{base}/{pid}.json", json={"title": "New"})
            assert r.status_code == 200 and r.json()["title"] == "New"
            assert r.json()["external"]["id"] == "777"


@pytest.mark.asyncio
async def test_native_publish_completes_and_fills_external(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    image_id = await upload(client)
    base = f"/v1/shops/{sandbox.shop_id}/products"
    pid = (await client.post(base + ".json", json=product_body(image_id))).json()["id"]
    assert (await client.post(f"{base}/{pid}/publish.json", json={"title": True})).json() == {}
    product = (await client.get(f"{base}/{pid}.json")).json()
    assert product["is_locked"] is False and product["external"]["id"]


# --- rate limits ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_forced_429_with_and_without_retry_after(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    sandbox.rate_limit_next(1, retry_after=7)
    r = await client.get("/v1/shops.json")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert_error_shape(r.json(), 429)
    sandbox.rate_limit_next(1, retry_after=None)
    r = await client.get("/v1/shops.json")
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert (await client.get("/v1/shops.json")).status_code == 200
    assert sandbox.status_429_count == 2


@pytest.mark.asyncio
async def test_scaled_buckets_count_requests_not_wall_time() -> None:
    clock = FakeClock()
    async with PrintifySandbox(time_scale=0.1, clock=clock) as sb:
        assert (sb.buckets["global"].limit, sb.buckets["global"].window) == (60, 6.0)
        assert (sb.buckets["catalog"].limit, sb.buckets["catalog"].window) == (10, 6.0)
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:
            codes = [(await c.get("/v1/catalog/blueprints.json")).status_code for _ in range(12)]
            assert codes == [200] * 10 + [429] * 2
            r = await c.get("/v1/catalog/blueprints.json")
            assert r.status_code == 429 and r.headers["Retry-After"] == "6"
            assert (await c.get("/v1/shops.json")).status_code == 200  # catalog only
            clock.now += 6.01
            assert (await c.get("/v1/catalog/blueprints.json")).status_code == 200
            clock.now += 6.01
            codes = [(await c.get("/v1/shops.json")).status_code for _ in range(61)]
            assert codes.count(200) == 60 and codes[-1] == 429
    assert sb.status_429_count == 4


@pytest.mark.asyncio
async def test_publish_bucket_and_no_retry_after_knob() -> None:
    clock = FakeClock()
    async with PrintifySandbox(
        time_scale=0.01, clock=clock, retry_after_header=False, global_limit=1000
    ) as sb:
        assert (sb.buckets["publish"].limit, sb.buckets["publish"].window) == (2, 18.0)
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:
            image_id = await upload(c)
            base = f"/v1/shops/{sb.shop_id}/products"
            pids = [
                (await c.post(base + ".json", json=product_body(image_id, f"P{i}"))).json()["id"]
                for i in range(3)
            ]
            codes = [(await c.post(f"{base}/{p}/publish.json", json={})).status_code for p in pids]
            assert codes == [200, 200, 429]
            r = await c.post(f"{base}/{pids[2]}/publish.json", json={})
            assert r.status_code == 429 and "Retry-After" not in r.headers
            clock.now += 18.5
            assert (await c.post(f"{base}/{pids[2]}/publish.json", json={})).status_code == 200


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_commit_then_timeout_hang_stores_exactly_once(sandbox: PrintifySandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=AUTH) as c:
        image_id = await upload(c)
        sandbox.commit_then_timeout_next(1)
        with pytest.raises(httpx.ReadTimeout):
            await c.post(
                f"/v1/shops/{sandbox.shop_id}/products.json",
                json=product_body(image_id, "POD-HANG"),
                timeout=httpx.Timeout(5.0, read=0.3),
            )
        listed = (await c.get(f"/v1/shops/{sandbox.shop_id}/products.json")).json()
    assert listed["total"] == 1
    assert sandbox.creates_per_key["POD-HANG"] == 1
    assert sandbox.request_counts["POST /v1/shops/{shop_id}/products.json"] == 1


@pytest.mark.asyncio
async def test_commit_then_drop(sandbox: PrintifySandbox, client: httpx.AsyncClient) -> None:
    image_id = await upload(client)
    sandbox.commit_then_timeout_next(1, mode="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(
            f"/v1/shops/{sandbox.shop_id}/products.json", json=product_body(image_id, "POD-DROP")
        )
    assert sandbox.creates_per_key["POD-DROP"] == 1 and len(sandbox.products) == 1


@pytest.mark.asyncio
async def test_fail_next_malformed_and_match(
    sandbox: PrintifySandbox, client: httpx.AsyncClient
) -> None:
    sandbox.fail_next(2, 503, match="catalog")
    assert (await client.get("/v1/shops.json")).status_code == 200
    r = await client.get("/v1/catalog/blueprints.json")
    assert r.status_code == 503
    assert_error_shape(r.json(), 503)
    assert (await client.get("/v1/catalog/blueprints.json")).status_code == 503
    assert (await client.get("/v1/catalog/blueprints.json")).status_code == 200
    sandbox.malformed_next(1)
    r = await client.get("/v1/shops.json")
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert (await client.get("/v1/shops.json")).json()[0]["id"] == sandbox.shop_id


def test_runs_under_server_thread() -> None:
    thread = ServerThread(PrintifySandbox())
    url = thread.start()
    try:
        r = httpx.get(url + "/v1/shops.json", headers=AUTH)
        assert r.status_code == 200 and r.json()[0]["id"] == 8154321
    finally:
        thread.stop()


@pytest.mark.asyncio
async def test_native_publish_with_delay_stays_locked_until_done() -> None:
    async with PrintifySandbox(publish_seconds=0.05) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url, headers=AUTH) as c:
            image_id = await upload(c)
            base = f"/v1/shops/{sb.shop_id}/products"
            pid = (await c.post(base + ".json", json=product_body(image_id))).json()["id"]
            assert (await c.post(f"{base}/{pid}/publish.json", json={})).status_code == 200
            assert (await c.get(f"{base}/{pid}.json")).json()["is_locked"] is True
            assert (await c.put(f"{base}/{pid}.json", json={"title": "x"})).status_code == 400
            async with asyncio.timeout(5):
                await sb.wait_published(pid)
            product = (await c.get(f"{base}/{pid}.json")).json()
            assert product["is_locked"] is False and product["external"]["id"]
