"""Sandbox layer: the server plumbing every stand-in shares, and its one fault API.

``SandboxServer`` runs an aiohttp application on ``host:port`` (port 0: any free port; ``url``
once started), stops it (waits cut short, listener closed), pauses and resumes its work, and
injects faults through one middleware with the same API on every stand-in:

- ``fail_next(n, status, match=...)``: the next ``n`` matching requests are answered ``status``
  in the platform's own words (``error_response``);
- ``rate_limit_next(n, retry_after, match=...)``: the next ``n`` get the platform's 429;
- ``hang_next(n, match=...)``: the next ``n`` get no answer for ``hang_seconds`` (cut short by
  ``stop()``), then a 500;
- ``malformed_next(n, match=...)``: the next ``n`` successful replies carry half their body
  (unparseable JSON);
- ``commit_then_timeout_next(n, mode=...)``: the next ``n`` creates are stored, then the reply
  hangs (``"hang"``) or the connection drops (``"drop"``), where the stand-in has a create;
- ``slow_seconds``: every request waits that long first;
- ``fault_rate`` / ``fault_kinds``: that share of requests gets a random fault among "500",
  "503", "429", "reset" (dropped before handling), "timeout" (no answer for ``hang_seconds``)
  and "reset_after" (handled, then dropped); ``random_faults`` counts them;
- ``clear_faults()`` forgets every armed rule.

``match`` is a substring of the request's fault key, ``"{METHOD} {route template}"`` (for
example ``"POST /v1/shops/{shop_id}/products.json"``; a GraphQL stand-in appends the first
root field: ``"POST /admin/api/{version}/graphql.json productSet"``); ``None`` matches every
request the faults apply to (``faultable``: the platform's API, not its image host or its
websocket). A stand-in fills in the hooks: ``add_routes``, ``admit`` (its own checks before any
fault: origin, keys, tokens), ``limit`` (its real rate limits), ``handle`` (its error mapping),
``error_response`` and ``too_many``.

Imports nothing else from ``pod_studio``.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import logging
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self, TypedDict

from aiohttp import web

__all__ = [
    "FAULT_KINDS",
    "FaultOptions",
    "Handler",
    "SandboxServer",
    "command_line",
    "serve_command",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAULT_KINDS = ("500", "503", "429", "reset", "timeout", "reset_after")
_COMMIT_MODES = ("hang", "drop")


class FaultOptions(TypedDict, total=False):
    """The fault settings every stand-in's constructor takes (see ``SandboxServer``)."""

    slow_seconds: float
    hang_seconds: float
    fault_rate: float
    fault_kinds: Iterable[str]
    rng_seed: int


