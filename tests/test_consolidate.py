"""consolidate(): the period choice, creating the workbook, the lock file, intake, the CLI."""

from __future__ import annotations

import importlib.util
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from plan_tracker import service
from plan_tracker.cli import main
from plan_tracker.consolidate import consolidate, read_period_choice
from plan_tracker.engine import STATUSES
from plan_tracker.periods import PeriodError
from plan_tracker.render import WorkbookOpenError
from plan_tracker.tabs import DASHBOARD, TOOL_TABS
from plan_tracker.workbook import build_workbook
from test_tabs import PERIOD, TODAY, make_project


def set_b3(path: Path, value: object) -> None:
    wb = openpyxl.load_workbook(path, keep_vba=True)
    wb[DASHBOARD]["B3"] = value
    wb.save(path)


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("cons") / "proj").root


@pytest.fixture
def project(project_root: Path, tmp_path: Path):
    """A fresh copy of the module's project for each test (consolidation writes to it)."""
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(project_root, root)
    return service.Project(root)


def test_creates_the_workbook_and_reads_the_period_from_the_dashboard(project) -> None:
    report = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    path = project.root / "plan_tracker.xlsm"
    assert report.created_workbook and report.workbook == path and report.backup is None
    assert report.period == PERIOD and report.period_source == "argument"
    names = openpyxl.load_workbook(path, keep_vba=True).sheetnames
    assert names[: 1 + len(TOOL_TABS)] == [DASHBOARD, *TOOL_TABS]
    with zipfile.ZipFile(path) as package:
        assert "xl/vbaProject.bin" in package.namelist()
    expected = {}
    for r in service.load_context(project).evaluate(PERIOD, today=TODAY):
        expected[r.status] = expected.get(r.status, 0) + 1
    assert report.status_counts == expected and set(report.status_counts) <= set(STATUSES)
    assert report.rows["数据明细"] > 0 and set(report.timings) >= {"tabs", "render", "total"}

    set_b3(path, "2025年8月")
    again = consolidate(project, actor="test", today=TODAY)
    assert (again.period, again.period_source) == ("2025-08", "总览!B3")
    assert not again.created_workbook and again.backup is not None and again.backup.is_file()
    ws = openpyxl.load_workbook(path, keep_vba=True)["产业集群"]
    assert "2025-08" in ws["A1"].value
    with project.open_store() as store:
        log = store.audit_log()
    assert (log["action"] == "workbook_consolidated").sum() == 2


@pytest.mark.parametrize(
    "value, expected",
    [("2025-Q3", "2025-Q3"), (datetime(2025, 9, 1), "2025-09"), (2024, "2024"), ("", None), (None, None)],
)
def test_period_choice_as_excel_stores_it(tmp_path: Path, value: object, expected: str | None) -> None:
    path = build_workbook(tmp_path / "w.xlsm")
    set_b3(path, value)
    assert read_period_choice(path) == expected


def test_bad_period_choice_names_the_cell(tmp_path: Path) -> None:
    path = build_workbook(tmp_path / "w.xlsm")
    set_b3(path, "下个月")
    with pytest.raises(PeriodError, match="B3"):
        read_period_choice(path)


def test_open_in_excel_refuses_before_doing_anything(project) -> None:
    path = build_workbook(project.root / "plan_tracker.xlsm", period=PERIOD)
    before, stamp = path.read_bytes(), path.stat().st_mtime_ns
    (project.root / "~$plan_tracker.xlsm").write_bytes(b"")
    with project.open_store() as store:
        version = store.data_version()
    with pytest.raises(WorkbookOpenError, match="Excel"):
        consolidate(project, actor="test", today=TODAY)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == stamp
    with project.open_store() as store:
        assert store.data_version() == version  # no intake, no audit
    assert not (project.reports / "workbook-backups").exists()


def test_cli_consolidate_and_build_workbook(project, capsys: pytest.CaptureFixture[str]) -> None:
    out = project.root / "book.xlsm"
    assert main(["build-workbook", "--project", str(project.root), "--output", str(out), "--period", PERIOD]) == 0
    assert main(["build-workbook", "--project", str(project.root), "--output", str(out)]) == 2
    assert "--force" in capsys.readouterr().err.replace("\n", "")
    assert main(["consolidate", "--project", str(project.root), "--workbook", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "总览!B3" in printed and "产业集群" in printed
    (project.root / "~$book.xlsm").write_bytes(b"")
    assert main(["consolidate", "--project", str(project.root), "--workbook", str(out)]) == 2
    assert "Excel" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("plan_tracker.intake") is None,
                    reason="plan_tracker.intake is not there yet (issue #3): real intake not exercised")
def test_consolidation_over_real_intake(project) -> None:
    from intake_helpers import fill_openpyxl, template_ids
    from plan_tracker.templates import generate_templates

    template = generate_templates(project, PERIOD, ["工信局"])[0]
    # First an incomplete file: rejected, and its problems listed with file, sheet and cell.
    fill_openpyxl(template, project.inbox / "工信局_初稿.xlsx", {"C2_OUTPUT": 1100})
    first = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    assert (first.files_accepted, first.files_rejected) == (0, 1)
    ws = openpyxl.load_workbook(first.workbook, keep_vba=True)["校验问题"]
    problems = [row for row in ws.iter_rows(values_only=True) if row[3] == "工信局_初稿.xlsx"]
    assert problems and all(row[4] and row[5] and row[6] for row in problems)

    # Then the complete file: accepted, the problems closed, the value in the tabs.
    catalogue = service.read_catalogue(project)
    values: dict[str, object] = {}
    for ind_id in template_ids(template):
        values[ind_id] = "推进中" if catalogue.get(ind_id).is_task else 100
    values.update({"C2_OUTPUT": 1100, "C3_OUTPUT": 1500})
    remarks = {ind_id: "已核实 checked" for ind_id in values}  # values far from the reference need one
    fill_openpyxl(template, project.inbox / "工信局_正式.xlsx", values, notes=remarks)
    report = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    assert (report.files_accepted, report.files_rejected) == (1, 0)
    c2 = service.load_context(project).result("C2_OUTPUT", PERIOD)
    assert c2.actual == 1100
    wb = openpyxl.load_workbook(report.workbook, keep_vba=True)
    rows = [row for row in wb["产业集群"].iter_rows(values_only=True) if row[1] == "C2_OUTPUT"]
    assert rows and rows[0][8] == 1100 and rows[0][7] == pytest.approx(c2.target)
    assert not [r for r in wb["校验问题"].iter_rows(values_only=True) if r[3] == "工信局_初稿.xlsx"]
    reporting = [r for r in wb["部门报送"].iter_rows(values_only=True) if r[:2] == ("工信局", PERIOD)]
    # received now, long after the 2025-10-10 due date
    assert reporting and reporting[0][4] == "已报送(逾期) late" and reporting[0][3] == "2025-10-10"
