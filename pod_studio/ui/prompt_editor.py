"""UI layer: PromptEditor — prompts (one per line), options, Generate and Cancel all.

It shows the job count live ("3 prompts × 2 variations = 6 jobs") and the controller's
verdict inline; the rules live in ``GenerationController.check``.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.generation import (
    MAX_VARIATIONS,
    FormCheck,
    GenerationController,
    PromptForm,
)
from pod_studio.ui.widgets import side_spin, size_row

_SEED_MAX = 2**31 - 1


class PromptEditor(QWidget):
    """The left pane: what to generate."""

    def __init__(
        self,
        controller: GenerationController,
        parent: QWidget | None = None,
        *,
        width: int = 1024,
        height: int = 1024,
        variations: int = 1,
        negative: str = "",
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("prompt_editor")

        self.prompts_edit = QPlainTextEdit(self)
        self.prompts_edit.setObjectName("prompts_edit")
        self.prompts_edit.setPlaceholderText(
            self.tr("One prompt per line, e.g.\nretro sunset over mountains, vector t-shirt design")
        )
        self.job_count_label = QLabel(self)
        self.job_count_label.setObjectName("job_count_label")
        self.negative_edit = QPlainTextEdit(self)
        self.negative_edit.setObjectName("negative_edit")
        self.negative_edit.setPlaceholderText(self.tr("What to avoid (optional)"))
        self.negative_edit.setMaximumHeight(64)
        self.negative_edit.setPlainText(negative)

        self.variations_spin = QSpinBox(self)
        self.variations_spin.setObjectName("variations_spin")
        self.variations_spin.setRange(1, MAX_VARIATIONS)
        self.variations_spin.setValue(max(1, min(variations, MAX_VARIATIONS)))
        self.fixed_seed_check = QCheckBox(self.tr("Fixed seed"), self)
        self.fixed_seed_check.setObjectName("fixed_seed_check")
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setObjectName("seed_spin")
        self.seed_spin.setRange(0, _SEED_MAX)
        self.seed_spin.setEnabled(False)
        self.width_spin = side_spin(self, "width_spin", width)
        self.height_spin = side_spin(self, "height_spin", height)
        self.checkpoint_combo = QComboBox(self)
        self.checkpoint_combo.setObjectName("checkpoint_combo")
        self.checkpoint_combo.addItem(self.tr("(from workflow)"), None)
        self.refresh_checkpoints_button = QPushButton(self.tr("Refresh"), self)
        self.refresh_checkpoints_button.setObjectName("refresh_checkpoints_button")
        self.checkpoint_status_label = QLabel(self)
        self.checkpoint_status_label.setObjectName("checkpoint_status_label")
        self.checkpoint_status_label.setWordWrap(True)
        self.checkpoint_status_label.setProperty("role", "hint")

        self.message_label = QLabel(self)
        self.message_label.setObjectName("validation_label")
        self.message_label.setWordWrap(True)
        self.generate_button = QPushButton(self.tr("Generate"), self)
        self.generate_button.setObjectName("generate_button")
        self.generate_button.setDefault(True)
        self.cancel_all_button = QPushButton(self.tr("Cancel all"), self)
        self.cancel_all_button.setObjectName("cancel_all_button")
        self.cancel_all_button.setEnabled(False)

        self._build_layout()
        self._connect_signals()
        self._on_form_changed()

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        title = QLabel(self.tr("Prompts"), self)
        title.setProperty("role", "heading")
        layout.addWidget(title)
        layout.addWidget(self.prompts_edit, 3)
        layout.addWidget(self.job_count_label)
        layout.addWidget(QLabel(self.tr("Negative prompt"), self))
        layout.addWidget(self.negative_edit)

        form = QFormLayout()
        form.setSpacing(6)
        form.addRow(self.tr("Variations"), self.variations_spin)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.fixed_seed_check)
        seed_row.addWidget(self.seed_spin, 1)
        form.addRow(self.tr("Seed"), seed_row)
        form.addRow(self.tr("Size"), size_row(self, self.width_spin, self.height_spin))
        ckpt_row = QHBoxLayout()
        ckpt_row.addWidget(self.checkpoint_combo, 1)
        ckpt_row.addWidget(self.refresh_checkpoints_button)
        form.addRow(self.tr("Checkpoint"), ckpt_row)
        layout.addLayout(form)
        layout.addWidget(self.checkpoint_status_label)
        layout.addWidget(self.message_label)

        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_all_button)
        buttons.addStretch(1)
        buttons.addWidget(self.generate_button)
        layout.addLayout(buttons)

    def _connect_signals(self) -> None:
        self.prompts_edit.textChanged.connect(self._on_form_changed)
        self.variations_spin.valueChanged.connect(self._on_form_changed)
        self.width_spin.valueChanged.connect(self._on_form_changed)
        self.height_spin.valueChanged.connect(self._on_form_changed)
        self.fixed_seed_check.toggled.connect(self._on_fixed_seed_toggled)
        self.generate_button.clicked.connect(self._on_generate_clicked)
        self.cancel_all_button.clicked.connect(self._on_cancel_all_clicked)
        self.refresh_checkpoints_button.clicked.connect(self.refresh_checkpoints)
        self.controller.sig_validation_failed.connect(self._on_controller_validation_failed)
        self.controller.sig_batch_failed.connect(self._on_controller_batch_failed)
        self.controller.sig_batch_started.connect(self._on_controller_batch_started)
        self.controller.sig_busy_changed.connect(self._on_controller_busy_changed)
        self.controller.sig_checkpoints_loaded.connect(self._on_controller_checkpoints_loaded)
        self.controller.sig_checkpoints_failed.connect(self._on_controller_checkpoints_failed)

    # -- reading the form ---------------------------------------------------------------

    def form(self) -> PromptForm:
        checkpoint = self.checkpoint_combo.currentData()
        return PromptForm(
            text=self.prompts_edit.toPlainText(),
            negative=self.negative_edit.toPlainText(),
            variations=self.variations_spin.value(),
            seed=self.seed_spin.value() if self.fixed_seed_check.isChecked() else None,
            width=self.width_spin.value(),
            height=self.height_spin.value(),
            checkpoint=checkpoint if isinstance(checkpoint, str) else None,
        )

    def count_text(self, check: FormCheck) -> str:
        p = check.prompts
        v = check.variations
        prompts = self.tr("1 prompt") if p == 1 else self.tr("%n prompts", "", p)
        variations = self.tr("1 variation") if v == 1 else self.tr("%n variations", "", v)
        jobs = self.tr("1 job") if check.jobs == 1 else self.tr("%n jobs", "", check.jobs)
        return f"{prompts} × {variations} = {jobs}"

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _on_form_changed(self) -> None:
        check = self.controller.check(self.form())
        self.job_count_label.setText(self.count_text(check))
        lines = [f"⚠ {e}" for e in check.errors] + [f"ℹ {w}" for w in check.warnings]
        self.message_label.setText("\n".join(lines))
        self.message_label.setProperty("role", "error" if check.errors else "hint")
        self.message_label.setStyleSheet("color: #c0392b;" if check.errors else "color: #7a808a;")
        self.generate_button.setEnabled(check.ok)

    @Slot(bool)
    def _on_fixed_seed_toggled(self, checked: bool) -> None:
        self.seed_spin.setEnabled(checked)

    @Slot()
    def _on_generate_clicked(self) -> None:
        self.controller.start_form(self.form())

    @Slot()
    def _on_cancel_all_clicked(self) -> None:
        self.controller.cancel_all()

    @Slot(str)
    def _on_controller_validation_failed(self, message: str) -> None:
        self.message_label.setText(f"⚠ {message}")
        self.message_label.setStyleSheet("color: #c0392b;")

    @Slot(str, str)
    def _on_controller_batch_failed(self, _batch_id: str, message: str) -> None:
        self.message_label.setText(
            self.tr("⚠ The batch could not start: %1").replace("%1", message)
        )
        self.message_label.setStyleSheet("color: #c0392b;")

    @Slot(str, list)
    def _on_controller_batch_started(self, _batch_id: str, job_ids: list[str]) -> None:
        self.message_label.setStyleSheet("color: #7a808a;")
        self.message_label.setText(self.tr("Started %n job(s).", "", len(job_ids)))

    @Slot(bool)
    def _on_controller_busy_changed(self, busy: bool) -> None:
        self.cancel_all_button.setEnabled(busy)

    @Slot()
    def refresh_checkpoints(self) -> None:
        if self.controller.load_checkpoints():
            self.checkpoint_status_label.setText(self.tr("Loading checkpoints…"))
            self.refresh_checkpoints_button.setEnabled(False)
        else:
            self.refresh_checkpoints_button.setEnabled(False)
            self.checkpoint_status_label.setText("")

    @Slot(list)
    def _on_controller_checkpoints_loaded(self, names: list[str]) -> None:
        current = self.checkpoint_combo.currentData()
        self.checkpoint_combo.clear()
        self.checkpoint_combo.addItem(self.tr("(from workflow)"), None)
        for name in names:
            self.checkpoint_combo.addItem(name, name)
        if isinstance(current, str) and current in names:
            self.checkpoint_combo.setCurrentIndex(names.index(current) + 1)
        self.refresh_checkpoints_button.setEnabled(True)
        self.checkpoint_status_label.setText(
            self.tr("%n checkpoint(s) on the server.", "", len(names))
            if names
            else self.tr("The server reports no checkpoints.")
        )

    @Slot(str)
    def _on_controller_checkpoints_failed(self, message: str) -> None:
        self.refresh_checkpoints_button.setEnabled(True)
        self.checkpoint_status_label.setText(
            self.tr("Could not list checkpoints: %1").replace("%1", message)
        )
