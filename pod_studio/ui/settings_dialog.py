"""UI layer: SettingsDialog — ComfyUI servers, concurrency, defaults and the workflow file.

Non-modal (``open()``). URLs are checked as they are added; "Test connection" and the
workflow import run in the background through their controllers; Save validates the whole
settings model and closes when the controller reports the save.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.generation import MAX_SIDE, MAX_VARIATIONS, MIN_SIDE, SIDE_STEP
from pod_studio.app.settings import SettingsController, WorkflowController, validate_server_url


def _attr(obj: Any, name: str, default: Any) -> Any:
    return getattr(obj, name, default) if obj is not None else default


class SettingsDialog(QDialog):
    def __init__(
        self,
        controller: SettingsController,
        workflow: WorkflowController | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.workflow = workflow
        self._file_dialog: QFileDialog | None = None
        self.setObjectName("settings_dialog")
        self.setWindowTitle(self.tr("Settings"))
        self.setModal(False)
        self.resize(560, 620)
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
        self.width_spin = self._side_spin("default_width_spin", _attr(generation, "width", 1024))
        self.height_spin = self._side_spin("default_height_spin", _attr(generation, "height", 1024))
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
        self.workflow_problems_list = QListWidget(self)
        self.workflow_problems_list.setObjectName("workflow_problems_list")
        self.workflow_problems_list.setMaximumHeight(90)
        self.workflow_problems_list.hide()

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

    def _side_spin(self, name: str, value: int) -> QSpinBox:
        spin = QSpinBox(self)
        spin.setObjectName(name)
        spin.setRange(MIN_SIDE, MAX_SIDE)
        spin.setSingleStep(SIDE_STEP)
        spin.setSuffix(" px")
        spin.setValue(int(value))
        return spin

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        servers = QGroupBox(self.tr("ComfyUI servers"), self)
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

        defaults = QGroupBox(self.tr("Defaults for new batches"), self)
        d_layout = QFormLayout(defaults)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×", self))
        size_row.addWidget(self.height_spin)
        d_layout.addRow(self.tr("Size"), size_row)
        d_layout.addRow(self.tr("Variations"), self.variations_spin)
        layout.addWidget(defaults)

        wf = QGroupBox(self.tr("Workflow"), self)
        w_layout = QVBoxLayout(wf)
        path_row = QHBoxLayout()
        path_row.addWidget(self.workflow_path_edit, 1)
        path_row.addWidget(self.browse_workflow_button)
        w_layout.addLayout(path_row)
        w_layout.addWidget(self.workflow_summary_label)
        w_layout.addWidget(self.workflow_problems_list)
        layout.addWidget(wf)
        layout.addStretch(1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

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
        return {
            "comfyui_servers": self.server_urls(),
            "max_in_flight_per_server": self.in_flight_spin.value(),
            "workflow_path": self.workflow_path_edit.text().strip() or None,
            "generation": gen,
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
    def _on_save_clicked(self) -> None:
        if not self.server_urls():
            self.error_label.setText(self.tr("Add at least one ComfyUI server."))
            return
        problems = self.controller.update(**self.changes())
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
