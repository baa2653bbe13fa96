import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_tracker.periods import Period, PeriodError, latest_begun_plan_year, parse_period


@pytest.mark.parametrize(
    ("text", "canonical", "point", "month"),
    [
        ("2025", "2025", "2025", 12),
        ("2025年", "2025", "2025", 12),
        ("2025-Q3", "2025-Q3", "2025-09", 9),
        ("2025q3", "2025-Q3", "2025-09", 9),
        ("2025年三季度", "2025-Q3", "2025-09", 9),
        ("2025年第3季度", "2025-Q3", "2025-09", 9),
        ("2025-09", "2025-09", "2025-09", 9),
        ("2025-9", "2025-09", "2025-09", 9),
        ("2025年9月", "2025-09", "2025-09", 9),
        ("2025年1-9月", "2025-09", "2025-09", 9),
        ("2025年1～9月", "2025-09", "2025-09", 9),
        ("２０２５年９月", "2025-09", "2025-09", 9),
        (" 2024-Q4 ", "2024-Q4", "2024-12", 12),
        (2023, "2023", "2023", 12),
        (2023.0, "2023", "2023", 12),
    ],
)
def test_forms_people_write(text, canonical, point, month):
    period = parse_period(text)
    assert str(period) == canonical
    assert period.point == point
    assert period.month == month


@pytest.mark.parametrize("text", ["", "2025-13", "2025-Q5", "25年", "二〇二五", "2025年13月", "abc", "1800"])
def test_rejects_what_is_not_a_period(text):
    with pytest.raises(PeriodError) as info:
        parse_period(text)
    assert "期间" in str(info.value) or "范围" in str(info.value)


def test_quarter_and_its_closing_month_are_one_point_but_keep_their_form():
    q3, m9 = parse_period("2025-Q3"), parse_period("2025-09")
    assert q3.point == m9.point
    assert str(q3) != str(m9)


def test_year_form_sorts_after_its_december():
    year, december, q4 = Period(2025), Period(2025, "M", 12), Period(2025, "Q", 4)
    assert max([december, year, q4], key=lambda p: p.sort_key) == year
    assert Period(2025, "M", 11).sort_key < december.sort_key


@given(st.integers(2000, 2090), st.integers(1, 12))
def test_month_round_trips(year, month):
    period = parse_period(f"{year}年{month}月")
    assert parse_period(str(period)) == period
    assert period.month == month


@given(st.integers(2000, 2090), st.integers(1, 4))
def test_quarter_round_trips(year, quarter):
    period = parse_period(f"{year}-Q{quarter}")
    assert parse_period(str(period)) == period
    assert period.point == f"{year}-{quarter * 3:02d}"


def test_latest_begun_plan_year():
    assert latest_begun_plan_year(2026) == 2025
    assert latest_begun_plan_year(2023) == 2023
    assert latest_begun_plan_year(2019) == 2021
