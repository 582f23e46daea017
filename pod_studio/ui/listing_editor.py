"""UI layer: ListingEditor — read and edit the words of a design's listings before they are made.

The seller names the design, writes its description and its own tags (each field left empty
keeps what the prompt gives); a preview shows the title and tags each chosen product will
get, with the platforms' limits (title 140 characters, 13 tags of 20 characters) checked as
they type. The words are kept per design (``ListingCopy``) and travel with the publish jobs.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from pod_studio.domain.models import GeneratedImage, ListingCopy
from pod_studio.domain.products import (
    MAX_TAGS,
    MAX_TITLE_CHARS,
    ProductTemplate,
    clean_prompt,
    listing_problems,
    render_texts,
    short_prompt,
)
from pod_studio.ui.widgets import RED


def parse_tags(text: str) -> tuple[str, ...]:
    """``"retro, sunset ,, 80s"`` -> ``("retro", "sunset", "80s")``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


class ListingEditor(QWidget):
    """The words of the listings, per design, with a live preview per chosen product.

    Signals:
        sig_changed(): the seller edited a field (the panel checks the limits again).
    """

    sig_changed = Signal()

    def __init__(
        self,
        designs: list[GeneratedImage],
        templates: list[ProductTemplate],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("listing_editor")
        self._designs = {d.image_id: d for d in designs}
        self._templates = {t.name: t for t in templates}
        self._chosen: list[str] = []
        self._copies: dict[str, ListingCopy | None] = {d.image_id: d.listing for d in designs}
        self._current = designs[0].image_id if designs else ""
        self._loading = False

        self.design_combo = QComboBox(self)
        self.design_combo.setObjectName("listing_design_combo")
        for design in designs:
            self.design_combo.addItem(short_prompt(design.prompt) or design.image_id[:8])
            self.design_combo.setItemData(self.design_combo.count() - 1, design.image_id)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("listing_name_edit")
        self.name_edit.setToolTip(
            self.tr("Used in every product's title, e.g. “<name> T-Shirt”. Empty: from the prompt.")
        )
        self.tags_edit = QLineEdit(self)
        self.tags_edit.setObjectName("listing_tags_edit")
        self.tags_edit.setToolTip(
            self.tr("Comma-separated; at most 13 tags of 20 characters. Empty: from the prompt.")
        )
        self.description_edit = QPlainTextEdit(self)
        self.description_edit.setObjectName("listing_description_edit")
        self.description_edit.setTabChangesFocus(True)
        self.description_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 3 + 12)
        self.preview_label = QLabel(self)
        self.preview_label.setObjectName("listing_preview_label")
        self.preview_label.setWordWrap(True)
        self.problems_label = QLabel(self)
        self.problems_label.setObjectName("listing_problems_label")
        self.problems_label.setWordWrap(True)
        palette = self.problems_label.palette()
        palette.setColor(self.problems_label.foregroundRole(), RED)
        self.problems_label.setPalette(palette)
        self.problems_label.hide()

        form = QFormLayout()
        if len(designs) > 1:
            form.addRow(self.tr("Design"), self.design_combo)
        else:
            self.design_combo.hide()
        form.addRow(self.tr("Name"), self.name_edit)
        form.addRow(self.tr("Tags"), self.tags_edit)
        form.addRow(self.tr("Description"), self.description_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.problems_label)
        layout.addStretch(1)

        self.design_combo.currentIndexChanged.connect(self._on_design_changed)
        self.name_edit.textChanged.connect(self._on_edited)
        self.tags_edit.textChanged.connect(self._on_edited)
        self.description_edit.textChanged.connect(self._on_edited)
        self._load(self._current)

    # -- values ---------------------------------------------------------------------------

    def copies(self) -> dict[str, ListingCopy | None]:
        """The seller's words per design id (``None``: all from the prompt)."""
        return dict(self._copies)

    def copy_of(self, image_id: str) -> ListingCopy | None:
        return self._copies.get(image_id)

    def select_design(self, image_id: str) -> None:
        index = self.design_combo.findData(image_id)
        if index >= 0:
            self.design_combo.setCurrentIndex(index)

    def set_chosen_templates(self, names: list[str]) -> None:
        self._chosen = [n for n in names if n in self._templates]
        self._refresh()

    def problems(self) -> list[str]:
        """Every limit the words break, for every design and chosen product."""
        out: list[str] = []
        for image_id, design in self._designs.items():
            copy = self._copies.get(image_id)
            for name in self._chosen:
                for problem in listing_problems(self._templates[name], design.prompt, copy):
                    text = f"{short_prompt(design.prompt)}: {problem}"
                    if text not in out:
                        out.append(text)
        return out

    # -- internals ------------------------------------------------------------------------

    def _load(self, image_id: str) -> None:
        design = self._designs.get(image_id)
        self._loading = True
        try:
            copy = self._copies.get(image_id)
            self.name_edit.setText(copy.name if copy is not None else "")
            self.tags_edit.setText(", ".join(copy.tags) if copy is not None else "")
            self.description_edit.setPlainText(copy.description if copy is not None else "")
            if design is not None:
                self.name_edit.setPlaceholderText(short_prompt(design.prompt))
                self.description_edit.setPlaceholderText(clean_prompt(design.prompt))
                self.tags_edit.setPlaceholderText(self.tr("from the prompt"))
        finally:
            self._loading = False
        self._refresh()

    def _read_fields(self) -> ListingCopy | None:
        copy = ListingCopy(
            name=self.name_edit.text()[:500],
            description=self.description_edit.toPlainText()[:50_000],
            tags=parse_tags(self.tags_edit.text()),
        )
        return None if copy.is_empty else copy

    def _refresh(self) -> None:
        design = self._designs.get(self._current)
        if design is None:
            self.preview_label.setText(self.tr("No design to describe."))
            return
        if not self._chosen:
            self.preview_label.setText(self.tr("Choose a product to see its title and tags."))
        else:
            copy = self._copies.get(self._current)
            rows = []
            for name in self._chosen:
                title, _description, tags = render_texts(
                    self._templates[name], design.prompt, copy=copy
                )
                rows.append(
                    f"<b>{escape(name)}</b>: {escape(title)} "
                    f"<span style='color:gray'>({len(title)}/{MAX_TITLE_CHARS})</span><br>"
                    f"<span style='color:gray'>{len(tags)}/{MAX_TAGS} tags:</span> "
                    f"{escape(', '.join(tags))}"
                )
            self.preview_label.setText("<br>".join(rows))
        problems = self.problems()
        self.problems_label.setVisible(bool(problems))
        shown = problems[:4] + ([f"… and {len(problems) - 4} more"] if len(problems) > 4 else [])
        self.problems_label.setText("\n".join(f"⚠ {p}" for p in shown))

    @Slot(int)
    def _on_design_changed(self, index: int) -> None:
        image_id = self.design_combo.itemData(index)
        if isinstance(image_id, str) and image_id != self._current:
            self._current = image_id
            self._load(image_id)

    @Slot()
    def _on_edited(self) -> None:
        if self._loading or not self._current:
            return
        self._copies[self._current] = self._read_fields()
        self._refresh()
        self.sig_changed.emit()
