"""Sandbox layer: a local stand-in for Etsy Open API v3 and its OAuth 2.0 server.

Speaks the protocol as the contract notes describe it:

- OAuth: ``GET /oauth/connect`` (auto-approves for demo use: it redirects straight back to
  ``redirect_uri`` with ``code`` and ``state``), ``POST /v3/public/oauth/token`` (form-encoded;
  ``authorization_code`` with PKCE S256 verification, ``refresh_token`` with rotation: using a
  refresh token kills it, optionally after ``refresh_grace`` seconds). Errors are
  ``{"error": "invalid_grant", "error_description": ...}``. The token endpoint needs no
  ``x-api-key`` (as on Etsy).
- Every ``/v3/application/...`` request needs ``x-api-key: <keystring>:<shared_secret>``
  (keystring alone: 403 "Shared secret is required in x-api-key header.") and, except the
  ping, ``Authorization: Bearer <user_id>.<token>`` (401 ``invalid_token`` otherwise).
- Per-second and per-day (sliding window) limits; ``x-limit-per-second``,
  ``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today`` on every answer but a
  429; a 429 carries ``Retry-After`` (unless ``retry_after_header=False``).
- Listings: form-encoded ``createDraftListing`` with required-field validation (the
  ``is_supply``/``who_made``/``when_made`` trio, ``shipping_profile_id`` for physical items,
  title/tag/price rules), multipart image upload, JSON inventory with ``price_on_property``
  consistency, ``PATCH state=active`` (needs an image). Errors are ``{"error": "..."}``.

Faults: the API of ``base.SandboxServer`` (``fail_next``, ``rate_limit_next``, ``hang_next``,
``malformed_next``, ``commit_then_timeout_next`` on a draft create, ``slow_seconds``,
``fault_rate``, ``pause``) on every ``/v3/application`` route; and ``invalid_grant_next``,
``expire_access_tokens``, ``revoke_all``. Observations: ``request_counts``, ``token_grants``,
``creates_per_title``, ``status_429_count``, ``listings``, ``images``, ``inventory``,
``requests`` (method, path, query, form field names).

Independent of the rest of ``pod_studio``: nothing here imports the adapters or the domain.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import secrets
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Unpack
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from pod_studio.sandbox.base import (
    FaultOptions,
    Handler,
    SandboxServer,
    command_line,
    serve_command,
)

WHO_MADE = ("i_did", "someone_else", "collective")
WHEN_MADE = (
    "made_to_order", "2020_2026", "2010_2019", "2007_2009", "before_2007", "2000_2006",
    "1990s", "1980s", "1970s", "1960s", "1950s", "1940s", "1930s", "1920s", "1910s",
    "1900s", "1800s", "1700s", "before_1700",
)  # fmt: skip
LISTING_TYPES = ("physical", "download", "both")
STATES = ("active", "inactive", "sold_out", "draft", "expired")
ALL_SCOPES = frozenset(
    {"listings_r", "listings_w", "listings_d", "shops_r", "shops_w", "profile_r", "email_r"}
)
MAX_TITLE = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
MAX_IMAGES = 10
SIZE_PROPERTY_ID = 100
COLOR_PROPERTY_ID = 200
CUSTOM_PROPERTY_IDS = (513, 514)
TSHIRT_TAXONOMY_ID = 482
HOODIE_TAXONOMY_ID = 2201

_SHARED_SECRET_MSG = "Shared secret is required in x-api-key header."
_BAD_KEY_MSG = "API key not found or not active"


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class _Reject(Exception):
    """Raised inside a handler to answer with an error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _bad(message: str, status: int = 400) -> _Reject:
    return _Reject(_error(status, message))


@dataclass
class _Window:
    """A sliding-window counter (``limit`` hits per ``window`` seconds)."""

    limit: int
    window: float
    hits: deque[float] = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        while self.hits and self.hits[0] <= now - self.window:
            self.hits.popleft()

    def take(self, now: float) -> float | None:
        """Record a hit; ``None`` if allowed, else seconds until a slot frees up."""
        self._trim(now)
        if len(self.hits) >= self.limit:
            return max(0.001, self.hits[0] + self.window - now)
        self.hits.append(now)
        return None

    def remaining(self, now: float) -> int:
        self._trim(now)
        return max(0, self.limit - len(self.hits))


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: frozenset[str]
    expires_at: float
    used: bool = False


@dataclass
class _Refresh:
    scopes: frozenset[str]
    alive: bool = True
    dies_at: float | None = None  # rotated, still accepted until then (grace window)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def money(amount: float | str, currency: str = "USD") -> dict[str, Any]:
    cents = round(float(amount) * 100)
    return {"amount": cents, "divisor": 100, "currency_code": currency}


