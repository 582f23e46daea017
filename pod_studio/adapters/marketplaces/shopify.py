"""Adapters layer: the Shopify Admin GraphQL API client (implements ``Marketplace``).

Requests go through the marketplace edge (``adapters.http_edge``: explicit timeouts, capped
reads, the status ladder in Shopify's words, the redacting request log):
``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``. The version is
pinned (``DEFAULT_API_VERSION``, the version whose schema the tests validate every document
against) and configurable. Every request runs
inside ``CallGuard.call`` with an estimated point cost (the last requested cost the server
reported for that operation), and every answer's ``extensions.cost.throttleStatus`` is handed
to ``observe_response`` (the ``ShopifyCostBucket`` of the resilience hub), throttled answers
included.

Tokens: a pasted admin token (``token_provider``), or a Dev Dashboard app's client id and
secret exchanged with the client-credentials grant (``POST /admin/oauth/access_token``); that
token is renewed shortly before it expires, one exchange at a time, and once more after a 401.

Never a duplicate: ``create_listing`` sends one ``productSet`` whose ``identifier`` is a handle
derived from the listing's idempotency key, with the complete desired state (options Color /
Size, variants with prices and SKUs, tags, description, files, status). ``productSet`` with an
identifier is an upsert, so the guard may retry it after a timeout. Media: each local file is
staged (``stagedUploadsCreate``), uploaded to the staged target, registered with
``fileCreate`` and polled until it is READY before the product refers to it.

Shopify's own answers are mapped here: THROTTLED (HTTP 200 or 429) -> retryable
``RateLimitError`` with the wait computed from ``throttleStatus``; ``userErrors`` ->
``ValidationError`` naming the field; GraphQL ``errors`` by their codes; 402 and 423 get their
own message (``ShopifyWords``); every other status goes down the edge's ladder. Bodies are
read up to ``max_response_bytes`` (8 MiB) and no further.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from pod_studio.adapters.http_edge import HttpEdge, PlatformWords, json_or_none, redacting
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    PodStudioError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.marketplace import ListingSpec, ListingStatus, RemoteListing
from pod_studio.domain.ports import CallGuard, PassthroughGuard

log = logging.getLogger(__name__)

SERVICE = "shopify"
DEFAULT_API_VERSION = "2026-07"
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # Shopify's commonly cited image limit
MAX_OPTIONS = 3
MAX_VARIANTS = 2048
ONLINE_STORE = "Online Store"
TOKEN_PATH = "/admin/oauth/access_token"
# Scopes the adapter needs; each entry is satisfied by any of its alternatives (write_x
# includes read_x on Shopify).
REQUIRED_SCOPES: tuple[tuple[str, ...], ...] = (
    ("write_products",),
    ("write_files", "write_images", "write_themes"),
    ("write_publications",),
)

_MYSHOPIFY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_VERSION_RE = re.compile(r"^(\d{4}-\d{2}|unstable)$")
_HANDLE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_DEFAULT_COST = 10.0
_IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)

# --- the GraphQL documents (every one is validated against the real schema in the tests) ---

_PRODUCT_FIELDS = (
    "id handle title status createdAt onlineStoreUrl variantsCount { count } "
    "media(first: 20) { nodes { id status } }"
)


def _product_query(by: str, with_publication: bool) -> str:
    name = "PodProductByHandle" if by == "handle" else "PodProductById"
    params = "$identifier: ProductIdentifierInput!" if by == "handle" else "$id: ID!"
    root = "productByIdentifier(identifier: $identifier)" if by == "handle" else "product(id: $id)"
    extra = ""
    if with_publication:
        name += "OnPublication"
        params += ", $publicationId: ID!"
        extra = " publishedOnPublication(publicationId: $publicationId)"
    return f"query {name}({params}) {{ {root} {{ {_PRODUCT_FIELDS}{extra} }} }}"


Q_SHOP = (
    "query PodShopCheck { shop { name myshopifyDomain currencyCode } "
    "currentAppInstallation { accessScopes { handle } } }"
)
Q_PUBLICATIONS = (
    "query PodPublications { publications(first: 25) { nodes { id catalog { title } } } }"
)
Q_FILE_STATUS = (
    "query PodFileStatus($ids: [ID!]!) { nodes(ids: $ids) { id "
    "... on MediaImage { fileStatus fileErrors { code message details } } } }"
)
M_STAGED_UPLOADS = (
    "mutation PodStagedUploads($input: [StagedUploadInput!]!) { stagedUploadsCreate(input: "
    "$input) { stagedTargets { url resourceUrl parameters { name value } } "
    "userErrors { field message } } }"
)
M_FILE_CREATE = (
    "mutation PodFileCreate($files: [FileCreateInput!]!) { fileCreate(files: $files) { "
    "files { id fileStatus } userErrors { field message code } } }"
)
M_PRODUCT_SET = (
    "mutation PodProductSet($identifier: ProductSetIdentifiers!, $input: ProductSetInput!) { "
    "productSet(identifier: $identifier, input: $input, synchronous: true) { "
    f"product {{ {_PRODUCT_FIELDS} }} userErrors {{ field message code }} }} }}"
)
M_PRODUCT_ACTIVATE = (
    "mutation PodProductActivate($product: ProductUpdateInput!) { productUpdate(product: "
    "$product) { product { id status } userErrors { field message } } }"
)
M_PUBLISH = (
    "mutation PodPublish($id: ID!, $input: [PublicationInput!]!) { publishablePublish(id: $id, "
    "input: $input) { userErrors { field message } } }"
)

ALL_DOCUMENTS: tuple[str, ...] = (
    Q_SHOP,
    Q_PUBLICATIONS,
    Q_FILE_STATUS,
    M_STAGED_UPLOADS,
    M_FILE_CREATE,
    M_PRODUCT_SET,
    M_PRODUCT_ACTIVATE,
    M_PUBLISH,
    *(_product_query(by, pub) for by in ("handle", "id") for pub in (False, True)),
)
"""Every document the client can send (the schema test validates them all)."""

ObserveResponse = Callable[[Mapping[str, str], Any], None]
Sleep = Callable[[float], Awaitable[None]]


def handle_for(idem_key: str) -> str:
    """The product handle for ``idem_key``: the key itself when it is a valid handle (the
    publish service's keys, ``pod-<16 hex>``, are), else ``pod-<hash>``. Depends only on the
    key, so ``find_existing`` can look it up without the listing."""
    key = idem_key.strip().lower()
    if _HANDLE_RE.match(key) and not key.endswith("-"):
        return key
    return "pod-" + hashlib.sha256(idem_key.encode("utf-8")).hexdigest()[:16]


def marker_for(idem_key: str) -> str:
    """The SKU prefix of every variant of the product made for ``idem_key``."""
    return "POD-" + hashlib.sha256(idem_key.encode("utf-8")).hexdigest()[:12].upper()


def check_shop_domain(domain: str) -> str:
    """``<name>.myshopify.com``, lower-cased; anything else raises ``ValidationError``."""
    value = domain.strip().lower()
    if value.startswith(("http://", "https://")):
        value = urlsplit(value).hostname or ""
    if not _MYSHOPIFY_RE.match(value):
        raise ValidationError(
            f"{domain!r} is not a Shopify shop domain",
            details=[f"shop_domain: {domain!r} is not <name>.myshopify.com"],
            service=SERVICE,
            user_message=(
                f"{domain!r} is not a Shopify admin domain. Enter the shop's "
                "<name>.myshopify.com address (Settings > Domains in Shopify shows it), not "
                "the storefront's own domain."
            ),
        )
    return value


def throttle_wait(cost: Mapping[str, Any] | None) -> float | None:
    """Seconds until the requested cost fits: (requested - available) / restore rate."""
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus")
    requested = _number(cost.get("requestedQueryCost"))
    if not isinstance(status, Mapping) or requested is None:
        return None
    available = _number(status.get("currentlyAvailable"))
    rate = _number(status.get("restoreRate"))
    if available is None or rate is None or rate <= 0:
        return None
    wait = max(0.0, (requested - available) / rate)
    return max(0.1, math.ceil(wait * 10) / 10)  # tenths of a second, never zero


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class _IssuedToken:
    value: str
    expires_at: float


@redacting
class ShopifyClient:
    """Shopify Admin GraphQL client. See the module docstring.

    Credentials: ``token_provider`` (a pasted ``shpat_...`` admin token), or ``client_id`` +
    ``client_secret_provider`` (client-credentials grant). ``base_url`` overrides the origin
    ``https://<shop_domain>`` (sandbox, proxies). ``observe_response(headers, body)`` receives
    every GraphQL answer (hand it ``ShopifyCostBucket.observe_response``).
    """

    name: str = "shopify"

    def __init__(
        self,
        shop_domain: str,
        *,
        token_provider: Callable[[], str | None] | None = None,
        client_id: str | None = None,
        client_secret_provider: Callable[[], str | None] | None = None,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        guard: CallGuard | None = None,
        observe_response: ObserveResponse | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "POD-Studio/0.1",
        vendor: str = "",
        product_type: str = "",
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_price: Decimal = Decimal("1000"),
        media_poll_interval: float = 1.0,
        media_max_polls: int = 60,
        token_renew_margin: float = 300.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shop_domain = check_shop_domain(shop_domain)
        if not _VERSION_RE.match(api_version):
            raise ValidationError(
                f"{api_version!r} is not a Shopify API version",
                service=SERVICE,
                user_message=f"{api_version!r} is not a Shopify API version (e.g. 2026-07).",
            )
        if client_id and client_secret_provider is None:
            raise ValueError("client_id needs a client_secret_provider")
        if not client_id and token_provider is None:
            raise ValueError("give token_provider, or client_id and client_secret_provider")
        self.api_version = api_version
        self._token_provider = token_provider
        self._client_id = client_id or None
        self._secret_provider = client_secret_provider
        self._base_url = (base_url or f"https://{self.shop_domain}").rstrip("/")
        self._graphql_path = f"/admin/api/{api_version}/graphql.json"
        self._guard: CallGuard = guard or PassthroughGuard()
        self._observe = observe_response
        self._edge = HttpEdge(
            SERVICE,
            ShopifyWords(),
            base_url=self._base_url,
            timeout=timeout,
            transport=transport,
            user_agent=user_agent,
            secrets=self._secrets,
            limit=max_response_bytes,
            retry_after_cap=3600.0,
        )
        self.vendor = vendor
        self.product_type = product_type
        self.max_response_bytes = max_response_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_price = max_price
        self.media_poll_interval = media_poll_interval
        self.media_max_polls = max(1, media_max_polls)
        self._renew_margin = token_renew_margin
        self._sleep = sleep
        self._clock = clock
        self._issued: _IssuedToken | None = None
        self._token_lock = asyncio.Lock()
        self._costs: dict[str, float] = {}
        self._media: dict[str, str] = {}  # sha256 -> READY file id
        self._media_locks: dict[str, asyncio.Lock] = {}
        self._publication: str | None = None
        self._publication_known = False

    def __repr__(self) -> str:
        mode = "client-credentials" if self._client_id else "admin-token"
        return (
            f"ShopifyClient(shop={self.shop_domain!r}, base_url={self._base_url!r}, "
            f"api_version={self.api_version!r}, auth={mode})"
        )

    async def aclose(self) -> None:
        await self._edge.aclose()

    def _secrets(self) -> tuple[str | None, ...]:
        """What this client holds now: the pasted token, or the app secret and its token."""
        issued = self._issued.value if self._issued is not None else None
        token = self._token_provider() if self._token_provider is not None else None
        secret = self._secret_provider() if self._secret_provider is not None else None
        return token, secret, issued

    # ------------------------------------------------------------------ tokens

    @staticmethod
    def _clean(value: str | None, what: str) -> str:
        text = (value or "").strip()
        if not text:
            raise AuthenticationError(
                f"no Shopify {what} is configured",
                service=SERVICE,
                user_message=f"Add the Shopify {what} in Settings.",
            )
        if not text.isascii() or not text.isprintable() or " " in text:
            raise AuthenticationError(
                f"the Shopify {what} contains characters it cannot have",
                service=SERVICE,
                user_message=f"The Shopify {what} looks damaged; paste it again in Settings.",
            )
        return text

    async def _access_token(self) -> str:
        if self._client_id is None:
            assert self._token_provider is not None
            return self._clean(self._token_provider(), "admin API access token")
        issued = self._issued
        if issued is not None and self._clock() < issued.expires_at:
            return issued.value
        async with self._token_lock:  # one exchange at a time; the others reuse its token
            issued = self._issued
            if issued is not None and self._clock() < issued.expires_at:
                return issued.value
            self._issued = await self._exchange()
            return self._issued.value

    async def _invalidate(self, token: str) -> None:
        async with self._token_lock:
            if self._issued is not None and self._issued.value == token:
                self._issued = None

    async def _exchange(self) -> _IssuedToken:
        """Client-credentials grant: a fresh token (about 24 h), renewed before it expires."""
        assert self._client_id is not None and self._secret_provider is not None
        secret = self._clean(self._secret_provider(), "client secret")
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": secret,
        }
        answer = await self._edge.send(
            "POST",
            TOKEN_PATH,
            operation="token exchange",
            limit=self.max_response_bytes,
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if answer.status_code != 200:
            raise self._edge.status_error(answer, "token exchange", words=TOKEN_EXCHANGE_WORDS)
        body = json_or_none(answer.content)
        try:
            assert isinstance(body, dict)
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or 3600)
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamDataError(
                "token exchange: a reply without an access token",
                service=SERVICE,
                user_message="Shopify sent an unexpected reply to the token request.",
            ) from exc
        margin = min(self._renew_margin, lifetime * 0.1)
        log.info("shopify: new client-credentials token, valid %.0f s", lifetime)
        return _IssuedToken(value=token, expires_at=self._clock() + lifetime - margin)

    # ------------------------------------------------------------------ transport

    async def _graphql(
        self,
        operation: str,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Run one document under the guard; returns ``data`` (GraphQL errors mapped)."""
        payload: dict[str, Any] = {"query": document, "operationName": _op_name(document)}
        if variables:
            payload["variables"] = dict(variables)
        content = json.dumps(payload, separators=(",", ":")).encode("utf-8")

        async def attempt() -> dict[str, Any]:
            token = await self._access_token()
            answer = await self._post_graphql(content, token, operation)
            if answer.status_code == 401 and self._client_id is not None:
                # A revoked or rotated client-credentials token: exchange once more.
                await self._invalidate(token)
                answer = await self._post_graphql(content, await self._access_token(), operation)
            return self._decode(answer, operation)

        cost = self._costs.get(operation, _DEFAULT_COST)
        return await self._guard.call(
            f"shopify.{operation}", attempt, idempotent=idempotent, cost=cost
        )

    async def _post_graphql(self, content: bytes, token: str, operation: str) -> httpx.Response:
        return await self._edge.send(
            "POST",
            self._graphql_path,
            operation=operation,
            limit=self.max_response_bytes,
            content=content,
            headers={"Content-Type": "application/json", "X-Shopify-Access-Token": token},
        )

    def _decode(self, answer: httpx.Response, operation: str) -> dict[str, Any]:
        body = json_or_none(answer.content)
        if isinstance(body, dict):
            if self._observe is not None:
                self._observe(dict(answer.headers), body)
            cost = _extension_cost(body)
            requested = _number(cost.get("requestedQueryCost")) if cost else None
            if requested is not None:
                self._costs[operation] = requested
        status = answer.status_code
        if status == 429 or (status == 200 and _throttled(body)):
            wait = throttle_wait(_extension_cost(body)) if isinstance(body, dict) else None
            if wait is None:
                wait = self._edge.retry_after(answer.headers)
            raise RateLimitError(
                f"{operation}: throttled (HTTP {status})",
                retry_after=wait,
                status_code=status,
                service=SERVICE,
                user_message="Shopify's API limit for this shop is used up for the moment; "
                "waiting for it to refill.",
            )
        if status != 200:
            raise self._edge.status_error(answer, operation)
        if not isinstance(body, dict):
            raise UpstreamDataError(
                f"{operation}: HTTP 200 with a body that is not a JSON object",
                status_code=status,
                service=SERVICE,
                user_message="Shopify sent a garbled reply; it will be tried again.",
            )
        errors = body.get("errors")
        if errors:
            raise _graphql_error(errors, operation)
        data = body.get("data")
        if not isinstance(data, dict):
            raise UpstreamDataError(
                f"{operation}: a reply without data",
                service=SERVICE,
                user_message="Shopify sent an unexpected reply; it will be tried again.",
            )
        return data

    # ------------------------------------------------------------------ health

    async def granted_scopes(self) -> set[str]:
        data = await self._graphql("shop", Q_SHOP)
        return {
            str(s.get("handle"))
            for s in _path(data, "currentAppInstallation", "accessScopes") or []
            if isinstance(s, dict)
        }

    async def _shop_check(self) -> tuple[str, list[str]]:
        """The shop as "'name' (domain)", and the needed access scopes not granted."""
        data = await self._graphql("shop", Q_SHOP)
        shop = data.get("shop") if isinstance(data.get("shop"), dict) else {}
        assert isinstance(shop, dict)
        name = str(shop.get("name") or self.shop_domain)
        granted = {
            str(s.get("handle"))
            for s in _path(data, "currentAppInstallation", "accessScopes") or []
            if isinstance(s, dict)
        }
        missing = [alts[0] for alts in REQUIRED_SCOPES if not granted.intersection(alts)]
        domain = str(shop.get("myshopifyDomain") or self.shop_domain)
        return self._edge.redact(f"{name!r} ({domain})"), missing

    @staticmethod
    def _lacking(shop: str, missing: list[str]) -> str:
        return (
            f"Connected to Shopify shop {shop}, but the app lacks the access scopes "
            f"{', '.join(missing)}: add them to the app and install it again."
        )

    async def check_credentials(self) -> None:
        """The credential pre-flight: one read that proves the token (or the app's client
        credentials) works and carries the access scopes publishing needs.
        ``AuthenticationError`` when it does not; a transport or server failure raises its
        own error."""
        shop, missing = await self._shop_check()
        if missing:
            text = self._lacking(shop, missing)
            raise AuthenticationError(text, service=SERVICE, user_message=text)

    async def health_check(self) -> tuple[bool, str]:
        """One line for the seller: which shop, and which access scopes are missing."""
        try:
            shop, missing = await self._shop_check()
        except PodStudioError as exc:
            self._edge.scrub(exc)
            return False, exc.user_message
        if missing:
            return False, self._lacking(shop, missing)
        return True, f"Shopify OK: shop {shop}, all needed access scopes granted."

    # ------------------------------------------------------------------ reading products

    async def _online_store(self) -> str | None:
        """The Online Store publication id (None when the channel is not installed)."""
        if not self._publication_known:
            data = await self._graphql("publications", Q_PUBLICATIONS)
            found = None
            for node in _path(data, "publications", "nodes") or []:
                title = _path(node, "catalog", "title")
                if isinstance(title, str) and title.strip().casefold() == ONLINE_STORE.casefold():
                    found = str(node.get("id"))
                    break
            self._publication, self._publication_known = found, True
        return self._publication

    async def _read_product(self, *, handle: str | None = None, gid: str | None = None) -> Any:
        by = "handle" if handle is not None else "id"
        try:
            publication = await self._online_store()
        except AuthenticationError:
            publication = None  # no read_publications: the status then says less
        variables: dict[str, Any] = (
            {"identifier": {"handle": handle}} if handle is not None else {"id": gid}
        )
        if publication is not None:
            variables["publicationId"] = publication
        data = await self._graphql(
            "get_product", _product_query(by, publication is not None), variables
        )
        return data.get("productByIdentifier" if by == "handle" else "product")

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        product = await self._read_product(handle=handle_for(idem_key))
        return self._to_listing(product) if isinstance(product, dict) else None

    async def get_listing(self, remote_id: str) -> RemoteListing:
        product = await self._read_product(gid=remote_id)
        if not isinstance(product, dict):
            raise APIError(
                f"Shopify product {remote_id} does not exist",
                status_code=404,
                service=SERVICE,
                user_message=f"The Shopify product {remote_id} no longer exists "
                f"in {self.shop_domain}.",
                retryable=False,
            )
        return self._to_listing(product)

    def _to_listing(self, product: dict[str, Any]) -> RemoteListing:
        try:
            gid = str(product["id"])
            state = str(product.get("status") or "DRAFT")
            published = product.get("publishedOnPublication")
            url = product.get("onlineStoreUrl")
            live = state in ("ACTIVE", "UNLISTED") and (
                published is True or (published is None and bool(url))
            )
            created = product.get("createdAt")
            numeric = gid.rsplit("/", 1)[-1]
            return RemoteListing(
                platform=self.name,
                remote_id=gid,
                status=ListingStatus.PUBLISHED if live else ListingStatus.DRAFT,
                title=str(product.get("title") or ""),
                url=str(url) if isinstance(url, str) and url else None,
                external_ids={
                    "handle": str(product.get("handle") or ""),
                    "status": state,
                    "admin_url": f"https://{self.shop_domain}/admin/products/{numeric}",
                },
                created_at=(
                    datetime.fromisoformat(created.replace("Z", "+00:00"))
                    if isinstance(created, str) and created
                    else None
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamDataError(
                f"a product reply we cannot read ({type(exc).__name__})",
                service=SERVICE,
                user_message="Shopify sent an unexpected product reply.",
            ) from exc

    # ------------------------------------------------------------------ media

    async def upload_media(self, path: Path, alt: str = "") -> str:
        """Stage, upload and register one local image; returns its file id once READY.

        The same content is uploaded once per client (remembered by SHA-256).
        """
        data = await asyncio.to_thread(_read_file, path)
        mime = _image_type(data, path.name)
        if len(data) > self.max_upload_bytes:
            raise _validation(
                [
                    f"{path.name} is {len(data) / 1e6:.1f} MB; Shopify takes images up to "
                    f"{self.max_upload_bytes / 1e6:.0f} MB"
                ]
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._media:
            return self._media[digest]
        lock = self._media_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if digest in self._media:
                return self._media[digest]
            filename = f"{Path(path.name).stem[:60]}-{digest[:10]}{_suffix(mime)}"
            staged = await self._graphql(
                "staged_upload",
                M_STAGED_UPLOADS,
                {
                    "input": [
                        {
                            "filename": filename,
                            "mimeType": mime,
                            "resource": "IMAGE",
                            "httpMethod": "POST",
                            "fileSize": str(len(data)),
                        }
                    ]
                },
            )
            payload = staged.get("stagedUploadsCreate")
            _raise_user_errors(payload, "stagedUploadsCreate")
            target = (_path(payload, "stagedTargets") or [None])[0]
            if not isinstance(target, dict) or not target.get("url"):
                raise UpstreamDataError(
                    "stagedUploadsCreate: no upload target",
                    service=SERVICE,
                    user_message="Shopify gave no place to upload the image to.",
                )
            await self._upload_to_target(target, filename, data, mime)
            created = await self._graphql(
                "file_create",
                M_FILE_CREATE,
                {
                    "files": [
                        {
                            "originalSource": str(target.get("resourceUrl") or target["url"]),
                            "contentType": "IMAGE",
                            "alt": alt[:500],
                            "filename": filename,
                        }
                    ]
                },
                idempotent=False,
            )
            payload = created.get("fileCreate")
            _raise_user_errors(payload, "fileCreate")
            file = (_path(payload, "files") or [None])[0]
            if not isinstance(file, dict) or not file.get("id"):
                raise UpstreamDataError(
                    "fileCreate: no file in the reply",
                    service=SERVICE,
                    user_message="Shopify did not register the uploaded image.",
                )
            file_id = str(file["id"])
            if file.get("fileStatus") != "READY":
                await self._wait_ready(file_id, path.name)
            self._media[digest] = file_id
            return file_id

    async def _upload_to_target(
        self, target: Mapping[str, Any], filename: str, data: bytes, mime: str
    ) -> None:
        url = str(target["url"])
        if urlsplit(url).scheme not in ("http", "https"):
            raise UpstreamDataError(
                "stagedUploadsCreate: the upload target is not an http(s) URL",
                service=SERVICE,
                user_message="Shopify gave an unusable upload address for the image.",
            )
        params = {
            str(p.get("name")): str(p.get("value"))
            for p in target.get("parameters") or []
            if isinstance(p, dict) and p.get("name")
        }

        async def attempt() -> None:
            # No access token here: the target is a storage host, signed by the parameters.
            answer = await self._edge.send(
                "POST",
                url,
                operation="staged upload",
                limit=self.max_response_bytes,
                data=params,
                files={"file": (filename, data, mime)},
                request_timeout=self._edge.upload_timeout,
            )
            if not 200 <= answer.status_code < 300:
                raise self._edge.status_error(answer, "staged upload")

        await self._guard.call("shopify.staged_upload", attempt, idempotent=True, cost=0.0)

    async def _wait_ready(self, file_id: str, name: str) -> None:
        """Poll the file until READY; FAILED is the seller's problem, slowness is retryable."""
        for poll in range(self.media_max_polls):
            if poll:
                await self._sleep(self.media_poll_interval)
            data = await self._graphql("file_status", Q_FILE_STATUS, {"ids": [file_id]})
            node = (data.get("nodes") or [None])[0]
            status = node.get("fileStatus") if isinstance(node, dict) else None
            if status == "READY":
                return
            if status == "FAILED":
                assert isinstance(node, dict)
                reasons = [
                    str(e.get("message") or e.get("code"))
                    for e in node.get("fileErrors") or []
                    if isinstance(e, dict)
                ] or ["Shopify could not process it"]
                raise _validation([f"image {name} was rejected: " + "; ".join(reasons)])
            if node is None:
                raise UpstreamDataError(
                    f"file {file_id} vanished while processing",
                    service=SERVICE,
                    user_message=f"Shopify lost the uploaded image {name}; it will be tried again.",
                )
        raise ServiceError(
            f"file {file_id} still processing after {self.media_max_polls} checks",
            service=SERVICE,
            user_message=f"Shopify is still processing the image {name}; it will be tried again.",
        )

    # ------------------------------------------------------------------ creating

    def _preflight(self, spec: ListingSpec) -> list[str]:
        """Option names in order; raises ``ValidationError`` listing every problem."""
        problems: list[str] = []
        names: list[str] = []
        seen_combos: set[tuple[str, ...]] = set()
        enabled = spec.enabled_variants
        for v in enabled:
            if not v.options:
                problems.append(
                    f"variants.{v.variant_id}.options: no colour/size given for this variant"
                )
                continue
            for key in v.options:
                if key not in names:
                    names.append(key)
        if len(names) > MAX_OPTIONS:
            problems.append(
                f"options: {len(names)} options ({', '.join(names)}); Shopify allows at most "
                f"{MAX_OPTIONS}"
            )
        for v in enabled:
            if not v.options:
                continue
            missing = [n for n in names if not (v.options.get(n) or "").strip()]
            if missing:
                problems.append(
                    f"variants.{v.variant_id}.options: no value for {', '.join(missing)}"
                )
                continue
            combo = tuple(v.options[n].strip() for n in names)
            if combo in seen_combos:
                problems.append(
                    f"variants.{v.variant_id}.options: {' / '.join(combo)} appears twice"
                )
            seen_combos.add(combo)
            if v.price <= 0:
                problems.append(f"variants.{v.variant_id}.price: must be more than 0")
            elif v.price > self.max_price:
                problems.append(
                    f"variants.{v.variant_id}.price: {v.price} {spec.currency} is above the "
                    f"{self.max_price} sanity limit"
                )
        if len(enabled) > MAX_VARIANTS:
            problems.append(f"variants: {len(enabled)}; Shopify allows at most {MAX_VARIANTS}")
        if problems:
            raise _validation(problems)
        return names

    async def _check_design(self, spec: ListingSpec) -> None:
        data = await asyncio.to_thread(_read_file, spec.design_path)
        if hashlib.sha256(data).hexdigest() != spec.design_sha256:
            raise _validation(
                [
                    f"design_path: {spec.design_path.name} changed since it was approved "
                    "(its SHA-256 no longer matches)"
                ]
            )

    def product_input(
        self, spec: ListingSpec, option_names: Sequence[str], file_ids: Sequence[str], status: str
    ) -> dict[str, Any]:
        """The complete desired state of the product (``productSet`` replaces list fields)."""
        marker = marker_for(spec.idem_key)
        values: dict[str, list[str]] = {n: [] for n in option_names}
        variants = []
        for position, v in enumerate(spec.enabled_variants, start=1):
            for n in option_names:
                value = v.options[n].strip()
                if value not in values[n]:
                    values[n].append(value)
            variants.append(
                {
                    "optionValues": [
                        {"optionName": n, "name": v.options[n].strip()} for n in option_names
                    ],
                    "price": str(v.price.quantize(Decimal("0.01"))),
                    "sku": f"{marker}-{v.variant_id}",
                    "position": position,
                    "inventoryPolicy": "CONTINUE",  # printed on demand: never out of stock
                    "inventoryItem": {"tracked": False, "requiresShipping": True},
                }
            )
        data: dict[str, Any] = {
            "title": spec.title,
            "handle": handle_for(spec.idem_key),
            "descriptionHtml": _description_html(spec.description),
            "tags": list(spec.tags),
            "status": status,
            "productOptions": [
                {"name": n, "position": i, "values": [{"name": x} for x in values[n]]}
                for i, n in enumerate(option_names, start=1)
            ],
            "variants": variants,
            "files": [{"id": f} for f in file_ids],
        }
        if self.vendor:
            data["vendor"] = self.vendor
        if self.product_type:
            data["productType"] = self.product_type
        return data

    async def create_listing(self, spec: ListingSpec) -> RemoteListing:
        """Upsert the product for ``spec.idem_key``: a draft, or kept live if it already is."""
        names = self._preflight(spec)
        await self._check_design(spec)
        existing = await self._read_product(handle=handle_for(spec.idem_key))
        status = "DRAFT"
        if isinstance(existing, dict) and existing.get("status") in ("ACTIVE", "UNLISTED"):
            status = str(existing["status"])  # a re-run must not take a live product down
        file_ids = [await self.upload_media(Path(p), alt=spec.title) for p in spec.mockups]
        file_ids.append(await self.upload_media(spec.design_path, alt=spec.title))
        handle = handle_for(spec.idem_key)
        data = await self._graphql(
            "product_set",
            M_PRODUCT_SET,
            {
                "identifier": {"handle": handle},
                "input": self.product_input(spec, names, file_ids, status),
            },
        )
        payload = data.get("productSet")
        _raise_user_errors(payload, "productSet")
        product = _path(payload, "product")
        if not isinstance(product, dict):
            raise UpstreamDataError(
                "productSet: no product in the reply",
                service=SERVICE,
                user_message="Shopify did not return the product; it will be checked again.",
            )
        return self._to_listing(product)

    # ------------------------------------------------------------------ publishing

    async def publish(self, listing: RemoteListing) -> RemoteListing:
        """Set the product ACTIVE and publish it on the Online Store; returns it read back."""
        publication = await self._online_store()
        if publication is None:
            raise ValidationError(
                "the shop has no Online Store publication",
                details=["publication: no Online Store sales channel"],
                service=SERVICE,
                user_message=(
                    f"{self.shop_domain} has no Online Store sales channel; add it in Shopify "
                    "(Settings > Apps and sales channels) to publish products."
                ),
            )
        product = await self._read_product(gid=listing.remote_id)
        if not isinstance(product, dict):
            return await self.get_listing(listing.remote_id)  # raises "no longer exists"
        if product.get("status") not in ("ACTIVE", "UNLISTED"):
            data = await self._graphql(
                "activate",
                M_PRODUCT_ACTIVATE,
                {"product": {"id": listing.remote_id, "status": "ACTIVE"}},
            )
            _raise_user_errors(data.get("productUpdate"), "productUpdate")
        if product.get("publishedOnPublication") is not True:
            data = await self._graphql(
                "publish",
                M_PUBLISH,
                {"id": listing.remote_id, "input": [{"publicationId": publication}]},
            )
            _raise_user_errors(data.get("publishablePublish"), "publishablePublish")
        return await self.get_listing(listing.remote_id)


# ---------------------------------------------------------------------- helpers


def _op_name(document: str) -> str:
    match = re.match(r"\s*(?:query|mutation)\s+(\w+)", document)
    return match.group(1) if match else ""


def _path(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _extension_cost(body: Any) -> dict[str, Any] | None:
    cost = _path(body, "extensions", "cost")
    return cost if isinstance(cost, dict) else None


def _throttled(body: Any) -> bool:
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, list) and any(
        _path(e, "extensions", "code") == "THROTTLED" for e in errors
    )


class ShopifyWords(PlatformWords):
    """Shopify's words on the status ladder, and its 402 (frozen) and 423 (locked) shops."""

    server = "Shopify"
    unauthorized = (
        "Shopify rejected the access token (wrong, revoked or expired). Paste a new admin "
        "API token, or check the app's client id and secret, in Settings."
    )
    forbidden = (
        "The Shopify app is not allowed to do this (an access scope is missing). Add the "
        "scopes write_products, write_files and write_publications to the app and install "
        "it again."
    )
    not_found = (
        "Shopify does not know this shop or API version; check the shop domain and API "
        "version in Settings."
    )
    slow_down = (
        "Shopify's API limit for this shop is used up for the moment; waiting for it to refill."
    )
    special_statuses = {
        402: "The Shopify shop is frozen (its bill is unpaid); pay it in the Shopify admin, "
        "then publish again.",
        423: "The Shopify shop is locked (Shopify locks shops that break its terms or are "
        "being reviewed); contact Shopify support.",
    }

    def special(self, response: httpx.Response, where: str, reason: str) -> PodStudioError | None:
        text = self.special_statuses.get(response.status_code)
        return self.refusal(response, where, text) if text is not None else None


class _TokenExchangeWords(ShopifyWords):
    """The client-credentials grant: a refusal names the app's id and secret."""

    def special(self, response: httpx.Response, where: str, reason: str) -> PodStudioError | None:
        if response.status_code in (400, 401, 403):
            return AuthenticationError(
                f"token exchange refused: HTTP {response.status_code}: {reason}",
                status_code=response.status_code,
                service=SERVICE,
                user_message=(
                    f"Shopify refused the app's client id or secret ({reason}). Check both in "
                    "Settings; the app must be installed on this shop."
                ),
            )
        return super().special(response, where, reason)


TOKEN_EXCHANGE_WORDS = _TokenExchangeWords()


def _graphql_error(errors: Any, operation: str) -> PodStudioError:
    if isinstance(errors, str):
        return APIError(
            f"{operation}: {errors[:300]}",
            service=SERVICE,
            user_message=f"Shopify refused the request: {errors[:300]}",
            retryable=False,
        )
    items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
    codes = {str(_path(e, "extensions", "code") or "") for e in items}
    text = "; ".join(str(e.get("message") or "") for e in items)[:400] or "unknown error"
    where = f"{operation}: {text}"
    if "ACCESS_DENIED" in codes:
        needed = [
            str(_path(e, "extensions", "requiredAccess") or "")
            for e in items
            if _path(e, "extensions", "requiredAccess")
        ]
        scope = f" ({'; '.join(needed)})" if needed else ""
        return AuthenticationError(
            where,
            status_code=200,
            service=SERVICE,
            user_message=f"The Shopify app lacks an access scope{scope}. Add it to the app "
            "and install it again.",
        )
    if codes & {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}:
        return ServiceError(
            where,
            service=SERVICE,
            user_message="Shopify had an internal error; it will be tried again.",
        )
    if "MAX_COST_EXCEEDED" in codes:
        return APIError(
            where,
            service=SERVICE,
            user_message="The request is too large for Shopify's cost limit.",
            retryable=False,
        )
    return APIError(
        where,
        service=SERVICE,
        user_message=f"Shopify did not accept POD Studio's request ({text}). The API "
        "version in Settings may not match this version of POD Studio.",
        retryable=False,
    )


def _raise_user_errors(payload: Any, mutation: str) -> None:
    errors = _path(payload, "userErrors") if isinstance(payload, dict) else None
    if payload is None:
        raise UpstreamDataError(
            f"{mutation}: no result in the reply",
            service=SERVICE,
            user_message="Shopify sent an unexpected reply.",
        )
    if not errors:
        return
    details = []
    for e in errors:
        if not isinstance(e, dict):
            continue
        field = ".".join(str(f) for f in e.get("field") or []) or mutation
        code = f" ({e['code']})" if e.get("code") else ""
        details.append(f"{field}: {e.get('message') or 'invalid'}{code}")
    raise ValidationError(
        f"{mutation} rejected: " + "; ".join(details),
        details=details,
        service=SERVICE,
        user_message="Shopify rejected the product: " + "; ".join(details),
    )


def _validation(problems: list[str]) -> ValidationError:
    return ValidationError(
        "listing rejected before sending: " + "; ".join(problems),
        details=problems,
        service=SERVICE,
        user_message="Cannot publish to Shopify: " + "; ".join(problems),
    )


def _read_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _validation([f"{path.name} does not exist"]) from None
    except OSError as exc:
        raise _validation([f"{path.name} cannot be read ({type(exc).__name__})"]) from exc
    if not data:
        raise _validation([f"{path.name} is empty (0 bytes)"])
    return data


def _image_type(data: bytes, name: str) -> str:
    for magic, mime in _IMAGE_TYPES:
        if data.startswith(magic):
            return mime
    raise _validation([f"{name} is not a PNG or JPEG image"])


def _suffix(mime: str) -> str:
    return ".png" if mime == "image/png" else ".jpg"


def _description_html(text: str) -> str:
    """Plain text as HTML paragraphs (escaped: the seller's text never becomes markup)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
