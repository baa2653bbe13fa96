"""The demo (`plan-tracker demo`): the whole cycle on synthetic data, checked end to end."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from plan_tracker import service
from plan_tracker.cli import main
from plan_tracker.demo import (
    CORRECTED_DEPARTMENT,
    DEMO_MARKER,
    MISTAKES,
    SUPERSEDED_INDICATOR,
    SUPERSEDING_DEPARTMENT,
    DemoError,
    DemoReport,
    run_demo,
    worst_gaps,
)
from plan_tracker.engine import STATUS_ZH, STATUSES
from plan_tracker.intake import FEEDBACK_PREFIX
from plan_tracker.sample import SYNTHETIC_NOTE
from plan_tracker.tabs import DASHBOARD, DETAIL, TOOL_TABS
from rich.console import Console

PERIOD = "2025-09"
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


class Run:
    def __init__(self, report: DemoReport, printed: str) -> None:
        self.report = report
        self.printed = printed
        self.project = report.project


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    report = run_demo(tmp_path_factory.mktemp("demo") / "demo-project", PERIOD, render_pictures=False, console=console)
    return Run(report, out.getvalue())


def test_the_workbook_has_every_output_tab(run: Run) -> None:
    path = run.project.root / "plan_tracker.xlsm"
    assert run.report.workbook == path and path.is_file()
    names = openpyxl.load_workbook(path, keep_vba=True, read_only=True).sheetnames
    assert names[: 1 + len(TOOL_TABS)] == [DASHBOARD, *TOOL_TABS]


def test_twenty_or_more_department_submissions_arrive_over_three_months(run: Run) -> None:
    with run.project.open_store() as store:
        subs = store.submissions()
    received = subs[subs["kind"] == "template"]
    assert len(received) >= 20
    assert set(received["period"]) == {"2025-07", "2025-08", "2025-09"}
    assert received["department"].nunique() >= 10
    assert len(run.report.files) == len(received)


def test_each_typical_mistake_is_rejected_with_its_code_and_a_feedback_copy(run: Run) -> None:
    rejected = {f.original_name: f for f in run.report.rejected}
    assert len(rejected) == len(MISTAKES)
    for mistake in MISTAKES:
        name = f"{PERIOD}_{mistake.department}_填报表.xlsx"
        assert name in rejected, (name, sorted(rejected))
        outcome = rejected[name]
        assert mistake.code in {p.code for p in outcome.errors}, (name, [p.code for p in outcome.errors])
        assert outcome.feedback_path is not None and outcome.feedback_path.is_file()
        assert outcome.feedback_path.parent == run.project.rejected
        assert outcome.archive_path is not None and outcome.archive_path.is_file()
    with run.project.open_store() as store:
        subs = store.submissions()
    assert sorted(subs.loc[subs["status"] == "rejected", "file_name"]) == sorted(rejected)


def test_the_corrected_files_are_accepted_and_the_correction_supersedes(run: Run) -> None:
    with run.project.open_store() as store:
        stats = store.submissions(department=SUPERSEDING_DEPARTMENT, period=PERIOD)
        science = store.submissions(department=CORRECTED_DEPARTMENT, period=PERIOD)
        current = store.current_observations()
        history = store.observation_history(SUPERSEDED_INDICATOR, PERIOD)
    assert list(stats["status"]) == ["superseded", "accepted"]
    assert stats["file_name"].iloc[1].endswith("（更正）.xlsx")
    assert list(science["status"]) == ["rejected", "accepted"]
    row = current[(current["indicator_id"] == SUPERSEDED_INDICATOR) & (current["period"] == PERIOD)].iloc[0]
    assert "更正" in row["note"]
    assert int(row["submission_id"]) == int(stats["submission_id"].iloc[1])
    # The first value is kept in the history, not replaced silently.
    assert len(history) >= 2 and len(set(history["value"].round(2))) == 2
    assert [s["submission_id"] for s in run.report.superseded] == [int(stats["submission_id"].iloc[0])]


def test_the_printed_status_counts_are_the_engines(run: Run) -> None:
    engine = Counter(r.status for r in service.gap(run.project, PERIOD))
    assert run.report.status_counts == dict(engine)
    for status in STATUSES:
        match = re.search(rf"{STATUS_ZH[status]} {status}\s*[│|]\s*(\d+)", run.printed)
        assert match, status
        assert int(match.group(1)) == engine.get(status, 0)


def test_the_worst_gaps_are_lagging_indicators_in_order(run: Run) -> None:
    results = service.gap(run.project, PERIOD)
    worst = run.report.worst
    assert worst == worst_gaps(results) and 0 < len(worst) <= 8
    assert all(r.status in ("behind", "at_risk") for r in worst)
    lags = [r.completion - (r.schedule if r.schedule is not None else 1.0) for r in worst]
    assert lags == sorted(lags)
    for r in worst:
        assert r.name_zh in run.printed


def test_synthetic_data_is_marked_in_the_workbook_and_the_summary(run: Run) -> None:
    wb = openpyxl.load_workbook(run.report.workbook, keep_vba=True)
    assert "合成示例数据 synthetic" in wb[DASHBOARD]["A2"].value
    detail = [c for row in wb[DETAIL].iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert any(SYNTHETIC_NOTE in c for c in detail)
    assert "合成示例数据 synthetic" in run.printed
    # Every stored value came from the synthetic world and says so.
    with run.project.open_store() as store:
        notes = store.current_observations()["note"].dropna()
    assert len(notes) and notes.str.contains(SYNTHETIC_NOTE, regex=False).all()


def test_every_inbox_file_ends_in_archive_or_rejected(run: Run) -> None:
    assert not any(run.project.inbox.iterdir())
    archived = [p for p in run.project.archive.rglob("*") if p.is_file()]
    rejected = [p for p in run.project.rejected.iterdir() if p.is_file() and not p.name.startswith(FEEDBACK_PREFIX)]
    assert len(archived) == len(run.report.accepted)
    assert len(rejected) == len(run.report.rejected)
    assert len(archived) + len(rejected) == len(run.report.files)


def test_the_summary_names_the_rejected_files_and_the_elapsed_time(run: Run) -> None:
    for f in run.report.rejected:
        assert f.original_name in run.printed
    assert re.search(r"用时 / elapsed: \d+\.\d s", run.printed)
    assert run.report.elapsed < 60


def test_a_folder_that_is_not_a_demo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DemoError, match="not empty"):
        run_demo(tmp_path, render_pictures=False)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert not (tmp_path / DEMO_MARKER).exists()


@pytest.mark.parametrize("period", ["2025", "2025-02", "2024-09", "2025-Q3"])
def test_a_period_outside_the_synthetic_months_is_refused(tmp_path: Path, period: str) -> None:
    with pytest.raises(DemoError, match="2025"):
        run_demo(tmp_path / "d", period, render_pictures=False)
    assert not (tmp_path / "d").exists()


def test_the_cli_reports_a_bad_period_as_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", str(tmp_path / "d"), "--period", "2024-09", "--no-pictures"]) == 2
    assert "2025" in capsys.readouterr().err


@pytest.mark.libreoffice
@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed")
def test_pictures_of_the_dashboard_are_rendered(tmp_path_factory: pytest.TempPathFactory) -> None:
    report = run_demo(tmp_path_factory.mktemp("demo-pictures") / "demo", PERIOD, render_pictures=True)
    assert report.render_note == ""
    assert report.pdf is not None and report.pdf.parent == report.project.reports
    assert report.png is not None and report.png.parent == report.project.reports
    assert report.pdf.read_bytes()[:5] == b"%PDF-" and report.pdf.stat().st_size > 10_000
    assert report.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report.png.stat().st_size > 10_000
    gs = shutil.which("gs")
    if gs is not None:  # the dashboard itself, with its synthetic banner, is what was drawn
        text = subprocess.run([gs, "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=txtwrite", "-sOutputFile=-", str(report.pdf)],
                              capture_output=True, timeout=120).stdout.decode("utf-8", "replace")
        assert "合成示例数据 synthetic" in text and "Dashboard" in text
