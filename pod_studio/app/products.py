"""App layer: the product template editor's drafts (Settings → Products).

A :class:`TemplateDraft` holds one template as the seller types it (text in every field, the
prices and costs per size as text) plus the seller's own provider costs. :func:`build_draft`
turns a draft into a validated ``ProductTemplate`` and ``TemplateCosts`` through the pydantic
models, or into :class:`FieldProblem` s that name the field ("Price of 2XL: …"), so the editor
can show them inline without losing anything typed. :func:`collect` checks every draft (and
that names are unique) and returns what to save: the templates as settings dicts and the cost
table, each only when it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pydantic

from pod_studio.domain.costs import SellerCosts, TemplateCosts, cost_amount
from pod_studio.domain.errors import PodStudioError
from pod_studio.domain.products import PrintPlacement, ProductTemplate

PRODUCT_TYPES = ("t-shirt", "hoodie", "sweatshirt", "tank-top", "mug", "poster", "tote-bag")

FIELD_LABELS = {
    "name": "Name",
    "product_type": "Product type",
    "blueprint_id": "Blueprint id",
    "print_provider_id": "Print provider id",
    "colors": "Colours",
    "sizes": "Sizes",
    "base": "Base price",
    "currency": "Currency",
    "shipping": "Shipping per item",
    "title_template": "Title",
    "description_template": "Description",
    "tags_template": "Tags",
}


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a draft: ``field`` is a key of ``FIELD_LABELS``, ``price:<size>``
    or ``cost:<size>``; ``text`` says it with the field's name first."""

    field: str
    text: str


@dataclass
class TemplateDraft:
    """A template as typed in the editor (every value text, as the widgets hold it)."""

    name: str = "New product"
    product_type: str = "t-shirt"
    blueprint_id: str = "12"
    print_provider_id: str = "99"
    colors: str = "White, Black"
    sizes: str = "S, M, L, XL"
    base_price: str = "19.99"
    currency: str = "USD"
    size_prices: dict[str, str] = field(default_factory=dict)
    size_costs: dict[str, str] = field(default_factory=dict)
    shipping: str = ""
    title_template: str = "{short_prompt} {product}"
    description_template: str = "{prompt}\n\nPrinted on demand on a {product}."
    tags: str = "{product}, graphic {product}, gift idea"
    placement: PrintPlacement = field(default_factory=PrintPlacement)

    def size_list(self) -> list[str]:
        return split_list(self.sizes)

    def copy(self, **changes: Any) -> TemplateDraft:
        return replace(
            self, size_prices=dict(self.size_prices), size_costs=dict(self.size_costs), **changes
        )


def split_list(text: str) -> list[str]:
    """ "S, M ,L," -> ["S", "M", "L"] (empty entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def draft_from(template: ProductTemplate, costs: TemplateCosts | None = None) -> TemplateDraft:
    costs = costs or TemplateCosts()
    return TemplateDraft(
        name=template.name,
        product_type=template.product_type,
        blueprint_id=str(template.blueprint_id),
        print_provider_id=str(template.print_provider_id),
        colors=", ".join(template.colors),
        sizes=", ".join(template.sizes),
        base_price=str(template.price.base),
        currency=template.price.currency,
        size_prices={s: str(p) for s, p in template.price.size_overrides.items()},
        size_costs={s: str(c) for s, c in costs.sizes.items()},
        shipping="" if costs.shipping is None else str(costs.shipping),
        title_template=template.title_template,
        description_template=template.description_template,
        tags=", ".join(template.tags_template),
        placement=template.placement,
    )


def unique_name(wanted: str, taken: Sequence[str]) -> str:
    """``wanted``, or ``wanted (2)``, ``(3)``… when a template has that name already."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})" in taken:
        n += 1
    return f"{wanted} ({n})"


def _label(key: str) -> str:
    if key.startswith("price:"):
        return f"Price of {key.removeprefix('price:')}"
    if key.startswith("cost:"):
        return f"Your cost of {key.removeprefix('cost:')}"
    return FIELD_LABELS.get(key, key)


def _problem(key: str, message: str) -> FieldProblem:
    """The problem with the field's name first, and not twice ("Price of 2XL: 'abc' is not a
    number", not "Price of 2XL: price of size 2XL 'abc' …")."""
    size = key.partition(":")[2]
    for prefix in (f"price of size {size} ", f"cost of {size} ", "base price ", "shipping cost "):
        if message.startswith(prefix):
            message = message.removeprefix(prefix)
            break
    return FieldProblem(key, f"{_label(key)}: {message}")


