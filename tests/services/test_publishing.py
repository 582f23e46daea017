"""Publishing through the path that ships: the engine's durable queue (``open_core`` +
``run_publish``, as ``pod-studio publish`` and the window run it) over the Printify sandbox
(real sockets) and the export folder, with the ``PublishService`` and Printify's strategy."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from pod_studio.adapters.imaging import prepare_print_file
from pod_studio.adapters.marketplaces.printify import PrintifyClient, marker_for
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.composition.core import Core
from pod_studio.composition.headless import ListingResult, open_core, run_publish
from pod_studio.domain.events import Event, PublishDone, PublishStepChanged
from pod_studio.domain.jobs import ErrorKind, JobStatus, StepStatus, idempotency_key
from pod_studio.domain.ledger_port import LedgerError
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.orchestration import publish_job_id
from pod_studio.domain.products import ProductTemplate, default_templates
from pod_studio.domain.settings import AppSettings, SecretName
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.services.orchestrator import OrchestratorOptions
from pod_studio.services.publish_platforms import PrintifyPlatform
from pod_studio.services.publishing import PublishService

TOKEN = "sandbox-token-publish-7f3a"
TEE, HOODIE = "Classic T-shirt", "Pullover Hoodie"
CREATE = "POST /v1/shops/{shop_id}/products.json"
UPLOAD = "POST /v1/uploads/images.json"
PUBLISH = "POST /v1/shops/{shop_id}/products/{product_id}/publish.json"
FAST = OrchestratorOptions(tick=0.05, retry_delay=lambda _n: 0.05, idle_horizon=2.0)


def make_design(
    path: Path, size: tuple[int, int], prompt: str = "retro sunset, palm trees"
) -> GeneratedImage:
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((10, 10, size[0] - 10, size[1] - 10), fill=(230, 90, 40, 255))
    im.save(path, "PNG")
    return GeneratedImage(
        image_id=hashlib.md5(path.name.encode()).hexdigest(),
        job_id="j1",
        prompt=prompt,
        seed=1,
        width=size[0],
        height=size[1],
        file=str(path),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        server="",
        prompt_id="",
        seconds=0.0,
    )


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> GeneratedImage:
    return make_design(tmp_path_factory.mktemp("designs") / "sunset.png", (2400, 3000))


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[PrintifySandbox]:
    async with PrintifySandbox(tokens={TOKEN}) as sb:
        yield sb


@asynccontextmanager
async def engine(
    home: Path,
    sandbox: PrintifySandbox,
    events: list[Event] | None = None,
    *,
    token: str = TOKEN,
    templates: list[ProductTemplate] | None = None,
) -> AsyncIterator[Core]:
    """The engine the app and the commands run, on ``home``, publishing to the sandbox and
    to ``home / "export"``; ``templates`` replace the settings' product templates."""
    changes: dict[str, Any] = {
        "printify": {"base_url": sandbox.base_url},
        "export_dir": str(home / "export"),
    }
    if templates is not None:
        changes["product_templates"] = [t.model_dump(mode="json") for t in templates]
    async with open_core(
        sinks=[events.append] if events is not None else [],
        servers=[],
        settings=AppSettings().with_changes(**changes),
        paths=app_paths(home),
        secrets=MemorySecretStore({SecretName.PRINTIFY_TOKEN: token}),
        options=FAST,
    ) as core:
        yield core


def by_key(results: list[ListingResult]) -> dict[tuple[str, str], ListingResult]:
    return {(r.template, r.platform): r for r in results}


def remote_id(result: ListingResult) -> str:
    return result.detail.split(" ")[0]


