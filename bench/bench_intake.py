"""Intake benchmark: where the time of ``plan-tracker intake`` goes, per step and per file.

Run by hand (it prints tables; it is not a test)::

    python bench/bench_intake.py                  # N = 50 and 500, three runs each (about 2 min)
    python bench/bench_intake.py --sizes 50 --repeat 1
    python bench/bench_intake.py --keep /tmp/bench-intake   # keep the generated files

The submissions are those of ``bench_consolidate.py`` (real templates, signed per department
and period, filled with openpyxl for months 2021-01 … 2025-09 × every department; one file in
fifty carries a word in a number cell, so feedback copies are part of the work). Synthetic
data (合成示例数据).

1. **run_intake** — each run in a fresh Python process on a fresh copy of the project (imports
   counted), once reading in this process (``workers=1``) and once with a pool of
   ``os.cpu_count()`` processes; the steps are the timings ``run_intake`` reports. The best of
   ``--repeat`` runs is shown (the machine may be shared).
2. **validation** — the same rows validated by one pandera call for the whole run and by one
   call per file (as the naive pipeline does), in this process.
3. **reading one file** — python-calamine alone (open, the two sheets read) against the whole
   ``read_submission`` (checks, scan, normalisation), in this process.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_consolidate import build_world  # noqa: E402  (the same submissions)

STEPS = ("hash", "catalogue", "read", "validate", "store", "feedback", "move")

_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from plan_tracker.intake import run_intake
from plan_tracker.project import Project
imported = time.perf_counter() - started
report = run_intake(Project(Path(sys.argv[1])), actor="bench", workers=int(sys.argv[2]))
print(json.dumps({"imports": imported, "timings": report.timings, "workers": report.workers,
                  "accepted": len(report.accepted), "rejected": len(report.rejected)}))
"""


