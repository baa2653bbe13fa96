"""汇总 Consolidate: intake, store, compute, render — what the button and the CLI both run.

:func:`consolidate` takes a project and its master workbook and, in this order: refuses if
Excel has the workbook open (nothing is read or written then), imports the inbox (when the
intake module is installed), loads the plan context, builds the tabs
(:mod:`plan_tracker.tabs`) and writes them into the workbook (:mod:`plan_tracker.render`).

The period: the ``period`` argument, else the report period the coordinator chose on the
dashboard (``总览!B3``, workbook name ``ReportPeriod``), else each indicator's default period.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from plan_tracker import service
from plan_tracker.engine import STATUSES
from plan_tracker.periods import Period, PeriodError, parse_period
from plan_tracker.project import Project
from plan_tracker.render import check_not_open_in_excel, render_tabs
from plan_tracker.store import default_actor
from plan_tracker.tabs import DASHBOARD, build_tabs

__all__ = [
    "ConsolidationReport",
    "PERIOD_CELL",
    "consolidate",
    "default_workbook_path",
    "read_period_choice",
]

WORKBOOK_FILE = "plan_tracker.xlsm"
PERIOD_CELL = "B3"
BACKUP_FOLDER = "workbook-backups"  # under the project's reports/


@dataclass
class ConsolidationReport:
    workbook: Path
    period: str | None
    period_source: str  # "argument" | "总览!B3" | "default"
    status_counts: dict[str, int] = field(default_factory=dict)
    files_accepted: int = 0
    files_rejected: int = 0
    intake_note: str = ""
    tabs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    backup: Path | None = None
    created_workbook: bool = False

    def summary_lines(self) -> list[str]:
        from plan_tracker.engine import STATUS_ZH

        counts = "，".join(f"{STATUS_ZH[s]} {self.status_counts.get(s, 0)}" for s in STATUSES)
        lines = [
            f"已汇总到 / consolidated into: {self.workbook}",
            f"报告期 / period: {self.period or '各指标最新期 latest per indicator'}（{self.period_source}）",
            f"状态 / status: {counts}",
            f"收件 / intake: 接收 accepted {self.files_accepted}，退回 rejected {self.files_rejected}"
            + (f"（{self.intake_note}）" if self.intake_note else ""),
            f"工作表 / tabs: {'、'.join(self.tabs)}",
            "用时 / timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()),
        ]
        lines += [f"注意 / warning: {w}" for w in self.warnings]
        if self.backup:
            lines.append(f"原工作簿已备份 / previous workbook kept at: {self.backup}")
        return lines


def default_workbook_path(project: Project) -> Path:
    return project.root / WORKBOOK_FILE


def _period_text(value: Any) -> str | None:
    """The report period from a cell value. Excel turns a typed ``2025-09`` into a date and
    ``2025`` into a number, so both are read back as the period the coordinator meant."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (datetime, date)):
        return str(Period(value.year, "M", value.month))
    return str(parse_period(value))


def read_period_choice(path: Path) -> str | None:
    """The period on the dashboard (``总览!B3``), canonical (``2025-09``), or ``None``."""
    from python_calamine import CalamineWorkbook

    path = Path(path)
    if not path.is_file():
        return None
    book = CalamineWorkbook.from_path(str(path))
    if DASHBOARD not in book.sheet_names:
        return None
    rows = book.get_sheet_by_name(DASHBOARD).to_python(skip_empty_area=False)
    row, col = int(PERIOD_CELL[1:]) - 1, ord(PERIOD_CELL[0]) - ord("A")
    value = rows[row][col] if len(rows) > row and len(rows[row]) > col else None
    try:
        return _period_text(value)
    except PeriodError as exc:
        raise PeriodError(
            f"{path.name} 工作表“{DASHBOARD}”单元格 {PERIOD_CELL} 的报告期无法识别：{exc}。请填写如 "
            f"2025、2025-Q3、2025-09 / {path.name}, sheet {DASHBOARD}, cell {PERIOD_CELL}: {exc}"
        ) from exc


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return 0


def _create_workbook(path: Path, period: str | None) -> None:
    workbook = _optional("plan_tracker.workbook")
    if workbook is not None:
        workbook.build_workbook(path, period=period)
        return
    if path.suffix.lower() == ".xlsm":  # a macro workbook needs its VBA project
        raise FileNotFoundError(
            f"找不到工作簿 {path}，请先运行 plan-tracker build-workbook / workbook not found: "
            f"{path}; run plan-tracker build-workbook first"
        )
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = DASHBOARD
    wb.active[PERIOD_CELL] = period or ""
    wb.save(path)


def consolidate(
    project: Project,
    workbook: Path | None = None,
    period: str | None = None,
    *,
    actor: str | None = None,
    progress: Callable[[str], None] | None = None,
    today: date | None = None,
) -> ConsolidationReport:
    """Intake, store, compute and render into the master workbook; see the module docstring.

    Raises ``WorkbookOpenError`` before doing anything while Excel has the workbook open.
    """
    actor = actor or default_actor()
    say = progress or (lambda _message: None)
    path = Path(workbook) if workbook is not None else default_workbook_path(project)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_not_open_in_excel(path)

    if period not in (None, ""):
        chosen, source = str(parse_period(period)), "argument"
    else:
        chosen = read_period_choice(path)
        source = f"{DASHBOARD}!{PERIOD_CELL}" if chosen else "default"

    report = ConsolidationReport(workbook=path, period=chosen, period_source=source)
    mark = time.perf_counter()
    intake = _optional("plan_tracker.intake")
    if intake is None:
        report.intake_note = "未安装收件模块，跳过 / intake module not installed: skipped"
    else:
        say("收件 / reading the inbox …")
        outcome = intake.run_intake(project, actor=actor)
        report.files_accepted = _count(getattr(outcome, "accepted", 0))
        report.files_rejected = _count(getattr(outcome, "rejected", 0))
    timings["intake"] = time.perf_counter() - mark

    say("计算 / computing …")
    mark = time.perf_counter()
    ctx = service.load_context(project)
    report.status_counts = dict(Counter(r.status for r in ctx.evaluate(chosen, today=today)))
    with project.open_store() as store:
        tabs = build_tabs(ctx, store, chosen, ctx.catalogue, today=today)
    timings["tabs"] = time.perf_counter() - mark

    say("写入工作簿 / writing the workbook …")
    mark = time.perf_counter()
    existed = path.is_file()
    if not existed:
        _create_workbook(path, chosen)
        report.created_workbook = True
    rendered = render_tabs(
        path, tabs, backup_dir=project.reports / BACKUP_FOLDER if existed else None
    )
    timings["render"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started

    report.tabs, report.rows = rendered.tabs, rendered.rows
    report.warnings, report.backup = rendered.warnings, rendered.backup
    report.timings = timings
    with project.open_store() as store:
        store.audit(
            "workbook_consolidated",
            {"message": f"汇总到 / consolidated into {path.name} ({chosen or 'default'})",
             "workbook": str(path), "period": chosen, "rows": report.rows},
            actor=actor,
        )
    say("完成 / done")
    return report
