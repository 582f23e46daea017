"""The headless ``publish`` command, run in-process through its own parser, against the
Printify and Shopify sandboxes and an export folder."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from pod_studio.__main__ import main
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.settings_store import SettingsStore
from pod_studio.cli.main import parse_args, run
from pod_studio.domain.products import default_templates, dump_templates
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.shopify import ShopifySandbox

TOKEN = "sandbox-token-cli-41c9"
TEE = "Classic T-shirt"


def parse(argv: list[str]) -> argparse.Namespace:
    return parse_args(["publish", *argv])


async def run_publish(args: argparse.Namespace) -> int:
    """The command as ``pod-studio publish`` runs it (its own event loop, the exit-code
    policy), in a worker thread while the sandbox serves on the test's loop."""
    return await asyncio.to_thread(run, args)


def png(path: Path, size: tuple[int, int], color: tuple[int, int, int] = (30, 160, 90)) -> Path:
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).rectangle((20, 20, size[0] - 20, size[1] - 20), fill=(*color, 255))
    im.save(path, "PNG")
    return path


def write_manifest(folder: Path, files: list[tuple[str, str]]) -> Path:
    """A generate-style manifest for (file name, prompt) pairs already in ``folder``."""
    entries = []
    for seed, (name, prompt) in enumerate(files):
        data = (folder / name).read_bytes()
        entries.append(
            {
                "image_id": hashlib.md5(name.encode()).hexdigest(),
                "job_id": f"job-{seed}",
                "prompt": prompt,
                "seed": seed,
                "file": name,
                "width": 0,
                "height": 0,
                "sha256": hashlib.sha256(data).hexdigest(),
                "server": "http://127.0.0.1:8188",
                "prompt_id": f"p{seed}",
                "seconds": 1.0,
            }
        )
    path = folder / "manifest.json"
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    png(folder / "sunset.png", (2400, 3000))
    png(folder / "forest.png", (2400, 3000), (20, 60, 30))
    png(folder / "tiny.png", (200, 200))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is not an image", encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    # each test has its own home (tests/conftest.py): its own job queue, as each sandbox is new
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[PrintifySandbox]:
    async with PrintifySandbox(tokens={TOKEN}) as sb:
        yield sb


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def find(lines: list[str], *parts: str) -> str:
    hits = [line for line in lines if all(p in line for p in parts)]
    assert len(hits) == 1, (parts, lines)
    return hits[0]


@pytest.mark.asyncio
async def test_publishes_a_generate_run_to_printify_and_export(
    sandbox: PrintifySandbox,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    manifest = write_manifest(
        run_dir, [("sunset.png", "retro sunset, palm trees"), ("forest.png", "misty pine forest")]
    )
    args = parse(
        [
            "--manifest", str(manifest), "--template", TEE,
            "--platform", "printify", "--platform", "export",
            "--printify-url", sandbox.base_url, "--export-dir", str(tmp_path / "export"),
            "--json", str(tmp_path / "results.json"),
        ]
    )  # fmt: skip
    code = await run_publish(args)
    out = lines_of(capsys.readouterr().out)
    assert code == 0, out
    assert len(out) == 4 and all(line.startswith("OK") for line in out)
    printify_line = find(out, "sunset.png", "| printify |")
    product_id = printify_line.rsplit("| ", 1)[1].split(" ")[0]
    assert sandbox.products[product_id]["external"]  # published, not left as a draft
    assert "(published)" in printify_line
    assert len(list((tmp_path / "export").iterdir())) == 2
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["ok"] for r in results] == [True] * 4
    # The shop was found on its own (the account has exactly one).
    assert sandbox.request_counts["GET /v1/shops.json"] >= 1

    # Running it again creates nothing new: every listing is found by its key.
    creates = sandbox.request_counts["POST /v1/shops/{shop_id}/products.json"]
    assert await run_publish(args) == 0
    assert sandbox.request_counts["POST /v1/shops/{shop_id}/products.json"] == creates
    assert len(sandbox.products) == 2


