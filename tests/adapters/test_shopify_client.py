"""Tests for the Shopify adapter against the Shopify sandbox over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.marketplaces.shopify import (
    ShopifyClient,
    handle_for,
    marker_for,
    throttle_wait,
)
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
from pod_studio.domain.marketplace import ListingSpec, ListingStatus, Marketplace, VariantPrice
from pod_studio.sandbox.shopify import ShopifySandbox
from pod_studio.services.publishing import PublishMarketplace
from pod_studio.services.ratelimit import ShopifyCostBucket

T = TypeVar("T")
TOKEN = "shpat_sandbox_s3cr3t_value"
SHOP = "pod-studio-sandbox.myshopify.com"
CLIENT_ID = "pod-studio-app"
CLIENT_SECRET = "shpss_client_s3cr3t"


class RetryingGuard:
    """A minimal policy: retry retryable errors (throttles always), up to ``attempts``."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self.errors: list[tuple[str, PodStudioError]] = []

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except PodStudioError as exc:
                retry = exc.retryable and (idempotent or isinstance(exc, RateLimitError))
                if not retry or attempt >= self.attempts:
                    raise
                self.errors.append((operation, exc))
                # honour the server's wait, as the real guard does (a tenth of a second here)
                wait = exc.retry_after if isinstance(exc, RateLimitError) else None
                await asyncio.sleep(wait or 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_png(path: Path, color: tuple[int, int, int] = (20, 120, 200)) -> Path:
    Image.new("RGB", (64, 64), color).save(path, "PNG")
    return path


@pytest.fixture
def design_png(tmp_path: Path) -> Path:
    return write_png(tmp_path / "sunset.png")


def variants(*rows: tuple[int, str, str, str]) -> list[VariantPrice]:
    return [
        VariantPrice(variant_id=vid, price=Decimal(price), options={"Color": c, "Size": s})
        for vid, c, s, price in rows
    ]


def spec_for(design: Path, key: str = "pod-0123456789abcdef", **overrides: Any) -> ListingSpec:
    data: dict[str, Any] = {
        "idem_key": key,
        "title": "Retro Sunset Tee",
        "description": "Soft tee with a retro sunset.\n\nPrinted on demand <3",
        "tags": ["retro", "sunset"],
        "design_path": design,
        "design_sha256": hashlib.sha256(design.read_bytes()).hexdigest(),
        "blueprint_id": 12,
        "print_provider_id": 99,
        "variants": variants(
            (101, "Black", "M", "24.99"), (102, "Black", "L", "24.99"), (201, "White", "M", "22")
        ),
    }
    data.update(overrides)
    return ListingSpec.build(**data)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[ShopifySandbox]:
    async with ShopifySandbox(
        tokens={TOKEN}, clients={CLIENT_ID: (CLIENT_SECRET, {"write_products"})}, capacity=1000
    ) as sb:
        yield sb


ClientFactory = Callable[..., ShopifyClient]


@pytest_asyncio.fixture
async def make_client(sandbox: ShopifySandbox) -> AsyncIterator[ClientFactory]:
    made: list[ShopifyClient] = []

    def factory(**kwargs: Any) -> ShopifyClient:
        if "client_id" not in kwargs:
            token = kwargs.pop("token", TOKEN)
            kwargs.setdefault("token_provider", lambda: token)
        kwargs.setdefault("base_url", sandbox.base_url)
        kwargs.setdefault("media_poll_interval", 0.0)
        client = ShopifyClient(kwargs.pop("shop_domain", SHOP), **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


def graphql_count(sandbox: ShopifySandbox) -> int:
    return len(sandbox.graphql_requests)


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_full_flow_upsert_media_publish_and_cost_bucket(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path, tmp_path: Path
) -> None:
    bucket = ShopifyCostBucket()  # defaults 2000 / 100: the sandbox says 1000
    client = make_client(observe_response=bucket.observe_response, vendor="My Brand")
    assert isinstance(client, Marketplace) and isinstance(client, PublishMarketplace)
    ok, verdict = await client.health_check()
    assert ok, verdict
    assert verdict == (
        f"Shopify OK: shop 'POD Studio Sandbox' ({SHOP}), all needed access scopes granted."
    )

    mockup = write_png(tmp_path / "mockup.png", (200, 10, 10))
    spec = spec_for(design_png, mockups=(mockup,))
    assert await client.find_existing(spec.idem_key) is None
    draft = await client.create_listing(spec)
    assert draft.status is ListingStatus.DRAFT and draft.platform == "shopify"
    assert draft.remote_id.startswith("gid://shopify/Product/")
    assert draft.external_ids["handle"] == handle_for(spec.idem_key) == spec.idem_key

    product = sandbox.products[draft.remote_id]
    assert product["status"] == "DRAFT" and product["vendor"] == "My Brand"
    assert product["tags"] == ["retro", "sunset"]
    assert product["descriptionHtml"] == (
        "<p>Soft tee with a retro sunset.</p><p>Printed on demand &lt;3</p>"
    )
    assert product["options"] == [
        {"name": "Color", "values": [{"name": "Black"}, {"name": "White"}]},
        {"name": "Size", "values": [{"name": "M"}, {"name": "L"}]},
    ]
    marker = marker_for(spec.idem_key)
    assert [(v["title"], v["price"], v["sku"]) for v in product["variants"]] == [
        ("Black / M", "24.99", f"{marker}-101"),
        ("Black / L", "24.99", f"{marker}-102"),
        ("White / M", "22.00", f"{marker}-201"),
    ]
    # mockup first, then the print file; both READY before the product referred to them
    assert len(product["files"]) == 2
    assert all(sandbox.files[f]["status"] == "READY" for f in product["files"])
    ops = sandbox.operations
    assert ops.index("productSet") > max(i for i, op in enumerate(ops) if op == "nodes")

    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.remote_id == draft.remote_id

    live = await client.publish(draft)
    assert live.status is ListingStatus.PUBLISHED
    assert live.url == f"https://{SHOP}/products/{spec.idem_key}"
    assert sandbox.products[draft.remote_id]["status"] == "ACTIVE"
    assert (await client.get_listing(draft.remote_id)).status is ListingStatus.PUBLISHED

    # the same key again: one product, still live, no second upload of the same files
    uploads = sandbox.request_counts["staged.upload"]
    again = await client.create_listing(spec)
    assert again.remote_id == draft.remote_id and again.status is ListingStatus.PUBLISHED
    assert sandbox.creates == 1 and len(sandbox.products) == 1
    assert sandbox.request_counts["staged.upload"] == uploads

    # the bucket took the server's figures from the answers
    assert bucket.capacity == 1000 and bucket.restore_rate == 100
    assert bucket.available < 1000


@pytest.mark.asyncio
async def test_publish_without_online_store_is_a_validation_error(
    make_client: ClientFactory, design_png: Path
) -> None:
    async with ShopifySandbox(tokens={TOKEN}, online_store=False) as sb:
        client = make_client(base_url=sb.base_url)
        draft = await client.create_listing(spec_for(design_png))
        with pytest.raises(ValidationError) as info:
            await client.publish(draft)
        assert "Online Store" in info.value.user_message


# --- throttling -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [200, 429])
async def test_throttled_answer_is_a_retryable_rate_limit_with_the_computed_wait(
    sandbox: ShopifySandbox, make_client: ClientFactory, status: int
) -> None:
    sandbox.throttle_status = status
    bucket = ShopifyCostBucket()
    client = make_client(observe_response=bucket.observe_response)
    sandbox.throttle_next(1)
    with pytest.raises(RateLimitError) as info:
        await client.granted_scopes()
    err = info.value
    assert err.retryable and err.status_code == status
    assert err.retry_after == pytest.approx(0.1)  # 0.05 s rounded up to a tenth
    assert bucket.capacity == 1000  # synced from the throttled answer too
    # through a retrying guard the same call succeeds
    guard = RetryingGuard()
    client = make_client(guard=guard)
    sandbox.throttle_next(1)
    assert "write_products" in await client.granted_scopes()
    assert [type(e) for _op, e in guard.errors] == [RateLimitError]
    assert sandbox.throttled_count == 2


@pytest.mark.asyncio
async def test_a_real_shortage_in_the_bucket_throttles(
    make_client: ClientFactory,
) -> None:
    async with ShopifySandbox(tokens={TOKEN}, capacity=12, restore_rate=1) as sb:
        client = make_client(base_url=sb.base_url)
        await client.granted_scopes()  # costs 3 of 12
        with pytest.raises(RateLimitError) as info:
            for _ in range(5):
                await client.granted_scopes()
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 3.0


def test_throttle_wait_formula() -> None:
    cost = {
        "requestedQueryCost": 752,
        "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": 666, "restoreRate": 50},
    }
    assert throttle_wait(cost) == pytest.approx(1.8)  # (752 - 666) / 50 = 1.72 -> 1.8
    assert throttle_wait({"requestedQueryCost": 1}) is None
    assert throttle_wait(None) is None


# --- never a duplicate ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_that_commits_then_times_out_is_retried_as_an_upsert(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    guard = RetryingGuard()
    client = make_client(guard=guard, timeout=httpx.Timeout(5.0, read=0.5))
    sandbox.commit_then_timeout_next()
    listing = await client.create_listing(spec_for(design_png))
    assert [(op, type(e)) for op, e in guard.errors] == [("shopify.product_set", PodTimeoutError)]
    assert sandbox.request_counts["productSet"] == 2
    assert sandbox.creates == 1 and list(sandbox.products) == [listing.remote_id]


@pytest.mark.asyncio
async def test_dropped_create_without_retries_is_found_by_its_key(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    spec = spec_for(design_png)
    sandbox.commit_then_timeout_next(mode="drop")
    with pytest.raises(ServiceError):
        await client.create_listing(spec)
    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.remote_id in sandbox.products
    assert sandbox.creates == 1


# --- media ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_media_not_ready_yet_is_polled_until_ready(
    make_client: ClientFactory, design_png: Path
) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async with ShopifySandbox(tokens={TOKEN}, media_ready_after=3) as sb:
        client = make_client(base_url=sb.base_url, sleep=record, media_poll_interval=0.5)
        listing = await client.create_listing(spec_for(design_png))
        assert sb.request_counts["nodes"] == 3 and waits == [0.5, 0.5]
        (file_id,) = sb.products[listing.remote_id]["files"]
        assert sb.files[file_id]["status"] == "READY"

    async with ShopifySandbox(tokens={TOKEN}, media_ready_after=100) as sb:
        client = make_client(base_url=sb.base_url, media_max_polls=4)
        with pytest.raises(ServiceError) as info:
            await client.create_listing(spec_for(design_png))
        assert info.value.retryable and "still processing" in info.value.user_message
        assert not sb.products


@pytest.mark.asyncio
async def test_failed_media_is_a_validation_error_and_no_product(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    sandbox.media_fail_next()
    with pytest.raises(ValidationError) as info:
        await make_client().create_listing(spec_for(design_png))
    assert "sunset.png was rejected: Image could not be processed" in info.value.user_message
    assert not sandbox.products


# --- userErrors and bad input -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_user_errors_become_a_validation_error_naming_the_field(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    spec = spec_for(design_png)
    await client.create_listing(spec)
    sandbox.files.clear()  # the merchant deleted the image in the Shopify admin
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec)
    assert info.value.details == ["input.files.0.id: File does not exist (INVALID_INPUT)"]
    assert "input.files.0.id" in info.value.user_message


@pytest.mark.asyncio
async def test_bad_input_is_refused_before_anything_is_sent(
    sandbox: ShopifySandbox, make_client: ClientFactory, design_png: Path
) -> None:
    client = make_client()
    four = [
        VariantPrice(
            variant_id=1,
            price=Decimal("20"),
            options={"Color": "Black", "Size": "M", "Fit": "Slim", "Sleeve": "Long"},
        )
    ]
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design_png, variants=four))
    assert "at most 3" in info.value.user_message and "options" in info.value.details[0]

    no_options = [VariantPrice(variant_id=1, price=Decimal("20"))]
    with pytest.raises(ValidationError, match=r"variants\.1\.options"):
        await client.create_listing(spec_for(design_png, variants=no_options))

    with pytest.raises(ValidationError) as zero:
        spec_for(design_png, variants=[{"variant_id": 1, "price": "0", "options": {"Size": "M"}}])
    assert zero.value.details[0].startswith("variants.0.price")

    changed = spec_for(design_png)
    write_png(design_png, (0, 0, 0))
    with pytest.raises(ValidationError, match="changed since it was approved"):
        await client.create_listing(changed)
    assert graphql_count(sandbox) == 0


