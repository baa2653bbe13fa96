"""演示 / the demo: the whole reporting cycle on synthetic data (合成示例数据), in one call.

:func:`run_demo` builds a project in a folder and plays three months of reporting the way a
coordinator's office lives them:

1. **history** — the synthetic history (:mod:`plan_tracker.sample`) up to the month before
   the first reporting month is imported as the statistics bureau's back data;
2. **three reporting months** — for each month the templates are generated and filled with
   openpyxl as departments fill them (numbers, but also ``１２３．５``, ``1,234.5``,
   ``820亿元`` and a ``待核实``), dropped into ``inbox/`` and taken in by intake;
3. **typical mistakes** in the last month — a word in a number cell, a percentage over 100,
   last month's template sent again, an outlier without remark, a department sending another
   department's template — are rejected with feedback copies; one department corrects its
   file, another sends a correction of an accepted one, which supersedes it;
4. **consolidation** into ``<DIR>/plan_tracker.xlsm`` and, where LibreOffice is installed,
   the dashboard (总览) rendered to PDF and PNG in ``<DIR>/reports/``.

Every figure is invented and says so: the notes of every value, the history file's name and
department, the workbook's dashboard (``总览!A2``) and the printed summary.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
from plan_tracker import service
from plan_tracker.catalogue import Catalogue, Indicator
from plan_tracker.consolidate import ConsolidationReport, consolidate, default_workbook_path
from plan_tracker.engine import STATUS_ZH, STATUSES, GapResult
from plan_tracker.intake import FileOutcome, IntakeReport, run_intake
from plan_tracker.periods import Period, parse_period
from plan_tracker.project import Project
from plan_tracker.sample import SYNTHETIC_NOTE, sample_observations
from plan_tracker.tabs import DASHBOARD
from plan_tracker.templates import (
    department_indicators,
    fill_template,
    generate_templates,
)

__all__ = [
    "DEMO_MARKER",
    "DemoError",
    "DemoReport",
    "MISTAKES",
    "SYNTHETIC_BANNER",
    "print_summary",
    "render_dashboard",
    "run_demo",
]

DEMO_MARKER = ".plan-tracker-demo"
ACTOR = "demo"
SYNTHETIC_BANNER = (
    "合成示例数据 synthetic — 本工作簿中的全部数字均为演示用虚构数据，并非真实统计。"
    " / Every figure in this workbook is invented for the demo; none is a real statistic."
)
HISTORY_DEPARTMENT = "统计局（合成历史 synthetic history）"
REPORT_MONTHS = 3  # the demo period and the two months before it arrive as submissions
WORST_SHOWN = 8


class DemoError(Exception):
    """The demo cannot run as asked (folder in use, period outside the sample)."""


@dataclass(frozen=True)
class Mistake:
    """A typical error a department makes, and the code intake must answer it with."""

    department: str
    code: str
    what_zh: str
    what_en: str


#: The mistakes made in the demo period, one department each (see :func:`_fill_department`).
MISTAKES: tuple[Mistake, ...] = (
    Mistake("科技局", "not-a-number", "数字单元格里写了文字“约…”", "a word in a number cell"),
    Mistake("自然资源局", "out-of-range", "百分比填了 130", "a percentage over 100"),
    Mistake("商务局", "period-mismatch", "沿用上月模板", "last month's template sent again"),
    Mistake("大数据局", "outlier-no-remark", "数值放大十倍且无备注", "a tenfold value without remark"),
    Mistake("人社局", "department-mismatch", "用了发改局的模板", "another department's template"),
)
#: 科技局 sends its file again, corrected (accepted); 统计局 corrects an accepted file (supersedes).
CORRECTED_DEPARTMENT = "科技局"
SUPERSEDING_DEPARTMENT = "统计局"
SUPERSEDED_INDICATOR = "O_IND_OUTPUT"


@dataclass
class MonthBatch:
    period: str
    intake: IntakeReport
    label: str = ""


@dataclass
class DemoReport:
    project: Project
    period: str
    workbook: Path
    history_rows: int
    batches: list[MonthBatch]
    consolidation: ConsolidationReport
    status_counts: dict[str, int]
    worst: list[GapResult]
    superseded: list[dict]
    pdf: Path | None = None
    png: Path | None = None
    render_note: str = ""
    elapsed: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def files(self) -> list[FileOutcome]:
        return [f for b in self.batches for f in b.intake.files]

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    @property
    def accepted(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "accepted"]


# --------------------------------------------------------------------------- the folder


def _prepare(directory: Path) -> Project:
    """A fresh demo project. A folder of an earlier demo is rebuilt; any other non-empty
    folder is refused, so the demo never overwrites somebody's real project."""
    directory = Path(directory).expanduser()
    if directory.exists():
        if not directory.is_dir():
            raise DemoError(f"{directory} 是文件，请换一个文件夹 / {directory} is a file: choose a folder")
        if any(directory.iterdir()):
            if not (directory / DEMO_MARKER).is_file():
                raise DemoError(
                    f"文件夹 {directory} 不是空的，也不是演示项目；为免覆盖数据，请换一个文件夹"
                    f" / {directory} is not empty and not a demo project: choose another folder"
                )
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text(
        "plan-tracker demo: 合成示例数据 synthetic; this folder is rebuilt by every `plan-tracker demo`.\n",
        encoding="utf-8",
    )
    return service.init(directory, actor=ACTOR)


