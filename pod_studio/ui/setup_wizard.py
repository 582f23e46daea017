"""UI layer: SetupWizard — the first-launch set-up (skippable; again via Help → Set-up).

1. ComfyUI: the default address, another URL or a local ComfyUI folder to start; says what
   answered (version, GPU) and which checkpoints it has, or why not; "Try demo mode".
2. Workflow: the chosen (or built-in) workflow checked against the server, missing nodes or
   models named.
3. Platforms (optional): Printify token, Shopify domain and token, Etsy connect — the same
   widgets as in Settings.
4. Products and prices (the templates' base prices, editable) and the export folder.

Non-modal (``open()``/``show()``); every check runs through the controllers, so the GUI
thread never waits. Finishing or skipping sets ``first_run_done``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from pod_studio.app.publishing import templates_with_prices
from pod_studio.domain.settings import DEFAULT_COMFYUI_URL
from pod_studio.ui.platform_settings import EtsySettingsTab, ShopifySettingsTab

if TYPE_CHECKING:
    from pod_studio.app.app_controller import AppController

_OK = "color: #2e9d4f;"
_BAD = "color: #c0392b;"


def _say(label: QLabel, ok: bool | None, text: str) -> None:
    label.setStyleSheet("" if ok is None else (_OK if ok else _BAD))
    label.setText(text if ok is None else ("✓ " if ok else "✗ ") + text)


def _label(parent: QWidget, name: str) -> QLabel:
    label = QLabel(parent)
    label.setObjectName(name)
    label.setWordWrap(True)
    return label


class ComfyUIPage(QWizardPage):
    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("setup_comfyui_page")
        self.setTitle(self.tr("Find ComfyUI"))
        self.setSubTitle(self.tr("POD Studio makes its designs on a ComfyUI server."))
        settings = app.settings.current()
        self.default_radio = QRadioButton(
            self.tr("ComfyUI on this computer at {url}").format(url=DEFAULT_COMFYUI_URL), self
        )
        self.default_radio.setObjectName("setup_default_radio")
        self.url_radio = QRadioButton(self.tr("Another address"), self)
        self.url_radio.setObjectName("setup_url_radio")
        self.folder_radio = QRadioButton(self.tr("Start ComfyUI from its folder"), self)
        self.folder_radio.setObjectName("setup_folder_radio")
        self.group = QButtonGroup(self)
        for b in (self.default_radio, self.url_radio, self.folder_radio):
            self.group.addButton(b)
        self.url_edit = QLineEdit(settings.comfyui_servers[0], self)
        self.url_edit.setObjectName("setup_url_edit")
        self.folder_edit = QLineEdit(settings.comfyui_process.folder, self)
        self.folder_edit.setObjectName("setup_folder_edit")
        self.folder_edit.setPlaceholderText(self.tr("The folder with ComfyUI's main.py"))
        self.browse_button = QPushButton(self.tr("Browse…"), self)
        self.browse_button.setObjectName("setup_folder_browse_button")
        self.check_button = QPushButton(self.tr("Check"), self)
        self.check_button.setObjectName("setup_check_button")
        self.demo_button = QPushButton(self.tr("Try demo mode"), self)
        self.demo_button.setObjectName("setup_demo_button")
        self.result_label = _label(self, "setup_comfyui_result_label")
        self.checkpoints_label = _label(self, "setup_checkpoints_label")
        self.default_radio.setChecked(settings.comfyui_servers[0] == DEFAULT_COMFYUI_URL)
        self.url_radio.setChecked(not self.default_radio.isChecked())
        self._dialog: QFileDialog | None = None
        self._pending_url = ""

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        buttons.addWidget(QLabel(self.tr("No ComfyUI yet?"), self))
        buttons.addWidget(self.demo_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.default_radio)
        layout.addWidget(self.url_radio)
        layout.addWidget(self.url_edit)
        layout.addWidget(self.folder_radio)
        layout.addLayout(folder_row)
        layout.addLayout(buttons)
        layout.addWidget(self.result_label)
        layout.addWidget(self.checkpoints_label)
        layout.addStretch(1)

        self.check_button.clicked.connect(self.check)
        self.demo_button.clicked.connect(self._on_demo_clicked)
        self.browse_button.clicked.connect(self._on_browse_clicked)
        app.settings.sig_connection_tested.connect(self._on_settings_connection_tested)
        app.settings.sig_settings_failed.connect(self._on_settings_failed)
        app.generation.sig_checkpoints_loaded.connect(self._on_checkpoints_loaded)
        app.generation.sig_checkpoints_failed.connect(self._on_checkpoints_failed)

    def chosen_url(self) -> str:
        if self.default_radio.isChecked():
            return DEFAULT_COMFYUI_URL
        if self.folder_radio.isChecked():
            url: str = self.app.settings.current().comfyui_process.url
            return url
        return self.url_edit.text().strip()

    @Slot()
    def check(self) -> None:
        self.checkpoints_label.setText("")
        if self.folder_radio.isChecked():
            folder = self.folder_edit.text().strip()
            if not folder:
                _say(self.result_label, False, self.tr("Choose the ComfyUI folder first."))
                return
            section = dict(
                self.app.settings.current().comfyui_process.model_dump(),
                enabled=True,
                folder=folder,
                auto_start=True,
            )
            if self.app.settings.update(comfyui_process=section):
                return  # the failure is shown by _on_settings_failed
            _say(
                self.result_label,
                None,
                self.tr(
                    "Starting ComfyUI from {folder}… (watch the ComfyUI server dock), "
                    "then press Check again."
                ).format(folder=folder),
            )
            self.folder_radio.setChecked(False)
            self.url_radio.setChecked(True)
            self.url_edit.setText(self.chosen_url())
            return
        self._pending_url = self.chosen_url()
        _say(self.result_label, None, self.tr("asking {url}…").format(url=self._pending_url))
        self.app.settings.test_connection(self._pending_url)

    @Slot(str, bool, str)
    def _on_settings_connection_tested(self, url: str, ok: bool, message: str) -> None:
        if url != self._pending_url:
            return
        if not ok:
            _say(self.result_label, False, message)
            return
        _say(self.result_label, True, message)
        if self.app.settings.current().comfyui_servers == [url]:
            self.app.generation.load_checkpoints()
            return
        # use this server from now on; its checkpoints once the engine switched to it
        self.app.settings.sig_settings_saved.connect(
            self._on_servers_saved, Qt.ConnectionType.SingleShotConnection
        )
        self.app.settings.update(comfyui_servers=[url])

    @Slot(object)
    def _on_servers_saved(self, _settings: object) -> None:
        self.app.generation.load_checkpoints()

    @Slot(str)
    def _on_settings_failed(self, message: str) -> None:
        if self.isVisible():
            _say(self.result_label, False, message)

    @Slot(list)
    def _on_checkpoints_loaded(self, names: list[str]) -> None:
        if not names:
            _say(
                self.checkpoints_label,
                False,
                self.tr("ComfyUI has no checkpoint: put a model in ComfyUI/models/checkpoints."),
            )
            return
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        _say(
            self.checkpoints_label,
            True,
            self.tr("{n} checkpoint(s): {names}").format(n=len(names), names=shown),
        )

    @Slot(str)
    def _on_checkpoints_failed(self, message: str) -> None:
        _say(self.checkpoints_label, False, self.tr("checkpoints: {m}").format(m=message))

    @Slot()
    def _on_demo_clicked(self) -> None:
        wizard = self.wizard()
        if isinstance(wizard, SetupWizard):
            wizard.skip()
        self.app.request_demo()

    @Slot()
    def _on_browse_clicked(self) -> None:
        dialog = QFileDialog(self, self.tr("The ComfyUI folder (with main.py)"))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self.folder_edit.setText)
        dialog.fileSelected.connect(lambda _p: self.folder_radio.setChecked(True))
        self._dialog = dialog
        dialog.open()


class WorkflowPage(QWizardPage):
    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("setup_workflow_page")
        self.setTitle(self.tr("Check the workflow"))
        self.setSubTitle(self.tr("The workflow must only use nodes and models your ComfyUI has."))
        path = app.settings.current().workflow_path
        self.workflow_label = _label(self, "setup_workflow_label")
        self.workflow_label.setText(path or self.tr("The built-in text-to-image workflow"))
        self.check_button = QPushButton(self.tr("Check against the server"), self)
        self.check_button.setObjectName("setup_workflow_check_button")
        self.choose_button = QPushButton(self.tr("Choose another workflow (API JSON)…"), self)
        self.choose_button.setObjectName("setup_workflow_choose_button")
        self.result_label = _label(self, "setup_workflow_result_label")
        self.problems_list = QListWidget(self)
        self.problems_list.setObjectName("setup_workflow_problems")
        self.problems_list.hide()
        self._dialog: QFileDialog | None = None
        row = QHBoxLayout()
        row.addWidget(self.check_button)
        row.addWidget(self.choose_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.workflow_label)
        layout.addLayout(row)
        layout.addWidget(self.result_label)
        layout.addWidget(self.problems_list, 1)
        self.check_button.clicked.connect(self.check)
        self.choose_button.clicked.connect(self._on_choose_clicked)
        app.setup.sig_workflow_checked.connect(self._on_checked)
        app.setup.sig_workflow_failed.connect(self._on_failed)
        app.workflow.sig_workflow_loaded.connect(self._on_checked)
        app.workflow.sig_workflow_failed.connect(self._on_failed)

    def initializePage(self) -> None:
        self.check()

    @Slot()
    def check(self) -> None:
        _say(self.result_label, None, self.tr("checking…"))
        self.app.setup.check_workflow()

    def open_file(self, path: str) -> None:
        self.workflow_label.setText(path)
        _say(self.result_label, None, self.tr("loading {path}…").format(path=path))
        self.app.workflow.load(path)

    @Slot(str, str, list)
    def _on_checked(self, name: str, summary: str, problems: list[str]) -> None:
        self.problems_list.clear()
        self.problems_list.addItems(problems)
        self.problems_list.setVisible(bool(problems))
        if problems:
            _say(
                self.result_label,
                False,
                self.tr("{name} does not fit this server yet ({n} problem(s)):").format(
                    name=name, n=len(problems)
                ),
            )
        else:
            _say(self.result_label, True, self.tr("{name} fits: {s}").format(name=name, s=summary))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.problems_list.hide()
        _say(self.result_label, False, message)

    @Slot()
    def _on_choose_clicked(self) -> None:
        dialog = QFileDialog(self, self.tr("A ComfyUI workflow (API format)"))
        dialog.setNameFilter(self.tr("Workflow (*.json)"))
        dialog.fileSelected.connect(self.open_file)
        self._dialog = dialog
        dialog.open()


class PlatformsPage(QWizardPage):
    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("setup_platforms_page")
        self.setTitle(self.tr("Where you sell (optional)"))
        self.setSubTitle(
            self.tr("Connect any of them now or later in Settings; the export folder always works.")
        )
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("setup_platform_tabs")
        printify = QWidget(self.tabs)
        self.printify_token_edit = QLineEdit(printify)
        self.printify_token_edit.setObjectName("setup_printify_token_edit")
        self.printify_token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.printify_token_edit.setPlaceholderText(self.tr("Printify API token"))
        self.printify_button = QPushButton(self.tr("Save and test"), printify)
        self.printify_button.setObjectName("setup_printify_button")
        self.printify_label = _label(printify, "setup_printify_label")
        form = QFormLayout(printify)
        form.addRow(self.tr("API token"), self.printify_token_edit)
        form.addRow("", self.printify_button)
        form.addRow(self.printify_label)
        self.tabs.addTab(printify, "Printify")
        self.shopify_tab = ShopifySettingsTab(app.shopify, self.tabs)
        self.tabs.addTab(self.shopify_tab, "Shopify")
        self.etsy_tab = EtsySettingsTab(app.etsy, self.tabs)
        self.tabs.addTab(self.etsy_tab, "Etsy")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        self.printify_button.clicked.connect(self.save_printify)
        app.printify.sig_token_saved.connect(self._on_printify_token_saved)
        app.printify.sig_tested.connect(self._on_printify_tested)

    @Slot()
    def save_printify(self) -> None:
        if self.app.printify.save_token(self.printify_token_edit.text()):
            _say(self.printify_label, None, self.tr("saving…"))

    @Slot(bool, str)
    def _on_printify_token_saved(self, ok: bool, message: str) -> None:
        if not ok:
            _say(self.printify_label, False, message)
            return
        self.printify_token_edit.clear()
        _say(self.printify_label, None, self.tr("token saved; testing…"))
        self.app.printify.test()

    @Slot(bool, str)
    def _on_printify_tested(self, ok: bool, message: str) -> None:
        _say(self.printify_label, ok, message)


class ProductsPage(QWizardPage):
    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("setup_products_page")
        self.setTitle(self.tr("Products, prices and the export folder"))
        self.setSubTitle(self.tr("Your selling price per product; edit any of them."))
        self.templates = app.publishing.templates()
        self.table = QTableWidget(len(self.templates), 3, self)
        self.table.setObjectName("setup_templates_table")
        self.table.setHorizontalHeaderLabels(
            [self.tr("Product"), self.tr("Type"), self.tr("Base price")]
        )
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        for row, t in enumerate(self.templates):
            for col, text in enumerate(
                (t.name, t.product_type, f"{t.price.base} {t.price.currency}")
            ):
                item = QTableWidgetItem(text)
                if col < 2:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(row, col, item)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        self.export_edit = QLineEdit(app.settings.current().export_dir or "", self)
        self.export_edit.setObjectName("setup_export_edit")
        self.export_edit.setPlaceholderText(self.tr("Default: Pictures/POD Studio exports"))
        self.result_label = _label(self, "setup_products_result_label")
        layout = QVBoxLayout(self)
        if not self.templates:
            layout.addWidget(QLabel(self.tr("No product templates were found."), self))
        layout.addWidget(self.table, 1)
        form = QFormLayout()
        form.addRow(self.tr("Export folder"), self.export_edit)
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        self._saved = False
        app.setup.sig_finished.connect(self._on_setup_finished)

    def prices(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for row, t in enumerate(self.templates):
            item = self.table.item(row, 2)
            text = item.text().strip() if item is not None else ""
            text = text.removesuffix(t.price.currency).strip()
            if text != str(t.price.base):
                out[t.name] = text
        return out

    def validatePage(self) -> bool:
        """Save, then finish when the controller says it is saved (never waits here)."""
        if self._saved:
            return True
        changes: dict[str, object] = {"export_dir": self.export_edit.text().strip() or None}
        prices = self.prices()
        if prices:
            templates, problems = templates_with_prices(self.templates, prices)
            if problems:
                _say(self.result_label, False, "; ".join(problems))
                return False
            changes["product_templates"] = templates
        if self.app.setup.finish(**changes):
            return False
        _say(self.result_label, None, self.tr("saving…"))
        return False

    @Slot(bool, str)
    def _on_setup_finished(self, ok: bool, message: str) -> None:
        if not self.isVisible():
            return
        _say(self.result_label, ok, message)
        if ok:
            self._saved = True
            wizard = self.wizard()
            if wizard is not None:
                wizard.accept()


class SetupWizard(QWizard):
    """The first-launch set-up. ``skip()`` (the Skip button, closing) marks it done too."""

    def __init__(self, app: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.setObjectName("setup_wizard")
        self.setWindowTitle(self.tr("Set up POD Studio"))
        self.setModal(False)
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.resize(680, 560)
        self.comfyui_page = ComfyUIPage(app, self)
        self.workflow_page = WorkflowPage(app, self)
        self.platforms_page = PlatformsPage(app, self)
        self.products_page = ProductsPage(app, self)
        for page in (
            self.comfyui_page,
            self.workflow_page,
            self.platforms_page,
            self.products_page,
        ):
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.CustomButton1, self.tr("Skip set-up"))
        self.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        self.button(QWizard.WizardButton.CustomButton1).setObjectName("setup_skip_button")
        self.customButtonClicked.connect(self._on_custom_button_clicked)
        self._done = False

    def skip(self) -> None:
        """Close and remember the set-up as done (Help → Set-up brings it back)."""
        if not self._done:
            self._done = True
            if self.app.setup.needed:
                self.app.setup.finish()
        super().reject()

    def reject(self) -> None:
        self.skip()

    @Slot(int)
    def _on_custom_button_clicked(self, which: int) -> None:
        if which == QWizard.WizardButton.CustomButton1.value:
            self.skip()
