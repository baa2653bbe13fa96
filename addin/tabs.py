"""The consolidated output tabs as data: one model, two writers.

Why a model: the same tabs are written into a *closed* master workbook by
:mod:`plan_tracker.render` (openpyxl) and into an *open* one through the xlwings Book API
(also xlwings Server, whose remote engine cannot read formats back and does not see its own
writes). So every figure, every label, every number format and the position of every block is
decided here, once, without Excel; a writer only copies it out. Nothing here re-implements a
rule: every target, actual, gap, completion, status, pace and outlook is a field of a
:class:`plan_tracker.engine.GapResult` from ``PlanContext.evaluate``; reporting completeness
comes from :mod:`plan_tracker.completeness`.

The model
---------
* :class:`Tab` — one sheet: ``name`` (Chinese sheet name), ``title``, ``notes`` (lines under
  the title), ``blocks`` (tables), ``charts``. ``origin_row`` is where the tool-owned region
  starts: 1 for the tool's own sheets, :data:`DASHBOARD_FIRST_ROW` on ``总览``, whose rows
  above it (title, report period ``B3``, buttons) belong to the workbook shell.
* :class:`Block` — one table: ``key``, ``title``, ``columns`` and ``rows`` (a list of lists in
  column order; ``None`` is an empty cell). ``status_column`` names the column whose text
  gets a status fill (``status_colours`` maps the exact text to an RGB fill); ``bar_columns``
  get data bars (completion, reporting rate).
* :class:`Column` — ``key``, ``header_zh``, ``header_en``, ``kind`` (``text``, ``number``,
  ``fraction``, ``integer``, ``status``), ``number_format`` and ``width``. A number column
  whose format depends on the row's unit (``target`` of ``亿元`` versus ``家``) names that
  unit's column in ``unit_key``; :func:`cell_number_format` resolves the format of one cell,
  so both writers agree (亿元 ``#,##0.00``, % ``0.0``, counts ``#,##0``, completion and
  schedule ``0.0%``).
* :class:`ChartSpec` — a bar or line chart over one block: categories from one column,
  series from others, optionally a slice of the block's rows (one cluster's path).
* :func:`layout` — where everything goes (1-based rows and columns): the title row, the
  note rows, each block's title, header and data rows, each chart's anchor cell. Ranges are
  sized from the data, never read back from the sheet.

A header cell is ``"中文\\nEnglish"`` (:meth:`Column.header`). Text that comes from
submissions (file names, messages, notes) may start with ``=``, ``+``, ``-``, ``@``: a writer
must write text cells as text, never as formulas (``render`` does; see
``plan_tracker.xlsxsafe`` when present).

Entry point: :func:`build_tabs` (reads the store) or :func:`build_tabs_from` (pure: takes the
frames in :class:`TabInputs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from plan_tracker import completeness as comp
from plan_tracker.catalogue import Catalogue, Indicator
from plan_tracker.engine import (
    AT_RISK,
    BEHIND,
    NO_TARGET,
    NOT_REPORTED,
    ON_TRACK,
    STATUS_ZH,
    STATUSES,
    Facts,
    GapResult,
    derived_parts,
)
from plan_tracker.periods import BASE_YEAR, PLAN_END, PLAN_START, Period, parse_period

__all__ = [
    "BLOCK_GAP",
    "Block",
    "BlockPlacement",
    "ChartPlacement",
    "ChartSpec",
    "Column",
    "DASHBOARD",
    "DASHBOARD_FIRST_ROW",
    "DASHBOARD_LAST_COLUMN",
    "Layout",
    "Series",
    "TOOL_TABS",
    "Tab",
    "TabInputs",
    "build_tabs",
    "build_tabs_from",
    "cell_number_format",
    "is_synthetic",
    "layout",
    "status_label",
    "unit_number_format",
]

# --------------------------------------------------------------------------- names

DASHBOARD = "总览"
CLUSTERS = "产业集群"
PROJECTS = "提升工程"
REPORTING = "部门报送"
PROBLEMS = "校验问题"
DETAIL = "数据明细"
#: Sheets the tool owns outright: deleted and recreated on every run.
TOOL_TABS = (CLUSTERS, PROJECTS, REPORTING, PROBLEMS, DETAIL)
#: On 总览 the shell owns rows 1–9 (title, period B3, buttons); the tool owns row 10 down.
DASHBOARD_FIRST_ROW = 10
#: …and columns A to this one (charts included), so a writer knows what to clear.
DASHBOARD_LAST_COLUMN = 26
BLOCK_GAP = 2  # empty rows between blocks

# --------------------------------------------------------------------------- formats & colours

GREEN, AMBER, RED, GREY, LIGHT_GREY = "C6EFCE", "FFEB9C", "FFC7CE", "D9D9D9", "F2F2F2"
STATUS_FILL = {
    ON_TRACK: GREEN,
    AT_RISK: AMBER,
    BEHIND: RED,
    NOT_REPORTED: GREY,
    NO_TARGET: LIGHT_GREY,
}
FMT_MONEY = "#,##0.00"
FMT_PERCENT_POINTS = "0.0"  # percentages are written in percent (65.0), plan-semantics §6
FMT_COUNT = "#,##0"
FMT_FRACTION = "0.0%"  # completion and schedule are fractions (0.95)
FMT_DECIMAL = "#,##0.00"
_UNIT_FORMATS = {
    "亿元": FMT_MONEY,
    "%": FMT_PERCENT_POINTS,
    "家": FMT_COUNT,
    "个": FMT_COUNT,
    "项": FMT_COUNT,
    "公顷": FMT_DECIMAL,
    # required pace: a rate, percentage points, or a count per year (fractional)
    "%/年": FMT_PERCENT_POINTS,
    "个百分点/年": FMT_PERCENT_POINTS,
}


def unit_number_format(unit: str | None) -> str:
    """The Excel number format for a value in ``unit`` (pace units ``家/年`` included)."""
    unit = unit or ""
    if unit in _UNIT_FORMATS:
        return _UNIT_FORMATS[unit]
    if unit.endswith("/年"):
        # a count per year can be fractional (250 in 4 years = 62.5 a year)
        return "#,##0.0" if _UNIT_FORMATS.get(unit[:-2]) == FMT_COUNT else FMT_DECIMAL
    return FMT_DECIMAL


def status_label(status: str) -> str:
    """How a status is shown: Chinese first, the code beside it (``达标 on_track``)."""
    return f"{STATUS_ZH[status]} {status}"


ENGINE_STATUS_COLOURS = {status_label(s): STATUS_FILL[s] for s in STATUSES}

# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Column:
    key: str
    header_zh: str
    header_en: str
    kind: str = "text"  # text | number | fraction | integer | status
    number_format: str | None = None
    width: float = 12.0
    unit_key: str | None = None  # number columns: the column holding this row's unit

    def header(self) -> str:
        return f"{self.header_zh}\n{self.header_en}" if self.header_en else self.header_zh


@dataclass
class Block:
    key: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    status_column: str | None = None
    status_colours: dict[str, str] = field(default_factory=dict)
    bar_columns: tuple[str, ...] = ()
    empty_text: str = "（无 none）"

    def index(self, key: str) -> int:
        for i, column in enumerate(self.columns):
            if column.key == key:
                return i
        raise KeyError(f"{self.key}: no column {key!r}")

    def column(self, key: str) -> Column:
        return self.columns[self.index(key)]

    def values(self, key: str) -> list[Any]:
        i = self.index(key)
        return [row[i] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Series:
    column: str
    title: str
    dashed: bool = False


@dataclass(frozen=True)
class ChartSpec:
    key: str
    kind: str  # "bar" | "line"
    title: str
    block: str  # key of the block holding the data
    category_column: str
    series: tuple[Series, ...]
    y_title: str = ""
    x_title: str = ""
    rows: tuple[int, int] | None = None  # slice [start, stop) of the block's rows
    width_cm: float = 15.0
    height_cm: float = 7.5


@dataclass
class Tab:
    name: str
    title: str
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    charts: list[ChartSpec] = field(default_factory=list)
    origin_row: int = 1
    freeze_header: bool = True  # freeze panes below the first block's header

    def block(self, key: str) -> Block:
        for block in self.blocks:
            if block.key == key:
                return block
        raise KeyError(f"{self.name}: no block {key!r}")

    @property
    def columns(self) -> list[Column]:
        """The main table's columns (the first block)."""
        return self.blocks[0].columns

    @property
    def rows(self) -> list[list[Any]]:
        return self.blocks[0].rows

    def column_widths(self) -> list[float]:
        """Width of each sheet column: the widest block column at that position."""
        widths: list[float] = []
        for block in self.blocks:
            for i, column in enumerate(block.columns):
                if i >= len(widths):
                    widths.append(column.width)
                else:
                    widths[i] = max(widths[i], column.width)
        return widths


