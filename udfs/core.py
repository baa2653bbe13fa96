"""What a ``PLAN_*`` cell shows: one indicator and period in, a number, a text or an error out.

No xlwings here. The desktop functions (:mod:`plan_tracker.udfs.functions`) and the xlwings
Server functions (:mod:`plan_tracker.udfs.server`) are thin wrappers that only translate a
:class:`CellError` into what their runtime can show, so a cell and ``plan-tracker gap`` can
never disagree: every figure is a field of the engine's :class:`~plan_tracker.engine.GapResult`
as :func:`plan_tracker.service.load_context` computes it.

Which project a cell reads (:func:`resolve_project`): ``PLAN_TRACKER_HOME`` if set (xlwings
Server), else the folder of the calling workbook when it holds a store (desktop: the master
workbook lives in the project folder), else the current folder.

Speed: a sheet may hold thousands of ``PLAN_`` cells and recalculates them one by one. Each
call checks the store's ``data_version`` on a connection kept open for the purpose (one small
SELECT) and the catalogue file's stamp; only when one of them moved is the plan context
rebuilt through :func:`plan_tracker.service.load_context`. Results are then memoised per
indicator and period by the context itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from plan_tracker import service
from plan_tracker.catalogue import Catalogue, UnknownIndicator
from plan_tracker.engine import STATUS_ZH, GapResult
from plan_tracker.periods import PeriodError, parse_period
from plan_tracker.project import Project, ProjectError, find_project
from plan_tracker.service import PlanContext
from plan_tracker.store import DB_FILE_NAME, Store

__all__ = [
    "ERROR_NA",
    "ERROR_VALUE",
    "FIELDS",
    "TABLE_COLUMNS",
    "CellError",
    "CellValue",
    "context_for",
    "indicator_value",
    "reset_cache",
    "resolve_project",
    "table",
]

log = logging.getLogger(__name__)

ERROR_NA = "#N/A"
ERROR_VALUE = "#VALUE!"


@dataclass(frozen=True)
class CellError:
    """An Excel error value and the short message (Chinese first) that explains it."""

    code: str  # ERROR_NA or ERROR_VALUE
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


CellValue = float | str | CellError


@dataclass(frozen=True)
class Field:
    """One figure of a result row, and what a cell says when the engine has none."""

    key: str
    label: str  # Chinese first, for messages
    read: Callable[[GapResult], object]


def _status_label(result: GapResult) -> str:
    return STATUS_ZH[result.status]


#: The figures a single-value ``PLAN_*`` function can return, by function suffix.
FIELDS: dict[str, Field] = {
    "TARGET": Field("target", "目标 target", lambda r: r.target),
    "ACTUAL": Field("actual", "实际 actual", lambda r: r.actual),
    "GAP": Field("gap", "差距 gap", lambda r: r.gap),
    "PROGRESS": Field("completion", "完成率 completion", lambda r: r.completion),
    "STATUS": Field("status", "状态 status", _status_label),
    "PACE": Field("required_pace", "所需增速 required pace", lambda r: r.required_pace),
    "OUTLOOK": Field("outlook", "预计 outlook", lambda r: r.outlook),
}

#: Columns of ``PLAN_TABLE``: the contract columns of ``plan-tracker gap``, headed in Chinese
#: (English beside it), in the CLI's order.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("indicator_id", "编号 id"),
    ("name_zh", "名称 name"),
    ("period", "期间 period"),
    ("target", "目标 target"),
    ("actual", "实际 actual"),
    ("gap", "差距 gap"),
    ("completion", "完成率 completion"),
    ("schedule", "序时进度 schedule"),
    ("status", "状态 status"),
    ("required_pace", "所需增速 required pace"),
    ("outlook", "预计 outlook"),
    ("on_course", "预计达成 on course"),
    ("note", "说明 note"),
)


# --------------------------------------------------------------------------- project


def resolve_project(
    caller_folder: Path | None = None,
    env: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Project:
    """The project a cell reads: ``PLAN_TRACKER_HOME``, else the calling workbook's folder
    when it holds a store, else the current folder. Raises :class:`ProjectError`."""
    if env.get("PLAN_TRACKER_HOME", "").strip():
        return _found(None, env, cwd)
    if caller_folder is not None and (Path(caller_folder) / DB_FILE_NAME).is_file():
        return _found(Path(caller_folder), env, cwd)
    return _found(None, {}, cwd)


_PROJECTS: dict[tuple, tuple[Project, str]] = {}


def _found(explicit: Path | None, env: Mapping[str, str], cwd: Path | None) -> Project:
    # find_project resolves paths (several system calls); a recalculation asks thousands of
    # times for the same folder, so remember the answer while its store file still exists.
    home = env.get("PLAN_TRACKER_HOME", "").strip()
    key = (explicit, home, cwd if cwd is not None else os.getcwd())
    known = _PROJECTS.get(key)
    if known is not None and os.path.isfile(known[1]):
        return known[0]
    project = find_project(explicit, env=env, cwd=cwd)
    _PROJECTS[key] = (project, str(project.store_path))
    return project


# --------------------------------------------------------------------------- cache


@dataclass
class _Watch:
    """A read connection kept open to one project's store (and which file it reads)."""

    store: Store
    store_file: str
    file_id: tuple[int, int]


