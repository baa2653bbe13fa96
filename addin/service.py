"""The functions every front end shares: the CLI, the consolidated tabs, the buttons and the
``PLAN_*`` worksheet functions all read the plan through here, so they cannot disagree.

:class:`PlanContext` is the plan as it stands in a project's store (catalogue, current
values, thresholds). :func:`load_context` caches it per project and rebuilds it only when
the store's ``data_version`` or the catalogue file changes, which is what lets a sheet with
thousands of ``=PLAN_GAP()`` cells recalculate quickly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
from plan_tracker.catalogue import Catalogue, load_catalogue
from plan_tracker.engine import Facts, GapResult, Thresholds, evaluate, evaluate_indicator
from plan_tracker.periods import parse_period
from plan_tracker.project import Project, init_project
from plan_tracker.store import RecordSummary, Store, default_actor

CATALOGUE_FILE = "catalogue.csv"


def project_catalogue_path(project: Project) -> Path:
    """The project's own, editable catalogue (a copy of the packaged one made at init)."""
    return project.root / CATALOGUE_FILE


def init(root: Path, actor: str | None = None) -> Project:
    """Create a project folder, its store and its editable catalogue copy."""
    from plan_tracker.schemas.catalogue import CATALOGUE_CSV

    project = init_project(root)
    path = project_catalogue_path(project)
    if not path.exists():
        shutil.copyfile(CATALOGUE_CSV, path)
    catalogue = load_catalogue(path)
    with project.open_store() as store:
        store.save_catalogue_version(catalogue.csv_text, note="init", actor=actor or default_actor())
    return project


_CATALOGUES: dict[Path, tuple[tuple, Catalogue]] = {}
_CATALOGUE_LOCK = threading.Lock()


def read_catalogue(project: Project) -> Catalogue:
    """The project's catalogue, loaded and validated once per version of its file: intake
    and the context both ask for it in one consolidation (0.12 s each at every ask)."""
    path = project_catalogue_path(project)
    stamp = _catalogue_stamp(project)
    with _CATALOGUE_LOCK:
        cached = _CATALOGUES.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
    catalogue = load_catalogue(path if stamp != (None,) else None)
    with _CATALOGUE_LOCK:
        _CATALOGUES[path] = (stamp, catalogue)
    return catalogue


@dataclass
class PlanContext:
    """The plan as one store holds it at one ``data_version``."""

    catalogue: Catalogue
    facts: Facts
    thresholds: Thresholds
    data_version: int
    catalogue_version_id: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def evaluate(
        self,
        period: str | None = None,
        indicator_ids: list[str] | None = None,
        today: date | None = None,
    ) -> list[GapResult]:
        return evaluate(self.catalogue, self.facts, period, indicator_ids, self.thresholds, today)

    def result(self, indicator: str, period: str | None = None) -> GapResult:
        """One indicator (by id or exact Chinese name), memoised for repeated cell calls."""
        ind = self.catalogue.resolve(indicator)
        asked = parse_period(period) if period not in (None, "") else None
        key = (ind.id, str(asked) if asked else None)
        found = self._cache.get(key)
        if found is None:
            found = evaluate_indicator(ind, asked, self.facts, self.thresholds)
            self._cache[key] = found
        return found


def context_from_store(store: Store, catalogue: Catalogue) -> PlanContext:
    version = store.data_version()
    observations = store.current_observations()
    thresholds = Thresholds.from_settings(store.get_setting)
    latest = store.latest_catalogue_version()
    return PlanContext(
        catalogue=catalogue,
        facts=Facts(catalogue, observations),
        thresholds=thresholds,
        data_version=version,
        catalogue_version_id=latest[0] if latest else None,
    )


_CONTEXTS: dict[Path, tuple[tuple, PlanContext]] = {}
_LOCK = threading.Lock()


def _catalogue_stamp(project: Project) -> tuple:
    # On every worksheet-function call: a plain os.stat on a string, no Path arithmetic.
    try:
        stat = os.stat(f"{project.root}{os.sep}{CATALOGUE_FILE}")
    except FileNotFoundError:
        return (None,)
    return (stat.st_mtime_ns, stat.st_size)


def load_context(project: Project, store: Store | None = None) -> PlanContext:
    """The project's plan context, rebuilt only when the store or catalogue has changed.

    ``store``: a connection the caller keeps open (the worksheet functions do, so that a cell
    costs a ``data_version`` read, not a connection); otherwise one is opened for the call.
    """
    if store is None:
        with project.open_store() as opened:
            return load_context(project, opened)
    with _LOCK:
        stamp = (store.data_version(), _catalogue_stamp(project))
        cached = _CONTEXTS.get(project.root)
        if cached and cached[0] == stamp:
            return cached[1]
        context = context_from_store(store, read_catalogue(project))
        _CONTEXTS[project.root] = (stamp, context)
        return context


