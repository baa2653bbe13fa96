"""Reporting completeness and timeliness (DHIS2-style) over a submissions frame."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from plan_tracker.completeness import (
    ReportingRules,
    ReportingSettingError,
    completeness,
    due_date,
    expected_periods,
    summarise,
)
from plan_tracker.periods import Period, parse_period
from plan_tracker.store import SUBMISSION_COLUMNS


def frame(*rows: dict) -> pd.DataFrame:
    records = []
    for i, row in enumerate(rows, start=1):
        period = parse_period(row["period"]) if row.get("period") else None
        records.append({
            "submission_id": i, "file_name": f"f{i}.xlsx", "sha256": str(i), "kind": "template",
            "point": period.point if period else None, "period": str(period) if period else None,
            "decided_at": None, "archive_path": None, "template_id": None, "created_by": "t",
            "errors": 0, "warnings": 0, **{k: v for k, v in row.items() if k != "period"},
        })
    return pd.DataFrame(records, columns=SUBMISSION_COLUMNS)


def settings(**values: str):
    return lambda key, default=None: values.get(key, default)


def test_expected_periods_by_frequency() -> None:
    rules = ReportingRules()
    assert [str(p) for p in expected_periods(Period(2025, "M", 3), rules)] == ["2025-01", "2025-02", "2025-03"]
    assert [str(p) for p in expected_periods(Period(2025, "M", 8), rules, "quarterly")] == ["2025-Q1", "2025-Q2"]
    assert [str(p) for p in expected_periods(Period(2025, "Q", 3), rules, "quarterly")] == ["2025-Q1", "2025-Q2", "2025-Q3"]
    assert [str(p) for p in expected_periods(Period(2025, "M", 8), rules, "annual")] == ["2024"]
    assert [str(p) for p in expected_periods(Period(2025), rules, "annual")] == ["2025"]
    started = ReportingRules(start=Period(2024, "M", 11))
    assert [str(p) for p in expected_periods(Period(2025, "M", 2), started)] == [
        "2024-11", "2024-12", "2025-01", "2025-02"]


def test_due_date_is_days_after_the_last_day() -> None:
    assert due_date(Period(2025, "M", 2), ReportingRules(due_days=10)) == date(2025, 3, 10)
    assert due_date(Period(2024, "M", 2), ReportingRules(due_days=0)) == date(2024, 2, 29)
    assert due_date(Period(2025, "Q", 4), ReportingRules(due_days=15)) == date(2026, 1, 15)


def test_on_time_is_judged_on_the_local_date() -> None:
    rules = ReportingRules(due_days=10, timezone="Asia/Shanghai")
    # 2025-10-10 23:59:59 in Shanghai is on time; one second later is late.
    subs = frame(
        {"department": "A", "period": "2025-09", "status": "accepted", "received_at": "2025-10-10T15:59:59Z"},
        {"department": "B", "period": "2025-09", "status": "accepted", "received_at": "2025-10-10T16:00:00Z"},
    )
    detail = completeness(subs, ["A", "B"], Period(2025, "M", 9), rules, today=date(2025, 11, 1))
    row = detail.set_index(["department", "period"])
    assert row.loc[("A", "2025-09"), "status"] == "on_time"
    assert row.loc[("A", "2025-09"), "received_local"] == "2025-10-10 23:59"
    assert row.loc[("B", "2025-09"), "status"] == "late"
    assert row.loc[("B", "2025-09"), "days_late"] == 1
    assert row.loc[("A", "2025-08"), "status"] == "missing"


def test_statuses_and_rates() -> None:
    subs = frame(
        # rejected first, then accepted late: late (first accepted counts), 2 files, 1 rejected
        {"department": "A", "period": "2025-01", "status": "rejected", "received_at": "2025-02-05T01:00:00Z"},
        {"department": "A", "period": "2025-01", "status": "accepted", "received_at": "2025-02-20T01:00:00Z"},
        # a corrected file replaced an on-time one: still on time
        {"department": "A", "period": "2025-02", "status": "superseded", "received_at": "2025-03-01T01:00:00Z"},
        {"department": "A", "period": "2025-02", "status": "accepted", "received_at": "2025-04-01T01:00:00Z"},
        {"department": "B", "period": "2025-01", "status": "rejected", "received_at": "2025-02-01T01:00:00Z"},
        {"department": "B", "period": "2025-02", "status": "pending", "received_at": "2025-03-01T01:00:00Z"},
        {"department": "C", "period": None, "status": "accepted", "received_at": "2025-03-01T01:00:00Z"},
        {"department": None, "period": "2025-01", "status": "accepted", "received_at": "2025-02-01T01:00:00Z"},
    )
    detail = completeness(subs, ["A", "B", "C"], Period(2025, "M", 3), ReportingRules(), today=date(2025, 4, 5))
    status = detail.set_index(["department", "period"])["status"].to_dict()
    assert status == {
        ("A", "2025-01"): "late", ("A", "2025-02"): "on_time", ("A", "2025-03"): "not_due",
        ("B", "2025-01"): "rejected", ("B", "2025-02"): "pending", ("B", "2025-03"): "not_due",
        ("C", "2025-01"): "missing", ("C", "2025-02"): "missing", ("C", "2025-03"): "not_due",
    }
    a_jan = detail[(detail["department"] == "A") & (detail["period"] == "2025-01")].iloc[0]
    assert (a_jan["files"], a_jan["rejected_files"], a_jan["file_name"]) == (2, 1, "f2.xlsx")
    a_feb = detail[(detail["department"] == "A") & (detail["period"] == "2025-02")].iloc[0]
    assert a_feb["file_name"] == "f4.xlsx"  # the file in force, not the first one

    summary = summarise(detail).set_index("department")
    assert summary.loc["A", ["expected", "submitted", "on_time", "late", "not_due"]].tolist() == [2, 2, 1, 1, 1]
    assert summary.loc["A", "reporting_rate"] == 1.0 and summary.loc["A", "on_time_rate"] == 0.5
    assert summary.loc["B", "reporting_rate"] == 0.0
    total = summary.loc["合计 total"]
    assert total["expected"] == 6 and total["submitted"] == 2
    assert math.isclose(total["reporting_rate"], 2 / 6) and math.isclose(total["on_time_rate"], 1 / 6)


def test_nothing_expected_yet_gives_no_rate() -> None:
    detail = completeness(frame(), ["A"], Period(2025, "M", 1), ReportingRules(), today=date(2025, 1, 20))
    assert detail["status"].tolist() == ["not_due"]
    assert math.isnan(summarise(detail).iloc[0]["reporting_rate"])


def test_a_year_answers_for_december() -> None:
    subs = frame({"department": "A", "period": "2024", "status": "accepted", "received_at": "2025-01-05T01:00:00Z"})
    monthly = completeness(subs, ["A"], Period(2024, "M", 12), ReportingRules(start=Period(2024, "M", 12)), today=date(2025, 2, 1))
    assert monthly["status"].tolist() == ["on_time"]
    subs = frame({"department": "A", "period": "2024-12", "status": "accepted", "received_at": "2025-01-20T01:00:00Z"})
    annual = completeness(subs, ["A"], Period(2024), ReportingRules(frequency="annual"), today=date(2025, 2, 1))
    assert annual["status"].tolist() == ["late"]


def test_settings_are_read_and_checked() -> None:
    rules = ReportingRules.from_settings(
        settings(**{"reporting.frequency": "季", "reporting.due_days": "15",
                    "reporting.start": "2024年1月", "reporting.frequency.统计局": "annual"}),
        ["统计局", "工信局"],
    )
    assert (rules.frequency, rules.due_days, str(rules.start)) == ("quarterly", 15, "2024-01")
    assert rules.frequency_for("统计局") == "annual" and rules.frequency_for("工信局") == "quarterly"
    assert ReportingRules.from_settings(settings()) == ReportingRules()
    for key, value in (("reporting.frequency", "weekly"), ("reporting.due_days", "-1"),
                       ("reporting.due_days", "ten"), ("reporting.timezone", "Mars/Olympus"),
                       ("reporting.start", "someday")):
        with pytest.raises(ReportingSettingError, match=key.replace(".", r"\.")):
            ReportingRules.from_settings(settings(**{key: value}))
