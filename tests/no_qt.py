"""A pytest plugin that makes Qt impossible to import: the Qt-free proof.

``python -m pytest -p no:pytest-qt -p tests.no_qt tests/unit tests/services ...`` runs the core's
tests (domain, services, adapters, sandbox, composition, cli) in a process where ``import
PySide6`` or ``import qasync`` raises ImportError, the way napari runs its headless tests
without Qt installed. A core module that pulls in Qt, even indirectly, then fails its tests
here instead of passing them with a window library it must not need.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

BLOCKED = ("PySide6", "shiboken6", "qasync")


class _QtBlocker(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: this test run proves the core is Qt-free")
        return None


def _install() -> None:
    loaded = [name for name in sys.modules if name.split(".", 1)[0] in BLOCKED]
    if loaded:
        raise RuntimeError(f"Qt was imported before the Qt-free run started: {loaded}")
    sys.meta_path.insert(0, _QtBlocker())


_install()
