"""Adapters layer: the Etsy Open API v3 client (implements ``PublishMarketplace``).

Requests go through the marketplace edge (``adapters.http_edge``: capped reads, the status
ladder in Etsy's words, the redacting request log, masking every secret ``EtsyAuth`` holds,
rotated tokens included); every request runs inside ``CallGuard.call`` (the hub's "etsy"
guard, whose budget is ``EtsyBudget``) and carries ``x-api-key: <keystring>:<shared_secret>``
and ``Authorization: Bearer`` from ``EtsyAuth`` (a 401 ``invalid_token`` triggers one
single-flight refresh and one resend). Every answer's ``x-limit-*``/``x-remaining-*`` headers
are handed to the budget (``observe_response``) and kept for ``remaining_today()``. Replies are
read up to ``max_response_bytes``.

A listing is made in four steps: ``createDraftListing`` (form-encoded), image upload
(multipart: a web-sized preview of the print file, then any mockups), ``updateListingInventory``
(size x colour with prices and SKUs), and, in ``publish()``, ``PATCH state=active``.

Duplicate avoidance (Etsy has no idempotency key, and createDraftListing takes no SKU): the
inventory step writes SKUs ``POD-<hash of idem_key>-<variant id>`` and is the last step of
``create_listing``, so a listing carrying them is complete; ``find_existing`` pages the shop's
listings with their inventory and matches that marker. Before the draft is created the key and
title are noted in a small journal (memory, optionally a JSON file); a retry of the same key
first adopts the draft an interrupted attempt left behind (same title, created after the note)
and finishes it instead of creating a second one.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
import unicodedata
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

from pod_studio.adapters.http_edge import HttpEdge, PlatformWords, json_or_none, redacting
from pod_studio.adapters.marketplaces.etsy_oauth import RECONNECT, EtsyAuth
from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside
from pod_studio.domain.errors import (
    APIError,
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
    RemoteListing,
    Shop,
    VariantPrice,
)
from pod_studio.domain.ports import CallGuard, PassthroughGuard

log = logging.getLogger(__name__)

SERVICE = "etsy"
API = "/v3/application"
UPLOAD_TIMEOUT = httpx.Timeout(connect=5.0, read=90.0, write=120.0, pool=10.0)
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_TITLE_CHARS = 140
MAX_TAGS = 13
MAX_TAG_CHARS = 20
LISTINGS_PAGE = 100
DAY_RECHECK_SECONDS = 3600.0  # when Etsy gives no Retry-After for a spent day quota
SEARCH_STATES = ("draft", "active", "inactive")
ADOPT_SLACK_SECONDS = 300.0
CUSTOM_PROPERTY_IDS = (513, 514)  # Etsy's custom variation properties


class ResponseObserver(Protocol):
    """What the adapter tells its rate budget (``EtsyBudget.observe_response``)."""

    def observe_response(self, headers: Mapping[str, str], body: Any | None = None) -> None: ...


class VariantCatalog(Protocol):
    """Where colour and size names of catalog variants come from (``PrintifyClient``)."""

    async def variants(
        self, blueprint_id: int, provider_id: int, *, show_out_of_stock: bool = False
    ) -> list[CatalogVariant]: ...


class EtsyChoice(BaseModel):
    """One entry of a Settings drop-down (shipping profile, return policy, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: int
    label: str


class _Property(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    property_id: int
    name: str
    values: dict[str, int] = {}  # casefolded value name -> value_id


class _Plan(BaseModel):
    """Everything checked and resolved before the first write."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    form: dict[str, str]
    inventory: dict[str, Any]
    preview: bytes
    preview_name: str
    mockups: tuple[tuple[str, bytes], ...] = ()


def marker_for(idem_key: str) -> str:
    """The SKU prefix that marks every product of the listing created for ``idem_key``."""
    return "POD-" + hashlib.sha256(idem_key.encode("utf-8")).hexdigest()[:12].upper()


def _money_text(price: Decimal) -> str:
    return format(price.quantize(Decimal("0.01")), "f")


@redacting
class EtsyClient:
    """Etsy Open API v3 client. See the module docstring.

    Settings-derived arguments: ``shop_id`` (None: the connected user's shop),
    ``shipping_profile_id`` (required for physical listings), ``return_policy_id``,
    ``readiness_state_id`` (None: the shop's only processing profile, if it has exactly one),
    ``taxonomy_id`` (the Etsy category), ``who_made``/``when_made``/``is_supply``.
    """

    name: str = "etsy"

    def __init__(
        self,
        auth: EtsyAuth,
        *,
        base_url: str = "https://openapi.etsy.com",
        shop_id: int | None = None,
        shipping_profile_id: int | None = None,
        return_policy_id: int | None = None,
        readiness_state_id: int | None = None,
        taxonomy_id: int | None = None,
        who_made: str = "someone_else",
        when_made: str = "made_to_order",
        is_supply: bool = False,
        quantity: int = 999,
        production_partner_ids: Sequence[int] = (),
        catalog: VariantCatalog | None = None,
        guard: CallGuard | None = None,
        budget: ResponseObserver | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        journal_path: Path | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_title_chars: int = MAX_TITLE_CHARS,
        max_price: Decimal = Decimal("50000"),
        preview_max_px: int = 2000,
        user_agent: str = "POD-Studio/0.1",
    ) -> None:
        self._auth = auth
        self._base_url = base_url.rstrip("/")
        self._shop_id = shop_id
        self.shipping_profile_id = shipping_profile_id
        self.return_policy_id = return_policy_id
        self.readiness_state_id = readiness_state_id
        self.taxonomy_id = taxonomy_id
        self.who_made = who_made
        self.when_made = when_made
        self.is_supply = is_supply
        self.quantity = quantity
        self.production_partner_ids = tuple(production_partner_ids)
        self._catalog = catalog
        self._guard: CallGuard = guard or PassthroughGuard()
        self._budget = budget
        self._limits: dict[str, int] = {}
        self._edge = HttpEdge(
            SERVICE,
            EtsyWords(self._limits),
            base_url=self._base_url,
            timeout=timeout,
            transport=transport,
            user_agent=user_agent,
            secrets=auth.known_secrets,
            limit=max_response_bytes,
            retry_after_cap=RETRY_AFTER_CAP,
        )
        self._journal_path = journal_path
        self._journal: dict[str, dict[str, Any]] | None = None
        self._journal_lock = asyncio.Lock()
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._properties: dict[int, list[_Property]] = {}
        self.max_response_bytes = max_response_bytes
        self.max_title_chars = max_title_chars
        self.max_price = max_price
        self.preview_max_px = preview_max_px

    def __repr__(self) -> str:
        return f"EtsyClient(base_url={self._base_url!r}, shop_id={self._shop_id!r})"

    @property
    def shop_id(self) -> int | None:
        return self._shop_id

    @property
    def auth(self) -> EtsyAuth:
        return self._auth

    async def aclose(self) -> None:
        await self._edge.aclose()

    # ------------------------------------------------------------------ transport

    def _observe(self, headers: httpx.Headers) -> None:
        seen = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-")}
        for name in (
            "x-limit-per-second",
            "x-remaining-this-second",
            "x-limit-per-day",
            "x-remaining-today",
        ):
            raw = seen.get(name, "").strip()
            if raw.isdigit():
                self._limits[name] = int(raw)
        if self._budget is not None:
            self._budget.observe_response(seen, None)

    def remaining_today(self) -> int | None:
        """Requests left in Etsy's rolling day, as the last answer reported (None: unknown)."""
        return self._limits.get("x-remaining-today")

    def rate_limits(self) -> dict[str, int]:
        """The last ``x-limit-*`` / ``x-remaining-*`` values Etsy sent."""
        return dict(self._limits)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool = True,
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        not_found: str | None = None,
        request_timeout: httpx.Timeout | None = None,
    ) -> Any:
        async def attempt() -> Any:
            token = await self._auth.access_token()
            for renewed in (False, True):
                headers = {
                    "x-api-key": await self._auth.api_key_header(),
                    "Authorization": f"Bearer {token}",
                }
                response = await self._edge.send(
                    method,
                    path,
                    operation=operation,
                    limit=self.max_response_bytes,
                    params=params,
                    data=dict(form) if form is not None else None,
                    json=json_body,
                    files=dict(files) if files is not None else None,
                    headers=headers,
                    request_timeout=request_timeout,
                )
                self._observe(response.headers)
                if response.status_code == 401 and not renewed and _token_problem(response):
                    token = await self._auth.refresh(stale_access_token=token)
                    continue
                return self._edge.result(response, operation, not_found=not_found)
            raise AssertionError("unreachable")  # pragma: no cover

        return await self._guard.call(operation, attempt, idempotent=idempotent)

    # ------------------------------------------------------------------ shop and settings

    async def _me(self) -> dict[str, Any]:
        raw = await self._request("GET", f"{API}/users/me", operation="get_me")
        if not isinstance(raw, dict) or not isinstance(raw.get("user_id"), int):
            raise _unreadable("user")
        return raw

    async def _shop(self) -> int:
        if self._shop_id is not None:
            return self._shop_id
        me = await self._me()
        shop = me.get("shop_id")
        if not isinstance(shop, int):
            raise ValidationError(
                "the connected Etsy account has no shop",
                service=SERVICE,
                user_message="The connected Etsy account has no shop. Open a shop on Etsy or "
                "connect the account that owns it.",
            )
        self._shop_id = shop
        return shop

    async def shops(self) -> list[Shop]:
        shop = await self._shop()
        raw = await self._request(
            "GET", f"{API}/shops/{shop}", operation="get_shop", not_found=_no_shop(shop)
        )
        try:
            return [Shop(id=str(raw["shop_id"]), title=str(raw["shop_name"]), sales_channel="etsy")]
        except (KeyError, TypeError) as exc:
            raise _unreadable("shop") from exc

    async def _results(self, path: str, operation: str, **params: Any) -> list[dict[str, Any]]:
        raw = await self._request("GET", path, operation=operation, params=params or None)
        rows = raw.get("results") if isinstance(raw, dict) else None
        if not isinstance(rows, list):
            raise _unreadable(operation.replace("_", " "))
        return [r for r in rows if isinstance(r, dict)]

    async def shipping_profiles(self) -> list[EtsyChoice]:
        shop = await self._shop()
        rows = await self._results(f"{API}/shops/{shop}/shipping-profiles", "shipping_profiles")
        return _choices(rows, "shipping_profile_id", lambda r: str(r.get("title") or "untitled"))

    async def return_policies(self) -> list[EtsyChoice]:
        shop = await self._shop()
        rows = await self._results(f"{API}/shops/{shop}/policies/return", "return_policies")

        def label(r: dict[str, Any]) -> str:
            if not r.get("accepts_returns") and not r.get("accepts_exchanges"):
                return "No returns or exchanges"
            what = " and ".join(
                w for w, ok in (("returns", r.get("accepts_returns")),
                                ("exchanges", r.get("accepts_exchanges"))) if ok
            )  # fmt: skip
            days = r.get("return_deadline")
            return f"Accepts {what}" + (f" within {days} days" if days else "")

        return _choices(rows, "return_policy_id", label)

    async def readiness_states(self) -> list[EtsyChoice]:
        shop = await self._shop()
        rows = await self._results(
            f"{API}/shops/{shop}/readiness-state-definitions", "readiness_states", limit=100
        )

        def label(r: dict[str, Any]) -> str:
            state = str(r.get("readiness_state", "")).replace("_", " ")
            lo, hi = r.get("min_processing_time"), r.get("max_processing_time")
            unit = r.get("processing_time_unit") or "days"
            return f"{state.capitalize()}, {lo}-{hi} {unit}" if lo is not None else state

        return _choices(rows, "readiness_state_id", label)

    async def taxonomy_nodes(self) -> list[EtsyChoice]:
        """Every seller-taxonomy node as "Parent > Child" (the category drop-down)."""
        rows = await self._results(f"{API}/seller-taxonomy/nodes", "taxonomy")
        out: list[EtsyChoice] = []

        def walk(nodes: list[Any], trail: tuple[str, ...]) -> None:
            for node in nodes:
                if isinstance(node, dict) and isinstance(node.get("id"), int):
                    path = (*trail, str(node.get("name", "")))
                    out.append(EtsyChoice(id=node["id"], label=" > ".join(path)))
                    walk(node.get("children") or [], path)

        walk(rows, ())
        return out

    async def _variation_properties(self, taxonomy_id: int) -> list[_Property]:
        cached = self._properties.get(taxonomy_id)
        if cached is not None:
            return cached
        rows = await self._results(
            f"{API}/seller-taxonomy/nodes/{taxonomy_id}/properties", "taxonomy_properties"
        )
        props = []
        for r in rows:
            if isinstance(r.get("property_id"), int) and r.get("supports_variations", True):
                values = {
                    str(v.get("name", "")).casefold(): int(v["value_id"])
                    for v in r.get("possible_values") or []
                    if isinstance(v, dict) and isinstance(v.get("value_id"), int)
                }
                props.append(
                    _Property(
                        property_id=r["property_id"], name=str(r.get("name", "")), values=values
                    )
                )
        self._properties[taxonomy_id] = props
        return props

    # ------------------------------------------------------------------ health

    async def check_credentials(self) -> None:
        """The credential pre-flight: one read that proves the app key pair and the OAuth
        tokens work and that the account has a shop. ``AuthenticationError`` for a missing or
        rejected credential, ``ValidationError`` for an account without a shop; a transport
        or server failure raises its own error."""
        await self.shops()

    async def health_check(self) -> tuple[bool, str]:
        """(ok, one line in words). Never raises."""
        try:
            shops = await self.shops()
        except PodStudioError as exc:
            return False, exc.user_message
        left = self.remaining_today()
        limit = self._limits.get("x-limit-per-day")
        quota = f"; {left}/{limit} requests left today" if left is not None and limit else ""
        missing = [
            what
            for what, value in (
                ("shipping profile", self.shipping_profile_id),
                ("category", self.taxonomy_id),
            )
            if value is None
        ]
        todo = (
            f" Choose a {' and a '.join(missing)} in Settings before publishing." if missing else ""
        )
        return True, self._edge.redact(f"Etsy OK: shop {shops[0].title!r}{quota}.{todo}")

    # ------------------------------------------------------------------ listings: reads

    def _to_listing(self, raw: Any) -> RemoteListing:
        try:
            state = str(raw.get("state", ""))
            created = raw.get("created_timestamp") or raw.get("creation_timestamp")
            url = raw.get("url")
            return RemoteListing(
                platform=self.name,
                remote_id=str(int(raw["listing_id"])),
                status=ListingStatus.PUBLISHED if state == "active" else ListingStatus.DRAFT,
                title=str(raw.get("title", "")),
                url=url if isinstance(url, str) and url.startswith("https://") else None,
                external_ids={"state": state, "shop_id": str(raw.get("shop_id", ""))},
                created_at=datetime.fromtimestamp(created, UTC)
                if isinstance(created, int)
                else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _unreadable("listing") from exc

    async def get_listing(self, remote_id: str) -> RemoteListing:
        return self._to_listing(await self._get_raw(remote_id))

    async def _get_raw(self, remote_id: str, includes: str | None = None) -> dict[str, Any]:
        if not str(remote_id).isdigit():
            raise ValidationError(
                f"{remote_id!r} is not an Etsy listing id",
                service=SERVICE,
                user_message=f"{remote_id!r} is not an Etsy listing id.",
            )
        raw = await self._request(
            "GET",
            f"{API}/listings/{remote_id}",
            operation="get_listing",
            params={"includes": includes} if includes else None,
            not_found=f"Etsy listing {remote_id} was not found (deleted?)",
        )
        if not isinstance(raw, dict):
            raise _unreadable("listing")
        return raw

    async def _listings(self, state: str) -> AsyncIterator[dict[str, Any]]:
        shop = await self._shop()
        offset = 0
        while True:
            raw = await self._request(
                "GET",
                f"{API}/shops/{shop}/listings",
                operation="list_listings",
                params={
                    "state": state,
                    "limit": LISTINGS_PAGE,
                    "offset": offset,
                    "includes": "Inventory",
                },
                not_found=_no_shop(shop),
            )
            rows = raw.get("results") if isinstance(raw, dict) else None
            if not isinstance(rows, list):
                raise _unreadable("listing page")
            for row in rows:
                if isinstance(row, dict):
                    yield row
            count = raw.get("count")
            offset += len(rows)
            if (
                not rows
                or len(rows) < LISTINGS_PAGE
                or (isinstance(count, int) and offset >= count)
            ):
                return

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        """The complete listing made for ``idem_key`` (its products carry the marker SKU)."""
        prefix = marker_for(idem_key) + "-"
        for state in SEARCH_STATES:
            async for row in self._listings(state):
                if any(sku.startswith(prefix) for sku in _skus(row)):
                    return self._to_listing(row)
        return None

    # ------------------------------------------------------------------ journal

    async def _journal_entries(self) -> dict[str, dict[str, Any]]:
        if self._journal is None:
            path = self._journal_path
            self._journal = await asyncio.to_thread(_load_journal, path) if path else {}
        return self._journal

    async def _note(self, key: str, **entry: Any) -> None:
        async with self._journal_lock:
            journal = await self._journal_entries()
            if entry:
                journal[key] = {**journal.get(key, {}), **entry}
            else:
                journal.pop(key, None)
            if self._journal_path is not None:
                text = json.dumps(journal, indent=1, sort_keys=True)
                await asyncio.to_thread(atomic_write_text, self._journal_path, text)

    async def _adopt_partial(self, spec: ListingSpec) -> int | None:
        """The draft an interrupted attempt for ``spec.idem_key`` left behind, if any."""
        entry = (await self._journal_entries()).get(spec.idem_key)
        if entry is None:
            return None
        listing_id = entry.get("listing_id")
        if isinstance(listing_id, int):
            try:
                raw = await self._get_raw(str(listing_id))
            except APIError as exc:
                if exc.status_code != 404:
                    raise
                raw = None
            if raw is not None and raw.get("state") != "removed":
                return listing_id
            await self._note(spec.idem_key)
            return None
        started = float(entry.get("started", 0.0))
        title = str(entry.get("title", spec.title))
        best: int | None = None
        async for row in self._listings("draft"):
            created = row.get("created_timestamp") or row.get("creation_timestamp") or 0
            if (
                row.get("title") == title
                and isinstance(created, int)
                and created >= started - ADOPT_SLACK_SECONDS
                and not any(s.startswith("POD-") for s in _skus(row))
                and isinstance(row.get("listing_id"), int)
            ):
                best = row["listing_id"] if best is None else min(best, row["listing_id"])
        if best is not None:
            log.info("etsy: finishing draft %s left by an interrupted attempt", best)
            await self._note(spec.idem_key, listing_id=best)
        return best

    # ------------------------------------------------------------------ create

    async def create_listing(
        self, spec: ListingSpec, *, mockups: Sequence[Path] = ()
    ) -> RemoteListing:
        """Check, then draft -> images -> inventory (the marker SKUs, written last).

        A second call with the same ``idem_key`` after an interruption finishes the draft
        the first one left instead of making another.
        """
        lock = self._key_locks.setdefault(spec.idem_key, asyncio.Lock())
        async with lock:
            plan = await self._plan(spec, mockups)
            shop = await self._shop()
            listing_id = await self._adopt_partial(spec)
            if listing_id is None:
                await self._note(spec.idem_key, title=spec.title, started=time.time())
                try:
                    raw = await self._request(
                        "POST",
                        f"{API}/shops/{shop}/listings",
                        operation="create_draft_listing",
                        idempotent=False,
                        form=plan.form,
                        not_found=_no_shop(shop),
                    )
                except (APIError, ValidationError):
                    await self._note(spec.idem_key)  # refused: nothing was created
                    raise
                listing_id = _listing_id(raw)
                await self._note(spec.idem_key, listing_id=listing_id)
            await self._upload_images(shop, listing_id, plan)
            await self._request(
                "PUT",
                f"{API}/listings/{listing_id}/inventory",
                operation="update_listing_inventory",
                json_body=plan.inventory,
                not_found=f"Etsy listing {listing_id} was not found (deleted?)",
            )
            await self._note(spec.idem_key)
            return await self.get_listing(str(listing_id))

    async def _upload_images(self, shop: int, listing_id: int, plan: _Plan) -> None:
        rows = await self._results(f"{API}/listings/{listing_id}/images", "listing_images")
        have = len(rows)
        wanted = [(plan.preview_name, plan.preview), *plan.mockups]
        for rank, (name, data) in enumerate(wanted, start=1):
            if rank <= have:
                continue  # uploaded by an earlier, interrupted attempt
            mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
            await self._request(
                "POST",
                f"{API}/shops/{shop}/listings/{listing_id}/images",
                operation="upload_listing_image",
                idempotent=False,
                form={"rank": str(rank), "alt_text": Path(name).stem[:500]},
                files={"image": (name, data, mime)},
                request_timeout=UPLOAD_TIMEOUT,
                not_found=f"Etsy listing {listing_id} was not found (deleted?)",
            )

    async def _plan(self, spec: ListingSpec, mockups: Sequence[Path]) -> _Plan:
        problems = self._local_problems(spec)
        readiness = self.readiness_state_id
        if problems:
            raise _validation(problems)
        if readiness is None:
            states = await self.readiness_states()
            if len(states) != 1:
                raise _validation(
                    [
                        "no processing profile (readiness state) is chosen and the shop has "
                        f"{len(states)}: choose one in Settings"
                    ]
                )
            readiness = states[0].id
        assert self.taxonomy_id is not None and self.shipping_profile_id is not None
        labels = await self._labels(spec)
        inventory = await self._inventory(spec, labels, readiness)
        preview, preview_name = await asyncio.to_thread(
            _preview, spec.design_path, spec.design_sha256, self.preview_max_px
        )
        shots = []
        for path in mockups:
            data, name = await asyncio.to_thread(_preview, path, None, self.preview_max_px)
            shots.append((name, data))
        base_price = min(v.price for v in spec.enabled_variants)
        form = {
            "quantity": str(self.quantity),
            "title": spec.title,
            "description": spec.description or spec.title,
            "price": _money_text(base_price),
            "who_made": self.who_made,
            "when_made": self.when_made,
            "is_supply": "true" if self.is_supply else "false",
            "taxonomy_id": str(self.taxonomy_id),
            "type": "physical",
            "shipping_profile_id": str(self.shipping_profile_id),
            "readiness_state_id": str(readiness),
        }
        if self.return_policy_id is not None:
            form["return_policy_id"] = str(self.return_policy_id)
        if spec.tags:
            form["tags"] = ",".join(spec.tags)
        if self.production_partner_ids:
            form["production_partner_ids"] = ",".join(str(i) for i in self.production_partner_ids)
        return _Plan(
            form=form,
            inventory=inventory,
            preview=preview,
            preview_name=preview_name,
            mockups=tuple(shots),
        )

    def _local_problems(self, spec: ListingSpec) -> list[str]:
        problems: list[str] = []
        if len(spec.title) > self.max_title_chars:
            problems.append(
                f"the title is {len(spec.title)} characters; Etsy allows {self.max_title_chars}"
            )
        problems.extend(_title_problems(spec.title))
        if len(spec.tags) > MAX_TAGS:
            problems.append(f"{len(spec.tags)} tags; Etsy allows at most {MAX_TAGS}")
        for tag in spec.tags:
            if len(tag) > MAX_TAG_CHARS:
                problems.append(f"tag {tag!r} is longer than {MAX_TAG_CHARS} characters")
            elif any(not (c.isalnum() or c in " -'™©®") for c in tag):
                problems.append(
                    f"tag {tag!r} has characters Etsy does not allow (letters, digits, spaces, "
                    "- and ' only)"
                )
        for v in spec.variants:
            if v.price <= 0:
                problems.append(f"variant {v.variant_id}: the price must be above 0")
            elif v.price > self.max_price:
                problems.append(
                    f"variant {v.variant_id}: price {v.price} {spec.currency} is above the "
                    f"{self.max_price} limit"
                )
        if self.shipping_profile_id is None:
            problems.append(
                "no shipping profile is chosen (Etsy requires one for physical items): "
                "choose one of the shop's shipping profiles in Settings"
            )
        if self.taxonomy_id is None:
            problems.append("no Etsy category (taxonomy) is chosen: choose one in Settings")
        return problems

    async def _labels(self, spec: ListingSpec) -> dict[int, tuple[str, str]]:
        """variant id -> (colour, size), from the catalog."""
        if len(spec.variants) == 1:
            return {spec.variants[0].variant_id: ("", "")}
        named = {
            vp.variant_id: (vp.options.get("Color", ""), vp.options.get("Size", ""))
            for vp in spec.variants
        }
        if all(c or z for c, z in named.values()):
            return named  # the listing names its own options (the template's colours x sizes)
        if self._catalog is None:
            raise _validation(
                ["Etsy variations need the colour and size names of each variant, and no "
                 "catalog is connected (connect Printify)"]
            )  # fmt: skip
        catalog = await self._catalog.variants(
            spec.blueprint_id, spec.print_provider_id, show_out_of_stock=True
        )
        by_id = {v.id: v for v in catalog}
        out: dict[int, tuple[str, str]] = {}
        problems: list[str] = []
        for vp in spec.variants:
            cv = by_id.get(vp.variant_id)
            if cv is None:
                problems.append(f"variant {vp.variant_id} is not in the catalog")
                continue
            opts = {k.casefold(): v for k, v in cv.options.items()}
            color = opts.get("color") or opts.get("colour") or ""
            size = opts.get("size") or ""
            if not color and not size:
                problems.append(f"variant {cv.title or vp.variant_id} has no colour or size")
            out[vp.variant_id] = (color, size)
        if problems:
            raise _validation(problems)
        return out

    async def _inventory(
        self, spec: ListingSpec, labels: dict[int, tuple[str, str]], readiness: int
    ) -> dict[str, Any]:
        marker = marker_for(spec.idem_key)
        colors = {c for c, _s in labels.values() if c}
        sizes = {s for _c, s in labels.values() if s}
        axes: list[tuple[int, str, int]] = []  # (property_id, name, index in the label)
        if len(colors) > 1 or len(sizes) > 1:
            props = await self._variation_properties(int(self.taxonomy_id or 0))
            size_prop = _find_property(props, ("size",))
            color_prop = _find_property(props, ("primary color", "color", "colour"))
            if len(colors) > 1:
                pid = color_prop.property_id if color_prop else CUSTOM_PROPERTY_IDS[0]
                axes.append((pid, color_prop.name if color_prop else "Color", 0))
            if len(sizes) > 1:
                pid = size_prop.property_id if size_prop else CUSTOM_PROPERTY_IDS[1]
                axes.append((pid, size_prop.name if size_prop else "Size", 1))
            known = {p.property_id: p for p in props}
        else:
            known = {}
        products = []
        seen: dict[tuple[str, ...], int] = {}
        for vp in spec.variants:
            label = labels[vp.variant_id]
            combo = tuple(label[i] for _pid, _n, i in axes)
            if combo in seen:
                raise _validation(
                    [f"variants {seen[combo]} and {vp.variant_id} are the same colour and size"]
                )
            seen[combo] = vp.variant_id
            values = []
            for pid, pname, i in axes:
                value = label[i].replace("(", "").replace(")", "").strip()
                prop = known.get(pid)
                value_id = prop.values.get(value.casefold()) if prop else None
                values.append(
                    {
                        "property_id": pid,
                        "property_name": pname,
                        "value_ids": [value_id] if value_id is not None else [],
                        "values": [value],
                    }
                )
            products.append(
                {
                    "sku": f"{marker}-{vp.variant_id}",
                    "property_values": values,
                    "offerings": [
                        {
                            "price": float(_money_text(vp.price)),
                            "quantity": self.quantity,
                            "is_enabled": vp.enabled,
                            "readiness_state_id": readiness,
                        }
                    ],
                }
            )
        axis_ids = [pid for pid, _n, _i in axes]
        return {
            "products": products,
            "price_on_property": _price_axes(spec.variants, labels, axes),
            "quantity_on_property": [],
            "sku_on_property": axis_ids,
            "readiness_state_on_property": [],
        }

    # ------------------------------------------------------------------ publish

    async def publish(self, listing: RemoteListing) -> RemoteListing:
        """Activate the draft (``PATCH state=active``; Etsy charges the listing fee)."""
        current = await self.get_listing(listing.remote_id)
        if current.status is ListingStatus.PUBLISHED:
            return current
        shop = await self._shop()
        try:
            raw = await self._request(
                "PATCH",
                f"{API}/shops/{shop}/listings/{listing.remote_id}",
                operation="activate_listing",
                idempotent=False,
                form={"state": "active"},
                not_found=f"Etsy listing {listing.remote_id} was not found (deleted?)",
            )
        except (PodTimeoutError, ServiceError):
            after = await self.get_listing(listing.remote_id)
            if after.status is ListingStatus.PUBLISHED:
                return after
            raise
        return self._to_listing(raw)


# ---------------------------------------------------------------------- helpers

# A spent day quota may take up to a day to free up (Etsy's window is a sliding 24 h).
RETRY_AFTER_CAP = 86_400.0


class EtsyWords(PlatformWords):
    """Etsy's words on the status ladder: its 403 reasons (key, shared secret, scope), a
    hint for a refused shipping or processing profile, and its two rate limits (per second
    and per day), told apart by the last ``x-remaining-today`` the client saw (``limits``)."""

    server = "Etsy"
    unauthorized = "Etsy rejected POD Studio's access even after renewing it. " + RECONNECT

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._limits = limits

    def forbidden_text(self, reason: str) -> str:
        lowered = reason.lower()
        if "shared secret" in lowered:
            return (
                "Etsy needs the app's shared secret together with the keystring: enter the "
                "shared secret in Settings."
            )
        if "api key" in lowered or "not active" in lowered:
            return (
                "Etsy does not accept this app key (not approved yet, deactivated, or a typo): "
                "check the keystring in Settings."
            )
        if "scope" in lowered:
            return "POD Studio lacks a permission on Etsy. " + RECONNECT
        return f"Etsy does not allow this: {reason}"

    def rejected_text(self, reason: str) -> str:
        hint = ""
        if "shipping_profile_id" in reason:
            hint = " Choose one of the shop's shipping profiles in Settings."
        elif "readiness_state_id" in reason:
            hint = " Choose one of the shop's processing profiles in Settings."
        return f"Etsy rejected the request: {reason}{hint}"

    def rate_limited(self, where: str, reason: str, wait: float | None) -> RateLimitError:
        day_spent = self._limits.get("x-remaining-today") == 0 or "day" in reason.lower()
        if not day_spent:
            return RateLimitError(
                where,
                retry_after=wait if wait is not None else 1.0,
                service=SERVICE,
                user_message="Etsy asks POD Studio to slow down (too many requests per "
                "second); waiting a moment.",
            )
        retry = wait if wait is not None else DAY_RECHECK_SECONDS
        at = (datetime.now().astimezone() + timedelta(seconds=retry)).strftime("%H:%M")
        return RateLimitError(
            where,
            retry_after=retry,
            service=SERVICE,
            user_message=f"Etsy's daily request quota for this app is used up. Nothing is "
            f"lost: POD Studio tries again when it frees up, in about {_human(retry)} "
            f"(around {at}).",
        )


def _validation(problems: list[str]) -> ValidationError:
    return ValidationError(
        "listing rejected before sending: " + "; ".join(problems),
        details=problems,
        service=SERVICE,
        user_message="Cannot publish to Etsy: " + "; ".join(problems) + ".",
    )


def _unreadable(what: str) -> UpstreamDataError:
    return UpstreamDataError(
        f"Etsy sent a {what} reply we cannot read",
        service=SERVICE,
        user_message=f"Etsy sent an unexpected {what} reply.",
    )


def _no_shop(shop: int) -> str:
    return f"Etsy shop {shop} was not found for this account; check the shop in Settings"


def _listing_id(raw: Any) -> int:
    if isinstance(raw, dict) and isinstance(raw.get("listing_id"), int):
        return int(raw["listing_id"])
    raise _unreadable("new listing")


def _skus(row: Mapping[str, Any]) -> list[str]:
    inventory = row.get("inventory")
    products = inventory.get("products") if isinstance(inventory, dict) else None
    out: list[str] = []
    for p in products or []:
        if isinstance(p, dict) and isinstance(p.get("sku"), str):
            out.append(p["sku"])
    return out


def _choices(rows: list[dict[str, Any]], key: str, label: Any) -> list[EtsyChoice]:
    out = []
    for r in rows:
        if isinstance(r.get(key), int):
            out.append(EtsyChoice(id=r[key], label=str(label(r))))
    return out


def _find_property(props: list[_Property], names: tuple[str, ...]) -> _Property | None:
    for name in names:
        for p in props:
            if p.name.casefold() == name:
                return p
    return None


def _price_axes(
    variants: Sequence[VariantPrice],
    labels: dict[int, tuple[str, str]],
    axes: list[tuple[int, str, int]],
) -> list[int]:
    """The smallest set of variation properties that determines every price."""
    prices = {v.variant_id: v.price for v in variants}
    candidates: list[list[tuple[int, str, int]]] = [[]] + [[a] for a in axes] + [axes]
    for subset in candidates:
        by_key: dict[tuple[str, ...], Decimal] = {}
        if all(
            by_key.setdefault(tuple(labels[vid][i] for _p, _n, i in subset), price) == price
            for vid, price in prices.items()
        ):
            return [pid for pid, _n, _i in subset]
    return [pid for pid, _n, _i in axes]


def _title_problems(title: str) -> list[str]:
    problems = []
    bad = sorted(
        {
            ch
            for ch in title
            if not (
                unicodedata.category(ch)[0] in "LP"
                or unicodedata.category(ch) in ("Nd", "Sm", "Zs")
                or ch in "™©®"
            )
        }
    )
    if bad:
        problems.append(f"the title contains characters Etsy does not allow: {' '.join(bad)}")
    for ch in "%:&+":
        if title.count(ch) > 1:
            problems.append(f"the title may contain {ch} only once")
    return problems


def _token_problem(response: httpx.Response) -> bool:
    """Whether a 401 may be an expired access token (worth one refresh and one resend)."""
    data = json_or_none(response.content)
    return not isinstance(data, dict) or data.get("error") in ("invalid_token", None)


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _preview(path: Path, sha256: str | None, max_px: int) -> tuple[bytes, str]:
    """A JPEG of ``path`` at most ``max_px`` on the long side, transparency on white."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValidationError(
            f"image file {path.name} does not exist",
            service=SERVICE,
            user_message=f"The image file {path} does not exist.",
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"image file {path.name} cannot be read ({type(exc).__name__})",
            service=SERVICE,
            user_message=f"The image file {path} cannot be read.",
        ) from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise _validation(
            [f"design file {path.name} changed since it was approved (its SHA-256 differs)"]
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            work = img.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ValidationError(
            f"{path.name} is not a readable image",
            service=SERVICE,
            user_message=f"The image file {path.name} is not a readable image (PNG or JPEG).",
        ) from None
    work.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", work.size, (255, 255, 255))
    canvas.paste(work, mask=work.getchannel("A"))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90, optimize=True)
    return buf.getvalue(), path.stem + ".jpg"


def _load_journal(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ValueError("not a JSON object of objects")
        return {str(k): dict(v) for k, v in raw.items()}
    except ValueError as exc:
        move_aside(path, f"unreadable Etsy create journal ({type(exc).__name__})")
        return {}
