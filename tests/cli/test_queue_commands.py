"""The queue commands: queue, retry, discard, resume (headless, against a sandbox server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.adapters.storage.ledger import SqliteJobLedger
from pod_studio.adapters.storage.paths import app_paths
from pod_studio.cli.main import parse_args
from pod_studio.cli.main import run as run_command
from pod_studio.domain.jobs import ErrorKind, JobKind
from pod_studio.domain.models import JobSpec
from pod_studio.domain.orchestration import GenerationPayload
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread

pytestmark = pytest.mark.timeout(60)


def run(argv: list[str]) -> int:
    return run_command(parse_args(argv))


def seed_jobs(n: int, *, dead: int = 0) -> list[str]:
    async def go() -> list[str]:
        ledger = SqliteJobLedger(app_paths().ensure().ledger_file)
        ids = []
        for i in range(n):
            spec = JobSpec(
                job_id=f"job-{i}", prompt=f"a lighthouse {i}", seed=i, width=256, height=256
            )
            rec = await ledger.add_job(
                JobKind.GENERATE,
                GenerationPayload(spec=spec).model_dump(mode="json"),
                job_id=spec.job_id,
            )
            ids.append(rec.id)
        for job_id in ids[:dead]:
            await ledger.claim_ready(1e12, 1)
            await ledger.mark_dead(job_id, "ComfyUI rejected the workflow", ErrorKind.PERMANENT)
        await ledger.aclose()
        return ids

    return asyncio.run(go())


@pytest.fixture
def comfy() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05)) as server:
        yield server


def test_queue_retry_discard(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["queue"]) == 0
    assert "no jobs" in capsys.readouterr().out
    ids = seed_jobs(3, dead=1)
    assert run(["queue", "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["counts"]["dead"] == 1 and snap["counts"]["queued"] == 2
    assert run(["queue"]) == 0
    text = capsys.readouterr().out
    assert "dead-letter queue: 1" in text and "rejected the workflow" in text
    assert run(["retry", "--all-dead"]) == 0
    assert f"requeued {ids[0]}" in capsys.readouterr().out
    assert run(["retry", "nope"]) == 2  # an unknown id is bad input
    assert run(["discard", ids[2]]) == 0
    assert f"removed {ids[2]}" in capsys.readouterr().out
    assert run(["queue", "--pause", "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert snap["paused"] and snap["counts"]["queued"] == 2


def test_resume_finishes_the_ledger_and_exits_0(
    comfy: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = seed_jobs(3)
    code = run(["resume", "--server", comfy.url, "--json", "--quiet", "--horizon", "5"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0, body
    assert body["ok"] and body["counts"]["succeeded"] == 3
    images = asyncio.run(GalleryImageStore(app_paths().images_dir).list_images())
    assert sorted(i.job_id for i in images) == sorted(ids)
    assert run(["resume", "--server", comfy.url, "--quiet"]) == 0  # nothing left: still 0


def test_resume_exits_1_when_something_is_left_failed(
    comfy: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_jobs(2, dead=1)
    assert run(["resume", "--server", comfy.url, "--quiet"]) == 1
    assert "dead job-0" in capsys.readouterr().out
