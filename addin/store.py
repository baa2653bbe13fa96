"""The system of record: a SQLite file in the project folder (``plan_tracker.sqlite``).

What it holds: catalogue versions, submissions (one per received file, with its validation
problems), observations with provenance (submission, sheet, cell), the supersede history of
corrected values, an audit log, settings, and a ``data_version`` counter that UDF caches
compare cheaply.

Invariants the rest of the program relies on:

* Observation values are never updated or deleted. A different value for the same
  indicator and point in time (``2025-Q3`` ≡ ``2025-09``) is a new row; the old one gets
  ``superseded_at``/``superseded_by`` and stays queryable, and the audit log says
  "X → Y" naming both submissions.
* Exactly one current row per (indicator, point): enforced by a partial unique index, not
  only by this module's code.
* Every write runs inside :meth:`Store.transaction` (``BEGIN IMMEDIATE``, WAL): a crash
  leaves the database as it was before the transaction, never half an import.
* Every committed write bumps ``data_version`` (a table, so other processes see it too).

The connection is made in one place (:func:`_connect`) and the schema is an ordered list of
migrations counted by ``PRAGMA user_version``, so a PostgreSQL backend
(``PLAN_TRACKER_DB=postgresql://…``) can replace those two pieces; the SQL otherwise avoids
SQLite-only syntax where a portable form exists (``ON CONFLICT``, partial indexes,
savepoints).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import secrets as _secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .periods import PeriodError, parse_period

DB_FILE_NAME = "plan_tracker.sqlite"
BUSY_TIMEOUT_MS = 10_000

SUBMISSION_KINDS = ("template", "import")
SUBMISSION_STATUSES = ("accepted", "rejected", "superseded", "pending")
SEVERITIES = ("error", "warning")
SECRET_SETTING = "template_hmac_secret"

OBSERVATION_COLUMNS = [
    "indicator_id",
    "period",
    "point",
    "value",
    "value_text",
    "note",
    "department",
    "submission_id",
    "sheet",
    "cell",
    "recorded_at",
    "recorded_by",
]
HISTORY_COLUMNS = [
    "observation_id",
    *OBSERVATION_COLUMNS,
    "is_current",
    "superseded_at",
    "superseded_by",
    "superseded_by_submission_id",
    "superseded_by_actor",
]
SUBMISSION_COLUMNS = [
    "submission_id",
    "file_name",
    "sha256",
    "department",
    "period",
    "point",
    "kind",
    "status",
    "received_at",
    "decided_at",
    "archive_path",
    "template_id",
    "created_by",
    "errors",
    "warnings",
]
PROBLEM_COLUMNS = [
    "problem_id",
    "submission_id",
    "file",
    "sheet",
    "cell",
    "code",
    "message",
    "hint",
    "severity",
    "department",
    "period",
    "received_at",
]
AUDIT_COLUMNS = ["audit_id", "at", "actor", "action", "message", "detail"]

# Each entry is one schema version (index 0 → user_version 1). Append only: never edit a
# released entry, because databases in the field have already run it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE data_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )""",
        "INSERT INTO data_version (id, version) VALUES (1, 0)",
        """CREATE TABLE catalogue_versions (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL,
            csv_text TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        )""",
        """CREATE TABLE submissions (
            id INTEGER PRIMARY KEY,
            file_name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            department TEXT,
            period TEXT,
            point TEXT,
            kind TEXT NOT NULL CHECK (kind IN ('template', 'import')),
            status TEXT NOT NULL
                CHECK (status IN ('accepted', 'rejected', 'superseded', 'pending')),
            received_at TEXT NOT NULL,
            decided_at TEXT,
            archive_path TEXT,
            template_id TEXT,
            created_by TEXT NOT NULL
        )""",
        "CREATE INDEX submissions_sha256 ON submissions (sha256)",
        "CREATE INDEX submissions_dept_point ON submissions (department, point)",
        """CREATE TABLE problems (
            id INTEGER PRIMARY KEY,
            submission_id INTEGER NOT NULL REFERENCES submissions (id),
            file TEXT,
            sheet TEXT,
            cell TEXT,
            code TEXT,
            message TEXT NOT NULL,
            hint TEXT,
            severity TEXT NOT NULL CHECK (severity IN ('error', 'warning')),
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX problems_submission ON problems (submission_id)",
        """CREATE TABLE observations (
            id INTEGER PRIMARY KEY,
            indicator_id TEXT NOT NULL,
            period TEXT NOT NULL,
            point TEXT NOT NULL,
            value REAL,
            value_text TEXT,
            note TEXT,
            department TEXT,
            submission_id INTEGER REFERENCES submissions (id),
            sheet TEXT,
            cell TEXT,
            recorded_at TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            superseded_at TEXT,
            superseded_by INTEGER REFERENCES observations (id)
        )""",
        # The database itself refuses a second current value for a point, so a bug in a
        # caller that bypasses record_observations cannot create an ambiguous "current".
        """CREATE UNIQUE INDEX observations_current
            ON observations (indicator_id, point) WHERE superseded_at IS NULL""",
        "CREATE INDEX observations_key ON observations (indicator_id, point)",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A store operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Change:
    """A value that replaced a different earlier value for the same indicator and point."""

    indicator_id: str
    period: str
    old_value: float | None
    new_value: float | None
    old_submission_id: int | None
    new_submission_id: int | None
    old_text: str | None = None
    new_text: str | None = None
    old_period: str = ""
    point: str = ""

    def describe(self) -> str:
        return f"{_show(self.old_value, self.old_text)} → {_show(self.new_value, self.new_text)}"


@dataclass
class RecordSummary:
    inserted: int = 0
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0


def default_actor() -> str:
    """Who is acting, for ``actor`` defaults at call sites (the OS login name)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no login name in some service/container environments
        return "unknown"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: str | datetime | None) -> str | None:
    """ISO-8601 UTC with seconds; a naive datetime is taken as local time (file mtimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise StoreError(f"时间格式错误 / bad timestamp: {value!r} (ISO-8601)") from exc
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(value: float | None, text: str | None) -> str:
    parts = []
    if value is not None:
        parts.append(str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value))
    if text is not None:
        parts.append(text)
    return " / ".join(parts) if parts else "空/empty"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-likes: not a scalar "missing"
        return False


def _text(value: Any) -> str | None:
    if _missing(value):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any, where: str) -> float | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{where}: 数值无效 / value is not a number: {value!r}") from exc
    if not math.isfinite(number):
        raise StoreError(f"{where}: 数值无效 / value is not finite: {value!r}")
    return number


def _connect(path: Path) -> sqlite3.Connection:
    """The one place a connection is made (a PostgreSQL backend replaces this)."""
    # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves, so the write lock is
    # taken before the first read of a read-modify-write and no implicit transaction hides.
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(
            f"无法启用 WAL 日志（{mode}），项目文件夹可能在网络盘上 / cannot enable WAL "
            f"journal ({mode}); put the project on a local disk: {path}"
        )
    # FULL: a committed import must survive a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_store(sqlite_path: str | Path, env: Mapping[str, str] = os.environ) -> Store:
    """Open the project's store, honouring ``PLAN_TRACKER_DB`` when it names another backend."""
    url = env.get("PLAN_TRACKER_DB", "").strip()
    if url and not url.startswith("sqlite:"):
        raise StoreError(
            f"尚不支持该数据库 / database backend not supported yet: {url.split('://')[0]}://… "
            "— 请取消设置 PLAN_TRACKER_DB 以使用项目文件夹中的 SQLite / unset PLAN_TRACKER_DB "
            "to use the SQLite file in the project folder"
        )
    if url.startswith("sqlite:///"):
        sqlite_path = url[len("sqlite:///") :]
    return Store.open(sqlite_path)


