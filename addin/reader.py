"""Read one submitted file into rows with file, sheet and A1 cell, and the file-level problems.

Order of work, each step bounded:

1. :func:`plan_tracker.xlsxsafe.inspect_file` — type by content, ZIP sizes and ratios, no
   DTD in any XML part, before anything is parsed; the small parts are kept, so nothing is
   inflated twice by us (calamine reads the file itself).
2. A streaming expat scan (defusedxml's guards, :func:`plan_tracker.xlsxsafe.expat_scan`) of
   each worksheet just before calamine reads it: row and column extent (a sheet past
   :data:`MAX_ROWS` rows or with a cell past :data:`MAX_ROW_INDEX` is refused before calamine
   builds its dense grid) and, for the 填报 sheet, which cells hold formulas and whether they
   have a cached value, cell styles (a % number format means a stored 0.65 was seen as 65%),
   and whether the sheet is still protected. ``_meta`` needs only the extent; ``说明`` is
   never read. The sheet list and the percent styles are parsed once per distinct part
   (the files of one template generation share them byte for byte).
3. python-calamine for values (cached values of formulas), then the template's metadata and
   signature, the 填报 sheet located by name or, if renamed, by its header row; columns by
   header text; every cell normalised by :mod:`plan_tracker.normalise`.

Value problems that the schema decides (ranges, duplicates, ids, required rows, outliers)
are left to :mod:`plan_tracker.schemas.submission`; this module reports what only reading
can see (file type, template identity, layout, what cannot be parsed).
"""

from __future__ import annotations

import functools
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_calamine as calamine
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string, get_column_letter
from plan_tracker import normalise
from plan_tracker.catalogue import Catalogue
from plan_tracker.errors import Bi, Problem, problem
from plan_tracker.periods import Period, PeriodError, parse_period
from plan_tracker.templates import (
    COLUMN_KEYS,
    COLUMNS,
    INPUT_HEADER_FIELDS,
    LOCKED_KEYS,
    META_KEYS,
    SHEET_FORM,
    SHEET_HELP,
    SHEET_META,
    department_indicators,
    verify,
)
from plan_tracker.xlsxsafe import (
    MAX_ROWS,
    FileCheck,
    HostileFile,
    expat_scan,
    inspect_file,
    parse_xml,
    part_bytes,
)

MAX_ROW_INDEX = 20_000  # a cell further down than this is refused (calamine's grid is dense)
MAX_COLUMNS = 200
HEADER_SEARCH_ROWS = 60
NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
NS_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_PERCENT_BUILTIN = {9, 10}
_PERIOD_IN_NAME = re.compile(r"(20\d{2})(?:[-_.]?([Qq][1-4])|[-_.](\d{1,2})(?!\d)|年(\d{1,2})月|年第?([1-4一二三四])季)")

# Row kinds in the frame beside normalise's: a template row that is not in the file.
ABSENT = "absent"


@dataclass
class CellInfo:
    style: int = 0
    formula: str | None = None
    has_value: bool = False


@dataclass
class SheetScan:
    name: str
    part: str
    state: str
    rows: int = 0
    max_row: int = 0
    max_col: int = 0
    protected: bool = False
    cells: dict[str, CellInfo] = field(default_factory=dict)  # only cells with a formula or style
    cells_scanned: bool = True  # False: only the extent was checked (``_meta``)


@dataclass
class SubmissionRead:
    """What reading one file found. ``rows`` are the frame rows (dicts) for the schema."""

    path: Path
    file: str
    problems: list[Problem] = field(default_factory=list)
    department: str | None = None
    period: str | None = None
    template_id: str | None = None
    sheet: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    openable: bool = False  # safe to open with openpyxl for the feedback copy

    @property
    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)


# --------------------------------------------------------------------------- XML scan


