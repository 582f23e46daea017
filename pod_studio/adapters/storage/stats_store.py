"""Adapters layer: JSON persistence of run statistics (``StatsStore``).

Written atomically; a file that is not valid JSON (or not a JSON object) is moved aside as
``<name>.corrupt-<time>`` and the statistics start from zero, with a warning in the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside

log = logging.getLogger(__name__)


class JsonStatsStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            move_aside(self.path, f"unreadable statistics: {type(exc).__name__}")
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            move_aside(self.path, f"statistics are not valid JSON: {exc}")
            return None
        if not isinstance(data, dict):
            move_aside(self.path, "statistics are not a JSON object")
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False))
