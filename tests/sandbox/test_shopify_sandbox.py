"""The Shopify sandbox speaks the Admin GraphQL protocol (raw HTTP, no adapter involved)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.sandbox.shopify import INVALID_TOKEN, ShopifySandbox, main

TOKEN = "shpat_raw"
VERSION = "2026-07"
SET = (
    "mutation S($identifier: ProductSetIdentifiers, $input: ProductSetInput!) { "
    "productSet(identifier: $identifier, input: $input) { product { id handle "
    "variants(first: 10) { nodes { sku price } } } userErrors { field message code } } }"
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def env() -> AsyncIterator[tuple[ShopifySandbox, httpx.AsyncClient, Clock]]:
    clock = Clock()
    async with ShopifySandbox(
        tokens={TOKEN: {"write_products", "write_files"}},
        clients={"app": ("secret", {"write_products"})},
        capacity=100,
        restore_rate=10,
        media_ready_after=2,
        token_lifetime=60,
        clock=clock,
    ) as sb:
        async with httpx.AsyncClient(base_url=sb.base_url, timeout=5) as http:
            yield sb, http, clock


async def gql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = TOKEN,
    version: str = VERSION,
) -> httpx.Response:
    headers = {"X-Shopify-Access-Token": token} if token is not None else {}
    return await http.post(
        f"/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers=headers,
    )


def product_input(options: int = 2, **extra: Any) -> dict[str, Any]:
    names = ["Color", "Size", "Fit", "Sleeve"][:options]
    return {
        "title": "Tee",
        "productOptions": [{"name": n, "values": [{"name": "A"}]} for n in names],
        "variants": [
            {
                "optionValues": [{"optionName": n, "name": "A"} for n in names],
                "price": "5",
                "sku": "X",
            }
        ],
        **extra,
    }


@pytest.mark.asyncio
async def test_auth_version_and_error_shapes(
    env: tuple[ShopifySandbox, httpx.AsyncClient, Clock],
) -> None:
    sb, http, _ = env
    for token in (None, "shpat_wrong"):
        r = await gql(http, "{ shop { name } }", token=token)
        assert r.status_code == 401 and r.json() == {"errors": INVALID_TOKEN}
    r = await gql(http, "{ shop { name } }", version="2019-01")
    assert r.status_code == 404 and r.json() == {"errors": "Not Found"}
    r = await gql(http, "{ shop { name nope } }")
    body = r.json()
    assert r.status_code == 200 and body["data"] == {"shop": None}
    assert body["errors"][0]["extensions"]["code"] == "undefinedField"
    r = await gql(http, "{ shop { name ")
    assert r.status_code == 200 and "Syntax Error" in r.json()["errors"][0]["message"]
    r = await gql(http, "{ publications(first: 5) { nodes { id } } }")
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == "ACCESS_DENIED"
    assert error["extensions"]["requiredAccess"] == "`read_publications` access scope."
    sb.fail_next(status=423)
    r = await gql(http, "{ shop { name } }")
    assert r.status_code == 423 and isinstance(r.json()["errors"], str)


@pytest.mark.asyncio
async def test_cost_bucket_throttles_on_200_and_restores(
    env: tuple[ShopifySandbox, httpx.AsyncClient, Clock],
) -> None:
    sb, http, clock = env
    query = '{ products: product(id: "x") { id } shop { name } }'
    r = await gql(http, "{ publications: shop { name } }")
    cost = r.json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 1
    assert cost["throttleStatus"] == {
        "maximumAvailable": 100,
        "currentlyAvailable": 99,
        "restoreRate": 10,
    }
    # a mutation costs 10 more than its selection; connections multiply by `first`
    r = await gql(http, SET, {"input": product_input()})
    # productSet 1 + product 1 + variants(first: 10) x (1 + nodes 1) + userErrors 1, + 10
    assert r.json()["extensions"]["cost"]["requestedQueryCost"] == 33
    available = r.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    assert available == 99 - 33
    for _ in range(2):
        r = await gql(http, SET, {"input": product_input()})
    r = await gql(http, SET, {"input": product_input()})  # 0 left, 33 requested
    body = r.json()
    assert r.status_code == 200 and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert "data" not in body and sb.throttled_count == 1
    clock.now += 4.0  # 40 points restored
    r = await gql(http, SET, {"input": product_input()})
    assert "errors" not in r.json()
    sb.throttle_status = 429
    sb.throttle_next()
    r = await gql(http, query)
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["code"] == "THROTTLED"


@pytest.mark.asyncio
async def test_product_set_upserts_and_reports_user_errors(
    env: tuple[ShopifySandbox, httpx.AsyncClient, Clock],
) -> None:
    sb, http, clock = env
    ident = {"handle": "pod-tee"}
    first = (await gql(http, SET, {"identifier": ident, "input": product_input()})).json()
    clock.now += 10
    changed = product_input()
    changed["variants"][0]["price"] = "7.5"
    second = (await gql(http, SET, {"identifier": ident, "input": changed})).json()
    p1, p2 = first["data"]["productSet"]["product"], second["data"]["productSet"]["product"]
    assert p1["id"] == p2["id"] and len(sb.products) == 1 and sb.creates == 1
    assert p2["variants"]["nodes"] == [{"sku": "X", "price": "7.50"}]

    async def errors(variables: dict[str, Any]) -> list[dict[str, Any]]:
        clock.now += 10
        body = (await gql(http, SET, variables)).json()
        return list(body["data"]["productSet"]["userErrors"])

    (e,) = await errors({"input": product_input(4)})
    assert (e["code"], e["field"]) == ("OPTIONS_OVER_LIMIT", ["input", "productOptions"])
    missing = product_input()
    missing["variants"][0]["optionValues"].pop()
    (e,) = await errors({"input": missing})
    assert e["code"] == "OPTION_VALUES_MISSING"
    assert e["field"] == ["input", "variants", "0", "optionValues"]
    (e,) = await errors({"input": product_input(handle="pod-tee")})  # no identifier
    assert e["code"] == "HANDLE_NOT_UNIQUE"
    negative = product_input()
    negative["variants"][0]["price"] = "-1"
    (e,) = await errors({"input": negative})
    assert e["field"] == ["input", "variants", "0", "price"]
    assert len(sb.products) == 1


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.asyncio
async def test_staged_upload_then_file_processing_to_ready(
    env: tuple[ShopifySandbox, httpx.AsyncClient, Clock],
) -> None:
    sb, http, clock = env
    stage = (
        "mutation($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: $input) { "
        "stagedTargets { url resourceUrl parameters { name value } } "
        "userErrors { field message } } }"
    )
    create = (
        "mutation($files: [FileCreateInput!]!) { fileCreate(files: $files) { "
        "files { id fileStatus } userErrors { field message } } }"
    )
    status = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on MediaImage { fileStatus } } }"

    async def upload(data: bytes, tamper: bool = False) -> tuple[int, str]:
        clock.now += 10
        item = {
            "filename": "a.png",
            "mimeType": "image/png",
            "resource": "IMAGE",
            "httpMethod": "POST",
        }
        target = (await gql(http, stage, {"input": [item]})).json()["data"]["stagedUploadsCreate"][
            "stagedTargets"
        ][0]
        params = {p["name"]: p["value"] for p in target["parameters"]}
        if tamper:
            params["policy"] = "forged"
        r = await http.post(
            target["url"], data=params, files={"file": ("a.png", data, "image/png")}
        )
        return r.status_code, target["resourceUrl"]

    code, _ = await upload(_png(), tamper=True)
    assert code == 403
    code, resource = await upload(_png())
    assert code == 204
    assert (await http.get(resource)).content == _png()
    files = (await gql(http, create, {"files": [{"originalSource": resource}]})).json()
    (file,) = files["data"]["fileCreate"]["files"]
    assert file["fileStatus"] == "UPLOADED"
    seen = []
    for _ in range(3):
        clock.now += 1
        node = (await gql(http, status, {"ids": [file["id"]]})).json()["data"]["nodes"][0]
        seen.append(node["fileStatus"])
    assert seen == ["PROCESSING", "READY", "READY"]

    _code, resource = await upload(b"not an image")
    files = (await gql(http, create, {"files": [{"originalSource": resource}]})).json()
    bad = files["data"]["fileCreate"]["files"][0]["id"]
    for _ in range(2):
        clock.now += 1
        node = (await gql(http, status, {"ids": [bad]})).json()["data"]["nodes"][0]
    assert node["fileStatus"] == "FAILED"
    assert sb.request_counts["staged.upload"] == 3


@pytest.mark.asyncio
async def test_client_credentials_tokens_expire(
    env: tuple[ShopifySandbox, httpx.AsyncClient, Clock],
) -> None:
    sb, http, clock = env
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "nope"}
    r = await http.post("/admin/oauth/access_token", data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    form["client_secret"] = "secret"
    r = await http.post("/admin/oauth/access_token", data=form)
    body = r.json()
    assert r.status_code == 200 and body["expires_in"] == 60 and body["scope"] == "write_products"
    token = body["access_token"]
    q = "{ currentAppInstallation { accessScopes { handle } } }"
    r = await gql(http, q, token=token)
    assert r.json()["data"]["currentAppInstallation"]["accessScopes"] == [
        {"handle": "write_products"}
    ]
    clock.now += 61
    assert (await gql(http, q, token=token)).status_code == 401
    assert sb.token_exchanges == 1


def test_main_rejects_a_malformed_client_option() -> None:
    with pytest.raises(SystemExit):
        main(["--client", "no-secret"])