def cell_number_format(block: Block, row: Sequence[Any], column: Column) -> str | None:
    """The number format of one cell (``None``: General / text)."""
    if column.kind == "fraction":
        return column.number_format or FMT_FRACTION
    if column.kind == "integer":
        return column.number_format or FMT_COUNT
    if column.kind == "number":
        if column.unit_key is not None:
            return unit_number_format(row[block.index(column.unit_key)])
        return column.number_format or FMT_DECIMAL
    return column.number_format


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class BlockPlacement:
    block: Block
    title_row: int
    header_row: int
    first_row: int  # first data row (holds ``empty_text`` when the block has no rows)
    last_row: int
    first_col: int = 1

    @property
    def last_col(self) -> int:
        return self.first_col + len(self.block.columns) - 1

    def data_rows(self, start: int = 0, stop: int | None = None) -> tuple[int, int]:
        """Sheet rows (first, last) of block rows ``[start, stop)``."""
        stop = len(self.block.rows) if stop is None else stop
        return self.first_row + start, self.first_row + stop - 1


@dataclass(frozen=True)
class ChartPlacement:
    chart: ChartSpec
    row: int  # anchor (top-left cell), 1-based
    col: int


@dataclass(frozen=True)
class Layout:
    title_row: int
    note_rows: tuple[int, ...]
    blocks: tuple[BlockPlacement, ...]
    charts: tuple[ChartPlacement, ...]
    last_row: int
    last_col: int

    def block(self, key: str) -> BlockPlacement:
        for placement in self.blocks:
            if placement.block.key == key:
                return placement
        raise KeyError(key)


