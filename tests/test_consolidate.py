"""consolidate(): the period choice, creating the workbook, the lock file, intake, the CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from plan_tracker import service
from plan_tracker.cli import main
from plan_tracker.consolidate import STAMP_FILE, consolidate, read_period_choice
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


# --------------------------------------------------------------------------- nothing changed


def _workbook_state(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def _consolidations(project) -> int:
    with project.open_store() as store:
        log = store.audit_log()
    return int((log["action"] == "workbook_consolidated").sum())


def test_unchanged_rerun_writes_nothing_and_each_change_writes_again(project) -> None:
    path = project.root / "plan_tracker.xlsm"
    first = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    assert not first.unchanged and first.created_workbook
    state, audits = _workbook_state(path), _consolidations(project)

    again = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    assert again.unchanged and _workbook_state(path) == state and _consolidations(project) == audits
    assert again.backup is None and not (project.reports / "workbook-backups").exists()
    assert again.status_counts == first.status_counts and again.rows == first.rows
    assert again.tabs == first.tabs and again.intake is None
    lines = again.summary_lines()
    assert "无变化，未重写" in lines[0] and "nothing changed" in lines[0]
    assert lines[2] == first.summary_lines()[2]  # the status counts, as last written

    def rewritten(**kwargs: object) -> bool:
        report = consolidate(project, actor="test", **{"period": PERIOD, "today": TODAY, **kwargs})
        return not report.unchanged

    # A write to the store by anyone (here a setting) makes the next run render.
    with project.open_store() as store:
        store.set_setting("reporting.due_days", "12", actor="someone")
    assert rewritten() and not rewritten()
    # Another period, and back.
    assert rewritten(period="2025-08") and rewritten() and not rewritten()
    # Another day: lateness and "not yet due" depend on it.
    assert rewritten(today=TODAY.replace(day=TODAY.day + 1)) and rewritten() and not rewritten()
    # The catalogue edited.
    catalogue = project.root / "catalogue.csv"
    text = catalogue.read_text(encoding="utf-8-sig")
    edited = text.replace("Above-scale industrial output,", "Above-scale industrial output (edited),", 1)
    assert edited != text
    catalogue.write_text(edited, encoding="utf-8")
    assert rewritten() and not rewritten()
    # The workbook saved by someone else since our write (same content, new time).
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 2_000_000_000, stamp + 2_000_000_000))
    assert rewritten() and not rewritten()
    # The workbook replaced by a rebuilt one.
    build_workbook(path, period=PERIOD)
    assert rewritten() and not rewritten()
    # A damaged stamp file only costs one write.
    (project.root / STAMP_FILE).write_text("{not json", encoding="utf-8")
    assert rewritten() and not rewritten()
    # The dashboard's period choice (no --period): B3 edited and saved in Excel.
    set_b3(path, "2025-08")
    report = consolidate(project, actor="test", today=TODAY)
    assert not report.unchanged and report.period == "2025-08"
    assert consolidate(project, actor="test", today=TODAY).unchanged


def test_a_file_in_the_inbox_is_taken_in_even_when_nothing_else_changed(project) -> None:
    consolidate(project, period=PERIOD, actor="test", today=TODAY)
    (project.inbox / "工信局_新.xlsx").write_bytes(b"not a workbook")
    report = consolidate(project, period=PERIOD, actor="test", today=TODAY)
    if importlib.util.find_spec("plan_tracker.intake") is None:
        assert not report.unchanged  # no intake module: the file waits, the stamp decides
        return
    assert not report.unchanged and report.files_rejected == 1
    assert report.intake is not None and [f.status for f in report.intake.files] == ["rejected"]
    assert consolidate(project, period=PERIOD, actor="test", today=TODAY).unchanged


def test_unchanged_rerun_imports_neither_pandas_nor_pandera_nor_openpyxl(project) -> None:
    consolidate(project, period=PERIOD, actor="test", today=TODAY)
    code = textwrap.dedent(f"""
        import sys
        from datetime import date
        from pathlib import Path
        from plan_tracker.consolidate import consolidate
        from plan_tracker.project import Project
        report = consolidate(Project(Path({str(project.root)!r})), period={PERIOD!r},
                             actor="test", today=date.fromisoformat({TODAY.isoformat()!r}))
        print(report.unchanged, sorted({{"pandas", "pandera", "openpyxl"}} & set(sys.modules)))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "[]"]


