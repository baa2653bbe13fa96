"""The catalogue's own schema: what a coordinator may write into ``catalogue.csv``.

A bad edit is rejected with the row (as numbered in the CSV file, header = row 1), the
field and what to do, Chinese first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

RULES = (
    "at_least",
    "about",
    "cumulative_at_least",
    "each_year_at_least",
    "growth_at_least",
    "yoy_at_least",
    "task",
)
MEASURES = ("flow", "stock", "ratio")
UNITS = ("亿元", "%", "家", "个", "项", "公顷", "万元", "人")
COMPUTED_RULES = ("growth_at_least", "yoy_at_least")
MIN_YEAR, MAX_YEAR = 2020, 2035

COLUMNS = [
    "id",
    "name_zh",
    "name_en",
    "group",
    "unit",
    "measure",
    "rule",
    "milestones",
    "tolerance",
    "owner",
    "source",
    "derived",
    "plan_text",
    "definition_zh",
]
REQUIRED_COLUMNS = COLUMNS[:11]

DATA_DIR = Path(__file__).resolve().parent
CATALOGUE_CSV = DATA_DIR / "catalogue.csv"
GROUPS_CSV = DATA_DIR / "groups.csv"

_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
_MILESTONE = re.compile(r"^\s*(\d{4})\s*:\s*(-?\d+(?:\.\d+)?)\s*$")
_SHARE = re.compile(r"^share\((?P<num>[^;]+);(?P<den>[^)]+)\)$")
_COUNT = re.compile(r"^count_at_least\((?P<threshold>[\d.]+);(?P<items>[^)]+)\)$")


class CatalogueError(ValueError):
    """One or more rows of the catalogue are wrong; ``problems`` lists them all."""

    def __init__(self, problems: list[str], file: str | None = None) -> None:
        self.problems = problems
        self.file = file
        head = f"目录文件有误 / catalogue is invalid{f' ({file})' if file else ''}:"
        super().__init__("\n".join([head, *("  - " + p for p in problems)]))


def parse_milestones(text: object) -> dict[int, float]:
    """``"2021:820;2025:1500"`` → ``{2021: 820.0, 2025: 1500.0}``; raise ValueError if malformed."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return {}
    result: dict[int, float] = {}
    for part in str(text).replace("；", ";").split(";"):
        if not part.strip():
            continue
        match = _MILESTONE.match(part.replace("：", ":"))
        if not match:
            raise ValueError(f"节点格式应为 年份:数值，如 2021:820;2025:1500 / expected year:value, got {part!r}")
        year = int(match.group(1))
        if year in result:
            raise ValueError(f"年份 {year} 重复 / year {year} given twice")
        result[year] = float(match.group(2))
    return dict(sorted(result.items()))


