"""Department templates: one plain, protected, signed ``.xlsx`` per department and period.

Layout of the 填报 sheet (fixed; :mod:`plan_tracker.reader` finds the header row and the
columns by their header text, so inserted rows or columns do not shift what it reads)::

    row 1   title (A1:I1 merged)
    row 2   报告期 | <period, locked>        | | 模板编号 | <template id, locked>
    row 3   填报单位 | <input, prefilled>     | | 填报人   | <input>
    row 4   联系电话 | <input, text>          | | 填报日期 | <input, date>
    row 5   what to do, in one line
    row 6   header: A 指标编号 | B 指标名称 | C 单位 | D 填报口径 | E 本期目标 |
                    F 上次报送值 | G 上次报送期间 | H 本期实际值 | I 备注
    row 7…  one row per indicator the department reports; H and I are the input cells

Every input cell is unlocked (yellow) and has data validation with an input message giving
the unit and definition: decimal ≥ 0 for money and areas, whole number ≥ 0 for counts, 0–100
for percentages (error style "warning", so 待核实 can still be typed and intake decides), a
list 未启动/推进中/已完成 for tasks (error style "stop"). Everything else is locked; the
sheets are protected without a password.

The veryHidden sheet ``_meta`` holds the template's identity as one canonical JSON text
(``payload``: template id, department, period, catalogue version, issue time, the indicator
ids and the locked cells' content) and ``signature`` = HMAC-SHA256(project secret, payload).
Key/value rows beside it repeat the main fields for people; intake checks they agree.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import xlsxwriter
from plan_tracker.catalogue import TASK_STATES, Catalogue, Indicator
from plan_tracker.normalise import COUNT_UNITS
from plan_tracker.periods import Period, parse_period
from plan_tracker.project import Project
from plan_tracker.xlsxsafe import write_text

FORMAT_VERSION = 1
SHEET_FORM = "填报"
SHEET_HELP = "说明"
SHEET_META = "_meta"
FILE_SUFFIX = "填报表"
HEADER_ROW = 6  # 1-based, as a person counts
FIRST_DATA_ROW = 7

#: Columns of the 填报 sheet: key → (header label, English). The label is what the reader
#: matches (the start of the header cell's text).
COLUMNS: dict[str, tuple[str, str]] = {
    "id": ("指标编号", "ID"),
    "name": ("指标名称", "Indicator"),
    "unit": ("单位", "Unit"),
    "spec": ("填报口径", "What to report"),
    "target": ("本期目标", "Target"),
    "last": ("上次报送值", "Last accepted"),
    "last_period": ("上次报送期间", "Of period"),
    "value": ("本期实际值", "Actual (input)"),
    "note": ("备注", "Remark (input)"),
}
COLUMN_KEYS = list(COLUMNS)
LOCKED_KEYS = ("name", "unit", "spec", "target", "last", "last_period")
#: Header fields: label → (row, label column, value column), 0-based for XlsxWriter.
HEADER_FIELDS: dict[str, tuple[int, int, int]] = {
    "报告期": (1, 0, 1),
    "模板编号": (1, 3, 4),
    "填报单位": (2, 0, 1),
    "填报人": (2, 3, 4),
    "联系电话": (3, 0, 1),
    "填报日期": (3, 3, 4),
}
INPUT_HEADER_FIELDS = ("填报单位", "填报人", "联系电话", "填报日期")
META_KEYS = ("template_id", "department", "period", "catalogue_version", "issued_at", "format")


class TemplateError(ValueError):
    """A template cannot be made (unknown department, bad period); the message says why."""


@dataclass(frozen=True)
class TemplateRow:
    indicator_id: str
    name: str
    unit: str
    spec: str
    target: float | None
    last: float | str | None
    last_period: str
    is_task: bool
    definition: str

    def locked_cells(self) -> list[object]:
        """The locked cells' content as written (signed, and compared by intake)."""
        return [self.name, self.unit, self.spec, self.target, self.last, self.last_period]


def sign(secret: bytes, payload_text: str) -> str:
    return hmac.new(secret, payload_text.encode("utf-8"), hashlib.sha256).hexdigest()


