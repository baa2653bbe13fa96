"""PLAN_* worksheet functions: the cell logic, the desktop functions called directly, and the
xlwings Server functions through xlwings' own runtime (``custom_functions_meta`` and
``custom_functions_call`` with payloads shaped like the Office.js client's).

Every figure is compared with what ``plan-tracker gap`` returns (``service.gap``) for the same
store and period, for every indicator of the catalogue.
"""

from __future__ import annotations

import asyncio
import math
import os
import textwrap
from pathlib import Path

import pytest
from conftest import project_with_observations
from plan_tracker import service
from plan_tracker.engine import STATUS_ZH, GapResult
from plan_tracker.udfs import core, functions

PERIODS = [None, "2024", "2025-Q3", "2025-09", "2023-06"]

OBSERVATIONS = """\
indicator_id,period,value,department,note
O_IND_OUTPUT,2020,4000,统计局,
O_IND_OUTPUT,2021,4500,统计局,
O_IND_OUTPUT,2022,5100,统计局,
O_IND_OUTPUT,2023,5700,统计局,
O_IND_OUTPUT,2024,6300,统计局,
O_IND_OUTPUT,2024-09,4700,统计局,
O_IND_OUTPUT,2025-09,5000,统计局,
O_HITECH_OUTPUT,2020,2300,统计局,
O_HITECH_OUTPUT,2024,4000,统计局,
O_HITECH_OUTPUT,2025-09,3300,统计局,
C1_OUTPUT,2020,180,工信局,
C1_OUTPUT,2021,210,工信局,
C1_OUTPUT,2022,250,工信局,
C1_OUTPUT,2024,380,工信局,
C1_OUTPUT,2025-09,300,工信局,
C2_OUTPUT,2020,700,工信局,
C2_OUTPUT,2024,1300,工信局,
P1_KEY_PROJECTS,2021,85,发改局,
P1_KEY_PROJECTS,2022,90,发改局,
P1_KEY_PROJECTS,2023,70,发改局,
P1_KEY_PROJECTS,2024,80,发改局,
P1_KEY_PROJECTS,2025-09,50,发改局,
P2_ENT_10B,2020,4,工信局,
P2_ENT_10B,2024,8,工信局,
P2_ENT_10B,2025-09,9,工信局,
P2_ABOVE_SCALE_ENT,2020,1180,统计局,
P2_ABOVE_SCALE_ENT,2024,1460,统计局,
P2_NEW_ABOVE_SCALE,2021,110,统计局,
P2_NEW_ABOVE_SCALE,2024,95,统计局,
P4_RD_INST_SHARE,2021,58,科技局,
P4_RD_INST_SHARE,2024,75,科技局,
P5_TECH_REFORM_INVEST,2020,150,工信局,
P5_TECH_REFORM_INVEST,2023,230,工信局,
P5_TECH_REFORM_INVEST,2024,260,工信局,
P1_TASK_CHAIN_LEADER,2025-09,推进中,工信局,链长制已建立
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    yield project_with_observations(tmp_path_factory.mktemp("udfs"), OBSERVATIONS)
    core.reset_cache()


@pytest.fixture(scope="module")
def expected(project) -> dict[tuple[str, str | None], GapResult]:
    """``plan-tracker gap`` for every indicator and period, computed once."""
    out = {}
    for period in PERIODS:
        for result in service.gap(project, period):
            out[(result.indicator_id, period)] = result
    return out


def _field_value(field: str, result: GapResult) -> object:
    return core.FIELDS[field].read(result)


# --------------------------------------------------------------------------- core


@pytest.mark.parametrize("period", PERIODS)
def test_every_field_of_every_indicator_matches_cli_gap(project, expected, period):
    catalogue = service.read_catalogue(project)
    checked_numbers = 0
    for ind in catalogue:
        want = expected[(ind.id, period)]
        for field in core.FIELDS:
            got = core.indicator_value(field, ind.id, period, project=project)
            value = _field_value(field, want)
            if value is None:
                assert isinstance(got, core.CellError), (ind.id, field, got)
                assert got.code == core.ERROR_NA
                assert want.name_zh in got.message
            else:
                assert got == value, (ind.id, period, field)
                checked_numbers += isinstance(got, float)
    # the data above gives real figures, not just a sheet of #N/A
    assert checked_numbers > 20


def test_chinese_name_and_id_give_the_same_result(project, expected):
    catalogue = service.read_catalogue(project)
    ind = catalogue.get("C1_OUTPUT")
    by_name = core.indicator_value("GAP", ind.name_zh, "2025-Q3", project=project)
    assert by_name == core.indicator_value("GAP", "c1_output", "2025-Q3", project=project)
    assert by_name == expected[("C1_OUTPUT", "2025-Q3")].gap == 300 - 500 * 9 / 12


def test_period_forms_as_cells_deliver_them(project):
    # A year typed in a cell arrives as a float; Chinese forms as text.
    assert core.indicator_value("TARGET", "C1_OUTPUT", 2024.0, project=project) == core.indicator_value(
        "TARGET", "C1_OUTPUT", "2024年", project=project
    )
    assert core.indicator_value("ACTUAL", "C1_OUTPUT", "2025年1-9月", project=project) == 300.0
    assert core.indicator_value("ACTUAL", "C1_OUTPUT", "", project=project) == 300.0  # default: latest


def test_status_is_chinese_and_tasks_show_their_state(project, expected):
    assert core.indicator_value("STATUS", "C1_OUTPUT", "2025-Q3", project=project) == "滞后"
    assert core.indicator_value("ACTUAL", "P1_TASK_CHAIN_LEADER", None, project=project) == "推进中"
    no_gap = core.indicator_value("GAP", "P1_TASK_CHAIN_LEADER", None, project=project)
    assert isinstance(no_gap, core.CellError) and no_gap.code == core.ERROR_NA and "任务" in no_gap.message


@pytest.mark.parametrize(
    ("field", "indicator", "period", "code", "words"),
    [
        ("GAP", "NO_SUCH_ID", None, core.ERROR_NA, "未知指标"),
        ("TARGET", "不存在的指标", "2025", core.ERROR_NA, "未知指标"),
        ("GAP", "C1_OUTPUT", "2025-13", core.ERROR_VALUE, "月份"),
        ("GAP", "C1_OUTPUT", "下个月", core.ERROR_VALUE, "无法识别的期间"),
        ("GAP", "", None, core.ERROR_VALUE, "请填写指标"),
        ("ACTUAL", "C2_OUTPUT", "2025-09", core.ERROR_NA, "未报送"),  # missing value
    ],
)
def test_bad_input_gives_error_values_with_chinese_messages(project, field, indicator, period, code, words):
    got = core.indicator_value(field, indicator, period, project=project)
    assert isinstance(got, core.CellError)
    assert got.code == code
    assert words in got.message
    assert "Traceback" not in got.message


def test_table_is_the_cli_gap_with_a_chinese_header(project, expected):
    rows = core.table(None, "2025-Q3", project=project)
    assert rows[0][0] == "编号 id" and rows[0][8] == "状态 status"
    body = rows[1:]
    assert [r[0] for r in body] == [ind.id for ind in service.read_catalogue(project)]
    columns = [key for key, _ in core.TABLE_COLUMNS]
    for row in body:
        want = expected[(row[0], "2025-Q3")].contract_row()
        got = dict(zip(columns, row, strict=True))
        for key in ("target", "actual", "gap", "completion", "schedule", "required_pace", "outlook", "period"):
            assert got[key] == want[key], (row[0], key)
        assert got["status"] == STATUS_ZH[want["status"]]


def test_table_by_group_and_its_errors(project):
    rows = core.table("c1", None, project=project)
    assert [r[0] for r in rows[1:]] == ["C1_OUTPUT"]
    assert core.table("船舶海工产业集群", None, project=project) == rows
    bad = core.table("C9", None, project=project)
    assert isinstance(bad, core.CellError) and bad.code == core.ERROR_VALUE and "未知分组" in bad.message
    bad_period = core.table("C1", "someday", project=project)
    assert isinstance(bad_period, core.CellError) and bad_period.code == core.ERROR_VALUE


def test_new_data_is_seen_by_the_next_call(tmp_path):
    proj = service.init(tmp_path / "p")
    service.import_observations(proj, _write(tmp_path / "a.csv", "indicator_id,period,value\nC2_OUTPUT,2025-09,900\n"))
    assert core.indicator_value("ACTUAL", "C2_OUTPUT", "2025-09", project=proj) == 900.0
    first = core.context_for(proj)
    assert core.context_for(proj) is first  # unchanged store: the cached context
    # A correction (superseding 900) and a new value arrive through the normal import.
    service.import_observations(
        proj, _write(tmp_path / "b.csv", "indicator_id,period,value\nC2_OUTPUT,2025-09,950\nC1_OUTPUT,2025-09,320\n")
    )
    assert core.indicator_value("ACTUAL", "C2_OUTPUT", "2025-09", project=proj) == 950.0
    assert core.indicator_value("GAP", "C1_OUTPUT", "2025-09", project=proj) == 320 - 375
    assert core.context_for(proj) is not first


def test_an_edited_catalogue_is_seen_by_the_next_call(tmp_path):
    proj = service.init(tmp_path / "p")
    assert core.indicator_value("TARGET", "C1_OUTPUT", "2025", project=proj) == 500.0
    path = service.project_catalogue_path(proj)
    text = path.read_text(encoding="utf-8")
    assert "2021:200;2025:500" in text
    path.write_text(text.replace("2021:200;2025:500", "2021:200;2025:520"), encoding="utf-8")
    assert core.indicator_value("TARGET", "C1_OUTPUT", "2025", project=proj) == 520.0


# --------------------------------------------------------------------------- project lookup


def test_project_from_home_then_caller_folder_then_cwd(project, tmp_path):
    other = service.init(tmp_path / "other")
    assert core.resolve_project(other.root, env={"PLAN_TRACKER_HOME": str(project.root)}) == project
    assert core.resolve_project(other.root, env={}) == other
    empty = tmp_path / "no_store"
    empty.mkdir()
    assert core.resolve_project(empty, env={}, cwd=project.root) == project
    with pytest.raises(core.ProjectError):
        core.resolve_project(empty, env={}, cwd=empty)


def test_no_project_is_a_value_error_in_the_cell(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAN_TRACKER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    got = core.indicator_value("GAP", "C1_OUTPUT")
    assert isinstance(got, core.CellError) and got.code == core.ERROR_VALUE
    assert "未找到项目" in got.message


# --------------------------------------------------------------------------- desktop functions


DESKTOP = {
    "TARGET": functions.PLAN_TARGET,
    "ACTUAL": functions.PLAN_ACTUAL,
    "GAP": functions.PLAN_GAP,
    "PROGRESS": functions.PLAN_PROGRESS,
    "STATUS": functions.PLAN_STATUS,
    "PACE": functions.PLAN_PACE,
    "OUTLOOK": functions.PLAN_OUTLOOK,
}


def test_desktop_functions_return_the_cli_figures(project, expected, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    for ind_id in ("C1_OUTPUT", "P1_KEY_PROJECTS", "O_IND_OUTPUT_GROWTH", "P2_ENT_10B"):
        want = expected[(ind_id, "2025-Q3")]
        for field, function in DESKTOP.items():
            value = _field_value(field, want)
            got = function(ind_id, "2025-Q3")
            if value is None:
                assert isinstance(got, str) and got.startswith("#N/A "), (ind_id, field, got)
            else:
                assert got == value, (ind_id, field)
    assert functions.PLAN_TABLE("C1", "2025-Q3") == core.table("C1", "2025-Q3", project=project)


def test_desktop_errors_are_short_text_led_by_the_error_code(project, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    assert functions.PLAN_GAP("NOPE").startswith("#N/A 未知指标")
    assert functions.PLAN_GAP("C1_OUTPUT", "2025-Q5").startswith("#VALUE! ")
    assert functions.PLAN_TABLE("X1").startswith("#VALUE! 未知分组")


def test_desktop_functions_find_the_project_beside_the_calling_workbook(project, monkeypatch, tmp_path):
    """The master workbook lives in the project folder: with no PLAN_TRACKER_HOME, the
    functions read the store next to the calling workbook (xw.Book.caller())."""
    monkeypatch.delenv("PLAN_TRACKER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)

    class CallerBook:
        fullname = str(project.root / "plan_tracker.xlsm")

    monkeypatch.setattr(functions.xw.Book, "caller", classmethod(lambda cls: CallerBook()))
    assert functions.PLAN_ACTUAL("C1_OUTPUT", "2025-09") == 300.0


# --------------------------------------------------------------------------- xlwings Server runtime


@pytest.fixture(scope="module")
def server_runtime():
    """xlwings' server runtime as xlwings Server runs it: XLWINGS_ON_SERVER and the
    noncommercial licence key set, then the PLAN.* functions module imported."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLWINGS_ON_SERVER", "true")
        mp.setenv("XLWINGS_LICENSE_KEY", "noncommercial")
        import xlwings.server
        from plan_tracker.udfs import server as plan_server

        yield xlwings.server, plan_server


