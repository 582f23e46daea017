"""Services layer: the publish executor and the headless publish batch.

``PublishService`` implements ``domain.publishing.PublishExecutor``. One task is one design as
one product template on one platform, run as four steps:

1. ``prepare``: the catalog's variants for the template's enabled colours x sizes give the
   print area (the largest front placeholder); the design is fitted into a transparent canvas
   of that size (``prepare``, injected, run in a worker thread) and pre-flighted: a FAIL badge
   raises ``ValidationError`` with the reasons. Print files are cached in ``work_dir`` by
   design hash and canvas size.
2. ``upload``: the platform's media upload (``upload_image``; deduplicated by content hash in
   the adapter), its image id recorded as the step's ref. Platforms without uploads record
   the print file's path.
3. ``create``: a ``ListingSpec`` (texts from ``render_texts``, prices as ``Decimal`` from the
   template's price rule, converted to cents by the adapter, placement from the template). The
   intent is journalled before the request; when the outcome is unknown (timeout, dropped
   connection, 5xx, unreadable reply) the listing is looked up by its idempotency key before
   anything is sent again.
4. ``publish`` (only when ``task.draft`` is false): intent first, then the platform's publish.

Steps the journal reports as done are skipped; once ``create`` is done, ``prepare`` and
``upload`` are skipped too (they only feed ``create``). Events: ``PublishStepChanged`` with
``state`` ``"<step>:running" | "<step>:done" | "<step>:skipped" | "<step>:failed"``. The
one ``PublishDone`` per listing comes from whoever runs the task to its end: the durable
queue (once the job succeeds or is dead, never per attempt) or ``run_task`` (headless batch).

``publish_designs`` runs a batch without the durable orchestrator (the headless CLI): each
task gets an in-memory journal whose ``create`` state is unknown, so it reconciles with the
platform first (a re-run never creates twice). Platforms run independently: one failing
never stops another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from pod_studio.domain.cache_port import PersistentCachePort
from pod_studio.domain.costs import SellerCosts, merge_costs, merge_shipping
from pod_studio.domain.errors import (
    PodStudioError,
    PodTimeoutError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
    user_message,
)
from pod_studio.domain.events import EventSink, PublishDone, PublishStepChanged
from pod_studio.domain.jobs import idempotency_key
from pod_studio.domain.marketplace import (
    CatalogVariant,
    ListingSpec,
    ListingStatus,
    Placeholder,
    RemoteListing,
    ShippingProfile,
    VariantPrice,
)
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import PreflightBadge, PrintFileInfo, preflight
from pod_studio.domain.pricing import ProfitLine, price_for
from pod_studio.domain.pricing import profit_preview as pricing_profit_preview
from pod_studio.domain.products import ProductTemplate, render_texts
from pod_studio.domain.publishing import PublishTask, StepJournal

log = logging.getLogger(__name__)

DEFAULT_PRINT_AREA = (4500, 5400)
PRINT_POSITION = "front"
PRINT_DPI = 300
MAX_PRINT_FILE_BYTES = 200 * 1024 * 1024  # adapters recompress for their own upload limits
CREATE_ATTEMPTS = 3
DEFAULT_CONCURRENCY = 4

PrepareFn = Callable[[Path, Path, int, int], PrintFileInfo]
"""``prepare(src, dst, width_px, height_px) -> PrintFileInfo`` (blocking; run in a thread)."""


# --- ports this service needs ----------------------------------------------------------------


@runtime_checkable
class PublishMarketplace(Protocol):
    """What the executor calls on a platform (a subset of ``domain.marketplace.Marketplace``)."""

    name: str

    async def find_existing(self, idem_key: str) -> RemoteListing | None: ...

    async def create_listing(self, spec: ListingSpec) -> RemoteListing: ...

    async def publish(self, listing: RemoteListing) -> RemoteListing: ...

    async def get_listing(self, remote_id: str) -> RemoteListing: ...


@runtime_checkable
class SupportsUpload(Protocol):
    """A platform with a media library (Printify): ``upload_image(...).id`` is the image id."""

    async def upload_image(self, source: Path | bytes, file_name: str | None = None) -> Any: ...


@runtime_checkable
class SupportsCustomShop(Protocol):
    """A platform whose shop may be a custom ("API") shop (Printify)."""

    async def sales_channel(self) -> str: ...

    async def get_listing(self, remote_id: str) -> RemoteListing: ...

    async def report_publishing_succeeded(
        self, product_id: str, external_id: str, handle: str
    ) -> None: ...

    async def report_publishing_failed(self, product_id: str, reason: str) -> None: ...


STOREFRONTS = ("shopify", "etsy")
# Printify's sales_channel of a shop whose listings the API client makes itself
# (the contract leaves the exact strings unconfirmed; "custom_integration" is what it shows)
CUSTOM_CHANNELS = frozenset({"custom_integration", "custom", "api"})


def is_custom_channel(channel: str) -> bool:
    return channel.strip().lower() in CUSTOM_CHANNELS


class ProductCatalog(Protocol):
    """Variants (with print areas, and costs when known) and shipping for a template."""

    async def variants(self, template: ProductTemplate) -> list[CatalogVariant]: ...

    async def shipping_cost(self, template: ProductTemplate) -> Decimal | None: ...


class CatalogSource(Protocol):
    """A platform catalog API (``PrintifyClient`` implements it)."""

    async def variants(
        self, blueprint_id: int, provider_id: int, *, show_out_of_stock: bool = False
    ) -> list[CatalogVariant]: ...

    async def shipping(self, blueprint_id: int, provider_id: int) -> list[ShippingProfile]: ...


CostTable = Mapping[tuple[int, int], Mapping[str, Decimal]]
"""(blueprint id, provider id) -> size -> provider cost, for catalogs that publish no cost."""


class CostBook:
    """Provider costs per (blueprint, provider) and size, learned from created products.

    Printify's catalog API has no costs, but every product it creates (drafts included) reports
    the cost of each variant: the publish service records them here after each create, so the
    next profit preview for that product type shows real costs. Kept in the persistent cache
    when one is given, so a restart remembers them.
    """

    TTL = 30 * 24 * 3600.0

    def __init__(self, store: PersistentCachePort | None = None) -> None:
        self._store = store
        self._table: dict[tuple[int, int], dict[str, Decimal]] = {}

    @staticmethod
    def _key(blueprint: int, provider: int) -> str:
        return f"costs:{blueprint}:{provider}"

    def get(
        self, key: tuple[int, int], default: Mapping[str, Decimal] | None = None
    ) -> Mapping[str, Decimal]:
        table = self._table.get(key)
        if table is None and self._store is not None:
            raw = self._store.get(self._key(*key))
            if isinstance(raw, dict):
                try:
                    table = {str(k): Decimal(str(v)) for k, v in raw.items()}
                except ArithmeticError:
                    table = None
                if table is not None:
                    self._table[key] = table
        return table if table is not None else (default or {})

    def learn(self, blueprint: int, provider: int, costs: Mapping[str, Decimal]) -> None:
        if not costs:
            return
        table = dict(self.get((blueprint, provider)))
        table.update(costs)
        self._table[(blueprint, provider)] = table
        if self._store is not None:
            self._store.set(
                self._key(blueprint, provider),
                {k: str(v) for k, v in table.items()},
                expire=self.TTL,
                tag="printify",
            )


class RemoteCatalog:
    """A platform catalog (``CatalogSource``) seen per template.

    Printify's catalog API publishes no fulfilment cost; ``costs`` fills it in per size when
    known (variants without a cost are left out of profit previews).
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        costs: CostTable | CostBook | None = None,
        country: str = "US",
    ) -> None:
        self._source = source
        self._costs = costs or {}
        self._country = country

    async def variants(self, template: ProductTemplate) -> list[CatalogVariant]:
        found = await self._source.variants(template.blueprint_id, template.print_provider_id)
        table = self._costs.get((template.blueprint_id, template.print_provider_id), {})
        if not table:
            return found
        out = []
        for v in found:
            size = _option(v, "size")
            if v.cost is None and size is not None and size in table:
                v = v.model_copy(update={"cost": table[size]})
            out.append(v)
        return out

    async def shipping_cost(self, template: ProductTemplate) -> Decimal | None:
        profiles = await self._source.shipping(template.blueprint_id, template.print_provider_id)
        for wanted in (self._country, "REST_OF_THE_WORLD"):
            for p in profiles:
                if wanted in p.countries:
                    return p.first_item
        return profiles[0].first_item if profiles else None


