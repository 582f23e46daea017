"""The Etsy adapter (OAuth + listings) against the Etsy sandbox on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.marketplaces.etsy import EtsyClient, marker_for
from pod_studio.adapters.marketplaces.etsy_oauth import (
    EtsyAuth,
    Pkce,
    authorize_url,
    pkce_challenge,
)
from pod_studio.adapters.storage.secrets import MemorySecretStore, SecretStoreError
from pod_studio.domain.errors import (
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.marketplace import (
    CatalogVariant,
    ListingSpec,
    ListingStatus,
    Marketplace,
    VariantPrice,
)
from pod_studio.domain.settings import SecretName
from pod_studio.sandbox.etsy import EtsySandbox
from pod_studio.services.publishing import PublishMarketplace
from pod_studio.services.ratelimit import EtsyBudget
from pod_studio.services.resilience import ResilienceHub

T = TypeVar("T")
KEY, SECRET = "sandboxkeystring", "sandboxsecret"
PROFILE, TEES = 234107945503, 482
BLACK_M, BLACK_L, WHITE_M = 18112, 18113, 18102
CREATE = "POST /v3/application/shops/{shop_id}/listings"
OPS = json.loads(
    (Path(__file__).parent.parent / "data/etsy_openapi/etsy_v3_operations.json").read_text()
)["operations"]


class StaticCatalog:
    """The catalog port with three tee variants (what Printify's catalog would say)."""

    async def variants(
        self, blueprint_id: int, provider_id: int, *, show_out_of_stock: bool = False
    ) -> list[CatalogVariant]:
        return [
            CatalogVariant(id=BLACK_M, title="Black / M", options={"color": "Black", "size": "M"}),
            CatalogVariant(id=BLACK_L, title="Black / L", options={"color": "Black", "size": "L"}),
            CatalogVariant(id=WHITE_M, title="White / M", options={"color": "White", "size": "M"}),
        ]


class RetryingGuard:
    """Retries retryable errors of idempotent calls, honouring nothing but the attempt cap."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts
        self.calls: list[tuple[str, bool]] = []

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        cost: float = 1.0,
        bucket: str | None = None,
    ) -> T:
        self.calls.append((operation, idempotent))
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn()
            except PodStudioError as exc:
                if not (exc.retryable and idempotent) or attempt >= self.attempts:
                    raise
                await asyncio.sleep(0)


class RefusingStore(MemorySecretStore):
    """A keyring that is locked: reads and/or writes fail."""

    def __init__(self, values: dict[str, str], *, reads: bool = True) -> None:
        super().__init__(values)
        self.refuse_reads = not reads
        self.refuse_writes = False

    def get(self, name: str) -> str | None:
        if self.refuse_reads:
            raise SecretStoreError("keyring locked", user_message="The OS keyring is locked.")
        return super().get(name)

    def set(self, name: str, value: str) -> None:
        if self.refuse_writes:
            raise SecretStoreError("keyring locked", user_message="The OS keyring is locked.")
        super().set(name, value)


async def follow_consent(url: str) -> None:
    """What the browser does: open the consent URL, follow the redirect to our listener."""
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        response = await browser.get(url)
        assert response.status_code == 200, response.text


def write_png(path: Path, size: tuple[int, int] = (1200, 1400), rgba: bool = True) -> Path:
    Image.new("RGBA" if rgba else "RGB", size, (20, 120, 200, 255)).save(path, "PNG")
    return path


def spec_for(design: Path, key: str = "job-1", **overrides: Any) -> ListingSpec:
    data: dict[str, Any] = {
        "idem_key": key,
        "title": "Retro Sunset Tee",
        "description": "Soft tee with a retro sunset.",
        "tags": ["retro", "sunset"],
        "design_path": design,
        "design_sha256": hashlib.sha256(design.read_bytes()).hexdigest(),
        "blueprint_id": 12,
        "print_provider_id": 99,
        "variants": [
            VariantPrice(variant_id=BLACK_M, price=Decimal("24.99")),
            VariantPrice(variant_id=BLACK_L, price=Decimal("26.99")),
            VariantPrice(variant_id=WHITE_M, price=Decimal("24.99")),
        ],
    }
    data.update(overrides)
    return ListingSpec.build(**data)


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[EtsySandbox]:
    async with EtsySandbox(per_second=1000, hang_seconds=10) as sb:
        yield sb


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore(
        {SecretName.ETSY_KEYSTRING.value: KEY, SecretName.ETSY_SHARED_SECRET.value: SECRET}
    )


@pytest.fixture
def design(tmp_path: Path) -> Path:
    return write_png(tmp_path / "sunset.png")


Factory = Callable[..., EtsyClient]
AuthFactory = Callable[..., EtsyAuth]


@pytest_asyncio.fixture
async def make_auth(sandbox: EtsySandbox, store: MemorySecretStore) -> AsyncIterator[AuthFactory]:
    made: list[EtsyAuth] = []

    def factory(secret_store: Any = None, **kwargs: Any) -> EtsyAuth:
        auth = EtsyAuth(
            secret_store if secret_store is not None else store,
            auth_base_url=sandbox.base_url,
            connect_url=sandbox.base_url + "/oauth/connect",
            **kwargs,
        )
        made.append(auth)
        return auth

    yield factory
    for auth in made:
        await auth.aclose()


@pytest_asyncio.fixture
async def make_client(sandbox: EtsySandbox, make_auth: AuthFactory) -> AsyncIterator[Factory]:
    made: list[EtsyClient] = []

    def factory(auth: EtsyAuth | None = None, **kwargs: Any) -> EtsyClient:
        options: dict[str, Any] = {
            "base_url": sandbox.base_url,
            "shipping_profile_id": PROFILE,
            "taxonomy_id": TEES,
            "catalog": StaticCatalog(),
        }
        options.update(kwargs)
        client = EtsyClient(auth or make_auth(), **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


async def connected(make_client: Factory, **kwargs: Any) -> EtsyClient:
    client = make_client(**kwargs)
    await client.auth.connect(follow_consent)
    return client


# --------------------------------------------------------------------------- OAuth


def test_pkce_and_authorize_url() -> None:
    pkce = Pkce.generate()
    assert 43 <= len(pkce.verifier) <= 128 and pkce.challenge == pkce_challenge(pkce.verifier)
    assert pkce.verifier not in repr(pkce)
    # RFC 7636 appendix B
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    url = authorize_url(
        "https://www.etsy.com/oauth/connect",
        client_id="k",
        redirect_uri="http://127.0.0.1:8765/etsy/callback",
        scopes=("listings_r", "listings_w"),
        state="s1",
        challenge=pkce.challenge,
    )
    q = parse_qs(urlsplit(url).query)
    assert "scope=listings_r%20listings_w" in url
    assert q["code_challenge_method"] == ["S256"] and q["response_type"] == ["code"]
    assert q["redirect_uri"] == ["http://127.0.0.1:8765/etsy/callback"]


@pytest.mark.asyncio
async def test_connect_stores_both_tokens(
    sandbox: EtsySandbox, make_auth: AuthFactory, store: MemorySecretStore
) -> None:
    opened: list[str] = []

    async def browser(url: str) -> None:
        opened.append(url)
        await follow_consent(url)

    auth = make_auth()
    tokens = await auth.connect(browser)
    assert opened and opened[0].startswith(sandbox.base_url + "/oauth/connect?")
    assert store.get(SecretName.ETSY_REFRESH_TOKEN.value) == tokens.refresh_token
    assert store.get(SecretName.ETSY_TOKEN.value) == tokens.access_token
    assert tokens.refresh_token in sandbox.refresh_tokens
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)
    assert await auth.access_token() == tokens.access_token
    assert sandbox.token_grants["authorization_code"] == 1


@pytest.mark.asyncio
async def test_state_mismatch_is_refused_and_nothing_is_exchanged(
    sandbox: EtsySandbox, make_auth: AuthFactory, store: MemorySecretStore
) -> None:
    async def forged(url: str) -> None:
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(url)
            location = urlsplit(consent.headers["Location"])
            q = parse_qs(location.query)
            back = location._replace(query=urlencode({"code": q["code"][0], "state": "forged"}))
            answer = await browser.get(back.geturl())
            assert answer.status_code == 400

    with pytest.raises(AuthenticationError) as info:
        await make_auth().connect(forged)
    assert "state mismatch" in info.value.user_message
    assert sandbox.token_grants["authorization_code"] == 0
    assert store.get(SecretName.ETSY_REFRESH_TOKEN.value) is None


@pytest.mark.asyncio
async def test_code_bound_to_another_pkce_challenge_is_rejected(
    sandbox: EtsySandbox, make_auth: AuthFactory
) -> None:
    """An authorization code injected from another sign-in fails the PKCE check."""

    async def injected(url: str) -> None:
        parts = urlsplit(url)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        q["code_challenge"] = Pkce.generate().challenge  # the attacker's own verifier
        await follow_consent(parts._replace(query=urlencode(q)).geturl())

    with pytest.raises(AuthenticationError) as info:
        await make_auth().connect(injected)
    assert "code_verifier" in info.value.message
    assert "Reconnect Etsy" in info.value.user_message
    assert not info.value.retryable


@pytest.mark.asyncio
async def test_declined_consent_and_no_answer(make_auth: AuthFactory) -> None:
    async def declined(url: str) -> None:
        q = parse_qs(urlsplit(url).query)
        back = (
            q["redirect_uri"][0]
            + "?"
            + urlencode({"error": "access_denied", "state": q["state"][0]})
        )
        async with httpx.AsyncClient() as browser:
            await browser.get(back)

    with pytest.raises(AuthenticationError) as declined_info:
        await make_auth().connect(declined)
    assert "You declined access on Etsy" in declined_info.value.user_message
    with pytest.raises(PodTimeoutError) as info:
        await make_auth().connect(lambda url: None, wait_seconds=0.2)
    assert "not completed in time" in info.value.user_message


@pytest.mark.asyncio
async def test_two_concurrent_requests_with_an_expired_token_refresh_once(
    sandbox: EtsySandbox, make_client: Factory, store: MemorySecretStore
) -> None:
    client = await connected(make_client)
    old_refresh = store.get(SecretName.ETSY_REFRESH_TOKEN.value)
    sandbox.expire_access_tokens()  # Etsy says 401 invalid_token; our clock still trusts it
    shops, profiles = await asyncio.gather(client.shops(), client.shipping_profiles())
    assert shops[0].title == sandbox.shop_name and profiles[0].id == PROFILE
    assert sandbox.token_grants["refresh_token"] == 1
    new_refresh = store.get(SecretName.ETSY_REFRESH_TOKEN.value)
    assert new_refresh != old_refresh and sandbox.refresh_tokens[new_refresh or ""].alive
    assert not sandbox.refresh_tokens[old_refresh or ""].alive
    # The credential survived: later calls work without another refresh.
    await client.shops()
    assert sandbox.token_grants["refresh_token"] == 1


@pytest.mark.asyncio
async def test_refresh_before_expiry_by_our_clock_is_single_flight(
    sandbox: EtsySandbox, make_auth: AuthFactory
) -> None:
    now = [1_000_000.0]
    auth = make_auth(clock=lambda: now[0])
    first = await auth.connect(follow_consent)
    now[0] += 3600 - 60  # inside the refresh margin
    tokens = await asyncio.gather(*(auth.access_token() for _ in range(5)))
    assert len(set(tokens)) == 1 and tokens[0] != first.access_token
    assert sandbox.token_grants["refresh_token"] == 1 and auth.refresh_count == 1


@pytest.mark.asyncio
async def test_second_instance_adopts_the_token_another_one_rotated(
    sandbox: EtsySandbox, make_auth: AuthFactory, make_client: Factory
) -> None:
    first = make_auth()
    await first.connect(follow_consent)
    second = make_auth()
    await second.access_token()  # loads the pair from the store
    await first.refresh()  # rotates: the refresh token `second` holds is now dead
    token = await second.refresh()  # invalid_grant -> re-read the store -> adopt
    assert token == await first.access_token()
    client = make_client(auth=second)
    assert (await client.shops())[0].id == str(sandbox.shop_id)


@pytest.mark.asyncio
async def test_revoked_credential_asks_to_reconnect(
    sandbox: EtsySandbox, make_client: Factory
) -> None:
    client = await connected(make_client)
    sandbox.revoke_all()  # e.g. the seller changed the Etsy password
    with pytest.raises(AuthenticationError) as info:
        await client.shops()
    assert "Reconnect Etsy" in info.value.user_message and not info.value.retryable
    assert "refresh_token is revoked" in info.value.message
    ok, line = await client.health_check()
    assert not ok and "Reconnect Etsy" in line


@pytest.mark.asyncio
async def test_injected_invalid_grant_on_refresh(
    sandbox: EtsySandbox, make_client: Factory
) -> None:
    client = await connected(make_client)
    sandbox.expire_access_tokens()
    sandbox.invalid_grant_next()
    with pytest.raises(AuthenticationError, match="invalid_grant") as info:
        await client.shops()
    assert "no longer accepts" in info.value.user_message


@pytest.mark.asyncio
async def test_store_that_refuses_reads(make_client: Factory, make_auth: AuthFactory) -> None:
    locked = RefusingStore({SecretName.ETSY_KEYSTRING.value: KEY}, reads=False)
    client = make_client(auth=make_auth(locked))
    with pytest.raises(AuthenticationError) as info:
        await client.shops()
    assert "secret store" in info.value.user_message and "locked" in info.value.user_message
    ok, line = await client.health_check()
    assert not ok and "secret store" in line


@pytest.mark.asyncio
async def test_store_that_refuses_the_rotated_token_keeps_it_pending(
    sandbox: EtsySandbox, make_auth: AuthFactory, make_client: Factory
) -> None:
    store = RefusingStore({SecretName.ETSY_KEYSTRING.value: KEY,
                           SecretName.ETSY_SHARED_SECRET.value: SECRET})  # fmt: skip
    client = make_client(auth=make_auth(store))
    await client.auth.connect(follow_consent)
    sandbox.expire_access_tokens()
    store.refuse_writes = True
    with pytest.raises(AuthenticationError) as info:
        await client.shops()
    assert "cannot save the renewed Etsy token" in info.value.user_message
    store.refuse_writes = False  # the seller unlocks the keyring
    assert (await client.shops())[0].id == str(sandbox.shop_id)
    assert sandbox.token_grants["refresh_token"] == 1  # the pending pair was stored, not lost
    assert sandbox.refresh_tokens[store.get(SecretName.ETSY_REFRESH_TOKEN.value) or ""].alive


@pytest.mark.asyncio
async def test_missing_keys_have_clear_messages(
    make_auth: AuthFactory, make_client: Factory
) -> None:
    only_key = MemorySecretStore({SecretName.ETSY_KEYSTRING.value: KEY})
    client = make_client(auth=make_auth(only_key))
    with pytest.raises(AuthenticationError) as not_connected:
        await client.shops()
    assert "Use Connect Etsy in Settings" in not_connected.value.user_message
    with pytest.raises(AuthenticationError) as info:
        await make_auth(MemorySecretStore()).connect(follow_consent)
    assert "keystring" in info.value.user_message


@pytest.mark.asyncio
async def test_check_credentials_proves_the_key_the_tokens_and_the_shop(
    sandbox: EtsySandbox, make_auth: AuthFactory, make_client: Factory
) -> None:
    client = make_client()
    with pytest.raises(AuthenticationError) as not_connected:
        await client.check_credentials()
    assert "Use Connect Etsy in Settings" in not_connected.value.user_message
    await client.auth.connect(follow_consent)
    await client.check_credentials()
    assert client.shop_id == sandbox.shop_id
    wrong = MemorySecretStore({SecretName.ETSY_KEYSTRING.value: KEY,
                               SecretName.ETSY_SHARED_SECRET.value: "wrong"})  # fmt: skip
    other = make_client(auth=make_auth(wrong))
    await other.auth.connect(follow_consent)
    with pytest.raises(AuthenticationError) as info:
        await other.check_credentials()
    assert "shared secret" in info.value.user_message


@pytest.mark.asyncio
async def test_wrong_shared_secret_is_explained(
    make_auth: AuthFactory, make_client: Factory
) -> None:
    store = MemorySecretStore({SecretName.ETSY_KEYSTRING.value: KEY,
                               SecretName.ETSY_SHARED_SECRET.value: "wrong"})  # fmt: skip
    client = make_client(auth=make_auth(store))
    await client.auth.connect(follow_consent)  # the token endpoint does not check the secret
    with pytest.raises(AuthenticationError) as info:
        await client.shops()
    assert info.value.status_code == 403 and "shared secret" in info.value.message.lower()


# --------------------------------------------------------------------------- listings


@pytest.mark.asyncio
async def test_full_flow(
    sandbox: EtsySandbox, make_client: Factory, design: Path, tmp_path: Path
) -> None:
    budget = EtsyBudget(tmp_path / "etsy.sqlite", per_second=None)
    client = await connected(make_client, budget=budget)
    assert isinstance(client, Marketplace) and isinstance(client, PublishMarketplace)
    mockup = write_png(tmp_path / "mockup.png", (800, 800), rgba=False)
    spec = spec_for(design)
    draft = await client.create_listing(spec, mockups=[mockup])
    assert draft.status is ListingStatus.DRAFT and draft.platform == "etsy"
    listing_id = int(draft.remote_id)
    stored = sandbox.listings[listing_id]
    assert stored["title"] == spec.title and stored["tags"] == ["retro", "sunset"]
    assert stored["shipping_profile_id"] == PROFILE and stored["taxonomy_id"] == TEES
    assert stored["readiness_state_id"] == sandbox.readiness_states[0]["readiness_state_id"]
    assert [i["rank"] for i in sandbox.images[listing_id]] == [1, 2]
    products = sandbox.inventory[listing_id]["products"]
    marker = marker_for(spec.idem_key)
    assert sorted(p["sku"] for p in products) == sorted(
        f"{marker}-{v}" for v in (BLACK_M, BLACK_L, WHITE_M)
    )
    by_sku = {p["sku"]: p for p in products}
    black_l = by_sku[f"{marker}-{BLACK_L}"]
    assert black_l["offerings"][0]["price"] == {"amount": 2699, "divisor": 100,
                                                "currency_code": "USD"}  # fmt: skip
    assert {pv["property_id"]: pv["values"] for pv in black_l["property_values"]} == {
        200: ["Black"],
        100: ["L"],
    }
    assert sandbox.inventory[listing_id]["price_on_property"] == [100]  # price varies by size
    assert stored["has_variations"] and stored["price"]["amount"] == 2499

    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.remote_id == draft.remote_id
    assert await client.find_existing("another-job") is None

    live = await client.publish(draft)
    assert live.status is ListingStatus.PUBLISHED and stored["state"] == "active"
    assert live.url is not None and live.url.startswith("https://www.etsy.com/listing/")
    again = await client.publish(live)  # already live: no second PATCH
    assert again.status is ListingStatus.PUBLISHED
    assert (
        sandbox.request_counts["PATCH /v3/application/shops/{shop_id}/listings/{listing_id}"] == 1
    )
    assert (await client.get_listing(draft.remote_id)).status is ListingStatus.PUBLISHED
    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.status is ListingStatus.PUBLISHED

    left = client.remaining_today()
    assert left == 10_000 - len(sandbox.requests)  # every API request so far was counted
    assert budget.describe() == f"{left}/10000 requests left today"
    ok, line = await client.health_check()
    assert ok and sandbox.shop_name in line and "requests left today" in line
    budget.close()


@pytest.mark.asyncio
async def test_settings_lookups(sandbox: EtsySandbox, make_client: Factory) -> None:
    client = await connected(make_client)
    assert [c.id for c in await client.shipping_profiles()] == [PROFILE]
    assert [c.label for c in await client.return_policies()] == ["No returns or exchanges"]
    states = await client.readiness_states()
    assert states[0].label == "Made to order, 2-5 days"
    nodes = {c.id: c.label for c in await client.taxonomy_nodes()}
    assert nodes[TEES] == "Clothing > Unisex Adult Clothing > T-shirts"
    assert client.shop_id == sandbox.shop_id  # learnt from users/me


@pytest.mark.asyncio
async def test_create_that_commits_then_times_out_makes_one_listing(
    sandbox: EtsySandbox, make_client: Factory, design: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "etsy-creates.json"
    client = await connected(
        make_client, timeout=httpx.Timeout(5.0, read=0.5), journal_path=journal
    )
    spec = spec_for(design, key="job-timeout")
    sandbox.commit_then_timeout_next(1)
    with pytest.raises(PodTimeoutError):
        await client.create_listing(spec)
    assert sandbox.creates_per_title[spec.title] == 1
    # What the publish service does next: look, then create again.
    assert await client.find_existing(spec.idem_key) is None  # no marker SKUs yet
    listing = await client.create_listing(spec)
    assert sandbox.creates_per_title[spec.title] == 1 and list(sandbox.listings) == [
        int(listing.remote_id)
    ]
    assert sandbox.request_counts[CREATE] == 1
    found = await client.find_existing(spec.idem_key)
    assert found is not None and found.remote_id == listing.remote_id
    assert json.loads(journal.read_text()) == {}


@pytest.mark.asyncio
async def test_interrupted_create_is_finished_after_a_restart(
    sandbox: EtsySandbox, make_client: Factory, design: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "etsy-creates.json"
    first = await connected(make_client, journal_path=journal)
    spec = spec_for(design, key="job-restart")
    sandbox.commit_then_timeout_next(1, mode="drop")
    with pytest.raises((ServiceError, PodTimeoutError)):
        await first.create_listing(spec)
    await first.aclose()
    second = make_client(journal_path=journal)  # a new process: same store, same journal
    listing = await second.create_listing(spec)
    assert len(sandbox.listings) == 1 and sandbox.request_counts[CREATE] == 1
    assert len(sandbox.images[int(listing.remote_id)]) == 1


@pytest.mark.asyncio
async def test_rate_limit_429_carries_retry_after(
    sandbox: EtsySandbox, make_client: Factory
) -> None:
    client = await connected(make_client)
    sandbox.rate_limit_next(1, retry_after=3)
    with pytest.raises(RateLimitError) as info:
        await client.shops()
    err = info.value
    assert err.retryable and err.retry_after == 3.0 and "slow down" in err.user_message
    guard = RetryingGuard()
    client = make_client(auth=client.auth, guard=guard)
    sandbox.rate_limit_next(1, retry_after=1)
    assert (await client.shops())[0].id == str(sandbox.shop_id)


@pytest.mark.asyncio
async def test_day_quota_running_out_says_when_it_frees_up(
    make_auth: AuthFactory, make_client: Factory, store: MemorySecretStore
) -> None:
    async with EtsySandbox(per_second=1000, per_day=6, day_seconds=7200) as sb:
        auth = EtsyAuth(
            store, auth_base_url=sb.base_url, connect_url=sb.base_url + "/oauth/connect"
        )
        client = make_client(auth=auth, base_url=sb.base_url)
        await auth.connect(follow_consent)
        with pytest.raises(RateLimitError) as info:
            for _ in range(10):
                await client.shops()
        err = info.value
        assert err.retryable  # the step goes back to the queue; nothing failed for good
        assert err.retry_after is not None and 7000 < err.retry_after <= 7200
        assert "daily request quota" in err.user_message and "frees up" in err.user_message
        assert client.remaining_today() == 0
        await auth.aclose()


@pytest.mark.asyncio
async def test_day_quota_through_the_hub_guard_and_budget(
    make_client: Factory, store: MemorySecretStore, tmp_path: Path
) -> None:
    """Composition as it will be: hub guard "etsy" + EtsyBudget fed by the adapter."""
    async with EtsySandbox(per_second=1000, per_day=4, retry_after_header=False) as sb:
        budget = EtsyBudget(tmp_path / "etsy.sqlite", per_second=None)
        hub = ResilienceHub(budgets={"etsy": budget})
        auth = EtsyAuth(
            store, auth_base_url=sb.base_url, connect_url=sb.base_url + "/oauth/connect"
        )
        client = make_client(
            auth=auth,
            base_url=sb.base_url,
            shop_id=sb.shop_id,
            guard=hub.guard("etsy"),
            budget=budget,
        )
        await auth.connect(follow_consent)
        for _ in range(4):
            await client.shops()
        assert budget.describe() == "0/4 requests left today"
        sent = sum(sb.request_counts.values())
        with pytest.raises(RateLimitError) as info:
            await client.shops()
        assert info.value.retryable and info.value.retry_after == pytest.approx(900, abs=5)
        assert "quota frees up" in info.value.user_message
        assert "put back in the queue" in info.value.user_message
        assert sum(sb.request_counts.values()) == sent  # refused before sending
        budget.close()
        await auth.aclose()


@pytest.mark.asyncio
async def test_bad_input_is_refused_before_sending(
    sandbox: EtsySandbox, make_client: Factory, design: Path
) -> None:
    client = await connected(make_client)
    before = sandbox.request_counts[CREATE]
    cases: list[tuple[ListingSpec, str]] = [
        (spec_for(design, title="T" * 141), "Etsy allows 140"),
        (spec_for(design, title="50% off: 100% cotton"), "% only once"),
        (spec_for(design, tags=["retro", "sun/set"]), "characters Etsy does not allow"),
        (
            ListingSpec.model_construct(  # a spec that skipped domain validation
                **{
                    **spec_for(design).__dict__,
                    "tags": tuple(f"tag{i}" for i in range(14)),
                    "variants": (
                        VariantPrice.model_construct(
                            variant_id=BLACK_M, price=Decimal("0"), enabled=True
                        ),
                    ),
                }
            ),
            "14 tags",
        ),
    ]
    for spec, message in cases:
        with pytest.raises(ValidationError) as info:
            await client.create_listing(spec)
        assert message in info.value.user_message, info.value.user_message
        assert info.value.user_message.startswith("Cannot publish to Etsy:")
    assert "the price must be above 0" in info.value.user_message
    assert sandbox.request_counts[CREATE] == before


def test_domain_refuses_a_14th_tag_and_a_zero_price(design: Path) -> None:
    with pytest.raises(ValidationError, match="at most 13"):
        spec_for(design, tags=[f"tag{i}" for i in range(14)])
    with pytest.raises(ValidationError, match="greater than 0"):
        spec_for(design, variants=[{"variant_id": BLACK_M, "price": "0"}])


@pytest.mark.asyncio
async def test_missing_or_unknown_shipping_profile(
    sandbox: EtsySandbox, make_client: Factory, design: Path, tmp_path: Path
) -> None:
    client = await connected(make_client, shipping_profile_id=None)
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design))
    assert "no shipping profile is chosen" in info.value.user_message
    ok, line = await client.health_check()
    assert ok and "Choose a shipping profile" in line
    journal = tmp_path / "etsy-creates.json"
    client = make_client(auth=client.auth, shipping_profile_id=42, journal_path=journal)
    with pytest.raises(ValidationError) as info:
        await client.create_listing(spec_for(design))
    assert json.loads(journal.read_text()) == {}  # refused, so nothing to adopt later
    assert "shipping_profile_id 42 does not exist" in info.value.user_message
    assert "Choose one of the shop's shipping profiles in Settings" in info.value.user_message
    assert sandbox.listings == {}


@pytest.mark.asyncio
async def test_changed_design_file_is_refused(
    make_client: Factory, design: Path, tmp_path: Path
) -> None:
    client = await connected(make_client)
    spec = spec_for(design)
    write_png(design, (900, 900))
    with pytest.raises(ValidationError, match="changed since it was approved"):
        await client.create_listing(spec)


@pytest.mark.asyncio
async def test_publish_without_image_is_etsys_clear_error(
    sandbox: EtsySandbox, make_client: Factory, design: Path
) -> None:
    client = await connected(make_client)
    listing = await client.create_listing(spec_for(design))
    sandbox.images[int(listing.remote_id)].clear()
    with pytest.raises(ValidationError, match="at least one image"):
        await client.publish(listing)


@pytest.mark.asyncio
async def test_server_errors_and_oversized_replies(
    sandbox: EtsySandbox, make_client: Factory, store: MemorySecretStore
) -> None:
    client = await connected(make_client)
    sandbox.fail_next(1, 503)
    with pytest.raises(ServiceError) as info:
        await client.shops()
    assert info.value.retryable and "HTTP 503" in info.value.user_message

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b"0," * 600_000 + b"0]")

    capped = make_client(
        auth=client.auth, transport=httpx.MockTransport(huge), max_response_bytes=1_000_000
    )
    with pytest.raises(UpstreamDataError) as info2:
        await capped.shops()
    assert "Etsy sent the get me reply larger than the 976 KB limit" in info2.value.user_message
    assert not info2.value.retryable  # it would be as large again


# --------------------------------------------------------------------------- spec check


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec operation for a concrete path (literal paths win over templated ones)."""
    matches = [
        (name, op)
        for name, op in OPS.items()
        if op["method"] == method
        and re.match("^" + re.sub(r"\{\w+\}", r"[^/]+", op["path"]) + "$", path)
    ]
    assert matches, f"{method} {path} is not an Etsy v3 operation"
    return min(matches, key=lambda m: m[1]["path"].count("{"))


def _check_json(schema: dict[str, Any], value: Any, where: str) -> None:
    kind = schema.get("type")
    if value is None:
        assert schema.get("nullable"), f"{where} is null"
        return
    if kind == "object":
        assert isinstance(value, dict), where
        fields = schema["fields"]
        for name, field in fields.items():
            if field["required"]:
                assert name in value, f"{where}.{name} is required by the spec"
        for name, item in value.items():
            assert name in fields, f"{where}.{name} is not in the spec"
            _check_json(fields[name], item, f"{where}.{name}")
    elif kind == "array":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _check_json(schema["items"], item, f"{where}[{i}]")
    elif kind == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif kind == "string":
        assert isinstance(value, str), where
        if "enum" in schema:
            assert value in schema["enum"], f"{where}={value!r} not in {schema['enum']}"
    elif kind == "boolean":
        assert isinstance(value, bool), where


@pytest.mark.asyncio
async def test_every_request_matches_etsys_published_operations(
    sandbox: EtsySandbox, make_client: Factory, design: Path
) -> None:
    client = await connected(make_client)
    spec = spec_for(design)
    listing = await client.create_listing(spec)
    await client.publish(listing)
    await client.find_existing(spec.idem_key)
    await client.return_policies()
    await client.readiness_states()
    await client.taxonomy_nodes()
    await client.health_check()
    seen: set[str] = set()
    for req in sandbox.requests:
        name, op = _operation(req["method"], req["path"])
        seen.add(name)
        assert req["content_type"] == (op["content_type"] or ""), (name, req["content_type"])
        assert set(req["query"]) <= set(op["query"]), (name, req["query"])
        body = op["body"] or {}
        if op["content_type"] == "application/json":
            _check_json({"type": "object", "fields": body}, req["json"], name)
        else:
            required = {k for k, f in body.items() if f["required"]}
            assert required <= set(req["fields"]), (name, required - set(req["fields"]))
            assert set(req["fields"]) <= set(body), (name, set(req["fields"]) - set(body))
    assert {
        "createDraftListing",
        "uploadListingImage",
        "updateListingInventory",
        "updateListing",
        "getListingsByShop",
        "getListing",
        "getMe",
        "getShop",
        "getShopReturnPolicies",
        "getShopReadinessStateDefinitions",
        "getSellerTaxonomyNodes",
        "getPropertiesByTaxonomyId",
        "getListingImages",
    } <= seen
    create = next(r for r in sandbox.requests if r["template"] == CREATE)
    enums = OPS["createDraftListing"]["body"]
    assert client.who_made in enums["who_made"]["enum"]
    assert client.when_made in enums["when_made"]["enum"]
    assert {"is_supply", "who_made", "when_made"} <= set(create["fields"])
