"""UI layer: ProductsEditor — Settings → Products: the product templates and the seller's costs.

A list of templates (Add, Duplicate, Remove) beside a form for the selected one: name, product
type, Printify blueprint and print provider, colours, sizes, base price and currency, a table
of sizes with their own price and the seller's provider cost, shipping per item, and the
listing texts with their placeholders. Every edit is checked at once through the app layer's
drafts (``pod_studio.app.products``): problems show under the form, naming the field, and the
list marks the template; nothing typed is lost. The dialog's Save asks :meth:`save_plan` for
what to write.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.products import (
    PRODUCT_TYPES,
    FieldProblem,
    SavePlan,
    TemplateDraft,
    build_draft,
    collect,
    draft_from,
    unique_name,
)
from pod_studio.domain.costs import SellerCosts
from pod_studio.domain.products import ProductTemplate

RED = "#c0392b"
GREY = "#7a808a"
PRICE_COL, COST_COL = 1, 2


class ProductsEditor(QWidget):
    def __init__(
        self,
        templates: list[ProductTemplate],
        costs: SellerCosts,
        parent: QWidget | None = None,
        *,
        can_save_costs: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settings_products_tab")
        self.original = list(templates)
        self.costs = costs
        self.drafts: list[TemplateDraft] = [
            draft_from(t, costs.for_template(t.name)) for t in templates
        ]
        self._current = -1
        self._loading = False
        self._build_widgets(can_save_costs)
        self._build_layout()
        self._connect_signals()
        for i in range(len(self.drafts)):
            self.templates_list.addItem(self._item_text(i))
        if self.drafts:
            self.templates_list.setCurrentRow(0)
        else:
            self._show_form(False)

    # -- building -------------------------------------------------------------------------

    def _line(self, name: str, placeholder: str = "") -> QLineEdit:
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        return edit

    def _build_widgets(self, can_save_costs: bool) -> None:
        self.templates_list = QListWidget(self)
        self.templates_list.setObjectName("templates_list")
        self.add_button = QPushButton(self.tr("Add"), self)
        self.add_button.setObjectName("template_add_button")
        self.duplicate_button = QPushButton(self.tr("Duplicate"), self)
        self.duplicate_button.setObjectName("template_duplicate_button")
        self.remove_button = QPushButton(self.tr("Remove"), self)
        self.remove_button.setObjectName("template_remove_button")

        self.name_edit = self._line("template_name_edit")
        self.type_combo = QComboBox(self)
        self.type_combo.setObjectName("template_type_combo")
        self.type_combo.setEditable(True)
        self.type_combo.addItems(list(PRODUCT_TYPES))
        self.blueprint_edit = self._line("template_blueprint_edit", "12")
        self.blueprint_edit.setToolTip(
            self.tr("Printify catalog blueprint id (12 = Bella+Canvas 3001)")
        )
        self.provider_edit = self._line("template_provider_edit", "99")
        self.provider_edit.setToolTip(self.tr("Printify print provider id (99 = Printify Choice)"))
        self.colors_edit = self._line("template_colors_edit", self.tr("White, Black, Navy"))
        self.sizes_edit = self._line("template_sizes_edit", self.tr("S, M, L, XL"))
        self.base_price_edit = self._line("template_base_price_edit", "19.99")
        self.currency_edit = self._line("template_currency_edit", "USD")
        self.currency_edit.setMaxLength(3)
        self.currency_edit.setMaximumWidth(60)
        self.shipping_edit = self._line("template_shipping_edit", self.tr("e.g. 4.75"))
        self.shipping_edit.setToolTip(
            self.tr("Your shipping cost for one item, used until Printify reports its own")
        )
        self.sizes_table = QTableWidget(0, 3, self)
        self.sizes_table.setObjectName("template_sizes_table")
        self.sizes_table.setHorizontalHeaderLabels(
            [self.tr("Size"), self.tr("Price"), self.tr("Your cost")]
        )
        self.sizes_table.verticalHeader().setVisible(False)
        self.sizes_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.sizes_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        row_height = self.fontMetrics().height() + 10
        self.sizes_table.verticalHeader().setDefaultSectionSize(row_height)
        # six sizes (S-3XL) fit without a scroll bar
        self.sizes_table.setMinimumHeight(row_height * 7 + 8)
        self.sizes_table.setMaximumHeight(row_height * 9 + 8)
        self.sizes_table.setToolTip(
            self.tr(
                "Price: leave empty to sell the size at the base price. Your cost: what the "
                "print provider charges you; a cost Printify reports after a draft wins."
            )
        )
        if not can_save_costs:
            self.shipping_edit.setEnabled(False)
        self._can_save_costs = can_save_costs
        self.title_edit = self._line("template_title_edit")
        self.description_edit = QPlainTextEdit(self)
        self.description_edit.setObjectName("template_description_edit")
        self.description_edit.setFixedHeight(64)
        self.tags_edit = self._line("template_tags_edit", self.tr("{product}, gift idea"))
        self.placeholders_label = QLabel(
            self.tr(
                "Placeholders: {prompt} the design's prompt (or your description), "
                "{short_prompt} its first words (or your name for it), {product} the product "
                "type (“T-Shirt”), {color} the colour. Tags are separated by commas."
            ),
            self,
        )
        self.placeholders_label.setObjectName("template_placeholders_label")
        self.placeholders_label.setWordWrap(True)
        self.placeholders_label.setStyleSheet(f"color: {GREY};")
        self.template_error_label = QLabel(self)
        self.template_error_label.setObjectName("template_error_label")
        self.template_error_label.setWordWrap(True)
        self.template_error_label.setStyleSheet(f"color: {RED};")
        self.template_error_label.hide()
        self.note_label = QLabel(
            self.tr("The publish panel and `pod-studio publish` use these templates after Save."),
            self,
        )
        self.note_label.setObjectName("templates_note_label")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet(f"color: {GREY};")

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("products_splitter")
        self.splitter.setChildrenCollapsible(False)

        left = QWidget(self.splitter)
        l_layout = QVBoxLayout(left)
        l_layout.setContentsMargins(0, 0, 0, 0)
        l_layout.addWidget(self.templates_list, 1)
        for button in (self.add_button, self.duplicate_button, self.remove_button):
            l_layout.addWidget(button)
        left.setMinimumWidth(130)

        self.form_area = QScrollArea(self.splitter)
        self.form_area.setObjectName("template_form_area")
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.form_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.form = QWidget(self.form_area)
        f_layout = QVBoxLayout(self.form)
        f_layout.setContentsMargins(4, 0, 4, 0)

        product = QGroupBox(self.tr("Product"), self.form)
        p_form = QFormLayout(product)
        p_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        p_form.addRow(self.tr("Name"), self.name_edit)
        p_form.addRow(self.tr("Product type"), self.type_combo)
        ids = QHBoxLayout()
        ids.addWidget(self.blueprint_edit)
        ids.addWidget(QLabel(self.tr("provider"), product))
        ids.addWidget(self.provider_edit)
        p_form.addRow(self.tr("Blueprint"), ids)
        p_form.addRow(self.tr("Colours"), self.colors_edit)
        p_form.addRow(self.tr("Sizes"), self.sizes_edit)
        f_layout.addWidget(product)

        prices = QGroupBox(self.tr("Prices and your costs"), self.form)
        c_form = QFormLayout(prices)
        c_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        base = QHBoxLayout()
        base.addWidget(self.base_price_edit, 1)
        base.addWidget(self.currency_edit)
        c_form.addRow(self.tr("Base price"), base)
        c_form.addRow(self.tr("Shipping per item"), self.shipping_edit)
        c_form.addRow(self.sizes_table)
        f_layout.addWidget(prices)

        texts = QGroupBox(self.tr("Listing text"), self.form)
        t_form = QFormLayout(texts)
        t_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        t_form.addRow(self.tr("Title"), self.title_edit)
        t_form.addRow(self.tr("Description"), self.description_edit)
        t_form.addRow(self.tr("Tags"), self.tags_edit)
        t_form.addRow(self.placeholders_label)
        f_layout.addWidget(texts)
        f_layout.addStretch(1)
        self.form_area.setWidget(self.form)

        self.splitter.addWidget(left)
        self.splitter.addWidget(self.form_area)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([150, 450])
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.template_error_label)
        layout.addWidget(self.note_label)

    def _connect_signals(self) -> None:
        self.templates_list.currentRowChanged.connect(self._on_list_row_changed)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.duplicate_button.clicked.connect(self._on_duplicate_clicked)
        self.remove_button.clicked.connect(self._on_remove_clicked)
        for edit in (
            self.name_edit,
            self.blueprint_edit,
            self.provider_edit,
            self.colors_edit,
            self.base_price_edit,
            self.currency_edit,
            self.shipping_edit,
            self.title_edit,
            self.tags_edit,
        ):
            edit.textEdited.connect(self._on_form_edited)
        self.sizes_edit.textEdited.connect(self._on_sizes_edited)
        self.type_combo.currentTextChanged.connect(self._on_form_edited)
        self.description_edit.textChanged.connect(self._on_form_edited)
        self.sizes_table.itemChanged.connect(self._on_form_edited)

    # -- draft <-> form -------------------------------------------------------------------

    def _item_text(self, index: int) -> str:
        draft = self.drafts[index]
        _t, _c, problems = build_draft(draft)
        name = draft.name.strip() or self.tr("(no name)")
        return f"⚠ {name}" if problems else name

    def _show_form(self, visible: bool) -> None:
        self.form.setEnabled(visible)
        self.duplicate_button.setEnabled(visible)
        self.remove_button.setEnabled(visible)

    def _load_form(self, draft: TemplateDraft) -> None:
        self._loading = True
        try:
            self.name_edit.setText(draft.name)
            self.type_combo.setCurrentText(draft.product_type)
            self.blueprint_edit.setText(draft.blueprint_id)
            self.provider_edit.setText(draft.print_provider_id)
            self.colors_edit.setText(draft.colors)
            self.sizes_edit.setText(draft.sizes)
            self.base_price_edit.setText(draft.base_price)
            self.currency_edit.setText(draft.currency)
            self.shipping_edit.setText(draft.shipping)
            self.title_edit.setText(draft.title_template)
            self.description_edit.setPlainText(draft.description_template)
            self.tags_edit.setText(draft.tags)
            self._fill_sizes_table(draft)
        finally:
            self._loading = False

    def _fill_sizes_table(self, draft: TemplateDraft) -> None:
        was_loading, self._loading = self._loading, True
        try:
            sizes = draft.size_list()
            self.sizes_table.setRowCount(len(sizes))
            for row, size in enumerate(sizes):
                label = QTableWidgetItem(size)
                label.setFlags(label.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.sizes_table.setItem(row, 0, label)
                price = QTableWidgetItem(draft.size_prices.get(size, ""))
                price.setToolTip(self.tr("Empty: the base price"))
                self.sizes_table.setItem(row, PRICE_COL, price)
                cost = QTableWidgetItem(draft.size_costs.get(size, ""))
                if not self._can_save_costs:
                    cost.setFlags(cost.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.sizes_table.setItem(row, COST_COL, cost)
        finally:
            self._loading = was_loading

    def _store_form(self) -> None:
        """Copy the form into the current draft (nothing typed is dropped)."""
        if not 0 <= self._current < len(self.drafts):
            return
        draft = self.drafts[self._current]
        draft.name = self.name_edit.text()
        draft.product_type = self.type_combo.currentText()
        draft.blueprint_id = self.blueprint_edit.text()
        draft.print_provider_id = self.provider_edit.text()
        draft.colors = self.colors_edit.text()
        draft.sizes = self.sizes_edit.text()
        draft.base_price = self.base_price_edit.text()
        draft.currency = self.currency_edit.text()
        draft.shipping = self.shipping_edit.text()
        draft.title_template = self.title_edit.text()
        draft.description_template = self.description_edit.toPlainText()
        draft.tags = self.tags_edit.text()
        for row in range(self.sizes_table.rowCount()):
            size_item = self.sizes_table.item(row, 0)
            if size_item is None:
                continue
            size = size_item.text()
            for col, values in ((PRICE_COL, draft.size_prices), (COST_COL, draft.size_costs)):
                item = self.sizes_table.item(row, col)
                text = item.text().strip() if item is not None else ""
                if text:
                    values[size] = text
                else:
                    values.pop(size, None)

    def _check_current(self) -> list[FieldProblem]:
        if not 0 <= self._current < len(self.drafts):
            self.show_problems([])
            return []
        _t, _c, problems = build_draft(self.drafts[self._current])
        self.show_problems(problems)
        item = self.templates_list.item(self._current)
        if item is not None:
            item.setText(self._item_text(self._current))
        return problems

    def show_problems(self, problems: list[FieldProblem]) -> None:
        self.template_error_label.setText("\n".join(p.text for p in problems))
        self.template_error_label.setVisible(bool(problems))

    # -- what Save writes -----------------------------------------------------------------

    def save_plan(self) -> SavePlan:
        """Every draft checked; on a problem the first bad template is selected and its
        problems shown (nothing is saved then)."""
        self._store_form()
        plan = collect(self.drafts, self.original, self.costs)
        if plan.problems:
            first = min(plan.problems)
            if first >= 0 and first != self._current:
                self.templates_list.setCurrentRow(first)
            self.show_problems(plan.problems[first])
        return plan

    def selected_name(self) -> str:
        return self.drafts[self._current].name if 0 <= self._current < len(self.drafts) else ""

    # -- slots ----------------------------------------------------------------------------

    @Slot(int)
    def _on_list_row_changed(self, row: int) -> None:
        if self._loading:
            return
        self._store_form()
        self._current = row
        if 0 <= row < len(self.drafts):
            self._show_form(True)
            self._load_form(self.drafts[row])
            self._check_current()
        else:
            self._show_form(False)
            self.show_problems([])

    @Slot()
    def _on_form_edited(self) -> None:
        if self._loading:
            return
        self._store_form()
        self._check_current()

    @Slot()
    def _on_sizes_edited(self) -> None:
        if self._loading:
            return
        self._store_form()
        if 0 <= self._current < len(self.drafts):
            self._fill_sizes_table(self.drafts[self._current])
        self._check_current()

    def _insert(self, draft: TemplateDraft) -> None:
        self._store_form()
        self.drafts.append(draft)
        self.templates_list.addItem(QListWidgetItem(self._item_text(len(self.drafts) - 1)))
        self.templates_list.setCurrentRow(len(self.drafts) - 1)
        self.name_edit.setFocus()
        self.name_edit.selectAll()

    @Slot()
    def _on_add_clicked(self) -> None:
        taken = [d.name for d in self.drafts]
        self._insert(TemplateDraft(name=unique_name(self.tr("New product"), taken)))

    @Slot()
    def _on_duplicate_clicked(self) -> None:
        if not 0 <= self._current < len(self.drafts):
            return
        self._store_form()
        source = self.drafts[self._current]
        taken = [d.name for d in self.drafts]
        name = unique_name(self.tr("%1 copy").replace("%1", source.name.strip()), taken)
        self._insert(source.copy(name=name))

    @Slot()
    def _on_remove_clicked(self) -> None:
        row = self._current
        if not 0 <= row < len(self.drafts):
            return
        self._loading = True
        try:
            del self.drafts[row]
            self.templates_list.takeItem(row)
            self._current = -1
        finally:
            self._loading = False
        if self.drafts:
            self.templates_list.setCurrentRow(min(row, len(self.drafts) - 1))
            self._on_list_row_changed(self.templates_list.currentRow())
        else:
            self._on_list_row_changed(-1)
