"""Write the output tabs (:mod:`plan_tracker.tabs`) into a closed master workbook (openpyxl).

What is replaced and what is kept:

* the tool's own sheets (:data:`plan_tracker.tabs.TOOL_TABS`: 产业集群, 提升工程, 部门报送,
  校验问题, 数据明细) are deleted and created again at the same position on every run;
* on ``总览`` only the tool's region is cleared and rewritten: rows from
  :data:`~plan_tracker.tabs.DASHBOARD_FIRST_ROW` down, its conditional formats and its
  charts. The sheet itself is not deleted, because its buttons live in the sheet's legacy
  (VML) drawing, which openpyxl carries over only for a sheet it loaded;
* every other sheet (the coordinator's own, ``xlwings.conf``), the workbook's defined names
  and the VBA project (``keep_vba=True``: ``xl/vbaProject.bin`` is copied byte for byte) are
  left as they are.

openpyxl rewrites the whole package on save; it keeps cell values, formulas, styles, merged
cells, comments, data validation, conditional formatting, defined names, charts and images,
but not every Excel feature (shapes and form controls on other sheets, sparklines, slicers,
``extLst`` extensions). :func:`preservation_warnings` names any such part before it is lost,
and the previous workbook is copied to a backup folder first, so nothing is ever lost.

The file is written atomically (a temporary file in the same folder, then ``os.replace``),
and not at all while Excel has it open (its ``~$`` lock file is there).
"""

from __future__ import annotations

import html
import io
import math
import re
import shutil
import unicodedata
import zipfile
from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart import Series as ChartSeries
from openpyxl.formatting.rule import CellIsRule, DataBarRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from plan_tracker.tabs import (
    DASHBOARD,
    TOOL_TABS,
    BlockPlacement,
    ChartPlacement,
    Layout,
    Tab,
    cell_number_format,
    layout,
)

__all__ = [
    "RenderReport",
    "WorkbookOpenError",
    "check_not_open_in_excel",
    "preservation_warnings",
    "render_tabs",
    "write_tabs",
]

from plan_tracker.workbook import WorkbookOpenError, atomic_save, check_not_open_in_excel
from plan_tracker.xlsxsafe import set_text_cell

BACKUPS_KEPT = 5

_TITLE_FONT = Font(bold=True, size=14)
_BLOCK_FONT = Font(bold=True, size=12, color="1F4E78")
_NOTE_FONT = Font(italic=True, color="808080")
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", start_color="DDEBF7", end_color="DDEBF7")
_HEADER_ALIGN = Alignment(wrap_text=True, vertical="center", horizontal="center")
_THIN = Side(style="thin", color="BFBFBF")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP_TOP = Alignment(wrap_text=True, vertical="top")
_BAR_COLOUR = "638EC6"
#: Header cells hold two lines (中文 / English); LibreOffice does not grow a row for wrapped
#: text on load, so without an explicit height the two lines overlap in a PDF.
HEADER_ROW_HEIGHT = 30.0


@dataclass
class RenderReport:
    path: Path
    tabs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    backup: Path | None = None


# --------------------------------------------------------------------------- preservation


_LOSSY_PARTS = (
    ("xl/slicers/", "切片器 slicers"),
    ("xl/timelines/", "日程表 timelines"),
    ("xl/threadedComments/", "线程批注 threaded comments"),
    ("xl/ctrlProps/", "表单控件 form controls"),
    ("xl/activeX/", "ActiveX 控件 ActiveX controls"),
    ("xl/model/", "数据模型 data model"),
)
_SHEET_REL = re.compile(r'<sheet [^>]*name="([^"]+)"[^>]*r:id="([^"]+)"')


