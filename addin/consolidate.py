"""汇总 Consolidate: intake, store, compute, render — what the button and the CLI both run.

:func:`consolidate` takes a project and its master workbook and, in this order: refuses if
Excel has the workbook open (nothing is read or written then), imports the inbox (when the
intake module is installed), loads the plan context, builds the tabs
(:mod:`plan_tracker.tabs`) and writes them into the workbook (:mod:`plan_tracker.render`).

The period: the ``period`` argument, else the report period the coordinator chose on the
dashboard (``总览!B3``, workbook name ``ReportPeriod``), else each indicator's default period.

Nothing new, nothing written: after each write a stamp of what the workbook was built from
is kept in the project (:data:`STAMP_FILE`, keyed by workbook path): the store's
``data_version`` (it moves with every committed write, by any process), a digest of the
catalogue file, the period and where it came from, the day (reporting lateness depends on
it), the tool's version and files, and the workbook's own size and modification time right
after the write. When the inbox is empty and the stamp is equal, :func:`consolidate` returns
at once ("无变化，未重写 / nothing changed, workbook not rewritten"); that path reads only
SQLite and the file system, so it imports neither pandas, pandera nor openpyxl (the whole
run stays well under a second). A workbook saved by anyone since our write, a new value, a
catalogue edit or another period makes the stamps differ, and the workbook is rewritten.

One at a time: :func:`prepare` (the steps the CLI, the desktop buttons and the xlwings Server
scripts share: lock, intake, context, tabs) holds the store's exclusive lock
:data:`LOCK_NAME` until the caller has written its output, so two coordinators, or a
scheduled job and a button, never interleave; the second waits up to ``wait`` seconds, then
gets :class:`ConsolidationBusy` naming the holder. The lock is the operating system's (or
PostgreSQL's), so a killed run leaves none behind. What a crash at any point leaves, and how
the next run repairs it: ``docs/reliability.md``; :func:`crash_point` is the hook the tests
use to kill a run at a named step.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

# Only light modules here: the "nothing changed" path must not import pandas, pandera or
# openpyxl (0.6 s between them); the heavy ones are imported where the work is done.
from plan_tracker import __version__
from plan_tracker.periods import Period, PeriodError, parse_period
from plan_tracker.project import Project
from plan_tracker.store import Store, StoreBusy, default_actor
from plan_tracker.workbook import check_not_open_in_excel, remove_stale_temporaries

__all__ = [
    "CRASH_ENV",
    "ConsolidationBusy",
    "ConsolidationReport",
    "LOCK_NAME",
    "PERIOD_CELL",
    "Prepared",
    "STAMP_FILE",
    "consolidate",
    "consolidation_lock",
    "crash_point",
    "default_workbook_path",
    "prepare",
    "read_period_choice",
]

WORKBOOK_FILE = "plan_tracker.xlsm"
PERIOD_CELL = "B3"
BACKUP_FOLDER = "workbook-backups"  # under the project's reports/
#: The stamps of the last write of each workbook, in the project folder (JSON).
STAMP_FILE = ".render-stamps.json"
STAMP_FORMAT = 1
#: ``plan_tracker.tabs.DASHBOARD`` (importing tabs imports pandas; a test keeps them equal).
DASHBOARD = "总览"
#: ``plan_tracker.service.CATALOGUE_FILE``, for the same reason.
CATALOGUE_FILE = "catalogue.csv"
UNCHANGED_NOTE = "无变化，未重写 / nothing changed, workbook not rewritten"
#: The store's exclusive lock every consolidation takes (CLI, buttons, xlwings Server).
LOCK_NAME = "consolidate"
#: Test hook: a run with this variable set kills itself at the named step (see crash_point).
CRASH_ENV = "PLAN_TRACKER_CRASH_AT"


def crash_point(step: str) -> None:
    """Kill this process, as ``kill -9`` would, when ``PLAN_TRACKER_CRASH_AT`` names ``step``.

    Only the crash tests set the variable (tests/test_reliability.py, docs/reliability.md);
    unset, this is one dictionary lookup. SIGKILL, not an exception: no ``finally`` block,
    no ``atexit`` and no buffered write may run, exactly as when the machine loses power or
    the process is killed, which is what the tests must survive."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # Windows: TerminateProcess