def command_line(description: str, port: int) -> argparse.ArgumentParser:
    """A stand-in's ``python -m`` parser: ``--host``, ``--port`` (default ``port``) and
    ``--fault-rate``. Each further option's ``dest`` is a constructor keyword (see
    ``serve_command``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--fault-rate", type=float)
    return parser


def serve_command(
    factory: Callable[..., SandboxServer],
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
) -> None:
    """Parse ``argv``, build the stand-in from the options given (one left out keeps the
    constructor's default) and serve it until Ctrl-C."""
    options = vars(parser.parse_args(argv))
    host, port = options.pop("host"), options.pop("port")
    given = {name: value for name, value in options.items() if value is not None}
    factory(**given).serve_forever(host, port)


@dataclass
class _Rule:
    """One armed fault: ``remaining`` more requests whose fault key contains ``match``."""

    remaining: int
    status: int = 500
    retry_after: float | None = None
    match: str | None = None
    mode: str = "hang"

    def applies(self, key: str) -> bool:
        return self.remaining > 0 and (self.match is None or self.match in key)


def _take(rules: list[_Rule], key: str) -> _Rule | None:
    for rule in rules:
        if rule.applies(key):
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.remove(rule)
            return rule
    return None


def _drop_connection(request: web.Request) -> web.Response:
    """Abort the connection: the client sees it closed with no reply."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


class SandboxServer(abc.ABC):
    """An aiohttp stand-in on 127.0.0.1 with the shared lifecycle and fault middleware."""

    #: what ``start`` logs ("Printify sandbox listening on ...")
    title: ClassVar[str] = "Sandbox"
    #: the largest request body the application takes
    client_max_size: int = 1024**2
    #: True: a paused server holds every API request unanswered until ``resume()``;
    #: False: only the stand-in's own work waits (``until_resumed``)
    pause_holds_requests: ClassVar[bool] = True
    #: True: ``stop()`` aborts open connections, as a killed server does
    abort_on_stop: ClassVar[bool] = False
    shutdown_timeout: ClassVar[float] = 1.0
    #: what ``serve_forever`` prints once stopped (``None``: nothing)
    farewell: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        slow_seconds: float = 0.0,
        hang_seconds: float = 30.0,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = FAULT_KINDS,
        rng_seed: int = 0,
    ) -> None:
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.fault_rate = fault_rate
        self.fault_kinds = list(fault_kinds)
        self.random_faults: Counter[str] = Counter()
        self.request_counts: Counter[str] = Counter()
        self.host = "127.0.0.1"
        self.port = 0
        self.url = ""
        self._rng = random.Random(rng_seed)
        self._fail: list[_Rule] = []
        self._rate: list[_Rule] = []
        self._hang: list[_Rule] = []
        self._malformed: list[_Rule] = []
        self._commit_timeout: list[_Rule] = []
        self._paused = False
        self._gate: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The running server's URL (``url``)."""
        return self.url

    # ------------------------------------------------------------------ fault API

    def fail_next(self, n: int = 1, status: int = 500, *, match: str | None = None) -> None:
        """The next ``n`` requests whose fault key contains ``match`` get ``status``."""
        self._fail.append(_Rule(n, status=status, match=match))

    def rate_limit_next(
        self, n: int = 1, retry_after: float | None = None, *, match: str | None = None
    ) -> None:
        """The next ``n`` matching requests get 429; with ``Retry-After`` unless ``None``."""
        self._rate.append(_Rule(n, retry_after=retry_after, match=match))

    def hang_next(self, n: int = 1, *, match: str | None = None) -> None:
        """The next ``n`` matching requests get no answer for ``hang_seconds``, then a 500."""
        self._hang.append(_Rule(n, match=match))

    def malformed_next(self, n: int = 1, *, match: str | None = None) -> None:
        """The next ``n`` matching successful replies carry a truncated, unparseable body."""
        self._malformed.append(_Rule(n, match=match))

    def commit_then_timeout_next(self, n: int = 1, *, mode: str = "hang") -> None:
        """The next ``n`` creates are stored, then the reply never comes in time.

        ``mode`` "hang": the reply waits ``hang_seconds`` (cut short by ``stop()``);
        "drop": the connection is closed without a reply.
        """
        if mode not in _COMMIT_MODES:
            raise ValueError("mode must be 'hang' or 'drop'")
        self._commit_timeout.append(_Rule(n, mode=mode))

    def clear_faults(self) -> None:
        """Forget every armed rule (random faults stay as ``fault_rate`` says)."""
        for rules in (self._fail, self._rate, self._hang, self._malformed, self._commit_timeout):
            rules.clear()

    def pause(self) -> None:
        """Stop working until ``resume()`` (see ``pause_holds_requests``)."""
        self._paused = True
        if self._gate is not None:
            self._gate.clear()

    def resume(self) -> None:
        self._paused = False
        if self._gate is not None:
            self._gate.set()

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.client_max_size)
        self.add_routes(app)
        return app

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add the platform's routes."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); returns the URL."""
        self._closing = asyncio.Event()
        self._gate = asyncio.Event()
        if not self._paused:
            self._gate.set()
        self.host = host
        await self._listen(host, port)
        await self.on_start()
        log.info("%s listening on %s", self.title, self.url)
        return self.url

    async def stop(self) -> None:
        """Cut every wait short, then close the listener and the connections."""
        if self._closing is not None:
            self._closing.set()
        await self.on_stop()
        await self._close_listener()

    async def on_start(self) -> None:
        """Hook: after the listener is up (start background work here)."""
        return None

    async def on_stop(self) -> None:
        """Hook: before the listener closes (stop background work here)."""
        return None

    async def _listen(self, host: str, port: int) -> None:
        runner = web.AppRunner(
            self.make_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        self.url = f"http://{host}:{self.port}"

    async def _close_listener(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self.abort_on_stop:
            for site in runner.sites:
                listener = getattr(site, "_server", None)
                if isinstance(listener, asyncio.AbstractServer):
                    listener.close()
            await self.before_abort()
            server = runner.server
            if server is not None:
                for handler in list(server.connections):
                    transport = handler.transport
                    if transport is not None:
                        transport.abort()
        await runner.cleanup()

    def banner(self) -> str:
        """What ``serve_forever`` prints once listening."""
        return f"{self.title} on {self.url}"

    def serve_forever(self, host: str, port: int) -> None:
        """Serve on ``host:port`` until Ctrl-C (``pod-studio sandbox ...``)."""

        async def _main() -> None:
            await self.start(host, port)
            print(self.banner(), flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await self.stop()
                if self.farewell is not None:
                    print(self.farewell, flush=True)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main())

    async def before_abort(self) -> None:
        """Hook: with ``abort_on_stop``, before open connections are aborted."""
        return None

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``stop()``."""
        closing = self._closing
        if closing is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), seconds)

    async def until_resumed(self) -> None:
        """Return at once unless paused; else when ``resume()`` is called."""
        if self._gate is not None and not self._gate.is_set():
            await self._gate.wait()

    async def commit_fault(self, request: web.Request) -> web.StreamResponse | None:
        """After a create is stored: the armed ``commit_then_timeout_next`` fault, if any.

        Returns the reply that replaces the real one (``drop``), or ``None`` after the hang.
        """
        rule = _take(self._commit_timeout, "create")
        if rule is None:
            return None
        if rule.mode == "drop":
            return _drop_connection(request)
        await self.wait(self.hang_seconds)
        return None

    # ------------------------------------------------------------------ hooks

    @staticmethod
    def template(request: web.Request) -> str:
        """``"{METHOD} {route template}"`` (the request path when no route matched)."""
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        return f"{request.method} {path}"

    def count_key(self, request: web.Request) -> str | None:
        """The ``request_counts`` key of a request (``None``: the stand-in counts it itself)."""
        return self.template(request)

    def fault_key(self, request: web.Request) -> str:
        """What ``match`` is looked for in."""
        return self.template(request)

    def faultable(self, request: web.Request) -> bool:
        """Whether slowness, pause and faults apply to this request (the platform's API)."""
        return True

    async def admit(self, request: web.Request) -> web.StreamResponse | None:
        """The platform's checks before any fault (an answer refuses the request)."""
        return None

    async def limit(self, request: web.Request) -> web.StreamResponse | None:
        """The platform's own rate limits, after a forced 429 (an answer refuses)."""
        return None

    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run the route's handler, mapping the platform's errors."""
        return await handler(request)

    def error_response(self, status: int) -> web.Response:
        """An injected ``status`` answer, in the platform's words."""
        return web.Response(status=status, text=f"{status}: {web.Response(status=status).reason}")

    def too_many(self, retry_after: float | None) -> web.Response:
        """The platform's 429, with ``Retry-After`` unless ``None``."""
        headers = {} if retry_after is None else {"Retry-After": f"{math.ceil(retry_after)}"}
        return web.Response(status=429, text="429: Too Many Requests", headers=headers)

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        counted = self.count_key(request)
        if counted is not None:
            self.request_counts[counted] += 1
        if not self.faultable(request):
            refused = await self.admit(request)
            return refused if refused is not None else await self.handle(request, handler)
        if self.slow_seconds > 0:
            await self.wait(self.slow_seconds)
        if self.pause_holds_requests:
            await self.until_resumed()
        refused = await self.admit(request)
        if refused is not None:
            return refused
        key = self.fault_key(request)
        forced = _take(self._rate, key)
        if forced is not None:
            return self.too_many(forced.retry_after)
        refused = await self.limit(request)
        if refused is not None:
            return refused
        failure = _take(self._fail, key)
        if failure is not None:
            return self.error_response(failure.status)
        if _take(self._hang, key) is not None:
            await self.wait(self.hang_seconds)
            return self.error_response(500)
        random_fault = ""
        if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            random_fault = self._rng.choice(self.fault_kinds or ["500"])
            self.random_faults[random_fault] += 1
            if random_fault != "reset_after":
                return await self._random_fault(request, random_fault)
        response = await self.handle(request, handler)
        if random_fault == "reset_after":
            return _drop_connection(request)
        if 200 <= response.status < 300 and _take(self._malformed, key) is not None:
            return self._truncated(response)
        return response

    async def _random_fault(self, request: web.Request, kind: str) -> web.StreamResponse:
        if kind == "503":
            return self.error_response(503)
        if kind == "429":
            return self.too_many(1.0)
        if kind == "reset":
            return _drop_connection(request)
        if kind == "timeout":
            await self.wait(self.hang_seconds)
        return self.error_response(500)

    @staticmethod
    def _truncated(response: web.StreamResponse) -> web.Response:
        body = getattr(response, "body", None)
        raw = bytes(body) if isinstance(body, (bytes, bytearray)) else b""
        cut = raw[: max(1, len(raw) // 2)] if len(raw) > 1 else b'{"data": [{"id": "5d39b4'
        return web.Response(status=response.status, body=cut, content_type="application/json")
