"""PublishService against the Printify sandbox (real sockets) and the export folder."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from pod_studio.adapters.imaging import prepare_print_file
from pod_studio.adapters.marketplaces.export import ExportMarketplace
from pod_studio.adapters.marketplaces.printify import PrintifyClient, marker_for
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.events import Event, PublishDone, PublishStepChanged
from pod_studio.domain.marketplace import ListingStatus
from pod_studio.domain.products import ProductTemplate, default_templates
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.services.publishing import (
    Design,
    MemoryJournal,
    PublishMarketplace,
    PublishService,
    RemoteCatalog,
)
from pod_studio.services.resilience import ResilienceHub

TOKEN = "sandbox-token-publish-7f3a"
TEE, HOODIE = "Classic T-shirt", "Pullover Hoodie"
CREATE = "POST /v1/shops/{shop_id}/products.json"
UPLOAD = "POST /v1/uploads/images.json"
PUBLISH = "POST /v1/shops/{shop_id}/products/{product_id}/publish.json"


def make_design(
    path: Path, size: tuple[int, int], prompt: str = "retro sunset, palm trees"
) -> Design:
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((10, 10, size[0] - 10, size[1] - 10), fill=(230, 90, 40, 255))
    im.save(path, "PNG")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Design(design_id=path.stem, path=path, sha256=digest, prompt=prompt)


@pytest.fixture(scope="module")
def design_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("designs")


@pytest.fixture(scope="module")
def design(design_dir: Path) -> Design:
    return make_design(design_dir / "sunset.png", (2400, 3000))


@pytest.fixture(scope="module")
def print_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared between tests: print files are cached by design hash and canvas size."""
    return tmp_path_factory.mktemp("print-files")


@pytest.fixture
def templates() -> dict[str, ProductTemplate]:
    return {t.name: t for t in default_templates()}


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[PrintifySandbox]:
    async with PrintifySandbox(tokens={TOKEN}) as sb:
        yield sb


def client_for(sandbox: PrintifySandbox, token: str = TOKEN, **options: object) -> PrintifyClient:
    return PrintifyClient(
        lambda: token,
        base_url=sandbox.base_url,
        shop_id=sandbox.shop_id,
        **options,  # type: ignore[arg-type]
    )


