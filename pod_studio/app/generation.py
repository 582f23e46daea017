"""App layer: GenerationController — starts and cancels generation batches for the GUI.

The prompt editor hands it a ``PromptForm`` (plain values from the widgets); the controller
checks it (job count, limits, sizes), builds a ``GenerationRequest`` and plans the jobs into
the durable queue (they survive a restart and are run by the orchestrator's worker loop, the
same engine the headless commands run). Progress reaches the views as events through the
``QtEventBridge``, not through this controller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pydantic
from PySide6.QtCore import QObject, Signal, Slot

from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.errors import ValidationError, user_message
from pod_studio.domain.models import (
    MAX_PROMPT_CHARS,
    MAX_PROMPTS_PER_BATCH,
    GeneratedImage,
    GenerationRequest,
    JobSpec,
)
from pod_studio.domain.orchestration import QueueChanged

if TYPE_CHECKING:
    from pod_studio.services.orchestrator import Orchestrator

log = logging.getLogger(__name__)

MIN_SIDE = 64
MAX_SIDE = 4096
SIDE_STEP = 8
MAX_VARIATIONS = 64
LONG_PROMPT_WARNING = 1000  # characters; ComfyUI's CLIP reads ~77 tokens, the rest is ignored
_FINAL_QUEUE_STATES = {"succeeded", "dead", "cancelled", "discarded", "partially_published"}


@dataclass(frozen=True)
class QueuedBatchResult:
    """How a batch run through the durable queue ended."""

    batch_id: str
    succeeded: int
    failed: int
    cancelled: int


@dataclass(frozen=True)
class PromptForm:
    """What the prompt editor shows, as plain values."""

    text: str
    negative: str = ""
    variations: int = 1
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class FormCheck:
    """The live verdict on a ``PromptForm``: counts, blocking errors and soft warnings."""

    prompts: int
    variations: int
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return self.prompts * self.variations

    @property
    def ok(self) -> bool:
        return not self.errors and self.prompts > 0


def prompt_lines(text: str) -> list[str]:
    """One prompt per non-empty line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_form(form: PromptForm) -> FormCheck:
    """Validate the editor's values without building anything."""
    prompts = prompt_lines(form.text)
    errors: list[str] = []
    warnings: list[str] = []
    if len(prompts) > MAX_PROMPTS_PER_BATCH:
        errors.append(
            f"{len(prompts):,} prompts in one batch; the limit is {MAX_PROMPTS_PER_BATCH:,} "
            "(split the list)"
        )
    too_long = [i + 1 for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS]
    if too_long:
        lines = ", ".join(str(n) for n in too_long[:5])
        errors.append(f"line {lines} is longer than {MAX_PROMPT_CHARS:,} characters")
    long_ones = [
        i + 1 for i, p in enumerate(prompts) if LONG_PROMPT_WARNING < len(p) <= MAX_PROMPT_CHARS
    ]
    if long_ones:
        lines = ", ".join(str(n) for n in long_ones[:5])
        warnings.append(
            f"line {lines} is very long; the model mostly reads the first few dozen words"
        )
    if not 1 <= form.variations <= MAX_VARIATIONS:
        errors.append(f"variations must be between 1 and {MAX_VARIATIONS}")
    for label, side in (("width", form.width), ("height", form.height)):
        if side is None:
            continue
        if not MIN_SIDE <= side <= MAX_SIDE:
            errors.append(f"{label} must be between {MIN_SIDE} and {MAX_SIDE} pixels")
        elif side % SIDE_STEP:
            errors.append(f"{label} must be a multiple of {SIDE_STEP}")
    return FormCheck(
        prompts=len(prompts), variations=form.variations, errors=errors, warnings=warnings
    )


