"""App layer: Python's cyclic garbage collector runs on the GUI thread only.

CPython starts a collection in whichever thread happens to allocate when a generation's
threshold trips. In this app that is often a worker thread (``asyncio.to_thread`` image work,
a sandbox server's thread in demo mode), and when the garbage holds a cycle with a Qt wrapper
in it, the wrapper's C++ object is destroyed off its thread: Qt then crashes with a
segmentation fault inside "Garbage-collecting" (seen in CI, under a sandbox server's
``deepcopy``). The cure used by long-lived PyQt/PySide apps: turn automatic collection off and
collect from a timer on the GUI thread, with the interpreter's own thresholds.
"""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import QObject, QTimer


class MainThreadCollector(QObject):
    """Disables automatic collection and collects due generations on the GUI thread.

    The timer ticks every ``busy_ms`` while the app allocates; each tick that finds no
    collection due doubles the wait, up to ``idle_ms``, so an idle window wakes up for this
    at most once every 5 s. A tick that collects goes back to ``busy_ms``."""

    def __init__(
        self, parent: QObject | None = None, busy_ms: int = 500, idle_ms: int = 5000
    ) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._gui_thread = threading.get_ident()
        self._busy_ms, self._idle_ms = busy_ms, max(busy_ms, idle_ms)
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setObjectName("gc_guard")
        self._timer.setInterval(busy_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    @property
    def interval_ms(self) -> int:
        return self._timer.interval()

    def _tick(self) -> None:
        if self._due() >= 0:
            self.collect_due()
            self._timer.setInterval(self._busy_ms)
        else:
            self._timer.setInterval(min(self._idle_ms, self._timer.interval() * 2))

    def _due(self) -> int:
        counts = gc.get_count()
        due = -1
        for generation in range(3):
            if counts[generation] > self._thresholds[generation]:
                due = generation
        return due

    def collect_due(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns the number
        of unreachable objects found (0 when nothing was due or off the GUI thread)."""
        if threading.get_ident() != self._gui_thread:
            return 0
        due = self._due()
        return gc.collect(due) if due >= 0 else 0

    def stop(self) -> None:
        """Give collection back to the interpreter (at exit, or in a test's tear-down)."""
        self._timer.stop()
        gc.enable()


_collector: MainThreadCollector | None = None


def install(parent: QObject) -> MainThreadCollector:
    """Install the collector once for this process (idempotent); call it on the GUI thread."""
    global _collector
    if _collector is None:
        _collector = MainThreadCollector(parent)
    return _collector
