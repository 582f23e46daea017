"""The Etsy sandbox speaks the protocol: raw HTTP against it, no adapter involved."""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.sandbox.etsy import EtsySandbox

KEY = "sandboxkeystring"
SECRET = "sandboxsecret"
REDIRECT = "http://127.0.0.1:9/etsy/callback"
PROFILE = 234107945503
READINESS = 1402336022581


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[EtsySandbox]:
    async with EtsySandbox(per_second=1000) as sb:
        yield sb


@pytest_asyncio.fixture
async def http(sandbox: EtsySandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        yield client


async def authorize(http: httpx.AsyncClient, verifier: str, state: str = "st") -> str:
    r = await http.get(
        "/oauth/connect",
        params={
            "response_type": "code",
            "client_id": KEY,
            "redirect_uri": REDIRECT,
            "scope": "listings_r listings_w shops_r",
            "state": state,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["state"] == [state]
    return query["code"][0]


async def tokens(http: httpx.AsyncClient) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(48)
    code = await authorize(http, verifier)
    r = await http.post(
        "/v3/public/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": KEY,
            "redirect_uri": REDIRECT,
            "code": code,
            "code_verifier": verifier,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def api_headers(access: str, key: str = f"{KEY}:{SECRET}") -> dict[str, str]:
    return {"x-api-key": key, "Authorization": f"Bearer {access}"}


def draft_form(**overrides: str) -> dict[str, str]:
    form = {
        "quantity": "10",
        "title": "Retro Sunset Tee",
        "description": "Soft tee.",
        "price": "24.99",
        "who_made": "someone_else",
        "when_made": "made_to_order",
        "is_supply": "false",
        "taxonomy_id": "482",
        "shipping_profile_id": str(PROFILE),
        "tags": "retro,sunset",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<omit>"}


@pytest.mark.asyncio
async def test_code_exchange_checks_pkce_and_single_use(
    sandbox: EtsySandbox, http: httpx.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await authorize(http, verifier)
    form = {
        "grant_type": "authorization_code",
        "client_id": KEY,
        "redirect_uri": REDIRECT,
        "code": code,
        "code_verifier": secrets.token_urlsafe(48),  # not the one behind the challenge
    }
    r = await http.post("/v3/public/oauth/token", data=form)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "code_verifier is invalid"}
    r = await http.post("/v3/public/oauth/token", data={**form, "code_verifier": verifier})
    body = r.json()
    assert r.status_code == 200 and body["expires_in"] == 3600
    assert body["access_token"].startswith(f"{sandbox.user_id}.")
    r = await http.post("/v3/public/oauth/token", data={**form, "code_verifier": verifier})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


@pytest.mark.asyncio
async def test_connect_rejects_plain_pkce_and_unknown_redirect(http: httpx.AsyncClient) -> None:
    base = {
        "response_type": "code",
        "client_id": KEY,
        "redirect_uri": REDIRECT,
        "scope": "listings_r",
        "state": "s",
        "code_challenge": "abc",
    }
    r = await http.get("/oauth/connect", params={**base, "code_challenge_method": "plain"})
    assert r.status_code == 400 and "S256" in r.json()["error_description"]
    r = await http.get(
        "/oauth/connect",
        params={**base, "code_challenge_method": "S256", "redirect_uri": "https://evil.example/"},
    )
    assert r.status_code == 400 and "redirect_uri" in r.json()["error_description"]


@pytest.mark.asyncio
async def test_refresh_rotates_and_kills_the_old_token(
    sandbox: EtsySandbox, http: httpx.AsyncClient
) -> None:
    first = await tokens(http)
    form = {"grant_type": "refresh_token", "client_id": KEY}
    r = await http.post(
        "/v3/public/oauth/token", data={**form, "refresh_token": first["refresh_token"]}
    )
    second = r.json()
    assert r.status_code == 200 and second["refresh_token"] != first["refresh_token"]
    r = await http.post(
        "/v3/public/oauth/token", data={**form, "refresh_token": first["refresh_token"]}
    )
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "refresh_token is revoked"}
    r = await http.get("/v3/application/users/me", headers=api_headers(second["access_token"]))
    assert r.status_code == 200 and r.json()["shop_id"] == sandbox.shop_id


@pytest.mark.asyncio
async def test_api_key_needs_the_shared_secret(http: httpx.AsyncClient) -> None:
    t = await tokens(http)
    r = await http.get("/v3/application/users/me", headers=api_headers(t["access_token"], KEY))
    assert r.status_code == 403
    assert r.json() == {"error": "Shared secret is required in x-api-key header."}
    r = await http.get(
        "/v3/application/users/me", headers=api_headers(t["access_token"], "other:" + SECRET)
    )
    assert r.status_code == 403 and r.json()["error"] == "API key not found or not active"
    r = await http.get("/v3/application/users/me", headers={"x-api-key": f"{KEY}:{SECRET}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


@pytest.mark.asyncio
async def test_expired_access_token_is_invalid_token(
    sandbox: EtsySandbox, http: httpx.AsyncClient
) -> None:
    t = await tokens(http)
    sandbox.expire_access_tokens()
    r = await http.get("/v3/application/users/me", headers=api_headers(t["access_token"]))
    assert r.status_code == 401
    assert r.json()["error_description"] == "access token is expired"


@pytest.mark.asyncio
async def test_rate_headers_and_per_second_and_day_limits() -> None:
    now = [100.0]
    async with (
        EtsySandbox(per_second=2, per_day=5, day_seconds=600, clock=lambda: now[0]) as sb,
        httpx.AsyncClient(base_url=sb.base_url) as http,
    ):
        t = await tokens(http)
        h = api_headers(t["access_token"])
        r = await http.get("/v3/application/users/me", headers=h)
        assert r.headers["x-limit-per-second"] == "2"
        assert r.headers["x-remaining-this-second"] == "1"
        assert r.headers["x-limit-per-day"] == "5"
        assert r.headers["x-remaining-today"] == "4"
        await http.get("/v3/application/users/me", headers=h)
        r = await http.get("/v3/application/users/me", headers=h)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert "x-remaining-today" not in r.headers  # none on a 429
        now[0] += 1.5
        for _ in range(3):
            r = await http.get("/v3/application/users/me", headers=h)
            now[0] += 1.5
        assert r.status_code == 200 and r.headers["x-remaining-today"] == "0"
        r = await http.get("/v3/application/users/me", headers=h)
        assert r.status_code == 429 and "daily" in r.json()["error"]
        assert 590 <= int(r.headers["Retry-After"]) <= 600  # the first hit leaves the window
        assert sb.status_429_count == 2


@pytest.mark.asyncio
async def test_create_draft_validation(sandbox: EtsySandbox, http: httpx.AsyncClient) -> None:
    t = await tokens(http)
    h = api_headers(t["access_token"])
    url = f"/v3/application/shops/{sandbox.shop_id}/listings"

    async def create(**overrides: str) -> httpx.Response:
        return await http.post(url, data=draft_form(**overrides), headers=h)

    cases = [
        ({"title": "<omit>"}, "Missing required parameter(s): title"),
        ({"shipping_profile_id": "<omit>"}, "A shipping_profile_id is required"),
        ({"shipping_profile_id": "99"}, "shipping_profile_id 99 does not exist"),
        ({"title": "T" * 141}, "140 characters or fewer"),
        ({"title": "50% off: 100% cotton"}, "% character only once"),
        ({"tags": ",".join(f"tag{i}" for i in range(14))}, "at most 13 items"),
        ({"price": "0"}, "price must be greater than 0"),
        ({"who_made": "robot"}, "who_made must be one of"),
        ({"taxonomy_id": "1234567"}, "is not a seller taxonomy node"),
    ]
    for overrides, message in cases:
        r = await create(**overrides)
        assert r.status_code == 400, overrides
        assert message in r.json()["error"], (overrides, r.json())
    r = await create(is_supply="<omit>")
    assert r.status_code == 400 and r.json()[0]["type"] == "array_too_short"
    assert sandbox.listings == {}
    r = await create()
    body = r.json()
    assert r.status_code == 201 and body["state"] == "draft"
    assert body["price"] == {"amount": 2499, "divisor": 100, "currency_code": "USD"}
    assert body["tags"] == ["retro", "sunset"]


@pytest.mark.asyncio
async def test_activation_needs_an_image(sandbox: EtsySandbox, http: httpx.AsyncClient) -> None:
    t = await tokens(http)
    h = api_headers(t["access_token"])
    shop = sandbox.shop_id
    listing = (
        await http.post(f"/v3/application/shops/{shop}/listings", data=draft_form(), headers=h)
    ).json()
    patch_url = f"/v3/application/shops/{shop}/listings/{listing['listing_id']}"
    r = await http.patch(patch_url, data={"state": "active"}, headers=h)
    assert r.status_code == 400 and "at least one image" in r.json()["error"]
    r = await http.post(
        f"{patch_url}/images",
        files={"image": ("a.png", png_bytes(), "image/png")},
        data={"rank": "1"},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["rank"] == 1
    r = await http.post(
        f"{patch_url}/images", files={"image": ("a.txt", b"hello", "text/plain")}, headers=h
    )
    assert r.status_code == 400 and "JPEG or PNG" in r.json()["error"]
    r = await http.patch(patch_url, data={"state": "active"}, headers=h)
    assert r.status_code == 200 and r.json()["state"] == "active"


@pytest.mark.asyncio
async def test_inventory_rules(sandbox: EtsySandbox, http: httpx.AsyncClient) -> None:
    t = await tokens(http)
    h = api_headers(t["access_token"])
    shop = sandbox.shop_id
    listing = (
        await http.post(f"/v3/application/shops/{shop}/listings", data=draft_form(), headers=h)
    ).json()
    url = f"/v3/application/listings/{listing['listing_id']}/inventory"

    def product(color: str, size: str, price: float) -> dict[str, Any]:
        return {
            "sku": f"POD-X-{color}-{size}",
            "property_values": [
                {"property_id": 200, "value_ids": [], "values": [color]},
                {"property_id": 100, "value_ids": [], "values": [size]},
            ],
            "offerings": [
                {"price": price, "quantity": 5, "is_enabled": True, "readiness_state_id": READINESS}
            ],
        }

    body = {
        "products": [product("Black", "M", 20.0), product("Black", "L", 22.0)],
        "price_on_property": [],
        "sku_on_property": [100, 200],
    }
    r = await http.put(url, json=body, headers=h)
    assert r.status_code == 400 and "price_on_property" in r.json()["error"]
    r = await http.put(url, json={**body, "price_on_property": [100]}, headers=h)
    assert r.status_code == 200, r.text
    assert [p["sku"] for p in r.json()["products"]] == ["POD-X-Black-M", "POD-X-Black-L"]
    missing = product("White", "M", 20.0)
    del missing["offerings"][0]["readiness_state_id"]
    r = await http.put(url, json={"products": [missing]}, headers=h)
    assert r.status_code == 400 and "readiness_state_id is required" in r.json()["error"]
    got = await http.get(
        f"/v3/application/shops/{shop}/listings",
        params={"state": "draft", "includes": "Inventory"},
        headers=h,
    )
    assert got.json()["results"][0]["inventory"]["products"][0]["sku"] == "POD-X-Black-M"


@pytest.mark.asyncio
async def test_commit_then_timeout_stores_the_draft(
    sandbox: EtsySandbox, http: httpx.AsyncClient
) -> None:
    t = await tokens(http)
    sandbox.commit_then_timeout_next(1, mode="drop")
    with pytest.raises(httpx.TransportError):
        await http.post(
            f"/v3/application/shops/{sandbox.shop_id}/listings",
            data=draft_form(),
            headers=api_headers(t["access_token"]),
        )
    assert sandbox.creates_per_title["Retro Sunset Tee"] == 1
    assert [v["state"] for v in sandbox.listings.values()] == ["draft"]


@pytest.mark.asyncio
async def test_injected_faults(sandbox: EtsySandbox, http: httpx.AsyncClient) -> None:
    t = await tokens(http)
    h = api_headers(t["access_token"])
    sandbox.fail_next(1, 503, match="/users/me")
    r = await http.get("/v3/application/users/me", headers=h)
    assert r.status_code == 503 and r.json() == {"error": "Server Error"}
    sandbox.rate_limit_next(1, retry_after=7)
    r = await http.get("/v3/application/users/me", headers=h)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    sandbox.invalid_grant_next()
    r = await http.post(
        "/v3/public/oauth/token",
        data={"grant_type": "refresh_token", "client_id": KEY, "refresh_token": t["refresh_token"]},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (await http.get("/v3/application/users/me", headers=h)).status_code == 200