class GenerationController(QObject):
    """Starts batches and cancels jobs.

    Signals:
        sig_batch_started(str batch_id, list job_ids)
        sig_batch_completed(object BatchResult | QueuedBatchResult): every job of the batch
            ended (``QueuedBatchResult`` when it ran through the durable queue).
        sig_batch_failed(str batch_id, str message): the batch could not run at all
            (e.g. the workflow cannot take these inputs).
        sig_validation_failed(str message): ``start`` refused the request.
        sig_busy_changed(bool busy)
        sig_checkpoints_loaded(list names) / sig_checkpoints_failed(str message)
    """

    sig_batch_started = Signal(str, list)
    sig_batch_completed = Signal(object)
    sig_batch_failed = Signal(str, str)
    sig_validation_failed = Signal(str)
    sig_busy_changed = Signal(bool)
    sig_checkpoints_loaded = Signal(list)
    sig_checkpoints_failed = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        bridge: QtEventBridge,
        orchestrator: Orchestrator,
        *,
        list_checkpoints: Callable[[], Awaitable[list[str]]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.bridge = bridge
        self.orchestrator = orchestrator
        self._list_checkpoints = list_checkpoints
        self._active_batches: set[str] = set()
        # durable queue: batch id -> job ids still open; job id -> final state
        self._open: dict[str, set[str]] = {}
        self._batch_of: dict[str, str] = {}
        self._finals: dict[str, dict[str, str]] = {}
        bridge.sig_queue_changed.connect(self._on_bridge_queue_changed)

    @property
    def is_busy(self) -> bool:
        return bool(self._active_batches)

    def check(self, form: PromptForm) -> FormCheck:
        return check_form(form)

    def start_form(self, form: PromptForm) -> list[str]:
        """Check ``form``, then start it (see ``start``). Returns the job ids ([] if refused)."""
        verdict = check_form(form)
        if not verdict.ok:
            message = "; ".join(verdict.errors) or "write at least one prompt (one per line)"
            self.sig_validation_failed.emit(message)
            return []
        try:
            request = GenerationRequest(
                prompts=prompt_lines(form.text),
                negative=form.negative.strip(),
                variations=form.variations,
                seed=form.seed,
                width=form.width,
                height=form.height,
                checkpoint=form.checkpoint or None,
            )
        except pydantic.ValidationError as exc:
            self.sig_validation_failed.emit(_pydantic_message(exc))
            return []
        return self.start(request)

    def start(self, request: GenerationRequest) -> list[str]:
        """Plan ``request`` into jobs and run them in the background; returns the job ids."""
        problems: list[str] = []
        for label, side in (("width", request.width), ("height", request.height)):
            if side is not None and (side % SIDE_STEP or not MIN_SIDE <= side <= MAX_SIDE):
                problems.append(
                    f"{label} must be a multiple of {SIDE_STEP} between {MIN_SIDE} and {MAX_SIDE}"
                )
        if problems:
            self.sig_validation_failed.emit("; ".join(problems))
            return []
        jobs = self.orchestrator.plan(request)
        if not jobs:
            self.sig_validation_failed.emit("nothing to generate")
            return []
        batch_id = jobs[0].batch_id
        self._active_batches.add(batch_id)
        job_ids = [j.job_id for j in jobs]
        self.sig_batch_started.emit(batch_id, job_ids)
        if len(self._active_batches) == 1:
            self.sig_busy_changed.emit(True)
        self._open[batch_id] = set(job_ids)
        self._finals[batch_id] = {}
        for job_id in job_ids:
            self._batch_of[job_id] = batch_id
        self.runner.spawn(self._enqueue(batch_id, jobs), name=f"enqueue-{batch_id}")
        return job_ids

    def regenerate(self, image: GeneratedImage) -> list[str]:
        """Generate ``image``'s prompt again with a new seed (same negative and size)."""

        def side(value: int) -> int | None:
            ok = MIN_SIDE <= value <= MAX_SIDE and value % SIDE_STEP == 0
            return value if ok else None

        try:
            request = GenerationRequest(
                prompts=[image.prompt],
                negative=image.negative,
                variations=1,
                seed=None,
                width=side(image.width),
                height=side(image.height),
            )
        except pydantic.ValidationError as exc:
            self.sig_validation_failed.emit(_pydantic_message(exc))
            return []
        return self.start(request)

    async def _enqueue(self, batch_id: str, jobs: list[JobSpec]) -> None:
        try:
            await self.orchestrator.enqueue_generation(jobs)
        except ValidationError as exc:
            log.warning("batch %s refused: %s", batch_id, exc)
            self._forget_batch(batch_id)
            self.sig_batch_failed.emit(batch_id, user_message(exc))

    def _forget_batch(self, batch_id: str) -> None:
        for job_id in self._open.pop(batch_id, set()):
            self._batch_of.pop(job_id, None)
        self._finals.pop(batch_id, None)
        self._active_batches.discard(batch_id)
        if not self._active_batches:
            self.sig_busy_changed.emit(False)

    @Slot(object)
    def _on_bridge_queue_changed(self, event: QueueChanged) -> None:
        batch_id = self._batch_of.get(event.job_id)
        if batch_id is None:
            return
        open_ids = self._open.get(batch_id, set())
        if event.state in _FINAL_QUEUE_STATES:
            open_ids.discard(event.job_id)
            self._finals.setdefault(batch_id, {})[event.job_id] = event.state
        elif event.job_id not in open_ids:
            open_ids.add(event.job_id)  # retried by hand: open again
            self._finals.get(batch_id, {}).pop(event.job_id, None)
            if batch_id not in self._active_batches:
                self._active_batches.add(batch_id)
                if len(self._active_batches) == 1:
                    self.sig_busy_changed.emit(True)
        if open_ids or batch_id not in self._active_batches:
            return
        finals = list(self._finals.get(batch_id, {}).values())
        self._active_batches.discard(batch_id)
        if not self._active_batches:
            self.sig_busy_changed.emit(False)
        self.sig_batch_completed.emit(
            QueuedBatchResult(
                batch_id=batch_id,
                succeeded=finals.count("succeeded"),
                failed=sum(1 for f in finals if f in ("dead", "partially_published")),
                cancelled=sum(1 for f in finals if f in ("cancelled", "discarded")),
            )
        )

    def cancel(self, job_id: str) -> bool:
        """Cancel one job (queued: skipped; running: interrupted). False if already over."""
        batch_id = self._batch_of.get(job_id)
        if batch_id is not None and job_id not in self._open.get(batch_id, set()):
            return False
        self.runner.spawn(self._cancel(job_id), name=f"cancel-{job_id[:8]}")
        return True

    async def _cancel(self, job_id: str) -> None:
        try:
            await self.orchestrator.cancel(job_id)
        except Exception as exc:  # noqa: BLE001 - shown in the status bar, not a crash
            log.warning("cancelling job %s failed: %s", job_id, exc)
            self.sig_batch_failed.emit(self._batch_of.get(job_id, ""), user_message(exc))

    def cancel_all(self) -> int:
        """Cancel every job this window started that has not ended yet."""
        ids = [j for open_ids in self._open.values() for j in open_ids]
        for job_id in ids:
            self.cancel(job_id)
        return len(ids)

    def load_checkpoints(self) -> bool:
        """Ask the server for its checkpoints (``sig_checkpoints_loaded``); False if unknown."""
        if self._list_checkpoints is None:
            return False
        self.runner.spawn(self._load_checkpoints(self._list_checkpoints), name="list-checkpoints")
        return True

    async def _load_checkpoints(self, fetch: Callable[[], Awaitable[list[str]]]) -> None:
        try:
            names = await fetch()
        except Exception as exc:  # noqa: BLE001 - shown next to the combo, not a crash
            log.info("could not list checkpoints: %s", exc)
            self.sig_checkpoints_failed.emit(user_message(exc))
            return
        self.sig_checkpoints_loaded.emit(sorted(names, key=str.lower))


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors():
        msg = str(err.get("msg", ""))
        parts.append(msg.removeprefix("Value error, "))
    return "; ".join(parts) or "invalid request"
