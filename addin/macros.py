"""The macros behind the buttons of the master workbook, written once against the xlwings
Book API so that they run

* classically, from the buttons' VBA (``RunPython "import plan_tracker.macros as m;
  m.consolidate()"``): ``book`` defaults to ``xw.Book.caller()``;
* as xlwings Server scripts from the Office.js add-in (:mod:`plan_tracker.scripts` passes the
  book xlwings Server builds from the request).

Each macro reads the coordinator's period choice from the workbook (name ``ReportPeriod``,
i.e. ``总览!B3``), runs the same steps the CLI runs (:func:`plan_tracker.consolidate.prepare`:
the project's consolidation lock, intake when installed, the plan context, the tabs) and,
still holding the lock, writes the output tabs through xlwings
(:mod:`plan_tracker.xlwings_writer`). Progress goes to the status
bar where the engine has one (desktop Excel), the result to an alert in both. A problem the
coordinator can fix (a period Excel cannot read, a consolidation already running, no project)
is an alert that says what to do, never a traceback.

The project: ``PLAN_TRACKER_HOME``, else the folder of the workbook (desktop: the master
workbook lives in the project folder), else the current folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlwings as xw
from plan_tracker.consolidate import prepare
from plan_tracker.engine import STATUS_ZH, STATUSES
from plan_tracker.periods import Period, PeriodError, parse_period
from plan_tracker.project import Project, ProjectError
from plan_tracker.store import StoreError, default_actor
from plan_tracker.tabs import DASHBOARD
from plan_tracker.udfs.core import resolve_project
from plan_tracker.xlwings_writer import write_tabs

__all__ = [
    "PERIOD_CELL",
    "PERIOD_NAME",
    "TITLE",
    "MacroResult",
    "consolidate",
    "generate_templates",
    "read_period",
    "refresh",
]

log = logging.getLogger(__name__)

PERIOD_NAME = "ReportPeriod"
PERIOD_CELL = "B3"
TITLE = "计划跟踪 Plan tracker"


class MacroProblem(Exception):
    """Something the coordinator can fix; the message (Chinese first) says what."""


@dataclass
class MacroResult:
    """What a macro did; ``message`` is what the alert showed."""

    ok: bool
    message: str
    period: str | None = None
    tabs: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- workbook I/O


def _period_cell_value(book: xw.Book) -> tuple[Any, str]:
    """The raw value of the period cell and where it was read (for messages)."""
    try:
        rng = book.names[PERIOD_NAME].refers_to_range
        return rng.value, f"{rng.sheet.name}!{rng.address.replace('$', '')}"
    except Exception:  # noqa: BLE001 - the name is optional: fall back to the cell itself
        pass
    names = [s.name for s in book.sheets]
    if DASHBOARD not in names:
        return None, f"{DASHBOARD}!{PERIOD_CELL}"
    return book.sheets[DASHBOARD].range(PERIOD_CELL).value, f"{DASHBOARD}!{PERIOD_CELL}"


def read_period(book: xw.Book) -> str | None:
    """The coordinator's report period, canonical (``2025-09``), or ``None`` (blank: each
    indicator's latest period). Excel turns a typed ``2025-09`` into a date and ``2025``
    into a number; both are read as meant."""
    value, where = _period_cell_value(book)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return str(Period(value.year, "M", value.month))
    try:
        return str(parse_period(value))
    except PeriodError as exc:
        raise MacroProblem(
            f"工作簿 {book.name} 单元格 {where} 的报告期无法识别：{exc}。请改为 2025、2025-Q3 或 2025-09 后重试。"
            f" / {book.name}, cell {where}: the report period cannot be read; enter e.g. 2025, 2025-Q3, 2025-09."
        ) from exc


def _workbook_folder(book: xw.Book) -> Path | None:
    # Desktop books have a full path; an Office.js book only has its name.
    try:
        path = Path(book.fullname)
    except Exception:  # noqa: BLE001 - engines without a path
        return None
    return path.parent if path.is_absolute() else None


def _project(book: xw.Book) -> Project:
    try:
        return resolve_project(_workbook_folder(book))
    except ProjectError as exc:
        raise MacroProblem(str(exc)) from exc


class _Reporter:
    """Progress on the status bar where the engine has one; the result as an alert."""

    def __init__(self, book: xw.Book) -> None:
        self.book = book
        self.has_status_bar = True

    def progress(self, message: str) -> None:
        log.info(message)
        if not self.has_status_bar:
            return
        try:
            self.book.app.status_bar = f"{TITLE}: {message}"
        except NotImplementedError:  # xlwings Server (Office.js) has no status bar
            self.has_status_bar = False

    def done(self, message: str) -> None:
        if self.has_status_bar:
            try:
                self.book.app.status_bar = False  # hand the status bar back to Excel
            except NotImplementedError:
                self.has_status_bar = False
        self.book.app.alert(message, title=TITLE)


def _intake_line(prepared: Any) -> str:
    if prepared.intake is None:  # the inbox was empty
        return prepared.intake_note
    accepted, rejected = prepared.files_accepted, prepared.files_rejected
    return f"接收 {accepted} 个文件，退回 {rejected} 个 / accepted {accepted}, rejected {rejected} file(s)"


def _summary(period: str | None, counts: Mapping[str, int], written: dict[str, int], extra: str, seconds: float) -> str:
    status = "，".join(f"{STATUS_ZH[s]} {counts.get(s, 0)}" for s in STATUSES)
    lines = [
        f"报告期 period: {period or '各指标最新期 latest per indicator'}",
        f"状态 status: {status}",
        f"已写入 tabs: {'、'.join(written)}",
    ]
    if extra:
        lines.append(extra)
    lines.append(f"用时 {seconds:.1f} 秒 / {seconds:.1f} s")
    return "\n".join(lines)


# --------------------------------------------------------------------------- macros


def _failed(reporter: _Reporter, message: str, started: float) -> MacroResult:
    reporter.done(message)
    return MacroResult(ok=False, message=message, seconds=time.perf_counter() - started)


def _rebuild(book: xw.Book, *, intake: bool) -> MacroResult:
    started = time.perf_counter()
    reporter = _Reporter(book)
    try:
        period = read_period(book)
        project = _project(book)
        # The lock is held until the tabs are written: a second click, or a scheduled
        # plan-tracker consolidate, is told who is running instead of interleaving.
        with prepare(project, period, actor=default_actor(), progress=reporter.progress,
                     intake=intake) as prepared:
            written = write_tabs(book, prepared.tabs, reporter.progress)
        extra = _intake_line(prepared) if intake else ""
        counts = prepared.status_counts
    except (MacroProblem, PeriodError, StoreError) as exc:
        return _failed(reporter, f"未完成 / not done: {exc}", started)
    except Exception as exc:  # noqa: BLE001 - the coordinator gets a message, the log the traceback
        log.exception("macro failed")
        return _failed(reporter, f"未完成，内部错误（详见日志）/ internal error: {type(exc).__name__}: {exc}", started)
    seconds = time.perf_counter() - started
    message = _summary(period, counts, written, extra, seconds)
    reporter.done(message)
    return MacroResult(True, message, period, written, dict(counts), seconds=seconds)


def consolidate(book: xw.Book | None = None) -> MacroResult:
    """汇总 Consolidate: import the inbox, compute, write every output tab into the workbook."""
    return _rebuild(book or xw.Book.caller(), intake=True)


def refresh(book: xw.Book | None = None) -> MacroResult:
    """刷新 Refresh: rewrite the output tabs from the store as it is (no intake), then ask
    Excel to recalculate so the ``PLAN_*`` cells show the same data."""
    book = book or xw.Book.caller()
    result = _rebuild(book, intake=False)
    if result.ok:
        book.app.calculate()
    return result


def generate_templates(book: xw.Book | None = None) -> MacroResult:
    """生成模板 Templates: one .xlsx per department for the chosen period, in the project's
    ``templates/`` folder (desktop: files on this computer)."""
    book = book or xw.Book.caller()
    started = time.perf_counter()
    reporter = _Reporter(book)
    try:
        period = read_period(book)
        if period is None:
            raise MacroProblem(
                f"请先在 {DASHBOARD}!{PERIOD_CELL} 填写报告期（如 2025-09），再生成模板。"
                f" / Enter the report period in {DASHBOARD}!{PERIOD_CELL} (e.g. 2025-09) first."
            )
        project = _project(book)
        from plan_tracker.templates import generate_templates

        reporter.progress("生成模板 / writing templates …")
        paths = generate_templates(project, period)
    except (MacroProblem, PeriodError, StoreError, ValueError) as exc:
        return _failed(reporter, f"未完成 / not done: {exc}", started)
    except Exception as exc:  # noqa: BLE001 - the coordinator gets a message, the log the traceback
        log.exception("macro failed")
        return _failed(reporter, f"未完成，内部错误（详见日志）/ internal error: {type(exc).__name__}: {exc}", started)
    seconds = time.perf_counter() - started
    folder = paths[0].parent if paths else project.templates
    message = (
        f"已生成 {len(paths)} 个模板（报告期 {period}）：{folder}"
        f" / {len(paths)} template(s) for {period} in {folder}"
    )
    reporter.done(message)
    return MacroResult(True, message, period, files=list(paths), seconds=seconds)