_ROW_CM = 0.53  # default row height (15 pt)
CHARTS_PER_ROW = 2


def _char_width_cm(chars: float) -> float:
    # Excel: pixels = trunc(chars * 7 + 5) at the default font, 96 dpi.
    return int(chars * 7 + 5) * 2.54 / 96


def layout(tab: Tab) -> Layout:
    """Rows and columns of everything on ``tab`` (1-based), from the data alone."""
    row = tab.origin_row
    title_row = row
    row += 1
    note_rows = tuple(range(row, row + len(tab.notes)))
    row += len(tab.notes) + 1
    placements = []
    for block in tab.blocks:
        title, header = row, row + 1
        first = header + 1
        last = first + max(len(block.rows), 1) - 1
        placements.append(BlockPlacement(block, title, header, first, last))
        row = last + 1 + BLOCK_GAP
    widths = tab.column_widths()
    last_col = max([len(widths), 1])
    charts = []
    if tab.charts:
        chart_row = row
        for i, chart in enumerate(tab.charts):
            grid_row, grid_col = divmod(i, CHARTS_PER_ROW)
            col = 1
            if grid_col:
                # The next column after the previous chart's width, with a small margin.
                span, col = 0.0, 1
                while span < (chart.width_cm + 0.3) * grid_col:
                    span += _char_width_cm(widths[col - 1] if col - 1 < len(widths) else 8.43)
                    col += 1
            height_rows = math.ceil(chart.height_cm / _ROW_CM) + 1
            charts.append(ChartPlacement(chart, chart_row + grid_row * height_rows, col))
        rows_used = math.ceil(len(tab.charts) / CHARTS_PER_ROW)
        height_rows = max(math.ceil(c.height_cm / _ROW_CM) + 1 for c in tab.charts)
        row = chart_row + rows_used * height_rows
        last_col = max([last_col] + [c.col + 8 for c in charts])
    return Layout(
        title_row=title_row,
        note_rows=note_rows,
        blocks=tuple(placements),
        charts=tuple(charts),
        last_row=row - 1,
        last_col=last_col,
    )


# --------------------------------------------------------------------------- inputs


@dataclass
class TabInputs:
    """What the tabs read from the store besides the engine's results."""

    submissions: pd.DataFrame
    open_problems: pd.DataFrame
    observations: pd.DataFrame
    rules: comp.ReportingRules = field(default_factory=comp.ReportingRules)

    @classmethod
    def from_store(cls, store: Any, departments: Iterable[str] = ()) -> TabInputs:
        return cls(
            submissions=store.submissions(),
            open_problems=store.open_problems(),
            observations=store.current_observations(),
            rules=comp.ReportingRules.from_settings(store.get_setting, departments),
        )


# --------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    return None


def _actual(value: Any) -> Any:
    """A result's actual as a cell: a number, or a task's state text."""
    if isinstance(value, str):
        return value
    return _num(value)


def _yes_no(value: bool | None) -> str | None:
    if value is None:
        return None
    return "是 yes" if value else "否 no"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value)
    return text if text else None


def _cluster_short(name: str) -> str:
    return name.removesuffix("产业集群")


# --------------------------------------------------------------------------- indicator tables

_IND_COLUMNS = [
    Column("group_name", "分组", "group", width=20),
    Column("indicator_id", "编号", "id", width=16),
    Column("name_zh", "指标", "indicator", width=30),
    Column("unit", "单位", "unit", width=7),
    Column("target_2021", "2021年目标", "2021 target", "number", width=12, unit_key="unit"),
    Column("actual_2021", "2021年实际", "2021 actual", "number", width=12, unit_key="unit"),
    Column("period", "报告期", "period", width=10),
    Column("target", "本期目标(序时)", "period target", "number", width=13, unit_key="unit"),
    Column("actual", "本期实际(累计)", "actual (YTD)", "number", width=13, unit_key="unit"),
    Column("gap", "差距", "gap", "number", width=11, unit_key="unit"),
    Column("schedule", "序时进度", "schedule", "fraction", width=10),
    Column("completion", "完成率", "completion", "fraction", width=12),
    Column("status", "状态", "status", "status", width=16),
    Column("required_pace", "所需年均增速/增量", "required pace", "number", width=14, unit_key="pace_unit"),
    Column("pace_unit", "增速单位", "pace unit", width=10),
    Column("outlook", "期末预计", "outlook (final year)", "number", width=13, unit_key="unit"),
    Column("on_course", "可望完成", "on course", width=9),
    Column("final_target", "最终目标", "final target", "number", width=12, unit_key="unit"),
    Column("final_year", "目标年份", "final year", width=9),
    Column("owner", "责任单位", "owner", width=12),
    Column("note", "说明", "note", width=50),
]


