"""Domain layer: the contracts of publishing: orchestrator ↔ executor, executor ↔ platform.

A publish job is one design × product template × platform. The orchestrator (services)
claims it from the ledger and hands it to a ``PublishExecutor`` together with a
``StepJournal`` bound to that job: the executor records the intent of every side effect
before doing it, and its result after, so that a crash at any point can be resumed and a
listing is never created twice.

The executor knows no platform: what differs per platform (its credential pre-flight, media
uploads, the costs a created product reports, a listing another platform makes on its own,
what follows a publish) sits behind one port, ``PublishPlatform``, one small strategy object
per platform, built by the composition with the platform's client.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from pod_studio.domain.marketplace import CatalogVariant, ListingSpec, RemoteListing
from pod_studio.domain.models import ListingCopy
from pod_studio.domain.products import ProductTemplate

# The steps of a publish job, in order. "prepare" and "upload" are cheap to repeat; "create"
# and "publish" are protected by reconciliation (find the listing by its idempotency key).
PUBLISH_STEPS: tuple[str, ...] = ("prepare", "upload", "create", "publish")


class PublishTask(BaseModel):
    """Everything needed to publish one design as one product on one platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    job_id: str
    design_id: str  # GeneratedImage.image_id
    design_path: str
    design_sha256: str
    prompt: str
    template_name: str
    platform: str  # "printify", "shopify", "etsy", "export"
    idem_key: str  # domain.jobs.idempotency_key(design_sha256, template_name, platform)
    draft: bool = True  # True: create only; False: create and publish
    listing: ListingCopy | None = None  # the seller's words (None: from the prompt)


class StepJournal(Protocol):
    """The ledger's view of one job's steps, for the executor."""

    def completed(self, step: str) -> str | None:
        """The remote ref of ``step`` if it is already done (from an earlier attempt)."""

    async def intent(self, step: str) -> None:
        """Record durably that ``step``'s side effect is about to happen."""

    async def done(self, step: str, remote_ref: str | None = None) -> None:
        """Record durably that ``step`` finished, with what it produced."""


class PublishExecutor(Protocol):
    """Does the work of one publish task (implemented by the publish service)."""

    async def execute(self, task: PublishTask, journal: StepJournal) -> RemoteListing:
        """Run the steps that are not done yet; raise a PodStudioError on failure."""

    async def reconcile(self, task: PublishTask, step: str) -> str | None:
        """For a step found in flight after a crash: its remote ref if it landed, else None."""


# --- the platform port -------------------------------------------------------------------


@runtime_checkable
class PublishMarketplace(Protocol):
    """What the executor calls on a platform's client (a subset of ``Marketplace``)."""

    name: str

    async def find_existing(self, idem_key: str) -> RemoteListing | None: ...

    async def create_listing(self, spec: ListingSpec) -> RemoteListing: ...

    async def publish(self, listing: RemoteListing) -> RemoteListing: ...

    async def get_listing(self, remote_id: str) -> RemoteListing: ...


class ProductCatalog(Protocol):
    """Variants (with print areas, and costs when known) and shipping for a template."""

    async def variants(self, template: ProductTemplate) -> list[CatalogVariant]: ...

    async def shipping_cost(self, template: ProductTemplate) -> Decimal | None: ...


class PublishPath(Protocol):
    """What a platform's strategy may ask of the publish executor (the one publish path)."""

    def has_platform(self, name: str) -> bool:
        """Whether ``name`` is set up for publishing now."""

    async def publish_elsewhere(self, task: PublishTask) -> RemoteListing:
        """Run ``task`` (another platform's listing) through the same steps; a listing that
        exists already is found, not made twice."""

    def step_changed(
        self, task: PublishTask, step: str, phase: str, detail: str = "", ref: str = ""
    ) -> None:
        """Announce ``step`` of ``task`` as ``phase`` (running, done, skipped, failed)."""


class PublishPlatform(Protocol):
    """What differs per platform when publishing (one strategy object per platform)."""

    @property
    def name(self) -> str: ...

    @property
    def market(self) -> PublishMarketplace:
        """The platform's client: creates, publishes and finds listings."""

    @property
    def catalog(self) -> ProductCatalog | None:
        """The platform's own catalog (print areas, costs), or None: the template's."""

    @property
    def follow_up_step(self) -> str:
        """The name of the step ``after_publish`` runs as ("" when it does nothing)."""

    async def check_credentials(self) -> None:
        """Raise ``AuthenticationError`` when the platform refuses the credential, another
        ``PodStudioError`` when the account cannot be used as set up; sends nothing else."""

    async def upload(self, print_file: Path) -> str | None:
        """Upload the print file to the platform's media library: its id, or None when the
        platform has none (the listing then carries the file itself)."""

    async def learn_costs(
        self, template: ProductTemplate, listing: RemoteListing, sizes: Mapping[int, str]
    ) -> None:
        """Record what the created ``listing`` reports about provider costs (variant id ->
        size in ``sizes``); never raises for a cost that cannot be read."""

    async def lists_for(self, task: PublishTask) -> RemoteListing | None:
        """The listing this platform's own connection makes for ``task`` (another platform's
        listing), so that none is made twice; None when it makes none."""

    async def after_publish(
        self,
        task: PublishTask,
        journal: StepJournal,
        listing: RemoteListing | None,
        remote_id: str,
        path: PublishPath,
    ) -> RemoteListing | None:
        """What follows an accepted publish on this platform (the listing as it is then, or
        ``listing`` unchanged)."""
