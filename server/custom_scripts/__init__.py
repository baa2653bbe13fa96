"""xlwings Server imports this package for its custom scripts: the buttons of the task pane
(汇总 Consolidate, 刷新 Refresh), the same macros as the desktop workbook's buttons."""

from plan_tracker.scripts import consolidate, refresh  # noqa: F401 - re-exported for xlwings Server