def _indicator_row(
    catalogue: Catalogue, ind: Indicator, result: GapResult, first: GapResult | None
) -> list[Any]:
    group = catalogue.group(ind.group)
    values = {
        "group_name": group.name_zh,
        "indicator_id": ind.id,
        "name_zh": ind.name_zh,
        "unit": ind.unit or None,
        "target_2021": _num(first.target) if first else None,
        "actual_2021": _actual(first.actual) if first else None,
        "period": result.period,
        "target": _num(result.target),
        "actual": _actual(result.actual),
        "gap": _num(result.gap),
        "schedule": _num(result.schedule),
        "completion": _num(result.completion),
        "status": status_label(result.status),
        "required_pace": _num(result.required_pace),
        "pace_unit": result.pace_unit or None,
        "outlook": _num(result.outlook),
        "on_course": _yes_no(result.on_course),
        "final_target": _num(result.final_target),
        "final_year": str(result.final_year) if result.final_year else None,
        "owner": ind.owner or None,
        "note": result.note or None,
    }
    return [values[c.key] for c in _IND_COLUMNS]


def _indicator_block(
    key: str,
    title: str,
    catalogue: Catalogue,
    indicators: Iterable[Indicator],
    results: dict[str, GapResult],
    first_year: dict[str, GapResult],
) -> Block:
    rows = [
        _indicator_row(catalogue, ind, results[ind.id], first_year.get(ind.id))
        for ind in indicators
    ]
    return Block(
        key=key,
        title=title,
        columns=list(_IND_COLUMNS),
        rows=rows,
        status_column="status",
        status_colours=dict(ENGINE_STATUS_COLOURS),
        bar_columns=("completion",),
    )


def _groups_of(catalogue: Catalogue, kind: str) -> list[str]:
    return [g.id for g in catalogue.groups if g.kind == kind]


# --------------------------------------------------------------------------- dashboard


def _overall_block(catalogue: Catalogue, results: dict[str, GapResult]) -> Block:
    columns = [
        Column("name_zh", "总体目标", "overall goal", width=34),
        Column("unit", "单位", "unit", width=7),
        Column("period", "报告期", "period", width=10),
        Column("target", "本期目标", "period target", "number", width=12, unit_key="unit"),
        Column("actual", "本期实际", "actual", "number", width=12, unit_key="unit"),
        Column("completion", "完成率", "completion", "fraction", width=12),
        Column("status", "状态", "status", "status", width=16),
        Column("final_target", "最终目标", "final target", "number", width=12, unit_key="unit"),
        Column("outlook", "期末预计", "outlook", "number", width=12, unit_key="unit"),
        Column("on_course", "可望完成", "on course", width=9),
    ]
    rows = []
    for gid in _groups_of(catalogue, "overall"):
        for ind in catalogue.in_group(gid):
            r = results[ind.id]
            rows.append([
                ind.name_zh, ind.unit or None, r.period, _num(r.target), _actual(r.actual),
                _num(r.completion), status_label(r.status), _num(r.final_target),
                _num(r.outlook), _yes_no(r.on_course),
            ])
    return Block(
        "overall", "一、总体目标 Overall goals to 2025", columns, rows,
        status_column="status", status_colours=dict(ENGINE_STATUS_COLOURS),
        bar_columns=("completion",),
    )


def _tier_block(catalogue: Catalogue, results: dict[str, GapResult], facts: Facts) -> Block:
    """The 千亿级 / 五百亿级 cluster checks: each cluster's size beside the threshold, and the
    engine's count of clusters that reach it."""
    columns = [
        Column("tier", "档次", "tier", width=20),
        Column("name_zh", "集群 / 指标", "cluster / indicator", width=34),
        Column("unit", "单位", "unit", width=7),
        Column("threshold", "门槛", "threshold", "number", width=10, unit_key="unit"),
        Column("period", "报告期", "period", width=10),
        Column("actual", "本期实际", "actual", "number", width=12, unit_key="unit"),
        Column("reached", "达到门槛", "reached", width=10),
        Column("outlook", "期末预计", "outlook", "number", width=12, unit_key="unit"),
        Column("target", "目标", "target", "number", width=12, unit_key="unit"),
        Column("status", "状态", "status", "status", width=16),
    ]
    rows = []
    reached_label = {1.0: "是 yes", 0.0: "否 no", None: None}
    for ind in catalogue:
        derived = ind.derived
        if derived is None or derived.kind != "count_at_least":
            continue
        threshold = derived.threshold
        tier = f"{threshold:g}亿元级 {threshold:g} bn-yuan tier"
        r = results[ind.id]
        # Each cluster at the count's period, by the engine's own rule for the count.
        parts = {p.indicator_id: p for p in derived_parts(ind, parse_period(r.period), facts)}
        for cid in derived.items:
            cluster = catalogue.get(cid)
            part = parts[cid]
            rows.append([
                tier, cluster.name_zh, cluster.unit or None, threshold, r.period,
                part.value, reached_label[part.part], _num(results[cid].outlook),
                _num(results[cid].final_target), None,
            ])
        rows.append([
            tier, f"达到门槛的集群数 {ind.name_zh}", ind.unit or None, None, r.period,
            _actual(r.actual), None, _num(r.outlook), _num(r.target), status_label(r.status),
        ])
    return Block(
        "tiers", "二、千亿级与五百亿级集群 Cluster size checks", columns, rows,
        status_column="status", status_colours=dict(ENGINE_STATUS_COLOURS),
    )


