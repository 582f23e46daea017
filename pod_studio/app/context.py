"""App layer: AppContext — the engine, as the GUI sees it.

``Studio`` names what the window needs from POD Studio's engine: the durable queue, the
gallery, settings, connections, publishing. The composition's ``Core`` is the one object
that implements it (``bootstrap`` passes it in; the UI tests build the same ``Core`` through
the same composition), so app/ and ui/ never see adapters and there is no second engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore
from pod_studio.domain.pricing import ProfitLine
from pod_studio.domain.products import ProductTemplate
from pod_studio.domain.settings import AppSettings
from pod_studio.domain.views import (
    ComfyUIAction,
    ComfyUIServerView,
    PlatformChoice,
    WorkflowReport,
)

if TYPE_CHECKING:
    from pod_studio.services.orchestrator import Orchestrator


# What single controllers take (bound methods of the ``Studio`` in the app).
SettingsGetter = Callable[[], Any]
Preflight = Callable[[GeneratedImage, str], tuple[str, list[str]]]
ListTemplates = Callable[[], list[ProductTemplate]]
ProfitPreview = Callable[[GeneratedImage, str], Awaitable[Sequence[ProfitLine]]]
UpscaleDesign = Callable[[GeneratedImage, Sequence[str]], Awaitable[GeneratedImage]]
SaveSecret = Callable[[str, str], Awaitable[None]]
DescribeSecrets = Callable[[], str]
# (base URL, token) typed in the dialog, or None for the saved ones
ListShops = Callable[[str | None, str | None], Awaitable[list[tuple[str, str]]]]
TestPrintify = Callable[[str | None, str | None], Awaitable[str]]


ListPlatforms = Callable[[], Awaitable[list[PlatformChoice]]]
# (design sha256, template name) -> the platform's own mockup images
PlatformMockups = Callable[[str, str], Awaitable[list[bytes]]]


class Studio(Protocol):
    """The engine's face towards the GUI (implemented by ``composition.core.Core``)."""

    @property
    def orchestrator(self) -> Orchestrator: ...

    @property
    def store(self) -> ImageStore: ...

    @property
    def settings(self) -> AppSettings: ...

    @property
    def server_urls(self) -> list[str]: ...

    async def save_settings(self, settings: AppSettings) -> None: ...

    def thumbnail(self, image: GeneratedImage) -> bytes:
        """PNG bytes (blocking: the caller runs it in a worker thread)."""
        ...

    def preflight_design(self, image: GeneratedImage, template_name: str) -> tuple[str, list[str]]:
        """(badge "pass"/"warn"/"fail", reasons); blocking."""
        ...

    def product_templates(self) -> list[ProductTemplate]: ...

    def seller_costs(self) -> SellerCosts:
        """The seller's own provider costs per template and size."""
        ...

    async def save_seller_costs(self, costs: SellerCosts) -> None: ...

    async def list_platforms(self) -> list[PlatformChoice]: ...

    async def profit_preview(
        self, image: GeneratedImage, template_name: str
    ) -> Sequence[ProfitLine]: ...

    async def printify_mockups(self, design_sha256: str, template_name: str) -> list[bytes]:
        """Printify's own mockup images (JPEG/PNG bytes) of this design as this product, once
        its Printify draft exists; ``[]`` before."""
        ...

    async def list_checkpoints(self) -> list[str]: ...

    async def upscale_design(
        self, image: GeneratedImage, template_names: Sequence[str]
    ) -> GeneratedImage:
        """Upscale the design on a ComfyUI server into its print file (300 DPI on the widest
        of the templates); the updated design."""

    async def test_comfyui(self, url: str) -> str:
        """A one-line description of the server at ``url`` (raises a PodStudioError)."""
        ...

    async def open_workflow(self, path: str) -> WorkflowReport: ...

    async def check_workflow(self) -> WorkflowReport:
        """The current workflow against the first server (missing nodes and models)."""
        ...

    def reset_breaker(self, name: str | None) -> None: ...

    async def check_health(self) -> None: ...

    async def save_secret(self, name: str, value: str) -> None: ...

    def describe_secrets(self) -> str:
        """Where secrets are kept, as one line (blocking: keyring detection)."""
        ...

    async def printify_shops(
        self, base_url: str | None = None, token: str | None = None
    ) -> list[tuple[str, str]]: ...

    async def test_printify(self, base_url: str | None = None, token: str | None = None) -> str:
        """A verdict on the Printify connection with these values (default: the saved ones);
        raises a PodStudioError when it fails."""
        ...

    # the local ComfyUI server (the ComfyUI dock)
    def comfyui_server_view(self) -> ComfyUIServerView: ...

    async def control_comfyui(self, action: ComfyUIAction) -> str:
        """Start/stop/restart/free memory/interrupt/clear; returns what was done in words."""
        ...

    # Shopify and Etsy (Settings)
    async def test_shopify(self) -> str:
        """A verdict on the saved Shopify connection; raises a PodStudioError when it fails."""
        ...

    async def connect_etsy(self, open_browser: Callable[[str], object]) -> str:
        """The Etsy consent flow (``open_browser`` gets the consent URL); the shop's name."""
        ...

    async def disconnect_etsy(self) -> None: ...

    async def test_etsy(self) -> str: ...

    async def etsy_choices(self) -> dict[str, list[tuple[str, str]]]:
        """[(id, label)] per list: shops, shipping_profiles, return_policies,
        readiness_states."""
        ...


@dataclass
class AppContext:
    """What every controller is built from."""

    runner: TaskRunner
    bridge: QtEventBridge
    studio: Studio
    demo: bool = False