@pytest.mark.parametrize(
    "domain", ["my-shop.com", "shop.example.myshopify.com.evil.io", "https://my shop", ""]
)
def test_a_domain_that_is_not_a_shopify_admin_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValidationError) as info:
        ShopifyClient(domain, token_provider=lambda: TOKEN)
    assert "myshopify.com" in info.value.user_message


# --- authentication and status codes ----------------------------------------------------------


@pytest.mark.asyncio
async def test_wrong_and_revoked_tokens_are_authentication_errors(
    sandbox: ShopifySandbox, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = make_client(token="shpat_wrong_token_value")
    with pytest.raises(AuthenticationError) as info:
        await wrong.granted_scopes()
    assert info.value.status_code == 401 and not info.value.retryable
    assert "Invalid API key or access token" in info.value.message
    ok, verdict = await wrong.health_check()
    assert not ok and "rejected the access token" in verdict

    good = make_client()
    assert await good.granted_scopes()
    sandbox.revoke(TOKEN)
    with pytest.raises(AuthenticationError):
        await good.granted_scopes()
    assert TOKEN not in caplog.text and TOKEN not in repr(good)

    empty = make_client(token="  ")
    with pytest.raises(AuthenticationError, match="no Shopify admin API access token"):
        await empty.granted_scopes()


@pytest.mark.asyncio
async def test_check_credentials_proves_the_token_and_its_scopes(
    sandbox: ShopifySandbox, make_client: ClientFactory
) -> None:
    await make_client().check_credentials()
    with pytest.raises(AuthenticationError) as wrong:
        await make_client(token="shpat_wrong_for_the_check").check_credentials()
    assert (
        wrong.value.status_code == 401 and "rejected the access token" in wrong.value.user_message
    )
    async with ShopifySandbox(tokens={TOKEN: {"write_products"}}) as sb:
        with pytest.raises(AuthenticationError) as scopes:
            await make_client(base_url=sb.base_url).check_credentials()
    assert "lacks the access scopes write_files, write_publications" in scopes.value.user_message


@pytest.mark.asyncio
async def test_missing_scope(make_client: ClientFactory, design_png: Path) -> None:
    async with ShopifySandbox(tokens={TOKEN: {"write_products", "read_publications"}}) as sb:
        client = make_client(base_url=sb.base_url)
        ok, verdict = await client.health_check()
        assert not ok
        assert "lacks the access scopes write_files, write_publications" in verdict
        with pytest.raises(AuthenticationError) as info:
            await client.create_listing(spec_for(design_png))
        assert "`write_files` access scope" in info.value.user_message
        assert not sb.products


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (402, APIError, "frozen"),
        (403, AuthenticationError, "access scope is missing"),
        (404, APIError, "shop or API version"),
        (423, APIError, "locked"),
        (503, ServiceError, "trouble (HTTP 503)"),
    ],
)
async def test_status_codes_get_their_own_message(
    sandbox: ShopifySandbox,
    make_client: ClientFactory,
    status: int,
    kind: type[PodStudioError],
    words: str,
) -> None:
    sandbox.fail_next(status=status)
    with pytest.raises(kind) as info:
        await make_client().granted_scopes()
    assert type(info.value) is kind and words in info.value.user_message
    assert info.value.retryable is (status >= 500)


