"""App layer: QtEventBridge — the services' ``EventSink`` in the GUI.

Services push frozen domain events; the bridge ``match``es on the type and emits one typed
Qt signal per kind, carrying the event itself. It may be called from any thread (e.g. a
websocket listener or a logging thread): events from another thread are posted to the
bridge's own (GUI) thread through a queued connection, so every signal is emitted, and
every slot runs, on the GUI thread.

Cross-thread delivery does not emit a Qt signal from the foreign thread: with PySide6 6.12,
emitting from a plain Python thread corrupts reference counts (the interpreter aborts at
exit with "bool_dealloc"). Instead the event goes into a locked queue and a queued
``QMetaObject.invokeMethod`` drains it on the bridge's thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from PySide6.QtCore import QMetaObject, QObject, Qt, Signal, Slot

from pod_studio.app import qt_compat
from pod_studio.domain.comfyui_process import (
    ComfyUIGaugesUpdated,
    ComfyUILogLine,
    ComfyUIProcessChanged,
)
from pod_studio.domain.events import (
    BatchFinished,
    BreakerChanged,
    ConnectionChanged,
    Event,
    HealthChecked,
    ImageReady,
    JobCancelled,
    JobFailed,
    JobNodeExecuting,
    JobProgress,
    JobQueued,
    JobResubmitted,
    JobStateChanged,
    PreviewFrame,
    PublishDone,
    PublishStepChanged,
    RetryOutcome,
    RetryScheduled,
    StatsUpdated,
)
from pod_studio.domain.orchestration import (
    DeadLettered,
    DesignPublishChanged,
    JobMoved,
    PublishJobChanged,
    QueueChanged,
    QueuePaused,
)

log = logging.getLogger(__name__)

qt_compat.install()


class QtEventBridge(QObject):
    """Callable ``EventSink`` that turns domain events into Qt signals (one per kind).

    Every signal carries the frozen event (``object``):
    sig_job_queued(JobQueued), sig_job_state_changed(JobStateChanged),
    sig_job_progress(JobProgress), sig_job_node_executed(JobNodeExecuting),
    sig_preview_frame(PreviewFrame), sig_image_ready(ImageReady), sig_job_failed(JobFailed),
    sig_job_cancelled(JobCancelled), sig_job_resubmitted(JobResubmitted),
    sig_batch_finished(BatchFinished), sig_connection_changed(ConnectionChanged),
    sig_retry_scheduled(RetryScheduled), sig_retry_outcome(RetryOutcome),
    sig_breaker_changed(BreakerChanged), sig_stats_updated(StatsUpdated),
    sig_health_checked(HealthChecked), sig_publish_step_changed(PublishStepChanged),
    sig_publish_done(PublishDone), and from the durable queue sig_queue_changed(QueueChanged),
    sig_dead_lettered(DeadLettered), sig_job_moved(JobMoved), sig_queue_paused(QueuePaused),
    sig_publish_job_changed(PublishJobChanged),
    sig_design_publish_changed(DesignPublishChanged), from the local ComfyUI server
    sig_comfyui_process_changed(ComfyUIProcessChanged), sig_comfyui_log_line(ComfyUILogLine),
    sig_comfyui_gauges_updated(ComfyUIGaugesUpdated); sig_other_event(Event) for kinds without
    a signal,
    and sig_event_received(Event) for every event (after its typed signal).
    """

    sig_job_queued = Signal(object)
    sig_job_state_changed = Signal(object)
    sig_job_progress = Signal(object)
    sig_job_node_executed = Signal(object)
    sig_preview_frame = Signal(object)
    sig_image_ready = Signal(object)
    sig_job_failed = Signal(object)
    sig_job_cancelled = Signal(object)
    sig_job_resubmitted = Signal(object)
    sig_batch_finished = Signal(object)
    sig_connection_changed = Signal(object)
    sig_retry_scheduled = Signal(object)
    sig_retry_outcome = Signal(object)
    sig_breaker_changed = Signal(object)
    sig_stats_updated = Signal(object)
    sig_health_checked = Signal(object)
    sig_publish_step_changed = Signal(object)
    sig_publish_done = Signal(object)
    sig_queue_changed = Signal(object)
    sig_dead_lettered = Signal(object)
    sig_job_moved = Signal(object)
    sig_queue_paused = Signal(object)
    sig_publish_job_changed = Signal(object)
    sig_design_publish_changed = Signal(object)
    sig_comfyui_process_changed = Signal(object)
    sig_comfyui_log_line = Signal(object)
    sig_comfyui_gauges_updated = Signal(object)
    sig_other_event = Signal(object)
    sig_event_received = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted: deque[Event] = deque()
        self._lock = threading.Lock()
        # The bridge lives on the thread that made it (the GUI thread); no Qt call is made
        # from a foreign thread except the queued invokeMethod.
        self._home_thread = threading.get_ident()

    def __call__(self, event: Event) -> None:
        """The ``EventSink``: safe to call from any thread."""
        if threading.get_ident() == self._home_thread:
            self._dispatch(event)
            return
        with self._lock:
            self._posted.append(event)
            first = len(self._posted) == 1
        if first:
            QMetaObject.invokeMethod(self, "_drain_posted", Qt.ConnectionType.QueuedConnection)

    @Slot()
    def _drain_posted(self) -> None:
        while True:
            with self._lock:
                if not self._posted:
                    return
                event = self._posted.popleft()
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        match event:
            case JobQueued():
                self.sig_job_queued.emit(event)
            case JobStateChanged():
                self.sig_job_state_changed.emit(event)
            case JobProgress():
                self.sig_job_progress.emit(event)
            case JobNodeExecuting():
                self.sig_job_node_executed.emit(event)
            case PreviewFrame():
                self.sig_preview_frame.emit(event)
            case ImageReady():
                self.sig_image_ready.emit(event)
            case JobFailed():
                self.sig_job_failed.emit(event)
            case JobCancelled():
                self.sig_job_cancelled.emit(event)
            case JobResubmitted():
                self.sig_job_resubmitted.emit(event)
            case BatchFinished():
                self.sig_batch_finished.emit(event)
            case ConnectionChanged():
                self.sig_connection_changed.emit(event)
            case RetryScheduled():
                self.sig_retry_scheduled.emit(event)
            case RetryOutcome():
                self.sig_retry_outcome.emit(event)
            case BreakerChanged():
                self.sig_breaker_changed.emit(event)
            case StatsUpdated():
                self.sig_stats_updated.emit(event)
            case HealthChecked():
                self.sig_health_checked.emit(event)
            case PublishStepChanged():
                self.sig_publish_step_changed.emit(event)
            case PublishDone():
                self.sig_publish_done.emit(event)
            case QueueChanged():
                self.sig_queue_changed.emit(event)
            case DeadLettered():
                self.sig_dead_lettered.emit(event)
            case JobMoved():
                self.sig_job_moved.emit(event)
            case QueuePaused():
                self.sig_queue_paused.emit(event)
            case PublishJobChanged():
                self.sig_publish_job_changed.emit(event)
            case DesignPublishChanged():
                self.sig_design_publish_changed.emit(event)
            case ComfyUIProcessChanged():
                self.sig_comfyui_process_changed.emit(event)
            case ComfyUILogLine():
                self.sig_comfyui_log_line.emit(event)
            case ComfyUIGaugesUpdated():
                self.sig_comfyui_gauges_updated.emit(event)
            case _:
                log.debug("event without a dedicated signal: %s", type(event).__name__)
                self.sig_other_event.emit(event)
        self.sig_event_received.emit(event)
