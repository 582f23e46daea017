"""UI layer: Settings tabs for the local ComfyUI server, Shopify and Etsy.

- ``ComfyUIServerSettingsTab``: the ComfyUI folder, Python, extra arguments, port, auto
  start, keep running on exit; "Apply" validates and saves the section.
- ``ShopifySettingsTab``: shop domain (``*.myshopify.com``), admin token (to the keyring),
  API version; "Save and test" answers in words.
- ``EtsySettingsTab``: keystring and shared secret (to the keyring), Connect / Reconnect /
  Disconnect (the consent page opens in the browser), the shop, shipping profile, return
  policy and readiness state picked from the shop's lists, Test connection.

``add_platform_tabs(dialog, app)`` adds them to the Settings dialog's tab widget. Each tab
has its own buttons and result line; all work runs through the app controllers.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.platforms import EtsyController, ShopifyController
from pod_studio.app.settings import SettingsController

if TYPE_CHECKING:
    from pod_studio.app.app_controller import AppController

_OK = "color: #2e9d4f;"
_BAD = "color: #c0392b;"


def _result(label: QLabel, ok: bool, message: str) -> None:
    label.setStyleSheet(_OK if ok else _BAD)
    label.setText(("✓ " if ok else "✗ ") + message)


def _note(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setObjectName("settings_note")
    return label


def _without_loc(problem: str) -> str:
    """ "comfyui_process.extra_args: msg" -> "extra args: msg"; "comfyui_process: msg" -> msg."""
    loc, sep, msg = problem.partition(": ")
    if not sep or not loc.startswith("comfyui_process"):
        return problem
    field = loc.removeprefix("comfyui_process").lstrip(".")
    return f"{field.replace('_', ' ')}: {msg}" if field else msg


class ComfyUIServerSettingsTab(QWidget):
    def __init__(self, controller: SettingsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("settings_comfyui_server_tab")
        section = controller.current().comfyui_process
        self.enabled_check = QCheckBox(self.tr("Let POD Studio start and stop ComfyUI"), self)
        self.enabled_check.setObjectName("comfyui_enabled_check")
        self.enabled_check.setChecked(section.enabled)
        self.folder_edit = QLineEdit(section.folder, self)
        self.folder_edit.setObjectName("comfyui_folder_edit")
        self.folder_edit.setPlaceholderText(self.tr("The folder with ComfyUI's main.py"))
        self.browse_button = QPushButton(self.tr("Browse…"), self)
        self.browse_button.setObjectName("comfyui_folder_browse_button")
        self.python_edit = QLineEdit(section.python, self)
        self.python_edit.setObjectName("comfyui_python_edit")
        self.python_edit.setPlaceholderText(self.tr("The folder's venv, else python3"))
        self.args_edit = QLineEdit(shlex.join(section.extra_args), self)
        self.args_edit.setObjectName("comfyui_args_edit")
        self.args_edit.setPlaceholderText("--lowvram")
        self.port_spin = QSpinBox(self)
        self.port_spin.setObjectName("comfyui_port_spin")
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(section.port)
        self.auto_start_check = QCheckBox(self.tr("Start ComfyUI when POD Studio starts"), self)
        self.auto_start_check.setObjectName("comfyui_auto_start_check")
        self.auto_start_check.setChecked(section.auto_start)
        self.keep_running_check = QCheckBox(self.tr("Keep ComfyUI running when I quit"), self)
        self.keep_running_check.setObjectName("comfyui_keep_running_check")
        self.keep_running_check.setChecked(section.keep_running_on_exit)
        self.apply_button = QPushButton(self.tr("Apply"), self)
        self.apply_button.setObjectName("comfyui_server_apply_button")
        self.result_label = QLabel(self)
        self.result_label.setObjectName("comfyui_server_result_label")
        self.result_label.setWordWrap(True)
        self._dialog: QFileDialog | None = None

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow(self.enabled_check)
        form.addRow(self.tr("ComfyUI folder"), folder_row)
        form.addRow(self.tr("Python"), self.python_edit)
        form.addRow(self.tr("Extra arguments"), self.args_edit)
        form.addRow(self.tr("Port"), self.port_spin)
        form.addRow(self.auto_start_check)
        form.addRow(self.keep_running_check)
        layout = QVBoxLayout(self)
        layout.addWidget(
            _note(
                self.tr(
                    "POD Studio can run a ComfyUI installed on this computer: it starts it, "
                    "restarts it after a crash and shows its log in the ComfyUI server dock."
                ),
                self,
            )
        )
        layout.addLayout(form)
        layout.addWidget(self.apply_button)
        layout.addWidget(self.result_label)
        layout.addStretch(1)

        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.apply_button.clicked.connect(self.apply)
        controller.sig_settings_saved.connect(self._on_controller_settings_saved)

    def section(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled_check.isChecked(),
            "folder": self.folder_edit.text(),
            "python": self.python_edit.text(),
            "extra_args": self.args_edit.text(),
            "port": self.port_spin.value(),
            "auto_start": self.auto_start_check.isChecked(),
            "keep_running_on_exit": self.keep_running_check.isChecked(),
        }

    @Slot()
    def apply(self) -> bool:
        section = dict(self.controller.current().comfyui_process.model_dump(), **self.section())
        problems = self.controller.update(comfyui_process=section)
        if problems:
            _result(self.result_label, False, "; ".join(_without_loc(p) for p in problems))
            return False
        self.result_label.setStyleSheet("")
        self.result_label.setText(self.tr("saving…"))
        return True

    @Slot(object)
    def _on_controller_settings_saved(self, _settings: object) -> None:
        if self.result_label.text() == self.tr("saving…"):
            _result(self.result_label, True, self.tr("saved"))

    @Slot()
    def _on_browse_clicked(self) -> None:
        dialog = QFileDialog(self, self.tr("The ComfyUI folder (with main.py)"))
        dialog.setObjectName("comfyui_folder_dialog")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self.folder_edit.setText)
        self._dialog = dialog
        dialog.open()


class ShopifySettingsTab(QWidget):
    def __init__(self, controller: ShopifyController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("settings_shopify_tab")
        section = controller.current().shopify
        self.domain_edit = QLineEdit(section.shop_domain, self)
        self.domain_edit.setObjectName("shopify_domain_edit")
        self.domain_edit.setPlaceholderText("my-shop.myshopify.com")
        self.token_edit = QLineEdit(self)
        self.token_edit.setObjectName("shopify_token_edit")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText(self.tr("shpat_… (kept in the system keyring)"))
        self.version_edit = QLineEdit(section.api_version, self)
        self.version_edit.setObjectName("shopify_version_edit")
        self.test_button = QPushButton(self.tr("Save and test connection"), self)
        self.test_button.setObjectName("shopify_test_button")
        self.result_label = QLabel(self)
        self.result_label.setObjectName("shopify_result_label")
        self.result_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow(self.tr("Shop domain"), self.domain_edit)
        form.addRow(self.tr("Admin API token"), self.token_edit)
        form.addRow(self.tr("API version"), self.version_edit)
        layout = QVBoxLayout(self)
        layout.addWidget(
            _note(
                self.tr(
                    "Your shop's admin address ends in .myshopify.com (Settings → Domains in "
                    "Shopify). The token comes from a custom app with write_products access."
                ),
                self,
            )
        )
        layout.addLayout(form)
        layout.addWidget(self.test_button)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self.test_button.clicked.connect(self.save_and_test)
        controller.sig_validation_failed.connect(self._on_controller_validation_failed)
        controller.sig_tested.connect(self._on_controller_tested)

    @Slot()
    def save_and_test(self) -> bool:
        started = self.controller.save_and_test(
            self.domain_edit.text(), self.version_edit.text(), self.token_edit.text()
        )
        if started:
            self.test_button.setEnabled(False)
            self.result_label.setStyleSheet("")
            self.result_label.setText(self.tr("testing…"))
        return started

    @Slot(str)
    def _on_controller_validation_failed(self, message: str) -> None:
        _result(self.result_label, False, message)

    @Slot(bool, str)
    def _on_controller_tested(self, ok: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        if ok:
            self.token_edit.clear()
        _result(self.result_label, ok, message)


_ETSY_LISTS = (
    ("shops", "shop_id", "Shop"),
    ("shipping_profiles", "shipping_profile_id", "Shipping profile"),
    ("return_policies", "return_policy_id", "Return policy"),
    ("readiness_states", "readiness_state_id", "Processing time"),
)


class EtsySettingsTab(QWidget):
    def __init__(self, controller: EtsyController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("settings_etsy_tab")
        self.keystring_edit = QLineEdit(self)
        self.keystring_edit.setObjectName("etsy_keystring_edit")
        self.keystring_edit.setPlaceholderText(self.tr("Your Etsy app's keystring"))
        self.secret_edit = QLineEdit(self)
        self.secret_edit.setObjectName("etsy_secret_edit")
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setPlaceholderText(self.tr("Shared secret (kept in the keyring)"))
        self.save_keys_button = QPushButton(self.tr("Save keys"), self)
        self.save_keys_button.setObjectName("etsy_save_keys_button")
        self.connect_button = QPushButton(self.tr("Connect / Reconnect"), self)
        self.connect_button.setObjectName("etsy_connect_button")
        self.disconnect_button = QPushButton(self.tr("Disconnect"), self)
        self.disconnect_button.setObjectName("etsy_disconnect_button")
        self.test_button = QPushButton(self.tr("Test connection"), self)
        self.test_button.setObjectName("etsy_test_button")
        self.load_button = QPushButton(self.tr("Load the shop's lists"), self)
        self.load_button.setObjectName("etsy_load_lists_button")
        self.save_choices_button = QPushButton(self.tr("Save choices"), self)
        self.save_choices_button.setObjectName("etsy_save_choices_button")
        self.save_choices_button.setEnabled(False)
        self.result_label = QLabel(self)
        self.result_label.setObjectName("etsy_result_label")
        self.result_label.setWordWrap(True)
        self.combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        form.addRow(self.tr("Keystring"), self.keystring_edit)
        form.addRow(self.tr("Shared secret"), self.secret_edit)
        form.addRow("", self.save_keys_button)
        for key, _field, label in _ETSY_LISTS:
            combo = QComboBox(self)
            combo.setObjectName(f"etsy_{key}_combo")
            combo.setPlaceholderText(self.tr("load the shop's lists"))
            self.combos[key] = combo
            form.addRow(self.tr(label), combo)
        buttons = QHBoxLayout()
        for b in (self.connect_button, self.disconnect_button, self.test_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lists = QHBoxLayout()
        lists.addWidget(self.load_button)
        lists.addWidget(self.save_choices_button)
        lists.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(
            _note(
                self.tr(
                    "Create an app at etsy.com/developers, register the redirect "
                    "http://127.0.0.1:8765/etsy/callback, paste its keys, then Connect: "
                    "Etsy asks you to allow POD Studio in your browser."
                ),
                self,
            )
        )
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(lists)
        layout.addWidget(self.result_label)
        layout.addStretch(1)
        self._connect_signals()

    def _connect_signals(self) -> None:
        c = self.controller
        self.save_keys_button.clicked.connect(self._on_save_keys_clicked)
        self.connect_button.clicked.connect(self._on_connect_clicked)
        self.disconnect_button.clicked.connect(self._on_disconnect_clicked)
        self.test_button.clicked.connect(self._on_test_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.save_choices_button.clicked.connect(self.save_choices)
        c.sig_validation_failed.connect(self._on_controller_failed)
        c.sig_keys_saved.connect(self._on_controller_keys_saved)
        c.sig_open_url.connect(self._on_controller_open_url)
        c.sig_connected.connect(self._on_controller_outcome)
        c.sig_disconnected.connect(self._on_controller_outcome)
        c.sig_tested.connect(self._on_controller_outcome)
        c.sig_choices_saved.connect(self._on_controller_outcome)
        c.sig_choices_loaded.connect(self._on_controller_choices_loaded)
        c.sig_choices_failed.connect(self._on_controller_failed)

    def _busy(self, text: str) -> None:
        self.result_label.setStyleSheet("")
        self.result_label.setText(text)

    @Slot()
    def _on_save_keys_clicked(self) -> None:
        if self.controller.save_keys(self.keystring_edit.text(), self.secret_edit.text()):
            self._busy(self.tr("saving the keys…"))

    @Slot()
    def _on_connect_clicked(self) -> None:
        self._busy(self.tr("waiting for you to allow POD Studio in the browser…"))
        self.controller.connect_shop()

    @Slot()
    def _on_disconnect_clicked(self) -> None:
        self._busy(self.tr("disconnecting…"))
        self.controller.disconnect_shop()

    @Slot()
    def _on_test_clicked(self) -> None:
        self._busy(self.tr("testing…"))
        self.controller.test()

    @Slot()
    def _on_load_clicked(self) -> None:
        self._busy(self.tr("loading the shop's lists…"))
        self.controller.load_choices()

    @Slot()
    def save_choices(self) -> bool:
        picks: dict[str, int | None] = {}
        for key, field, _label in _ETSY_LISTS:
            data = self.combos[key].currentData()
            picks[field] = int(data) if data not in (None, "") else None
        return self.controller.save_choices(picks)

    @Slot(str)
    def _on_controller_open_url(self, url: str) -> None:
        QDesktopServices.openUrl(QUrl(url))

    @Slot(bool, str)
    def _on_controller_keys_saved(self, ok: bool, message: str) -> None:
        if ok:
            self.secret_edit.clear()
        _result(self.result_label, ok, message)

    @Slot(bool, str)
    def _on_controller_outcome(self, ok: bool, message: str) -> None:
        _result(self.result_label, ok, message)

    @Slot(str)
    def _on_controller_failed(self, message: str) -> None:
        _result(self.result_label, False, message)

    @Slot(dict)
    def _on_controller_choices_loaded(self, lists: dict[str, list[tuple[str, str]]]) -> None:
        etsy = self.controller.current().etsy
        for key, field, _label in _ETSY_LISTS:
            combo = self.combos[key]
            combo.clear()
            for ident, label in lists.get(key, []):
                combo.addItem(label, ident)
            current = getattr(etsy, field)
            index = combo.findData(str(current)) if current is not None else -1
            combo.setCurrentIndex(index if index >= 0 else (0 if combo.count() else -1))
        self.save_choices_button.setEnabled(True)
        empty = [label for key, _f, label in _ETSY_LISTS if not lists.get(key)]
        if empty:
            _result(
                self.result_label,
                False,
                self.tr("the shop has no {what} yet: create them on Etsy").format(
                    what=", ".join(e.lower() for e in empty)
                ),
            )
        else:
            _result(self.result_label, True, self.tr("lists loaded: pick and save"))


def add_platform_tabs(tabs: QTabWidget, app: AppController) -> list[QWidget]:
    """Add the ComfyUI server, Shopify and Etsy tabs to a Settings dialog's tab widget."""
    added: list[QWidget] = [
        ComfyUIServerSettingsTab(app.settings, tabs),
        ShopifySettingsTab(app.shopify, tabs),
        EtsySettingsTab(app.etsy, tabs),
    ]
    for widget, title in zip(added, ("ComfyUI server", "Shopify", "Etsy"), strict=True):
        tabs.addTab(widget, tabs.tr(title))
    return added
