"""Adapters layer: downloads of a platform's own mockup images (Printify's renders).

The URLs come from the platform's product JSON and point at its image host, not at its API:
they are fetched with a plain client of their own (no ``Authorization`` header, so the API
token never reaches the image host), only over http(s), at most a few of them, each through
``http_edge.read_bounded`` with a byte cap and a pixel cap. A mockup that cannot be had is
logged and left out; the others still come back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from pod_studio import USER_AGENT
from pod_studio.adapters.http_edge import MB, image_header, pixel_guard, read_bounded
from pod_studio.domain.errors import PodStudioError

log = logging.getLogger(__name__)

MOCKUP_LIMIT = 8 * MB  # Printify's mockups are JPEGs of a few hundred KB
MOCKUP_MAX_PIXELS = 25_000_000
MAX_MOCKUPS = 4
TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=10.0)


def _allowed(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc


async def download_mockups(
    urls: Sequence[str],
    *,
    service: str,
    max_images: int = MAX_MOCKUPS,
    limit: int = MOCKUP_LIMIT,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[bytes]:
    """The bytes of up to ``max_images`` of ``urls`` (in order) that are images."""
    wanted = [u for u in urls if _allowed(u)][:max_images]
    if not wanted:
        return []
    out: list[bytes] = []
    async with httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
        timeout=TIMEOUT,
        follow_redirects=True,
        max_redirects=3,
        transport=transport,
    ) as client:
        for url in wanted:
            server = urlsplit(url).hostname or "the image host"
            try:
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        log.info("mockup %s: HTTP %s", url, response.status_code)
                        continue
                    read = await read_bounded(
                        response,
                        limit=limit,
                        what="a mockup image",
                        server=server,
                        service=service,
                        check_head=pixel_guard(
                            max_pixels=MOCKUP_MAX_PIXELS,
                            what="a mockup image",
                            server=server,
                            service=service,
                        ),
                    )
            except (httpx.HTTPError, PodStudioError) as exc:
                log.info("mockup %s not downloaded: %s", url, exc)
                continue
            if image_header(read.content) is None:
                log.info("mockup %s is not an image", url)
                continue
            out.append(read.content)
    return out
