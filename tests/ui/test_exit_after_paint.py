"""``--exit-after-paint`` (what the cold-start benchmarks time) reports only once the window
has painted the gallery the design library gave it: its first cards, or the empty gallery."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from pod_studio.domain.models import ImageRef, JobSpec
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.window_extras import QuitAfterFirstPaint
from tests.app.conftest import run


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 80, 20)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("designs", [0, 3])
def test_painted_comes_after_the_gallery_shows_the_library(
    qtbot: Any, app_ctl: Any, capsys: pytest.CaptureFixture[str], designs: int
) -> None:
    store = app_ctl.studio_parts.core.store
    for n in range(designs):
        job = JobSpec(job_id=f"job{n}", prompt=f"design {n}", seed=n)
        run(store.save(job, _png(), ref=ImageRef(filename="x.png"), server="s", prompt_id="p",
                       seconds=0.1))  # fmt: skip
    window = MainWindow(app_ctl)
    qtbot.addWidget(window)
    seen: list[int] = []
    window.quit = lambda: seen.append(window.gallery.model.rowCount())  # type: ignore[method-assign]
    QuitAfterFirstPaint(window)
    window.show()  # lists the gallery
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    assert seen == [designs]  # the cards were in the grid when it said so
    assert capsys.readouterr().out.splitlines() == ["painted"]
    if designs:
        assert window.gallery.list_view.isVisible()
