"""Services layer: the seller's designs as the window works on them.

``DesignService`` answers the gallery and the publish panel: a design's thumbnail, its
print-file check against a product template, the product templates, the seller's own costs
(read and saved), the profit preview, and the upscale of a design into its print file on a
ComfyUI server. The composition injects the thumbnailer and the image reader (adapters).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore, PrintFileStore, SellerCostStore
from pod_studio.domain.preflight import ImageInfo, preflight
from pod_studio.domain.pricing import ProfitLine
from pod_studio.domain.products import ProductTemplate
from pod_studio.services.comfyui_servers import ComfyUIServers
from pod_studio.services.orchestrator import Orchestrator
from pod_studio.services.publishing import (
    DEFAULT_PRINT_AREA,
    MAX_PRINT_FILE_BYTES,
    PublishService,
)
from pod_studio.services.upscale import upscale_design

GARMENTS = ("t-shirt", "hoodie", "sweatshirt")


class DesignStore(ImageStore, PrintFileStore, Protocol):
    """The gallery: designs and their print files."""


class DesignService:
    """What the gallery and the publish panel ask about designs."""

    def __init__(
        self,
        store: DesignStore,
        *,
        publishing: PublishService,
        orchestrator: Orchestrator,
        servers: ComfyUIServers,
        cost_store: SellerCostStore,
        thumbnail: Callable[[GeneratedImage], bytes],
        read_image_info: Callable[[Path], ImageInfo],
        max_pixels: int,
    ) -> None:
        self.store = store
        self._publishing = publishing
        self._orchestrator = orchestrator
        self._servers = servers
        self._cost_store = cost_store
        self._thumbnail = thumbnail
        self._read_image_info = read_image_info
        self._max_pixels = max_pixels

    def thumbnail(self, image: GeneratedImage) -> bytes:
        """PNG thumbnail bytes (blocking: call it in a worker thread)."""
        return self._thumbnail(image)

    def preflight_design(self, image: GeneratedImage, template_name: str) -> tuple[str, list[str]]:
        """(badge, reasons) for ``image`` as a print file of the template (blocking: run it in
        a worker thread)."""
        template = self._publishing.templates.get(template_name)
        scale = template.placement.scale if template is not None else 1.0
        garment = template is None or template.product_type in GARMENTS
        info = self._read_image_info(Path(image.print_path))
        result = preflight(
            info, DEFAULT_PRINT_AREA, MAX_PRINT_FILE_BYTES, scale=scale, garment=garment
        )
        return result.badge.value, list(result.reasons)

    def product_templates(self) -> list[ProductTemplate]:
        """The seller's product templates."""
        return list(self._publishing.templates.values())

    def seller_costs(self) -> SellerCosts:
        """The seller's cost table as the profit preview uses it."""
        return self._publishing.seller_costs

    async def save_seller_costs(self, costs: SellerCosts) -> None:
        """Write the seller's cost table (atomically) and use it in the next preview."""
        await asyncio.to_thread(self._cost_store.save, costs)
        self._publishing.seller_costs = costs

    async def profit_preview(self, image: GeneratedImage, template_name: str) -> list[ProfitLine]:
        return list(await self._publishing.profit_preview(image, template_name))

    async def upscale_design(
        self, image: GeneratedImage, template_names: Sequence[str]
    ) -> GeneratedImage:
        """Upscale ``image`` on a ComfyUI server for 300 DPI on the widest of the templates
        and keep the result as its print file (``services.upscale``); the updated design."""
        by_name = {t.name: t for t in self.product_templates()}
        templates = [by_name[n] for n in template_names if n in by_name]
        # servers the queue would use now first (breaker closed, checks passed), then the rest
        eligible = {s.url for s in self._orchestrator.servers() if s.eligible}
        servers = sorted(self._servers.generators, key=lambda g: g.url not in eligible)
        return await upscale_design(
            image, templates, servers, self.store, max_pixels=self._max_pixels
        )