class TemplateCatalog:
    """A catalog made from the template itself (platforms without one, e.g. the export folder).

    Every enabled colour x size is a variant (ids are stable: colour index x 100 + size index
    + 1) with one front print area of ``print_area`` pixels.
    """

    def __init__(
        self,
        print_area: tuple[int, int] = DEFAULT_PRINT_AREA,
        *,
        costs: Mapping[str, Decimal] | None = None,
        shipping: Decimal | None = None,
    ) -> None:
        self._area = print_area
        self._costs = costs or {}
        self._shipping = shipping

    async def variants(self, template: ProductTemplate) -> list[CatalogVariant]:
        w, h = self._area
        return [
            CatalogVariant(
                id=ci * 100 + si + 1,
                title=f"{color} / {size}",
                options={"color": color, "size": size},
                placeholders=(Placeholder(position=PRINT_POSITION, width=w, height=h),),
                cost=self._costs.get(size),
                currency=template.price.currency,
            )
            for ci, color in enumerate(template.colors)
            for si, size in enumerate(template.sizes)
        ]

    async def shipping_cost(self, template: ProductTemplate) -> Decimal | None:
        return self._shipping


# --- values ----------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Design(_Frozen):
    """An approved design to publish: where it is, its hash and the prompt it came from."""

    design_id: str
    path: Path
    sha256: str
    prompt: str

    @classmethod
    def from_image(cls, image: GeneratedImage) -> Design:
        return cls(
            design_id=image.image_id,
            path=Path(image.print_path),  # the upscaled print file, if any
            sha256=image.sha256,
            prompt=image.prompt,
        )


