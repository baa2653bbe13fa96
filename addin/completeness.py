"""Reporting completeness and timeliness per department and period (DHIS2-style).

Why: a coordinator needs to know, before reading any figure, who has reported for which
period, who was late, whose file was sent back and who is silent. DHIS2 measures this as
*reporting rate* (reports received ÷ reports expected) and *reporting rate on time* (reports
received by the due date ÷ expected); this module does the same over the store's
submissions frame. Pure functions: no store, no Excel.

Expected reports: every department that owns an indicator taking observations
(``Catalogue.departments()``) × every reporting period from the start of the window to the
report period. A period counts as expected once its due date has passed or a report for it
has arrived; before that it is *not due* and left out of the denominator.

Settings (``plan-tracker`` store settings; all optional):

==============================  ===================================================  =========
key                             meaning                                              default
==============================  ===================================================  =========
``reporting.frequency``         ``monthly`` | ``quarterly`` | ``annual`` (月/季/年)    monthly
``reporting.frequency.<部门>``   the same, for one department (e.g. 统计局 quarterly)   —
``reporting.due_days``          days after the period's last day a report is due      10
``reporting.timezone``          IANA zone in which "received by the due date" is read  Asia/Shanghai
``reporting.start``             first period of the window (``2025-01``, ``2024``)    January of
                                                                                     the report
                                                                                     year
==============================  ===================================================  =========

Statuses of one department and period:

* ``on_time`` 已报送(按时) — an accepted report (later corrections included) whose *first*
  accepted file arrived on or before the due date (local date in ``reporting.timezone``);
* ``late`` 已报送(逾期) — accepted, first received after the due date;
* ``rejected`` 已退回 — files arrived but every one was rejected;
* ``pending`` 待审核 — a file arrived and is not yet decided;
* ``missing`` 未报送 — nothing arrived and the due date has passed;
* ``not_due`` 未到期 — nothing arrived and the due date is still ahead.

A year and its December (or Q4) are the same point in time (plan-semantics §3), so an annual
report answers for December and the other way round.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from plan_tracker.periods import Period, PeriodError, parse_period

__all__ = [
    "DETAIL_COLUMNS",
    "FREQUENCIES",
    "FREQUENCY_ZH",
    "STATUS_COLOURS",
    "STATUS_ZH",
    "SUMMARY_COLUMNS",
    "ReportingRules",
    "ReportingSettingError",
    "completeness",
    "due_date",
    "expected_periods",
    "status_label",
    "summarise",
]

FREQUENCIES = ("monthly", "quarterly", "annual")
FREQUENCY_ZH = {"monthly": "月报 monthly", "quarterly": "季报 quarterly", "annual": "年报 annual"}
_FREQUENCY_WORDS = {
    "monthly": "monthly", "month": "monthly", "m": "monthly", "月": "monthly", "月报": "monthly",
    "quarterly": "quarterly", "quarter": "quarterly", "q": "quarterly", "季": "quarterly",
    "季报": "quarterly", "annual": "annual", "yearly": "annual", "year": "annual", "y": "annual",
    "年": "annual", "年报": "annual",
}

ON_TIME, LATE, REJECTED, PENDING, MISSING, NOT_DUE = (
    "on_time", "late", "rejected", "pending", "missing", "not_due",
)
STATUSES = (ON_TIME, LATE, REJECTED, PENDING, MISSING, NOT_DUE)
STATUS_ZH = {
    ON_TIME: "已报送(按时)",
    LATE: "已报送(逾期)",
    REJECTED: "已退回",
    PENDING: "待审核",
    MISSING: "未报送",
    NOT_DUE: "未到期",
}


def status_label(status: str) -> str:
    return f"{STATUS_ZH[status]} {status}"


STATUS_COLOURS = {
    status_label(ON_TIME): "C6EFCE",
    status_label(LATE): "FFEB9C",
    status_label(REJECTED): "FFC7CE",
    status_label(PENDING): "D9D9D9",
    status_label(MISSING): "FFC7CE",
    status_label(NOT_DUE): "F2F2F2",
}

DETAIL_COLUMNS = [
    "department", "period", "point", "frequency", "due_date", "status", "received_at",
    "received_local", "days_late", "files", "rejected_files", "submission_id", "file_name",
]
SUMMARY_COLUMNS = [
    "department", "expected", "submitted", "on_time", "late", "missing", "rejected", "pending",
    "not_due", "reporting_rate", "on_time_rate",
]
TOTAL_LABEL = "合计 total"
_SUBMITTED = ("accepted", "superseded")


class ReportingSettingError(ValueError):
    """A ``reporting.*`` setting that cannot be used; the message names it and the fix."""


def _frequency(value: str, key: str) -> str:
    found = _FREQUENCY_WORDS.get(str(value).strip().lower())
    if found is None:
        raise ReportingSettingError(
            f"设置 {key} 的值 {value!r} 无效，应为 monthly、quarterly 或 annual（月/季/年）"
            f" / setting {key} = {value!r}: use monthly, quarterly or annual"
        )
    return found


@dataclass(frozen=True)
class ReportingRules:
    frequency: str = "monthly"
    due_days: int = 10
    timezone: str = "Asia/Shanghai"
    start: Period | None = None
    by_department: dict[str, str] = field(default_factory=dict)

    def frequency_for(self, department: str) -> str:
        return self.by_department.get(department, self.frequency)

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ReportingSettingError(
                f"设置 reporting.timezone 的时区 {self.timezone!r} 无效，例如 Asia/Shanghai"
                f" / setting reporting.timezone = {self.timezone!r} is not a time zone"
                " (e.g. Asia/Shanghai)"
            ) from exc

    @classmethod
    def from_settings(
        cls, get: Callable[[str, str | None], str | None], departments: Iterable[str] = ()
    ) -> ReportingRules:
        """Read the ``reporting.*`` settings through ``get(key, default)`` (the store's)."""
        frequency = _frequency(get("reporting.frequency", cls.frequency), "reporting.frequency")
        raw_days = get("reporting.due_days", str(cls.due_days))
        try:
            due_days = int(str(raw_days).strip())
        except ValueError:
            due_days = -1
        if due_days < 0:
            raise ReportingSettingError(
                f"设置 reporting.due_days 的值 {raw_days!r} 无效，应为不小于0的整数（期末后的天数）"
                f" / setting reporting.due_days = {raw_days!r}: use a whole number of days ≥ 0"
            )
        raw_start = get("reporting.start", None)
        try:
            start = parse_period(raw_start) if raw_start not in (None, "") else None
        except PeriodError as exc:
            raise ReportingSettingError(f"设置 reporting.start / setting reporting.start: {exc}") from exc
        by_department = {}
        for dept in departments:
            key = f"reporting.frequency.{dept}"
            value = get(key, None)
            if value not in (None, ""):
                by_department[dept] = _frequency(value, key)
        rules = cls(
            frequency=frequency,
            due_days=due_days,
            timezone=str(get("reporting.timezone", cls.timezone)).strip(),
            start=start,
            by_department=by_department,
        )
        rules.zone  # noqa: B018 - fail early, naming the setting, not at the first timestamp
        return rules


def _point_key(period: Period) -> str:
    """A matching key in which a year and its December are the same point."""
    return f"{period.year}-{period.month:02d}"


def _period_end(period: Period) -> date:
    return date(period.year, period.month, calendar.monthrange(period.year, period.month)[1])


def due_date(period: Period, rules: ReportingRules) -> date:
    """The last day a report for ``period`` counts as on time."""
    return _period_end(period) + timedelta(days=rules.due_days)


def expected_periods(
    upto: Period, rules: ReportingRules, frequency: str | None = None
) -> list[Period]:
    """The reporting periods from the window's start to ``upto`` (their end at or before
    ``upto``'s end), at ``frequency`` (default: the rules' own)."""
    frequency = frequency or rules.frequency
    end = (upto.year, upto.month)
    if frequency == "annual":
        last_year = upto.year if upto.month == 12 else upto.year - 1
        first_year = rules.start.year if rules.start else last_year
        return [Period(y) for y in range(first_year, last_year + 1)]
    start = rules.start or Period(upto.year, "M", 1)
    periods = []
    year, month = start.year, 1 if start.is_annual else start.month
    step = 3 if frequency == "quarterly" else 1
    if frequency == "quarterly":
        month = ((month - 1) // 3 + 1) * 3  # the quarter's closing month
    while (year, month) <= end:
        periods.append(Period(year, "Q", month // 3) if step == 3 else Period(year, "M", month))
        month += step
        if month > 12:
            year, month = year + 1, month - 12
    return periods


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def completeness(
    submissions: pd.DataFrame,
    departments: Iterable[str],
    upto: Period,
    rules: ReportingRules,
    *,
    today: date,
) -> pd.DataFrame:
    """One row per expected department and period (:data:`DETAIL_COLUMNS`), departments in
    the given order, periods in time order."""
    zone = rules.zone
    by_key: dict[tuple[str, str], list[dict]] = {}
    if len(submissions):
        frame = submissions[submissions["department"].notna() & submissions["point"].notna()]
        for rec in frame.to_dict("records"):
            key = (rec["department"], _point_key(parse_period(rec["point"])))
            by_key.setdefault(key, []).append(rec)
    rows = []
    for dept in dict.fromkeys(departments):
        frequency = rules.frequency_for(dept)
        for period in expected_periods(upto, rules, frequency):
            due = due_date(period, rules)
            found = sorted(
                by_key.get((dept, _point_key(period)), []), key=lambda r: (r["received_at"], r["submission_id"])
            )
            accepted = [r for r in found if r["status"] in _SUBMITTED]
            rejected = [r for r in found if r["status"] == "rejected"]
            pending = [r for r in found if r["status"] == "pending"]
            received = received_local = days_late = submission_id = file_name = None
            if accepted:
                first = accepted[0]
                received = first["received_at"]
                local = _utc(received).astimezone(zone)
                received_local = local.strftime("%Y-%m-%d %H:%M")
                late_by = (local.date() - due).days
                status = ON_TIME if late_by <= 0 else LATE
                days_late = max(late_by, 0)
                current = [r for r in accepted if r["status"] == "accepted"] or accepted
                submission_id, file_name = current[-1]["submission_id"], current[-1]["file_name"]
            elif pending:
                status = PENDING
            elif rejected:
                status = REJECTED
            elif today > due:
                status = MISSING
            else:
                status = NOT_DUE
            rows.append({
                "department": dept,
                "period": str(period),
                "point": period.point,
                "frequency": frequency,
                "due_date": due,
                "status": status,
                "received_at": received,
                "received_local": received_local,
                "days_late": days_late,
                "files": len(found),
                "rejected_files": len(rejected),
                "submission_id": submission_id,
                "file_name": file_name,
            })
    frame = pd.DataFrame(rows, columns=DETAIL_COLUMNS)
    frame["days_late"] = frame["days_late"].astype("Int64")
    frame["submission_id"] = frame["submission_id"].astype("Int64")
    return frame


def summarise(detail: pd.DataFrame) -> pd.DataFrame:
    """Per department (in order of appearance) and a total row: counts by status, reporting
    rate (submitted ÷ expected) and on-time rate (on time ÷ expected); NaN when nothing is
    expected yet."""
    rows = []
    groups = [(dept, detail[detail["department"] == dept]) for dept in dict.fromkeys(detail["department"])]
    groups.append((TOTAL_LABEL, detail))
    for dept, part in groups:
        counts = part["status"].value_counts()
        n = {s: int(counts.get(s, 0)) for s in STATUSES}
        expected = len(part) - n[NOT_DUE]
        submitted = n[ON_TIME] + n[LATE]
        rows.append({
            "department": dept,
            "expected": expected,
            "submitted": submitted,
            "on_time": n[ON_TIME],
            "late": n[LATE],
            "missing": n[MISSING],
            "rejected": n[REJECTED],
            "pending": n[PENDING],
            "not_due": n[NOT_DUE],
            "reporting_rate": submitted / expected if expected else float("nan"),
            "on_time_rate": n[ON_TIME] / expected if expected else float("nan"),
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
