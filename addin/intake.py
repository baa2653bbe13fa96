"""Intake: every file in ``inbox/`` ends accepted (``archive/``), rejected (``rejected/`` with a
feedback copy), or recognised as a duplicate (``archive/``); nothing is deleted or counted twice.

A run holds the store's exclusive lock ``intake`` (a second run, say a scheduled job and a
coordinator's button, waits up to :data:`LOCK_WAIT_SECONDS`, then stops with ``StoreBusy``
naming the holder), then: hash every file → recognise files already known → read each new
file (:mod:`plan_tracker.reader`; in worker processes when there are many) → refuse templates
of a closed period (``reporting.open_periods``) → compute plausibility bounds from the store
→ validate ALL rows of the run with one lazy pandera call
(:mod:`plan_tracker.schemas.submission`) → decide every file in arrival order and write all
of it (submissions, problems, observations, supersede earlier submissions of the same
department and period, audit) in ONE store transaction → commit → write the feedback copies
of rejected files → THEN move the files.

Crash safety: nothing is moved before the commit, and a crash before it leaves no trace in
the store (one transaction), so the next run starts over. Files are placed with a hard link
(never overwriting); every destination folder is synced, and only then are the inbox entries
unlinked. If a run stops after the commit, the inbox file is still there; on the next run
its hash is found in the store and the move is finished (the recorded path is reused), and a
rejected file's feedback copy is written again if it was lost, so nothing is counted twice.

Plausibility (DHIS2-style min–max around a reference, see ``docs/intake.md``): the reference
is, in this order, the value already accepted for the same point (a correction), the same
period last year, or the period's target (not for running-sum indicators). Bounds are
``[0.5×, 2×]`` the reference for history and ``[0.1×, 10×]`` for a target (catches unit
slips such as 万元 for 亿元); counts also allow ±5 around small references. For flows
(year-to-date), an earlier month's value of the same year is a floor and a later month's a
ceiling. A value outside its bounds is accepted only with a 备注.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plan_tracker import normalise
from plan_tracker.errors import Bi, Problem, problem
from plan_tracker.periods import Period, PeriodError, parse_period
from plan_tracker.project import Project
from plan_tracker.store import SECRET_SETTING, Store, StoreError, default_actor, utc_now

if TYPE_CHECKING:  # pandas and pandera are imported only when there are files to validate
    import pandas as pd
    from plan_tracker.catalogue import Catalogue
    from plan_tracker.reader import SubmissionRead

HISTORY_BAND = (0.5, 2.0)
TARGET_BAND = (0.1, 10.0)
COUNT_SLACK = 5.0
FEEDBACK_PREFIX = "反馈_"
_SKIPPED_PREFIXES = ("~$", ".")  # Excel/WPS lock files and hidden system files
INTAKE_LOCK = "intake"
#: How long a run waits for another one to finish: a scheduled job and a button click that
#: meet should both complete (a 500-file run takes seconds), a hung one should not block.
LOCK_WAIT_SECONDS = 30.0
OPEN_PERIODS_SETTING = "reporting.open_periods"
ALL_PERIODS_OPEN = "*"
#: From this many new files on, files are read in forked worker processes, one per CPU.
#: Measured on 2 cores (bench/bench_intake.py): 500 files 1.01 → 0.59 s when the second core
#: is free, no gain when other work keeps it busy; 50 files ±0.03 s (the fork and pickling
#: cost ~0.07 s, so the break-even is near 70 files at 2 ms a file).
POOL_MIN_FILES = 100


@dataclass
class FileOutcome:
    path: Path  # where the file is now (for a dry run: where it would go)
    original_name: str
    sha256: str
    status: str  # accepted | rejected | duplicate
    department: str | None = None
    period: str | None = None
    submission_id: int | None = None
    problems: list[Problem] = field(default_factory=list)
    feedback_path: Path | None = None
    archive_path: Path | None = None
    template_id: str | None = None
    changes: list[str] = field(default_factory=list)
    duplicate_of: int | None = None
    stored: int = 0  # values recorded (new or changed)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]


@dataclass
class IntakeReport:
    files: list[FileOutcome] = field(default_factory=list)
    dry_run: bool = False
    #: seconds per step: hash, catalogue, read, validate, store, feedback, move, total
    timings: dict[str, float] = field(default_factory=dict)
    workers: int = 1  # processes that read the files

    @property
    def accepted(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "accepted"]

    @property
    def rejected(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "rejected"]

    @property
    def duplicates(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "duplicate"]


# --------------------------------------------------------------------------- files


def inbox_files(project: Project) -> list[Path]:
    """The files waiting in ``inbox/``, oldest first (so a later file supersedes an earlier)."""
    if not project.inbox.is_dir():
        return []
    found = [
        p for p in project.inbox.iterdir()
        if p.is_file() and not p.name.startswith(_SKIPPED_PREFIXES)
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def display_name(name: str) -> str:
    """A file name that can be stored and shown: undecodable bytes replaced, controls removed."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return "".join(ch if unicodedata.category(ch)[0] != "C" else "_" for ch in text) or "_"


