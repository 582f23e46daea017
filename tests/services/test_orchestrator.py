"""Orchestrator with in-memory fakes (generators, image store, marketplaces) and a real
SQLite ledger: dispatch limits, retry/dead-letter, manual retry, resume of recorded prompts
and saves, publish reconciliation, partial publishing, pause and cancel. Publish jobs run
through the shipped ``PublishService`` (``composition.publishing.build_publish_service``)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from pod_studio.adapters.comfyui.client import default_workflow_text
from pod_studio.adapters.marketplaces.export import ExportMarketplace
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.composition.publishing import build_publish_service
from pod_studio.domain.errors import APIError, ServiceError, ValidationError
from pod_studio.domain.events import Event
from pod_studio.domain.jobs import JobKind, JobStatus, StepStatus
from pod_studio.domain.marketplace import ListingSpec, ListingStatus, RemoteListing
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec, ServerInfo
from pod_studio.domain.orchestration import (
    DeadLettered,
    DesignPublishChanged,
    GenerationPayload,
    QueueChanged,
    parse_history_entry,
    prompt_step_key,
)
from pod_studio.domain.ports import RunResult, UpdateCallback
from pod_studio.domain.products import default_templates
from pod_studio.domain.publishing import PublishMarketplace
from pod_studio.domain.workflow import WorkflowTemplate
from pod_studio.services.orchestrator import Orchestrator, OrchestratorOptions
from pod_studio.services.publish_platforms import BasicPlatform
from pod_studio.services.publishing import PublishService, TemplateCatalog

TEMPLATE = WorkflowTemplate.from_json_text(default_workflow_text())
OBJECT_INFO: dict[str, Any] = {
    str(n["class_type"]): {"input": {"required": {}}} for n in TEMPLATE.graph.values()
}


class FakeGen:
    """An ImageGenerator + PromptLookup in memory."""

    def __init__(self, url: str, *, fail: list[Exception] | None = None) -> None:
        self.url = url
        self.fail = list(fail or [])
        self.runs: list[str] = []
        self.active = 0
        self.peak = 0
        self.history: dict[str, dict[str, Any]] = {}
        self.pending: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def system_info(self) -> ServerInfo:
        return ServerInfo(url=self.url)

    async def object_info(self) -> dict[str, Any]:
        return OBJECT_INFO

    async def checkpoints(self) -> list[str]:
        return []

    async def run(
        self, graph: dict[str, Any], *, prompt_id: str, on_update: UpdateCallback
    ) -> RunResult:
        self.runs.append(prompt_id)
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            if self.fail:
                raise self.fail.pop(0)
            ref = ImageRef(filename=f"{prompt_id}.png")
            return RunResult(prompt_id=prompt_id, server=self.url, images=[(ref, b"png")])
        finally:
            self.active -= 1

    async def cancel(self, prompt_id: str) -> None: ...

    async def queue(self) -> tuple[list[str], list[str]]:
        return [], sorted(self.pending)

    async def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        return self.history.get(prompt_id)

    async def fetch_image(self, ref: ImageRef) -> bytes:
        return b"from-history"


class MemoryStore:
    def __init__(self) -> None:
        self.images: list[GeneratedImage] = []
        self.data: list[bytes] = []

    async def save(self, job: JobSpec, data: bytes, **kw: Any) -> GeneratedImage:
        image = GeneratedImage(
            image_id=uuid.uuid4().hex,
            job_id=job.job_id,
            prompt=job.prompt,
            seed=job.seed,
            width=64,
            height=64,
            file=f"/tmp/{job.job_id}.png",
            sha256=hashlib.sha256(data + job.job_id.encode()).hexdigest(),
            server=kw["server"],
            prompt_id=kw["prompt_id"],
            seconds=0.0,
        )
        self.images.append(image)
        self.data.append(data)
        return image

    async def list_images(self) -> list[GeneratedImage]:
        return list(self.images)

    async def set_approved(self, image_id: str, approved: bool | None) -> GeneratedImage:
        raise NotImplementedError


class CountingMarket:
    """A platform that makes a new listing per create (not idempotent by itself)."""

    def __init__(self, name: str, fail: Exception | None = None) -> None:
        self.name = name
        self.fail = fail
        self.creates: dict[str, int] = {}

    async def find_existing(self, idem_key: str) -> RemoteListing | None:
        if idem_key in self.creates:
            return RemoteListing(platform=self.name, remote_id=idem_key, status=ListingStatus.DRAFT)
        return None

    async def create_listing(self, spec: ListingSpec) -> RemoteListing:
        if self.fail is not None:
            raise self.fail
        self.creates[spec.idem_key] = self.creates.get(spec.idem_key, 0) + 1
        return RemoteListing(
            platform=self.name, remote_id=spec.idem_key, status=ListingStatus.DRAFT
        )

    async def publish(self, listing: RemoteListing) -> RemoteListing:
        return listing.model_copy(update={"status": ListingStatus.PUBLISHED})

    async def get_listing(self, remote_id: str) -> RemoteListing:
        return RemoteListing(platform=self.name, remote_id=remote_id, status=ListingStatus.DRAFT)


PRINT_AREA = (300, 360)  # small print files: the tests are about the queue, not the pixels


def publisher(markets: dict[str, PublishMarketplace], events: list[Event]) -> PublishService:
    """The shipped publish service over ``markets``, each with a small catalog print area."""
    service = build_publish_service(
        [],
        {t.name: t for t in default_templates()},
        sink=events.append,
        paths=app_paths().ensure(),
    )
    for name, market in markets.items():
        service.set_platform(name, BasicPlatform(market, catalog=TemplateCatalog(PRINT_AREA)))
    return service


def spec(i: int) -> JobSpec:
    return JobSpec(job_id=f"job-{i:03d}", prompt=f"design number {i}", seed=i)


@pytest_asyncio.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteJobLedger]:
    led = SqliteJobLedger(tmp_path / "jobs.db")
    await led.open()
    yield led
    await led.aclose()


def make(
    ledger: SqliteJobLedger,
    gens: list[FakeGen],
    store: MemoryStore | None = None,
    events: list[Event] | None = None,
    **opts: Any,
) -> Orchestrator:
    options = OrchestratorOptions(
        tick=0.02,
        poll_interval=0.01,
        probe_interval=0.02,
        retry_delay=lambda _n: 0.01,
        idle_horizon=1.0,
        stall_timeout=2.0,
    )
    for k, v in opts.items():
        setattr(options, k, v)
    publishers = opts.pop("publishers", None)
    return Orchestrator(
        ledger,
        gens,
        store or MemoryStore(),
        TEMPLATE,
        (events if events is not None else []).append,
        publishers=publishers,
        breaker_state=opts.pop("breaker_state", None),
        options=options,
    )


@pytest.mark.asyncio
async def test_batch_runs_within_in_flight_limit_and_saves_once(ledger: SqliteJobLedger) -> None:
    gens = [FakeGen("http://a"), FakeGen("http://b")]
    store, events = MemoryStore(), []
    orch = make(ledger, gens, store, events)
    ids = await orch.enqueue_generation([spec(i) for i in range(10)])
    again = await orch.enqueue_generation([spec(i) for i in range(10)])  # no duplicates
    assert again == ids
    summary = await orch.run_until_idle()
    assert summary.ok and summary.counts["succeeded"] == 10
    assert sorted(i.job_id for i in store.images) == sorted(ids)
    assert all(g.peak <= 2 for g in gens) and all(g.runs for g in gens)
    assert any(isinstance(e, QueueChanged) and e.state == "succeeded" for e in events)


@pytest.mark.asyncio
async def test_retry_then_dead_letter_then_manual_retry(ledger: SqliteJobLedger) -> None:
    transient = ServiceError("comfyui hiccup", service="comfyui")
    gen = FakeGen("http://a", fail=[transient, ValidationError("bad graph", service="comfyui")])
    events: list[Event] = []
    orch = make(ledger, [gen], events=events)
    (job_id,) = await orch.enqueue_generation([spec(1)])
    summary = await orch.run_until_idle()
    assert not summary.ok and job_id in summary.dead
    job = await ledger.get_job(job_id)
    assert job is not None and job.state is JobStatus.DEAD and job.attempts == 2
    dead = [e for e in events if isinstance(e, DeadLettered)]
    assert dead and "bad graph" in dead[0].reason or dead[0].reason
    assert any("retry" in line for line in dead[0].history)
    letters = await orch.dead_letters()
    assert letters[0][0].job_id == job_id and len(letters[0][1]) >= 4

    assert await orch.retry_all_dead() == [job_id]
    summary = await orch.run_until_idle()
    assert summary.ok


@pytest.mark.asyncio
async def test_exhausted_retries_go_dead(ledger: SqliteJobLedger) -> None:
    errors: list[Exception] = [ServiceError("down", service="comfyui") for _ in range(5)]
    gen = FakeGen("http://a", fail=errors)
    delays: list[int] = []
    orch = make(ledger, [gen], max_attempts=3, retry_delay=lambda n: delays.append(n) or 0.01)
    (job_id,) = await orch.enqueue_generation([spec(1)])
    summary = await orch.run_until_idle()
    assert summary.dead and "gave up after 3 attempts" in summary.dead[job_id]
    assert delays == [1, 2]


@pytest.mark.asyncio
async def test_retry_wait_beyond_horizon_is_left_for_later(ledger: SqliteJobLedger) -> None:
    gen = FakeGen("http://a", fail=[ServiceError("down", service="comfyui")])
    orch = make(ledger, [gen], retry_delay=lambda n: 3600.0)
    (job_id,) = await orch.enqueue_generation([spec(1)])
    summary = await orch.run_until_idle()
    assert summary.waiting == 1 and not summary.ok
    await orch.retry_now(job_id)
    assert (await orch.run_until_idle()).ok


@pytest.mark.asyncio
async def test_resume_picks_up_a_finished_prompt_without_resubmitting(
    ledger: SqliteJobLedger,
) -> None:
    gen = FakeGen("http://a")
    store = MemoryStore()
    job = spec(1)
    rec = await ledger.add_job(
        JobKind.GENERATE, GenerationPayload(spec=job).model_dump(mode="json"), job_id=job.job_id
    )
    await ledger.claim_ready(rec.next_run_at + 1, 1)
    await ledger.record_intent(job.job_id, "prompt-1", prompt_step_key("http://a", "p-old"))
    gen.history["p-old"] = {
        "status": {"status_str": "success", "completed": True},
        "outputs": {"9": {"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]}},
    }
    orch = make(ledger, [gen], store)
    report = await orch.recover()
    assert report["requeued"] == 1
    assert (await orch.run_until_idle()).ok
    assert gen.runs == []  # looked up, not resubmitted
    assert store.data == [b"from-history"]


@pytest.mark.asyncio
async def test_resume_resubmits_a_vanished_prompt(ledger: SqliteJobLedger) -> None:
    gen = FakeGen("http://a")
    store = MemoryStore()
    job = spec(2)
    await ledger.add_job(
        JobKind.GENERATE, GenerationPayload(spec=job).model_dump(mode="json"), job_id=job.job_id
    )
    await ledger.claim_ready(1e12, 1)
    await ledger.record_intent(job.job_id, "prompt-1", prompt_step_key("http://a", "p-gone"))
    orch = make(ledger, [gen], store)
    await orch.recover()
    assert (await orch.run_until_idle()).ok
    assert len(gen.runs) == 1 and len(store.images) == 1
    rec = await ledger.get_job(job.job_id)
    assert rec is not None
    assert rec.step("prompt-1").state is StepStatus.FAILED  # type: ignore[union-attr]
    assert rec.step("prompt-2").state is StepStatus.DONE  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_interrupted_save_is_not_saved_twice(ledger: SqliteJobLedger) -> None:
    gen = FakeGen("http://a")
    store = MemoryStore()
    job = spec(3)
    await ledger.add_job(
        JobKind.GENERATE, GenerationPayload(spec=job).model_dump(mode="json"), job_id=job.job_id
    )
    await ledger.claim_ready(1e12, 1)
    await ledger.record_intent(job.job_id, "prompt-1", prompt_step_key("http://a", "p1"))
    await ledger.record_result(job.job_id, "prompt-1", "p1")
    await ledger.record_intent(job.job_id, "save", f"{job.job_id}:save")
    await store.save(job, b"png", server="http://a", prompt_id="p1")  # landed, then the crash
    gen.history["p1"] = {"outputs": {"9": {"images": [{"filename": "p1.png"}]}}}
    orch = make(ledger, [gen], store)
    await orch.recover()
    assert (await orch.run_until_idle()).ok
    assert len(store.images) == 1 and gen.runs == []


@pytest.mark.asyncio
async def test_breaker_open_server_gets_no_work(ledger: SqliteJobLedger) -> None:
    a, b = FakeGen("http://a"), FakeGen("http://b")
    states = {"http://a": "open", "http://b": "closed"}
    orch = make(ledger, [a, b], breaker_state=lambda url: states[url])
    await orch.enqueue_generation([spec(i) for i in range(6)])
    assert (await orch.run_until_idle()).ok
    assert a.runs == [] and len(b.runs) == 6
    assert {s.url: s.eligible for s in orch.servers()} == {"http://a": False, "http://b": True}


@pytest.mark.asyncio
async def test_pause_cancel_discard(ledger: SqliteJobLedger) -> None:
    gen = FakeGen("http://a")
    events: list[Event] = []
    orch = make(ledger, [gen], events=events)
    ids = await orch.enqueue_generation([spec(i) for i in range(3)])
    await orch.pause()
    summary = await orch.run_until_idle()
    assert summary.paused and summary.queued == 3 and gen.runs == []
    assert await orch.cancel(ids[0])
    assert await orch.discard(ids[1])
    await orch.resume()
    summary = await orch.run_until_idle()
    assert summary.counts["succeeded"] == 1 and summary.counts["cancelled"] == 1
    snap = await orch.snapshot()
    assert [e.job_id for e in snap.entries] == [ids[0], ids[2]]
    assert not snap.paused


def _design(tmp_path: Path, n: int) -> GeneratedImage:
    path = tmp_path / f"d{n}.png"
    Image.new("RGBA", PRINT_AREA, (40 * n % 256, 120, 90, 255)).save(path, "PNG")
    data = path.read_bytes()
    return GeneratedImage(
        image_id=f"{n:032x}",
        job_id=f"j{n}",
        prompt=f"retro sunset number {n}",
        seed=n,
        width=64,
        height=64,
        file=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        server="s",
        prompt_id="p",
        seconds=0.0,
    )


@pytest.mark.asyncio
async def test_publish_platforms_independent_partial_with_reasons(
    ledger: SqliteJobLedger, tmp_path: Path
) -> None:
    good = CountingMarket("good")
    bad = CountingMarket("bad", fail=APIError("no shop", service="bad", retryable=False))
    export = ExportMarketplace(tmp_path / "export")
    events: list[Event] = []
    service = publisher({"good": good, "bad": bad, "export": export}, events)
    orch = make(
        ledger,
        [],
        events=events,
        publishers={"good": service, "bad": service, "export": service},
    )
    designs = [_design(tmp_path, 1), _design(tmp_path, 2)]
    ids = await orch.enqueue_publish(designs, ["Classic T-shirt"], ["good", "bad", "export"])
    assert len(ids) == 6
    assert await orch.enqueue_publish(designs, ["Classic T-shirt"], ["good"]) == ids[0::3]
    summary = await orch.run_until_idle()
    assert summary.counts["succeeded"] == 4 and summary.counts["dead"] == 2
    assert set(good.creates.values()) == {1} and len(good.creates) == 2
    assert len([p for p in (tmp_path / "export").iterdir() if p.is_dir()]) == 2
    changed = [e for e in events if isinstance(e, DesignPublishChanged)]
    assert {e.state for e in changed} == {"partially published"}
    assert all(list(e.reasons) == ["Classic T-shirt @ bad"] for e in changed)
    states = await orch.design_states()
    assert {s.state for s in states} == {"partially published"}


@pytest.mark.parametrize("reconcile", [True, False])
@pytest.mark.asyncio
async def test_create_in_flight_is_reconciled_before_sending_again(
    ledger: SqliteJobLedger, tmp_path: Path, reconcile: bool
) -> None:
    market = CountingMarket("good")
    executor = publisher({"good": market}, [])
    orch = make(ledger, [], publishers={"good": executor}, reconcile=reconcile)
    (job_id,) = await orch.enqueue_publish([_design(tmp_path, 1)], ["Classic T-shirt"], ["good"])
    job = (await ledger.claim_ready(1e12, 1))[0]
    task = GenerationPayload  # noqa: F841 - keeps the import list honest
    from pod_studio.domain.orchestration import PublishPayload

    t = PublishPayload.model_validate(job.payload).task
    await ledger.record_intent(job_id, "create", f"{t.idem_key}:create")
    market.creates[t.idem_key] = 1  # the create landed; the crash came before its result
    report = await orch.recover()
    assert (await orch.run_until_idle()).ok
    if reconcile:
        assert report["landed"] == 1 and market.creates[t.idem_key] == 1
    else:
        assert market.creates[t.idem_key] == 2  # the control: a blind re-create duplicates


def test_history_parsing() -> None:
    ok = parse_history_entry(
        {
            "outputs": {
                "9": {
                    "images": [
                        {"filename": "a.png", "type": "temp"},
                        {"filename": "b.png", "type": "output"},
                    ]
                }
            }
        }
    )
    assert ok.ok and [r.filename for r in ok.images] == ["b.png"]
    assert not parse_history_entry({"status": {"status_str": "error"}}).ok
    assert not parse_history_entry({"outputs": {}}).ok


@pytest.mark.asyncio
async def test_cancel_running_job_and_move_to_other_server(ledger: SqliteJobLedger) -> None:
    a, b = FakeGen("http://a"), FakeGen("http://b")
    a.gate = asyncio.Event()  # a never finishes on its own
    store = MemoryStore()
    orch = make(ledger, [a, b], store, in_flight_per_server=1)
    first, second = await orch.enqueue_generation([spec(1), spec(2)])
    b.gate = asyncio.Event()
    runner = asyncio.create_task(orch.run_until_idle())
    await a.started.wait()
    await b.started.wait()
    entries = (await orch.snapshot()).entries
    on_a = next(
        e.job_id for e in entries if e.state is JobStatus.RUNNING and e.server == "http://a"
    )
    on_b = first if on_a == second else second
    assert await orch.cancel(on_b)
    b.gate.set()
    assert await orch.move_to_server(on_a, "http://b")
    summary = await asyncio.wait_for(runner, 10)
    assert summary.counts["cancelled"] == 1 and summary.counts["succeeded"] == 1
    assert [i.job_id for i in store.images] == [on_a]
    assert store.images[0].server == "http://b"


@pytest.mark.asyncio
async def test_a_batch_reports_batch_finished_when_its_last_job_ends(
    ledger: SqliteJobLedger,
) -> None:
    from pod_studio.domain.events import BatchFinished

    gen = FakeGen("http://a", fail=[ValidationError("bad graph", service="comfyui")])
    events: list[Event] = []
    orch = make(ledger, [gen], events=events)
    specs = [spec(i).model_copy(update={"batch_id": "b1"}) for i in range(4)]
    await orch.enqueue_generation(specs)
    await orch.run_until_idle()
    finished = [e for e in events if isinstance(e, BatchFinished)]
    assert [(e.batch_id, e.succeeded, e.failed, e.cancelled) for e in finished] == [("b1", 3, 1, 0)]


@pytest.mark.asyncio
async def test_waits_that_are_not_the_jobs_fault_charge_no_attempt(
    ledger: SqliteJobLedger, tmp_path: Path
) -> None:
    """An open breaker (publish) and a server that cannot take work (generation) put the job
    in retry_wait with the reason, without using an attempt: an outage never dead-letters."""
    from pod_studio.domain.errors import CircuitOpenError

    market = CountingMarket("good", fail=CircuitOpenError("printify", 3600.0))
    orch = make(ledger, [], publishers={"good": publisher({"good": market}, [])})
    (job_id,) = await orch.enqueue_publish([_design(tmp_path, 1)], ["Classic T-shirt"], ["good"])
    for _ in range(3):  # each run meets the open breaker again
        await ledger.manual_retry(job_id, now=0.0) if _ else None
        summary = await orch.run_until_idle(horizon=0)
        job = await ledger.get_job(job_id)
        assert job is not None and job.state is JobStatus.RETRY_WAIT, summary
        assert job.attempts == 0 and "printify is failing" in (job.last_error or "")
    assert not summary.dead


@pytest.mark.asyncio
async def test_a_platform_that_is_not_set_up_waits_and_the_run_ends(
    ledger: SqliteJobLedger, tmp_path: Path
) -> None:
    service = publisher({}, [])  # the seller has not set the platform up (no token)
    orch = make(ledger, [], publishers={"printify": service})
    (job_id,) = await orch.enqueue_publish(
        [_design(tmp_path, 1)], ["Classic T-shirt"], ["printify"]
    )
    summary = await asyncio.wait_for(orch.run_until_idle(horizon=600), 10)
    job = await ledger.get_job(job_id)
    assert job is not None and job.state is JobStatus.RETRY_WAIT and job.attempts == 0
    assert "not set up" in (job.last_error or "") and summary.waiting == 1
    market = CountingMarket("printify")
    service.set_platform("printify", BasicPlatform(market, catalog=TemplateCatalog(PRINT_AREA)))
    await orch.retry_now(job_id)
    assert (await orch.run_until_idle()).ok
