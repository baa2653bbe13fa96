"""xlwings Server imports this package for its custom functions: the PLAN.* worksheet
functions of plan-tracker (``=PLAN.GAP(...)`` with ``XLWINGS_FUNCTIONS_NAMESPACE=PLAN``)."""

from plan_tracker.udfs.server import (  # noqa: F401 - re-exported for xlwings Server
    PLAN_ACTUAL,
    PLAN_GAP,
    PLAN_OUTLOOK,
    PLAN_PACE,
    PLAN_PROGRESS,
    PLAN_STATUS,
    PLAN_TABLE,
    PLAN_TARGET,
    skip_pyodide_probe,
)

# This process is a server, never Pyodide: make xlwings' per-argument probe for Pyodide's
# JsNull fail at once instead of searching sys.path on every call (see docs/xlwings.md).
skip_pyodide_probe()