def verify(secret: bytes, payload_text: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, payload_text), str(signature).strip())


def canonical(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def department_indicators(catalogue: Catalogue, department: str) -> list[Indicator]:
    """What a department reports: the indicators it owns that take observations."""
    return [ind for ind in catalogue if ind.owner == department and ind.accepts_observations]


def what_to_report(ind: Indicator, period: Period) -> str:
    if ind.is_task:
        return f"{period.label_zh()}推进状态（下拉选择），进展写在备注"
    if ind.measure == "flow":
        return period.ytd_label_zh()
    if ind.measure == "stock":
        return f"{period.label_zh()}末数（期末数）"
    return f"{period.label_zh()}（百分比，填 0–100）" if ind.unit == "%" else period.label_zh()


def _clean_number(value: object) -> float | None:
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None


def last_accepted(observations: pd.DataFrame, indicator_id: str, period: Period) -> tuple[float | str | None, str]:
    """The latest accepted value at or before ``period`` (value or task state, its period)."""
    if observations.empty:
        return None, ""
    rows = observations[observations["indicator_id"] == indicator_id]
    best: tuple[tuple, float | str | None, str] | None = None
    for record in rows[["period", "value", "value_text"]].itertuples(index=False):
        found = parse_period(record.period)
        if found.sort_key > period.sort_key:
            continue
        value = record.value_text if isinstance(record.value_text, str) else _clean_number(record.value)
        if value is None:
            continue
        if best is None or found.sort_key > best[0]:
            best = (found.sort_key, value, str(found))
    return (best[1], best[2]) if best else (None, "")


def template_rows(
    catalogue: Catalogue, department: str, period: Period, targets: dict[str, float | None], observations: pd.DataFrame
) -> list[TemplateRow]:
    rows = []
    for ind in department_indicators(catalogue, department):
        last, last_period = last_accepted(observations, ind.id, period)
        rows.append(
            TemplateRow(
                indicator_id=ind.id,
                name=ind.name_zh,
                unit=ind.unit,
                spec=what_to_report(ind, period),
                target=None if ind.is_task else _clean_number(targets.get(ind.id)),
                last=last,
                last_period=last_period,
                is_task=ind.is_task,
                definition=ind.definition_zh,
            )
        )
    return rows


def template_path(project: Project, period: Period, department: str) -> Path:
    return project.templates / str(period) / f"{period}_{department}_{FILE_SUFFIX}.xlsx"


def generate_templates(project: Project, period: str, departments: list[str] | None = None) -> list[Path]:
    """Write one template per department for ``period`` under ``templates/<period>/``."""
    from plan_tracker.service import load_context, read_catalogue

    parsed = parse_period(period)
    catalogue = read_catalogue(project)
    known = catalogue.departments()
    wanted = list(dict.fromkeys(departments)) if departments else known
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise TemplateError(
            f"未知的填报单位 / unknown department: {'、'.join(unknown)}（可选 / one of: {'、'.join(known)}）"
        )
    context = load_context(project)
    with project.open_store() as store:
        secret = store.secret()
        observations = store.current_observations()
    paths = []
    for department in wanted:
        targets = {
            ind.id: context.result(ind.id, str(parsed)).target
            for ind in department_indicators(catalogue, department)
            if not ind.is_task
        }
        rows = template_rows(catalogue, department, parsed, targets, observations)
        path = template_path(project, parsed, department)
        write_template(path, department, parsed, rows, catalogue.version_hash, secret)
        paths.append(path)
    return paths


def new_template_id(period: Period, department: str) -> str:
    return f"T-{period}-{department}-{secrets.token_hex(4)}"


def make_payload(
    template_id: str, department: str, period: Period, rows: list[TemplateRow], catalogue_version: str, issued_at: str
) -> dict:
    return {
        "format": FORMAT_VERSION,
        "template_id": template_id,
        "department": department,
        "period": str(period),
        "catalogue_version": catalogue_version,
        "issued_at": issued_at,
        "indicators": [r.indicator_id for r in rows],
        "rows": {r.indicator_id: r.locked_cells() for r in rows},
        "tasks": [r.indicator_id for r in rows if r.is_task],
    }


def write_template(
    path: Path,
    department: str,
    period: Period,
    rows: list[TemplateRow],
    catalogue_version: str,
    secret: bytes,
    *,
    template_id: str | None = None,
    issued_at: str | None = None,
) -> Path:
    """Write one template (atomically: a temporary file renamed into place)."""
    template_id = template_id or new_template_id(period, department)
    issued_at = issued_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = make_payload(template_id, department, period, rows, catalogue_version, issued_at)
    payload_text = canonical(payload)
    signature = sign(secret, payload_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.xlsx")
    workbook = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False})
    try:
        formats = _formats(workbook)
        _form_sheet(workbook, formats, department, period, rows, template_id)
        _help_sheet(workbook, formats, department, period)
        _meta_sheet(workbook, payload, payload_text, signature)
        workbook.set_properties({"title": f"{period.label_zh()} {department} 填报表", "author": "plan-tracker", "comments": template_id})
        workbook.set_custom_property("plan_tracker_template_id", template_id)
        workbook.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _formats(workbook: xlsxwriter.Workbook) -> dict:
    base = {"font_name": "宋体", "font_size": 11, "valign": "vcenter", "border": 1}
    f = {
        "title": workbook.add_format({"bold": True, "font_size": 14, "align": "center", "valign": "vcenter"}),
        "label": workbook.add_format({**base, "bold": True, "bg_color": "#D9E1F2"}),
        "locked": workbook.add_format({**base, "text_wrap": True}),
        "locked_num": workbook.add_format({**base, "num_format": "#,##0.00##"}),
        "head": workbook.add_format({**base, "bold": True, "bg_color": "#D9E1F2", "text_wrap": True, "align": "center"}),
        "input": workbook.add_format({**base, "locked": False, "bg_color": "#FFF2CC"}),
        "input_quoted": workbook.add_format({**base, "locked": False, "bg_color": "#FFF2CC", "quote_prefix": True}),
        "input_text": workbook.add_format({**base, "locked": False, "bg_color": "#FFF2CC", "num_format": "@"}),
        "input_date": workbook.add_format({**base, "locked": False, "bg_color": "#FFF2CC", "num_format": "yyyy-mm-dd"}),
        "input_note": workbook.add_format({**base, "locked": False, "bg_color": "#FFF2CC", "text_wrap": True}),
        "hint": workbook.add_format({"font_color": "#C00000", "font_size": 10}),
        "para": workbook.add_format({"text_wrap": True, "valign": "top", "font_size": 11}),
    }
    return f