_WATCHES: dict[Path, _Watch] = {}
_LOCK = threading.RLock()


def _file_id(path: str) -> tuple[int, int]:
    # With PLAN_TRACKER_DB pointing elsewhere (PostgreSQL) the folder's file may be absent.
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_dev, stat.st_ino)


def context_for(project: Project) -> PlanContext:
    """The project's plan context from the service's cache (rebuilt only when the store's
    ``data_version`` or the catalogue file changed), read through a kept-open connection."""
    with _LOCK:
        watch = _WATCHES.get(project.root)
        if watch is not None and _file_id(watch.store_file) != watch.file_id:
            # The store file was replaced (restored from a backup): the old connection
            # would keep reading the old file.
            watch.store.close()
            watch = None
        if watch is None:
            store_file = str(project.store_path)
            watch = _Watch(store=project.open_store(), store_file=store_file, file_id=_file_id(store_file))
            _WATCHES[project.root] = watch
        return service.load_context(project, store=watch.store)


def reset_cache() -> None:
    """Close the cached store connections and forget every context (tests, shutdown)."""
    with _LOCK:
        for watch in _WATCHES.values():
            watch.store.close()
        _WATCHES.clear()
        _PROJECTS.clear()


# --------------------------------------------------------------------------- arguments


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value)
    )


def _indicator_key(indicator: object) -> str | CellError:
    if _blank(indicator):
        return CellError(ERROR_VALUE, "请填写指标编号或中文名称 / give an indicator id or Chinese name")
    if isinstance(indicator, float) and indicator.is_integer():
        indicator = int(indicator)
    return str(indicator).strip()


def _period_text(period: object) -> str | None | CellError:
    """``None`` for the default period; a date cell means its month."""
    if _blank(period):
        return None
    if isinstance(period, dt.datetime | dt.date):
        period = f"{period.year}-{period.month:02d}"
    if isinstance(period, str | int | float):
        return _canonical_period(period)
    return _canonical_period.__wrapped__(period)


@functools.lru_cache(maxsize=4096)
def _canonical_period(period: object) -> str | CellError:
    # A sheet repeats the same few periods thousands of times: parse each once.
    try:
        return str(parse_period(period))
    except PeriodError as exc:
        return CellError(ERROR_VALUE, str(exc))


def _unknown(exc: UnknownIndicator) -> CellError:
    return CellError(ERROR_NA, f"未知指标「{exc.key}」/ unknown indicator {exc.key!r}")


