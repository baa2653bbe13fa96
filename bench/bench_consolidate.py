"""Consolidation benchmark: ours end to end versus the naive pipeline people write.

Run by hand (it prints a table; it is not a test)::

    python bench/bench_consolidate.py            # N = 50 and 500
    python bench/bench_consolidate.py --sizes 50 --keep /tmp/bench

What is measured, each in a fresh Python process (imports and start-up counted, runs
independent), wall time from the parent and peak resident memory of the child (its own
``VmHWM`` from ``/proc/self/status``; Linux):

* **ours** — ``plan_tracker.consolidate.consolidate``: intake (calamine read, one pandera call
  for the whole run, store with provenance and supersede history, feedback copies for the
  rejected files, archive/rejected moves), compute (engine), write every tab of the master
  workbook (openpyxl, VBA kept);
* **naive** — per file ``pandas.read_excel(engine="openpyxl")`` and a pandera schema
  validated per file, collected, then an openpyxl workbook with three tabs;
* **rerun +1** — ours again after one new file arrives among the 500 already taken in;
* **rerun 0** — ours again with an empty inbox.

The submissions are real templates (``generate_templates``, signed per department and period)
filled with openpyxl for months 2021-01 … 2025-09 × every department, each with its own
values; about 2 % carry a word in a number cell, so feedback copies are part of the work.
All values are synthetic (合成示例数据).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_PERIOD = "2025-09"
FIRST_YEAR, LAST_YEAR, LAST_MONTH = 2021, 2025, 9
REJECT_EVERY = 50  # one file in fifty carries a typical mistake
# Year-to-date share of the annual total by month end (industry seasonality).
YTD_SHARE = (0.06, 0.12, 0.205, 0.285, 0.37, 0.465, 0.545, 0.63, 0.72, 0.805, 0.895, 1.0)
BENCH_NOTE = "合成示例数据 synthetic (bench)"


# --------------------------------------------------------------------------- children
# Kept free of heavy imports at module level: a child imports only what it measures.

# The child's own peak RSS. Not ru_maxrss: on Linux that keeps the high-water mark of the
# forked copy of this (large) parent from before exec, so every child would look as big.
_HWM = """
def hwm():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""

_OURS = _HWM + """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from plan_tracker.consolidate import consolidate
from plan_tracker.project import Project
imported = time.perf_counter() - started
report = consolidate(Project(Path(sys.argv[1])), period=sys.argv[2], actor="bench")
print(json.dumps({"imports": imported, "timings": report.timings, "hwm_kib": hwm(),
                  "accepted": report.files_accepted, "rejected": report.files_rejected}))
"""

_NAIVE = _HWM + """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
import pandas as pd
import pandera.pandas as pa
from openpyxl import Workbook
imported = time.perf_counter() - started

files = sorted(Path(sys.argv[1]).glob("*.xlsx"))
out = Path(sys.argv[2])
TASKS = {"未启动", "推进中", "已完成"}

def number_or_task(value):
    if isinstance(value, str):
        return value in TASKS or value.replace(",", "").replace("亿元", "").replace(".", "", 1).isdigit()
    return value is not None and value == value and value >= 0

schema = pa.DataFrameSchema({
    "指标编号": pa.Column(str, nullable=False),
    "本期实际值": pa.Column(None, pa.Check(number_or_task, element_wise=True), nullable=False),
    "备注": pa.Column(None, nullable=True),
})
frames, problems = [], []
for path in files:
    frame = pd.read_excel(path, sheet_name="填报", header=5, engine="openpyxl")
    frame.columns = [str(c).split("\\n")[0] for c in frame.columns]
    frame = frame[frame["指标编号"].notna()][["指标编号", "本期实际值", "备注"]]
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for case in exc.failure_cases.to_dict("records"):
            problems.append([path.name, str(case.get("column")), str(case.get("check")), str(case.get("failure_case"))])
        continue
    frames.append(frame.assign(file=path.name))
data = pd.concat(frames, ignore_index=True)
wb = Workbook()
ws = wb.active
ws.title = "数据"
ws.append(list(data.columns))
for row in data.itertuples(index=False):
    ws.append([None if v != v else v for v in row])
summary = wb.create_sheet("汇总")
summary.append(["指标编号", "报送次数", "最后数值"])
for key, group in data.groupby("指标编号"):
    summary.append([key, len(group), str(group["本期实际值"].iloc[-1])])
bad = wb.create_sheet("问题")
bad.append(["文件", "列", "检查", "值"])
for row in problems:
    bad.append(row)
wb.save(out)
print(json.dumps({"imports": imported, "hwm_kib": hwm(), "accepted": len(frames), "rejected": len({p[0] for p in problems})}))
"""


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter: its JSON line, wall seconds and peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=err)
        proc.wait()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, problems = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{problems[-3000:]}")
    result = json.loads(text.strip().splitlines()[-1])
    result.update(wall=wall, peak_mib=result.pop("hwm_kib") / 1024)
    return result