def _title_problem(title: str) -> str | None:
    if len(title) > MAX_TITLE:
        return f"title must be {MAX_TITLE} characters or fewer (got {len(title)})."
    for ch in title:
        cat = unicodedata.category(ch)
        if not (cat[0] in "LP" or cat in ("Nd", "Sm", "Zs") or ch in "™©®"):
            return f"title contains a character that is not allowed: {ch!r}."
    for ch in "%:&+":
        if title.count(ch) > 1:
            return f"title may contain the {ch} character only once."
    return None


def _tag_problem(tag: str) -> str | None:
    if not tag.strip():
        return "tags must not be empty."
    if len(tag) > MAX_TAG_CHARS:
        return f"tag {tag!r} is longer than {MAX_TAG_CHARS} characters."
    for ch in tag:
        if not (ch.isalnum() or ch in " -'™©®"):
            return f"tag {tag!r} contains a character that is not allowed: {ch!r}."
    return None


def _default_taxonomy() -> list[dict[str, Any]]:
    def node(nid: int, name: str, level: int, children: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": nid, "level": level, "name": name, "parent_id": None, "children": children}

    tees = node(TSHIRT_TAXONOMY_ID, "T-shirts", 2, [])
    hoodies = node(HOODIE_TAXONOMY_ID, "Hoodies & Sweatshirts", 2, [])
    clothing = node(1, "Clothing", 0, [node(2, "Unisex Adult Clothing", 1, [tees, hoodies])])
    return [clothing, node(3, "Home & Living", 0, [])]


def _default_properties() -> list[dict[str, Any]]:
    sizes = ["XS", "S", "M", "L", "XL", "2XL", "3XL"]
    colors = ["Black", "White", "Navy", "Heather Grey", "Red"]
    return [
        {
            "property_id": SIZE_PROPERTY_ID,
            "name": "Size",
            "display_name": "Size",
            "supports_variations": True,
            "possible_values": [{"value_id": 1000 + i, "name": s} for i, s in enumerate(sizes)],
        },
        {
            "property_id": COLOR_PROPERTY_ID,
            "name": "Primary color",
            "display_name": "Primary color",
            "supports_variations": True,
            "possible_values": [{"value_id": 2000 + i, "name": c} for i, c in enumerate(colors)],
        },
        {
            "property_id": 3,
            "name": "Occasion",
            "display_name": "Occasion",
            "supports_variations": False,
            "possible_values": [],
        },
    ]


class EtsySandbox(SandboxServer):
    """An Etsy Open API v3 twin on 127.0.0.1. See the module docstring for the knobs.

    ``redirect_uris``: the registered redirect URIs; ``None`` accepts any
    ``http://127.0.0.1``/``http://localhost`` URI (a desktop app on a free port).
    """

    title = "Etsy sandbox"

    def __init__(
        self,
        *,
        keystring: str = "sandboxkeystring",
        shared_secret: str = "sandboxsecret",
        user_id: int = 12345678,
        shop_id: int = 52332641,
        shop_name: str = "PodStudioSandbox",
        currency: str = "USD",
        redirect_uris: Iterable[str] | None = None,
        per_second: int = 10,
        per_day: int = 10_000,
        day_seconds: float = 86_400.0,
        retry_after_header: bool = True,
        access_ttl: int = 3600,
        refresh_grace: float = 0.0,
        shipping_profiles: Iterable[Mapping[str, Any]] | None = None,
        return_policies: Iterable[Mapping[str, Any]] | None = None,
        readiness_states: Iterable[Mapping[str, Any]] | None = None,
        max_image_bytes: int = 20 * 1024 * 1024,
        clock: Callable[[], float] | None = None,
        **faults: Unpack[FaultOptions],
    ) -> None:
        super().__init__(**faults)
        self.keystring = keystring
        self.shared_secret = shared_secret
        self.user_id = user_id
        self.shop_id = shop_id
        self.shop_name = shop_name
        self.currency = currency
        self.redirect_uris = None if redirect_uris is None else frozenset(redirect_uris)
        self.retry_after_header = retry_after_header
        self.access_ttl = access_ttl
        self.refresh_grace = refresh_grace
        self.max_image_bytes = max_image_bytes
        self.client_max_size = max_image_bytes + 1024 * 1024
        self._clock = clock or time.monotonic
        self.second = _Window(per_second, 1.0)
        self.day = _Window(per_day, day_seconds)

        self.shipping_profiles: list[dict[str, Any]] = [
            dict(p)
            for p in (
                shipping_profiles
                if shipping_profiles is not None
                else [
                    {
                        "shipping_profile_id": 234107945503,
                        "title": "POD standard (US)",
                        "origin_country_iso": "US",
                        "min_processing_days": 2,
                        "max_processing_days": 5,
                    }
                ]
            )
        ]
        self.return_policies: list[dict[str, Any]] = [
            dict(p)
            for p in (
                return_policies
                if return_policies is not None
                else [
                    {
                        "return_policy_id": 1098765432,
                        "shop_id": shop_id,
                        "accepts_returns": False,
                        "accepts_exchanges": False,
                        "return_deadline": None,
                    }
                ]
            )
        ]
        self.readiness_states: list[dict[str, Any]] = [
            dict(p)
            for p in (
                readiness_states
                if readiness_states is not None
                else [
                    {
                        "readiness_state_id": 1402336022581,
                        "readiness_state": "made_to_order",
                        "min_processing_time": 2,
                        "max_processing_time": 5,
                        "processing_time_unit": "days",
                    }
                ]
            )
        ]
        self.taxonomy = _default_taxonomy()
        self.properties = _default_properties()

        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, tuple[float, frozenset[str]]] = {}
        self.refresh_tokens: dict[str, _Refresh] = {}
        self.listings: dict[int, dict[str, Any]] = {}
        self.images: dict[int, list[dict[str, Any]]] = {}
        self.inventory: dict[int, dict[str, Any]] = {}

        self.token_grants: Counter[str] = Counter()
        self.creates_per_title: Counter[str] = Counter()
        self.status_429_count = 0
        self.requests: list[dict[str, Any]] = []

        self._invalid_grant = 0
        self._next_id = 1_700_000_000

    # ------------------------------------------------------------------ platform knobs

    def invalid_grant_next(self, n: int = 1) -> None:
        """The next ``n`` token requests fail with ``invalid_grant``."""
        self._invalid_grant += n

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired (as after an hour)."""
        now = self._clock()
        self.access_tokens = {t: (now - 1, s) for t, (_exp, s) in self.access_tokens.items()}

    def revoke_all(self) -> None:
        """Kill every token (as after the seller changes the Etsy password)."""
        self.access_tokens.clear()
        for rt in self.refresh_tokens.values():
            rt.alive = False
            rt.dies_at = None

    def use_up_day(self) -> None:
        """Spend what is left of the day's quota (the next API call gets a 429)."""
        now = self._clock()
        while self.day.take(now) is None:
            pass

    def reset_counters(self) -> None:
        self.request_counts.clear()
        self.token_grants.clear()
        self.creates_per_title.clear()
        self.status_429_count = 0
        self.requests.clear()

    # ------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/oauth/connect", self._connect)
        r.add_post("/v3/public/oauth/token", self._token)
        a = "/v3/application"
        r.add_get(a + "/openapi-ping", self._ping)
        r.add_get(a + "/users/me", self._me)
        r.add_get(a + "/users/{user_id}/shops", self._user_shops)
        r.add_get(a + "/shops/{shop_id}", self._shop_get)
        r.add_get(a + "/shops/{shop_id}/shipping-profiles", self._shipping_profiles)
        r.add_get(a + "/shops/{shop_id}/policies/return", self._return_policies)
        r.add_get(a + "/shops/{shop_id}/readiness-state-definitions", self._readiness)
        r.add_get(a + "/seller-taxonomy/nodes", self._taxonomy)
        r.add_get(a + "/seller-taxonomy/nodes/{taxonomy_id}/properties", self._properties)
        r.add_post(a + "/shops/{shop_id}/listings", self._create_listing)
        r.add_get(a + "/shops/{shop_id}/listings", self._list_listings)
        r.add_patch(a + "/shops/{shop_id}/listings/{listing_id}", self._update_listing)
        r.add_get(a + "/listings/{listing_id}", self._get_listing)
        r.add_delete(a + "/listings/{listing_id}", self._delete_listing)
        r.add_post(a + "/shops/{shop_id}/listings/{listing_id}/images", self._upload_image)
        r.add_get(a + "/listings/{listing_id}/images", self._list_images)
        r.add_get(a + "/listings/{listing_id}/inventory", self._get_inventory)
        r.add_put(a + "/listings/{listing_id}/inventory", self._put_inventory)

    def banner(self) -> str:
        url = self.url
        return (
            f"Etsy sandbox on {url} (x-api-key {self.keystring}:<secret>; shop {self.shop_id}; "
            f"OAuth: {url}/oauth/connect auto-approves, token endpoint {url}/v3/public/oauth/token)"
        )

    # ------------------------------------------------------------------ middleware hooks

    def _rate_headers(self) -> dict[str, str]:
        now = self._clock()
        return {
            "x-limit-per-second": str(self.second.limit),
            "x-remaining-this-second": str(self.second.remaining(now)),
            "x-limit-per-day": str(self.day.limit),
            "x-remaining-today": str(self.day.remaining(now)),
        }

    def error_response(self, status: int) -> web.Response:
        return _error(status, "Server Error", self._rate_headers())

    def too_many(
        self, retry_after: float | None, message: str = "Too many requests."
    ) -> web.Response:
        self.status_429_count += 1
        headers: dict[str, str] = {}
        if retry_after is not None and self.retry_after_header:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return _error(429, message, headers)

    def _check_api_key(self, request: web.Request) -> web.Response | None:
        raw = request.headers.get("x-api-key", "").strip()
        if not raw:
            return _error(403, "Missing x-api-key header.")
        key, sep, secret = raw.partition(":")
        if key != self.keystring:
            return _error(403, _BAD_KEY_MSG)
        if not sep or not secret:
            return _error(403, _SHARED_SECRET_MSG)
        if secret != self.shared_secret:
            return _error(403, "Invalid shared secret in x-api-key header.")
        return None

    def _check_bearer(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        prefix, dot, rest = token.partition(".")
        if scheme.lower() != "bearer" or not prefix.isdigit() or not dot or not rest:
            return _oauth_error("invalid_token", "Missing or malformed access token.", 401)
        entry = self.access_tokens.get(token)
        if entry is None:
            return _oauth_error("invalid_token", "access token is revoked or unknown", 401)
        if entry[0] <= self._clock():
            return _oauth_error("invalid_token", "access token is expired", 401)
        return None

    async def _record(self, request: web.Request, template: str) -> None:
        fields: list[str] = []
        body: Any = None
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            fields = sorted((await request.post()).keys())
        elif ctype == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(await request.read() or b"{}")
                fields = sorted(body) if isinstance(body, dict) else []
        elif ctype == "multipart/form-data":
            fields = sorted((await request.post()).keys())
        self.requests.append(
            {
                "template": template,
                "method": request.method,
                "path": request.path,
                "query": sorted(request.query.keys()),
                "content_type": ctype,
                "fields": fields,
                "json": body,
            }
        )

    def faultable(self, request: web.Request) -> bool:
        return request.path.startswith("/v3/application/")

    async def admit(self, request: web.Request) -> web.StreamResponse | None:
        if not self.faultable(request):
            return None
        await self._record(request, self.template(request))
        return self._check_api_key(request)

    async def limit(self, request: web.Request) -> web.StreamResponse | None:
        now = self._clock()
        wait = self.second.take(now)
        if wait is not None:
            return self.too_many(wait, "Too many requests per second.")
        wait = self.day.take(now)
        if wait is not None:
            return self.too_many(wait, "You have exceeded your daily request quota.")
        if not request.path.endswith("/openapi-ping"):
            denied = self._check_bearer(request)
            if denied is not None:
                denied.headers.update(self._rate_headers())
                return denied
        return None

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._run(request, handler)
        if self.faultable(request) and response.status != 429:
            response.headers.update(self._rate_headers())
        return response

    async def _run(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            exc = request.match_info.http_exception
            return _error(exc.status, "Method not allowed." if exc.status == 405 else "Not found.")
        try:
            return await handler(request)
        except _Reject as rejected:
            return rejected.response
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "The uploaded file is too large.")

    # ------------------------------------------------------------------ OAuth

    def _redirect_allowed(self, uri: str) -> bool:
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != self.keystring:
            return _oauth_error("invalid_client", "Unknown client_id.")
        if not self._redirect_allowed(redirect_uri):
            return _oauth_error("invalid_request", "redirect_uri is not registered for this app.")
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if q.get("code_challenge_method") != "S256":
            problems.append("code_challenge_method must be S256")
        if not q.get("code_challenge"):
            problems.append("code_challenge is required")
        if not q.get("state"):
            problems.append("state is required")
        scopes = frozenset(q.get("scope", "").split())
        unknown = scopes - ALL_SCOPES
        if not scopes or unknown:
            problems.append(f"scope is missing or unknown ({' '.join(sorted(unknown))})")
        if problems:
            return _oauth_error("invalid_request", "; ".join(problems))
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            client_id=self.keystring,
            redirect_uri=redirect_uri,
            challenge=q["code_challenge"],
            scopes=scopes,
            expires_at=self._clock() + 300,
        )
        target = redirect_uri + ("&" if "?" in redirect_uri else "?")
        target += urlencode({"code": code, "state": q["state"]})
        raise web.HTTPFound(target)

    def _issue(self, scopes: frozenset[str]) -> dict[str, Any]:
        access = f"{self.user_id}.{secrets.token_urlsafe(32)}"
        refresh = f"{self.user_id}.{secrets.token_urlsafe(32)}"
        self.access_tokens[access] = (self._clock() + self.access_ttl, scopes)
        self.refresh_tokens[refresh] = _Refresh(scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
        }

    async def _token(self, request: web.Request) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                raw = json.loads(await request.read())
            except ValueError:
                return _oauth_error("invalid_request", "The body is not JSON.")
            form: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        else:
            form = await request.post()
        grant = str(form.get("grant_type", ""))
        self.token_grants[grant] += 1
        if str(form.get("client_id", "")) != self.keystring:
            return _oauth_error("invalid_client", "Unknown client_id.", 401)
        if self._invalid_grant > 0:
            self._invalid_grant -= 1
            return _oauth_error("invalid_grant", "The grant is invalid (injected).")
        now = self._clock()
        if grant == "authorization_code":
            code = self.codes.get(str(form.get("code", "")))
            if code is None or code.used or code.expires_at <= now:
                return _oauth_error("invalid_grant", "code is invalid, used or expired")
            if str(form.get("redirect_uri", "")) != code.redirect_uri:
                return _oauth_error("invalid_grant", "redirect_uri does not match")
            verifier = str(form.get("code_verifier", ""))
            if not 43 <= len(verifier) <= 128 or s256(verifier) != code.challenge:
                return _oauth_error("invalid_grant", "code_verifier is invalid")
            code.used = True
            return web.json_response(self._issue(code.scopes))
        if grant == "refresh_token":
            token = str(form.get("refresh_token", ""))
            entry = self.refresh_tokens.get(token)
            if entry is None:
                return _oauth_error("invalid_grant", "refresh_token is invalid")
            usable = entry.alive or (entry.dies_at is not None and entry.dies_at > now)
            if not usable:
                return _oauth_error("invalid_grant", "refresh_token is revoked")
            entry.alive = False
            entry.dies_at = now + self.refresh_grace if self.refresh_grace > 0 else None
            return web.json_response(self._issue(entry.scopes))
        return _oauth_error("unsupported_grant_type", f"grant_type {grant!r} is not supported")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _int(request: web.Request, name: str) -> int:
        raw = request.match_info[name]
        if not raw.isdigit():
            raise _bad(f"{name} must be an integer.")
        return int(raw)

    def _shop(self, request: web.Request) -> int:
        shop_id = self._int(request, "shop_id")
        if shop_id != self.shop_id:
            raise _bad(f"Shop {shop_id} not found.", 404)
        return shop_id

    def _listing(self, request: web.Request) -> dict[str, Any]:
        listing = self.listings.get(self._int(request, "listing_id"))
        if listing is None or listing["state"] == "removed":
            raise _bad("Listing not found.", 404)
        return listing

    def _new_id(self) -> int:
        self._next_id += 7919
        return self._next_id

    @staticmethod
    def _results(items: list[dict[str, Any]]) -> web.Response:
        return web.json_response({"count": len(items), "results": items})

    def _shop_body(self) -> dict[str, Any]:
        return {
            "shop_id": self.shop_id,
            "user_id": self.user_id,
            "shop_name": self.shop_name,
            "currency_code": self.currency,
            "url": f"https://www.etsy.com/shop/{self.shop_name}",
            "listing_active_count": sum(
                1 for v in self.listings.values() if v["state"] == "active"
            ),
        }

    def _with_includes(self, listing: dict[str, Any], includes: str) -> dict[str, Any]:
        out = dict(listing)
        wanted = {s.strip().lower() for s in includes.split(",") if s.strip()}
        if "inventory" in wanted:
            out["inventory"] = self.inventory.get(listing["listing_id"])
        if "images" in wanted:
            out["images"] = list(self.images.get(listing["listing_id"], []))
        return out

    # ------------------------------------------------------------------ read endpoints

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({"application_id": 987654321})

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response({"user_id": self.user_id, "shop_id": self.shop_id})

    async def _user_shops(self, request: web.Request) -> web.Response:
        if self._int(request, "user_id") != self.user_id:
            raise _bad("User not found.", 404)
        return web.json_response(self._shop_body())

    async def _shop_get(self, request: web.Request) -> web.Response:
        self._shop(request)
        return web.json_response(self._shop_body())

    async def _shipping_profiles(self, request: web.Request) -> web.Response:
        self._shop(request)
        return self._results(self.shipping_profiles)

    async def _return_policies(self, request: web.Request) -> web.Response:
        self._shop(request)
        return self._results(self.return_policies)

    async def _readiness(self, request: web.Request) -> web.Response:
        self._shop(request)
        return self._results(self.readiness_states)

    async def _taxonomy(self, request: web.Request) -> web.Response:
        return self._results(self.taxonomy)

    def _taxonomy_ids(self) -> set[int]:
        ids: set[int] = set()
        stack = list(self.taxonomy)
        while stack:
            node = stack.pop()
            ids.add(int(node["id"]))
            stack.extend(node.get("children") or [])
        return ids

    async def _properties(self, request: web.Request) -> web.Response:
        if self._int(request, "taxonomy_id") not in self._taxonomy_ids():
            raise _bad("Taxonomy node not found.", 404)
        return self._results(self.properties)

    async def _list_listings(self, request: web.Request) -> web.Response:
        self._shop(request)
        q = request.query
        state = q.get("state", "active")
        if state not in STATES:
            raise _bad(f"state must be one of {', '.join(STATES)}.")
        try:
            limit = int(q.get("limit", "25"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            raise _bad("limit and offset must be integers.") from None
        if not 1 <= limit <= 100 or offset < 0:
            raise _bad("limit must be between 1 and 100; offset must not be negative.")
        rows = [v for v in self.listings.values() if v["state"] == state]
        rows.sort(key=lambda v: v["listing_id"], reverse=True)
        page = [
            self._with_includes(v, q.get("includes", "")) for v in rows[offset : offset + limit]
        ]
        return web.json_response({"count": len(rows), "results": page})

    async def _get_listing(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        return web.json_response(self._with_includes(listing, request.query.get("includes", "")))

    async def _delete_listing(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        listing["state"] = "removed"
        return web.Response(status=204)

    async def _list_images(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        return self._results(self.images.get(listing["listing_id"], []))

    async def _get_inventory(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        inv = self.inventory.get(listing["listing_id"])
        if inv is None:
            inv = self._default_inventory(listing)
        return web.json_response(inv)

    # ------------------------------------------------------------------ writes

    @staticmethod
    async def _form(request: web.Request) -> Mapping[str, Any]:
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise _bad("Content-Type must be application/x-www-form-urlencoded.")
        return await request.post()

    @staticmethod
    def _list_field(form: Mapping[str, Any], name: str) -> list[str] | None:
        getall = getattr(form, "getall", None)
        values: list[str] = []
        for key in (name, name + "[]"):
            if getall is not None:
                values.extend(str(v) for v in getall(key, []))
        if not values:
            return None
        if len(values) == 1:
            values = [v.strip() for v in values[0].split(",")]
        return [v for v in values if v != ""]

    @staticmethod
    def _parse_bool(name: str, raw: str) -> bool:
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise _bad(f"{name} must be a boolean.")

    def _check_common(self, form: Mapping[str, Any], out: dict[str, Any]) -> None:
        """Validate the listing fields present in ``form`` into ``out``."""
        if "title" in form:
            title = str(form["title"]).strip()
            problem = _title_problem(title) if title else "title must not be empty."
            if problem:
                raise _bad(problem)
            out["title"] = title
        if "description" in form:
            out["description"] = str(form["description"])
        if "quantity" in form:
            raw = str(form["quantity"])
            if not raw.isdigit() or not 1 <= int(raw) <= 999:
                raise _bad("quantity must be an integer between 1 and 999.")
            out["quantity"] = int(raw)
        if "price" in form:
            try:
                price = float(str(form["price"]))
            except ValueError:
                raise _bad("price must be a number.") from None
            if not math.isfinite(price) or price <= 0:
                raise _bad("price must be greater than 0.")
            if price > 50_000:
                raise _bad("price must be at most 50000.")
            out["price"] = money(price, self.currency)
        if "who_made" in form:
            if str(form["who_made"]) not in WHO_MADE:
                raise _bad(f"who_made must be one of {', '.join(WHO_MADE)}.")
            out["who_made"] = str(form["who_made"])
        if "when_made" in form:
            if str(form["when_made"]) not in WHEN_MADE:
                raise _bad(f"when_made must be one of {', '.join(WHEN_MADE)}.")
            out["when_made"] = str(form["when_made"])
        if "is_supply" in form:
            out["is_supply"] = self._parse_bool("is_supply", str(form["is_supply"]))
        if "taxonomy_id" in form:
            raw = str(form["taxonomy_id"])
            if not raw.isdigit() or int(raw) not in self._taxonomy_ids():
                raise _bad(f"taxonomy_id {raw} is not a seller taxonomy node.")
            out["taxonomy_id"] = int(raw)
        for name, rows, key in (
            ("shipping_profile_id", self.shipping_profiles, "shipping_profile_id"),
            ("return_policy_id", self.return_policies, "return_policy_id"),
            ("readiness_state_id", self.readiness_states, "readiness_state_id"),
        ):
            if name in form:
                raw = str(form[name])
                if not raw.isdigit() or not any(int(raw) == r[key] for r in rows):
                    raise _bad(f"{name} {raw} does not exist in this shop.")
                out[name] = int(raw)
        tags = self._list_field(form, "tags")
        if tags is not None:
            if len(tags) > MAX_TAGS:
                raise _bad(f"tags can have at most {MAX_TAGS} items (got {len(tags)}).")
            for tag in tags:
                problem = _tag_problem(tag)
                if problem:
                    raise _bad(problem)
            out["tags"] = tags
        if "type" in form:
            if str(form["type"]) not in LISTING_TYPES:
                raise _bad(f"type must be one of {', '.join(LISTING_TYPES)}.")
            out["listing_type"] = str(form["type"])

    async def _create_listing(self, request: web.Request) -> web.StreamResponse:
        shop_id = self._shop(request)
        form = await self._form(request)
        missing = [
            f
            for f in ("quantity", "title", "description", "price", "who_made", "when_made")
            if not str(form.get(f, "")).strip()
        ]
        if "taxonomy_id" not in form:
            missing.append("taxonomy_id")
        if missing:
            raise _bad(f"Missing required parameter(s): {', '.join(missing)}.")
        if "is_supply" not in form:
            # The confusing answer Etsy gave when the trio was incomplete (#472, #511).
            raise _Reject(
                web.json_response(
                    [{"path": "/images", "type": "array_too_short", "message": "cannot be "
                      "less than 1 items"}],
                    status=400,
                )
            )  # fmt: skip
        fields: dict[str, Any] = {}
        self._check_common(form, fields)
        listing_type = fields.get("listing_type", "physical")
        if listing_type != "download" and "shipping_profile_id" not in fields:
            raise _bad("A shipping_profile_id is required for physical listings.")
        listing_id = self._new_id()
        now = int(time.time())
        listing: dict[str, Any] = {
            "listing_id": listing_id,
            "user_id": self.user_id,
            "shop_id": shop_id,
            "title": fields["title"],
            "description": fields["description"],
            "state": "draft",
            "quantity": fields["quantity"],
            "url": f"https://www.etsy.com/listing/{listing_id}/sandbox",
            "listing_type": listing_type,
            "tags": fields.get("tags", []),
            "materials": [],
            "shipping_profile_id": fields.get("shipping_profile_id"),
            "return_policy_id": fields.get("return_policy_id"),
            "readiness_state_id": fields.get("readiness_state_id"),
            "taxonomy_id": fields["taxonomy_id"],
            "who_made": fields["who_made"],
            "when_made": fields["when_made"],
            "is_supply": fields["is_supply"],
            "has_variations": False,
            "price": fields["price"],
            "creation_timestamp": now,
            "created_timestamp": now,
            "last_modified_timestamp": now,
            "updated_timestamp": now,
        }
        self.listings[listing_id] = listing
        self.creates_per_title[listing["title"]] += 1
        dropped = await self.commit_fault(request)
        return dropped if dropped is not None else web.json_response(listing, status=201)

    async def _update_listing(self, request: web.Request) -> web.Response:
        self._shop(request)
        listing = self._listing(request)
        form = await self._form(request)
        fields: dict[str, Any] = {}
        self._check_common(form, fields)
        if "state" in form:
            state = str(form["state"])
            if state not in ("active", "inactive"):
                raise _bad("state can only be set to active or inactive.")
            if state == "active" and not self.images.get(listing["listing_id"]):
                raise _bad("A listing needs at least one image before it can be activated.")
            fields["state"] = state
        listing.update(fields)
        listing["last_modified_timestamp"] = listing["updated_timestamp"] = int(time.time())
        return web.json_response(listing)

    async def _upload_image(self, request: web.Request) -> web.Response:
        self._shop(request)
        listing = self._listing(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "multipart/form-data":
            raise _bad("Content-Type must be multipart/form-data.")
        form = await request.post()
        upload = form.get("image")
        images = self.images.setdefault(listing["listing_id"], [])
        if not isinstance(upload, web.FileField):
            raise _bad("Either image or listing_image_id is required.")
        data = upload.file.read()
        if len(data) > self.max_image_bytes:
            raise _bad("The uploaded file is too large.", 413)
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
            raise _bad("The image must be a JPEG or PNG file.")
        alt = str(form.get("alt_text", ""))
        if len(alt) > 500:
            raise _bad("alt_text must be 500 characters or fewer.")
        if len(images) >= MAX_IMAGES:
            raise _bad(f"A listing can have at most {MAX_IMAGES} images.", 409)
        raw_rank = str(form.get("rank", "")) or str(len(images) + 1)
        if not raw_rank.isdigit() or int(raw_rank) < 1:
            raise _bad("rank must be a positive integer.")
        image_id = self._new_id()
        image = {
            "listing_id": listing["listing_id"],
            "listing_image_id": image_id,
            "rank": int(raw_rank),
            "url_fullxfull": f"{self.base_url}/images/{image_id}.jpg",
            "alt_text": alt,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        images.append(image)
        return web.json_response(image, status=201)

    def _default_inventory(self, listing: dict[str, Any]) -> dict[str, Any]:
        return {
            "products": [
                {
                    "product_id": listing["listing_id"] + 1,
                    "sku": "",
                    "is_deleted": False,
                    "property_values": [],
                    "offerings": [
                        {
                            "offering_id": listing["listing_id"] + 2,
                            "quantity": listing["quantity"],
                            "is_enabled": True,
                            "is_deleted": False,
                            "price": listing["price"],
                            "readiness_state_id": listing.get("readiness_state_id"),
                        }
                    ],
                }
            ],
            "price_on_property": [],
            "quantity_on_property": [],
            "sku_on_property": [],
            "readiness_state_on_property": [],
        }

    async def _put_inventory(self, request: web.Request) -> web.Response:
        listing = self._listing(request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _bad("Content-Type must be application/json.")
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise _bad("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _bad("The body must be a JSON object.")
        max_props = 3 if request.query.get("max_variations_supported") == "3" else 2
        inventory = self._check_inventory(body, max_props)
        self.inventory[listing["listing_id"]] = inventory
        prices = [
            p["offerings"][0]["price"]["amount"]
            for p in inventory["products"]
            if p["offerings"][0]["is_enabled"]
        ]
        if prices:
            listing["price"] = {**listing["price"], "amount": min(prices)}
        listing["has_variations"] = any(p["property_values"] for p in inventory["products"])
        return web.json_response(inventory)

    def _check_inventory(self, body: dict[str, Any], max_props: int) -> dict[str, Any]:
        products = body.get("products")
        if not isinstance(products, list) or not products:
            raise _bad("products must be a non-empty array.")
        readiness_ids = {r["readiness_state_id"] for r in self.readiness_states}
        on_price = body.get("price_on_property") or []
        out_products: list[dict[str, Any]] = []
        prop_ids: set[int] = set()
        seen_combos: set[tuple[tuple[int, str], ...]] = set()
        price_by_key: dict[tuple[str, ...], int] = {}
        for i, product in enumerate(products):
            if not isinstance(product, dict):
                raise _bad(f"products[{i}] must be an object.")
            pvs = product.get("property_values") or []
            offerings = product.get("offerings")
            if not isinstance(offerings, list) or len(offerings) != 1:
                raise _bad(f"products[{i}].offerings must hold exactly one offering.")
            offering = offerings[0]
            for key in ("price", "quantity", "is_enabled", "readiness_state_id"):
                if not isinstance(offering, dict) or key not in offering:
                    raise _bad(f"products[{i}].offerings[0].{key} is required.")
            price = offering["price"]
            if isinstance(price, bool) or not isinstance(price, int | float) or price <= 0:
                raise _bad(f"products[{i}]: price must be greater than 0.")
            qty = offering["quantity"]
            if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= 999:
                raise _bad(f"products[{i}]: quantity must be an integer between 0 and 999.")
            if not isinstance(offering["is_enabled"], bool):
                raise _bad(f"products[{i}]: is_enabled must be a boolean.")
            if offering["readiness_state_id"] not in readiness_ids:
                raise _bad(
                    f"products[{i}]: readiness_state_id {offering['readiness_state_id']} "
                    "does not exist in this shop."
                )
            values: dict[int, str] = {}
            clean_pvs = []
            for pv in pvs:
                if not isinstance(pv, dict) or not isinstance(pv.get("property_id"), int):
                    raise _bad(f"products[{i}]: property_values need an integer property_id.")
                vals = pv.get("values")
                if not isinstance(vals, list) or len(vals) != 1 or not isinstance(vals[0], str):
                    raise _bad(f"products[{i}]: each property value needs exactly one value.")
                if "(" in vals[0] or ")" in vals[0]:
                    raise _bad(f"products[{i}]: parentheses are not allowed in {vals[0]!r}.")
                if not isinstance(pv.get("value_ids"), list):
                    raise _bad(f"products[{i}]: value_ids is required.")
                values[pv["property_id"]] = vals[0]
                clean_pvs.append(
                    {
                        "property_id": pv["property_id"],
                        "property_name": pv.get("property_name", ""),
                        "value_ids": pv["value_ids"],
                        "values": vals,
                    }
                )
            prop_ids.update(values)
            combo = tuple(sorted(values.items()))
            if combo in seen_combos:
                raise _bad(f"products[{i}] repeats a property combination.")
            seen_combos.add(combo)
            cents = round(float(price) * 100)
            price_key = tuple(values.get(pid, "") for pid in on_price)
            if price_key in price_by_key and price_by_key[price_key] != cents:
                raise _bad(
                    "Products that share the values of price_on_property must have the same price."
                )
            price_by_key[price_key] = cents
            sku = product.get("sku") or ""
            if not isinstance(sku, str) or len(sku) > 32:
                raise _bad(f"products[{i}]: sku must be a string of at most 32 characters.")
            out_products.append(
                {
                    "product_id": self._new_id(),
                    "sku": sku,
                    "is_deleted": False,
                    "property_values": clean_pvs,
                    "offerings": [
                        {
                            "offering_id": self._new_id(),
                            "quantity": qty,
                            "is_enabled": offering["is_enabled"],
                            "is_deleted": False,
                            "price": money(price, self.currency),
                            "readiness_state_id": offering["readiness_state_id"],
                        }
                    ],
                }
            )
        if len(prop_ids) > max_props:
            raise _bad(f"A listing can vary on at most {max_props} properties.")
        for name in ("price_on_property", "quantity_on_property", "sku_on_property"):
            listed = body.get(name) or []
            if not isinstance(listed, list) or not set(listed) <= prop_ids:
                raise _bad(f"{name} must list properties the products use.")
        if not any(p["offerings"][0]["is_enabled"] for p in out_products):
            raise _bad("At least one offering must be enabled.")
        return {
            "products": out_products,
            "price_on_property": list(on_price),
            "quantity_on_property": list(body.get("quantity_on_property") or []),
            "sku_on_property": list(body.get("sku_on_property") or []),
            "readiness_state_on_property": list(body.get("readiness_state_on_property") or []),
        }


def main(argv: list[str] | None = None) -> None:
    """``python -m pod_studio.sandbox.etsy --port 8792``."""
    parser = command_line("Etsy Open API v3 sandbox", 8792)
    parser.add_argument("--keystring")
    parser.add_argument("--shared-secret")
    parser.add_argument("--per-second", type=int)
    parser.add_argument("--per-day", type=int)
    parser.add_argument("--access-ttl", type=int)
    serve_command(EtsySandbox, parser, argv)


if __name__ == "__main__":
    main()
