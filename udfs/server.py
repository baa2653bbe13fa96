"""``PLAN.*`` custom functions for Excel through xlwings Server (Office.js add-in).

Same logic as the desktop functions (:mod:`plan_tracker.udfs.core`); only the names and the
error channel differ. Excel shows ``=PLAN.GAP(...)``: the add-in manifest's function namespace
is ``PLAN`` (``XLWINGS_FUNCTIONS_NAMESPACE=PLAN``, see ``server/.env.example``) and each function
registers its short name (``GAP``); the Python names ``PLAN_GAP`` … are the functions' ids.

Errors, as far as Office.js and xlwings Server can carry them:

* ``#N/A`` (unknown indicator, no figure for the period) is returned as the value ``"#N/A"``,
  which xlwings sends as a real error cell (``{"type": "Error", "errorType": "NotAvailable"}``).
  An error *value* cannot carry a message in Office.js.
* ``#VALUE!`` (a period or group that cannot be read, no project) is raised as an
  :class:`xlwings.XlwingsError` with the Chinese message: xlwings Server answers 400 with the
  text and its JavaScript throws ``CustomFunctions.Error(invalidValue, message)``, i.e. a real
  ``#VALUE!`` whose message shows on the cell's error flag.

Importing this module needs the xlwings PRO runtime: ``XLWINGS_LICENSE_KEY=noncommercial``
(free for noncommercial use, see ``docs/xlwings.md``).

Parameters carry no type hints on purpose: xlwings turns a hint into a converter.
"""

from __future__ import annotations

import sys

from plan_tracker.udfs import core
from xlwings import XlwingsError
from xlwings.server import arg, func

__all__ = [
    "NAMESPACE",
    "PLAN_ACTUAL",
    "PLAN_GAP",
    "PLAN_OUTLOOK",
    "PLAN_PACE",
    "PLAN_PROGRESS",
    "PLAN_STATUS",
    "PLAN_TABLE",
    "PLAN_TARGET",
    "skip_pyodide_probe",
]

#: The add-in's function namespace (set in the server's .env; shown here for documentation).
NAMESPACE = "PLAN"

INDICATOR_DOC = "指标编号或中文名称 / indicator id or exact Chinese name"
PERIOD_DOC = "期间，可省略（默认最近报送期）/ period, optional: 2025, 2025-Q3, 2025-09"
GROUP_DOC = "分组，可省略（全部）/ group, optional: overall, C1..C8, P1..P5"


def skip_pyodide_probe() -> bool:
    """Make xlwings' per-call ``from pyodide.ffi import JsNull`` fail at once.

    xlwings checks every custom-function argument for Pyodide's ``JsNull`` by importing
    ``pyodide.ffi``; outside Pyodide that import fails only after searching every ``sys.path``
    entry, which is most of the cost of a call. A ``None`` entry in ``sys.modules`` is Python's
    documented way to make an import raise ``ImportError`` immediately, which is exactly the
    answer xlwings handles (``except ImportError``). Only done outside Pyodide and when nothing
    has imported pyodide; returns whether the probe is (now) short-circuited.
    """
    if sys.platform == "emscripten":
        return False
    if "pyodide" not in sys.modules:
        sys.modules["pyodide"] = None  # type: ignore[assignment]
    return sys.modules["pyodide"] is None


def _office(value: object) -> object:
    if isinstance(value, core.CellError):
        if value.code == core.ERROR_VALUE:
            raise XlwingsError(value.message)
        return value.code
    return value


def _cell(field: str, indicator: object, period: object) -> object:
    return _office(core.indicator_value(field, indicator, period))


@func(name="TARGET")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_TARGET(indicator, period=None):
    """目标值（该期间）/ Target for the period."""
    return _cell("TARGET", indicator, period)


@func(name="ACTUAL")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_ACTUAL(indicator, period=None):
    """实际值（流量为年初至今累计）/ Actual (year-to-date for flows; state for tasks)."""
    return _cell("ACTUAL", indicator, period)


@func(name="GAP")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_GAP(indicator, period=None):
    """差距 = 实际 − 目标 / Gap: actual minus target."""
    return _cell("GAP", indicator, period)


@func(name="PROGRESS")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_PROGRESS(indicator, period=None):
    """完成率（小数，0.95 = 95%）/ Completion as a fraction."""
    return _cell("PROGRESS", indicator, period)


@func(name="STATUS")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_STATUS(indicator, period=None):
    """状态：达标/预警/滞后/未报送/无目标 / Status."""
    return _cell("STATUS", indicator, period)


@func(name="PACE")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_PACE(indicator, period=None):
    """实现最终目标每年所需增速或增量 / Required pace to the final target."""
    return _cell("PACE", indicator, period)


@func(name="OUTLOOK")
@arg("indicator", doc=INDICATOR_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_OUTLOOK(indicator, period=None):
    """按趋势预计的目标年数值 / Projected value in the target year."""
    return _cell("OUTLOOK", indicator, period)


@func(name="TABLE")
@arg("group", doc=GROUP_DOC)
@arg("period", doc=PERIOD_DOC)
def PLAN_TABLE(group=None, period=None):
    """目标与实际对照表（动态数组）/ Target vs actual table (dynamic array)."""
    return _office(core.table(group, period))
