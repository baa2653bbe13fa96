"""Reporting periods: ``YYYY``, ``YYYY-Qn``, ``YYYY-MM`` and the Chinese forms people type.

A period is a point in time inside a year: the end of month ``m`` (1..12). A quarter is the
month that closes it (``2025-Q3`` is the same point as ``2025-09``, plan-semantics §3); a year
is its own form, ``2025``. Flows are reported year-to-date (1–N月累计), so a month's value is
the total from January to that month.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLAN_START = 2021
PLAN_END = 2025
BASE_YEAR = 2020

_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_FULLWIDTH = str.maketrans("０１２３４５６７８９－～ＱｑＭｍ", "0123456789-~QqMm")


class PeriodError(ValueError):
    """A period that cannot be understood."""


@dataclass(frozen=True, order=False, slots=True)
class Period:
    """A reporting period. ``kind`` is ``"Y"`` (year), ``"Q"`` (quarter) or ``"M"`` (month)."""

    year: int
    kind: str = "Y"
    index: int = 0  # quarter 1..4 or month 1..12; 0 for a year

    @property
    def month(self) -> int:
        """The month that ends the period (12 for a year)."""
        if self.kind == "Y":
            return 12
        if self.kind == "Q":
            return self.index * 3
        return self.index

    @property
    def is_annual(self) -> bool:
        return self.kind == "Y"

    @property
    def sort_key(self) -> tuple[int, int, int]:
        # At the same point in time the year form sorts last, so "latest" picks it.
        return (self.year, self.month, 1 if self.is_annual else 0)

    @property
    def point(self) -> str:
        """Key of the point in time: a quarter and its closing month share it."""
        return str(self.year) if self.is_annual else f"{self.year}-{self.month:02d}"

    def __str__(self) -> str:
        if self.kind == "Y":
            return str(self.year)
        if self.kind == "Q":
            return f"{self.year}-Q{self.index}"
        return f"{self.year}-{self.index:02d}"

    def label_zh(self) -> str:
        if self.kind == "Y":
            return f"{self.year}年"
        if self.kind == "Q":
            return f"{self.year}年第{self.index}季度"
        return f"{self.year}年{self.index}月"

    def ytd_label_zh(self) -> str:
        """What a flow reports for this period: 1–N月累计."""
        if self.month == 1:
            return f"{self.year}年1月"
        return f"{self.year}年1-{self.month}月累计"

    def same_period_last_year(self) -> Period:
        return Period(self.year - 1, self.kind, self.index)

    def as_year(self) -> Period:
        return Period(self.year)

    def with_month(self, month: int) -> Period:
        return Period(self.year, "M", month)


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\d{4})$"), "Y"),
    (re.compile(r"^(\d{4})年(?:度|全年)?$"), "Y"),
    (re.compile(r"^(\d{4})-?[Qq]([1-4])$"), "Q"),
    (re.compile(r"^(\d{4})年?(?:第)?([1-4一二三四])季度?$"), "Q"),
    (re.compile(r"^(\d{4})年([1-4一二三四])季$"), "Q"),
    (re.compile(r"^(\d{4})-(\d{1,2})$"), "M"),
    (re.compile(r"^(\d{4})[/.](\d{1,2})$"), "M"),
    (re.compile(r"^(\d{4})[Mm](\d{1,2})$"), "M"),
    (re.compile(r"^(\d{4})年(\d{1,2})月(?:份)?(?:累计)?$"), "M"),
    # 2025年1-9月 / 2025年1~9月 / 2025年1至9月(累计): year-to-date up to month 9
    (re.compile(r"^(\d{4})年1(?:月)?[-~—–至到](\d{1,2})月(?:累计)?$"), "M"),
]


def parse_period(text: object) -> Period:
    """Parse a period as people write it; raise :class:`PeriodError` with a hint otherwise.

    >>> str(parse_period("2025年三季度")), str(parse_period("2025年1-9月")), str(parse_period(2024))
    ('2025-Q3', '2025-09', '2024')
    """
    if isinstance(text, Period):
        return text
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    raw = str(text).strip().translate(_FULLWIDTH).replace(" ", "").replace("\u3000", "")
    for pattern, kind in _PATTERNS:
        match = pattern.match(raw)
        if not match:
            continue
        year = int(match.group(1))
        if kind == "Y":
            return _checked(Period(year))
        index = _CN_DIGITS.get(match.group(2)) if kind == "Q" else int(match.group(2))
        if kind == "M" and not 1 <= index <= 12:
            raise PeriodError(f"期间的月份超出范围 / month out of range in period: {text!r}")
        return _checked(Period(year, kind, index))
    raise PeriodError(
        f"无法识别的期间 / unknown period: {text!r}（应为 2025、2025-Q3、2025-09、2025年9月、"
        "2025年1-9月 或 2025年三季度 / use 2025, 2025-Q3, 2025-09 …）"
    )


def _checked(period: Period) -> Period:
    if not 1990 <= period.year <= 2100:
        raise PeriodError(f"期间的年份超出范围 / year out of range in period: {period.year}")
    return period


def point_of(text: object) -> str:
    """The point-in-time key of a period (``2025-Q3`` → ``2025-09``)."""
    return parse_period(text).point


def latest_begun_plan_year(today_year: int) -> int:
    """The latest year of the plan window that has begun (default period with no data)."""
    return max(PLAN_START, min(PLAN_END, today_year))
