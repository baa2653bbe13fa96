"""The button macros through xlwings' remote runtime: a workbook payload shaped like the one
xlwings Server's Office.js client sends, ``xw.Book(json=payload)``, the script called the way
xlwings Server calls it (``custom_scripts_call``), and the actions the add-in would run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from conftest import project_with_observations
from plan_tracker import service
from plan_tracker.tabs import DASHBOARD, DASHBOARD_FIRST_ROW, TOOL_TABS, build_tabs, layout
from plan_tracker.udfs import core
from plan_tracker.xlwings_writer import block_cells

PERIOD = "2025-Q3"
OBSERVATIONS = """\
indicator_id,period,value,department,note
C1_OUTPUT,2020,180,工信局,
C1_OUTPUT,2021,210,工信局,
C1_OUTPUT,2024,380,工信局,
C1_OUTPUT,2025-09,300,工信局,
C2_OUTPUT,2020,700,工信局,
C2_OUTPUT,2025-09,1200,工信局,
P2_ENT_10B,2020,4,工信局,
P2_ENT_10B,2025-09,9,工信局,
P1_TASK_CHAIN_LEADER,2025-09,推进中,工信局,=HYPERLINK("http://x")
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    yield project_with_observations(tmp_path_factory.mktemp("scripts"), OBSERVATIONS)
    core.reset_cache()


@pytest.fixture(scope="module")
def runtime(project):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLWINGS_ON_SERVER", "true")
        mp.setenv("XLWINGS_LICENSE_KEY", "noncommercial")
        mp.setenv("PLAN_TRACKER_HOME", str(project.root))
        import xlwings.server
        from plan_tracker import scripts

        yield xlwings.server, scripts


def sheet_payload(name: str, values: list[list[object]]) -> dict:
    rows, cols = len(values), max((len(r) for r in values), default=0)
    return {
        "name": name,
        "visibility": "Visible",
        "show_gridlines": True,
        "print_area": None,
        "notes": [],
        "notes_supported": True,
        "used_range_address": f"A1:{chr(64 + max(cols, 1))}{max(rows, 1)}",
        "used_range_row_count": rows,
        "used_range_column_count": cols,
        "values": values or [[]],
        "pictures": [],
        "shapes": [],
        "charts": [],
        "tables": [],
        "pivot_tables": [],
    }


def dashboard_values(period: object, rows: int = 12) -> list[list[object]]:
    values = [["" for _ in range(4)] for _ in range(rows)]
    values[0][0] = "西海岸新区制造业高质量发展实验区 目标跟踪 / Plan tracker"
    values[2][0], values[2][1] = "报告期 Period", period
    return values


def book_payload(period: object = PERIOD, *, extra_sheets: list[dict] | None = None, with_name: bool = True) -> dict:
    """The JSON xlwings Server's Office.js client posts for a script (include=总览: the
    other sheets travel without values)."""
    import xlwings

    names = []
    if with_name:
        names.append(
            {
                "name": "ReportPeriod",
                "refers_to": f"='{DASHBOARD}'!$B$3",
                "sheet_index": 0,
                "address": "B3",
                "scope_sheet_name": None,
                "scope_sheet_index": None,
                "book_scope": True,
            }
        )
    return {
        "client": "Office.js",
        "version": xlwings.__version__,
        "book": {"name": "plan_tracker.xlsm", "active_sheet_index": 0, "selection": "B3", "calculation": "Automatic"},
        "names": names,
        "sheets": [
            sheet_payload(DASHBOARD, dashboard_values(period)),
            *(extra_sheets or []),
            sheet_payload("xlwings.conf", [[]]),
        ],
    }


def run_script(runtime, name: str, payload: dict) -> list[dict]:
    import xlwings as xw

    xlserver, scripts = runtime
    book = xw.Book(json=payload)
    try:
        result = asyncio.run(xlserver.custom_scripts_call(scripts, name, typehint_to_value={xw.Book: book}))
        return result.json()["actions"]
    finally:
        book.close()