def _share_block(catalogue: Catalogue, results: dict[str, GapResult], facts: Facts) -> Block:
    """The 8 clusters' output and their part of above-scale output, all from the engine: the
    total share and its status (O_CLUSTER_SHARE) and the per-cluster parts (derived_parts)."""
    columns = [
        Column("name_zh", "集群", "cluster", width=34),
        Column("unit", "单位", "unit", width=7),
        Column("period", "报告期", "period", width=10),
        Column("actual", "产值(收入)", "output (revenue)", "number", width=13, unit_key="unit"),
        Column("share", "占规上工业产值%", "share of above-scale output %", "number", width=14,
               number_format=FMT_PERCENT_POINTS),
        Column("target", "目标%", "target %", "number", width=10, number_format=FMT_PERCENT_POINTS),
        Column("status", "状态", "status", "status", width=16),
    ]
    share = next(
        (i for i in catalogue if i.derived is not None and i.derived.kind == "share"
         and len(i.derived.numerator) > 1),
        None,
    )
    rows: list[list[Any]] = []
    if share is not None:
        r = results[share.id]
        for part in derived_parts(share, parse_period(r.period), facts):
            cluster = catalogue.get(part.indicator_id)
            rows.append([
                catalogue.group(cluster.group).name_zh, cluster.unit or None, r.period,
                part.value, part.part, None, None,
            ])
        rows.append([
            share.name_zh, None, r.period, None, _num(r.actual), _num(r.target),
            status_label(r.status),
        ])
    return Block(
        "shares", "三、八大产业集群占比 Eight clusters' share of output", columns, rows,
        status_column="status", status_colours=dict(ENGINE_STATUS_COLOURS),
    )


def _status_count_block(catalogue: Catalogue, results: dict[str, GapResult]) -> Block:
    kinds = [("overall", "总体目标", "overall"), ("cluster", "产业集群", "clusters"),
             ("project", "提升工程", "projects")]
    columns = [Column("status", "状态", "status", "status", width=20)]
    columns += [Column(k, zh, en, "integer", width=12) for k, zh, en in kinds]
    columns += [Column("total", "合计", "total", "integer", width=12)]
    kind_of = {g.id: g.kind for g in catalogue.groups}
    rows = []
    for status in STATUSES:
        counts = [
            sum(1 for ind in catalogue
                if kind_of.get(ind.group) == k and results[ind.id].status == status)
            for k, _zh, _en in kinds
        ]
        rows.append([status_label(status), *counts, sum(counts)])
    return Block(
        "status_counts", "四、状态统计 Counts by status", columns, rows,
        status_column="status", status_colours=dict(ENGINE_STATUS_COLOURS),
    )


def _cluster_chart_block(catalogue: Catalogue, results: dict[str, GapResult]) -> Block:
    columns = [
        Column("cluster", "集群", "cluster", width=20),
        Column("period", "报告期", "period", width=10),
        Column("target", "本期目标", "period target", "number", width=12, number_format=FMT_MONEY),
        Column("actual", "本期实际", "actual", "number", width=12, number_format=FMT_MONEY),
        Column("final_target", "最终目标", "final target", "number", width=12, number_format=FMT_MONEY),
    ]
    rows = []
    for ind in _cluster_indicators(catalogue):
        r = results[ind.id]
        rows.append([
            _cluster_short(catalogue.group(ind.group).name_zh), r.period, _num(r.target),
            _num(r.actual), _num(r.final_target),
        ])
    return Block("cluster_bars", "五、各集群目标与实际 Target vs actual by cluster (亿元)", columns, rows)


def _cluster_indicators(catalogue: Catalogue) -> list[Indicator]:
    """Each cluster's headline series: its first money indicator (output, or AI revenue)."""
    found = []
    for gid in _groups_of(catalogue, "cluster"):
        money = [i for i in catalogue.in_group(gid) if i.is_money and not i.is_computed_only]
        if money:
            found.append(money[0])
    return found


