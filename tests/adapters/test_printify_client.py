"""Tests for the Printify adapter against the Printify sandbox (and MockTransport edges)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.marketplaces.printify import PrintifyClient, marker_for
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.marketplace import (
    ListingSpec,
    ListingStatus,
    Marketplace,
    VariantPrice,
)
from pod_studio.sandbox.printify import PrintifySandbox

T = TypeVar("T")
TOKEN = "sandbox-token-s3cr3t-value"
BLACK_M, BLACK_L, WHITE_M = 18112, 18113, 18102
PRODUCTS = "POST /v1/shops/{shop_id}/products.json"
UPLOADS = "POST /v1/uploads/images.json"
VARIANTS = "GET /v1/catalog/blueprints/{bp}/print_providers/{pp}/variants.json"


class RetryingGuard:
    """A minimal policy: retry retryable errors of idempotent calls, up to ``attempts``."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self.calls: list[tuple[str, bool, str | None]] = []
        self.retries: list[tuple[str, str]] = []

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T:
        self.calls.append((operation, idempotent, bucket))
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except PodStudioError as exc:
                if not (exc.retryable and idempotent) or attempt >= self.attempts:
                    raise
                self.retries.append((operation, exc.kind))
                await asyncio.sleep(0)


class DictCache:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self.data:
            self.data[key] = await loader()
        return self.data[key]


def write_png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (20, 120, 200)).save(path, "PNG")
    return path


@pytest.fixture(scope="session")
def design_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png(tmp_path_factory.mktemp("designs") / "sunset.png", (3000, 3000))


def spec_for(design: Path, key: str = "job-1", **overrides: Any) -> ListingSpec:
    data: dict[str, Any] = {
        "idem_key": key,
        "title": "Retro Sunset Tee",
        "description": "<p>Soft tee with a retro sunset.</p>",
        "tags": ["retro", "sunset"],
        "design_path": design,
        "design_sha256": hashlib.sha256(design.read_bytes()).hexdigest(),
        "blueprint_id": 12,
        "print_provider_id": 99,
        "variants": [
            VariantPrice(variant_id=BLACK_M, price=Decimal("24.99")),
            VariantPrice(variant_id=BLACK_L, price=Decimal("24.99")),
            VariantPrice(variant_id=WHITE_M, price=Decimal("22.00"), enabled=False),
        ],
    }
    data.update(overrides)
    return ListingSpec.build(**data)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[PrintifySandbox]:
    async with PrintifySandbox(tokens={TOKEN}) as sb:
        yield sb


ClientFactory = Callable[..., PrintifyClient]


