"""The first-launch set-up against the real engine (``build_core``) and the sandbox ComfyUI:
each page's success and failure state in words, skip, come back (Help → Set-up), demo
mode, and the last page saving prices and the export folder. Screenshots of every page go
to /tmp/shots-uicomfy/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWizard

from pod_studio.adapters.storage.secrets import MemorySecretStore
from pod_studio.app.app_controller import AppController
from pod_studio.bootstrap import ComposedWindow, compose_window
from pod_studio.composition.core import Core, build_core
from pod_studio.domain.settings import AppSettings
from pod_studio.sandbox.comfyui import ComfyUISandbox
from pod_studio.sandbox.threaded import ServerThread
from pod_studio.ui.setup_wizard import SetupWizard
from tests.ui._helpers import ROOT, run, shot, use_style

pytestmark = pytest.mark.timeout(120)
DEAD = "http://127.0.0.1:9"


@pytest.fixture
def comfy() -> Iterator[str]:
    with ServerThread(ComfyUISandbox(seconds_per_job=0.05)) as server:
        yield server.url


@pytest.fixture
def setup_parts(qtbot: Any, qloop: Any, qapp: Any, comfy: str) -> Iterator[ComposedWindow]:
    """The window the app ships (not shown yet) over the engine on the sandbox, first start."""
    use_style(qapp)
    settings = AppSettings(comfyui_servers=[comfy]).with_changes(printify={"base_url": DEAD})
    core = build_core(settings=settings, secrets=MemorySecretStore())
    run(qtbot, core.start())
    parts = compose_window(core, show=False)
    yield parts
    run(qtbot, parts.aclose())


@pytest.fixture
def setup(setup_parts: ComposedWindow) -> tuple[AppController, Core]:
    return setup_parts.controller, setup_parts.core


def open_wizard(qtbot: Any, app: AppController) -> SetupWizard:
    wizard = SetupWizard(app)
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def test_comfyui_page_says_what_answered_and_what_failed(
    qtbot: Any, setup: tuple[AppController, Core], comfy: str
) -> None:
    app, core = setup
    wizard = open_wizard(qtbot, app)
    page = wizard.comfyui_page
    assert wizard.currentPage() is page
    # failure: nothing answers at that address
    page.url_radio.setChecked(True)
    page.url_edit.setText(DEAD)
    page.check()
    qtbot.waitUntil(lambda: page.result_label.text().startswith("✗"), timeout=20000)
    shot(wizard, "wizard-1-comfyui-failed")
    # failure: a folder was asked for but not given
    page.folder_radio.setChecked(True)
    page.folder_edit.setText("")
    page.check()
    assert page.result_label.text() == "✗ Choose the ComfyUI folder first."
    # success: version, GPU and checkpoints
    page.url_radio.setChecked(True)
    page.url_edit.setText(comfy)
    page.check()
    qtbot.waitUntil(lambda: page.result_label.text().startswith("✓"), timeout=20000)
    qtbot.waitUntil(lambda: "checkpoint(s)" in page.checkpoints_label.text(), timeout=20000)
    assert page.checkpoints_label.text().startswith("✓")
    assert core.settings.comfyui_servers == [comfy]
    shot(wizard, "wizard-1-comfyui-ok")


def test_workflow_page_names_missing_nodes(
    qtbot: Any, setup: tuple[AppController, Core], tmp_path: Path
) -> None:
    app, _core = setup
    wizard = open_wizard(qtbot, app)
    wizard.next()
    page = wizard.workflow_page
    assert wizard.currentPage() is page
    qtbot.waitUntil(lambda: page.result_label.text().startswith("✓"), timeout=20000)
    assert "fits" in page.result_label.text()
    shot(wizard, "wizard-2-workflow-ok")
    graph = json.loads(
        (ROOT / "resources" / "workflows" / "default_txt2img.json").read_text(encoding="utf-8")
    )
    graph["99"] = {"class_type": "NoSuchUpscaler", "inputs": {}}
    bad = tmp_path / "needs-a-custom-node.json"
    bad.write_text(json.dumps(graph), encoding="utf-8")
    page.open_file(str(bad))
    qtbot.waitUntil(lambda: page.problems_list.count() > 0, timeout=20000)
    assert page.result_label.text().startswith("✗")
    items = [page.problems_list.item(i).text() for i in range(page.problems_list.count())]
    assert any("NoSuchUpscaler" in text for text in items), items
    shot(wizard, "wizard-2-workflow-missing-node")
    page.open_file(str(tmp_path / "not-there.json"))
    qtbot.waitUntil(lambda: not page.problems_list.isVisible(), timeout=20000)
    assert page.result_label.text().startswith("✗")


def test_platforms_page_failure_in_words(qtbot: Any, setup: tuple[AppController, Core]) -> None:
    app, core = setup
    wizard = open_wizard(qtbot, app)
    wizard.next()
    wizard.next()
    page = wizard.platforms_page
    assert wizard.currentPage() is page
    page.save_printify()
    assert page.printify_label.text() == "✗ paste a token first"
    page.printify_token_edit.setText("a-token-that-reaches-no-server")
    page.save_printify()
    qtbot.waitUntil(lambda: page.printify_label.text().startswith("✗"), timeout=30000)
    assert page.printify_token_edit.text() == ""
    page.shopify_tab.domain_edit.setText("shop.example.com")
    page.shopify_tab.save_and_test()
    assert "is not a Shopify shop domain" in page.shopify_tab.result_label.text()
    shot(wizard, "wizard-3-platforms-failed")
    assert core.secrets.get("printify_token") == "a-token-that-reaches-no-server"


def test_products_page_checks_prices_then_finishes(
    qtbot: Any, setup: tuple[AppController, Core], tmp_path: Path
) -> None:
    app, core = setup
    wizard = open_wizard(qtbot, app)
    for _ in range(3):
        wizard.next()
    page = wizard.products_page
    assert wizard.currentPage() is page
    assert page.table.rowCount() == len(core.designs.product_templates()) > 0
    shot(wizard, "wizard-4-products")
    name = page.templates[0].name
    page.table.item(0, 2).setText("cheap")
    assert not page.validatePage()
    assert page.result_label.text().startswith("✗")
    assert not core.settings.first_run_done
    shot(wizard, "wizard-4-products-bad-price")
    page.table.item(0, 2).setText("31.50")
    page.export_edit.setText(str(tmp_path / "exports"))
    with qtbot.waitSignal(wizard.finished, timeout=20000):
        wizard.button(QWizard.WizardButton.FinishButton).click()
    assert core.settings.first_run_done
    assert core.settings.export_dir == str(tmp_path / "exports")
    prices = {t.name: str(t.price.base) for t in core.designs.product_templates()}
    assert prices[name] == "31.50"


def test_skip_marks_done_and_the_set_up_comes_back(
    qtbot: Any, setup: tuple[AppController, Core]
) -> None:
    app, core = setup
    assert app.setup.needed
    wizard = open_wizard(qtbot, app)
    with qtbot.waitSignal(app.setup.sig_finished, timeout=10000):
        wizard.button(QWizard.WizardButton.CustomButton1).click()
    assert not wizard.isVisible()
    assert core.settings.first_run_done and not app.setup.needed
    again = open_wizard(qtbot, app)  # Help → Set-up
    assert again.currentPage() is again.comfyui_page
    again.close()
    assert core.settings.first_run_done


def test_demo_button_asks_for_demo_mode(qtbot: Any, setup: tuple[AppController, Core]) -> None:
    app, core = setup
    wizard = open_wizard(qtbot, app)
    with qtbot.waitSignal(app.sig_demo_requested, timeout=5000):
        wizard.comfyui_page.demo_button.click()
    qtbot.waitUntil(lambda: core.settings.first_run_done, timeout=10000)
    assert not wizard.isVisible()


def test_main_window_first_start_help_menu_shortcuts_and_workflow_drop(
    qtbot: Any, setup_parts: ComposedWindow, tmp_path: Path
) -> None:
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    from pod_studio.ui.window_extras import SHORTCUTS, shortcuts_for

    app, core = setup_parts.controller, setup_parts.core
    window = setup_parts.window
    window.show()
    window.start()  # first start: the set-up opens by itself
    wizard = window.extras.wizard
    assert wizard is not None and wizard.isVisible()
    wizard.skip()
    qtbot.waitUntil(lambda: core.settings.first_run_done, timeout=10000)
    # Help → Set-up brings it back; Help → Keyboard shortcuts lists every key
    menu_names = [a.objectName() for a in window.menuBar().actions()[-1].menu().actions()]
    assert "setup_action" in menu_names and "shortcuts_action" in menu_names
    window.extras.setup_action.trigger()
    assert window.extras.wizard is not None and window.extras.wizard is not wizard
    assert window.extras.wizard.isVisible()
    window.extras.wizard.close()
    window.extras.shortcuts_action.trigger()
    box = window.extras.help_box
    assert box is not None
    rows = shortcuts_for(window)
    assert len(rows) == len(SHORTCUTS) + 2  # and Settings, Quit
    for key, what in rows:
        assert key and key in box.text() and what in box.text()
    box.show()
    shot(box, "help-keyboard-shortcuts")
    box.close()
    window.resize(1400, 860)
    window.extras.show_comfyui_dock()
    shot(window, "main-window-comfyui-dock")
    dialog = window.open_settings()
    titles = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert titles[-3:] == ["ComfyUI server", "Shopify", "Etsy"]
    dialog.tabs.setCurrentIndex(titles.index("Shopify"))
    shot(dialog, "settings-dialog-shopify-tab")
    dialog.close()
    keys = {a.shortcut().toString() for a in window.actions()}
    assert {"Ctrl+Return", "Ctrl+L", "Ctrl+Shift+R"} <= keys
    assert window.import_workflow_action.shortcut().toString() == "Ctrl+O"
    # dropping a workflow JSON opens it through the workflow controller
    source = ROOT / "resources" / "workflows" / "default_txt2img.json"
    dropped = tmp_path / "dropped.json"
    dropped.write_bytes(source.read_bytes())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    window.show()
    enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)  # Qt delivers a drop only after an accepted enter
    assert enter.isAccepted()
    event = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(app.workflow.sig_workflow_loaded, timeout=20000) as loaded:
        QApplication.sendEvent(window, event)
    assert loaded.args[0] == "dropped.json"
    assert core.settings.workflow_path == str(dropped)
    # something else is refused at the door
    mime2 = QMimeData()
    mime2.setUrls([QUrl.fromLocalFile(str(tmp_path / "photo.png"))])
    refused = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime2,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    refused.ignore()
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()
    window.close()
