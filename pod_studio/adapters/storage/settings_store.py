"""Adapters layer: loading and saving ``AppSettings`` as JSON.

A missing file gives defaults. A corrupt file (bad JSON, wrong types) is moved aside
(``settings.json.corrupt-<time>``), defaults are returned with a warning naming the backup:
nothing is overwritten silently and nothing crashes. Saves are atomic, and a guard refuses to
write anything that looks like a secret (tokens belong in the secret store).
"""

from __future__ import annotations

import copy
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


_MAX_SALVAGE_ROUNDS = 20


def _describe(err: Any, *, with_loc: bool = True) -> str:
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not with_loc:
        return msg
    return f"{'.'.join(str(p) for p in err.get('loc', ())) or '<root>'}: {msg}"


def _drop(data: dict[str, Any], loc: tuple[int | str, ...]) -> str | None:
    """Remove the value an error points at: the deepest dict key on its path (a list item's
    error drops the whole list). Returns the dotted name of what was dropped."""
    node: Any = data
    parent: dict[str, Any] | None = None
    key: str | None = None
    path: list[str] = []
    for part in loc:
        if not isinstance(part, str) or not isinstance(node, dict) or part not in node:
            break
        parent, key = node, part
        path.append(part)
        node = node[part]
    if parent is None or key is None:
        return None
    del parent[key]
    return ".".join(path)


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
        warnings: list[str] = []
        try:
            settings = AppSettings.model_validate(data)
        except pydantic.ValidationError as exc:
            salvaged = self._salvage(data, exc)
            if salvaged is None:
                problems = "; ".join(_describe(err) for err in exc.errors()[:5])
                return self._reject(f"some values are invalid ({problems})")
            settings, warnings = salvaged
        if settings.schema_version > SETTINGS_SCHEMA_VERSION:
            warnings.append(
                f"{self.path.name} was written by a newer POD Studio (schema "
                f"{settings.schema_version}); settings this version does not know are ignored "
                "and will be dropped when you save."
            )
        return LoadResult(settings, warnings)

    def _salvage(
        self, data: dict[str, Any], first: pydantic.ValidationError
    ) -> tuple[AppSettings, list[str]] | None:
        """Drop each invalid value (field by field; a whole section when the section itself
        is inconsistent) so that its default applies and everything valid survives. The
        original file is moved aside and the repaired settings written in its place.
        ``None`` when nothing could be salvaged."""
        work = copy.deepcopy(data)
        dropped: list[str] = []
        error: pydantic.ValidationError | None = first
        settings: AppSettings | None = None
        for _round in range(_MAX_SALVAGE_ROUNDS):
            assert error is not None
            progressed = False
            for err in error.errors():
                where = _drop(work, err["loc"])
                if where is not None:
                    progressed = True
                    dropped.append(f"{where}: {_describe(err, with_loc=False)}")
            if not progressed:
                return None
            try:
                settings = AppSettings.model_validate(work)
            except pydantic.ValidationError as exc:
                error = exc
                continue
            break
        if settings is None:
            return None
        listed = "; ".join(dropped[:8]) + ("; …" if len(dropped) > 8 else "")
        try:
            backup = move_aside(self.path, f"invalid values: {listed}")
        except OSError as exc:
            kept = f"(the file could not be moved aside: {exc}; it was left untouched)"
        else:
            kept = f"The original was kept as {backup.name} (in {backup.parent})."
            try:
                self.save(settings)
            except (OSError, ValidationError) as exc:
                log.warning("writing the repaired settings failed: %s", exc)
        msg = (
            f"Some values in your settings file were invalid and their defaults are used "
            f"instead ({listed}); everything else was kept. {kept}"
        )
        log.warning("%s", msg)
        return settings, [msg]

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
