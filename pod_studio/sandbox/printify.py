"""Sandbox layer: a local stand-in for the Printify REST API v1, with fault injection.

Speaks the protocol as documented (``Authorization: Bearer``, ``User-Agent`` required,
``.json`` paths, integer shop/catalog ids, 24-hex product/upload ids, prices in cents,
Laravel-style paginator, ``{"status":"error","code",...,"errors":{"reason","code"}}`` errors)
and enforces the three account-wide rate buckets (global 600/min, catalog 100/min, publish
200 per 30 min). ``time_scale`` shrinks every window and its allowance by the same factor:
the rate stays the same, but a limit is hit (and recovers) ``1/time_scale`` times sooner.

Faults: the API of ``base.SandboxServer`` (``fail_next``, ``rate_limit_next``, ``hang_next``,
``malformed_next``, ``commit_then_timeout_next`` on a product create, ``slow_seconds``,
``fault_rate``, ``pause``) on every ``/v1`` route; the mockup host is never faulted.
Mockups: each product's ``images`` point at
``{mockup_host}/mockup/{product_id}/{variant_id}/{n}/x.jpg`` as Printify's do; ``mockup_host``
is the sandbox itself unless told otherwise (for example
``https://images.printify.com``), and the sandbox serves those paths without a token as small
JPEGs of the variant's colour with the uploaded design on it, so they load offline.

Observations: ``request_counts``, ``creates_per_key``, ``status_429_count``, ``products``,
``uploads``.

Independent of the rest of ``pod_studio``: nothing here imports the adapters or the domain.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import io
import json
import logging
import math
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard, Unpack
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, web

from pod_studio.sandbox._printify_catalog import (
    BLUEPRINTS,
    COLOR_OPTIONS,
    SIZE_OPTION_IDS,
    SandboxProvider,
    SandboxVariant,
    build_providers,
)
from pod_studio.sandbox.base import (
    FaultOptions,
    Handler,
    SandboxServer,
    command_line,
    serve_command,
)

log = logging.getLogger(__name__)

# the token of the request being handled (uploads are visible to their own account only)
_ACCOUNT: contextvars.ContextVar[str] = contextvars.ContextVar("printify_account", default="")

ALL_SCOPES = frozenset(
    {
        "shops.read",
        "catalog.read",
        "products.read",
        "products.write",
        "uploads.read",
        "uploads.write",
        "print_providers.read",
    }
)
_MARKER_RE = re.compile(r"^(?P<marker>.+)-\d+$")

CODE_VALIDATION = 8150
CODE_UPLOAD = 8201
CODE_LOW_QUALITY = 8203
CODE_LOCKED = 8252
CODE_OPERATION_FAILED = 10300


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def error_body(code: int, message: str, reason: str) -> dict[str, Any]:
    return {
        "status": "error",
        "code": code,
        "message": message,
        "errors": {"reason": reason, "code": code},
    }


def _error(
    status: int,
    code: int,
    message: str,
    reason: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(error_body(code, message, reason), status=status, headers=headers)


def _invalid(reason: str, code: int = CODE_VALIDATION) -> web.Response:
    return _error(400, code, "Validation failed.", reason)


class _Reject(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class _Bucket:
    name: str
    limit: int
    window: float
    hits: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> float | None:
        """Record a hit; ``None`` if allowed, else seconds until a slot frees up."""
        while self.hits and self.hits[0] <= now - self.window:
            self.hits.popleft()
        if len(self.hits) >= self.limit:
            return max(0.0, self.hits[0] + self.window - now)
        self.hits.append(now)
        return None


class PrintifySandbox(SandboxServer):
    """A Printify API v1 twin on 127.0.0.1. See the module docstring for the knobs.

    ``publish_mode``: "native" (a Shopify/Etsy shop: Printify completes the publish itself
    after ``publish_seconds`` scaled time, filling ``external``) or "custom" (an API shop:
    the product stays locked until ``publishing_succeeded.json``/``publishing_failed.json``).
    """

    title = "Printify sandbox"

    def __init__(
        self,
        *,
        tokens: Iterable[str] | Mapping[str, Iterable[str]] = ("sandbox-token",),
        shop_id: int = 8154321,
        shop_title: str = "POD Studio Sandbox",
        sales_channel: str | None = None,
        extra_shops: Iterable[Mapping[str, Any]] = (),
        time_scale: float = 1.0,
        rate_limits: bool = True,
        global_limit: int | None = None,
        catalog_limit: int | None = None,
        publish_limit: int | None = None,
        retry_after_header: bool = True,
        require_user_agent: bool = True,
        publish_mode: str = "native",
        publish_seconds: float = 0.0,
        max_upload_bytes: int = 5 * 1024 * 1024,
        list_all_variants: bool = False,
        external_as_list: bool = False,
        newest_first: bool = True,
        min_effective_dpi: float | None = None,
        clock: Callable[[], float] | None = None,
        mockup_host: str | None = None,
        **faults: Unpack[FaultOptions],
    ) -> None:
        super().__init__(**faults)
        if publish_mode not in ("native", "custom"):
            raise ValueError("publish_mode must be 'native' or 'custom'")
        # a custom (API) shop shows its integration as the channel; a native one its platform
        channel = sales_channel or ("custom_integration" if publish_mode == "custom" else "shopify")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if isinstance(tokens, Mapping):
            self.tokens: dict[str, frozenset[str]] = {t: frozenset(s) for t, s in tokens.items()}
        else:
            self.tokens = dict.fromkeys(tokens, ALL_SCOPES)
        self.shop_id = shop_id
        self.shops: list[dict[str, Any]] = [
            {"id": shop_id, "title": shop_title, "sales_channel": channel},
            *[dict(s) for s in extra_shops],
        ]
        self.time_scale = time_scale
        self.rate_limits = rate_limits
        self.retry_after_header = retry_after_header
        self.require_user_agent = require_user_agent
        self.publish_mode = publish_mode
        self.publish_seconds = publish_seconds
        self.max_upload_bytes = max_upload_bytes
        self.list_all_variants = list_all_variants
        self.external_as_list = external_as_list
        self.newest_first = newest_first
        self.min_effective_dpi = min_effective_dpi
        self.client_max_size = max_upload_bytes * 2 + 1024 * 1024
        # the origin of the mockup URLs; None = this sandbox (its /mockup/... route)
        self.mockup_host = mockup_host.rstrip("/") if mockup_host else None
        self._clock = clock or time.monotonic

        def scaled(base: int, window: float, override: int | None) -> tuple[int, float]:
            limit = override if override is not None else max(1, round(base * time_scale))
            return limit, window * time_scale

        g_limit, g_win = scaled(600, 60.0, global_limit)
        c_limit, c_win = scaled(100, 60.0, catalog_limit)
        p_limit, p_win = scaled(200, 1800.0, publish_limit)
        self.buckets: dict[str, _Bucket] = {
            "global": _Bucket("global", g_limit, g_win),
            "catalog": _Bucket("catalog", c_limit, c_win),
            "publish": _Bucket("publish", p_limit, p_win),
        }

        self.providers: dict[int, SandboxProvider] = build_providers()
        self.products: dict[str, dict[str, Any]] = {}
        self._areas_in: dict[str, list[Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.upload_accounts: dict[str, str] = {}  # image id -> the token that uploaded it
        self.upload_data: dict[str, bytes] = {}  # image id -> its bytes (drawn on the mockups)
        self.archived_uploads: set[str] = set()
        self.publish_failures: dict[str, str] = {}
        self._published: dict[str, asyncio.Event] = {}

        self.mockup_requests_with_auth = 0
        self.creates_per_key: Counter[str] = Counter()
        self.status_429_count = 0

        self._id_prefix = secrets.token_hex(5)
        self._id_counter = 0
        self._timers: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ observations

    async def wait_published(self, product_id: str) -> None:
        """Wait until ``product_id`` has been published (wrap in ``asyncio.timeout``)."""
        await self._published.setdefault(product_id, asyncio.Event()).wait()

    def reset_counters(self) -> None:
        self.request_counts.clear()
        self.creates_per_key.clear()
        self.status_429_count = 0

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1/shops.json", self._shops)
        r.add_get("/v1/catalog/blueprints.json", self._blueprints)
        r.add_get("/v1/catalog/blueprints/{bp}.json", self._blueprint)
        r.add_get("/v1/catalog/blueprints/{bp}/print_providers.json", self._bp_providers)
        r.add_get("/v1/catalog/blueprints/{bp}/print_providers/{pp}/variants.json", self._variants)
        r.add_get("/v1/catalog/blueprints/{bp}/print_providers/{pp}/shipping.json", self._shipping)
        r.add_get("/v1/catalog/print_providers.json", self._providers_list)
        r.add_get("/v1/catalog/print_providers/{pp}.json", self._provider)
        r.add_post("/v1/uploads/images.json", self._upload)
        r.add_get("/v1/uploads.json", self._uploads_list)
        r.add_get("/v1/uploads/{image_id}.json", self._upload_get)
        r.add_post("/v1/uploads/{image_id}/archive.json", self._upload_archive)
        base = "/v1/shops/{shop_id}/products"
        r.add_get(base + ".json", self._products_list)
        r.add_post(base + ".json", self._product_create)
        r.add_get(base + "/{product_id}.json", self._product_get)
        r.add_put(base + "/{product_id}.json", self._product_update)
        r.add_delete(base + "/{product_id}.json", self._product_delete)
        r.add_post(base + "/{product_id}/publish.json", self._publish)
        r.add_post(base + "/{product_id}/publishing_succeeded.json", self._publishing_succeeded)
        r.add_post(base + "/{product_id}/publishing_failed.json", self._publishing_failed)
        r.add_post(base + "/{product_id}/unpublish.json", self._unpublish)
        r.add_get("/mockup/{product_id}/{variant_id}/{n}/{name}", self._mockup_image)

    def banner(self) -> str:
        tokens = ", ".join(sorted(self.tokens))
        return f"Printify sandbox on {self.url} (tokens: {tokens}; shop {self.shop_id})"

    async def on_stop(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ middleware hooks

    @staticmethod
    def _scope_for(request: web.Request) -> str:
        path = request.path
        write = request.method not in ("GET", "HEAD")
        if path.startswith("/v1/catalog/"):
            return "catalog.read"
        if path.startswith("/v1/uploads"):
            return "uploads.write" if write else "uploads.read"
        if "/products" in path:
            return "products.write" if write else "products.read"
        return "shops.read"

    def error_response(self, status: int) -> web.Response:
        if status == 503:
            return _error(503, 503, "Service unavailable.", "Service unavailable.")
        return _error(status, status, "Server error.", "Injected failure.")

    def too_many(self, retry_after: float | None) -> web.Response:
        self.status_429_count += 1
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = (
                str(math.ceil(retry_after)) if retry_after >= 1 else f"{retry_after:g}"
            )
        return _error(429, 429, "Too Many Attempts.", "Too many requests", headers)

    def faultable(self, request: web.Request) -> bool:
        # the image host: public URLs, no token, no API rate buckets, no faults
        return not request.path.startswith("/mockup/")

    async def admit(self, request: web.Request) -> web.StreamResponse | None:
        if not self.faultable(request):
            if request.headers.get("Authorization"):
                self.mockup_requests_with_auth += 1
            return None
        if self.require_user_agent and not request.headers.get("User-Agent", "").strip():
            return _error(400, 400, "Bad request.", "The User-Agent header is required.")
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            return _error(401, 401, "Unauthenticated.", "Unauthenticated.")
        scopes = self.tokens[token.strip()]
        _ACCOUNT.set(token.strip())
        needed = self._scope_for(request)
        if needed not in scopes:
            return _error(403, 403, "Forbidden.", f"This token does not have the {needed} scope.")
        return None

    async def limit(self, request: web.Request) -> web.StreamResponse | None:
        if self.rate_limits:
            wait = self._check_buckets(request, self.template(request))
            if wait is not None:
                return self.too_many(wait if self.retry_after_header else None)
        return None

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            exc = request.match_info.http_exception
            if exc.status == 405:
                return _error(405, 405, "Method not allowed.", "Method not allowed.")
            return _error(404, 404, "Not found.", "Route not found.")
        try:
            return await handler(request)
        except _Reject as rejected:
            return rejected.response
        except web.HTTPRequestEntityTooLarge:
            return _error(413, 413, "Payload too large.", "error.file.size.limit.exceeded")

    def _check_buckets(self, request: web.Request, template: str) -> float | None:
        now = self._clock()
        names = ["global"]
        if request.path.startswith("/v1/catalog/"):
            names.append("catalog")
        if template.endswith("/publish.json"):
            names.append("publish")
        for name in names:
            wait = self.buckets[name].take(now)
            if wait is not None:
                return wait
        return None

    # ------------------------------------------------------------------ helpers

    def _new_id(self) -> str:
        self._id_counter += 1
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self._id_prefix}{self._id_counter:06x}"

    @staticmethod
    def _int_param(request: web.Request, name: str) -> int:
        raw = request.match_info[name]
        if not raw.isdigit():
            raise _Reject(_error(404, 404, "Not found.", f"Unknown {name} {raw!r}."))
        return int(raw)

    def _shop(self, request: web.Request) -> int:
        shop_id = self._int_param(request, "shop_id")
        if not any(s.get("id") == shop_id for s in self.shops):
            raise _Reject(_error(404, 404, "Not found.", f"Shop {shop_id} not found."))
        return shop_id

    def _product(self, request: web.Request) -> dict[str, Any]:
        shop_id = self._shop(request)
        product = self.products.get(request.match_info["product_id"])
        if product is None or product["shop_id"] != shop_id:
            raise _Reject(_error(404, 404, "Not found.", "Product not found."))
        return product

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        ctype = request.headers.get("Content-Type", "")
        if not ctype.lower().startswith("application/json"):
            raise _Reject(_invalid("Content-Type must be application/json."))
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Reject(_error(400, 400, "Bad request.", "Malformed JSON.")) from None
        if not isinstance(body, dict):
            raise _Reject(_error(400, 400, "Bad request.", "Expected a JSON object."))
        return body

    def _bp_provider(self, request: web.Request) -> tuple[int, SandboxProvider]:
        bp = self._int_param(request, "bp")
        pp = self._int_param(request, "pp")
        if bp not in BLUEPRINTS:
            raise _Reject(_error(404, 404, "Not found.", f"Blueprint {bp} not found."))
        provider = self.providers.get(pp)
        if provider is None or bp not in provider.variants:
            raise _Reject(
                _error(
                    404, 404, "Not found.", f"Print provider {pp} does not offer blueprint {bp}."
                )
            )
        return bp, provider

    @staticmethod
    def _paginate(
        request: web.Request, items: list[dict[str, Any]], *, max_limit: int, default: int
    ) -> dict[str, Any]:
        try:
            page = int(request.query.get("page", "1"))
            limit = int(request.query.get("limit", str(default)))
        except ValueError:
            raise _Reject(_invalid("page and limit must be integers.")) from None
        if page < 1:
            raise _Reject(_invalid("The page must be at least 1."))
        if not 1 <= limit <= max_limit:
            raise _Reject(_invalid(f"The limit may not be greater than {max_limit}."))
        total = len(items)
        last_page = max(1, math.ceil(total / limit))
        start = (page - 1) * limit
        data = items[start : start + limit]
        return {
            "current_page": page,
            "data": data,
            "first_page_url": "/?page=1",
            "from": start + 1 if data else None,
            "last_page": last_page,
            "last_page_url": f"/?page={last_page}",
            "next_page_url": f"/?page={page + 1}" if page < last_page else None,
            "path": "/",
            "per_page": limit,
            "prev_page_url": f"/?page={page - 1}" if page > 1 else None,
            "to": start + len(data) if data else None,
            "total": total,
        }

    # ------------------------------------------------------------------ shops & catalog

    async def _shops(self, request: web.Request) -> web.Response:
        return web.json_response(self.shops)

    async def _blueprints(self, request: web.Request) -> web.Response:
        return web.json_response([bp.to_json() for bp in BLUEPRINTS.values()])

    async def _blueprint(self, request: web.Request) -> web.Response:
        bp = self._int_param(request, "bp")
        if bp not in BLUEPRINTS:
            return _error(404, 404, "Not found.", f"Blueprint {bp} not found.")
        return web.json_response(BLUEPRINTS[bp].to_json())

    async def _bp_providers(self, request: web.Request) -> web.Response:
        bp = self._int_param(request, "bp")
        if bp not in BLUEPRINTS:
            return _error(404, 404, "Not found.", f"Blueprint {bp} not found.")
        return web.json_response(
            [
                {"id": p.id, "title": p.title, "decoration_methods": ["dtg"]}
                for p in self.providers.values()
                if bp in p.variants
            ]
        )

    async def _variants(self, request: web.Request) -> web.Response:
        bp, provider = self._bp_provider(request)
        show_all = request.query.get("show-out-of-stock", "0") in ("1", "true")
        variants = [v.to_json() for v in provider.variants[bp] if show_all or v.in_stock]
        return web.json_response({"id": provider.id, "title": provider.title, "variants": variants})

    async def _shipping(self, request: web.Request) -> web.Response:
        bp, provider = self._bp_provider(request)
        ids = [v.id for v in provider.variants[bp]]
        profiles = [
            {
                "variant_ids": ids,
                "first_item": {"cost": first, "currency": "USD"},
                "additional_items": {"cost": extra, "currency": "USD"},
                "countries": [country],
            }
            for country, first, extra in provider.shipping
        ]
        return web.json_response(
            {"handling_time": {"value": 30, "unit": "day"}, "profiles": profiles}
        )

    async def _providers_list(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"id": p.id, "title": p.title, "location": p.location}
                for p in self.providers.values()
            ]
        )

    async def _provider(self, request: web.Request) -> web.Response:
        pp = self._int_param(request, "pp")
        provider = self.providers.get(pp)
        if provider is None:
            return _error(404, 404, "Not found.", f"Print provider {pp} not found.")
        blueprints = [BLUEPRINTS[bp].to_json() for bp in provider.variants]
        return web.json_response(
            {
                "id": provider.id,
                "title": provider.title,
                "location": provider.location,
                "blueprints": blueprints,
            }
        )

    # ------------------------------------------------------------------ uploads

    async def _upload(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        file_name = body.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            return _invalid("The file_name field is required.")
        url, contents = body.get("url"), body.get("contents")
        if (url is None) == (contents is None):
            return _invalid("Send either url or contents.")
        if contents is not None:
            if not isinstance(contents, str):
                return _invalid("contents must be a base64 string.")
            try:
                data = base64.b64decode(contents, validate=True)
            except (binascii.Error, ValueError):
                return _invalid("contents is not valid base64.")
        else:
            if not isinstance(url, str):
                return _invalid("url must be a string.")
            fetched = await self._fetch_url(url)
            if isinstance(fetched, web.Response):
                return fetched
            data = fetched
        if len(data) > self.max_upload_bytes:
            return _invalid("error.file.size.limit.exceeded", CODE_UPLOAD)
        info = _image_info(data)
        if info is None:
            return _invalid("error.file.wrong.format", CODE_UPLOAD)
        mime, width, height = info
        image_id = self._new_id()
        record = {
            "id": image_id,
            "file_name": file_name,
            "height": height,
            "width": width,
            "size": len(data),
            "mime_type": mime,
            "preview_url": f"https://pfy-prod-image-storage.s3.us-east-2.amazonaws.com/{image_id}",
            "upload_time": _now_text()[:19],
        }
        self.uploads[image_id] = record
        self.upload_accounts[image_id] = _ACCOUNT.get()
        self.upload_data[image_id] = data
        return web.json_response(record)

    async def _fetch_url(self, url: str) -> bytes | web.Response:
        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            return _error(
                400,
                CODE_OPERATION_FAILED,
                "Operation failed.",
                f"cURL error 6: Could not resolve host: {host}",
            )
        try:
            async with (
                ClientSession(timeout=ClientTimeout(total=10)) as session,
                session.get(url) as resp,
            ):
                if resp.status != 200:
                    return _error(
                        400,
                        CODE_OPERATION_FAILED,
                        "Operation failed.",
                        f"Download failed with HTTP {resp.status}",
                    )
                return await resp.read()
        except (OSError, TimeoutError) as exc:
            return _error(
                400,
                CODE_OPERATION_FAILED,
                "Operation failed.",
                f"Download failed: {type(exc).__name__}",
            )

    async def _uploads_list(self, request: web.Request) -> web.Response:
        items = [u for i, u in self.uploads.items() if i not in self.archived_uploads]
        items.reverse()
        return web.json_response(self._paginate(request, items, max_limit=100, default=10))

    async def _upload_get(self, request: web.Request) -> web.Response:
        record = self.uploads.get(request.match_info["image_id"])
        if record is None:
            return _error(404, 404, "Not found.", "Image not found.")
        return web.json_response(record)

    async def _upload_archive(self, request: web.Request) -> web.Response:
        image_id = request.match_info["image_id"]
        if image_id not in self.uploads:
            return _error(404, 404, "Not found.", "Image not found.")
        self.archived_uploads.add(image_id)
        return web.json_response({})

    # ------------------------------------------------------------------ products

    async def _products_list(self, request: web.Request) -> web.Response:
        shop_id = self._shop(request)
        items = [p for p in self.products.values() if p["shop_id"] == shop_id]
        if self.newest_first:
            items.reverse()
        return web.json_response(self._paginate(request, items, max_limit=50, default=10))

    async def _product_get(self, request: web.Request) -> web.Response:
        return web.json_response(self._product(request))

    async def _product_create(self, request: web.Request) -> web.StreamResponse:
        shop_id = self._shop(request)
        body = await self._json_body(request)
        product = self._build_product(shop_id, body, None)
        self.products[product["id"]] = product
        for marker in _markers(product["variants"]):
            self.creates_per_key[marker] += 1
        dropped = await self.commit_fault(request)
        return dropped if dropped is not None else web.json_response(product)

    async def _product_update(self, request: web.Request) -> web.Response:
        product = self._product(request)
        if product["is_locked"]:
            return self._locked()
        body = await self._json_body(request)
        merged = {
            "title": product["title"],
            "description": product["description"],
            "tags": product["tags"],
            "blueprint_id": product["blueprint_id"],
            "print_provider_id": product["print_provider_id"],
            "variants": [
                {k: v[k] for k in ("id", "price", "is_enabled", "sku")} for v in product["variants"]
            ],
            "print_areas": self._areas_in.get(product["id"], []),
        }
        for key in ("blueprint_id", "print_provider_id"):
            if key in body and body[key] != product[key]:
                return _invalid(f"The {key} cannot be changed.")
        merged.update({k: v for k, v in body.items() if k in merged})
        updated = self._build_product(product["shop_id"], merged, product)
        self.products[product["id"]] = updated
        return web.json_response(updated)

    async def _product_delete(self, request: web.Request) -> web.Response:
        product = self._product(request)
        if product["is_locked"]:
            return self._locked()
        del self.products[product["id"]]
        return web.json_response({})

    @staticmethod
    def _locked() -> web.Response:
        return _error(
            400,
            CODE_LOCKED,
            "Product is disabled for editing.",
            "Product is locked while it is being published.",
        )

    def _build_product(
        self, shop_id: int, body: dict[str, Any], previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        def bad(reason: str, code: int = CODE_VALIDATION) -> _Reject:
            return _Reject(_invalid(reason, code))

        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise bad("The title field is required.")
        if len(title) > 255:
            raise bad("The title may not be greater than 255 characters.")
        description = body.get("description")
        if not isinstance(description, str):
            raise bad("The description field is required.")
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise bad("The tags must be an array of strings.")
        bp, pp = body.get("blueprint_id"), body.get("print_provider_id")
        if not _is_int(bp) or not _is_int(pp):
            raise bad("The blueprint_id and print_provider_id fields must be integers.")
        provider = self.providers.get(pp)
        if bp not in BLUEPRINTS or provider is None or bp not in provider.variants:
            raise bad(f"Print provider {pp} does not offer blueprint {bp}.")
        catalog = {v.id: v for v in provider.variants[bp]}
        sent = body.get("variants")
        if not isinstance(sent, list) or not sent:
            raise bad("The variants field is required.")
        variants_in: dict[int, dict[str, Any]] = {}
        for i, v in enumerate(sent):
            if not isinstance(v, dict) or not _is_int(v.get("id")):
                raise bad(f"The variants.{i}.id field must be an integer.")
            if v["id"] not in catalog:
                raise bad(f"Variant {v['id']} is not available for this print provider.")
            price = v.get("price")
            if not _is_int(price) or price < 0:
                raise bad(f"The variants.{i}.price must be an integer amount of cents.")
            enabled = v.get("is_enabled", True)
            if not isinstance(enabled, bool):
                raise bad(f"The variants.{i}.is_enabled field must be true or false.")
            sku = v.get("sku")
            if sku is not None and not isinstance(sku, str):
                raise bad(f"The variants.{i}.sku must be a string.")
            variants_in[v["id"]] = {"price": price, "is_enabled": enabled, "sku": sku}
        areas_in = body.get("print_areas")
        if not isinstance(areas_in, list) or not areas_in:
            raise bad("The print_areas field is required.")
        covered: set[int] = set()
        areas_out: list[dict[str, Any]] = []
        for ai, area in enumerate(areas_in):
            areas_out.append(self._check_area(ai, area, catalog, covered))
        missing = [vid for vid, v in variants_in.items() if v["is_enabled"] and vid not in covered]
        if missing:
            raise bad(f"Enabled variants {missing[:5]} are not in any print area.")

        prev_skus = {v["id"]: v["sku"] for v in previous["variants"]} if previous else {}
        listed = catalog.values() if self.list_all_variants else [catalog[i] for i in variants_in]
        variants_out: list[dict[str, Any]] = []
        for cv in listed:
            vin = variants_in.get(cv.id)
            sku = (
                (vin or {}).get("sku")
                or prev_skus.get(cv.id)
                or str(secrets.randbelow(10**9) + 10**8)
            )
            variants_out.append(
                {
                    "id": cv.id,
                    "sku": sku,
                    "cost": cv.cost_cents,
                    "price": vin["price"] if vin else cv.cost_cents * 2,
                    "title": cv.title,
                    "grams": 180 if bp == 12 else 590,
                    "is_enabled": bool(vin and vin["is_enabled"]),
                    "is_default": False,
                    "is_available": cv.in_stock,
                    "is_printify_express_eligible": False,
                    "options": [COLOR_OPTIONS[cv.color][0], SIZE_OPTION_IDS[cv.size]],
                }
            )
        for v in variants_out:
            if v["is_enabled"]:
                v["is_default"] = True
                break
        product_id = previous["id"] if previous else self._new_id()
        now = _now_text()
        product: dict[str, Any] = {
            "id": product_id,
            "title": title,
            "description": description,
            "tags": tags,
            "options": _options([catalog[v["id"]] for v in variants_out]),
            "variants": variants_out,
            "images": _mockups(
                self.mockup_host or self.base_url,
                product_id,
                [catalog[v["id"]] for v in variants_out if v["is_enabled"]],
            ),
            "created_at": previous["created_at"] if previous else now,
            "updated_at": now,
            "visible": True,
            "is_locked": False,
            "blueprint_id": bp,
            "print_provider_id": pp,
            "user_id": 1337,
            "shop_id": shop_id,
            "print_areas": areas_out,
            "print_details": [],
            "sales_channel_properties": [],
        }
        if previous and "external" in previous:
            product["external"] = previous["external"]
        self._areas_in[product_id] = areas_in  # as sent, for PUT merges
        return product

    def _check_area(
        self,
        ai: int,
        area: Any,
        catalog: dict[int, SandboxVariant],
        covered: set[int],
    ) -> dict[str, Any]:
        def bad(reason: str, code: int = CODE_VALIDATION) -> _Reject:
            return _Reject(_invalid(reason, code))

        if not isinstance(area, dict):
            raise bad(f"The print_areas.{ai} must be an object.")
        vids = area.get("variant_ids")
        if not isinstance(vids, list) or not vids or not all(_is_int(v) for v in vids):
            raise bad(f"The print_areas.{ai}.variant_ids must be a list of integers.")
        unknown = [v for v in vids if v not in catalog]
        if unknown:
            raise bad(f"Variants {unknown[:5]} are not available for this print provider.")
        holders = area.get("placeholders")
        if not isinstance(holders, list) or not holders:
            raise bad(f"The print_areas.{ai}.placeholders field is required.")
        holders_out: list[dict[str, Any]] = []
        for hi, holder in enumerate(holders):
            where = f"print_areas.{ai}.placeholders.{hi}"
            if not isinstance(holder, dict) or not isinstance(holder.get("position"), str):
                raise bad(f"The {where}.position field is required.")
            position = holder["position"]
            images = holder.get("images")
            if not isinstance(images, list):
                raise bad(f"The {where}.images must be a list.")
            images_out: list[dict[str, Any]] = []
            for ii, img in enumerate(images):
                iwhere = f"{where}.images.{ii}"
                if not isinstance(img, dict):
                    raise bad(f"The {iwhere} must be an object.")
                upload = self.uploads.get(img.get("id", ""))
                owner = self.upload_accounts.get(str(img.get("id", "")))
                if upload is None or owner != _ACCOUNT.get():  # uploads belong to one account
                    raise bad(f"The {iwhere}.id is not a known image.")
                for key in ("x", "y", "scale"):
                    if not isinstance(img.get(key), int | float) or isinstance(img[key], bool):
                        raise bad(f"The {iwhere}.{key} must be a number.")
                if not _is_int(img.get("angle")):
                    raise bad(f"The {iwhere}.angle must be an integer.")
                for vid in vids:
                    size = catalog[vid].placeholder(position)
                    if size is None:
                        raise bad(f"Variant {vid} has no {position!r} print area.")
                    if self.min_effective_dpi is not None:
                        dpi = 300.0 * upload["width"] / (float(img["scale"]) * size[0])
                        if dpi < self.min_effective_dpi:
                            raise bad("Image has low quality", CODE_LOW_QUALITY)
                images_out.append(
                    {
                        "id": upload["id"],
                        "name": upload["file_name"],
                        "type": upload["mime_type"],
                        "height": upload["height"],
                        "width": upload["width"],
                        "x": img["x"],
                        "y": img["y"],
                        "scale": img["scale"],
                        "angle": img["angle"],
                    }
                )
            holders_out.append({"position": position, "images": images_out})
        covered.update(vids)
        return {"variant_ids": list(vids), "placeholders": holders_out, "background": "#ffffff"}

    # ------------------------------------------------------------------ mockups

    async def _mockup_image(self, request: web.Request) -> web.Response:
        product = self.products.get(request.match_info["product_id"])
        try:
            variant_id = int(request.match_info["variant_id"])
        except ValueError:
            variant_id = -1
        variant = next(
            (v for v in (product or {}).get("variants", []) if v["id"] == variant_id), None
        )
        if product is None or variant is None:
            return web.Response(status=404, text="Not Found")
        color_id = variant["options"][0]
        hexcode = next((h for cid, h in COLOR_OPTIONS.values() if cid == color_id), "#ffffff")
        design = b""
        for area in product.get("print_areas", []):
            if variant_id in area["variant_ids"]:
                for holder in area["placeholders"]:
                    for img in holder["images"]:
                        design = design or self.upload_data.get(img["id"], b"")
        body = await asyncio.to_thread(_mockup_jpeg, hexcode, design)
        return web.Response(body=body, content_type="image/jpeg")

    # ------------------------------------------------------------------ publishing

    async def _publish(self, request: web.Request) -> web.Response:
        product = self._product(request)
        body = await self._json_body(request)
        for key, value in body.items():
            if not isinstance(value, bool):
                return _invalid(f"The {key} field must be true or false.")
        if product["is_locked"]:
            return self._locked()
        product["is_locked"] = True
        if self.publish_mode == "native":
            delay = self.publish_seconds * self.time_scale
            if delay <= 0:
                self._complete_publish(product["id"])
            else:
                loop = asyncio.get_running_loop()
                handle: asyncio.TimerHandle | None = None

                def fire() -> None:
                    if handle is not None:
                        self._timers.discard(handle)
                    self._complete_publish(product["id"])

                handle = loop.call_later(delay, fire)
                self._timers.add(handle)
        return web.json_response({})

    def _complete_publish(
        self, product_id: str, external_id: str | None = None, handle: str | None = None
    ) -> None:
        product = self.products.get(product_id)
        if product is None:
            return
        slug = re.sub(r"[^a-z0-9]+", "-", product["title"].lower()).strip("-") or "product"
        external = {
            "id": external_id or str(secrets.randbelow(9 * 10**9) + 10**9),
            "handle": handle or f"https://sandbox-shop.example/products/{slug}",
        }
        product["external"] = [external] if self.external_as_list else external
        product["is_locked"] = False
        product["updated_at"] = _now_text()
        self._published.setdefault(product_id, asyncio.Event()).set()

    async def _publishing_succeeded(self, request: web.Request) -> web.Response:
        product = self._product(request)
        body = await self._json_body(request)
        external = body.get("external")
        if not isinstance(external, dict) or not isinstance(external.get("id"), str):
            return _invalid("The external.id field is required.")
        handle = external.get("handle")
        if not isinstance(handle, str):
            return _invalid("The external.handle field is required.")
        self._complete_publish(product["id"], external["id"], handle)
        return web.json_response({})

    async def _publishing_failed(self, request: web.Request) -> web.Response:
        product = self._product(request)
        body = await self._json_body(request)
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason:
            return _invalid("The reason field is required.")
        product["is_locked"] = False
        self.publish_failures[product["id"]] = reason
        return web.json_response({})

    async def _unpublish(self, request: web.Request) -> web.Response:
        product = self._product(request)
        product.pop("external", None)
        product["is_locked"] = False
        return web.json_response({})


# ---------------------------------------------------------------------- module helpers


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _markers(variants: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for v in variants:
        sku = v.get("sku") or ""
        match = _MARKER_RE.match(sku)
        if match and not sku.isdigit():
            out.add(match.group("marker"))
    return out


def _options(variants: list[SandboxVariant]) -> list[dict[str, Any]]:
    colors: dict[str, dict[str, Any]] = {}
    sizes: dict[str, dict[str, Any]] = {}
    for v in variants:
        cid, hexcode = COLOR_OPTIONS[v.color]
        colors.setdefault(v.color, {"id": cid, "title": v.color, "colors": [hexcode]})
        sizes.setdefault(v.size, {"id": SIZE_OPTION_IDS[v.size], "title": v.size})
    return [
        {"name": "Colors", "type": "color", "values": list(colors.values())},
        {"name": "Sizes", "type": "size", "values": list(sizes.values())},
    ]


def _mockups(host: str, product_id: str, variants: list[SandboxVariant]) -> list[dict[str, Any]]:
    by_color: dict[str, list[int]] = {}
    for v in variants:
        by_color.setdefault(v.color, []).append(v.id)
    images = []
    for n, (_, ids) in enumerate(by_color.items()):
        images.append(
            {
                "src": f"{host}/mockup/{product_id}/{ids[0]}/{n + 1}/x.jpg",
                "variant_ids": ids,
                "position": "front",
                "is_default": n == 0,
            }
        )
    return images


def _mockup_jpeg(hexcode: str, design: bytes, size: int = 480) -> bytes:
    """A small mockup: the garment colour with the design on its chest (plain if unreadable)."""
    from PIL import Image, UnidentifiedImageError

    canvas = Image.new("RGB", (size, size), hexcode)
    if design:
        try:
            with Image.open(io.BytesIO(design)) as art:
                art.thumbnail((size * 2 // 5, size * 2 // 5))
                rgba = art.convert("RGBA")
                canvas.paste(rgba, ((size - rgba.width) // 2, size // 4), rgba)
        except (UnidentifiedImageError, OSError, ValueError):
            pass
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=80)
    return out.getvalue()


def _image_info(data: bytes) -> tuple[str, int, int] | None:
    """(mime, width, height) for a PNG or JPEG, else ``None``. Reads the header only."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        return None
    try:
        from PIL import Image, UnidentifiedImageError

        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return mime, width, height


def main(argv: list[str] | None = None) -> None:
    """``python -m pod_studio.sandbox.printify --port 8790``."""
    parser = command_line("Printify API sandbox", 8790)
    parser.add_argument("--token", dest="tokens", action="append")
    parser.add_argument("--time-scale", type=float)
    parser.add_argument("--publish-mode", choices=["native", "custom"])
    serve_command(PrintifySandbox, parser, argv)


if __name__ == "__main__":
    main()
