"""Adapters layer: the Printify REST API v1 client (implements ``Marketplace``).

Requests go through the marketplace edge (``adapters.http_edge``: explicit timeouts, a longer
write timeout for uploads, capped reads, the status ladder in Printify's words, the redacting
request log); every request runs inside ``CallGuard.call`` with the right rate bucket
("catalog", "publish" or the global one). The token comes from ``token_provider`` at request
time and never reaches logs, exceptions or ``repr``.

Duplicate avoidance (Printify has no idempotency key): each variant gets a deterministic SKU
``POD-<hash of idem_key>-<variant id>``; ``find_existing`` pages the shop's products and
matches it, so a caller that saw a create end ambiguously (a timeout, a dropped connection)
looks it up before creating again. Images are uploaded once per content hash (in memory,
optionally persisted to a JSON file).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from pod_studio import USER_AGENT
from pod_studio.adapters.http_edge import (
    JSON_LIMIT,
    HttpEdge,
    PlatformWords,
    json_or_none,
    redacting,
)
from pod_studio.adapters.imaging import fit_for_upload, open_checked_image
from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside
from pod_studio.domain.errors import (
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.marketplace import (
    Blueprint,
    CatalogVariant,
    ListingSpec,
    ListingStatus,
    Placeholder,
    PrintProvider,
    RemoteListing,
    ShippingProfile,
    Shop,
)
from pod_studio.domain.ports import CallGuard, PassthroughGuard
from pod_studio.domain.urls import check_server_url

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "printify"
MAX_BASE64_BYTES = 5 * 1024 * 1024  # Printify: keep base64 uploads under 5 MB
PRODUCTS_PAGE_LIMIT = 50
PUBLISH_FIELDS: dict[str, bool] = {
    "title": True,
    "description": True,
    "images": True,
    "variants": True,
    "tags": True,
    "keyFeatures": True,
    "shipping_template": True,
}


class CatalogCache(Protocol):
    """Anything that can memoise catalog replies (in memory, on disk, with a TTL)."""

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]]) -> Any: ...


class MemoryCatalogCache:
    """A small in-process TTL cache; loads of the same key run once at a time."""

    def __init__(self, ttl: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._data: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._data.get(key)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._data.get(key)
            if hit is not None and self._clock() - hit[0] < self._ttl:
                return hit[1]
            value = await loader()
            self._data[key] = (self._clock(), value)
            return value


class UploadedImage(BaseModel):
    """An image in the Printify media library."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    file_name: str
    width: int
    height: int
    sha256: str


class _DesignInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    data: bytes
    sha256: str
    width: int
    height: int


def marker_for(idem_key: str) -> str:
    """The SKU prefix that marks every variant of the product created for ``idem_key``."""
    return "POD-" + hashlib.sha256(idem_key.encode("utf-8")).hexdigest()[:12].upper()


def fit_scale(image_w: int, image_h: int, area_w: int, area_h: int) -> float:
    """Largest Printify ``scale`` that keeps the image inside the print area (at most 1)."""
    return min(1.0, (area_h / area_w) * (image_w / image_h))


def effective_dpi(image_w: int, scale: float, area_w: int) -> float:
    """Print resolution, taking placeholder pixels as 300 DPI."""
    return 300.0 * image_w / (scale * area_w)