class WorkbookParts:
    """The parts of one checked file that reading needs, each inflated once.

    Sheets are scanned only when they are about to be read (calamine's grid is dense, so
    a sheet must pass the extent guard first): the 填报 sheet (or the sheet found in its
    place) with every cell, ``_meta`` for its extent only; ``说明`` is never read, so it
    needs no more than the ZIP checks of :func:`inspect_file`.
    """

    def __init__(self, path: Path, check: FileCheck) -> None:
        self.path = path
        self._check = check
        workbook = self.part("xl/workbook.xml")
        rels = self.part(_WORKBOOK_RELS) if _WORKBOOK_RELS in check.members else None
        self.sheets = _workbook_sheets(workbook, rels)
        self.names = [name for name, _, _ in self.sheets]
        styles = self.part(_STYLES) if _STYLES in check.members else None
        self.percent_styles = _percent_styles(styles) if styles is not None else frozenset()
        self._scans: dict[str, SheetScan] = {}

    def part(self, name: str) -> bytes:
        if name in self._check.parts:
            return self._check.parts[name]
        with zipfile.ZipFile(self.path) as archive:
            return part_bytes(archive, name)

    def scan(self, name: str, *, cells: bool = True) -> SheetScan:
        """Scan sheet ``name`` (extent guard; with ``cells``, also formulas, styles and
        protection); raises :class:`HostileFile` for a sheet calamine must not read."""
        done = self._scans.get(name)
        if done is not None and (done.cells_scanned or not cells):
            return done
        _, part, state = next(s for s in self.sheets if s[0] == name)
        scan = SheetScan(name=name, part=part, state=state, cells_scanned=cells)
        scanner = _SheetScanner(scan, cells)
        if part in self._check.parts:
            expat_scan(self._check.parts[part], part, scanner.start, scanner.end, scanner.setup)
        else:
            with zipfile.ZipFile(self.path) as archive:
                if part not in archive.namelist():
                    raise HostileFile("corrupt-file", f"{name}: 缺少工作表部件 / missing sheet part {part}")
                with archive.open(part) as handle:
                    expat_scan(handle, part, scanner.start, scanner.end, scanner.setup)
        self._scans[name] = scan
        return scan


_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
_STYLES = "xl/styles.xml"


@functools.lru_cache(maxsize=64)
def _workbook_sheets(workbook_xml: bytes, rels_xml: bytes | None) -> tuple[tuple[str, str, str], ...]:
    """(sheet name, part path, state) in workbook order. Cached by content: the files of
    one template generation share these parts byte for byte."""
    workbook = parse_xml(workbook_xml, "xl/workbook.xml")
    targets: dict[str, str] = {}
    if rels_xml is not None:
        rels = parse_xml(rels_xml, _WORKBOOK_RELS)
        for rel in rels.iter(f"{NS_PKG_REL}Relationship"):
            target = rel.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            targets[rel.get("Id", "")] = target
    out = []
    for sheet in workbook.iter(f"{NS_MAIN}sheet"):
        rid = sheet.get(f"{NS_REL}id", "")
        out.append((sheet.get("name", ""), targets.get(rid, ""), sheet.get("state", "visible")))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _percent_styles(styles_xml: bytes) -> frozenset[int]:
    """Cell style indexes whose number format shows a percentage (cached by content)."""
    styles = parse_xml(styles_xml, _STYLES)
    percent_fmts = set(_PERCENT_BUILTIN)
    for fmt in styles.iter(f"{NS_MAIN}numFmt"):
        code = fmt.get("formatCode", "")
        # A % outside quotes and escapes is a percent format ("0.0%"), "0\%" or "0"%"" is not.
        bare = re.sub(r'"[^"]*"|\\.', "", code)
        if "%" in bare:
            percent_fmts.add(int(fmt.get("numFmtId", "-1")))
    found = set()
    xfs = styles.find(f"{NS_MAIN}cellXfs")
    if xfs is not None:
        for index, xf in enumerate(xfs.findall(f"{NS_MAIN}xf")):
            if int(xf.get("numFmtId", "0")) in percent_fmts:
                found.add(index)
    return frozenset(found)