_PROTECT = {"format_columns": True, "format_rows": True, "select_locked_cells": True, "select_unlocked_cells": True}


def _input_validation(row: TemplateRow) -> dict:
    unit = row.unit or "—"
    message = f"单位：{unit}；填报：{row.spec}。{row.definition}"
    common = {
        "input_title": row.indicator_id[:32],
        "input_message": message[:250],
        "error_title": "请检查填写内容",
    }
    if row.is_task:
        return {
            **common,
            "validate": "list",
            "source": list(TASK_STATES),
            "error_message": "请从下拉列表选择：未启动 / 推进中 / 已完成",
        }
    if row.unit == "%":
        return {
            **common,
            "validate": "decimal",
            "criteria": "between",
            "minimum": 0,
            "maximum": 100,
            "error_type": "warning",
            "error_message": "百分比请填 0–100 之间的数（65 表示 65%）。暂无数据可填“待核实”。",
        }
    if row.unit in COUNT_UNITS:
        return {
            **common,
            "validate": "integer",
            "criteria": ">=",
            "value": 0,
            "error_type": "warning",
            "error_message": f"请填写不小于 0 的整数（单位：{unit}）。暂无数据可填“待核实”。",
        }
    return {
        **common,
        "validate": "decimal",
        "criteria": ">=",
        "value": 0,
        "error_type": "warning",
        "error_message": f"请填写不小于 0 的数（单位：{unit}）。暂无数据可填“待核实”。",
    }


