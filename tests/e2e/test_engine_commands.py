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
import contextlib
import hashlib
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
from pod_studio.composition.headless import batch_specs, open_core, run_generation
from pod_studio.domain.events import Event, ImageReady
from pod_studio.domain.jobs import JobStatus
from pod_studio.domain.models import GeneratedImage, GenerationRequest, JobSpec
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


# --- c. one event per fact: a resumed batch is one run ----------------------------------------


def generate_args(comfy: ServerThread, out: Path, *extra: str) -> list[str]:
    return [
        "generate", "--server", comfy.url, "--prompt", "a red fox", "--prompt", "a blue owl",
        "--seed", "5", "--width", "128", "--height", "128", "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def pipeline_stats(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["stats", "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out)["pipeline"])


def test_stats_show_no_success_rate_before_any_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "success rate" in x]
    assert line.split()[-1] == "—"


def test_a_batch_resumed_after_a_restart_counts_as_one_run(
    comfy: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    request = GenerationRequest(prompts=["a red fox", "a blue owl"], seed=5, width=128, height=128)

    async def record_only(core: Core) -> None:  # the jobs are recorded, then the app stops
        await core.orchestrator.enqueue_generation(batch_specs(request, core.template, out))

    with_core(record_only)
    assert main(generate_args(comfy, out)) == 0  # a later run finishes the same batch
    pipeline = pipeline_stats(capsys)
    assert (pipeline["runs"], pipeline["successful_runs"], pipeline["images"]) == (1, 1, 2)


# --- d. overrides are applied before preflight ------------------------------------------------


@pytest.mark.parametrize("how", ["--checkpoint", "--set"])
def test_a_checkpoint_override_is_checked_against_the_server(
    comfy: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    sandbox: ComfyUISandbox = comfy.server
    other = next(c for c in sandbox.checkpoints if c != "pod-demo-xl.safetensors")

    def flag(name: str) -> list[str]:
        return ["--checkpoint", name] if how == "--checkpoint" else ["--set", f"4.ckpt_name={name}"]

    assert main(generate_args(comfy, tmp_path / "ok", *flag(other))) == 0
    graphs = history_graphs(comfy)
    assert len(graphs) == 2 and {g["4"]["inputs"]["ckpt_name"] for g in graphs} == {other}
    capsys.readouterr()
    code = main(generate_args(comfy, tmp_path / "no", *flag("missing-model.safetensors")))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "missing-model.safetensors" in err and "Traceback" not in err
    assert len(history_graphs(comfy)) == 2  # refused before anything was sent


# --- e. generate twice (and after an interruption) never generates or lists twice ------------


def test_generate_run_again_generates_and_lists_nothing_twice(
    comfy: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    request = GenerationRequest(
        prompts=["a red fox", "a blue owl", "a green frog"], seed=5, width=128, height=128
    )

    async def interrupted() -> None:
        """The batch starts; after its first image the run is cancelled (as Ctrl-C does)."""
        first = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, ImageReady):
                first.set()

        async with open_core(servers=[comfy.url], sinks=[on_event]) as core:
            run = asyncio.create_task(run_generation(core, request, out))
            await first.wait()
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run

    asyncio.run(interrupted())
    assert not (out / "manifest.json").exists()  # the run did not get to write its view

    async def succeeded(core: Core) -> int:
        return (await core.ledger.counts())[JobStatus.SUCCEEDED]

    assert with_core(succeeded) < 3  # really interrupted: work was left for the next run
    args = [
        "generate", "--server", comfy.url, "--prompt", "a red fox", "--prompt", "a blue owl",
        "--prompt", "a green frog", "--seed", "5", "--width", "128", "--height", "128",
        "--out", str(out), "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 0  # finished already: nothing to do
    sandbox: ComfyUISandbox = comfy.server
    # Each design was made once; the cancel may have interrupted prompts mid-run (Ctrl-C
    # stops the GPU work too, and a queued prompt may start before its delete arrives):
    # those, and only those, were run again.
    completed = sandbox.completed_prompt_ids()
    assert len(completed) == 3
    extra = [p for p in sandbox.executed_prompt_ids if p not in completed]
    assert set(extra) <= set(sandbox.interrupted_prompt_ids()), extra
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == 3 and len({e["image_id"] for e in manifest}) == 3
    assert len(list(out.glob("*.png"))) == 3


# --- f. same idempotency key, one piece of work -----------------------------------------------


def test_a_design_named_twice_is_one_listing_and_one_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = design(tmp_path, "sun.png", (1200, 1500))
    entry = {"file": "sun.png", "prompt": art.prompt, "sha256": art.sha256, "seed": 1}
    (tmp_path / "manifest.json").write_text(json.dumps([entry, dict(entry)]), encoding="utf-8")
    export = tmp_path / "export"
    code = main(
        ["publish", "--manifest", str(tmp_path), "--template", "Classic T-shirt",
         "--platform", "export", "--export-dir", str(export), "--quiet", "--draft"]
    )  # fmt: skip
    lines = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith("OK")
    assert len([p for p in export.iterdir() if p.is_dir()]) == 1

    async def twice(core: Core) -> tuple[list[str], int]:
        ids = await core.orchestrator.enqueue_publish([art, art], ["Classic T-shirt"], ["export"])
        return ids, len(await core.ledger.list_jobs())

    ids, jobs = with_core(twice)
    assert len(set(ids)) == 1 and jobs == 1  # the job of the publish run above, not a second


# --- g. a strict command line ---------------------------------------------------------------


def test_unknown_command_or_flag_is_a_usage_error_with_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["generat"], ["generate", "--promtp", "x", "--out", "o"], ["queue", "--jsn"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "did you mean" in capsys.readouterr().err


def test_version_and_sandbox_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from pod_studio import __version__
    from pod_studio.cli.main import parse_args
    from pod_studio.cli.sandbox import DEFAULT_PORTS

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out
    args = parse_args(["sandbox", "printify"])
    assert args.port is None and DEFAULT_PORTS[args.kind] == 8790
    assert parse_args(["sandbox", "printify", "--fault-rate", "0.1"]).fault_rate == 0.1
    with pytest.raises(SystemExit) as info:
        parse_args(["sandbox", "comfyui", "--token", "t"])
    assert info.value.code == 2
    assert "--token applies to `sandbox printify` or `sandbox shopify` only" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as info:
        parse_args(["sandbox", "etsy", "--seconds-per-job", "2"])
    assert info.value.code == 2


# --- b. attempts are charged only for the job's own failures ----------------------------------


def test_a_listing_for_a_platform_not_set_up_waits_uncharged_with_its_reason(
    printify: ServerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_settings(
        comfyui_servers=["http://127.0.0.1:9"], printify={"base_url": printify.server.base_url}
    )
    art = design(tmp_path, "sun.png", (1200, 1500))

    async def seed(core: Core) -> list[str]:
        return await core.orchestrator.enqueue_publish([art], ["Classic T-shirt"], ["printify"])

    [job_id] = with_core(seed)
    code = main(["resume", "--quiet", "--horizon", "600"])  # no token: nothing will change
    assert code == 1, capsys.readouterr()
    assert main(["queue"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if job_id in x]
    state, kind, attempts = line.split()[:3]
    assert (state, kind, attempts.split("/")[0]) == ("retry_wait", "publish", "0"), line
    assert "not set up" in line
    assert not printify.server.request_counts  # nothing was sent
