"""End to end: the app as it ships (``build_core`` and ``bootstrap.compose_window``: the
window, its controllers, breaker announcements, health checks and demo switch, the job queue
started by ``bootstrap.run_core``) on the sandbox, with every job going through the durable
queue (orchestrator + SQLite ledger).

Set ``PODSTUDIO_SCREENSHOTS=DIR`` to also save PNGs of the window at the interesting moments
(and of the queue dock, the publish panel and the settings' Printify tab).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from pod_studio import bootstrap
from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.bootstrap import ComposedWindow
from pod_studio.composition.core import build_core, comfyui_breaker_name
from pod_studio.domain.models import JobState
from pod_studio.domain.settings import AppSettings, BreakerSettings, RetryPolicySettings
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread


def _shot(widget: QWidget, name: str) -> None:
    target = os.environ.get("PODSTUDIO_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(target) / f"{name}.png"))


@pytest.fixture
def sandbox() -> Iterator[ServerThread]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05, steps=4, preview_every=1)) as t:
        yield t


def _open(qtbot: Any, servers: list[str], settings: AppSettings | None = None) -> ComposedWindow:
    """The app as ``bootstrap`` starts it: ``build_core``, then ``compose_window`` (bridge,
    runner, controllers, breaker announcements, health checks, demo switch, the window,
    shown, and the job queue started in the runner)."""
    core = build_core(servers=servers, settings=settings, secrets=MemorySecretStore())
    app = bootstrap.compose_window(core)
    qtbot.addWidget(app.window)
    app.window.resize(1400, 860)
    return app


def _make_app(
    qtbot: Any, sandbox: ServerThread, settings: AppSettings | None = None
) -> ComposedWindow:
    return _open(qtbot, [sandbox.url], settings)


def _close(qtbot: Any, app: ComposedWindow) -> None:
    """Close like the seller does: the window's close, then the composition root's shutdown."""
    app.window.close()
    assert app.controller.close_requested
    closing = asyncio.ensure_future(app.aclose())
    qtbot.waitUntil(closing.done, timeout=15000)
    closing.result()


def test_generate_in_the_window_lands_in_gallery_and_survives_restart(
    qtbot: Any, qloop: asyncio.AbstractEventLoop, sandbox: ServerThread
) -> None:
    app = _make_app(qtbot, sandbox)
    window = app.window
    qtbot.waitUntil(lambda: window.app.connection.state() == "connected", timeout=10000)
    assert "Sandbox GPU" in window.connection_label.text()
    _shot(window, "01_connected_empty")
    editor = window.prompt_editor
    editor.width_spin.setValue(256)
    editor.height_spin.setValue(256)
    qtbot.keyClicks(editor.prompts_edit, "retro sunset over mountains")
    qtbot.keyClick(editor.prompts_edit, Qt.Key.Key_Return)
    qtbot.keyClicks(editor.prompts_edit, "a cat in a spacesuit, vector art")
    editor.variations_spin.setValue(2)
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)
    model = window.job_list.model
    qtbot.waitUntil(lambda: any(j.state is JobState.RUNNING for j in model.jobs()), timeout=10000)
    _shot(window, "02_running")
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 4, timeout=20000)
    qtbot.waitUntil(lambda: all(j.state is JobState.DONE for j in model.jobs()), timeout=5000)
    qtbot.waitUntil(
        lambda: all(
            window.gallery.model.has_thumbnail(i.image_id) for i in window.gallery.model.images()
        ),
        timeout=10000,
    )
    _shot(window, "03_gallery")
    files = sorted(Path(i.file).name for i in window.gallery.model.images())
    dock = window.queue_dock
    qtbot.waitUntil(lambda: [r.state for r in dock.model.rows()] == ["succeeded"] * 4, timeout=5000)
    assert all(r.server == sandbox.url for r in dock.model.rows())

    # approve two designs and publish them as tee + hoodie to the export folder: 256 px
    # designs are far too small to print, so the publish jobs go to the dead letters with
    # the reason, and the cards say so
    gallery = window.gallery
    gallery.select_images([i.image_id for i in gallery.model.images()[:2]])
    qtbot.mouseClick(gallery.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gallery.publish_button.isEnabled(), timeout=5000)
    published = [i.image_id for i in gallery.selected_images()]
    qtbot.waitUntil(
        lambda: all(gallery.model.badge(i) is not None for i in published), timeout=10000
    )
    assert {gallery.model.badge(i)[0] for i in published} == {"fail"}  # type: ignore[index]
    qtbot.mouseClick(gallery.publish_button, Qt.MouseButton.LeftButton)
    panel = window.publish_panel
    assert panel is not None and len(panel.designs) == 2
    qtbot.waitUntil(lambda: "export" in panel.platform_checks, timeout=5000)
    assert not panel.platform_checks["printify"].isEnabled()  # no token in the test keyring
    for check in panel.template_checks.values():
        check.setChecked(True)
    panel.platform_checks["export"].setChecked(True)
    assert panel.publish_button.text() == "Create 4 draft(s)"
    panel.resize(760, 640)
    _shot(panel, "07_publish_panel")
    qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    # far too small to print: the panel asks first (Preview shows why), the second click goes
    assert panel.publish_button.text() == "Publish anyway (low DPI)"
    _shot(panel, "07b_publish_preview_low_dpi")
    qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: all(
            gallery.model.publish_lines(i).get("export", "").startswith("failed — ")
            for i in published
        ),
        timeout=15000,
    )
    panel.close()
    assert "Resolution too low" in gallery.model.publish_lines(published[0])["export"]
    qtbot.waitUntil(lambda: dock.tabs.tabText(2) == "Failed (4)", timeout=5000)
    dock.tabs.setCurrentIndex(2)
    dead = dock.visible_job_ids()
    assert len(dead) == 4
    dock.select_jobs(dead[:1])
    assert "Resolution too low" in dock.details.toPlainText()
    _shot(window, "08_gallery_published")
    dock.raise_()
    dock.setFloating(True)
    dock.resize(1200, 360)
    _shot(dock, "09_queue_dock")
    dock.setFloating(False)
    settings = window.open_settings()
    settings.tabs.setCurrentWidget(settings.printify_tab)
    _shot(settings, "10_settings_printify")
    settings.tabs.setCurrentWidget(settings.products_tab)
    _shot(settings, "11_settings_products")
    settings.close()
    _close(qtbot, app)

    # A new window on the same data folder (not connected to any server) shows the images.
    restarted = _open(qtbot, ["http://127.0.0.1:9"])
    again = restarted.window
    qtbot.waitUntil(lambda: len(again.gallery.model.images()) == 4, timeout=10000)
    assert sorted(Path(i.file).name for i in again.gallery.model.images()) == files
    # the queue (4 generations, 4 failed publish jobs with their history) and the cards'
    # publish state survive too
    qtbot.waitUntil(lambda: again.queue_dock.model.rowCount() == 8, timeout=10000)
    states = sorted(r.state for r in again.queue_dock.model.rows())
    assert states == ["dead"] * 4 + ["succeeded"] * 4
    assert all(r.history for r in again.queue_dock.model.rows() if r.state == "dead")
    qtbot.waitUntil(
        lambda: all(
            again.gallery.model.publish_lines(i).get("export", "").startswith("failed")
            for i in published
        ),
        timeout=10000,
    )
    _shot(again, "12_after_restart")
    _close(qtbot, restarted)


def test_a_1024_px_design_is_published_to_the_export_folder(
    qtbot: Any, qloop: asyncio.AbstractEventLoop, sandbox: ServerThread, _isolated_home: Path
) -> None:
    """The happy path a demo seller takes: generate at the default size, approve, publish."""
    app = _make_app(qtbot, sandbox)
    window = app.window
    qtbot.waitUntil(lambda: window.app.connection.state() == "connected", timeout=10000)
    window.prompt_editor.prompts_edit.setPlainText("retro sunset over mountains")
    qtbot.mouseClick(window.prompt_editor.generate_button, Qt.MouseButton.LeftButton)
    gallery = window.gallery
    qtbot.waitUntil(lambda: len(gallery.model.images()) == 1, timeout=20000)
    gallery.select_images([gallery.model.images()[0].image_id])
    qtbot.mouseClick(gallery.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gallery.publish_button.isEnabled(), timeout=5000)
    (image,) = gallery.selected_images()
    qtbot.waitUntil(lambda: gallery.model.badge(image.image_id) is not None, timeout=10000)
    assert gallery.model.badge(image.image_id)[0] == "warn"  # type: ignore[index]
    qtbot.mouseClick(gallery.publish_button, Qt.MouseButton.LeftButton)
    panel = window.publish_panel
    assert panel is not None
    qtbot.waitUntil(lambda: "export" in panel.platform_checks, timeout=5000)
    for name, check in panel.template_checks.items():
        check.setChecked(name == "Classic T-shirt")
    panel.platform_checks["export"].setChecked(True)
    panel.live_radio.setChecked(True)
    qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert panel.publish_button.text() == "Publish anyway (low DPI)"  # 68 DPI on a tee
    qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: gallery.model.publish_lines(image.image_id).get("export") == "published",
        timeout=60000,
    )
    panel.close()
    listings = list((_isolated_home / "data" / "export").glob("*/listing.json"))
    assert len(listings) == 1
    listing = json.loads(listings[0].read_text(encoding="utf-8"))
    assert listing["status"] == "published"
    assert "sunset" in listing["title"].lower()
    _close(qtbot, app)


def test_faults_open_the_breaker_the_dock_counts_down_and_the_probe_closes_it(
    qtbot: Any, qloop: asyncio.AbstractEventLoop, sandbox: ServerThread
) -> None:
    settings = AppSettings().with_changes(
        retry={"comfyui": RetryPolicySettings(max_retries=3, initial_delay=0.05, max_delay=0.1)},
        breakers={
            "comfyui": BreakerSettings(
                failure_threshold=2, window_seconds=30, reset_timeout=1.5, failure_rate=0.25
            )
        },
    )
    app = _make_app(qtbot, sandbox, settings)
    window = app.window
    qtbot.waitUntil(lambda: window.app.connection.state() == "connected", timeout=10000)
    comfy: ComfyUISandbox = sandbox.server
    # Downloading the image (an idempotent GET) fails on every attempt: retried, then the
    # breaker opens (a quarter of its window's calls failed) and the queue waits for a probe
    # to close it again. (A failed POST /prompt is not retried blindly: the queue schedules
    # the job for later instead.)
    sandbox.call(lambda: comfy.fail_next(4, 503, match="/view"))
    window.prompt_editor.width_spin.setValue(128)
    window.prompt_editor.height_spin.setValue(128)
    window.prompt_editor.prompts_edit.setPlainText("a lighthouse at dusk")
    qtbot.mouseClick(window.prompt_editor.generate_button, Qt.MouseButton.LeftButton)

    name = comfyui_breaker_name(sandbox.url)
    dock = window.breakers_dock
    qtbot.waitUntil(
        lambda: dock.table.rowCount() == 1 and dock.row_texts(name)[1] == "OPEN", timeout=10000
    )
    assert dock.row_texts(name)[5].startswith("probe in")
    window.breakers_dock.raise_()
    _shot(window, "04_breaker_open")
    # The half-open probe succeeds once the sandbox stops failing: the breaker closes and
    # the job finishes.
    qtbot.waitUntil(lambda: dock.row_texts(name)[1] == "CLOSED", timeout=15000)
    qtbot.waitUntil(lambda: len(window.gallery.model.images()) == 1, timeout=15000)
    rows = window.retry_dock.visible_rows()
    # the log says what happened in words (the technical cause is in the tooltip and the CSV)
    assert any("problem on its side" in " ".join(r) for r in rows), rows
    assert len(rows) >= 2
    window.retry_dock.raise_()
    _shot(window, "05_retry_log")
    _close(qtbot, app)


def test_offline_server_offers_demo_mode_and_switches_to_it(
    qtbot: Any, qloop: asyncio.AbstractEventLoop
) -> None:
    app = _open(qtbot, ["http://127.0.0.1:9"])
    window, controller, core = app.window, app.controller, app.core
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=15000)
    assert window.app.connection.state() == "offline"
    assert "127.0.0.1:9" in window.connection_label.text()
    _shot(window, "06_offline")
    with qtbot.waitSignal(controller.sig_demo_requested, timeout=2000):
        qtbot.mouseClick(window.banner.demo_button, Qt.MouseButton.LeftButton)
    # the window runs on the demo sandbox from now on: connected, titled, servers pinned
    qtbot.waitUntil(lambda: window.windowTitle() == "POD Studio — Demo", timeout=15000)
    assert core.comfyui.urls != ["http://127.0.0.1:9"] and core.comfyui.pinned
    qtbot.waitUntil(lambda: window.app.connection.state() == "connected", timeout=15000)
    assert not window.banner.isVisible()
    _close(qtbot, app)
