"""CLI layer: the one progress printer of the headless commands (an ``EventSink``).

One line per fact on stderr: a job running, an image saved, a retry scheduled, a job that
waits and why, a listing created or failed, a job dead-lettered, a batch finished. Results
(manifests, listings, JSON) go to stdout or files, never mixed with progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from pod_studio.domain.events import (
    BatchFinished,
    Event,
    ImageReady,
    JobFailed,
    JobQueued,
    JobResubmitted,
    JobStateChanged,
    PublishDone,
    PublishStepChanged,
    RetryScheduled,
)
from pod_studio.domain.models import JobState
from pod_studio.domain.orchestration import DeadLettered, QueueChanged


class ProgressPrinter:
    """Prints progress events to ``stream`` (nothing when ``quiet``)."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._done = 0
        self._prompts: dict[str, str] = {}
        self._waiting: dict[str, str] = {}

    def say(self, text: str) -> None:
        if not self._quiet:
            print(text, file=self._stream, flush=True)

    def __call__(self, event: Event) -> None:
        match event:
            case JobQueued(job_id=job_id, prompt=prompt, seed=seed):
                self._prompts[job_id] = f"{prompt[:50]!r} seed {seed}"
            case JobStateChanged(job_id=job_id, state=JobState.RUNNING, server=server):
                self.say(f"running  {self._prompts.get(job_id, job_id)} on {server}")
            case ImageReady(image=image):
                self._done += 1
                self.say(
                    f"[{self._done}] image  {Path(image.file).name} "
                    f"({image.width}x{image.height}, {image.seconds:.1f} s)"
                )
            case JobFailed(job_id=job_id, reason=reason):
                self.say(f"failed   {self._prompts.get(job_id, job_id)}: {reason}")
            case JobResubmitted(job_id=job_id, reason=reason):
                self.say(f"resubmit {self._prompts.get(job_id, job_id)}: {reason}")
            case RetryScheduled(
                service=service, operation=op, attempt=n, cause=cause, wait_seconds=wait
            ):
                self.say(f"retry    {service} {op} attempt {n} in {wait:.1f} s: {cause}")
            case QueueChanged(job_id=job_id, state="retry_wait", last_error=why) if why:
                if self._waiting.get(job_id) != why:
                    self._waiting[job_id] = why
                    self.say(f"waiting  {self._prompts.get(job_id, job_id[:12])}: {why}")
            case PublishStepChanged(product=t, platform=p, state=state, detail=detail) if (
                state.endswith(":done") or state.endswith(":failed")
            ):
                extra = f" ({detail})" if detail and state.startswith("prepare") else ""
                self.say(f"{state:<16} {t} on {p}{extra}")
            case PublishDone(platform=platform, ok=ok, detail=detail):
                self.say(f"{'listed' if ok else 'failed':<8} {platform}: {detail}")
            case DeadLettered(job_id=job_id, reason=reason):
                self.say(f"dead     {self._prompts.get(job_id, job_id[:12])}: {reason}")
            case BatchFinished(succeeded=ok, failed=bad, cancelled=cancelled, seconds=secs):
                self.say(f"finished {ok} ok, {bad} failed, {cancelled} cancelled in {secs:.1f} s")
            case _:
                pass
