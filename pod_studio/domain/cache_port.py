"""Domain layer: the persistent cache port and cache statistics (no I/O here).

Services talk to a ``PersistentCachePort``; ``adapters/storage/cache.py`` implements it on
diskcache. Values are JSON-able data only (dicts, lists, strings, numbers, booleans, None),
so an app upgrade can never fail to read what an older version stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    size: int
    max_size: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@runtime_checkable
class PersistentCachePort(Protocol):
    """A key/value cache that survives restarts. Synchronous: call it via a worker thread.

    ``get`` returns ``None`` for a missing or expired key (so ``None`` itself is not a useful
    value to store). ``expire`` is in seconds (``None`` = the cache's default TTL).
    ``clear(tag)`` removes the entries stored with that tag (all entries when ``tag`` is
    ``None``) and returns how many were removed.
    """

    def get(self, key: str) -> Any | None: ...

    def set(
        self, key: str, value: Any, *, expire: float | None = None, tag: str | None = None
    ) -> None: ...

    def delete(self, key: str) -> bool: ...

    def clear(self, tag: str | None = None) -> int: ...
