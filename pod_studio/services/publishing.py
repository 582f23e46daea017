"""Services layer: the publish executor (the one publish path; it knows no platform).

``PublishService`` implements ``domain.publishing.PublishExecutor`` for every platform; what
differs per platform comes from that platform's ``PublishPlatform`` strategy
(``services.publish_platforms``). One task is one design as one product template on one
platform, run as four steps:

0. Before any work, the platform's credential is checked once (per strategy: a new token
   means a new strategy, checked again). A credential the platform refuses, then or at any
   later step, is not the listing's fault: the job waits for it, uncharged
   (``ServiceUnavailableError``), instead of dying.
1. ``prepare``: the catalog's variants for the template's enabled colours x sizes give the
   print area (the largest front placeholder); the design is fitted into a transparent canvas
   of that size (``prepare``, injected, run in a worker thread) and pre-flighted: a FAIL badge
   raises ``ValidationError`` with the reasons. Print files are cached in ``work_dir`` by
   design hash and canvas size.
2. ``upload``: the platform's media upload (deduplicated by content hash in the adapter), its
   image id recorded as the step's ref. Platforms without uploads record the print file's
   path.
3. ``create``: a ``ListingSpec`` (texts from ``render_texts``, prices as ``Decimal`` from the
   template's price rule, converted to cents by the adapter, placement from the template). The
   intent is journalled before the request; when the outcome is unknown (timeout, dropped
   connection, 5xx, unreadable reply) the listing is looked up by its idempotency key before
   anything is sent again.
4. ``publish`` (only when ``task.draft`` is false): intent first, then the platform's publish,
   then what the platform does after it (``PublishPlatform.after_publish``).

A listing another platform's own connection makes (``PublishPlatform.lists_for``) is not made
a second time. Steps the journal reports as done are skipped; once ``create`` is done,
``prepare`` and ``upload`` are skipped too (they only feed ``create``). Events:
``PublishStepChanged`` with ``state`` ``"<step>:running" | "<step>:done" | "<step>:skipped" |
"<step>:failed"``. The one ``PublishDone`` per listing comes from the durable queue, once the
job succeeds or is dead (never per attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from pod_studio.domain.costs import SellerCosts, merge_costs, merge_shipping
from pod_studio.domain.errors import (
    AuthenticationError,
    PodStudioError,
    PodTimeoutError,
    ServiceError,
    ServiceUnavailableError,
    ValidationError,
    user_message,
)
from pod_studio.domain.events import EventSink, PublishStepChanged
from pod_studio.domain.marketplace import (
    CatalogVariant,
    ListingSpec,
    ListingStatus,
    Placeholder,
    RemoteListing,
    VariantPrice,
)
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.preflight import PreflightBadge, PrintFileInfo, preflight
from pod_studio.domain.pricing import ProfitLine, price_for
from pod_studio.domain.pricing import profit_preview as pricing_profit_preview
from pod_studio.domain.products import ProductTemplate, render_texts
from pod_studio.domain.publishing import (
    ProductCatalog,
    PublishMarketplace,
    PublishPlatform,
    PublishTask,
    StepJournal,
)

log = logging.getLogger(__name__)

DEFAULT_PRINT_AREA = (4500, 5400)
PRINT_POSITION = "front"
PRINT_DPI = 300
MAX_PRINT_FILE_BYTES = 200 * 1024 * 1024  # adapters recompress for their own upload limits
CREATE_ATTEMPTS = 3
# a refused credential is re-tried this often until the seller fixes it (a fix made in the
# app or named again by ``pod-studio publish`` makes the listing due at once)
CREDENTIAL_WAIT = 600.0

PrepareFn = Callable[[Path, Path, int, int], PrintFileInfo]
"""``prepare(src, dst, width_px, height_px) -> PrintFileInfo`` (blocking; run in a thread)."""


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


class VariantMatch(_Frozen):
    variant: CatalogVariant
    color: str
    size: str


# --- helpers ---------------------------------------------------------------------------------


def match_variants(
    template: ProductTemplate, catalog: Sequence[CatalogVariant]
) -> tuple[list[VariantMatch], list[str]]:
    """The catalog variants for the template's colours x sizes, and the combinations missing.

    Matching reads each variant's ``options`` (never its title), case-insensitively.
    """
    index: dict[tuple[str, str], CatalogVariant] = {}
    for v in catalog:
        color, size = v.option("color"), v.option("size")
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


# --- the service -----------------------------------------------------------------------------


def _credential_wait(exc: AuthenticationError) -> ServiceUnavailableError:
    """A refused credential, as a reason for the listing to wait (uncharged) until it works."""
    text = _failure_text(exc).rstrip(".")
    return ServiceUnavailableError(
        f"credential refused: {exc.message}",
        service=exc.service,
        user_message=f"{text}. The listing waits until it works.",
        retry_in=CREDENTIAL_WAIT,
    )


class _OneOffJournal:
    """The journal of a listing made within another job (``publish_elsewhere``): in memory,
    its ``create`` and ``publish`` found on the platform first, so that a second run after a
    crash makes nothing twice."""

    def __init__(self, refs: Mapping[str, str]) -> None:
        self._refs = dict(refs)

    def completed(self, step: str) -> str | None:
        return self._refs.get(step)

    async def intent(self, step: str) -> None:
        return None

    async def done(self, step: str, remote_ref: str | None = None) -> None:
        self._refs[step] = remote_ref if remote_ref is not None else ""


class PublishService:
    """Publishes designs as products (implements ``PublishExecutor``). See the module doc.

    ``platforms`` are the platforms set up now, one strategy each; a platform without its own
    catalog uses a ``TemplateCatalog`` (the template's colours x sizes, a 4500 x 5400 print
    area).
    """

    def __init__(
        self,
        platforms: Iterable[PublishPlatform],
        templates: Mapping[str, ProductTemplate],
        *,
        work_dir: Path,
        sink: EventSink,
        prepare: PrepareFn,
        max_print_file_bytes: int = MAX_PRINT_FILE_BYTES,
        seller_costs: SellerCosts | None = None,
    ) -> None:
        self._platforms: dict[str, PublishPlatform] = {p.name: p for p in platforms}
        self.templates = dict(templates)
        self.work_dir = Path(work_dir)
        self._sink = sink
        self._prepare = prepare
        self._default_catalog = TemplateCatalog()
        self.max_print_file_bytes = max_print_file_bytes
        self._file_locks: dict[Path, asyncio.Lock] = {}
        # the strategy whose credential was last accepted, per platform (a new one is checked)
        self._verified: dict[str, PublishPlatform] = {}
        self._check_locks: dict[str, asyncio.Lock] = {}
        # the seller's own costs (Settings → Products), used where the catalog knows none
        self.seller_costs = seller_costs or SellerCosts()

    def set_platform(self, name: str, platform: PublishPlatform | None) -> None:
        """Add, replace or (``None``) remove a platform, e.g. after the seller saved a token."""
        if platform is None:
            self._platforms.pop(name, None)
        else:
            self._platforms[name] = platform

    @property
    def marketplaces(self) -> Mapping[str, PublishMarketplace]:
        """The platforms set up now, by name (the queue asks which it can serve)."""
        return {name: p.market for name, p in self._platforms.items()}

    # --- lookups ---------------------------------------------------------------------------

    def has_platform(self, name: str) -> bool:
        return name in self._platforms

    def catalog_for(self, platform: str) -> ProductCatalog:
        found = self._platforms.get(platform)
        catalog = found.catalog if found is not None else None
        return catalog if catalog is not None else self._default_catalog

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

    def _platform(self, name: str) -> PublishPlatform:
        platform = self._platforms.get(name)
        if platform is None:
            # not the listing's fault: it waits (uncharged) until the seller sets it up
            raise ServiceUnavailableError(
                f"platform {name!r} is not configured",
                service=name,
                user_message=f"{name.capitalize()} is not set up yet (Settings); the "
                "listing waits until it is.",
            )
        return platform

    def step_changed(
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

    # --- credentials -----------------------------------------------------------------------

    async def check_credentials(self, platform: str) -> None:
        """Ask ``platform`` now whether it accepts its credential (before work is queued):
        raises ``AuthenticationError`` when it refuses it, another ``PodStudioError`` when the
        account cannot be used as set up, ``ServiceUnavailableError`` when it is not set up."""
        found = self._platform(platform)
        await found.check_credentials()
        if self._platforms.get(platform) is found:
            self._verified[platform] = found

    async def _ready(self, platform: PublishPlatform) -> None:
        """Check the platform's credential once before its first job does any work."""
        if self._verified.get(platform.name) is platform:
            return
        lock = self._check_locks.setdefault(platform.name, asyncio.Lock())
        async with lock:
            if self._verified.get(platform.name) is not platform:
                await platform.check_credentials()
                self._verified[platform.name] = platform

    # --- PublishExecutor -------------------------------------------------------------------

    async def execute(self, task: PublishTask, journal: StepJournal) -> RemoteListing:
        try:
            return await self._execute(task, journal)
        except AuthenticationError as exc:
            raise _credential_wait(exc) from exc

    async def publish_elsewhere(self, task: PublishTask) -> RemoteListing:
        """Make ``task``'s listing within another job (``PublishPath``): what the platform
        holds already for its key is found first, not made again."""
        refs: dict[str, str] = {}
        created = await self.reconcile(task, "create")
        if created is not None:
            refs["create"] = created
            if not task.draft and await self.reconcile(task, "publish") is not None:
                refs["publish"] = created
        return await self._execute(task, _OneOffJournal(refs))

    async def _execute(self, task: PublishTask, journal: StepJournal) -> RemoteListing:
        step = "prepare"
        try:
            template = self._template(task.template_name)
            platform = self._platform(task.platform)
            native = await self._listed_elsewhere(task)
            if native is not None:
                if journal.completed("create") is None:
                    await journal.intent("create")
                    await journal.done("create", native.remote_id)
                return native
            await self._ready(platform)
            market = platform.market
            created_ref = journal.completed("create")
            matches: list[VariantMatch] = []
            print_file: PrintFileInfo | None = None
            if created_ref is None:
                matches, print_file = await self._step_prepare(task, journal, template)
                step = "upload"
                await self._step_upload(task, journal, platform, print_file)
            else:
                self.step_changed(task, "prepare", "skipped", "the listing exists already")
                self.step_changed(task, "upload", "skipped", "the listing exists already")
            step = "create"
            listing: RemoteListing | None = None
            if created_ref is None:
                assert print_file is not None
                listing = await self._step_create(
                    task, journal, platform, template, matches, print_file
                )
            else:
                self.step_changed(task, "create", "skipped", "created earlier", created_ref)
            remote_id = listing.remote_id if listing is not None else str(created_ref)
            if not task.draft:
                step = "publish"
                published_ref = journal.completed("publish")
                if published_ref is None:
                    self.step_changed(task, "publish", "running")
                    await journal.intent("publish")
                    current = listing or RemoteListing(
                        platform=task.platform, remote_id=remote_id, status=ListingStatus.DRAFT
                    )
                    listing = await market.publish(current)
                    await journal.done("publish", listing.remote_id)
                    self.step_changed(
                        task, "publish", "done", str(listing.status), listing.remote_id
                    )
                else:
                    self.step_changed(
                        task, "publish", "skipped", "published earlier", published_ref
                    )
                    listing = None
                step = platform.follow_up_step or step
                listing = await platform.after_publish(task, journal, listing, remote_id, self)
            if listing is None:
                listing = await market.get_listing(remote_id)
        except Exception as exc:
            reason = _failure_text(exc)
            if not isinstance(exc, PodStudioError):
                log.exception("publish %s failed unexpectedly at %s", task.idem_key, step)
            self.step_changed(task, step, "failed", reason)
            raise
        return listing

    async def reconcile(self, task: PublishTask, step: str) -> str | None:
        """``create``: the listing found by idempotency key; ``publish``: that listing if it is
        published or publishing; ``prepare``/``upload``: ``None`` (cheap to redo)."""
        if step not in ("create", "publish"):
            return None
        market = self._platform(task.platform).market
        try:
            found = await market.find_existing(task.idem_key)
        except AuthenticationError as exc:
            raise _credential_wait(exc) from exc
        if found is None:
            return None
        if step == "create":
            return found.remote_id
        if found.status in (ListingStatus.PUBLISHED, ListingStatus.PUBLISHING):
            return found.remote_id
        return None

    # --- steps -----------------------------------------------------------------------------

    async def _listed_elsewhere(self, task: PublishTask) -> RemoteListing | None:
        """The listing another platform's own connection makes for ``task`` (none is made)."""
        for other in list(self._platforms.values()):
            if other.name == task.platform:
                continue
            listing = await other.lists_for(task)
            if listing is not None:
                for step in ("prepare", "upload", "create"):
                    self.step_changed(task, step, "skipped", listing.title)
                return listing
        return None

    async def _step_prepare(
        self, task: PublishTask, journal: StepJournal, template: ProductTemplate
    ) -> tuple[list[VariantMatch], PrintFileInfo]:
        self.step_changed(task, "prepare", "running")
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
        self.step_changed(task, "prepare", "done", detail, info.path)
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
        platform: PublishPlatform,
        print_file: PrintFileInfo,
    ) -> None:
        done_ref = journal.completed("upload")
        if done_ref is not None:
            # Done steps stay done (a job retried after a later step failed). A platform
            # without uploads only recorded the print file's path, made again above.
            self.step_changed(task, "upload", "skipped", "uploaded earlier", done_ref)
            return
        self.step_changed(task, "upload", "running")
        await journal.intent("upload")
        ref = await platform.upload(Path(print_file.path)) or print_file.path
        await journal.done("upload", ref)
        self.step_changed(task, "upload", "done", "", ref)

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
        platform: PublishPlatform,
        template: ProductTemplate,
        matches: Sequence[VariantMatch],
        print_file: PrintFileInfo,
    ) -> RemoteListing:
        self.step_changed(task, "create", "running")
        spec = self.build_spec(task, template, matches, print_file)
        await journal.intent("create")
        listing = await self._create_once(platform.market, spec)
        await journal.done("create", listing.remote_id)
        await platform.learn_costs(template, listing, {m.variant.id: m.size for m in matches})
        self.step_changed(task, "create", "done", str(listing.status), listing.remote_id)
        return listing

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
        design: GeneratedImage | None,
        template: ProductTemplate | str,
        *,
        platform: str | None = None,
    ) -> list[ProfitLine]:
        """Price - provider cost - first-item shipping per offered variant, flagging prices
        below cost. A cost the catalog knows (learned from a created draft) wins, else the
        seller's entered cost (``seller_costs``); variants with neither are left out. The
        catalog is ``platform``'s, else that of the first platform with a catalog of its own
        (the print provider's), else the template's. ``design`` is accepted for the publish
        panel's convenience; costs do not depend on it."""
        del design
        tpl = self._template(template) if isinstance(template, str) else template
        if platform is None:
            own = (p.name for p in self._platforms.values() if p.catalog is not None)
            platform = next(own, "")
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