def office_call(func_name: str, *args: object, runtime: str = "1.4") -> dict:
    """A request body as xlwings' Office.js custom-functions code builds it: every argument a
    2-D matrix, an omitted optional argument null."""
    import xlwings

    return {
        "client": "Office.js",
        "func_name": func_name,
        "args": [None if a is None else (a if isinstance(a, list) else [[a]]) for a in args],
        "caller_address": "[plan_tracker.xlsm]总览!B7",
        "session_id": "test-session",
        "culture_info_name": "zh-CN",
        "date_format": "yyyy/m/d",
        "version": xlwings.__version__,
        "runtime": runtime,
    }


def call(server_runtime, body: dict):
    xlserver, module = server_runtime
    return asyncio.run(xlserver.custom_functions_call(body, module))


def test_custom_functions_meta_accepts_our_functions(server_runtime):
    xlserver, module = server_runtime
    meta = xlserver.custom_functions_meta(module)
    by_id = {f["id"]: f for f in meta["functions"]}
    assert set(by_id) == {f"PLAN_{name}" for name in [*core.FIELDS, "TABLE"]}
    assert {f["name"] for f in meta["functions"]} == {*core.FIELDS, "TABLE"}  # shown as PLAN.GAP
    gap = by_id["PLAN_GAP"]
    assert [p["name"] for p in gap["parameters"]] == ["indicator", "period"]
    assert "optional" not in gap["parameters"][0] and gap["parameters"][1]["optional"] is True
    assert gap["description"].startswith("差距")
    assert "指标编号" in gap["parameters"][0]["description"]
    table = by_id["PLAN_TABLE"]
    assert all(p.get("optional") for p in table["parameters"])
    assert meta["allowErrorForDataTypeAny"] is True


