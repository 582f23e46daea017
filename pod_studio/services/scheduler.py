"""Services layer: the durable queue's scheduler: which ComfyUI server gets the next prompt.

``Scheduler`` keeps one ``ServerSlot`` per ComfyUI server and decides:

- eligibility: a server gets work while its breaker is closed and its workflow preflight
  (node classes of ``/object_info``) passed;
- capacity: the queue depth kept on a server is sized from measured times (seconds per prompt
  on the GPU, the slow end of recent ``POST /prompt`` calls, the client's follow lag), and a
  submit unanswered for ``submit_stuck_after`` seconds stops counting, so a hung submit lets
  the next job in; a server's slot is freed as soon as its GPU is done with a prompt;
- picking: a job goes back to the server it was moved to or that holds its prompt, else to
  the least busy eligible server;
- watching: a server whose breaker is open is probed (so it gets work again once it answers),
  its jobs are named for moving when another server can take them, and a server whose
  preflight failed is checked again.

It owns no job: the orchestrator asks it for capacity and a server, and tells it when a job
takes and leaves a slot. Probes and preflights run as its own helper tasks; when something
changes it calls ``poke`` (the orchestrator's wake-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from pod_studio.domain.errors import PodStudioError
from pod_studio.domain.jobs import StepStatus
from pod_studio.domain.ledger_port import JobRecord
from pod_studio.domain.orchestration import FollowLag, ServerStatus, parse_prompt_step_key
from pod_studio.domain.ports import ImageGenerator
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.queue_options import OrchestratorOptions
from pod_studio.services.queue_views import latest_prompt_step

__all__ = ["BreakerLookup", "Scheduler", "ServerSlot"]

log = logging.getLogger(__name__)

BreakerLookup = Callable[[str], str]
"""Server URL -> breaker state ("closed", "open", "half_open")."""


def _always_closed(_url: str) -> str:
    return "closed"


@dataclass
class ServerSlot:
    """One ComfyUI server as the scheduler sees it."""

    gen: ImageGenerator
    url: str
    # jobs whose prompt the server has not finished yet (a job fetching its images has left)
    running: set[str] = field(default_factory=set)
    # of those, the ones whose POST /prompt has not been answered yet: job id -> since when
    submitting: dict[str, float] = field(default_factory=dict)
    # measured, to size the server's queue: seconds per prompt on the GPU (moving average)
    # and how long the recent POST /prompt calls took, retries included
    exec_seconds: float | None = None
    submit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    problems: list[str] | None = None  # None: not checked yet
    object_info: dict[str, Any] | None = None
    checked_at: float = -1e18
    checking: bool = False
    probed_at: float = -1e18
    probing: bool = False


class Scheduler:
    """Server slots, capacity, picking and probing for the generation jobs."""

    def __init__(
        self,
        generators: Sequence[ImageGenerator],
        template: WorkflowTemplate,
        *,
        options: OrchestratorOptions,
        clock: Callable[[], float],
        poke: Callable[[], None],
        breaker_state: BreakerLookup | None = None,
    ) -> None:
        self._slots: dict[str, ServerSlot] = {g.url: ServerSlot(g, g.url) for g in generators}
        self._template = template
        self._options = options
        self._clock = clock
        self._poke = poke
        self._breaker_state = breaker_state or _always_closed
        self._pinned: dict[str, str] = {}  # job id -> the server the seller moved it to
        self._helpers: set[asyncio.Task[None]] = set()

    # --- configuration ------------------------------------------------------------------------

    def set_template(self, template: WorkflowTemplate) -> None:
        """A new workflow: every server's preflight runs again."""
        self._template = template
        for slot in self._slots.values():
            slot.problems = None
            slot.checked_at = -1e18

    def set_generators(self, generators: Sequence[ImageGenerator]) -> list[ServerSlot]:
        """Switch servers; returns the removed slots (their jobs go back to the queue)."""
        new = {g.url: g for g in generators}
        removed = []
        for url, slot in list(self._slots.items()):
            if url not in new or new[url] is not slot.gen:
                removed.append(slot)
                del self._slots[url]
        for url, gen in new.items():
            self._slots.setdefault(url, ServerSlot(gen, url))
        return removed

    def __contains__(self, url: object) -> bool:
        return url in self._slots

    def __bool__(self) -> bool:
        return bool(self._slots)

    def generator(self, url: str) -> ImageGenerator | None:
        slot = self._slots.get(url)
        return slot.gen if slot is not None else None

    def pin(self, job_id: str, url: str) -> None:
        """Run ``job_id`` on ``url`` from now on, while that server is eligible."""
        if url not in self._slots:
            raise ValueError(f"unknown ComfyUI server {url}")
        self._pinned[job_id] = url

    def unpin(self, job_id: str) -> None:
        self._pinned.pop(job_id, None)

    # --- a job's slot -------------------------------------------------------------------------

    def take(self, slot: ServerSlot, job_id: str) -> None:
        """``job_id`` starts on ``slot``; its submit is timed from now."""
        slot.running.add(job_id)
        slot.submitting[job_id] = self._clock()

    def submitted(self, slot: ServerSlot, job_id: str) -> None:
        """The server accepted the job's prompt: the submit time is measured."""
        since = slot.submitting.pop(job_id, None)
        if since is not None:
            slot.submit_seconds.append(max(0.0, self._clock() - since))

    def resumed(self, slot: ServerSlot, job_id: str) -> None:
        """The job follows a prompt submitted before a restart: nothing to submit or time."""
        slot.submitting.pop(job_id, None)

    def finished(self, slot: ServerSlot, job_id: str, seconds: float) -> None:
        """The GPU is free of this job: its slot goes to the next prompt while the images
        download (a slow or retried download never holds the queue back)."""
        slot.submitting.pop(job_id, None)
        slot.running.discard(job_id)
        if seconds > 0:
            old = slot.exec_seconds
            slot.exec_seconds = seconds if old is None else 0.7 * old + 0.3 * seconds
        self._poke()

    def release(self, slot: ServerSlot, job_id: str) -> None:
        """The job ended (or left the server)."""
        slot.running.discard(job_id)
        slot.submitting.pop(job_id, None)

    # --- eligibility and capacity -------------------------------------------------------------

    def breaker(self, slot: ServerSlot) -> str:
        try:
            return str(self._breaker_state(slot.url))
        except Exception:
            log.exception("breaker lookup failed for %s", slot.url)
            return "closed"

    def eligible(self, slot: ServerSlot) -> bool:
        return self.breaker(slot) == "closed" and slot.problems == []

    def capacity(self) -> int:
        """Prompts the eligible servers can take now."""
        return sum(self.capacity_of(s) for s in self._slots.values() if self.eligible(s))

    def capacity_of(self, slot: ServerSlot) -> int:
        now = self._clock()
        stuck = sum(
            1
            for since in slot.submitting.values()
            if now - since >= self._options.submit_stuck_after
        )
        wanted = self.queue_depth(slot) - (len(slot.running) - stuck)
        ceiling = max(self._options.in_flight_per_server, self._options.max_in_flight_per_server)
        return max(0, min(wanted, ceiling - len(slot.running)))

    def queue_depth(self, slot: ServerSlot) -> int:
        """How many prompts to keep on ``slot`` so that its GPU never waits."""
        least = self._options.in_flight_per_server
        most = max(least, self._options.max_in_flight_per_server)
        per_prompt = slot.exec_seconds
        if per_prompt is None or per_prompt <= 0:
            return least
        recent = sorted(slot.submit_seconds)
        submit = recent[int(0.9 * (len(recent) - 1))] if recent else 0.0
        lag = slot.gen.follow_lag() if isinstance(slot.gen, FollowLag) else 0.0
        cover = max(submit, lag)
        return max(least, min(most, 1 + math.ceil(cover / per_prompt)))

    def next_stuck_in(self) -> float:
        """Seconds until a submit in flight counts as stuck (inf: none will)."""
        now = self._clock()
        limit = self._options.submit_stuck_after
        waits = [
            since + limit - now
            for s in self._slots.values()
            for since in s.submitting.values()
            if now - since < limit
        ]
        return min(waits, default=math.inf)

    def settled(self) -> bool:
        """No server needs probing or checking (those run from the scheduling pass)."""
        return all(
            self.breaker(s) == "closed" and s.problems is not None for s in self._slots.values()
        )

    def pick(self, job: JobRecord) -> ServerSlot | None:
        """The server for ``job``: the one it was moved to or that holds its prompt, when it
        can take work, else the least busy eligible one (``None``: none is eligible)."""
        eligible = [s for s in self._slots.values() if self.eligible(s)]
        if not eligible:
            return None
        wanted = self._pinned.get(job.id)
        if wanted is None:
            latest = latest_prompt_step(job)
            if latest is not None and latest.state in (StepStatus.IN_FLIGHT, StepStatus.DONE):
                with contextlib.suppress(ValueError):
                    wanted = parse_prompt_step_key(latest.idem_key)[0]
        for s in eligible:
            if s.url == wanted and self.capacity_of(s) > 0:
                return s
        return min(eligible, key=lambda s: len(s.running) / self._options.in_flight_per_server)

    def statuses(self) -> list[ServerStatus]:
        return [
            ServerStatus(
                url=s.url,
                breaker=self.breaker(s),
                in_flight=len(s.running),
                capacity=self.queue_depth(s),
                eligible=self.eligible(s),
                problems=list(s.problems or []),
            )
            for s in self._slots.values()
        ]

    # --- watching the servers -----------------------------------------------------------------

    def watch(self) -> list[ServerSlot]:
        """One scheduling pass over the servers: probe the open ones, check the unchecked
        ones. Returns the servers whose jobs should move: breaker open while another
        server can take them (with nowhere to go, a job keeps its prompt on the server:
        cancelling it would throw away GPU work)."""
        now = self._clock()
        leaving: list[ServerSlot] = []
        for slot in self._slots.values():
            state = self.breaker(slot)
            if state == "open" and any(
                self.eligible(s) for s in self._slots.values() if s is not slot
            ):
                leaving.append(slot)
            if state != "closed":
                if not slot.probing and now - slot.probed_at >= self._options.probe_interval:
                    slot.probing = True
                    slot.probed_at = now
                    self._helper(self._probe(slot), f"probe {slot.url}")
            elif (
                (slot.problems is None or slot.object_info is None)
                and not slot.checking
                and now - slot.checked_at >= self._options.preflight_retry
            ):
                slot.checking = True
                self._helper(self._preflight(slot), f"preflight {slot.url}")
        return leaving

    def _helper(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _probe(self, slot: ServerSlot) -> None:
        try:
            await slot.gen.system_info()
        except PodStudioError as exc:
            log.debug("%s still unavailable: %s", slot.url, exc)
        finally:
            slot.probing = False
            self._poke()

    async def _preflight(self, slot: ServerSlot) -> None:
        try:
            info = await slot.gen.object_info()
            slot.object_info = info
            # node classes only: a job's own inputs (checkpoint, overrides) replace the
            # workflow's values, and are checked per job before it is sent
            slot.problems = self._template.preflight(info, values=False)
            if slot.problems:
                log.warning("%s cannot run the workflow: %s", slot.url, slot.problems)
        except PodStudioError as exc:
            # /object_info could not be read: the check is a courtesy (ComfyUI validates
            # every prompt itself), so jobs go ahead and it is tried again later; a server
            # that is down opens its breaker and gets no jobs
            log.info("preflight of %s failed: %s", slot.url, exc)
            if slot.problems is None:
                slot.problems = []
        finally:
            slot.checked_at = self._clock()
            slot.checking = False
            self._poke()

    def helper_tasks(self) -> list[asyncio.Task[None]]:
        """The probes and preflights running now (the orchestrator stops them at exit)."""
        return list(self._helpers)
