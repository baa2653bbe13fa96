"""An independent, literal reading of ``shared/plan-semantics.md`` (+ docs/semantics-decisions.md).

Used only by ``tests/test_semantics_crosscheck.py`` to cross-check ``plan_tracker.engine``.
It is written for reading, not for speed: every function follows one paragraph of the
contract, quoted in its docstring. Nothing here imports the engine or the service layer.

``reference(catalogue_rows, observations, indicator_id, period_or_None, today)`` returns a
dict with ``period, target, actual, gap, completion, schedule, status, required_pace,
outlook, on_course`` (None where undefined).

* ``catalogue_rows``: dicts as read from ``schemas/catalogue.csv`` (``csv.DictReader``).
* ``observations``: ``(indicator_id, period, value | None, text | None)`` tuples, periods
  ``YYYY``, ``YYYY-Qn`` or ``YYYY-MM``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from plan_tracker.periods import Period, parse_period

BASE_YEAR = 2020
PLAN_START = 2021
PLAN_END = 2025
DEFAULT_TOLERANCE = 0.05  # §2: blank means 0.05
EPS = 1e-9  # decisions: a ratio within 1e-9 of a threshold counts as reaching it
ON_TRACK, AT_RISK = 1.0, 0.9  # §6 thresholds
GROWTH_AMBER_PP = 2.0  # §6: gap >= -2 pp amber
CATALOGUE_CSV = Path(__file__).resolve().parents[1] / "schemas" / "catalogue.csv"


# --------------------------------------------------------------------------- catalogue


def load_rows(path: Path = CATALOGUE_CSV) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _milestones(text: str) -> dict[int, float]:
    """§2: ``year:value`` pairs, ``2021:820;2025:1500``."""
    out: dict[int, float] = {}
    for part in (text or "").split(";"):
        if part.strip():
            year, value = part.split(":")
            out[int(year)] = float(value)
    return out


def _derived(text: str) -> dict | None:
    """``share(A+B; C)`` or ``count_at_least(1000; A, B, C)``."""
    text = re.sub(r"\s", "", text or "")
    if not text:
        return None
    m = re.fullmatch(r"share\(([^;]+);([^)]+)\)", text)
    if m:
        return {"kind": "share", "num": m[1].split("+"), "den": m[2].split("+")}
    m = re.fullmatch(r"count_at_least\(([\d.]+);([^)]+)\)", text)
    if m:
        return {"kind": "count", "threshold": float(m[1]), "items": m[2].split(",")}
    raise ValueError(text)


class Ind:
    def __init__(self, row: dict[str, str]) -> None:
        self.id = row["id"]
        self.unit = row["unit"] or ""
        self.measure = row["measure"] or ""
        self.rule = row["rule"]
        self.milestones = _milestones(row.get("milestones") or "")
        tol = (row.get("tolerance") or "").strip()
        self.tolerance = float(tol) if tol else DEFAULT_TOLERANCE
        self.source = (row.get("source") or "").strip()
        self.derived = _derived(row.get("derived") or "")

    @property
    def money(self) -> bool:
        return self.unit == "亿元"

    @property
    def growth(self) -> bool:
        return self.rule == "growth_at_least"

    @property
    def yoy(self) -> bool:
        return self.rule == "yoy_at_least"

    @property
    def final_year(self) -> int | None:
        return max(self.milestones) if self.milestones else None

    @property
    def final_target(self) -> float | None:
        return self.milestones[self.final_year] if self.milestones else None


# --------------------------------------------------------------------------- observations


class Data:
    """The observations, looked up by point in time (§3 and the decisions' period table)."""

    def __init__(self, observations: Iterable[tuple]) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self.texts: dict[tuple[str, str], str] = {}
        self.periods: dict[str, list[Period]] = {}  # periods with a numeric value
        self.text_periods: dict[str, list[Period]] = {}
        for ind, period, value, text in observations:
            p = parse_period(period)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.values[(ind, str(p))] = float(value)
                self.periods.setdefault(ind, []).append(p)
            if text is not None and str(text).strip():
                self.texts[(ind, str(p))] = str(text).strip()
                self.text_periods.setdefault(ind, []).append(p)

    @staticmethod
    def forms(p: Period) -> list[str]:
        """The keys to try for ``p``, the asked form first.

        ``2025-Q3`` and ``2025-09`` are the same point (§3). ``2025`` and ``2025-12``/``2025-Q4``
        stand in for each other, the asked form winning (decisions, periods table).
        """
        y, m = p.year, p.month
        if p.is_annual:
            return [str(y), f"{y}-12", f"{y}-Q4"]
        month, quarter = f"{y}-{m:02d}", (f"{y}-Q{m // 3}" if m % 3 == 0 else None)
        own = str(p)
        keys = [own] + [k for k in (month, quarter) if k and k != own]
        if m == 12:
            keys.append(str(y))
        return keys

    def raw(self, ind: str, p: Period) -> float | None:
        for key in self.forms(p):
            if (ind, key) in self.values:
                return self.values[(ind, key)]
        return None

    def text(self, ind: str, p: Period) -> str | None:
        for key in self.forms(p):
            if (ind, key) in self.texts:
                return self.texts[(ind, key)]
        return None


class Model:
    def __init__(self, rows: list[dict[str, str]], observations: Iterable[tuple]) -> None:
        self.inds = {r["id"]: Ind(r) for r in rows}
        self.data = Data(observations)

    # ---- the value of a series at a period ------------------------------------------

    def computed(self, ind: Ind, p: Period) -> float | None:
        """§6 derived: computed in every period in which all components have a value."""
        d = ind.derived
        if d is None:
            return None
        if d["kind"] == "share":
            num = [self.data.raw(c, p) for c in d["num"]]
            den = [self.data.raw(c, p) for c in d["den"]]
            if any(v is None for v in num + den) or sum(den) == 0:
                return None
            return sum(num) / sum(den) * 100
        values = [self.data.raw(c, p) for c in d["items"]]
        if any(v is None for v in values):
            return None
        return float(sum(1 for v in values if v >= d["threshold"]))

    def value(self, ind: Ind, p: Period) -> float | None:
        """A series' value: the reported one; for a share reported-or-computed; a count computed."""
        if ind.derived is not None and ind.derived["kind"] == "count":
            return self.computed(ind, p)
        reported = self.data.raw(ind.id, p)
        if reported is not None:
            return reported
        if ind.derived is not None:
            return self.computed(ind, p)
        return None

    def annual(self, ind: Ind, year: int) -> float | None:
        return self.value(ind, Period(year))

    # ---- §4 targets of a year --------------------------------------------------------

    @staticmethod
    def interp(money: bool, y0: int, t0: float, y1: int, t1: float, y: int) -> float:
        """§4: geometric for money (decisions: linear unless both ends > 0), else linear."""
        f = (y - y0) / (y1 - y0)
        if money and t0 > 0 and t1 > 0:
            return t0 * (t1 / t0) ** f
        return t0 + (t1 - t0) * f

    def year_target(self, ind: Ind, y: int) -> float | None:
        """§4 for the level rules (at_least, about, each_year_at_least)."""
        ms = ind.milestones
        if not ms or y <= BASE_YEAR:  # 2020 is the base year, no target
            return None
        if y in ms:
            return ms[y]
        first, last = min(ms), max(ms)
        if y > last:
            return ms[last] if ind.measure in ("stock", "ratio") else None
        if y < first:
            base = self.annual(ind, BASE_YEAR)
            if base is None:
                return None
            return self.interp(ind.money, BASE_YEAR, base, first, ms[first], y)
        y0 = max(k for k in ms if k < y)
        y1 = min(k for k in ms if k > y)
        return self.interp(ind.money, y0, ms[y0], y1, ms[y1], y)

    def running_target(self, ind: Ind, y: int) -> float | None:
        """§4 cumulative: C(y) on the running sum, C(2020) = 0, linear; none after the last."""
        ms = dict(ind.milestones)
        if y < BASE_YEAR or y > max(ms):
            return None
        if y == BASE_YEAR:
            return 0.0
        if y in ms:
            return ms[y]
        points = {BASE_YEAR: 0.0, **ms}
        y0 = max(k for k in points if k < y)
        y1 = min(k for k in points if k > y)
        return self.interp(False, y0, points[y0], y1, points[y1], y)

    def running_sum(self, ind: Ind, y: int) -> float | None:
        """S(y): the annual actuals 2021..y; one missing year makes it undefined."""
        total = 0.0
        for year in range(PLAN_START, y + 1):
            v = self.annual(ind, year)
            if v is None:
                return None
            total += v
        return total

    # ---- §4/§5 the target and actual of a period -------------------------------------

    def period_target(self, ind: Ind, p: Period) -> float | None:
        y, m = p.year, p.month
        if ind.growth:
            last = ind.final_year
            return ind.milestones[last] if PLAN_START <= y <= last else None
        if ind.yoy:
            return ind.milestones.get(y)
        if ind.rule == "cumulative_at_least":
            if y <= BASE_YEAR:
                return None
            cy = self.running_target(ind, y)
            if cy is None:
                return None
            if p.is_annual:
                return cy
            cprev = self.running_target(ind, y - 1)
            if cprev is None:
                return None
            return cprev + (cy - cprev) * m / 12
        ty = self.year_target(ind, y)
        if ty is None or p.is_annual:
            return ty
        if ind.measure == "flow":
            return ty * m / 12
        if ind.measure == "stock":
            if y - 1 == BASE_YEAR:
                prev = self.annual(ind, BASE_YEAR)
            else:
                prev = self.year_target(ind, y - 1)
            if prev is None:
                prev = ty
            return prev + (ty - prev) * m / 12
        return ty  # ratio: the year's target

    def period_actual(self, ind: Ind, p: Period) -> float | None:
        y = p.year
        if ind.growth or ind.yoy:
            src = self.inds[ind.source]
            if not p.is_annual:  # §5: 同比 of the year-to-date
                now, before = self.value(src, p), self.value(src, p.same_period_last_year())
                return self.rate(now, before, 1)
            if ind.growth:
                if y <= BASE_YEAR:
                    return None
                return self.rate(self.annual(src, y), self.annual(src, BASE_YEAR), y - BASE_YEAR)
            return self.rate(self.annual(src, y), self.annual(src, y - 1), 1)
        if ind.rule == "cumulative_at_least":
            if y <= BASE_YEAR:
                return self.value(ind, p)
            if p.is_annual:
                return self.running_sum(ind, y)
            before = self.running_sum(ind, y - 1)
            now = self.value(ind, p)
            if before is None or now is None:
                return None
            return before + now
        return self.value(ind, p)

    @staticmethod
    def rate(now: float | None, before: float | None, years: int) -> float | None:
        if now is None or before is None or before <= 0 or now < 0:
            return None
        return ((now / before) ** (1 / years) - 1) * 100

    # ---- §6 pace and outlook ---------------------------------------------------------

    def annual_actuals(self, ind: Ind, up_to: int) -> dict[int, float]:
        out = {}
        for year in range(BASE_YEAR, up_to + 1):
            v = self.annual(ind, year)
            if v is not None:
                out[year] = v
        return out

    def required_pace(self, ind: Ind, p: Period) -> float | None:
        if ind.rule in ("each_year_at_least", "yoy_at_least", "task") or not ind.milestones:
            return None
        yf, tf = ind.final_year, ind.final_target
        limit = min(p.year, yf - 1)
        if ind.growth:
            src = self.inds[ind.source]
            base = self.annual(src, BASE_YEAR)
            actuals = self.annual_actuals(src, limit)
            if base is None or base <= 0 or not actuals:
                return None
            y = max(actuals)
            level = base * (1 + tf / 100) ** (yf - BASE_YEAR)
            if actuals[y] <= 0:
                return None
            return ((level / actuals[y]) ** (1 / (yf - y)) - 1) * 100
        if ind.rule == "cumulative_at_least":
            years = [y for y in self.annual_actuals(ind, limit) if y >= PLAN_START]
            if not years:
                return None
            y = max(years)
            s = self.running_sum(ind, y)
            if s is None:
                return None
            return (tf - s) / (yf - y)
        actuals = self.annual_actuals(ind, limit)
        if not actuals:
            return None
        y = max(actuals)
        a = actuals[y]
        if ind.money:
            if a <= 0 or tf <= 0:
                return None
            return ((tf / a) ** (1 / (yf - y)) - 1) * 100
        return (tf - a) / (yf - y)

    @staticmethod
    def project(money: bool, actuals: dict[int, float], to_year: int) -> float | None:
        """Earliest-to-latest projection: compound for money, linear otherwise."""
        if len(actuals) < 2:
            return None
        ye, yl = min(actuals), max(actuals)
        ae, al = actuals[ye], actuals[yl]
        if money and ae > 0 and al > 0:
            return al * (al / ae) ** ((to_year - yl) / (yl - ye))
        return al + (al - ae) / (yl - ye) * (to_year - yl)

    def outlook(self, ind: Ind, p: Period) -> float | None:
        if ind.rule in ("yoy_at_least", "task"):
            return None
        yf = ind.final_year or PLAN_END  # decisions: an input projects to the plan's end
        up_to = min(p.year, yf)
        if ind.growth:
            src = self.inds[ind.source]
            base = self.annual(src, BASE_YEAR)
            level = self.project(src.money, self.annual_actuals(src, up_to), yf)
            if base is None or base <= 0 or level is None or level < 0:
                return None
            return ((level / base) ** (1 / (yf - BASE_YEAR)) - 1) * 100
        if ind.rule == "cumulative_at_least":
            years = [y for y in self.annual_actuals(ind, up_to) if y >= PLAN_START]
            if not years:
                return None
            y = max(years)
            s = self.running_sum(ind, y)
            if s is None:
                return None
            return s + s / (y - BASE_YEAR) * (yf - y)
        return self.project(ind.money, self.annual_actuals(ind, up_to), yf)

    def on_course(self, ind: Ind, outlook: float | None) -> bool | None:
        tf = ind.final_target
        if outlook is None or tf is None:
            return None
        if ind.rule == "about":
            return abs(outlook / tf - 1) <= ind.tolerance + EPS
        if ind.growth:
            return outlook - tf >= -EPS
        if tf == 0:
            return outlook >= 0
        return outlook / tf >= ON_TRACK - EPS

    # ---- default period --------------------------------------------------------------

    def default_period(self, ind: Ind, today: date) -> Period:
        """§6 default period, plus the decisions on derived and growth indicators."""
        key = lambda p: p.sort_key  # noqa: E731
        if ind.rule == "task":
            candidates = self.data.text_periods.get(ind.id, [])
        elif ind.growth or ind.yoy:
            candidates = self.data.periods.get(ind.source, [])
        elif ind.derived is not None:
            comps = (
                ind.derived["items"]
                if ind.derived["kind"] == "count"
                else ind.derived["num"] + ind.derived["den"]
            )
            every = list(self.data.periods.get(ind.id, []))
            if ind.derived["kind"] == "count":
                every = []
            for c in comps:
                every += self.data.periods.get(c, [])
            with_value = [p for p in every if self.value(ind, p) is not None]
            candidates = with_value or every
        else:
            candidates = self.data.periods.get(ind.id, [])
        if candidates:
            return max(candidates, key=key)
        return Period(max(PLAN_START, min(PLAN_END, today.year)))


# --------------------------------------------------------------------------- status


def status_of(ind: Ind, target: float | None, actual: float | None) -> str:
    """§6 status (and the decisions on a 0 target and float rounding)."""
    if target is None:
        return "no_target"
    if actual is None:
        return "not_reported"
    if ind.growth or ind.yoy:
        gap = actual - target
        if gap >= -EPS:
            return "on_track"
        return "at_risk" if gap >= -GROWTH_AMBER_PP - EPS else "behind"
    if target == 0:
        return "on_track" if actual >= 0 else "behind"
    r = actual / target
    if ind.rule == "about":
        if abs(r - 1) <= ind.tolerance + EPS:
            return "on_track"
        return "at_risk" if abs(r - 1) <= 2 * ind.tolerance + EPS else "behind"
    if r >= ON_TRACK - EPS:
        return "on_track"
    return "at_risk" if r >= AT_RISK - EPS else "behind"


TASK_STATUS = {"已完成": "on_track", "推进中": "on_track", "未启动": "behind"}


def task_result(model: Model, ind: Ind, p: Period) -> dict:
    """Decisions, tasks table: 推进中 turns amber once the deadline (the year end of the final
    year, 2025) has come, and stays amber in every period after it."""
    state = model.data.text(ind.id, p)
    if state is None:
        status = "not_reported"
    else:
        status = TASK_STATUS.get(state, "not_reported")
        if state == "推进中" and (p.year, p.month) >= (PLAN_END, 12):
            status = "at_risk"
    return empty_result(str(p)) | {"actual": state, "status": status}


def empty_result(period: str) -> dict:
    keys = ("target", "actual", "gap", "completion", "schedule", "required_pace", "outlook")
    return {"period": period, **dict.fromkeys(keys), "status": None, "on_course": None}


# --------------------------------------------------------------------------- entry point


def reference(
    catalogue_rows: list[dict[str, str]],
    observations: Iterable[tuple],
    indicator_id: str,
    period_or_none: str | None,
    today: date,
) -> dict:
    model = Model(catalogue_rows, observations)
    ind = model.inds[indicator_id]
    p = parse_period(period_or_none) if period_or_none is not None else None
    if p is None:
        p = model.default_period(ind, today)
    if ind.rule == "task":
        return task_result(model, ind, p)

    target = model.period_target(ind, p)
    actual = model.period_actual(ind, p)
    gap = actual - target if target is not None and actual is not None else None

    completion = None
    if not (ind.growth or ind.yoy) and target is not None and actual is not None:
        if ind.rule == "cumulative_at_least" and not p.is_annual:
            whole = model.running_target(ind, p.year)  # §5: actual / C(y)
        elif ind.measure == "flow" and not p.is_annual:
            whole = model.year_target(ind, p.year)  # §5: YTD actual / T(y)
        else:
            whole = target
        completion = actual / whole if whole else None

    schedule = (p.month / 12) if ind.measure == "flow" else None

    outlook = model.outlook(ind, p)
    return {
        "period": str(p),
        "target": target,
        "actual": actual,
        "gap": gap,
        "completion": completion,
        "schedule": schedule,
        "status": status_of(ind, target, actual),
        "required_pace": model.required_pace(ind, p),
        "outlook": outlook,
        "on_course": model.on_course(ind, outlook),
    }
