"""Services layer: the durable queue's events (``QueueReporter``).

What the queue says to the rest of the app goes through here: ``QueueChanged`` for every row
of the job ledger that changed, ``PublishJobChanged`` for a publish job's state,
``DeadLettered`` with a dead job's attempt history, and ``BatchFinished`` when the last
generation job of a batch ends (run statistics). The batches being counted are its own state:
those enqueued in this app run, and those an earlier run left unfinished (``track_unfinished``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pod_studio.domain.events import BatchFinished, EventSink
from pod_studio.domain.jobs import JobKind, JobStatus
from pod_studio.domain.ledger_port import JobLedger, JobRecord
from pod_studio.domain.orchestration import DeadLettered, PublishJobChanged, QueueChanged
from pod_studio.domain.publishing import PublishTask
from pod_studio.services.queue_views import attempt_history

__all__ = ["QueueReporter"]


def _batch_id(rec: JobRecord) -> str:
    return str(rec.payload.get("spec", {}).get("batch_id", ""))


@dataclass
class _Batch:
    pending: set[str]
    started: float
    ok: int = 0
    failed: int = 0
    cancelled: int = 0


class QueueReporter:
    """Turns ledger rows into events on ``sink``; ``server_of`` names the server a job runs on
    now ("" when none)."""

    def __init__(
        self,
        ledger: JobLedger,
        sink: EventSink,
        *,
        clock: Callable[[], float],
        server_of: Callable[[str], str],
    ) -> None:
        self._ledger = ledger
        self._sink = sink
        self._clock = clock
        self._server_of = server_of
        # batch id -> pending job ids and counts, for BatchFinished (this app run only)
        self._batches: dict[str, _Batch] = {}

    # --- batches ------------------------------------------------------------------------------

    def track(self, batch_id: str, job_id: str) -> None:
        """A generation job of ``batch_id`` was enqueued."""
        batch = self._batches.setdefault(batch_id, _Batch(pending=set(), started=self._clock()))
        batch.pending.add(job_id)

    async def track_unfinished(self) -> None:
        """Batches an earlier run left unfinished count as a run when their last job ends."""
        by_batch: dict[str, list[JobRecord]] = {}
        for job in await self._ledger.list_jobs(kind=JobKind.GENERATE):
            by_batch.setdefault(_batch_id(job), []).append(job)
        for batch_id, jobs in by_batch.items():
            pending = {j.id for j in jobs if not j.state.is_terminal}
            if not batch_id or not pending or batch_id in self._batches:
                continue
            done = [j for j in jobs if j.state.is_terminal]
            self._batches[batch_id] = _Batch(
                pending=pending,
                started=min(j.created_at for j in jobs),
                ok=sum(1 for j in done if j.state is JobStatus.SUCCEEDED),
                cancelled=sum(1 for j in done if j.state is JobStatus.CANCELLED),
                failed=sum(
                    1 for j in done if j.state not in (JobStatus.SUCCEEDED, JobStatus.CANCELLED)
                ),
            )

    def _batch_progress(self, rec: JobRecord) -> None:
        """Emit ``BatchFinished`` when the last generation job of a batch ends.

        Batches are tracked for this app run only: a batch resumed after a restart counts its
        jobs (images, failures) but not as a run.
        """
        if rec.kind is not JobKind.GENERATE or not rec.state.is_terminal:
            return
        batch_id = _batch_id(rec)
        batch = self._batches.get(batch_id)
        if batch is None or rec.id not in batch.pending:
            return
        batch.pending.discard(rec.id)
        if rec.state is JobStatus.SUCCEEDED:
            batch.ok += 1
        elif rec.state is JobStatus.CANCELLED:
            batch.cancelled += 1
        else:
            batch.failed += 1
        if not batch.pending:
            del self._batches[batch_id]
            self._sink(
                BatchFinished(
                    batch_id=batch_id,
                    succeeded=batch.ok,
                    failed=batch.failed,
                    cancelled=batch.cancelled,
                    seconds=max(0.0, self._clock() - batch.started),
                )
            )

    # --- events -------------------------------------------------------------------------------

    def changed(self, rec: JobRecord, *, server: str = "") -> None:
        """A ledger row changed (``server``: where it ran, when it no longer runs there)."""
        self._batch_progress(rec)
        self._sink(
            QueueChanged(
                job_id=rec.id,
                kind=rec.kind.value,
                state=rec.state.value,
                server=server or self._server_of(rec.id),
                attempts=rec.attempts,
                next_run_at=rec.next_run_at if rec.state is JobStatus.RETRY_WAIT else None,
                last_error=rec.last_error or "",
            )
        )

    def publish(
        self, task: PublishTask, state: str, *, detail: str = "", remote_id: str = ""
    ) -> None:
        self._sink(
            PublishJobChanged(
                job_id=task.job_id,
                design_id=task.design_id,
                template=task.template_name,
                platform=task.platform,
                state=state,
                detail=detail,
                remote_id=remote_id,
            )
        )

    async def dead(self, rec: JobRecord) -> None:
        history = attempt_history(await self._ledger.attempts(rec.id))
        self._sink(
            DeadLettered(
                job_id=rec.id,
                kind=rec.kind.value,
                reason=rec.last_error or "",
                attempts=rec.attempts,
                history=history,
            )
        )
