"""E2E: a custom ("API") Printify shop locks a product when it is published; POD Studio makes
the storefront listing on Shopify itself and reports it back (``publishing_succeeded.json``),
or reports the failure, so no product is left locked. Run through ``pod-studio publish``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pod_studio.__main__ import main
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.shopify import ShopifySandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(180)

TOKEN = "sandbox-token-custom-shop"
SHOP_TOKEN = "shpat_sandbox"


@pytest.fixture
def printify() -> Iterator[tuple[str, PrintifySandbox]]:
    sandbox = PrintifySandbox(tokens=(TOKEN,), publish_mode="custom")
    with ServerThread(sandbox) as server:
        yield server.url, sandbox


@pytest.fixture
def shopify() -> Iterator[tuple[str, ShopifySandbox]]:
    sandbox = ShopifySandbox(tokens=(SHOP_TOKEN,))
    with ServerThread(sandbox) as server:
        yield server.url, sandbox


def _manifest(folder: Path) -> Path:
    path = folder / "sunset.png"
    im = Image.new("RGBA", (2400, 3000), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((100, 100, 2300, 2900), fill=(230, 120, 40, 255))
    im.save(path, "PNG")
    entry = {
        "image_id": "a" * 32,
        "prompt": "retro sunset over mountains",
        "seed": 1,
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([entry]), encoding="utf-8")
    return manifest


def _settings(printify_url: str, shopify_url: str | None) -> None:
    changes: dict[str, object] = {"printify": {"base_url": printify_url}}
    if shopify_url is not None:
        changes["shopify"] = {
            "shop_domain": "pod-studio-sandbox.myshopify.com",
            "base_url": shopify_url,
        }
    SettingsStore(app_paths().ensure().settings_file).save(AppSettings().with_changes(**changes))


def _publish(manifest: Path, *platforms: str) -> int:
    argv = ["publish", "--manifest", str(manifest), "--template", "Classic T-shirt", "--quiet"]
    for platform in platforms:
        argv += ["--platform", platform]
    return main(argv)


def test_custom_shop_gets_its_storefront_listing_and_is_unlocked(
    printify: tuple[str, PrintifySandbox],
    shopify: tuple[str, ShopifySandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (p_url, p_box), (s_url, s_box) = printify, shopify
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    monkeypatch.setenv("POD_SHOPIFY_TOKEN", SHOP_TOKEN)
    _settings(p_url, s_url)
    manifest = _manifest(tmp_path)

    # Printify and Shopify picked together: still one Shopify product for the design
    assert _publish(manifest, "printify", "shopify") == 0, capsys.readouterr()

    (product,) = p_box.products.values()
    assert product["is_locked"] is False
    assert product.get("external"), product
    (own,) = s_box.products.values()
    external = product["external"]
    external = external[0] if isinstance(external, list) else external
    assert external["id"] == own["id"]
    # a second run changes nothing
    assert _publish(manifest, "printify", "shopify") == 0
    assert len(p_box.products) == 1 and len(s_box.products) == 1


def test_without_a_storefront_the_product_is_unlocked_and_the_listing_waits(
    printify: tuple[str, PrintifySandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p_url, p_box = printify
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    _settings(p_url, None)
    manifest = _manifest(tmp_path)

    assert _publish(manifest, "printify") == 1
    out = capsys.readouterr().out
    assert "no storefront is set up" in out, out
    (product,) = p_box.products.values()
    assert product["is_locked"] is False  # publishing_failed.json unlocked it
    assert "external" not in product or not product["external"]


def test_a_printify_shop_connected_to_shopify_gets_no_second_shopify_product(
    shopify: tuple[str, ShopifySandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s_url, s_box = shopify
    native = PrintifySandbox(tokens=(TOKEN,), publish_mode="native", sales_channel="shopify")
    with ServerThread(native) as server:
        monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
        monkeypatch.setenv("POD_SHOPIFY_TOKEN", SHOP_TOKEN)
        _settings(server.url, s_url)
        assert _publish(_manifest(tmp_path), "printify", "shopify") == 0
    assert len(native.products) == 1
    assert s_box.products == {}  # Printify's own connection lists it on Shopify
    assert "| shopify | via-printify" in capsys.readouterr().out


@pytest.mark.asyncio
async def test_a_revoked_storefront_token_leaves_the_others_published_and_waits_for_a_fix(
    printify: tuple[str, PrintifySandbox],
    shopify: tuple[str, ShopifySandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Printify, Shopify and export at once with Shopify's token revoked: the other two are
    made; Shopify's listing waits with its reason (not dead-lettered: a wrong token is not the
    listing's fault), and once the token works again the same publish makes it."""
    from pod_studio.composition.headless import open_core, read_manifest, run_publish
    from pod_studio.domain.jobs import JobStatus
    from pod_studio.domain.orchestration import DesignPublishChanged
    from pod_studio.sandbox.shopify import ALL_SCOPES

    (p_url, _p_box), (s_url, s_box) = printify, shopify
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    monkeypatch.setenv("POD_SHOPIFY_TOKEN", SHOP_TOKEN)
    _settings(p_url, s_url)
    designs, _problems = read_manifest(_manifest(tmp_path))
    platforms = ["printify", "shopify", "export"]
    s_box.revoke(SHOP_TOKEN)
    seen: list[DesignPublishChanged] = []
    async with open_core(sinks=[lambda e: seen.append(e) if isinstance(e, DesignPublishChanged)
                                else None], servers=[]) as core:  # fmt: skip
        results = await run_publish(core, designs, ["Classic T-shirt"], platforms, draft=True)
        by_platform = {r.platform: r for r in results}
        assert by_platform["printify"].ok and by_platform["export"].ok
        shop = by_platform["shopify"]
        assert not shop.ok and "token" in shop.detail.lower() and "waits" in shop.detail, shop
        assert (await core.orchestrator.summary()).dead == {}
        assert seen == []  # still in progress: nothing is announced as failed
        assert s_box.products == {}

        s_box.set_scopes(SHOP_TOKEN, ALL_SCOPES)  # the seller fixed the token
        again = await run_publish(core, designs, ["Classic T-shirt"], platforms, draft=True)
        assert all(r.ok for r in again), again
        counts = (await core.orchestrator.summary()).counts
    assert counts[JobStatus.SUCCEEDED.value] == 3
    assert len(s_box.products) == 1
    assert seen and seen[-1].state == "published", seen
