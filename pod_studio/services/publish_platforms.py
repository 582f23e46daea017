"""Services layer: the publish strategies, one small object per platform (``PublishPlatform``).

The publish executor (``services.publishing``) knows no platform; what differs lives here:

- ``BasicPlatform``: a platform that lists what it is given (Shopify, Etsy, the export
  folder): its credential pre-flight, nothing else.
- ``PrintifyPlatform``: Printify: the pre-flight also checks the shop; print files go to its
  media library; a created product reports its provider costs (kept in a ``CostBook``); a shop
  natively connected to Shopify or Etsy lists there on its own; a custom ("API") shop locks a
  published product until POD Studio makes the storefront listing itself and reports it back.

Clients are typed by what is called on them (Protocols), so this module imports no adapter;
the composition builds each (client, strategy) pair.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from pod_studio.domain.cache_port import PersistentCachePort
from pod_studio.domain.errors import (
    PodStudioError,
    ServiceUnavailableError,
    user_message,
)
from pod_studio.domain.jobs import idempotency_key
from pod_studio.domain.marketplace import (
    CatalogVariant,
    ListingSpec,
    ListingStatus,
    RemoteListing,
    ShippingProfile,
)
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.publishing import (
    ProductCatalog,
    PublishMarketplace,
    PublishPath,
    PublishTask,
    StepJournal,
)

log = logging.getLogger(__name__)

CredentialCheck = Callable[[], Awaitable[object]]
"""A call that raises ``AuthenticationError`` when the platform refuses the credential."""


class BasicPlatform:
    """A platform that lists exactly what it is given (Shopify, Etsy, the export folder)."""

    follow_up_step = ""

    def __init__(
        self,
        market: PublishMarketplace,
        *,
        check: CredentialCheck | None = None,
        catalog: ProductCatalog | None = None,
    ) -> None:
        self.market = market
        self.name = market.name
        self.catalog = catalog
        self._check = check

    async def check_credentials(self) -> None:
        if self._check is not None:
            await self._check()

    async def upload(self, print_file: Path) -> str | None:
        return None  # the listing carries the print file itself

    async def learn_costs(
        self, template: ProductTemplate, listing: RemoteListing, sizes: Mapping[int, str]
    ) -> None:
        return None

    async def lists_for(self, task: PublishTask) -> RemoteListing | None:
        return None

    async def after_publish(
        self,
        task: PublishTask,
        journal: StepJournal,
        listing: RemoteListing | None,
        remote_id: str,
        path: PublishPath,
    ) -> RemoteListing | None:
        return listing


# --- catalogs and costs ----------------------------------------------------------------------


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
    the cost of each variant: ``PrintifyPlatform`` records them here after each create, so the
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
            size = v.option("size")
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


# --- Printify --------------------------------------------------------------------------------


class MediaImage(Protocol):
    """An image in a platform's media library."""

    @property
    def id(self) -> str: ...


class PrintifyShop(CatalogSource, Protocol):
    """What ``PrintifyPlatform`` calls on the Printify client."""

    name: str

    async def find_existing(self, idem_key: str) -> RemoteListing | None: ...

    async def create_listing(self, spec: ListingSpec) -> RemoteListing: ...

    async def publish(self, listing: RemoteListing) -> RemoteListing: ...

    async def get_listing(self, remote_id: str) -> RemoteListing: ...

    async def check_credentials(self) -> None: ...

    async def upload_image(
        self, source: Path | bytes, file_name: str | None = None
    ) -> MediaImage: ...

    async def variant_costs(self, remote_id: str) -> dict[int, Decimal]: ...

    async def sales_channel(self) -> str: ...

    async def report_publishing_succeeded(
        self, product_id: str, external_id: str, handle: str
    ) -> None: ...

    async def report_publishing_failed(self, product_id: str, reason: str) -> None: ...


# The storefronts a Printify shop can be connected to, natively or as a custom ("API") shop
STOREFRONTS: Sequence[str] = ("shopify", "etsy")
# Printify's sales_channel of a shop whose listings the API client makes itself
# (the contract leaves the exact strings unconfirmed; "custom_integration" is what it shows)
CUSTOM_CHANNELS = frozenset({"custom_integration", "custom", "api"})
NO_STOREFRONT_WAIT = 1800.0


def is_custom_channel(channel: str) -> bool:
    return channel.strip().lower() in CUSTOM_CHANNELS