@pytest.mark.asyncio
async def test_an_unknown_api_version_is_a_404(make_client: ClientFactory) -> None:
    client = make_client(api_version="2019-01")
    ok, verdict = await client.health_check()
    assert not ok and "API version" in verdict


@pytest.mark.asyncio
async def test_response_bodies_are_read_up_to_the_cap(make_client: ClientFactory) -> None:
    client = make_client(max_response_bytes=64)
    with pytest.raises(UpstreamDataError) as info:
        await client.granted_scopes()
    assert not info.value.retryable and "larger than" in info.value.user_message


# --- client credentials -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_client_credentials_single_flight_renewal_and_401_reexchange(
    sandbox: ShopifySandbox, make_client: ClientFactory
) -> None:
    clock = FakeClock()
    sandbox.token_lifetime = 100
    client = make_client(
        client_id=CLIENT_ID, client_secret_provider=lambda: CLIENT_SECRET, clock=clock
    )
    results = await asyncio.gather(*(client.granted_scopes() for _ in range(5)))
    assert all(r == {"write_products"} for r in results)
    assert sandbox.token_exchanges == 1

    clock.now += 85  # within the lifetime, before the renewal margin (10 % = 10 s)
    await client.granted_scopes()
    assert sandbox.token_exchanges == 1
    clock.now += 6  # 91 s: inside the margin, renewed before it expires
    await client.granted_scopes()
    assert sandbox.token_exchanges == 2

    for token in [t for t in sandbox.tokens if t != TOKEN]:
        sandbox.revoke(token)  # revoked server-side: one 401, then a fresh exchange
    assert await client.granted_scopes() == {"write_products"}
    assert sandbox.token_exchanges == 3 and sandbox.request_counts["unauthorized"] == 1


@pytest.mark.asyncio
async def test_client_credentials_with_a_wrong_secret(
    sandbox: ShopifySandbox, make_client: ClientFactory
) -> None:
    client = make_client(client_id=CLIENT_ID, client_secret_provider=lambda: "wrong")
    with pytest.raises(AuthenticationError) as info:
        await client.granted_scopes()
    assert "client id or secret" in info.value.user_message
    assert "wrong" not in info.value.message and CLIENT_SECRET not in info.value.message
    assert graphql_count(sandbox) == 0