def _path_block(
    catalogue: Catalogue, annual: dict[int, dict[str, GapResult]]
) -> Block:
    columns = [
        Column("cluster", "集群", "cluster", width=20),
        Column("year", "年份", "year", width=10),
        Column("actual", "实际", "actual", "number", width=12, number_format=FMT_MONEY),
        Column("target", "目标", "target", "number", width=12, number_format=FMT_MONEY),
    ]
    rows = []
    for ind in _cluster_indicators(catalogue):
        name = _cluster_short(catalogue.group(ind.group).name_zh)
        for year in range(BASE_YEAR, PLAN_END + 1):
            r = annual[year][ind.id]
            rows.append([name, str(year), _num(r.actual), _num(r.target)])
    return Block("cluster_paths", "六、各集群至2025年发展路径 Path to 2025 by cluster (亿元, 全年 annual)", columns, rows)


SYNTHETIC_MARK = "合成示例数据"
SYNTHETIC_NOTE = "本表数据为合成示例数据 / synthetic data: 数字为演示用虚构数据，并非真实统计 / invented figures, not statistics."


def is_synthetic(observations: pd.DataFrame) -> bool:
    """Whether any current value is synthetic: its note carries 合成示例数据, or its
    department says ``synthetic`` (how the demo, the bench and the sample data mark them)."""
    if observations.empty:
        return False
    notes = observations["note"].dropna().astype(str)
    if notes.str.contains(SYNTHETIC_MARK, regex=False).any():
        return True
    departments = observations["department"].dropna().astype(str)
    return bool(departments.str.contains("synthetic", case=False, regex=False).any())


def _dashboard(
    catalogue: Catalogue,
    results: dict[str, GapResult],
    annual: dict[int, dict[str, GapResult]],
    period_text: str,
    facts: Facts,
    synthetic: bool = False,
) -> Tab:
    path = _path_block(catalogue, annual)
    charts = [
        ChartSpec(
            "cluster_bars", "bar", "各集群本期目标与实际 Target vs actual by cluster",
            "cluster_bars", "cluster",
            (Series("target", "本期目标 target"), Series("actual", "本期实际 actual")),
            y_title="亿元", width_cm=15.0, height_cm=7.5,
        )
    ]
    years = PLAN_END - BASE_YEAR + 1
    for i, ind in enumerate(_cluster_indicators(catalogue)):
        name = _cluster_short(catalogue.group(ind.group).name_zh)
        charts.append(
            ChartSpec(
                f"path_{ind.group}", "line", f"{name} 至{PLAN_END}年路径 path",
                "cluster_paths", "year",
                (Series("actual", "实际 actual"), Series("target", "目标 target", dashed=True)),
                y_title="亿元", rows=(i * years, (i + 1) * years), width_cm=15.0, height_cm=7.5,
            )
        )
    return Tab(
        name=DASHBOARD,
        title=f"目标完成总览 Dashboard — 报告期 period {period_text}",
        notes=[
            "本区域（第10行以下）由汇总自动生成，每次汇总时重写；请勿在此输入。"
            " / Rows 10 down are rewritten by every consolidation; do not type here.",
            "状态：达标(绿) 预警(黄) 滞后(红) 未报送/无目标(灰)。 / Status: green on track, amber at"
            " risk, red behind, grey not reported / no target.",
            *([SYNTHETIC_NOTE] if synthetic else []),
        ],
        blocks=[
            _overall_block(catalogue, results),
            _tier_block(catalogue, results, facts),
            _share_block(catalogue, results, facts),
            _status_count_block(catalogue, results),
            _cluster_chart_block(catalogue, results),
            path,
        ],
        charts=charts,
        origin_row=DASHBOARD_FIRST_ROW,
        freeze_header=False,
    )


# --------------------------------------------------------------------------- reporting, problems, detail