@redacting
class PrintifyClient:
    """Printify API v1 client. See the module docstring.

    ``max_title_chars``, ``max_price`` and ``min_dpi`` are the pre-flight limits checked
    before anything is uploaded or created (140 characters fits every sales channel).
    """

    name: str = "printify"

    def __init__(
        self,
        token_provider: Callable[[], str | None],
        *,
        base_url: str = "https://api.printify.com",
        shop_id: int | None = None,
        guard: CallGuard | None = None,
        catalog_cache: CatalogCache | None = None,
        timeout: httpx.Timeout | None = None,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
        upload_index_path: Path | None = None,
        max_upload_bytes: int = MAX_BASE64_BYTES,
        max_response_bytes: int = JSON_LIMIT,
        max_title_chars: int = 140,
        max_price: Decimal = Decimal("1000"),
        min_dpi: float = 150.0,
    ) -> None:
        self._token_provider = token_provider
        # a base URL with a user name or password is refused (it would reach logs and errors)
        self._base_url = check_server_url(base_url).rstrip("/")
        self._shop_id = shop_id
        self._guard: CallGuard = guard or PassthroughGuard()
        self._catalog_cache: CatalogCache = catalog_cache or MemoryCatalogCache()
        self._edge = HttpEdge(
            SERVICE,
            PrintifyWords(),
            base_url=self._base_url,
            timeout=timeout,
            transport=transport,
            user_agent=user_agent,
            secrets=lambda: (self._token_provider(),),
            limit=max_response_bytes,
            retry_after_cap=RETRY_AFTER_CAP,
        )
        self._upload_index_path = upload_index_path
        self._uploads: dict[str, UploadedImage] | None = None
        self._channel: tuple[str, str] | None = None
        # the answers of recent creates (product id -> product), so what they already told
        # (variant costs, status) is not read again
        self._created: dict[str, Any] = {}
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._index_lock = asyncio.Lock()
        self.max_upload_bytes = max_upload_bytes
        self.max_title_chars = max_title_chars
        self.max_price = max_price
        self.min_dpi = min_dpi

    def __repr__(self) -> str:
        return f"PrintifyClient(base_url={self._base_url!r}, shop_id={self._shop_id!r})"

    @property
    def shop_id(self) -> int | None:
        return self._shop_id

    async def aclose(self) -> None:
        await self._edge.aclose()

    # ------------------------------------------------------------------ transport

    def _token(self) -> str:
        token = (self._token_provider() or "").strip()
        if not token:
            raise AuthenticationError(
                "no Printify API token is configured",
                service=SERVICE,
                user_message="Add your Printify Personal Access Token in Settings.",
            )
        if not token.isascii() or not token.isprintable() or " " in token:
            raise AuthenticationError(
                "the Printify API token contains characters a token cannot have",
                service=SERVICE,
                user_message="The Printify token looks damaged; paste it again in Settings.",
            )
        return token

    async def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool = True,
        bucket: str | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        request_timeout: httpx.Timeout | None = None,
        not_found: str | None = None,
    ) -> Any:
        content = (
            json.dumps(body, separators=(",", ":")).encode("utf-8") if body is not None else None
        )

        async def attempt() -> Any:
            headers = {"Authorization": f"Bearer {self._token()}"}
            if content is not None:
                headers["Content-Type"] = "application/json;charset=utf-8"
            response = await self._edge.send(
                method,
                path,
                operation=operation,
                content=content,
                params=params,
                headers=headers,
                request_timeout=request_timeout,
            )
            return self._edge.result(response, operation, not_found=not_found)

        return await self._guard.call(operation, attempt, idempotent=idempotent, bucket=bucket)

    # ------------------------------------------------------------------ shops

    async def shops(self) -> list[Shop]:
        raw = await self._request("GET", "/v1/shops.json", operation="shops")
        return _parse(
            lambda: [
                Shop(
                    id=str(s["id"]),
                    title=str(s.get("title", "")),
                    sales_channel=str(s.get("sales_channel", "")),
                )
                for s in raw
            ],
            "shops",
        )

    async def _shop(self) -> int:
        if self._shop_id is not None:
            return self._shop_id
        shops = await self.shops()
        if len(shops) != 1:
            raise ValidationError(
                f"{len(shops)} Printify shops on this account and none selected",
                service=SERVICE,
                user_message="Choose which Printify shop to publish to in Settings.",
            )
        self._shop_id = int(shops[0].id)
        return self._shop_id

    # ------------------------------------------------------------------ catalog

    def _cache_key(self, endpoint: str, **params: Any) -> str:
        shop = self._shop_id if self._shop_id is not None else "-"
        args = "&".join(f"{k}={params[k]}" for k in sorted(params))
        return f"printify|{self._base_url}|shop={shop}|{endpoint}|{args}"

    async def _catalog(
        self,
        endpoint: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        not_found: str | None = None,
        **key_params: Any,
    ) -> Any:
        async def load() -> Any:
            return await self._request(
                "GET",
                path,
                operation=f"catalog.{endpoint}",
                bucket="catalog",
                params=params,
                not_found=not_found,
            )

        return await self._catalog_cache.get_or_load(self._cache_key(endpoint, **key_params), load)

    async def blueprints(self) -> list[Blueprint]:
        raw = await self._catalog("blueprints", "/v1/catalog/blueprints.json")
        return _parse(
            lambda: [
                Blueprint(
                    id=int(b["id"]),
                    title=str(b["title"]),
                    brand=str(b.get("brand") or ""),
                    model=str(b.get("model") or ""),
                    description=str(b.get("description") or ""),
                    images=tuple(str(u) for u in b.get("images") or ()),
                )
                for b in raw
            ],
            "blueprints",
        )

    async def print_providers(self, blueprint_id: int) -> list[PrintProvider]:
        raw = await self._catalog(
            "print_providers",
            f"/v1/catalog/blueprints/{int(blueprint_id)}/print_providers.json",
            not_found=f"Printify has no blueprint {blueprint_id}",
            blueprint=blueprint_id,
        )
        return _parse(
            lambda: [PrintProvider(id=int(p["id"]), title=str(p["title"])) for p in raw],
            "print providers",
        )

    async def variants(
        self, blueprint_id: int, provider_id: int, *, show_out_of_stock: bool = False
    ) -> list[CatalogVariant]:
        params = {"show-out-of-stock": 1} if show_out_of_stock else None
        raw = await self._catalog(
            "variants",
            f"/v1/catalog/blueprints/{int(blueprint_id)}/print_providers/"
            f"{int(provider_id)}/variants.json",
            params=params,
            not_found=(
                f"Printify print provider {provider_id} does not offer blueprint "
                f"{blueprint_id} (or one of these ids does not exist)"
            ),
            blueprint=blueprint_id,
            provider=provider_id,
            out_of_stock=show_out_of_stock,
        )

        def build() -> list[CatalogVariant]:
            return [
                CatalogVariant(
                    id=int(v["id"]),
                    title=str(v.get("title", "")),
                    options={str(k): str(val) for k, val in (v.get("options") or {}).items()},
                    placeholders=tuple(
                        Placeholder(
                            position=str(p["position"]),
                            width=int(p["width"]),
                            height=int(p["height"]),
                        )
                        for p in v.get("placeholders") or ()
                    ),
                )
                for v in raw["variants"]
            ]

        return _parse(build, "variants")

    async def shipping(self, blueprint_id: int, provider_id: int) -> list[ShippingProfile]:
        raw = await self._catalog(
            "shipping",
            f"/v1/catalog/blueprints/{int(blueprint_id)}/print_providers/"
            f"{int(provider_id)}/shipping.json",
            not_found=(
                f"Printify print provider {provider_id} does not ship blueprint {blueprint_id}"
            ),
            blueprint=blueprint_id,
            provider=provider_id,
        )

        def build() -> list[ShippingProfile]:
            out = []
            for p in raw["profiles"]:
                first, extra = p["first_item"], p["additional_items"]
                out.append(
                    ShippingProfile(
                        variant_ids=tuple(int(v) for v in p["variant_ids"]),
                        first_item=Decimal(int(first["cost"])) / 100,
                        additional_items=Decimal(int(extra["cost"])) / 100,
                        currency=str(first.get("currency", "USD")),
                        countries=tuple(str(c) for c in p.get("countries") or ()),
                    )
                )
            return out

        return _parse(build, "shipping")

    # ------------------------------------------------------------------ uploads

    def _upload_key(self, digest: str) -> str:
        """Uploads belong to an account: the key names the API, a hash of the token (never
        the token) and the content."""
        try:
            account = hashlib.sha256(self._token().encode("utf-8")).hexdigest()[:16]
        except PodStudioError:
            account = "-"
        return f"{self._base_url}|{account}|{digest}"

    async def _forget_upload(self, image: UploadedImage) -> None:
        index = await self._upload_index()
        for key in [k for k, v in index.items() if v.id == image.id]:
            del index[key]
        path = self._upload_index_path
        if path is not None:
            text = json.dumps({k: v.model_dump() for k, v in index.items()}, indent=1)
            async with self._index_lock:
                await asyncio.to_thread(atomic_write_text, path, text)

    async def _upload_index(self) -> dict[str, UploadedImage]:
        if self._uploads is None:
            async with self._index_lock:
                if self._uploads is None:
                    path = self._upload_index_path
                    self._uploads = (
                        await asyncio.to_thread(_load_index, path) if path is not None else {}
                    )
        return self._uploads

    async def _remember_upload(self, key: str, image: UploadedImage) -> None:
        index = await self._upload_index()
        index[key] = image
        path = self._upload_index_path
        if path is not None:
            text = json.dumps({k: v.model_dump() for k, v in index.items()}, indent=1)
            async with self._index_lock:
                await asyncio.to_thread(atomic_write_text, path, text)

    async def upload_image(
        self, source: Path | bytes, file_name: str | None = None
    ) -> UploadedImage:
        """Upload a PNG/JPEG (other formats are converted; big files are recompressed).

        The same content is uploaded once: later calls return the stored image id.
        """
        if isinstance(source, Path):
            data = await asyncio.to_thread(_read_file, source)
            name = file_name or source.name
        else:
            data = source
            name = file_name or "design.png"
        if not data:
            raise ValidationError(
                f"the image {name!r} is empty (0 bytes)",
                service=SERVICE,
                user_message=f"The design file {name} is empty (0 bytes).",
            )
        digest = hashlib.sha256(data).hexdigest()
        key = self._upload_key(digest)
        index = await self._upload_index()
        if key in index:
            return index[key]
        lock = self._upload_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in index:
                return index[key]
            prepared = await asyncio.to_thread(
                functools.partial(fit_for_upload, service=SERVICE),
                data,
                name,
                self.max_upload_bytes,
            )
            if prepared.mime == "image/jpeg" and not name.lower().endswith((".jpg", ".jpeg")):
                name = Path(name).stem + ".jpg"
            elif prepared.mime == "image/png" and not name.lower().endswith(".png"):
                name = Path(name).stem + ".png"
            payload = {
                "file_name": name,
                "contents": base64.b64encode(prepared.data).decode("ascii"),
            }
            raw = await self._request(
                "POST",
                "/v1/uploads/images.json",
                operation="upload_image",
                body=payload,
                request_timeout=self._edge.upload_timeout,
            )
            image = _parse(
                lambda: UploadedImage(
                    id=str(raw["id"]),
                    file_name=str(raw.get("file_name", name)),
                    width=int(raw.get("width") or prepared.width),
                    height=int(raw.get("height") or prepared.height),
                    sha256=digest,
                ),
                "upload",
            )
            await self._remember_upload(key, image)
            return image

    # ------------------------------------------------------------------ products

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        prefix = marker_for(idem_key) + "-"
        async for product in self._products():
            variants = product.get("variants") or []
            if any(str(v.get("sku") or "").startswith(prefix) for v in variants):
                return self._to_listing(product)
        return None

    async def _products(self) -> AsyncIterator[dict[str, Any]]:
        shop = await self._shop()
        page = 1
        while True:
            raw = await self._request(
                "GET",
                f"/v1/shops/{shop}/products.json",
                operation="list_products",
                params={"limit": PRODUCTS_PAGE_LIMIT, "page": page},
                not_found=_shop_not_found(shop),
            )
            data, last_page = _parse(functools.partial(_page_of, raw), "product list")
            for product in data:
                if isinstance(product, dict):
                    yield product
            if page >= last_page or not data:
                return
            page += 1

    async def _product(self, remote_id: str) -> Any:
        shop = await self._shop()
        return await self._request(
            "GET",
            f"/v1/shops/{shop}/products/{remote_id}.json",
            operation="get_product",
            not_found=f"Printify product {remote_id} was not found in shop {shop}",
        )

    async def get_listing(self, remote_id: str) -> RemoteListing:
        return self._to_listing(await self._product(remote_id))

    async def variant_costs(self, remote_id: str) -> dict[int, Decimal]:
        """Printify's cost per enabled variant of a product (cents in the API, Decimal here).

        The catalog API publishes no costs; a product (even a draft) does.
        """
        raw = self._created.pop(remote_id, None)  # the create's answer has them already
        if raw is None:
            raw = await self._product(remote_id)
        out: dict[int, Decimal] = {}
        for v in raw.get("variants", []) if isinstance(raw, dict) else []:
            if isinstance(v, dict) and isinstance(v.get("id"), int):
                cost = v.get("cost")
                if isinstance(cost, int) and not isinstance(cost, bool) and cost >= 0:
                    out[v["id"]] = Decimal(cost) / 100
        return out

    def _to_listing(self, product: Any) -> RemoteListing:
        def build() -> RemoteListing:
            external = product.get("external")
            if isinstance(external, list):
                external = external[0] if external else None
            ext_ids: dict[str, str] = {}
            if isinstance(external, dict):
                ext_ids = {
                    str(k): str(v)
                    for k, v in external.items()
                    if v is not None and isinstance(v, str | int)
                }
            if product.get("is_locked"):
                status = ListingStatus.PUBLISHING
            elif ext_ids.get("id"):
                status = ListingStatus.PUBLISHED
            else:
                status = ListingStatus.DRAFT
            handle = ext_ids.get("handle", "")
            created = product.get("created_at")
            return RemoteListing(
                platform=self.name,
                remote_id=str(product["id"]),
                status=status,
                title=str(product.get("title", "")),
                url=handle if handle.startswith(("http://", "https://")) else None,
                external_ids=ext_ids,
                created_at=datetime.fromisoformat(created) if created else None,
                images=_mockup_urls(product.get("images")),
            )

        return _parse(build, "product")

    async def create_listing(self, spec: ListingSpec) -> RemoteListing:
        """Pre-flight checks, upload (deduplicated), then one ``POST products.json``."""
        design = await self._preflight_local(spec)
        catalog = await self.variants(
            spec.blueprint_id, spec.print_provider_id, show_out_of_stock=True
        )
        areas = self._preflight_catalog(spec, design, catalog)
        image = await self.upload_image(design.data, spec.design_path.name)
        shop = await self._shop()
        try:
            raw = await self._post_product(shop, self._product_body(spec, image, areas))
        except ValidationError as exc:
            if not _names_unknown_image(exc):
                raise
            # The server no longer knows the image (deleted, or another account's id left
            # in the index): upload it again, once, and create with the new id.
            log.info("printify does not know upload %s any more; uploading again", image.id)
            await self._forget_upload(image)
            image = await self.upload_image(design.data, spec.design_path.name)
            raw = await self._post_product(shop, self._product_body(spec, image, areas))
        listing = self._to_listing(raw)
        self._created[listing.remote_id] = raw
        if len(self._created) > 256:
            self._created.pop(next(iter(self._created)))
        return listing

    async def _post_product(self, shop: int, body: dict[str, Any]) -> Any:
        return await self._request(
            "POST",
            f"/v1/shops/{shop}/products.json",
            operation="create_product",
            idempotent=False,
            body=body,
            not_found=_shop_not_found(shop),
        )

    async def publish(self, listing: RemoteListing, *, republish: bool = False) -> RemoteListing:
        """Ask Printify to push the product to the sales channel (one of 200 per 30 min).

        Skips the call when the product is already publishing, or published (unless
        ``republish``). Returns the state read back.
        """
        fresh = listing.remote_id in self._created or listing.status is ListingStatus.DRAFT
        # a draft this run created (or was handed) needs no read first; anything else is
        # checked so it is never published twice
        current = listing if fresh and not republish else await self.get_listing(listing.remote_id)
        if current.status is ListingStatus.PUBLISHING or (
            current.status is ListingStatus.PUBLISHED and not republish
        ):
            return current
        shop = await self._shop()
        try:
            await self._request(
                "POST",
                f"/v1/shops/{shop}/products/{listing.remote_id}/publish.json",
                operation="publish",
                idempotent=False,
                bucket="publish",
                body=PUBLISH_FIELDS,
                not_found=f"Printify product {listing.remote_id} was not found in shop {shop}",
            )
        except (PodTimeoutError, ServiceError):
            after = await self.get_listing(listing.remote_id)
            if after.status in (ListingStatus.PUBLISHING, ListingStatus.PUBLISHED):
                return after
            raise
        # the accepted publish locks the product: it is publishing (no read needed to know)
        return current.model_copy(update={"status": ListingStatus.PUBLISHING})

    async def sales_channel(self) -> str:
        """The selected shop's sales channel (``custom_integration`` for an API shop)."""
        shop = str(await self._shop())
        if self._channel is None or self._channel[0] != shop:
            found = next((s for s in await self.shops() if s.id == shop), None)
            self._channel = (shop, found.sales_channel if found is not None else "")
        return self._channel[1]

    async def report_publishing_succeeded(
        self, product_id: str, external_id: str, handle: str
    ) -> None:
        """For custom (API) shops: our own storefront listing exists (sets ``external``,
        unlocks the product). ``handle`` is the listing's URL."""
        shop = await self._shop()
        await self._request(
            "POST",
            f"/v1/shops/{shop}/products/{product_id}/publishing_succeeded.json",
            operation="publishing_succeeded",
            body={"external": {"id": external_id, "handle": handle}},
            not_found=f"Printify product {product_id} was not found in shop {shop}",
        )

    async def report_publishing_failed(self, product_id: str, reason: str) -> None:
        """For custom (API) shops: publishing failed (unlocks the product)."""
        shop = await self._shop()
        await self._request(
            "POST",
            f"/v1/shops/{shop}/products/{product_id}/publishing_failed.json",
            operation="publishing_failed",
            body={"reason": (reason.strip() or "publishing failed")[:500]},
            not_found=f"Printify product {product_id} was not found in shop {shop}",
        )

    async def mark_published(self, remote_id: str, external_id: str, handle: str) -> None:
        """Older name of ``report_publishing_succeeded``."""
        await self.report_publishing_succeeded(remote_id, external_id, handle)

    async def mark_publish_failed(self, remote_id: str, reason: str) -> None:
        """Older name of ``report_publishing_failed``."""
        await self.report_publishing_failed(remote_id, reason)

    async def check_credentials(self) -> None:
        """The credential pre-flight: one read that proves the token works and names a usable
        shop. ``AuthenticationError`` for a rejected (or missing) token, ``ValidationError``
        when the chosen shop is not on the account or none is chosen among several; a
        transport or server failure raises its own error."""
        shops = await self.shops()
        listing = ", ".join(f"{s.id} {s.title!r}" for s in shops) or "none"
        if self._shop_id is not None:
            if any(s.id == str(self._shop_id) for s in shops):
                return
            problem = f"Printify shop {self._shop_id} is not on this account (shops: {listing})."
        elif len(shops) == 1:
            return
        else:
            problem = (
                f"{len(shops)} Printify shops on this account ({listing}): choose one in Settings."
            )
        raise ValidationError(problem, service=SERVICE, user_message=problem)

    async def health_check(self) -> tuple[bool, str]:
        try:
            shops = await self.shops()
        except PodStudioError as exc:
            return False, exc.user_message
        if self._shop_id is not None:
            match = next((s for s in shops if s.id == str(self._shop_id)), None)
            if match is None:
                return False, (
                    f"Printify shop {self._shop_id} is not on this account "
                    f"({len(shops)} shop(s) available)."
                )
            line = f"Printify OK: shop {match.title!r} ({match.sales_channel})."
            return True, self._edge.redact(line)
        return True, f"Printify OK: {len(shops)} shop(s)."

    # ------------------------------------------------------------------ pre-flight

    async def _preflight_local(self, spec: ListingSpec) -> _DesignInfo:
        problems: list[str] = []
        if len(spec.title) > self.max_title_chars:
            problems.append(
                f"title is {len(spec.title)} characters; the limit is {self.max_title_chars}"
            )
        for v in spec.variants:
            if v.price > self.max_price:
                problems.append(
                    f"variant {v.variant_id}: price {v.price} {spec.currency} is above the "
                    f"{self.max_price} {spec.currency} sanity limit"
                )
        if spec.currency != "USD":
            log.debug("listing priced in %s; Printify prices in the shop currency", spec.currency)
        if problems:
            raise _validation(problems)
        design = await asyncio.to_thread(_inspect_design, spec.design_path)
        if design.sha256 != spec.design_sha256:
            raise _validation(
                [
                    f"design file {spec.design_path.name} changed since it was approved "
                    "(its SHA-256 no longer matches)"
                ]
            )
        return design

    def _preflight_catalog(
        self, spec: ListingSpec, design: _DesignInfo, catalog: list[CatalogVariant]
    ) -> dict[tuple[int, int], list[int]]:
        """Check variants and resolution; group enabled variants by print-area size."""
        by_id = {v.id: v for v in catalog}
        problems: list[str] = []
        groups: dict[tuple[int, int], list[int]] = {}
        for vp in spec.enabled_variants:
            cv = by_id.get(vp.variant_id)
            if cv is None:
                problems.append(
                    f"variant {vp.variant_id} is not offered by provider "
                    f"{spec.print_provider_id} for blueprint {spec.blueprint_id}"
                )
                continue
            holder = cv.placeholder(spec.print_position)
            if holder is None:
                problems.append(f"variant {cv.title} has no {spec.print_position} print area")
                continue
            groups.setdefault((holder.width, holder.height), []).append(cv.id)
        for (pw, ph), _ids in groups.items():
            scale = (
                spec.placement.scale
                if spec.placement is not None
                else fit_scale(design.width, design.height, pw, ph)
            )
            dpi = effective_dpi(design.width, scale, pw)
            if dpi < self.min_dpi:
                problems.append(
                    f"design is {design.width}x{design.height} px; on the {pw}x{ph} px print "
                    f"area it would print at about {dpi:.0f} DPI (at least {self.min_dpi:.0f} "
                    "needed): use a larger image"
                )
                break
        if problems:
            raise _validation(problems)
        return groups

    def _product_body(
        self,
        spec: ListingSpec,
        image: UploadedImage,
        groups: dict[tuple[int, int], list[int]],
    ) -> dict[str, Any]:
        marker = marker_for(spec.idem_key)
        placement = spec.placement
        print_areas = []
        for (pw, ph), ids in groups.items():
            if placement is not None:
                x, y, scale, angle = placement.x, placement.y, placement.scale, placement.angle
            else:
                x, y, angle = 0.5, 0.5, 0
                scale = fit_scale(image.width, image.height, pw, ph)
            print_areas.append(
                {
                    "variant_ids": ids,
                    "placeholders": [
                        {
                            "position": spec.print_position,
                            "images": [
                                {
                                    "id": image.id,
                                    "x": x,
                                    "y": y,
                                    "scale": round(scale, 6),
                                    "angle": int(angle),
                                }
                            ],
                        }
                    ],
                }
            )
        return {
            "title": spec.title,
            "description": spec.description,
            "tags": list(spec.tags),
            "blueprint_id": spec.blueprint_id,
            "print_provider_id": spec.print_provider_id,
            "variants": [
                {
                    "id": v.variant_id,
                    "price": v.cents,
                    "is_enabled": True,
                    "sku": f"{marker}-{v.variant_id}",
                }
                for v in spec.enabled_variants
            ],
            "print_areas": print_areas,
        }


