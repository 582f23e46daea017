"""Widget test: once Printify has made the draft of a design as a product, that product's
card on the Preview tab shows Printify's own mockups (from the Printify sandbox)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.publish_panel import PublishPanel
from tests.app.conftest import MakeStudio, run
from tests.ui.conftest import controller_for
from tests.ui.test_publishing_ui import (
    _approve_and_open_panel,
    _confirm_low_dpi,
    _generate,
    _window,
)

TOKEN = "sandbox-token-preview-mockups"


@pytest.fixture
def printify() -> Iterator[ServerThread]:
    with ServerThread(PrintifySandbox(tokens={TOKEN})) as thread:
        yield thread


def _tee(panel: PublishPanel) -> Any:
    return next(c for c in panel.preview_page.cards if c.spec.template == "Classic T-shirt")


def test_the_card_shows_printify_mockups_once_the_draft_is_made(
    qtbot: Any, printify: ServerThread, make_studio: MakeStudio
) -> None:
    sandbox: PrintifySandbox = printify.server
    settings = AppSettings().with_changes(
        printify={"base_url": printify.url, "shop_id": sandbox.shop_id}
    )
    studio = make_studio(settings=settings)
    studio.secrets.set("printify_token", TOKEN)
    run(studio.core.platforms.configure_printify())
    assert studio.core.platforms.printify is not None
    window = _window(qtbot, controller_for(studio))
    _generate(qtbot, window, ["retro sunset over mountains"], 1024)
    ids = [i.image_id for i in window.gallery.model.images()]
    panel = _approve_and_open_panel(qtbot, window, ids)
    qtbot.waitUntil(
        lambda: (
            "printify" in panel.platform_checks and panel.platform_checks["printify"].isEnabled()
        ),
        timeout=10000,
    )
    panel.tabs.setCurrentWidget(panel.preview_page)
    panel.template_checks["Classic T-shirt"].setChecked(True)
    tee = _tee(panel)
    assert tee.platform_thumbs == []
    assert tee.platform_label.text() == "Printify's mockups appear after its draft is made"

    panel.platform_checks["printify"].setChecked(True)
    assert panel.draft_radio.isChecked()
    _confirm_low_dpi(qtbot, panel)
    with qtbot.waitSignal(panel.controller.sig_publish_message, timeout=10000):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)

    # the draft is made by the queue; its mockups are fetched off the GUI thread
    qtbot.waitUntil(lambda: len(_tee(panel).platform_thumbs) > 0, timeout=30000)
    tee = _tee(panel)
    assert tee.platform_label.text() == "Printify's mockups"
    (product,) = sandbox.products.values()
    assert len(tee.platform_thumbs) == len(product["images"])
    assert sandbox.mockup_requests_with_auth == 0  # the token stayed with the API

    qtbot.mouseClick(tee.platform_thumbs[0], Qt.MouseButton.LeftButton)
    assert tee.enlarged is not None and tee.enlarged.isVisible()

    # opened again later, the panel shows them at once (no new draft, no new download)
    panel.template_checks["Classic T-shirt"].setChecked(False)
    panel.template_checks["Classic T-shirt"].setChecked(True)
    assert len(_tee(panel).platform_thumbs) == len(product["images"])


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 120), colour).save(out, "JPEG")
    return out.getvalue()


def test_mockups_fed_to_the_preview_land_on_their_card_only(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    _generate(qtbot, window, ["vintage cat"], 1024)
    ids = [i.image_id for i in window.gallery.model.images()]
    panel = _approve_and_open_panel(qtbot, window, ids)
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.template_checks["Pullover Hoodie"].setChecked(True)
    images = [_jpeg((200, 30, 30)), _jpeg((30, 30, 200)), b"not an image"]
    panel.controller.sig_platform_mockups_loaded.emit(ids[0], "Pullover Hoodie", images)
    hoodie = next(c for c in panel.preview_page.cards if c.spec.template == "Pullover Hoodie")
    assert len(hoodie.platform_thumbs) == 2  # the unreadable one is left out
    assert _tee(panel).platform_thumbs == []
    panel.controller.sig_platform_mockups_loaded.emit("another-design", "Classic T-shirt", images)
    assert _tee(panel).platform_thumbs == []
    hoodie.enlarge(1)
    assert hoodie.enlarged is not None and hoodie.enlarged.isVisible()