class ConsolidationBusy(StoreBusy):
    """Another consolidation holds :data:`LOCK_NAME`; the message names who and since when."""

    def __init__(self, busy: StoreBusy) -> None:
        super().__init__(busy.name, busy.holder, busy.waited)
        if self.holder:
            h = self.holder
            who_zh = (f"用户 {h.get('user', '?')}，主机 {h.get('host', '?')}，进程 {h.get('pid', '?')}，"
                      f"开始于 {h.get('started_at', '?')}")
            who_en = (f"user {h.get('user', '?')}, host {h.get('host', '?')}, pid {h.get('pid', '?')},"
                      f" since {h.get('started_at', '?')}")
        else:  # the holder is writing its name right now
            who_zh, who_en = "另一个进程", "another process"
        waited_zh = f"已等待 {self.waited:g} 秒，" if self.waited > 0 else ""
        waited_en = f"; waited {self.waited:g} s" if self.waited > 0 else ""
        self.args = (
            f"另一次汇总正在进行（{who_zh}），{waited_zh}请稍后再试（定时任务可用 --wait 秒数 等待）"
            f" / another consolidation is running ({who_en}){waited_en}: try again when it has"
            " finished (a scheduled job can pass --wait SECONDS)",
        )


@contextmanager
def consolidation_lock(store: Store, *, wait: float = 0) -> Iterator[dict]:
    """Hold :data:`LOCK_NAME`, waiting up to ``wait`` seconds; else :class:`ConsolidationBusy`."""
    with ExitStack() as stack:
        try:
            holder = stack.enter_context(store.exclusive(LOCK_NAME, wait=wait))
        except StoreBusy as exc:
            raise ConsolidationBusy(exc) from exc
        yield holder


@dataclass
class ConsolidationReport:
    workbook: Path
    period: str | None
    period_source: str  # "argument" | "总览!B3" | "default"
    status_counts: dict[str, int] = field(default_factory=dict)
    files_accepted: int = 0
    files_rejected: int = 0
    intake_note: str = ""
    tabs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    backup: Path | None = None
    created_workbook: bool = False
    #: ``plan_tracker.intake.IntakeReport`` of this run (``None``: the inbox was empty).
    intake: Any | None = None
    #: Nothing had changed since the last write: the workbook was left as it was.
    unchanged: bool = False
    status_line: str = ""  # the status counts as shown (kept in the stamp for unchanged runs)

    def summary_lines(self) -> list[str]:
        counts = self.status_line or _status_line(self.status_counts)
        lines = [
            UNCHANGED_NOTE + f": {self.workbook}" if self.unchanged
            else f"已汇总到 / consolidated into: {self.workbook}",
            f"报告期 / period: {self.period or '各指标最新期 latest per indicator'}（{self.period_source}）",
            f"状态 / status: {counts}",
            f"收件 / intake: 接收 accepted {self.files_accepted}，退回 rejected {self.files_rejected}"
            + (f"（{self.intake_note}）" if self.intake_note else ""),
            f"工作表 / tabs: {'、'.join(self.tabs)}",
            "用时 / timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()),
        ]
        lines += [f"注意 / warning: {w}" for w in self.warnings]
        if self.backup:
            lines.append(f"原工作簿已备份 / previous workbook kept at: {self.backup}")
        return lines


def _status_line(counts: dict[str, int]) -> str:
    from plan_tracker.engine import STATUS_ZH, STATUSES

    return "，".join(f"{STATUS_ZH[s]} {counts.get(s, 0)}" for s in STATUSES)


def default_workbook_path(project: Project) -> Path:
    return project.root / WORKBOOK_FILE


