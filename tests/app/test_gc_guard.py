"""The GUI-thread garbage collector: it backs off while nothing is due (an idle window wakes
up for it at most once every ``idle_ms``) and ticks fast again once allocations pile up."""

from __future__ import annotations

import gc
from typing import Any

from pod_studio.app.gc_guard import MainThreadCollector


def test_the_collector_backs_off_when_idle_and_speeds_up_when_collections_are_due(
    qtbot: Any, qapp: Any
) -> None:
    gc.collect()  # start with nothing due
    collector = MainThreadCollector(qapp, busy_ms=10, idle_ms=80)
    try:
        assert collector.interval_ms == 10
        qtbot.waitUntil(lambda: collector.interval_ms == 80, timeout=5000)
        threshold = gc.get_threshold()[0]
        kept: list[list[int]] = []

        def allocating_until_fast() -> bool:
            # new container objects count towards generation 0 until it is collected
            kept.extend([i] for i in range(threshold * 2))
            return collector.interval_ms == 10

        qtbot.waitUntil(allocating_until_fast, timeout=5000)
    finally:
        collector.stop()
        gc.disable()  # the session's own collector stays in charge