def _sheet_parts(package: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name → its XML part (``xl/worksheets/sheet3.xml``), read from the package."""
    workbook = package.read("xl/workbook.xml").decode("utf-8", "replace")
    rels = package.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
    targets = dict(re.findall(r'Id="([^"]+)"[^>]*Target="([^"]+)"', rels))
    targets.update({k: v for v, k in re.findall(r'Target="([^"]+)"[^>]*Id="([^"]+)"', rels)})
    parts = {}
    for sheet, rid in _SHEET_REL.findall(workbook):
        if rid in targets:
            part = targets[rid].lstrip("/")
            parts[html.unescape(sheet)] = part if part.startswith("xl/") else f"xl/{part}"
    return parts


def preservation_warnings(path: Path, owned: Sequence[str] = (DASHBOARD, *TOOL_TABS)) -> list[str]:
    """Parts of the workbook that openpyxl would not carry over, named for the coordinator.

    Read from the package itself (openpyxl cannot report what it does not read): Excel
    extensions (``extLst``: sparklines, newer conditional formats), shapes in drawings, and
    part types openpyxl drops, on sheets the tool does not own.
    """
    found: list[str] = []
    try:
        with zipfile.ZipFile(path) as package:
            names = package.namelist()
            for sheet, part in _sheet_parts(package).items():
                if sheet in owned or part not in names:
                    continue
                xml = package.read(part).decode("utf-8", "replace")
                if "<extLst" in xml:
                    found.append(f"工作表“{sheet}”含 Excel 扩展（迷你图、新式条件格式等）/ sheet "
                                 f"{sheet!r} has Excel extensions (sparklines, newer formats)")
                if "<controls" in xml:
                    found.append(f"工作表“{sheet}”含控件 / sheet {sheet!r} has controls")
            for name in names:
                if name.startswith("xl/drawings/drawing") and name.endswith(".xml"):
                    xml = package.read(name).decode("utf-8", "replace")
                    if "<xdr:sp>" in xml or "<xdr:sp " in xml or "<xdr:grpSp" in xml:
                        found.append(f"绘图 {name} 含形状 / drawing {name} has shapes")
            for prefix, label in _LOSSY_PARTS:
                if any(n.startswith(prefix) for n in names):
                    found.append(f"工作簿含{label} / workbook has {label.split(' ', 1)[1]}")
    except (OSError, KeyError, zipfile.BadZipFile):
        return found
    return found


_EMPTY_SHEET = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>'
)


def _load(path: Path, replaced: Sequence[str]) -> Workbook:
    """The workbook as openpyxl sees it, except that the sheets about to be deleted and
    written again are loaded empty: parsing their ~50,000 old cells was most of the load
    time (1.0 of 1.1 s at 500 files) and every one of them was thrown away."""
    is_macro = path.suffix.lower() in (".xlsm", ".xltm")
    source: Path | io.BytesIO = path
    with zipfile.ZipFile(path) as package:
        parts = _sheet_parts(package)
        emptied = {parts[name] for name in replaced if name in parts}
        if emptied:
            source = io.BytesIO()
            # Stored, not deflated: openpyxl reads it once, straight from memory.
            with zipfile.ZipFile(source, "w", zipfile.ZIP_STORED) as copy_:
                for item in package.infolist():
                    data = _EMPTY_SHEET if item.filename in emptied else package.read(item)
                    copy_.writestr(item.filename, data)
            source.seek(0)
    return load_workbook(source, keep_vba=is_macro, keep_links=True, rich_text=True)


# --------------------------------------------------------------------------- writing cells


class _Styles:
    """Each distinct cell style of the tabs, built once per workbook and then copied.

    Setting ``cell.font``/``fill``/``border``/``alignment`` hashes the style object into
    the workbook's style lists on every cell; at 500 files that was 3.9 s of a 6.4 s render
    (14.7 s of 20.5 s on a workbook that already had the tabs). A style array copied from
    the first cell styled the slow way is the same style at no cost.
    """

    def __init__(self) -> None:
        self._arrays: dict[tuple, Any] = {}

    def apply(self, cell: Any, key: tuple, **attributes: Any) -> None:
        found = self._arrays.get(key)
        if found is not None:
            cell._style = copy(found)
            return
        for name, value in attributes.items():
            setattr(cell, name, value)
        self._arrays[key] = copy(cell._style)


_TITLE = {"font": _TITLE_FONT}
_BLOCK_TITLE = {"font": _BLOCK_FONT}
_NOTE = {"font": _NOTE_FONT}
_HEADER = {"font": _HEADER_FONT, "fill": _HEADER_FILL, "alignment": _HEADER_ALIGN, "border": _BORDER}


def _write_value(
    ws: Worksheet, row: int, col: int, value: Any, styles: _Styles | None = None,
    key: tuple = (), **attributes: Any,
) -> Any:
    cell = ws.cell(row=row, column=col)
    # The style goes first: text that looks like a formula gets a quote prefix, which is
    # part of the same style array and must not be overwritten by the copy.
    if styles is not None and key:
        styles.apply(cell, key, **attributes)
    if value is None:
        return cell
    if isinstance(value, str):
        set_text_cell(cell, value)
    else:
        cell.value = value
    return cell


DATA_LINE_HEIGHT = 15.0


def _wrapped_lines(value: object, width: float) -> int:
    """Lines a wrapped text needs in a column ``width`` characters wide (CJK counts double)."""
    if not isinstance(value, str) or not value:
        return 1
    display = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in value)
    return max(1, math.ceil(display / max(width - 1, 1)))


def _write_block(ws: Worksheet, placement: BlockPlacement, styles: _Styles) -> None:
    block = placement.block
    _write_value(ws, placement.title_row, placement.first_col, block.title, styles, ("block",), **_BLOCK_TITLE)
    for i, column in enumerate(block.columns):
        _write_value(ws, placement.header_row, placement.first_col + i, column.header(), styles,
                     ("header",), **_HEADER)
    ws.row_dimensions[placement.header_row].height = HEADER_ROW_HEIGHT
    if not block.rows:
        _write_value(ws, placement.first_row, placement.first_col, block.empty_text, styles, ("note",), **_NOTE)
        return
    wrap_columns = {i for i, c in enumerate(block.columns) if c.width >= 30 and c.kind == "text"}
    for r, row in enumerate(block.rows):
        sheet_row = placement.first_row + r
        lines = max((_wrapped_lines(row[i], block.columns[i].width) for i in wrap_columns), default=1)
        if lines > 1:
            # Same reason as the header rows: LibreOffice keeps the default height on load.
            ws.row_dimensions[sheet_row].height = DATA_LINE_HEIGHT * lines
        for i, column in enumerate(block.columns):
            value = row[i]
            fmt = cell_number_format(block, row, column)
            if not fmt or value is None or isinstance(value, str):
                fmt = None
            wrap = i in wrap_columns
            attributes: dict[str, Any] = {"border": _BORDER}
            if fmt:
                attributes["number_format"] = fmt
            if wrap:
                attributes["alignment"] = _WRAP_TOP
            _write_value(ws, sheet_row, placement.first_col + i, value, styles, ("data", fmt, wrap), **attributes)
    _conditional_formats(ws, placement)


def _conditional_formats(ws: Worksheet, placement: BlockPlacement) -> None:
    block = placement.block
    first, last = placement.first_row, placement.last_row
    if block.status_column and block.status_colours:
        letter = get_column_letter(placement.first_col + block.index(block.status_column))
        area = f"{letter}{first}:{letter}{last}"
        for text, colour in block.status_colours.items():
            fill = PatternFill("solid", start_color=colour, end_color=colour, bgColor=colour)
            quoted = '"' + text.replace('"', '""') + '"'
            ws.conditional_formatting.add(area, CellIsRule(operator="equal", formula=[quoted], fill=fill))
    for key in block.bar_columns:
        letter = get_column_letter(placement.first_col + block.index(key))
        ws.conditional_formatting.add(
            f"{letter}{first}:{letter}{last}",
            DataBarRule(start_type="num", start_value=0, end_type="num", end_value=1,
                        color=_BAR_COLOUR, showValue=True),
        )


def _add_chart(ws: Worksheet, placement: ChartPlacement, lay: Layout) -> None:
    spec = placement.chart
    source = lay.block(spec.block)
    block = source.block
    start, stop = spec.rows or (0, len(block.rows))
    if stop <= start:
        return
    first, last = source.data_rows(start, stop)
    chart = BarChart() if spec.kind == "bar" else LineChart()
    if spec.kind == "bar":
        chart.type = "col"
        chart.grouping = "clustered"
    chart.title = spec.title
    chart.y_axis.title = spec.y_title or None
    chart.x_axis.title = spec.x_title or None
    # openpyxl ≥ 3.1 hides axes unless told otherwise; LibreOffice and Excel then draw none.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.width, chart.height = spec.width_cm, spec.height_cm
    for series in spec.series:
        col = source.first_col + block.index(series.column)
        values = Reference(ws, min_col=col, min_row=first, max_row=last)
        item = ChartSeries(values, title=series.title)
        if spec.kind == "line":
            item.smooth = False
            if series.dashed:
                item.graphicalProperties.line.dashStyle = "dash"
        chart.series.append(item)
    cat_col = source.first_col + block.index(spec.category_column)
    chart.set_categories(Reference(ws, min_col=cat_col, min_row=first, max_row=last))
    ws.add_chart(chart, f"{get_column_letter(placement.col)}{placement.row}")


def _print_setup(ws: Worksheet, lay: Layout, tab: Tab) -> None:
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = False
    if tab.origin_row == 1 and lay.blocks:
        header = lay.blocks[0].header_row
        ws.print_title_rows = f"{header}:{header}"


def _fill_tab(ws: Worksheet, tab: Tab, styles: _Styles) -> int:
    lay = layout(tab)
    _write_value(ws, lay.title_row, 1, tab.title, styles, ("title",), **_TITLE)
    for row, note in zip(lay.note_rows, tab.notes, strict=True):
        _write_value(ws, row, 1, note, styles, ("note",), **_NOTE)
    for placement in lay.blocks:
        _write_block(ws, placement, styles)
    for index, width in enumerate(tab.column_widths(), start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    for placement in lay.charts:
        _add_chart(ws, placement, lay)
    if tab.freeze_header and lay.blocks:
        ws.freeze_panes = f"A{lay.blocks[0].header_row + 1}"
    _print_setup(ws, lay, tab)
    return sum(len(p.block.rows) for p in lay.blocks)


# --------------------------------------------------------------------------- the dashboard region


def _clear_region(ws: Worksheet, first_row: int) -> None:
    """Empty the tool's region of 总览: cells, merged cells, conditional formats, charts,
    row heights; the shell's rows above it are not touched."""
    for key in [k for k in ws._cells if k[0] >= first_row]:
        del ws._cells[key]
    for merged in list(ws.merged_cells.ranges):
        if merged.max_row >= first_row:
            ws.merged_cells.remove(merged)
    for row in [r for r in ws.row_dimensions if r >= first_row]:
        del ws.row_dimensions[row]
    kept = type(ws.conditional_formatting)()
    for area in ws.conditional_formatting:
        if all(cell_range.min_row < first_row for cell_range in area.sqref.ranges):
            for rule in area.rules:
                kept.add(str(area.sqref), rule)
    ws.conditional_formatting = kept
    ws._charts = []
    # The shell sets grouped widths (C:H); the region sets each column's own width, and two
    # overlapping <col> ranges make Excel "repair" the file, so ranges are split first.
    for letter in list(ws.column_dimensions):
        dim = ws.column_dimensions[letter]
        if dim.min and dim.max and dim.max > dim.min:
            for index in range(dim.min, dim.max + 1):
                single = ws.column_dimensions[get_column_letter(index)]
                single.width = dim.width
                single.min = single.max = index
            dim.max = dim.min


def _dashboard_sheet(wb: Workbook) -> Worksheet:
    if DASHBOARD in wb.sheetnames:
        return wb[DASHBOARD]
    return wb.create_sheet(DASHBOARD, 0)


def _replace_sheet(wb: Workbook, name: str, default_index: int) -> Worksheet:
    if name in wb.sheetnames:
        index = wb.sheetnames.index(name)
        wb.remove(wb[name])
    else:
        index = min(default_index, len(wb.sheetnames))
    return wb.create_sheet(name, index)


def write_tabs(wb: Workbook, tabs: Sequence[Tab]) -> dict[str, int]:
    """Write ``tabs`` into an open openpyxl workbook; returns data rows per tab."""
    rows: dict[str, int] = {}
    styles = _Styles()  # style arrays index this workbook's style lists: one cache per workbook
    for tab in tabs:
        if tab.name == DASHBOARD:
            ws = _dashboard_sheet(wb)
            _clear_region(ws, tab.origin_row)
        else:
            after = wb.sheetnames.index(DASHBOARD) + 1 if DASHBOARD in wb.sheetnames else 0
            order = [t for t in TOOL_TABS if t in wb.sheetnames or t == tab.name]
            position = after + order.index(tab.name) if tab.name in order else len(wb.sheetnames)
            ws = _replace_sheet(wb, tab.name, position)
        rows[tab.name] = _fill_tab(ws, tab, styles)
    return rows


# --------------------------------------------------------------------------- the file


def _backup(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.copy2(path, target)
    old = sorted(folder.glob(f"{path.stem}.*{path.suffix}"))
    for stale in old[:-BACKUPS_KEPT]:
        stale.unlink(missing_ok=True)
    return target


def render_tabs(path: Path, tabs: Sequence[Tab], *, backup_dir: Path | None = None) -> RenderReport:
    """Write ``tabs`` into the closed workbook at ``path`` (which must exist), atomically.

    Raises :class:`WorkbookOpenError` (and writes nothing) while Excel has it open.
    """
    path = Path(path)
    check_not_open_in_excel(path)
    if not path.is_file():
        raise FileNotFoundError(f"找不到工作簿 / workbook not found: {path}")
    report = RenderReport(path=path)
    report.warnings = preservation_warnings(path)
    wb = _load(path, [t.name for t in tabs if t.name != DASHBOARD])
    report.rows = write_tabs(wb, tabs)
    report.tabs = [t.name for t in tabs]
    if backup_dir is not None:
        report.backup = _backup(path, backup_dir)
    check_not_open_in_excel(path)  # it may have been opened while we were working
    with atomic_save(path) as tmp:
        wb.save(tmp)
    return report