def _months(period: str) -> list[Period]:
    parsed = parse_period(period)
    if parsed.kind != "M" or parsed.year != 2025 or parsed.index < REPORT_MONTHS:
        raise DemoError(
            f"演示报告期须为 2025 年 {REPORT_MONTHS}–12 月，如 2025-09 / the demo period must be a month of "
            f"2025 from {REPORT_MONTHS} to 12, e.g. 2025-09 (got {period})"
        )
    return [parsed.with_month(m) for m in range(parsed.index - REPORT_MONTHS + 1, parsed.index + 1)]


# --------------------------------------------------------------------------- history


def _import_history(project: Project, sample: pd.DataFrame, first_month: Period) -> int:
    """Everything before the first reporting month, as the statistics bureau's back data."""
    keep = sample["period"].map(lambda p: parse_period(p).sort_key < first_month.sort_key)
    history = sample[keep].assign(department=HISTORY_DEPARTMENT)
    folder = project.root / "synthetic"
    folder.mkdir(exist_ok=True)
    path = folder / f"合成示例数据_synthetic_history_to_{first_month.with_month(first_month.month - 1)}.csv"
    history.to_csv(path, index=False, lineterminator="\n")
    return service.import_observations(project, path, actor=ACTOR).rows


# --------------------------------------------------------------------------- values


def _share(catalogue: Catalogue, ind: Indicator, values: dict[str, object]) -> float | None:
    parts = [values.get(i) for i in ind.derived.numerator + ind.derived.denominator]
    if not all(isinstance(v, float) for v in parts):
        return None
    top = sum(values[i] for i in ind.derived.numerator)
    bottom = sum(values[i] for i in ind.derived.denominator)
    return round(top / bottom * 100, 1) if bottom else None


def month_values(sample: pd.DataFrame, catalogue: Catalogue, period: Period) -> dict[str, object]:
    """What every reportable indicator is for ``period`` in the synthetic world: a number,
    or a task state. Shares reported directly are computed from their synthetic components."""
    rows = sample[sample["period"] == str(period)]
    values: dict[str, object] = {}
    for rec in rows.itertuples(index=False):
        value = rec.value
        try:
            values[rec.indicator_id] = float(value)
        except (TypeError, ValueError):
            values[rec.indicator_id] = str(value)
    for ind in catalogue:
        if not ind.accepts_observations or ind.id in values:
            continue
        if ind.is_task:
            values[ind.id] = "推进中"  # the sample has a task state for the last month only
        elif ind.derived is not None and ind.derived.kind == "share":
            share = _share(catalogue, ind, values)
            if share is not None:
                values[ind.id] = share
    return values


_FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


def _as_typed(ind: Indicator, value: object, style: str) -> object:
    """A value the way some people type it: full-width, grouped, with its unit."""
    if not isinstance(value, float):
        return value
    text = f"{value:.2f}".rstrip("0").rstrip(".") if ind.is_money else f"{value:g}"
    if style == "fullwidth":
        return text.translate(_FULL_WIDTH)
    if style == "grouped":
        return f"{value:,.2f}" if ind.is_money else f"{value:,.0f}"
    if style == "unit":
        return f"{text}{ind.unit}"
    return value