def gap(project: Project, period: str | None = None, indicators: list[str] | None = None) -> list[GapResult]:
    """What ``plan-tracker gap`` prints (and what every PLAN_ function returns)."""
    return load_context(project).evaluate(period, indicators)


@dataclass
class ImportOutcome:
    submission_id: int
    rows: int
    summary: RecordSummary
    duplicate_of: int | None = None


def import_observations(project: Project, csv_path: Path, actor: str | None = None) -> ImportOutcome:
    """Import a long-format CSV (``indicator_id,period,value[,department,note]``): validated
    like a submission, stored all or nothing, with the file and row as provenance."""
    actor = actor or default_actor()
    csv_path = Path(csv_path)
    raw = csv_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    catalogue = read_catalogue(project)
    from plan_tracker.schemas.observations import validate_observations

    text = decode_csv(raw, csv_path.name)
    frame = _read_csv_text(text, csv_path.name)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    rows = validate_observations(
        frame,
        known_ids=[ind.id for ind in catalogue],
        computed_ids=[ind.id for ind in catalogue if ind.is_computed_only],
        task_ids=[ind.id for ind in catalogue if ind.is_task],
        file=csv_path.name,
        units={ind.id: ind.unit for ind in catalogue},
    )
    with project.open_store() as store:
        existing = store.find_submission_by_hash(digest)
        if existing and existing["status"] == "accepted":
            # The same file again: recognised by its hash, nothing counted twice.
            return ImportOutcome(existing["submission_id"], len(rows), RecordSummary(), existing["submission_id"])
        with store.transaction():
            store.save_catalogue_version(catalogue.csv_text, note="import", actor=actor)
            submission_id = store.add_submission(
                file_name=csv_path.name,
                sha256=digest,
                department=_single(rows["department"]),
                period=None,
                kind="import",
                status="accepted",
                actor=actor,
            )
            records = [
                {
                    "indicator_id": r["indicator_id"],
                    "period": r["period"],
                    "value": r["value"],
                    "value_text": r["value_text"],
                    "note": r["note"],
                    "department": r["department"],
                    "sheet": csv_path.name,
                    "cell": f"第{r['row']}行 row {r['row']}",
                }
                for r in rows.to_dict("records")
            ]
            summary = store.record_observations(records, submission_id=submission_id, actor=actor)
    return ImportOutcome(
        submission_id=submission_id,
        rows=len(rows),
        summary=summary,
    )


def decode_csv(raw: bytes, name: str) -> str:
    """CSV text as exported by Excel or WPS: UTF-8 (with or without BOM), else GB18030 — what
    "CSV" means on a Chinese Windows — else a clear error instead of a traceback."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    from plan_tracker.schemas.observations import ImportRejected, RowProblem

    raise ImportRejected(
        [RowProblem(1, "file", "bad_encoding", "文件编码无法识别，请另存为 CSV UTF-8 / cannot read the file: save it as CSV UTF-8")],
        name,
    )


def _read_csv_text(text: str, name: str) -> pd.DataFrame:
    """Every cell as text (ids and periods must not be guessed as numbers)."""
    from plan_tracker.schemas.observations import ImportRejected, RowProblem

    # More fields than the header would make pandas shift the columns (it takes the first as
    # an index); name such rows instead.
    rows = list(csv.reader(io.StringIO(text)))
    if rows:
        width = len(rows[0])
        extra = [
            RowProblem(number, "file", "extra_fields", f"该行有 {len(row)} 个字段，表头只有 {width} 个（数字中的逗号请去掉或加引号） / {len(row)} fields but {width} in the header")
            for number, row in enumerate(rows[1:], start=2)
            if len(row) > width and any(cell.strip() for cell in row[width:])
        ]
        if extra:
            raise ImportRejected(extra, name)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except pd.errors.EmptyDataError:
        problem = RowProblem(1, "file", "empty_file", "文件为空，表头应为 indicator_id,period,value[,department,note] / the file is empty")
    except pd.errors.ParserError as exc:
        problem = RowProblem(1, "file", "bad_csv", f"CSV 格式有误（如引号未闭合、列数不一致），请用 Excel 另存为 CSV / malformed CSV: {exc}")
    raise ImportRejected([problem], name)


def _single(series: pd.Series) -> str | None:
    values = {v for v in series if isinstance(v, str) and v}
    return values.pop() if len(values) == 1 else None
