"""Intake: every file in ``inbox/`` ends accepted (``archive/``), rejected (``rejected/`` with a
feedback copy), or recognised as a duplicate (``archive/``); nothing is deleted or counted twice.

A run: hash every file → recognise files already accepted → read each new file
(:mod:`plan_tracker.reader`) → compute plausibility bounds from the store → validate ALL rows
of the run with one lazy pandera call (:mod:`plan_tracker.schemas.submission`) → per file, in
arrival order: commit the store transaction (submission, problems, observations, supersede
earlier submissions of the same department and period), THEN move the file.

Crash safety: the store is committed before a file moves, and a file is placed with a hard
link (never overwriting) before the inbox entry is unlinked. If a run stops part-way, the
inbox file is still there; on the next run its hash is found in the store and the move is
finished (the recorded path is reused), so nothing is counted twice.

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
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from plan_tracker import normalise
from plan_tracker.catalogue import Catalogue
from plan_tracker.errors import Problem, problem
from plan_tracker.periods import Period, parse_period
from plan_tracker.project import Project
from plan_tracker.reader import SubmissionRead, read_submission
from plan_tracker.schemas.submission import (
    FRAME_COLUMNS,
    explained_outliers,
    validate_submissions,
)
from plan_tracker.store import SECRET_SETTING, Store, default_actor, utc_now

HISTORY_BAND = (0.5, 2.0)
TARGET_BAND = (0.1, 10.0)
COUNT_SLACK = 5.0
FEEDBACK_PREFIX = "反馈_"
_SKIPPED_PREFIXES = ("~$", ".")  # Excel/WPS lock files and hidden system files


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


def _free_path(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}__{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)


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


def place_file(src: Path, dest: Path) -> Path:
    """Move ``src`` to ``dest`` (or a free name beside it) without ever overwriting and
    without a moment where the file exists nowhere: link (or copy + fsync) first, then unlink."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            if os.path.samefile(src, dest):  # an earlier run linked it and stopped before unlinking
                os.unlink(src)
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
    _fsync_dir(dest.parent)
    os.unlink(src)
    _fsync_dir(src.parent)
    return dest


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


# --------------------------------------------------------------------------- the run


def _secret(store: Store, dry_run: bool) -> bytes:
    if dry_run:
        stored = store.get_setting(SECRET_SETTING)
        # No key yet means no template was ever issued: nothing can verify, nothing is written.
        return bytes.fromhex(stored) if stored else os.urandom(32)
    return store.secret()


def run_intake(project: Project, *, dry_run: bool = False, actor: str | None = None) -> IntakeReport:
    """Process every file in ``inbox/``; see the module docstring for the guarantees."""
    from plan_tracker.service import load_context, read_catalogue

    actor = actor or default_actor()
    report = IntakeReport(dry_run=dry_run)
    catalogue = read_catalogue(project)
    context = load_context(project)
    files = inbox_files(project)
    with project.open_store() as store:
        secret = _secret(store, dry_run)
        observations = store.current_observations()
        pending: list[tuple[Path, str, str, SubmissionRead]] = []
        first_of: dict[str, FileOutcome] = {}
        for path in files:
            name = display_name(path.name)
            try:
                digest = file_sha256(path)
            except OSError as exc:
                report.files.append(FileOutcome(path, name, "", "rejected", problems=[
                    problem("corrupt-file", name, detail=f"无法读取 / cannot read: {exc.strerror}")]))
                continue
            known = store.find_submission_by_hash(digest)
            outcome = _recognised(project, store, path, name, digest, known, dry_run, actor)
            if outcome is not None:
                report.files.append(outcome)
                continue
            try:
                read = read_submission(path, file=name, secret=secret, catalogue=catalogue)
            except Exception as exc:  # a reader bug must not stop the run or lose the file
                read = SubmissionRead(path=path, file=name, problems=[
                    problem("internal-error", name, detail=f"{type(exc).__name__}: {exc}")])
            pending.append((path, name, digest, read))
        try:
            schema_problems = validate_run([r for *_, r in pending], catalogue, observations, context)
        except Exception as exc:  # keep every file safe even if validation itself fails
            schema_problems = {name: [problem("internal-error", name, detail=f"{type(exc).__name__}: {exc}")]
                               for _, name, _, _ in pending}
        for path, name, digest, read in pending:
            problems = read.problems + schema_problems.get(name, [])
            outcome = FileOutcome(
                path=path, original_name=name, sha256=digest,
                status="rejected" if any(p.is_error for p in problems) else "accepted",
                department=read.department, period=read.period, problems=_sorted(problems),
                template_id=read.template_id,
            )
            if digest in first_of:  # the same content twice in one inbox
                outcome = _same_run_duplicate(project, store, path, outcome, first_of[digest], dry_run, actor)
            elif outcome.status == "accepted":
                _accept(project, store, read, outcome, dry_run, actor)
            else:
                _reject(project, store, read, outcome, dry_run, actor)
            first_of.setdefault(digest, outcome)
            report.files.append(outcome)
    return report


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