def _guarded(compute: Callable[[], object]) -> object:
    """Run ``compute``; the errors a user can cause become cell errors, anything else a short
    message in the cell and the traceback in the log (never a traceback in a cell)."""
    try:
        return compute()
    except UnknownIndicator as exc:
        return _unknown(exc)
    except PeriodError as exc:
        return CellError(ERROR_VALUE, str(exc))
    except ProjectError as exc:
        return CellError(ERROR_VALUE, _first_sentence(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a cell must show a message, not a traceback
        log.exception("PLAN_ function failed")
        return CellError(ERROR_VALUE, f"内部错误，请查看日志 / internal error: {type(exc).__name__}: {exc}")


def _first_sentence(message: str) -> str:
    # ProjectError explains at length in two languages; a cell needs the Chinese half.
    return message.split(" / ")[0]


# --------------------------------------------------------------------------- values


def indicator_value(
    field: str,
    indicator: object,
    period: object = None,
    *,
    project: Project | None = None,
    caller_folder: Path | None = None,
) -> CellValue:
    """The value of ``PLAN_<field>(indicator, [period])``: a number, a text (status, task
    state) or a :class:`CellError` (#N/A: unknown indicator or no figure; #VALUE!: a period
    or argument that cannot be read)."""
    spec = FIELDS[field.upper()]
    key = _indicator_key(indicator)
    if isinstance(key, CellError):
        return key
    asked = _period_text(period)
    if isinstance(asked, CellError):
        return asked

    def compute() -> CellValue:
        ctx = context_for(project or resolve_project(caller_folder))
        result = ctx.result(key, asked)
        value = spec.read(result)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return CellError(ERROR_NA, _why_missing(spec, result))
        return value

    return _guarded(compute)  # type: ignore[return-value]


def _why_missing(spec: Field, result: GapResult) -> str:
    if result.rule == "task":
        return f"{result.name_zh} 是任务，无{spec.label}，请用 PLAN_ACTUAL/PLAN_STATUS / a task has no figures"
    reason = result.note or STATUS_ZH[result.status]
    return f"{result.name_zh} {result.period} 无{spec.label}：{reason}"


def _group_ids(catalogue: Catalogue, group: object) -> list[str] | None | CellError:
    """Indicator ids of a group given by id (``C1``) or Chinese name; ``None`` for all."""
    if _blank(group):
        return None
    text = str(group).strip()
    for candidate in catalogue.groups:
        if text.upper() == candidate.id.upper() or text == candidate.name_zh:
            return [ind.id for ind in catalogue.in_group(candidate.id)]
    known = "、".join(g.id for g in catalogue.groups)
    return CellError(ERROR_VALUE, f"未知分组「{text}」，可用 {known} 或留空 / unknown group {text!r}")


def _table_cell(key: str, result: GapResult) -> object:
    if key == "status":
        return STATUS_ZH[result.status]
    value = getattr(result, key)
    if key == "on_course":
        return None if value is None else ("是" if value else "否")
    if key == "note":
        return value or None
    return value


def table(
    group: object = None,
    period: object = None,
    *,
    project: Project | None = None,
    caller_folder: Path | None = None,
) -> list[list[object]] | CellError:
    """``PLAN_TABLE([group], [period])``: a header row and one row per indicator, exactly the
    rows of ``plan-tracker gap`` (status in Chinese, empty where the engine has no figure)."""
    asked = _period_text(period)
    if isinstance(asked, CellError):
        return asked

    def compute() -> list[list[object]] | CellError:
        ctx = context_for(project or resolve_project(caller_folder))
        ids = _group_ids(ctx.catalogue, group)
        if isinstance(ids, CellError):
            return ids
        # An empty id list would mean "all" to evaluate(); an empty group shows its header.
        results = ctx.evaluate(asked, ids) if ids != [] else []
        rows: list[list[object]] = [[header for _key, header in TABLE_COLUMNS]]
        rows += [[_table_cell(key, r) for key, _header in TABLE_COLUMNS] for r in results]
        return rows

    return _guarded(compute)  # type: ignore[return-value]
