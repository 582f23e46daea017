"""Adapters layer: the one HTTP edge of the marketplace clients (Printify, Shopify, Etsy and
Etsy's OAuth), and the one capped body reader every adapter uses.

``HttpEdge`` owns a client's ``httpx.AsyncClient`` and is the only place where:

- a request is sent and its body read, capped (``read_bounded``: a ``Content-Length`` above
  the cap is refused before a byte is read, a streamed body the moment it passes the cap; an
  error body is only read up to an excerpt);
- httpx exceptions become the domain error tree (``raise ... from exc``): a timeout is a
  retryable ``TimeoutError``, a refused or dropped connection a retryable ``ServiceError``,
  a body that cannot be decoded an ``UpstreamDataError``;
- an HTTP status becomes an error (``status_error``): 401/403 ``AuthenticationError``, 404
  ``APIError``, 400/409/413/422 ``ValidationError``, 429 ``RateLimitError`` with the server's
  ``Retry-After`` (``domain.retry_after``), 5xx ``ServiceError``; an HTML page is named by its
  title, never quoted. What a platform says in its own words (its messages, its special
  statuses and error codes) comes from a small ``PlatformWords`` hook object;
- requests are logged (one ``event_hooks`` pair, credential headers shown as ``***``);
- every secret the client holds is masked in every text that leaves the adapter: the edge
  learns the secrets from the client (``secrets``, asked again at each use, so rotated tokens
  are covered) and from the credential headers of each request it sends, and masks them, and
  any echo of a credential header, in the messages it builds, the records it logs, and (with
  ``redacting``) every ``PodStudioError`` leaving a client's public coroutine methods.

``image_header``/``pixel_guard`` let a download stop as soon as an image's header promises
too many pixels (ComfyUI outputs, mockups). httpx has no body cap of its own, hence this.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import logging
import re
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
from PIL import Image, UnidentifiedImageError

from pod_studio.domain.errors import (
    APIError,
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    RateLimitError,
    ServiceError,
    UpstreamDataError,
    ValidationError,
)
from pod_studio.domain.redaction import MASK, SecretMask
from pod_studio.domain.retry_after import parse_retry_after

log = logging.getLogger(__name__)

MB = 1024 * 1024
JSON_LIMIT = 64 * MB  # /object_info of a ComfyUI with many custom nodes is a few MB
ERROR_BODY_LIMIT = MB  # an error body is shown as an excerpt (a 400 lists node errors)
IMAGE_LIMIT = 256 * MB
HEADER_PROBE_BYTES = 64 * 1024
REASON_CHARS = 300
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
UPLOAD_WRITE_TIMEOUT = 120.0

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-shopify-access-token",
    }
)
_DROP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_VALIDATION_STATUSES = (400, 409, 413, 422)

C = TypeVar("C", bound=type)

# ---------------------------------------------------------------------- capped reads


def _size(limit: int) -> str:
    return f"{limit // MB} MB" if limit >= MB else f"{max(1, limit // 1024)} KB"


def too_large(
    what: str, server: str, limit: int, *, service: str, declared: int | None = None
) -> UpstreamDataError:
    """The error for a body above ``limit`` bytes (never retried: it would be as large again)."""
    said = f" (it announced {declared:,} bytes)" if declared is not None else ""
    return UpstreamDataError(
        f"{what} from {server} is larger than the {_size(limit)} limit{said}; refused",
        service=service,
        retryable=False,
        user_message=f"{server} sent {what} larger than the {_size(limit)} limit; it was refused.",
    )


def declared_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


async def read_bounded(
    response: httpx.Response,
    *,
    limit: int,
    what: str,
    server: str,
    service: str,
    truncate: bool = False,
    check_head: Callable[[bytes], None] | None = None,
) -> httpx.Response:
    """Read the body of a streamed ``response`` up to ``limit`` bytes and return a plain,
    fully read response with that body.

    Above the limit: ``truncate`` keeps the first ``limit`` bytes (for error excerpts);
    otherwise ``UpstreamDataError``. ``check_head`` sees the first ``HEADER_PROBE_BYTES`` (or
    the whole body if shorter) once, and may raise to stop the download.
    """
    declared = declared_length(response)
    if declared is not None and declared > limit and not truncate:
        raise too_large(what, server, limit, service=service, declared=declared)
    body = bytearray()
    probed = check_head is None
    async for chunk in response.aiter_bytes():
        room = limit - len(body)
        if len(chunk) > room:
            if truncate:
                body += chunk[:room]
                break
            raise too_large(what, server, limit, service=service)
        body += chunk
        if not probed and len(body) >= HEADER_PROBE_BYTES:
            probed = True
            assert check_head is not None
            check_head(bytes(body))
    if not probed and check_head is not None and body:
        check_head(bytes(body))
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROP_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body),
        request=response.request,
        extensions={k: v for k, v in response.extensions.items() if k == "http_version"},
    )


def image_header(head: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) from the first bytes of an image; ``None`` if Pillow cannot
    tell from these bytes (the full decode later decides). Pillow's own decompression-bomb
    error (more than twice ``Image.MAX_IMAGE_PIXELS``) propagates."""
    if head.startswith(_PNG_MAGIC) and len(head) >= 24 and head[12:16] == b"IHDR":
        # PNG's size is at a fixed place; Pillow would also parse the chunks that follow,
        # which may not have arrived yet.
        width, height = struct.unpack(">II", head[16:24])
        return "PNG", width, height
    try:
        with Image.open(io.BytesIO(head)) as im:
            return im.format or "", im.width, im.height
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def pixel_guard(
    *, max_pixels: int, what: str, server: str, service: str
) -> Callable[[bytes], None]:
    """A ``check_head`` that refuses an image whose header promises more than ``max_pixels``."""

    def check(head: bytes) -> None:
        try:
            found = image_header(head)
        except Image.DecompressionBombError:
            found = ("image", max_pixels + 1, 1)
        if found is None:
            return

        fmt, width, height = found
        if width * height > max_pixels:
            raise UpstreamDataError(
                f"{what} from {server} is a {width}x{height} {fmt} image "
                f"({width * height:,} pixels), above the {max_pixels:,}-pixel limit; refused",
                service=service,
                retryable=False,
                user_message=f"{server} sent an image of {width}x{height} pixels, above the "
                f"{max_pixels // 1_000_000} MP limit; it was refused.",
            )

    return check


