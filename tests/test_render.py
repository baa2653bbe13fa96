"""Writing the tabs into the master workbook: numbers read back equal the engine's, the
coordinator's sheet and the VBA project survive, buttons stay bound, every tab prints."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest
from intake_helpers import uno_python
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from plan_tracker import service
from plan_tracker.project import Project
from plan_tracker.render import WorkbookOpenError, preservation_warnings, render_tabs
from plan_tracker.tabs import DASHBOARD, DASHBOARD_FIRST_ROW, TOOL_TABS, Tab, build_tabs, layout
from plan_tracker.workbook import BUTTONS, MACRO_MODULE, build_workbook, vba_modules
from python_calamine import CalamineWorkbook
from test_tabs import PERIOD, TODAY, make_project

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
OWN = "我的分析"  # the coordinator's own sheet


def add_coordinator_sheet(path: Path) -> None:
    """What a coordinator adds: formulas on the dashboard period, a SUM, a reference into a
    tool tab, styles, a merged title, a comment, a column width."""
    wb = openpyxl.load_workbook(path, keep_vba=True)
    ws = wb.create_sheet(OWN)
    ws["A1"] = "我的汇总"
    ws["A1"].font = Font(bold=True, color="C00000")
    ws.merge_cells("A1:C1")
    ws["A2"], ws["B2"] = "报告期", "=总览!B3"
    ws["A3"], ws["B3"] = "船舶海工目标", "=产业集群!H4"
    ws["A4"], ws["B4"] = 10, 20.5
    ws["B5"] = "=SUM(A4:B4)"
    ws["B5"].fill = PatternFill("solid", start_color="FFFF00", end_color="FFFF00")
    ws["B5"].number_format = "0.00"
    ws["C5"] = "=ReportPeriod"
    ws["C5"].comment = Comment("自己的批注", "协调员")
    ws.column_dimensions["A"].width = 22
    wb.save(path)


def sheet_parts(path: Path) -> dict[str, str]:
    """Sheet name → its XML part in the package."""
    with zipfile.ZipFile(path) as package:
        workbook = package.read("xl/workbook.xml").decode()
        rels = package.read("xl/_rels/workbook.xml.rels").decode()
    targets = {}
    for rel in re.findall(r"<Relationship [^>]*>", rels):
        rid = re.search(r'Id="([^"]+)"', rel).group(1)
        targets[rid] = re.search(r'Target="([^"]+)"', rel).group(1).lstrip("/")
    parts = {}
    for sheet in re.findall(r"<sheet [^>]*>", workbook):
        name = re.search(r'name="([^"]+)"', sheet).group(1)
        rid = re.search(r'r:id="([^"]+)"', sheet).group(1)
        target = targets[rid]
        parts[name] = target if target.startswith("xl/") else f"xl/{target}"
    return parts


def read_part(path: Path, part: str) -> bytes:
    with zipfile.ZipFile(path) as package:
        return package.read(part)


def cell_snapshot(path: Path, sheet: str) -> dict:
    ws = openpyxl.load_workbook(path, keep_vba=True)[sheet]
    cells = {
        c.coordinate: (c.value, c.data_type, c.number_format, c.font.b, c.font.color.rgb if c.font.color else None,
                       c.fill.fgColor.rgb, c.comment.text if c.comment else None)
        for row in ws.iter_rows() for c in row if c.value is not None or c.has_style
    }
    return {"cells": cells, "merged": sorted(str(r) for r in ws.merged_cells.ranges),
            "width_A": ws.column_dimensions["A"].width}


class Rendered:
    def __init__(self, root: Path) -> None:
        self.project: Project = make_project(root / "proj")
        self.path = self.project.root / "plan_tracker.xlsm"
        build_workbook(self.path, period=PERIOD)
        add_coordinator_sheet(self.path)
        self.before = self.path.read_bytes()
        self.own_before = read_part(self.path, sheet_parts(self.path)[OWN])
        self.snapshot_before = cell_snapshot(self.path, OWN)
        self.ctx = service.load_context(self.project)
        with self.project.open_store() as store:
            self.tabs: list[Tab] = build_tabs(self.ctx, store, PERIOD, today=TODAY)
        self.report = render_tabs(self.path, self.tabs)
        self.first = self.path.read_bytes()
        render_tabs(self.path, self.tabs)
        self.second = self.path.read_bytes()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Rendered(tmp_path_factory.mktemp("render"))


def test_sheets_in_order_without_duplicates(rendered: Rendered) -> None:
    names = openpyxl.load_workbook(rendered.path, read_only=True, keep_vba=True).sheetnames
    assert names == [DASHBOARD, *TOOL_TABS, "xlwings.conf", OWN]
    assert rendered.report.rows["数据明细"] == len(rendered.tabs[-1].rows)


def _tab(rendered: Rendered, name: str) -> Tab:
    return next(t for t in rendered.tabs if t.name == name)


def _read_block(rows: list[list], tab: Tab, key: str, offset: int = 1) -> list[dict]:
    """Records of one block as read back from a sheet (rows are 0-based lists)."""
    placement = layout(tab).block(key)
    keys = [c.key for c in placement.block.columns]
    out = []
    for r in range(placement.first_row, placement.last_row + 1):
        row = rows[r - offset] if r - offset < len(rows) else []
        values = list(row[: len(keys)]) + [None] * (len(keys) - len(row))
        out.append({k: (None if v == "" else v) for k, v in zip(keys, values, strict=True)})
    return out


def _openpyxl_rows(path: Path, sheet: str) -> list[list]:
    ws = openpyxl.load_workbook(path, keep_vba=True, data_only=False)[sheet]
    return [list(r) for r in ws.iter_rows(values_only=True)]


def _calamine_rows(path: Path, sheet: str) -> list[list]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python(skip_empty_area=False)


@pytest.mark.parametrize("reader", [_openpyxl_rows, _calamine_rows], ids=["openpyxl", "calamine"])
def test_numbers_in_the_workbook_equal_the_engine(rendered: Rendered, reader: Callable) -> None:
    expected = {r.indicator_id: r for r in rendered.ctx.evaluate(PERIOD, today=TODAY)}
    compared = 0
    for name, key in (("产业集群", "clusters"), ("提升工程", "projects")):
        tab = _tab(rendered, name)
        for rec in _read_block(reader(rendered.path, name), tab, key):
            r = expected[rec["indicator_id"]]
            for field in ("target", "gap", "completion", "schedule", "required_pace", "outlook"):
                want, got = getattr(r, field), rec[field]
                if want is None:
                    assert got is None, (rec["indicator_id"], field)
                else:
                    assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (rec["indicator_id"], field)
                    compared += 1
            if isinstance(r.actual, str):
                assert rec["actual"] == r.actual
            elif r.actual is not None:
                assert rec["actual"] == pytest.approx(r.actual, rel=1e-12)
            assert rec["status"].endswith(" " + r.status)
    assert compared > 80
    dash = _tab(rendered, DASHBOARD)
    overall = _read_block(reader(rendered.path, DASHBOARD), dash, "overall")
    for rec, ind in zip(overall, [i for i in rendered.ctx.catalogue if i.group == "overall"], strict=True):
        assert rec["name_zh"] == ind.name_zh
        want = expected[ind.id].actual
        assert (rec["actual"] is None) if want is None else rec["actual"] == pytest.approx(want, rel=1e-12)


def test_dashboard_shell_rows_are_kept(rendered: Rendered) -> None:
    ws = openpyxl.load_workbook(rendered.path, keep_vba=True)[DASHBOARD]
    assert ws["B3"].value == PERIOD and ws["A3"].value == "报告期 Period"
    assert ws.cell(DASHBOARD_FIRST_ROW, 1).value.startswith("目标完成总览")
    assert "ReportPeriod" in openpyxl.load_workbook(rendered.path, keep_vba=True).defined_names
    assert len(ws._charts) == 9
    with zipfile.ZipFile(rendered.path) as package:
        vml = [n for n in package.namelist() if n.endswith(".vml")]
        buttons = "".join(package.read(n).decode("utf-8", "replace") for n in vml)
    for sub, _function, _caption in BUTTONS:
        assert f"{MACRO_MODULE}.{sub}" in buttons


def test_coordinator_sheet_and_vba_project_are_kept(rendered: Rendered) -> None:
    def vba(data: bytes) -> bytes:
        import io

        with zipfile.ZipFile(io.BytesIO(data)) as package:
            return package.read("xl/vbaProject.bin")

    assert vba(rendered.first) == vba(rendered.before) == vba(rendered.second)
    # The sheet's XML is byte for byte what it was before consolidation, run after run.
    assert read_part(rendered.path, sheet_parts(rendered.path)[OWN]) == rendered.own_before
    assert cell_snapshot(rendered.path, OWN) == rendered.snapshot_before
    ws = openpyxl.load_workbook(rendered.path, keep_vba=True)[OWN]
    assert ws["B2"].value == "=总览!B3" and ws["B3"].value == "=产业集群!H4" and ws["B5"].value == "=SUM(A4:B4)"


def test_a_second_run_is_identical(rendered: Rendered) -> None:
    first = zipfile.ZipFile(__import__("io").BytesIO(rendered.first))
    second = zipfile.ZipFile(__import__("io").BytesIO(rendered.second))
    # openpyxl orders some parts by set iteration (hash seed), so compare parts by name.
    assert sorted(first.namelist()) == sorted(second.namelist())
    for name in first.namelist():
        if name.startswith("docProps/"):
            continue  # openpyxl stamps the save time
        assert first.read(name) == second.read(name), name


def test_text_never_becomes_a_formula(rendered: Rendered) -> None:
    ws = openpyxl.load_workbook(rendered.path, keep_vba=True)["校验问题"]
    texts = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and c.value[:1] in "=@"]
    assert {c.value[:4] for c in texts} >= {"=cmd", "@SUM"}
    assert all(c.data_type == "s" and c.quotePrefix for c in texts)
    xml = read_part(rendered.path, sheet_parts(rendered.path)["校验问题"]).decode()
    assert "<f>" not in xml
    detail = read_part(rendered.path, sheet_parts(rendered.path)["数据明细"]).decode()
    assert "<f>" not in detail and "=HYPERLINK" in detail


def test_formats_colours_bars_and_print_setup(rendered: Rendered) -> None:
    wb = openpyxl.load_workbook(rendered.path, keep_vba=True)
    ws = wb["产业集群"]
    tab = _tab(rendered, "产业集群")
    placement = layout(tab).blocks[0]
    first = placement.first_row
    col = {c.key: i + 1 for i, c in enumerate(tab.columns)}
    assert ws.cell(first, col["target"]).number_format == "#,##0.00"
    assert ws.cell(first, col["completion"]).number_format == "0.0%"
    assert ws.freeze_panes == f"A{placement.header_row + 1}"
    rules = {str(cf.sqref): [r for r in cf.rules] for cf in ws.conditional_formatting}
    status_letter = openpyxl.utils.get_column_letter(col["status"])
    status_rules = rules[f"{status_letter}{first}:{status_letter}{placement.last_row}"]
    colours = {r.formula[0]: r.dxf.fill.fgColor.rgb[-6:] for r in status_rules}
    assert colours['"达标 on_track"'] == "C6EFCE" and colours['"滞后 behind"'] == "FFC7CE"
    assert colours['"预警 at_risk"'] == "FFEB9C" and colours['"未报送 not_reported"'] == "D9D9D9"
    bar_letter = openpyxl.utils.get_column_letter(col["completion"])
    assert rules[f"{bar_letter}{first}:{bar_letter}{placement.last_row}"][0].type == "dataBar"
    for name in (DASHBOARD, *TOOL_TABS):
        setup = wb[name].page_setup
        assert setup.orientation == "landscape" and setup.fitToWidth == 1
        assert wb[name].sheet_properties.pageSetUpPr.fitToPage


def test_dashboard_region_is_cleared_not_appended(rendered: Rendered) -> None:
    ws = openpyxl.load_workbook(rendered.path, keep_vba=True)[DASHBOARD]
    last = layout(_tab(rendered, DASHBOARD)).last_row
    assert ws.max_row <= last
    titles = [c.value for c in ws["A"] if isinstance(c.value, str) and c.value.startswith("一、")]
    assert len(titles) == 1


def test_open_in_excel_writes_nothing(rendered: Rendered, tmp_path: Path) -> None:
    path = tmp_path / "plan_tracker.xlsm"
    path.write_bytes(rendered.first)
    lock = tmp_path / "~$plan_tracker.xlsm"
    lock.write_bytes(b"")
    stamp = path.stat().st_mtime_ns
    with pytest.raises(WorkbookOpenError, match="Excel"):
        render_tabs(path, rendered.tabs)
    assert path.read_bytes() == rendered.first and path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, lock.name])


def test_preservation_warnings_name_what_openpyxl_drops(rendered: Rendered, tmp_path: Path) -> None:
    assert preservation_warnings(rendered.path) == []
    path = tmp_path / "x.xlsm"
    part = sheet_parts(rendered.path)[OWN]
    with zipfile.ZipFile(rendered.path) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == part:
                data = data.replace(b"</worksheet>", b"<extLst><ext uri='{x}'/></extLst></worksheet>")
            dst.writestr(item, data)
    warnings = preservation_warnings(path)
    assert len(warnings) == 1 and OWN in warnings[0]


# --------------------------------------------------------------------------- olevba


def test_olevba_lists_every_module_with_the_generated_source(rendered: Rendered) -> None:
    from oletools.olevba import VBA_Parser

    parser = VBA_Parser(str(rendered.path))
    try:
        found = {name: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()
    modules = vba_modules()
    suffix = {"standard": ".bas", "class": ".cls", "document": ".cls"}
    assert set(found) == {m.name + suffix[m.kind] for m in modules}
    for module in modules:
        got = found[module.name + suffix[module.kind]].replace("\r\n", "\n")
        want = module.source.replace("\r\n", "\n")
        assert got == (want if want.endswith("\n") else want + "\n"), module.name


# --------------------------------------------------------------------------- LibreOffice

UNO_SCRIPT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time, uno
    from com.sun.star.beans import PropertyValue

    def prop(name, value):
        p = PropertyValue(); p.Name = name; p.Value = value; return p

    doc_path, out_dir, profile, sheets = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    pipe = "pt_render_%d" % os.getpid()
    proc = subprocess.Popen(["soffice", "--headless", "--invisible", "--nologo", "--norestore",
        "-env:UserInstallation=" + uno.systemPathToFileUrl(profile),
        "--accept=pipe,name=%s;urp;StarOffice.ComponentContext" % pipe],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    desktop = None
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        for _ in range(600):
            try:
                ctx = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe)
                break
            except Exception:
                time.sleep(0.1)
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(doc_path), "_blank", 0,
            (prop("Hidden", True), prop("MacroExecutionMode", 0)))
        out = {"modules": {}, "buttons": [], "pdf": {}, "titles": {}, "sheets": list(doc.Sheets.ElementNames)}
        libs = doc.BasicLibraries
        for lib in libs.ElementNames:
            libs.loadLibrary(lib)
            for name in libs.getByName(lib).ElementNames:
                out["modules"][name] = lib
        forms = doc.Sheets.getByName(sheets[0]).DrawPage.Forms
        for f in range(forms.Count):
            form = forms.getByIndex(f)
            for i in range(form.Count):
                control = form.getByIndex(i)
                out["buttons"].append({"label": getattr(control, "Label", ""),
                    "scripts": [e.ScriptCode for e in form.getScriptEvents(i)]})
        names = list(doc.Sheets.ElementNames)
        for sheet in sheets:
            for other in names:
                doc.Sheets.getByName(other).IsVisible = (other == sheet)
            target = os.path.join(out_dir, "%d.pdf" % names.index(sheet))
            doc.storeToURL(uno.systemPathToFileUrl(target), (prop("FilterName", "calc_pdf_Export"),))
            out["pdf"][sheet] = target
            out["titles"][sheet] = doc.Sheets.getByName(sheet).getCellRangeByName("A1").String
        doc.close(True)
        print(json.dumps(out))
    finally:
        if desktop is not None:
            try:
                desktop.terminate()
            except Exception:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    """
)


