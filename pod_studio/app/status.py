"""App layer: controllers behind the status bar and the live docks.

- ``ConnectionController``: the ComfyUI connection(s), as one line of text and a state.
- ``ResilienceController``: breakers, retry log and health checks (with reset/check actions).
- ``StatsController``: the latest statistics snapshot plus short histories for sparklines.

They keep the latest event per key so a dock opened late still shows the current picture;
the views update only from these controllers' signals.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.app.wording import describe_connection
from pod_studio.domain.errors import user_message
from pod_studio.domain.events import (
    BreakerChanged,
    ConnectionChanged,
    HealthChecked,
    ImageReady,
    JobStateChanged,
    RetryOutcome,
    RetryScheduled,
    StatsUpdated,
)
from pod_studio.domain.models import ConnectionState, JobState

log = logging.getLogger(__name__)

_STATE_RANK = {
    ConnectionState.CONNECTED: 0,
    ConnectionState.CONNECTING: 1,
    ConnectionState.RECONNECTING: 2,
    ConnectionState.OFFLINE: 3,
}


class ConnectionController(QObject):
    """Signals:
    sig_status_changed(str text, str state): state is a ConnectionState value
        ("connected", "connecting", "reconnecting", "offline") for the whole set of servers.
    sig_demo_offered(): the first state seen at start is offline (offer demo mode once).
    """

    sig_status_changed = Signal(str, str)
    sig_demo_offered = Signal()

    def __init__(self, bridge: QtEventBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._last: dict[str, ConnectionChanged] = {}
        self._first_seen = False
        self._in_use: set[str] | None = None  # None: every server that reports
        bridge.sig_connection_changed.connect(self._on_bridge_connection_changed)

    def set_servers(self, urls: Iterable[str]) -> None:
        """The servers in use now (after a settings change): the others are forgotten, and
        late events from their closing clients ignored."""
        self._in_use = set(urls)
        self._last = {u: e for u, e in self._last.items() if u in self._in_use}
        self.sig_status_changed.emit(self.status_text(), self.state())

    @property
    def servers(self) -> dict[str, ConnectionChanged]:
        return dict(self._last)

    def state(self) -> str:
        """The best state over all servers ("connecting" before any event)."""
        if not self._last:
            return ConnectionState.CONNECTING.value
        best = min(self._last.values(), key=lambda e: _STATE_RANK.get(e.state, 9))
        return best.state.value

    def status_text(self) -> str:
        if not self._last:
            return "Connecting to ComfyUI…"
        events = sorted(self._last.values(), key=lambda e: _STATE_RANK.get(e.state, 9))
        if len(events) == 1:
            return describe_connection(events[0])
        up = [e for e in events if e.state is ConnectionState.CONNECTED]
        head = describe_connection(events[0])
        if up:
            return f"{head} (+{len(events) - 1} more; {len(up)}/{len(events)} connected)"
        return f"{head} (+{len(events) - 1} more servers)"

    @Slot(object)
    def _on_bridge_connection_changed(self, event: ConnectionChanged) -> None:
        if self._in_use is not None and event.server not in self._in_use:
            return
        self._last[event.server] = event
        first = not self._first_seen
        self._first_seen = True
        self.sig_status_changed.emit(self.status_text(), self.state())
        if first and event.state is ConnectionState.OFFLINE:
            self.sig_demo_offered.emit()


class ResilienceController(QObject):
    """Breakers, retry log and health, with their actions.

    Signals:
        sig_breaker_updated(BreakerChanged)
        sig_retry_logged(RetryScheduled | RetryOutcome)
        sig_health_updated(HealthChecked)
        sig_health_check_running(bool)
        sig_action_failed(str message)
        sig_export_finished(str path, bool ok, str message)
    """

    sig_breaker_updated = Signal(object)
    sig_retry_logged = Signal(object)
    sig_health_updated = Signal(object)
    sig_health_check_running = Signal(bool)
    sig_action_failed = Signal(str)
    sig_export_finished = Signal(str, bool, str)

    def __init__(
        self,
        bridge: QtEventBridge,
        reset_breaker: Callable[[str | None], None] | None,
        check_health: Callable[[], Awaitable[None]] | None,
        *,
        runner: TaskRunner | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._reset_breaker = reset_breaker
        self._check_health = check_health
        self._runner = runner
        self._breakers: dict[str, BreakerChanged] = {}
        self._health: dict[str, HealthChecked] = {}
        self._checking = False
        bridge.sig_breaker_changed.connect(self._on_bridge_breaker_changed)
        bridge.sig_retry_scheduled.connect(self._on_bridge_retry_event)
        bridge.sig_retry_outcome.connect(self._on_bridge_retry_event)
        bridge.sig_health_checked.connect(self._on_bridge_health_checked)

    @property
    def can_reset(self) -> bool:
        return self._reset_breaker is not None

    @property
    def can_check_health(self) -> bool:
        return self._check_health is not None and self._runner is not None

    def breakers(self) -> list[BreakerChanged]:
        return [self._breakers[k] for k in sorted(self._breakers)]

    def health(self) -> list[HealthChecked]:
        return [self._health[k] for k in sorted(self._health)]

    def reset(self, name: str | None = None) -> None:
        """Close one breaker (``name``) or all of them (None)."""
        if self._reset_breaker is None:
            self.sig_action_failed.emit("breakers cannot be reset here")
            return
        try:
            self._reset_breaker(name)
        except Exception as exc:  # noqa: BLE001 - shown to the seller
            log.warning("reset of breaker %s failed: %s", name or "(all)", exc)
            self.sig_action_failed.emit(user_message(exc))

    def check_now(self) -> bool:
        """Run the active health probes now (results arrive as ``HealthChecked`` events)."""
        if self._check_health is None or self._runner is None or self._checking:
            return False
        self._checking = True
        self.sig_health_check_running.emit(True)
        self._runner.spawn(self._check(self._check_health), name="health-check")
        return True

    async def _check(self, check: Callable[[], Awaitable[None]]) -> None:
        try:
            await check()
        except Exception as exc:  # noqa: BLE001 - shown in the health dock
            self.sig_action_failed.emit(user_message(exc))
        finally:
            self._checking = False
            self.sig_health_check_running.emit(False)

    def export_csv(
        self, path: str, header: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> bool:
        """Write ``rows`` as CSV to ``path`` off the GUI thread (``sig_export_finished``)."""
        if self._runner is None:
            self.sig_export_finished.emit(path, False, "export is not available")
            return False
        snapshot: list[list[object]] = [list(header)]
        snapshot.extend(list(r) for r in rows)
        self._runner.spawn(self._export(path, snapshot), name="export-csv")
        return True

    async def _export(self, path: str, rows: list[list[object]]) -> None:
        try:
            await asyncio.to_thread(write_csv_atomic, Path(path), rows)
        except OSError as exc:
            self.sig_export_finished.emit(path, False, f"cannot write {path}: {exc.strerror}")
            return
        self.sig_export_finished.emit(path, True, f"{len(rows) - 1} rows written to {path}")

    @Slot(object)
    def _on_bridge_breaker_changed(self, event: BreakerChanged) -> None:
        self._breakers[event.name] = event
        self.sig_breaker_updated.emit(event)

    @Slot(object)
    def _on_bridge_retry_event(self, event: RetryScheduled | RetryOutcome) -> None:
        self.sig_retry_logged.emit(event)

    @Slot(object)
    def _on_bridge_health_checked(self, event: HealthChecked) -> None:
        self._health[event.service] = event
        self.sig_health_updated.emit(event)


def write_csv_atomic(path: Path, rows: Sequence[Sequence[object]]) -> None:
    """Write ``rows`` to ``path`` as UTF-8 CSV via a temp file and ``os.replace``."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    done = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
        done = True
    finally:
        if not done:
            Path(tmp).unlink(missing_ok=True)