# ---------------------------------------------------------------------- error words


def json_or_none(body: bytes) -> Any:
    """The body as JSON; ``None`` when it is empty or not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def error_reason(response: httpx.Response) -> tuple[str, list[str]]:
    """A short reason and the details of an error answer, whatever the platform's shape:
    Printify ``errors.reason``, Shopify ``errors`` (a string or a list), Etsy ``error`` with
    ``error_description`` or a list of ``{path, message}``, a ``message``; an HTML page is
    named by its title; other text is quoted in one short line."""
    status = response.status_code
    body = json_or_none(response.content)
    if body is None:
        text = response.content[:65536].decode("utf-8", "replace").strip()
        ctype = response.headers.get("content-type", "").lower()
        if "html" in ctype or text[:1] == "<":
            # An HTML error page (a proxy, a CDN): its markup means nothing to a seller.
            m = _TITLE_RE.search(text)
            title = " ".join(m[1].split())[:80] if m and m[1].strip() else ""
            page = f"an HTML page “{title}”" if title else "an HTML page"
            named = f"HTTP {status} ({page})"
            return named, [named]
        flat = " ".join(text.split())[:200] or f"HTTP {status}"
        return flat, [flat]
    if isinstance(body, list):  # [{"path","type","message"}]: a validation list
        details = [
            f"{d.get('path', '')}: {d.get('message', d.get('type', ''))}".strip(": ")
            for d in body
            if isinstance(d, dict)
        ]
        return ("; ".join(details)[:REASON_CHARS] or f"HTTP {status}"), details
    if not isinstance(body, dict):
        return f"HTTP {status}", [f"HTTP {status}"]
    errors = body.get("errors")
    reason: Any = None
    if isinstance(errors, dict):
        reason = errors.get("reason")
    elif isinstance(errors, list) and errors:
        reason = "; ".join(
            str(e.get("message") or e) if isinstance(e, dict) else str(e) for e in errors
        )
    elif isinstance(errors, str) and errors:
        reason = errors
    if not reason and body.get("error"):
        reason = str(body["error"])
        if body.get("error_description"):
            reason += f" ({body['error_description']})"
    if not reason:
        reason = body.get("message") or (errors if errors else None) or f"HTTP {status}"
    if not isinstance(reason, str):
        reason = json.dumps(reason)
    reason = reason[:REASON_CHARS]
    return reason, [reason]


class PlatformWords:
    """What one platform says at each rung of the status ladder: message templates (with
    ``{server}``, ``{reason}``, ``{status}``, ``{operation}``) a platform replaces as class
    attributes, and ``special`` for the statuses and error codes only it has. A platform whose
    words depend on the reason or on its state overrides the ``*_text`` methods."""

    server = "the server"
    unauthorized = "{server} rejected the credentials (missing, wrong or expired): {reason}."
    forbidden = "{server} does not allow this: {reason}"
    not_found = "{operation}: not found"
    rejected = "{server} rejected the request: {reason}"
    slow_down = "{server} asks POD Studio to slow down; waiting."
    failing = "{server} is having trouble (HTTP {status}); it will be tried again."
    refused = "{server} refused the request (HTTP {status}): {reason}"

    def say(self, template: str, **values: object) -> str:
        return template.format(server=self.server, **values)

    def special(self, response: httpx.Response, where: str, reason: str) -> PodStudioError | None:
        """An error for an answer only this platform gives (checked before the ladder)."""
        return None

    def refusal(self, response: httpx.Response, where: str, user_message: str) -> APIError:
        """A refusal that trying again will not change (for ``special``)."""
        status = response.status_code
        return APIError(where, status_code=status, user_message=user_message, retryable=False)

    def forbidden_text(self, reason: str) -> str:
        return self.say(self.forbidden, reason=reason)

    def rejected_text(self, reason: str) -> str:
        return self.say(self.rejected, reason=reason)

    def rate_limited(self, where: str, reason: str, wait: float | None) -> RateLimitError:
        return RateLimitError(where, retry_after=wait, user_message=self.say(self.slow_down))


# ---------------------------------------------------------------------- the edge


class HttpEdge:
    """One remote service's HTTP client, error ladder, request log and secret mask.

    ``service`` names the service in errors ("printify"); ``words`` says the rest in the
    platform's words (its ``server`` is the name a seller reads, "Printify"). ``secrets()``
    returns the secrets the client holds now; ``limit`` caps a reply body in bytes.
    ``upload_timeout`` is ``timeout`` with room for sending a large file.
    """

    def __init__(
        self,
        service: str,
        words: PlatformWords,
        *,
        base_url: str = "",
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str,
        secrets: Callable[[], Iterable[str | None]] | None = None,
        limit: int = JSON_LIMIT,
        retry_after_cap: float = 3600.0,
    ) -> None:
        self.service = service
        self.words = words
        self.server = words.server
        self.limit = limit
        self.retry_after_cap = retry_after_cap
        self._secrets = secrets
        self._mask = SecretMask()
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.upload_timeout = httpx.Timeout(
            connect=self.timeout.connect,
            read=max(self.timeout.read or 0.0, 60.0),
            write=max(self.timeout.write or 0.0, UPLOAD_WRITE_TIMEOUT),
            pool=self.timeout.pool,
        )
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=self.timeout,
            transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            event_hooks={"request": [self._log_request], "response": [self._log_response]},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ secrets

    def remember(self, *values: str | None) -> None:
        """Mask these values too (a secret sent in a form field, a token just issued)."""
        self._mask.add(*values)

    def redact(self, text: str) -> str:
        """``text`` with every secret this client holds (or sent) masked."""
        if self._secrets is not None:
            self._mask.add(*self._secrets())
        return self._mask.redact(text)

    def scrub(self, exc: BaseException) -> None:
        """Mask secrets in the texts of ``exc`` and of the domain errors it was raised from."""
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, PodStudioError):
                current.message = self.redact(current.message)
                current.user_message = self.redact(current.user_message)
                current.args = tuple(
                    self.redact(a) if isinstance(a, str) else a for a in current.args
                )
                if isinstance(current, ValidationError):
                    current.details = [self.redact(d) for d in current.details]
            current = current.__cause__ or current.__context__

    def _learn_headers(self, headers: httpx.Headers) -> None:
        for name, value in headers.items():
            if name.lower() not in SECRET_HEADERS:
                continue
            scheme, _, credential = value.partition(" ")
            parts = [value, credential if scheme.lower() in ("bearer", "basic", "token") else ""]
            parts += value.split(":")  # x-api-key: <keystring>:<shared secret>
            self._mask.add(*parts)

    @staticmethod
    def redacted_headers(headers: httpx.Headers) -> dict[str, str]:
        return {k: (MASK if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}

    async def _log_request(self, request: httpx.Request) -> None:
        self._learn_headers(request.headers)
        if log.isEnabledFor(logging.DEBUG):
            line = (
                f"{self.service} -> {request.method} {request.url.path} "
                f"headers={self.redacted_headers(request.headers)}"
            )
            log.debug("%s", self.redact(line))

    async def _log_response(self, response: httpx.Response) -> None:
        if log.isEnabledFor(logging.DEBUG):
            request = response.request
            line = f"{self.service} <- {response.status_code} {request.method} {request.url.path}"
            log.debug("%s", self.redact(line))

    # ------------------------------------------------------------------ transport

    async def send(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        limit: int | None = None,
        request_timeout: httpx.Timeout | None = None,
        **request: Any,
    ) -> httpx.Response:
        """One exchange: the reply read up to ``limit`` (an error reply up to an excerpt),
        transport failures mapped. ``request`` is what ``httpx.AsyncClient.build_request``
        takes (``params``, ``content``, ``data``, ``files``, ``json``, ``headers``)."""
        cap = self.limit if limit is None else limit
        try:
            built = self.http.build_request(
                method, url, timeout=request_timeout or self.http.timeout, **request
            )
            response = await self.http.send(built, stream=True)
            try:
                ok = 200 <= response.status_code < 300
                return await read_bounded(
                    response,
                    limit=cap if ok else min(cap, ERROR_BODY_LIMIT),
                    what=f"the {operation.replace('_', ' ')} reply",
                    server=self.server,
                    service=self.service,
                    truncate=not ok,
                )
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise PodTimeoutError(
                f"{operation}: no answer in time ({type(exc).__name__})",
                service=self.service,
                user_message=f"{self.server} did not answer in time; it will be tried again.",
            ) from exc
        except httpx.DecodingError as exc:
            raise UpstreamDataError(
                f"{operation}: a reply that cannot be decoded ({type(exc).__name__})",
                service=self.service,
                user_message=f"{self.server} sent a garbled reply; it will be tried again.",
            ) from exc
        except (httpx.RequestError, httpx.InvalidURL) as exc:
            raise ServiceError(
                f"{operation}: connection failed ({type(exc).__name__})",
                service=self.service,
                user_message=f"Could not reach {self.server} (connection failed).",
            ) from exc

    # ------------------------------------------------------------------ answers

    def retry_after(self, headers: httpx.Headers) -> float | None:
        """The server's ``Retry-After`` in seconds (delta or HTTP date), capped; None."""
        return parse_retry_after(
            headers.get("Retry-After"), now=time.time(), cap=self.retry_after_cap
        )

    def json(self, response: httpx.Response, operation: str) -> Any:
        """The JSON of a 2xx reply (``{}`` when empty); garbage is an ``UpstreamDataError``."""
        if not response.content.strip():
            return {}
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UpstreamDataError(
                f"{operation}: HTTP {response.status_code} with a body that is not JSON",
                status_code=response.status_code,
                service=self.service,
                user_message=f"{self.server} sent a garbled reply; it will be tried again.",
            ) from exc

    def result(
        self,
        response: httpx.Response,
        operation: str,
        *,
        not_found: str | None = None,
        words: PlatformWords | None = None,
    ) -> Any:
        """The JSON of a 2xx reply, or the error for any other status."""
        if not 200 <= response.status_code < 300:
            raise self.status_error(response, operation, not_found=not_found, words=words)
        return self.json(response, operation)

    def status_error(
        self,
        response: httpx.Response,
        operation: str,
        *,
        not_found: str | None = None,
        words: PlatformWords | None = None,
    ) -> PodStudioError:
        """The domain error for a non-2xx ``response`` (the one status ladder), its texts
        masked. ``words`` replaces the edge's own (an OAuth endpoint speaks differently)."""
        error = self._ladder(response, operation, not_found, words or self.words)
        if error.service == "app":
            error.service = self.service
        self.scrub(error)
        return error

    def _ladder(
        self,
        response: httpx.Response,
        operation: str,
        not_found: str | None,
        words: PlatformWords,
    ) -> PodStudioError:
        status = response.status_code
        reason, details = error_reason(response)
        where = f"{operation}: HTTP {status}: {reason}"
        special = words.special(response, where, reason)
        if special is not None:
            return special
        service = self.service
        if status == 401:
            text = words.say(words.unauthorized, reason=reason)
            return AuthenticationError(
                where, status_code=status, service=service, user_message=text
            )
        if status == 403:
            text = words.forbidden_text(reason)
            return AuthenticationError(
                where, status_code=status, service=service, user_message=text
            )
        if status == 404:
            message = not_found or words.say(words.not_found, operation=operation)
            return APIError(
                f"{message} ({words.server}: {reason})",
                status_code=404,
                service=service,
                user_message=message + ("" if message.endswith(".") else "."),
                retryable=False,
            )
        if status == 429:
            return words.rate_limited(where, reason, self.retry_after(response.headers))
        if status in _VALIDATION_STATUSES:
            return ValidationError(
                where, details=details, service=service, user_message=words.rejected_text(reason)
            )
        if status >= 500:
            return ServiceError(
                where,
                status_code=status,
                service=service,
                user_message=words.say(words.failing, status=status),
            )
        return APIError(
            where,
            status_code=status,
            service=service,
            user_message=words.say(words.refused, status=status, reason=reason),
            retryable=False,
        )


def redacting(cls: C) -> C:
    """Class decorator: every ``PodStudioError`` leaving a public coroutine method of a client
    has the client's secrets masked (the client keeps its edge in ``self._edge``)."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        setattr(cls, name, _scrubbing(member))
    return cls


def _scrubbing(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except PodStudioError as exc:
            self._edge.scrub(exc)
            raise

    return wrapper
