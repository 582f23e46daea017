"""Controllers over the shipping engine (``build_core`` on a sandbox ComfyUI): the durable
queue, the gallery store, the resilience hub and the settings store are all real."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from pod_studio.app import qt_compat
from pod_studio.app.gallery import GalleryController
from pod_studio.app.generation import GenerationController, PromptForm, check_form
from pod_studio.app.settings import SettingsController, WorkflowController
from pod_studio.app.status import ConnectionController, ResilienceController, StatsController
from pod_studio.composition.core import comfyui_breaker_name, load_settings
from pod_studio.domain.errors import ServiceError
from pod_studio.domain.events import (
    ConnectionChanged,
    ImageReady,
    JobStateChanged,
    StatsUpdated,
)
from pod_studio.domain.models import ConnectionState, GenerationRequest, JobState
from pod_studio.sandbox.comfyui import DEFAULT_CHECKPOINTS
from tests.app.conftest import Studio, run


def _states(studio: Studio) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    studio.bridge.sig_job_state_changed.connect(lambda e: states.__setitem__(e.job_id, e.state))
    return states


def _generation(studio: Studio) -> GenerationController:
    return GenerationController(
        studio.runner,
        studio.bridge,
        studio.core.orchestrator,
        list_checkpoints=studio.core.comfyui.checkpoints,
    )


def test_emit_keeps_bool_refcounts_stable() -> None:
    class P(QObject):
        sig_x_emitted = Signal(object)

    qt_compat.install()
    p = P()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(5000):
        p.sig_x_emitted.emit(i)
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before


def test_check_form_counts_and_limits() -> None:
    ok = check_form(PromptForm(text="a\n\n b \nc", variations=2, width=512, height=768))
    assert (ok.prompts, ok.jobs, ok.ok) == (3, 6, True)
    too_many = check_form(PromptForm(text="\n".join(f"p{i}" for i in range(1001))))
    assert not too_many.ok and "1,000" in too_many.errors[0]
    odd = check_form(PromptForm(text="a", width=513))
    assert not odd.ok and "multiple of 8" in odd.errors[0]
    long_line = check_form(PromptForm(text="x" * 1500))
    assert long_line.ok and long_line.warnings


def test_generation_runs_batch_and_reports(qtbot: Any, studio: Studio) -> None:
    ctl = _generation(studio)
    states = _states(studio)
    images: list[ImageReady] = []
    studio.bridge.sig_image_ready.connect(images.append)
    busy: list[bool] = []
    ctl.sig_busy_changed.connect(busy.append)
    request = GenerationRequest(
        prompts=["a cat", "a dog"], variations=2, seed=5, width=128, height=128
    )
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=15000) as done:
        ids = ctl.start(request)
    assert len(ids) == 4
    result = done.args[0]
    assert (result.succeeded, result.failed, result.cancelled) == (4, 0, 0)
    assert {states[i] for i in ids} == {JobState.DONE}
    assert sorted(img.image.seed for img in images) == [5, 5, 6, 6]
    assert busy == [True, False] and not ctl.is_busy
    stored = run(studio.core.store.list_images())
    assert sorted(i.job_id for i in stored) == sorted(ids)
    assert all(Path(i.file).is_file() for i in stored)
    assert len(studio.sandbox().executed_prompt_ids) == 4


def test_generation_rejects_invalid_form(qtbot: Any, studio: Studio) -> None:
    ctl = _generation(studio)
    with qtbot.waitSignal(ctl.sig_validation_failed, timeout=1000) as blocker:
        assert ctl.start_form(PromptForm(text="  \n ")) == []
    assert "prompt" in blocker.args[0]
    with qtbot.waitSignal(ctl.sig_validation_failed, timeout=1000):
        assert ctl.start_form(PromptForm(text="a", width=100)) == []
    assert run(studio.core.orchestrator.summary()).counts.get("queued", 0) == 0
    assert studio.sandbox().request_counts["POST /prompt"] == 0


def test_cancel_running_job(qtbot: Any, studio: Studio) -> None:
    studio.on_sandbox(lambda box: box.pause())  # the first prompt is held on the server
    ctl = _generation(studio)
    states = _states(studio)
    ids = ctl.start_form(PromptForm(text="one\ntwo\nthree", width=128, height=128))
    qtbot.waitUntil(lambda: JobState.RUNNING in states.values(), timeout=10000)
    running = [i for i, s in states.items() if s is JobState.RUNNING]
    assert len(running) == 1  # one prompt in flight per server
    assert ctl.cancel(running[0])
    qtbot.waitUntil(lambda: states.get(running[0]) is JobState.CANCELLED, timeout=10000)
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=15000) as done:
        studio.on_sandbox(lambda box: box.resume())
    assert (done.args[0].succeeded, done.args[0].cancelled) == (2, 1)
    assert sorted(s.value for s in states.values()) == ["cancelled", "done", "done"]
    assert set(states) == set(ids)
    images = run(studio.core.store.list_images())
    assert sorted(i.job_id for i in images) == sorted(set(ids) - {running[0]})


def test_failed_job_reports_reason(qtbot: Any, studio: Studio) -> None:
    studio.on_sandbox(lambda box: box.error_next_prompt("KSampler", "CUDA out of memory"))
    ctl = _generation(studio)
    failures: list[Any] = []
    studio.bridge.sig_job_failed.connect(failures.append)
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=15000) as done:
        ctl.start_form(PromptForm(text="bad design", width=128, height=128))
    assert (done.args[0].succeeded, done.args[0].failed) == (0, 1)
    assert len(failures) == 1
    assert "CUDA out of memory" in failures[0].reason


def test_checkpoints_are_listed_sorted(qtbot: Any, studio: Studio) -> None:
    ctl = _generation(studio)
    with qtbot.waitSignal(ctl.sig_checkpoints_loaded, timeout=5000) as blocker:
        assert ctl.load_checkpoints()
    assert blocker.args[0] == sorted(DEFAULT_CHECKPOINTS, key=str.lower)


def test_gallery_loads_adds_thumbnails_and_approves(qtbot: Any, studio: Studio) -> None:
    core = studio.core
    gallery = GalleryController(
        studio.runner, core.store, core.designs.thumbnail, bridge=studio.bridge
    )
    gen = _generation(studio)
    added: list[Any] = []
    gallery.sig_image_added.connect(added.append)
    with qtbot.waitSignal(gen.sig_batch_completed, timeout=15000):
        gen.start_form(PromptForm(text="a\nb", width=128, height=128))
    assert len(added) == 2
    with qtbot.waitSignal(gallery.sig_images_loaded, timeout=5000) as loaded:
        gallery.refresh()
    assert {i.image_id for i in loaded.args[0]} == {i.image_id for i in added}
    with qtbot.waitSignal(gallery.sig_thumbnail_ready, timeout=5000) as thumb:
        gallery.load_thumbnail(added[0])
    assert thumb.args[0] == added[0].image_id and thumb.args[1].startswith(b"\x89PNG")
    with qtbot.waitSignal(gallery.sig_full_image_loaded, timeout=5000) as full:
        gallery.load_full(added[0])
    assert full.args[1] == Path(added[0].file).read_bytes()
    with qtbot.waitSignal(gallery.sig_image_updated, timeout=5000) as upd:
        gallery.set_approved(added[0].image_id, True)
    assert upd.args[0].approved is True
    stored = {i.image_id: i for i in run(core.store.list_images())}
    assert stored[added[0].image_id].approved is True  # kept by the gallery store


def test_connection_status_texts_and_demo_offer(qtbot: Any) -> None:
    from pod_studio.app.bridge import QtEventBridge

    bridge = QtEventBridge()
    ctl = ConnectionController(bridge)
    offered: list[bool] = []
    ctl.sig_demo_offered.connect(lambda: offered.append(True))
    with qtbot.waitSignal(ctl.sig_status_changed, timeout=1000) as blocker:
        bridge(
            ConnectionChanged(
                server="http://h:8188", state=ConnectionState.OFFLINE, detail="connection refused"
            )
        )
    text, state = blocker.args
    assert state == "offline" and "Settings" in text and "demo" in text
    assert offered == [True]
    bridge(
        ConnectionChanged(
            server="http://h:8188",
            state=ConnectionState.CONNECTED,
            device="RTX 4090",
            vram_free=20 * 1024**3,
        )
    )
    assert ctl.state() == "connected"
    assert ctl.status_text() == "Connected to http://h:8188 · RTX 4090 · 20.0 GB VRAM free"
    bridge(ConnectionChanged(server="http://h:8188", state=ConnectionState.OFFLINE))
    assert offered == [True]


def test_resilience_reset_and_health(qtbot: Any, studio: Studio) -> None:
    core = studio.core
    ctl = ResilienceController(
        studio.bridge, core.reset_breaker, core.check_health, runner=studio.runner
    )
    breaker = core.hub.breakers.get("printify")
    for _ in range(5):  # the hub's printify threshold
        breaker.record_failure(breaker.admit(), ServiceError("503", service="printify"))
    qtbot.waitUntil(lambda: any(b.name == "printify" for b in ctl.breakers()), timeout=3000)
    assert next(b for b in ctl.breakers() if b.name == "printify").new_state == "open"
    ctl.reset("printify")
    qtbot.waitUntil(
        lambda: next(b for b in ctl.breakers() if b.name == "printify").new_state == "closed",
        timeout=3000,
    )
    assert breaker.state.value == "closed"
    ctl.reset(None)
    name = comfyui_breaker_name(studio.comfy.url)
    with qtbot.waitSignal(
        ctl.sig_health_updated,
        timeout=5000,
        check_params_cb=lambda row: getattr(row, "service", "") == name,
    ):
        assert ctl.check_now()

    def broken(_name: str | None) -> None:
        raise ServiceError("x", user_message="cannot reset now")

    bad = ResilienceController(studio.bridge, broken, None)
    with qtbot.waitSignal(bad.sig_action_failed, timeout=1000) as blocker:
        bad.reset("x")
    assert blocker.args == ["cannot reset now"]
    assert not bad.check_now()


def test_stats_history(qtbot: Any, studio: Studio) -> None:
    ctl = StatsController(studio.bridge)
    studio.bridge(StatsUpdated(snapshot={"runs": 3}))
    assert ctl.snapshot() == {"runs": 3}
    studio.bridge(JobStateChanged(job_id="a", state=JobState.DONE))
    studio.bridge(JobStateChanged(job_id="b", state=JobState.FAILED))
    assert ctl.success_rates() == [1.0, 0.5]


def test_settings_update_window_state_and_flush(qtbot: Any, studio: Studio) -> None:
    core = studio.core
    ctl = SettingsController(lambda: core.settings, core.config.save, runner=studio.runner)
    with qtbot.waitSignal(ctl.sig_settings_failed, timeout=1000):
        assert ctl.update(comfyui_servers=["ftp://nope"])
    with qtbot.waitSignal(ctl.sig_settings_saved, timeout=5000):
        assert ctl.update(comfyui_servers=["http://10.0.0.5:8188/"]) == []
    assert core.settings.comfyui_servers == ["http://10.0.0.5:8188"]
    assert load_settings(core.paths)[0].comfyui_servers == ["http://10.0.0.5:8188"]  # on disk
    ctl.save_window_state(b"geo", b"\x00state")
    qtbot.waitUntil(lambda: ctl.window_state() == (b"geo", b"\x00state"), timeout=5000)
    run(ctl.flush())
    assert load_settings(core.paths)[0].window.state_b64


def test_test_connection_and_workflow(qtbot: Any, studio: Studio, tmp_path: Path) -> None:
    core = studio.core
    ctl = SettingsController(
        lambda: core.settings,
        core.config.save,
        runner=studio.runner,
        test_connection=core.comfyui.test,
    )
    good = studio.comfy.url
    with qtbot.waitSignal(ctl.sig_connection_tested, timeout=10000) as ok:
        ctl.test_connection(good)
    assert ok.args[:2] == [good, True]
    assert "ComfyUI" in ok.args[2]
    dead = "http://127.0.0.1:9"
    with qtbot.waitSignal(ctl.sig_connection_tested, timeout=15000) as bad:
        ctl.test_connection(dead)
    assert bad.args[:2] == [dead, False] and bad.args[2]

    workflow = tmp_path / "txt2img.json"
    workflow.write_text(json.dumps(GRAPH), encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    wf = WorkflowController(studio.runner, core.config.open_workflow)
    with qtbot.waitSignal(wf.sig_workflow_loaded, timeout=10000) as loaded:
        wf.load(str(workflow))
    name, summary, problems = loaded.args
    assert name == "txt2img.json"
    assert "prompt → 6" in summary and "seed → 3" in summary
    assert problems == []  # every node class is known to the sandbox
    assert core.settings.workflow_path == str(workflow)
    with qtbot.waitSignal(wf.sig_workflow_failed, timeout=10000):
        wf.load(str(broken))
    assert core.settings.workflow_path == str(workflow)  # a broken file changes nothing


GRAPH: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 1,
            "steps": 2,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "pod-demo-xl.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 512, "batch_size": 1},
    },
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
}