def _period_text(value: Any) -> str | None:
    """The report period from a cell value. Excel turns a typed ``2025-09`` into a date and
    ``2025`` into a number, so both are read back as the period the coordinator meant."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (datetime, date)):
        return str(Period(value.year, "M", value.month))
    return str(parse_period(value))


def read_period_choice(path: Path) -> str | None:
    """The period on the dashboard (``总览!B3``), canonical (``2025-09``), or ``None``."""
    from python_calamine import CalamineWorkbook

    path = Path(path)
    if not path.is_file():
        return None
    book = CalamineWorkbook.from_path(str(path))
    if DASHBOARD not in book.sheet_names:
        return None
    rows = book.get_sheet_by_name(DASHBOARD).to_python(skip_empty_area=False)
    row, col = int(PERIOD_CELL[1:]) - 1, ord(PERIOD_CELL[0]) - ord("A")
    value = rows[row][col] if len(rows) > row and len(rows[row]) > col else None
    try:
        return _period_text(value)
    except PeriodError as exc:
        raise PeriodError(
            f"{path.name} 工作表“{DASHBOARD}”单元格 {PERIOD_CELL} 的报告期无法识别：{exc}。请填写如 "
            f"2025、2025-Q3、2025-09 / {path.name}, sheet {DASHBOARD}, cell {PERIOD_CELL}: {exc}"
        ) from exc


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return 0


def _create_workbook(path: Path, period: str | None) -> None:
    from plan_tracker.workbook import build_workbook

    build_workbook(path, period=period)


# --------------------------------------------------------------------------- the stamp


def _inbox_has_files(project: Project) -> bool:
    """Whether anything waits in the inbox (intake decides what to skip; any file means
    "run it", so a lock file alone costs an intake run, never a missed submission)."""
    try:
        with os.scandir(project.inbox) as entries:
            return any(entry.is_file() for entry in entries)
    except FileNotFoundError:
        return False


def _catalogue_digest(project: Project) -> str:
    """What the catalogue is built from: the project's file, else the packaged one, and the
    packaged group names; read as bytes and hashed (microseconds, no pandera)."""
    spec = importlib.util.find_spec("plan_tracker.schemas")
    packaged = Path(next(iter(spec.submodule_search_locations or []))) if spec else None
    own = project.root / CATALOGUE_FILE
    digest = hashlib.sha256()
    for path in (own if own.is_file() else packaged / "catalogue.csv" if packaged else None,
                 packaged / "groups.csv" if packaged else None):
        digest.update(path.read_bytes() if path is not None and path.is_file() else b"-")
    return digest.hexdigest()


def _tool_version() -> str:
    """The version and the files of the installed tool: an upgrade, or an edited module in a
    development install, changes what the tabs look like."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(root.glob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def _workbook_stat(path: Path) -> dict[str, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def _stamp(project: Project, path: Path, data_version: int, chosen: str | None, source: str,
           today: date) -> dict[str, Any]:
    return {
        "format": STAMP_FORMAT,
        "tool": _tool_version(),
        "data_version": data_version,
        "catalogue": _catalogue_digest(project),
        "period": chosen,
        "period_source": source,
        "today": today.isoformat(),
        "workbook": _workbook_stat(path),
    }


def _stamp_key(path: Path) -> str:
    return str(path.resolve())


