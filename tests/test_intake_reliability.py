"""Intake reliability (issue #7): one run at a time (real processes), open periods, a run that
stops after its commit or before it, and reading in worker processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from intake_helpers import fill_openpyxl, make_project
from plan_tracker import feedback as feedback_module
from plan_tracker import intake as intake_module
from plan_tracker.cli import main
from plan_tracker.intake import (
    FEEDBACK_PREFIX,
    OPEN_PERIODS_SETTING,
    OpenPeriodsError,
    close_period,
    open_period,
    open_periods,
    read_files,
    run_intake,
    set_open_periods,
)
from plan_tracker.service import read_catalogue
from plan_tracker.store import StoreError
from plan_tracker.templates import generate_templates
from test_intake import CLEAN, PERIOD

# A run that lingers while reading, so that a second run meets it. Prints what it did.
_SLOW_INTAKE = """
    import json, sys, time
    from pathlib import Path
    from plan_tracker import intake
    from plan_tracker.project import Project

    root, marker, actor, wait, linger = sys.argv[1:6]
    real = intake.read_files

    def slow(*args, **kwargs):
        Path(marker).write_text("reading")
        time.sleep(float(linger))
        return real(*args, **kwargs)

    intake.read_files = slow
    started = time.time()
    report = intake.run_intake(Project(Path(root)), actor=actor, wait=float(wait))
    print(json.dumps({"accepted": len(report.accepted), "rejected": len(report.rejected),
                      "duplicate": len(report.duplicates), "files": len(report.files),
                      "started": started, "ended": time.time()}))
