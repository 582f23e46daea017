"""The marketplace HTTP edge, proven the same on every platform: one table of hostile answers
(an HTML error page, garbage JSON, 401, 403, 404, 422, 429 with and without ``Retry-After``,
a body over the cap, a dropped connection, a server echoing the credentials) is played by a
tiny aiohttp server on 127.0.0.1 to the Printify, Shopify and Etsy clients' credential
pre-flight (``check_credentials``). Each platform must end in the same class of outcome (error
type, retryable, ``retry_after`` where the server gave one), and no secret the client holds
may appear in any message, exception, log record or file.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from pod_studio.adapters.marketplaces.etsy import EtsyClient
from pod_studio.adapters.marketplaces.etsy_oauth import EtsyAuth
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.adapters.marketplaces.shopify import ShopifyClient
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    PodStudioError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.settings import SecretName

pytestmark = pytest.mark.timeout(120)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CAP = 64 * 1024
PRINTIFY_TOKEN = "pfy-EDGE-secret-1f2e3d4c5b6a"
SHOPIFY_TOKEN = "shpat_EDGE_secret_9a8b7c6d5e4f"
ETSY_KEY, ETSY_SHARED = "edgekeystring77", "EDGE-shared-secret-5c4d"
ETSY_ACCESS, ETSY_REFRESH = "12345.EDGE-access-7e6f5a4b", "12345.EDGE-refresh-3c2d1e0f"
SECRETS = (PRINTIFY_TOKEN, SHOPIFY_TOKEN, ETSY_KEY, ETSY_SHARED, ETSY_ACCESS, ETSY_REFRESH)
HTML = "<!doctype html><html><head><title>Bad Gateway</title></head><body>nginx</body></html>"
PLATFORMS = ("printify", "shopify", "etsy")


class HostileServer:
    """Answers every request with ``answer`` and records the headers it was sent."""

    def __init__(self) -> None:
        self.answer: Handler = _json(200, {})
        self.seen: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        return await self.answer(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# --- the hostile answers --------------------------------------------------------------------


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handler


def _refusal(status: int, text: str, headers: dict[str, str] | None = None) -> Handler:
    """The same refusal in every platform's shape (Printify ``errors.reason``, Shopify
    ``errors``, Etsy ``error``)."""
    return _json(status, {"error": text, "errors": text, "message": text}, headers)


def _html(status: int) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=HTML, content_type="text/html")

    return handler


def _garbage(_status: int = 200) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"shops": [{"id": 1, "title": ', content_type="application/json")

    return handler


def _endless(declare: bool) -> Handler:
    """200 with a body far over the cap: announced (``Content-Length``) or streamed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declare:
            response.content_length = 50 * CAP
        await response.prepare(request)
        try:
            for _ in range(50):
                await response.write(b" " * CAP)
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading: what it should do
        return response

    return handler