def _reporting_tab(
    catalogue: Catalogue, inputs: TabInputs, report_period: Period, today: date
) -> Tab:
    detail = comp.completeness(
        inputs.submissions, catalogue.departments(), report_period, inputs.rules, today=today
    )
    summary = comp.summarise(detail)
    sum_cols = [
        Column("department", "部门", "department", width=16),
        Column("expected", "应报", "expected", "integer", width=8),
        Column("submitted", "已报", "submitted", "integer", width=8),
        Column("on_time", "按时", "on time", "integer", width=8),
        Column("late", "逾期", "late", "integer", width=8),
        Column("missing", "未报", "missing", "integer", width=8),
        Column("rejected", "退回", "rejected", "integer", width=8),
        Column("pending", "待审", "pending", "integer", width=8),
        Column("not_due", "未到期", "not due", "integer", width=8),
        Column("reporting_rate", "报送率", "reporting rate", "fraction", width=12),
        Column("on_time_rate", "及时率", "on-time rate", "fraction", width=12),
    ]
    sum_rows = [
        [rec[c.key] if not _is_nan(rec[c.key]) else None for c in sum_cols]
        for rec in summary.to_dict("records")
    ]
    det_cols = [
        Column("department", "部门", "department", width=16),
        Column("period", "报告期", "period", width=10),
        Column("frequency", "频次", "frequency", width=10),
        Column("due_date", "截止日期", "due date", width=12),
        Column("status", "报送状态", "status", "status", width=20),
        Column("received", "首次接收(本地时间)", "first received (local)", width=18),
        Column("days_late", "逾期天数", "days late", "integer", width=9),
        Column("files", "文件数", "files", "integer", width=8),
        Column("rejected_files", "退回文件数", "rejected files", "integer", width=10),
        Column("file_name", "采用文件", "accepted file", width=36),
    ]
    det_rows = [
        [
            rec["department"], rec["period"], comp.FREQUENCY_ZH[rec["frequency"]],
            rec["due_date"].isoformat(), comp.status_label(rec["status"]),
            _text(rec["received_local"]), _int_or_none(rec["days_late"]), int(rec["files"]),
            int(rec["rejected_files"]), _text(rec["file_name"]),
        ]
        for rec in detail.to_dict("records")
    ]
    rules = inputs.rules
    shown = sorted(set(detail["period"]), key=lambda p: parse_period(p).sort_key)
    first, last = (shown[0], shown[-1]) if shown else (report_period, report_period)
    return Tab(
        name=REPORTING,
        title=f"部门报送完整性与及时性 Reporting completeness and timeliness — {first}…{last}",
        notes=[
            f"频次 frequency: {comp.FREQUENCY_ZH[rules.frequency]}；截止 due: 期末后 {rules.due_days} 天"
            f" ({rules.due_days} days after period end, {rules.timezone})。报送率 = 已报 ÷ 应报；"
            "及时率 = 按时 ÷ 应报（未到期不计入应报）。 / reporting rate = submitted ÷ expected;"
            " on-time rate = on time ÷ expected (periods not yet due are not expected).",
            "设置 settings: reporting.frequency, reporting.due_days, reporting.timezone,"
            " reporting.start, reporting.frequency.<部门>",
        ],
        blocks=[
            Block("summary", "按部门汇总 By department", sum_cols, sum_rows,
                  bar_columns=("reporting_rate", "on_time_rate")),
            Block("detail", "按部门和期间 By department and period", det_cols, det_rows,
                  status_column="status", status_colours=dict(comp.STATUS_COLOURS)),
        ],
    )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _int_or_none(value: Any) -> int | None:
    if value is None or _is_nan(value) or value is pd.NA:
        return None
    return int(value)


def _problems_tab(inputs: TabInputs) -> Tab:
    columns = [
        Column("submission_id", "提交号", "submission", "integer", width=9),
        Column("department", "部门", "department", width=14),
        Column("period", "报告期", "period", width=10),
        Column("file", "文件", "file", width=34),
        Column("sheet", "工作表", "sheet", width=14),
        Column("cell", "单元格", "cell", width=9),
        Column("code", "代码", "code", width=16),
        Column("severity", "级别", "severity", width=10),
        Column("message", "问题", "message", width=60),
        Column("hint", "处理建议", "what to do", width=50),
        Column("received_at", "接收时间(UTC)", "received (UTC)", width=20),
    ]
    severity_zh = {"error": "错误 error", "warning": "警告 warning"}
    rows = []
    for rec in inputs.open_problems.to_dict("records"):
        rows.append([
            _int_or_none(rec["submission_id"]), _text(rec["department"]), _text(rec["period"]),
            _text(rec["file"]), _text(rec["sheet"]), _text(rec["cell"]), _text(rec["code"]),
            severity_zh.get(rec["severity"], _text(rec["severity"])), _text(rec["message"]),
            _text(rec["hint"]), _text(rec["received_at"]),
        ])
    return Tab(
        name=PROBLEMS,
        title=f"待处理的校验问题 Open validation problems ({len(rows)})",
        notes=[
            "已退回且尚未被同一部门同一期间的新报送取代的文件中的问题。 / Problems of rejected files"
            " not yet replaced by an accepted file of the same department and period.",
        ],
        blocks=[
            Block("problems", "问题清单 Problems", columns, rows, status_column="severity",
                  status_colours={"错误 error": RED, "警告 warning": AMBER},
                  empty_text="（无待处理问题 no open problems）"),
        ],
    )


