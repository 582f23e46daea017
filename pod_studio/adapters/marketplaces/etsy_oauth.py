"""Adapters layer: Etsy OAuth 2.0 from the desktop (authorization code + PKCE) and token upkeep.

``EtsyAuth`` owns the Etsy credential:

- ``connect(open_browser)``: builds the authorize URL (S256 challenge, random ``state``),
  starts a one-shot listener on 127.0.0.1 (aiohttp), hands the URL to ``open_browser`` (the
  caller decides how: ``webbrowser.open``, a Qt ``QDesktopServices.openUrl``, printing it),
  waits for the redirect, checks ``state``, exchanges the code with the verifier, stores the
  tokens.
- ``headers()``: ``x-api-key: <keystring>:<shared_secret>`` and ``Authorization: Bearer``
  with an access token that is valid (refreshed when it is about to expire).
- Refresh is single-flight (one ``asyncio.Lock``; callers that waited reuse the winner's
  token). Etsy rotates the refresh token on every refresh and kills the old one, so the new
  pair is written to the secret store *before* the new access token is used; if the store
  refuses, the pair is kept in memory as pending, nothing is used, and the next call tries to
  store it again. After ``invalid_grant`` the store is re-read once: a newer refresh token
  there (written by another instance) is adopted instead of declaring the credential dead.

Secrets come from and go to a ``SecretStorePort`` (OS keyring; calls run in a worker thread)
and never reach logs, exceptions or ``repr``: the token endpoint is reached through the
marketplace edge (``adapters.http_edge``), which masks every secret ``known_secrets`` names
(rotated tokens included) in what it logs and raises.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from pod_studio.adapters.http_edge import HttpEdge, PlatformWords, json_or_none, redacting
from pod_studio.domain.errors import (
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.settings import SecretName, SecretStorePort

if TYPE_CHECKING:  # aiohttp is imported when a sign-in starts its listener, not at start-up
    from aiohttp import web

log = logging.getLogger(__name__)

SERVICE = "etsy"
DEFAULT_CONNECT_URL = "https://www.etsy.com/oauth/connect"
DEFAULT_AUTH_BASE_URL = "https://api.etsy.com"
TOKEN_PATH = "/v3/public/oauth/token"
DEFAULT_SCOPES: tuple[str, ...] = ("listings_r", "listings_w", "shops_r")
CALLBACK_PATH = "/etsy/callback"
MAX_TOKEN_REPLY_BYTES = 64 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=10.0)
RECONNECT = "Reconnect Etsy in Settings (Connect Etsy) to give POD Studio access again."

BrowserOpener = Callable[[str], object]


class Pkce(BaseModel):
    """A PKCE pair: the secret verifier (43-128 characters) and its S256 challenge."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    verifier: str = Field(repr=False)
    challenge: str

    @classmethod
    def generate(cls) -> Pkce:
        verifier = secrets.token_urlsafe(64)[:96]
        return cls(verifier=verifier, challenge=pkce_challenge(verifier))


def pkce_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding (RFC 7636, method S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    connect_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    challenge: str,
) -> str:
    """The URL the seller opens to grant access (Etsy's ``/oauth/connect``)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    # Spaces as %20 (not "+") in the scope list, as Etsy's examples show.
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{connect_url}?{query}"


class InvalidGrantError(AuthenticationError):
    """Etsy's token endpoint answered ``invalid_grant``: the seller must reconnect."""