@pytest.fixture(scope="module")
def consolidated(runtime):
    return run_script(runtime, "consolidate", book_payload())


@pytest.fixture(scope="module")
def tabs(project, runtime):
    ctx = service.load_context(project)
    with project.open_store() as store:
        return {t.name: t for t in build_tabs(ctx, store, PERIOD, ctx.catalogue)}


def test_scripts_are_registered_for_xlwings_server(runtime):
    xlserver, scripts = runtime
    meta = {m["function_name"]: m for m in xlserver.custom_scripts_meta(scripts)}
    assert set(meta) == {"consolidate", "refresh"}
    assert meta["consolidate"]["include"] == DASHBOARD


def test_consolidate_adds_every_output_tab_after_the_dashboard(consolidated):
    added = [a["args"] for a in consolidated if a["func"] == "addSheet"]
    assert added == [[i + 1, name] for i, name in enumerate(TOOL_TABS)]


def test_consolidate_writes_the_tab_model_block_by_block(consolidated, tabs):
    positions = {DASHBOARD: 0, **{name: i + 1 for i, name in enumerate(TOOL_TABS)}}
    writes = [a for a in consolidated if a["func"] == "setValues"]
    for name, tab in tabs.items():
        for placement in layout(tab).blocks:
            grid = block_cells(placement)
            match = [
                a for a in writes
                if a["sheet_position"] == positions[name] and a["start_row"] == placement.header_row - 1
            ]
            assert len(match) == 1, (name, placement.block.key)
            action = match[0]
            assert (action["row_count"], action["column_count"]) == (len(grid), len(grid[0]))
            written = [["" if v is None else v for v in row] for row in action["values"]]
            assert written == [["" if v is None else v for v in row] for row in grid]


def test_the_clusters_tab_carries_the_engine_numbers(consolidated, tabs, project):
    want = service.gap(project, PERIOD, ["C1_OUTPUT"])[0]
    tab = tabs["产业集群"]
    placement = layout(tab).blocks[0]
    block = placement.block
    i = [r[block.index("indicator_id")] for r in block.rows].index("C1_OUTPUT")
    write = next(
        a for a in consolidated
        if a["func"] == "setValues" and a["sheet_position"] == 1 and a["start_row"] == placement.header_row - 1
    )
    row = write["values"][1 + i]
    assert row[block.index("target")] == want.target == 375.0
    assert row[block.index("actual")] == want.actual == 300.0
    assert row[block.index("gap")] == want.gap
    sheet_row = placement.first_row + i - 1  # 0-based, as the add-in's actions count
    formats = {
        (a["start_column"], a["args"][0])
        for a in consolidated
        if a["func"] == "setNumberFormat" and a["sheet_position"] == 1
        and a["start_row"] <= sheet_row < a["start_row"] + a["row_count"]
    }
    assert (block.index("target"), "#,##0.00") in formats
    assert (block.index("completion"), "0.0%") in formats
    colours = {
        (a["start_column"], a["args"][0])
        for a in consolidated
        if a["func"] == "setRangeColor" and a["sheet_position"] == 1
        and a["start_row"] <= sheet_row < a["start_row"] + a["row_count"]
    }
    assert want.status == "behind"
    assert (block.index("status"), "#FFC7CE") in colours  # red: 滞后


def test_the_dashboard_shell_rows_are_left_alone(consolidated):
    on_dashboard = [a for a in consolidated if a["sheet_position"] == 0 and a["start_row"] is not None]
    assert on_dashboard
    assert min(a["start_row"] for a in on_dashboard) == DASHBOARD_FIRST_ROW - 1
    clear = [a for a in on_dashboard if a["func"] == "rangeClear"]
    assert len(clear) == 1 and clear[0]["start_row"] == DASHBOARD_FIRST_ROW - 1


