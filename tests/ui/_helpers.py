"""Helpers for the pytest-qt tests that build the real engine (``build_core``): run a
coroutine on the qasync loop while Qt processes events, the real style sheet, screenshots."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtWidgets import QApplication, QWidget

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("POD_SHOTS_DIR", "/tmp/shots-uicomfy"))


def run(qtbot: Any, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run ``coro`` on the running (qasync) loop; wait for it while Qt handles events."""
    task = asyncio.get_event_loop().create_task(coro)
    qtbot.waitUntil(task.done, timeout=int(timeout * 1000))
    return task.result()


def use_style(app: QApplication) -> None:
    app.setStyleSheet((ROOT / "resources" / "style.qss").read_text(encoding="utf-8"))


def shot(widget: QWidget, name: str) -> Path:
    """Save ``widget`` as ``SHOTS/name.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    QApplication.processEvents()
    assert widget.grab().save(str(path)), path
    return path


def sandbox_command(port: int) -> list[str]:
    return [sys.executable, "-m", "pod_studio", "sandbox", "comfyui", "--port", str(port)]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
