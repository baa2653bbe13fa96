"""Tests of plan_tracker.workbook: the master workbook shell (xlsm, VBA, buttons, conf sheet)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import olefile
import openpyxl
import pytest
import xlwings
from oletools.olevba import VBA_Parser
from plan_tracker import workbook as wbmod
from plan_tracker.workbook import (
    BUTTONS,
    WorkbookOpenError,
    atomic_save,
    build_workbook,
    check_not_open_in_excel,
    excel_lock_file_candidates,
    macro_module_source,
    standalone_vba_modules,
    udf_wrapper_source,
    vba_modules,
)

XLWINGS_DIR = Path(xlwings.__file__).parent
UDF_MODULE_NAME = "pt_shell_test_udfs"
UDF_SOURCE = textwrap.dedent(
    '''
    import xlwings as xw


    @xw.func
    def SHELL_DOUBLE(x):
        """Double a number."""
        return 2 * x


    @xw.func
    @xw.arg("y", doc="second value")
    def SHELL_ADD(x, y=1):
        return x + y


    @xw.func
    def SHELL_SUM(*values):
        return sum(values)
    '''
)
EXPECTED_MODULES = {
    "ThisWorkbook",
    "Sheet1",
    "Sheet2",
    "xlwings",
    "Dictionary",
    "PlanTrackerMacros",
    "xlwings_udfs",
}


@pytest.fixture(scope="module")
def udf_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("udfs")
    (folder / f"{UDF_MODULE_NAME}.py").write_text(UDF_SOURCE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        yield folder
        sys.modules.pop(UDF_MODULE_NAME, None)


@pytest.fixture(scope="module")
def built(udf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wb") / "plan_tracker.xlsm"
    assert build_workbook(path, [UDF_MODULE_NAME], period="2025-Q3") == path
    return path


def macros_by_module(path: Path) -> dict[str, str]:
    parser = VBA_Parser(str(path))
    return {
        vba_filename.rsplit(".", 1)[0]: code.replace("\r\n", "\n")
        for _, _, vba_filename, code in parser.extract_macros()
    }


def button_macros(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        found = []
        for name in zf.namelist():
            if name.startswith("xl/drawings/vmlDrawing"):
                found += re.findall(r"<x:FmlaMacro>([^<]+)</x:FmlaMacro>", zf.read(name).decode())
        return found


def button_captions(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        found = []
        for name in zf.namelist():
            if name.startswith("xl/drawings/vmlDrawing"):
                vml = zf.read(name).decode()
                if "FmlaMacro" in vml:
                    found += [
                        re.sub(r"<[^>]+>", "", m).strip()
                        for m in re.findall(r"<v:textbox[^>]*>(.*?)</v:textbox>", vml, re.S)
                    ]
        return found


# --- VBA sources -----------------------------------------------------------------------------


def test_standalone_modules_come_from_installed_xlwings() -> None:
    modules = {m.name: m for m in standalone_vba_modules()}
    assert set(modules) == {"xlwings", "Dictionary"}
    assert modules["xlwings"].source == (XLWINGS_DIR / "xlwings.bas").read_text(encoding="utf-8")
    assert f'XLWINGS_VERSION As String = "{xlwings.__version__}"' in modules["xlwings"].source
    assert f"xlwings64-{xlwings.__version__}.dll" in modules["xlwings"].source
    assert modules["Dictionary"].kind == "class"
    assert modules["Dictionary"].source.startswith('Attribute VB_Name = "Dictionary"')
    assert "VERSION 1.0 CLASS" not in modules["Dictionary"].source


def test_standalone_modules_refuse_a_mismatched_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlwings, "__version__", "0.0.1")
    with pytest.raises(RuntimeError, match="0.0.1"):
        standalone_vba_modules()


def test_macro_module_calls_python_for_each_button() -> None:
    source = macro_module_source()
    assert source.startswith('Attribute VB_Name = "PlanTrackerMacros"')
    source.encode("ascii")
    for sub, function, _caption in BUTTONS:
        block = re.search(rf"^Sub {sub}\(\)\r\n(.*?)\r\nEnd Sub", source, re.M | re.S)
        assert block, sub
        assert block.group(1).strip() == (
            f'RunPython "import plan_tracker.macros as m; m.{function}()"'
        )
    assert [b[1] for b in BUTTONS] == ["consolidate", "generate_templates", "refresh"]


def test_udf_wrappers_generated_by_xlwings_and_environment_restored(udf_dir: Path) -> None:
    import importlib

    before_func = xlwings.func
    had_udfs = "xlwings.udfs" in sys.modules
    original = importlib.import_module(UDF_MODULE_NAME)  # imported with the no-op decorator
    assert not hasattr(original.SHELL_DOUBLE, "__xlfunc__") or sys.platform == "win32"

    source = udf_wrapper_source([UDF_MODULE_NAME])

    assert source.startswith('Attribute VB_Name = "xlwings_udfs"\n')
    assert '#Const App = "Microsoft Excel"' in source
    for name, args in [("SHELL_ADD", "x, Optional y"), ("SHELL_DOUBLE", "x"), ("SHELL_SUM", "")]:
        sig = f"Function {name}({args}" if args else f"Function {name}(ParamArray values())"
        assert sig in source
        assert f'XLPy.CallUDF("{UDF_MODULE_NAME}", "{name}", ' in source
    assert 'XLPy.CallUDF("pt_shell_test_udfs", "SHELL_DOUBLE", Array(x), ThisWorkbook,' in source
    # Everything put in place for the generation is gone again.
    assert xlwings.func is before_func
    assert sys.modules[UDF_MODULE_NAME] is original
    if sys.platform != "win32":
        for name in ("pythoncom", "pywintypes", "win32com", "win32com.client"):
            assert name not in sys.modules
        assert ("xlwings.udfs" in sys.modules) == had_udfs


def test_udf_wrapper_for_missing_module_raises_and_restores() -> None:
    before = set(sys.modules)
    with pytest.raises(ModuleNotFoundError):
        udf_wrapper_source(["no_such_module_for_plan_tracker"])
    assert "pythoncom" not in sys.modules or "pythoncom" in before
    assert xlwings.func.__module__ == "xlwings" or sys.platform == "win32"


def test_vba_modules_order_and_kinds(udf_dir: Path) -> None:
    modules = vba_modules([UDF_MODULE_NAME])
    assert [m.name for m in modules] == [
        "ThisWorkbook",
        "Sheet1",
        "Sheet2",
        "xlwings",
        "Dictionary",
        "PlanTrackerMacros",
        "xlwings_udfs",
    ]
    assert [m.kind.value for m in modules[:3]] == ["document"] * 3


# --- lock files and atomic save ----------------------------------------------------------------


def test_lock_file_blocks(tmp_path: Path) -> None:
    target = tmp_path / "plan_tracker.xlsm"
    check_not_open_in_excel(target)  # no lock: fine
    (tmp_path / "~$plan_tracker.xlsm").write_bytes(b"owner")
    with pytest.raises(WorkbookOpenError) as info:
        check_not_open_in_excel(target)
    message = str(info.value)
    assert "Excel" in message and "关闭" in message and "close it" in message
    assert "~$plan_tracker.xlsm" in message


def test_lock_file_names_for_long_and_short_names(tmp_path: Path) -> None:
    assert [p.name for p in excel_lock_file_candidates(tmp_path / "plan_tracker.xlsm")] == [
        "~$plan_tracker.xlsm",
        "~$an_tracker.xlsm",
    ]
    assert [p.name for p in excel_lock_file_candidates(tmp_path / "abc.xlsm")] == ["~$abc.xlsm"]
    assert [p.name for p in excel_lock_file_candidates(tmp_path / "abcdefg.xlsm")] == [
        "~$abcdefg.xlsm",
        "~$bcdefg.xlsm",
    ]
    long = tmp_path / ("x" * 260 + ".xlsm")
    assert all(len(p.name) <= 255 for p in excel_lock_file_candidates(long))
    (tmp_path / "~$an_tracker.xlsm").write_bytes(b"")
    with pytest.raises(WorkbookOpenError):
        check_not_open_in_excel(tmp_path / "plan_tracker.xlsm")


def test_atomic_save_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "book.xlsm"
    target.write_bytes(b"old")
    with atomic_save(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_save(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.xlsm"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_atomic_save_keeps_file_mode(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.xlsm"
    with atomic_save(fresh) as tmp:
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    fresh.chmod(0o640)
    with atomic_save(fresh) as tmp:
        tmp.write_bytes(b"y")
    assert fresh.stat().st_mode & 0o777 == 0o640


def test_build_refuses_when_open_and_keeps_file(tmp_path: Path, udf_dir: Path) -> None:
    target = tmp_path / "plan_tracker.xlsm"
    target.write_bytes(b"coordinator's workbook")
    (tmp_path / "~$plan_tracker.xlsm").write_bytes(b"")
    with pytest.raises(WorkbookOpenError):
        build_workbook(target, [UDF_MODULE_NAME])
    assert target.read_bytes() == b"coordinator's workbook"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plan_tracker.xlsm",
        "~$plan_tracker.xlsm",
    ]


def test_build_rejects_non_xlsm(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="xlsm"):
        build_workbook(tmp_path / "x.xlsx", [UDF_MODULE_NAME])


# --- the built workbook --------------------------------------------------------------------------


def test_sheets_period_and_defined_name(built: Path) -> None:
    wb = openpyxl.load_workbook(built, keep_vba=True)
    assert wb.sheetnames == ["总览", "xlwings.conf"]
    dash = wb["总览"]
    assert dash["A3"].value == "报告期 Period"
    assert dash["B3"].value == "2025-Q3"
    assert "Consolidate" not in str(dash["A1"].value)
    defined = wb.defined_names["ReportPeriod"]
    assert defined.attr_text == "'总览'!$B$3"
    assert wb.code_name == "ThisWorkbook"
    assert dash.sheet_properties.codeName == "Sheet1"
    assert wb["xlwings.conf"].sheet_properties.codeName == "Sheet2"


def test_config_sheet_as_xlwings_reads_it(built: Path) -> None:
    ws = openpyxl.load_workbook(built)["xlwings.conf"]
    # xlwings.bas GetConfigFromSheet: A1 down to the first empty cell, keys upper-cased, unique.
    active: dict[str, object] = {}
    row = 1
    while ws.cell(row, 1).value not in (None, ""):
        key = str(ws.cell(row, 1).value).upper()
        assert key not in active, f"duplicate key {key} would break Dictionary.Add"
        active[key] = ws.cell(row, 2).value
        row += 1
    assert active["UDF MODULES"] == UDF_MODULE_NAME
    assert active["SHOW CONSOLE"] == "False"
    # Interpreter hints exist but are inactive (below the empty row) and empty.
    assert "INTERPRETER_WIN" not in active and "CONDA PATH" not in active
    hints = {
        ws.cell(r, 1).value: ws.cell(r, 2).value
        for r in range(row + 1, ws.max_row + 1)
        if ws.cell(r, 1).value
    }
    assert "Interpreter_Win" in hints and "Conda Path" in hints
    assert hints["Interpreter_Win"] is None and hints["Conda Path"] is None
    note = active["说明 NOTE"]
    assert isinstance(note, str) and "xlwings.conf" in note and "空行" in note


def test_vba_project_modules_identical_to_generated(built: Path, udf_dir: Path) -> None:
    found = macros_by_module(built)
    assert set(found) == EXPECTED_MODULES
    for module in vba_modules([UDF_MODULE_NAME]):
        want = module.source.replace("\r\n", "\n")
        assert found[module.name] == (want if want.endswith("\n") else want + "\n"), module.name


def test_buttons_bound_to_macros(built: Path) -> None:
    assert button_macros(built) == [f"[0]!PlanTrackerMacros.{sub}" for sub, _, _ in BUTTONS]
    assert button_captions(built) == [caption for _, _, caption in BUTTONS]


def test_openpyxl_keep_vba_round_trip(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "resaved.xlsm"
    wb = openpyxl.load_workbook(built, keep_vba=True)
    wb["总览"]["B3"] = "2025-09"
    wb.save(copy)
    with zipfile.ZipFile(built) as a, zipfile.ZipFile(copy) as b:
        assert a.read("xl/vbaProject.bin") == b.read("xl/vbaProject.bin")
    assert button_macros(copy) == button_macros(built)
    again = openpyxl.load_workbook(copy, keep_vba=True)
    assert again["总览"]["B3"].value == "2025-09"
    assert again.code_name == "ThisWorkbook"
    assert again["总览"].sheet_properties.codeName == "Sheet1"


def test_vba_project_is_a_valid_compound_file(built: Path) -> None:
    with zipfile.ZipFile(built) as zf:
        data = zf.read("xl/vbaProject.bin")
        content_types = zf.read("[Content_Types].xml").decode()
    assert "application/vnd.ms-excel.sheet.macroEnabled.main+xml" in content_types
    ole = olefile.OleFileIO(data)
    assert ole.openstream("VBA/_VBA_PROJECT").read()[2:4] == b"\xff\xff"
    project = ole.openstream("PROJECT").read().decode("cp1252")
    assert "Document=Sheet1/&H00000000" in project and "Class=Dictionary" in project
    assert "Module=PlanTrackerMacros" in project and "Module=xlwings_udfs" in project


def test_rebuild_is_stable(built: Path, tmp_path: Path, udf_dir: Path) -> None:
    other = build_workbook(tmp_path / "plan_tracker.xlsm", [UDF_MODULE_NAME], period="2025-Q3")
    with zipfile.ZipFile(built) as a, zipfile.ZipFile(other) as b:
        assert a.read("xl/vbaProject.bin") == b.read("xl/vbaProject.bin")


# --- the committed workbook ------------------------------------------------------------------------

REPO_WORKBOOK = Path(__file__).resolve().parents[1] / "workbook" / "plan_tracker.xlsm"


@pytest.mark.skipif(not REPO_WORKBOOK.exists(), reason="workbook/plan_tracker.xlsm not built yet")
def test_committed_workbook_matches_installed_xlwings_and_macros() -> None:
    found = macros_by_module(REPO_WORKBOOK)
    assert set(found) == EXPECTED_MODULES
    xlwings_bas = (XLWINGS_DIR / "xlwings.bas").read_text(encoding="utf-8").replace("\r\n", "\n")
    assert found["xlwings"].rstrip("\n") == xlwings_bas.rstrip("\n"), (
        "workbook/plan_tracker.xlsm was built with another xlwings version: "
        "run `plan-tracker build-workbook`"
    )
    assert found["PlanTrackerMacros"] == macro_module_source().replace("\r\n", "\n")
    assert 'XLPy.CallUDF("plan_tracker.udfs.functions", "PLAN_GAP"' in found["xlwings_udfs"]
    assert button_macros(REPO_WORKBOOK) == [f"[0]!PlanTrackerMacros.{s}" for s, _, _ in BUTTONS]


# --- LibreOffice -----------------------------------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.fixture(scope="module")
def ods(built: Path, tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The built workbook as LibreOffice sees it: converted once to .ods (one soffice run)."""
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    out = tmp_path_factory.mktemp("lo")
    profile = tmp_path_factory.mktemp("lo_profile")
    result = subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            "ods",
            "--outdir",
            str(out),
            str(built),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    converted = out / (built.stem + ".ods")
    assert converted.exists(), f"soffice failed: {result.stdout}\n{result.stderr}"
    return zipfile.ZipFile(converted)


