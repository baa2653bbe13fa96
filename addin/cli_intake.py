"""``plan-tracker templates`` and ``plan-tracker intake`` (registered by ``plan_tracker.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="项目文件夹 / project folder (else PLAN_TRACKER_HOME, else the current folder)"),
]
MAX_LINES = 8
STATUS_ZH = {"accepted": "[green]已接收 accepted[/]", "rejected": "[red]已退回 rejected[/]", "duplicate": "[bright_black]重复 duplicate[/]"}


def templates(
    period: Annotated[str, typer.Option("--period", help="期间 / period: 2025-09, 2025-Q3, 2025年9月 …")],
    department: Annotated[list[str] | None, typer.Option("--department", "-d", help="填报单位 / department (repeatable; default: all)")] = None,
    project: ProjectOption = None,
) -> None:
    """生成填报模板 / write one .xlsx template per department under templates/<period>/."""
    from plan_tracker.cli import UserError
    from plan_tracker.project import find_project
    from plan_tracker.templates import TemplateError, generate_templates

    proj = find_project(project)
    try:
        paths = generate_templates(proj, period, department or None)
    except TemplateError as exc:
        raise UserError(str(exc)) from exc
    table = Table(title=f"填报模板 Templates ({len(paths)})")
    table.add_column("填报单位 department")
    table.add_column("文件 file", overflow="fold")
    for path in paths:
        table.add_row(Text(path.name.split("_")[1]), Text(str(path.relative_to(proj.root))))
    console.print(table)


def intake(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只显示将会发生什么，不做任何改动 / show what would happen, change nothing")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, help="另一次导入正在进行时最多等待的秒数 / seconds to wait while another intake runs")] = 30.0,
    project: ProjectOption = None,
) -> None:
    """导入报表 / validate every file in inbox/: accepted → archive/, rejected → rejected/ with a feedback copy.

    One intake at a time: while another runs (a scheduled job, a coordinator's button), this
    one waits up to --wait seconds, then stops naming who holds it (exit code 2)."""
    from plan_tracker.intake import run_intake
    from plan_tracker.project import find_project

    proj = find_project(project)
    report = run_intake(proj, dry_run=dry_run, wait=wait)
    if not report.files:
        console.print(f"收件箱为空 / inbox is empty: {proj.inbox}")
        return
    title = "导入预览（未做任何改动） / intake dry run: nothing changed" if dry_run else "导入结果 / intake"
    table = Table(title=title, show_lines=True)
    for label in ("文件 file", "结果 status", "单位 department", "期间 period", "提交 #", "说明 detail"):
        table.add_column(label, overflow="fold")
    for f in report.files:
        if f.status == "duplicate":
            detail = f"与提交 #{f.duplicate_of} 内容相同，未重复计入 / same as submission #{f.duplicate_of}"
        else:
            lines = [f"[{p.code}] {p.cell or ''} {p.message}" for p in f.errors]
            lines += [f"提示 [{p.code}] {p.cell or ''} {p.message}" for p in f.warnings]
            if len(lines) > MAX_LINES:
                hidden = len(lines) - MAX_LINES
                lines = [*lines[:MAX_LINES], f"…另有 {hidden} 项，见反馈表 / {hidden} more, see the feedback copy"]
            if f.status == "accepted":
                lines.insert(0, f"记录 {f.stored} 个数值 / {f.stored} values stored" if not dry_run else f"将记录 {f.stored} 个数值 / would store {f.stored}")
                lines += [f"更正 / changed {c}" for c in f.changes]
            elif f.feedback_path is not None:
                lines.append(f"反馈表 / feedback: {f.feedback_path.name}")
            detail = "\n".join(lines)
        # Text(): file names and messages quote what people typed; never read it as markup.
        table.add_row(
            Text(f.original_name), STATUS_ZH[f.status], Text(f.department or "—"), f.period or "—",
            "—" if f.submission_id is None else str(f.submission_id), Text(detail),
        )
    console.print(table, highlight=False)
    console.print(
        f"已接收 accepted {len(report.accepted)}，已退回 rejected {len(report.rejected)}，"
        f"重复 duplicate {len(report.duplicates)}" + ("（预览 / dry run）" if dry_run else "")
    )


periods_app = typer.Typer(
    help="报送期间 / which periods are open for reporting (templates of a closed period are rejected)",
    no_args_is_help=True,
)


@periods_app.command("list")
def periods_list(project: ProjectOption = None) -> None:
    """开放的期间 / list the periods open for reporting."""
    from plan_tracker.intake import open_periods
    from plan_tracker.project import find_project

    with find_project(project).open_store() as store:
        _show_open(open_periods(store))


@periods_app.command("open")
def periods_open(
    period: Annotated[list[str] | None, typer.Argument(help="期间 / period: 2025-09, 2025-Q3, 2025年9月 …")] = None,
    all_periods: Annotated[bool, typer.Option("--all", help="所有期间都开放（默认状态） / every period open (the default)")] = False,
    project: ProjectOption = None,
) -> None:
    """开放期间 / open periods for reporting. The first period opened ends "every period open":
    from then on only the listed periods accept templates."""
    from plan_tracker.cli import UserError
    from plan_tracker.intake import open_period, set_open_periods
    from plan_tracker.project import find_project
    from plan_tracker.store import default_actor

    if all_periods == bool(period):
        raise UserError("请给出期间，或用 --all / name one or more periods, or use --all")
    with find_project(project).open_store() as store:
        if all_periods:
            _show_open(set_open_periods(store, None, actor=default_actor()))
            return
        current = None
        for text in period or []:
            current = open_period(store, text, actor=default_actor())
        _show_open(current)


@periods_app.command("close")
def periods_close(
    period: Annotated[list[str], typer.Argument(help="期间 / period: 2025-06, 2025-Q2 …")],
    project: ProjectOption = None,
) -> None:
    """关闭期间 / close periods: their templates are then rejected (period-closed)."""
    from plan_tracker.cli import UserError
    from plan_tracker.intake import OpenPeriodsError, close_period
    from plan_tracker.project import find_project
    from plan_tracker.store import default_actor

    with find_project(project).open_store() as store:
        current = None
        for text in period:
            try:
                current = close_period(store, text, actor=default_actor())
            except OpenPeriodsError as exc:
                raise UserError(str(exc)) from exc
        _show_open(current)


def _show_open(periods: list | None) -> None:
    if periods is None:
        console.print("所有期间都开放（未设置） / every period is open (not restricted)")
    elif not periods:
        console.print("[yellow]所有期间都已关闭 / every period is closed[/]: 任何模板都会被退回 / every template is rejected")
    else:
        shown = "、".join(f"{p.label_zh()} ({p})" for p in periods)
        console.print(f"开放的期间 / open periods: {shown}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("templates")(templates)
    app.command("intake")(intake)
    app.add_typer(periods_app, name="periods")