def service_for(
    markets: dict[str, PublishMarketplace],
    templates: dict[str, ProductTemplate],
    work_dir: Path,
    events: list[Event],
    **kw: object,
) -> PublishService:
    catalogs = {
        name: RemoteCatalog(m) for name, m in markets.items() if isinstance(m, PrintifyClient)
    }
    return PublishService(
        markets,
        templates,
        work_dir=work_dir,
        sink=events.append,
        prepare=prepare_print_file,
        catalogs=catalogs,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_full_flow_tee_and_hoodie_on_printify_and_export_draft_then_publish(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
    tmp_path: Path,
) -> None:
    client = client_for(sandbox)
    export = ExportMarketplace(tmp_path / "export")
    events: list[Event] = []
    service = service_for({"printify": client, "export": export}, templates, print_dir, events)
    try:
        drafts = await service.publish_designs([design], [TEE, HOODIE], ["printify", "export"])
        assert [(o.template, o.platform, o.ok) for o in drafts] == [
            (TEE, "printify", True),
            (TEE, "export", True),
            (HOODIE, "printify", True),
            (HOODIE, "export", True),
        ], [o.error for o in drafts]
        assert all(o.status == "draft" for o in drafts)
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
        assert sorted(p.name for p in (tmp_path / "export").iterdir()) == sorted(
            o.remote_id for o in drafts if o.platform == "export"
        )
        states = [
            e.state
            for e in events
            if isinstance(e, PublishStepChanged) and e.product == TEE and e.platform == "printify"
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

        # Publishing the same design again: the drafts are found and published, not re-created.
        events.clear()
        live = await service.publish_designs(
            [design], [TEE, HOODIE], ["printify", "export"], draft=False
        )
        assert all(o.ok for o in live), [o.error for o in live]
        # Printify accepted the publish (the product is locked while it publishes)
        assert {(o.platform, o.status) for o in live} == {
            ("printify", "publishing"),
            ("export", "published"),
        }
        assert [o.remote_id for o in live] == [o.remote_id for o in drafts]
        assert sandbox.request_counts[CREATE] == 2
        assert sandbox.request_counts[PUBLISH] == 2
        assert all(n == 1 for n in sandbox.creates_per_key.values())
        assert all(p.get("external") for p in sandbox.products.values())
        skipped = [e.state for e in events if isinstance(e, PublishStepChanged)]
        assert "create:skipped" in skipped and "create:running" not in skipped
    finally:
        await client.aclose()


class PowerCut(Exception):
    """The app dies right after the remote call, before the journal records it."""


class CrashAfterCreate(MemoryJournal):
    async def done(self, step: str, remote_ref: str | None = None) -> None:
        if step == "create":
            raise PowerCut("crash after the create request")
        await super().done(step, remote_ref)


@pytest.mark.asyncio
async def test_create_in_flight_is_reconciled_and_never_sent_twice(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
) -> None:
    client = client_for(sandbox)
    events: list[Event] = []
    service = service_for({"printify": client}, templates, print_dir, events)
    task = service.make_task(design, TEE, "printify", draft=False)
    try:
        crashed = CrashAfterCreate()
        with pytest.raises(PowerCut):
            await service.execute(task, crashed)
        assert crashed.in_flight == ["create"]
        assert sandbox.request_counts[CREATE] == 1

        ref = await service.reconcile(task, "create")
        assert ref is not None and ref in sandbox.products
        assert await service.reconcile(task, "publish") is None  # it never got that far
        resumed = MemoryJournal({**crashed.refs, "create": ref})
        listing = await service.execute(task, resumed)

        assert listing.remote_id == ref
        assert listing.status is ListingStatus.PUBLISHING  # accepted; the channel finishes it
        assert (await client.get_listing(ref)).status is ListingStatus.PUBLISHED
        assert sandbox.request_counts[CREATE] == 1
        assert sandbox.creates_per_key[marker_for(task.idem_key)] == 1
        assert await service.reconcile(task, "publish") == ref
        assert await service.reconcile(task, "upload") is None
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_create_that_commits_then_loses_its_reply_yields_exactly_one_product(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
) -> None:
    hub = ResilienceHub()
    client = client_for(sandbox, guard=hub.guard("printify"))
    service = service_for({"printify": client}, templates, print_dir, [])
    task = service.make_task(design, HOODIE, "printify", draft=True)
    sandbox.commit_then_timeout_next(mode="drop")
    try:
        journal = MemoryJournal()
        listing = await service.execute(task, journal)
        assert listing.remote_id in sandbox.products
        assert len(sandbox.products) == 1
        assert sandbox.request_counts[CREATE] == 1  # looked up, not sent again
        assert sandbox.creates_per_key[marker_for(task.idem_key)] == 1
        assert journal.completed("create") == listing.remote_id
        assert journal.intents == ["prepare", "upload", "create"]
    finally:
        await client.aclose()


@pytest.mark.asyncio
async def test_wrong_printify_token_fails_printify_only_while_export_succeeds(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
    tmp_path: Path,
) -> None:
    hub = ResilienceHub()
    client = client_for(sandbox, token="not-the-token", guard=hub.guard("printify"))
    export = ExportMarketplace(tmp_path / "export")
    service = service_for({"printify": client, "export": export}, templates, print_dir, [])
    try:
        results = await service.publish_designs(
            [design], [TEE], ["printify", "export"], draft=False
        )
    finally:
        await client.aclose()
    printify, exported = results
    assert not printify.ok
    assert printify.error_kind == "AuthenticationError"
    assert "rejected the API token" in printify.error
    assert "not-the-token" not in printify.error
    assert sum(sandbox.request_counts.values()) == 1  # one call, no retries
    assert exported.ok and exported.status == "published"
    assert (tmp_path / "export" / exported.remote_id / "listing.json").is_file()


@pytest.mark.asyncio
async def test_preflight_fails_for_a_tiny_image_before_anything_is_sent(
    sandbox: PrintifySandbox,
    templates: dict[str, ProductTemplate],
    tmp_path: Path,
) -> None:
    tiny = make_design(tmp_path / "tiny.png", (200, 200))
    client = client_for(sandbox)
    events: list[Event] = []
    service = service_for({"printify": client}, templates, tmp_path / "work", events)
    task = service.make_task(tiny, TEE, "printify", draft=True)
    try:
        with pytest.raises(ValidationError) as info:
            await service.execute(task, MemoryJournal())
    finally:
        await client.aclose()
    assert "Resolution too low" in info.value.user_message
    failed = [e for e in events if isinstance(e, PublishStepChanged) and e.state.endswith("failed")]
    assert [e.state for e in failed] == ["prepare:failed"]
    assert sandbox.request_counts[UPLOAD] == 0 and sandbox.request_counts[CREATE] == 0
    # executing a task reports its steps; the listing's one PublishDone comes from whoever
    # runs the task (the durable queue, or run_task)
    assert not [e for e in events if isinstance(e, PublishDone)]


@pytest.mark.asyncio
async def test_one_bad_listing_does_not_stop_the_others(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
) -> None:
    # A title over the platform's limit fails at "create"; the listing with a short title is made.
    short = templates[HOODIE].model_copy(update={"title_template": "Hoodie"})
    client = client_for(sandbox, max_title_chars=20)
    service = service_for({"printify": client}, {TEE: templates[TEE], HOODIE: short}, print_dir, [])
    try:
        tee, hoodie = await service.publish_designs([design], [TEE, HOODIE], ["printify"])
    finally:
        await client.aclose()
    assert not tee.ok and tee.step == "create" and "the limit is 20" in tee.error
    assert hoodie.ok and hoodie.remote_id in sandbox.products


@pytest.mark.asyncio
async def test_profit_preview_flags_a_price_below_cost(
    sandbox: PrintifySandbox, templates: dict[str, ProductTemplate], tmp_path: Path
) -> None:
    client = client_for(sandbox)
    costs = {(12, 99): {"S": Decimal("11.34"), "M": Decimal("11.34"), "2XL": Decimal("25.00")}}
    service = PublishService(
        {"printify": client},
        templates,
        work_dir=tmp_path,
        sink=lambda _e: None,
        prepare=prepare_print_file,
        catalogs={"printify": RemoteCatalog(client, costs=costs)},
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


def _service_with_cost_book(
    client: PrintifyClient, templates: dict[str, ProductTemplate], work_dir: Path, cache_dir: Path
) -> PublishService:
    from pod_studio.adapters.storage.cache import DiskCache
    from pod_studio.services.publishing import CostBook

    book = CostBook(DiskCache(cache_dir))
    return PublishService(
        {"printify": client},
        templates,
        work_dir=work_dir,
        sink=lambda _e: None,
        prepare=prepare_print_file,
        catalogs={"printify": RemoteCatalog(client, costs=book)},
        cost_book=book,
    )


@pytest.mark.asyncio
async def test_costs_reported_by_a_created_draft_feed_the_next_profit_preview(
    sandbox: PrintifySandbox,
    design: Design,
    templates: dict[str, ProductTemplate],
    print_dir: Path,
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "costs"
    client = client_for(sandbox)
    service = _service_with_cost_book(client, templates, print_dir, cache_dir)
    try:
        assert await service.profit_preview(None, TEE) == []  # no cost known yet
        (outcome,) = await service.publish_designs([design], [TEE], ["printify"])
        assert outcome.ok, outcome.error
    finally:
        await client.aclose()
    product = next(iter(sandbox.products.values()))
    reported = {v["id"]: Decimal(v["cost"]) / 100 for v in product["variants"] if v["is_enabled"]}

    # A restarted app: a new client and a new cost book over the same cache folder.
    client = client_for(sandbox)
    again = _service_with_cost_book(client, templates, print_dir, cache_dir)
    try:
        lines = await again.profit_preview(None, TEE)
    finally:
        await client.aclose()
    assert lines, "costs learned from the draft were not used"
    assert {line.cost for line in lines} <= set(reported.values())
    assert all(line.profit == line.price - line.cost - line.shipping for line in lines)