class PublishOutcome(_Frozen):
    """The result of one design x template x platform of a batch."""

    design_id: str
    design_name: str
    template: str
    platform: str
    ok: bool
    remote_id: str = ""
    status: str = ""
    url: str | None = None
    step: str = ""  # where it failed
    error: str = ""  # the seller-facing reason
    error_kind: str = ""


class VariantMatch(_Frozen):
    variant: CatalogVariant
    color: str
    size: str


class MemoryJournal:
    """An in-memory ``StepJournal`` (the headless batch, tests). ``intents`` lists what began."""

    def __init__(self, done: Mapping[str, str] | None = None) -> None:
        self.refs: dict[str, str] = dict(done or {})
        self.intents: list[str] = []

    def completed(self, step: str) -> str | None:
        return self.refs.get(step)

    async def intent(self, step: str) -> None:
        self.intents.append(step)

    async def done(self, step: str, remote_ref: str | None = None) -> None:
        self.refs[step] = remote_ref if remote_ref is not None else ""

    @property
    def in_flight(self) -> list[str]:
        return [s for s in self.intents if s not in self.refs]


# --- helpers ---------------------------------------------------------------------------------


def _option(variant: CatalogVariant, name: str) -> str | None:
    for key, value in variant.options.items():
        if key.casefold() == name:
            return value
    return None


def match_variants(
    template: ProductTemplate, catalog: Sequence[CatalogVariant]
) -> tuple[list[VariantMatch], list[str]]:
    """The catalog variants for the template's colours x sizes, and the combinations missing.

    Matching reads each variant's ``options`` (never its title), case-insensitively.
    """
    index: dict[tuple[str, str], CatalogVariant] = {}
    for v in catalog:
        color, size = _option(v, "color"), _option(v, "size")
        if color is not None and size is not None:
            index.setdefault((color.casefold(), size.casefold()), v)
    found: list[VariantMatch] = []
    missing: list[str] = []
    for color in template.colors:
        for size in template.sizes:
            hit = index.get((color.casefold(), size.casefold()))
            if hit is None:
                missing.append(f"{color} / {size}")
            else:
                found.append(VariantMatch(variant=hit, color=color, size=size))
    return found, missing


def _print_area(template: ProductTemplate, matches: Sequence[VariantMatch]) -> tuple[int, int]:
    areas = [
        (p.width, p.height)
        for m in matches
        if (p := m.variant.placeholder(template.placement.position)) is not None
    ]
    if not areas:
        raise ValidationError(
            f"no variant of template {template.name!r} has a {template.placement.position} "
            "print area",
            service="publish",
            user_message=f"The product of template {template.name!r} has no "
            f"{template.placement.position} print area.",
        )
    return max(areas, key=lambda wh: wh[0] * wh[1])


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def _read_info(sidecar: Path, print_file: Path) -> PrintFileInfo | None:
    """The cached print file's info, if the file is still there and matches it."""
    try:
        info = PrintFileInfo.model_validate_json(sidecar.read_text(encoding="utf-8"))
        if print_file.stat().st_size != info.file_size:
            return None
    except (OSError, ValueError, PydanticValidationError):
        return None
    return info


