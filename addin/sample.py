"""Synthetic sample data (合成示例数据): a plausible history 2020–2025 for every reportable
indicator, for the demo, the README's first command and the benchmarks.

Everything here is invented and marked as such (``note`` = ``合成示例数据 synthetic``). The
generator is deterministic (seeded), so the bundled ``data/sample_observations.csv`` is
exactly what :func:`sample_observations` returns (a test checks it).

Shape of the data: 2020 bases and annual values 2021–2024, then 2025 month by month
(year-to-date for flows, levels for stocks) up to ``last_month``. Clusters grow at different
rates, so some are ahead of the plan and some behind.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
from plan_tracker.catalogue import Catalogue, Indicator

SYNTHETIC_NOTE = "合成示例数据 synthetic"
SAMPLE_CSV = Path(__file__).resolve().parent / "data" / "sample_observations.csv"
SAMPLE_COLUMNS = ["indicator_id", "period", "value", "department", "note"]

# 2020 base and annual growth per money series: some ahead of the plan, some behind.
_MONEY_PATHS: dict[str, tuple[float, float]] = {
    "O_IND_OUTPUT": (4000.0, 0.13),
    "O_HITECH_OUTPUT": (2300.0, 0.15),
    "O_GDP": (4200.0, 0.07),
    "O_DIGITAL_VA": (330.0, 0.12),
    "C1_OUTPUT": (180.0, 0.19),   # shipbuilding: behind the 2025 goal of 500
    "C2_OUTPUT": (700.0, 0.17),   # smart appliances: on course for 1500
    "C3_OUTPUT": (950.0, 0.16),   # chemicals: slightly behind 2000
    "C4_OUTPUT": (260.0, 0.17),   # automotive: about on course
    "C5_OUTPUT": (250.0, 0.2),    # high-end equipment: ahead
    "C6_OUTPUT": (60.0, 0.6),     # chips & displays: fast, yet short of 1000
    "C7_OUTPUT": (100.0, 0.3),    # marine biomedicine
    "C8_REVENUE": (40.0, 0.2),    # AI revenue
    "P4_TECH_TRADE": (52.0, 0.15),
    "P4_RD_SPENDING": (95.0, 0.11),
    "P5_TECH_REFORM_INVEST": (150.0, 0.13),
    "P3_LAND_TOTAL": (900.0, 0.02),
    "P3_LAND_INDUSTRIAL": (300.0, 0.01),
}
# Year-to-date share of the annual total reached by the end of each month (industry seasonality).
# Levels (2020, 2025) of stocks whose scale the plan does not give.
_STOCK_PATHS: dict[str, tuple[float, float]] = {
    "P4_IND_ENT_TOTAL": (2300.0, 2600.0),
    "P4_ENT_WITH_RD": (1250.0, 2050.0),
    "P2_ABOVE_SCALE_ENT": (1180.0, 1480.0),
    "P5_5G_STATIONS": (2600.0, 14000.0),
}
_YTD_SHARE = [0.06, 0.12, 0.205, 0.285, 0.37, 0.465, 0.545, 0.63, 0.72, 0.805, 0.895, 1.0]
_TASK_STATES = {2021: "推进中", 2022: "推进中", 2023: "推进中", 2024: "已完成", 2025: "已完成"}


def _money(ind: Indicator, rng: random.Random, years: range) -> dict[int, float]:
    base, growth = _MONEY_PATHS.get(ind.id, (100.0, 0.1))
    values, level = {}, base
    for year in years:
        if year > years[0]:
            level *= 1 + growth + rng.uniform(-0.02, 0.02)
        values[year] = round(level, 2)
    return values


def _count_flow(ind: Indicator, rng: random.Random, years: range) -> dict[int, float]:
    first = ind.milestones.get(2021) or next(iter(ind.milestones.values()), 50.0)
    if ind.rule == "cumulative_at_least":
        first = ind.milestones[2021]
        per_year = (ind.final_target - first) / 4
        return {y: float(round((first if y <= 2021 else per_year) * rng.uniform(0.85, 1.12))) for y in years}
    return {y: float(round(first * rng.uniform(0.9, 1.15))) for y in years}


def _stock(ind: Indicator, rng: random.Random, years: range) -> dict[int, float]:
    if ind.id in _STOCK_PATHS:
        start, final = _STOCK_PATHS[ind.id]
        pace = (final - start) / 5 * rng.uniform(0.95, 1.05)
    else:
        final = ind.final_target or 100.0
        start = final * rng.uniform(0.35, 0.7)
        pace = (final - start) / 5 * rng.uniform(0.75, 1.2)
    values = {}
    for year in years:
        values[year] = float(round(start + pace * (year - 2020)))
    return values


def _ratio(ind: Indicator, rng: random.Random, years: range) -> dict[int, float]:
    final = ind.final_target or 50.0
    start = final * rng.uniform(0.75, 0.95)
    return {y: round(start + (final - start) * (y - 2020) / 5 * rng.uniform(0.8, 1.1), 1) for y in years}


def sample_observations(catalogue: Catalogue, last_month: int = 9, seed: int = 2021) -> pd.DataFrame:
    """The synthetic history of every reportable indicator (see the module docstring)."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, object, str, str]] = []
    annual_years = range(2020, 2025)
    for ind in catalogue:
        if not ind.accepts_observations:
            continue
        if ind.is_task:
            for year in range(2021, 2025):
                rows.append((ind.id, str(year), _TASK_STATES[year], ind.owner, f"{SYNTHETIC_NOTE}：{year}年进展"))
            rows.append((ind.id, f"2025-{last_month:02d}", "推进中" if rng.random() < 0.4 else "已完成", ind.owner, f"{SYNTHETIC_NOTE}：本期进展"))
            continue
        if ind.derived is not None:
            continue  # shares are computed from their components; see the statistics row below
        all_years = range(2020, 2026)
        if ind.is_money or ind.unit == "公顷":
            values = _money(ind, rng, all_years)
        elif ind.measure == "flow":
            values = _count_flow(ind, rng, all_years)
        elif ind.measure == "stock":
            values = _stock(ind, rng, all_years)
        else:
            values = _ratio(ind, rng, all_years)
        is_flow = ind.measure == "flow"
        for year in annual_years:
            if year == 2020 and ind.rule == "cumulative_at_least":
                continue  # a running sum starts in 2021
            rows.append((ind.id, str(year), values[year], ind.owner, SYNTHETIC_NOTE))
        # Months of 2024 too, so that 同比 (YTD over the same period last year) is defined.
        months = [(2024, m) for m in range(1, 12)] + [(2025, m) for m in range(1, last_month + 1)]
        for year, month in months:
            if is_flow:
                value = round(values[year] * _YTD_SHARE[month - 1], 2)
                if not ind.is_money:
                    value = float(round(value))
            else:
                value = round(values[year - 1] + (values[year] - values[year - 1]) * month / 12, 1 if ind.unit == "%" else 0)
            rows.append((ind.id, f"{year}-{month:02d}", value, ind.owner, SYNTHETIC_NOTE))
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def write_sample_csv(catalogue: Catalogue, path: Path = SAMPLE_CSV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sample_observations(catalogue).to_csv(path, index=False, lineterminator="\n")
    return path