"""


def _child(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(child: subprocess.Popen) -> dict:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the first intake ended before reading: {child.stderr.read()}")
        assert time.monotonic() < deadline, "the first intake never started reading"
        time.sleep(0.02)


def _inbox_with(project, template, count: int, staging: Path) -> list[str]:
    """``count`` different filled copies of ``template`` in the inbox, oldest first."""
    names = []
    for n in range(count):
        path = fill_openpyxl(template, staging / f"{n:02d}.xlsx", {**CLEAN, "P2_TECH_SME": 4650 + n})
        name = f"{n:02d}_2025-09_科技局_填报表.xlsx"
        shutil.copyfile(path, project.inbox / name)
        names.append(name)
    return names


@pytest.fixture
def sci(tmp_path):
    project = make_project(tmp_path / "p")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    return project, template


# --------------------------------------------------------------------------- one run at a time


def test_two_intake_runs_at_once_take_each_file_once(sci, tmp_path):
    project, template = sci
    names = _inbox_with(project, template, 6, tmp_path / "staging")
    markers = [tmp_path / "first.reading", tmp_path / "second.reading"]
    first = _child(_SLOW_INTAKE, project.root, markers[0], "scheduled-job", 60, 3)
    _wait_for(markers[0], first)
    second = _child(_SLOW_INTAKE, project.root, markers[1], "coordinator", 60, 0)
    done = [_finish(first), _finish(second)]
    assert done[1]["started"] < done[0]["ended"]  # the two runs did meet
    # The first read everything while the second waited for the lock; the second then found
    # an empty inbox. Without the lock both would have read (and stored) the same files.
    assert {k: done[0][k] for k in ("accepted", "rejected", "duplicate", "files")} == \
        {"accepted": 6, "rejected": 0, "duplicate": 0, "files": 6}
    assert done[1]["files"] == 0 and not markers[1].exists()
    with project.open_store() as store:
        subs = store.submissions()
        audit = store.audit_log()
    assert len(subs) == 6 and subs["sha256"].is_unique
    assert sorted(subs["file_name"]) == names
    assert (subs["status"] == "accepted").sum() == 1  # each later file superseded the one before
    assert not audit["action"].eq("intake_duplicate").any()
    assert list(project.inbox.iterdir()) == []
    assert len([p for p in project.archive.rglob("*.xlsx")]) == 6


def test_an_intake_that_cannot_wait_names_the_running_one(sci, tmp_path, capsys):
    project, template = sci
    _inbox_with(project, template, 2, tmp_path / "staging")
    marker = tmp_path / "first.reading"
    first = _child(_SLOW_INTAKE, project.root, marker, "scheduled-job", 0, 2)
    try:
        _wait_for(marker, first)
        started = time.monotonic()
        assert main(["intake", "--wait", "0.5", "--project", str(project.root)]) == 2
        assert time.monotonic() - started < 3.5  # it gave up after --wait, not after the run
        err = "".join(capsys.readouterr().err.split())  # the console wraps long lines
        assert "“intake”正由" in err and f"进程{first.pid}" in err and "alreadyrunning" in err
        assert "已等待0.5秒" in err
    finally:
        result = _finish(first)
    assert result["accepted"] == 2
    with project.open_store() as store:
        assert len(store.submissions()) == 2


# --------------------------------------------------------------------------- open periods


def test_a_template_of_a_closed_period_is_rejected_and_accepted_once_reopened(sci, tmp_path, capsys):
    project, template = sci
    june = generate_templates(project, "2025-06", ["科技局"])[0]
    june_values = {**CLEAN, "P2_TECH_SME": 4600, "P4_TECH_TRADE": 55.0}
    old = fill_openpyxl(june, tmp_path / "staging" / "2025-06_科技局_填报表.xlsx", june_values)
    # Unset: every period is open (today's behaviour): a June correction is accepted.
    shutil.copyfile(old, project.inbox / old.name)
    assert [f.status for f in run_intake(project, actor="test").files] == ["accepted"]

    root = ["--project", str(project.root)]
    assert main(["periods", "open", "2025-09", *root]) == 0
    assert "2025年9月" in capsys.readouterr().out
    again = fill_openpyxl(june, tmp_path / "staging" / "again.xlsx", {**june_values, "P4_TECH_TRADE": 56.0})
    shutil.copyfile(again, project.inbox / "2025-06_科技局_填报表.xlsx")
    fill_openpyxl(template, project.inbox / "2025-09_科技局_填报表.xlsx", CLEAN)
    report = run_intake(project, actor="test")
    by_period = {f.period: f for f in report.files}
    closed, current = by_period["2025-06"], by_period["2025-09"]
    assert current.status == "accepted"
    assert closed.status == "rejected" and [p.code for p in closed.errors] == ["period-closed"]
    (found,) = closed.errors
    assert "2025年6月" in found.message and "2025年9月" in found.message
    assert "重新开放" in found.hint and "本期模板" in found.hint
    assert closed.feedback_path.exists() and closed.path.exists()
    with project.open_store() as store:
        current_values = store.current_observations().set_index(["indicator_id", "period"])
    assert current_values.at[("P4_TECH_TRADE", "2025-06"), "value"] == 55.0  # the closed file changed nothing

    assert main(["periods", "open", "2025-Q2", *root]) == 0  # the same point in time as 2025-06
    shutil.copyfile(closed.path, project.inbox / "2025-06_科技局_填报表.xlsx")
    (reopened,) = run_intake(project, actor="test").files
    assert reopened.status == "accepted", [p.code for p in reopened.problems]
    with project.open_store() as store:
        current_values = store.current_observations().set_index(["indicator_id", "period"])
    assert current_values.at[("P4_TECH_TRADE", "2025-06"), "value"] == 56.0


def test_open_periods_setting_and_commands(sci, capsys):
    project, _ = sci
    root = ["--project", str(project.root)]
    with project.open_store() as store:
        assert open_periods(store) is None
        with pytest.raises(OpenPeriodsError):
            close_period(store, "2025-06", actor="t")
        assert [str(p) for p in open_period(store, "2025-09", actor="t")] == ["2025-09"]
        assert [str(p) for p in open_period(store, "2025年三季度", actor="t")] == ["2025-09"]  # same point
        assert [str(p) for p in open_period(store, "2025-08", actor="t")] == ["2025-09", "2025-08"]
        assert [str(p) for p in close_period(store, "2025-Q3", actor="t")] == ["2025-08"]
        assert close_period(store, "2025-08", actor="t") == []
        assert open_periods(store) == []  # every period closed: not the same as unset
        assert set_open_periods(store, None, actor="t") is None and open_periods(store) is None
        store.set_setting(OPEN_PERIODS_SETTING, "2025-09,九月", actor="someone")
        with pytest.raises(StoreError, match="periods open/close"):
            open_periods(store)
        set_open_periods(store, ["2025-09"], actor="t")
        audit = store.audit_log()
    assert audit["message"].str.contains(OPEN_PERIODS_SETTING).any()
    assert main(["periods", "list", *root]) == 0
    assert "2025年9月 (2025-09)" in capsys.readouterr().out
    assert main(["periods", "close", "2025-09", *root]) == 0
    assert "所有期间都已关闭" in capsys.readouterr().out
    assert main(["periods", "open", "--all", *root]) == 0
    assert main(["periods", "close", "2025-09", *root]) == 2
    assert "plan-tracker periods open" in capsys.readouterr().err
    assert main(["periods", "open", "不是期间", *root]) == 2


# --------------------------------------------------------------------------- stopped runs


def _rejected_file(project, template, tmp_path) -> Path:
    return fill_openpyxl(template, project.inbox / "words.xlsx", {**CLEAN, "P2_HITECH_ENT": "约1400"})


def test_a_lost_feedback_copy_is_written_by_the_next_run(sci, tmp_path, monkeypatch):
    project, template = sci
    _rejected_file(project, template, tmp_path)
    fill_openpyxl(template, project.inbox / "clean.xlsx", CLEAN)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(feedback_module, "write_feedback", crash)
    with pytest.raises(OSError):
        run_intake(project, actor="test")
    # Committed, but nothing moved and no feedback copy written.
    assert sorted(p.name for p in project.inbox.iterdir()) == ["clean.xlsx", "words.xlsx"]
    assert not any(project.rejected.glob(f"{FEEDBACK_PREFIX}*"))
    with project.open_store() as store:
        assert sorted(store.submissions()["status"]) == ["accepted", "rejected"]
    monkeypatch.undo()

    report = run_intake(project, actor="test")
    outcomes = {f.original_name: f for f in report.files}
    words = outcomes["words.xlsx"]
    assert words.status == "rejected" and "not-a-number" in {p.code for p in words.errors}
    assert words.feedback_path is not None and words.feedback_path.exists()
    assert words.feedback_path.name.startswith(f"{FEEDBACK_PREFIX}{words.sha256[:16]}_")
    assert outcomes["clean.xlsx"].status == "accepted"
    assert list(project.inbox.iterdir()) == []
    with project.open_store() as store:
        assert len(store.submissions()) == 2  # nothing counted twice


def test_a_feedback_copy_lost_after_a_crash_in_the_move_is_written_again(sci, tmp_path, monkeypatch):
    project, template = sci
    _rejected_file(project, template, tmp_path)

    def crash(src, dest, *batch):
        raise OSError("network share gone")

    monkeypatch.setattr(intake_module, "place_file", crash)
    with pytest.raises(OSError):
        run_intake(project, actor="test")
    (written,) = project.rejected.glob(f"{FEEDBACK_PREFIX}*")
    written.unlink()  # lost with the crash (e.g. a cache never flushed)
    monkeypatch.undo()
    (outcome,) = run_intake(project, actor="test").files
    assert outcome.status == "rejected" and outcome.feedback_path.exists()
    assert outcome.path.exists() and project.rejected in outcome.path.parents
    # and a copy that survived is not written twice
    assert len(list(project.rejected.glob(f"{FEEDBACK_PREFIX}*"))) == 1


def test_a_failure_before_the_commit_leaves_no_trace(sci, tmp_path, monkeypatch):
    project, template = sci
    names = _inbox_with(project, template, 3, tmp_path / "staging")
    _rejected_file(project, template, tmp_path)
    calls = []
    real = intake_module.Store.record_observations

    def fail_on_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("connection lost")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(intake_module.Store, "record_observations", fail_on_third)
    with project.open_store() as store:
        version = store.data_version()
    with pytest.raises(RuntimeError):
        run_intake(project, actor="test")
    with project.open_store() as store:
        assert len(store.submissions()) == 0 and len(store.observation_history()) == 0
        assert store.data_version() == version
    assert sorted(p.name for p in project.inbox.iterdir()) == sorted([*names, "words.xlsx"])
    assert not project.rejected.exists() or not any(project.rejected.iterdir())
    monkeypatch.undo()
    report = run_intake(project, actor="test")
    assert sorted(f.status for f in report.files) == ["accepted"] * 3 + ["rejected"]


# --------------------------------------------------------------------------- worker processes


@pytest.mark.skipif(intake_module._fork_context() is None, reason="no fork start method here: files are read in one process")
def test_reading_in_worker_processes_gives_the_same_result(sci, tmp_path):
    project, template = sci
    _inbox_with(project, template, 5, tmp_path / "staging")
    _rejected_file(project, template, tmp_path)
    (project.inbox / "not excel.xlsx").write_bytes(b"%PDF-1.4 not a workbook")
    jobs = [(p, p.name) for p in sorted(project.inbox.iterdir())]
    catalogue = read_catalogue(project)
    with project.open_store() as store:
        secret = store.secret()
    here = read_files(jobs, secret, catalogue, workers=1)
    pooled = read_files(jobs, secret, catalogue, workers=2)

    def plain(reads):  # NaN is not equal to itself: compare it as None
        return [(r.file, [{k: None if v != v else v for k, v in row.items()} for row in r.rows],
                 r.problems, r.period, r.openable) for r in reads]

    assert plain(pooled) == plain(here)
    assert {p.code for r in here for p in r.problems} >= {"not-a-number", "not-excel"}
    report = run_intake(project, actor="test", workers=2)
    assert report.workers == 2
    assert sorted(f.status for f in report.files) == ["accepted"] * 5 + ["rejected"] * 2
