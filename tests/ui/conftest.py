"""Fixtures for widget tests: a full AppController over the in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.conftest import (  # noqa: F401 - fixtures
    Parts,
    QueueParts,
    executor,
    parts,
    queue_parts,
)


@pytest.fixture
def app_ctl(parts: Parts) -> Iterator[Any]:  # noqa: F811
    from pod_studio.app.app_controller import AppController
    from pod_studio.app.context import AppContext

    resets: list[str | None] = []

    async def check_health() -> None:
        from pod_studio.domain.events import HealthChecked

        parts.bridge(HealthChecked(service="comfyui", reachable=True, latency_ms=9.0))

    ctx = AppContext(
        runner=parts.runner,
        bridge=parts.bridge,
        generation=parts.service,
        store=parts.store,
        settings_getter=parts.settings.get,
        settings_saver=parts.settings.save,
        reset_breaker=resets.append,
        check_health=check_health,
        list_checkpoints=parts.generator.checkpoints,
        server_urls=["http://127.0.0.1:8188"],
    )
    ctl = AppController(ctx)
    ctl.resets = resets  # type: ignore[attr-defined]
    ctl.parts = parts  # type: ignore[attr-defined]
    yield ctl


@pytest.fixture
def queue_app(queue_parts: QueueParts) -> Iterator[Any]:  # noqa: F811
    """An AppController on the durable orchestrator, with stand-ins for the publishing and
    Printify callables the composition root provides. Recorded calls: ``ctl.secrets_saved``
    (name, value)."""
    from pod_studio.app.app_controller import AppController
    from pod_studio.app.context import AppContext, PlatformChoice
    from pod_studio.domain.errors import PodStudioError
    from pod_studio.domain.models import GeneratedImage
    from pod_studio.domain.pricing import ProfitLine, profit_preview
    from pod_studio.domain.products import default_templates

    templates = {t.name: t for t in default_templates()}
    saved: list[tuple[str, str]] = []

    async def list_platforms() -> list[PlatformChoice]:
        return [
            PlatformChoice("export", "Export folder"),
            PlatformChoice(
                "printify", "Printify", available=False, reason="no API token (Settings)"
            ),
        ]

    async def preview(_image: GeneratedImage, name: str) -> list[ProfitLine]:
        # the tee's S sells at 19.99 but costs 25.00 + 4.00 shipping: below cost
        costs = [("Black / S", "25.00"), ("Black / M", "9.00")]
        return profit_preview(templates[name], costs, "4.00")

    async def save_secret(name: str, value: str) -> None:
        saved.append((name, value))

    async def list_shops() -> list[tuple[str, str]]:
        return [("111", "My Etsy shop"), ("222", "My Shopify store")]

    async def test_printify() -> str:
        if not saved:
            raise PodStudioError("no token", service="printify", user_message="no token yet")
        return "Printify OK: 2 shop(s)."

    ctx = AppContext(
        runner=queue_parts.runner,
        bridge=queue_parts.bridge,
        generation=None,
        store=queue_parts.store,
        settings_getter=queue_parts.settings.get,
        settings_saver=queue_parts.settings.save,
        orchestrator=queue_parts.orchestrator,
        list_checkpoints=queue_parts.generators[0].checkpoints,
        preflight=lambda _image, _name: ("warn", ["Resolution is 12 DPI at this size"]),
        list_templates=lambda: list(templates.values()),
        list_platforms=list_platforms,
        profit_preview=preview,
        save_secret=save_secret,
        secret_store_description=lambda: "the test keyring",
        list_shops=list_shops,
        test_printify=test_printify,
        server_urls=[g.url for g in queue_parts.generators],
    )
    ctl = AppController(ctx)
    ctl.parts = queue_parts  # type: ignore[attr-defined]
    ctl.secrets_saved = saved  # type: ignore[attr-defined]
    yield ctl