# ---------------------------------------------------------------------- helpers


def _page_of(raw: Any) -> tuple[list[Any], int]:
    return list(raw["data"]), int(raw["last_page"])


def _shop_not_found(shop: int) -> str:
    return f"Printify shop {shop} was not found for this account; check the shop id in Settings"


def _validation(problems: list[str]) -> ValidationError:
    return ValidationError(
        "listing rejected before sending: " + "; ".join(problems),
        details=problems,
        service=SERVICE,
        user_message="Cannot publish to Printify: " + "; ".join(problems),
    )


def _parse(build: Callable[[], T], what: str) -> T:
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError, PydanticValidationError) as exc:
        raise UpstreamDataError(
            f"Printify sent a {what} reply we cannot read ({type(exc).__name__})",
            service=SERVICE,
            user_message=f"Printify sent an unexpected {what} reply.",
        ) from exc


# Printify's longest window is the 30-minute publish window; a Retry-After beyond it (or
# "inf", "nan", garbage) must not park a call for ever.
RETRY_AFTER_CAP = 1800.0


class PrintifyWords(PlatformWords):
    """Printify's words on the status ladder, and its "product is locked" answer."""

    server = "Printify"
    unauthorized = (
        "Printify rejected the API token (missing, wrong or expired). "
        "Create a new Personal Access Token and save it in Settings."
    )
    forbidden = (
        "The Printify token is not allowed to do this: {reason}. "
        "Create a token with the needed scopes."
    )
    slow_down = "Printify rate limit reached; waiting before the next request."

    def special(self, response: httpx.Response, where: str, reason: str) -> PodStudioError | None:
        if response.status_code in (401, 403, 404, 429):
            return None
        body = json_or_none(response.content)
        if (isinstance(body, dict) and body.get("code") == 8252) or "locked" in reason.lower():
            return self.refusal(
                response,
                where,
                "The Printify product is locked while it is being published; "
                "try again when publishing has finished.",
            )
        return None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(
            f"design file {path.name} does not exist",
            service=SERVICE,
            user_message=f"The design file {path} does not exist.",
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"design file {path.name} cannot be read ({type(exc).__name__})",
            service=SERVICE,
            user_message=f"The design file {path} cannot be read.",
        ) from exc


