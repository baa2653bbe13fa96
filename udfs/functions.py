"""``PLAN_*`` worksheet functions for desktop Excel (classic xlwings: VBA wrappers + COM).

The VBA wrappers in the master workbook are generated from this module by
:func:`plan_tracker.workbook.udf_wrapper_source`; Excel calls ``PLAN_GAP(...)`` and xlwings
runs the function here. The logic is :mod:`plan_tracker.udfs.core` (shared with xlwings
Server, :mod:`plan_tracker.udfs.server`); this module only turns its errors into text.

Why errors are text here: classic xlwings cannot return a real Excel error value from a UDF
(xlwings issue #776: a returned ``"#N/A"`` arrives as text, and a raised exception puts the
whole Python traceback in the cell). So a bad argument shows e.g. ``#N/A 未知指标「X」…`` —
the error code first, so it is recognisable, then the reason in Chinese. Under xlwings Server
the same cases give real error values.

Parameters carry no type hints on purpose: xlwings turns a hint into a converter.
"""

from __future__ import annotations

import os
from pathlib import Path

import xlwings as xw
from plan_tracker.udfs import core

__all__ = [
    "PLAN_ACTUAL",
    "PLAN_GAP",
    "PLAN_OUTLOOK",
    "PLAN_PACE",
    "PLAN_PROGRESS",
    "PLAN_STATUS",
    "PLAN_TABLE",
    "PLAN_TARGET",
]

INDICATOR_DOC = "指标编号或中文名称 / indicator id or exact Chinese name"
PERIOD_DOC = "期间，可省略（默认最近报送期）/ period, optional (default: latest reported): 2025, 2025-Q3, 2025-09"
GROUP_DOC = "分组，可省略（全部）/ group, optional (all): overall, C1..C8, P1..P5"


def _caller_folder() -> Path | None:
    """Folder of the workbook that calls the function (desktop only; None elsewhere)."""
    if os.environ.get("PLAN_TRACKER_HOME", "").strip():
        return None  # the environment decides; skip the round trip to Excel
    try:
        return Path(xw.Book.caller().fullname).parent
    except Exception:  # noqa: BLE001 - not called from Excel (tests, Linux): use the cwd
        return None


def _show(value: object) -> object:
    return str(value) if isinstance(value, core.CellError) else value


def _cell(field: str, indicator: object, period: object) -> object:
    return _show(core.indicator_value(field, indicator, period, caller_folder=_caller_folder()))


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_TARGET(indicator, period=None):
    """目标值（该期间）/ Target for the period."""
    return _cell("TARGET", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_ACTUAL(indicator, period=None):
    """实际值（流量为年初至今累计）/ Actual (year-to-date for flows; state for tasks)."""
    return _cell("ACTUAL", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_GAP(indicator, period=None):
    """差距 = 实际 − 目标 / Gap: actual minus target."""
    return _cell("GAP", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_PROGRESS(indicator, period=None):
    """完成率（小数，0.95 = 95%）/ Completion as a fraction."""
    return _cell("PROGRESS", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_STATUS(indicator, period=None):
    """状态：达标/预警/滞后/未报送/无目标 / Status."""
    return _cell("STATUS", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_PACE(indicator, period=None):
    """实现最终目标每年所需增速或增量 / Required pace to the final target."""
    return _cell("PACE", indicator, period)


@xw.func
@xw.arg("indicator", doc=INDICATOR_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_OUTLOOK(indicator, period=None):
    """按趋势预计的目标年数值 / Projected value in the target year."""
    return _cell("OUTLOOK", indicator, period)


@xw.func
@xw.arg("group", doc=GROUP_DOC)
@xw.arg("period", doc=PERIOD_DOC)
def PLAN_TABLE(group=None, period=None):
    """目标与实际对照表（动态数组）/ Target vs actual table (dynamic array)."""
    return _show(core.table(group, period, caller_folder=_caller_folder()))
