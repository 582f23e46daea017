"""Adapters layer: the seller's cost table as a JSON file (implements ``SellerCostStore``).

``{"schema_version": 1, "templates": {"Classic T-shirt": {"sizes": {"S": "9.50"},
"shipping": "4.75"}}}`` — amounts as decimal strings. Written atomically; a file that cannot be
read or validated is moved aside (``<name>.corrupt-<time>``) and the table starts empty, with a
warning in the log, so the app always opens.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pydantic

from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside
from pod_studio.domain.costs import SELLER_COSTS_SCHEMA_VERSION, SellerCosts

log = logging.getLogger(__name__)


class JsonSellerCostStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> SellerCosts:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SellerCosts()
        except (OSError, UnicodeDecodeError) as exc:
            move_aside(self.path, f"unreadable cost table: {type(exc).__name__}")
            return SellerCosts()
        try:
            data = json.loads(text)
            if isinstance(data, dict) and data.get("schema_version") not in (
                None,
                SELLER_COSTS_SCHEMA_VERSION,
            ):
                raise ValueError(f"schema_version {data.get('schema_version')!r} not supported")
            return SellerCosts.model_validate(data)
        except (ValueError, pydantic.ValidationError) as exc:
            move_aside(self.path, f"cost table is invalid: {exc}")
            return SellerCosts()

    def save(self, costs: SellerCosts) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(costs.model_dump(mode="json"), indent=2, ensure_ascii=False)
        atomic_write_text(self.path, text + "\n")
