"""``plan-tracker demo [DIR]``: the whole reporting cycle on built-in synthetic data (合成示例数据)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    directory: Annotated[Path, typer.Argument(help="演示项目文件夹（会被重建）/ demo project folder (rebuilt)")] = Path("demo-project"),
    period: Annotated[str, typer.Option(help="演示报告期 / reporting period of the demo (2025-03 … 2025-12)")] = "2025-09",
    pictures: Annotated[bool, typer.Option("--pictures/--no-pictures", help="用 LibreOffice 渲染总览 PDF/PNG / render the dashboard with LibreOffice")] = True,
) -> None:
    """演示 / run the demo on synthetic data: a project, three months of department files (some
    with typical mistakes), intake, consolidation into the master workbook, the dashboard picture."""
    from plan_tracker.cli import UserError
    from plan_tracker.demo import DemoError, print_summary, run_demo
    from rich.console import Console

    console = Console()
    console.print("[bold]plan-tracker 演示 / demo[/] — 所有数据均为合成示例数据 / all data are synthetic")
    try:
        with console.status("演示运行中 / running the demo …") as status:
            report = run_demo(directory, period, render_pictures=pictures, progress=status.update)
    except DemoError as exc:
        raise UserError(str(exc)) from exc
    print_summary(report, console)