def _fresh_project(base: Path, dest: Path, files: list[Path]) -> Path:
    """A copy of the set-up project with ``files`` in its inbox, in arrival order."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(base, dest)
    now = time.time()
    for index, path in enumerate(files):
        target = dest / "inbox" / path.name.split("_", 1)[1]  # as sent: without the set-up number
        shutil.copyfile(path, target)
        os.utime(target, (now + index * 1e-3, now + index * 1e-3))
    return dest


def _run_child(project: Path, workers: int) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(project), str(workers)],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall"])


def _validation(base: Path, files: list[Path], per_file_sample: int) -> tuple[float, float, int]:
    """Seconds for one pandera call over all files, and per-file calls scaled to all files."""
    from plan_tracker.intake import read_files, validate_run
    from plan_tracker.project import Project
    from plan_tracker.service import load_context, read_catalogue

    project = Project(base)
    catalogue = read_catalogue(project)
    context = load_context(project)
    with project.open_store() as store:
        secret = store.secret()
        observations = store.current_observations()
    reads = read_files([(p, p.name) for p in files], secret, catalogue)
    validate_run(reads[:2], catalogue, observations, context)  # warm up pandera's schema build
    mark = time.perf_counter()
    validate_run(reads, catalogue, observations, context)
    one_call = time.perf_counter() - mark
    sample = reads[:per_file_sample]
    mark = time.perf_counter()
    for read in sample:
        validate_run([read], catalogue, observations, context)
    per_file = (time.perf_counter() - mark) / len(sample) * len(reads)
    return one_call, per_file, len(reads)


def _reading(base: Path, files: list[Path]) -> tuple[float, float]:
    """ms per file: python-calamine alone, and the whole read_submission."""
    import python_calamine as calamine
    from plan_tracker.project import Project
    from plan_tracker.reader import read_submission
    from plan_tracker.service import read_catalogue
    from plan_tracker.templates import SHEET_FORM, SHEET_META

    project = Project(base)
    catalogue = read_catalogue(project)
    with project.open_store() as store:
        secret = store.secret()

    def calamine_only(path: Path) -> None:
        with path.open("rb") as handle:
            book = calamine.CalamineWorkbook.from_filelike(handle)
            for name in (SHEET_META, SHEET_FORM):
                book.get_sheet_by_name(name).to_python(skip_empty_area=False)
            book.close()

    def whole(path: Path) -> None:
        read_submission(path, file=path.name, secret=secret, catalogue=catalogue)

    out = []
    for fn in (calamine_only, whole):
        best = float("inf")
        for _ in range(3):
            mark = time.perf_counter()
            for path in files:
                fn(path)
            best = min(best, time.perf_counter() - mark)
        out.append(best / len(files) * 1000)
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size and mode; the best is shown")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    sizes = sorted(args.sizes)
    work = args.keep or Path(tempfile.mkdtemp(prefix="plan-tracker-bench-intake-"))
    work.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    try:
        world = work / "world"
        if (world / "files").is_dir() and len(list((world / "files").iterdir())) >= sizes[-1]:
            base, files = world / "project", sorted((world / "files").iterdir())
        else:
            shutil.rmtree(world, ignore_errors=True)
            mark = time.perf_counter()
            with console.status(f"生成 {sizes[-1]} 份填报文件 / generating {sizes[-1]} filled submissions …"):
                base, files = build_world(world, sizes[-1])
            console.print(f"准备用时 / set-up: {time.perf_counter() - mark:.1f} s（{len(files)} files, {work}）")

        runs: list[tuple[int, str, dict]] = []
        for n in sizes:
            for label, workers in (("serial 单进程", 1), (f"pool 进程池 ×{cpus}", cpus)):
                if workers == 1 or cpus > 1:
                    results = []
                    for attempt in range(args.repeat):
                        with console.status(f"run_intake, {n} files, {label}, run {attempt + 1} …"):
                            project = _fresh_project(base, work / f"run-{n}", files[:n])
                            results.append(_run_child(project, workers))
                    runs.append((n, label, _best(results)))
        with console.status("validation: one call vs per file …"):
            one_call, per_file, rows_n = _validation(base, files[: sizes[-1]], per_file_sample=min(50, sizes[-1]))
        with console.status("reading one file …"):
            calamine_ms, read_ms = _reading(base, files[: min(200, sizes[-1])])

        table = Table(title=f"收件基准 Intake benchmark（合成数据 synthetic; fresh process, imports counted; best of {args.repeat}）")
        for label in ("N files", "mode", "imports s", *(f"{s} s" for s in STEPS), "total s", "wall s", "ms/file", "accepted", "rejected"):
            table.add_column(label, justify="left" if label == "mode" else "right")
        for n, label, r in runs:
            t = r["timings"]
            table.add_row(
                str(n), label, f"{r['imports']:.2f}", *(f"{t.get(s, 0.0):.3f}" for s in STEPS),
                f"{t['total']:.2f}", f"{r['wall']:.2f}", f"{t['total'] / n * 1000:.1f}",
                str(r["accepted"]), str(r["rejected"]),
            )
        console.print(table)
        console.print(
            "catalogue = loading the catalogue and the reader (imports pandas, pandera, openpyxl); "
            "total = inside run_intake; wall = the whole process."
        )

        checks = Table(title=f"校验 Validation of {rows_n} files（in-process）")
        for label in ("one pandera call for the run s", "one call per file s (scaled)", "per file ÷ one call"):
            checks.add_column(label, justify="right")
        checks.add_row(f"{one_call:.3f}", f"{per_file:.2f}", f"{per_file / one_call:.0f}×")
        console.print(checks)

        reading = Table(title="读取 Reading one file（in-process, best of 3）")
        for label in ("python-calamine alone ms/file", "read_submission ms/file", "checks + scan + normalise ms/file"):
            reading.add_column(label, justify="right")
        reading.add_row(f"{calamine_ms:.2f}", f"{read_ms:.2f}", f"{read_ms - calamine_ms:.2f}")
        console.print(reading)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
