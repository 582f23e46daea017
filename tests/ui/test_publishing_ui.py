"""Widget tests for publishing: preflight badges and publish status on the gallery cards, the
publish panel (templates, platforms, drafts, profit table) through the real orchestrator's
export publisher, and the settings' Printify and Products pages."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt

from pod_studio.domain.events import PublishStepChanged
from pod_studio.domain.jobs import JobKind, JobStatus
from pod_studio.domain.orchestration import PublishJobChanged, QueueEntry, StepView
from pod_studio.ui.main_window import MainWindow
from pod_studio.ui.publish_panel import PublishPanel
from pod_studio.ui.settings_dialog import SettingsDialog
from pod_studio.ui.widgets import RED


def _window(qtbot: Any, app: Any) -> MainWindow:
    window = MainWindow(app)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    return window


def _two_approved(qtbot: Any, window: MainWindow) -> None:
    window.prompt_editor.prompts_edit.setPlainText("retro sunset\nvintage cat")
    qtbot.mouseClick(window.prompt_editor.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.gallery.model.rowCount() == 2, timeout=5000)
    window.gallery.list_view.selectAll()
    assert not window.gallery.publish_button.isEnabled()  # nothing approved yet
    qtbot.mouseClick(window.gallery.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: all(i.approved is True for i in window.gallery.model.images()), timeout=3000
    )
    qtbot.waitUntil(lambda: window.gallery.publish_button.isEnabled(), timeout=1000)


def test_publish_two_designs_as_tee_and_hoodie_to_export(qtbot: Any, queue_app: Any) -> None:
    window = _window(qtbot, queue_app)
    _two_approved(qtbot, window)
    model = window.gallery.model
    # the preflight badge arrived from the worker thread, with its reasons in the tooltip
    qtbot.waitUntil(
        lambda: all(model.badge(i.image_id) is not None for i in model.images()), timeout=3000
    )
    first = model.images()[0]
    lines = [t for t, _c in model.card_lines(first)]
    assert lines[1] == "✓ Approved · Print ⚠"
    tooltip = model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Classic T-shirt: Resolution is 12 DPI" in tooltip

    qtbot.mouseClick(window.gallery.publish_button, Qt.MouseButton.LeftButton)
    panel = window.publish_panel
    assert isinstance(panel, PublishPanel) and panel.isVisible() and not panel.isModal()
    assert len(panel.designs) == 2
    assert panel.draft_radio.isChecked()  # auto_publish is off
    qtbot.waitUntil(lambda: "export" in panel.platform_checks, timeout=3000)
    printify = panel.platform_checks["printify"]
    assert not printify.isEnabled() and printify.text() == "Printify (not available)"
    assert "no API token" in printify.toolTip()
    assert not panel.publish_button.isEnabled()
    panel.template_checks["Classic T-shirt"].setChecked(True)
    panel.template_checks["Pullover Hoodie"].setChecked(True)
    panel.platform_checks["export"].setChecked(True)
    assert panel.publish_button.isEnabled()
    assert panel.publish_button.text() == "Create 4 draft(s)"

    # the profit table: the tee's S sells below cost and is flagged in red
    qtbot.waitUntil(lambda: panel.profit_table.rowCount() == 4, timeout=3000)
    rows = panel.profit_rows()
    tee_s = next(r for r in rows if r[0] == "Classic T-shirt" and r[1] == "Black / S")
    assert tee_s[2:6] == ["$19.99", "$25.00", "$4.00", "-$9.01"]
    row = rows.index(tee_s)
    assert panel.profit_table.item(row, 5).foreground().color() == RED
    ok_row = rows.index(next(r for r in rows if r[0] == "Pullover Hoodie" and r[1] == "Black / M"))
    assert panel.profit_table.item(ok_row, 5).foreground().color() != RED
    assert panel.profit_warning.isVisible()
    assert "1 variant(s) sell below cost: Classic T-shirt Black / S" in panel.profit_warning.text()

    with qtbot.waitSignal(queue_app.publishing.sig_publish_enqueued, timeout=3000) as queued:
        qtbot.mouseClick(panel.publish_button, Qt.MouseButton.LeftButton)
    assert len(queued.args[0]) == 4
    qtbot.waitUntil(
        lambda: all(
            model.publish_lines(i.image_id) == {"export": "draft created"} for i in model.images()
        ),
        timeout=8000,
    )
    lines = [t for t, _c in model.card_lines(first)]
    assert lines[2] == "export: draft created"
    exported = list(queue_app.parts.export_dir.rglob("*.json"))
    assert exported, "the export folder got the listings"
    publish_rows = [r for r in window.queue_dock.model.rows() if r.kind == "publish"]
    assert len(publish_rows) == 4 and {r.state for r in publish_rows} == {"succeeded"}
    assert {r.label for r in publish_rows} == {
        "Classic T-shirt → export",
        "Pullover Hoodie → export",
    }


def test_publish_status_lines_follow_the_events(qtbot: Any, queue_app: Any) -> None:
    book = queue_app.gallery.publish_book
    bridge = queue_app.parts.bridge
    seen: list[dict[str, str]] = []
    queue_app.gallery.sig_publish_status_changed.connect(lambda _i, lines: seen.append(lines))

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


def test_printify_settings_keep_the_token_out_of_the_settings(qtbot: Any, queue_app: Any) -> None:
    window = _window(qtbot, queue_app)
    dialog = window.open_settings()
    assert isinstance(dialog, SettingsDialog)
    dialog.tabs.setCurrentWidget(dialog.printify_tab)
    qtbot.waitUntil(lambda: "the test keyring" in dialog.store_label.text(), timeout=3000)
    assert dialog.token_edit.echoMode() == dialog.token_edit.EchoMode.Password
    secret = "pfy-secret-token-123"
    qtbot.keyClicks(dialog.token_edit, secret)
    with qtbot.waitSignal(queue_app.printify.sig_token_saved, timeout=3000):
        qtbot.mouseClick(dialog.save_token_button, Qt.MouseButton.LeftButton)
    assert queue_app.secrets_saved == [("printify_token", secret)]
    assert dialog.token_edit.text() == ""
    assert "Token saved" in dialog.token_status_label.text()

    qtbot.mouseClick(dialog.load_shops_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.shop_combo.count() == 3, timeout=3000)
    dialog.shop_combo.setCurrentIndex(dialog.shop_combo.findData(222))
    qtbot.mouseClick(dialog.printify_test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.printify_test_label.text().startswith("✓"), timeout=3000)
    assert "2 shop(s)" in dialog.printify_test_label.text()
    dialog.auto_publish_check.setChecked(True)
    dialog.base_url_edit.setText("http://127.0.0.1:9999")

    # Products page: raise the tee's base price
    dialog.tabs.setCurrentWidget(dialog.products_tab)
    row = next(r for r, t in enumerate(dialog.templates) if t.name == "Classic T-shirt")
    dialog.templates_table.item(row, 3).setText("21.50")
    settings = queue_app.parts.settings
    with qtbot.waitSignal(queue_app.settings.sig_settings_saved, timeout=3000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    saved = settings.saved[-1]
    assert saved.printify.shop_id == 222
    assert saved.printify.base_url == "http://127.0.0.1:9999"
    assert saved.auto_publish is True
    tee = next(t for t in saved.product_templates if t["name"] == "Classic T-shirt")
    assert Decimal(tee["price"]["base"]) == Decimal("21.50")
    assert secret not in json.dumps(saved.model_dump(mode="json"))


def test_products_page_refuses_a_bad_price(qtbot: Any, queue_app: Any) -> None:
    window = _window(qtbot, queue_app)
    dialog = window.open_settings()
    dialog.templates_table.item(0, 3).setText("-4")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "greater than zero" in dialog.error_label.text()
    assert dialog.tabs.currentWidget() is dialog.products_tab
    assert queue_app.parts.settings.saved == []
