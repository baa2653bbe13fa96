"""CLI commands for the master workbook: ``consolidate`` (the 汇总 button) and
``build-workbook``. Registered by ``plan_tracker.cli._register_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="项目文件夹 / project folder (else PLAN_TRACKER_HOME, else the current folder)"),
]
REPO_WORKBOOK = Path("workbook") / "plan_tracker.xlsm"


def register(app: typer.Typer) -> None:
    app.command("consolidate")(consolidate_command)
    app.command("build-workbook")(build_workbook_command)


def _user_error(message: str) -> Exception:
    from plan_tracker.cli import UserError

    return UserError(message)


def consolidate_command(
    project: ProjectOption = None,
    period: Annotated[str | None, typer.Option("--period", help="报告期 / period: 2025, 2025-Q3, 2025-09 … (else 总览!B3)")] = None,
    workbook: Annotated[Path | None, typer.Option("--workbook", "-w", help="主工作簿 / master workbook (default <project>/plan_tracker.xlsm)")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="另一次汇总正在进行时最多等待的秒数（定时任务可用 600）/ seconds to wait for a consolidation already running (0: stop at once with exit code 2; a scheduled job can pass 600)")] = 0,
) -> None:
    """汇总 / consolidate: read the inbox, compute every target and write the tabs into the master workbook.

    One consolidation of a project runs at a time: a second one waits up to --wait seconds,
    then stops with exit code 2 and a message naming who is running it."""
    from plan_tracker.cli import _project
    from plan_tracker.consolidate import consolidate
    from plan_tracker.workbook import WorkbookOpenError
    from rich.console import Console

    console = Console()
    try:
        report = consolidate(_project(project), workbook, period, wait=wait,
                             progress=lambda m: console.print(m, style="dim"))
    except WorkbookOpenError as exc:
        raise _user_error(str(exc)) from exc
    for line in report.summary_lines():
        console.print(line, highlight=False)


def _default_output(project: Path | None) -> Path:
    """Inside the repository the shipped workbook; elsewhere the project's own."""
    from plan_tracker.cli import _project

    repo_root = Path(__file__).resolve().parent.parent
    cwd = Path.cwd().resolve()
    if project is None and (cwd == repo_root or repo_root in cwd.parents) and (repo_root / "workbook").is_dir():
        return repo_root / REPO_WORKBOOK
    return _project(project).root / "plan_tracker.xlsm"


def build_workbook_command(
    project: ProjectOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="输出 / output .xlsm (default workbook/plan_tracker.xlsm in the repository, else <project>/plan_tracker.xlsm)")] = None,
    period: Annotated[str | None, typer.Option("--period", help="报告期 / report period for 总览!B3")] = None,
    force: Annotated[bool, typer.Option("--force", help="覆盖已有文件 / replace an existing file")] = False,
) -> None:
    """生成主工作簿 / build the master workbook: dashboard, buttons, VBA project and =PLAN_*() wrappers."""
    from rich.console import Console

    try:
        from plan_tracker.workbook import WorkbookOpenError, build_workbook
    except ModuleNotFoundError as exc:
        raise _user_error(f"工作簿模块不可用 / the workbook module is not available: {exc}") from exc

    target = output or _default_output(project)
    if target.exists() and not force:
        # Rebuilding replaces the coordinator's own sheets; consolidate keeps them.
        raise _user_error(
            f"{target} 已存在。重新生成会覆盖其中的全部内容（包括您自己的工作表）；确需重建请加 --force；"
            f"更新数据请用 plan-tracker consolidate / {target} exists: rebuilding would replace "
            "everything in it, your own sheets included. Add --force to rebuild, or run "
            "plan-tracker consolidate to update it."
        )
    try:
        path = build_workbook(target, period=period)
    except WorkbookOpenError as exc:
        raise _user_error(str(exc)) from exc
    Console().print(f"已生成 / built: {path}", highlight=False)