def _print_stem(task: PublishTask) -> str:
    """The cache name of a task's print files: the design's hash, plus the source file's
    name when it is not the design itself (an upscaled print file keeps the design's hash
    and id, and names its own content)."""
    stem = task.design_sha256[:24]
    name = Path(task.design_path).name
    if Path(name).stem == task.design_id:
        return stem
    return f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _short(prompt: str, limit: int = 40) -> str:
    """A design named by its prompt (what the seller recognises), not by its file hash."""
    text = " ".join(prompt.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _failure_text(exc: BaseException) -> str:
    return user_message(exc).replace("\n", " ").strip()


# --- the service -----------------------------------------------------------------------------


class PublishService:
    """Publishes designs as products (implements ``PublishExecutor``). See the module doc.

    ``catalogs`` maps a platform to its ``ProductCatalog``; platforms without one use a
    ``TemplateCatalog`` (the template's colours x sizes, a 4500 x 5400 print area).
    """

    def __init__(
        self,
        marketplaces: Mapping[str, PublishMarketplace],
        templates: Mapping[str, ProductTemplate],
        *,
        work_dir: Path,
        sink: EventSink,
        prepare: PrepareFn,
        catalogs: Mapping[str, ProductCatalog] | None = None,
        max_print_file_bytes: int = MAX_PRINT_FILE_BYTES,
        concurrency: int = DEFAULT_CONCURRENCY,
        cost_book: CostBook | None = None,
        seller_costs: SellerCosts | None = None,
    ) -> None:
        self.marketplaces = dict(marketplaces)
        self.templates = dict(templates)
        self.work_dir = Path(work_dir)
        self._sink = sink
        self._prepare = prepare
        self._catalogs: dict[str, ProductCatalog] = dict(catalogs or {})
        self._default_catalog = TemplateCatalog()
        self.max_print_file_bytes = max_print_file_bytes
        self.concurrency = max(1, concurrency)
        self._file_locks: dict[Path, asyncio.Lock] = {}
        self.cost_book = cost_book
        # the seller's own costs (Settings → Products), used where the catalog knows none
        self.seller_costs = seller_costs or SellerCosts()

    def set_marketplace(
        self,
        platform: str,
        market: PublishMarketplace | None,
        catalog: ProductCatalog | None = None,
    ) -> None:
        """Add, replace or (``None``) remove a platform, e.g. after the seller saved a token."""
        if market is None:
            self.marketplaces.pop(platform, None)
            self._catalogs.pop(platform, None)
            return
        self.marketplaces[platform] = market
        if catalog is not None:
            self._catalogs[platform] = catalog

    # --- lookups ---------------------------------------------------------------------------

    def catalog_for(self, platform: str) -> ProductCatalog:
        return self._catalogs.get(platform, self._default_catalog)

    def _template(self, name: str) -> ProductTemplate:
        template = self.templates.get(name)
        if template is None:
            known = ", ".join(sorted(self.templates)) or "none"
            raise ValidationError(
                f"no product template named {name!r}",
                service="publish",
                user_message=f"There is no product template named {name!r} (known: {known}).",
            )
        return template

    def _market(self, platform: str) -> PublishMarketplace:
        market = self.marketplaces.get(platform)
        if market is None:
            # not the listing's fault: it waits (uncharged) until the seller sets it up
            raise ServiceUnavailableError(
                f"platform {platform!r} is not configured",
                service=platform,
                user_message=f"{platform.capitalize()} is not set up yet (Settings); the "
                "listing waits until it is.",
            )
        return market

    def _emit(
        self, task: PublishTask, step: str, phase: str, detail: str = "", ref: str = ""
    ) -> None:
        self._sink(
            PublishStepChanged(
                design_id=task.design_id,
                product=task.template_name,
                platform=task.platform,
                state=f"{step}:{phase}",
                detail=detail,
                remote_id=ref,
            )
        )

    # --- PublishExecutor -------------------------------------------------------------------

    async def execute(self, task: PublishTask, journal: StepJournal) -> RemoteListing:
        return await self._execute(task, journal, [])

    async def _execute(
        self, task: PublishTask, journal: StepJournal, failed_at: list[str]
    ) -> RemoteListing:
        """``execute``; on failure the failing step is appended to ``failed_at``."""
        step = "prepare"
        try:
            template = self._template(task.template_name)
            market = self._market(task.platform)
            native = await self._listed_by_printify(task)
            if native is not None:
                if journal.completed("create") is None:
                    await journal.intent("create")
                    await journal.done("create", native.remote_id)
                return native
            created_ref = journal.completed("create")
            matches: list[VariantMatch] = []
            print_file: PrintFileInfo | None = None
            if created_ref is None:
                matches, print_file = await self._step_prepare(task, journal, template)
                step = "upload"
                await self._step_upload(task, journal, market, print_file)
            else:
                self._emit(task, "prepare", "skipped", "the listing exists already")
                self._emit(task, "upload", "skipped", "the listing exists already")
            step = "create"
            listing: RemoteListing | None = None
            if created_ref is None:
                assert print_file is not None
                listing = await self._step_create(
                    task, journal, market, template, matches, print_file
                )
            else:
                self._emit(task, "create", "skipped", "created earlier", created_ref)
            remote_id = listing.remote_id if listing is not None else str(created_ref)
            if not task.draft:
                step = "publish"
                published_ref = journal.completed("publish")
                if published_ref is None:
                    self._emit(task, "publish", "running")
                    await journal.intent("publish")
                    current = listing or RemoteListing(
                        platform=task.platform, remote_id=remote_id, status=ListingStatus.DRAFT
                    )
                    listing = await market.publish(current)
                    await journal.done("publish", listing.remote_id)
                    self._emit(task, "publish", "done", str(listing.status), listing.remote_id)
                else:
                    self._emit(task, "publish", "skipped", "published earlier", published_ref)
                    listing = None
                if isinstance(market, SupportsCustomShop):
                    step = "storefront"
                    listing = await self._close_custom_loop(
                        task, journal, market, listing, remote_id
                    )
            if listing is None:
                listing = await market.get_listing(remote_id)
        except Exception as exc:
            failed_at.append(step)
            reason = _failure_text(exc)
            if not isinstance(exc, PodStudioError):
                log.exception("publish %s failed unexpectedly at %s", task.idem_key, step)
            self._emit(task, step, "failed", reason)
            raise
        return listing

    async def reconcile(self, task: PublishTask, step: str) -> str | None:
        """``create``: the listing found by idempotency key; ``publish``: that listing if it is
        published or publishing; ``prepare``/``upload``: ``None`` (cheap to redo)."""
        if step not in ("create", "publish"):
            return None
        market = self._market(task.platform)
        found = await market.find_existing(task.idem_key)
        if found is None:
            return None
        if step == "create":
            return found.remote_id
        if found.status in (ListingStatus.PUBLISHED, ListingStatus.PUBLISHING):
            return found.remote_id
        return None

    # --- steps -----------------------------------------------------------------------------

    async def _listed_by_printify(self, task: PublishTask) -> RemoteListing | None:
        """A storefront listing that Printify's own connection makes (the seller's Printify
        shop is natively connected to that storefront): POD Studio makes no second product."""
        printify = self.marketplaces.get("printify")
        if task.platform not in STOREFRONTS or not isinstance(printify, SupportsCustomShop):
            return None
        try:
            channel = (await printify.sales_channel()).strip().lower()
        except PodStudioError as exc:
            log.info("printify's sales channel is unknown (%s); listing on %s", exc.kind,
                     task.platform)  # fmt: skip
            return None
        if channel != task.platform:
            return None
        detail = f"listed by Printify's own {task.platform.capitalize()} connection"
        for step in ("prepare", "upload", "create"):
            self._emit(task, step, "skipped", detail)
        return RemoteListing(
            platform=task.platform,
            remote_id="via-printify",
            status=ListingStatus.DRAFT if task.draft else ListingStatus.PUBLISHED,
            title=detail,
        )

    async def _close_custom_loop(
        self,
        task: PublishTask,
        journal: StepJournal,
        market: SupportsCustomShop,
        listing: RemoteListing | None,
        remote_id: str,
    ) -> RemoteListing | None:
        """On a custom ("API") Printify shop, publishing only locks the product: POD Studio
        makes the storefront listing itself (the same publish path, the storefront's own
        idempotency key, so a storefront job for the same design is the same product) and
        reports it back, or reports the failure, so no product is left locked."""
        done = journal.completed("storefront")
        if done is not None or not is_custom_channel(await market.sales_channel()):
            return listing
        current = listing or await market.get_listing(remote_id)
        if current.status is not ListingStatus.PUBLISHING:
            return current
        self._emit(task, "storefront", "running")
        await journal.intent("storefront")
        storefront = next((p for p in STOREFRONTS if p in self.marketplaces), None)
        if storefront is None:
            reason = (
                "This Printify shop is a custom (API) shop: POD Studio makes the storefront "
                "listing itself, and no storefront is set up (connect Shopify or Etsy in "
                "Settings)."
            )
            await market.report_publishing_failed(remote_id, reason)
            raise ServiceUnavailableError(
                "no storefront for a custom Printify shop",
                service=task.platform,
                user_message=reason,
                retry_in=1800.0,
            )
        own_task = task.model_copy(
            update={
                "platform": storefront,
                "idem_key": idempotency_key(task.design_sha256, task.template_name, storefront),
                "draft": False,
            }
        )
        try:
            own = await self._execute(own_task, MemoryJournal(), [])
        except PodStudioError as exc:
            await market.report_publishing_failed(remote_id, _failure_text(exc))
            raise
        await market.report_publishing_succeeded(remote_id, own.remote_id, own.url or own.remote_id)
        await journal.done("storefront", own.remote_id)
        self._emit(task, "storefront", "done", f"{storefront} {own.remote_id}", own.remote_id)
        return await market.get_listing(remote_id)

    async def _step_prepare(
        self, task: PublishTask, journal: StepJournal, template: ProductTemplate
    ) -> tuple[list[VariantMatch], PrintFileInfo]:
        self._emit(task, "prepare", "running")
        catalog = self.catalog_for(task.platform)
        matches, missing = match_variants(template, await catalog.variants(template))
        if not matches:
            raise ValidationError(
                f"no catalog variant matches template {template.name!r}",
                service="publish",
                user_message=(
                    f"{task.platform}: blueprint {template.blueprint_id} from print provider "
                    f"{template.print_provider_id} has none of the template's colours "
                    f"({', '.join(template.colors)}) in its sizes ({', '.join(template.sizes)})."
                ),
            )
        area = _print_area(template, matches)
        done_ref = journal.completed("prepare")
        info: PrintFileInfo | None = None
        if done_ref:
            path = Path(done_ref)
            info = await asyncio.to_thread(_read_info, path.with_suffix(".json"), path)
            if info is not None and (info.width, info.height) != area:
                info = None
        if info is None:
            # a done step stays done (the ledger never reopens it): the print file is only
            # made again, e.g. after the cache was cleared
            if done_ref is None:
                await journal.intent("prepare")
            info = await self._print_file(task, area)
            result = preflight(
                info,
                area,
                self.max_print_file_bytes,
                scale=template.placement.scale,
            )
            if result.badge is PreflightBadge.FAIL:
                raise ValidationError(
                    f"preflight failed for {Path(task.design_path).name}: "
                    + "; ".join(result.reasons),
                    details=list(result.reasons),
                    service="publish",
                    user_message=f"“{_short(task.prompt)}” cannot be printed on "
                    f"{template.name}: " + " ".join(result.reasons),
                )
            if done_ref is None:
                await journal.done("prepare", info.path)
            detail = "; ".join(result.reasons) if result.badge is PreflightBadge.WARN else ""
        else:
            detail = "print file prepared earlier"
        if missing:
            extra = f"not offered: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else "")
            detail = f"{detail}; {extra}" if detail else extra
        self._emit(task, "prepare", "done", detail, info.path)
        return matches, info

    async def _print_file(self, task: PublishTask, area: tuple[int, int]) -> PrintFileInfo:
        w, h = area
        target = self.work_dir / f"{_print_stem(task)}-{w}x{h}.png"
        sidecar = target.with_suffix(".json")
        lock = self._file_locks.setdefault(target, asyncio.Lock())
        async with lock:
            cached = await asyncio.to_thread(_read_info, sidecar, target)
            if cached is not None:
                return cached
            await asyncio.to_thread(self.work_dir.mkdir, parents=True, exist_ok=True)
            info = await asyncio.to_thread(self._prepare, Path(task.design_path), target, w, h)
            await asyncio.to_thread(_write_text_atomic, sidecar, info.model_dump_json())
            return info

    async def _step_upload(
        self,
        task: PublishTask,
        journal: StepJournal,
        market: PublishMarketplace,
        print_file: PrintFileInfo,
    ) -> None:
        done_ref = journal.completed("upload")
        if done_ref is not None:
            # Done steps stay done (a job retried after a later step failed). A platform
            # without uploads only recorded the print file's path, made again above.
            self._emit(task, "upload", "skipped", "uploaded earlier", done_ref)
            return
        self._emit(task, "upload", "running")
        await journal.intent("upload")
        if isinstance(market, SupportsUpload):
            image = await market.upload_image(Path(print_file.path))
            ref = str(getattr(image, "id", "")) or print_file.sha256
        else:
            ref = print_file.path
        await journal.done("upload", ref)
        self._emit(task, "upload", "done", "", ref)

    def build_spec(
        self,
        task: PublishTask,
        template: ProductTemplate,
        matches: Sequence[VariantMatch],
        print_file: PrintFileInfo,
    ) -> ListingSpec:
        """The listing for ``task``: texts from the seller's words or the prompt, prices from
        the template."""
        title, description, tags = render_texts(template, task.prompt, copy=task.listing)
        variants = [
            VariantPrice(
                variant_id=m.variant.id,
                price=price_for(template, m.size),
                options={"Color": m.color, "Size": m.size},
            )
            for m in matches
        ]
        return ListingSpec.build(
            idem_key=task.idem_key,
            title=title,
            description=description,
            tags=tuple(tags),
            design_path=Path(print_file.path),
            design_sha256=print_file.sha256,
            blueprint_id=template.blueprint_id,
            print_provider_id=template.print_provider_id,
            variants=tuple(variants),
            currency=template.price.currency,
            placement=template.placement.for_listing(),
        )

    async def _step_create(
        self,
        task: PublishTask,
        journal: StepJournal,
        market: PublishMarketplace,
        template: ProductTemplate,
        matches: Sequence[VariantMatch],
        print_file: PrintFileInfo,
    ) -> RemoteListing:
        self._emit(task, "create", "running")
        spec = self.build_spec(task, template, matches, print_file)
        await journal.intent("create")
        listing = await self._create_once(market, spec)
        await journal.done("create", listing.remote_id)
        await self._learn_costs(market, template, matches, listing)
        self._emit(task, "create", "done", str(listing.status), listing.remote_id)
        return listing

    async def _learn_costs(
        self,
        market: PublishMarketplace,
        template: ProductTemplate,
        matches: Sequence[VariantMatch],
        listing: RemoteListing,
    ) -> None:
        """Record the provider costs the created product reports (see ``CostBook``)."""
        read = getattr(market, "variant_costs", None)
        if self.cost_book is None or read is None:
            return
        try:
            costs: Mapping[int, Decimal] = await read(listing.remote_id)
        except PodStudioError as exc:
            log.info("costs of %s not read: %s", listing.remote_id, exc.kind)
            return
        by_size: dict[str, Decimal] = {}
        for m in matches:
            cost = costs.get(m.variant.id)
            if cost is not None:
                by_size[m.size] = max(cost, by_size.get(m.size, cost))
        self.cost_book.learn(template.blueprint_id, template.print_provider_id, by_size)

    @staticmethod
    async def _create_once(market: PublishMarketplace, spec: ListingSpec) -> RemoteListing:
        """Create; after an ambiguous failure, look the listing up before sending again."""
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return await market.create_listing(spec)
            except (PodTimeoutError, ServiceError) as exc:
                log.info(
                    "create %s on %s: outcome unknown (%s); checking before anything else",
                    spec.idem_key,
                    market.name,
                    exc.kind,
                )
                found = await market.find_existing(spec.idem_key)
                if found is not None:
                    return found
                if attempt >= CREATE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # --- profit preview --------------------------------------------------------------------

    async def profit_preview(
        self,
        design: Design | GeneratedImage | None,
        template: ProductTemplate | str,
        *,
        platform: str = "printify",
    ) -> list[ProfitLine]:
        """Price - provider cost - first-item shipping per offered variant, flagging prices
        below cost. A cost the catalog knows (learned from a created draft) wins, else the
        seller's entered cost (``seller_costs``); variants with neither are left out. ``design`` is
        accepted for the publish panel's convenience; costs do not depend on it."""
        del design
        tpl = self._template(template) if isinstance(template, str) else template
        catalog = self.catalog_for(platform)
        matches, _missing = match_variants(tpl, await catalog.variants(tpl))
        entered = self.seller_costs.for_template(tpl.name)
        merged = merge_costs([(m.variant.title, m.size, m.variant.cost) for m in matches], entered)
        if not merged:
            return []
        shipping, shipping_source = merge_shipping(await catalog.shipping_cost(tpl), entered)
        lines = pricing_profit_preview(tpl, [(c.variant, c.cost) for c in merged], shipping)
        return [
            line.model_copy(update={"cost_source": c.source, "shipping_source": shipping_source})
            for line, c in zip(lines, merged, strict=True)
        ]

    # --- the headless batch ----------------------------------------------------------------

    def make_task(
        self, design: Design, template_name: str, platform: str, *, draft: bool
    ) -> PublishTask:
        return PublishTask(
            job_id=uuid.uuid4().hex,
            design_id=design.design_id,
            design_path=str(design.path),
            design_sha256=design.sha256,
            prompt=design.prompt,
            template_name=template_name,
            platform=platform,
            idem_key=idempotency_key(design.sha256, template_name, platform),
            draft=draft,
        )

    async def run_task(self, task: PublishTask, *, check_existing: bool = True) -> PublishOutcome:
        """Run one task with an in-memory journal; never raises a ``PodStudioError``."""
        journal = MemoryJournal()
        failed_at: list[str] = []
        try:
            if check_existing:
                ref = await self.reconcile(task, "create")
                if ref is not None:
                    journal.refs["create"] = ref
                    if not task.draft and await self.reconcile(task, "publish") is not None:
                        journal.refs["publish"] = ref
            listing = await self._execute(task, journal, failed_at)
        except Exception as exc:
            step = failed_at[0] if failed_at else "create"
            if not isinstance(exc, PodStudioError):
                log.exception("publish task %s failed unexpectedly", task.idem_key)
            outcome = self._outcome(task, ok=False, step=step, error=exc)
            detail = f"{task.template_name}: {step} failed: {outcome.error}"
        else:
            outcome = self._outcome(task, ok=True, listing=listing)
            detail = f"{task.template_name}: {listing.remote_id} ({listing.status})"
        # one PublishDone per listing (the durable queue sends its own for its jobs)
        self._sink(
            PublishDone(
                design_id=task.design_id, platform=task.platform, ok=outcome.ok, detail=detail
            )
        )
        return outcome

    @staticmethod
    def _outcome(
        task: PublishTask,
        *,
        ok: bool,
        listing: RemoteListing | None = None,
        step: str = "",
        error: BaseException | None = None,
    ) -> PublishOutcome:
        return PublishOutcome(
            design_id=task.design_id,
            design_name=Path(task.design_path).name,
            template=task.template_name,
            platform=task.platform,
            ok=ok,
            remote_id=listing.remote_id if listing else "",
            status=str(listing.status) if listing else "",
            url=listing.url if listing else None,
            step=step,
            error=_failure_text(error) if error is not None else "",
            error_kind=error.kind if isinstance(error, PodStudioError) else "",
        )

    async def publish_designs(
        self,
        designs: Iterable[Design | GeneratedImage],
        template_names: Sequence[str],
        platforms: Sequence[str],
        draft: bool = True,
        *,
        check_existing: bool = True,
    ) -> list[PublishOutcome]:
        """Publish every design as every template on every platform; results in that order.

        Tasks run concurrently (at most ``concurrency`` per platform); platforms run side by
        side and independently.
        """
        items = [d if isinstance(d, Design) else Design.from_image(d) for d in designs]
        tasks = [
            self.make_task(d, t, p, draft=draft)
            for d in items
            for t in template_names
            for p in platforms
        ]
        results: dict[str, PublishOutcome] = {}

        async def run_platform(platform: str) -> None:
            gate = asyncio.Semaphore(self.concurrency)

            async def one(task: PublishTask) -> None:
                async with gate:
                    results[task.job_id] = await self.run_task(task, check_existing=check_existing)

            await asyncio.gather(*(one(t) for t in tasks if t.platform == platform))

        await asyncio.gather(*(run_platform(p) for p in dict.fromkeys(platforms)))
        return [results[t.job_id] for t in tasks]


def describe_outcome(outcome: PublishOutcome) -> str:
    """One line per listing: design | template | platform | remote id (status) or the reason."""
    if outcome.ok:
        detail = f"{outcome.remote_id} ({outcome.status})"
        mark = "OK  "
    else:
        detail = f"{outcome.step}: {outcome.error}" if outcome.step else outcome.error
        mark = "FAIL"
    return f"{mark} {outcome.design_name} | {outcome.template} | {outcome.platform} | {detail}"


def outcome_summary(outcomes: Sequence[PublishOutcome]) -> dict[str, Any]:
    """Counts for a closing line: listings ok / failed, per platform."""
    per: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = per.setdefault(o.platform, {"ok": 0, "failed": 0})
        row["ok" if o.ok else "failed"] += 1
    return {
        "ok": sum(1 for o in outcomes if o.ok),
        "failed": sum(1 for o in outcomes if not o.ok),
        "platforms": per,
    }


def outcomes_json(outcomes: Sequence[PublishOutcome]) -> str:
    return json.dumps([o.model_dump(mode="json") for o in outcomes], indent=2)
