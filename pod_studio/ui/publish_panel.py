"""UI layer: PublishPanel — publish approved designs: choose the products (templates) and the
platforms, drafts or live listings, review prices and profit, then Publish.

A non-modal dialog over ``PublishController``: platforms and the price/profit table arrive
through its signals (computed off the GUI thread); Publish queues one durable job per
design × product × platform and the gallery cards show their status live.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pod_studio.app.mockups import MockupSpec
from pod_studio.app.publishing import PublishController, PublishRequest
from pod_studio.domain.models import GeneratedImage, ListingCopy
from pod_studio.domain.pricing import CostSource, ProfitLine
from pod_studio.domain.views import PlatformChoice
from pod_studio.ui.listing_editor import ListingEditor
from pod_studio.ui.mockup_view import MockupPreview
from pod_studio.ui.widgets import AMBER, RED

SaveListing = Callable[[str, ListingCopy | None], None]

PROFIT_HEADERS = ("Product", "Variant", "Price", "Cost", "Shipping", "Profit", "Margin")


def _money(amount: Decimal, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    symbol = "$" if currency == "USD" else ""
    text = f"{sign}{symbol}{abs(amount):,.2f}"
    return text if symbol else f"{text} {currency}"


class PublishPanel(QDialog):
    """Publish the selected approved designs."""

    def __init__(
        self,
        controller: PublishController,
        designs: list[GeneratedImage],
        parent: QWidget | None = None,
        *,
        save_listing: SaveListing | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.designs = [d for d in designs if d.approved is True]
        self._save_listing = save_listing
        self._profit: dict[str, list[ProfitLine]] = {}
        self._profit_problems: dict[str, str] = {}
        self._requested: set[str] = set()
        self._low_dpi_armed = False  # the seller was told about low DPI; the next click publishes
        self._upscaling: set[str] = set()  # design ids being upscaled from this panel
        self.setObjectName("publish_panel")
        self.setWindowTitle(self.tr("Publish designs"))
        self.setModal(False)
        self.resize(760, 720)

        n = len(self.designs)
        self.title_label = QLabel(self)
        self.title_label.setObjectName("publish_title_label")
        self.title_label.setProperty("role", "heading")
        self.title_label.setText(
            self.tr("Publish %n approved design(s)", "", n)
            if n
            else self.tr("Select approved designs in the gallery first")
        )

        self.template_checks: dict[str, QCheckBox] = {}
        templates_box = QGroupBox(self.tr("Products"), self)
        t_layout = QVBoxLayout(templates_box)
        templates = controller.templates()
        self.listing_editor = ListingEditor(self.designs, templates, self)
        for i, template in enumerate(templates):
            price = template.price
            text = self.tr("%1 — %2, from %3").replace("%1", template.name)
            text = text.replace("%2", template.product_label)
            text = text.replace("%3", _money(price.base, price.currency))
            check = QCheckBox(text, templates_box)
            check.setObjectName(f"template_check_{i}")
            check.setProperty("template", template.name)
            check.setToolTip(
                f"{len(template.colors)} colours × {len(template.sizes)} sizes: "
                + ", ".join(template.sizes)
            )
            self.template_checks[template.name] = check
            t_layout.addWidget(check)
        if not templates:
            missing = QLabel(self.tr("No product templates are set up."), templates_box)
            missing.setObjectName("no_templates_label")
            t_layout.addWidget(missing)

        self.platform_checks: dict[str, QCheckBox] = {}
        self._platform_notes: list[QLabel] = []
        self.platforms_box = QGroupBox(self.tr("Platforms"), self)
        self._platforms_layout = QVBoxLayout(self.platforms_box)
        self.platforms_loading = QLabel(self.tr("Looking up platforms…"), self.platforms_box)
        self.platforms_loading.setObjectName("platforms_loading_label")
        self._platforms_layout.addWidget(self.platforms_loading)

        mode_box = QGroupBox(self.tr("Listings"), self)
        m_layout = QVBoxLayout(mode_box)
        self.draft_radio = QRadioButton(
            self.tr("Save as drafts (review them on the platform, publish there)"), mode_box
        )
        self.draft_radio.setObjectName("draft_radio")
        self.live_radio = QRadioButton(self.tr("Publish now (visible in your shop)"), mode_box)
        self.live_radio.setObjectName("publish_now_radio")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.draft_radio)
        self.mode_group.addButton(self.live_radio)
        (self.draft_radio if controller.default_draft() else self.live_radio).setChecked(True)
        m_layout.addWidget(self.draft_radio)
        m_layout.addWidget(self.live_radio)

        prices_box = QWidget(self)
        prices_box.setObjectName("prices_page")
        p_layout = QVBoxLayout(prices_box)
        self.profit_table = QTableWidget(0, len(PROFIT_HEADERS), prices_box)
        self.profit_table.setObjectName("profit_table")
        self.profit_table.setHorizontalHeaderLabels([self.tr(h) for h in PROFIT_HEADERS])
        self.profit_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.profit_table.verticalHeader().setVisible(False)
        self.profit_table.setAlternatingRowColors(True)
        header = self.profit_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 150)
        self.profit_status = QLabel(prices_box)
        self.profit_status.setObjectName("profit_status_label")
        self.profit_status.setWordWrap(True)
        self.profit_status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.profit_status.setStyleSheet("color: #7a808a;")
        self.profit_warning = QLabel(prices_box)
        self.profit_warning.setObjectName("profit_warning_label")
        self.profit_warning.setWordWrap(True)
        self.profit_warning.setStyleSheet("color: #c0392b; font-weight: 600;")
        self.profit_warning.hide()
        p_layout.addWidget(self.profit_table, 1)
        p_layout.addWidget(self.profit_warning)
        p_layout.addWidget(self.profit_status)

        self.preview_page = MockupPreview(self.designs, self)

        self.message_label = QLabel(self)
        self.message_label.setObjectName("publish_message_label")
        self.message_label.setWordWrap(True)
        self.publish_button = QPushButton(self.tr("Publish"), self)
        self.publish_button.setObjectName("publish_confirm_button")
        self.publish_button.setDefault(True)
        self.publish_button.setMinimumWidth(150)
        self.close_button = QPushButton(self.tr("Close"), self)
        self.close_button.setObjectName("publish_close_button")

        layout = QVBoxLayout(self)
        layout.addWidget(self.title_label)
        choices = QHBoxLayout()
        choices.addWidget(templates_box, 1)
        choices.addWidget(self.platforms_box, 1)
        t_layout.addStretch(1)
        self._platforms_layout.addStretch(1)
        layout.addLayout(choices, 0)
        layout.addWidget(mode_box)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("publish_tabs")
        self.tabs.addTab(self.listing_editor, self.tr("Listing texts"))
        self.tabs.addTab(prices_box, self.tr("Prices and profit per variant"))
        self.tabs.addTab(self.preview_page, self.tr("Preview"))
        layout.addWidget(self.tabs, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message_label, 1)
        bottom.addWidget(self.close_button)
        bottom.addWidget(self.publish_button)
        layout.addLayout(bottom)
        self._connect_signals()
        self._update_state()
        self._refresh_profit_table()
        self._refresh_preview()
        controller.load_platforms()
        if self.designs:
            controller.load_design_image(self.designs[0])

    def _connect_signals(self) -> None:
        c = self.controller
        c.sig_platforms_loaded.connect(self._on_controller_platforms_loaded)
        c.sig_profit_loaded.connect(self._on_controller_profit_loaded)
        c.sig_profit_failed.connect(self._on_controller_profit_failed)
        c.sig_publish_enqueued.connect(self._on_controller_publish_enqueued)
        c.sig_publish_message.connect(self._on_controller_publish_message)
        c.sig_publish_failed.connect(self._on_controller_publish_failed)
        c.sig_design_image_ready.connect(self._on_controller_design_image_ready)
        c.sig_design_image_failed.connect(self._on_controller_design_image_failed)
        c.sig_upscaled.connect(self._on_controller_upscaled)
        c.sig_upscale_failed.connect(self._on_controller_upscale_failed)
        c.sig_platform_mockups_loaded.connect(self._on_controller_platform_mockups_loaded)
        self.preview_page.sig_design_wanted.connect(self._on_preview_design_wanted)
        self.preview_page.sig_upscale_wanted.connect(self._on_preview_upscale_wanted)
        for check in self.template_checks.values():
            check.toggled.connect(self._on_template_toggled)
        self.draft_radio.toggled.connect(self._on_mode_toggled)
        self.listing_editor.sig_changed.connect(self._update_state)
        self.publish_button.clicked.connect(self._on_publish_clicked)
        self.close_button.clicked.connect(self.close)

    # -- values ---------------------------------------------------------------------------

    def chosen_templates(self) -> list[str]:
        return [name for name, c in self.template_checks.items() if c.isChecked()]

    def chosen_platforms(self) -> list[str]:
        return [name for name, c in self.platform_checks.items() if c.isChecked() and c.isEnabled()]

    def request(self) -> PublishRequest:
        copies = self.listing_editor.copies()
        return PublishRequest(
            designs=[
                d.model_copy(update={"listing": copies.get(d.image_id, d.listing)})
                for d in self.designs
            ],
            templates=self.chosen_templates(),
            platforms=self.chosen_platforms(),
            draft=self.draft_radio.isChecked(),
        )

    def save_listings(self) -> None:
        """Keep the edited words on their designs (for the next publish too)."""
        copies = self.listing_editor.copies()
        changed = [d for d in self.designs if copies.get(d.image_id, d.listing) != d.listing]
        if not changed:
            return
        self.designs = [d.model_copy(update={"listing": copies[d.image_id]}) for d in self.designs]
        if self._save_listing is not None:
            for design in changed:
                self._save_listing(design.image_id, copies[design.image_id])

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_listings()
        super().closeEvent(event)

    def profit_rows(self) -> list[list[str]]:
        return [
            [
                (it.text() if (it := self.profit_table.item(r, c)) is not None else "")
                for c in range(self.profit_table.columnCount())
            ]
            for r in range(self.profit_table.rowCount())
        ]

    def low_dpi_products(self) -> list[tuple[GeneratedImage, MockupSpec]]:
        """(design, product) pairs of the request that will print soft or blurred."""
        names = self.chosen_templates()
        return [
            (design, spec)
            for design in self.designs
            for spec in self.controller.mockups(design, names)
            if spec.low_resolution
        ]

    def _update_state(self) -> None:
        if self._low_dpi_armed:  # the choice changed: ask again on the next click
            self._low_dpi_armed = False
            self.message_label.clear()
            self.message_label.setToolTip("")
        self.listing_editor.set_chosen_templates(self.chosen_templates())
        words_ok = not self.listing_editor.problems()
        ok = bool(self.designs and self.chosen_templates() and self.chosen_platforms())
        self.publish_button.setEnabled(ok and words_ok and self.controller.available)
        self.publish_button.setToolTip(
            "" if words_ok else self.tr("Fix the listing texts first (see Listing texts).")
        )
        draft = self.draft_radio.isChecked()
        jobs = len(self.designs) * len(self.chosen_templates()) * len(self.chosen_platforms())
        verb = self.tr("Create %n draft(s)", "", jobs) if draft else self.tr("Publish %n", "", jobs)
        self.publish_button.setText(verb if jobs else self.tr("Publish"))
        if not self.controller.available:
            self.message_label.setText(self.tr("Publishing is not available in this setup."))

    def _refresh_preview(self) -> None:
        design = self.preview_page.current_design()
        specs = [] if design is None else self.controller.mockups(design, self.chosen_templates())
        self.preview_page.set_specs(specs)
        if design is not None and specs:
            # Printify's own mockups of drafts made already (and of those made later)
            self.controller.load_platform_mockups(design, [s.template for s in specs])
        busy = design is not None and design.image_id in self._upscaling
        offered = self.controller.can_upscale and any(s.low_resolution for s in specs)
        self.preview_page.set_upscale_state(offered=offered, busy=busy)

    def _refresh_profit_table(self) -> None:
        names = self.chosen_templates()
        rows = [(n, line) for n in names for line in self._profit.get(n, [])]
        self.profit_table.setRowCount(len(rows))
        self.profit_table.setVisible(bool(rows))
        below: list[str] = []
        for r, (name, line) in enumerate(rows):
            cells = [
                name,
                line.variant,
                _money(line.price, line.currency),
                _money(line.cost, line.currency),
                _money(line.shipping, line.currency),
                _money(line.profit, line.currency),
                f"{line.margin * 100:.0f}%",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if c == 3 and line.cost_source is CostSource.ENTERED:
                    item.setToolTip(self.tr("Your cost from Settings → Products"))
                elif c == 4 and line.shipping_source is CostSource.ENTERED:
                    item.setToolTip(self.tr("Your shipping cost from Settings → Products"))
                if line.below_cost:
                    item.setForeground(QBrush(RED))
                    item.setToolTip(
                        self.tr("This price does not cover the provider's cost and shipping.")
                    )
                self.profit_table.setItem(r, c, item)
            if line.below_cost:
                below.append(f"{name} {line.variant}")
        if below:
            shown = ", ".join(below[:4]) + (" …" if len(below) > 4 else "")
            self.profit_warning.setText(
                self.tr("⚠ %n variant(s) sell below cost: ", "", len(below))
                + shown
                + self.tr(". Raise the price in Settings → Products.")
            )
            self.profit_warning.show()
        else:
            self.profit_warning.hide()
        notes = [f"{n}: {self._profit_problems[n]}" for n in names if n in self._profit_problems]
        waiting = [n for n in names if n not in self._profit and n not in self._profit_problems]
        if waiting:
            notes.insert(0, self.tr("Looking up costs for %1…").replace("%1", ", ".join(waiting)))
        if not names:
            notes = [self.tr("Choose a product to see its prices and profit.")]
        self.profit_status.setText("\n".join(notes))

    # -- slots ----------------------------------------------------------------------------

    @Slot()
    def _on_template_toggled(self) -> None:
        wanted = [n for n in self.chosen_templates() if n not in self._requested]
        if wanted and self.designs:
            self._requested.update(wanted)
            self.controller.load_profit(self.designs[0], wanted)
        self._update_state()
        self._refresh_profit_table()
        self._refresh_preview()

    @Slot()
    def _on_mode_toggled(self) -> None:
        self._update_state()

    @Slot(list)
    def _on_controller_platforms_loaded(self, platforms: list[PlatformChoice]) -> None:
        self.platforms_loading.hide()
        for check in self.platform_checks.values():
            check.deleteLater()
        self.platform_checks.clear()
        for label in self._platform_notes:
            label.deleteLater()
        self._platform_notes = []
        for choice in platforms:
            text = choice.title
            if not choice.available:
                text += self.tr(" (not available)")
            check = QCheckBox(text, self.platforms_box)
            check.setObjectName(f"platform_check_{choice.name}")
            check.setEnabled(choice.available)
            check.setToolTip(choice.reason)
            check.toggled.connect(self._on_mode_toggled)
            self.platform_checks[choice.name] = check
            self._platforms_layout.insertWidget(self._platforms_layout.count() - 1, check)
            if not choice.available and choice.reason:
                # the first sentence here, the whole how-to on hover: the box stays readable
                first = re.split(r"[.:] ", choice.reason, maxsplit=1)[0].rstrip(".:") + "."
                note = QLabel(first + self.tr(" Hover for how to set it up."), self.platforms_box)
                note.setToolTip(choice.reason)
                note.setObjectName(f"platform_note_{choice.name}")
                note.setWordWrap(True)
                note.setStyleSheet("color: #7a808a; margin-left: 22px;")
                self._platform_notes.append(note)
                self._platforms_layout.insertWidget(self._platforms_layout.count() - 1, note)
        if not platforms:
            self.platforms_loading.setText(self.tr("No platform is set up."))
            self.platforms_loading.show()
        self._update_state()

    @Slot(str, str, list)
    def _on_controller_profit_loaded(
        self, _image_id: str, template: str, lines: list[ProfitLine]
    ) -> None:
        self._profit[template] = list(lines)
        self._profit_problems.pop(template, None)
        if not lines:
            self._profit_problems[template] = self.tr(
                "no provider costs known: enter yours in Settings → Products, or create a "
                "Printify draft (its costs are then used)"
            )
        self._refresh_profit_table()

    @Slot(str, str, str)
    def _on_controller_profit_failed(self, _image_id: str, template: str, message: str) -> None:
        self._profit_problems[template] = message
        self._refresh_profit_table()

    @Slot(object)
    def _on_preview_design_wanted(self, design: GeneratedImage) -> None:
        self._refresh_preview()
        self.controller.load_design_image(design)

    @Slot(str, bytes)
    def _on_controller_design_image_ready(self, image_id: str, data: bytes) -> None:
        self.preview_page.set_design_image(image_id, data)

    @Slot(str, str, list)
    def _on_controller_platform_mockups_loaded(
        self, image_id: str, template: str, images: list[bytes]
    ) -> None:
        self.preview_page.set_platform_mockups(image_id, template, images)

    @Slot(str, str)
    def _on_controller_design_image_failed(self, image_id: str, message: str) -> None:
        self.preview_page.set_design_problem(image_id, message)

    @Slot(object)
    def _on_preview_upscale_wanted(self, design: GeneratedImage) -> None:
        if design.image_id in self._upscaling:
            return
        self.preview_page.show_upscale_message("", error=False)
        self._upscaling.add(design.image_id)  # before: a refusal is signalled at once
        self.controller.upscale(design, self.chosen_templates())
        self._refresh_preview()

    @Slot(object)
    def _on_controller_upscaled(self, design: GeneratedImage) -> None:
        if not any(d.image_id == design.image_id for d in self.designs):
            return
        self._upscaling.discard(design.image_id)
        self.designs = [design if d.image_id == design.image_id else d for d in self.designs]
        self.preview_page.replace_design(design)
        w, h = design.print_size
        self.preview_page.show_upscale_message(
            self.tr("Upscaled to %1×%2 px: this is the print file now.")
            .replace("%1", str(w))
            .replace("%2", str(h)),
            error=False,
        )
        self._refresh_preview()
        self._update_state()  # a low-DPI question asked before no longer stands

    @Slot(str)
    def _on_controller_upscale_failed(self, message: str) -> None:
        if not self._upscaling:
            return
        self._upscaling.clear()
        self.preview_page.show_upscale_message(
            self.tr("Upscale failed: %1").replace("%1", message), error=True
        )
        self._refresh_preview()

    def _ask_about_low_dpi(self, low: list[tuple[GeneratedImage, MockupSpec]]) -> None:
        """Say which products will print soft; the next click on the button publishes."""
        self._low_dpi_armed = True
        worst = min(spec.dpi for _d, spec in low)
        products = sorted({spec.template for _d, spec in low})
        self.publish_button.setText(self.tr("Publish anyway (low DPI)"))
        self.message_label.setStyleSheet(f"color: {AMBER.name()}; font-weight: 600;")
        self.message_label.setText(
            self.tr("⚠ %n listing(s) will print soft or blurred", "", len(low))
            + self.tr(" (down to %1 DPI): see Preview. Click again to publish anyway.").replace(
                "%1", f"{worst:.0f}"
            )
        )
        self.message_label.setToolTip(
            self.tr("Low resolution on: %1. Upscale the design for a sharp print.").replace(
                "%1", ", ".join(products)
            )
        )
        self.tabs.setCurrentWidget(self.preview_page)

    @Slot()
    def _on_publish_clicked(self) -> None:
        if not self._low_dpi_armed:
            low = self.low_dpi_products()
            if low:
                self._ask_about_low_dpi(low)
                return
        self._low_dpi_armed = False
        request = self.request()
        self.save_listings()
        problems = self.controller.publish(request)
        if not problems:
            self.publish_button.setEnabled(False)
            self.message_label.setStyleSheet("")
            self.message_label.setText(self.tr("Queuing…"))

    @Slot(list)
    def _on_controller_publish_enqueued(self, _job_ids: list[str]) -> None:
        self._update_state()

    @Slot(str)
    def _on_controller_publish_message(self, text: str) -> None:
        self.message_label.setStyleSheet("color: #2e9d4f;")
        self.message_label.setText(text)

    @Slot(str)
    def _on_controller_publish_failed(self, message: str) -> None:
        self.message_label.setStyleSheet("color: #c0392b;")
        self.message_label.setText(message)
        self._update_state()