def test_light_constants_match_their_sources(project) -> None:
    import plan_tracker.consolidate as cons
    from plan_tracker import tabs

    assert cons.DASHBOARD == tabs.DASHBOARD
    assert project.root / cons.CATALOGUE_FILE == service.project_catalogue_path(project)


def test_read_catalogue_is_cached_until_the_file_changes(project) -> None:
    first = service.read_catalogue(project)
    assert service.read_catalogue(project) is first
    path = service.project_catalogue_path(project)
    text = path.read_text(encoding="utf-8-sig")
    path.write_text(text.replace("Above-scale industrial output,", "Output (edited),", 1), encoding="utf-8")
    second = service.read_catalogue(project)
    assert second is not first and second.get("O_IND_OUTPUT").name_en == "Output (edited)"


def test_a_write_by_someone_else_during_the_render_is_not_stamped_as_seen(project, monkeypatch) -> None:
    import plan_tracker.render as render

    real = render.render_tabs

    def render_while_someone_writes(*args: object, **kwargs: object):
        with project.open_store() as other:  # another process's write, after our read
            other.set_setting("reporting.due_days", "15", actor="someone")
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_tabs", render_while_someone_writes)
    consolidate(project, period=PERIOD, actor="test", today=TODAY)
    monkeypatch.setattr(render, "render_tabs", real)
    assert not consolidate(project, period=PERIOD, actor="test", today=TODAY).unchanged
    assert consolidate(project, period=PERIOD, actor="test", today=TODAY).unchanged


# --------------------------------------------------------------------------- one at a time


def test_a_consolidation_already_running_is_named_and_nothing_is_touched(project, capsys) -> None:
    import socket

    from plan_tracker.consolidate import ConsolidationBusy
    from plan_tracker.store import StoreBusy

    path = build_workbook(project.root / "plan_tracker.xlsm", period=PERIOD)
    before = path.read_bytes()
    (project.inbox / "工信局_新.xlsx").write_bytes(b"not a workbook")
    with project.open_store() as holder, holder.exclusive("consolidate"):
        version = holder.data_version()
        with pytest.raises(ConsolidationBusy) as raised:
            consolidate(project, period=PERIOD, actor="test", today=TODAY, wait=0.3)
        busy = raised.value
        assert isinstance(busy, StoreBusy) and busy.waited >= 0.3
        text = str(busy)
        assert text.startswith("另一次汇总正在进行（用户 ") and "another consolidation is running" in text
        assert f"进程 {os.getpid()}" in text and socket.gethostname() in text and "--wait" in text
        # The CLI: exit 2 and the same message, no traceback.
        assert main(["consolidate", "--project", str(project.root), "--period", PERIOD]) == 2
        assert "另一次汇总正在进行" in " ".join(capsys.readouterr().err.split())
        assert holder.data_version() == version
    assert path.read_bytes() == before and (project.inbox / "工信局_新.xlsx").exists()
    # Released: the same call goes through.
    assert consolidate(project, period=PERIOD, actor="test", today=TODAY).tabs


def test_the_lock_is_held_for_the_whole_run(project, monkeypatch) -> None:
    """Even the write and the audit happen under the lock (not only the intake)."""
    import plan_tracker.render as render
    from plan_tracker.consolidate import ConsolidationBusy

    real, seen = render.render_tabs, []

    def render_and_try_the_lock(*args: object, **kwargs: object):
        with pytest.raises(ConsolidationBusy):
            consolidate(project, period=PERIOD, actor="other", today=TODAY)
        seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_tabs", render_and_try_the_lock)
    consolidate(project, period=PERIOD, actor="test", today=TODAY)
    assert seen == [True]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("set_to, killed", [(None, False), ("audited", False), ("locked", True)])
def test_the_crash_hook_kills_only_at_the_named_step(set_to: str | None, killed: bool) -> None:
    import signal

    from plan_tracker.consolidate import CRASH_ENV

    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if set_to:
        env[CRASH_ENV] = set_to
    code = "from plan_tracker.consolidate import crash_point; crash_point('locked'); print('alive')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if killed:
        assert done.returncode == -signal.SIGKILL and "alive" not in done.stdout
    else:
        assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr
