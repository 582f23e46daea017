"""Fixtures for widget tests: a full AppController over the in-memory fakes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.conftest import Parts, executor, parts  # noqa: F401 - fixtures


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
