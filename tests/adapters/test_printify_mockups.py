"""Tests for Printify's own mockups: the client reads their URLs from the product, the
download fetches them without the API token, bounded, http(s) only."""

from __future__ import annotations

import hashlib
import io
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from PIL import Image

from pod_studio.adapters.marketplaces.mockup_images import download_mockups
from pod_studio.adapters.marketplaces.printify import PrintifyClient
from pod_studio.domain.marketplace import ListingSpec, VariantPrice
from pod_studio.sandbox.printify import PrintifySandbox

TOKEN = "sandbox-token-mockups-s3cr3t"
BLACK_M, WHITE_M = 18112, 18102


def _spec(design: Path) -> ListingSpec:
    return ListingSpec.build(
        idem_key="mock-1",
        title="Mockup Tee",
        description="<p>Tee.</p>",
        tags=["tee"],
        design_path=design,
        design_sha256=hashlib.sha256(design.read_bytes()).hexdigest(),
        blueprint_id=12,
        print_provider_id=99,
        variants=[
            VariantPrice(variant_id=BLACK_M, price=Decimal("24.99")),
            VariantPrice(variant_id=WHITE_M, price=Decimal("22.00")),
        ],
    )


@pytest.fixture
def design(tmp_path: Path) -> Path:
    path = tmp_path / "sun.png"
    Image.new("RGB", (2400, 2400), (250, 40, 40)).save(path, "PNG")
    return path


@pytest.mark.asyncio
async def test_client_fills_images_and_they_download_as_jpegs_without_the_token(
    design: Path,
) -> None:
    async with PrintifySandbox(tokens={TOKEN}) as sb:
        client = PrintifyClient(lambda: TOKEN, base_url=sb.base_url, shop_id=sb.shop_id)
        try:
            draft = await client.create_listing(_spec(design))
            listing = await client.get_listing(draft.remote_id)
        finally:
            await client.aclose()
        assert len(listing.images) == 2  # one per enabled colour
        assert all(u.startswith(f"{sb.base_url}/mockup/{draft.remote_id}/") for u in listing.images)
        raw = sb.products[draft.remote_id]["images"]
        default = next(i["src"] for i in raw if i["is_default"])
        assert listing.images[0] == default

        images = await download_mockups(listing.images, service="printify")
        assert len(images) == 2
        colours = set()
        for data in images:
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "JPEG"
                colours.add(im.convert("RGB").getpixel((2, 2)))
                # the design is drawn on the chest
                r, g, b = im.convert("RGB").getpixel((im.width // 2, im.height // 3))
                assert r > 200 and g < 90 and b < 90
        assert len(colours) == 2  # black and white garments
        assert sb.mockup_requests_with_auth == 0


@pytest.mark.asyncio
async def test_sandbox_can_give_printify_image_host_urls(design: Path) -> None:
    async with PrintifySandbox(tokens={TOKEN}, mockup_host="https://images.printify.com/") as sb:
        client = PrintifyClient(lambda: TOKEN, base_url=sb.base_url, shop_id=sb.shop_id)
        try:
            draft = await client.create_listing(_spec(design))
            listing = await client.get_listing(draft.remote_id)
        finally:
            await client.aclose()
    assert listing.images
    assert all(
        u.startswith(f"https://images.printify.com/mockup/{draft.remote_id}/")
        and u.endswith("/x.jpg")
        for u in listing.images
    )


def _jpeg(size: tuple[int, int] = (40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.asyncio
async def test_download_is_bounded_plain_and_http_only() -> None:
    seen: list[httpx.Request] = []
    small = _jpeg()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        name = request.url.path
        if name == "/big.jpg":
            return httpx.Response(200, content=small + b"\0" * 4096)
        if name == "/text.jpg":
            return httpx.Response(200, content=b"<html>not an image</html>")
        if name == "/missing.jpg":
            return httpx.Response(404)
        return httpx.Response(200, content=small)

    urls = [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "https://user:pw@img.example/a.jpg",
        "https://img.example/big.jpg",
        "https://img.example/text.jpg",
        "https://img.example/missing.jpg",
        "https://img.example/ok.jpg",
        "https://img.example/later.jpg",
    ]
    images = await download_mockups(
        urls,
        service="printify",
        max_images=4,
        limit=len(small) + 100,
        transport=httpx.MockTransport(handler),
    )
    assert images == [small]  # big refused, text and 404 skipped, later beyond the cap
    assert [r.url.path for r in seen] == ["/big.jpg", "/text.jpg", "/missing.jpg", "/ok.jpg"]
    assert all("authorization" not in r.headers for r in seen)
    assert await download_mockups([], service="printify") == []
