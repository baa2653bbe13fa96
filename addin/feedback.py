"""The feedback copy of a rejected file: the department's own workbook with every bad cell
highlighted and commented (批注), and a first sheet 校验结果 listing every problem in Chinese —
a file the coordinator can send back as it is.

Text that came from the submission (the values quoted in messages, remarks) is written with
:func:`plan_tracker.xlsxsafe.set_text_cell`, so it never becomes a formula; string cells of
the department's own file that look like formulas get the quotePrefix style, and formulas
that call other programs (DDE, ``cmd|…``) are turned into visible text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import openpyxl
from openpyxl.cell.cell import MergedCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils.cell import coordinate_from_string
from plan_tracker.errors import Problem
from plan_tracker.xlsxsafe import looks_like_formula, set_text_cell

RESULT_SHEET = "校验结果"
ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
WARNING_FILL = PatternFill("solid", fgColor="FFEB9C")
HEADERS = ("序号 No.", "级别 Severity", "代码 Code", "工作表 Sheet", "单元格 Cell", "问题说明 Problem", "处理建议 What to do")
_DDE = re.compile(r"\||\bcmd\b|\bmsexcel\b|\bDDE\b|\bWEBSERVICE\b|\bHYPERLINK\b", re.IGNORECASE)


def write_feedback(src: Path, problems: list[Problem], dest: Path, *, openable: bool, file: str) -> Path:
    """Write the feedback copy to ``dest`` (atomically); ``src`` is never modified."""
    workbook = None
    note = ""
    if openable:
        try:
            workbook = openpyxl.load_workbook(src, rich_text=False)
            _neutralise(workbook)
            _annotate(workbook, problems)
        except Exception as exc:  # openpyxl cannot open (or mark) every file calamine reads
            workbook, note = None, f"原文件无法用于标注（{type(exc).__name__}），原样保存在 rejected/ 中"
    if workbook is None:
        workbook = openpyxl.Workbook()
        workbook.active.title = RESULT_SHEET
        note = note or "原文件无法打开或不安全，未做标注；原文件原样保存在 rejected/ 中"
        result = workbook.active
    else:
        result = workbook.create_sheet(RESULT_SHEET, 0)
    _result_sheet(result, problems, file, note)
    for ws in workbook.worksheets:
        ws.sheet_view.tabSelected = ws is result
    workbook.active = workbook.worksheets.index(result)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.{os.getpid()}.partial.xlsx")
    try:
        try:
            workbook.save(tmp)
        except Exception:
            if not openable:
                raise
            # Whatever in the department's file openpyxl cannot write back, the list of
            # problems must still reach them.
            return write_feedback(src, problems, dest, openable=False, file=file)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _neutralise(workbook: openpyxl.Workbook) -> None:
    for ws in workbook.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "s" and isinstance(cell.value, str) and looks_like_formula(cell.value):
                    set_text_cell(cell, cell.value)
                elif cell.data_type == "f" and isinstance(cell.value, str) and _DDE.search(cell.value):
                    set_text_cell(cell, cell.value)


def _annotate(workbook: openpyxl.Workbook, problems: list[Problem]) -> None:
    by_cell: dict[tuple[str, str], list[Problem]] = {}
    for p in problems:
        if p.sheet and p.cell and p.sheet in workbook.sheetnames:
            try:
                coordinate_from_string(p.cell)
            except ValueError:
                continue
            by_cell.setdefault((p.sheet, p.cell), []).append(p)
    for (sheet, ref), found in by_cell.items():
        cell = _anchor(workbook[sheet], ref)
        cell.fill = ERROR_FILL if any(p.is_error for p in found) else WARNING_FILL
        text = "\n".join(f"[{p.code}] {p.message}\n处理：{p.hint}" for p in found)
        comment = Comment(text[:30000], "plan-tracker")
        comment.width, comment.height = 320, 160
        cell.comment = comment


def _anchor(ws, ref: str):
    """The cell to mark: a merged area is marked on its top-left cell (the one that shows)."""
    cell = ws[ref]
    if isinstance(cell, MergedCell):
        for merged in ws.merged_cells.ranges:
            if ref in merged:
                return ws.cell(merged.min_row, merged.min_col)
    return cell


def _result_sheet(ws, problems: list[Problem], file: str, note: str) -> None:
    errors = sum(p.is_error for p in problems)
    title = ws.cell(1, 1)
    set_text_cell(title, f"校验结果：{file}（错误 {errors} 项，提示 {len(problems) - errors} 项）")
    title.font = Font(bold=True, size=13)
    set_text_cell(ws.cell(2, 1), note or "请按下表逐项修改（有问题的单元格已标红并加批注），修改后按原文件名重新报送。")
    for col, header in enumerate(HEADERS, start=1):
        cell = ws.cell(4, col)
        set_text_cell(cell, header)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="D9E1F2")
    for n, p in enumerate(problems, start=1):
        row = 4 + n
        values = (str(n), "错误" if p.is_error else "提示", p.code, p.sheet or "", p.cell or "", p.message, p.hint)
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row, col)
            set_text_cell(cell, value)
            cell.alignment = Alignment(wrap_text=col >= 6, vertical="top")
        ws.cell(row, 2).fill = ERROR_FILL if p.is_error else WARNING_FILL
    for col, width in zip("ABCDEFG", (6, 8, 22, 10, 9, 60, 48), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A5"