@pytest.fixture(scope="module")
def libreoffice(rendered: Rendered, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    python = uno_python()
    if python is None:
        pytest.skip("LibreOffice's Python bridge (uno) is not installed")
    work = tmp_path_factory.mktemp("lo")
    script = work / "check.py"
    script.write_text(UNO_SCRIPT, encoding="utf-8")
    sheets = [DASHBOARD, *TOOL_TABS]
    done = subprocess.run(
        [python, str(script), str(rendered.path), str(work), str(work / "profile"),
         json.dumps(sheets)],
        capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(work)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.libreoffice
def test_libreoffice_sees_every_vba_module(libreoffice: dict) -> None:
    assert set(libreoffice["modules"]) == {m.name for m in vba_modules()}


@pytest.mark.libreoffice
def test_libreoffice_binds_the_buttons_to_our_macros(libreoffice: dict) -> None:
    bound = {b["label"]: b["scripts"] for b in libreoffice["buttons"]}
    assert set(bound) == {caption for _sub, _fn, caption in BUTTONS}
    for sub, _function, caption in BUTTONS:
        assert len(bound[caption]) == 1
        assert re.fullmatch(
            rf"vnd\.sun\.star\.script:\w+\.{MACRO_MODULE}\.{sub}\?language=Basic&location=document",
            bound[caption][0],
        ), bound[caption]


def _pdf_text(path: Path) -> str | None:
    gs = shutil.which("gs")
    if gs is None:
        return None
    done = subprocess.run([gs, "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=txtwrite", "-sOutputFile=-", str(path)],
                          capture_output=True, timeout=120)
    return done.stdout.decode("utf-8", "replace")


@pytest.mark.libreoffice
def test_every_output_tab_converts_to_pdf(libreoffice: dict, rendered: Rendered) -> None:
    for tab in rendered.tabs:
        pdf = Path(libreoffice["pdf"][tab.name])
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), tab.name
        pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
        rows = sum(max(len(b.rows), 1) for b in tab.blocks)
        assert pages >= max(1, math.ceil(rows / 60)), (tab.name, pages)
        text = _pdf_text(pdf)
        if text is not None:  # Ghostscript extracts text; the tab's own title is in it
            first_words = tab.title.split(" ")[0]
            assert first_words in text, (tab.name, first_words)
    assert libreoffice["titles"]["产业集群"] == _tab(rendered, "产业集群").title


def test_rendered_workbook_hash_changes_only_when_data_changes(rendered: Rendered) -> None:
    # The tool tabs of two runs over the same store are identical (see above); a different
    # period changes them.
    with rendered.project.open_store() as store:
        other = build_tabs(rendered.ctx, store, "2025-08", today=TODAY)
    path = rendered.path.with_name("other.xlsm")
    path.write_bytes(rendered.second)
    render_tabs(path, other)
    part = sheet_parts(path)["产业集群"]
    assert hashlib.sha256(read_part(path, part)).digest() != hashlib.sha256(read_part(rendered.path, part)).digest()


def test_headers_are_styled_and_tall_enough_for_two_lines(rendered: Rendered) -> None:
    from plan_tracker.render import HEADER_ROW_HEIGHT

    wb = openpyxl.load_workbook(rendered.path, keep_vba=True)
    for tab in rendered.tabs:
        ws = wb[tab.name]
        for placement in layout(tab).blocks:
            assert ws.row_dimensions[placement.header_row].height == HEADER_ROW_HEIGHT >= 30
            for col in range(placement.first_col, placement.last_col + 1):
                cell = ws.cell(placement.header_row, col)
                assert "\n" in cell.value or not placement.block.columns[col - 1].header_en
                assert cell.font.b and cell.fill.fgColor.rgb.endswith("DDEBF7") and cell.alignment.wrap_text
                assert cell.border.left.style == "thin"
    # Data cells: a border everywhere, wrapping only in the wide text columns, and the
    # shared style arrays did not leak a format onto text (the status column).
    tab = _tab(rendered, "数据明细")
    placement = layout(tab).blocks[0]
    ws = wb["数据明细"]
    for i, column in enumerate(tab.columns, start=1):
        cell = ws.cell(placement.first_row, i)
        assert cell.border.bottom.style == "thin", column.key
        assert bool(cell.alignment.wrap_text) == (column.width >= 30 and column.kind == "text"), column.key
        if isinstance(cell.value, str):
            assert cell.number_format == "General", column.key


def test_tabs_not_being_written_keep_their_content(rendered: Rendered, tmp_path: Path) -> None:
    # Sheets about to be rewritten are loaded empty (fast); any other sheet, a tool tab not
    # in this call included, must come through whole.
    path = tmp_path / "plan_tracker.xlsm"
    path.write_bytes(rendered.second)
    before = _calamine_rows(path, "数据明细")
    render_tabs(path, [_tab(rendered, "产业集群")])
    assert _calamine_rows(path, "数据明细") == before and len(before) > 10
    assert _calamine_rows(path, "产业集群") == _calamine_rows(rendered.path, "产业集群")
    assert openpyxl.load_workbook(path, read_only=True, keep_vba=True).sheetnames == [
        DASHBOARD, *TOOL_TABS, "xlwings.conf", OWN]
