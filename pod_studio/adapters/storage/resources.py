"""Adapters layer: files shipped with POD Studio (default workflow, product templates, icons)."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the package in a checkout, in the bundle when frozen."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def default_workflow_path() -> Path:
    return resource_path("workflows", "default_txt2img.json")
