"""The buttons as xlwings Server scripts (Office.js add-in): the same macros as the desktop
buttons (:mod:`plan_tracker.macros`), called with the book xlwings Server builds from the
request. The add-in sends only ``总览`` (where the period cell is): the tool's other tabs are
deleted and written again, so their contents need not travel. The lock, the intake, the plan
context and the tabs come from :func:`plan_tracker.consolidate.prepare`, as for the CLI: a
click while another consolidation runs is an alert naming it, and nothing is written.

Importing this module needs the xlwings PRO runtime (``XLWINGS_LICENSE_KEY``; free for
noncommercial use, see ``docs/xlwings.md``).
"""

from __future__ import annotations

import xlwings as xw
from plan_tracker import macros
from plan_tracker.tabs import DASHBOARD
from xlwings.server import script

__all__ = ["consolidate", "refresh"]


@script(include=[DASHBOARD])
def consolidate(book: xw.Book) -> None:
    """汇总 Consolidate: import the inbox, compute, write the output tabs."""
    macros.consolidate(book)


@script(include=[DASHBOARD])
def refresh(book: xw.Book) -> None:
    """刷新 Refresh: rewrite the output tabs from the store, recalculate."""
    macros.refresh(book)