def test_custom_functions_call_returns_the_engine_numbers(server_runtime, project, expected, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    catalogue = service.read_catalogue(project)
    for ind in catalogue:
        for period in (None, "2025-Q3"):
            want = expected[(ind.id, period)]
            for field in core.FIELDS:
                got = call(server_runtime, office_call(f"PLAN_{field}", ind.id, period))
                value = _field_value(field, want)
                if value is None:
                    assert got == [[{"type": "Error", "errorType": "NotAvailable"}]], (ind.id, field)
                else:
                    assert got == [[value]], (ind.id, period, field)


def test_custom_functions_call_empty_cell_and_numbers_as_arguments(server_runtime, project, expected, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    default = expected[("C1_OUTPUT", None)].gap
    assert call(server_runtime, office_call("PLAN_GAP", "C1_OUTPUT", [[""]])) == [[default]]
    assert call(server_runtime, office_call("PLAN_GAP", "C1_OUTPUT", [[None]])) == [[default]]
    assert call(server_runtime, office_call("PLAN_TARGET", "C1_OUTPUT", 2024.0)) == [[expected[("C1_OUTPUT", "2024")].target]]


def test_custom_functions_call_error_values(server_runtime, project, monkeypatch):
    from xlwings import XlwingsError

    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    na = [[{"type": "Error", "errorType": "NotAvailable"}]]
    assert call(server_runtime, office_call("PLAN_GAP", "NO_SUCH_ID", None)) == na
    assert call(server_runtime, office_call("PLAN_ACTUAL", "C2_OUTPUT", "2025-09")) == na  # missing value
    # Older Office.js runtimes have no error data type: xlwings sends the error text.
    assert call(server_runtime, office_call("PLAN_GAP", "NO_SUCH_ID", None, runtime="1.2")) == [["#N/A"]]
    # #VALUE! carries its message: xlwings Server answers 400 with it and the add-in's
    # JavaScript raises CustomFunctions.Error(invalidValue, message).
    with pytest.raises(XlwingsError, match="无法识别的期间"):
        call(server_runtime, office_call("PLAN_GAP", "C1_OUTPUT", "next month"))
    with pytest.raises(XlwingsError, match="未知分组"):
        call(server_runtime, office_call("PLAN_TABLE", "C9", None))


def test_custom_functions_call_table_spills_the_cli_rows(server_runtime, project, expected, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    got = call(server_runtime, office_call("PLAN_TABLE", "P1", "2025-Q3"))
    assert got[0][:3] == ["编号 id", "名称 name", "期间 period"]
    ids = [r[0] for r in got[1:]]
    assert ids == [ind.id for ind in service.read_catalogue(project).in_group("P1")]
    row = got[1 + ids.index("P1_KEY_PROJECTS")]
    want = expected[("P1_KEY_PROJECTS", "2025-Q3")]
    assert row[3:6] == [want.target, want.actual, want.gap]
    # empty figures become empty cells, never NaN or None
    assert all(not (isinstance(c, float) and math.isnan(c)) and c is not None for r in got for c in r)


def test_skip_pyodide_probe_keeps_xlwings_behaviour(server_runtime, project, monkeypatch):
    import sys

    from xlwings.pro.udfs_officejs import to_scalar

    _, module = server_runtime
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    missing = object()
    saved = sys.modules.pop("pyodide", missing)
    try:
        before = call(server_runtime, office_call("PLAN_GAP", "C1_OUTPUT", None))
        assert module.skip_pyodide_probe() is True
        assert sys.modules["pyodide"] is None
        with pytest.raises(ImportError):
            import pyodide.ffi  # noqa: F401
        assert to_scalar([[None]]) is None and to_scalar([["x"]]) == "x"
        assert call(server_runtime, office_call("PLAN_GAP", "C1_OUTPUT", None)) == before
        assert os.environ.get("XLWINGS_LICENSE_KEY") == "noncommercial"
    finally:
        if saved is missing:
            sys.modules.pop("pyodide", None)
        else:
            sys.modules["pyodide"] = saved