LIB = "PlanTracker"  # LibreOffice names the Basic library after the VBA project


@pytest.mark.libreoffice
def test_libreoffice_sees_every_vba_module(ods: zipfile.ZipFile, udf_dir: Path) -> None:
    library = ET.fromstring(ods.read(f"Basic/{LIB}/script-lb.xml"))
    ns = "{http://openoffice.org/2000/library}"
    names = {el.get(f"{ns}name") for el in library.iter(f"{ns}element")}
    assert names == EXPECTED_MODULES
    script = "{http://openoffice.org/2000/script}"
    kinds = {"standard": "normal", "class": "class", "document": "document"}
    for module in vba_modules([UDF_MODULE_NAME]):
        root = ET.fromstring(ods.read(f"Basic/{LIB}/{module.name}.xml"))
        assert root.get(f"{script}moduleType") == kinds[module.kind.value]
        lo_lines = [
            line
            for line in (root.text or "").split("\n")
            if not line.startswith("Rem Attribute VBA_ModuleType")
            and line not in ("Option VBASupport 1", "Option ClassModule")
        ]
        ours = [
            line
            for line in module.source.replace("\r\n", "\n").split("\n")
            if not line.lstrip().startswith("Attribute ")  # LibreOffice drops attributes
        ]
        while lo_lines and lo_lines[-1] == "":
            lo_lines.pop()
        while ours and ours[-1] == "":
            ours.pop()
        assert lo_lines == ours, module.name


