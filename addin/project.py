"""The project folder: where the store lives and where files come and go.

```
<project>/
  plan_tracker.sqlite   the store (system of record)
  inbox/                department files waiting to be imported
  archive/              accepted files, as received
  rejected/             rejected files, with feedback
  templates/            templates generated for departments
  reports/              exported reports
  README.txt            this layout, in Chinese, for the coordinator
```

The folder is found from ``--project DIR``, else ``PLAN_TRACKER_HOME``, else the current
folder — deliberately not by searching parent folders, so a command never silently works on
a different project than the one the coordinator is standing in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .store import DB_FILE_NAME, Store, open_store

SUBFOLDERS = ("inbox", "archive", "rejected", "templates", "reports")

README_TEXT = """\
计划跟踪项目文件夹（plan-tracker）
================================

本文件夹由 plan-tracker init 创建，请勿手工修改 plan_tracker.sqlite。

  plan_tracker.sqlite  数据库：各部门报送的数据、修改历史、审计日志（系统的正式记录）
  inbox/               收件箱：把各部门交回的 Excel 报表放在这里，再运行导入
  archive/             已接收：导入成功的原始文件按原样归档在这里
  rejected/            已退回：未通过校验的文件及问题说明，请按说明修改后重新报送
  templates/           报表模板：为各部门生成的填报模板
  reports/             报告：导出的汇总表与报告

备份时请复制整个文件夹（在没有人导入数据时）。
Project folder of plan-tracker: inbox/ → import → archive/ or rejected/; templates/ and
reports/ hold generated files; plan_tracker.sqlite is the system of record.
"""


class ProjectError(Exception):
    """No usable project folder; the message says (Chinese first, then English) what to do."""


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def store_path(self) -> Path:
        return self.root / DB_FILE_NAME

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def open_store(self) -> Store:
        return open_store(self.store_path)


def init_project(root: Path) -> Project:
    """Create (or complete) a project folder and its store. Safe to run again: existing
    data, files and an edited README are left as they are."""
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise ProjectError(
            f"{root} 是文件而不是文件夹，请换一个路径 / {root} is a file, not a folder: "
            "choose another path"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in SUBFOLDERS:
            (root / name).mkdir(exist_ok=True)
        readme = root / "README.txt"
        if not readme.exists():
            readme.write_text(README_TEXT, encoding="utf-8")
    except OSError as exc:
        raise ProjectError(
            f"无法创建项目文件夹 {root}：{exc.strerror}，请检查权限 / cannot create project "
            f"folder {root}: {exc}"
        ) from exc
    project = Project(root.resolve())
    Store.open(project.store_path).close()
    return project


def find_project(
    explicit: Path | None = None,
    env: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Project:
    """The project to work on: ``--project DIR``, else ``PLAN_TRACKER_HOME``, else ``cwd``."""
    if explicit is not None:
        folder, source = Path(explicit), "--project"
    elif env.get("PLAN_TRACKER_HOME", "").strip():
        folder, source = Path(env["PLAN_TRACKER_HOME"].strip()), "PLAN_TRACKER_HOME"
    else:
        folder, source = Path(cwd) if cwd is not None else Path.cwd(), "当前文件夹 / current folder"
    folder = folder.expanduser()
    if not (folder / DB_FILE_NAME).is_file():
        raise ProjectError(
            f"未找到项目：{folder}（来自 {source}）中没有 {DB_FILE_NAME}。请先运行 "
            f"plan-tracker init {folder}，或用 --project DIR / PLAN_TRACKER_HOME 指定项目文件夹"
            f" / no project found in {folder} (from {source}): run "
            f"`plan-tracker init {folder}` first, or pass --project DIR or set PLAN_TRACKER_HOME"
        )
    return Project(folder.resolve())
