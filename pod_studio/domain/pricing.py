"""Domain layer: money and pricing.

Money is ``Decimal`` plus a currency, never ``float``. Amounts are quantized to cents with
``ROUND_HALF_UP`` (the rounding sellers expect from a till). Marketplaces that want integer
cents (Printify) get them from :func:`to_cents`; :func:`from_cents` is its exact inverse.

``price_for`` reads a product template's price rule; ``profit_preview`` shows, per variant,
what is left after the provider's cost and shipping, and flags prices below cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator

from pod_studio.domain.errors import ValidationError

if TYPE_CHECKING:
    from pod_studio.domain.products import ProductTemplate

CENT = Decimal("0.01")
MARGIN_QUANTUM = Decimal("0.0001")
MAX_PRICE = Decimal("10000")
_MAX_DIGITS = 12  # no amount reaches a trillion; beyond 26 digits cents cannot be kept
DEFAULT_CURRENCY = "USD"

MoneyInput = Decimal | int | str


def _as_decimal(value: Any, *, what: str) -> Decimal:
    """``value`` as a finite Decimal; floats are refused (they cannot hold cents exactly)."""
    if isinstance(value, bool | float):
        raise ValidationError(
            f"{what} must be a Decimal, an integer or a decimal string, not {type(value).__name__}",
            user_message=f"{what} must be written as a decimal number such as 19.99",
        )
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, int | str):
        try:
            dec = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError(
                f"{what} {value!r} is not a number",
                user_message=f"{what} {value!r} is not a number; write it like 19.99",
            ) from None
    else:
        raise ValidationError(f"{what} has an unsupported type {type(value).__name__}")
    if not dec.is_finite():
        raise ValidationError(f"{what} {value!r} is not a finite number")
    if dec.adjusted() >= _MAX_DIGITS:  # 1e30 cannot be rounded to cents (28 digits)
        raise ValidationError(
            f"{what} {value!r} is too large",
            user_message=f"{what} {value} is too large to be an amount of money; "
            "write it like 19.99",
        )
    return dec


def quantize(amount: MoneyInput) -> Decimal:
    """Round ``amount`` to cents, half up (0.005 -> 0.01, -0.005 -> -0.01)."""
    return _as_decimal(amount, what="amount").quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: MoneyInput) -> int:
    """Integer cents of ``amount`` after rounding to cents (19.995 -> 2000)."""
    return int(quantize(amount).scaleb(2))


def from_cents(cents: int) -> Decimal:
    """The Decimal amount for integer ``cents`` (2499 -> Decimal('24.99'))."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise ValidationError(f"cents must be an integer, not {type(cents).__name__}")
    return Decimal(cents).scaleb(-2).quantize(CENT)


def validate_price(value: MoneyInput, *, what: str = "price") -> Decimal:
    """A selling price rounded to cents; refuses zero, negative and absurd (> 10,000) prices."""
    price = quantize(_as_decimal(value, what=what))
    if price <= 0:
        raise ValidationError(
            f"{what} must be greater than zero (got {price})",
            user_message=f"The {what} must be greater than zero; {price} is not a price.",
        )
    if price > MAX_PRICE:
        raise ValidationError(
            f"{what} {price} is above the {MAX_PRICE} limit",
            user_message=f"The {what} {price} looks like a typo: prices above "
            f"{MAX_PRICE:,} are refused.",
        )
    return price


def validate_currency(code: str) -> str:
    """An ISO 4217-shaped code (three letters), upper-cased."""
    cleaned = code.strip().upper()
    if len(cleaned) != 3 or not cleaned.isascii() or not cleaned.isalpha():
        raise ValidationError(
            f"currency {code!r} is not a three-letter code such as USD",
            user_message=f"Currency {code!r} is not valid; use a three-letter code such as USD.",
        )
    return cleaned


class Money(BaseModel):
    """An amount in cents precision and its currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Decimal:
        return quantize(_as_decimal(value, what="amount"))

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return validate_currency(value)

    @classmethod
    def of(cls, amount: MoneyInput, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(amount=_as_decimal(amount, what="amount"), currency=currency)

    @classmethod
    def from_cents(cls, cents: int, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(amount=from_cents(cents), currency=currency)

    @property
    def cents(self) -> int:
        return to_cents(self.amount)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError(
                f"cannot combine {self.currency} and {other.currency} amounts",
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def price_for(template: ProductTemplate, size: str) -> Decimal:
    """The selling price of ``size`` under ``template``'s price rule (override or base)."""
    if size not in template.sizes:
        raise ValidationError(
            f"size {size!r} is not enabled in template {template.name!r} "
            f"(enabled: {', '.join(template.sizes)})",
        )
    rule = template.price
    return validate_price(rule.size_overrides.get(size, rule.base))


class CostSource(StrEnum):
    """Where a cost in the profit preview came from."""

    CATALOG = "catalog"  # learned from the platform (a created draft, the shipping API)
    ENTERED = "entered"  # typed by the seller in Settings → Products


class ProfitLine(BaseModel):
    """One variant's price, provider cost, shipping and what is left."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: str
    size: str
    price: Decimal
    cost: Decimal
    shipping: Decimal
    profit: Decimal
    margin: Decimal  # profit / price, 4 decimals (0.2512 = 25.12 %)
    below_cost: bool  # the price does not cover cost + shipping
    currency: str = DEFAULT_CURRENCY
    cost_source: CostSource = CostSource.CATALOG
    shipping_source: CostSource | None = None  # None: no shipping cost known (0 shown)


def _size_of(variant: str, sizes: list[str]) -> str:
    """The enabled size named in a variant label ("Black / XL", "XL / Black" or "XL")."""
    if variant in sizes:
        return variant
    parts = [p.strip() for p in variant.replace("|", "/").split("/")]
    for part in parts:
        if part in sizes:
            return part
    raise ValidationError(
        f"variant {variant!r} names none of the enabled sizes ({', '.join(sizes)})",
    )


def _non_negative(value: MoneyInput, *, what: str) -> Decimal:
    amount = quantize(_as_decimal(value, what=what))
    if amount < 0:
        raise ValidationError(f"{what} cannot be negative (got {amount})")
    return amount


def profit_preview(
    template: ProductTemplate,
    variants_with_costs: Mapping[str, MoneyInput] | Iterable[tuple[str, MoneyInput]],
    shipping: MoneyInput,
) -> list[ProfitLine]:
    """Price minus provider cost minus shipping, per variant, in the given order.

    ``variants_with_costs`` maps a variant label ("Black / XL", or just "XL") to the provider's
    cost for it; the label must name one of the template's enabled sizes.
    """
    pairs = (
        list(variants_with_costs.items())
        if isinstance(variants_with_costs, Mapping)
        else list(variants_with_costs)
    )
    ship = _non_negative(shipping, what="shipping")
    lines: list[ProfitLine] = []
    for variant, raw_cost in pairs:
        size = _size_of(variant, template.sizes)
        price = price_for(template, size)
        cost = _non_negative(raw_cost, what=f"cost of {variant}")
        profit = price - cost - ship
        margin = (profit / price).quantize(MARGIN_QUANTUM, rounding=ROUND_HALF_UP)
        lines.append(
            ProfitLine(
                variant=variant,
                size=size,
                price=price,
                cost=cost,
                shipping=ship,
                profit=profit,
                margin=margin,
                below_cost=profit < 0,
                currency=template.price.currency,
            )
        )
    return lines