def _reason(exc: BaseException) -> str:
    return user_message(exc).replace("\n", " ").strip()


class PrintifyPlatform:
    """Printify's publish strategy (see the module doc)."""

    name = "printify"
    follow_up_step = "storefront"

    def __init__(self, client: PrintifyShop, *, costs: CostTable | CostBook | None = None) -> None:
        self._client = client
        self._book = costs if isinstance(costs, CostBook) else None
        self.catalog: ProductCatalog = RemoteCatalog(client, costs=costs)

    @property
    def market(self) -> PublishMarketplace:
        return self._client

    async def check_credentials(self) -> None:
        """The token works and names one usable shop (the chosen one, or the only one)."""
        await self._client.check_credentials()

    async def upload(self, print_file: Path) -> str | None:
        return (await self._client.upload_image(print_file)).id

    async def learn_costs(
        self, template: ProductTemplate, listing: RemoteListing, sizes: Mapping[int, str]
    ) -> None:
        """Record the provider costs the created product reports (see ``CostBook``)."""
        if self._book is None:
            return
        try:
            costs = await self._client.variant_costs(listing.remote_id)
        except PodStudioError as exc:
            log.info("costs of %s not read: %s", listing.remote_id, exc.kind)
            return
        by_size: dict[str, Decimal] = {}
        for variant_id, size in sizes.items():
            cost = costs.get(variant_id)
            if cost is not None:
                by_size[size] = max(cost, by_size.get(size, cost))
        self._book.learn(template.blueprint_id, template.print_provider_id, by_size)

    async def lists_for(self, task: PublishTask) -> RemoteListing | None:
        """A storefront listing that Printify's own connection makes (the seller's Printify
        shop is natively connected to that storefront): POD Studio makes no second product."""
        if task.platform not in STOREFRONTS:
            return None
        try:
            channel = (await self._client.sales_channel()).strip().lower()
        except PodStudioError as exc:
            log.info("printify's sales channel is unknown (%s); listing on %s", exc.kind,
                     task.platform)  # fmt: skip
            return None
        if channel != task.platform:
            return None
        return RemoteListing(
            platform=task.platform,
            remote_id="via-printify",
            status=ListingStatus.DRAFT if task.draft else ListingStatus.PUBLISHED,
            title=f"listed by Printify's own {task.platform.capitalize()} connection",
        )

    async def after_publish(
        self,
        task: PublishTask,
        journal: StepJournal,
        listing: RemoteListing | None,
        remote_id: str,
        path: PublishPath,
    ) -> RemoteListing | None:
        """On a custom ("API") shop, publishing only locks the product: POD Studio makes the
        storefront listing itself (the same publish path, the storefront's own idempotency
        key, so a storefront job for the same design is the same product) and reports it
        back, or reports the failure, so no product is left locked."""
        step = self.follow_up_step
        client = self._client
        if journal.completed(step) is not None or not is_custom_channel(
            await client.sales_channel()
        ):
            return listing
        current = listing or await client.get_listing(remote_id)
        if current.status is not ListingStatus.PUBLISHING:
            return current
        path.step_changed(task, step, "running")
        await journal.intent(step)
        storefront = next((p for p in STOREFRONTS if path.has_platform(p)), None)
        if storefront is None:
            reason = (
                "This Printify shop is a custom (API) shop: POD Studio makes the storefront "
                "listing itself, and no storefront is set up (connect Shopify or Etsy in "
                "Settings)."
            )
            await client.report_publishing_failed(remote_id, reason)
            raise ServiceUnavailableError(
                "no storefront for a custom Printify shop",
                service=task.platform,
                user_message=reason,
                retry_in=NO_STOREFRONT_WAIT,
            )
        own_task = task.model_copy(
            update={
                "platform": storefront,
                "idem_key": idempotency_key(task.design_sha256, task.template_name, storefront),
                "draft": False,
            }
        )
        try:
            own = await path.publish_elsewhere(own_task)
        except PodStudioError as exc:
            await client.report_publishing_failed(remote_id, _reason(exc))
            raise
        await client.report_publishing_succeeded(remote_id, own.remote_id, own.url or own.remote_id)
        await journal.done(step, own.remote_id)
        path.step_changed(task, step, "done", f"{storefront} {own.remote_id}", own.remote_id)
        return await client.get_listing(remote_id)