def _form_sheet(workbook, f, department: str, period: Period, rows: list[TemplateRow], template_id: str) -> None:
    ws = workbook.add_worksheet(SHEET_FORM)
    ws.activate()
    ws.merge_range(0, 0, 0, len(COLUMNS) - 1, f"西海岸新区制造业高质量发展实验区行动方案 指标填报表（{period.label_zh()}）", f["title"])
    ws.set_row(0, 28)
    values = {"报告期": period.label_zh(), "模板编号": template_id, "填报单位": department}
    for label, (row, label_col, value_col) in HEADER_FIELDS.items():
        ws.write_string(row, label_col, label, f["label"])
        if label in INPUT_HEADER_FIELDS:
            fmt = f["input_date"] if label == "填报日期" else f["input_text"] if label == "联系电话" else f["input"]
            if label in values:
                write_text(ws, row, value_col, values[label], fmt)
            else:
                ws.write_blank(row, value_col, None, fmt)
            ws.data_validation(row, value_col, row, value_col, _header_validation(label))
        else:
            write_text(ws, row, value_col, values[label], f["locked"])
    ws.merge_range(4, 0, 4, len(COLUMNS) - 1, "请只在黄色单元格中填写：本期实际值（只填数字，可带本指标单位）和备注；暂无数据填“待核实”；数值与上期差异较大时请在备注说明原因。", f["hint"])
    for col, key in enumerate(COLUMN_KEYS):
        zh, en = COLUMNS[key]
        ws.write_string(HEADER_ROW - 1, col, f"{zh}\n{en}", f["head"])
    ws.set_row(HEADER_ROW - 1, 32)
    for offset, row in enumerate(rows):
        r = FIRST_DATA_ROW - 1 + offset
        ws.write_string(r, 0, row.indicator_id, f["locked"])
        ws.write_string(r, 1, row.name, f["locked"])
        ws.write_string(r, 2, row.unit, f["locked"])
        ws.write_string(r, 3, row.spec, f["locked"])
        _write_locked_value(ws, r, 4, row.target, f)
        _write_locked_value(ws, r, 5, row.last, f)
        ws.write_string(r, 6, row.last_period, f["locked"])
        ws.write_blank(r, 7, None, f["input"])
        ws.write_blank(r, 8, None, f["input_note"])
        ws.data_validation(r, 7, r, 7, _input_validation(row))
        ws.data_validation(
            r, 8, r, 8,
            {"validate": "length", "criteria": "<=", "value": 1000, "input_title": "备注 Remark",
             "input_message": "数值与上期或目标差异较大、或填“待核实”时，请说明原因；任务类请写进展。",
             "error_type": "warning", "error_message": "备注请不超过 1000 字"},
        )
    for col, width in enumerate((22, 34, 7, 26, 12, 12, 12, 14, 40)):
        ws.set_column(col, col, width)
    ws.freeze_panes(HEADER_ROW, 2)
    ws.protect("", _PROTECT)


def _write_locked_value(ws, row: int, col: int, value: float | str | None, f) -> None:
    if value is None:
        ws.write_blank(row, col, None, f["locked"])
    elif isinstance(value, str):
        write_text(ws, row, col, value, f["locked"])
    else:
        ws.write_number(row, col, value, f["locked_num"])


def _header_validation(label: str) -> dict:
    if label == "填报日期":
        return {"validate": "date", "criteria": ">=", "value": datetime(2020, 1, 1), "error_type": "warning",
                "input_title": "填报日期 Date", "input_message": "如 2025-10-08", "error_message": "请填写日期，如 2025-10-08"}
    limits = {"填报单位": 60, "填报人": 30, "联系电话": 30}
    return {"validate": "length", "criteria": "<=", "value": limits[label], "error_type": "warning",
            "input_title": f"{label}", "input_message": f"请填写{label}", "error_message": f"{label}过长"}