class TokenSet(BaseModel):
    """One access/refresh pair. ``expires_at`` is wall-clock epoch seconds (None: unknown)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    expires_at: float | None = None


_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>POD Studio</title></head>"
    "<body style='font-family:sans-serif;margin:3em'><h2>{title}</h2><p>{text}</p></body></html>"
)


class RedirectListener:
    """A one-shot HTTP listener on 127.0.0.1 for the OAuth redirect.

    The first request to ``CALLBACK_PATH`` decides the outcome (a code with the right
    ``state``, an ``error`` from Etsy, or a state mismatch); later requests get 410.
    """

    def __init__(self, expected_state: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = expected_state
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._result: asyncio.Future[str] | None = None
        self.redirect_uri = ""

    async def start(self) -> str:
        """Listen; returns the redirect URI (``http://127.0.0.1:<port>/etsy/callback``)."""
        from aiohttp import web

        self._result = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_get(CALLBACK_PATH, self._callback)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ValidationError(
                f"cannot listen on {self._host}:{self._port} for the Etsy redirect ({exc.errno})",
                service=SERVICE,
                user_message=f"POD Studio cannot listen on port {self._port} for Etsy's answer "
                "(another program uses it). Close it or choose another redirect port in "
                "Settings (and register that redirect URI with your Etsy app).",
            ) from exc
        addresses = self._runner.addresses
        port = int(addresses[0][1]) if addresses else self._port
        self.redirect_uri = f"http://{self._host}:{port}{CALLBACK_PATH}"
        return self.redirect_uri

    async def _callback(self, request: web.Request) -> web.Response:
        from aiohttp import web

        result = self._result
        if result is None or result.done():
            return web.Response(status=410, text="This sign-in link was already used.")
        q = request.query
        if q.get("state") != self._state:
            result.set_exception(
                AuthenticationError(
                    "the OAuth redirect carried a state that does not match this sign-in",
                    service=SERVICE,
                    user_message="The Etsy sign-in answer did not belong to this sign-in "
                    "(state mismatch), so it was refused. Start Connect Etsy again.",
                )
            )
            return _html(400, "Sign-in refused", "This answer does not match the sign-in "
                         "POD Studio started. Go back to POD Studio and try again.")  # fmt: skip
        if "error" in q:
            error = q.get("error", "")
            described = q.get("error_description", "")[:200]
            declined = error == "access_denied"
            result.set_exception(
                AuthenticationError(
                    f"Etsy answered the sign-in with {error}: {described}",
                    service=SERVICE,
                    user_message="You declined access on Etsy; POD Studio is not connected."
                    if declined
                    else f"Etsy refused the sign-in ({error}). {described}".strip(),
                )
            )
            return _html(200, "Not connected", "You can close this tab.")
        code = q.get("code", "")
        if not code:
            result.set_exception(
                AuthenticationError(
                    "the OAuth redirect carried no code",
                    service=SERVICE,
                    user_message="Etsy's answer carried no authorization code. Try again.",
                )
            )
            return _html(400, "Sign-in failed", "No authorization code. Try again.")
        result.set_result(code)
        return _html(200, "Etsy is connected", "You can close this tab and return to POD Studio.")

    async def wait(self, wait_seconds: float) -> str:
        """The authorization code, or the error the redirect carried."""
        if self._result is None:
            raise RuntimeError("RedirectListener.start() was not called")
        try:
            async with asyncio.timeout(wait_seconds):
                return await asyncio.shield(self._result)
        except TimeoutError:
            raise PodTimeoutError(
                f"no OAuth redirect within {wait_seconds:g} s",
                service=SERVICE,
                user_message="Etsy sign-in was not completed in time. Start Connect Etsy again.",
                retryable=False,
            ) from None

    async def close(self) -> None:
        if self._result is not None and not self._result.done():
            self._result.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _html(status: int, title: str, text: str) -> web.Response:
    from aiohttp import web

    return web.Response(
        status=status, text=_PAGE.format(title=title, text=text), content_type="text/html"
    )


class SignInWords(PlatformWords):
    """What Etsy's token endpoint says: ``invalid_grant`` means reconnect; any other refusal
    is a credential problem (the keystring), not a bad request."""

    server = "Etsy's sign-in server"
    slow_down = "Etsy's sign-in server asks POD Studio to slow down; waiting."

    def special(self, response: httpx.Response, where: str, reason: str) -> PodStudioError | None:
        status = response.status_code
        body = json_or_none(response.content)
        if isinstance(body, dict) and body.get("error") == "invalid_grant":
            return InvalidGrantError(
                where,
                status_code=status,
                user_message="Etsy no longer accepts POD Studio's connection (it was revoked, "
                "expired, or the Etsy password changed). " + RECONNECT,
            )
        if status == 429 or status >= 500:
            return None
        return AuthenticationError(
            where,
            status_code=status,
            user_message=f"Etsy refused the sign-in ({reason}). Check the keystring in Settings.",
        )


@redacting
class EtsyAuth:
    """The Etsy credential: app key pair, OAuth tokens, connect flow and refresh.

    ``store`` holds ``SecretName.ETSY_KEYSTRING``, ``ETSY_SHARED_SECRET``, ``ETSY_TOKEN`` (the
    access token) and ``ETSY_REFRESH_TOKEN``. ``clock`` is wall-clock seconds (expiry).
    """

    def __init__(
        self,
        store: SecretStorePort,
        *,
        auth_base_url: str = DEFAULT_AUTH_BASE_URL,
        connect_url: str = DEFAULT_CONNECT_URL,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        redirect_host: str = "127.0.0.1",
        redirect_port: int = 0,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh_margin: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._connect_url = connect_url
        self._scopes = tuple(scopes)
        self._redirect_host = redirect_host
        self._redirect_port = redirect_port
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._edge = HttpEdge(
            SERVICE,
            SignInWords(),
            base_url=auth_base_url.rstrip("/"),
            timeout=timeout or DEFAULT_TIMEOUT,
            transport=transport,
            user_agent="POD-Studio/0.1",
            secrets=self.known_secrets,
            limit=MAX_TOKEN_REPLY_BYTES,
        )
        self._lock = asyncio.Lock()
        self._tokens: TokenSet | None = None
        self._pending: TokenSet | None = None
        self._api_key: str | None = None
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"EtsyAuth(connected={self._tokens is not None}, scopes={self._scopes!r})"

    async def aclose(self) -> None:
        await self._edge.aclose()

    def known_secrets(self) -> tuple[str | None, ...]:
        """Every secret this credential holds now (the tokens change at run time: Etsy
        rotates them on each refresh), for masking."""
        held: list[str | None] = [self._api_key]
        for tokens in (self._tokens, self._pending):
            if tokens is not None:
                held += [tokens.access_token, tokens.refresh_token]
        return tuple(held)

    # ------------------------------------------------------------------ secret store

    async def _read(self, name: SecretName) -> str | None:
        try:
            value = await asyncio.to_thread(self._store.get, name.value)
        except (PodStudioError, OSError, RuntimeError, ValueError) as exc:
            raise _store_error("read", name, exc) from exc
        value = (value or "").strip()
        return value or None

    async def _write(self, name: SecretName, value: str) -> None:
        try:
            await asyncio.to_thread(self._store.set, name.value, value)
        except (PodStudioError, OSError, RuntimeError, ValueError) as exc:
            raise _store_error("save", name, exc) from exc

    async def _save(self, tokens: TokenSet) -> None:
        """Store the pair: the refresh token first (it is the one that cannot be recovered)."""
        await self._write(SecretName.ETSY_REFRESH_TOKEN, tokens.refresh_token)
        await self._write(SecretName.ETSY_TOKEN, tokens.access_token)

    async def keystring(self) -> str:
        key = await self._read(SecretName.ETSY_KEYSTRING)
        if not key:
            raise AuthenticationError(
                "no Etsy keystring is configured",
                service=SERVICE,
                user_message="Enter your Etsy app's keystring (API key) in Settings.",
            )
        return key

    async def api_key_header(self) -> str:
        """``<keystring>:<shared_secret>``, as Etsy requires since February 2026."""
        if self._api_key is None:
            key = await self.keystring()
            secret = await self._read(SecretName.ETSY_SHARED_SECRET)
            if not secret:
                raise AuthenticationError(
                    "no Etsy shared secret is configured",
                    service=SERVICE,
                    user_message="Enter your Etsy app's shared secret in Settings (Etsy "
                    "requires it with the keystring on every request).",
                )
            self._api_key = f"{key}:{secret}"
        return self._api_key

    def forget_api_key(self) -> None:
        """Drop the cached key pair (after the seller edits it in Settings)."""
        self._api_key = None

    async def is_connected(self) -> bool:
        if self._tokens is not None:
            return True
        return bool(await self._read(SecretName.ETSY_REFRESH_TOKEN))

    async def disconnect(self) -> None:
        """Forget the tokens (the seller can also revoke the app on Etsy)."""
        async with self._lock:
            self._tokens = None
            self._pending = None
            for name in (SecretName.ETSY_TOKEN, SecretName.ETSY_REFRESH_TOKEN):
                try:
                    await asyncio.to_thread(self._store.delete, name.value)
                except (PodStudioError, OSError, RuntimeError, ValueError) as exc:
                    raise _store_error("delete", name, exc) from exc

    # ------------------------------------------------------------------ connect flow

    async def connect(
        self,
        open_browser: BrowserOpener,
        *,
        wait_seconds: float = 300.0,
        port: int | None = None,
    ) -> TokenSet:
        """Run the whole sign-in: listener, browser, redirect, code exchange, storage.

        ``open_browser(url)`` may be a plain function or return an awaitable.
        """
        client_id = await self.keystring()
        pkce = Pkce.generate()
        state = secrets.token_urlsafe(24)
        listener = RedirectListener(
            state,
            host=self._redirect_host,
            port=self._redirect_port if port is None else port,
        )
        redirect_uri = await listener.start()
        try:
            url = authorize_url(
                self._connect_url,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=self._scopes,
                state=state,
                challenge=pkce.challenge,
            )
            opened = open_browser(url)
            if inspect.isawaitable(opened):
                await opened
            code = await listener.wait(wait_seconds)
        finally:
            await listener.close()
        tokens = await self._token_request(
            {
                "grant_type": "authorization_code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "code": code,
                "code_verifier": pkce.verifier,
            },
            operation="code exchange",
        )
        async with self._lock:
            await self._save(tokens)
            self._tokens = tokens
            self._pending = None
        log.info("Etsy connected (scopes %s)", " ".join(self._scopes))
        return tokens

    # ------------------------------------------------------------------ tokens

    async def _current(self) -> TokenSet | None:
        if self._tokens is None:
            access = await self._read(SecretName.ETSY_TOKEN)
            refresh = await self._read(SecretName.ETSY_REFRESH_TOKEN)
            if refresh:
                # Age unknown after a restart: use it until Etsy says it expired.
                self._tokens = TokenSet(
                    access_token=access or "", refresh_token=refresh, expires_at=None
                )
        return self._tokens

    def _fresh(self, tokens: TokenSet) -> bool:
        if not tokens.access_token:
            return False
        return tokens.expires_at is None or tokens.expires_at - self._refresh_margin > self._clock()

    async def access_token(self) -> str:
        """A usable access token, refreshing first when it is (nearly) expired."""
        tokens = self._tokens if self._pending is None else None
        if tokens is not None and self._fresh(tokens):
            return tokens.access_token
        async with self._lock:
            tokens = await self._settled()
            if self._fresh(tokens):
                return tokens.access_token
            return (await self._refresh_locked(tokens)).access_token

    async def refresh(self, stale_access_token: str | None = None) -> str:
        """Refresh once for everyone: if the token changed since ``stale_access_token`` was
        read (another caller refreshed meanwhile), the current one is returned instead."""
        async with self._lock:
            tokens = await self._settled()
            if (
                stale_access_token is not None
                and tokens.access_token
                and tokens.access_token != stale_access_token
                and self._fresh(tokens)
            ):
                return tokens.access_token
            return (await self._refresh_locked(tokens)).access_token

    async def _settled(self) -> TokenSet:
        """Under the lock: the current pair, after storing a pending rotated one."""
        if self._pending is not None:
            await self._save(self._pending)
            self._tokens, self._pending = self._pending, None
        tokens = await self._current()
        if tokens is None:
            raise AuthenticationError(
                "Etsy is not connected",
                service=SERVICE,
                user_message="Etsy is not connected yet. Use Connect Etsy in Settings.",
            )
        return tokens

    async def _refresh_locked(self, tokens: TokenSet) -> TokenSet:
        client_id = await self.keystring()
        try:
            new = await self._token_request(
                {
                    "grant_type": "refresh_token",
                    "client_id": client_id,
                    "refresh_token": tokens.refresh_token,
                },
                operation="token refresh",
            )
        except InvalidGrantError:
            # Another instance may have rotated the token: adopt what the store holds now.
            stored = await self._read(SecretName.ETSY_REFRESH_TOKEN)
            if stored and stored != tokens.refresh_token:
                access = await self._read(SecretName.ETSY_TOKEN) or ""
                self._tokens = TokenSet(access_token=access, refresh_token=stored)
                log.info("Etsy refresh token was rotated elsewhere; using the stored one")
                if access:
                    return self._tokens
                return await self._refresh_locked(self._tokens)
            self._tokens = None
            raise
        self.refresh_count += 1
        self._pending = new
        await self._save(new)  # raises if the store refuses: nothing is used then
        self._tokens, self._pending = new, None
        return new

    async def _token_request(self, form: dict[str, str], *, operation: str) -> TokenSet:
        # the keystring (client_id) is half of the app's API key: masked like the rest
        self._edge.remember(*(form.get(k) for k in ("client_id", "code", "code_verifier")))
        self._edge.remember(form.get("refresh_token"))
        response = await self._edge.send("POST", TOKEN_PATH, operation=operation, data=form)
        if 200 <= response.status_code < 300:
            tokens = self._parse_tokens(json_or_none(response.content), operation)
            self._edge.remember(tokens.access_token, tokens.refresh_token)
            return tokens
        raise self._edge.status_error(response, operation)

    def _parse_tokens(self, data: Any, operation: str) -> TokenSet:
        if not isinstance(data, dict):
            raise UpstreamDataError(
                f"Etsy {operation}: the reply is not a JSON object",
                service=SERVICE,
                user_message="Etsy's sign-in server sent an unreadable reply.",
            )
        access, refresh = data.get("access_token"), data.get("refresh_token")
        expires = data.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            raise UpstreamDataError(
                f"Etsy {operation}: the reply lacks access_token or refresh_token",
                service=SERVICE,
                user_message="Etsy's sign-in server sent an incomplete reply.",
            )
        lifetime = float(expires) if isinstance(expires, int | float) and expires > 0 else 3600.0
        return TokenSet(
            access_token=access, refresh_token=refresh, expires_at=self._clock() + lifetime
        )


def _store_error(action: str, name: SecretName, exc: BaseException) -> AuthenticationError:
    detail = exc.user_message if isinstance(exc, PodStudioError) else type(exc).__name__
    what = "renewed Etsy token" if action == "save" else "Etsy credentials"
    return AuthenticationError(
        f"secret store: cannot {action} {name.value} ({type(exc).__name__})",
        service=SERVICE,
        user_message=f"POD Studio cannot {action} the {what} in the secret store: {detail} "
        "Unlock the keyring (or fix its access) and try again.",
    )