def safe_file_name(name: str, limit_bytes: int = 180) -> str:
    """A name safe on every file system we meet (Windows shares included), extension kept."""
    text = display_name(name)
    text = re.sub(r'[\\/:*?"<>|]', "_", text).strip(" .") or "_"
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = text, ""
    while len(stem.encode("utf-8")) > limit_bytes:
        stem = stem[:-1]
    return f"{stem}.{ext}" if ext else stem


def _free_path(path: Path, reserved: set[Path] | None = None) -> Path:
    """``path``, or ``name__2.ext``, ``name__3.ext`` … : the first that neither exists nor is
    ``reserved`` (promised to another file of this run, which moves only at the end)."""
    taken = reserved if reserved is not None else set()
    found = None
    if not path.exists() and path not in taken:
        found = path
    else:
        for n in range(2, 10_000):
            candidate = path.with_name(f"{path.stem}__{n}{path.suffix}")
            if not candidate.exists() and candidate not in taken:
                found = candidate
                break
    if found is None:
        raise FileExistsError(path)
    if reserved is not None:
        reserved.add(found)
    return found


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform (Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class MoveBatch:
    """The moves of one run, made durable together: every file is linked into place first,
    each destination folder is synced once, and only then are the inbox entries unlinked
    (and the inbox synced). Between the two steps a file exists in both places, which the
    next run recognises and finishes; there is no moment where it exists nowhere."""

    def __init__(self) -> None:
        self._placed: list[tuple[Path, Path]] = []

    def add(self, src: Path, dest: Path) -> None:
        self._placed.append((src, dest))

    def finish(self) -> None:
        placed, self._placed = self._placed, []
        for folder in dict.fromkeys(dest.parent for _, dest in placed):
            _fsync_dir(folder)
        for src, _ in placed:
            try:
                os.unlink(src)
            except FileNotFoundError:
                pass  # already gone: the same entry placed twice, or removed by hand
        for folder in dict.fromkeys(src.parent for src, _ in placed):
            _fsync_dir(folder)


def place_file(src: Path, dest: Path, batch: MoveBatch | None = None) -> Path:
    """Move ``src`` to ``dest`` (or a free name beside it) without ever overwriting and
    without a moment where the file exists nowhere: link (or copy + fsync) first, then unlink.
    With a ``batch``, the sync and the unlink wait for :meth:`MoveBatch.finish`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            if os.path.samefile(src, dest):  # an earlier run linked it and stopped before unlinking
                _unlink_after(src, dest, batch)
                return dest
        except OSError:
            pass
        dest = _free_path(dest)
    while True:
        try:
            os.link(src, dest)
            break
        except FileExistsError:
            dest = _free_path(dest)
        except OSError:
            tmp = dest.with_name(f".{dest.name}.partial")
            shutil.copyfile(src, tmp)
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            if dest.exists():
                dest = _free_path(dest)
            os.replace(tmp, dest)
            break
    _unlink_after(src, dest, batch)
    return dest


def _unlink_after(src: Path, dest: Path, batch: MoveBatch | None) -> None:
    if batch is not None:
        batch.add(src, dest)
        return
    _fsync_dir(dest.parent)
    os.unlink(src)
    _fsync_dir(src.parent)


# --------------------------------------------------------------------------- plausibility


def _observation_index(observations: pd.DataFrame) -> dict[str, dict[str, tuple[float, Period]]]:
    index: dict[str, dict[str, tuple[float, Period]]] = {}
    if observations.empty:
        return index
    for record in observations[["indicator_id", "period", "value"]].itertuples(index=False):
        if record.value is None or (isinstance(record.value, float) and math.isnan(record.value)):
            continue
        period = parse_period(record.period)
        index.setdefault(record.indicator_id, {})[period.point] = (float(record.value), period)
    return index


def plausibility_bounds(frame: pd.DataFrame, catalogue: Catalogue, observations: pd.DataFrame, context) -> pd.DataFrame:
    """Add ``ref_value, ref_label, lo, hi`` to the frame (NaN where there is no reference)."""
    values = _observation_index(observations)
    ref_value, ref_label, lows, highs = [], [], [], []
    for record in frame[["indicator_id", "period", "kind", "is_task"]].itertuples(index=False):
        bounds = (math.nan, "", math.nan, math.nan)
        if record.kind == normalise.NUMBER and not record.is_task and record.indicator_id in catalogue:
            bounds = _bounds(catalogue.get(record.indicator_id), parse_period(record.period), values, context)
        ref_value.append(bounds[0])
        ref_label.append(bounds[1])
        lows.append(bounds[2])
        highs.append(bounds[3])
    return frame.assign(ref_value=ref_value, ref_label=ref_label, lo=lows, hi=highs)


def _band(ref: float, band: tuple[float, float], count: bool) -> tuple[float, float]:
    lo, hi = ref * band[0], ref * band[1]
    if count:
        lo, hi = min(lo, ref - COUNT_SLACK), max(hi, ref + COUNT_SLACK)
    return lo, hi


def _bounds(ind, period: Period, values, context) -> tuple[float, str, float, float]:
    history = values.get(ind.id, {})
    count = normalise.is_count_unit(ind.unit)
    ref, label, lo, hi = math.nan, "", math.nan, math.nan
    last_year = period.same_period_last_year()
    if period.point in history:
        ref = history[period.point][0]
        label = f"{normalise.shown(ref)}（本期已报送值 / accepted before）"
        band = HISTORY_BAND
    elif last_year.point in history:
        ref = history[last_year.point][0]
        label = f"{normalise.shown(ref)}（去年同期 {last_year.label_zh()} / same period last year）"
        band = HISTORY_BAND
    else:
        target = None
        if ind.rule != "cumulative_at_least":
            target = context.result(ind.id, str(period)).target
        if target is not None:
            ref = float(target)
            label = f"{normalise.shown(round(ref, 2))}（本期目标 / period target）"
        band = TARGET_BAND
    if not math.isnan(ref) and ref > 0:
        lo, hi = _band(ref, band, count)
    if ind.measure == "flow":
        floor, ceiling = _ytd_limits(history, period)
        if floor is not None and (math.isnan(lo) or floor > lo):
            lo = floor
            label = f"{normalise.shown(floor)}（本年更早月份的累计值不应大于本期 / an earlier year-to-date value）"
        if ceiling is not None and (math.isnan(hi) or ceiling < hi):
            hi = ceiling
            label = f"{normalise.shown(ceiling)}（本年更晚月份的累计值不应小于本期 / a later year-to-date value）"
    return ref, label, lo, hi


def _ytd_limits(history: dict[str, tuple[float, Period]], period: Period) -> tuple[float | None, float | None]:
    earlier = [v for v, p in history.values() if p.year == period.year and p.month < period.month]
    later = [v for v, p in history.values() if p.year == period.year and p.month > period.month]
    return (max(earlier) if earlier else None, min(later) if later else None)


# --------------------------------------------------------------------------- validation


def build_frame(reads: list[SubmissionRead]) -> pd.DataFrame:
    import pandas as pd
    from plan_tracker.schemas.submission import FRAME_COLUMNS

    rows = [row for read in reads for row in read.rows]
    columns = [c for c in FRAME_COLUMNS if c not in ("ref_value", "ref_label", "lo", "hi")]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"is_task": bool, "value": float})
    for column in ("file", "sheet", "department", "period", "indicator_id", "unit", "kind", "shown"):
        frame[column] = frame[column].astype(object).fillna("").astype(str)
    for column in ("cell", "value_text", "note"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame.index = range(len(frame))
    return frame


def _failure_problem(code: str, row: pd.Series) -> Problem:
    cell = row["cell"] if isinstance(row["cell"], str) else None
    value = row["indicator_id"] if code in ("missing-row", "duplicate-row", "unknown-indicator",
                                             "not-this-department", "computed-indicator") else row["shown"]
    detail = ""
    if code == "out-of-range":
        detail = "0–100" if row["unit"] == "%" else "≥ 0"
        value = normalise.shown(row["value"])
    elif code in ("outlier-no-remark",):
        detail = row["ref_label"]
        value = normalise.shown(row["value"])
    elif code == "not-integer":
        value = normalise.shown(row["value"])
    return problem(code, row["file"], row["sheet"], cell, value=value, detail=detail,
                   unit=row["unit"] or "—", department=row["department"])


def validate_run(reads: list[SubmissionRead], catalogue: Catalogue, observations: pd.DataFrame, context) -> dict[str, list[Problem]]:
    """Problems found by the schema, per file, from ONE pandera call over every file's rows."""
    from plan_tracker.schemas.submission import explained_outliers, validate_submissions

    frame = build_frame(reads)
    out: dict[str, list[Problem]] = {}
    if frame.empty:
        return out
    frame = plausibility_bounds(frame, catalogue, observations, context)
    failures = validate_submissions(frame, catalogue)
    order = {code: n for n, code in enumerate(
        ["unknown-indicator", "computed-indicator", "not-this-department", "duplicate-row", "missing-row",
         "missing-value", "out-of-range", "not-integer", "bad-task-state", "outlier-no-remark"])}
    failures = failures.assign(rank=failures["code"].map(order).fillna(99)).sort_values(["index", "rank"])
    # An outlier test on a value that already breaks a rule (negative, not whole …) says nothing new.
    others = set(failures.loc[failures["code"] != "outlier-no-remark", "index"])
    failures = failures[(failures["code"] != "outlier-no-remark") | ~failures["index"].isin(others)]
    for index, code in failures[["index", "code"]].itertuples(index=False):
        row = frame.loc[index]
        # A row already wrong by identity (unknown id, duplicate …) needs no further value rules.
        out.setdefault(row["file"], []).append(_failure_problem(code, row))
    for index in frame.index[explained_outliers(frame)]:
        row = frame.loc[index]
        out.setdefault(row["file"], []).append(
            problem("outlier", row["file"], row["sheet"], row["cell"], value=normalise.shown(row["value"]), detail=row["ref_label"])
        )
    return out


# --------------------------------------------------------------------------- open periods


class OpenPeriodsError(ValueError):
    """A change of the open periods that cannot be made; the message says what to do."""


def open_periods(store: Store) -> list[Period] | None:
    """The periods open for reporting (setting ``reporting.open_periods``), latest first, or
    ``None`` when every period is open (the setting unset or ``*``, the default)."""
    text = store.get_setting(OPEN_PERIODS_SETTING)
    if text is None or text.strip() == ALL_PERIODS_OPEN:
        return None
    try:
        return _unique_periods(part for part in text.split(",") if part.strip())
    except PeriodError as exc:
        raise StoreError(
            f"设置 {OPEN_PERIODS_SETTING} 无效（{text!r}）：{exc}；请用 plan-tracker periods open/close 重新设置 / "
            f"invalid setting {OPEN_PERIODS_SETTING}={text!r}: set it again with plan-tracker periods open/close"
        ) from exc


def set_open_periods(store: Store, periods: Iterable[str | Period] | None, *, actor: str) -> list[Period] | None:
    """Make exactly ``periods`` open (``None``: every period, the default). Audited."""
    if periods is None:
        store.set_setting(OPEN_PERIODS_SETTING, ALL_PERIODS_OPEN, actor=actor)
        return None
    chosen = _unique_periods(periods)
    store.set_setting(OPEN_PERIODS_SETTING, ",".join(str(p) for p in chosen), actor=actor)
    return chosen


def open_period(store: Store, period: str, *, actor: str) -> list[Period]:
    """Open ``period`` for reporting. While every period is open (the default), the first
    period opened makes it the only open one: from then on the list decides."""
    current = open_periods(store) or []
    return set_open_periods(store, [*current, parse_period(period)], actor=actor) or []


def close_period(store: Store, period: str, *, actor: str) -> list[Period]:
    """Close ``period``: templates of it are then rejected with ``period-closed``."""
    point = parse_period(period).point
    current = open_periods(store)
    if current is None:
        raise OpenPeriodsError(
            "目前所有期间都开放，无法单独关闭某一期；请先用 plan-tracker periods open <本期> 指定开放的期间 / "
            "every period is open (nothing set): first name the open ones with plan-tracker periods open <period>"
        )
    return set_open_periods(store, [p for p in current if p.point != point], actor=actor) or []


def _unique_periods(periods: Iterable[str | Period]) -> list[Period]:
    """Parsed, one per point in time (2025-Q3 ≡ 2025-09: the first given wins), latest first."""
    found: dict[str, Period] = {}
    for item in periods:
        period = item if isinstance(item, Period) else parse_period(str(item).strip())
        found.setdefault(period.point, period)
    return sorted(found.values(), key=lambda p: p.sort_key, reverse=True)


def _closed_problem(read: SubmissionRead, open_list: list[Period] | None) -> Problem | None:
    if open_list is None or not read.period:
        return None
    period = parse_period(read.period)
    if any(p.point == period.point for p in open_list):
        return None
    shown = "、".join(p.label_zh() for p in open_list) or "无 / none"
    return problem("period-closed", read.file, detail=period.label_zh(), open=shown)


# --------------------------------------------------------------------------- reading


def read_files(jobs: list[tuple[Path, str]], secret: bytes, catalogue: Catalogue, workers: int = 1) -> list[SubmissionRead]:
    """Read every ``(path, display name)``, in order; with ``workers`` > 1 in that many
    forked processes where :func:`_fork_context` allows (what comes back is plain data:
    rows as dicts, problems as dataclasses)."""
    context = _fork_context() if workers > 1 and len(jobs) > 1 else None
    if context is not None:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        chunk = max(1, len(jobs) // (workers * 4))
        try:
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                     initargs=(secret, catalogue)) as pool:
                return list(pool.map(_read_in_worker, jobs, chunksize=chunk))
        except BrokenProcessPool:
            pass  # a worker died (killed, out of memory): read here, one by one
    return [_read_one(path, name, secret, catalogue) for path, name in jobs]


def _fork_context() -> Any:
    """The ``fork`` start method, or ``None`` where worker processes do not pay or are not
    safe. Measured on 2 cores, 500 files (bench/bench_intake.py): 1.01 s serial, 0.59 s
    forked, but 1.26 s (forkserver) and 1.40 s (spawn, Windows' only method), because a
    fresh interpreter imports pandas and pandera again. Forking while other threads run
    (a web server) can deadlock the child, so then the files are read here."""
    import multiprocessing
    import threading

    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return None
    return multiprocessing.get_context("fork")


_WORKER: dict[str, Any] = {}


def _worker_init(secret: bytes, catalogue: Catalogue) -> None:
    _WORKER.update(secret=secret, catalogue=catalogue)


def _read_in_worker(job: tuple[Path, str]) -> SubmissionRead:
    return _read_one(job[0], job[1], _WORKER["secret"], _WORKER["catalogue"])


def _read_one(path: Path, name: str, secret: bytes, catalogue: Catalogue) -> SubmissionRead:
    from plan_tracker.reader import SubmissionRead, read_submission

    try:
        return read_submission(path, file=name, secret=secret, catalogue=catalogue)
    except Exception as exc:  # a reader bug must not stop the run or lose the file
        return SubmissionRead(path=path, file=name, problems=[
            problem("internal-error", name, detail=f"{type(exc).__name__}: {exc}")])


def _workers_for(count: int, workers: int | None) -> int:
    if count < 2 or _fork_context() is None:
        return 1
    if workers is not None:
        return max(1, workers)
    if count < POOL_MIN_FILES:
        return 1
    return max(1, min(os.cpu_count() or 1, count // (POOL_MIN_FILES // 2)))


# --------------------------------------------------------------------------- the run


def _secret(store: Store, dry_run: bool) -> bytes:
    if dry_run:
        stored = store.get_setting(SECRET_SETTING)
        # No key yet means no template was ever issued: nothing can verify, nothing is written.
        return bytes.fromhex(stored) if stored else os.urandom(32)
    return store.secret()


def run_intake(
    project: Project,
    *,
    dry_run: bool = False,
    actor: str | None = None,
    wait: float = LOCK_WAIT_SECONDS,
    workers: int | None = None,
) -> IntakeReport:
    """Process every file in ``inbox/``; see the module docstring for the guarantees.

    ``wait``: seconds to wait while another intake run holds the lock, then
    :class:`~plan_tracker.store.StoreBusy` (naming the holder). ``workers``: processes that
    read the files (default: one per CPU from :data:`POOL_MIN_FILES` new files on)."""
    started = time.perf_counter()
    report = IntakeReport(dry_run=dry_run)
    if inbox_files(project):
        with project.open_store() as store, store.exclusive(INTAKE_LOCK, wait=wait):
            _Run(project, store, report, actor or default_actor()).go(workers)
    report.timings["total"] = time.perf_counter() - started
    return report


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings
        self.mark = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - self.mark
        self.mark = now


class _Run:
    """One intake run. Deciding writes to the store only (one transaction); feedback copies
    and moves are queued and done after the commit."""

    def __init__(self, project: Project, store: Store, report: IntakeReport, actor: str) -> None:
        self.project = project
        self.store = store
        self.report = report
        self.dry_run = report.dry_run
        self.actor = actor
        self.audits: list[tuple[str, dict]] = []
        self.feedback: list[tuple[Path, FileOutcome, bool]] = []  # source, outcome, openable
        self.moves: list[tuple[Path, Path, FileOutcome, bool]] = []  # src, dest, outcome, is its archive path
        self.reserved: set[Path] = set()  # destinations promised to files of this run

    def go(self, workers: int | None) -> None:
        project, store, report = self.project, self.store, self.report
        clock = _Clock(report.timings)
        # Listed again under the lock: a run that held it has moved its files by now.
        files = inbox_files(project)
        secret = _secret(store, self.dry_run)
        pending: list[tuple[Path, str, str]] = []
        for path in files:
            name = display_name(path.name)
            try:
                digest = file_sha256(path)
            except OSError as exc:
                report.files.append(FileOutcome(path, name, "", "rejected", problems=[
                    problem("corrupt-file", name, detail=Bi(f"无法读取：{exc.strerror}", f"cannot read: {exc.strerror}"))]))
                continue
            outcome = self._recognised(path, name, digest, store.find_submission_by_hash(digest))
            if outcome is not None:
                report.files.append(outcome)
            else:
                pending.append((path, name, digest))
        clock.lap("hash")

        reads: list[SubmissionRead] = []
        schema_problems: dict[str, list[Problem]] = {}
        if pending:
            from plan_tracker.service import load_context, read_catalogue

            catalogue = read_catalogue(project)
            import plan_tracker.reader  # noqa: F401  (here, so that worker processes inherit it)

            clock.lap("catalogue")
            report.workers = _workers_for(len(pending), workers)
            reads = read_files([(path, name) for path, name, _ in pending], secret, catalogue, report.workers)
            clock.lap("read")
            closed = open_periods(store)
            for read in reads:
                found = _closed_problem(read, closed)
                if found is not None:
                    read.problems.append(found)
            try:
                schema_problems = validate_run(reads, catalogue, store.current_observations(), load_context(project))
            except Exception as exc:  # keep every file safe even if validation itself fails
                schema_problems = {name: [problem("internal-error", name, detail=f"{type(exc).__name__}: {exc}")]
                                   for _, name, _ in pending}
            clock.lap("validate")

        with self._writing():
            for action, detail in self.audits:
                store.audit(action, detail, actor=self.actor)
            first_of: dict[str, FileOutcome] = {}
            for (path, name, digest), read in zip(pending, reads, strict=True):
                problems = read.problems + schema_problems.get(name, [])
                outcome = FileOutcome(
                    path=path, original_name=name, sha256=digest,
                    status="rejected" if any(p.is_error for p in problems) else "accepted",
                    department=read.department, period=read.period, problems=_sorted(problems),
                    template_id=read.template_id,
                )
                if digest in first_of:  # the same content twice in one inbox
                    self._same_run_duplicate(path, outcome, first_of[digest])
                elif outcome.status == "accepted":
                    self._accept(read, outcome)
                else:
                    self._reject(outcome, read.openable)
                first_of.setdefault(digest, outcome)
                report.files.append(outcome)
        clock.lap("store")
        if self.dry_run:
            return
        self._write_feedback()
        clock.lap("feedback")
        self._move()
        clock.lap("move")

    def _writing(self) -> Any:
        from contextlib import nullcontext

        return nullcontext() if self.dry_run else self.store.transaction()

    # ------------------------------------------------------------------ after the commit

    def _write_feedback(self) -> None:
        from plan_tracker.feedback import write_feedback

        for src, outcome, openable in self.feedback:
            assert outcome.feedback_path is not None
            write_feedback(src, outcome.problems, outcome.feedback_path, openable=openable, file=outcome.original_name)

    def _move(self) -> None:
        batch = MoveBatch()
        try:
            for src, dest, outcome, is_archive in self.moves:
                outcome.path = place_file(src, dest, batch)
                if is_archive:
                    outcome.archive_path = outcome.path
        finally:
            # Whatever was linked is finished, even if a later file failed: its store
            # record is committed.
            batch.finish()

    # ------------------------------------------------------------------ deciding

    def _recognised(self, path: Path, name: str, digest: str, known: dict | None) -> FileOutcome | None:
        """A file whose content the store already knows: a duplicate, or a move left unfinished."""
        if known is None:
            return None
        project = self.project
        recorded = Path(known["archive_path"]) if known.get("archive_path") else None
        if recorded is not None and not recorded.is_absolute():
            recorded = project.root / recorded
        unfinished = recorded is not None and (not recorded.exists() or _same_file(path, recorded))
        if known["status"] == "rejected" and not unfinished:
            return None  # sent again unchanged: validate again (the store may have changed)
        outcome = FileOutcome(
            path=path, original_name=name, sha256=digest,
            status=("rejected" if known["status"] == "rejected" else "accepted") if unfinished else "duplicate",
            department=known["department"], period=known["period"], submission_id=known["submission_id"],
            template_id=known.get("template_id"),
            problems=[Problem(**p) for p in known.get("problems", [])] if unfinished else [],
            duplicate_of=None if unfinished else known["submission_id"],
        )
        if unfinished:
            assert recorded is not None
            outcome.archive_path = recorded
            if outcome.status == "rejected":
                self._feedback_again(path, outcome)
            if not self.dry_run:
                self.moves.append((path, recorded, outcome, False))
            return outcome
        dest = project.archive / (known["period"] or "_") / f"{digest[:16]}_{safe_file_name(path.name)}"
        outcome.archive_path = dest
        if not self.dry_run:
            self.audits.append(("intake_duplicate", {
                "message": f"重复文件 / duplicate file {name}: 与提交 #{known['submission_id']} 内容相同，未重复计入",
                "file": name, "sha256": digest, "duplicate_of": known["submission_id"],
            }))
            self.moves.append((path, dest, outcome, True))
        return outcome

    def _feedback_again(self, path: Path, outcome: FileOutcome) -> None:
        """A rejected file whose run stopped after the commit: its feedback copy may not have
        been written; write it now from the problems the store kept."""
        existing = sorted(self.project.rejected.glob(f"{FEEDBACK_PREFIX}{outcome.sha256[:16]}_*.xlsx"))
        if existing:
            outcome.feedback_path = existing[-1]
            return
        outcome.feedback_path = self._feedback_dest(outcome)
        if not self.dry_run:
            self.feedback.append((path, outcome, _openable(outcome)))

    def _feedback_dest(self, outcome: FileOutcome) -> Path:
        stem = safe_file_name(Path(outcome.original_name).stem, limit_bytes=120)
        return _free_path(self.project.rejected / f"{FEEDBACK_PREFIX}{outcome.sha256[:16]}_{stem}.xlsx", self.reserved)

    def _same_run_duplicate(self, path: Path, outcome: FileOutcome, first: FileOutcome) -> None:
        if first.status != "accepted" and first.status != "duplicate":
            # Identical to a file rejected moments ago: rejected again with the same problems.
            self._reject(outcome, _openable(first), feedback_from=first)
            return
        outcome.status = "duplicate"
        outcome.duplicate_of = first.submission_id or first.duplicate_of
        outcome.problems = []
        dest = self.project.archive / (first.period or "_") / f"{outcome.sha256[:16]}_{safe_file_name(path.name)}"
        outcome.archive_path = dest
        if not self.dry_run:
            self.store.audit("intake_duplicate", {
                "message": f"重复文件 / duplicate file {outcome.original_name}: 与同批文件 {first.original_name} 内容相同",
                "file": outcome.original_name, "sha256": outcome.sha256, "duplicate_of": outcome.duplicate_of,
            }, actor=self.actor)
            self.moves.append((path, dest, outcome, True))

    def _accept(self, read: SubmissionRead, outcome: FileOutcome) -> None:
        store, actor = self.store, self.actor
        dest = _free_path(
            self.project.archive / (read.period or "_") / f"{outcome.sha256[:16]}_{safe_file_name(read.path.name)}",
            self.reserved,
        )
        outcome.archive_path = dest
        records = _records(read)
        if self.dry_run:
            outcome.stored = len(records)
            return
        now = utc_now()
        earlier = store.accepted_submission_ids(read.department, read.period)
        submission_id = store.add_submission(
            file_name=outcome.original_name, sha256=outcome.sha256, department=read.department,
            period=read.period, kind="template", status="accepted",
            problems=[p.as_store_dict() for p in outcome.problems], received_at=now, decided_at=now,
            archive_path=str(dest), template_id=read.template_id, actor=actor,
        )
        summary = store.record_observations(records, submission_id=submission_id, actor=actor)
        for old in earlier:
            store.set_submission_status(old, "superseded", actor=actor)
        outcome.changes = [f"{c.indicator_id} {c.period}: {c.describe()}" for c in summary.changed]
        if earlier:
            names = [(store.get_submission(old) or {}).get("file_name", "") for old in earlier]
            store.audit("submission_superseded", {
                "message": f"{outcome.original_name}（提交 #{submission_id}）替代 / supersedes "
                           + "、".join(f"#{s} {f}" for s, f in zip(earlier, names, strict=True))
                           + (f"：{'；'.join(outcome.changes)}" if outcome.changes else "：数值未变 / no value changed"),
                "submission_id": submission_id, "superseded": earlier,
                "changes": outcome.changes, "file": outcome.original_name,
            }, actor=actor)
        outcome.submission_id = submission_id
        outcome.stored = summary.inserted + len(summary.changed)
        self.moves.append((read.path, dest, outcome, True))

    def _reject(self, outcome: FileOutcome, openable: bool, feedback_from: FileOutcome | None = None) -> None:
        if feedback_from is not None:
            outcome.problems = list(feedback_from.problems)
            outcome.department, outcome.period = feedback_from.department, feedback_from.period
            outcome.template_id = feedback_from.template_id
        outcome.status = "rejected"
        dest = _free_path(self.project.rejected / f"{outcome.sha256[:16]}_{safe_file_name(outcome.path.name)}", self.reserved)
        outcome.archive_path = dest
        outcome.feedback_path = self._feedback_dest(outcome)
        if self.dry_run:
            return
        now = utc_now()
        outcome.submission_id = self.store.add_submission(
            file_name=outcome.original_name, sha256=outcome.sha256, department=outcome.department,
            period=outcome.period, kind="template", status="rejected",
            problems=[p.as_store_dict() for p in outcome.problems], received_at=now, decided_at=now,
            archive_path=str(dest), template_id=outcome.template_id, actor=self.actor,
        )
        self.feedback.append((outcome.path, outcome, openable))
        self.moves.append((outcome.path, dest, outcome, True))


def _sorted(problems: list[Problem]) -> list[Problem]:
    def key(p: Problem) -> tuple:
        cell = p.cell or ""
        match = re.match(r"([A-Z]+)(\d+)$", cell)
        row, col = (int(match.group(2)), match.group(1)) if match else (0, "")
        return (0 if p.is_error else 1, p.sheet or "", row, len(col), col)

    # Distinct problems only: the reader and the schema may both see e.g. one formula cell.
    seen, out = set(), []
    for p in sorted(problems, key=key):
        ident = (p.code, p.sheet, p.cell, p.message)
        if ident not in seen:
            seen.add(ident)
            out.append(p)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _records(read: SubmissionRead) -> list[dict]:
    out = []
    for row in read.rows:
        if row["kind"] == normalise.NUMBER:
            value, text = row["value"], None
        elif row["kind"] == normalise.TEXT:
            value, text = None, row["value_text"]
        else:
            continue  # not reported / blank: nothing is stored (never a zero)
        out.append({
            "indicator_id": row["indicator_id"], "period": row["period"], "value": value,
            "value_text": text, "note": row["note"], "department": row["department"],
            "sheet": row["sheet"], "cell": row["cell"],
        })
    return out


def _openable(outcome: FileOutcome) -> bool:
    fatal = {"empty-file", "file-too-large", "not-excel", "wrong-file-type", "encrypted-file", "zip-bomb",
             "unsafe-xml", "corrupt-file", "too-many-rows", "internal-error"}
    return not any(p.code in fatal for p in outcome.problems)
