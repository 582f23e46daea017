"""Services layer: publish helpers for the orchestrator.

- ``LedgerJournal``: the ``StepJournal`` a ``PublishExecutor`` writes its intents and results
  through (one publish job, backed by the job ledger, with an event per step).
- ``MarketplacePublishExecutor`` (alias ``ExportPublishExecutor``): a ``PublishExecutor`` over
  any ``Marketplace`` port (the local export folder, a sandbox): prepare → create → publish,
  each recorded before and after, and ``reconcile`` finds a listing by its idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.events import EventSink, PublishStepChanged
from pod_studio.domain.jobs import StepStatus
from pod_studio.domain.ledger_port import JobLedger, JobRecord
from pod_studio.domain.marketplace import (
    ListingSpec,
    ListingStatus,
    Marketplace,
    RemoteListing,
    VariantPrice,
)
from pod_studio.domain.products import ProductTemplate, default_templates, render_texts
from pod_studio.domain.publishing import PublishTask, StepJournal

log = logging.getLogger(__name__)


def step_key(task: PublishTask, step: str) -> str:
    return f"{task.idem_key}:{step}"


class LedgerJournal:
    """A ``StepJournal`` bound to one publish job."""

    def __init__(
        self, ledger: JobLedger, job: JobRecord, task: PublishTask, sink: EventSink
    ) -> None:
        self._ledger = ledger
        self._job_id = job.id
        self._task = task
        self._sink = sink
        self._states: dict[str, tuple[StepStatus, str | None]] = {
            s.step: (s.state, s.remote_ref) for s in job.steps
        }

    def completed(self, step: str) -> str | None:
        state, ref = self._states.get(step, (StepStatus.PENDING, None))
        if state is StepStatus.DONE:
            return ref if ref is not None else ""
        return None

    def is_done(self, step: str) -> bool:
        return self._states.get(step, (StepStatus.PENDING, None))[0] is StepStatus.DONE

    async def intent(self, step: str) -> None:
        state, _ref = self._states.get(step, (StepStatus.PENDING, None))
        if state is StepStatus.IN_FLIGHT:
            await self._ledger.reset_step(self._job_id, step)
        rec = await self._ledger.record_intent(self._job_id, step, step_key(self._task, step))
        self._states[step] = (rec.state, rec.remote_ref)
        self._emit(step, "in_flight")

    async def done(self, step: str, remote_ref: str | None = None) -> None:
        rec = await self._ledger.record_result(self._job_id, step, remote_ref)
        self._states[step] = (rec.state, rec.remote_ref)
        self._emit(step, "done", remote_ref or "")

    def _emit(self, step: str, state: str, remote_id: str = "") -> None:
        self._sink(
            PublishStepChanged(
                design_id=self._task.design_id,
                product=self._task.template_name,
                platform=self._task.platform,
                state=f"{step}:{state}",
                remote_id=remote_id,
            )
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MarketplacePublishExecutor:
    """Publishes a design through a ``Marketplace`` port, step by step (a ``PublishExecutor``).

    Catalog variant ids are the template's sizes numbered from 1: right for the export
    folder and the sandboxes; real platforms have their own executors with catalog lookups.
    """

    def __init__(
        self, marketplace: Marketplace, templates: Sequence[ProductTemplate] | None = None
    ) -> None:
        self.marketplace = marketplace
        self._templates: Mapping[str, ProductTemplate] = {
            t.name: t for t in (templates if templates is not None else default_templates())
        }

    def listing_spec(self, task: PublishTask) -> ListingSpec:
        template = self._templates.get(task.template_name)
        if template is None:
            raise ValidationError(
                f"no product template named {task.template_name!r}",
                service=self.marketplace.name,
                user_message=f"The product template {task.template_name!r} no longer exists.",
            )
        title, description, tags = render_texts(template, task.prompt)
        variants = tuple(
            VariantPrice(
                variant_id=i + 1,
                price=template.price.size_overrides.get(size, template.price.base),
            )
            for i, size in enumerate(template.sizes)
        )
        return ListingSpec.build(
            idem_key=task.idem_key,
            title=title,
            description=description,
            tags=tuple(tags),
            design_path=Path(task.design_path),
            design_sha256=task.design_sha256,
            blueprint_id=template.blueprint_id,
            print_provider_id=template.print_provider_id,
            variants=variants,
            currency=template.price.currency,
            placement=template.placement.for_listing(),
        )

    async def execute(self, task: PublishTask, journal: StepJournal) -> RemoteListing:
        if journal.completed("prepare") is None:
            await journal.intent("prepare")
            path = Path(task.design_path)
            try:
                digest = await asyncio.to_thread(_sha256_file, path)
            except FileNotFoundError:
                raise ValidationError(
                    f"design file {path} is missing",
                    service=self.marketplace.name,
                    user_message=f"The design file {path.name} is missing.",
                ) from None
            if digest != task.design_sha256:
                raise ValidationError(
                    f"design file {path.name} changed since it was approved",
                    service=self.marketplace.name,
                )
            await journal.done("prepare", digest[:12])
        spec = self.listing_spec(task)
        listing: RemoteListing | None = None
        if journal.completed("create") is None:
            await journal.intent("create")
            listing = await self.marketplace.create_listing(spec)
            await journal.done("create", listing.remote_id)
        if listing is None:
            listing = await self.marketplace.find_existing(task.idem_key)
            if listing is None:
                raise ValidationError(
                    f"listing {task.idem_key} was created but is gone from {self.marketplace.name}",
                    service=self.marketplace.name,
                    user_message="The listing was deleted on the platform; retry to create "
                    "it again.",
                )
        if not task.draft and journal.completed("publish") is None:
            await journal.intent("publish")
            listing = await self.marketplace.publish(listing)
            await journal.done("publish", listing.remote_id)
        return listing

    async def reconcile(self, task: PublishTask, step: str) -> str | None:
        if step not in ("create", "publish"):
            return None  # cheap steps are simply done again
        found = await self.marketplace.find_existing(task.idem_key)
        if found is None:
            return None
        if step == "publish" and found.status is not ListingStatus.PUBLISHED:
            return None
        return found.remote_id


ExportPublishExecutor = MarketplacePublishExecutor
