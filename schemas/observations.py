"""Schema of a long-format observation import (``indicator_id,period,value[,department,note]``).

Used by ``plan-tracker import-observations`` for statistics-bureau history and 2020 bases.
One pandera call validates the whole file lazily; every failure is reported with its CSV
row (header = row 1), field and what to do. Nothing is stored unless every row is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from plan_tracker.normalise import BLANK, NOT_REPORTED, NUMBER, Parsed, parse_value
from plan_tracker.periods import PeriodError, parse_period

REQUIRED = ["indicator_id", "period", "value"]
OPTIONAL = ["department", "note"]
TASK_STATES = ("未启动", "推进中", "已完成")



@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based line of the file, header = 1
    field: str
    code: str
    message: str
    value: object = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f"（当前值 / got {self.value!r}）"
        return f"第{self.row}行 / row {self.row}，字段 {self.field} / field {self.field} [{self.code}]: {self.message}{shown}"


class ImportRejected(ValueError):
    """The file was not imported; ``problems`` lists every reason."""

    def __init__(self, problems: list[RowProblem], file: str = "") -> None:
        self.problems = problems
        self.file = file
        lines = [f"未导入任何数据 / nothing imported: {file}", *(f"  - {p}" for p in problems)]
        super().__init__("\n".join(lines))


def parse_import_value(raw: object, unit: str) -> Parsed:
    """A value as typed in the CSV, by the same rules as a department's cell (full-width
    digits, thousands separators, the indicator's own unit such as ``820亿元`` or ``65%``)."""
    return parse_value(raw, unit)


def _numbers_ok(units: dict[str, str], task_ids: set[str]):
    """Data-frame check: every non-task value that is there reads as a number for its unit."""

    def check(frame: pd.DataFrame) -> pd.Series:
        return pd.Series(
            [
                ind in task_ids or value is None or parse_import_value(value, units.get(ind, "")).kind in (NUMBER, BLANK, NOT_REPORTED)
                for ind, value in zip(frame["indicator_id"], frame["value"], strict=True)
            ],
            index=frame.index,
        )

    return check


def _is_period(series: pd.Series) -> pd.Series:
    def ok(value: object) -> bool:
        try:
            parse_period(value)
        except PeriodError:
            return False
        return True

    return series.map(ok)


def observation_schema(
    known_ids: list[str], computed_ids: list[str], units: dict[str, str], task_ids: set[str]
) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "indicator_id": pa.Column(
                str,
                checks=[
                    pa.Check.isin(known_ids, name="unknown_indicator"),
                    pa.Check.notin(computed_ids, name="computed_indicator"),
                ],
                nullable=False,
            ),
            "period": pa.Column(str, checks=pa.Check(_is_period, name="bad_period"), nullable=False),
            "value": pa.Column(str, nullable=True),
            "department": pa.Column(str, nullable=True, required=False),
            "note": pa.Column(str, nullable=True, required=False),
        },
        checks=[pa.Check(_numbers_ok(units, task_ids), name="not_a_number")],
        strict=False,
    )


_MESSAGES = {
    # pandera names built-in checks by their operator, so both spellings are listed
    "isin": ("unknown_indicator", "未知指标编号，用 plan-tracker indicators 查看 / unknown indicator id"),
    "notin": (
        "computed_indicator",
        "该指标由其他指标自动计算，不接受填报值 / this indicator is computed, it takes no values",
    ),
    "unknown_indicator": ("unknown_indicator", "未知指标编号，用 plan-tracker indicators 查看 / unknown indicator id"),
    "computed_indicator": (
        "computed_indicator",
        "该指标由其他指标自动计算，不接受填报值 / this indicator is computed, it takes no values",
    ),
    "bad_period": ("bad_period", "期间应为 2025、2025-Q3、2025-09 或 2025年9月 等 / period must look like 2025, 2025-Q3, 2025-09"),
    "not_a_number": ("not_a_number", "不是该指标单位下的数字，请只填数值（可带本指标单位，如 820亿元、65%） / not a number in the indicator's unit"),
    "not_nullable": ("missing_value", "必填字段为空 / required field is empty"),
}


def validate_observations(
    frame: pd.DataFrame,
    known_ids: list[str],
    computed_ids: list[str],
    task_ids: list[str],
    file: str = "",
    units: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Validate and normalise an import; raise :class:`ImportRejected` listing all problems.

    Returns the frame with ``period`` canonical, ``value`` float (NaN for task rows) and
    ``value_text`` holding a task's state.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ImportRejected(
            [RowProblem(1, ",".join(missing), "missing_column", "缺少列，表头应为 indicator_id,period,value[,department,note] / missing column(s)")],
            file,
        )
    frame = frame.copy()
    for column in frame.columns:
        frame[column] = frame[column].map(lambda v: None if v is None or (isinstance(v, str) and not v.strip()) else str(v).strip())
    frame.index = range(len(frame))
    problems: list[RowProblem] = []
    units = units or {}
    task_rows = frame["indicator_id"].isin(task_ids)
    try:
        observation_schema(known_ids, computed_ids, units, set(task_ids)).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        for case in err.failure_cases.itertuples(index=False):
            check = str(case.check)
            code, message = next(
                (v for k, v in _MESSAGES.items() if check.startswith(k)), ("invalid", check)
            )
            column = "value" if code == "not_a_number" else str(case.column)
            if case.index is None or pd.isna(case.index):
                problems.append(RowProblem(1, column, code, message, case.failure_case))
            elif code == "not_a_number":  # a data-frame check: show the row's value
                row = int(case.index)
                problems.append(RowProblem(row + 2, column, code, message, frame.at[row, "value"]))
            else:
                problems.append(RowProblem(int(case.index) + 2, column, code, message, case.failure_case))
    for index in frame.index[task_rows]:
        state = frame.at[index, "value"]
        if state is not None and state not in TASK_STATES:
            problems.append(
                RowProblem(index + 2, "value", "bad_task_state", f"任务状态应为 {'/'.join(TASK_STATES)} / task state must be one of these", state)
            )
    for index in frame.index[~task_rows]:
        raw = frame.at[index, "value"]
        unit = units.get(frame.at[index, "indicator_id"], "")
        if raw is None or parse_import_value(raw, unit).kind in (BLANK, NOT_REPORTED):
            problems.append(RowProblem(index + 2, "value", "missing_value", "数值为空或待核实：未报送请删除该行 / no value (blank or 待核实): leave the row out if not reported", raw))
    # Two rows for the same indicator and point in time (2025-Q3 and 2025-09 are one point).
    points = {}
    for index, (ind, period) in frame[["indicator_id", "period"]].iterrows():
        try:
            point = parse_period(period).point
        except (PeriodError, TypeError):
            continue
        key = (ind, point)
        if key in points:
            problems.append(
                RowProblem(index + 2, "period", "duplicate_row", f"与第{points[key]}行重复（同一指标同一期间） / duplicate of row {points[key]}", f"{ind} {period}")
            )
        else:
            points[key] = index + 2
    if problems:
        raise ImportRejected(sorted(problems, key=lambda p: (p.row, p.field)), file)
    out = frame.copy()
    out["period"] = out["period"].map(lambda p: str(parse_period(p)))
    out["value_text"] = out["value"].where(task_rows, None)
    out["value"] = [
        None if is_task else parse_import_value(v, units.get(ind, "")).value
        for ind, v, is_task in zip(out["indicator_id"], out["value"], task_rows, strict=True)
    ]
    out["row"] = out.index + 2
    for column in OPTIONAL:
        if column not in out.columns:
            out[column] = None
    return out