def test_text_that_looks_like_a_formula_is_written_as_text(consolidated):
    texts = [v for a in consolidated if a["func"] == "setValues" for row in a["values"] for v in row if isinstance(v, str)]
    assert "'=HYPERLINK(\"http://x\")" in texts
    assert not any(t.startswith("=") for t in texts)


def test_the_result_is_an_alert_in_chinese(consolidated):
    alerts = [a for a in consolidated if a["func"] == "alert"]
    assert len(alerts) == 1
    prompt, title = alerts[0]["args"][:2]
    assert f"报告期 period: {PERIOD}" in prompt and "滞后 1" in prompt
    assert title == "计划跟踪 Plan tracker"


def test_the_period_cell_works_without_the_defined_name(runtime):
    actions = run_script(runtime, "consolidate", book_payload(2024.0, with_name=False))
    alert = next(a for a in actions if a["func"] == "alert")
    assert "报告期 period: 2024" in alert["args"][0]


def test_a_bad_period_is_an_alert_naming_the_cell_and_nothing_is_written(runtime):
    actions = run_script(runtime, "consolidate", book_payload("明年"))
    assert Counter(a["func"] for a in actions) == {"alert": 1}
    prompt = actions[0]["args"][0]
    assert "总览!B3" in prompt and "2025-Q3" in prompt


def test_existing_tool_tabs_are_replaced_and_other_sheets_kept(runtime):
    old = sheet_payload("产业集群", [["old"]])
    mine = sheet_payload("我的表", [["mine"]])
    actions = run_script(runtime, "refresh", book_payload(extra_sheets=[old, mine]))
    deleted = [a for a in actions if a["func"] == "sheetDelete"]
    assert len(deleted) == 1  # only the tool's own old tab
    assert [a["args"] for a in actions if a["func"] == "addSheet"][0] == [1, "产业集群"]
    assert actions[-1]["func"] == "calculate"  # refresh recalculates the PLAN_ cells


def test_generate_templates_macro_writes_files_for_the_period(runtime, project):
    pytest.importorskip("plan_tracker.templates")
    import xlwings as xw
    from plan_tracker import macros

    book = xw.Book(json=book_payload("2025-09"))
    try:
        result = macros.generate_templates(book)
        actions = book.json()["actions"]
    finally:
        book.close()
    assert result.ok, result.message
    assert result.files and all(Path(p).is_file() and p.suffix == ".xlsx" for p in result.files)
    assert all(project.templates in Path(p).parents for p in result.files)
    assert [a["func"] for a in actions] == ["alert"]


def test_consolidate_runs_the_intake_on_the_inbox(runtime, project):
    """A file in the inbox is taken in by the button (here rejected: not a template) and
    kept in rejected/, as plan-tracker consolidate would do."""
    pytest.importorskip("plan_tracker.intake")
    (project.inbox / "随便一个文件.txt").write_text("not a template", encoding="utf-8")
    actions = run_script(runtime, "consolidate", book_payload())
    alert = next(a for a in actions if a["func"] == "alert")["args"][0]
    assert "退回 1" in alert
    assert not list(project.inbox.iterdir())
    assert any("随便一个文件" in p.name for p in project.rejected.rglob("*"))


@pytest.mark.parametrize("script", ["consolidate", "refresh"])
def test_a_button_while_another_consolidation_runs_names_it_and_writes_nothing(runtime, project, script):
    """The buttons take the same lock as plan-tracker consolidate (plan_tracker.consolidate.prepare)."""
    import os

    with project.open_store() as store, store.exclusive("consolidate"):
        actions = run_script(runtime, script, book_payload())
    assert Counter(a["func"] for a in actions) == {"alert": 1}
    prompt = actions[0]["args"][0]
    assert prompt.startswith("未完成 / not done: 另一次汇总正在进行")
    assert f"进程 {os.getpid()}" in prompt and "another consolidation is running" in prompt
    # Released: the button works again.
    actions = run_script(runtime, script, book_payload())
    assert any(a["func"] == "setValues" for a in actions)
