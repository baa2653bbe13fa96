"""The project folder: layout, idempotent init, discovery order."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_tracker.project import SUBFOLDERS, Project, ProjectError, find_project, init_project
from plan_tracker.store import SCHEMA_VERSION, StoreError


def test_init_creates_the_layout_and_a_migrated_store(tmp_path: Path) -> None:
    project = init_project(tmp_path / "西海岸" / "proj")
    for name in SUBFOLDERS:
        assert (project.root / name).is_dir()
    assert project.inbox == project.root / "inbox"
    assert project.archive.name == "archive" and project.rejected.name == "rejected"
    assert project.templates.name == "templates" and project.reports.name == "reports"
    assert project.store_path == project.root / "plan_tracker.sqlite"
    readme = (project.root / "README.txt").read_text(encoding="utf-8")
    assert "收件箱" in readme and "inbox/" in readme
    with project.open_store() as store:
        assert store.schema_version == SCHEMA_VERSION


def test_init_is_idempotent_and_keeps_data_and_edits(tmp_path: Path) -> None:
    project = init_project(tmp_path)
    with project.open_store() as store:
        store.record_observations(
            [{"indicator_id": "K1", "period": "2025", "value": 1.0}], submission_id=None, actor="a"
        )
    (project.root / "README.txt").write_text("edited", encoding="utf-8")
    (project.inbox / "a.xlsx").write_bytes(b"x")

    again = init_project(tmp_path)
    assert again == project
    assert (again.root / "README.txt").read_text(encoding="utf-8") == "edited"
    assert (again.inbox / "a.xlsx").exists()
    with again.open_store() as store:
        assert store.current_observations()["value"].tolist() == [1.0]


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ProjectError, match="is a file"):
        init_project(target)


def test_find_project_order_explicit_then_env_then_cwd(tmp_path: Path) -> None:
    a, b, c = (init_project(tmp_path / name) for name in "abc")
    env = {"PLAN_TRACKER_HOME": str(b.root)}
    assert find_project(a.root, env=env, cwd=c.root) == a
    assert find_project(None, env=env, cwd=c.root) == b
    assert find_project(None, env={}, cwd=c.root) == c
    assert find_project(None, env={"PLAN_TRACKER_HOME": "  "}, cwd=c.root) == c


def test_find_project_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProjectError) as raised:
        find_project(None, env={"PLAN_TRACKER_HOME": str(empty)})
    message = str(raised.value)
    assert message.startswith("未找到项目")
    assert f"plan-tracker init {empty}" in message and "no project found" in message
    assert "PLAN_TRACKER_HOME" in message
    # An explicit folder is not silently replaced by the environment or the cwd.
    good = init_project(tmp_path / "good")
    with pytest.raises(ProjectError):
        find_project(empty, env={"PLAN_TRACKER_HOME": str(good.root)}, cwd=good.root)


def test_open_store_refuses_a_backend_it_does_not_have(tmp_path: Path, monkeypatch) -> None:
    project = init_project(tmp_path)
    monkeypatch.setenv("PLAN_TRACKER_DB", "mysql://db/plan")
    with pytest.raises(StoreError, match="not supported"):
        project.open_store()
    monkeypatch.delenv("PLAN_TRACKER_DB")
    assert isinstance(project, Project)
    project.open_store().close()
