"""Adapters layer: the persistent cache (``PersistentCachePort``) on diskcache.

Values are stored as JSON text, never pickled: an upgraded app can always read them, and a
class rename cannot break unpickling. A cache directory that SQLite cannot read (garbage in
``cache.db``, a truncated file) is moved aside (``<dir>.corrupt-<time>``) with a warning and a
fresh cache is created; an error at run time discards the cache the same way. A cache is
only a cache: losing it costs a reload, never a crash.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import diskcache

from pod_studio.adapters.storage.atomic import move_aside

log = logging.getLogger(__name__)

R = TypeVar("R")

_BROKEN = (sqlite3.DatabaseError, OSError, diskcache.Timeout)


class DiskCache:
    """A JSON-only key/value cache in ``directory`` with a default TTL in seconds."""

    def __init__(
        self,
        directory: Path | str,
        default_ttl: float = 3600.0,
        *,
        size_limit: int = 256 * 1024 * 1024,
    ) -> None:
        if not default_ttl > 0:
            raise ValueError(f"default_ttl must be > 0, got {default_ttl!r}")
        self.directory = Path(directory)
        self.default_ttl = float(default_ttl)
        self._size_limit = size_limit
        self._lock = threading.RLock()
        self._cache = self._open()

    def _open(self) -> diskcache.Cache:
        try:
            return self._new_cache()
        except _BROKEN as exc:
            self._discard(f"cannot open cache: {type(exc).__name__}: {exc}")
            return self._new_cache()

    def _new_cache(self) -> diskcache.Cache:
        self.directory.mkdir(parents=True, exist_ok=True)
        cache = diskcache.Cache(str(self.directory), size_limit=self._size_limit)
        try:
            cache.get("__pod_probe__")  # touches the database: fails now, not later
        except BaseException:
            cache.close()
            raise
        return cache

    def _discard(self, reason: str) -> None:
        if self.directory.exists():
            try:
                move_aside(self.directory, reason)
            except OSError:
                log.warning("could not move the cache %s aside; clearing it", self.directory)
                for child in self.directory.iterdir():
                    if child.is_file():
                        child.unlink(missing_ok=True)

    def _guarded(self, what: str, fn: Callable[[diskcache.Cache], R], fallback: R) -> R:
        with self._lock:
            try:
                return fn(self._cache)
            except _BROKEN as exc:
                log.warning("persistent cache %s failed (%s); starting a fresh cache", what, exc)
                try:
                    self._cache.close()
                except _BROKEN:
                    pass
                self._discard(f"{what} failed: {type(exc).__name__}: {exc}")
                self._cache = self._open()
                return fallback

    def get(self, key: str) -> Any | None:
        raw = self._guarded("read", lambda c: c.get(key, default=None), None)
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.delete(key)
            return None
        try:
            return json.loads(raw)
        except ValueError:
            log.warning("dropping an unreadable cache entry")
            self.delete(key)
            return None

    def set(
        self, key: str, value: Any, *, expire: float | None = None, tag: str | None = None
    ) -> None:
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cache values must be JSON data: {exc}") from exc
        ttl = self.default_ttl if expire is None else float(expire)
        self._guarded("write", lambda c: c.set(key, text, expire=ttl, tag=tag), False)

    def delete(self, key: str) -> bool:
        return bool(self._guarded("delete", lambda c: c.delete(key), False))

    def clear(self, tag: str | None = None) -> int:
        if tag is None:
            return int(self._guarded("clear", lambda c: c.clear(), 0))
        return int(self._guarded("evict", lambda c: c.evict(tag), 0))

    def close(self) -> None:
        with self._lock:
            self._cache.close()