@pytest.mark.asyncio
async def test_full_flow_tee_and_hoodie_on_printify_and_export_as_drafts(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    events: list[Event] = []
    async with engine(tmp_path, sandbox, events) as core:
        results = by_key(
            await run_publish(core, [design], [TEE, HOODIE], ["printify", "export"], draft=True)
        )
    assert all(r.ok for r in results.values()), results
    assert all(r.detail.endswith("(draft)") for r in results.values())
    assert len(sandbox.products) == 2
    tee = next(p for p in sandbox.products.values() if p["blueprint_id"] == 12)
    hoodie = next(p for p in sandbox.products.values() if p["blueprint_id"] == 77)
    # Prices from the template in cents; only catalog combinations of the enabled colours.
    prices = {v["title"]: v["price"] for v in tee["variants"] if v["is_enabled"]}
    assert prices["Black / M"] == 1999 and prices["White / 2XL"] == 2199
    assert not any(t.startswith("Heather Grey") for t in prices)
    assert len(prices) == 15  # White, Black, Navy x S..2XL (3XL is not offered)
    assert tee["title"].endswith("T-Shirt") and len(tee["title"]) <= 140
    assert "t-shirt" in tee["tags"]
    image = hoodie["print_areas"][0]["placeholders"][0]["images"][0]
    assert (image["scale"], image["y"]) == (0.9, 0.45)
    # The print file is sized to the hoodie's 3852 x 3852 front area.
    assert (image["width"], image["height"]) == (3852, 3852)
    # Export: one folder per listing, draft.
    exported = {remote_id(results[(t, "export")]) for t in (TEE, HOODIE)}
    assert {p.name for p in (tmp_path / "export").iterdir()} == exported
    states = [
        e.state
        for e in events
        if isinstance(e, PublishStepChanged)
        and e.product == TEE
        and e.platform == "printify"
        and not e.state.endswith(":in_flight")  # the ledger's own record of each intent
    ]
    assert states == [
        "prepare:running",
        "prepare:done",
        "upload:running",
        "upload:done",
        "create:running",
        "create:done",
    ]
    assert sum(isinstance(e, PublishDone) and e.ok for e in events) == 4
    # the credential check and the shop's discovery, once each: not per listing
    assert sandbox.request_counts["GET /v1/shops.json"] == 2


@pytest.mark.asyncio
async def test_published_live_once_and_a_second_run_sends_nothing_again(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    async with engine(tmp_path, sandbox) as core:
        live = by_key(await run_publish(core, [design], [TEE], ["printify", "export"], draft=False))
        assert all(r.ok and r.detail.endswith("(published)") for r in live.values()), live
        (product,) = sandbox.products.values()
        assert product["external"]  # Printify accepted the publish; the channel finished it
        assert sandbox.request_counts[CREATE] == 1 and sandbox.request_counts[PUBLISH] == 1
        again = by_key(
            await run_publish(core, [design], [TEE], ["printify", "export"], draft=False)
        )
    assert again == live
    assert sandbox.request_counts[CREATE] == 1 and sandbox.request_counts[PUBLISH] == 1
    assert all(n == 1 for n in sandbox.creates_per_key.values())
    assert len(list((tmp_path / "export").iterdir())) == 1


class PowerCut(LedgerError):
    """The job database fails right after the create request landed, before its result."""


@pytest.mark.asyncio
async def test_create_in_flight_is_reconciled_after_a_restart_and_never_sent_twice(
    sandbox: PrintifySandbox,
    design: GeneratedImage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = publish_job_id(idempotency_key(design.sha256, TEE, "printify"))
    async with engine(tmp_path, sandbox) as core:
        record_result = core.ledger.record_result

        async def cut(job: str, step: str, remote_ref: str | None = None) -> Any:
            if step == "create":
                raise PowerCut("power cut after the create request")
            return await record_result(job, step, remote_ref)

        monkeypatch.setattr(core.ledger, "record_result", cut)
        (first,) = await run_publish(core, [design], [TEE], ["printify"], draft=False)
        assert not first.ok and "still running" in first.detail
        job = await core.ledger.get_job(job_id)
        assert job is not None and job.state is JobStatus.RUNNING
        step = job.step("create")
        assert step is not None and step.state is StepStatus.IN_FLIGHT
    assert sandbox.request_counts[CREATE] == 1

    # the next start looks the listing up by its key before anything is sent again
    async with engine(tmp_path, sandbox) as core:
        job = await core.ledger.get_job(job_id)
        step = job.step("create") if job is not None else None
        assert step is not None and step.state is StepStatus.DONE
        (product_id,) = sandbox.products
        assert step.remote_ref == product_id
        (resumed,) = await run_publish(core, [design], [TEE], ["printify"], draft=False)
    assert resumed.ok and remote_id(resumed) == product_id, resumed
    assert sandbox.request_counts[CREATE] == 1
    assert sandbox.creates_per_key[marker_for(idempotency_key(design.sha256, TEE, "printify"))] == 1
    assert sandbox.products[product_id]["external"]  # published, once


@pytest.mark.asyncio
async def test_create_that_commits_then_loses_its_reply_yields_exactly_one_product(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    sandbox.commit_then_timeout_next(mode="drop")
    async with engine(tmp_path, sandbox) as core:
        (result,) = await run_publish(core, [design], [HOODIE], ["printify"], draft=True)
        job = await core.ledger.get_job(publish_job_id(idempotency_key(design.sha256, HOODIE,
                                                                        "printify")))  # fmt: skip
    assert result.ok, result
    (product_id,) = sandbox.products
    assert remote_id(result) == product_id
    assert sandbox.request_counts[CREATE] == 1  # looked up, not sent again
    assert sandbox.creates_per_key[marker_for(idempotency_key(design.sha256, HOODIE, "printify"))]
    assert job is not None and job.attempts == 1
    assert [s.step for s in job.steps if s.state is StepStatus.DONE] == [
        "prepare",
        "upload",
        "create",
    ]


@pytest.mark.asyncio
async def test_a_refused_printify_token_waits_while_export_succeeds_and_a_fix_publishes_it(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    async with engine(tmp_path, sandbox, token="not-the-token") as core:
        results = by_key(
            await run_publish(core, [design], [TEE], ["printify", "export"], draft=False)
        )
        job = await core.ledger.get_job(
            publish_job_id(idempotency_key(design.sha256, TEE, "printify"))
        )
    printify, exported = results[(TEE, "printify")], results[(TEE, "export")]
    assert not printify.ok
    assert "rejected the API token" in printify.detail and "waits" in printify.detail
    assert "not-the-token" not in printify.detail
    # not the listing's fault: it waits, uncharged, and was never dead-lettered
    assert job is not None and job.state is JobStatus.RETRY_WAIT and job.attempts == 0
    assert job.last_error_kind is ErrorKind.WAIT
    assert sum(sandbox.request_counts.values()) == 1  # one credential check, no retries
    assert exported.ok and exported.detail.endswith("(published)")
    assert (tmp_path / "export" / remote_id(exported) / "listing.json").is_file()

    # The token fixed, the same publish makes the listing (no retry by hand).
    async with engine(tmp_path, sandbox) as core:
        fixed = by_key(
            await run_publish(core, [design], [TEE], ["printify", "export"], draft=False)
        )
    assert fixed[(TEE, "printify")].ok, fixed
    assert len(sandbox.products) == 1


@pytest.mark.asyncio
async def test_preflight_fails_for_a_tiny_image_before_anything_is_sent(
    sandbox: PrintifySandbox, tmp_path: Path
) -> None:
    tiny = make_design(tmp_path / "tiny.png", (200, 200))
    events: list[Event] = []
    async with engine(tmp_path, sandbox, events) as core:
        (result,) = await run_publish(core, [tiny], [TEE], ["printify"], draft=True)
    assert not result.ok and result.detail.startswith("prepare:")
    assert "Resolution too low" in result.detail
    failed = [e for e in events if isinstance(e, PublishStepChanged) and e.state.endswith("failed")]
    assert [e.state for e in failed] == ["prepare:failed"]
    assert sandbox.request_counts[UPLOAD] == 0 and sandbox.request_counts[CREATE] == 0
    # the listing's one PublishDone comes from the queue, once the job is dead
    assert [(e.platform, e.ok) for e in events if isinstance(e, PublishDone)] == [
        ("printify", False)
    ]


@pytest.mark.asyncio
async def test_one_bad_listing_does_not_stop_the_others(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    # A price over Printify's sanity limit fails at "create"; the other listing is made.
    templates = {t.name: t for t in default_templates()}
    tee = templates[TEE]
    absurd = tee.model_copy(
        update={"price": tee.price.model_copy(update={"base": Decimal("5000")})}
    )
    async with engine(tmp_path, sandbox, templates=[absurd, templates[HOODIE]]) as core:
        results = by_key(await run_publish(core, [design], [TEE, HOODIE], ["printify"], draft=True))
    tee_result, hoodie = results[(TEE, "printify")], results[(HOODIE, "printify")]
    assert not tee_result.ok and tee_result.detail.startswith("create:")
    assert "sanity limit" in tee_result.detail
    assert hoodie.ok and remote_id(hoodie) in sandbox.products


@pytest.mark.asyncio
async def test_profit_preview_flags_a_price_below_cost(
    sandbox: PrintifySandbox, tmp_path: Path
) -> None:
    client = PrintifyClient(lambda: TOKEN, base_url=sandbox.base_url, shop_id=sandbox.shop_id)
    costs = {(12, 99): {"S": Decimal("11.34"), "M": Decimal("11.34"), "2XL": Decimal("25.00")}}
    service = PublishService(
        [PrintifyPlatform(client, costs=costs)],
        {t.name: t for t in default_templates()},
        work_dir=tmp_path,
        sink=lambda _e: None,
        prepare=prepare_print_file,
    )
    try:
        lines = await service.profit_preview(None, TEE)
    finally:
        await client.aclose()
    by_variant = {line.variant: line for line in lines}
    black_m = by_variant["Black / M"]
    assert black_m.shipping == Decimal("4.75")  # the sandbox's US first-item shipping
    assert black_m.profit == Decimal("19.99") - Decimal("11.34") - Decimal("4.75")
    assert not black_m.below_cost
    assert by_variant["Black / 2XL"].below_cost and by_variant["Black / 2XL"].profit < 0
    assert "Black / L" not in by_variant  # cost unknown: not previewed
    assert {line.size for line in lines} == {"S", "M", "2XL"}


@pytest.mark.asyncio
async def test_costs_reported_by_a_created_draft_feed_the_next_profit_preview(
    sandbox: PrintifySandbox, design: GeneratedImage, tmp_path: Path
) -> None:
    async with engine(tmp_path, sandbox) as core:
        assert await core.designs.profit_preview(design, TEE) == []  # no cost known yet
        (result,) = await run_publish(core, [design], [TEE], ["printify"], draft=True)
        assert result.ok, result
    product = next(iter(sandbox.products.values()))
    reported = {v["id"]: Decimal(v["cost"]) / 100 for v in product["variants"] if v["is_enabled"]}

    # A restarted app: a new client and a new cost book over the same cache folder.
    async with engine(tmp_path, sandbox) as core:
        lines = await core.designs.profit_preview(design, TEE)
    assert lines, "costs learned from the draft were not used"
    assert {line.cost for line in lines} <= set(reported.values())
    assert all(line.profit == line.price - line.cost - line.shipping for line in lines)