def format_milestones(milestones: dict[int, float]) -> str:
    return ";".join(f"{year}:{_number(value)}" for year, value in sorted(milestones.items()))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_derived(text: object) -> tuple[str, dict] | None:
    """``share(A+B; C)`` or ``count_at_least(1000; A, B, C)`` → (kind, parts)."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or not str(text).strip():
        return None
    compact = re.sub(r"\s", "", str(text))
    if match := _SHARE.match(compact):
        return "share", {
            "numerator": [p for p in match["num"].split("+") if p],
            "denominator": [p for p in match["den"].split("+") if p],
        }
    if match := _COUNT.match(compact):
        return "count_at_least", {
            "threshold": float(match["threshold"]),
            "items": [p for p in match["items"].split(",") if p],
        }
    raise ValueError(
        "派生公式应为 share(分子; 分母) 或 count_at_least(门槛; 指标, …) / "
        f"expected share(num; den) or count_at_least(threshold; ids): {text!r}"
    )


def _milestones_ok(series: pd.Series) -> pd.Series:
    def ok(text: object) -> bool:
        try:
            parse_milestones(text)
        except ValueError:
            return False
        return True

    return series.map(ok)


def _years_in_range(series: pd.Series) -> pd.Series:
    def ok(text: object) -> bool:
        try:
            return all(MIN_YEAR <= y <= MAX_YEAR for y in parse_milestones(text))
        except ValueError:
            return True  # reported by the format check

    return series.map(ok)


def _targets_non_negative(series: pd.Series) -> pd.Series:
    def ok(text: object) -> bool:
        try:
            return all(v >= 0 for v in parse_milestones(text).values())
        except ValueError:
            return True

    return series.map(ok)


def _derived_ok(series: pd.Series) -> pd.Series:
    def ok(text: object) -> bool:
        try:
            parse_derived(text)
        except ValueError:
            return False
        return True

    return series.map(ok)


# Human messages for each check, keyed by the check's name (pandera reports the name).
_MESSAGES = {
    "id_format": "编号须为大写英文、数字和下划线，如 C2_OUTPUT / id must be upper-case ASCII like C2_OUTPUT",
    "unique": "编号重复，每个指标只能出现一次 / duplicate id: every indicator appears once",
    "not_nullable": "必填字段为空 / required field is empty",
    "isin": "取值不在允许范围内 / value not allowed",
    "milestones_format": "目标节点格式应为 年份:数值，如 2021:820;2025:1500 / milestones must look like 2021:820;2025:1500",
    "milestone_years": f"目标年份须在 {MIN_YEAR}–{MAX_YEAR} 之间 / milestone year outside {MIN_YEAR}–{MAX_YEAR}",
    "milestone_non_negative": "目标值不能为负数 / a target cannot be negative",
    "tolerance_range": "容差须为 0 到 1 之间的小数，如 0.05 / tolerance is a fraction between 0 and 1, e.g. 0.05",
    "derived_format": "派生公式应为 share(分子; 分母) 或 count_at_least(门槛; 指标, …) / derived must be share(num; den) or count_at_least(threshold; ids)",
}


def catalogue_schema(group_ids: Iterable[str]) -> pa.DataFrameSchema:
    """The pandera schema of ``catalogue.csv`` (column-level rules; cross-row rules follow)."""
    text = pa.Column(str, nullable=True, required=False)
    return pa.DataFrameSchema(
        {
            "id": pa.Column(
                str,
                checks=[pa.Check.str_matches(_ID.pattern, name="id_format")],
                unique=True,
                nullable=False,
            ),
            "name_zh": pa.Column(str, nullable=False),
            "name_en": pa.Column(str, nullable=False),
            "group": pa.Column(str, checks=pa.Check.isin(list(group_ids)), nullable=False),
            "unit": pa.Column(str, checks=pa.Check.isin(list(UNITS)), nullable=True),
            "measure": pa.Column(str, checks=pa.Check.isin(list(MEASURES)), nullable=True),
            "rule": pa.Column(str, checks=pa.Check.isin(list(RULES)), nullable=False),
            "milestones": pa.Column(
                str,
                checks=[
                    pa.Check(_milestones_ok, name="milestones_format"),
                    pa.Check(_years_in_range, name="milestone_years"),
                    pa.Check(_targets_non_negative, name="milestone_non_negative"),
                ],
                nullable=True,
            ),
            "tolerance": pa.Column(
                float,
                checks=pa.Check.in_range(0, 1, include_min=False, name="tolerance_range"),
                nullable=True,
                coerce=True,
            ),
            "owner": pa.Column(str, nullable=False),
            "source": pa.Column(str, nullable=True),
            "derived": pa.Column(
                str, checks=pa.Check(_derived_ok, name="derived_format"), nullable=True
            ),
            "plan_text": text,
            "definition_zh": text,
        },
        strict=False,
        unique_column_names=True,
    )


def read_catalogue_csv(path: Path | str) -> pd.DataFrame:
    """Read the CSV as text (ids, milestones and units must not be guessed as numbers)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame = frame.apply(lambda col: col.str.strip())
    return frame.replace({"": None})


