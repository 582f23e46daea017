"""App layer: BatchNotices — when a generation batch or a publish batch ends, one notice in
words ("6 designs ready (1 failed)", "Publishing done: 4 listings, 1 failed — see Job
queue"), with how long the batch took, for the desktop notifications of the window.

Generation batches come from the engine's ``BatchFinished`` (it carries the duration; a
batch the engine refused at once is reported where it was started, not here); a
publish batch is what one Publish… queued (``PublishController.sig_publish_enqueued``),
followed job by job through ``QueueChanged`` until every listing has ended. Whether a notice
is shown (the batch was long, or the window is in the background) is decided by
``worth_notifying``; the tray's tooltip text by ``queue_summary``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.publishing import PublishController
from pod_studio.domain.events import BatchFinished
from pod_studio.domain.orchestration import QueueChanged

FINAL_STATES = frozenset({"succeeded", "dead", "cancelled", "discarded", "partially_published"})
_FAILED = frozenset({"dead", "partially_published"})
_CANCELLED = frozenset({"cancelled", "discarded"})
_REMEMBERED = 2000  # publish jobs whose last state is kept (a batch may start after its events)


@dataclass(frozen=True)
class Notice:
    """One batch that ended: ``kind`` "generate" or "publish"; ``failed``: nothing of it
    worked (the notification shows a warning)."""

    kind: str
    title: str
    text: str
    seconds: float
    failed: bool = False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def generation_notice(event: BatchFinished) -> Notice | None:
    """The notice of a finished generation batch; None when it was only cancelled."""
    ok, failed, cancelled = event.succeeded, event.failed, event.cancelled
    extra = [f"{failed} failed"] if failed and ok else []
    if cancelled:
        extra.append(f"{cancelled} cancelled")
    tail = f" ({', '.join(extra)})" if extra else ""
    if ok:
        text = f"{_plural(ok, 'design')} ready{tail}"
        if failed:
            text += " — see Job queue"
        return Notice("generate", "Designs ready", text, event.seconds)
    if failed:
        text = f"Generation failed: {_plural(failed, 'design')}{tail} — see Job queue"
        return Notice("generate", "Generation failed", text, event.seconds, failed=True)
    return None


def publish_notice(states: Mapping[str, str], seconds: float) -> Notice | None:
    """The notice of a publish batch whose listings all ended (``job id -> final state``)."""
    values = list(states.values())
    ok = values.count("succeeded")
    failed = sum(1 for s in values if s in _FAILED)
    cancelled = sum(1 for s in values if s in _CANCELLED)
    tail = f" ({cancelled} cancelled)" if cancelled else ""
    if ok:
        text = f"Publishing done: {_plural(ok, 'listing')}"
        if failed:
            text += f", {failed} failed — see Job queue"
        return Notice("publish", "Publishing done", text + tail, seconds)
    if failed:
        text = f"Publishing failed: {_plural(failed, 'listing')}{tail} — see Job queue"
        return Notice("publish", "Publishing failed", text, seconds, failed=True)
    return None


def worth_notifying(notice: Notice, *, after_seconds: float, background: bool) -> bool:
    """A batch is worth a notification when it took at least ``after_seconds`` or the
    seller is not looking at the window (hidden, minimised or another window active)."""
    return background or notice.seconds >= after_seconds


def queue_summary(counts: Mapping[str, int], *, paused: bool = False) -> str:
    """ "3 running, 5 queued, 1 failed" (waiting to retry counts as queued); "queue empty"."""
    running = counts.get("running", 0)
    queued = counts.get("queued", 0) + counts.get("retry_wait", 0)
    failed = sum(counts.get(s, 0) for s in _FAILED)
    parts = [f"{running} running"] if running else []
    if queued:
        parts.append(f"{queued} queued")
    if failed:
        parts.append(f"{failed} failed")
    text = ", ".join(parts) or "nothing to do"
    return f"queue paused — {text}" if paused else text


@dataclass
class _PublishBatch:
    started: float
    open: set[str]
    finals: dict[str, str] = field(default_factory=dict)


class BatchNotices(QObject):
    """Signals:
    sig_batch_ended(Notice): a generation or publish batch ended (every job of it).
    """

    sig_batch_ended = Signal(object)

    def __init__(
        self,
        bridge: QtEventBridge,
        publishing: PublishController,
        *,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._batches: list[_PublishBatch] = []
        self._last_state: OrderedDict[str, str] = OrderedDict()
        bridge.sig_batch_finished.connect(self._on_bridge_batch_finished)
        bridge.sig_queue_changed.connect(self._on_bridge_queue_changed)
        publishing.sig_publish_enqueued.connect(self._on_publishing_publish_enqueued)

    @Slot(object)
    def _on_bridge_batch_finished(self, event: BatchFinished) -> None:
        notice = generation_notice(event)
        if notice is not None:
            self.sig_batch_ended.emit(notice)

    @Slot(list)
    def _on_publishing_publish_enqueued(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        batch = _PublishBatch(started=self._clock(), open=set(job_ids))
        # a fast listing may have ended before its batch was announced
        for job_id in job_ids:
            state = self._last_state.get(job_id)
            if state in FINAL_STATES:
                batch.open.discard(job_id)
                batch.finals[job_id] = state
        self._batches.append(batch)
        self._check(batch)

    @Slot(object)
    def _on_bridge_queue_changed(self, event: QueueChanged) -> None:
        if event.kind != "publish":
            return
        self._last_state[event.job_id] = event.state
        self._last_state.move_to_end(event.job_id)
        while len(self._last_state) > _REMEMBERED:
            self._last_state.popitem(last=False)
        for batch in list(self._batches):
            if event.job_id in batch.open and event.state in FINAL_STATES:
                batch.open.discard(event.job_id)
                batch.finals[event.job_id] = event.state
                self._check(batch)
            elif event.job_id in batch.finals and event.state not in FINAL_STATES:
                batch.open.add(event.job_id)  # retried by hand before the batch ended
                del batch.finals[event.job_id]

    def _check(self, batch: _PublishBatch) -> None:
        if batch.open or batch not in self._batches:
            return
        self._batches.remove(batch)
        notice = publish_notice(batch.finals, max(0.0, self._clock() - batch.started))
        if notice is not None:
            self.sig_batch_ended.emit(notice)
