"""App layer: QueueController — the durable job queue as the queue dock sees it.

It keeps one ``QueueRow`` per job, filled from ``Orchestrator.snapshot()`` (so the view
survives a restart of the app) and kept current by the orchestrator's events (``QueueChanged``,
``DeadLettered``, ``JobMoved``, ``QueuePaused``, plus ``JobQueued``/``PublishJobChanged`` for
the labels). Actions (cancel, retry now, move to another server, discard, pause/resume,
retry every dead job) run through the ``TaskRunner``; their failures come back as
``sig_action_failed`` with a message fit for the seller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import user_message
from pod_studio.domain.events import JobQueued
from pod_studio.domain.orchestration import (
    DeadLettered,
    JobMoved,
    PublishJobChanged,
    QueueChanged,
    QueueEntry,
    QueuePaused,
    QueueSnapshot,
    ServerStatus,
)

if TYPE_CHECKING:
    from pod_studio.services.orchestrator import Orchestrator

log = logging.getLogger(__name__)

ACTIVE_STATES = frozenset({"queued", "retry_wait", "running"})
RETRYABLE_STATES = frozenset({"dead", "cancelled", "partially_published", "retry_wait"})
FAILED_STATES = frozenset({"dead", "partially_published"})

STATE_WORDS = {
    "queued": "waiting",
    "retry_wait": "retry later",
    "running": "running",
    "succeeded": "done",
    "partially_published": "partly published",
    "dead": "failed",
    "cancelled": "cancelled",
}

ACTION_CANCEL = "cancel"
ACTION_RETRY = "retry"
ACTION_MOVE = "move"
ACTION_DISCARD = "discard"


@dataclass
class QueueRow:
    """One job of the durable queue, as the dock shows it."""

    job_id: str
    kind: str  # "generate" or "publish"
    label: str  # the prompt, or "template → platform"
    state: str  # a JobStatus value
    server: str = ""
    platform: str = ""
    design_id: str = ""
    attempts: int = 0
    max_attempts: int = 0
    next_run_at: float | None = None
    last_error: str = ""
    note: str = ""  # e.g. "moved off http://…: breaker open"
    history: list[str] = field(default_factory=list)

    @property
    def state_text(self) -> str:
        return STATE_WORDS.get(self.state, self.state.replace("_", " "))

    @property
    def is_dead(self) -> bool:
        return self.state in FAILED_STATES


def row_from_entry(entry: QueueEntry, history: Iterable[str] = ()) -> QueueRow:
    label = entry.label
    if entry.kind.value == "publish" and " @ " in label:
        template, _sep, platform = label.partition(" @ ")
        label = f"{template} → {platform}"
    return QueueRow(
        job_id=entry.job_id,
        kind=entry.kind.value,
        label=label,
        state=entry.state.value,
        server=entry.server,
        platform=entry.platform,
        design_id=entry.design_id,
        attempts=entry.attempts,
        max_attempts=entry.max_attempts,
        next_run_at=entry.next_run_at if entry.state.value == "retry_wait" else None,
        last_error=entry.last_error,
        history=list(history),
    )


def allowed_actions(rows: Iterable[QueueRow]) -> set[str]:
    """What the seller may do with the selected rows (an action applies to at least one)."""
    actions: set[str] = set()
    for row in rows:
        if row.state in ACTIVE_STATES:
            actions.add(ACTION_CANCEL)
        if row.state in RETRYABLE_STATES:
            actions.add(ACTION_RETRY)
        if row.kind == "generate" and row.state in ACTIVE_STATES:
            actions.add(ACTION_MOVE)
        if row.state != "running":
            actions.add(ACTION_DISCARD)
    return actions


class QueueController(QObject):
    """Signals:
    sig_rows_reset(list[QueueRow]): every job (after a snapshot was loaded).
    sig_row_changed(QueueRow): one job was added or changed (a copy: safe to keep).
    sig_row_removed(str job_id): a job was discarded.
    sig_paused_changed(bool paused)
    sig_servers_changed(list[ServerStatus])
    sig_action_done(str message) / sig_action_failed(str message)
    """

    sig_rows_reset = Signal(list)
    sig_row_changed = Signal(object)
    sig_row_removed = Signal(str)
    sig_paused_changed = Signal(bool)
    sig_servers_changed = Signal(list)
    sig_action_done = Signal(str)
    sig_action_failed = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        bridge: QtEventBridge,
        orchestrator: Orchestrator | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._orch = orchestrator
        self._rows: dict[str, QueueRow] = {}
        self._labels: dict[str, str] = {}
        self._paused = False
        options = getattr(orchestrator, "options", None)
        self._max_attempts = int(getattr(options, "max_attempts", 0) or 0)
        bridge.sig_queue_changed.connect(self._on_bridge_queue_changed)
        bridge.sig_job_queued.connect(self._on_bridge_job_queued)
        bridge.sig_publish_job_changed.connect(self._on_bridge_publish_job_changed)
        bridge.sig_dead_lettered.connect(self._on_bridge_dead_lettered)
        bridge.sig_job_moved.connect(self._on_bridge_job_moved)
        bridge.sig_queue_paused.connect(self._on_bridge_queue_paused)

    # -- state ------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._orch is not None

    @property
    def paused(self) -> bool:
        return self._paused

    def rows(self) -> list[QueueRow]:
        return [replace(r, history=list(r.history)) for r in self._rows.values()]

    def row(self, job_id: str) -> QueueRow | None:
        found = self._rows.get(job_id)
        return replace(found, history=list(found.history)) if found is not None else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self._rows.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out

    def servers(self) -> list[ServerStatus]:
        return self._orch.servers() if self._orch is not None else []

    def server_urls(self) -> list[str]:
        return [s.url for s in self.servers()]

    def actions_for(self, job_ids: Iterable[str]) -> set[str]:
        if self._orch is None:
            return set()
        return allowed_actions(r for j in job_ids if (r := self._rows.get(j)) is not None)

    # -- loading ----------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload every job from the job database (``sig_rows_reset``); False if no queue."""
        if self._orch is None:
            return False
        self._runner.spawn(self._refresh(self._orch), name="queue-refresh")
        return True

    async def _refresh(self, orch: Orchestrator) -> None:
        try:
            snapshot: QueueSnapshot = await orch.snapshot()
            dead = {entry.job_id: history for entry, history in await orch.dead_letters()}
        except Exception as exc:  # noqa: BLE001 - shown in the dock
            log.warning("could not read the job queue: %s", exc)
            self.sig_action_failed.emit(user_message(exc))
            return
        rows = {}
        for entry in snapshot.entries:
            rows[entry.job_id] = row_from_entry(entry, dead.get(entry.job_id, ()))
        # events that arrived while the snapshot was read are newer for these rows
        for job_id, row in self._rows.items():
            if job_id not in rows or row.state in ACTIVE_STATES:
                rows[job_id] = row
        self._rows = rows
        self._paused = snapshot.paused
        self.sig_rows_reset.emit(self.rows())
        self.sig_paused_changed.emit(snapshot.paused)
        self.sig_servers_changed.emit(list(snapshot.servers))

    # -- actions ----------------------------------------------------------------------------

    def _act(self, name: str, work: Callable[[Orchestrator], Awaitable[str]]) -> bool:
        if self._orch is None:
            self.sig_action_failed.emit("the job queue is not available")
            return False
        self._runner.spawn(self._run_action(self._orch, work), name=f"queue-{name}")
        return True

    async def _run_action(
        self, orch: Orchestrator, work: Callable[[Orchestrator], Awaitable[str]]
    ) -> None:
        try:
            message = await work(orch)
        except Exception as exc:  # noqa: BLE001 - the answer to the seller's click
            log.info("queue action failed: %s", exc)
            self.sig_action_failed.emit(user_message(exc))
            return
        self.sig_action_done.emit(message)

    def cancel(self, job_ids: list[str]) -> bool:
        ids = [j for j in job_ids if (r := self._rows.get(j)) and r.state in ACTIVE_STATES]

        async def work(orch: Orchestrator) -> str:
            done = [j for j in ids if await orch.cancel(j)]
            return f"{len(done)} job(s) cancelled"

        return bool(ids) and self._act("cancel", work)

    def retry_now(self, job_ids: list[str]) -> bool:
        ids = [j for j in job_ids if (r := self._rows.get(j)) and r.state in RETRYABLE_STATES]

        async def work(orch: Orchestrator) -> str:
            for job_id in ids:
                await orch.retry_now(job_id)
            return f"{len(ids)} job(s) queued again"

        return bool(ids) and self._act("retry", work)

    def retry_all_dead(self) -> bool:
        async def work(orch: Orchestrator) -> str:
            ids = await orch.retry_all_dead()
            return f"{len(ids)} failed job(s) queued again"

        return self._act("retry-dead", work)

    def discard(self, job_ids: list[str]) -> bool:
        ids = [j for j in job_ids if (r := self._rows.get(j)) and r.state != "running"]

        async def work(orch: Orchestrator) -> str:
            removed = [j for j in ids if await orch.discard(j)]
            return f"{len(removed)} job(s) removed"

        return bool(ids) and self._act("discard", work)

    def move_to_server(self, job_ids: list[str], url: str) -> bool:
        ids = [
            j
            for j in job_ids
            if (r := self._rows.get(j)) and r.kind == "generate" and r.state in ACTIVE_STATES
        ]

        async def work(orch: Orchestrator) -> str:
            for job_id in ids:
                await orch.move_to_server(job_id, url)
            return f"{len(ids)} job(s) will run on {url}"

        return bool(ids) and self._act("move", work)

    def set_paused(self, paused: bool) -> bool:
        async def work(orch: Orchestrator) -> str:
            if paused:
                await orch.pause()
                return "queue paused: running jobs finish, nothing new starts"
            await orch.resume()
            return "queue resumed"

        return self._act("pause" if paused else "resume", work)

    # -- events -----------------------------------------------------------------------------

    def _emit(self, row: QueueRow) -> None:
        self.sig_row_changed.emit(replace(row, history=list(row.history)))

    @Slot(object)
    def _on_bridge_queue_changed(self, event: QueueChanged) -> None:
        if event.state == "discarded":
            if self._rows.pop(event.job_id, None) is not None:
                self.sig_row_removed.emit(event.job_id)
            return
        row = self._rows.get(event.job_id)
        if row is None:
            label = self._labels.pop(event.job_id, event.job_id)
            row = QueueRow(
                job_id=event.job_id,
                kind=event.kind,
                label=label,
                state=event.state,
                max_attempts=self._max_attempts,
            )
            self._rows[event.job_id] = row
        if event.kind:
            row.kind = event.kind
        if event.state != "dead" and row.state == "dead":
            row.history = []
        if event.state == "running" and row.state != "running":
            row.note = ""
        row.state = event.state
        if event.server:
            row.server = event.server
        row.attempts = event.attempts
        row.next_run_at = event.next_run_at
        row.last_error = event.last_error
        self._emit(row)

    @Slot(object)
    def _on_bridge_job_queued(self, event: JobQueued) -> None:
        row = self._rows.get(event.job_id)
        if row is None:
            self._labels[event.job_id] = event.prompt
            return
        row.label = event.prompt
        self._emit(row)

    @Slot(object)
    def _on_bridge_publish_job_changed(self, event: PublishJobChanged) -> None:
        label = f"{event.template} → {event.platform}"
        row = self._rows.get(event.job_id)
        if row is None:
            self._labels[event.job_id] = label
            return
        if (row.label, row.platform, row.design_id) == (label, event.platform, event.design_id):
            return
        row.label, row.platform, row.design_id = label, event.platform, event.design_id
        self._emit(row)

    @Slot(object)
    def _on_bridge_dead_lettered(self, event: DeadLettered) -> None:
        row = self._rows.get(event.job_id)
        if row is None:
            return
        row.history = list(event.history)
        row.last_error = event.reason or row.last_error
        row.attempts = event.attempts
        self._emit(row)

    @Slot(object)
    def _on_bridge_job_moved(self, event: JobMoved) -> None:
        row = self._rows.get(event.job_id)
        if row is None:
            return
        row.note = f"moved off {event.from_server}" + (f": {event.reason}" if event.reason else "")
        self._emit(row)

    @Slot(object)
    def _on_bridge_queue_paused(self, event: QueuePaused) -> None:
        self._paused = event.paused
        self.sig_paused_changed.emit(event.paused)


def describe_counts(counts: dict[str, Any]) -> str:
    """ "2 running · 3 waiting · 1 failed" (only states that occur, in a fixed order)."""
    order = ("running", "queued", "retry_wait", "dead", "partially_published", "cancelled")
    parts = [
        f"{counts[s]} {STATE_WORDS[s]}"
        for s in order
        if isinstance(counts.get(s), int) and counts[s]
    ]
    done = counts.get("succeeded", 0)
    if done:
        parts.append(f"{done} done")
    return " · ".join(parts)
