"""The gap engine: ``shared/plan-semantics.md`` as pure functions (no Excel, no I/O).

Everything that shows a number — the CLI's ``gap``, the consolidated tabs, ``=PLAN_GAP()`` —
goes through :func:`evaluate`. Where a figure cannot be computed the result carries ``None``
and says why in ``note`` instead of guessing.

Section numbers (§) refer to ``plan-semantics.md``. Decisions the contract leaves open are
listed in ``docs/semantics-decisions.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date

import pandas as pd
from plan_tracker.catalogue import Catalogue, Indicator
from plan_tracker.periods import (
    BASE_YEAR,
    PLAN_START,
    Period,
    latest_begun_plan_year,
    parse_period,
)

ON_TRACK, AT_RISK, BEHIND = "on_track", "at_risk", "behind"
NOT_REPORTED, NO_TARGET = "not_reported", "no_target"
STATUSES = (ON_TRACK, AT_RISK, BEHIND, NOT_REPORTED, NO_TARGET)
STATUS_ZH = {
    ON_TRACK: "达标",
    AT_RISK: "预警",
    BEHIND: "滞后",
    NOT_REPORTED: "未报送",
    NO_TARGET: "无目标",
}
RESULT_COLUMNS = [
    "indicator_id",
    "name_zh",
    "period",
    "target",
    "actual",
    "gap",
    "completion",
    "schedule",
    "status",
    "required_pace",
    "outlook",
    "on_course",
    "note",
]
_EPS = 1e-9

# Notes, Chinese first; the English words are the contract's own (plan-semantics §4–§6).
NOTE_BASE_YEAR = "基期年 / base year"
NOTE_NO_BASE = "缺少2020年基数 / no 2020 base recorded"
NOTE_NO_MILESTONE = "本年无目标节点 / no milestone for this year"
NOTE_NO_TARGET = "未设目标 / no target set"
NOTE_BEFORE_BASE = "早于基期 / before the base year"


@dataclass(frozen=True)
class Thresholds:
    """Status thresholds a coordinator can change (plan-semantics §6)."""

    on_track: float = 1.0
    at_risk: float = 0.9
    growth_amber_pp: float = 2.0

    @classmethod
    def from_settings(cls, get) -> Thresholds:
        """Build from a ``get(key, default)`` settings lookup (the store's)."""
        return cls(
            on_track=float(get("threshold.on_track", cls.on_track)),
            at_risk=float(get("threshold.at_risk", cls.at_risk)),
            growth_amber_pp=float(get("threshold.growth_amber_pp", cls.growth_amber_pp)),
        )


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class GapResult:
    indicator_id: str
    name_zh: str
    period: str
    target: float | None = None
    actual: float | str | None = None
    gap: float | None = None
    completion: float | None = None
    schedule: float | None = None
    status: str = NO_TARGET
    required_pace: float | None = None
    outlook: float | None = None
    on_course: bool | None = None
    note: str = ""
    # Beside the contract's columns, for the tabs: unit, group, what a figure is measured in.
    unit: str = ""
    group: str = ""
    rule: str = ""
    measure: str = ""
    reference: float | None = None  # implied level of a growth rule, computed share …
    reference_label: str = ""
    pace_unit: str = ""
    final_target: float | None = None
    final_year: int | None = None
    notes: list[str] = field(default_factory=list, repr=False)

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row.pop("notes")
        return row

    def contract_row(self) -> dict[str, object]:
        """Exactly the columns of ``plan-tracker gap`` (issue #2), in order."""
        row = self.as_row()
        return {key: row[key] for key in RESULT_COLUMNS}


# --------------------------------------------------------------------------- facts


class Facts:
    """Current values by indicator and point in time, with derived indicators resolved.

    Built once from the store's observations frame; lookups are dictionary reads, so a sheet
    with thousands of ``PLAN_`` cells stays fast.
    """

    def __init__(self, catalogue: Catalogue, observations: pd.DataFrame | None) -> None:
        self.catalogue = catalogue
        self._values: dict[tuple[str, str], float] = {}
        self._texts: dict[tuple[str, str], str] = {}
        self._notes: dict[tuple[str, str], str] = {}
        # Periods with a number and periods with a task state, per indicator: a remark or a
        # 待核实 on a numeric indicator is not "a period with a value" (§6 default period).
        self._value_periods: dict[str, dict[str, Period]] = {}
        self._text_periods: dict[str, dict[str, Period]] = {}
        if observations is not None and len(observations):
            self._load(observations)

    def _load(self, frame: pd.DataFrame) -> None:
        has_text = "value_text" in frame.columns
        has_note = "note" in frame.columns
        columns = ["indicator_id", "period", "value"]
        columns += ["value_text"] if has_text else []
        columns += ["note"] if has_note else []
        for record in frame[columns].itertuples(index=False, name=None):
            ind_id, period_text, value = record[0], record[1], record[2]
            text = record[3] if has_text else None
            note = record[-1] if has_note else None
            period = parse_period(period_text)
            key = (str(ind_id), period.point)
            if value is not None and not _isnan(value):
                self._values[key] = float(value)
            if isinstance(text, str) and text:
                self._texts[key] = text
            if isinstance(note, str) and note:
                self._notes[key] = note
            if key in self._values:
                self._value_periods.setdefault(key[0], {})[period.point] = period
            if key in self._texts:
                self._text_periods.setdefault(key[0], {})[period.point] = period

    # -- raw values (as reported)
    def _lookup(self, table: dict, ind_id: str, period: Period):
        found = table.get((ind_id, period.point))
        if found is None and period.month == 12:
            other = str(period.year) if not period.is_annual else f"{period.year}-12"
            found = table.get((ind_id, other))
        return found

    def reported(self, ind_id: str, period: Period) -> float | None:
        """A reported value; the year and its December/Q4 stand in for each other."""
        return self._lookup(self._values, ind_id, period)

    def text(self, ind_id: str, period: Period) -> str | None:
        return self._lookup(self._texts, ind_id, period)

    def note(self, ind_id: str, period: Period) -> str | None:
        return self._lookup(self._notes, ind_id, period)

    def reported_periods(self, ind_id: str) -> list[Period]:
        """Periods with a reported value (a task: with a reported state)."""
        table = self._text_periods if self.catalogue.get(ind_id).is_task else self._value_periods
        return list(table.get(ind_id, {}).values())

    # -- values with derived indicators computed (plan-semantics §6, derived)
    def value(self, ind: Indicator, period: Period) -> float | None:
        reported = self.reported(ind.id, period)
        if reported is not None or ind.derived is None:
            return reported
        return self.computed(ind, period)

    def annual(self, ind: Indicator, year: int) -> float | None:
        return self.value(ind, Period(year))

    def computed(self, ind: Indicator, period: Period) -> float | None:
        """The derived value from components, where all components have a value."""
        derived = ind.derived
        if derived is None:
            return None
        parts = {cid: self.value(self.catalogue.get(cid), period) for cid in derived.components}
        if any(v is None for v in parts.values()):
            return None
        if derived.kind == "count_at_least":
            return float(sum(1 for cid in derived.items if parts[cid] >= derived.threshold - _EPS))
        denominator = sum(parts[c] for c in derived.denominator)
        if denominator == 0:
            return None
        return sum(parts[c] for c in derived.numerator) / denominator * 100.0

    def missing_components(self, ind: Indicator, period: Period) -> list[str]:
        if ind.derived is None:
            return []
        return [
            cid
            for cid in ind.derived.components
            if self.value(self.catalogue.get(cid), period) is None
        ]

    def value_periods(self, ind: Indicator) -> list[Period]:
        """Every period at which the indicator has a value (reported or computed).

        A derived indicator's candidates are its own reports and its components' periods, kept
        where it has a value there (the year/December stand-in included), so a year and its
        December are both found and the year form can win (§6 default period).
        """
        found: dict[str, Period] = {p.point: p for p in self.reported_periods(ind.id)}
        if ind.derived is not None:
            for cid in ind.derived.components:
                for period in self.value_periods(self.catalogue.get(cid)):
                    if period.point not in found and self.value(ind, period) is not None:
                        found[period.point] = period
        return list(found.values())


@dataclass(frozen=True)
class ComponentPart:
    """One component of a derived indicator at a period (for breakdowns in the tabs)."""

    indicator_id: str
    value: float | None
    part: float | None  # share: percent of the denominator; count: 1.0 reaches the threshold, 0.0 not


def derived_parts(ind: Indicator, period: Period, facts: Facts) -> list[ComponentPart]:
    """The numerator components of a share with their part of the denominator, or the items
    of a count with whether each reaches the threshold, by the same rule as the derived value."""
    derived = ind.derived
    if derived is None:
        return []
    catalogue = facts.catalogue
    if derived.kind == "count_at_least":
        parts = []
        for cid in derived.items:
            value = facts.value(catalogue.get(cid), period)
            reached = None if value is None else float(value >= derived.threshold - _EPS)
            parts.append(ComponentPart(cid, value, reached))
        return parts
    denominators = [facts.value(catalogue.get(c), period) for c in derived.denominator]
    whole = None if any(d is None for d in denominators) else sum(denominators)
    parts = []
    for cid in derived.numerator:
        value = facts.value(catalogue.get(cid), period)
        part = value / whole * 100.0 if value is not None and whole else None
        parts.append(ComponentPart(cid, value, part))
    return parts


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


# --------------------------------------------------------------------------- targets


def _interpolate(y0: int, v0: float, y1: int, v1: float, year: int, geometric: bool) -> float:
    fraction = (year - y0) / (y1 - y0)
    if geometric and v0 > 0 and v1 > 0:
        return v0 * (v1 / v0) ** fraction
    # Geometric needs two positive ends; with a zero or negative end we fall back to linear.
    return v0 + (v1 - v0) * fraction


def year_target(ind: Indicator, year: int, facts: Facts) -> tuple[float | None, str]:
    """T(y) for at_least / about / each_year_at_least (plan-semantics §4)."""
    milestones = ind.milestones
    if not milestones:
        return None, NOTE_NO_TARGET
    if year in milestones:
        return milestones[year], ""
    if year == BASE_YEAR:
        return None, NOTE_BASE_YEAR
    if year < BASE_YEAR:
        return None, NOTE_BEFORE_BASE
    years = sorted(milestones)
    if year < years[0]:
        base = facts.annual(ind, BASE_YEAR)
        if base is None:
            return None, NOTE_NO_BASE
        return _interpolate(BASE_YEAR, base, years[0], milestones[years[0]], year, ind.is_money), ""
    if year > years[-1]:
        if ind.measure in ("stock", "ratio"):
            return milestones[years[-1]], ""
        return None, NOTE_NO_MILESTONE
    y0 = max(y for y in years if y < year)
    y1 = min(y for y in years if y > year)
    return _interpolate(y0, milestones[y0], y1, milestones[y1], year, ind.is_money), ""


def cumulative_target(ind: Indicator, year: int) -> tuple[float | None, str]:
    """C(y): milestones on the running sum since 2021, C(2020) = 0, linear (§4)."""
    if year == BASE_YEAR:
        return 0.0, ""
    if year < BASE_YEAR:
        return None, NOTE_BEFORE_BASE
    anchors = {BASE_YEAR: 0.0, **ind.milestones}
    if year in anchors:
        return anchors[year], ""
    years = sorted(anchors)
    if year > years[-1]:
        return None, NOTE_NO_MILESTONE
    y0 = max(y for y in years if y < year)
    y1 = min(y for y in years if y > year)
    return _interpolate(y0, anchors[y0], y1, anchors[y1], year, geometric=False), ""


def growth_target(ind: Indicator, year: int) -> tuple[float | None, str]:
    """The rate r of a growth rule: it holds in every year 2021 … its last milestone (§4)."""
    if year <= BASE_YEAR:
        return None, NOTE_BASE_YEAR if year == BASE_YEAR else NOTE_BEFORE_BASE
    if ind.rule == "yoy_at_least":
        if year in ind.milestones:
            return ind.milestones[year], ""
        return None, NOTE_NO_MILESTONE
    later = [y for y in sorted(ind.milestones) if y >= year]
    if not later:
        return None, NOTE_NO_MILESTONE
    return ind.milestones[later[0]], ""


def running_sum(ind: Indicator, year: int, facts: Facts) -> tuple[float | None, str]:
    """S(y): the sum of the annual actuals 2021..y; one missing year makes it undefined."""
    total = 0.0
    missing = []
    for y in range(PLAN_START, year + 1):
        value = facts.annual(ind, y)
        if value is None:
            missing.append(str(y))
        else:
            total += value
    if missing:
        return None, f"缺少{'、'.join(missing)}年全年数，累计值无法计算 / running sum undefined: no annual value for {', '.join(missing)}"
    return total, ""


# --------------------------------------------------------------------------- status


def judge_status(
    ind: Indicator,
    target: float | None,
    actual: float | None,
    gap: float | None,
    thresholds: Thresholds,
) -> str:
    if target is None:
        return NO_TARGET
    if actual is None:
        return NOT_REPORTED
    if ind.is_growth:
        if gap >= -_EPS:
            return ON_TRACK
        if gap >= -thresholds.growth_amber_pp - _EPS:
            return AT_RISK
        return BEHIND
    if target == 0:
        ratio = 1.0 if actual == 0 else (math.inf if actual > 0 else -math.inf)
    else:
        ratio = actual / target
    if ind.rule == "about":
        tol = ind.effective_tolerance or 0.0
        off = abs(ratio - 1.0)
        if off <= tol + _EPS:
            return ON_TRACK
        if off <= 2 * tol + _EPS:
            return AT_RISK
        return BEHIND
    if ratio >= thresholds.on_track - _EPS:
        return ON_TRACK
    if ratio >= thresholds.at_risk - _EPS:
        return AT_RISK
    return BEHIND


def task_status(state: str | None, period: Period, ind: Indicator) -> str:
    """Tasks (the contract is silent; docs/semantics-decisions.md): done is green; in progress
    is green until the plan's deadline (the year end of its final year) and amber from then
    on, every period after it included; not started is red."""
    if not state:
        return NOT_REPORTED
    if state == "已完成":
        return ON_TRACK
    if state == "推进中":
        deadline_passed = (period.year, period.month) >= (ind.horizon_year, 12)
        return AT_RISK if deadline_passed else ON_TRACK
    return BEHIND


# --------------------------------------------------------------------------- pace & outlook


def _latest_annual(ind: Indicator, facts: Facts, upto: int, start: int = BASE_YEAR) -> tuple[int, float] | None:
    for year in range(upto, start - 1, -1):
        value = facts.annual(ind, year)
        if value is not None:
            return year, value
    return None


def _project(points: list[tuple[int, float]], to_year: int, compound: bool) -> float | None:
    """Project to ``to_year`` from the earliest to the latest annual actual (§6 outlook)."""
    if len(points) < 2:
        return None
    (y0, v0), (y1, v1) = points[0], points[-1]
    if y1 == y0:
        return None
    if compound:
        if v0 <= 0 or v1 <= 0:
            return None
        return v1 * (v1 / v0) ** ((to_year - y1) / (y1 - y0))
    return v1 + (v1 - v0) / (y1 - y0) * (to_year - y1)


def _annual_points(ind: Indicator, facts: Facts, upto: int) -> list[tuple[int, float]]:
    points = []
    for year in range(BASE_YEAR, upto + 1):
        value = facts.annual(ind, year)
        if value is not None:
            points.append((year, value))
    return points


def required_pace(ind: Indicator, period: Period, facts: Facts) -> tuple[float | None, str]:
    """The pace still needed each year to reach the final target (§6); returns (pace, unit)."""
    if ind.rule in ("each_year_at_least", "yoy_at_least", "task") or not ind.milestones:
        return None, ""
    final_year, final = ind.final_year, ind.final_target
    upto = min(period.year, final_year - 1)
    if ind.rule == "growth_at_least":
        source = facts.catalogue.get(ind.source)
        base = facts.annual(source, BASE_YEAR)
        latest = _latest_annual(source, facts, upto)
        if base is None or latest is None or base <= 0 or latest[1] <= 0:
            return None, ""
        year, level = latest
        goal = base * (1 + final / 100.0) ** (final_year - BASE_YEAR)
        return ((goal / level) ** (1 / (final_year - year)) - 1) * 100.0, "%/年"
    if ind.rule == "cumulative_at_least":
        latest = _latest_annual(ind, facts, upto, start=PLAN_START)
        if latest is None:
            return None, ""
        year = latest[0]
        total, _ = running_sum(ind, year, facts)
        if total is None:
            return None, ""
        return (final - total) / (final_year - year), f"{ind.unit}/年"
    latest = _latest_annual(ind, facts, upto)
    if latest is None:
        return None, ""
    year, actual = latest
    if ind.is_money:
        if actual <= 0 or final <= 0:
            return None, ""
        return ((final / actual) ** (1 / (final_year - year)) - 1) * 100.0, "%/年"
    unit = "个百分点/年" if ind.unit == "%" else f"{ind.unit}/年"
    return (final - actual) / (final_year - year), unit


def outlook(ind: Indicator, period: Period, facts: Facts) -> float | None:
    """The final year's value projected from the annual actuals (§6).

    Actuals after the final year are not used: once the final year is past, its own actual is
    the outlook, rather than a projection backwards from later years.
    """
    if ind.rule in ("yoy_at_least", "task"):
        return None
    horizon = ind.horizon_year
    if ind.rule == "cumulative_at_least":
        latest = _latest_annual(ind, facts, min(period.year, horizon), start=PLAN_START)
        if latest is None:
            return None
        year = latest[0]
        total, _ = running_sum(ind, year, facts)
        if total is None:
            return None
        return total + total / (year - BASE_YEAR) * (horizon - year)
    if ind.rule == "growth_at_least":
        source = facts.catalogue.get(ind.source)
        base = facts.annual(source, BASE_YEAR)
        projected = _project(_annual_points(source, facts, min(period.year, horizon)), horizon, source.is_money)
        if base is None or projected is None or base <= 0 or projected <= 0:
            return None
        return ((projected / base) ** (1 / (horizon - BASE_YEAR)) - 1) * 100.0
    return _project(_annual_points(ind, facts, min(period.year, horizon)), horizon, ind.is_money)


def meets_final(ind: Indicator, value: float | None) -> bool | None:
    if value is None or ind.final_target is None:
        return None
    final = ind.final_target
    if ind.rule == "about":
        tol = ind.effective_tolerance or 0.0
        if final == 0:
            return value == 0
        return abs(value / final - 1.0) <= tol + _EPS
    return value >= final - _EPS


# --------------------------------------------------------------------------- evaluation


def default_period(ind: Indicator, facts: Facts, today: date | None = None) -> Period:
    """The indicator's latest period with a value (§6, default period)."""
    if ind.is_growth:
        candidates = facts.value_periods(facts.catalogue.get(ind.source))
    else:
        candidates = facts.value_periods(ind)
        if not candidates and ind.derived is not None:
            for cid in ind.derived.components:
                candidates += facts.value_periods(facts.catalogue.get(cid))
    if candidates:
        return max(candidates, key=lambda p: p.sort_key)
    return Period(latest_begun_plan_year((today or date.today()).year))


def evaluate_indicator(
    ind: Indicator,
    period: Period | None,
    facts: Facts,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    today: date | None = None,
) -> GapResult:
    """Target, actual, gap, completion, schedule, status, pace and outlook of one indicator."""
    if period is None:
        period = default_period(ind, facts, today)
    result = GapResult(
        indicator_id=ind.id,
        name_zh=ind.name_zh,
        period=str(period),
        unit=ind.unit,
        group=ind.group,
        rule=ind.rule,
        measure=ind.measure,
        final_target=ind.final_target,
        final_year=ind.final_year,
    )
    if ind.is_task:
        _evaluate_task(ind, period, facts, result)
    elif ind.is_growth:
        _evaluate_growth(ind, period, facts, result)
    elif ind.rule == "cumulative_at_least":
        _evaluate_cumulative(ind, period, facts, result)
    else:
        _evaluate_level(ind, period, facts, result)
    if not ind.is_task:
        if result.target is not None and result.actual is not None:
            result.gap = result.actual - result.target
        result.status = judge_status(ind, result.target, result.actual, result.gap, thresholds)
        if result.status == NOT_REPORTED and not result.notes:
            result.notes.append("未报送 / not reported")
        result.required_pace, result.pace_unit = required_pace(ind, period, facts)
        result.outlook = outlook(ind, period, facts)
        result.on_course = meets_final(ind, result.outlook)
    result.note = "；".join(dict.fromkeys(n for n in result.notes if n))
    return result


def _evaluate_task(ind: Indicator, period: Period, facts: Facts, result: GapResult) -> None:
    state = facts.text(ind.id, period)
    result.actual = state
    result.status = task_status(state, period, ind)
    progress = facts.note(ind.id, period)
    if progress:
        result.notes.append(progress)
    elif not state:
        result.notes.append("未报送 / not reported")


def _evaluate_level(ind: Indicator, period: Period, facts: Facts, result: GapResult) -> None:
    """at_least / about / each_year_at_least on flows, stocks and ratios (§4, §5)."""
    year, month = period.year, period.month
    annual_target, why = year_target(ind, year, facts)
    result.notes.append(why)
    actual = facts.value(ind, period)
    if actual is None and ind.derived is not None:
        missing = facts.missing_components(ind, period)
        if missing:
            result.notes.append(f"缺少分项 {', '.join(missing)} / missing component(s)")
    if ind.derived is not None and ind.derived.kind == "share":
        computed = facts.computed(ind, period)
        reported = facts.reported(ind.id, period)
        if reported is not None and computed is not None:
            result.reference, result.reference_label = computed, "计算值 computed"
            if abs(reported - computed) > 1.0 + _EPS:
                result.notes.append(
                    f"上报值与计算值 {computed:.2f}% 相差 {reported - computed:+.2f} 个百分点 / "
                    f"reported differs from computed by {reported - computed:+.2f} pp"
                )
    if ind.derived is not None and ind.derived.kind == "count_at_least" and month != 12:
        result.notes.append("按年初至今累计值计 / counted on year-to-date values")
    result.actual = actual
    if ind.measure == "flow":
        # 序时进度 is a property of the period: an annual flow's schedule is 1.0 (§3).
        result.schedule = month / 12
    if annual_target is None:
        return
    if ind.measure == "flow":
        result.target = annual_target * month / 12
        if actual is not None and annual_target != 0:
            result.completion = actual / annual_target
        return
    if ind.measure == "stock" and month != 12:
        if year - 1 == BASE_YEAR:
            previous = facts.annual(ind, BASE_YEAR)
        else:
            previous, _ = year_target(ind, year - 1, facts)
        start = annual_target if previous is None else previous
        result.target = start + (annual_target - start) * month / 12
    else:
        result.target = annual_target
    if actual is not None and result.target:
        result.completion = actual / result.target


def _evaluate_cumulative(ind: Indicator, period: Period, facts: Facts, result: GapResult) -> None:
    year, month = period.year, period.month
    result.schedule = month / 12
    if year <= BASE_YEAR:
        result.notes.append(NOTE_BASE_YEAR if year == BASE_YEAR else NOTE_BEFORE_BASE)
        c_year = c_prev = None
    else:
        c_year, why = cumulative_target(ind, year)
        result.notes.append(why)
        c_prev, _ = cumulative_target(ind, year - 1)
    if c_year is not None and c_prev is not None:
        result.target = c_prev + (c_year - c_prev) * month / 12
    this_year = facts.value(ind, period)
    earlier, why_sum = running_sum(ind, year - 1, facts) if year > PLAN_START else (0.0, "")
    if this_year is None:
        result.actual = None
    elif earlier is None:
        result.notes.append(why_sum)
        result.actual = None
    else:
        result.actual = earlier + this_year
    if result.actual is not None and c_year:
        result.completion = result.actual / c_year


def _evaluate_growth(ind: Indicator, period: Period, facts: Facts, result: GapResult) -> None:
    """growth_at_least / yoy_at_least: rates in percent, gaps in percentage points (§4, §5)."""
    source = facts.catalogue.get(ind.source)
    target, why = growth_target(ind, period.year)
    result.notes.append(why)
    result.target = target
    current = facts.value(source, period)
    if period.is_annual:
        compare_year = BASE_YEAR if ind.rule == "growth_at_least" else period.year - 1
        previous = facts.annual(source, compare_year)
        if ind.rule == "growth_at_least" and previous is not None and target is not None:
            result.reference = previous * (1 + target / 100.0) ** (period.year - BASE_YEAR)
            result.reference_label = "目标隐含水平 implied level"
        if current is None:
            result.notes.append(f"缺少{source.name_zh}{period.year}年数 / no {period.year} value of {source.id}")
        elif previous is None:
            result.notes.append(
                NOTE_NO_BASE
                if compare_year == BASE_YEAR
                else f"缺少{compare_year}年数 / no {compare_year} value of {source.id}"
            )
        elif period.year > BASE_YEAR and previous > 0 and current > 0:
            span = period.year - BASE_YEAR if ind.rule == "growth_at_least" else 1
            result.actual = ((current / previous) ** (1 / span) - 1) * 100.0
        elif period.year <= BASE_YEAR:
            pass
        else:
            result.notes.append("数值非正，无法计算增速 / non-positive value, no growth rate")
        return
    # A month or quarter: this year's YTD over the same period last year (同比).
    last_year = period.same_period_last_year()
    previous = facts.value(source, last_year)
    if current is None:
        result.notes.append(f"缺少{source.name_zh}{period}数 / no {period} value of {source.id}")
    elif previous is None:
        result.notes.append(f"缺少上年同期（{last_year}）数，无法计算同比 / no value for the same period last year ({last_year})")
    elif previous > 0:
        result.actual = (current / previous - 1) * 100.0
    else:
        result.notes.append("上年同期数非正 / non-positive value last year")


def evaluate(
    catalogue: Catalogue,
    observations: pd.DataFrame | Facts | None,
    period: str | Period | None = None,
    indicator_ids: Iterable[str] | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    today: date | None = None,
) -> list[GapResult]:
    """Evaluate indicators for a period (each its default period when ``period`` is None)."""
    facts = observations if isinstance(observations, Facts) else Facts(catalogue, observations)
    wanted = [catalogue.resolve(i) for i in indicator_ids] if indicator_ids else list(catalogue)
    asked = parse_period(period) if period is not None else None
    return [evaluate_indicator(ind, asked, facts, thresholds, today) for ind in wanted]


def results_frame(results: list[GapResult], contract_only: bool = False) -> pd.DataFrame:
    rows = [r.contract_row() if contract_only else r.as_row() for r in results]
    columns = RESULT_COLUMNS if contract_only else None
    return pd.DataFrame(rows, columns=columns)
