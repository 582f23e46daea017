"""``--exit-after-paint`` (what the cold-start benchmarks time) reports only once the window
has painted the gallery the design library gave it: its first cards, or the empty gallery."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from pod_studio.domain.models import ImageRef, JobSpec
from pod_studio.ui.window_extras import QuitAfterFirstPaint
from tests.app.conftest import MakeStudio, run


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 80, 20)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("designs", [0, 3])
def test_painted_comes_after_the_gallery_shows_the_library(
    qtbot: Any, make_studio: MakeStudio, capsys: pytest.CaptureFixture[str], designs: int
) -> None:
    studio = make_studio(compose=False)
    store = studio.core.store
    for n in range(designs):
        job = JobSpec(job_id=f"job{n}", prompt=f"design {n}", seed=n)
        run(store.save(job, _png(), ref=ImageRef(filename="x.png"), server="s", prompt_id="p",
                       seconds=0.1))  # fmt: skip
    # as ``bootstrap`` does: the window composed (shown: it lists the gallery), then the watch
    window = studio.compose(show=True).window
    seen: list[int] = []
    window.quit = lambda: seen.append(window.gallery.model.rowCount())  # type: ignore[method-assign]
    QuitAfterFirstPaint(window)
    qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    assert seen == [designs]  # the cards were in the grid when it said so
    assert capsys.readouterr().out.splitlines() == ["painted"]
    if designs:
        assert window.gallery.list_view.isVisible()
