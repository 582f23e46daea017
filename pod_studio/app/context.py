"""App layer: AppContext — everything the controllers need from the outside world.

The composition root (``bootstrap.py``) builds one ``AppContext`` from the wiring (services,
stores, adapters' callables) and hands it to ``AppController``; the app and ui layers never
reach for adapters themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.models import GeneratedImage
from pod_studio.domain.ports import ImageStore

if TYPE_CHECKING:
    from pod_studio.services.generation import GenerationService

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


@dataclass
class AppContext:
    """The outside world, as the GUI sees it. Only ``runner``, ``bridge``, ``generation``,
    ``store``, ``settings_getter`` and ``settings_saver`` are required."""

    runner: TaskRunner
    bridge: QtEventBridge
    generation: GenerationService
    store: ImageStore
    settings_getter: SettingsGetter
    settings_saver: SettingsSaver
    thumbnailer: Thumbnailer | None = None
    reset_breaker: ResetBreaker | None = None
    check_health: CheckHealth | None = None
    load_workflow: LoadWorkflow | None = None
    list_checkpoints: ListCheckpoints | None = None
    test_connection: TestConnection | None = None
    demo: bool = False
    server_urls: list[str] = field(default_factory=list)
