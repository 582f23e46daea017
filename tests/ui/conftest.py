"""Fixtures for widget tests: the AppController of the window the app ships, over the
shipping engine (``tests.app.conftest``: ``build_core`` on a sandbox ComfyUI, composed by
``bootstrap.compose_window``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.conftest import (  # noqa: F401 - fixtures
    MakeStudio,
    Studio,
    comfy,
    comfy2,
    make_studio,
    studio,
)


def controller_for(studio: Studio) -> Any:  # noqa: F811
    """The window's ``AppController`` as ``bootstrap.compose_window`` builds it; the test
    reaches the engine and the window through ``ctl.studio_parts``."""
    ctl = studio.controller
    ctl.studio_parts = studio  # type: ignore[attr-defined]
    return ctl


@pytest.fixture
def app_ctl(studio: Studio) -> Any:  # noqa: F811
    return controller_for(studio)
