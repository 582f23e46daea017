"""Widget tests for publishing: preflight badges and publish status on the gallery cards, the
publish panel (templates, platforms, drafts, profit table) through the real orchestrator's
export publisher, and the settings' Printify and Products pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from PySide6.QtCore import Qt

from pod_studio.composition.core import load_settings
from pod_studio.domain.events import PublishStepChanged
from pod_studio.domain.jobs import JobKind, JobStatus
from pod_studio.domain.orchestration import PublishJobChanged, QueueEntry, StepView
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.printify import PrintifySandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.gallery_grid import GridModel
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.publish_panel import PublishPanel
from pod_studio.ui.settings_dialog import SettingsDialog
from tests.ui.conftest import controller_for


def _window(qtbot: Any, app: Any) -> MainWindow:
    window: MainWindow = app.studio_parts.window
    window.resize(1400, 900)
    window.show()
    return window


def _tooltip(model: GridModel, key: str) -> str:
    """The hover text of the card ``key`` (what the seller reads over it)."""
    for row in range(model.rowCount()):
        index = model.index(row)
        if index.data(GridModel.KeyRole) == key:
            return str(index.data(Qt.ItemDataRole.ToolTipRole))
    raise AssertionError(f"no card {key}")


def _generate(qtbot: Any, window: MainWindow, prompts: list[str], side: int) -> None:
    editor = window.prompt_editor
    editor.width_spin.setValue(side)
    editor.height_spin.setValue(side)
    editor.prompts_edit.setPlainText("\n".join(prompts))
    before = len(window.gallery.model.images())
    qtbot.mouseClick(editor.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: len(window.gallery.model.images()) == before + len(prompts), timeout=30000
    )


def _approve_and_open_panel(qtbot: Any, window: MainWindow, ids: list[str]) -> PublishPanel:
    """Select ``ids`` in the gallery, Approve, and Publish… as soon as the button allows."""
    gallery = window.gallery
    gallery.select_images(ids)
    qtbot.mouseClick(gallery.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(gallery.publish_button.isEnabled, timeout=10000)
    qtbot.mouseClick(gallery.publish_button, Qt.MouseButton.LeftButton)
    panel = window.publish_panel
    assert isinstance(panel, PublishPanel)
    qtbot.waitUntil(lambda: "export" in panel.platform_checks, timeout=5000)
    return panel


def _confirm_low_dpi(qtbot: Any, panel: PublishPanel) -> None:
    """The test designs are small: the first click on Publish asks about their low DPI."""
    if panel.low_dpi_products():
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
        assert panel.publish_button.text() == "Publish anyway (low DPI)"


def _publish(qtbot: Any, panel: PublishPanel, templates: list[str]) -> None:
    for name, check in panel.template_checks.items():
        check.setChecked(name in templates)
    panel.platform_checks["export"].setChecked(True)
    _confirm_low_dpi(qtbot, panel)
    with qtbot.waitSignal(panel.controller.sig_publish_message, timeout=10000):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)


def test_publish_two_designs_as_tee_and_hoodie_to_export(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    _generate(qtbot, window, ["retro sunset", "vintage cat"], 1024)
    model = window.gallery.model
    window.gallery.list_view.selectAll()
    assert not window.gallery.publish_button.isEnabled()  # nothing approved yet
    # the preflight badge arrived from the worker thread, with its reasons in the tooltip
    qtbot.waitUntil(
        lambda: all(model.badge(i.image_id) is not None for i in model.images()), timeout=10000
    )
    first = model.images()[0]
    assert model.badge(first.image_id)[0] == "warn"  # type: ignore[index]
    tooltip = model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Classic T-shirt: " in tooltip and "DPI" in tooltip

    panel = _approve_and_open_panel(qtbot, window, [i.image_id for i in model.images()])
    first = model.images()[0]  # approved now
    card = model.card(first.image_id)
    assert card is not None and card.state.value == "approved" and card.badge is not None
    assert card.badge[0] == "warn"
    assert "Approved" in _tooltip(model, first.image_id)
    assert panel.isVisible() and not panel.isModal()
    assert len(panel.designs) == 2
    assert panel.draft_radio.isChecked()  # auto_publish is off
    printify = panel.platform_checks["printify"]
    assert not printify.isEnabled() and printify.text() == "Printify (not available)"
    assert "token" in printify.toolTip()
    assert not panel.publish_button.isEnabled()
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.template_checks["Pullover Hoodie"].setChecked(True)
    panel.platform_checks["export"].setChecked(True)
    assert panel.publish_button.isEnabled()
    assert panel.publish_button.text() == "Create 4 draft(s)"

    _confirm_low_dpi(qtbot, panel)
    with qtbot.waitSignal(app_ctl.publishing.sig_publish_enqueued, timeout=10000) as queued:
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert len(queued.args[0]) == 4
    assert panel.message_label.text().startswith("4 listing(s) queued")
    qtbot.waitUntil(
        lambda: all(
            model.publish_lines(i.image_id) == {"export": "draft created"} for i in model.images()
        ),
        timeout=30000,
    )
    assert "• export: draft created" in _tooltip(model, first.image_id)
    export_dir = app_ctl.studio_parts.core.paths.data_dir / "export"
    assert len(list(export_dir.glob("*/listing.json"))) == 4
    publish_rows = [r for r in window.queue_dock.model.rows() if r.kind == "publish"]
    assert len(publish_rows) == 4 and {r.state for r in publish_rows} == {"succeeded"}
    assert {r.label for r in publish_rows} == {
        "Classic T-shirt → export",
        "Pullover Hoodie → export",
    }


def test_approving_several_designs_gives_the_panel_all_of_them(qtbot: Any, app_ctl: Any) -> None:
    """Approve three, click Publish… the moment it is enabled: the panel gets all three."""
    window = _window(qtbot, app_ctl)
    _generate(qtbot, window, ["one", "two", "three"], 128)
    ids = [i.image_id for i in window.gallery.model.images()]
    panel = _approve_and_open_panel(qtbot, window, ids)
    assert sorted(d.image_id for d in panel.designs) == sorted(ids)
    assert all(d.approved is True for d in panel.designs)


def test_publish_again_retries_a_failed_listing_and_skips_a_published_one(
    qtbot: Any, app_ctl: Any
) -> None:
    window = _window(qtbot, app_ctl)
    model = window.gallery.model
    _generate(qtbot, window, ["tiny"], 128)
    tiny = model.images()[0]
    _generate(qtbot, window, ["big"], 1024)
    big = next(i for i in model.images() if i.image_id != tiny.image_id)

    # a 128 px design cannot be printed: its listing goes to the dead letters
    panel = _approve_and_open_panel(qtbot, window, [tiny.image_id])
    _publish(qtbot, panel, ["Classic T-shirt"])
    qtbot.waitUntil(
        lambda: model.publish_lines(tiny.image_id).get("export", "").startswith("failed"),
        timeout=20000,
    )
    states: list[str] = []
    app_ctl.bridge.sig_queue_changed.connect(
        lambda e: states.append(e.state) if e.kind == "publish" else None
    )
    panel = _approve_and_open_panel(qtbot, window, [tiny.image_id])
    _publish(qtbot, panel, ["Classic T-shirt"])
    assert panel.message_label.text().startswith("1 failed listing(s) retried")
    assert "retried" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: states[-1:] == ["dead"], timeout=20000)
    assert "queued" in states  # it really ran again
    dead = [r for r in window.queue_dock.model.rows() if r.kind == "publish"]
    assert len(dead) == 1 and dead[0].state == "dead"

    # a design whose draft exists: publishing it again says so and creates nothing
    panel = _approve_and_open_panel(qtbot, window, [big.image_id])
    _publish(qtbot, panel, ["Classic T-shirt"])
    qtbot.waitUntil(
        lambda: model.publish_lines(big.image_id).get("export") == "draft created",
        timeout=20000,
    )
    panel = _approve_and_open_panel(qtbot, window, [big.image_id])
    _publish(qtbot, panel, ["Classic T-shirt"])
    assert panel.message_label.text() == "1 already created as draft(s) (nothing to do)"
    export_dir = app_ctl.studio_parts.core.paths.data_dir / "export"
    assert len(list(export_dir.glob("*/listing.json"))) == 1


def test_statistics_count_each_listing_once(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    dock = window.stats_dock
    model = window.gallery.model
    _generate(qtbot, window, ["a fox", "an owl", "a bee"], 1024)
    good = [i.image_id for i in model.images()]
    panel = _approve_and_open_panel(qtbot, window, good)
    _publish(qtbot, panel, ["Classic T-shirt"])
    qtbot.waitUntil(
        lambda: all(model.publish_lines(i).get("export") == "draft created" for i in good),
        timeout=30000,
    )
    qtbot.waitUntil(lambda: dock.value_labels["products"].text() == "3", timeout=10000)
    assert dock.value_labels["errors"].text() == "0"
    _generate(qtbot, window, ["tiny"], 128)
    tiny = next(i.image_id for i in model.images() if i.image_id not in good)
    panel = _approve_and_open_panel(qtbot, window, [tiny])
    _publish(qtbot, panel, ["Classic T-shirt"])
    qtbot.waitUntil(
        lambda: model.publish_lines(tiny).get("export", "").startswith("failed"), timeout=20000
    )
    qtbot.waitUntil(lambda: dock.value_labels["errors"].text() == "1", timeout=10000)
    assert dock.value_labels["products"].text() == "3"


def test_publish_status_lines_follow_the_events(qtbot: Any, app_ctl: Any) -> None:
    book = app_ctl.gallery.publish_book
    bridge = app_ctl.bridge
    seen: list[dict[str, str]] = []
    app_ctl.gallery.sig_publish_status_changed.connect(lambda _i, lines: seen.append(lines))

    def job(state: str, detail: str = "", platform: str = "printify") -> None:
        bridge(
            PublishJobChanged(
                job_id=f"pub-{platform}",
                design_id="d1",
                template="Classic T-shirt",
                platform=platform,
                state=state,
                detail=detail,
            )
        )

    job("queued")
    assert seen[-1] == {"printify": "queued"}
    job("running")
    bridge(
        PublishStepChanged(
            design_id="d1", product="Classic T-shirt", platform="printify", state="create:running"
        )
    )
    assert seen[-1] == {"printify": "creating…"}
    job("retry_wait", "Printify is rate limiting")
    assert seen[-1] == {"printify": "will retry — Printify is rate limiting"}
    job("dead", "the shop was not found")
    job("queued", platform="export")
    assert seen[-1] == {"printify": "failed — the shop was not found", "export": "queued"}
    assert book.lines("d1")["printify"].startswith("failed")
    # after a restart the state comes from the queue snapshot
    entry = QueueEntry(
        job_id="pub-x",
        kind=JobKind.PUBLISH,
        state=JobStatus.SUCCEEDED,
        label="Pullover Hoodie @ printify",
        platform="printify",
        design_id="d2",
        steps=[StepView(name="publish", state="done")],
    )
    assert book.load_entries([entry]) == {"d2"}
    assert book.lines("d2") == {"printify": "published"}


TOKEN = "pfy-secret-token-123"


@pytest.fixture
def printify() -> Iterator[ServerThread]:
    with ServerThread(PrintifySandbox(tokens={TOKEN}, extra_shops=[EXTRA_SHOP])) as thread:
        yield thread


EXTRA_SHOP = {"id": 222, "title": "My Shopify store", "sales_channel": "shopify"}


def test_printify_settings_test_what_is_typed_and_keep_the_token_out_of_the_settings(
    qtbot: Any, printify: ServerThread, make_studio: Any
) -> None:
    """The saved API address is dead; the address and token typed in the dialog (not saved
    yet) are the ones "Load shops" and "Test connection" use."""
    dead = AppSettings().with_changes(printify={"base_url": "http://127.0.0.1:9"})
    app_ctl = controller_for(make_studio(settings=dead))
    studio = app_ctl.studio_parts
    window = _window(qtbot, app_ctl)
    dialog = window.open_settings()
    assert isinstance(dialog, SettingsDialog)
    dialog.tabs.setCurrentWidget(dialog.printify_tab)
    qtbot.waitUntil(lambda: "in-memory" in dialog.store_label.text(), timeout=5000)
    assert dialog.token_edit.echoMode() == dialog.token_edit.EchoMode.Password
    assert dialog.base_url_edit.text() == "http://127.0.0.1:9"
    dialog.base_url_edit.setText(printify.url)
    qtbot.keyClicks(dialog.token_edit, TOKEN)

    qtbot.mouseClick(dialog.load_shops_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.shop_combo.count() == 3, timeout=10000)
    dialog.shop_combo.setCurrentIndex(dialog.shop_combo.findData(222))
    qtbot.mouseClick(dialog.printify_test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.printify_test_label.text().startswith(("✓", "✗")), timeout=10000)
    assert dialog.printify_test_label.text().startswith("✓"), dialog.printify_test_label.text()
    sandbox: PrintifySandbox = printify.server
    assert sandbox.request_counts["GET /v1/shops.json"] >= 2  # both asked the typed address

    with qtbot.waitSignal(app_ctl.printify.sig_token_saved, timeout=5000):
        qtbot.mouseClick(dialog.save_token_button, Qt.MouseButton.LeftButton)
    assert studio.secrets.get("printify_token") == TOKEN  # the secret store, not the settings
    assert dialog.token_edit.text() == ""
    assert "Token saved" in dialog.token_status_label.text()
    dialog.auto_publish_check.setChecked(True)

    # Products page: raise the tee's base price
    dialog.tabs.setCurrentWidget(dialog.products_tab)
    editor = dialog.products_editor
    row = next(r for r, d in enumerate(editor.drafts) if d.name == "Classic T-shirt")
    editor.templates_list.setCurrentRow(row)
    editor.base_price_edit.setText("21.50")
    editor.base_price_edit.textEdited.emit("21.50")
    with qtbot.waitSignal(app_ctl.settings.sig_settings_saved, timeout=10000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    saved = load_settings(studio.core.paths)[0]
    assert saved.printify.shop_id == 222
    assert saved.printify.base_url == printify.url
    assert saved.auto_publish is True
    tee = next(t for t in saved.product_templates if t["name"] == "Classic T-shirt")
    assert Decimal(tee["price"]["base"]) == Decimal("21.50")
    assert TOKEN not in studio.core.paths.settings_file.read_text(encoding="utf-8")
    # the saved values are live: Printify is offered in the publish panel now
    qtbot.waitUntil(lambda: studio.core.platforms.printify is not None, timeout=10000)


def test_products_page_refuses_a_bad_price(qtbot: Any, app_ctl: Any) -> None:
    window = _window(qtbot, app_ctl)
    dialog = window.open_settings()
    editor = dialog.products_editor
    editor.base_price_edit.setText("-4")
    editor.base_price_edit.textEdited.emit("-4")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "Base price" in editor.template_error_label.text()
    assert "greater than zero" in editor.template_error_label.text()
    assert dialog.tabs.currentWidget() is dialog.products_tab
    assert not app_ctl.studio_parts.core.paths.settings_file.exists()  # nothing was saved


def test_the_listing_editor_shows_checks_and_publishes_the_sellers_words(
    qtbot: Any, app_ctl: Any
) -> None:
    window = _window(qtbot, app_ctl)
    model = window.gallery.model
    _generate(qtbot, window, ["retro sunset over mountains, vector t-shirt design"], 1024)
    design = model.images()[0]
    panel = _approve_and_open_panel(qtbot, window, [design.image_id])
    editor = panel.listing_editor
    # the generator's directions ("vector t-shirt design") are not the design's name
    assert editor.name_edit.placeholderText() == "Retro Sunset Over Mountains"
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.platform_checks["export"].setChecked(True)
    assert "Classic T-shirt" in editor.preview_label.text()
    assert panel.publish_button.isEnabled()

    editor.name_edit.setText("Desert Sunset Ride")
    editor.tags_edit.setText("70s, sunset, a tag far too long for etsy")
    assert "Desert Sunset Ride T-Shirt" in editor.preview_label.text()
    assert editor.problems_label.isVisible()
    assert "at most 20" in editor.problems_label.text()
    assert not panel.publish_button.isEnabled()  # nothing is cut behind the seller's back
    editor.tags_edit.setText("70s, sunset, desert")
    assert not editor.problems_label.isVisible() and panel.publish_button.isEnabled()

    _confirm_low_dpi(qtbot, panel)
    with qtbot.waitSignal(panel.controller.sig_publish_message, timeout=10000):
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: model.publish_lines(design.image_id).get("export") == "draft created",
        timeout=30000,
    )
    export_dir = app_ctl.studio_parts.core.paths.data_dir / "export"
    (listing_file,) = export_dir.glob("*/listing.json")
    listing = json.loads(listing_file.read_text(encoding="utf-8"))
    assert listing["title"] == "Desert Sunset Ride T-Shirt"
    assert listing["tags"][:3] == ["70s", "sunset", "desert"]
    # the words stay with the design: the next panel opens with them
    qtbot.waitUntil(lambda: model.images()[0].listing is not None, timeout=5000)
    again = window.open_publish_panel([model.images()[0]])
    assert again.listing_editor.name_edit.text() == "Desert Sunset Ride"
    assert again.listing_editor.tags_edit.text() == "70s, sunset, desert"
