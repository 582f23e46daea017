"""Domain layer: strict parsing of the HTTP ``Retry-After`` header (RFC 9110 §10.2.3).

The value is either delta-seconds (ASCII digits only) or an HTTP-date in one of the three
formats a recipient must accept (IMF-fixdate, obsolete RFC 850, asctime). Anything else is
garbage and yields ``None``. The result is always finite, never negative and never above
``cap``: a hostile or broken server cannot make the app sleep for NaN, infinity or a year.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re

__all__ = ["parse_retry_after"]

_MONTHS = {
    name: index
    for index, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"

# Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE = re.compile(
    rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT", re.ASCII
)
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(
    rf"{_LONG_DAY}, (?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}}) {_TIME} GMT", re.ASCII
)
# Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(
    rf"{_DAY} {_MONTH} (?P<day>[ 0-9][0-9]) {_TIME} (?P<year>[0-9]{{4}})", re.ASCII
)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_MAX_DATE_LEN = 40
_MAX_DELTA_DIGITS = 12  # ~31,700 years: anything longer is capped without int() conversion


def _two_digit_year(yy: int, now: float) -> int:
    """RFC 9110: a two-digit year more than 50 years in the future means the past century."""
    try:
        this_year = dt.datetime.fromtimestamp(now, tz=dt.UTC).year
    except (OverflowError, OSError, ValueError):
        this_year = 2000
    year = (this_year // 100) * 100 + yy
    if year > this_year + 50:
        year -= 100
    return year


def _parse_http_date(value: str, now: float) -> float | None:
    """Seconds since the epoch for an HTTP-date, or ``None`` when it is not one."""
    if len(value) > _MAX_DATE_LEN:
        return None
    for pattern in (_IMF_FIXDATE, _RFC850, _ASCTIME):
        match = pattern.fullmatch(value)
        if match is None:
            continue
        year = int(match["year"])
        if pattern is _RFC850:
            year = _two_digit_year(year, now)
        try:
            moment = dt.datetime(
                year,
                _MONTHS[match["month"]],
                int(match["day"].strip()),
                int(match["hour"]),
                int(match["minute"]),
                int(match["second"]) if match["second"] != "60" else 59,  # leap second
                tzinfo=dt.UTC,
            )
        except ValueError:
            return None
        return float(calendar.timegm(moment.utctimetuple()))
    return None


def parse_retry_after(value: str | None, *, now: float, cap: float = 120.0) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, or ``None`` for garbage.

    ``now`` is the current wall-clock time (epoch seconds) used for HTTP-dates; a date in
    the past means "retry now" (0.0). The result is finite and within ``[0, cap]``.
    """
    if not (isinstance(cap, int | float) and math.isfinite(cap) and cap >= 0):
        raise ValueError(f"cap must be a finite number >= 0, got {cap!r}")
    if value is None:
        return None
    text = value.strip(" \t")
    if not text:
        return None
    if _DIGITS.fullmatch(text):
        if len(text.lstrip("0")) > _MAX_DELTA_DIGITS:
            return float(cap)
        return min(float(int(text)), float(cap))
    if not math.isfinite(now):
        return None
    moment = _parse_http_date(text, now)
    if moment is None:
        return None
    delta = moment - now
    if not math.isfinite(delta):
        return None
    return min(max(delta, 0.0), float(cap))