# --------------------------------------------------------------------------- the submissions


def _months() -> list[str]:
    return [f"{y}-{m:02d}" for y in range(FIRST_YEAR, LAST_YEAR + 1)
            for m in range(1, 13) if (y, m) <= (LAST_YEAR, LAST_MONTH)]


def _annual_and_monthly(sample) -> tuple[dict, dict]:
    annual, monthly = {}, {}
    for rec in sample.itertuples(index=False):
        key = (rec.indicator_id, rec.period)
        target = annual if len(rec.period) == 4 else monthly
        target[key] = rec.value
    return annual, monthly


def _value(ind, period: str, annual: dict, monthly: dict, wobble: float):
    """A plausible synthetic figure of ``ind`` for month ``period`` (YTD for flows)."""
    if ind.is_task:
        return "推进中" if wobble < 1.0 else "已完成"
    found = monthly.get((ind.id, period))
    year, month = int(period[:4]), int(period[5:])
    if found is None:
        this = annual.get((ind.id, str(year)))
        before = annual.get((ind.id, str(year - 1)), this)
        if this is None:
            return None
        this, before = float(this), float(before)
        if ind.measure == "flow":
            found = this * YTD_SHARE[month - 1]
        else:
            found = before + (this - before) * month / 12
    found = float(found) * wobble
    if ind.unit in ("家", "个", "项", "人"):
        return float(round(found))
    return round(found, 1 if ind.unit == "%" else 2)


def _fill_one(job: tuple) -> str:
    from plan_tracker.templates import fill_template

    template, out, values, notes, header = job
    fill_template(Path(template), Path(out), values, notes, header)
    return out


def build_world(root: Path, count: int, workers: int = 2) -> tuple[Path, list[Path]]:
    """A project with the synthetic annual history and ``count`` filled submissions (files
    kept in ``root/files``, in arrival order). Returns (project root, files)."""
    import random
    from concurrent.futures import ProcessPoolExecutor
    from datetime import date

    from plan_tracker import service
    from plan_tracker.periods import parse_period
    from plan_tracker.sample import sample_observations
    from plan_tracker.templates import department_indicators, generate_templates
    from plan_tracker.workbook import build_workbook

    project = service.init(root / "project", actor="bench")
    catalogue = service.read_catalogue(project)
    sample = sample_observations(catalogue, last_month=LAST_MONTH)
    history = sample[sample["period"].str.len() == 4].assign(note=BENCH_NOTE)
    csv = root / "合成示例数据_synthetic_annual_history.csv"
    history.to_csv(csv, index=False)
    service.import_observations(project, csv, actor="bench")
    build_workbook(project.root / "plan_tracker.xlsm", period=BENCH_PERIOD)

    annual, monthly = _annual_and_monthly(sample)
    rng = random.Random(500)
    departments = catalogue.departments()
    files_dir = root / "files"
    files_dir.mkdir()
    jobs = []
    for period in _months():
        if len(jobs) >= count:
            break
        templates = {p.name.split("_")[1]: p for p in generate_templates(project, period)}
        parsed = parse_period(period)
        wobble = {ind.id: rng.uniform(0.97, 1.03) for ind in catalogue}
        world = {ind.id: _value(ind, period, annual, monthly, wobble[ind.id])
                 for ind in catalogue if ind.accepts_observations}
        for ind in catalogue:  # shares reported directly: computed from the same month's parts
            if ind.accepts_observations and ind.derived is not None and ind.derived.kind == "share":
                parts = [world.get(i) for i in ind.derived.numerator + ind.derived.denominator]
                if all(isinstance(v, float) for v in parts):
                    top = sum(world[i] for i in ind.derived.numerator)
                    world[ind.id] = round(top / sum(world[i] for i in ind.derived.denominator) * 100, 1)
        for department in departments:
            if len(jobs) >= count:
                break
            inds = department_indicators(catalogue, department)
            values = {ind.id: "待核实" if world.get(ind.id) is None else world[ind.id] for ind in inds}
            if len(jobs) % REJECT_EVERY == REJECT_EVERY - 1:
                wrong = next((ind.id for ind in inds if not ind.is_task), inds[0].id)
                values[wrong] = f"约{values[wrong]}"
            notes = dict.fromkeys(values, BENCH_NOTE)
            header = {"填报人": "基准测试（合成）", "联系电话": "0532-00000000",
                      "填报日期": date(parsed.year, parsed.month, 28)}
            out = files_dir / f"{len(jobs):04d}_{templates[department].name}"
            jobs.append((str(templates[department]), str(out), values, notes, header))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        files = [Path(p) for p in pool.map(_fill_one, jobs, chunksize=8)]
    return project.root, files


