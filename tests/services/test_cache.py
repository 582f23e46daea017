"""Caches: single-flight TTL memory cache, JSON-only disk cache, memory + disk loader."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from pod_studio.adapters.storage.cache import DiskCache
from pod_studio.domain.cache_port import CacheStats, PersistentCachePort
from pod_studio.services.cache import AsyncTTLCache, CachedLoader


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- AsyncTTLCache -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifty_concurrent_misses_make_one_loader_call() -> None:
    cache: AsyncTTLCache[dict[str, int]] = AsyncTTLCache(maxsize=10, ttl=60)
    calls = 0
    started = asyncio.Event()
    gate = asyncio.Event()

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        return {"variants": 42}

    tasks = [asyncio.create_task(cache.get_or_set("bp-6", loader)) for _ in range(50)]
    await started.wait()  # tasks run in creation order: all 50 have looked the key up
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert all(r == {"variants": 42} for r in results)
    assert cache.stats() == CacheStats(hits=0, misses=50, size=1, max_size=10)
    assert await cache.get_or_set("bp-6", loader) == {"variants": 42}
    assert cache.stats().hits == 1


@pytest.mark.asyncio
async def test_ttl_expiry_with_fake_timer() -> None:
    timer = FakeTimer()
    cache: AsyncTTLCache[int] = AsyncTTLCache(maxsize=10, ttl=3600, timer=timer)
    calls = 0

    async def loader() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get_or_set("k", loader) == 1
    timer.now = 3599
    assert await cache.get_or_set("k", loader) == 1
    timer.now = 3600
    assert cache.get("k") is None
    assert await cache.get_or_set("k", loader) == 2
    assert calls == 2
    assert len(cache) == 1
    timer.now = 10_000
    assert len(cache) == 0


@pytest.mark.asyncio
async def test_errors_reach_every_waiter_and_are_not_cached() -> None:
    cache: AsyncTTLCache[str] = AsyncTTLCache()
    calls = 0
    started = asyncio.Event()
    gate = asyncio.Event()

    async def failing() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await gate.wait()
        raise RuntimeError("upstream broke")

    tasks = [asyncio.create_task(cache.get_or_set("k", failing)) for _ in range(5)]
    await started.wait()
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)

    async def ok() -> str:
        return "fine"

    assert await cache.get_or_set("k", ok) == "fine"


@pytest.mark.asyncio
async def test_cancelled_loader_hands_over_to_a_waiter() -> None:
    cache: AsyncTTLCache[str] = AsyncTTLCache()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    async def fast() -> str:
        return "loaded by the waiter"

    owner = asyncio.create_task(cache.get_or_set("k", slow))
    waiter = asyncio.create_task(cache.get_or_set("k", fast))
    await started.wait()  # the owner is loading and the waiter awaits its result
    assert cache._inflight
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert await waiter == "loaded by the waiter"


@pytest.mark.asyncio
async def test_get_set_delete_clear_and_lru() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache(maxsize=2, ttl=60)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1
    cache.set("c", 3)  # evicts the least recently used: "b"
    assert "b" not in cache and cache.get("c") == 3
    assert cache.delete("a") is True and cache.delete("a") is False
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(("maxsize", "ttl"), [(0, 1), (10, 0), (10, float("nan"))])
def test_bad_cache_config(maxsize: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        AsyncTTLCache(maxsize=maxsize, ttl=ttl)


@pytest.mark.asyncio
async def test_cache_reports_hits_to_recorder() -> None:
    seen: list[tuple[str, bool]] = []

    class Recorder:
        def record_cache(self, service: str, hit: bool) -> None:
            seen.append((service, hit))

    cache: AsyncTTLCache[int] = AsyncTTLCache(name="printify", recorder=Recorder())

    async def one() -> int:
        return 1

    await cache.get_or_set("k", one)
    await cache.get_or_set("k", one)
    assert seen == [("printify", False), ("printify", True)]


# --- DiskCache ---------------------------------------------------------------------------------


def test_disk_cache_round_trip_and_port(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c")
    assert isinstance(cache, PersistentCachePort)
    value = {"variants": [{"id": 1, "title": "S / Black"}], "price": "12.50", "ok": True}
    cache.set("printify:variants:6:1", value)
    assert cache.get("printify:variants:6:1") == value
    assert cache.get("missing") is None
    assert cache.delete("printify:variants:6:1") is True
    assert cache.get("printify:variants:6:1") is None
    cache.close()


def test_disk_cache_refuses_non_json(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c")
    with pytest.raises(ValueError, match="JSON"):
        cache.set("k", object())
    with pytest.raises(ValueError, match="JSON"):
        cache.set("k", float("nan"))
    cache.close()


def test_disk_cache_expiry_and_tags(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c")
    cache.set("old", 1, expire=-1)  # already expired
    assert cache.get("old") is None
    cache.set("p1", 1, tag="printify")
    cache.set("p2", 2, tag="printify")
    cache.set("s1", 3, tag="shopify")
    assert cache.clear("printify") == 2
    assert cache.get("p1") is None and cache.get("s1") == 3
    assert cache.clear() == 1
    cache.close()


def test_disk_cache_survives_reopen(tmp_path: Path) -> None:
    first = DiskCache(tmp_path / "c")
    first.set("k", ["kept"])
    first.close()
    second = DiskCache(tmp_path / "c")
    assert second.get("k") == ["kept"]
    second.close()


def test_corrupt_cache_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.WARNING):
        cache = DiskCache(directory)
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert list(tmp_path.glob("c.corrupt-*")), "the broken cache was kept aside"
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    cache.close()


def test_cache_corrupted_while_open_does_not_crash(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    cache = DiskCache(directory)
    cache.set("k", 1)
    cache.close()
    db = directory / "cache.db"
    db.write_bytes(b"\x00garbage" * 4096)
    for leftover in directory.glob("cache.db-*"):
        leftover.unlink()
    reopened = DiskCache(directory)
    assert reopened.get("k") is None
    reopened.set("k", 2)
    assert reopened.get("k") == 2
    reopened.close()


# --- CachedLoader ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_cached_loader_survives_restart(tmp_path: Path) -> None:
    calls = 0

    async def variants() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        return [{"id": 17, "title": "M"}]

    disk = DiskCache(tmp_path / "c")
    loader = CachedLoader(AsyncTTLCache(maxsize=10, ttl=3600), disk, tag="printify")
    assert await loader.get_or_load("printify:bp6:variants", variants) == [{"id": 17, "title": "M"}]
    assert await loader.get_or_load("printify:bp6:variants", variants) == [{"id": 17, "title": "M"}]
    assert calls == 1
    disk.close()

    disk = DiskCache(tmp_path / "c")  # a restart: empty memory, same directory
    loader = CachedLoader(AsyncTTLCache(maxsize=10, ttl=3600), disk, tag="printify")
    assert await loader.get_or_load("printify:bp6:variants", variants) == [{"id": 17, "title": "M"}]
    assert calls == 1
    await loader.get_or_load("printify:bp6:variants", variants, refresh=True)
    assert calls == 2
    await loader.invalidate()
    assert disk.get("printify:bp6:variants") is None
    disk.close()


@pytest.mark.asyncio
async def test_cached_loader_works_when_the_disk_cache_fails() -> None:
    class Broken:
        def get(self, key: str) -> Any:
            raise OSError("disk gone")

        def set(self, key: str, value: Any, *, expire: float | None = None,
                tag: str | None = None) -> None:  # fmt: skip
            raise OSError("disk gone")

        def delete(self, key: str) -> bool:
            return False

        def clear(self, tag: str | None = None) -> int:
            return 0

    async def load() -> str:
        return "fresh"

    loader = CachedLoader(AsyncTTLCache(), Broken())
    assert await loader.get_or_load("k", load) == "fresh"
    assert await loader.get_or_load("k", load) == "fresh"