def validate_catalogue(frame: pd.DataFrame, groups: pd.DataFrame, file: str | None = None) -> pd.DataFrame:
    """Validate the catalogue frame; raise :class:`CatalogueError` listing every problem."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError([f"缺少列 / missing columns: {', '.join(missing)}"], file)
    problems: list[str] = []
    try:
        frame = catalogue_schema(groups["group"]).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        problems.extend(_describe_failures(err.failure_cases, frame))
    problems.extend(_cross_row_problems(frame))
    if problems:
        raise CatalogueError(problems, file)
    return frame


def _row_label(frame: pd.DataFrame, index: object) -> str:
    try:
        row = int(index) + 2  # header is row 1 in the file
    except (TypeError, ValueError):
        return "?"
    ident = frame["id"].get(index) if "id" in frame.columns and index in frame.index else None
    return f"第{row}行{f' ({ident})' if ident else ''} / row {row}"


def _describe_failures(cases: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    out = []
    for case in cases.itertuples(index=False):
        column = getattr(case, "column", None)
        check = str(getattr(case, "check", ""))
        value = getattr(case, "failure_case", None)
        index = getattr(case, "index", None)
        key = next((k for k in _MESSAGES if check.startswith(k)), None)
        if check.startswith("field_uniqueness") or check == "unique":
            key = "unique"
        message = _MESSAGES.get(key or "", check)
        if key == "isin":
            allowed = {
                "rule": RULES,
                "measure": MEASURES,
                "unit": UNITS,
            }.get(str(column))
            if allowed:
                message = f"取值不在允许范围内 / not one of: {', '.join(allowed)}"
            elif column == "group":
                message = "未知分组，见 groups.csv / unknown group (see groups.csv)"
        where = _row_label(frame, index) if index is not None and not pd.isna(index) else "表头 / header"
        out.append(f"{where}，字段 {column} / field {column}: {message}（当前值 / got {value!r}）")
    return out


def _cross_row_problems(frame: pd.DataFrame) -> list[str]:
    """Rules that span fields or rows: sources exist, derived items exist, rules have what they need."""
    problems = []
    ids = set(frame["id"].dropna())
    for index, raw in frame.iterrows():
        row = {k: (None if _blank(v) else v) for k, v in raw.items()}
        where = _row_label(frame, index)
        rule, measure = row.get("rule"), row.get("measure")
        if rule in COMPUTED_RULES:
            if not row.get("source"):
                problems.append(f"{where}，字段 source: 增速规则须指明所依据的总量指标 / a growth rule needs a source indicator")
            elif row["source"] not in ids:
                problems.append(f"{where}，字段 source: 未知指标 {row['source']!r} / unknown source indicator")
        if row.get("derived"):
            try:
                parsed = parse_derived(row["derived"])
            except ValueError:
                parsed = None
            if parsed:
                kind, parts = parsed
                refs = parts["items"] if kind == "count_at_least" else parts["numerator"] + parts["denominator"]
                for ref in refs:
                    if ref not in ids:
                        problems.append(f"{where}，字段 derived: 未知指标 {ref!r} / unknown indicator in formula")
        if rule and rule != "task" and rule in RULES and measure is None:
            problems.append(f"{where}，字段 measure: 须为 flow、stock 或 ratio / measure must be flow, stock or ratio")
        if rule == "task" and row.get("milestones"):
            problems.append(f"{where}，字段 milestones: 任务类不设数值目标 / a task has no numeric milestones")
        if rule in ("cumulative_at_least", "each_year_at_least", "growth_at_least", "yoy_at_least", "about"):
            if not row.get("milestones"):
                problems.append(f"{where}，字段 milestones: 规则 {rule} 须有目标节点 / rule {rule} needs milestones")
        if rule == "cumulative_at_least" and measure not in (None, "flow"):
            problems.append(f"{where}，字段 measure: 累计目标按当年新增（flow）填报 / a cumulative target counts new ones: measure flow")
    return problems


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value == ""


def load_groups(path: Path | str = GROUPS_CSV) -> pd.DataFrame:
    return read_catalogue_csv(path)
