"""Domain layer: the seller's own provider costs per product template and size.

Printify reports what a variant costs only once it has made a product (drafts included), so a
new product type has no costs to preview. The seller can type them in (Settings → Products):
:class:`SellerCosts` holds, per template name, a cost per size and an optional shipping cost
per item. :func:`merge_costs` combines them with what the catalog knows: **a cost learned from
Printify wins where known, else the seller's entered cost**; a variant with neither is left
out of the profit preview. Amounts are non-negative Decimals rounded to cents.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.pricing import MAX_PRICE, CostSource, quantize

__all__ = [
    "CostSource",
    "MergedCost",
    "SellerCosts",
    "TemplateCosts",
    "cost_amount",
    "merge_costs",
    "merge_shipping",
]

SELLER_COSTS_SCHEMA_VERSION = 1


def cost_amount(value: Any, *, what: str) -> Decimal:
    """``value`` as a cost: a decimal number >= 0 and <= 10,000, rounded to cents."""
    if isinstance(value, float):
        value = repr(value)  # JSON numbers arrive as float: their shortest repr, not binary
    if isinstance(value, str):
        value = value.strip()
    try:
        amount = quantize(value)
    except ValidationError:
        raise ValidationError(
            f"{what} {value!r} is not a number",
            user_message=f"The {what} {value!r} is not a number; write it like 11.34.",
        ) from None
    if amount < 0:
        raise ValidationError(
            f"{what} cannot be negative (got {amount})",
            user_message=f"The {what} cannot be negative ({amount}).",
        )
    if amount > MAX_PRICE:
        raise ValidationError(
            f"{what} {amount} is above the {MAX_PRICE} limit",
            user_message=f"The {what} {amount} looks like a typo: costs above "
            f"{MAX_PRICE:,} are refused.",
        )
    return amount


def _as_cost(value: Any, what: str) -> Decimal:
    try:
        return cost_amount(value, what=what)
    except ValidationError as exc:
        raise ValueError(exc.user_message) from None


class TemplateCosts(BaseModel):
    """What one product template costs the seller: per size, and shipping per item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sizes: dict[str, Decimal] = Field(default_factory=dict)
    shipping: Decimal | None = None

    @field_validator("sizes", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {str(k).strip(): _as_cost(v, f"cost of size {k}") for k, v in value.items()}

    @field_validator("shipping", mode="before")
    @classmethod
    def _shipping(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _as_cost(value, "shipping cost")

    @property
    def empty(self) -> bool:
        return not self.sizes and self.shipping is None


class SellerCosts(BaseModel):
    """The seller's cost table: template name -> :class:`TemplateCosts` (persisted)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SELLER_COSTS_SCHEMA_VERSION
    templates: dict[str, TemplateCosts] = Field(default_factory=dict)

    def for_template(self, name: str) -> TemplateCosts:
        return self.templates.get(name) or TemplateCosts()

    def with_template(self, name: str, costs: TemplateCosts | None) -> SellerCosts:
        """A copy with ``name``'s costs replaced (``None`` or empty: removed)."""
        table = dict(self.templates)
        table.pop(name, None)
        if costs is not None and not costs.empty:
            table[name] = costs
        return self.model_copy(update={"templates": table})


class MergedCost(BaseModel):
    """One variant's cost for the profit preview and where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: str
    size: str
    cost: Decimal
    source: CostSource


def merge_costs(
    variants: Iterable[tuple[str, str, Decimal | None]], entered: TemplateCosts
) -> list[MergedCost]:
    """``(label, size, learned cost or None)`` per variant -> the cost to preview.

    The learned (catalog) cost wins where known, else the seller's entered cost for the size;
    variants with neither are left out. Order is kept.
    """
    out: list[MergedCost] = []
    for label, size, learned in variants:
        if learned is not None:
            out.append(
                MergedCost(variant=label, size=size, cost=learned, source=CostSource.CATALOG)
            )
        elif size in entered.sizes:
            out.append(
                MergedCost(
                    variant=label, size=size, cost=entered.sizes[size], source=CostSource.ENTERED
                )
            )
    return out


def merge_shipping(
    learned: Decimal | None, entered: TemplateCosts
) -> tuple[Decimal, CostSource | None]:
    """(shipping per item, source): the catalog's first-item shipping wins, else the seller's,
    else 0 with no source."""
    if learned is not None:
        return learned, CostSource.CATALOG
    if entered.shipping is not None:
        return entered.shipping, CostSource.ENTERED
    return Decimal("0.00"), None
