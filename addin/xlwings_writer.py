"""Write the output tabs (:mod:`plan_tracker.tabs`) into an *open* workbook through xlwings.

The same code serves desktop Excel (``RunPython``, COM) and xlwings Server (Office.js), so it
keeps to what the remote engine can do: it never reads a format back and never relies on
seeing its own writes (no ``expand()``, no ``used_range`` after writing). Every range is
sized from :func:`plan_tracker.tabs.layout`; values go out as one ``range.value = 2-D list``
per block; number formats and status colours as one ``number_format`` / ``color`` per run of
equal cells in a column.

What is replaced and what is kept (as :mod:`plan_tracker.render` does for a closed file): the
tool's own sheets (:data:`~plan_tracker.tabs.TOOL_TABS`) are deleted and added again after
``总览``; on ``总览`` only the tool's region (rows from
:data:`~plan_tracker.tabs.DASHBOARD_FIRST_ROW`, columns A to
:data:`~plan_tracker.tabs.DASHBOARD_LAST_COLUMN`) is cleared and written, so the title, the
period cell ``B3`` and the buttons stay. Charts and data bars are left to the openpyxl
writer: xlwings' chart API differs between engines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import xlwings as xw
from plan_tracker.tabs import (
    DASHBOARD,
    DASHBOARD_LAST_COLUMN,
    TOOL_TABS,
    Block,
    BlockPlacement,
    Tab,
    cell_number_format,
    layout,
)
from plan_tracker.xlsxsafe import looks_like_formula, safe_cell_text

__all__ = ["HEADER_FILL", "block_cells", "cell_text", "format_runs", "status_runs", "write_tabs"]

HEADER_FILL = "#DDEBF7"
Progress = Callable[[str], None]


def cell_text(value: object) -> object:
    """A value as it must be written: text that looks like a formula gets Excel's leading
    apostrophe, so a remark such as ``=1+1`` from a submission stays text."""
    if isinstance(value, str):
        text = safe_cell_text(value)
        return "'" + text if looks_like_formula(text) else text
    return value


def _runs(values: Sequence[object]) -> Iterator[tuple[int, int, object]]:
    """(start, stop, value) of runs of equal, non-None values."""
    start = 0
    while start < len(values):
        stop = start + 1
        while stop < len(values) and values[stop] == values[start]:
            stop += 1
        if values[start] is not None:
            yield start, stop, values[start]
        start = stop


def format_runs(block: Block) -> Iterator[tuple[int, int, int, str]]:
    """(column index, first row, stop row, number format) of every formatted number run."""
    for i, column in enumerate(block.columns):
        formats = [
            cell_number_format(block, row, column)
            if row[i] is not None and not isinstance(row[i], str)
            else None
            for row in block.rows
        ]
        for start, stop, fmt in _runs(formats):
            yield i, start, stop, fmt


def status_runs(block: Block) -> Iterator[tuple[int, int, int, str]]:
    """(column index, first row, stop row, RGB hex) of the status fills of a block."""
    if not block.status_column or not block.status_colours:
        return
    i = block.index(block.status_column)
    colours = [block.status_colours.get(row[i]) if isinstance(row[i], str) else None for row in block.rows]
    for start, stop, colour in _runs(colours):
        yield i, start, stop, colour


def _is_remote(book: xw.Book) -> bool:
    return book.app.engine.type == "remote"


def _column_width(book: xw.Book, characters: float) -> float:
    # Desktop Excel measures widths in characters, Office.js in points; the tab model uses
    # characters (Excel: pixels = 7 per character + 5, at 96 dpi, 0.75 pt per pixel).
    return (characters * 7 + 5) * 0.75 if _is_remote(book) else characters


def _write_block(sheet: xw.Sheet, placement: BlockPlacement) -> None:
    block = placement.block
    first_col, last_col = placement.first_col, placement.last_col
    sheet.range((placement.title_row, first_col)).value = cell_text(block.title)
    sheet.range((placement.title_row, first_col)).font.bold = True
    grid = block_cells(placement)
    sheet.range((placement.header_row, first_col), (placement.last_row, last_col)).value = grid
    header = sheet.range((placement.header_row, first_col), (placement.header_row, last_col))
    header.color = HEADER_FILL
    header.font.bold = True
    for i, start, stop, fmt in format_runs(block):
        col = first_col + i
        sheet.range((placement.first_row + start, col), (placement.first_row + stop - 1, col)).number_format = fmt
    for i, start, stop, colour in status_runs(block):
        col = first_col + i
        sheet.range((placement.first_row + start, col), (placement.first_row + stop - 1, col)).color = "#" + colour


def _fill(book: xw.Book, sheet: xw.Sheet, tab: Tab) -> int:
    lay = layout(tab)
    head = [[cell_text(tab.title)], *([cell_text(note)] for note in tab.notes)]
    sheet.range((lay.title_row, 1), (lay.title_row + len(head) - 1, 1)).value = head
    sheet.range((lay.title_row, 1)).font.bold = True
    for placement in lay.blocks:
        _write_block(sheet, placement)
    for index, width in enumerate(tab.column_widths(), start=1):
        # Addressed in the tool's first row: a width is the column's, but no action should
        # point into the shell's rows of 总览.
        sheet.range((tab.origin_row, index)).column_width = _column_width(book, width)
    return sum(len(p.block.rows) for p in lay.blocks)


def _sheet_names(book: xw.Book) -> list[str]:
    return [s.name for s in book.sheets]


def _dashboard(book: xw.Book, tab: Tab) -> xw.Sheet:
    names = _sheet_names(book)
    if DASHBOARD not in names:
        return book.sheets.add(DASHBOARD, before=book.sheets[0])
    sheet = book.sheets[DASHBOARD]
    # Clear the tool's region as far down as anything was there before this run (the sheet's
    # used range as the workbook was sent) or will be now; the shell's rows stay.
    used_last = sheet.used_range.last_cell.row
    last = max(used_last, layout(tab).last_row, tab.origin_row)
    sheet.range((tab.origin_row, 1), (last, DASHBOARD_LAST_COLUMN)).clear()
    return sheet


def _tool_sheet(book: xw.Book, name: str) -> xw.Sheet:
    names = _sheet_names(book)
    if name in names:
        book.sheets[name].delete()
        names.remove(name)
    # Tool tabs sit right after 总览, in TOOL_TABS order, before the coordinator's own sheets.
    anchor = DASHBOARD if DASHBOARD in names else None
    for earlier in TOOL_TABS[: TOOL_TABS.index(name)] if name in TOOL_TABS else ():
        if earlier in names:
            anchor = earlier
    if anchor is None:
        return book.sheets.add(name, before=book.sheets[0])
    return book.sheets.add(name, after=book.sheets[anchor])


def write_tabs(book: xw.Book, tabs: Sequence[Tab], progress: Progress | None = None) -> dict[str, int]:
    """Write ``tabs`` into ``book``; returns the data rows written per tab."""
    written: dict[str, int] = {}
    for number, tab in enumerate(tabs, start=1):
        if progress:
            progress(f"正在写入 {tab.name}（{number}/{len(tabs)}）/ writing {tab.name}")
        sheet = _dashboard(book, tab) if tab.name == DASHBOARD else _tool_sheet(book, tab.name)
        written[tab.name] = _fill(book, sheet, tab)
    return written


def block_cells(placement: BlockPlacement) -> list[list[Any]]:
    """The 2-D list :func:`write_tabs` writes for a block (header row first)."""
    block = placement.block
    if not block.rows:
        return [[c.header() for c in block.columns], [block.empty_text] + [None] * (len(block.columns) - 1)]
    return [[c.header() for c in block.columns], *([cell_text(v) for v in row] for row in block.rows)]
