"""Adapters layer: files shipped with POD Studio (default workflow, product templates, icons).

The checkout keeps them in the top-level ``resources/`` folder; the build installs that folder
as the ``pod_studio.resources`` package (setup.py), so a wheel, an editable install and a
PyInstaller bundle all read the same files through ``importlib.resources``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

RESOURCES_PACKAGE = "pod_studio.resources"


def resources_dir() -> Path:
    """The folder holding the shipped files (always a real folder: nothing ships zipped)."""
    try:
        root = files(RESOURCES_PACKAGE)
    except ModuleNotFoundError:
        # A checkout put on sys.path without being installed: resources/ sits beside the package.
        return Path(__file__).resolve().parents[3] / "resources"
    if isinstance(root, Path):
        return root
    # A zip import would need importlib.resources.as_file() around every read.
    raise RuntimeError(f"{RESOURCES_PACKAGE} is not a folder on disk ({root!r})")


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def default_workflow_path() -> Path:
    return resource_path("workflows", "default_txt2img.json")
