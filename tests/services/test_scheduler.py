"""The queue's ``Scheduler`` on its own, with in-memory servers and a fake clock: the queue
depth sized from measured times, submits that hang stop counting, a slot freed when the GPU
is done, the server a job goes to, and the pass that probes open servers, checks the
workflow and names the servers whose jobs must move."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pod_studio.adapters.comfyui.client import default_workflow_text
from pod_studio.domain.errors import ServiceError
from pod_studio.domain.jobs import JobKind, JobStatus, StepStatus
from pod_studio.domain.ledger_port import JobRecord, StepRecord
from pod_studio.domain.models import ServerInfo
from pod_studio.domain.orchestration import prompt_step_key
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.queue_options import OrchestratorOptions
from pod_studio.services.scheduler import Scheduler, ServerSlot

TEMPLATE = WorkflowTemplate.from_json_text(default_workflow_text())
OBJECT_INFO: dict[str, Any] = {
    str(n["class_type"]): {"input": {"required": {}}} for n in TEMPLATE.graph.values()
}


class Server:
    """What the scheduler asks a ComfyUI server: is it up, which nodes it has, its lag."""

    def __init__(self, url: str, *, lag: float = 0.0, nodes: dict[str, Any] | None = None) -> None:
        self.url = url
        self.lag = lag
        self.nodes = OBJECT_INFO if nodes is None else nodes
        self.down = False
        self.probes = 0

    async def system_info(self) -> ServerInfo:
        self.probes += 1
        if self.down:
            raise ServiceError("down", service="comfyui")
        return ServerInfo(url=self.url)

    async def object_info(self) -> dict[str, Any]:
        return self.nodes

    def follow_lag(self) -> float:
        return self.lag


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(job_id: str, *, on: str | None = None) -> JobRecord:
    steps = []
    if on is not None:
        steps.append(
            StepRecord(
                job_id=job_id,
                step="prompt-1",
                idem_key=prompt_step_key(on, "p1"),
                state=StepStatus.IN_FLIGHT,
            )
        )
    return JobRecord(
        id=job_id,
        kind=JobKind.GENERATE,
        state=JobStatus.RUNNING,
        next_run_at=0.0,
        created_at=0.0,
        updated_at=0.0,
        steps=steps,
    )


def make(
    servers: list[Server], breakers: dict[str, str] | None = None, **opts: Any
) -> tuple[Scheduler, Clock, list[int]]:
    clock, pokes = Clock(), [0]

    def poke() -> None:
        pokes[0] += 1

    states = breakers if breakers is not None else {}
    scheduler = Scheduler(
        servers,  # type: ignore[arg-type]
        TEMPLATE,
        options=OrchestratorOptions(probe_interval=0.0, **opts),
        clock=clock,
        poke=poke,
        breaker_state=lambda url: states.get(url, "closed"),
    )
    return scheduler, clock, pokes


async def checked(scheduler: Scheduler) -> None:
    """Run one scheduling pass and wait for the preflights and probes it started."""
    scheduler.watch()
    await asyncio.gather(*scheduler.helper_tasks())


def slot_of(scheduler: Scheduler, url: str) -> ServerSlot:
    picked = scheduler.pick(job("probe", on=url))
    assert picked is not None and picked.url == url
    return picked


@pytest.mark.asyncio
async def test_queue_depth_covers_the_slow_submits_and_the_follow_lag() -> None:
    a = Server("http://a")
    scheduler, clock, _ = make([a], in_flight_per_server=2, max_in_flight_per_server=8)
    await checked(scheduler)
    slot = slot_of(scheduler, "http://a")
    assert scheduler.queue_depth(slot) == 2  # nothing measured yet: the floor

    scheduler.take(slot, "j1")
    clock.now += 3.0
    scheduler.submitted(slot, "j1")  # POST /prompt took 3 s
    scheduler.finished(slot, "j1", 1.0)  # 1 s per prompt on the GPU
    assert scheduler.queue_depth(slot) == 1 + 3  # enough prompts to cover a 3 s submit

    a.lag = 5.0  # the live channel is down: polling notices a finish up to 5 s late
    assert scheduler.queue_depth(slot) == 1 + 5
    a.lag = 100.0
    assert scheduler.queue_depth(slot) == 8  # never above the ceiling
    assert [s.capacity for s in scheduler.statuses()] == [8]


@pytest.mark.asyncio
async def test_a_hung_submit_stops_counting_and_a_finished_prompt_frees_its_slot() -> None:
    scheduler, clock, pokes = make([Server("http://a")], submit_stuck_after=0.25)
    await checked(scheduler)
    slot = slot_of(scheduler, "http://a")
    scheduler.take(slot, "j1")
    scheduler.take(slot, "j2")
    assert scheduler.capacity() == 0
    assert scheduler.next_stuck_in() == pytest.approx(0.25)

    clock.now += 0.25  # neither POST has been answered: both count as stuck
    assert scheduler.capacity() == 2 and scheduler.next_stuck_in() == float("inf")

    scheduler.submitted(slot, "j1")
    scheduler.submitted(slot, "j2")
    assert scheduler.capacity() == 0
    before = pokes[0]
    scheduler.finished(slot, "j1", 2.0)  # the images still download; the GPU is free
    assert scheduler.capacity() == 1 and pokes[0] == before + 1
    scheduler.release(slot, "j2")
    assert scheduler.capacity() == 2


@pytest.mark.asyncio
async def test_a_job_goes_where_it_was_moved_or_where_its_prompt_is_else_the_least_busy() -> None:
    scheduler, _, _ = make([Server("http://a"), Server("http://b")])
    await checked(scheduler)
    a = slot_of(scheduler, "http://a")
    scheduler.take(a, "busy")
    picked = scheduler.pick(job("new"))
    assert picked is not None and picked.url == "http://b"  # the least busy
    picked = scheduler.pick(job("resumed", on="http://a"))
    assert picked is not None and picked.url == "http://a"  # where its prompt is
    scheduler.pin("moved", "http://a")
    picked = scheduler.pick(job("moved", on="http://b"))
    assert picked is not None and picked.url == "http://a"  # where the seller moved it
    scheduler.unpin("moved")
    picked = scheduler.pick(job("moved", on="http://b"))
    assert picked is not None and picked.url == "http://b"
    with pytest.raises(ValueError, match="unknown ComfyUI server"):
        scheduler.pin("moved", "http://nowhere")


@pytest.mark.asyncio
async def test_the_pass_probes_open_servers_and_names_those_whose_jobs_move() -> None:
    a, b = Server("http://a"), Server("http://b")
    breakers = {"http://a": "closed", "http://b": "closed"}
    scheduler, _, pokes = make([a, b], breakers)
    assert scheduler.pick(job("j")) is None  # the workflow is not checked yet
    assert not scheduler.settled()
    await checked(scheduler)
    assert scheduler.settled() and pokes[0] == 2  # each preflight wakes the queue
    assert {s.url: s.eligible for s in scheduler.statuses()} == {"http://a": True, "http://b": True}

    breakers["http://a"] = "open"
    a.down = True
    assert [s.url for s in scheduler.watch()] == ["http://a"]  # b can take its jobs
    await asyncio.gather(*scheduler.helper_tasks())
    assert a.probes == 1 and b.probes == 0 and not scheduler.settled()

    breakers["http://b"] = "open"  # nowhere to go: the jobs keep their prompts
    assert scheduler.watch() == []
    await asyncio.gather(*scheduler.helper_tasks())
    assert a.probes == 2 and b.probes == 1
    assert scheduler.capacity() == 0


@pytest.mark.asyncio
async def test_a_server_without_the_workflows_nodes_gets_no_work() -> None:
    scheduler, _, _ = make([Server("http://a", nodes={}), Server("http://b")])
    await checked(scheduler)
    statuses = {s.url: s for s in scheduler.statuses()}
    assert not statuses["http://a"].eligible and statuses["http://a"].problems
    assert statuses["http://b"].eligible
    picked = scheduler.pick(job("j", on="http://a"))
    assert picked is not None and picked.url == "http://b"

    scheduler.set_template(TEMPLATE)  # a new workflow: checked again
    assert scheduler.pick(job("j")) is None
    removed = scheduler.set_generators([Server("http://b")])  # a new client for b too
    assert sorted(s.url for s in removed) == ["http://a", "http://b"]
    assert "http://a" not in scheduler and "http://b" in scheduler
