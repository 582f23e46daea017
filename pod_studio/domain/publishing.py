"""Domain layer: the contract between the job orchestrator and the publish executor.

A publish job is one design × product template × platform. The orchestrator (services)
claims it from the ledger and hands it to a ``PublishExecutor`` together with a
``StepJournal`` bound to that job: the executor records the intent of every side effect
before doing it, and its result after, so that a crash at any point can be resumed and a
listing is never created twice.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from pod_studio.domain.marketplace import RemoteListing
from pod_studio.domain.models import ListingCopy

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
