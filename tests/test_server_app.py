"""xlwings Server's own FastAPI app serving the project folder ``server/``: the PLAN.* custom
functions and the button scripts, called in-process through ``TestClient`` the way the
Office.js add-in calls them, and compared with what ``plan-tracker gap`` prints.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import project_with_observations
from plan_tracker import cli, service
from plan_tracker.tabs import DASHBOARD, TOOL_TABS
from plan_tracker.udfs import core

SERVER_DIR = Path(__file__).resolve().parents[1] / "server"
PERIODS = [None, "2025-Q3", "2024"]
OBSERVATIONS = """\
indicator_id,period,value,department,note
O_IND_OUTPUT,2020,4000,统计局,
O_IND_OUTPUT,2024,6300,统计局,
O_IND_OUTPUT,2024-09,4700,统计局,
O_IND_OUTPUT,2025-09,5000,统计局,
C1_OUTPUT,2020,180,工信局,
C1_OUTPUT,2021,210,工信局,
C1_OUTPUT,2024,380,工信局,
C1_OUTPUT,2025-09,300,工信局,
P1_KEY_PROJECTS,2021,85,发改局,
P1_KEY_PROJECTS,2022,90,发改局,
P1_KEY_PROJECTS,2023,70,发改局,
P1_KEY_PROJECTS,2024,80,发改局,
P1_KEY_PROJECTS,2025-09,50,发改局,
P2_ENT_10B,2020,4,工信局,
P2_ENT_10B,2025-09,9,工信局,
P1_TASK_CHAIN_LEADER,2025-09,推进中,工信局,
"""
NA = {"type": "Error", "errorType": "NotAvailable"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    yield project_with_observations(tmp_path_factory.mktemp("server_app"), OBSERVATIONS)
    core.reset_cache()


SERVER_ENV = {
    "XLWINGS_PROJECT_DIR": str(SERVER_DIR),
    "XLWINGS_LICENSE_KEY": "noncommercial",
    "XLWINGS_ON_SERVER": "true",
    "XLWINGS_FUNCTIONS_NAMESPACE": "PLAN",
    "XLWINGS_ENVIRONMENT": "prod",
    "XLWINGS_ENABLE_SOCKETIO": "false",
    "XLWINGS_ENABLE_HOTRELOAD": "false",
}


@pytest.fixture(scope="module")
def client(project):
    """xlwings Server's app with server/ as its project folder, imported for this module
    only: its modules, sys.path entry and environment are undone afterwards."""
    from fastapi.testclient import TestClient

    before = set(sys.modules)
    saved_path = list(sys.path)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SERVER_ENV.items():
            mp.setenv(key, value)
        mp.setenv("PLAN_TRACKER_HOME", str(project.root))
        try:
            import xlwings_server.main

            with TestClient(xlwings_server.main.main_app) as test_client:
                yield test_client
        finally:
            for name in set(sys.modules) - before:
                if name.startswith(("xlwings_server", "custom_functions", "custom_scripts")):
                    del sys.modules[name]
            sys.path[:] = saved_path
            # xlwings_server's config sets this itself (os.environ, not monkeypatch)
            os.environ.pop("XLWINGS_ON_SERVER", None)


def office_call(func_name: str, *args: object) -> dict:
    import xlwings

    return {
        "client": "Office.js",
        "func_name": func_name,
        "args": [None if a is None else [[a]] for a in args],
        "caller_address": "[plan_tracker.xlsm]Sheet1!C4",
        "session_id": "test-session",
        "culture_info_name": "zh-CN",
        "date_format": "yyyy/m/d",
        "version": xlwings.__version__,
        "runtime": "1.4",
    }


@pytest.fixture(scope="module")
def cli_gap(project):
    """What ``plan-tracker gap --format json`` prints, per period and indicator."""
    out = {}
    for period in PERIODS:
        argv = ["gap", "--project", str(project.root), "--format", "json"]
        if period:
            argv += ["--period", period]
        buffer = _run_cli(argv)
        for row in json.loads(buffer):
            out[(row["indicator_id"], period)] = row
    return out


def _run_cli(argv: list[str]) -> str:
    import io

    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        assert cli.main(argv) == 0
        return sys.stdout.getvalue()
    finally:
        sys.stdout = saved


def test_functions_meta_and_code_are_served(client):
    meta = client.get("/xlwings/custom-functions-meta").json()
    names = {f["name"] for f in meta["functions"]}
    assert names == {"TARGET", "ACTUAL", "GAP", "PROGRESS", "STATUS", "PACE", "OUTLOOK", "TABLE"}
    code = client.get("/xlwings/custom-functions-code").text
    for name in names:
        assert f'CustomFunctions.associate("PLAN_{name}", PLAN_{name});' in code


def test_the_manifest_puts_the_functions_under_plan(client):
    manifest = client.get("/manifest").text
    assert '<bt:String id="Functions.Namespace" DefaultValue="PLAN" />' in manifest
    assert "/xlwings/custom-functions-meta" in manifest


def test_scripts_and_task_pane_are_served(client):
    scripts = {m["function_name"] for m in client.get("/xlwings/custom-scripts-meta").json()}
    assert scripts == {"consolidate", "refresh"}
    pane = client.get("/taskpane").text
    assert 'xw-click="consolidate"' in pane and "汇总 Consolidate" in pane


DETAILED = [
    "O_IND_OUTPUT", "O_IND_OUTPUT_GROWTH", "C1_OUTPUT", "C2_OUTPUT", "P1_KEY_PROJECTS",
    "P2_ENT_10B", "P1_TASK_CHAIN_LEADER", "O_CLUSTERS_500", "P5_DC_RACKS",
]


def _via_app(client, name: str, indicator: str, period: str | None) -> object:
    response = client.post("/xlwings/custom-functions-call", json=office_call(f"PLAN_{name}", indicator, period))
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _expected(value: object) -> list[list[object]]:
    return [[NA]] if value is None else [[value]]


def test_gap_and_status_of_every_indicator_are_what_plan_tracker_gap_prints(client, project, cli_gap):
    compared = 0
    for ind in service.read_catalogue(project):
        for period in PERIODS[:2]:
            want = cli_gap[(ind.id, period)]
            assert _via_app(client, "GAP", ind.id, period) == _expected(want["gap"]), (ind.id, period)
            assert _via_app(client, "STATUS", ind.id, period) == [[core.STATUS_ZH[want["status"]]]]
            compared += want["gap"] is not None
    assert compared >= 5


def test_every_function_returns_what_plan_tracker_gap_prints(client, cli_gap):
    fields = {
        "TARGET": "target", "ACTUAL": "actual", "GAP": "gap", "PROGRESS": "completion",
        "PACE": "required_pace", "OUTLOOK": "outlook",
    }
    compared = 0
    for ind_id in DETAILED:
        for period in PERIODS:
            want = cli_gap[(ind_id, period)]
            for name, key in fields.items():
                assert _via_app(client, name, ind_id, period) == _expected(want[key]), (ind_id, period, name)
                compared += want[key] is not None
    assert compared > 40


def test_table_through_the_app(client, cli_gap):
    response = client.post("/xlwings/custom-functions-call", json=office_call("PLAN_TABLE", "C1", "2025-Q3"))
    rows = response.json()["result"]
    assert rows[0][0] == "编号 id"
    row = rows[1]
    want = cli_gap[("C1_OUTPUT", "2025-Q3")]
    assert row[0] == "C1_OUTPUT" and row[3:6] == [want["target"], want["actual"], want["gap"]]


def test_bad_input_through_the_app(client):
    unknown = client.post("/xlwings/custom-functions-call", json=office_call("PLAN_GAP", "NO_SUCH", None))
    assert unknown.status_code == 200 and unknown.json()["result"] == [[NA]]
    bad_period = client.post("/xlwings/custom-functions-call", json=office_call("PLAN_GAP", "C1_OUTPUT", "13月"))
    # 400 + text: the add-in's JavaScript turns it into #VALUE! with this message.
    assert bad_period.status_code == 400
    assert "无法识别的期间" in bad_period.text and "Traceback" not in bad_period.text


def test_consolidate_script_through_the_app(client):
    import xlwings

    dashboard = [["" for _ in range(3)] for _ in range(10)]
    dashboard[2][:2] = ["报告期 Period", "2025-Q3"]
    sheet = {
        "name": DASHBOARD, "visibility": "Visible", "show_gridlines": True, "print_area": None,
        "notes": [], "notes_supported": True, "used_range_address": "A1:C10",
        "used_range_row_count": 10, "used_range_column_count": 3, "values": dashboard,
        "pictures": [], "shapes": [], "charts": [], "tables": [], "pivot_tables": [],
    }
    book = {
        "client": "Office.js", "version": xlwings.__version__,
        "book": {"name": "plan_tracker.xlsm", "active_sheet_index": 0, "selection": "B3", "calculation": "Automatic"},
        "names": [], "sheets": [sheet],
    }
    response = client.post("/xlwings/custom-scripts-call/consolidate", json=book)
    assert response.status_code == 200, response.text
    actions = response.json()["actions"]
    assert [a["args"][1] for a in actions if a["func"] == "addSheet"] == list(TOOL_TABS)
    alert = next(a for a in actions if a["func"] == "alert")
    assert "报告期 period: 2025-Q3" in alert["args"][0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_py_serves_the_add_in_on_localhost(project, tmp_path):
    """``python server/run.py`` starts uvicorn on 127.0.0.1 with server/ as the project."""
    port = _free_port()
    env = {**os.environ, **SERVER_ENV, "PLAN_TRACKER_HOME": str(project.root)}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_DIR / "run.py"), "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/xlwings/custom-functions-meta", timeout=2) as r:
                    meta = json.loads(r.read())
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())
                time.sleep(0.2)
        assert "GAP" in {f["name"] for f in meta["functions"]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/xlwings/custom-functions-call",
            data=json.dumps(office_call("PLAN_ACTUAL", "C1_OUTPUT", "2025-09")).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["result"] == [[300.0]]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
