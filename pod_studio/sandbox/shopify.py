"""Sandbox layer: a local stand-in for the Shopify Admin GraphQL API, with fault injection.

``POST /admin/api/{version}/graphql.json`` for each version in ``versions`` (others: 404),
``X-Shopify-Access-Token`` checked (a wrong or revoked token: 401 whose ``errors`` is a
string), scopes checked per root field (``ACCESS_DENIED`` on HTTP 200, as Shopify does), and
the client-credentials grant on ``POST /admin/oauth/access_token``. Documents are parsed with
graphql-core and answered by a small executor that knows exactly the root fields listed in
``ROOT_FIELDS``; a field it does not model is a GraphQL error, so a client asking for
something new fails here first. Results are projected onto the selection (aliases, inline
fragments on ``__typename``).

Cost: requested cost from the selection (objects 1, connections x ``first``, mutations +10),
a leaky bucket (``capacity``, ``restore_rate`` points/s), ``extensions.cost.throttleStatus``
on every answer, ``THROTTLED`` on HTTP 200 (or ``throttle_status`` 429) when it does not fit.
Media: staged targets on this server (``POST /staged/{key}``, multipart, parameters
checked), ``fileCreate`` -> UPLOADED, then PROCESSING until ``media_ready_after`` status
polls, then READY (or FAILED for a file that is not an image or via ``media_fail_next``).

Faults: the API of ``base.SandboxServer`` (``fail_next`` with an HTTP status, e.g.
402/403/404/423/500; ``rate_limit_next``, ``hang_next``, ``malformed_next``,
``commit_then_timeout_next`` on ``productSet``, ``slow_seconds``, ``fault_rate``, ``pause``) on
GraphQL requests, whose fault key ends with the first root field (``match="productSet"``); and
``throttle_next``, ``media_fail_next``, ``revoke``. Observations: ``request_counts`` (by root
field), ``operations`` (root fields in order), ``graphql_requests`` (documents and variables),
``products``, ``files``, ``token_exchanges``,
``throttled_count``.

Independent of the rest of ``pod_studio``: nothing here imports the adapters or the domain.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, Unpack

from aiohttp import BodyPartReader, web
from graphql import (
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

from pod_studio.sandbox.base import (
    FaultOptions,
    Handler,
    SandboxServer,
    command_line,
    serve_command,
)

ALL_SCOPES = frozenset(
    {"write_products", "read_products", "write_files", "write_publications", "read_publications"}
)
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
# Root field -> scopes any one of which grants it (write_x implies read_x).
ROOT_SCOPES: dict[str, tuple[str, ...]] = {
    "shop": (),
    "currentAppInstallation": (),
    "publications": ("read_publications", "write_publications"),
    "productByIdentifier": ("read_products", "write_products"),
    "product": ("read_products", "write_products"),
    "nodes": (),
    "stagedUploadsCreate": ("write_files", "write_images", "write_products"),
    "fileCreate": ("write_files", "write_images", "write_themes"),
    "productSet": ("write_products",),
    "productUpdate": ("write_products",),
    "publishablePublish": ("write_publications",),
}
_STATUS_TEXT = {
    402: "Unavailable Shop",
    403: "Forbidden",
    404: "Not Found",
    423: "This shop is unavailable",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MISSING = object()


class _Parsed(NamedTuple):
    """A GraphQL request as ``admit`` read it."""

    scopes: frozenset[str]
    variables: dict[str, Any]
    operation: OperationDefinitionNode
    roots: list[FieldNode]

    @property
    def first(self) -> str:
        """The first root field's name (the end of the request's fault key)."""
        return self.roots[0].name.value if self.roots else ""


_PARSED = web.RequestKey("shopify_graphql", _Parsed)


class GqlError(Exception):
    """A GraphQL error for one root field (goes to ``errors[]``, the field becomes null)."""

    def __init__(self, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {**({"code": code} if code else {}), **extra}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_error(field: list[Any], message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"field": [str(f) for f in field], "message": message}
    if code is not None:
        error["code"] = code
    return error


class ShopifySandbox(SandboxServer):
    """A Shopify Admin GraphQL twin on 127.0.0.1. See the module docstring for the knobs.

    ``tokens``: admin tokens (all scopes) or token -> scopes. ``clients``: client id ->
    (secret, scopes) for the client-credentials grant, tokens valid ``token_lifetime`` s.
    """

    title = "Shopify sandbox"

    def __init__(
        self,
        *,
        tokens: Iterable[str] | Mapping[str, Iterable[str]] = ("shpat_sandbox",),
        clients: Mapping[str, tuple[str, Iterable[str]]]
        | Iterable[tuple[str, tuple[str, Iterable[str]]]]
        | None = None,
        shop_name: str = "POD Studio Sandbox",
        shop_domain: str = "pod-studio-sandbox.myshopify.com",
        currency: str = "USD",
        versions: Iterable[str] = ("2026-04", "2026-07", "2026-10"),
        capacity: float = 2000.0,
        restore_rate: float = 100.0,
        throttle_status: int = 200,
        throttle_wait: float = 0.05,
        media_ready_after: int = 1,
        online_store: bool = True,
        token_lifetime: float = 86399.0,
        max_variants: int = 2048,
        clock: Callable[[], float] | None = None,
        **faults: Unpack[FaultOptions],
    ) -> None:
        super().__init__(**faults)
        if isinstance(tokens, Mapping):
            self.tokens: dict[str, frozenset[str]] = {t: frozenset(s) for t, s in tokens.items()}
        else:
            self.tokens = dict.fromkeys(tokens, ALL_SCOPES)
        self.clients = {cid: (sec, frozenset(sc)) for cid, (sec, sc) in dict(clients or {}).items()}
        self.shop_name = shop_name
        self.shop_domain = shop_domain
        self.currency = currency
        self.versions = set(versions)
        self.capacity = capacity
        self.restore_rate = restore_rate
        self.throttle_status = throttle_status
        self.throttle_wait = throttle_wait
        self.media_ready_after = media_ready_after
        self.token_lifetime = token_lifetime
        self.max_variants = max_variants
        self.client_max_size = 64 * 1024 * 1024
        self._clock = clock or time.monotonic
        self._available = capacity
        self._stamp = self._clock()
        self._expiry: dict[str, float] = {}

        self.publications: list[dict[str, Any]] = [
            {"id": "gid://shopify/Publication/2", "title": "Point of Sale"},
        ]
        if online_store:
            self.publications.insert(
                0, {"id": "gid://shopify/Publication/1", "title": "Online Store"}
            )
        self.products: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.staged: dict[str, dict[str, Any]] = {}

        self.operations: list[str] = []
        self.graphql_requests: list[tuple[str, dict[str, Any]]] = []  # (query, variables)
        self.token_exchanges = 0
        self.throttled_count = 0
        self.creates = 0

        self._throttle: list[str | None] = []  # one armed THROTTLED answer: its match
        self._media_fail = 0
        self._ids = itertools.count(1001)

    # ------------------------------------------------------------------ platform knobs

    def throttle_next(self, n: int = 1, *, match: str | None = None) -> None:
        """The next ``n`` GraphQL requests (whose fault key contains ``match``) are THROTTLED
        on HTTP 200 (the bucket says ``throttle_wait`` s)."""
        self._throttle.extend([match] * n)

    def media_fail_next(self, n: int = 1) -> None:
        """The next ``n`` files created end FAILED."""
        self._media_fail += n

    def revoke(self, token: str) -> None:
        """The token stops working (the merchant uninstalled the app or rotated it)."""
        self.tokens.pop(token, None)

    def set_scopes(self, token: str, scopes: Iterable[str]) -> None:
        self.tokens[token] = frozenset(scopes)

    def _throttled(self, key: str) -> bool:
        for index, match in enumerate(self._throttle):
            if match is None or match in key:
                del self._throttle[index]
                return True
        return False

    def product_by_handle(self, handle: str) -> dict[str, Any] | None:
        return next((p for p in self.products.values() if p["handle"] == handle), None)

    # ------------------------------------------------------------------ routes and hooks

    _GRAPHQL = "/admin/api/{version}/graphql.json"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._GRAPHQL, self._graphql)
        app.router.add_post("/admin/oauth/access_token", self._token)
        app.router.add_post("/staged/{key}", self._staged_upload)
        app.router.add_get("/staged/{key}/{filename}", self._staged_get)

    def banner(self) -> str:
        versions = ", ".join(sorted(self.versions))
        return (
            f"Shopify sandbox on {self.url} (shop {self.shop_domain}; tokens: "
            f"{', '.join(sorted(self.tokens))}; API versions {versions})"
        )

    def count_key(self, request: web.Request) -> str | None:
        return None  # counted by root field (``admit``) or by route (the handlers)

    def faultable(self, request: web.Request) -> bool:
        return self.template(request) == "POST " + self._GRAPHQL

    def fault_key(self, request: web.Request) -> str:
        return f"{self.template(request)} {request[_PARSED].first}"

    def error_response(self, status: int) -> web.Response:
        return web.json_response({"errors": _STATUS_TEXT.get(status, "Error")}, status=status)

    def too_many(self, retry_after: float | None) -> web.Response:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:.1f}"}
        body = {
            "errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
            "resume uninterrupted service."
        }
        return web.json_response(body, status=429, headers=headers)

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return web.json_response({"errors": "Not Found"}, status=404)
        return await handler(request)

    async def admit(self, request: web.Request) -> web.StreamResponse | None:
        """Version, token and document: a GraphQL request is parsed before any fault."""
        if not self.faultable(request):
            return None
        if request.match_info["version"] not in self.versions:
            return web.json_response({"errors": "Not Found"}, status=404)
        scopes = self._auth(request)
        if scopes is None:
            self.request_counts["unauthorized"] += 1
            return web.json_response({"errors": INVALID_TOKEN}, status=401)
        try:
            payload = await request.json()
            query = payload["query"]
            variables = payload.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError("query must be a string and variables an object")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"errors": [{"message": f"Bad request: {exc}"}]}, status=400)
        try:
            operation = self._operation(query, payload.get("operationName"))
        except GraphQLError as exc:
            return web.json_response({"errors": [exc.formatted]})
        roots = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
        for root in roots:
            self.request_counts[root.name.value] += 1
        self.graphql_requests.append((query, variables))
        request[_PARSED] = _Parsed(scopes, variables, operation, roots)
        return None

    # ------------------------------------------------------------------ OAuth

    async def _token(self, request: web.Request) -> web.Response:
        self.request_counts["oauth.access_token"] += 1
        if request.content_type == "application/json":
            form: Mapping[str, Any] = await request.json()
        else:
            form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant."},
                status=400,
            )
        client = self.clients.get(str(form.get("client_id") or ""))
        if client is None or not secrets.compare_digest(client[0], str(form.get("client_secret"))):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed."},
                status=401,
            )
        token = "shpat_" + secrets.token_hex(16)
        self.tokens[token] = client[1]
        self._expiry[token] = self._clock() + self.token_lifetime
        self.token_exchanges += 1
        return web.json_response(
            {
                "access_token": token,
                "scope": ",".join(sorted(client[1])),
                "expires_in": int(self.token_lifetime),
            }
        )

    # ------------------------------------------------------------------ staged uploads

    async def _staged_upload(self, request: web.Request) -> web.Response:
        self.request_counts["staged.upload"] += 1
        target = self.staged.get(request.match_info["key"])
        if target is None:
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        reader = await request.multipart()
        fields: dict[str, str] = {}
        data: bytes | None = None
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                if any(k not in fields for k in target["parameters"]):
                    return web.Response(status=400, text="<Error>file before policy</Error>")
                data = bytes(await part.read())
            elif part.name:
                fields[part.name] = await part.text()
        if fields != target["parameters"]:
            return web.Response(
                status=403, text="<Error><Code>SignatureDoesNotMatch</Code></Error>"
            )
        if data is None:
            return web.Response(status=400, text="<Error>no file</Error>")
        target["data"] = data
        return web.Response(status=204)

    async def _staged_get(self, request: web.Request) -> web.Response:
        target = self.staged.get(request.match_info["key"])
        if target is None or target.get("data") is None:
            return web.Response(status=404)
        return web.Response(body=target["data"], content_type=target["mime"])

    # ------------------------------------------------------------------ GraphQL

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(
            self.capacity, self._available + max(0.0, now - self._stamp) * self.restore_rate
        )
        self._stamp = now

    def _cost_block(self, requested: float, actual: float | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": self.capacity,
                    "currentlyAvailable": round(self._available, 3),
                    "restoreRate": self.restore_rate,
                },
            }
        }

    def _auth(self, request: web.Request) -> frozenset[str] | None:
        token = request.headers.get("X-Shopify-Access-Token", "").strip()
        scopes = self.tokens.get(token)
        if scopes is None:
            return None
        expiry = self._expiry.get(token)
        if expiry is not None and self._clock() >= expiry:
            return None
        return scopes

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        parsed = request[_PARSED]
        scopes, variables, operation, roots = parsed
        first = parsed.first
        mutation = operation.operation.value == "mutation"
        requested = float(sum(self._cost(r, variables) + (10 if mutation else 0) for r in roots))
        self._refill()
        forced = self._throttled(self.fault_key(request))
        if forced:
            self._available = min(
                self._available, max(0.0, requested - self.throttle_wait * self.restore_rate)
            )
        if forced or requested > self._available:
            self.throttled_count += 1
            body = {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": self._cost_block(requested, None),
            }
            return web.json_response(body, status=self.throttle_status)
        self._available -= requested
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for root in roots:
            key = root.alias.value if root.alias else root.name.value
            self.operations.append(root.name.value)
            try:
                data[key] = self._resolve_root(root, variables, scopes, mutation)
            except GqlError as exc:
                data[key] = None
                errors.append({"message": exc.message, "path": [key], "extensions": exc.extensions})
        body = {"data": data, "extensions": self._cost_block(requested, requested)}
        if errors:
            body["errors"] = errors
        if mutation and first == "productSet" and not errors:
            dropped = await self.commit_fault(request)
            if dropped is not None:
                return dropped
        return web.json_response(body)

    @staticmethod
    def _operation(query: str, name: Any) -> OperationDefinitionNode:
        document = parse(query)
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(document.definitions) != len(ops):
            raise GraphQLError("Fragments are not supported by this sandbox")
        if name:
            ops = [o for o in ops if o.name is not None and o.name.value == name]
        if len(ops) != 1:
            raise GraphQLError("Exactly one operation (matching operationName) is required")
        if ops[0].operation.value not in ("query", "mutation"):
            raise GraphQLError("Subscriptions are not supported")
        return ops[0]

    def _cost(self, field: FieldNode, variables: Mapping[str, Any]) -> float:
        if field.selection_set is None:
            return 0.0
        args = _args(field, variables)
        size = args.get("first") or args.get("last") or 1
        inner = self._selection_cost(field.selection_set, variables)
        return float(1 + inner) * (size if isinstance(size, int) and size > 0 else 1)

    def _selection_cost(self, selection: SelectionSetNode, variables: Mapping[str, Any]) -> float:
        total = 0.0
        for sel in selection.selections:
            if isinstance(sel, FieldNode):
                total += self._cost(sel, variables)
            elif isinstance(sel, InlineFragmentNode):
                total += self._selection_cost(sel.selection_set, variables)
        return total

    def _resolve_root(
        self,
        root: FieldNode,
        variables: Mapping[str, Any],
        scopes: frozenset[str],
        mutation: bool,
    ) -> Any:
        name = root.name.value
        parent = "Mutation" if mutation else "QueryRoot"
        resolvers = self._mutations() if mutation else self._queries(scopes)
        resolver = resolvers.get(name)
        if resolver is None:
            raise GqlError(
                f"Field '{name}' doesn't exist on type '{parent}'",
                "undefinedField",
                typeName=parent,
                fieldName=name,
            )
        needed = ROOT_SCOPES.get(name, ())
        if needed and not scopes.intersection(needed):
            access = f"`{needed[0]}` access scope."
            raise GqlError(
                f"Access denied for {name} field. Required access: {access}",
                "ACCESS_DENIED",
                documentation="https://shopify.dev/api/usage/access-scopes",
                requiredAccess=access,
            )
        value = resolver(_args(root, variables))
        return _project(value, root.selection_set, variables)

    def _queries(self, scopes: frozenset[str]) -> dict[str, Callable[[dict[str, Any]], Any]]:
        granted = [{"handle": s, "description": s} for s in sorted(scopes)]
        return {
            "shop": self._q_shop,
            "currentAppInstallation": lambda _a: {"accessScopes": granted},
            "publications": self._q_publications,
            "productByIdentifier": self._q_product_by_identifier,
            "product": lambda a: self._product_view(self.products.get(str(a.get("id")))),
            "nodes": self._q_nodes,
        }

    def _mutations(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "stagedUploadsCreate": self._m_staged_uploads,
            "fileCreate": self._m_file_create,
            "productSet": self._m_product_set,
            "productUpdate": self._m_product_update,
            "publishablePublish": self._m_publish,
        }

    # --- queries

    def _q_shop(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.shop_name,
            "myshopifyDomain": self.shop_domain,
            "currencyCode": self.currency,
            "plan": {"displayName": "Basic", "partnerDevelopment": True, "shopifyPlus": False},
        }

    def _q_publications(self, args: dict[str, Any]) -> dict[str, Any]:
        first = int(args.get("first") or 10)
        nodes = [
            {
                "__typename": "Publication",
                "id": p["id"],
                "name": p["title"],
                "autoPublish": False,
                "catalog": {"__typename": "AppCatalog", "id": p["id"] + "/c", "title": p["title"]},
            }
            for p in self.publications[:first]
        ]
        return {"nodes": nodes}

    def _q_product_by_identifier(self, args: dict[str, Any]) -> dict[str, Any] | None:
        ident = args.get("identifier") or {}
        if ident.get("id"):
            return self._product_view(self.products.get(str(ident["id"])))
        if ident.get("handle"):
            return self._product_view(self.product_by_handle(str(ident["handle"])))
        if ident.get("customId"):
            cid = ident["customId"]
            key = (cid.get("namespace") or "$app", cid.get("key"), cid.get("value"))
            found = next((p for p in self.products.values() if p.get("custom_id") == key), None)
            return self._product_view(found)
        raise GqlError("identifier must have one of id, handle or customId", "INVALID_INPUT")

    def _q_nodes(self, args: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for gid in args.get("ids") or []:
            if gid in self.files:
                out.append(self._file_view(self.files[gid], poll=True))
            elif gid in self.products:
                out.append(self._product_view(self.products[gid]))
            else:
                out.append(None)
        return out

    def _file_view(self, file: dict[str, Any], *, poll: bool = False) -> dict[str, Any]:
        if poll and file["status"] in ("UPLOADED", "PROCESSING"):
            file["polls"] += 1
            if file["polls"] >= self.media_ready_after:
                file["status"] = "FAILED" if file["fail"] else "READY"
            else:
                file["status"] = "PROCESSING"
        errors = (
            [
                {
                    "code": "IMAGE_PROCESSING_FAILURE",
                    "message": "Image could not be processed.",
                    "details": None,
                }
            ]
            if file["status"] == "FAILED"
            else []
        )
        ready = file["status"] == "READY"
        return {
            "__typename": "MediaImage",
            "id": file["id"],
            "alt": file["alt"],
            "fileStatus": file["status"],
            "status": {"READY": "READY", "FAILED": "FAILED"}.get(file["status"], "PROCESSING"),
            "fileErrors": errors,
            "mediaErrors": [],
            "createdAt": file["createdAt"],
            "image": {"url": f"{self.base_url}/staged/{file['key']}/{file['filename']}"}
            if ready
            else None,
        }

    def _product_view(self, product: dict[str, Any] | None) -> dict[str, Any] | None:
        if product is None:
            return None
        published = set(product["published"])
        live = product["status"] == "ACTIVE" and "gid://shopify/Publication/1" in published

        def published_on(args: dict[str, Any]) -> bool:
            return str(args.get("publicationId")) in published

        def connection(items: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
            return lambda args: {"nodes": items[: int(args.get("first") or len(items) or 1)]}

        media = [
            {"__typename": "MediaImage", "id": f, "status": self.files[f]["status"]}
            for f in product["files"]
            if f in self.files
        ]
        return {
            "__typename": "Product",
            "id": product["id"],
            "handle": product["handle"],
            "title": product["title"],
            "descriptionHtml": product["descriptionHtml"],
            "status": product["status"],
            "tags": list(product["tags"]),
            "vendor": product["vendor"],
            "productType": product["productType"],
            "createdAt": product["createdAt"],
            "updatedAt": product["updatedAt"],
            "onlineStoreUrl": f"https://{self.shop_domain}/products/{product['handle']}"
            if live
            else None,
            "publishedOnPublication": published_on,
            "variantsCount": {"count": len(product["variants"]), "precision": "EXACT"},
            "variants": connection(product["variants"]),
            "media": connection(media),
            "options": [
                {
                    "id": f"{product['id']}/o{i}",
                    "name": o["name"],
                    "position": i,
                    "values": [v["name"] for v in o["values"]],
                }
                for i, o in enumerate(product["options"], start=1)
            ],
        }

    # --- mutations

    def _m_staged_uploads(self, args: dict[str, Any]) -> dict[str, Any]:
        targets: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(args.get("input") or []):
            filename = str(item.get("filename") or "")
            mime = str(item.get("mimeType") or "")
            if not filename or not mime:
                errors.append(_user_error(["input", i], "filename and mimeType are required"))
                continue
            if item.get("resource") not in ("IMAGE", "FILE", "PRODUCT_IMAGE"):
                errors.append(_user_error(["input", i, "resource"], "Unsupported resource"))
                continue
            if item.get("httpMethod", "PUT") != "POST":
                errors.append(
                    _user_error(["input", i, "httpMethod"], "This sandbox stages POST uploads")
                )
                continue
            key = secrets.token_hex(8)
            params = {
                "Content-Type": mime,
                "success_action_status": "201",
                "acl": "private",
                "key": f"tmp/sandbox/{key}/{filename}",
                "policy": secrets.token_urlsafe(12),
                "x-goog-signature": secrets.token_hex(16),
            }
            self.staged[key] = {"parameters": params, "mime": mime, "filename": filename}
            targets.append(
                {
                    "url": f"{self.base_url}/staged/{key}",
                    "resourceUrl": f"{self.base_url}/staged/{key}/{filename}",
                    "parameters": [{"name": k, "value": v} for k, v in params.items()],
                }
            )
        return {"stagedTargets": targets if not errors else None, "userErrors": errors}

    def _m_file_create(self, args: dict[str, Any]) -> dict[str, Any]:
        created: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        prefix = f"{self.base_url}/staged/"
        for i, item in enumerate(args.get("files") or []):
            source = str(item.get("originalSource") or "")
            if not source:
                errors.append(
                    _user_error(
                        ["files", i, "originalSource"], "Original source is required", "REQUIRED"
                    )
                )
                continue
            key = source[len(prefix) :].split("/", 1)[0] if source.startswith(prefix) else ""
            staged = self.staged.get(key)
            data = staged.get("data") if staged else None
            fail = data is None or not data.startswith((b"\x89PNG", b"\xff\xd8\xff"))
            if self._media_fail > 0:
                self._media_fail -= 1
                fail = True
            gid = f"gid://shopify/MediaImage/{next(self._ids)}"
            self.files[gid] = {
                "id": gid,
                "key": key,
                "filename": item.get("filename") or (staged or {}).get("filename") or "file",
                "alt": item.get("alt") or "",
                "status": "UPLOADED",
                "polls": 0,
                "fail": fail,
                "createdAt": _now(),
            }
            created.append(self._file_view(self.files[gid]))
        return {"files": created if not errors else None, "userErrors": errors}

    def _m_product_set(self, args: dict[str, Any]) -> dict[str, Any]:
        data = args.get("input") or {}
        ident = args.get("identifier") or None
        errors: list[dict[str, Any]] = []
        product: dict[str, Any] | None = None
        if ident:
            if len([k for k, v in ident.items() if v]) != 1:
                errors.append(
                    _user_error(["identifier"], "Provide exactly one identifier", "INVALID_INPUT")
                )
            elif ident.get("id"):
                product = self.products.get(str(ident["id"]))
                if product is None:
                    errors.append(
                        _user_error(
                            ["identifier", "id"], "Product does not exist", "PRODUCT_DOES_NOT_EXIST"
                        )
                    )
            elif ident.get("handle"):
                product = self.product_by_handle(str(ident["handle"]))
            else:
                cid = ident["customId"]
                key = (cid.get("namespace") or "$app", cid.get("key"), cid.get("value"))
                product = next(
                    (p for p in self.products.values() if p.get("custom_id") == key), None
                )
        handle = data.get("handle") or (ident or {}).get("handle")
        if handle:
            other = self.product_by_handle(str(handle))
            if other is not None and other is not product:
                errors.append(
                    _user_error(
                        ["input", "handle"],
                        f"Handle '{handle}' already in use. Please provide a new handle.",
                        "HANDLE_NOT_UNIQUE",
                    )
                )
        errors += self._check_product_input(data, product)
        if errors:
            return {"product": None, "productSetOperation": None, "userErrors": errors}
        now = _now()
        if product is None:
            gid = f"gid://shopify/Product/{next(self._ids)}"
            title = str(data.get("title") or "")
            product = {
                "id": gid,
                "handle": str(handle or _slug(title) or gid.rsplit("/", 1)[-1]),
                "title": title,
                "descriptionHtml": "",
                "status": "ACTIVE",
                "tags": [],
                "vendor": self.shop_name,
                "productType": "",
                "createdAt": now,
                "options": [],
                "variants": [],
                "files": [],
                "published": set(),
                "custom_id": None,
            }
            self.products[gid] = product
            self.creates += 1
        for field in ("title", "descriptionHtml", "status", "tags", "vendor", "productType"):
            if field in data and data[field] is not None:
                product[field] = list(data[field]) if field == "tags" else data[field]
        if handle:
            product["handle"] = str(handle)
        if ident and ident.get("customId"):
            cid = ident["customId"]
            product["custom_id"] = (
                cid.get("namespace") or "$app",
                cid.get("key"),
                cid.get("value"),
            )
        if "productOptions" in data:
            product["options"] = [
                {"name": o["name"], "values": [{"name": v["name"]} for v in o.get("values") or []]}
                for o in data["productOptions"] or []
            ]
        if "variants" in data:  # a list field: what is not sent is deleted
            product["variants"] = [
                {
                    "__typename": "ProductVariant",
                    "id": f"gid://shopify/ProductVariant/{next(self._ids)}",
                    "sku": v.get("sku"),
                    "price": str(Decimal(str(v.get("price") or "0")).quantize(Decimal("0.01"))),
                    "title": " / ".join(o["name"] for o in v["optionValues"]),
                    "selectedOptions": [
                        {"name": o["optionName"], "value": o["name"]} for o in v["optionValues"]
                    ],
                    "inventoryPolicy": v.get("inventoryPolicy") or "DENY",
                }
                for v in data["variants"] or []
            ]
        if "files" in data:
            product["files"] = [str(f.get("id")) for f in data["files"] or [] if f.get("id")]
        product["updatedAt"] = now
        return {
            "product": self._product_view(product),
            "productSetOperation": None,
            "userErrors": [],
        }

    def _check_product_input(
        self, data: Mapping[str, Any], product: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        if product is None and not data.get("title"):
            errors.append(_user_error(["input", "title"], "Title can't be blank", "INVALID_INPUT"))
        if data.get("status") not in (None, "ACTIVE", "DRAFT", "ARCHIVED", "UNLISTED"):
            errors.append(_user_error(["input", "status"], "Invalid status", "INVALID_INPUT"))
        options = data.get("productOptions") or []
        if len(options) > 3:
            errors.append(
                _user_error(
                    ["input", "productOptions"],
                    "Can only specify a maximum of 3 options",
                    "OPTIONS_OVER_LIMIT",
                )
            )
            return errors
        declared = {o.get("name"): {v.get("name") for v in o.get("values") or []} for o in options}
        variants = data.get("variants") or []
        if options and "variants" in data and not variants:
            errors.append(
                _user_error(
                    ["input", "variants"], "Variants input is missing", "VARIANTS_INPUT_MISSING"
                )
            )
        if len(variants) > self.max_variants:
            errors.append(
                _user_error(
                    ["input", "variants"],
                    f"Exceeded the maximum of {self.max_variants} variants",
                    "VARIANTS_OVER_LIMIT",
                )
            )
        seen: set[tuple[tuple[str, str], ...]] = set()
        for i, v in enumerate(variants):
            values = v.get("optionValues") or []
            names = [o.get("optionName") for o in values]
            if sorted(n for n in names if n) != sorted(declared):
                errors.append(
                    _user_error(
                        ["input", "variants", i, "optionValues"],
                        "Option values must be provided for every option",
                        "OPTION_VALUES_MISSING",
                    )
                )
                continue
            for o in values:
                if o.get("name") not in declared.get(o.get("optionName"), set()):
                    errors.append(
                        _user_error(
                            ["input", "variants", i, "optionValues"],
                            f"Option value '{o.get('name')}' does not exist",
                            "OPTION_VALUE_DOES_NOT_EXIST",
                        )
                    )
            combo = tuple(sorted((str(o.get("optionName")), str(o.get("name"))) for o in values))
            if combo in seen:
                errors.append(
                    _user_error(
                        ["input", "variants", i],
                        "The variant already exists",
                        "DUPLICATED_OPTION_VALUE",
                    )
                )
            seen.add(combo)
            try:
                price = Decimal(str(v.get("price") if v.get("price") is not None else "0"))
                if not price.is_finite() or price < 0:
                    raise InvalidOperation
            except InvalidOperation:
                errors.append(
                    _user_error(
                        ["input", "variants", i, "price"],
                        "Price must be a non-negative amount",
                        "INVALID_INPUT",
                    )
                )
        for i, f in enumerate(data.get("files") or []):
            fid = f.get("id")
            if fid is not None and fid not in self.files:
                errors.append(
                    _user_error(["input", "files", i, "id"], "File does not exist", "INVALID_INPUT")
                )
        return errors

    def _m_product_update(self, args: dict[str, Any]) -> dict[str, Any]:
        data = args.get("product") or args.get("input") or {}
        product = self.products.get(str(data.get("id")))
        if product is None:
            return {"product": None, "userErrors": [_user_error(["id"], "Product does not exist")]}
        if data.get("status") not in (None, "ACTIVE", "DRAFT", "ARCHIVED", "UNLISTED"):
            return {"product": None, "userErrors": [_user_error(["status"], "Invalid status")]}
        for field in ("title", "status", "descriptionHtml"):
            if data.get(field) is not None:
                product[field] = data[field]
        product["updatedAt"] = _now()
        return {"product": self._product_view(product), "userErrors": []}

    def _m_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        product = self.products.get(str(args.get("id")))
        if product is None:
            return {
                "publishable": None,
                "shop": self._q_shop({}),
                "userErrors": [_user_error(["id"], "Resource does not exist")],
            }
        known = {p["id"] for p in self.publications}
        errors = []
        for i, item in enumerate(args.get("input") or []):
            pid = item.get("publicationId")
            if pid not in known:
                errors.append(
                    _user_error(["input", i, "publicationId"], "Publication does not exist")
                )
                continue
            product["published"].add(pid)
        return {
            "publishable": self._product_view(product),
            "shop": self._q_shop({}),
            "userErrors": errors,
        }


def _args(field: FieldNode, variables: Mapping[str, Any]) -> dict[str, Any]:
    return {
        a.name.value: value_from_ast_untyped(a.value, dict(variables))
        for a in field.arguments or ()
    }


def _project(value: Any, selection: SelectionSetNode | None, variables: Mapping[str, Any]) -> Any:
    """Shape a resolved value like the selection asks (aliases, inline fragments)."""
    if value is None or selection is None:
        return value
    if isinstance(value, list):
        return [_project(v, selection, variables) for v in value]
    if not isinstance(value, dict):
        raise GqlError("Selections can't be made on scalars", "selectionMismatch")
    out: dict[str, Any] = {}
    typename = value.get("__typename", "")
    for sel in _fields(selection, typename):
        name = sel.name.value
        key = sel.alias.value if sel.alias else name
        if name == "__typename":
            out[key] = typename
            continue
        raw = value.get(name, _MISSING)
        if raw is _MISSING:
            raise GqlError(
                f"Field '{name}' doesn't exist on type '{typename or 'Object'}'",
                "undefinedField",
                fieldName=name,
            )
        if callable(raw):
            raw = raw(_args(sel, variables))
        out[key] = _project(raw, sel.selection_set, variables)
    return out


def _fields(selection: SelectionSetNode, typename: str) -> list[FieldNode]:
    found: list[FieldNode] = []
    for sel in selection.selections:
        if isinstance(sel, FieldNode):
            found.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            condition = sel.type_condition.name.value if sel.type_condition else None
            if (
                condition is None
                or condition == typename
                or condition in _INTERFACES.get(typename, ())
            ):
                found.extend(_fields(sel.selection_set, typename))
    return found


_INTERFACES: dict[str, tuple[str, ...]] = {
    "MediaImage": ("Node", "File", "Media"),
    "Product": ("Node", "Publishable"),
    "ProductVariant": ("Node",),
}


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(p for p in out.split("-") if p)[:100]


def main(argv: list[str] | None = None) -> None:
    """``python -m pod_studio.sandbox.shopify --port 8791``."""
    parser = command_line("Shopify Admin GraphQL API sandbox", 8791)
    parser.add_argument("--token", dest="tokens", action="append")
    parser.add_argument(
        "--client",
        dest="clients",
        action="append",
        type=_client_option,
        metavar="ID:SECRET",
        help="a client-credentials app (all scopes)",
    )
    parser.add_argument("--capacity", type=float)
    parser.add_argument("--restore-rate", type=float)
    parser.add_argument("--media-ready-after", type=int)
    serve_command(ShopifySandbox, parser, argv)


def _client_option(text: str) -> tuple[str, tuple[str, frozenset[str]]]:
    cid, _, secret = text.partition(":")
    if not cid or not secret:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ID:SECRET")
    return cid, (secret, ALL_SCOPES)


if __name__ == "__main__":
    main()
