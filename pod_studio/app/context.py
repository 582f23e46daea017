"""App layer: AppContext — the engine, as the GUI sees it, through a few small ports.

The durable queue (the orchestrator), the designs, the platforms, the ComfyUI servers, the
settings, and the breakers and health checks: each a small Protocol that a service built by
the composition implements (``bootstrap.compose_window`` fills the context from the core),
so app/ and ui/ never see adapters and there is no second engine. A controller takes only
the calls it uses (the aliases below).
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


# What single controllers take (bound methods of the ports).
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


class DesignsPort(Protocol):
    """The designs as the gallery and the publish panel see them."""

    @property
    def store(self) -> ImageStore: ...

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

    async def profit_preview(
        self, image: GeneratedImage, template_name: str
    ) -> Sequence[ProfitLine]: ...

    async def upscale_design(
        self, image: GeneratedImage, template_names: Sequence[str]
    ) -> GeneratedImage:
        """Upscale the design on a ComfyUI server into its print file (300 DPI on the widest
        of the templates); the updated design."""
        ...


class PlatformsPort(Protocol):
    """The marketplaces: which can be used, their secrets, connection tests, Etsy's sign-in."""

    async def list_platforms(self) -> list[PlatformChoice]: ...

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

    async def printify_mockups(self, design_sha256: str, template_name: str) -> list[bytes]:
        """Printify's own mockup images (JPEG/PNG bytes) of this design as this product, once
        its Printify draft exists; ``[]`` before."""
        ...

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


class ComfyUIPort(Protocol):
    """The ComfyUI servers the queue runs on and the local server (the ComfyUI dock)."""

    @property
    def urls(self) -> list[str]: ...

    async def checkpoints(self) -> list[str]: ...

    async def test(self, url: str) -> str:
        """A one-line description of the server at ``url`` (raises a PodStudioError)."""
        ...

    def view(self) -> ComfyUIServerView: ...

    async def control(self, action: ComfyUIAction) -> str:
        """Start/stop/restart/free memory/interrupt/clear; returns what was done in words."""
        ...


class SettingsPort(Protocol):
    """The seller's settings: read, saved (and applied at once), the workflow in them."""

    @property
    def settings(self) -> AppSettings: ...

    async def save(self, settings: AppSettings) -> None: ...

    async def open_workflow(self, path: str) -> WorkflowReport: ...

    async def check_workflow(self) -> WorkflowReport:
        """The current workflow against the first server (missing nodes and models)."""
        ...


class HealthPort(Protocol):
    """The breakers and the health checks (the docks' buttons)."""

    def reset_breaker(self, name: str | None) -> None: ...

    async def check_health(self) -> None: ...


@dataclass
class AppContext:
    """What the controllers are built from: the runner, the bridge and the engine's ports
    (each controller takes only what it uses)."""

    runner: TaskRunner
    bridge: QtEventBridge
    queue: Orchestrator
    designs: DesignsPort
    platforms: PlatformsPort
    comfyui: ComfyUIPort
    settings: SettingsPort
    health: HealthPort
    demo: bool = False
