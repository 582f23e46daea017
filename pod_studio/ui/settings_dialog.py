"""UI layer: SettingsDialog — General (ComfyUI servers, concurrency, defaults, workflow,
desktop: notifications, sound, close to tray),
Printify (token, shop, test, auto-publish) and Products (the template editor and the seller's
costs, ``ProductsEditor``).

Non-modal (``open()``). URLs are checked as they are added; "Test connection", the shop list
and the workflow import run in the background through their controllers; Save validates the
whole settings model and closes when the controller reports the save. The Printify token goes
to the secret store (OS keyring) through ``PrintifyController``, never into the settings.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSystemTrayIcon,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.generation import MAX_VARIATIONS
from pod_studio.app.publishing import PrintifyController
from pod_studio.app.settings import SettingsController, WorkflowController, validate_server_url
from pod_studio.domain.products import ProductTemplate
from pod_studio.ui.products_editor import ProductsEditor
from pod_studio.ui.widgets import side_spin, size_row


def _attr(obj: Any, name: str, default: Any) -> Any:
    return getattr(obj, name, default) if obj is not None else default


class SettingsDialog(QDialog):
    def __init__(
        self,
        controller: SettingsController,
        workflow: WorkflowController | None = None,
        parent: QWidget | None = None,
        *,
        printify: PrintifyController | None = None,
        templates: list[ProductTemplate] | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.workflow = workflow
        self.printify = printify
        self.templates = list(templates or [])
        self._file_dialog: QFileDialog | None = None
        self._token_pending = False
        self.setObjectName("settings_dialog")
        self.setWindowTitle(self.tr("Settings"))
        self.setModal(False)
        self.resize(640, 640)
        settings = controller.current()
        generation = _attr(settings, "generation", None)

        # servers
        self.servers_list = QListWidget(self)
        self.servers_list.setObjectName("servers_list")
        for url in _attr(settings, "comfyui_servers", []):
            self.servers_list.addItem(url)
        self.server_url_edit = QLineEdit(self)
        self.server_url_edit.setObjectName("server_url_edit")
        self.server_url_edit.setPlaceholderText("http://127.0.0.1:8188")
        self.add_server_button = QPushButton(self.tr("Add"), self)
        self.add_server_button.setObjectName("add_server_button")
        self.remove_server_button = QPushButton(self.tr("Remove"), self)
        self.remove_server_button.setObjectName("remove_server_button")
        self.test_connection_button = QPushButton(self.tr("Test connection"), self)
        self.test_connection_button.setObjectName("test_connection_button")
        self.test_connection_button.setEnabled(controller.can_test_connection)
        self.test_result_label = QLabel(self)
        self.test_result_label.setObjectName("test_result_label")
        self.test_result_label.setWordWrap(True)
        self.in_flight_spin = QSpinBox(self)
        self.in_flight_spin.setObjectName("in_flight_spin")
        self.in_flight_spin.setRange(1, 32)
        self.in_flight_spin.setValue(int(_attr(settings, "max_in_flight_per_server", 2)))

        # defaults
        self.width_spin = side_spin(self, "default_width_spin", _attr(generation, "width", 1024))
        self.height_spin = side_spin(self, "default_height_spin", _attr(generation, "height", 1024))
        self.variations_spin = QSpinBox(self)
        self.variations_spin.setObjectName("default_variations_spin")
        self.variations_spin.setRange(1, MAX_VARIATIONS)
        self.variations_spin.setValue(int(_attr(generation, "variations", 1)))

        # workflow
        self.workflow_path_edit = QLineEdit(self)
        self.workflow_path_edit.setObjectName("workflow_path_edit")
        self.workflow_path_edit.setText(_attr(settings, "workflow_path", None) or "")
        self.workflow_path_edit.setPlaceholderText(self.tr("Built-in text-to-image workflow"))
        self.browse_workflow_button = QPushButton(self.tr("Browse…"), self)
        self.browse_workflow_button.setObjectName("browse_workflow_button")
        self.browse_workflow_button.setEnabled(workflow is not None and workflow.available)
        self.workflow_summary_label = QLabel(self)
        self.workflow_summary_label.setObjectName("workflow_summary_label")
        self.workflow_summary_label.setWordWrap(True)
        self.prompt_input_edit = QLineEdit(self)
        self.prompt_input_edit.setObjectName("prompt_input_edit")
        self.prompt_input_edit.setText(_attr(settings, "prompt_input_override", None) or "")
        self.prompt_input_edit.setPlaceholderText(self.tr("detected (e.g. 6.text)"))
        self.workflow_values_edit = QPlainTextEdit(self)
        self.workflow_values_edit.setObjectName("workflow_values_edit")
        self.workflow_values_edit.setPlaceholderText(
            self.tr("One NODE.INPUT=VALUE per line, e.g. 3.steps=30")
        )
        self.workflow_values_edit.setPlainText(
            "\n".join(
                f"{k}={json.dumps(v)}"
                for k, v in (_attr(settings, "workflow_values", None) or {}).items()
            )
        )
        self.workflow_values_edit.setMaximumHeight(70)
        self.workflow_problems_list = QListWidget(self)
        self.workflow_problems_list.setObjectName("workflow_problems_list")
        self.workflow_problems_list.setMaximumHeight(90)
        self.workflow_problems_list.hide()

        self._build_desktop_widgets(settings)
        self._build_printify_widgets(settings)
        self._build_products_widgets()

        self.error_label = QLabel(self)
        self.error_label.setObjectName("settings_error_label")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.setObjectName("settings_buttons")
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setObjectName("settings_save_button")

        self._build_layout()
        self._connect_signals()

    def _build_desktop_widgets(self, settings: Any) -> None:
        desktop = _attr(settings, "desktop", None)
        self.notify_check = QCheckBox(
            self.tr("Notify me when a long batch of designs or listings ends"), self
        )
        self.notify_check.setObjectName("notify_check")
        self.notify_check.setChecked(bool(_attr(desktop, "notify", True)))
        self.notify_after_spin = QSpinBox(self)
        self.notify_after_spin.setObjectName("notify_after_spin")
        self.notify_after_spin.setRange(0, 3600)
        self.notify_after_spin.setSuffix(self.tr(" s"))
        self.notify_after_spin.setValue(round(float(_attr(desktop, "notify_after_seconds", 20))))
        self.notify_after_spin.setToolTip(
            self.tr("A batch this long or longer is announced; any batch when the window is hidden")
        )
        self.notify_sound_check = QCheckBox(self.tr("Play a sound with the notification"), self)
        self.notify_sound_check.setObjectName("notify_sound_check")
        self.notify_sound_check.setChecked(bool(_attr(desktop, "notify_sound", False)))
        self.close_to_tray_check = QCheckBox(
            self.tr("Closing the window keeps POD Studio running in the tray"), self
        )
        self.close_to_tray_check.setObjectName("close_to_tray_check")
        self.close_to_tray_check.setChecked(bool(_attr(desktop, "close_to_tray", False)))
        if not QSystemTrayIcon.isSystemTrayAvailable():
            self.close_to_tray_check.setToolTip(
                self.tr("This desktop shows no tray icons: closing the window quits.")
            )
        self.notify_check.toggled.connect(self.notify_after_spin.setEnabled)
        self.notify_check.toggled.connect(self.notify_sound_check.setEnabled)
        self.notify_after_spin.setEnabled(self.notify_check.isChecked())
        self.notify_sound_check.setEnabled(self.notify_check.isChecked())

    def _build_printify_widgets(self, settings: Any) -> None:
        printify = _attr(settings, "printify", None)
        can_save = self.printify is not None and self.printify.can_save_token
        self.token_edit = QLineEdit(self)
        self.token_edit.setObjectName("printify_token_edit")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText(
            self.tr("Paste a new personal access token (leave empty to keep the saved one)")
        )
        self.token_edit.setEnabled(can_save)
        self.save_token_button = QPushButton(self.tr("Save token"), self)
        self.save_token_button.setObjectName("printify_save_token_button")
        self.save_token_button.setEnabled(can_save)
        self.token_status_label = QLabel(self)
        self.token_status_label.setObjectName("printify_token_status_label")
        self.token_status_label.setWordWrap(True)
        self.store_label = QLabel(self.tr("Checking where tokens are stored…"), self)
        self.store_label.setObjectName("printify_store_label")
        self.store_label.setWordWrap(True)
        self.store_label.setStyleSheet("color: #7a808a;")
        self.base_url_edit = QLineEdit(self)
        self.base_url_edit.setObjectName("printify_base_url_edit")
        self.base_url_edit.setText(_attr(printify, "base_url", "https://api.printify.com"))
        self.shop_combo = QComboBox(self)
        self.shop_combo.setObjectName("printify_shop_combo")
        self.shop_combo.addItem(self.tr("(the only shop on the account)"), None)
        shop_id = _attr(printify, "shop_id", None)
        if shop_id is not None:
            self.shop_combo.addItem(self.tr("Shop %1").replace("%1", str(shop_id)), int(shop_id))
            self.shop_combo.setCurrentIndex(1)
        self.load_shops_button = QPushButton(self.tr("Load shops"), self)
        self.load_shops_button.setObjectName("printify_load_shops_button")
        self.load_shops_button.setEnabled(
            self.printify is not None and self.printify.can_list_shops
        )
        self.printify_test_button = QPushButton(self.tr("Test connection"), self)
        self.printify_test_button.setObjectName("printify_test_button")
        self.printify_test_button.setEnabled(self.printify is not None and self.printify.can_test)
        self.printify_test_label = QLabel(self)
        self.printify_test_label.setObjectName("printify_test_label")
        self.printify_test_label.setWordWrap(True)
        if self.printify is None or not self.printify.can_test:
            self.printify_test_label.setText(
                self.tr("Printify is not connected yet: save a token, then Save and reopen.")
            )
        self.auto_publish_check = QCheckBox(
            self.tr("Publish new products right away (otherwise they are created as drafts)"),
            self,
        )
        self.auto_publish_check.setObjectName("auto_publish_check")
        self.auto_publish_check.setChecked(bool(_attr(settings, "auto_publish", False)))

    def _build_products_widgets(self) -> None:
        self.products_editor = ProductsEditor(
            self.templates,
            self.controller.seller_costs(),
            self,
            can_save_costs=self.controller.can_save_costs,
        )

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("settings_tabs")
        general = QWidget(self.tabs)
        general.setObjectName("settings_general_tab")
        g_layout = QVBoxLayout(general)
        self._build_general(general, g_layout)
        self.tabs.addTab(general, self.tr("General"))
        self.printify_tab = QWidget(self.tabs)
        self.printify_tab.setObjectName("settings_printify_tab")
        self._build_printify(self.printify_tab)
        self.tabs.addTab(self.printify_tab, self.tr("Printify"))
        self.products_tab = self.products_editor
        self.tabs.addTab(self.products_tab, self.tr("Products"))
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def _build_printify(self, tab: QWidget) -> None:
        layout = QVBoxLayout(tab)
        token_box = QGroupBox(self.tr("API token"), tab)
        t_layout = QVBoxLayout(token_box)
        row = QHBoxLayout()
        row.addWidget(self.token_edit, 1)
        row.addWidget(self.save_token_button)
        t_layout.addLayout(row)
        t_layout.addWidget(self.token_status_label)
        t_layout.addWidget(self.store_label)
        layout.addWidget(token_box)
        shop_box = QGroupBox(self.tr("Shop"), tab)
        form = QFormLayout(shop_box)
        shop_row = QHBoxLayout()
        shop_row.addWidget(self.shop_combo, 1)
        shop_row.addWidget(self.load_shops_button)
        form.addRow(self.tr("Publish to"), shop_row)
        form.addRow(self.tr("API address"), self.base_url_edit)
        test_row = QHBoxLayout()
        test_row.addWidget(self.printify_test_button)
        test_row.addWidget(self.printify_test_label, 1)
        form.addRow(test_row)
        layout.addWidget(shop_box)
        publish_box = QGroupBox(self.tr("New products"), tab)
        p_layout = QVBoxLayout(publish_box)
        p_layout.addWidget(self.auto_publish_check)
        layout.addWidget(publish_box)
        layout.addStretch(1)

    def _build_general(self, parent: QWidget, layout: QVBoxLayout) -> None:
        servers = QGroupBox(self.tr("ComfyUI servers"), parent)
        s_layout = QVBoxLayout(servers)
        s_layout.addWidget(self.servers_list)
        add_row = QHBoxLayout()
        add_row.addWidget(self.server_url_edit, 1)
        add_row.addWidget(self.add_server_button)
        add_row.addWidget(self.remove_server_button)
        s_layout.addLayout(add_row)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_connection_button)
        test_row.addWidget(self.test_result_label, 1)
        s_layout.addLayout(test_row)
        in_flight = QFormLayout()
        in_flight.addRow(self.tr("Prompts in flight per server"), self.in_flight_spin)
        s_layout.addLayout(in_flight)
        layout.addWidget(servers)

        defaults = QGroupBox(self.tr("Defaults for new batches"), parent)
        d_layout = QFormLayout(defaults)
        d_layout.addRow(self.tr("Size"), size_row(self, self.width_spin, self.height_spin))
        d_layout.addRow(self.tr("Variations"), self.variations_spin)
        layout.addWidget(defaults)

        wf = QGroupBox(self.tr("Workflow"), parent)
        w_layout = QVBoxLayout(wf)
        path_row = QHBoxLayout()
        path_row.addWidget(self.workflow_path_edit, 1)
        path_row.addWidget(self.browse_workflow_button)
        w_layout.addLayout(path_row)
        w_layout.addWidget(self.workflow_summary_label)
        w_layout.addWidget(self.workflow_problems_list)
        overrides = QFormLayout()
        overrides.addRow(self.tr("Prompt goes to"), self.prompt_input_edit)
        overrides.addRow(self.tr("Fixed inputs"), self.workflow_values_edit)
        w_layout.addLayout(overrides)
        layout.addWidget(wf)

        desktop = QGroupBox(self.tr("Desktop"), parent)
        desktop.setObjectName("settings_desktop_box")
        k_layout = QVBoxLayout(desktop)
        k_layout.addWidget(self.notify_check)
        after_row = QFormLayout()
        after_row.addRow(self.tr("For batches taking at least"), self.notify_after_spin)
        k_layout.addLayout(after_row)
        k_layout.addWidget(self.notify_sound_check)
        k_layout.addWidget(self.close_to_tray_check)
        layout.addWidget(desktop)
        layout.addStretch(1)

    def _connect_signals(self) -> None:
        self.add_server_button.clicked.connect(self._on_add_server_clicked)
        self.server_url_edit.returnPressed.connect(self._on_add_server_clicked)
        self.remove_server_button.clicked.connect(self._on_remove_server_clicked)
        self.test_connection_button.clicked.connect(self._on_test_connection_clicked)
        self.browse_workflow_button.clicked.connect(self._on_browse_workflow_clicked)
        self.buttons.accepted.connect(self._on_save_clicked)
        self.buttons.rejected.connect(self.reject)
        self.controller.sig_settings_saved.connect(self._on_controller_settings_saved)
        self.controller.sig_settings_failed.connect(self._on_controller_settings_failed)
        self.controller.sig_connection_tested.connect(self._on_controller_connection_tested)
        if self.workflow is not None:
            self.workflow.sig_workflow_loaded.connect(self._on_workflow_loaded)
            self.workflow.sig_workflow_failed.connect(self._on_workflow_failed)
        self.save_token_button.clicked.connect(self._on_save_token_clicked)
        self.load_shops_button.clicked.connect(self._on_load_shops_clicked)
        self.printify_test_button.clicked.connect(self._on_printify_test_clicked)
        if self.printify is not None:
            self.printify.sig_token_saved.connect(self._on_printify_token_saved)
            self.printify.sig_store_described.connect(self._on_printify_store_described)
            self.printify.sig_shops_loaded.connect(self._on_printify_shops_loaded)
            self.printify.sig_shops_failed.connect(self._on_printify_shops_failed)
            self.printify.sig_tested.connect(self._on_printify_tested)
            self.printify.describe_store()
        else:
            self.store_label.setText(self.tr("Tokens cannot be stored in this setup."))

    # -- values ---------------------------------------------------------------------------

    def server_urls(self) -> list[str]:
        return [self.servers_list.item(i).text() for i in range(self.servers_list.count())]

    def changes(self) -> dict[str, Any]:
        settings = self.controller.current()
        generation = _attr(settings, "generation", None)
        gen: dict[str, Any] = generation.model_dump() if generation is not None else {}
        gen.update(
            width=self.width_spin.value(),
            height=self.height_spin.value(),
            variations=self.variations_spin.value(),
        )
        printify = _attr(settings, "printify", None)
        pf: dict[str, Any] = printify.model_dump() if printify is not None else {}
        pf.update(base_url=self.base_url_edit.text().strip(), shop_id=self.shop_combo.currentData())
        return {
            "comfyui_servers": self.server_urls(),
            "max_in_flight_per_server": self.in_flight_spin.value(),
            "workflow_path": self.workflow_path_edit.text().strip() or None,
            "prompt_input_override": self.prompt_input_edit.text().strip() or None,
            "workflow_values": parse_workflow_values(self.workflow_values_edit.toPlainText()),
            "generation": gen,
            "printify": pf,
            "auto_publish": self.auto_publish_check.isChecked(),
            "desktop": {
                "notify": self.notify_check.isChecked(),
                "notify_after_seconds": float(self.notify_after_spin.value()),
                "notify_sound": self.notify_sound_check.isChecked(),
                "close_to_tray": self.close_to_tray_check.isChecked(),
            },
        }

    def _selected_or_first_url(self) -> str:
        item = self.servers_list.currentItem()
        if item is not None:
            return item.text()
        typed = self.server_url_edit.text().strip()
        if typed:
            return typed
        urls = self.server_urls()
        return urls[0] if urls else ""

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _on_add_server_clicked(self) -> None:
        url = self.server_url_edit.text().strip().rstrip("/")
        problem = validate_server_url(url)
        if problem is not None:
            self.error_label.setText(problem)
            return
        if url not in self.server_urls():
            self.servers_list.addItem(url)
        self.server_url_edit.clear()
        self.error_label.setText("")

    @Slot()
    def _on_remove_server_clicked(self) -> None:
        row = self.servers_list.currentRow()
        if row >= 0:
            self.servers_list.takeItem(row)

    @Slot()
    def _on_test_connection_clicked(self) -> None:
        url = self._selected_or_first_url()
        if not url:
            self.test_result_label.setText(self.tr("Add a server URL first."))
            return
        if self.controller.test_connection(url):
            self.test_result_label.setText(self.tr("Testing %1…").replace("%1", url))
            self.test_connection_button.setEnabled(False)

    @Slot(str, bool, str)
    def _on_controller_connection_tested(self, url: str, ok: bool, message: str) -> None:
        self.test_connection_button.setEnabled(self.controller.can_test_connection)
        mark = "✓" if ok else "✗"
        self.test_result_label.setText(f"{mark} {url}: {message}")
        self.test_result_label.setStyleSheet("color: #2e9d4f;" if ok else "color: #c0392b;")

    @Slot()
    def _on_browse_workflow_clicked(self) -> None:
        dialog = QFileDialog(self, self.tr("Choose a ComfyUI workflow (API format)"))
        dialog.setObjectName("workflow_file_dialog")
        dialog.setNameFilter(self.tr("Workflow JSON (*.json)"))
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self._on_workflow_file_selected)
        self._file_dialog = dialog
        dialog.open()

    @Slot(str)
    def _on_workflow_file_selected(self, path: str) -> None:
        self.workflow_path_edit.setText(path)
        if self.workflow is not None and self.workflow.load(path):
            self.workflow_summary_label.setText(self.tr("Reading the workflow…"))

    @Slot(str, str, list)
    def _on_workflow_loaded(self, name: str, summary: str, problems: list[str]) -> None:
        self.workflow_summary_label.setStyleSheet("")
        self.workflow_summary_label.setText(f"{name}: {summary}")
        self.workflow_problems_list.clear()
        for problem in problems:
            self.workflow_problems_list.addItem(f"⚠ {problem}")
        self.workflow_problems_list.setVisible(bool(problems))

    @Slot(str)
    def _on_workflow_failed(self, message: str) -> None:
        self.workflow_summary_label.setStyleSheet("color: #c0392b;")
        self.workflow_summary_label.setText(message)
        self.workflow_problems_list.hide()

    @Slot()
    def _on_save_token_clicked(self) -> None:
        if self.printify is None:
            return
        if self.printify.save_token(self.token_edit.text()):
            self._token_pending = True
            self.save_token_button.setEnabled(False)
            self.token_status_label.setStyleSheet("")
            self.token_status_label.setText(self.tr("Saving the token…"))

    @Slot(bool, str)
    def _on_printify_token_saved(self, ok: bool, message: str) -> None:
        self._token_pending = False
        self.save_token_button.setEnabled(True)
        if ok:
            self.token_edit.clear()
            self.token_status_label.setStyleSheet("color: #2e9d4f;")
            self.token_status_label.setText("✓ " + self.tr("Token saved."))
        else:
            self.token_status_label.setStyleSheet("color: #c0392b;")
            self.token_status_label.setText("✗ " + message)

    @Slot(str)
    def _on_printify_store_described(self, text: str) -> None:
        self.store_label.setText(self.tr("Tokens are kept in: %1").replace("%1", text))

    def _typed_printify(self) -> tuple[str | None, str | None]:
        """The API address and token as typed (not saved yet); None: use the saved one."""
        return self.base_url_edit.text().strip() or None, self.token_edit.text().strip() or None

    @Slot()
    def _on_load_shops_clicked(self) -> None:
        if self.printify is not None and self.printify.load_shops(*self._typed_printify()):
            self.load_shops_button.setEnabled(False)
            self.printify_test_label.setText(self.tr("Loading shops…"))

    @Slot(list)
    def _on_printify_shops_loaded(self, shops: list[tuple[str, str]]) -> None:
        self.load_shops_button.setEnabled(True)
        current = self.shop_combo.currentData()
        self.shop_combo.clear()
        self.shop_combo.addItem(self.tr("(the only shop on the account)"), None)
        for shop_id, title in shops:
            value = int(shop_id) if str(shop_id).isdigit() else None
            if value is None:
                continue
            self.shop_combo.addItem(f"{title} ({shop_id})", value)
        found = self.shop_combo.findData(current)
        self.shop_combo.setCurrentIndex(found if found >= 0 else (1 if len(shops) == 1 else 0))
        self.printify_test_label.setStyleSheet("")
        self.printify_test_label.setText(self.tr("%n shop(s) found.", "", len(shops)))

    @Slot(str)
    def _on_printify_shops_failed(self, message: str) -> None:
        self.load_shops_button.setEnabled(True)
        self.printify_test_label.setStyleSheet("color: #c0392b;")
        self.printify_test_label.setText("✗ " + message)

    @Slot()
    def _on_printify_test_clicked(self) -> None:
        if self.printify is not None and self.printify.test(*self._typed_printify()):
            self.printify_test_button.setEnabled(False)
            self.printify_test_label.setStyleSheet("")
            self.printify_test_label.setText(self.tr("Testing…"))

    @Slot(bool, str)
    def _on_printify_tested(self, ok: bool, message: str) -> None:
        self.printify_test_button.setEnabled(True)
        self.printify_test_label.setStyleSheet("color: #2e9d4f;" if ok else "color: #c0392b;")
        self.printify_test_label.setText(("✓ " if ok else "✗ ") + message)

    @Slot()
    def _on_save_clicked(self) -> None:
        if not self.server_urls():
            self.error_label.setText(self.tr("Add at least one ComfyUI server."))
            return
        changes = self.changes()
        plan = self.products_editor.save_plan()
        if plan.problems:
            self.tabs.setCurrentWidget(self.products_tab)
            name = self.products_editor.selected_name().strip()
            self.error_label.setText(
                self.tr("Product template “%1” needs fixing before Save (see above).")
                .replace("%1", name)
                if name
                else self.tr("Keep at least one product template.")
            )  # fmt: skip
            return
        if plan.templates is not None:
            changes["product_templates"] = plan.templates
        if self.token_edit.text().strip() and self.printify is not None:
            self._on_save_token_clicked()
        problems = self.controller.update(seller_costs=plan.costs, **changes)
        if problems:
            self.error_label.setText("\n".join(problems))
            return
        self.save_button.setEnabled(False)
        self.error_label.setText("")

    @Slot(object)
    def _on_controller_settings_saved(self, _settings: object) -> None:
        if not self.save_button.isEnabled():
            self.save_button.setEnabled(True)
            self.accept()

    @Slot(str)
    def _on_controller_settings_failed(self, message: str) -> None:
        self.save_button.setEnabled(True)
        self.error_label.setText(message)


def parse_workflow_values(text: str) -> dict[str, Any]:
    """``NODE.INPUT=VALUE`` lines -> a dict (values read as JSON when they are JSON)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not line.strip():
            continue
        if not sep:
            out[line.strip()] = ""  # refused by the settings validation, with its name
            continue
        try:
            out[key.strip()] = json.loads(raw.strip())
        except ValueError:
            out[key.strip()] = raw.strip()
    return out
