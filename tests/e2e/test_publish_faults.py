"""E2E: one headless ``pod-studio publish`` of 8 listings with 30 % injected faults on every
Printify route (5xx, resets before and after handling, timeouts, 429) ends 8 of 8, with one
product per listing: the durable queue waits out breaker pauses instead of giving up."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pod_studio.__main__ import main
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(240)

TOKEN = "sandbox-token-faults-7f3a"


@pytest.fixture
def faulty_printify() -> Iterator[tuple[ServerThread, PrintifySandbox]]:
    sandbox = PrintifySandbox(tokens=(TOKEN,), fault_rate=0.3, rng_seed=11, hang_seconds=3.0)
    with ServerThread(sandbox) as server:
        yield server, sandbox


def _designs(folder: Path, count: int) -> Path:
    entries = []
    for n in range(count):
        path = folder / f"design-{n}.png"
        im = Image.new("RGBA", (2400, 3000), (0, 0, 0, 0))
        ImageDraw.Draw(im).ellipse((100, 100, 2300, 2900), fill=(20 * n, 120, 200 - 10 * n, 255))
        im.save(path, "PNG")
        entries.append(
            {
                "image_id": f"{n:032x}",
                "prompt": f"retro sunset number {n}",
                "seed": n,
                "file": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        )
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(entries), encoding="utf-8")
    return manifest


def test_eight_listings_through_thirty_percent_faults(
    faulty_printify: tuple[ServerThread, PrintifySandbox],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, sandbox = faulty_printify
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    fast_retries = {"max_retries": 4, "initial_delay": 0.05, "max_delay": 0.5}
    settings = AppSettings().with_changes(
        printify={"base_url": server.url, "read_timeout": 1.0},
        retry={"printify": fast_retries},
        breakers={"printify": {"failure_threshold": 5, "reset_timeout": 1.0}},
    )
    SettingsStore(app_paths().ensure().settings_file).save(settings)
    manifest = _designs(tmp_path, 8)

    code = main(
        ["publish", "--manifest", str(manifest), "--template", "Classic T-shirt",
         "--platform", "printify", "--draft", "--quiet", "--horizon", "120"]
    )  # fmt: skip

    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("OK", "FAIL"))]
    assert code == 0, out
    assert len(lines) == 8 and all(line.startswith("OK") for line in lines), out
    assert sum(sandbox.random_faults.values()) > 0, "no fault was injected"
    # never a duplicate product: one per design (the SKU marker names the listing)
    markers = Counter(
        str(p["variants"][0]["sku"]).rsplit("-", 1)[0] for p in sandbox.products.values()
    )
    assert len(markers) == 8, markers
    assert set(markers.values()) == {1}, markers