class _SheetScanner:
    """expat handlers for one worksheet part. Element names are matched without their
    prefix, as calamine matches them, so a prefixed part cannot slip past the guard."""

    def __init__(self, scan: SheetScan, cells: bool) -> None:
        self.scan = scan
        self.cells = cells
        self.row = 0
        self.col = 0
        self.row_has_cells = False
        self.cell: CellInfo | None = None
        self.ref = ""
        self.parser: Any = None
        self.text: list[str] = []
        self.shared = False

    def setup(self, parser: Any) -> None:
        self.parser = parser

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = name.rpartition(":")[2]
        scan = self.scan
        if tag == "c":
            ref = attrs.get("r")
            if ref:
                row, col = _position(scan.name, ref)
            else:
                # calamine places a cell without a reference after the previous one
                row, col = self.row, self.col + 1
            self.col = col
            self.row_has_cells = True
            if row > MAX_ROW_INDEX or col > MAX_COLUMNS:
                raise HostileFile("too-many-rows", f"{scan.name}: 单元格 / cell {ref or _a1(row - 1, col - 1)} 超出 / beyond the limit")
            if row > scan.max_row:
                scan.max_row = row
            if col > scan.max_col:
                scan.max_col = col
            if self.cells:
                style = attrs.get("s")
                self.cell = CellInfo(style=_int(scan.name, style) if style else 0)
                self.ref = ref or _a1(row - 1, col - 1)
        elif tag == "row":
            number = attrs.get("r")
            self.row = _int(scan.name, number) if number else self.row + 1
            if self.row > MAX_ROW_INDEX:
                raise HostileFile("too-many-rows", f"{scan.name}: 第 {self.row} 行超出 / row beyond the limit")
            self.col = 0
            self.row_has_cells = False
        elif tag == "sheetProtection":
            scan.protected = attrs.get("sheet", "0") in ("1", "true")
        elif tag == "dimension":
            _check_dimension(scan.name, attrs.get("ref", ""))
        elif self.cell is None:
            return
        elif tag == "f":
            self.cell.formula = ""
            self.shared = attrs.get("t") == "shared"
            self._collect()
        elif tag == "v":
            self._collect()
        elif tag == "is":
            self.cell.has_value = True

    def _collect(self) -> None:
        self.text = []
        self.parser.CharacterDataHandler = self.text.append

    def end(self, name: str) -> None:
        tag = name.rpartition(":")[2]
        if tag == "c":
            cell = self.cell
            if cell is not None and (cell.formula is not None or cell.style):
                self.scan.cells[self.ref] = cell
            self.cell = None
        elif tag == "row":
            if self.row_has_cells:
                self.scan.rows += 1
                if self.scan.rows > MAX_ROWS:
                    raise HostileFile("too-many-rows", f"{self.scan.name}: > {MAX_ROWS} 行 / rows")
        elif self.cell is None:
            return
        elif tag == "f":
            self.parser.CharacterDataHandler = None
            text = "".join(self.text)
            self.cell.formula = text or ("(共享公式 / shared)" if self.shared else "")
        elif tag == "v":
            self.parser.CharacterDataHandler = None
            self.cell.has_value = bool("".join(self.text))


def _position(sheet: str, ref: str) -> tuple[int, int]:
    try:
        letters, row = coordinate_from_string(ref)
        return row, column_index_from_string(letters)
    except ValueError as exc:
        raise HostileFile("corrupt-file", f"{sheet}: 单元格引用 / cell ref {ref!r}") from exc


