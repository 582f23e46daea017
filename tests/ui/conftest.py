"""Fixtures for widget tests: the AppController the window gets, over the shipping engine
(``tests.app.conftest``: ``build_core`` on a sandbox ComfyUI)."""

from __future__ import annotations

from typing import Any

import pytest

from pod_studio.app.app_controller import AppController
from pod_studio.app.context import AppContext
from tests.app.conftest import (  # noqa: F401 - fixtures
    MakeStudio,
    Studio,
    comfy,
    comfy2,
    make_studio,
    studio,
)


def controller_for(studio: Studio) -> Any:  # noqa: F811
    """``AppController(AppContext(runner, bridge, core))`` as ``bootstrap`` builds it; the
    test reaches the engine through ``ctl.studio_parts``."""
    ctl = AppController(AppContext(studio.runner, studio.bridge, studio.core))
    ctl.studio_parts = studio  # type: ignore[attr-defined]
    return ctl


@pytest.fixture
def app_ctl(studio: Studio) -> Any:  # noqa: F811
    return controller_for(studio)
