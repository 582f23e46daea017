"""Controllers over the real GenerationService with an in-memory ComfyUI and image store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from pod_studio.app import qt_compat
from pod_studio.app.gallery import GalleryController
from pod_studio.app.generation import GenerationController, PromptForm, check_form
from pod_studio.app.settings import SettingsController, WorkflowController
from pod_studio.app.status import ConnectionController, ResilienceController, StatsController
from pod_studio.domain.errors import ServiceError
from pod_studio.domain.events import (
    BreakerChanged,
    ConnectionChanged,
    HealthChecked,
    ImageReady,
    JobStateChanged,
    StatsUpdated,
)
from pod_studio.domain.models import ConnectionState, GenerationRequest, JobState
from tests.app.conftest import Parts


def _states(parts: Parts) -> dict[str, JobState]:
    states: dict[str, JobState] = {}
    parts.bridge.sig_job_state_changed.connect(lambda e: states.__setitem__(e.job_id, e.state))
    return states


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


def test_generation_runs_batch_and_reports(qtbot: Any, parts: Parts) -> None:
    ctl = GenerationController(parts.runner, parts.bridge, parts.service, parts.store)
    states = _states(parts)
    images: list[ImageReady] = []
    parts.bridge.sig_image_ready.connect(images.append)
    busy: list[bool] = []
    ctl.sig_busy_changed.connect(busy.append)
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=5000) as done:
        ids = ctl.start(GenerationRequest(prompts=["a cat", "a dog"], variations=2, seed=5))
    assert len(ids) == 4
    result = done.args[0]
    assert result.ok and len(result.images) == 4
    assert {states[i] for i in ids} == {JobState.DONE}
    assert sorted(img.image.seed for img in images) == [5, 5, 6, 6]
    assert busy == [True, False] and not ctl.is_busy
    assert len(parts.store.images) == 4


def test_generation_rejects_invalid_form(qtbot: Any, parts: Parts) -> None:
    ctl = GenerationController(parts.runner, parts.bridge, parts.service, parts.store)
    with qtbot.waitSignal(ctl.sig_validation_failed, timeout=1000) as blocker:
        assert ctl.start_form(PromptForm(text="  \n ")) == []
    assert "prompt" in blocker.args[0]
    with qtbot.waitSignal(ctl.sig_validation_failed, timeout=1000):
        assert ctl.start_form(PromptForm(text="a", width=100)) == []
    assert parts.generator.runs == 0


def test_cancel_running_job(qtbot: Any, parts: Parts) -> None:
    parts.generator.hold = True
    ctl = GenerationController(parts.runner, parts.bridge, parts.service, parts.store)
    states = _states(parts)
    ids = ctl.start_form(PromptForm(text="one\ntwo\nthree"))
    qtbot.waitUntil(lambda: list(states.values()).count(JobState.RUNNING) == 2, timeout=3000)
    running = [i for i, s in states.items() if s is JobState.RUNNING]
    assert ctl.cancel(running[0])
    qtbot.waitUntil(lambda: states.get(running[0]) is JobState.CANCELLED, timeout=3000)
    assert parts.generator.cancelled
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=5000) as done:
        parts.generator.release.set()
    assert done.args[0].cancelled == [running[0]]
    assert sorted(s.value for s in states.values()) == ["cancelled", "done", "done"]
    assert set(states) == set(ids)


def test_failed_job_reports_reason(qtbot: Any, parts: Parts) -> None:
    parts.generator.fail_prompts = ("bad",)
    ctl = GenerationController(parts.runner, parts.bridge, parts.service, parts.store)
    failures: list[Any] = []
    parts.bridge.sig_job_failed.connect(failures.append)
    with qtbot.waitSignal(ctl.sig_batch_completed, timeout=5000) as done:
        ctl.start_form(PromptForm(text="good\nbad"))
    assert len(done.args[0].failures) == 1
    assert failures[0].reason == "the GPU fell over"


def test_checkpoints_are_listed_sorted(qtbot: Any, parts: Parts) -> None:
    ctl = GenerationController(
        parts.runner,
        parts.bridge,
        parts.service,
        parts.store,
        list_checkpoints=parts.generator.checkpoints,
    )
    with qtbot.waitSignal(ctl.sig_checkpoints_loaded, timeout=2000) as blocker:
        assert ctl.load_checkpoints()
    assert blocker.args[0] == ["a.safetensors", "b.safetensors"]


def test_gallery_loads_adds_thumbnails_and_approves(qtbot: Any, parts: Parts) -> None:
    gallery = GalleryController(parts.runner, parts.store, None, bridge=parts.bridge)
    gen = GenerationController(parts.runner, parts.bridge, parts.service, parts.store)
    added: list[Any] = []
    gallery.sig_image_added.connect(added.append)
    with qtbot.waitSignal(gen.sig_batch_completed, timeout=5000):
        gen.start_form(PromptForm(text="a\nb"))
    assert len(added) == 2
    with qtbot.waitSignal(gallery.sig_images_loaded, timeout=2000) as loaded:
        gallery.refresh()
    assert {i.image_id for i in loaded.args[0]} == {i.image_id for i in added}
    with qtbot.waitSignal(gallery.sig_thumbnail_ready, timeout=3000) as thumb:
        gallery.load_thumbnail(added[0])
    assert thumb.args[0] == added[0].image_id and thumb.args[1].startswith(b"\x89PNG")
    with qtbot.waitSignal(gallery.sig_full_image_loaded, timeout=3000) as full:
        gallery.load_full(added[0])
    assert full.args[1] == Path(added[0].file).read_bytes()
    with qtbot.waitSignal(gallery.sig_image_updated, timeout=2000) as upd:
        gallery.set_approved(added[0].image_id, True)
    assert upd.args[0].approved is True


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


def test_resilience_reset_and_health(qtbot: Any, parts: Parts) -> None:
    resets: list[str | None] = []

    async def check() -> None:
        parts.bridge(HealthChecked(service="comfyui", reachable=True, latency_ms=12))

    ctl = ResilienceController(parts.bridge, resets.append, check, runner=parts.runner)
    parts.bridge(BreakerChanged(name="printify", old_state="closed", new_state="open"))
    assert [b.name for b in ctl.breakers()] == ["printify"]
    ctl.reset("printify")
    ctl.reset(None)
    assert resets == ["printify", None]
    with qtbot.waitSignal(ctl.sig_health_updated, timeout=2000):
        assert ctl.check_now()
    qtbot.waitUntil(lambda: ctl.check_now() or True, timeout=1000)

    def broken(_name: str | None) -> None:
        raise ServiceError("x", user_message="cannot reset now")

    bad = ResilienceController(parts.bridge, broken, None)
    with qtbot.waitSignal(bad.sig_action_failed, timeout=1000) as blocker:
        bad.reset("x")
    assert blocker.args == ["cannot reset now"]
    assert not bad.check_now()


def test_stats_history(qtbot: Any, parts: Parts) -> None:
    ctl = StatsController(parts.bridge)
    parts.bridge(StatsUpdated(snapshot={"runs": 3}))
    assert ctl.snapshot() == {"runs": 3}
    parts.bridge(JobStateChanged(job_id="a", state=JobState.DONE))
    parts.bridge(JobStateChanged(job_id="b", state=JobState.FAILED))
    assert ctl.success_rates() == [1.0, 0.5]


def test_settings_update_window_state_and_flush(qtbot: Any, parts: Parts) -> None:
    box = parts.settings
    ctl = SettingsController(box.get, box.save, runner=parts.runner)
    with qtbot.waitSignal(ctl.sig_settings_failed, timeout=1000):
        assert ctl.update(comfyui_servers=["ftp://nope"])
    with qtbot.waitSignal(ctl.sig_settings_saved, timeout=2000):
        assert ctl.update(comfyui_servers=["http://10.0.0.5:8188/"]) == []
    assert box.value.comfyui_servers == ["http://10.0.0.5:8188"]
    ctl.save_window_state(b"geo", b"\x00state")
    qtbot.waitUntil(lambda: ctl.window_state() == (b"geo", b"\x00state"), timeout=2000)


def test_test_connection_and_workflow(qtbot: Any, parts: Parts) -> None:
    async def probe(url: str) -> str:
        if "bad" in url:
            raise ServiceError("refused", user_message="nobody answers")
        return "RTX · 8 GB free"

    ctl = SettingsController(
        parts.settings.get, parts.settings.save, runner=parts.runner, test_connection=probe
    )
    with qtbot.waitSignal(ctl.sig_connection_tested, timeout=2000) as ok:
        ctl.test_connection("http://good:8188")
    assert ok.args == ["http://good:8188", True, "RTX · 8 GB free"]
    with qtbot.waitSignal(ctl.sig_connection_tested, timeout=2000) as bad:
        ctl.test_connection("http://bad:8188")
    assert bad.args[1:] == [False, "nobody answers"]

    async def load(path: str) -> tuple[str, str, list[str]]:
        if path.endswith("broken.json"):
            raise ValueError("not JSON")
        return "txt2img", "prompt → 6.text", ["missing model x"]

    wf = WorkflowController(parts.runner, load)
    with qtbot.waitSignal(wf.sig_workflow_loaded, timeout=2000) as loaded:
        wf.load("/x/good.json")
    assert loaded.args == ["txt2img", "prompt → 6.text", ["missing model x"]]
    with qtbot.waitSignal(wf.sig_workflow_failed, timeout=2000):
        wf.load("/x/broken.json")
