"""Widget tests for Settings → Products: the template editor (add, duplicate, remove, inline
problems that refuse Save and lose nothing), saved templates reaching the publish panel and
the headless loader, and the seller's own costs reaching the profit preview before any
Printify draft exists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

import tests.ui.test_publishing_ui as pub
from pod_studio.adapters.storage.seller_costs import JsonSellerCostStore
from pod_studio.composition.core import load_settings
from pod_studio.composition.publishing import load_product_templates_checked
from pod_studio.ui.products_editor import COST_COL, PRICE_COL, ProductsEditor
from pod_studio.ui.settings_dialog import SettingsDialog


def _type(qtbot: Any, edit: QLineEdit, text: str) -> None:
    """Replace the text as the seller would (select all, type)."""
    edit.setFocus()
    edit.selectAll()
    if text:
        qtbot.keyClicks(edit, text)
    else:
        qtbot.keyClick(edit, Qt.Key.Key_Delete)


def _cell(qtbot: Any, editor: ProductsEditor, size: str, col: int, text: str) -> None:
    table = editor.sizes_table
    row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == size)
    table.item(row, col).setText(text)


def _open(qtbot: Any, app_ctl: Any) -> tuple[Any, SettingsDialog, ProductsEditor]:
    window = pub._window(qtbot, app_ctl)
    dialog = window.open_settings()
    dialog.tabs.setCurrentWidget(dialog.products_tab)
    return window, dialog, dialog.products_editor


def _names(editor: ProductsEditor) -> list[str]:
    items = [editor.templates_list.item(i).text() for i in range(editor.templates_list.count())]
    return items


def _save(qtbot: Any, app_ctl: Any, dialog: SettingsDialog) -> None:
    with qtbot.waitSignal(app_ctl.settings.sig_settings_saved, timeout=10000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)


def test_add_duplicate_and_remove_templates_then_save(qtbot: Any, app_ctl: Any) -> None:
    _window, dialog, editor = _open(qtbot, app_ctl)
    assert _names(editor) == ["Classic T-shirt", "Pullover Hoodie"]

    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    assert _names(editor)[-1] == "New product"
    assert editor.templates_list.currentRow() == 2
    _type(qtbot, editor.name_edit, "Kids Tee")
    _type(qtbot, editor.sizes_edit, "XS, S, M")
    assert editor.sizes_table.rowCount() == 3
    assert _names(editor)[-1] == "Kids Tee"

    editor.templates_list.setCurrentRow(0)
    qtbot.mouseClick(editor.duplicate_button, Qt.MouseButton.LeftButton)
    assert _names(editor)[-1] == "Classic T-shirt copy"
    assert editor.sizes_edit.text() == "S, M, L, XL, 2XL, 3XL"
    assert editor.base_price_edit.text() == "19.99"

    editor.templates_list.setCurrentRow(1)  # the hoodie
    qtbot.mouseClick(editor.remove_button, Qt.MouseButton.LeftButton)
    assert _names(editor) == ["Classic T-shirt", "Kids Tee", "Classic T-shirt copy"]

    _save(qtbot, app_ctl, dialog)
    saved = load_settings(app_ctl.studio_parts.core.paths)[0]
    assert [t["name"] for t in saved.product_templates] == [
        "Classic T-shirt",
        "Kids Tee",
        "Classic T-shirt copy",
    ]
    kids = saved.product_templates[1]
    assert kids["sizes"] == ["XS", "S", "M"]
    # the app uses them at once, and `pod-studio publish` reads the same (settings) source
    assert [t.name for t in app_ctl.publishing.templates()] == [
        "Classic T-shirt",
        "Kids Tee",
        "Classic T-shirt copy",
    ]
    good, broken = load_product_templates_checked(saved)
    assert list(good) == ["Classic T-shirt", "Kids Tee", "Classic T-shirt copy"] and not broken


def test_a_bad_size_price_is_shown_inline_and_save_is_refused_with_nothing_lost(
    qtbot: Any, app_ctl: Any
) -> None:
    _window, dialog, editor = _open(qtbot, app_ctl)
    qtbot.mouseClick(editor.add_button, Qt.MouseButton.LeftButton)
    _type(qtbot, editor.name_edit, "Tank")
    editor.templates_list.setCurrentRow(0)
    _cell(qtbot, editor, "2XL", PRICE_COL, "abc")
    assert editor.template_error_label.isVisible()
    assert "Price of 2XL" in editor.template_error_label.text()
    assert editor.templates_list.item(0).text() == "⚠ Classic T-shirt"

    editor.templates_list.setCurrentRow(2)  # away and back: the bad text is still there
    assert not editor.template_error_label.isVisible()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert editor.templates_list.currentRow() == 0  # Save took the seller to the problem
    assert "Price of 2XL" in editor.template_error_label.text()
    assert "Classic T-shirt" in dialog.error_label.text()
    assert dialog.isVisible()
    assert not app_ctl.studio_parts.core.paths.settings_file.exists()  # nothing saved
    assert _names(editor) == ["⚠ Classic T-shirt", "Pullover Hoodie", "Tank"]  # nothing lost

    _cell(qtbot, editor, "2XL", PRICE_COL, "22.49")
    _type(qtbot, editor.blueprint_edit, "twelve")
    assert "Blueprint id: must be a whole number" in editor.template_error_label.text()
    _type(qtbot, editor.blueprint_edit, "12")
    assert not editor.template_error_label.isVisible()
    _save(qtbot, app_ctl, dialog)
    saved = load_settings(app_ctl.studio_parts.core.paths)[0]
    tee = saved.product_templates[0]
    assert tee["price"]["size_overrides"]["2XL"] == "22.49"
    assert [t["name"] for t in saved.product_templates][-1] == "Tank"


def test_unchanged_products_page_writes_no_templates(qtbot: Any, app_ctl: Any) -> None:
    _window, dialog, _editor = _open(qtbot, app_ctl)
    _save(qtbot, app_ctl, dialog)
    saved = load_settings(app_ctl.studio_parts.core.paths)[0]
    assert saved.product_templates == []  # the built-in templates stay the source
    assert not app_ctl.studio_parts.core.paths.seller_costs_file.exists()


def test_entered_costs_reach_the_profit_table_before_any_draft(qtbot: Any, app_ctl: Any) -> None:
    window, dialog, editor = _open(qtbot, app_ctl)
    _type(qtbot, editor.name_edit, "Everyday Tee")  # renamed: its costs follow the new name
    _cell(qtbot, editor, "M", COST_COL, "9.50")
    _cell(qtbot, editor, "2XL", COST_COL, "12.00")
    _type(qtbot, editor.shipping_edit, "4.75")
    assert not editor.template_error_label.isVisible()
    _save(qtbot, app_ctl, dialog)
    paths = app_ctl.studio_parts.core.paths
    stored = JsonSellerCostStore(paths.seller_costs_file).load()
    assert stored.for_template("Everyday Tee").sizes == {
        "M": Decimal("9.50"),
        "2XL": Decimal("12.00"),
    }

    pub._generate(qtbot, window, ["retro sunset"], 128)
    ids = [i.image_id for i in window.gallery.model.images()]
    panel = pub._approve_and_open_panel(qtbot, window, ids)
    assert "Everyday Tee" in panel.template_checks  # the saved template is offered
    panel.template_checks["Everyday Tee"].setChecked(True)
    qtbot.waitUntil(lambda: len(panel.profit_rows()) > 0, timeout=10000)
    rows = panel.profit_rows()
    by_variant = {r[1]: r for r in rows}
    # every colour of the two sizes with a cost; none for the sizes without one
    assert len(rows) == 4 * 2
    white_m = by_variant["White / M"]
    assert white_m[2:7] == ["$19.99", "$9.50", "$4.75", "$5.74", "29%"]
    white_2xl = by_variant["White / 2XL"]
    assert white_2xl[3] == "$12.00" and white_2xl[5] == "$5.24"
    assert "no provider costs" not in panel.profit_status.text()
    cost_cell = next(
        panel.profit_table.item(r, 3)
        for r in range(panel.profit_table.rowCount())
        if panel.profit_table.item(r, 1).text() == "White / M"
    )
    assert "Settings → Products" in cost_cell.toolTip()


def test_a_bad_cost_is_named_and_refused(qtbot: Any, app_ctl: Any) -> None:
    _window, dialog, editor = _open(qtbot, app_ctl)
    _cell(qtbot, editor, "L", COST_COL, "-2")
    assert "Your cost of L" in editor.template_error_label.text()
    _cell(qtbot, editor, "L", COST_COL, "")
    _type(qtbot, editor.shipping_edit, "free")
    assert "Shipping per item" in editor.template_error_label.text()
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert not app_ctl.studio_parts.core.paths.settings_file.exists()


def test_products_tab_fits_the_dialog_with_the_real_style_sheet(qtbot: Any, app_ctl: Any) -> None:
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    old = app.styleSheet()
    app.setStyleSheet(Path("resources/style.qss").read_text(encoding="utf-8"))
    try:
        _window, dialog, editor = _open(qtbot, app_ctl)
        dialog.show()
        qtbot.waitUntil(lambda: editor.form_area.viewport().width() > 0)
        assert dialog.width() <= 1280 and dialog.height() <= 800
        assert editor.templates_list.width() >= 120
        assert editor.name_edit.width() >= 250
        assert editor.blueprint_edit.width() >= 80 and editor.provider_edit.width() >= 80
        # all six tee sizes are visible at once, without a horizontal scroll bar
        assert not editor.sizes_table.verticalScrollBar().isVisible()
        assert not editor.form_area.horizontalScrollBar().isVisible()
    finally:
        app.setStyleSheet(old)