@pytest.mark.libreoffice
def test_libreoffice_binds_buttons_to_our_macros(ods: zipfile.ZipFile) -> None:
    content = ods.read("content.xml").decode("utf-8")
    listeners = re.findall(r"<script:event-listener [^>]*>", content)
    hrefs = [re.search(r'xlink:href="([^"]+)"', tag).group(1) for tag in listeners]
    assert hrefs == [
        f"vnd.sun.star.script:{LIB}.PlanTrackerMacros.{sub}?language=Basic&amp;location=document"
        for sub, _, _ in BUTTONS
    ]
    assert all('script:event-name="form:performaction"' in tag for tag in listeners)
    labels = re.findall(r'<form:button [^>]*form:label="([^"]+)"', content)
    assert labels == [caption for _, _, caption in BUTTONS]


@pytest.mark.libreoffice
def test_libreoffice_sees_sheets_and_period_name(ods: zipfile.ZipFile) -> None:
    content = ods.read("content.xml").decode("utf-8")
    assert re.findall(r'<table:table table:name="([^"]+)"', content) == ["总览", "xlwings.conf"]
    assert re.search(
        r'table:named-range table:name="ReportPeriod"[^>]*table:cell-range-address="\$总览\.\$B\$3"',
        content,
    )
    assert "报告期 Period" in content and "2025-Q3" in content


def test_module_exports_what_cli_uses() -> None:
    # plan_tracker.cli_workbook calls build_workbook(target, period=...) and catches this error.
    assert callable(wbmod.build_workbook) and issubclass(wbmod.WorkbookOpenError, Exception)


def test_stale_temporaries_of_a_killed_save_are_removed_young_ones_kept(tmp_path):
    import os
    import time

    from plan_tracker.workbook import remove_stale_temporaries

    book = tmp_path / "plan_tracker.xlsm"
    book.write_bytes(b"workbook")
    old = tmp_path / ".plan_tracker.abc123.xlsm"
    young = tmp_path / ".plan_tracker.def456.xlsm"
    other = tmp_path / ".other.abc123.xlsm"
    for f in (old, young, other):
        f.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    assert remove_stale_temporaries(book) == [old]
    assert not old.exists() and young.exists() and other.exists() and book.read_bytes() == b"workbook"