def _field_of(loc: tuple[int | str, ...], message: str, sizes: list[str]) -> str:
    if not loc:
        return "sizes"  # the model's own checks (overrides for sizes not enabled)
    head = str(loc[0])
    if head == "price" and len(loc) >= 2:
        if loc[1] == "size_overrides":
            wanted = next((s for s in sizes if f"size {s} " in message + " "), None)
            return f"price:{wanted}" if wanted else "base"
        return str(loc[1])
    if head in ("tags_template", "colors", "sizes"):
        return head
    return head


def _message(err: Any) -> str:
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "int_parsing":
        return "must be a whole number, as Printify's catalog lists it"
    if err.get("type") == "greater_than":
        return "must be greater than 0"
    if err.get("type") == "too_short" and err.get("loc", ("",))[0] in ("colors", "sizes"):
        return "enter at least one, separated by commas"
    if err.get("type") == "string_too_short":
        return "must not be blank"
    return msg


def build_draft(
    draft: TemplateDraft,
) -> tuple[ProductTemplate | None, TemplateCosts | None, list[FieldProblem]]:
    """(template, costs, []) when ``draft`` is valid, else (None, None, problems)."""
    sizes = draft.size_list()
    overrides = {
        s: draft.size_prices[s].strip()
        for s in sizes
        if s in draft.size_prices and draft.size_prices[s].strip()
    }
    data: dict[str, Any] = {
        "name": draft.name,
        "product_type": draft.product_type.strip().lower().replace(" ", "-"),
        "blueprint_id": draft.blueprint_id.strip(),
        "print_provider_id": draft.print_provider_id.strip(),
        "colors": split_list(draft.colors),
        "sizes": sizes,
        "placement": draft.placement.model_dump(),
        "price": {
            "base": draft.base_price.strip(),
            "size_overrides": overrides,
            "currency": draft.currency,
        },
        "title_template": draft.title_template,
        "description_template": draft.description_template,
        "tags_template": split_list(draft.tags),
    }
    problems: list[FieldProblem] = []
    template: ProductTemplate | None = None
    try:
        template = ProductTemplate.model_validate(data)
    except pydantic.ValidationError as exc:
        for err in exc.errors():
            msg = _message(err)
            problems.append(_problem(_field_of(tuple(err["loc"]), msg, sizes), msg))
    costs: dict[str, Decimal] = {}
    for size in sizes:
        text = draft.size_costs.get(size, "").strip()
        if not text:
            continue
        try:
            costs[size] = cost_amount(text, what=f"cost of {size}")
        except PodStudioError as exc:
            problems.append(_problem(f"cost:{size}", _short(exc.user_message, size)))
    shipping: Decimal | None = None
    if draft.shipping.strip():
        try:
            shipping = cost_amount(draft.shipping, what="shipping cost")
        except PodStudioError as exc:
            problems.append(_problem("shipping", _short(exc.user_message, "shipping cost")))
    if problems or template is None:
        return None, None, problems
    return template, TemplateCosts(sizes=costs, shipping=shipping), []


def _short(message: str, _what: str) -> str:
    return message.removeprefix("The ").rstrip(".")


@dataclass
class SavePlan:
    """What Save writes: ``templates`` (settings dicts) and ``costs`` are None when unchanged;
    ``problems`` maps a draft's index to what is wrong with it (nothing is saved then)."""

    templates: list[dict[str, Any]] | None = None
    costs: SellerCosts | None = None
    problems: dict[int, list[FieldProblem]] = field(default_factory=dict)


def collect(
    drafts: Sequence[TemplateDraft],
    original: Sequence[ProductTemplate],
    costs: SellerCosts,
) -> SavePlan:
    """Validate every draft; the templates and cost table to save when all are valid."""
    plan = SavePlan()
    built: list[tuple[ProductTemplate, TemplateCosts]] = []
    for i, draft in enumerate(drafts):
        template, tcosts, problems = build_draft(draft)
        if problems:
            plan.problems[i] = problems
        elif template is not None and tcosts is not None:
            built.append((template, tcosts))
    names = [d.name.strip() for d in drafts]
    for i, name in enumerate(names):
        if name and names.count(name) > 1:
            plan.problems.setdefault(i, []).append(
                _problem("name", f"another template is called {name!r} too")
            )
    if not drafts:
        plan.problems[-1] = [FieldProblem("name", "Keep at least one product template.")]
    if plan.problems:
        return plan
    new_dumps = [t.model_dump(mode="json") for t, _c in built]
    if new_dumps != [t.model_dump(mode="json") for t in original]:
        plan.templates = new_dumps
    table = {n: c for n, c in costs.templates.items() if n not in {t.name for t in original}}
    for template, tcosts in built:
        if not tcosts.empty:
            table[template.name] = tcosts
    new_costs = costs.model_copy(update={"templates": table})
    if new_costs != costs:
        plan.costs = new_costs
    return plan
