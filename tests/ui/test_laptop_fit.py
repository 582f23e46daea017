"""The main window on a laptop: 1280×800 fits, the grid keeps 3 columns at 1366 px, the dock
layout comes back at start, the style sheet follows the OS palette and leaves the native spin
and combo arrows alone. Screenshots (real style sheet) land in /tmp/shots-uigrid/."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QSpinBox

from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.bootstrap import ComposedWindow, compose_window
from pod_studio.composition.core import build_core
from pod_studio.domain.events import JobProgress, RetryScheduled
from pod_studio.domain.models import ImageRef, JobSpec
from pod_studio.domain.orchestration import QueueChanged
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread

STYLE = Path(__file__).resolve().parents[2] / "resources" / "style.qss"
SHOTS = Path("/tmp/shots-uigrid")
COLOURS = [(230, 90, 60), (60, 140, 220), (250, 200, 60), (90, 180, 120), (150, 90, 200)]


def _run(qtbot: Any, coro: Coroutine[Any, Any, Any]) -> Any:
    task = asyncio.get_event_loop().create_task(coro)
    qtbot.waitUntil(task.done, timeout=10_000)
    return task.result()


def _design(n: int) -> bytes:
    image = Image.new("RGB", (512, 512), COLOURS[n % len(COLOURS)])
    draw = ImageDraw.Draw(image)
    draw.ellipse((96, 96, 416, 416), fill=(255, 255, 255))
    draw.text((200, 245), f"design {n}", fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def styled(qapp: QApplication) -> Iterator[QApplication]:
    qapp.setStyleSheet(STYLE.read_text(encoding="utf-8"))
    yield qapp
    qapp.setStyleSheet("")


OpenApp = Callable[..., ComposedWindow]


@pytest.fixture
def open_app(qtbot: Any, qloop: Any) -> Iterator[OpenApp]:
    """``open_app(demo=False)``: the app as it starts (``build_core`` on the sandbox, started,
    and the window ``compose_window`` builds over it, not shown yet); each call is a new
    start on the same data folder (the one before must be closed: ``_close``)."""
    opened: list[ComposedWindow] = []
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05)) as server:

        def open_(*, demo: bool = False) -> ComposedWindow:
            core = build_core(servers=[server.url], secrets=MemorySecretStore())
            _run(qtbot, core.start())
            parts = compose_window(core, demo=demo, show=False)
            opened.append(parts)
            return parts

        yield open_
        for parts in opened:
            _run(qtbot, parts.aclose())


def _close(qtbot: Any, parts: ComposedWindow) -> None:
    """Close like the seller does: the window's close, then the one shutdown."""
    parts.window.close()
    _run(qtbot, parts.aclose())


def test_fits_1280_by_800_and_grid_keeps_three_columns(
    styled: Any, open_app: OpenApp, qtbot: Any
) -> None:
    window = open_app(demo=True).window
    window.connection_label.setText(
        "connected to " + ", ".join(f"http://10.0.0.{n}:8188" for n in range(12))
    )
    assert window.minimumSizeHint().width() <= 1280
    assert window.minimumSizeHint().height() <= 800
    window.show()
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 800)
    assert window.gallery.column_count() >= 3
    window.resize(1366, 768)
    qtbot.waitUntil(lambda: window.width() == 1366)
    assert window.gallery.column_count() >= 3
    central = window.centralWidget()
    assert central is not None and central.isAncestorOf(window.gallery)  # the grid is the centre
    assert window.dockWidgetArea(window.jobs_dock) != Qt.DockWidgetArea.NoDockWidgetArea