# Which cells are typed as text, per (month index from the first, department, indicator).
_TYPED: dict[tuple[int, str, str], str] = {
    (0, "统计局", "O_IND_OUTPUT"): "grouped",
    (1, "工信局", "C2_OUTPUT"): "unit",
    (1, "科技局", "P2_TECH_SME"): "fullwidth",
    (2, "统计局", "O_GDP"): "grouped",
    (2, "工信局", "C3_OUTPUT"): "unit",
    (2, "海洋发展局", "C1_OUTPUT"): "fullwidth",
}
# A value not yet available: typed 待核实 (accepted with a warning, nothing stored).
_PENDING = {(1, "金融局", "P2_LISTED_ENT")}


# --------------------------------------------------------------------------- filling


def _header(department: str, period: Period) -> dict[str, object]:
    next_month = date(period.year + period.month // 12, period.month % 12 + 1, 6)
    return {
        "填报单位": department,
        "填报人": "演示用户（合成 synthetic）",
        "联系电话": "0532-00000000",
        "填报日期": next_month,
    }


def _department_file(
    catalogue: Catalogue,
    department: str,
    period: Period,
    month_index: int,
    values: dict[str, object],
    *,
    mistake: str | None = None,
) -> tuple[dict[str, object], dict[str, str | None]]:
    """The values and remarks one department types for one month."""
    cells: dict[str, object] = {}
    notes: dict[str, str | None] = {}
    for ind in department_indicators(catalogue, department):
        value = values.get(ind.id)
        if value is None:
            value = "待核实"
        if (month_index, department, ind.id) in _PENDING:
            value, notes[ind.id] = "待核实", f"{SYNTHETIC_NOTE}：数据待核实"
        else:
            notes[ind.id] = f"{SYNTHETIC_NOTE}：本期进展" if ind.is_task else SYNTHETIC_NOTE
        cells[ind.id] = _as_typed(ind, value, _TYPED.get((month_index, department, ind.id), ""))
    if mistake == "not-a-number":
        cells["P2_HITECH_ENT"] = f"约{values['P2_HITECH_ENT']:.0f}"
    elif mistake == "out-of-range":
        cells["P3_IND_LAND_SHARE"] = 130
    elif mistake == "outlier-no-remark":
        cells["P5_5G_STATIONS"] = values["P5_5G_STATIONS"] * 10
        notes["P5_5G_STATIONS"] = None
    return cells, notes


def _drop(path: Path, inbox: Path, name: str) -> Path:
    """Put a filled file into the inbox under the name the department gave it."""
    dest = inbox / name
    shutil.move(path, dest)
    return dest


def _month(
    project: Project,
    catalogue: Catalogue,
    sample: pd.DataFrame,
    period: Period,
    month_index: int,
    previous: Period | None,
    work: Path,
    with_mistakes: bool,
) -> IntakeReport:
    templates = {p.name.split("_")[1]: p for p in generate_templates(project, str(period))}
    values = month_values(sample, catalogue, period)
    mistakes = {m.department: m.code for m in MISTAKES} if with_mistakes else {}
    for department, template in templates.items():
        code = mistakes.get(department)
        name = template.name
        source = template
        if code == "period-mismatch" and previous is not None:
            # Last month's template, filled with this month's figures, named for this month.
            source = project.templates / str(previous) / template.name.replace(str(period), str(previous))
        if code == "department-mismatch":
            source = templates["发改局"]  # 人社局 took 发改局's template by mistake
            own = department_indicators(catalogue, "发改局")
            cells = {ind.id: values.get(ind.id, "推进中") for ind in own}
            notes = {ind.id: f"{SYNTHETIC_NOTE}：本期进展" for ind in own}
        else:
            cells, notes = _department_file(catalogue, department, period, month_index, values, mistake=code)
        filled = fill_template(source, work / f"{uuid.uuid4().hex}.xlsx", cells, notes, _header(department, period))
        _drop(filled, project.inbox, name)
    return run_intake(project, actor=ACTOR)


def _corrections(
    project: Project, catalogue: Catalogue, sample: pd.DataFrame, period: Period, month_index: int, work: Path
) -> IntakeReport:
    """科技局 sends its rejected file again, corrected; 统计局 corrects an accepted figure."""
    values = month_values(sample, catalogue, period)
    folder = project.templates / str(period)
    for department, suffix in ((CORRECTED_DEPARTMENT, "（修改后）"), (SUPERSEDING_DEPARTMENT, "（更正）")):
        template = next(folder.glob(f"{period}_{department}_*.xlsx"))
        cells, notes = _department_file(catalogue, department, period, month_index, values)
        if department == SUPERSEDING_DEPARTMENT:
            cells[SUPERSEDED_INDICATOR] = round(values[SUPERSEDED_INDICATOR] * 1.004, 2)
            notes[SUPERSEDED_INDICATOR] = f"{SYNTHETIC_NOTE}：更正，补录两家企业产值 / corrected"
        filled = fill_template(template, work / f"{uuid.uuid4().hex}.xlsx", cells, notes, _header(department, period))
        _drop(filled, project.inbox, f"{template.stem}{suffix}.xlsx")
    return run_intake(project, actor=ACTOR)


# --------------------------------------------------------------------------- the workbook


def _mark_synthetic(path: Path) -> None:
    """Write the synthetic banner into the shell rows of 总览 (rows 1–9 are kept by every
    consolidation), so the dashboard and its picture say the figures are invented."""
    from openpyxl.styles import Font
    from plan_tracker.workbook import atomic_save

    wb = openpyxl.load_workbook(path, keep_vba=True)
    cell = wb[DASHBOARD]["A2"]
    cell.value = SYNTHETIC_BANNER
    cell.font = Font(bold=True, color="C00000")
    with atomic_save(path) as tmp:
        wb.save(tmp)


def worst_gaps(results: list[GapResult], count: int = WORST_SHOWN) -> list[GapResult]:
    """The indicators furthest behind: completion minus schedule (序时进度; 1 where a level
    has no schedule), among those the engine judged behind or at risk."""
    lagging = [
        r for r in results
        if r.status in ("behind", "at_risk") and isinstance(r.completion, float) and not math.isnan(r.completion)
    ]
    return sorted(lagging, key=lambda r: r.completion - (r.schedule if r.schedule is not None else 1.0))[:count]


# --------------------------------------------------------------------------- pictures


def _soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def _dashboard_only(workbook: Path, out: Path) -> Path:
    """A copy holding only 总览, so the PDF is the dashboard and not every tab."""
    wb = openpyxl.load_workbook(workbook)
    for name in wb.sheetnames:
        if name != DASHBOARD:
            del wb[name]
    wb[DASHBOARD].sheet_view.tabSelected = True
    wb.active = 0
    wb.save(out)
    return out


def _run_soffice(soffice: str, args: list[str], profile: Path) -> subprocess.CompletedProcess:
    # Its own profile: a coordinator's running LibreOffice (or a parallel test) must not
    # take the conversion over, nor block it.
    return subprocess.run(
        [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore", *args],
        capture_output=True, text=True, timeout=180,
    )


def _pdf_to_png(pdf: Path, tmp_dir: Path) -> Path | None:
    """Page 1 of the PDF at 110 dpi: poppler's pdftoppm, else Ghostscript."""
    out = tmp_dir / "page.png"
    if pdftoppm := shutil.which("pdftoppm"):
        args = [pdftoppm, "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(out.with_suffix(""))]
    elif gs := shutil.which("gs"):
        args = [gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=png16m", "-r110", "-dTextAlphaBits=4",
                "-dGraphicsAlphaBits=4", "-dFirstPage=1", "-dLastPage=1", f"-sOutputFile={out}", str(pdf)]
    else:
        return None
    subprocess.run(args, capture_output=True, timeout=120, check=False)
    return out if out.is_file() and out.stat().st_size else None


def _calc_png(soffice: str, source: Path, tmp_dir: Path) -> Path | None:
    """LibreOffice's own PNG export of the sheet (used where no PDF rasteriser is installed)."""
    _run_soffice(soffice, ["--convert-to", "png:calc_png_Export", "--outdir", str(tmp_dir), str(source)], tmp_dir / "profile")
    out = source.with_suffix(".png")
    return out if out.is_file() and out.stat().st_size else None


def render_dashboard(workbook: Path, outdir: Path) -> tuple[Path | None, Path | None, str]:
    """总览 to ``总览_dashboard.pdf`` and ``.png`` in ``outdir`` with LibreOffice headless.
    Returns (pdf, png, note); without LibreOffice both are ``None`` and the note says why."""
    soffice = _soffice()
    if soffice is None:
        return None, None, "未安装 LibreOffice，未生成图片 / LibreOffice (soffice) not found: no PDF/PNG"
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plan-tracker-render-") as tmp:
        tmp_dir = Path(tmp)
        source = _dashboard_only(workbook, tmp_dir / "总览_dashboard.xlsx")
        done = _run_soffice(soffice, ["--convert-to", "pdf", "--outdir", str(tmp_dir), str(source)], tmp_dir / "profile")
        made = tmp_dir / "总览_dashboard.pdf"
        if done.returncode != 0 or not made.is_file():
            return None, None, f"LibreOffice 转换失败 / conversion failed: {(done.stderr or done.stdout).strip()[-300:]}"
        pdf = outdir / made.name
        shutil.copyfile(made, pdf)
        png = outdir / "总览_dashboard.png"
        made_png = _pdf_to_png(pdf, tmp_dir) or _calc_png(soffice, source, tmp_dir)
        if made_png is None:
            return pdf, None, "PNG 未生成 / no PNG was made"
        shutil.copyfile(made_png, png)
    return pdf, png, ""


# --------------------------------------------------------------------------- the run


def run_demo(
    directory: Path,
    period: str = "2025-09",
    *,
    render_pictures: bool = True,
    console=None,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Build the demo project in ``directory`` and play the reporting cycle (module docstring).
    Prints the summary to ``console`` (a rich Console) when one is given."""
    started = time.perf_counter()
    say = progress or (lambda _m: None)
    months = _months(period)
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    project = _prepare(directory)
    catalogue = service.read_catalogue(project)
    sample = sample_observations(catalogue, last_month=months[-1].month)
    say("导入合成历史数据 / importing the synthetic history …")
    history_rows = _import_history(project, sample, months[0])
    timings["history"] = time.perf_counter() - mark

    batches: list[MonthBatch] = []
    with tempfile.TemporaryDirectory(prefix="plan-tracker-demo-") as tmp:
        work = Path(tmp)
        for index, month in enumerate(months):
            mark = time.perf_counter()
            say(f"{month.label_zh()}：生成模板、各部门填报、收件 / templates, filling, intake …")
            previous = months[index - 1] if index else None
            report = _month(project, catalogue, sample, month, index, previous, work, with_mistakes=index == len(months) - 1)
            batches.append(MonthBatch(str(month), report, f"{month.label_zh()} {month}"))
            timings[f"month {month}"] = time.perf_counter() - mark
        mark = time.perf_counter()
        say("更正与重报 / corrections …")
        batches.append(MonthBatch(str(months[-1]), _corrections(project, catalogue, sample, months[-1], len(months) - 1, work),
                                  f"{months[-1].label_zh()} 更正 corrections"))
        timings["corrections"] = time.perf_counter() - mark

    mark = time.perf_counter()
    say("汇总 / consolidating …")
    from plan_tracker.workbook import build_workbook

    workbook = default_workbook_path(project)
    build_workbook(workbook, period=str(months[-1]))
    _mark_synthetic(workbook)
    consolidation = consolidate(project, workbook, str(months[-1]), actor=ACTOR)
    timings["consolidate"] = time.perf_counter() - mark

    results = service.load_context(project).evaluate(str(months[-1]))
    with project.open_store() as store:
        subs = store.submissions()
    superseded = subs[subs["status"] == "superseded"].to_dict("records")

    report = DemoReport(
        project=project,
        period=str(months[-1]),
        workbook=workbook,
        history_rows=history_rows,
        batches=batches,
        consolidation=consolidation,
        status_counts=dict(consolidation.status_counts),
        worst=worst_gaps(results),
        superseded=superseded,
        timings=timings,
    )
    if render_pictures:
        mark = time.perf_counter()
        say("渲染总览 / rendering the dashboard …")
        report.pdf, report.png, report.render_note = render_dashboard(workbook, project.reports)
        timings["pictures"] = time.perf_counter() - mark
    else:
        report.render_note = "未渲染图片（--no-pictures） / pictures not rendered"
    report.elapsed = time.perf_counter() - started
    if console is not None:
        print_summary(report, console)
    return report


# --------------------------------------------------------------------------- the summary


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1%}"


def _num(value: object) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:,.2f}"
    return "—" if value is None else str(value)


def print_summary(report: DemoReport, console) -> None:
    """The demo's summary as rich tables: intake, status counts, worst gaps, rejected files."""
    from rich.panel import Panel
    from rich.table import Table

    console.print(Panel.fit(
        f"[bold]plan-tracker 演示 / demo[/] — 报告期 period {report.period}\n"
        f"[bold red]合成示例数据 synthetic[/]：所有数字均为虚构，仅供演示 / every figure is invented for the demo",
    ))

    intake = Table(title="收件 Intake (各部门报送 department submissions)")
    for label in ("批次 batch", "文件 files", "接收 accepted", "退回 rejected", "重复 duplicate"):
        intake.add_column(label, justify="right" if label != "批次 batch" else "left")
    for batch in report.batches:
        files = batch.intake.files
        intake.add_row(batch.label, str(len(files)), str(len(batch.intake.accepted)),
                       str(len(batch.intake.rejected)), str(len(batch.intake.duplicates)))
    intake.add_row("合计 total", str(len(report.files)), str(len(report.accepted)), str(len(report.rejected)),
                   str(sum(len(b.intake.duplicates) for b in report.batches)), style="bold")
    console.print(intake)
    console.print(f"合成历史数据 / synthetic history: {report.history_rows} 行 rows（{HISTORY_DEPARTMENT}）")
    for sub in report.superseded:
        console.print(f"被更正文件替代 / superseded: #{sub['submission_id']} {sub['file_name']}（{sub['department']} {sub['period']}）")

    colours = {"on_track": "green", "at_risk": "yellow", "behind": "red", "not_reported": "bright_black", "no_target": "bright_black"}
    status = Table(title=f"状态 Status — {report.period}（合成 synthetic）")
    status.add_column("状态 status")
    status.add_column("指标数 indicators", justify="right")
    for key in STATUSES:
        status.add_row(f"[{colours[key]}]{STATUS_ZH[key]} {key}[/]", str(report.status_counts.get(key, 0)))
    status.add_row("合计 total", str(sum(report.status_counts.values())), style="bold")
    console.print(status)

    worst = Table(title=f"差距最大的 {len(report.worst)} 项 Worst gaps（完成率 vs 序时进度 completion vs schedule）")
    for label in ("指标 indicator", "目标 target", "实际 actual", "完成/序时 done/schedule", "状态 status"):
        worst.add_column(label, overflow="fold", justify="left" if "indicator" in label else "right")
    for r in report.worst:
        worst.add_row(f"{r.name_zh} [dim]{r.indicator_id}[/]", f"{_num(r.target)} {r.unit}", f"{_num(r.actual)} {r.unit}",
                      f"{_pct(r.completion)} / {_pct(r.schedule)}", f"[{colours[r.status]}]{STATUS_ZH[r.status]}[/]")
    console.print(worst)

    rejected = Table(title=f"退回文件 Rejected files ({len(report.rejected)})：反馈副本在 rejected/ / feedback copies in rejected/")
    for label in ("文件 file", "代码 code", "问题 first problem"):
        rejected.add_column(label, overflow="fold")
    for f in report.rejected:
        first = f.errors[0] if f.errors else None
        if first is None:
            rejected.add_row(f.original_name, "—", "—")
            continue
        where = "，".join(x for x in (first.sheet, first.cell) if x)
        rejected.add_row(f.original_name, first.code + (f"\n[dim]{where}[/]" if where else ""), first.message)
    console.print(rejected)

    console.print(f"主工作簿 / master workbook: {report.workbook}")
    if report.pdf:
        console.print(f"总览 PDF / dashboard PDF: {report.pdf}")
    if report.png:
        console.print(f"总览图片 / dashboard PNG: {report.png}")
    if report.render_note:
        console.print(report.render_note)
    steps = "，".join(f"{k} {v:.1f}s" for k, v in report.timings.items())
    console.print(f"用时 / elapsed: {report.elapsed:.1f} s（{steps}）")