async def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer."""
    assert request.transport is not None
    request.transport.close()
    return web.Response()


def _echo(status: int, content_type: str = "application/json") -> Handler:
    """Reflect every header the client sent, and each credential value bare, into the body:
    what a debugging proxy or a careless API does."""

    async def handler(request: web.Request) -> web.StreamResponse:
        sent = dict(request.headers)
        bare = " ".join(
            v.split(" ", 1)[-1]
            for k, v in sent.items()
            if k.lower() in ("authorization", "x-api-key", "x-shopify-access-token")
        )
        text = f"bad request {bare} headers={json.dumps(sent)}"
        if content_type == "text/plain":
            return web.Response(status=status, text=text)
        return web.json_response(
            {"error": text, "error_description": bare, "errors": text, "message": text},
            status=status,
        )

    return handler


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


NO_WAIT = object()  # the expected retry_after is the platform's own default (below)
DEFAULT_WAIT = {"printify": None, "shopify": None, "etsy": 1.0}  # Etsy: its 1 s QPS window


@dataclass(frozen=True)
class Case:
    name: str
    answer: Callable[[], Handler]
    kind: type[PodStudioError]
    retryable: bool
    retry_after: Any = None  # a number (approx), NO_WAIT, or None (not checked)
    masked: bool = False  # the answer quotes the credentials: the message must show ***


CASES = [
    Case("html error page", lambda: _html(502), ServiceError, True),
    Case("html on 200", lambda: _html(200), UpstreamDataError, True),
    Case("garbage json", _garbage, UpstreamDataError, True),
    Case("401", lambda: _refusal(401, "Unauthenticated."), AuthenticationError, False),
    Case("403", lambda: _refusal(403, "Forbidden."), AuthenticationError, False),
    Case("404", lambda: _refusal(404, "Not Found."), APIError, False),
    Case("422", lambda: _refusal(422, "title is too long"), ValidationError, False),
    Case(
        "429 retry-after seconds",
        lambda: _refusal(429, "Too many requests", {"Retry-After": "7"}),
        RateLimitError,
        True,
        retry_after=7.0,
    ),
    Case(
        "429 retry-after date",
        lambda: _refusal(429, "Too many requests", {"Retry-After": _http_date(30)}),
        RateLimitError,
        True,
        retry_after=30.0,
    ),
    Case(
        "429 without retry-after",
        lambda: _refusal(429, "Too many requests"),
        RateLimitError,
        True,
        retry_after=NO_WAIT,
    ),
    Case("500", lambda: _refusal(500, "Internal Server Error"), ServiceError, True),
    Case("body over the cap, announced", lambda: _endless(True), UpstreamDataError, False),
    Case("body over the cap, streamed", lambda: _endless(False), UpstreamDataError, False),
    Case("dropped connection", lambda: _drop, ServiceError, True),
    Case("token echoed in a 400", lambda: _echo(400), ValidationError, False, masked=True),
    Case("token echoed in a 403", lambda: _echo(403), AuthenticationError, False, masked=True),
    Case(
        "token echoed in a 500", lambda: _echo(500, "text/plain"), ServiceError, True, masked=True
    ),
]


# --- the three clients ----------------------------------------------------------------------


@pytest_asyncio.fixture
async def hostile() -> AsyncIterator[HostileServer]:
    server = HostileServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Every record of the run also goes to a file (which must not hold a secret either)."""
    path = tmp_path / "run.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def etsy_store() -> MemorySecretStore:
    return MemorySecretStore(
        {
            SecretName.ETSY_KEYSTRING.value: ETSY_KEY,
            SecretName.ETSY_SHARED_SECRET.value: ETSY_SHARED,
            SecretName.ETSY_TOKEN.value: ETSY_ACCESS,
            SecretName.ETSY_REFRESH_TOKEN.value: ETSY_REFRESH,
        }
    )


Client = PrintifyClient | ShopifyClient | EtsyClient


async def make_client(platform: str, url: str, home: Path) -> tuple[Client, list[Any]]:
    """The client, and everything to close after it."""
    if platform == "printify":
        printify = PrintifyClient(
            lambda: PRINTIFY_TOKEN,
            base_url=url,
            shop_id=1,
            upload_index_path=home / "uploads.json",
            max_response_bytes=CAP,
        )
        return printify, [printify]
    if platform == "shopify":
        shopify = ShopifyClient(
            "edge-test.myshopify.com",
            token_provider=lambda: SHOPIFY_TOKEN,
            base_url=url,
            max_response_bytes=CAP,
        )
        return shopify, [shopify]
    auth = EtsyAuth(etsy_store(), auth_base_url=url, connect_url=url + "/oauth/connect")
    etsy = EtsyClient(
        auth, base_url=url, shop_id=7, journal_path=home / "etsy.json", max_response_bytes=CAP
    )
    return etsy, [etsy, auth]


def texts_of(exc: BaseException) -> list[str]:
    """Every text an exception (and what it was raised from) can show."""
    out: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        out += [str(current), repr(current), *map(str, current.args)]
        if isinstance(current, PodStudioError):
            out += [current.message, current.user_message]
        if isinstance(current, ValidationError):
            out += current.details
        current = current.__cause__ or current.__context__
    return out