def test_dock_layout_comes_back_at_start(open_app: OpenApp, qtbot: Any) -> None:
    app = open_app()
    first = app.window
    first.show()
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.stats_dock)
    first.health_dock.hide()
    geometry, state = first.layout_state()
    first.app.settings.save_window_state(geometry, state)
    qtbot.waitUntil(lambda: first.app.settings.window_state()[1] == state)
    _close(qtbot, app)

    second = open_app().window
    second.show()
    assert second.dockWidgetArea(second.stats_dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert not second.health_dock.isVisible()
    assert second.jobs_dock.isVisible()


def _centre(widget: Any) -> QColor:
    widget.resize(160, 30)
    image: QImage = widget.grab().toImage()
    return image.pixelColor(image.width() // 3, image.height() // 2)


def dark_palette() -> QPalette:
    dark = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#202124"),
        (QPalette.ColorRole.Base, "#2b2c30"),
        (QPalette.ColorRole.Button, "#35363a"),
        (QPalette.ColorRole.Text, "#e8eaed"),
        (QPalette.ColorRole.WindowText, "#e8eaed"),
        (QPalette.ColorRole.ButtonText, "#e8eaed"),
        (QPalette.ColorRole.AlternateBase, "#313236"),
        (QPalette.ColorRole.Mid, "#5f6368"),
        (QPalette.ColorRole.Midlight, "#45464a"),
        (QPalette.ColorRole.Light, "#4a4b4f"),
        (QPalette.ColorRole.Dark, "#17181a"),
        (QPalette.ColorRole.Highlight, "#8ab4f8"),
        (QPalette.ColorRole.HighlightedText, "#202124"),
        (QPalette.ColorRole.PlaceholderText, "#9aa0a6"),
        (QPalette.ColorRole.ToolTipBase, "#3c4043"),
        (QPalette.ColorRole.ToolTipText, "#e8eaed"),
    ):
        dark.setColor(role, QColor(colour))
    return dark


def test_style_sheet_follows_the_os_palette(qapp: QApplication, qtbot: Any) -> None:
    from pod_studio.ui.theme import apply_style

    previous = qapp.palette()
    follower = apply_style(qapp, STYLE.read_text(encoding="utf-8"))
    edit = QLineEdit()
    try:
        assert _centre(edit).lightness() > 200  # the light palette: a light field
        qapp.setPalette(dark_palette())  # the OS switches to dark mode
        qtbot.waitUntil(lambda: _centre(edit).lightness() < 90)  # the same field turns dark
    finally:
        qapp.setPalette(previous)
        follower.detach()


def test_spin_and_combo_keep_their_native_arrows(qapp: QApplication) -> None:
    def shots() -> list[QImage]:
        spin, combo = QSpinBox(), QComboBox()
        combo.addItems(["Black / S", "Black / M"])
        out = []
        for widget in (spin, combo):
            widget.resize(120, 28)
            out.append(widget.grab().toImage())
        return out

    native = shots()
    qapp.setStyleSheet(STYLE.read_text(encoding="utf-8"))
    try:
        assert shots() == native  # the style sheet draws neither box: arrows stay native
    finally:
        qapp.setStyleSheet("")


@pytest.mark.parametrize(
    ("size", "theme"), [((1280, 800), "light"), ((1920, 1080), "light"), ((1280, 800), "dark")]
)
def test_screenshots(
    styled: QApplication, open_app: OpenApp, qtbot: Any, size: tuple[int, int], theme: str
) -> None:
    from pod_studio.ui.screens import grab_all

    app = open_app()
    core, window = app.core, app.window
    previous = styled.palette()
    if theme == "dark":
        styled.setPalette(dark_palette())
        styled.setStyleSheet(STYLE.read_text(encoding="utf-8"))

    for n in range(9):
        job = JobSpec(job_id=f"shot{n}", prompt=f"retro sunset cat, bold lines, design {n}", seed=n)
        image = _run(
            qtbot,
            core.store.save(
                job,
                _design(n),
                ref=ImageRef(filename="x.png"),
                server="sandbox",
                prompt_id=f"p{n}",
                seconds=2.0,
            ),
        )
        if n % 3 == 1:
            _run(qtbot, core.store.set_approved(image.image_id, n != 4))
    window.resize(*size)
    window.show()
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 9, timeout=10_000)
    bridge = window.app.bridge
    bridge.sig_queue_changed.emit(QueueChanged(job_id="live", kind="generate", state="running"))
    bridge.sig_job_progress.emit(JobProgress(job_id="live", value=12, max=20))
    bridge.sig_queue_changed.emit(
        QueueChanged(
            job_id="wait",
            kind="generate",
            state="retry_wait",
            last_error="ComfyUI is busy; trying again in 30 s",
        )
    )
    bridge.sig_retry_scheduled.emit(
        RetryScheduled(
            service="comfyui",
            operation="queue_prompt",
            attempt=1,
            cause="ReadTimeout: timed out",
            wait_seconds=1.5,
            wait_reason="exponential backoff",
        )
    )
    bridge.sig_retry_scheduled.emit(
        RetryScheduled(
            service="printify",
            operation="create_product",
            attempt=2,
            cause="RateLimitError: 429 Too Many Requests",
            wait_seconds=30.0,
            wait_reason="Retry-After header",
        )
    )
    qtbot.waitUntil(
        lambda: all(
            c.pixmap is not None
            for c in (window.gallery.model.card(i.image_id) for i in window.gallery.model.images())
            if c
        ),
        timeout=10_000,
    )
    out = (
        SHOTS / f"{size[0]}x{size[1]}"
        if theme == "light"
        else SHOTS / f"{theme}-{size[0]}x{size[1]}"
    )
    try:
        paths = grab_all(window, out)
    finally:
        styled.setPalette(previous)
    assert (out / "main_window.png") in paths
    window.close()