def _fresh_project(base: Path, dest: Path, files: list[Path]) -> Path:
    """A copy of the set-up project with ``files`` in its inbox, in arrival order."""
    shutil.copytree(base, dest)
    inbox = dest / "inbox"
    now = time.time()
    for index, path in enumerate(files):
        target = inbox / path.name.split("_", 1)[1]
        if target.exists():
            target = inbox / path.name
        shutil.copyfile(path, target)
        os.utime(target, (now + index * 1e-3, now + index * 1e-3))
    return dest


def _naive_dir(dest: Path, files: list[Path]) -> Path:
    dest.mkdir()
    for path in files:
        shutil.copyfile(path, dest / path.name)
    return dest


# --------------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file or a pipe: keep the table on one line per row
    sizes = sorted(args.sizes)
    work = args.keep or Path(tempfile.mkdtemp(prefix="plan-tracker-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        mark = time.perf_counter()
        with console.status(f"生成 {sizes[-1] + 1} 份填报文件 / generating {sizes[-1] + 1} filled submissions …"):
            base, files = build_world(work / "world", sizes[-1] + 1)
        console.print(f"准备用时 / set-up: {time.perf_counter() - mark:.1f} s（{len(files)} files, {work}）")

        rows: list[tuple] = []
        ours_full: dict[int, dict] = {}
        for n in sizes:
            chosen = files[:n]
            with console.status(f"naive, {n} files …"):
                naive = run_child(_NAIVE, str(_naive_dir(work / f"naive-{n}", chosen)), str(work / f"naive-{n}.xlsx"))
            with console.status(f"ours, {n} files …"):
                project = _fresh_project(base, work / f"ours-{n}", chosen)
                ours = run_child(_OURS, str(project), BENCH_PERIOD)
            ours_full[n] = ours
            rows.append((f"naive 朴素 {n}", n, naive, None))
            rows.append((f"ours 本项目 {n}", n, ours, naive["wall"] / ours["wall"]))
            if n == sizes[-1]:
                extra = files[n]
                shutil.copyfile(extra, project / "inbox" / extra.name.split("_", 1)[1])
                with console.status("rerun +1 …"):
                    plus_one = run_child(_OURS, str(project), BENCH_PERIOD)
                rows.append((f"ours rerun +1 新增1份 ({n}+1)", 1, plus_one, None))
                with console.status("rerun 0 …"):
                    none = run_child(_OURS, str(project), BENCH_PERIOD)
                rows.append(("ours rerun 0 无新文件", 0, none, None))

        table = Table(title="汇总基准 Consolidation benchmark（合成数据 synthetic; fresh process each, imports counted）")
        for label in ("run", "files", "wall s", "imports s", "intake s", "tabs s", "render s",
                      "accepted", "rejected", "peak MiB", "naive ÷ ours"):
            table.add_column(label, justify="left" if label == "run" else "right")
        for label, n, r, ratio in rows:
            t = r.get("timings", {})
            table.add_row(
                label, str(n), f"{r['wall']:.2f}", f"{r['imports']:.2f}",
                *(f"{t[k]:.2f}" if k in t else "—" for k in ("intake", "tabs", "render")),
                str(r["accepted"]), str(r["rejected"]), f"{r['peak_mib']:.0f}",
                f"{ratio:.1f}×" if ratio else "",
            )
        console.print(table)

        top = sizes[-1]
        if top >= 500 and rows:
            full = ours_full[top]["wall"]
            ratio = next(x for label, n, _r, x in rows if x and n == top)
            plus = next(r for label, _n, r, _x in rows if "+1" in label)["wall"]
            zero = next(r for label, _n, r, _x in rows if "rerun 0" in label)["wall"]
            aims = Table(title="目标 Aims")
            for label in ("aim", "measured", "met"):
                aims.add_column(label)
            for aim, measured, met in (
                (f"≥ 10× faster than naive at {top}", f"{ratio:.1f}×", ratio >= 10),
                ("rerun +1 ≤ 1/10 of a full run", f"{plus:.2f} s vs {full / 10:.2f} s", plus <= full / 10),
                ("rerun 0 < 1 s", f"{zero:.2f} s", zero < 1.0),
            ):
                aims.add_row(aim, measured, "[green]yes[/]" if met else "[red]no[/]")
            console.print(aims)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
