"""``plan-tracker demo [DIR]``: the whole thing on built-in synthetic data (合成示例数据)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    directory: Annotated[Path, typer.Argument(help="演示项目文件夹 / demo project folder")] = Path("demo-project"),
    period: Annotated[str, typer.Option(help="演示报告期 / reporting period of the demo")] = "2025-09",
) -> None:
    """演示 / run the demo on synthetic data: a project, the sample history and the gap table."""
    from plan_tracker import service
    from plan_tracker.cli import gap
    from plan_tracker.sample import SAMPLE_CSV
    from rich.console import Console

    console = Console()
    console.print("[bold]plan-tracker 演示 / demo[/] — 所有数据均为合成示例数据 / all data are synthetic")
    project = service.init(directory)
    outcome = service.import_observations(project, SAMPLE_CSV)
    console.print(f"项目 / project: {project.root}；示例数据 / sample rows: {outcome.rows}")
    gap(project=project.root, period=period, indicator=None)
