"""The gallery grid: reflow with the width, filters, keyboard review, delete with undo."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from pod_studio.adapters.storage.images import GalleryImageStore
from pod_studio.app.bridge import QtEventBridge
from pod_studio.app.gallery import GalleryController
from pod_studio.app.gallery_filters import GalleryFilter
from pod_studio.app.runner import TaskRunner
from pod_studio.domain.events import JobProgress
from pod_studio.domain.models import GeneratedImage, ImageRef, JobSpec
from pod_studio.domain.orchestration import QueueChanged
from pod_studio.ui.gallery_grid import GalleryGridView, GridModel

N_IMAGES = 6


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> GalleryImageStore:
    return GalleryImageStore(tmp_path / "images")


@pytest.fixture
def designs(store: GalleryImageStore) -> list[GeneratedImage]:
    async def save_all() -> list[GeneratedImage]:
        out = []
        for n in range(N_IMAGES):
            job = JobSpec(job_id=f"job{n}", prompt=f"design {n}", seed=n)
            image = await store.save(
                job,
                _png((40 * n, 90, 160)),
                ref=ImageRef(filename="x.png"),
                server="http://127.0.0.1:1",
                prompt_id=f"p{n}",
                seconds=1.0,
            )
            out.append(image)
        return out

    return asyncio.run(save_all())


@pytest.fixture
def grid(
    designs: list[GeneratedImage], store: GalleryImageStore, qtbot: Any, qloop: Any
) -> Iterator[GalleryGridView]:
    runner = TaskRunner()
    bridge = QtEventBridge()
    controller = GalleryController(runner, store, bridge=bridge)
    view = GalleryGridView(controller, bridge, undo_window_ms=60_000)
    view.bridge = bridge  # type: ignore[attr-defined]
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()
    with qtbot.waitSignal(controller.sig_images_loaded, timeout=5000):
        controller.refresh()
    qtbot.waitUntil(lambda: view.model.rowCount() == N_IMAGES)
    yield view


def _select_first(view: GalleryGridView) -> GeneratedImage:
    view.list_view.setFocus()
    view.list_view.setCurrentIndex(view.proxy.index(0, 0))
    return view.selected_images()[0]


def test_grid_reflows_with_the_width(grid: GalleryGridView, qtbot: Any) -> None:
    grid.resize(1366, 700)
    qtbot.waitUntil(lambda: grid.column_count() >= 5)
    wide = grid.column_count()
    grid.resize(800, 700)
    qtbot.waitUntil(lambda: grid.column_count() < wide)
    assert 3 <= grid.column_count() <= 4

    # uniform cards, laid out (the view lays out lazily) in rows of column_count()
    def rects() -> list[Any]:
        return [grid.list_view.visualRect(grid.proxy.index(r, 0)) for r in range(N_IMAGES)]

    def first_row() -> int:
        return sum(1 for r in rects() if r.top() == rects()[0].top())

    qtbot.waitUntil(lambda: first_row() == grid.column_count())
    assert len({(r.width(), r.height()) for r in rects()}) == 1


def test_filters_follow_the_review(grid: GalleryGridView, qtbot: Any) -> None:
    first = _select_first(grid)
    qtbot.keyClick(grid.list_view, Qt.Key.Key_A)  # approve, then the next one is selected
    qtbot.waitUntil(lambda: grid.model.card(first.image_id).image.approved is True)  # type: ignore[union-attr]
    second = grid.selected_images()[0]
    assert second.image_id != first.image_id
    qtbot.keyClick(grid.list_view, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: grid.model.card(second.image_id).image.approved is False)  # type: ignore[union-attr]

    grid.set_filter(GalleryFilter.APPROVED)
    assert [i.image_id for i in grid.shown_images()] == [first.image_id]
    grid.set_filter(GalleryFilter.REJECTED)
    assert [i.image_id for i in grid.shown_images()] == [second.image_id]
    grid.set_filter(GalleryFilter.TO_REVIEW)
    assert len(grid.shown_images()) == N_IMAGES - 2
    grid.set_filter(GalleryFilter.PUBLISHED)
    assert grid.shown_images() == []
    grid.model.set_publish(first.image_id, {"printify": "published"})
    grid.set_filter(GalleryFilter.PUBLISHED)
    assert [i.image_id for i in grid.shown_images()] == [first.image_id]
    assert grid.filter_buttons[GalleryFilter.APPROVED].text() == "Approved (1)"
    grid.set_filter(GalleryFilter.ALL)
    assert len(grid.shown_images()) == N_IMAGES


def test_delete_hides_and_undo_brings_back(
    grid: GalleryGridView, qtbot: Any, store: GalleryImageStore
) -> None:
    first = _select_first(grid)
    qtbot.keyClick(grid.list_view, Qt.Key.Key_Delete)
    assert first.image_id not in [i.image_id for i in grid.shown_images()]
    assert grid.undo_bar.isVisible()
    assert Path(first.file).exists()  # still on disk during the undo window
    qtbot.keyClick(grid.list_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert first.image_id in [i.image_id for i in grid.shown_images()]
    assert not grid.undo_bar.isVisible()

    # delete again and let the window pass (flush = the app closes): into the trash folder
    grid.select_image(first.image_id)
    grid.delete_selected()
    with qtbot.waitSignal(grid.deletes.sig_deleted, timeout=5000):
        grid.flush()
    assert not Path(first.file).exists()
    assert (store.images_dir / "trash" / Path(first.file).name).exists()
    assert grid.model.card(first.image_id) is None

    async def listed() -> list[str]:
        return [i.image_id for i in await store.list_images()]

    ids = qtbot_run(qtbot, listed())
    assert first.image_id not in ids and len(ids) == N_IMAGES - 1


def qtbot_run(qtbot: Any, coro: Any) -> Any:
    task = asyncio.get_event_loop().create_task(coro)
    qtbot.waitUntil(task.done, timeout=5000)
    return task.result()


def test_enter_opens_the_viewer_with_previous_next(grid: GalleryGridView, qtbot: Any) -> None:
    first = _select_first(grid)
    qtbot.keyClick(grid.list_view, Qt.Key.Key_Return)
    viewer = grid.viewer
    assert viewer is not None and viewer.image.image_id == first.image_id
    qtbot.waitUntil(viewer.has_image, timeout=5000)
    viewer.next_button.click()
    shown = grid.shown_images()
    assert viewer.image.image_id == shown[1].image_id
    assert grid.selected_images()[0].image_id == shown[1].image_id
    viewer.prev_button.click()
    assert viewer.image.image_id == first.image_id
    viewer.close()


def test_running_job_card_shows_progress_then_gives_way(grid: GalleryGridView) -> None:
    bridge: QtEventBridge = grid.bridge  # type: ignore[attr-defined]
    bridge.sig_queue_changed.emit(QueueChanged(job_id="j9", kind="generate", state="running"))
    bridge.sig_job_progress.emit(JobProgress(job_id="j9", value=5, max=20))
    card = grid.model.card("job:j9")
    assert card is not None and card.progress == 0.25
    bridge.sig_queue_changed.emit(
        QueueChanged(job_id="j9", kind="generate", state="retry_wait", last_error="server busy")
    )
    assert card.wait_reason == "server busy"
    grid.set_filter(GalleryFilter.APPROVED)
    assert grid.proxy.rowCount() == 0
    grid.set_filter(GalleryFilter.ALL)
    assert grid.proxy.rowCount() == N_IMAGES + 1
    bridge.sig_queue_changed.emit(QueueChanged(job_id="j9", kind="generate", state="succeeded"))
    assert grid.model.card("job:j9") is None


def test_jobs_left_in_the_queue_get_cards(grid: GalleryGridView) -> None:
    from pod_studio.app.queue import QueueRow

    grid.show_queue_rows(
        [
            QueueRow("g1", "generate", "owl", "retry_wait", last_error="ComfyUI is offline"),
            QueueRow("g2", "generate", "cat", "succeeded"),
            QueueRow("p1", "publish", "tee → printify", "queued"),
        ]
    )
    card = grid.model.card("job:g1")
    assert card is not None and card.wait_reason == "ComfyUI is offline"
    assert grid.model.card("job:g2") is None and grid.model.card("job:p1") is None


class _FakeStore:
    """A design library of ``n`` records whose files all share one small PNG."""

    def __init__(self, tmp_path: Path, n: int) -> None:
        file = tmp_path / "one.png"
        file.write_bytes(_png((10, 120, 200)))
        self.images = [
            GeneratedImage(
                image_id=f"{i:032x}",
                job_id=f"job{i}",
                prompt=f"design {i}",
                seed=i,
                width=64,
                height=64,
                file=str(file),
                sha256="0" * 64,
                server="s",
                prompt_id="p",
                seconds=0.1,
            )
            for i in range(n)
        ]

    async def list_images(self) -> list[GeneratedImage]:
        return list(self.images)


def test_a_big_library_makes_thumbnails_only_for_the_cards_in_view(
    tmp_path: Path, qtbot: Any, qloop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 designs: thumbnails and badges are made for the cards shown (and the screen after
    them), not for the whole library; scrolling to the end brings the last cards theirs, and
    the cards scrolled far away give their pixmaps back."""
    import pod_studio.ui.gallery_grid as grid_module

    monkeypatch.setattr(grid_module, "MAX_PIXMAPS", 10)
    made: list[str] = []
    checked: list[str] = []

    def thumbnailer(image: GeneratedImage) -> bytes:
        made.append(image.image_id)
        return Path(image.file).read_bytes()

    def preflight(image: GeneratedImage, template: str) -> tuple[str, list[str]]:
        checked.append(image.image_id)
        return "pass", []

    store = _FakeStore(tmp_path, 2000)
    controller = GalleryController(
        TaskRunner(),
        store,  # type: ignore[arg-type]
        thumbnailer,
        preflight=preflight,
        list_templates=lambda: [type("T", (), {"name": "tee"})()],  # type: ignore[arg-type,list-item]
    )
    view = GalleryGridView(controller)
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    controller.refresh()
    qtbot.waitUntil(lambda: view.model.rowCount() == 2000)
    first = view.proxy.index(0, 0).data(GridModel.KeyRole)
    qtbot.waitUntil(lambda: view.model.has_thumbnail(first))
    shown = len(view.visible_rows())
    assert 0 < 2 * shown <= 10
    qtbot.waitUntil(lambda: len(made) >= shown)
    assert len(made) <= 2 * shown + 10 and len(checked) <= 2 * shown + 10
    bar = view.list_view.verticalScrollBar()
    for _page in range(4):  # a few screens down, one after the other
        bar.setValue(bar.value() + bar.pageStep())
        top = view.proxy.index(view.visible_rows().start, 0).data(GridModel.KeyRole)
        qtbot.waitUntil(lambda top=top: view.model.has_thumbnail(top))
    qtbot.waitUntil(lambda: not view.model.has_thumbnail(first))  # given back
    assert view.model.pixmap_count() <= 10
    bar.setValue(bar.maximum())
    last = view.proxy.index(1999, 0).data(GridModel.KeyRole)
    qtbot.waitUntil(lambda: view.model.has_thumbnail(last))
    assert len(made) < 100
    assert view.model.pixmap_count() <= 10