def _read_stamps(project: Project) -> dict[str, Any]:
    try:
        stamps = json.loads((project.root / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: the workbook is simply written again
    return stamps if isinstance(stamps, dict) else {}


def _write_stamp(project: Project, path: Path, stamp: dict[str, Any]) -> None:
    stamps = _read_stamps(project)
    stamps[_stamp_key(path)] = stamp
    target = project.root / STAMP_FILE
    fd, tmp = tempfile.mkstemp(prefix=".render-stamps.", suffix=".tmp", dir=project.root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stamps, handle, ensure_ascii=False, indent=1)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unchanged_report(path: Path, chosen: str | None, source: str, recorded: dict[str, Any],
                      started: float) -> ConsolidationReport:
    kept = recorded.get("report", {})
    report = ConsolidationReport(workbook=path, period=chosen, period_source=source)
    report.unchanged = True
    report.intake_note = "收件箱为空 / inbox empty"
    report.status_counts = dict(kept.get("status_counts", {}))
    report.status_line = str(kept.get("status_line", ""))
    report.tabs = list(kept.get("tabs", []))
    report.rows = dict(kept.get("rows", {}))
    report.timings = {"total": time.perf_counter() - started}
    return report


# --------------------------------------------------------------------------- the shared steps


@dataclass
class Prepared:
    """What :func:`prepare` produced for the caller to write (tabs) and report."""

    period: str | None
    #: The caller's ``current`` check said its output is up to date: no tabs were built.
    unchanged: bool = False
    #: ``plan_tracker.intake.IntakeReport`` of this run (``None``: no intake ran).
    intake: Any | None = None
    intake_note: str = ""
    files_accepted: int = 0
    files_rejected: int = 0
    context: Any | None = None  # plan_tracker.service.PlanContext
    tabs: list[Any] = field(default_factory=list)  # plan_tracker.tabs.Tab
    status_counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    holder: dict[str, Any] = field(default_factory=dict)  # who holds the lock: us


@contextmanager
def prepare(
    project: Project,
    period: str | None,
    *,
    actor: str | None = None,
    progress: Callable[[str], None] | None = None,
    today: date | None = None,
    intake: bool = True,
    wait: float = 0,
    current: Callable[[int], bool] | None = None,
) -> Iterator[Prepared]:
    """Lock, intake, context, tabs: the steps ``plan-tracker consolidate``, the desktop buttons
    and the xlwings Server scripts share. Used as ``with prepare(...) as prepared:``; the lock
    (:data:`LOCK_NAME`) is held until the block ends, so the caller's write is covered too.

    ``period`` is canonical (or ``None``: each indicator's default). ``intake=False`` (the
    刷新 Refresh button) leaves the inbox alone. ``current(data_version)``, when given, is
    asked before the intake (only when the inbox is empty) and again after it; when it says
    the caller's output already reflects that version, nothing more is computed and
    ``prepared.unchanged`` is set. Raises :class:`ConsolidationBusy` when another
    consolidation still holds the lock after ``wait`` seconds.
    """
    actor = actor or default_actor()
    say = progress or (lambda _message: None)
    prepared = Prepared(period=period)
    with project.open_store() as store, consolidation_lock(store, wait=wait) as holder:
        prepared.holder = holder
        crash_point("locked")
        waiting = intake and _inbox_has_files(project)
        if intake and not waiting:
            prepared.intake_note = "收件箱为空 / inbox empty"
        # The light path: nothing in the inbox and nothing new in the store. Only SQLite and
        # the file system are read, so pandas, pandera and openpyxl are not even imported.
        if not waiting and current is not None and current(store.data_version()):
            prepared.unchanged = True
            yield prepared
            return
        mark = time.perf_counter()
        if waiting:
            from plan_tracker.intake import run_intake

            say("收件 / reading the inbox …")
            outcome = run_intake(project, actor=actor)
            prepared.intake = outcome
            prepared.files_accepted = _count(getattr(outcome, "accepted", 0))
            prepared.files_rejected = _count(getattr(outcome, "rejected", 0))
        prepared.timings["intake"] = time.perf_counter() - mark
        crash_point("intake-done")

        from plan_tracker import service
        from plan_tracker.tabs import build_tabs

        say("计算 / computing …")
        mark = time.perf_counter()
        ctx = prepared.context = service.load_context(project)
        # Intake may have found only files it had seen before: the version decides, not the inbox.
        if current is not None and current(ctx.data_version):
            prepared.unchanged = True
            yield prepared
            return
        prepared.status_counts = dict(Counter(r.status for r in ctx.evaluate(period, today=today)))
        prepared.tabs = build_tabs(ctx, store, period, ctx.catalogue, today=today)
        prepared.timings["tabs"] = time.perf_counter() - mark
        crash_point("tabs-built")
        yield prepared


# --------------------------------------------------------------------------- consolidate


def consolidate(
    project: Project,
    workbook: Path | None = None,
    period: str | None = None,
    *,
    actor: str | None = None,
    progress: Callable[[str], None] | None = None,
    today: date | None = None,
    wait: float = 0,
) -> ConsolidationReport:
    """Intake, store, compute and render into the master workbook; see the module docstring.

    Raises ``WorkbookOpenError`` before doing anything while Excel has the workbook open, and
    :class:`ConsolidationBusy` when another consolidation of the project is still running
    after ``wait`` seconds.
    """
    actor = actor or default_actor()
    say = progress or (lambda _message: None)
    path = Path(workbook) if workbook is not None else default_workbook_path(project)
    today = today or date.today()
    started = time.perf_counter()
    check_not_open_in_excel(path)

    if period not in (None, ""):
        chosen, source = str(parse_period(period)), "argument"
    else:
        chosen = read_period_choice(path)
        source = f"{DASHBOARD}!{PERIOD_CELL}" if chosen else "default"

    # Read under the lock (current() is called inside prepare): a run that waited for another
    # one compares with the stamp that one wrote.
    recorded: dict[str, Any] = {}

    def current(data_version: int) -> bool:
        recorded.clear()
        recorded.update(_read_stamps(project).get(_stamp_key(path)) or {})
        if not recorded:
            return False
        now = _stamp(project, path, data_version, chosen, source, today)
        return {k: recorded.get(k) for k in now} == now

    with prepare(project, chosen, actor=actor, progress=say, today=today, wait=wait,
                 current=current) as prep:
        if prep.unchanged:
            report = _unchanged_report(path, chosen, source, recorded, started)
            report.intake, report.intake_note = prep.intake, prep.intake_note
            report.files_accepted, report.files_rejected = prep.files_accepted, prep.files_rejected
            report.timings = {**prep.timings, **report.timings}
            return report
        report = ConsolidationReport(workbook=path, period=chosen, period_source=source)
        report.intake, report.intake_note = prep.intake, prep.intake_note
        report.files_accepted, report.files_rejected = prep.files_accepted, prep.files_rejected
        report.status_counts = prep.status_counts
        report.status_line = _status_line(report.status_counts)
        _write(project, path, chosen, source, today, prep, report, actor, say, started)
    say("完成 / done")
    return report


def _write(project: Project, path: Path, chosen: str | None, source: str, today: date,
           prep: Prepared, report: ConsolidationReport, actor: str,
           say: Callable[[str], None], started: float) -> None:
    """Render the tabs (atomically), audit, stamp: the part only the file-based run has."""
    from plan_tracker.render import render_tabs

    timings = dict(prep.timings)
    say("写入工作簿 / writing the workbook …")
    mark = time.perf_counter()
    remove_stale_temporaries(path)  # left by a run killed mid-write; we hold the lock
    existed = path.is_file()
    if not existed:
        _create_workbook(path, chosen)
        report.created_workbook = True
    rendered = render_tabs(
        path, prep.tabs, backup_dir=project.reports / BACKUP_FOLDER if existed else None
    )
    crash_point("workbook-replaced")
    timings["render"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started

    report.tabs, report.rows = rendered.tabs, rendered.rows
    report.warnings, report.backup = rendered.warnings, rendered.backup
    report.timings = timings
    with project.open_store() as store:
        version = store.audit(
            "workbook_consolidated",
            {"message": f"汇总到 / consolidated into {path.name} ({chosen or 'default'})",
             "workbook": str(path), "period": chosen, "rows": report.rows},
            actor=actor,
        )
    crash_point("audited")
    # Stamped with the version our own audit entry committed, so a write by anyone after it
    # moves the counter on and the next run renders again. If someone wrote between our read
    # and our audit, the tabs may lack it: stamp the version they were built from instead,
    # which no longer matches, so the next run writes again.
    built_from = prep.context.data_version
    stamp = _stamp(project, path, version if version == built_from + 1 else built_from,
                   chosen, source, today)
    stamp["report"] = {"status_counts": report.status_counts, "status_line": report.status_line,
                       "tabs": report.tabs, "rows": report.rows}
    try:
        _write_stamp(project, path, stamp)
    except OSError as exc:  # the workbook is written; only the next run's shortcut is lost
        report.warnings.append(
            f"无法记录汇总标记，下次将重新写入 / could not record the stamp ({exc.strerror}); the"
            " next run will write the workbook again"
        )
