"""The core never needs Qt: every module of the Qt-free layers imports in a process where
PySide6 and qasync cannot be imported (``tests.no_qt``, the blocker the Qt-free CI run uses)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT_FREE = ("domain", "services", "adapters", "sandbox", "composition", "cli")

SCRIPT = """
import importlib, pkgutil, sys
import tests.no_qt
import pod_studio
names = []
for layer in sys.argv[1:]:
    package = importlib.import_module("pod_studio." + layer)
    names.append(package.__name__)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
import pod_studio.__main__
print(len(names))
"""


def test_every_core_module_imports_with_qt_blocked() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *QT_FREE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 80  # every layer was walked, not an empty list


def test_the_blocker_blocks_qt() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import tests.no_qt\nimport PySide6.QtCore"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "PySide6 is blocked" in done.stderr