def _recognised(project, store, path, name, digest, known, dry_run, actor) -> FileOutcome | None:
    """A file whose content the store already knows: a duplicate, or a move left unfinished."""
    if known is None:
        return None
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
        outcome.archive_path = recorded
        if not dry_run:
            outcome.path = place_file(path, recorded)
        return outcome
    dest = project.archive / (known["period"] or "_") / f"{digest[:16]}_{safe_file_name(path.name)}"
    outcome.archive_path = dest
    if not dry_run:
        store.audit("intake_duplicate", {
            "message": f"重复文件 / duplicate file {name}: 与提交 #{known['submission_id']} 内容相同，未重复计入",
            "file": name, "sha256": digest, "duplicate_of": known["submission_id"],
        }, actor=actor)
        outcome.path = outcome.archive_path = place_file(path, dest)
    return outcome


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _same_run_duplicate(project, store, path, outcome, first, dry_run, actor) -> FileOutcome:
    if first.status != "accepted" and first.status != "duplicate":
        # Identical to a file rejected moments ago: rejected again with the same problems.
        _reject(project, store, None, outcome, dry_run, actor, feedback_from=first)
        return outcome
    outcome.status = "duplicate"
    outcome.duplicate_of = first.submission_id or first.duplicate_of
    outcome.problems = []
    dest = project.archive / (first.period or "_") / f"{outcome.sha256[:16]}_{safe_file_name(path.name)}"
    outcome.archive_path = dest
    if not dry_run:
        store.audit("intake_duplicate", {
            "message": f"重复文件 / duplicate file {outcome.original_name}: 与同批文件 {first.original_name} 内容相同",
            "file": outcome.original_name, "sha256": outcome.sha256, "duplicate_of": outcome.duplicate_of,
        }, actor=actor)
        outcome.path = outcome.archive_path = place_file(path, dest)
    return outcome


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


def _accept(project, store: Store, read: SubmissionRead, outcome: FileOutcome, dry_run: bool, actor: str) -> None:
    dest = _free_path(project.archive / (read.period or "_") / f"{outcome.sha256[:16]}_{safe_file_name(read.path.name)}")
    outcome.archive_path = dest
    records = _records(read)
    if dry_run:
        outcome.stored = len(records)
        return
    now = utc_now()
    with store.transaction():
        earlier = store.submissions(department=read.department, period=read.period)
        earlier = earlier[earlier["status"] == "accepted"]
        submission_id = store.add_submission(
            file_name=outcome.original_name, sha256=outcome.sha256, department=read.department,
            period=read.period, kind="template", status="accepted",
            problems=[p.as_store_dict() for p in outcome.problems], received_at=now, decided_at=now,
            archive_path=str(dest), template_id=read.template_id, actor=actor,
        )
        summary = store.record_observations(records, submission_id=submission_id, actor=actor)
        for old in earlier.itertuples(index=False):
            store.set_submission_status(int(old.submission_id), "superseded", actor=actor)
        outcome.changes = [f"{c.indicator_id} {c.period}: {c.describe()}" for c in summary.changed]
        if len(earlier):
            store.audit("submission_superseded", {
                "message": f"{outcome.original_name}（提交 #{submission_id}）替代 / supersedes "
                           + "、".join(f"#{int(s)} {f}" for s, f in zip(earlier["submission_id"], earlier["file_name"], strict=True))
                           + (f"：{'；'.join(outcome.changes)}" if outcome.changes else "：数值未变 / no value changed"),
                "submission_id": submission_id, "superseded": [int(s) for s in earlier["submission_id"]],
                "changes": outcome.changes, "file": outcome.original_name,
            }, actor=actor)
    outcome.submission_id = submission_id
    outcome.stored = summary.inserted + len(summary.changed)
    outcome.path = outcome.archive_path = place_file(read.path, dest)


def _reject(project, store: Store, read: SubmissionRead | None, outcome: FileOutcome, dry_run: bool, actor: str,
            feedback_from: FileOutcome | None = None) -> None:
    from plan_tracker.feedback import write_feedback

    if feedback_from is not None:
        outcome.problems = list(feedback_from.problems)
        outcome.department, outcome.period = feedback_from.department, feedback_from.period
        outcome.template_id = feedback_from.template_id
    outcome.status = "rejected"
    stem = safe_file_name(Path(outcome.original_name).stem, limit_bytes=120)
    dest = _free_path(project.rejected / f"{outcome.sha256[:16]}_{safe_file_name(outcome.path.name)}")
    feedback = _free_path(project.rejected / f"{FEEDBACK_PREFIX}{outcome.sha256[:16]}_{stem}.xlsx")
    outcome.archive_path, outcome.feedback_path = dest, feedback
    if dry_run:
        return
    openable = read.openable if read is not None else (feedback_from is not None and _openable(feedback_from))
    write_feedback(outcome.path, outcome.problems, feedback, openable=openable, file=outcome.original_name)
    now = utc_now()
    outcome.submission_id = store.add_submission(
        file_name=outcome.original_name, sha256=outcome.sha256, department=outcome.department,
        period=outcome.period, kind="template", status="rejected",
        problems=[p.as_store_dict() for p in outcome.problems], received_at=now, decided_at=now,
        archive_path=str(dest), template_id=outcome.template_id, actor=actor,
    )
    outcome.path = outcome.archive_path = place_file(outcome.path, dest)


def _openable(outcome: FileOutcome) -> bool:
    fatal = {"empty-file", "file-too-large", "not-excel", "wrong-file-type", "encrypted-file", "zip-bomb",
             "unsafe-xml", "corrupt-file", "too-many-rows", "internal-error"}
    return not any(p.code in fatal for p in outcome.problems)