HELP_TEXT = [
    "填报说明（请在填写前阅读）",
    "1. 本表由协调办通过 plan-tracker 生成，仅供“{department}”填报“{period}”数据使用；请勿转给其他单位或用于其他期。",
    "2. 只在黄色单元格中填写：表头的填报单位、填报人、联系电话、填报日期，以及“填报”表中每个指标的“本期实际值”和“备注”。其他单元格受保护，无需也不要修改。",
    "3. 本期实际值：只填写数字，可带本指标单位（如 820 或 820亿元；百分比填 65 或 65%）。不要填写“约”“左右”等文字，不要换算为其他单位。",
    "4. 流量指标（产值、收入、投资、当年新增数等）填 1 月至本月累计数（1–N月累计）；存量指标（企业数、基站数等）填期末数。",
    "5. 任务类指标：从下拉列表选择 未启动 / 推进中 / 已完成，并在备注中写明进展。",
    "6. 暂时无法提供的数据请填“待核实”并在备注说明，不要填 0，也不要留空：空白视为漏填，文件将被退回。",
    "7. 数值与上次报送值、去年同期或本期目标相差较大时（低于一半或超过两倍），请在备注中说明原因，否则文件将被退回核实。",
    "8. 请不要插入或删除行、列，不要修改工作表名称，不要取消工作表保护，不要设置打开密码。",
    "9. 填好后直接保存为 .xlsx（Excel 或 WPS 均可），按原文件名发送协调办。有问题的文件会附带标注了问题单元格的反馈表退回。",
    "Instructions: fill only the yellow cells (actual value and remark for each indicator; reporter, phone, date). Flows are year-to-date totals, stocks end-of-period levels, percentages 0–100. Type 待核实 if a figure is not available yet; explain large changes in the remark. Do not insert rows or columns, rename sheets, or remove protection.",
]


def _help_sheet(workbook, f, department: str, period: Period) -> None:
    ws = workbook.add_worksheet(SHEET_HELP)
    ws.set_column(0, 0, 110)
    for row, line in enumerate(HELP_TEXT):
        text = line.format(department=department, period=period.label_zh())
        ws.write_string(row, 0, text, f["title"] if row == 0 else f["para"])
        if row:
            ws.set_row(row, 45)
    ws.protect("", _PROTECT)


def _meta_sheet(workbook, payload: dict, payload_text: str, signature: str) -> None:
    ws = workbook.add_worksheet(SHEET_META)
    ws.write_string(0, 0, "plan-tracker template metadata — 请勿修改 / do not edit")
    for row, key in enumerate(META_KEYS, start=1):
        ws.write_string(row, 0, key)
        ws.write_string(row, 1, str(payload[key]))
    ws.write_string(len(META_KEYS) + 1, 0, "payload")
    ws.write_string(len(META_KEYS) + 1, 1, payload_text)
    ws.write_string(len(META_KEYS) + 2, 0, "signature")
    ws.write_string(len(META_KEYS) + 2, 1, signature)
    ws.protect("", {"select_locked_cells": False, "select_unlocked_cells": False})
    ws.very_hidden()


# --------------------------------------------------------------------------- filling a template


def form_row(ws: Any, indicator_id: str) -> int:
    """The 1-based row of an indicator on an openpyxl 填报 sheet."""
    for row in range(HEADER_ROW + 1, ws.max_row + 1):
        if ws.cell(row, 1).value == indicator_id:
            return row
    raise KeyError(indicator_id)


def fill_template(
    template: Path,
    out: Path,
    values: Mapping[str, object],
    notes: Mapping[str, object] | None = None,
    header: Mapping[str, object] | None = None,
    edit: Callable[[Any], None] | None = None,
) -> Path:
    """Fill a template the way a person does in Excel — 本期实际值 and 备注 in the yellow
    cells, the header fields beside their labels — and save it as ``out``. For the demo, the
    benchmarks and the tests; ``edit`` may change the workbook further before saving."""
    import openpyxl

    wb = openpyxl.load_workbook(template)
    ws = wb[SHEET_FORM]
    value_col = COLUMN_KEYS.index("value") + 1
    note_col = COLUMN_KEYS.index("note") + 1
    for indicator_id, value in values.items():
        ws.cell(form_row(ws, indicator_id), value_col).value = value
    for indicator_id, note in (notes or {}).items():
        ws.cell(form_row(ws, indicator_id), note_col).value = note
    labels = dict(header or {})
    for row in ws.iter_rows(min_row=1, max_row=HEADER_ROW - 1):
        for cell in row:
            if cell.value in labels:
                ws.cell(cell.row, cell.column + 1).value = labels[cell.value]
    if edit is not None:
        edit(wb)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out
