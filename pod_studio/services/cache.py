"""Services layer: in-memory TTL cache with single-flight loading, and memory + disk caching.

``AsyncTTLCache`` uses cachetools' ``TTLCache`` as a data structure only (its ``@cached``
decorator would cache the coroutine object of an ``async def``). Concurrent misses for one
key share a single loader call; failures are not cached. ``CachedLoader`` puts a
``PersistentCachePort`` (diskcache in the app) behind it so catalog data survives a restart.
Keys should name the service and account, e.g. ``("printify", shop_id, "variants", bp, pp)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar, cast

from cachetools import TTLCache

from pod_studio.domain.cache_port import CacheStats, PersistentCachePort

log = logging.getLogger(__name__)

V = TypeVar("V")
Loader = Callable[[], Awaitable[V]]

_MISSING: Any = object()


class CacheRecorder(Protocol):
    """Where hits and misses are counted (``StatsService`` implements it)."""

    def record_cache(self, service: str, hit: bool) -> None: ...


class AsyncTTLCache(Generic[V]):
    """LRU + TTL cache for asyncio code, with single-flight ``get_or_set``.

    ``timer`` (seconds, monotonic) is injectable so tests control expiry.
    """

    def __init__(
        self,
        maxsize: int = 512,
        ttl: float = 3600.0,
        timer: Callable[[], float] | None = None,
        *,
        name: str = "cache",
        recorder: CacheRecorder | None = None,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an integer >= 1, got {maxsize!r}")
        if not isinstance(ttl, int | float) or not ttl > 0 or ttl == float("inf"):
            raise ValueError(f"ttl must be a finite number > 0, got {ttl!r}")
        self._cache: TTLCache[Hashable, V] = (
            TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
            if timer is not None
            else TTLCache(maxsize=maxsize, ttl=ttl)
        )
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self._hits = 0
        self._misses = 0
        self.name = name
        self._recorder = recorder

    def _count(self, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1
        if self._recorder is not None:
            self._recorder.record_cache(self.name, hit)

    def _lookup(self, key: Hashable) -> V:
        try:
            return self._cache[key]
        except KeyError:
            return cast(V, _MISSING)

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        value = self._lookup(key)
        if value is _MISSING:
            self._count(False)
            return default
        self._count(True)
        return value

    def set(self, key: Hashable, value: V) -> None:
        self._cache[key] = value

    def delete(self, key: Hashable) -> bool:
        return self._cache.pop(key, _MISSING) is not _MISSING

    def clear(self) -> None:
        self._cache.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        self._cache.expire()
        return len(self._cache)

    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            size=len(self),
            max_size=int(self._cache.maxsize),
        )

    async def get_or_set(self, key: Hashable, loader: Loader[V]) -> V:
        """The cached value, or the loader's result (one loader call per key at a time).

        A loader error reaches every waiter and is not cached. If the caller running the
        loader is cancelled, another waiter takes over the load instead of being cancelled.
        """
        value = self._lookup(key)
        if value is not _MISSING:
            self._count(True)
            return value
        self._count(False)
        while True:
            value = self._lookup(key)
            if value is not _MISSING:
                return value
            future = self._inflight.get(key)
            if future is None:
                return await self._load(key, loader)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if future.cancelled() and task is not None and not task.cancelling():
                    continue  # the loading caller was cancelled, not us: load it ourselves
                raise

    async def _load(self, key: Hashable, loader: Loader[V]) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await loader()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: no "never retrieved" warning if no waiter
            raise
        else:
            self._cache[key] = value
            future.set_result(value)
            return value
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]


class CachedLoader:
    """Memory (``AsyncTTLCache``) in front of a persistent cache, in front of a loader.

    ``get_or_load(key, loader, ttl)``: a memory hit returns at once; otherwise one caller
    reads the disk cache (in a worker thread) and, on a miss, runs the loader and stores the
    result in both. ``refresh=True`` skips both caches and reloads. Values must be JSON-able
    (``model_dump()`` output, not model instances). A broken persistent cache only costs a
    reload: its errors are logged, never raised.
    """

    def __init__(
        self,
        memory: AsyncTTLCache[Any],
        persistent: PersistentCachePort | None = None,
        *,
        default_ttl: float = 3600.0,
        tag: str | None = None,
    ) -> None:
        self.memory = memory
        self.persistent = persistent
        self.default_ttl = default_ttl
        self.tag = tag

    async def get_or_load(
        self,
        key: str,
        loader: Loader[Any],
        ttl: float | None = None,
        refresh: bool = False,
    ) -> Any:
        expire = self.default_ttl if ttl is None else ttl
        if refresh:
            self.memory.delete(key)
            return await self.memory.get_or_set(
                key, lambda: self._load_and_store(key, loader, expire)
            )
        return await self.memory.get_or_set(
            key, lambda: self._from_disk_or_load(key, loader, expire)
        )

    async def _from_disk_or_load(self, key: str, loader: Loader[Any], expire: float) -> Any:
        if self.persistent is not None:
            try:
                value = await asyncio.to_thread(self.persistent.get, key)
            except Exception:
                log.warning("persistent cache read failed for a key; reloading", exc_info=True)
                value = None
            if value is not None:
                return value
        return await self._load_and_store(key, loader, expire)

    async def _load_and_store(self, key: str, loader: Loader[Any], expire: float) -> Any:
        value = await loader()
        if self.persistent is not None and value is not None:
            try:
                await asyncio.to_thread(
                    lambda: self.persistent.set(key, value, expire=expire, tag=self.tag)  # type: ignore[union-attr]
                )
            except Exception:
                log.warning("persistent cache write failed; value kept in memory", exc_info=True)
        return value

    async def invalidate(self, key: str | None = None) -> None:
        """Forget ``key`` (or everything under this loader's tag) in both caches."""
        if key is None:
            self.memory.clear()
        else:
            self.memory.delete(key)
        if self.persistent is None:
            return
        try:
            if key is None:
                await asyncio.to_thread(self.persistent.clear, self.tag)
            else:
                await asyncio.to_thread(self.persistent.delete, key)
        except Exception:
            log.warning("persistent cache invalidation failed", exc_info=True)