def _detail_tab(catalogue: Catalogue, inputs: TabInputs) -> Tab:
    columns = [
        Column("indicator_id", "编号", "id", width=16),
        Column("name_zh", "指标", "indicator", width=30),
        Column("group", "分组", "group", width=8),
        Column("unit", "单位", "unit", width=7),
        Column("period", "期间", "period", width=10),
        Column("value", "数值", "value", "number", width=13, unit_key="unit"),
        Column("value_text", "状态", "state", width=10),
        Column("note", "备注", "note", width=30),
        Column("department", "报送部门", "department", width=12),
        Column("submission_id", "提交号", "submission", "integer", width=9),
        Column("file_name", "来源文件", "source file", width=34),
        Column("sheet", "工作表", "sheet", width=14),
        Column("cell", "单元格", "cell", width=14),
        Column("recorded_at", "记录时间(UTC)", "recorded (UTC)", width=20),
        Column("recorded_by", "记录人", "recorded by", width=12),
    ]
    files: dict[int, str] = {}
    for rec in inputs.submissions[["submission_id", "file_name"]].to_dict("records"):
        if rec["submission_id"] is not pd.NA and rec["submission_id"] is not None:
            files[int(rec["submission_id"])] = rec["file_name"]
    order = {ind.id: i for i, ind in enumerate(catalogue)}
    records = sorted(
        inputs.observations.to_dict("records"),
        key=lambda r: (order.get(r["indicator_id"], len(order)), r["indicator_id"],
                       parse_period(r["period"]).sort_key),
    )
    rows = []
    for rec in records:
        ind = catalogue.get(rec["indicator_id"]) if rec["indicator_id"] in catalogue else None
        sid = _int_or_none(rec["submission_id"])
        rows.append([
            rec["indicator_id"], ind.name_zh if ind else None, ind.group if ind else None,
            (ind.unit or None) if ind else None, rec["period"], _num(rec["value"]),
            _text(rec["value_text"]), _text(rec["note"]), _text(rec["department"]), sid,
            files.get(sid) if sid is not None else None, _text(rec["sheet"]),
            _text(rec["cell"]), _text(rec["recorded_at"]), _text(rec["recorded_by"]),
        ])
    return Tab(
        name=DETAIL,
        title=f"数据明细 Current values with provenance ({len(rows)})",
        notes=[
            "每个指标每个期间的现行值及其来源（提交、文件、工作表、单元格）；被更正的旧值保存在数据库历史中。"
            " / Every current value with its source; corrected earlier values stay in the store's history.",
        ],
        blocks=[Block("values", "现行值 Current values", columns, rows)],
    )


# --------------------------------------------------------------------------- entry points


def build_tabs(
    ctx: Any,
    store: Any,
    period: str | None = None,
    catalogue: Catalogue | None = None,
    *,
    today: date | None = None,
) -> list[Tab]:
    """Every output tab for ``period`` (``None``: each indicator's default period)."""
    catalogue = catalogue or ctx.catalogue
    inputs = TabInputs.from_store(store, catalogue.departments())
    return build_tabs_from(ctx, inputs, period, catalogue, today=today)


def build_tabs_from(
    ctx: Any,
    inputs: TabInputs,
    period: str | None = None,
    catalogue: Catalogue | None = None,
    *,
    today: date | None = None,
) -> list[Tab]:
    """:func:`build_tabs` over frames already read (pure; what the tests and xlwings use).

    ``ctx`` is a :class:`plan_tracker.service.PlanContext` (anything with its ``evaluate``).
    """
    catalogue = catalogue or ctx.catalogue
    today = today or date.today()
    period_text = str(parse_period(period)) if period not in (None, "") else None
    results = {r.indicator_id: r for r in ctx.evaluate(period_text, today=today)}
    first_year = {r.indicator_id: r for r in ctx.evaluate(str(PLAN_START), today=today)}
    cluster_ids = [i.id for i in _cluster_indicators(catalogue)]
    annual = {
        year: {r.indicator_id: r for r in ctx.evaluate(str(year), cluster_ids, today=today)}
        for year in range(BASE_YEAR, PLAN_END + 1)
    }
    if period_text is not None:
        report_period = parse_period(period_text)
        shown = period_text
    else:
        report_period = max((parse_period(r.period) for r in results.values()),
                            key=lambda p: p.sort_key)
        shown = "各指标最新期 latest per indicator"

    clusters = [ind for g in _groups_of(catalogue, "cluster") for ind in catalogue.in_group(g)]
    projects = [ind for g in _groups_of(catalogue, "project") for ind in catalogue.in_group(g)]
    note_period = (
        f"报告期 period: {shown}。流量指标按年初至今累计(1–N月)，本期目标为序时目标。"
        " / Flows are year-to-date; the period target is the schedule target (序时进度)."
    )
    return [
        _dashboard(catalogue, results, annual, shown, ctx.facts, is_synthetic(inputs.observations)),
        Tab(
            name=CLUSTERS,
            title=f"八大产业集群 Eight industrial clusters — {shown}",
            notes=[note_period],
            blocks=[_indicator_block("clusters", "产业集群 Clusters", catalogue, clusters,
                                     results, first_year)],
        ),
        Tab(
            name=PROJECTS,
            title=f"五大提升工程 Five improvement projects — {shown}",
            notes=[note_period, "任务类指标的“实际”为推进状态（未启动/推进中/已完成）。 / For tasks the"
                   " actual is the state."],
            blocks=[_indicator_block("projects", "提升工程 Projects", catalogue, projects,
                                     results, first_year)],
        ),
        _reporting_tab(catalogue, inputs, report_period, today),
        _problems_tab(inputs),
        _detail_tab(catalogue, inputs),
    ]