@pytest.mark.asyncio
async def test_bad_inputs_fail_where_they_happen_and_nothing_else_is_lost(
    sandbox: PrintifySandbox,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    write_manifest(
        run_dir,
        [
            ("sunset.png", "retro sunset"),
            ("empty.png", "empty file"),
            ("notes.png", "not an image"),
            ("tiny.png", "tiny design"),
        ],
    )
    tee = default_templates()[0]
    wrong_provider = tee.model_copy(update={"name": "Wrong Provider", "blueprint_id": 77,
                                            "print_provider_id": 29})  # fmt: skip
    absurd = tee.model_copy(update={"name": "Absurd Price"})
    data: dict[str, Any] = json.loads(dump_templates([tee, wrong_provider, absurd]))
    data["templates"][2]["price"] = {"base": "5000", "size_overrides": {}, "currency": "USD"}
    negative = json.loads(json.dumps(data["templates"][0]))
    negative.update(name="Negative Price", price={"base": "-5", "currency": "USD"})
    data["templates"].append(negative)
    templates_file = tmp_path / "templates.json"
    templates_file.write_text(json.dumps(data), encoding="utf-8")

    args = parse(
        [
            "--manifest", str(run_dir), "--templates-file", str(templates_file),
            "--template", TEE, "--template", "Wrong Provider",
            "--template", "Absurd Price", "--template", "Negative Price",
            "--platform", "printify", "--printify-url", sandbox.base_url, "--draft",
        ]
    )  # fmt: skip
    code = await run_publish(args)
    captured = capsys.readouterr()
    out = lines_of(captured.out)
    assert code == 1
    assert len(out) == 16  # 4 designs x 4 templates, one line each
    assert find(out, "sunset.png", TEE).startswith("OK")
    assert "does not offer blueprint 77" in find(out, "sunset.png", "Wrong Provider")
    assert "prepare:" in find(out, "sunset.png", "Wrong Provider")
    absurd_line = find(out, "sunset.png", "Absurd Price")
    assert "create:" in absurd_line and "sanity limit" in absurd_line
    negative_line = find(out, "sunset.png", "Negative Price")
    assert "invalid" in negative_line and "greater than zero" in negative_line
    assert "empty (0 bytes)" in find(out, "empty.png", TEE)
    assert "not an image" in find(out, "notes.png", TEE)
    tiny_line = find(out, "tiny.png", TEE)
    assert "prepare:" in tiny_line and "Resolution too low" in tiny_line
    assert len(sandbox.products) == 1  # only the good one was created
    assert "1 of 16 listing(s) exist" in captured.err


@pytest.mark.asyncio
async def test_wrong_token_fails_printify_in_one_line_and_export_still_runs(
    sandbox: PrintifySandbox,
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POD_PRINTIFY_TOKEN", "wrong-token-value")
    manifest = write_manifest(run_dir, [("sunset.png", "retro sunset")])
    args = parse(
        [
            "--manifest", str(manifest), "--template", TEE,
            "--platform", "printify", "--platform", "export",
            "--printify-url", sandbox.base_url, "--export-dir", str(tmp_path / "export"),
        ]
    )  # fmt: skip
    code = await run_publish(args)
    captured = capsys.readouterr()
    out = lines_of(captured.out)
    assert code == 1
    failed = find(out, "| printify |")
    assert failed.startswith("FAIL") and "rejected the API token" in failed
    assert "wrong-token-value" not in captured.out + captured.err
    assert find(out, "| export |").startswith("OK")
    assert sum(sandbox.request_counts.values()) == 1  # one shops call, no retries
    assert "retry" not in captured.err


@pytest.mark.asyncio
async def test_missing_token_and_unknown_shop_are_explained(
    sandbox: PrintifySandbox,
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = write_manifest(run_dir, [("sunset.png", "retro sunset")])
    base = ["--manifest", str(manifest), "--template", TEE, "--platform", "printify"]
    base += ["--printify-url", sandbox.base_url, "--draft"]

    assert await run_publish(parse(base)) == 1
    line = find(lines_of(capsys.readouterr().out), "| printify |")
    assert "POD_PRINTIFY_TOKEN" in line and "Settings" in line

    monkeypatch.setenv("POD_PRINTIFY_TOKEN", TOKEN)
    assert await run_publish(parse([*base, "--shop-id", "999"])) == 1
    line = find(lines_of(capsys.readouterr().out), "| printify |")
    assert f"shop 999 is not on this account (shops: {sandbox.shop_id}" in line
    assert not sandbox.products


@pytest.mark.asyncio
async def test_usage_errors_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(run_dir, [("sunset.png", "retro sunset")])
    code = await run_publish(
        parse(["--manifest", str(manifest), "--template", "Mug", "--platform", "export"])
    )
    assert code == 2
    assert "no product template named 'Mug'" in capsys.readouterr().err
    code = await run_publish(
        parse(["--manifest", str(tmp_path / "nowhere"), "--template", TEE, "--platform", "export"])
    )
    assert code == 2
    assert "no manifest at" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_a_wrong_shopify_token_is_refused_before_queueing_and_the_fix_needs_no_retry(
    run_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Shopify's token is checked before anything is queued, as Printify's is: a wrong one
    fails Shopify's listings in one line each (nothing queued, nothing dead-lettered), and the
    same command run with the right token makes every listing (no ``retry --all-dead``)."""
    right = "shpat_sandbox_cli_right"
    manifest = write_manifest(
        run_dir, [("sunset.png", "retro sunset, palm trees"), ("forest.png", "misty pine forest")]
    )
    async with ShopifySandbox(tokens=(right,)) as shop:
        settings = AppSettings().with_changes(
            shopify={"shop_domain": "pod-studio-sandbox.myshopify.com", "base_url": shop.base_url}
        )
        SettingsStore(app_paths().ensure().settings_file).save(settings)
        args = parse(
            [
                "--manifest", str(manifest), "--template", TEE,
                "--platform", "shopify", "--platform", "export",
                "--export-dir", str(tmp_path / "export"),
            ]
        )  # fmt: skip

        monkeypatch.setenv("POD_SHOPIFY_TOKEN", "shpat_wrong_value_9d1e")
        code = await run_publish(args)
        captured = capsys.readouterr()
        out = lines_of(captured.out)
        assert code == 1, out
        assert len(out) == 4
        for line in (
            find(out, "sunset.png", "| shopify |"),
            find(out, "forest.png", "| shopify |"),
        ):
            assert line.startswith("FAIL") and "token" in line.lower(), line
        assert "shpat_wrong_value_9d1e" not in captured.out + captured.err
        assert all(line.startswith("OK") for line in out if "| export |" in line)
        assert shop.products == {}
        assert shop.request_counts["unauthorized"] == 1  # the one credential check
        assert await asyncio.to_thread(main, ["queue"]) == 0
        listed = capsys.readouterr().out
        assert "@ export" in listed and "@ shopify" not in listed, listed  # nothing queued

        monkeypatch.setenv("POD_SHOPIFY_TOKEN", right)
        code = await run_publish(args)
        out = lines_of(capsys.readouterr().out)
        assert code == 0, out
        assert len(out) == 4 and all(line.startswith("OK") for line in out), out
        assert len(shop.products) == 2
