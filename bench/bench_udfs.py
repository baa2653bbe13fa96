"""Benchmark of the PLAN_* worksheet functions (run by hand; prints figures, asserts nothing).

    python bench/bench_udfs.py [--calls 10000]

Figures, on a temporary project filled with the bundled synthetic sample data:

1. ``PLAN_GAP`` in-process (the cell logic with the cached context), per call, for one cell
   and for a sheet's worth of different cells (every indicator × several periods);
2. the same without the cache (``service.load_context`` per call), i.e. what the cache saves;
3. the first call after the store changed (context rebuilt);
4. 10,000 calls through xlwings' own server runtime (``xlwings.server.custom_functions_call``
   with Office.js-shaped payloads), without and with :func:`skip_pyodide_probe`, beside an
   empty custom function (xlwings' own overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# xlwings decides at import whether its server runtime (PRO engines) is available.
os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")
os.environ.setdefault("XLWINGS_ON_SERVER", "true")

import xlwings  # noqa: E402
import xlwings.server  # noqa: E402
from plan_tracker import service  # noqa: E402
from plan_tracker.sample import SAMPLE_CSV  # noqa: E402
from plan_tracker.udfs import core  # noqa: E402
from plan_tracker.udfs import server as plan_server  # noqa: E402


@xlwings.server.func
def EMPTY(indicator, period=None):
    """Baseline: a custom function that does nothing."""
    return 0.0


def per_call(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` mean time of one call, in microseconds."""
    best = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best.append((time.perf_counter() - start) / calls * 1e6)
    return min(best)


def office_call(func_name: str, indicator: str, period: str | None) -> dict:
    return {
        "client": "Office.js",
        "func_name": func_name,
        "args": [[[indicator]], None if period is None else [[period]]],
        "caller_address": "[plan_tracker.xlsm]Sheet1!B2",
        "session_id": "bench",
        "culture_info_name": "zh-CN",
        "date_format": "yyyy/m/d",
        "version": xlwings.__version__,
        "runtime": "1.4",
    }


def through_xlwings(bodies: list[dict], module: object) -> float:
    """Seconds for ``custom_functions_call`` over ``bodies``, in one event loop."""

    async def run() -> float:
        start = time.perf_counter()
        for body in bodies:
            await xlwings.server.custom_functions_call(body, module)
        return time.perf_counter() - start

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls through custom_functions_call")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        project = service.init(Path(tmp) / "project")
        service.import_observations(project, SAMPLE_CSV)
        os.environ["PLAN_TRACKER_HOME"] = str(project.root)
        catalogue = service.read_catalogue(project)
        periods = [None, "2024", "2025-Q3", "2025-06"]
        cells = [(ind.id, p) for ind in catalogue for p in periods]
        rows = []

        # 1. in-process, cached context
        core.indicator_value("GAP", "C1_OUTPUT")
        one = per_call(lambda: core.indicator_value("GAP", "C1_OUTPUT", "2025-Q3"), 20_000)
        rows.append(("PLAN_GAP in-process, one cell (cached context)", f"{one:8.1f} µs/call"))
        it = iter(cells * 10_000)
        sheet = per_call(lambda: core.indicator_value("GAP", *next(it)), len(cells) * 10, repeats=3)
        rows.append((f"PLAN_GAP in-process, {len(cells)} different cells", f"{sheet:8.1f} µs/call"))
        rows.append((f"  → a sheet of {len(cells)} PLAN_GAP cells", f"{sheet * len(cells) / 1000:8.1f} ms"))

        # 2. without the cache: open the store and check its version on every call
        uncached = per_call(lambda: service.load_context(project).result("C1_OUTPUT", "2025-Q3"), 300, repeats=3)
        rows.append(("PLAN_GAP via service.load_context per call (no cell cache)", f"{uncached:8.1f} µs/call"))

        # 3. first call after a data change
        cold = []
        for i in range(5):
            csv = Path(tmp) / f"change{i}.csv"
            csv.write_text(f"indicator_id,period,value\nC1_OUTPUT,2025-09,{300 + i}\n", encoding="utf-8")
            service.import_observations(project, csv)
            start = time.perf_counter()
            core.indicator_value("GAP", "C1_OUTPUT", "2025-Q3")
            cold.append((time.perf_counter() - start) * 1000)
        rows.append(("first call after the store changed (context rebuilt)", f"{statistics.median(cold):8.1f} ms"))

        # 4. through xlwings' server runtime
        n = args.calls
        gap_bodies = [office_call("PLAN_GAP", ind, p) for ind, p in (cells * (n // len(cells) + 1))[:n]]
        empty_bodies = [office_call("EMPTY", "C1_OUTPUT", "2025-Q3") for _ in range(n)]
        baseline_module = sys.modules[__name__]
        had_pyodide = sys.modules.pop("pyodide", "absent")
        through_xlwings(gap_bodies[:500], plan_server)  # warm up
        plain_gap = through_xlwings(gap_bodies, plan_server)
        plain_empty = through_xlwings(empty_bodies, baseline_module)
        assert plan_server.skip_pyodide_probe()
        fast_gap = through_xlwings(gap_bodies, plan_server)
        fast_empty = through_xlwings(empty_bodies, baseline_module)
        if had_pyodide == "absent":
            sys.modules.pop("pyodide", None)
        for label, seconds in (
            (f"{n:,} × PLAN_GAP via custom_functions_call", plain_gap),
            (f"{n:,} × empty function via custom_functions_call", plain_empty),
            (f"{n:,} × PLAN_GAP, skip_pyodide_probe()", fast_gap),
            (f"{n:,} × empty function, skip_pyodide_probe()", fast_empty),
        ):
            rows.append((label, f"{seconds:8.2f} s  ({seconds / n * 1e6:6.1f} µs/call)"))
        saved = (plain_gap - fast_gap) / n * 1e6
        rows.append(("  → saved per call by skip_pyodide_probe()", f"{saved:8.1f} µs ({saved / (plain_gap / n * 1e6):.0%})"))
        core.reset_cache()

    width = max(len(label) for label, _ in rows)
    print(f"plan-tracker PLAN_* benchmark — xlwings {xlwings.__version__}, Python {sys.version.split()[0]}")
    print(f"project: synthetic sample data, {len(catalogue)} indicators")
    print("-" * (width + 30))
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