def _inspect_design(path: Path) -> _DesignInfo:
    data = _read_file(path)
    if not data:
        raise ValidationError(
            f"design file {path.name} is empty (0 bytes)",
            service=SERVICE,
            user_message=f"The design file {path.name} is empty (0 bytes).",
        )
    with open_checked_image(data, path.name, service=SERVICE) as img:
        width, height = img.size
    return _DesignInfo(
        data=data, sha256=hashlib.sha256(data).hexdigest(), width=width, height=height
    )


def _load_index(path: Path) -> dict[str, UploadedImage]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        raw = json.loads(text)
        return {str(k): UploadedImage.model_validate(v) for k, v in raw.items()}
    except (ValueError, AttributeError, PydanticValidationError) as exc:
        move_aside(path, f"unreadable upload index ({type(exc).__name__})")
        return {}


def _names_unknown_image(exc: ValidationError) -> bool:
    """Printify's 400/422 for an image id it does not know (``print_areas.N.placeholders.N
    .images.N.id``)."""
    text = " ".join([exc.message, *exc.details])
    return bool(re.search(r"images\.\d+\.id", text))


def _mockup_urls(images: Any) -> tuple[str, ...]:
    """The http(s) ``src`` of each product image, the default one first, duplicates dropped."""
    if not isinstance(images, list):
        return ()
    entries = [i for i in images if isinstance(i, dict) and isinstance(i.get("src"), str)]
    entries.sort(key=lambda i: not i.get("is_default"))  # stable: Printify's order otherwise
    out: list[str] = []
    for entry in entries:
        src = entry["src"].strip()
        if urlsplit(src).scheme in ("http", "https") and src not in out:
            out.append(src)
    return tuple(out)
