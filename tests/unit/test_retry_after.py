"""Strict Retry-After parsing: tables for the RFC forms, hypothesis for bounds."""

from __future__ import annotations

import calendar
import datetime as dt
import math
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pod_studio.domain.retry_after import parse_retry_after

NOW = float(calendar.timegm((2026, 11, 6, 8, 49, 0)))


def _imf(moment: dt.datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("2", 2.0),
        ("  7 ", 7.0),
        ("120", 120.0),
        ("121", 120.0),
        ("000030", 30.0),
        ("9" * 5000, 120.0),
        ("Fri, 06 Nov 2026 08:49:30 GMT", 30.0),  # IMF-fixdate, 30 s ahead
        ("Friday, 06-Nov-26 08:49:45 GMT", 45.0),  # obsolete RFC 850
        ("Fri Nov  6 08:49:10 2026", 10.0),  # asctime
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past: retry now
        ("Fri, 31 Dec 9999 23:59:59 GMT", 120.0),  # far future: capped
    ],
)
def test_valid_values(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        None, "", "   ", "nan", "NaN", "inf", "-inf", "Infinity", "-1", "+5", "1.5", "1e3",
        "0x10", "5 seconds", "١٢", "Fri, 32 Nov 2026 08:49:30 GMT",
        "Fri, 06 Foo 2026 08:49:30 GMT", "Fri, 06 Nov 2026 25:49:30 GMT",
        "Fri, 06 Nov 2026 08:49:30 UTC", "Fri, 30 Feb 2026 08:49:30 GMT",
        "2026-11-06T08:49:30Z", "Fri, 6 Nov 2026 08:49:30 GMT",
    ],
)  # fmt: skip
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_cap_is_applied_and_validated() -> None:
    assert parse_retry_after("500", now=NOW, cap=600) == 500.0
    assert parse_retry_after("500", now=NOW, cap=10) == 10.0
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="cap"):
            parse_retry_after("5", now=NOW, cap=bad)


def test_rfc850_two_digit_year_is_not_placed_far_in_future() -> None:
    # 99 means 1999 (2099 would be more than 50 years ahead of 2026): in the past -> 0.
    assert parse_retry_after("Friday, 06-Nov-99 08:49:45 GMT", now=NOW) == 0.0


def _check(result: float | None, cap: float) -> None:
    if result is not None:
        assert math.isfinite(result)
        assert 0.0 <= result <= cap


@settings(max_examples=2000, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=60),
        st.integers(min_value=-(10**30), max_value=10**4000).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "1e309", "-0", "+0"]),
        st.datetimes(
            min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
        ).map(lambda d: _imf(d.replace(tzinfo=dt.UTC))),
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
            lambda d: d.strftime("%a %b %d %H:%M:%S %Y")
        ),
    ),
    now=st.one_of(
        st.floats(min_value=-1e12, max_value=1e12), st.sampled_from([NOW, math.nan, math.inf])
    ),
    cap=st.floats(min_value=0, max_value=1e6),
)
def test_always_finite_and_within_bounds(value: str, now: float, cap: float) -> None:
    _check(parse_retry_after(value, now=now, cap=cap), cap)


@settings(max_examples=300, deadline=None)
@given(seconds=st.integers(min_value=0, max_value=10**6))
def test_delta_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW, cap=1e9) == float(seconds)


@settings(max_examples=300, deadline=None)
@given(delta=st.integers(min_value=0, max_value=10**7))
def test_http_date_in_future_gives_delta(delta: int) -> None:
    moment = dt.datetime.fromtimestamp(NOW + delta, tz=dt.UTC)
    assert parse_retry_after(_imf(moment), now=NOW, cap=1e9) == float(delta)