@pytest_asyncio.fixture
async def make_client(sandbox: PrintifySandbox) -> AsyncIterator[ClientFactory]:
    made: list[PrintifyClient] = []

    def factory(**kwargs: Any) -> PrintifyClient:
        token = kwargs.pop("token", TOKEN)
        kwargs.setdefault("base_url", sandbox.base_url)
        kwargs.setdefault("shop_id", sandbox.shop_id)
        client = PrintifyClient(lambda: token, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


def total_requests(sandbox: PrintifySandbox) -> int:
    return sum(sandbox.request_counts.values())


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_full_flow_shops_catalog_upload_create_publish_read_back(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    guard = RetryingGuard()
    client = make_client(guard=guard)
    assert isinstance(client, Marketplace)
    assert await client.health_check() == (
        True,
        "Printify OK: shop 'POD Studio Sandbox' (shopify).",
    )
    shops = await client.shops()
    assert [s.id for s in shops] == [str(sandbox.shop_id)]
    assert {b.id for b in await client.blueprints()} == {12, 77}
    assert {p.id for p in await client.print_providers(12)} == {99, 29, 50}
    variants = await client.variants(12, 99)
    black_m = next(v for v in variants if v.id == BLACK_M)
    assert black_m.options == {"color": "Black", "size": "M"}
    front = black_m.placeholder("front")
    assert front is not None and (front.width, front.height) == (4051, 5131)
    shipping = await client.shipping(12, 99)
    assert shipping[0].first_item == Decimal("4.75")

    spec = spec_for(design_png)
    assert await client.find_existing(spec.idem_key) is None
    draft = await client.create_listing(spec)
    assert draft.status is ListingStatus.DRAFT and draft.platform == "printify"
    assert len(draft.remote_id) == 24

    product = sandbox.products[draft.remote_id]
    assert [(v["id"], v["price"], v["is_enabled"]) for v in product["variants"]] == [
        (BLACK_M, 2499, True),
        (BLACK_L, 2499, True),
    ]
    assert {v["sku"] for v in product["variants"]} == {
        f"{marker_for('job-1')}-{BLACK_M}",
        f"{marker_for('job-1')}-{BLACK_L}",
    }
    assert product["tags"] == ["retro", "sunset"]
    # Black M and Black L have different print areas: one group each, each fitted
    areas = {tuple(a["variant_ids"]): a for a in product["print_areas"]}
    assert set(areas) == {(BLACK_M,), (BLACK_L,)}
    image = areas[(BLACK_L,)]["placeholders"][0]["images"][0]
    assert image["angle"] == 0 and isinstance(image["angle"], int)
    assert (image["x"], image["y"], image["scale"]) == (0.5, 0.5, 1.0)

    published = await client.publish(draft)
    # the publish answer says nothing but "accepted": the product is locked, publishing
    assert published.status is ListingStatus.PUBLISHING
    again = await client.get_listing(draft.remote_id)
    assert again.status is ListingStatus.PUBLISHED  # the native channel finished
    assert again.external_ids["id"] and again.url is not None
    assert again.url.startswith("https://")
    assert again.created_at is not None

    ops = {op: (idem, bucket) for op, idem, bucket in guard.calls}
    assert ops["create_product"] == (False, None)
    assert ops["publish"] == (False, "publish")
    assert ops["catalog.variants"] == (True, "catalog")
    assert ops["upload_image"] == (True, None)
    assert sandbox.creates_per_key[marker_for("job-1")] == 1

    # publishing again is skipped: already published, no second publish call
    await client.publish(again)
    assert (
        sandbox.request_counts["POST /v1/shops/{shop_id}/products/{product_id}/publish.json"] == 1
    )
    # a second run of the same key finds the existing product (and creates nothing)
    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.remote_id == draft.remote_id
    assert sandbox.request_counts[PRODUCTS] == 1


@pytest.mark.asyncio
async def test_custom_shop_publish_locks_until_marked(design_png: Path) -> None:
    async with PrintifySandbox(tokens={TOKEN}, publish_mode="custom") as sb:
        client = PrintifyClient(lambda: TOKEN, base_url=sb.base_url, shop_id=sb.shop_id)
        try:
            draft = await client.create_listing(spec_for(design_png))
            publishing = await client.publish(draft)
            assert publishing.status is ListingStatus.PUBLISHING
            await client.publish(publishing)  # locked: no second publish call
            publish_key = "POST /v1/shops/{shop_id}/products/{product_id}/publish.json"
            assert sb.request_counts[publish_key] == 1
            await client.mark_published(draft.remote_id, "4242", "https://shop.example/p/4242")
            done = await client.get_listing(draft.remote_id)
            assert done.status is ListingStatus.PUBLISHED
            assert done.external_ids == {"id": "4242", "handle": "https://shop.example/p/4242"}
        finally:
            await client.aclose()


@pytest.mark.asyncio
async def test_custom_shop_publishing_failed_unlocks_and_succeeded_later(design_png: Path) -> None:
    async with PrintifySandbox(tokens={TOKEN}, publish_mode="custom") as sb:
        client = PrintifyClient(lambda: TOKEN, base_url=sb.base_url, shop_id=sb.shop_id)
        try:
            draft = await client.create_listing(spec_for(design_png))
            assert (await client.publish(draft)).status is ListingStatus.PUBLISHING
            await client.report_publishing_failed(draft.remote_id, "  Shopify: no Online Store ")
            assert sb.publish_failures[draft.remote_id] == "Shopify: no Online Store"
            unlocked = await client.get_listing(draft.remote_id)
            assert unlocked.status is ListingStatus.DRAFT
            assert (await client.publish(unlocked)).status is ListingStatus.PUBLISHING
            await client.report_publishing_succeeded(
                draft.remote_id, "gid://shopify/Product/1001", "https://shop.example/p/tee"
            )
            done = await client.get_listing(draft.remote_id)
            assert done.status is ListingStatus.PUBLISHED
            assert done.url == "https://shop.example/p/tee"
            with pytest.raises(APIError) as info:
                await client.report_publishing_failed("0" * 24, "x")
            assert info.value.status_code == 404
        finally:
            await client.aclose()


# --- auth and secrets -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_check_credentials_proves_the_token_and_the_shop(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    await make_client().check_credentials()
    await make_client(shop_id=None).check_credentials()  # the account's only shop
    assert sandbox.request_counts["GET /v1/shops.json"] == 2
    with pytest.raises(AuthenticationError) as wrong:
        await make_client(token="wrong-token-for-the-check").check_credentials()
    assert "rejected the API token" in wrong.value.user_message
    with pytest.raises(AuthenticationError):
        await make_client(token=None).check_credentials()
    with pytest.raises(ValidationError) as shop:
        await make_client(shop_id=999).check_credentials()
    assert "Printify shop 999 is not on this account" in shop.value.user_message
    assert str(sandbox.shop_id) in shop.value.user_message  # the shops it does have


@pytest.mark.asyncio
async def test_wrong_token_is_authentication_error_without_retry_or_leak(
    sandbox: PrintifySandbox, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-do-not-log-me"
    guard = RetryingGuard()
    client = make_client(token=wrong, guard=guard)
    with pytest.raises(AuthenticationError) as info:
        await client.shops()
    exc = info.value
    assert exc.status_code == 401 and exc.retryable is False
    assert total_requests(sandbox) == 1 and guard.retries == []
    ok, detail = await client.health_check()
    assert ok is False and "token" in detail
    texts = [str(exc), repr(exc), exc.user_message, detail, repr(client), caplog.text]
    assert not any(wrong in text for text in texts)
    assert "'authorization': '***'" in caplog.text


@pytest.mark.asyncio
async def test_token_never_in_logs_of_a_full_flow(
    make_client: ClientFactory, design_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    await client.publish(await client.create_listing(spec_for(design_png, key="job-log")))
    assert "printify -> POST" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in repr(client)


@pytest.mark.asyncio
async def test_missing_token_fails_before_any_request(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    client = make_client(token=None)
    with pytest.raises(AuthenticationError):
        await client.shops()
    assert total_requests(sandbox) == 0


# --- rate limits and transient failures -------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("retry_after", [3.0, None])
async def test_429_maps_to_rate_limit_error(
    sandbox: PrintifySandbox, make_client: ClientFactory, retry_after: float | None
) -> None:
    client = make_client()
    sandbox.rate_limit_next(1, retry_after=retry_after)
    with pytest.raises(RateLimitError) as info:
        await client.shops()
    assert info.value.retry_after == retry_after
    assert info.value.retryable is True and info.value.status_code == 429


@pytest.mark.asyncio
async def test_5xx_then_success_through_retrying_guard(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    guard = RetryingGuard()
    client = make_client(guard=guard)
    sandbox.fail_next(2, 503)
    shops = await client.shops()
    assert shops[0].title == "POD Studio Sandbox"
    assert sandbox.request_counts["GET /v1/shops.json"] == 3
    assert guard.retries == [("shops", "ServiceError"), ("shops", "ServiceError")]


@pytest.mark.asyncio
async def test_malformed_2xx_is_upstream_data_error(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    client = make_client()
    sandbox.malformed_next(1)
    with pytest.raises(UpstreamDataError) as info:
        await client.shops()
    assert info.value.retryable is True


@pytest.mark.asyncio
async def test_slow_server_maps_to_retryable_timeout(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    client = make_client(timeout=httpx.Timeout(5.0, read=0.1))
    sandbox.slow_seconds = 0.5
    with pytest.raises(PodTimeoutError) as info:
        await client.shops()
    assert info.value.retryable is True
    sandbox.slow_seconds = 0.0


# --- duplicates -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("mode", "error"), [("hang", PodTimeoutError), ("drop", ServiceError)])
async def test_create_commits_then_times_out_yields_exactly_one_product(
    sandbox: PrintifySandbox,
    make_client: ClientFactory,
    design_png: Path,
    mode: str,
    error: type[PodStudioError],
) -> None:
    """What the publish service does after an ambiguous create: the create is not resent by
    the guard (not idempotent), it ends retryable, and ``find_existing`` finds the product the
    server made, so nothing is created twice."""
    guard = RetryingGuard()
    client = make_client(guard=guard, timeout=httpx.Timeout(5.0, read=0.5))
    sandbox.commit_then_timeout_next(1, mode=mode)
    spec = spec_for(design_png, key=f"job-{mode}")
    with pytest.raises(error) as info:
        await client.create_listing(spec)
    assert info.value.retryable
    assert sandbox.request_counts[PRODUCTS] == 1  # never re-sent
    assert ("create_product", False, None) in guard.calls
    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.status is ListingStatus.DRAFT
    assert sandbox.creates_per_key[marker_for(spec.idem_key)] == 1
    assert list(sandbox.products) == [found.remote_id]


@pytest.mark.asyncio
async def test_create_retried_after_ambiguous_failure_that_did_not_land(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    spec = spec_for(design_png, key="job-502")
    sandbox.fail_next(1, 502, match="POST /v1/shops/{shop_id}/products.json")
    with pytest.raises(ServiceError) as info:
        await client.create_listing(spec)
    assert info.value.retryable and info.value.status_code == 502
    assert await client.find_existing(spec.idem_key) is None  # it did not land: create again
    listing = await client.create_listing(spec)
    assert sandbox.request_counts[PRODUCTS] == 2
    assert list(sandbox.products) == [listing.remote_id]


@pytest.mark.asyncio
async def test_find_existing_pages_through_products(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    first = await client.create_listing(spec_for(design_png, key="old"))
    for i in range(55):
        await client.create_listing(spec_for(design_png, key=f"filler-{i}"))
    sandbox.reset_counters()
    found = await client.find_existing("old")
    assert found is not None and found.remote_id == first.remote_id
    assert sandbox.request_counts["GET /v1/shops/{shop_id}/products.json"] == 2
    assert await client.find_existing("never-created") is None


# --- uploads and the catalog cache ------------------------------------------------------------


@pytest.mark.asyncio
async def test_upload_dedupe_in_memory_parallel_and_persistent(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path, tmp_path: Path
) -> None:
    index = tmp_path / "uploads.json"
    client = make_client(upload_index_path=index)
    data = await asyncio.to_thread(design_png.read_bytes)
    images = await asyncio.gather(*(client.upload_image(data, "a.png") for _ in range(3)))
    again = await client.upload_image(design_png)
    assert {i.id for i in images} == {again.id}
    assert sandbox.request_counts[UPLOADS] == 1

    other = make_client(upload_index_path=index)
    assert (await other.upload_image(data)).id == again.id
    assert sandbox.request_counts[UPLOADS] == 1

    distinct = []
    for colour in ("yellow", "green"):
        buf = io.BytesIO()
        Image.new("RGB", (400, 400), colour).save(buf, "PNG")
        distinct.append(buf.getvalue())
    await asyncio.gather(*(client.upload_image(d) for d in distinct))
    assert sandbox.request_counts[UPLOADS] == 3


@pytest.mark.asyncio
async def test_large_image_is_recompressed_under_the_limit(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    noisy = Image.effect_noise((600, 600), 80).convert("RGB")
    buf = io.BytesIO()
    noisy.save(buf, "BMP")
    client = make_client(max_upload_bytes=400_000)
    image = await client.upload_image(buf.getvalue(), "noisy.bmp")
    stored = sandbox.uploads[image.id]
    assert stored["mime_type"] in ("image/png", "image/jpeg")
    assert stored["size"] * 4 / 3 <= 400_000
    assert stored["file_name"].endswith((".png", ".jpg"))


@pytest.mark.asyncio
async def test_catalog_cache_hit_makes_no_request(
    sandbox: PrintifySandbox, make_client: ClientFactory
) -> None:
    cache = DictCache()
    client = make_client(catalog_cache=cache)
    first = await client.variants(12, 99)
    second = await client.variants(12, 99)
    assert first == second
    assert sandbox.request_counts[VARIANTS] == 1
    await client.variants(12, 29)
    await client.variants(12, 99, show_out_of_stock=True)
    assert sandbox.request_counts[VARIANTS] == 3
    assert all(str(sandbox.shop_id) in key and "variants" in key for key in cache.data)
    assert not any(TOKEN in key for key in cache.data)


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_shop_id(sandbox: PrintifySandbox, make_client: ClientFactory) -> None:
    client = make_client(shop_id=999)
    with pytest.raises(APIError) as info:
        await client.find_existing("job-1")
    assert info.value.status_code == 404 and "shop 999" in info.value.user_message
    assert not isinstance(info.value, AuthenticationError)
    ok, detail = await client.health_check()
    assert ok is False and "999" in detail


@pytest.mark.asyncio
async def test_blueprint_provider_pair_not_offered(make_client: ClientFactory) -> None:
    client = make_client()
    with pytest.raises(APIError) as info:
        await client.variants(77, 29)
    assert info.value.status_code == 404 and info.value.retryable is False
    assert "provider 29 does not offer blueprint 77" in info.value.user_message


@pytest.mark.asyncio
async def test_bad_design_files_rejected_before_upload(
    sandbox: PrintifySandbox, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client()
    small = write_png(tmp_path / "small.png", (300, 300))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    cases = {small: "DPI", empty: "0 bytes", text: "not a readable image"}
    for path, expected in cases.items():
        spec = spec_for(path, key=f"bad-{path.name}")
        with pytest.raises(ValidationError) as info:
            await client.create_listing(spec)
        assert expected in info.value.user_message, info.value.user_message
    with pytest.raises(ValidationError):
        await client.upload_image(b"")
    with pytest.raises(ValidationError):
        await client.upload_image(b"GIF? no", "x.gif")
    assert sandbox.request_counts[UPLOADS] == 0
    assert sandbox.request_counts[PRODUCTS] == 0


@pytest.mark.asyncio
async def test_changed_design_file_is_rejected(
    sandbox: PrintifySandbox, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = write_png(tmp_path / "d.png", (1000, 1000))
    spec = spec_for(path)
    write_png(path, (1000, 1001))
    with pytest.raises(ValidationError) as info:
        await make_client().create_listing(spec)
    assert "changed since it was approved" in info.value.user_message
    assert total_requests(sandbox) == 0


@pytest.mark.asyncio
async def test_title_and_price_limits(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design_png, title="T" * 141))
    assert "title is 141 characters" in info.value.user_message
    absurd = [VariantPrice(variant_id=BLACK_M, price=Decimal("5000"))]
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design_png, variants=absurd))
    assert "sanity limit" in info.value.user_message
    unknown = [VariantPrice(variant_id=123456, price=Decimal("20"))]
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design_png, variants=unknown))
    assert "123456 is not offered" in info.value.user_message
    assert total_requests(sandbox) == 1  # the catalog read for the unknown variant only


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("title", "T" * 256, "title"),
        ("tags", [f"t{i}" for i in range(14)], "at most 13"),
        ("tags", ["x" * 21], "longer than 20"),
        ("variants", [VariantPrice(variant_id=1, price=Decimal("1"), enabled=False)], "enable"),
    ],
)
def test_listing_spec_build_raises_domain_validation_error(
    design_png: Path, field: str, value: Any, expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        spec_for(design_png, **{field: value})
    assert expected in str(info.value)


def test_variant_price_rejects_absurd_values() -> None:
    for price in ("0", "-1", "1000000", "1.001"):
        with pytest.raises(ValueError):
            VariantPrice(variant_id=1, price=Decimal(price))
    assert VariantPrice(variant_id=1, price=Decimal("24.99")).cents == 2499


@pytest.mark.asyncio
async def test_server_side_validation_reason_reaches_the_user(design_png: Path) -> None:
    async with PrintifySandbox(tokens={TOKEN}, min_effective_dpi=250) as sb:
        client = PrintifyClient(lambda: TOKEN, base_url=sb.base_url, shop_id=sb.shop_id)
        try:
            with pytest.raises(ValidationError) as info:
                await client.create_listing(spec_for(design_png))
        finally:
            await client.aclose()
    assert "Image has low quality" in info.value.user_message
    assert info.value.retryable is False


# --- transport edges (MockTransport) ----------------------------------------------------------


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> PrintifyClient:
    return PrintifyClient(
        lambda: TOKEN, shop_id=1, transport=httpx.MockTransport(handler), base_url="https://x"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("response", "error", "check"),
    [
        (httpx.Response(401, json={}), AuthenticationError, "token"),
        (httpx.Response(403, json={"message": "no scope"}), AuthenticationError, "no scope"),
        (
            httpx.Response(422, json={"status": "error", "errors": {"reason": "bad tags"}}),
            ValidationError,
            "bad tags",
        ),
        (httpx.Response(502, text="<html>bad gateway</html>"), ServiceError, "502"),
        (httpx.Response(402, json={"message": "upgrade"}), APIError, "upgrade"),
        (httpx.Response(200, text="<html>"), UpstreamDataError, "garbled"),
    ],
)
async def test_status_mapping(
    response: httpx.Response, error: type[PodStudioError], check: str
) -> None:
    client = mock_client(lambda request: response)
    try:
        with pytest.raises(error) as info:
            await client.shops()
    finally:
        await client.aclose()
    assert check in info.value.user_message
    assert TOKEN not in str(info.value)


@pytest.mark.asyncio
async def test_retry_after_http_date_and_transport_errors() -> None:
    def rate_limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})

    client = mock_client(rate_limited)
    with pytest.raises(RateLimitError) as info:
        await client.shops()
    assert info.value.retry_after == 0.0
    await client.aclose()

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler, error in ((timeout, PodTimeoutError), (refused, ServiceError)):
        client = mock_client(handler)
        with pytest.raises(error) as exc_info:
            await client.shops()
        assert exc_info.value.retryable is True
        await client.aclose()


@pytest.mark.asyncio
async def test_request_headers_user_agent_json_and_bearer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"current_page": 1, "data": [], "last_page": 1})

    client = PrintifyClient(
        lambda: TOKEN,
        shop_id=7,
        transport=httpx.MockTransport(handler),
        user_agent="POD-Studio/9.9",
    )
    try:
        assert await client.find_existing("k") is None
    finally:
        await client.aclose()
    request = seen[0]
    assert request.url == "https://api.printify.com/v1/shops/7/products.json?limit=50&page=1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"] == "POD-Studio/9.9"


# --- uploads belong to an account ------------------------------------------------------------


@pytest.mark.asyncio
async def test_upload_index_is_keyed_by_account(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path, tmp_path: Path
) -> None:
    """A run with another account's token leaves its image ids in the shared index; the
    right account must not reuse them (Printify answers print_areas...images.0.id)."""
    other = "sandbox-token-other-account"
    sandbox.tokens[other] = set(sandbox.tokens[TOKEN])
    index = tmp_path / "uploads.json"
    first = make_client(token=other, upload_index_path=index)
    await first.create_listing(spec_for(design_png, key="acct-a"))
    second = make_client(upload_index_path=index)
    listing = await second.create_listing(spec_for(design_png, key="acct-b"))
    assert listing.remote_id in sandbox.products
    assert sandbox.request_counts["POST /v1/uploads/images.json"] == 2


@pytest.mark.asyncio
async def test_an_image_the_server_forgot_is_uploaded_again(
    sandbox: PrintifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    await client.create_listing(spec_for(design_png, key="forgot-1"))
    sandbox.uploads.clear()  # e.g. deleted on Printify's side
    listing = await client.create_listing(spec_for(design_png, key="forgot-2"))
    assert listing.remote_id in sandbox.products
    assert sandbox.request_counts["POST /v1/uploads/images.json"] == 2
