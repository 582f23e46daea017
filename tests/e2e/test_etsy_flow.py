"""E2E: a seller connects Etsy from POD Studio (OAuth with PKCE through a one-shot listener on
127.0.0.1) and publishes a design as an Etsy listing, through the same engine the window and
the commands run (``open_core``); the day's remaining budget reaches the health check."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.cli.main import main
from pod_studio.composition.headless import open_core, read_manifest, run_publish
from pod_studio.domain.settings import AppSettings, SecretName
from pod_studio.sandbox.etsy import EtsySandbox
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(120)

PRINTIFY_TOKEN = "sandbox-token-etsy-storefront"


async def _browser(url: str) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as browser:
        response = await browser.get(url)
        assert response.status_code == 200, response.text


def _manifest(folder: Path) -> Path:
    path = folder / "fox.png"
    im = Image.new("RGBA", (2400, 3000), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((100, 100, 2300, 2900), fill=(220, 90, 30, 255))
    im.save(path, "PNG")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = {"image_id": "b" * 32, "prompt": "a red fox", "seed": 3, "file": path.name,
             "sha256": digest}  # fmt: skip
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([entry]), encoding="utf-8")
    return manifest


def _set_up_etsy(sandbox: EtsySandbox, **changes: Any) -> MemorySecretStore:
    """Settings that point Etsy at the sandbox (saved), and a secret store with its app keys."""
    settings = AppSettings().with_changes(
        etsy={
            "base_url": sandbox.base_url,
            "auth_base_url": sandbox.base_url,
            "connect_url": f"{sandbox.base_url}/oauth/connect",
            "redirect_port": 0,
            "shipping_profile_id": 234107945503,
            "taxonomy_id": 482,
        },
        **changes,
    )
    SettingsStore(app_paths().ensure().settings_file).save(settings)
    secrets = MemorySecretStore()
    secrets.set(SecretName.ETSY_KEYSTRING, "sandboxkeystring")
    secrets.set(SecretName.ETSY_SHARED_SECRET, "sandboxsecret")
    return secrets


@pytest.mark.asyncio
async def test_connect_then_publish_an_etsy_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with EtsySandbox(per_second=1000) as sandbox:
        secrets = _set_up_etsy(sandbox)
        designs, _problems = read_manifest(_manifest(tmp_path))
        async with open_core(secrets=secrets) as core:
            assert {p: ok for p, ok, _r in core.platforms.rows()}["etsy"] is False
            shop = await core.platforms.connect_etsy(_browser)
            assert shop
            assert secrets.get(SecretName.ETSY_REFRESH_TOKEN)
            results = await run_publish(
                core, designs, ["Classic T-shirt"], ["etsy"], draft=False, horizon=30
            )
            assert [r.ok for r in results] == [True], results
            await core.health.check_now()
        assert len(sandbox.listings) == 1
        (listing,) = sandbox.listings.values()
        assert listing["state"] == "active"
        assert len(listing["title"]) <= 140
    # `pod-studio stats` shows what is left of the day, from the budget's own file (no call)
    capsys.readouterr()
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = lines.index("Day budgets")
    match = re.fullmatch(r"\s+etsy\s+(\d+)/10000 requests left today", lines[at + 1])
    assert match is not None, out
    assert 9_900 < int(match.group(1)) < 10_000  # the calls this publish made are counted


async def _connected_core_publish(
    tmp_path: Path, sandbox: EtsySandbox, printify: PrintifySandbox, printify_url: str
) -> list[bool]:
    """Connect Etsy, then publish one design to Printify only (through the engine)."""
    secrets = _set_up_etsy(sandbox, printify={"base_url": printify_url})
    secrets.set(SecretName.PRINTIFY_TOKEN, PRINTIFY_TOKEN)
    designs, _problems = read_manifest(_manifest(tmp_path))
    async with open_core(secrets=secrets) as core:
        assert await core.platforms.connect_etsy(_browser)
        results = await run_publish(
            core, designs, ["Classic T-shirt"], ["printify"], draft=False, horizon=60
        )
    return [r.ok for r in results]


@pytest.mark.asyncio
async def test_a_custom_printify_shop_gets_its_etsy_listing_made_and_reported(
    tmp_path: Path,
) -> None:
    """With Etsy as the only storefront, a custom ("API") Printify shop's product gets its
    Etsy listing from POD Studio, reported back with publishing_succeeded (unlocked)."""
    printify = PrintifySandbox(tokens=(PRINTIFY_TOKEN,), publish_mode="custom")
    async with EtsySandbox(per_second=1000) as sandbox:
        with ServerThread(printify) as server:
            assert await _connected_core_publish(tmp_path, sandbox, printify, server.url) == [True]
    (product,) = printify.products.values()
    assert product["is_locked"] is False
    external = product["external"]
    external = external[0] if isinstance(external, list) else external
    (listing_id, listing) = next(iter(sandbox.listings.items()))
    assert len(sandbox.listings) == 1 and str(external["id"]) == str(listing_id)
    assert listing["state"] == "active"


@pytest.mark.asyncio
async def test_a_printify_shop_connected_to_etsy_gets_no_second_etsy_listing(
    tmp_path: Path,
) -> None:
    printify = PrintifySandbox(
        tokens=(PRINTIFY_TOKEN,), publish_mode="native", sales_channel="etsy"
    )
    async with EtsySandbox(per_second=1000) as sandbox:
        with ServerThread(printify) as server:
            assert await _connected_core_publish(tmp_path, sandbox, printify, server.url) == [True]
    assert len(printify.products) == 1
    assert sandbox.listings == {}  # Printify's own Etsy connection lists it


def test_disconnect_says_what_it_did(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pod-studio etsy disconnect`` runs the engine's one disconnect and tells the truth:
    nothing to remove when Etsy was not connected; tokens it cannot remove (environment
    variables) are named, not reported as removed."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    assert main(["etsy", "disconnect"]) == 0
    assert "Etsy was not connected: there were no tokens to remove" in capsys.readouterr().out

    monkeypatch.setenv("POD_ETSY_TOKEN", "12345678.env-access-token")
    monkeypatch.setenv("POD_ETSY_REFRESH_TOKEN", "12345678.env-refresh-token")
    assert main(["etsy", "disconnect"]) == 1
    out = capsys.readouterr().out
    assert "still connected" in out and "POD_ETSY_REFRESH_TOKEN" in out, out
    assert "removed" not in out
    assert "env-refresh-token" not in out
