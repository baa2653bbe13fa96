"""The ``plan-tracker`` command: a thin layer over :mod:`plan_tracker.service`.

Every command takes ``--project DIR`` (else ``PLAN_TRACKER_HOME``, else the current folder),
exits 0 on success and, on bad input, non-zero with a message that says what to fix.
"""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from plan_tracker import __version__
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="西海岸新区制造业高质量发展实验区行动方案 目标跟踪 / plan-tracker: targets, gaps and reporting.",
    rich_markup_mode=None,
)
console = Console()
err = Console(stderr=True)

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="项目文件夹 / project folder (else PLAN_TRACKER_HOME, else the current folder)"),
]


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class UserError(Exception):
    """Bad input: print the message and exit 2."""


def _project(project: Path | None):
    from plan_tracker.project import find_project

    return find_project(project)


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _fmt(value: object, digits: int = 2) -> str:
    value = _clean(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _emit(rows: list[dict], fmt: Format, columns: list[str], table: Table | None = None) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps([{c: _clean(r.get(c)) for c in columns} for r in rows], ensure_ascii=False, indent=2))
        sys.stdout.write("\n")
    elif fmt is Format.csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if _clean(row.get(c)) is None else row.get(c)) for c in columns})
    else:
        console.print(table)


@app.command()
def version() -> None:
    """版本 / show the version."""
    console.print(f"plan-tracker {__version__}")


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="项目文件夹 / project folder to create")]) -> None:
    """新建项目 / create a project folder with its store, inbox/, archive/, rejected/, templates/, reports/."""
    from plan_tracker import service

    project = service.init(directory)
    console.print(f"已创建项目 / project ready: {project.root}")
    for name in ("inbox", "archive", "rejected", "templates", "reports"):
        console.print(f"  {name}/")


@app.command()
def indicators(
    project: ProjectOption = None,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
    group: Annotated[str | None, typer.Option(help="只看某一分组 / only one group (overall, C1..C8, P1..P5)")] = None,
) -> None:
    """指标目录 / list the catalogue: every target of the plan, and the tasks."""
    from plan_tracker.catalogue import EXPORT_COLUMNS, load_catalogue
    from plan_tracker.service import read_catalogue

    catalogue = read_catalogue(_project(project)) if _has_project(project) else load_catalogue()
    rows = [ind.export_row() for ind in catalogue if group is None or ind.group == group]
    table = Table(title=f"指标目录 Catalogue ({len(rows)})", show_lines=False)
    for label in ("编号 id", "名称 name", "分组 group", "单位 unit", "口径 measure", "规则 rule", "目标 milestones", "责任单位 owner"):
        table.add_column(label)
    for r in rows:
        table.add_row(r["id"], r["name_zh"], r["group"], r["unit"], r["measure"], r["rule"], r["milestones"], r["owner"])
    _emit(rows, format, EXPORT_COLUMNS, table)


def _has_project(project: Path | None) -> bool:
    from plan_tracker.project import ProjectError

    try:
        _project(project)
    except ProjectError:
        if project is not None:
            raise
        return False
    return True


@app.command("import-observations")
def import_observations(
    file: Annotated[Path, typer.Argument(help="CSV: indicator_id,period,value[,department,note]")],
    project: ProjectOption = None,
) -> None:
    """导入历史数据 / import long-format observations (statistics-bureau history, 2020 bases); all or nothing."""
    from plan_tracker import service

    if not file.is_file():
        raise UserError(f"找不到文件 / file not found: {file}")
    outcome = service.import_observations(_project(project), file)
    if outcome.duplicate_of is not None:
        console.print(f"该文件已导入过（提交 #{outcome.duplicate_of}），未重复计入 / already imported as submission #{outcome.duplicate_of}: nothing counted twice")
        return
    s = outcome.summary
    console.print(
        f"已导入 / imported {outcome.rows} 行 rows (提交 submission #{outcome.submission_id}): "
        f"新增 new {s.inserted}, 更正 changed {len(s.changed)}, 未变 unchanged {s.unchanged}"
    )
    for change in s.changed:
        console.print(f"  更正 / corrected {change.indicator_id} {change.period}: {change.describe()}")


@app.command()
def gap(
    project: ProjectOption = None,
    period: Annotated[str | None, typer.Option("--period", help="期间 / period: 2025, 2025-Q3, 2025-09, 2025年9月 …")] = None,
    indicator: Annotated[list[str] | None, typer.Option("--indicator", "-i", help="指标编号或中文名 / indicator id or Chinese name (repeatable)")] = None,
    format: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """目标差距 / target vs actual, gap, completion, status, required pace and outlook."""
    from plan_tracker import service
    from plan_tracker.engine import RESULT_COLUMNS, STATUS_ZH

    results = service.gap(_project(project), period, indicator or None)
    rows = [r.contract_row() for r in results]
    table = Table(title="目标差距 Target vs actual", show_lines=False)
    for label in ("编号 id", "名称 name", "期间 period", "目标 target", "实际 actual", "差距 gap", "完成率 completion", "序时 schedule", "状态 status", "所需增速 pace", "预计 outlook", "说明 note"):
        table.add_column(label, overflow="fold")
    colours = {"on_track": "green", "at_risk": "yellow", "behind": "red", "not_reported": "bright_black", "no_target": "bright_black"}
    for r in results:
        table.add_row(
            r.indicator_id,
            r.name_zh,
            r.period,
            _fmt(r.target),
            _fmt(r.actual),
            _fmt(r.gap),
            _fmt(r.completion, 3),
            _fmt(r.schedule, 3),
            f"[{colours[r.status]}]{STATUS_ZH[r.status]} {r.status}[/]",
            _fmt(r.required_pace),
            _fmt(r.outlook),
            r.note,
        )
    _emit(rows, format, RESULT_COLUMNS, table)


def _register_commands() -> None:
    """The commands of the intake, the workbook and the demo live beside their modules."""
    from plan_tracker import cli_demo, cli_intake, cli_workbook

    for module in (cli_intake, cli_workbook, cli_demo):
        module.register(app)


# Errors that mean "bad input": message and exit 2, no traceback. Named by module, so that a
# command that never loads a module (e.g. a no-change consolidation, which must stay under a
# second) does not pay for importing it just to catch its exceptions.
_USER_ERRORS = (
    ("plan_tracker.cli", "UserError"),
    ("plan_tracker.project", "ProjectError"),
    ("plan_tracker.periods", "PeriodError"),
    ("plan_tracker.store", "StoreError"),
    ("plan_tracker.catalogue", "UnknownIndicator"),
    ("plan_tracker.schemas.catalogue", "CatalogueError"),
    ("plan_tracker.schemas.observations", "ImportRejected"),
)


def _is_user_error(exc: BaseException) -> bool:
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; turns known errors into clear messages and exit codes."""
    import click

    _register_commands()
    try:
        app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, click.Abort):
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        err.print(f"[red]错误 / error:[/] {exc}", highlight=False, markup=True)
        return 2
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
