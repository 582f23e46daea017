"""The headless commands on the one engine (``pod_studio.__main__.main``, in-process, in a
test home), against the sandbox ComfyUI and Printify servers on 127.0.0.1:0.

Each test pins one behaviour the restructure into ``composition`` / ``cli`` promised: queued
Printify jobs resumed with the seller's settings, attempts charged only for a job's own
failures, one run per batch in the statistics, overrides checked before anything is sent,
``generate`` idempotent across runs and interruptions, one job per idempotency key, and a
strict command line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image, ImageDraw

from pod_studio.__main__ import main
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.composition.core import Core
from pod_studio.composition.headless import open_core
from pod_studio.domain.models import GeneratedImage, JobSpec
from pod_studio.domain.products import default_templates, dump_templates
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(120)

TOKEN = "sandbox-token-engine-7d21"
T = TypeVar("T")


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.02, steps=2)) as thread:
        yield thread


@pytest.fixture
def printify() -> Iterator[ServerThread]:
    with ServerThread(PrintifySandbox(tokens={TOKEN})) as thread:
        yield thread


@pytest.fixture(autouse=True)
def _no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    # the secret store then reads only the environment (POD_PRINTIFY_TOKEN), never a keyring
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


def save_settings(**changes: Any) -> AppSettings:
    settings = AppSettings().with_changes(**changes)
    SettingsStore(app_paths().ensure().settings_file).save(settings)
    return settings


def with_core(work: Callable[[Core], Awaitable[T]], **options: Any) -> T:
    """Run ``work`` on the engine as the commands open it (queue only by default)."""

    async def go() -> T:
        async with open_core(**({"connect": False} | options)) as core:
            return await work(core)

    return asyncio.run(go())


def design(folder: Path, name: str, size: tuple[int, int] = (2400, 3000)) -> GeneratedImage:
    import hashlib

    path = folder / name
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((40, 40, size[0] - 40, size[1] - 40), fill=(200, 80, 40, 255))
    im.save(path, "PNG")
    data = path.read_bytes()
    return GeneratedImage(
        image_id=hashlib.md5(data).hexdigest(),
        job_id="",
        prompt=f"retro sunset {Path(name).stem}",
        seed=1,
        width=size[0],
        height=size[1],
        file=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        server="",
        prompt_id="",
        seconds=0.0,
    )


def history_graphs(comfy: ServerThread) -> list[dict[str, Any]]:
    """The graphs the sandbox ComfyUI ran, from its /history (as the real server keeps it)."""
    body = httpx.get(f"{comfy.url}/history", timeout=10).json()
    return [entry["prompt"][2] for entry in body.values()]


# --- a. resume runs queued Printify jobs with the seller's settings -----------------------------


def test_resume_runs_queued_printify_jobs_with_the_sellers_settings(
    comfy: ServerThread,
    printify: ServerThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    templates = json.loads(dump_templates([default_templates()[0]]))["templates"]
    templates[0].update(name="Shop Tee", title_template="{prompt} tee by Shop")
    templates[0]["price"] = {"base": "27.00", "size_overrides": {}, "currency": "USD"}
    save_settings(
        comfyui_servers=[comfy.url],
        workflow_values={"3.steps": 7},
        printify={"base_url": printify.server.base_url},
        product_templates=templates,
    )
    art = design(tmp_path, "sun.png")

    async def seed(core: Core) -> None:
        await core.orchestrator.enqueue_generation(
            [JobSpec(job_id="gen-1", prompt="a lighthouse", seed=3, width=256, height=256)]
        )
        await core.orchestrator.enqueue_publish([art], ["Shop Tee"], ["printify"], draft=False)

    with_core(seed)

    code = main(["resume", "--json", "--quiet", "--horizon", "30"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0, body
    assert body["counts"]["succeeded"] == 2
    [graph] = history_graphs(comfy)
    assert graph["3"]["inputs"]["steps"] == 7  # the seller's fixed input reached ComfyUI
    sandbox: PrintifySandbox = printify.server
    [product] = sandbox.products.values()
    assert product["title"] == "retro sunset sun tee by Shop"
    assert {v["price"] for v in product["variants"] if v.get("is_enabled", True)} == {2700}
    assert product["external"]  # published, as the job asked