def _int(sheet: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise HostileFile("corrupt-file", f"{sheet}: {text!r}") from exc


def _check_dimension(name: str, ref: str) -> None:
    last = ref.split(":")[-1]
    try:
        letters, row = coordinate_from_string(last)
        col = column_index_from_string(letters)
    except ValueError:
        return  # a wrong dimension is not a reason to refuse; the real extent is counted
    if row > 1_048_576 or col > 16_384:
        raise HostileFile("corrupt-file", f"{name}: dimension {ref}")


# --------------------------------------------------------------------------- reading


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return normalise.shown(value)
    return str(value).strip()


def _grid(workbook: calamine.CalamineWorkbook, book: WorkbookParts, name: str, *, cells: bool = True) -> list[list[Any]]:
    """The sheet's values; its scan (the extent guard) runs first, so calamine never builds
    the dense grid of a sheet with a cell a million rows down."""
    book.scan(name, cells=cells)
    rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
    # calamine gives "" for an empty cell; the normaliser wants None (blank ≠ empty text).
    return [[None if v == "" else v for v in row] for row in rows]


def _a1(row0: int, col0: int) -> str:
    return f"{get_column_letter(col0 + 1)}{row0 + 1}"


def _find_header(grid: list[list[Any]]) -> tuple[int, dict[str, int], list[int]] | None:
    """(header row, column key → index, unrecognised non-empty header columns)."""
    for r, row in enumerate(grid[:HEADER_SEARCH_ROWS]):
        labels = [_text(v) for v in row]
        if not any(t.startswith(COLUMNS["id"][0]) for t in labels):
            continue
        if not any(t.startswith(COLUMNS["value"][0]) for t in labels):
            continue
        found: dict[str, int] = {}
        extra = []
        for c, text in enumerate(labels):
            key = next((k for k in COLUMN_KEYS if k not in found and text.startswith(COLUMNS[k][0])), None)
            if key is not None:
                found[key] = c
            elif text:
                extra.append(c)
        return r, found, extra
    return None


def _header_fields(grid: list[list[Any]], header_row: int) -> dict[str, tuple[str, str]]:
    """Label → (value text, A1 of the value) for the fields above the header row."""
    out: dict[str, tuple[str, str]] = {}
    for r in range(min(header_row, len(grid))):
        row = grid[r]
        for c, value in enumerate(row):
            label = _text(value)
            for name in ("报告期", "模板编号", *INPUT_HEADER_FIELDS):
                if label.startswith(name) and name not in out:
                    cell = row[c + 1] if c + 1 < len(row) else None
                    out[name] = (_text(cell), _a1(r, c + 1))
    return out


def _same(expected: object, found: object) -> bool:
    if expected is None or expected == "":
        return found is None or _text(found) == ""
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(found, (int, float)) and not isinstance(found, bool):
            return math.isclose(float(expected), float(found), rel_tol=1e-9, abs_tol=1e-9)
        return False
    return _text(expected) == _text(found)


def _meta(grid: list[list[Any]]) -> dict[str, str]:
    out = {}
    for row in grid:
        if len(row) >= 2 and isinstance(row[0], str) and row[0]:
            out[row[0]] = row[1] if isinstance(row[1], str) else _text(row[1])
    return out


def periods_in_name(name: str) -> list[Period]:
    found = []
    for match in _PERIOD_IN_NAME.finditer(name):
        year, quarter, month, cn_month, cn_quarter = match.groups()
        try:
            if quarter:
                found.append(parse_period(f"{year}-{quarter.upper()}"))
            elif month or cn_month:
                found.append(parse_period(f"{year}-{int(month or cn_month):02d}"))
            elif cn_quarter:
                found.append(parse_period(f"{year}年第{cn_quarter}季度"))
        except (PeriodError, ValueError):
            continue
    return found


class _Reject(Exception):
    """Stop reading this file: its problems are already recorded."""


def read_submission(path: Path, *, file: str, secret: bytes, catalogue: Catalogue) -> SubmissionRead:
    """Read one file; never raises for a bad file (its problems say what is wrong)."""
    result = SubmissionRead(path=Path(path), file=file)
    try:
        _read(result, secret, catalogue)
    except HostileFile as exc:
        result.problems.append(problem(exc.code, file, detail=exc.detail))
        result.openable = False
    except _Reject:
        pass
    return result


def _read(result: SubmissionRead, secret: bytes, catalogue: Catalogue) -> None:
    check = inspect_file(result.path)
    book = WorkbookParts(result.path, check)
    result.openable = True
    # From a file object, not a path: calamine cannot open names that are not valid UTF-8.
    with result.path.open("rb") as handle:
        try:
            workbook = calamine.CalamineWorkbook.from_filelike(handle)
        except Exception as exc:  # calamine raises its own error types for damaged parts
            result.openable = False
            raise HostileFile("corrupt-file", f"{type(exc).__name__}: {exc}") from exc
        try:
            payload = _check_metadata(result, workbook, book, secret, catalogue)
            _read_form(result, workbook, book, payload, catalogue)
        finally:
            workbook.close()


def _check_metadata(result, workbook, book: WorkbookParts, secret, catalogue) -> dict:
    file = result.file
    if SHEET_META not in book.names:
        result.problems.append(problem("not-a-template", file, detail=Bi("没有模板标识", "no template metadata")))
        raise _Reject
    meta = _meta(_grid(workbook, book, SHEET_META, cells=False))
    text, signature = meta.get("payload"), meta.get("signature")
    if not text or not signature:
        result.problems.append(problem("metadata-tampered", file, SHEET_META, detail=Bi("缺少签名", "payload or signature missing")))
        raise _Reject
    if not verify(secret, text, signature):
        result.problems.append(problem("signature-mismatch", file, SHEET_META))
        raise _Reject
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        result.problems.append(problem("metadata-tampered", file, SHEET_META, detail="payload"))
        raise _Reject from None
    edited = [k for k in META_KEYS if str(payload.get(k)) != str(meta.get(k))]
    if edited:
        result.problems.append(problem("metadata-tampered", file, SHEET_META, detail=f"{', '.join(edited)}"))
        raise _Reject
    result.department = payload["department"]
    result.period = payload["period"]
    result.template_id = payload["template_id"]
    if payload.get("format") != 1:
        result.problems.append(problem("template-outdated", file, detail=Bi(f"模板格式 {payload.get('format')}", f"format {payload.get('format')}")))
    current = {ind.id: ind.unit for ind in department_indicators(catalogue, result.department)}
    signed = {i: (payload["rows"].get(i) or [None, None])[1] for i in payload["indicators"]}
    if payload["catalogue_version"] != catalogue.version_hash and signed != current:
        result.problems.append(problem(
            "template-outdated", file,
            detail=Bi(
                f"指标目录已更新（模板版本 {payload['catalogue_version']}，当前 {catalogue.version_hash}）",
                f"the catalogue changed (template {payload['catalogue_version']}, now {catalogue.version_hash})",
            ),
        ))
    _check_name(result, catalogue)
    return payload


def _check_name(result: SubmissionRead, catalogue: Catalogue) -> None:
    """The file name is what a person reads: it must not say another department or period."""
    name = result.file
    expected = parse_period(result.period)
    others = [d for d in catalogue.departments() if d != result.department and d in name]
    if others and result.department not in name:
        result.problems.append(problem(
            "department-mismatch", name, expected=result.department,
            detail=Bi(f"文件名写的是 {others[0]}", f"the file name says {others[0]}"),
        ))
    wrong = [p for p in periods_in_name(name) if p.point != expected.point]
    if wrong:
        result.problems.append(problem(
            "period-mismatch", name, expected=Bi(expected.label_zh(), str(expected)),
            detail_period=wrong[0].label_zh(),
            detail=Bi(f"文件名写的是 {wrong[0].label_zh()}", f"the file name says {wrong[0]}"),
        ))


def _form_sheet(result, workbook, book: WorkbookParts) -> tuple[SheetScan, list[list[Any]], tuple]:
    if SHEET_FORM in book.names:
        grid = _grid(workbook, book, SHEET_FORM)
        found = _find_header(grid)
        if found is not None:
            return book.scan(SHEET_FORM), grid, found
    for name in book.names:
        if name in (SHEET_FORM, SHEET_META, SHEET_HELP):
            continue
        grid = _grid(workbook, book, name)
        found = _find_header(grid)
        if found is not None:
            result.problems.append(problem("sheet-renamed", result.file, name, detail=name))
            return book.scan(name), grid, found
    if SHEET_FORM in book.names:
        result.problems.append(problem("column-missing", result.file, SHEET_FORM, detail=Bi("指标编号”或“本期实际值", "指标编号 (id) or 本期实际值 (actual)")))
    else:
        result.problems.append(problem("sheet-missing", result.file))
    raise _Reject


def _read_form(result, workbook, book: WorkbookParts, payload, catalogue) -> None:
    file = result.file
    percent_styles = book.percent_styles
    scan, grid, (header_row, cols, extra_cols) = _form_sheet(result, workbook, book)
    sheet = scan.name
    result.sheet = sheet
    if not scan.protected:
        result.problems.append(problem("protection-removed", file, sheet))
    missing = [COLUMNS[k][0] for k in COLUMN_KEYS if k not in cols]
    if missing:
        result.problems.append(problem("column-missing", file, sheet, _a1(header_row, 0), detail="、".join(missing)))
        if "value" not in cols or "id" not in cols:
            raise _Reject
    for c in extra_cols:
        result.problems.append(problem("extra-column", file, sheet, _a1(header_row, c), detail=_text(grid[header_row][c])))
    _check_header_fields(result, grid, header_row, payload, catalogue)

    department, period = payload["department"], payload["period"]
    signed_rows: dict[str, list] = payload["rows"]
    tasks = set(payload.get("tasks", []))
    known_cols = set(cols.values())
    reported_extra: set[int] = set(extra_cols)
    seen: set[str] = set()
    for r in range(header_row + 1, len(grid)):
        row = grid[r]
        cell = lambda key, row=row: row[cols[key]] if key in cols and cols[key] < len(row) else None  # noqa: E731
        indicator_id = _text(cell("id"))
        raw = cell("value")
        for c, value in enumerate(row):
            if c not in known_cols and c not in reported_extra and value is not None and _text(value):
                reported_extra.add(c)
                result.problems.append(problem("extra-column", file, sheet, _a1(r, c), detail=_text(value)))
        if not indicator_id:
            if raw is not None and _text(raw):
                result.problems.append(problem("unattributed-value", file, sheet, _a1(r, cols["value"]), value=normalise.shown(raw)))
            elif any(v is not None and _text(v) for c, v in enumerate(row) if c in known_cols):
                first = next(c for c, v in enumerate(row) if c in known_cols and v is not None and _text(v))
                result.problems.append(problem("extra-content", file, sheet, _a1(r, first), detail=_text(row[first])))
            continue
        if indicator_id in signed_rows:
            for key, expected in zip(LOCKED_KEYS, signed_rows[indicator_id], strict=True):
                if key in cols and not _same(expected, cell(key)):
                    result.problems.append(problem(
                        "locked-cell-changed", file, sheet, _a1(r, cols[key]),
                        expected=normalise.shown(expected) if expected is not None else "",
                        value=normalise.shown(cell(key)),
                    ))
        ind = catalogue.get(indicator_id) if indicator_id in catalogue else None
        unit = ind.unit if ind else ""
        is_task = indicator_id in tasks or bool(ind and ind.is_task)
        value_a1 = _a1(r, cols["value"])
        info = scan.cells.get(value_a1)
        if info is not None and info.formula is not None:
            if not info.has_value or raw is None:
                result.problems.append(problem("formula-no-value", file, sheet, value_a1, value=f"={info.formula}"))
                raw = _FORMULA_NO_VALUE
            else:
                result.problems.append(problem("formula-used", file, sheet, value_a1, value=f"={info.formula}"))
        if raw is _FORMULA_NO_VALUE:
            parsed = normalise.Parsed(normalise.INVALID, code="formula-no-value")
        elif is_task:
            parsed = normalise.parse_task_state(raw)
        else:
            styled = info is not None and info.style in percent_styles
            parsed = normalise.parse_value(raw, unit, percent_styled=styled)
        if parsed.kind == normalise.INVALID and parsed.code != "formula-no-value":
            result.problems.append(problem(parsed.code, file, sheet, value_a1, value=parsed.shown, unit=unit or "—"))
        if parsed.kind == normalise.NOT_REPORTED:
            result.problems.append(problem("not-reported", file, sheet, value_a1, value=parsed.shown))
        note_value = cell("note") if "note" in cols else None
        note_a1 = _a1(r, cols["note"]) if "note" in cols else None
        note_info = scan.cells.get(note_a1) if note_a1 else None
        if note_info is not None and note_info.formula is not None and not note_info.has_value:
            result.problems.append(problem("formula-no-value", file, sheet, note_a1, value=f"={note_info.formula}"))
        seen.add(indicator_id)
        result.rows.append({
            "file": file,
            "sheet": sheet,
            "cell": value_a1,
            "row": r + 1,
            "department": department,
            "period": period,
            "indicator_id": indicator_id,
            "unit": unit,
            "is_task": is_task,
            "kind": parsed.kind,
            "value": parsed.value if parsed.value is not None else math.nan,
            "value_text": parsed.text,
            "note": normalise.parse_note(note_value),
            "shown": parsed.shown,
        })
    for indicator_id in payload["indicators"]:
        if indicator_id not in seen:
            ind = catalogue.get(indicator_id) if indicator_id in catalogue else None
            result.rows.append({
                "file": file, "sheet": sheet, "cell": None, "row": None, "department": department,
                "period": period, "indicator_id": indicator_id, "unit": ind.unit if ind else "",
                "is_task": indicator_id in tasks, "kind": ABSENT, "value": math.nan,
                "value_text": None, "note": None, "shown": "",
            })


_FORMULA_NO_VALUE = object()


def _check_header_fields(result, grid, header_row, payload, catalogue) -> None:
    file, sheet = result.file, result.sheet
    fields = _header_fields(grid, header_row)
    period = parse_period(payload["period"])
    locked = {"报告期": period.label_zh(), "模板编号": payload["template_id"]}
    for label, expected in locked.items():
        value, a1 = fields.get(label, ("", None))
        if a1 is None:
            continue
        if value != expected:
            try:
                typed = parse_period(value) if label == "报告期" else None
            except PeriodError:
                typed = None
            if typed is not None and typed.point != period.point:
                result.problems.append(problem(
                    "period-mismatch", file, sheet, a1, expected=Bi(period.label_zh(), str(period)),
                    detail_period=typed.label_zh(),
                    detail=Bi(f"报告期被改为 {value}", f"the period cell says {value}"),
                ))
            else:
                result.problems.append(problem("locked-cell-changed", file, sheet, a1, expected=expected, value=value))
    unit_text, unit_a1 = fields.get("填报单位", ("", None))
    department = payload["department"]
    if unit_text and department not in unit_text:
        others = [d for d in catalogue.departments() if d in unit_text]
        if others:
            result.problems.append(problem(
                "department-mismatch", file, sheet, unit_a1, expected=department,
                detail=Bi(f"填报单位填的是 {unit_text}", f"the department cell says {unit_text}"),
            ))
    for label in INPUT_HEADER_FIELDS:
        value, a1 = fields.get(label, ("", None))
        if not value:
            result.problems.append(problem("header-missing", file, sheet, a1, detail=label))
        else:
            result.header[label] = value
