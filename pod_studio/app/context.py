"""App layer: AppContext — everything the controllers need from the outside world.

The composition root (``bootstrap.py``) builds one ``AppContext`` from the wiring (services,
stores, adapters' callables) and hands it to ``AppController``; the app and ui layers never
reach for adapters themselves. Every optional callable may be None: the feature behind it
then says "not available" instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore
from pod_studio.domain.pricing import ProfitLine
from pod_studio.domain.products import ProductTemplate

if TYPE_CHECKING:
    from pod_studio.services.generation import GenerationService
    from pod_studio.services.orchestrator import Orchestrator

Thumbnailer = Callable[[GeneratedImage], bytes]
SettingsGetter = Callable[[], Any]
SettingsSaver = Callable[[Any], Awaitable[None]]
ResetBreaker = Callable[[str | None], None]
CheckHealth = Callable[[], Awaitable[None]]
# path -> (workflow name, one-line mapping summary, problems found)
LoadWorkflow = Callable[[str], Awaitable[tuple[str, str, list[str]]]]
ListCheckpoints = Callable[[], Awaitable[list[str]]]
# url -> a one-line description of the server (raises a PodStudioError when unreachable)
TestConnection = Callable[[str], Awaitable[str]]
# (design, template name) -> (badge "pass"/"warn"/"fail", reasons). Blocking: run in a thread.
Preflight = Callable[[GeneratedImage, str], tuple[str, list[str]]]
# The seller's product templates (settings, else the built-in ones).
ListTemplates = Callable[[], list[ProductTemplate]]
# (design, template name) -> price, cost, shipping and profit per variant.
ProfitPreview = Callable[[GeneratedImage, str], Awaitable[list[ProfitLine]]]
# (secret name, value): stores a token in the OS keyring (never in the settings file).
SaveSecret = Callable[[str, str], Awaitable[None]]
# Where secrets are kept, as one line. Blocking (keyring detection): run in a thread.
DescribeSecrets = Callable[[], str]
# Printify shops on the account: [(shop id, title)].
ListShops = Callable[[], Awaitable[list[tuple[str, str]]]]
# A one-line verdict on the Printify connection (raises a PodStudioError when it fails).
TestPrintify = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class PlatformChoice:
    """A platform the publish panel offers; ``reason`` says why it cannot be used now."""

    name: str
    label: str = ""
    available: bool = True
    reason: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.capitalize()


ListPlatforms = Callable[[], Awaitable[list[PlatformChoice]]]


@dataclass
class AppContext:
    """The outside world, as the GUI sees it. Only ``runner``, ``bridge``, ``generation``,
    ``store``, ``settings_getter`` and ``settings_saver`` are required; with an
    ``orchestrator`` the app runs every job through the durable queue (``generation`` may
    then be None)."""

    runner: TaskRunner
    bridge: QtEventBridge
    generation: GenerationService | None
    store: ImageStore
    settings_getter: SettingsGetter
    settings_saver: SettingsSaver
    orchestrator: Orchestrator | None = None
    thumbnailer: Thumbnailer | None = None
    reset_breaker: ResetBreaker | None = None
    check_health: CheckHealth | None = None
    load_workflow: LoadWorkflow | None = None
    list_checkpoints: ListCheckpoints | None = None
    test_connection: TestConnection | None = None
    preflight: Preflight | None = None
    list_templates: ListTemplates | None = None
    list_platforms: ListPlatforms | None = None
    profit_preview: ProfitPreview | None = None
    save_secret: SaveSecret | None = None
    secret_store_description: DescribeSecrets | None = None
    list_shops: ListShops | None = None
    test_printify: TestPrintify | None = None
    demo: bool = False
    server_urls: list[str] = field(default_factory=list)
