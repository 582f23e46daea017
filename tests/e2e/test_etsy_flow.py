"""E2E: a seller connects Etsy from POD Studio (OAuth with PKCE through a one-shot listener on
127.0.0.1) and publishes a design as an Etsy listing, through the same engine the window and
the commands run (``open_core``); the day's remaining budget reaches the health check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.composition.headless import open_core, read_manifest, run_publish
from pod_studio.domain.settings import AppSettings, SecretName
from pod_studio.sandbox.etsy import EtsySandbox

pytestmark = pytest.mark.timeout(120)


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


@pytest.mark.asyncio
async def test_connect_then_publish_an_etsy_listing(tmp_path: Path) -> None:
    async with EtsySandbox(per_second=1000) as sandbox:
        settings = AppSettings().with_changes(
            etsy={
                "base_url": sandbox.base_url,
                "auth_base_url": sandbox.base_url,
                "connect_url": f"{sandbox.base_url}/oauth/connect",
                "redirect_port": 0,
                "shipping_profile_id": 234107945503,
                "taxonomy_id": 482,
            }
        )
        SettingsStore(app_paths().ensure().settings_file).save(settings)
        secrets = MemorySecretStore()
        secrets.set(SecretName.ETSY_KEYSTRING, "sandboxkeystring")
        secrets.set(SecretName.ETSY_SHARED_SECRET, "sandboxsecret")
        designs, _problems = read_manifest(_manifest(tmp_path))
        async with open_core(secrets=secrets) as core:
            assert {p: ok for p, ok, _r in core.platforms()}["etsy"] is False
            shop = await core.connect_etsy(_browser)
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