def file_texts(folder: Path) -> list[str]:
    return [p.read_text("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]


def leaks(texts: list[str]) -> list[str]:
    return [f"{s[:8]}… in {t[:120]!r}" for t in texts for s in SECRETS if s in t]


# --- the table ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_same_hostile_answer_ends_the_same_way_on_every_platform(
    hostile: HostileServer,
    tmp_path: Path,
    log_file: Path,
    caplog: pytest.LogCaptureFixture,
    platform: str,
    case: Case,
) -> None:
    caplog.set_level(logging.DEBUG)
    hostile.answer = case.answer()
    client, closing = await make_client(platform, hostile.url, tmp_path)
    try:
        with pytest.raises(PodStudioError) as info:
            await client.check_credentials()
        ok, line = await client.health_check()
    finally:
        for item in closing:
            await item.aclose()
    err = info.value
    assert type(err) is case.kind, (platform, case.name, repr(err))
    assert err.retryable is case.retryable, (platform, case.name, repr(err))
    assert err.service == platform
    if case.retry_after is NO_WAIT:
        assert isinstance(err, RateLimitError) and err.retry_after == DEFAULT_WAIT[platform]
    elif case.retry_after is not None:
        assert isinstance(err, RateLimitError)
        assert err.retry_after == pytest.approx(case.retry_after, abs=2.0)
    assert ok is False and line
    assert "<" not in err.user_message, err.user_message  # an HTML page is named, not quoted

    # the credentials reached the server, and a server that echoes them leaks nothing
    assert hostile.seen and any(s in json.dumps(h) for h in hostile.seen for s in SECRETS), (
        "the client sent no credential: this case proves nothing"
    )
    if case.masked:
        assert "***" in err.message, err.message  # the echo reached the message, masked
    files = await asyncio.to_thread(file_texts, tmp_path)
    assert any("-> " in text for text in files)  # the log file is among them
    records = [r.getMessage() for r in caplog.records]
    assert not leaks([*texts_of(err), line, caplog.text, *records, *files, repr(client)])


# --- the sign-in endpoint -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_etsy_sign_in_server_echoing_the_refresh_token_leaks_nothing(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh whose token endpoint reflects the form (refresh token, keystring) and the
    headers: a credential refusal, with every secret masked."""
    caplog.set_level(logging.DEBUG)

    async def reflect(request: web.Request) -> web.StreamResponse:
        form = await request.text()
        return web.json_response(
            {"error": "invalid_request", "error_description": f"bad form {form}"}, status=400
        )

    hostile.answer = reflect
    auth = EtsyAuth(etsy_store(), auth_base_url=hostile.url)
    try:
        with pytest.raises(AuthenticationError) as info:
            await auth.refresh()
    finally:
        await auth.aclose()
    assert "refused the sign-in" in info.value.user_message
    assert "***" in info.value.user_message
    assert not leaks([*texts_of(info.value), caplog.text])


@pytest.mark.asyncio
async def test_a_rotated_etsy_token_is_masked_too(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The token Etsy issues at run time (never in the store before) is masked once it is
    held: a later echo of it leaks nothing."""
    caplog.set_level(logging.DEBUG)
    rotated = "12345.EDGE-rotated-access-0a9b8c7d"
    tokens = {"access_token": rotated, "refresh_token": "12345.EDGE-rotated-refresh-6e5f"}

    async def issue(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/oauth/token"):
            return web.json_response({**tokens, "expires_in": 3600})
        return await _echo(400)(request)

    hostile.answer = issue
    auth = EtsyAuth(etsy_store(), auth_base_url=hostile.url)
    client = EtsyClient(auth, base_url=hostile.url, shop_id=7)
    try:
        assert await auth.refresh() == rotated
        with pytest.raises(ValidationError) as info:
            await client.check_credentials()
    finally:
        await client.aclose()
        await auth.aclose()
    assert any(rotated in json.dumps(h) for h in hostile.seen)
    texts = [*texts_of(info.value), caplog.text]
    assert not [t for t in texts if rotated in t or tokens["refresh_token"] in t]
    assert not leaks(texts)