def test_a_real_generation_shows_live_then_becomes_a_design(open_app: OpenApp, qtbot: Any) -> None:
    from pod_studio.domain.models import GenerationRequest
    from pod_studio.ui.gallery_grid import Card, GridModel

    window = open_app().window  # its job queue runs, as in the app
    window.show()
    grid = window.gallery
    seen: dict[str, set[str]] = {"states": set(), "live": set()}

    def look(*_args: Any) -> None:
        for row in range(grid.model.rowCount()):
            card = grid.model.index(row).data(GridModel.CardRole)
            if isinstance(card, Card) and card.image is None:
                seen["states"].add(card.state.value)
                if card.progress > 0:
                    seen["live"].add("progress")
                if card.pixmap is not None:
                    seen["live"].add("preview")

    grid.model.dataChanged.connect(look)
    grid.model.rowsInserted.connect(look)
    job_ids = window.app.generation.start(
        GenerationRequest(prompts=["a fox in a teacup"], width=512, height=512)
    )
    assert len(job_ids) == 1
    qtbot.waitUntil(lambda: len(grid.model.images()) == 1, timeout=15_000)
    qtbot.waitUntil(lambda: grid.model.card(f"job:{job_ids[0]}") is None, timeout=5_000)
    assert "running" in seen["states"]
    assert seen["live"] == {"progress", "preview"}  # the card showed the live preview
    design = grid.model.images()[0]
    assert design.prompt == "a fox in a teacup"
    qtbot.waitUntil(lambda: grid.model.card(design.image_id).pixmap is not None)  # type: ignore[union-attr]


def test_closing_the_window_moves_deleted_designs_to_the_trash(
    open_app: OpenApp, qtbot: Any
) -> None:
    app = open_app()
    core = app.core
    images = [
        _run(
            qtbot,
            core.store.save(
                JobSpec(job_id=f"del{n}", prompt=f"to be deleted {n}", seed=n),
                _design(n),
                ref=ImageRef(filename="x.png"),
                server="sandbox",
                prompt_id=f"p{n}",
                seconds=1.0,
            ),
        )
        for n in range(3)
    ]
    window = app.window
    window.show()
    grid = window.gallery
    qtbot.waitUntil(lambda: len(grid.model.images()) == 3)
    grid.list_view.selectAll()
    grid.delete_selected()
    assert grid.shown_images() == []  # hidden at once ...
    assert all(Path(i.file).exists() for i in images)  # ... and still on disk
    window.close()  # within the undo window: the close commits it
    _run(qtbot, window.app.aclose())  # the runner cancels its tasks; the moves still finish
    qtbot.waitUntil(lambda: not any(Path(i.file).exists() for i in images))
    assert all((core.store.images_dir / "trash" / Path(i.file).name).exists() for i in images)
    assert _run(qtbot, core.store.list_images()) == []
