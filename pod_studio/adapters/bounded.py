"""Adapters layer: bounded reads of HTTP bodies from servers we do not control.

A server (or something pretending to be one) can send a body of any size. Every adapter
streams its responses through ``read_bounded``: a ``Content-Length`` above the cap is refused
before a byte is read, the (decoded) body is counted while it streams and refused the moment
it passes the cap, and error bodies are only ever read up to a small excerpt. ``image_header``
reads the size of an image from its first bytes (Pillow reads only the header on ``open``), so
a download whose header promises too many pixels is stopped before the rest arrives.

httpx has no body cap of its own, hence this small helper.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import httpx
from PIL import Image, UnidentifiedImageError

from pod_studio.domain.errors import UpstreamDataError

MB = 1024 * 1024
JSON_LIMIT = 64 * MB  # /object_info of a ComfyUI with many custom nodes is a few MB
ERROR_BODY_LIMIT = MB  # an error body is shown as an excerpt (a 400 lists node errors)
IMAGE_LIMIT = 256 * MB
HEADER_PROBE_BYTES = 64 * 1024

_DROP_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
