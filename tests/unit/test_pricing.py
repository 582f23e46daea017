"""Money, cents and profit preview."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pod_studio.domain.errors import ValidationError
from pod_studio.domain.pricing import (
    Money,
    from_cents,
    price_for,
    profit_preview,
    quantize,
    to_cents,
    validate_price,
)
from pod_studio.domain.products import default_templates

TEE, HOODIE = default_templates()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19.995", "20.00"),
        ("19.994", "19.99"),
        ("0.005", "0.01"),
        ("-0.005", "-0.01"),
        ("2.675", "2.68"),  # float(2.675) would round down; Decimal does not
        (7, "7.00"),
    ],
)
def test_quantize_rounds_half_up(raw: str | int, expected: str) -> None:
    assert quantize(raw) == Decimal(expected)
    assert str(quantize(raw)) == expected


def test_to_cents_and_back() -> None:
    assert to_cents(Decimal("24.99")) == 2499
    assert to_cents(Decimal("19.995")) == 2000
    assert from_cents(2499) == Decimal("24.99")
    assert str(from_cents(5)) == "0.05"
    assert from_cents(-150) == Decimal("-1.50")


def test_floats_are_refused() -> None:
    with pytest.raises(ValidationError, match="not float"):
        to_cents(19.99)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money.of(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        from_cents(1.0)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_cents_round_trip(cents: int) -> None:
    assert to_cents(from_cents(cents)) == cents


@given(
    st.decimals(
        min_value=Decimal("-1000000"),
        max_value=Decimal("1000000"),
        allow_nan=False,
        allow_infinity=False,
        places=6,
    )
)
def test_quantize_is_nearest_cent_half_up(amount: Decimal) -> None:
    q = quantize(amount)
    assert q.as_tuple().exponent == -2
    diff = abs(q - amount)
    assert diff <= Decimal("0.005")
    if diff == Decimal("0.005"):
        assert abs(q) > abs(amount)  # ties go away from zero
    assert from_cents(to_cents(amount)) == q
    assert quantize(q) == q


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "greater than zero"),
        ("-5", "greater than zero"),
        ("0.004", "greater than zero"),  # rounds to 0.00
        ("10000.01", "above the 10000 limit"),
        ("1e9", "above the 10000 limit"),
        ("abc", "not a number"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
    ],
)
def test_bad_prices_are_refused_with_a_clear_message(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        validate_price(value)
    assert info.value.user_message
    assert not info.value.retryable


def test_price_limit_is_inclusive() -> None:
    assert validate_price("10000") == Decimal("10000.00")
    assert validate_price("0.01") == Decimal("0.01")


def test_money_arithmetic_and_currency() -> None:
    a = Money.of("10.10")
    b = Money.of(Decimal("0.205"))
    assert (a + b).amount == Decimal("10.31")
    assert (a - b).amount == Decimal("9.89")
    assert Money.from_cents(1999).cents == 1999
    assert str(Money.of("3", "eur")) == "3.00 EUR"
    with pytest.raises(ValidationError, match="cannot combine"):
        _ = a + Money.of("1", "EUR")
    with pytest.raises(ValidationError, match="three-letter"):
        Money.of("1", "US DOLLAR")


def test_price_for_uses_overrides_and_base() -> None:
    assert price_for(TEE, "M") == Decimal("19.99")
    assert price_for(TEE, "2XL") > price_for(TEE, "XL")
    assert price_for(HOODIE, "S") == Decimal("34.99")
    with pytest.raises(ValidationError, match="not enabled"):
        price_for(TEE, "5XL")


def test_profit_preview_computes_profit_margin_and_flags_below_cost() -> None:
    lines = profit_preview(
        TEE,
        {"Black / M": Decimal("11.34"), "White / 3XL": "24.00", "XL": 900},
        Decimal("4.75"),
    )
    assert [line.variant for line in lines] == ["Black / M", "White / 3XL", "XL"]
    m, xxxl, xl = lines
    assert m.size == "M"
    assert m.price == Decimal("19.99")
    assert m.profit == Decimal("3.90")
    assert m.margin == Decimal("0.1951")
    assert not m.below_cost
    assert xxxl.price == Decimal("23.99")
    assert xxxl.profit == Decimal("-4.76")
    assert xxxl.below_cost
    assert xl.cost == Decimal("900.00")
    assert xl.below_cost
    assert all(line.currency == "USD" for line in lines)


def test_profit_preview_accepts_size_first_labels_and_pairs() -> None:
    (line,) = profit_preview(HOODIE, [("L / Navy", Decimal("20"))], "0")
    assert line.size == "L"
    assert line.profit == Decimal("14.99")


def test_profit_preview_price_exactly_covering_costs_is_not_below_cost() -> None:
    (line,) = profit_preview(TEE, {"S": "15.00"}, "4.99")
    assert line.profit == Decimal("0.00")
    assert not line.below_cost


@pytest.mark.parametrize(
    ("costs", "shipping", "message"),
    [
        ({"M": "-1"}, "0", "cannot be negative"),
        ({"M": "1"}, "-0.50", "shipping cannot be negative"),
        ({"Black / 9XL": "1"}, "0", "names none of the enabled sizes"),
        ({"M": 1.5}, "0", "not float"),
    ],
)
def test_profit_preview_rejects_bad_inputs(
    costs: dict[str, object], shipping: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        profit_preview(TEE, costs, shipping)  # type: ignore[arg-type]
