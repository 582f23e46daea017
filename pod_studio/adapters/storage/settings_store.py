"""Adapters layer: loading and saving ``AppSettings`` as JSON.

A missing file gives defaults. A corrupt file (bad JSON, wrong types) is moved aside
(``settings.json.corrupt-<time>``), defaults are returned with a warning naming the backup:
nothing is overwritten silently and nothing crashes. Saves are atomic, and a guard refuses to
write anything that looks like a secret (tokens belong in the secret store).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from pod_studio.adapters.storage.atomic import atomic_write_text, move_aside
from pod_studio.domain.errors import ValidationError
from pod_studio.domain.settings import SETTINGS_SCHEMA_VERSION, AppSettings

log = logging.getLogger(__name__)

_SECRET_KEY_RE = re.compile(
    r"(?i)(token|secret|password|passwd|api[_-]?key|keystring|authorization|credential)"
)


@dataclass(frozen=True)
class LoadResult:
    settings: AppSettings
    warnings: list[str] = field(default_factory=list)


class SecretInSettingsError(ValidationError):
    """Something that looks like a secret was about to be written to the settings file."""


def find_secret_like(data: Any, known_secrets: Iterable[str] = (), _path: str = "") -> list[str]:
    """Paths of keys named like secrets, or of values equal to a known secret."""
    known = {s for s in known_secrets if s}
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if _SECRET_KEY_RE.search(str(key)):
                    found.append(sub)
                walk(value, sub)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str) and node in known:
            found.append(path or "<root>")

    walk(data, _path)
    return found


class SettingsStore:
    """``settings.json`` on disk. ``known_secrets`` returns secret values to guard against."""

    def __init__(
        self, path: Path | str, *, known_secrets: Callable[[], Iterable[str]] | None = None
    ) -> None:
        self.path = Path(path)
        self._known_secrets = known_secrets

    def load(self) -> LoadResult:
        if not self.path.exists():
            return LoadResult(AppSettings())
        try:
            raw = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self._reject(f"cannot read it ({type(exc).__name__}: {exc})")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return self._reject(f"it is not valid JSON (line {exc.lineno}: {exc.msg})")
        if not isinstance(data, dict):
            return self._reject("it does not hold a JSON object")
        try:
            settings = AppSettings.model_validate(data)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            return self._reject(f"some values are invalid ({problems})")
        warnings: list[str] = []
        if settings.schema_version > SETTINGS_SCHEMA_VERSION:
            warnings.append(
                f"{self.path.name} was written by a newer POD Studio (schema "
                f"{settings.schema_version}); settings this version does not know are ignored "
                "and will be dropped when you save."
            )
        return LoadResult(settings, warnings)

    def _reject(self, reason: str) -> LoadResult:
        try:
            backup = move_aside(self.path, reason)
        except OSError as exc:
            msg = (
                f"Your settings file {self.path} could not be used because {reason}, and it "
                f"could not be moved aside ({exc}). Default settings are in use; the file was "
                "left untouched."
            )
        else:
            msg = (
                f"Your settings file could not be used because {reason}. It was kept as "
                f"{backup.name} (in {backup.parent}) and default settings are in use."
            )
        log.warning("%s", msg)
        return LoadResult(AppSettings(), [msg])

    def save(self, settings: AppSettings) -> None:
        data = settings.model_dump(mode="json")
        data["schema_version"] = SETTINGS_SCHEMA_VERSION
        known = list(self._known_secrets()) if self._known_secrets else []
        suspicious = find_secret_like(data, known)
        if suspicious:
            raise SecretInSettingsError(
                f"refusing to write secret-like values to {self.path.name}: "
                + ", ".join(suspicious[:5]),
                service="settings",
                user_message="Tokens are stored in the OS keyring, never in the settings file. "
                "Remove token/secret/password fields from the settings.",
            )
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