class Store:
    """The project's database. Open with :meth:`Store.open`; one object per process is enough
    (it is safe to share between threads: access is serialised by a lock)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the database file and bring its schema up to date."""
        path = Path(path)
        if path.is_dir():
            path = path / DB_FILE_NAME
        if not path.parent.is_dir():
            raise StoreError(f"文件夹不存在 / folder does not exist: {path.parent}")
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"无法打开数据库 / cannot open database {path}: {exc}") from exc
        store = cls(conn, path)
        try:
            store._migrate(MIGRATIONS)
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            if self._depth:
                raise StoreError("事务未结束，不能关闭 / cannot close inside a transaction")
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        if self.schema_version > len(migrations):
            raise StoreError(
                f"数据库版本 {self.schema_version} 比本程序新（{len(migrations)}），请升级 "
                f"plan-tracker / database schema {self.schema_version} is newer than this "
                f"program ({len(migrations)}): upgrade plan-tracker"
            )
        while self.schema_version < len(migrations):
            # Re-read the version under the write lock: another process may have migrated
            # between our check and BEGIN IMMEDIATE. One transaction per version, so a crash
            # mid-migration leaves the previous version intact.
            with self.transaction() as conn:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version >= len(migrations):
                    break
                for statement in migrations[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
                self._write_audit(
                    "schema_migrated",
                    {"message": f"schema {version} → {version + 1}", "to": version + 1},
                    actor=default_actor(),
                )

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. Nested calls join the outer one (as a savepoint, so a failed
        inner block undoes only itself if the caller catches the error)."""
        with self._lock:
            if self._depth:
                name = f"sp{self._depth}"
                self._conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    self._conn.execute(f"RELEASE SAVEPOINT {name}")
                    raise
                else:
                    self._conn.execute(f"RELEASE SAVEPOINT {name}")
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(
                    f"数据库正被占用，请稍后再试 / database is busy, try again: {exc}"
                ) from exc
            self._depth = 1
            changes_before = self._conn.total_changes
            try:
                yield self._conn
                # A transaction that changed nothing leaves data_version alone, so caches
                # are not invalidated by no-op calls (a re-import of identical values).
                if self._conn.total_changes != changes_before:
                    self._conn.execute("UPDATE data_version SET version = version + 1")
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    def data_version(self) -> int:
        """Counter bumped by every committed write, by any process using this file."""
        with self._lock:
            row = self._conn.execute("SELECT version FROM data_version WHERE id = 1").fetchone()
        return int(row[0])

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    # ------------------------------------------------------------------ audit
    def _write_audit(self, action: str, detail: Mapping[str, Any], *, actor: str) -> None:
        self._conn.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (utc_now(), actor, action, json.dumps(dict(detail), ensure_ascii=False, default=str)),
        )

    def audit(self, action: str, detail: dict, *, actor: str) -> None:
        with self.transaction():
            self._write_audit(action, detail, actor=actor)

    def audit_log(self) -> pd.DataFrame:
        rows = []
        for row in self._query("SELECT id, at, actor, action, detail FROM audit_log ORDER BY id"):
            detail = json.loads(row["detail"])
            message = detail.get("message") if isinstance(detail, dict) else None
            rows.append(
                (row["id"], row["at"], row["actor"], row["action"],
                 message if message is not None else row["detail"], detail)
            )
        return _frame(rows, AUDIT_COLUMNS, ints=("audit_id",))

    # ------------------------------------------------------------------ catalogue
    def save_catalogue_version(self, csv_text: str, *, note: str = "", actor: str) -> int:
        digest = hashlib.sha256(csv_text.encode("utf-8")).hexdigest()
        with self.transaction() as conn:
            latest = conn.execute(
                "SELECT id, sha256 FROM catalogue_versions ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if latest is not None and latest[1] == digest:
                return int(latest[0])
            cursor = conn.execute(
                "INSERT INTO catalogue_versions (sha256, csv_text, note, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (digest, csv_text, note, utc_now(), actor),
            )
            version_id = int(cursor.lastrowid)
            self._write_audit(
                "catalogue_saved",
                {"message": f"目录版本 / catalogue version {version_id}", "version": version_id,
                 "sha256": digest, "note": note},
                actor=actor,
            )
            return version_id

    def latest_catalogue_version(self) -> tuple[int, str] | None:
        rows = self._query("SELECT id, csv_text FROM catalogue_versions ORDER BY id DESC LIMIT 1")
        return (int(rows[0]["id"]), rows[0]["csv_text"]) if rows else None

    def catalogue_versions(self) -> pd.DataFrame:
        rows = self._query(
            "SELECT id, sha256, note, created_at, created_by FROM catalogue_versions ORDER BY id"
        )
        return _frame(
            [tuple(r) for r in rows],
            ["version_id", "sha256", "note", "created_at", "created_by"],
            ints=("version_id",),
        )

    # ------------------------------------------------------------------ submissions
    def add_submission(
        self,
        *,
        file_name: str,
        sha256: str,
        department: str | None,
        period: str | None,
        kind: str,
        status: str,
        problems: Iterable[Mapping[str, Any]] = (),
        received_at: str | datetime | None = None,
        decided_at: str | datetime | None = None,
        archive_path: str | Path | None = None,
        template_id: str | None = None,
        actor: str,
    ) -> int:
        if kind not in SUBMISSION_KINDS:
            raise StoreError(f"未知的提交类型 / unknown submission kind {kind!r}: {SUBMISSION_KINDS}")
        _check_status(status)
        canonical, point = _period_and_point(period)
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO submissions (file_name, sha256, department, period, point, kind,"
                " status, received_at, decided_at, archive_path, template_id, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    file_name, sha256, _text(department), canonical, point, kind, status,
                    _timestamp(received_at) or utc_now(), _timestamp(decided_at),
                    _text(archive_path), _text(template_id), actor,
                ),
            )
            submission_id = int(cursor.lastrowid)
            self._insert_problems(submission_id, problems)
            self._write_audit(
                "submission_added",
                {"message": f"提交 / submission #{submission_id} {file_name}: {status}",
                 "submission_id": submission_id, "file_name": file_name, "sha256": sha256,
                 "department": department, "period": canonical, "status": status},
                actor=actor,
            )
            return submission_id

    def get_submission(self, submission_id: int) -> dict | None:
        rows = self._query(_SUBMISSION_SELECT + " WHERE s.id = ?", (submission_id,))
        return self._submission_dict(rows[0]) if rows else None

    def find_submission_by_hash(self, sha256: str) -> dict | None:
        """The latest submission of a file with this content (``None`` if never seen)."""
        rows = self._query(
            _SUBMISSION_SELECT + " WHERE s.sha256 = ? ORDER BY s.id DESC LIMIT 1", (sha256,)
        )
        return self._submission_dict(rows[0]) if rows else None

    def _submission_dict(self, row: sqlite3.Row) -> dict:
        result = dict(zip(SUBMISSION_COLUMNS, tuple(row), strict=True))
        result["problems"] = self.problems(result["submission_id"])
        return result

    def set_submission_status(
        self,
        submission_id: int,
        status: str,
        *,
        problems: Iterable[Mapping[str, Any]] | None = None,
        decided_at: str | datetime | None = None,
        archive_path: str | Path | None = None,
        actor: str | None = None,
    ) -> None:
        """Change a submission's status. ``problems``, when given, replaces its problem list
        (a re-validation's findings supersede the previous ones)."""
        _check_status(status)
        actor = actor or default_actor()
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT status FROM submissions WHERE id = ?", (submission_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"没有该提交 / no submission #{submission_id}")
            conn.execute(
                "UPDATE submissions SET status = ?, decided_at = COALESCE(?, decided_at),"
                " archive_path = COALESCE(?, archive_path) WHERE id = ?",
                (status, _timestamp(decided_at), _text(archive_path), submission_id),
            )
            if problems is not None:
                conn.execute("DELETE FROM problems WHERE submission_id = ?", (submission_id,))
                self._insert_problems(submission_id, problems)
            self._write_audit(
                "submission_status",
                {"message": f"提交 / submission #{submission_id}: {row[0]} → {status}",
                 "submission_id": submission_id, "old": row[0], "new": status},
                actor=actor,
            )

    def submissions(
        self, *, department: str | None = None, period: str | None = None
    ) -> pd.DataFrame:
        """Submissions, oldest first; ``period`` matches the point in time (Q3 ≡ 09)."""
        sql, params = _SUBMISSION_SELECT + " WHERE 1 = 1", []
        if department is not None:
            sql += " AND s.department = ?"
            params.append(department)
        if period is not None:
            sql += " AND s.point = ?"
            params.append(_period_and_point(period)[1])
        rows = self._query(sql + " ORDER BY s.id", params)
        return _frame(
            [tuple(r) for r in rows], SUBMISSION_COLUMNS,
            ints=("submission_id", "errors", "warnings"),
        )

    # ------------------------------------------------------------------ problems
    def _insert_problems(self, submission_id: int, problems: Iterable[Mapping[str, Any]]) -> None:
        rows = []
        for problem in problems:
            severity = _text(problem.get("severity")) or "error"
            if severity not in SEVERITIES:
                raise StoreError(f"未知的严重程度 / unknown severity {severity!r}: {SEVERITIES}")
            message = _text(problem.get("message"))
            if message is None:
                raise StoreError("问题缺少说明 / a problem needs a message")
            rows.append((
                submission_id, _text(problem.get("file")), _text(problem.get("sheet")),
                _text(problem.get("cell")), _text(problem.get("code")), message,
                _text(problem.get("hint")), severity, utc_now(),
            ))
        if not rows:
            return
        try:
            self._conn.executemany(
                "INSERT INTO problems (submission_id, file, sheet, cell, code, message, hint,"
                " severity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"没有该提交 / no submission #{submission_id}") from exc

    def add_problems(self, submission_id: int, problems: list[dict]) -> None:
        with self.transaction():
            self._insert_problems(submission_id, problems)

    def problems(self, submission_id: int) -> list[dict]:
        rows = self._query(
            "SELECT file, sheet, cell, code, message, hint, severity FROM problems"
            " WHERE submission_id = ? ORDER BY id",
            (submission_id,),
        )
        return [dict(r) for r in rows]

    def open_problems(self) -> pd.DataFrame:
        """Problems still to be fixed: those of rejected submissions that no later accepted
        submission of the same department and point in time has replaced."""
        rows = self._query(
            """SELECT p.id, p.submission_id, COALESCE(p.file, s.file_name), p.sheet, p.cell,
                      p.code, p.message, p.hint, p.severity, s.department, s.period,
                      s.received_at
               FROM problems p JOIN submissions s ON s.id = p.submission_id
               WHERE s.status = 'rejected'
                 AND NOT EXISTS (
                     SELECT 1 FROM submissions a
                     WHERE a.status = 'accepted' AND a.id > s.id
                       AND COALESCE(a.department, '') = COALESCE(s.department, '')
                       AND COALESCE(a.point, '') = COALESCE(s.point, ''))
               ORDER BY s.id, p.id"""
        )
        return _frame([tuple(r) for r in rows], PROBLEM_COLUMNS, ints=("problem_id", "submission_id"))

    # ------------------------------------------------------------------ observations
    def record_observations(
        self,
        rows: Iterable[Mapping[str, Any]] | pd.DataFrame,
        *,
        submission_id: int | None,
        actor: str,
    ) -> RecordSummary:
        """Record values; a different value for a point supersedes the current one (both
        kept), an identical one is counted as unchanged. All or nothing."""
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
        summary = RecordSummary()
        now = utc_now()
        with self.transaction() as conn:
            default_department = None
            if submission_id is not None:
                found = conn.execute(
                    "SELECT department FROM submissions WHERE id = ?", (submission_id,)
                ).fetchone()
                if found is None:
                    raise StoreError(f"没有该提交 / no submission #{submission_id}")
                default_department = found[0]
            batch = [
                _observation(record, number, default_department)
                for number, record in enumerate(records, start=1)
            ]
            seen: dict[tuple[str, str], tuple[float | None, str | None]] = {}
            for obs in batch:
                key = (obs["indicator_id"], obs["point"])
                if key in seen and seen[key] != (obs["value"], obs["value_text"]):
                    raise StoreError(
                        f"同一批中 {key[0]} {obs['period']} 有两个不同的值（季度与其末月为同一时点）"
                        f" / two different values for {key[0]} at {key[1]} in one batch"
                    )
                seen[key] = (obs["value"], obs["value_text"])
            current = self._current_for({key[0] for key in seen})
            for obs in batch:
                key = (obs["indicator_id"], obs["point"])
                old = current.get(key)
                if old is not None and (old["value"], old["value_text"]) == (
                    obs["value"], obs["value_text"]
                ):
                    summary.unchanged += 1
                    continue
                if old is not None:
                    # Mark first: the partial unique index allows one current row per point.
                    conn.execute(
                        "UPDATE observations SET superseded_at = ? WHERE id = ?", (now, old["id"])
                    )
                new_id = self._insert_observation(obs, submission_id, now, actor)
                if old is None:
                    summary.inserted += 1
                else:
                    conn.execute(
                        "UPDATE observations SET superseded_by = ? WHERE id = ?", (new_id, old["id"])
                    )
                    change = Change(
                        indicator_id=obs["indicator_id"], period=obs["period"],
                        old_value=old["value"], new_value=obs["value"],
                        old_submission_id=old["submission_id"], new_submission_id=submission_id,
                        old_text=old["value_text"], new_text=obs["value_text"],
                        old_period=old["period"], point=obs["point"],
                    )
                    summary.changed.append(change)
                    self._write_audit(
                        "observation_superseded",
                        {"message": f"{change.indicator_id} {change.period}: value "
                                    f"{change.describe()} (提交 / submission "
                                    f"{_sub(change.old_submission_id)} → "
                                    f"{_sub(change.new_submission_id)})",
                         "indicator_id": change.indicator_id, "period": change.period,
                         "point": change.point, "old_value": change.old_value,
                         "new_value": change.new_value, "old_text": change.old_text,
                         "new_text": change.new_text, "old_observation_id": old["id"],
                         "new_observation_id": new_id,
                         "old_submission_id": change.old_submission_id,
                         "new_submission_id": change.new_submission_id,
                         "old_recorded_by": old["recorded_by"],
                         "old_recorded_at": old["recorded_at"]},
                        actor=actor,
                    )
                current[key] = {**obs, "id": new_id, "submission_id": submission_id,
                                "recorded_by": actor, "recorded_at": now}
            if summary.inserted or summary.changed:
                self._write_audit(
                    "observations_recorded",
                    {"message": f"记录 / recorded: {summary.inserted} new, "
                                f"{len(summary.changed)} changed, {summary.unchanged} unchanged"
                                f" (提交 / submission {_sub(submission_id)})",
                     "submission_id": submission_id, "inserted": summary.inserted,
                     "changed": len(summary.changed), "unchanged": summary.unchanged},
                    actor=actor,
                )
        return summary

    def _current_for(self, indicator_ids: set[str]) -> dict[tuple[str, str], dict]:
        current: dict[tuple[str, str], dict] = {}
        ids = sorted(indicator_ids)
        # Chunked IN lists stay under SQLite's bound-parameter limit for huge batches.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            cursor = self._conn.execute(
                "SELECT id, indicator_id, point, period, value, value_text, submission_id,"
                " recorded_by, recorded_at FROM observations WHERE superseded_at IS NULL"
                f" AND indicator_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            cursor.row_factory = sqlite3.Row
            for row in cursor:
                current[(row["indicator_id"], row["point"])] = dict(row)
        return current

    def _insert_observation(
        self, obs: dict, submission_id: int | None, now: str, actor: str
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO observations (indicator_id, period, point, value, value_text, note,"
            " department, submission_id, sheet, cell, recorded_at, recorded_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                obs["indicator_id"], obs["period"], obs["point"], obs["value"],
                obs["value_text"], obs["note"], obs["department"], submission_id,
                obs["sheet"], obs["cell"], now, actor,
            ),
        )
        return int(cursor.lastrowid)

    def current_observations(self) -> pd.DataFrame:
        """One row per indicator and point: the value in force, with its provenance."""
        rows = self._query(
            f"SELECT {', '.join(OBSERVATION_COLUMNS)} FROM observations"
            " WHERE superseded_at IS NULL ORDER BY indicator_id, point"
        )
        return _frame(
            [tuple(r) for r in rows], OBSERVATION_COLUMNS,
            floats=("value",), ints=("submission_id",),
        )

    def observation_history(
        self, indicator_id: str | None = None, period: str | None = None
    ) -> pd.DataFrame:
        """Every value ever recorded (``period`` matches the point: Q3 ≡ 09), oldest first;
        a superseded row says when, by which row, submission and person."""
        sql = (
            "SELECT o.id, " + ", ".join(f"o.{c}" for c in OBSERVATION_COLUMNS) + ","
            " CASE WHEN o.superseded_at IS NULL THEN 1 ELSE 0 END,"
            " o.superseded_at, o.superseded_by, n.submission_id, n.recorded_by"
            " FROM observations o LEFT JOIN observations n ON n.id = o.superseded_by"
            " WHERE 1 = 1"
        )
        params: list[Any] = []
        if indicator_id is not None:
            sql += " AND o.indicator_id = ?"
            params.append(indicator_id)
        if period is not None:
            sql += " AND o.point = ?"
            params.append(_period_and_point(period)[1])
        rows = self._query(sql + " ORDER BY o.indicator_id, o.point, o.id", params)
        frame = _frame(
            [tuple(r) for r in rows], HISTORY_COLUMNS, floats=("value",),
            ints=("observation_id", "submission_id", "superseded_by",
                  "superseded_by_submission_id"),
        )
        frame["is_current"] = frame["is_current"].astype(bool)
        return frame

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str, *, actor: str) -> None:
        with self.transaction() as conn:
            old = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if old is not None and old[0] == value:
                return
            conn.execute(
                "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (key, value, utc_now(), actor),
            )
            hidden = "secret" in key.lower()  # never copy a secret into the audit log
            shown_old = None if old is None else ("***" if hidden else old[0])
            shown_new = "***" if hidden else value
            self._write_audit(
                "setting_changed",
                {"message": f"{key}: {shown_old} → {shown_new}", "key": key,
                 "old": shown_old, "new": shown_new},
                actor=actor,
            )

    def secret(self) -> bytes:
        """The project's template-signing key: made once, then the same for every process."""
        stored = self.get_setting(SECRET_SETTING)
        if stored is None:
            with self.transaction() as conn:
                # DO NOTHING: if another process created it first, theirs wins and we read it.
                cursor = conn.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (SECRET_SETTING, _secrets.token_bytes(32).hex(), utc_now(), default_actor()),
                )
                if cursor.rowcount:
                    self._write_audit(
                        "secret_created", {"message": "模板签名密钥已生成 / template key created"},
                        actor=default_actor(),
                    )
                stored = conn.execute(
                    "SELECT value FROM settings WHERE key = ?", (SECRET_SETTING,)
                ).fetchone()[0]
        return bytes.fromhex(stored)


_SUBMISSION_SELECT = (
    "SELECT s.id, s.file_name, s.sha256, s.department, s.period, s.point, s.kind, s.status,"
    " s.received_at, s.decided_at, s.archive_path, s.template_id, s.created_by,"
    " (SELECT COUNT(*) FROM problems p WHERE p.submission_id = s.id AND p.severity = 'error'),"
    " (SELECT COUNT(*) FROM problems p WHERE p.submission_id = s.id AND p.severity = 'warning')"
    " FROM submissions s"
)


def _sub(submission_id: int | None) -> str:
    return "manual" if submission_id is None else f"#{submission_id}"


def _check_status(status: str) -> None:
    if status not in SUBMISSION_STATUSES:
        raise StoreError(f"未知的状态 / unknown status {status!r}: {SUBMISSION_STATUSES}")


def _period_and_point(period: Any) -> tuple[str | None, str | None]:
    if _missing(period) or str(period).strip() == "":
        return None, None
    try:
        parsed = parse_period(period)
    except PeriodError as exc:
        raise StoreError(str(exc)) from exc
    return str(parsed), parsed.point


def _observation(record: Mapping[str, Any], number: int, default_department: str | None) -> dict:
    indicator_id = _text(record.get("indicator_id"))
    where = f"第 {number} 行 / row {number}"
    if indicator_id is None:
        raise StoreError(f"{where}: 缺少指标编号 / indicator_id is missing")
    where += f" ({indicator_id})"
    if _missing(record.get("period")):
        raise StoreError(f"{where}: 缺少期间 / period is missing")
    try:
        period = parse_period(record["period"])
    except PeriodError as exc:
        raise StoreError(f"{where}: {exc}") from exc
    value = _number(record.get("value"), where)
    value_text = _text(record.get("value_text"))
    if value is None and value_text is None:
        raise StoreError(f"{where}: 没有数值也没有状态 / neither value nor value_text")
    return {
        "indicator_id": indicator_id,
        "period": str(period),
        "point": period.point,
        "value": value,
        "value_text": value_text,
        "note": _text(record.get("note")),
        "department": _text(record.get("department")) or default_department,
        "sheet": _text(record.get("sheet")),
        "cell": _text(record.get("cell")),
    }


def _frame(
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    *,
    floats: Sequence[str] = (),
    ints: Sequence[str] = (),
) -> pd.DataFrame:
    """Build a frame with stable dtypes even when empty: floats as float64 (NaN for none),
    ids as nullable Int64, everything else object with ``None`` (not NaN) for missing."""
    data: dict[str, pd.Series] = {}
    for index, name in enumerate(columns):
        values = [row[index] for row in rows]
        if name in floats:
            data[name] = pd.Series(
                [math.nan if v is None else float(v) for v in values], dtype="float64"
            )
        elif name in ints:
            data[name] = pd.Series(values, dtype="Int64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=list(columns))