class StatsController(QObject):
    """The latest ``StatsUpdated`` snapshot, plus recent job durations and success rate.

    Signals:
        sig_stats_changed(dict snapshot)
        sig_history_changed(list durations_seconds, list success_rates_0_to_1)
    """

    sig_stats_changed = Signal(dict)
    sig_history_changed = Signal(list, list)

    def __init__(
        self, bridge: QtEventBridge, *, history: int = 60, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._snapshot: dict[str, Any] = {}
        self._durations: deque[float] = deque(maxlen=history)
        self._outcomes: deque[bool] = deque(maxlen=history)
        self._rates: deque[float] = deque(maxlen=history)
        bridge.sig_stats_updated.connect(self._on_bridge_stats_updated)
        bridge.sig_image_ready.connect(self._on_bridge_image_ready)
        bridge.sig_job_state_changed.connect(self._on_bridge_job_state_changed)

    def snapshot(self) -> dict[str, Any]:
        return dict(self._snapshot)

    def durations(self) -> list[float]:
        return list(self._durations)

    def success_rates(self) -> list[float]:
        return list(self._rates)

    @Slot(object)
    def _on_bridge_stats_updated(self, event: StatsUpdated) -> None:
        self._snapshot = dict(event.snapshot)
        self.sig_stats_changed.emit(self.snapshot())

    @Slot(object)
    def _on_bridge_image_ready(self, event: ImageReady) -> None:
        self._durations.append(float(event.image.seconds))
        self.sig_history_changed.emit(self.durations(), self.success_rates())

    @Slot(object)
    def _on_bridge_job_state_changed(self, event: JobStateChanged) -> None:
        if event.state not in (JobState.DONE, JobState.FAILED):
            return
        self._outcomes.append(event.state is JobState.DONE)
        self._rates.append(sum(self._outcomes) / len(self._outcomes))
        self.sig_history_changed.emit(self.durations(), self.success_rates())
