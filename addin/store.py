"""The system of record: a SQLite file in the project folder (``plan_tracker.sqlite``), or a
PostgreSQL database for shared deployments (``PLAN_TRACKER_DB=postgresql://…``).

What it holds: catalogue versions, submissions (one per received file, with its validation
problems), observations with provenance (submission, sheet, cell), the supersede history of
corrected values, an audit log, settings, and a ``data_version`` counter that UDF caches
compare cheaply.

Invariants the rest of the program relies on:

* Observation values are never updated or deleted. A different value, state or note for the
  same indicator and point in time (``2025-Q3`` ≡ ``2025-09``) is a new row; the old one gets
  ``superseded_at``/``superseded_by`` and stays queryable, and the audit log says
  "X → Y" naming both submissions.
* Exactly one current row per (indicator, point): enforced by a partial unique index, not
  only by this module's code.
* Every write runs inside :meth:`Store.transaction`, which first takes the database's write
  lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-level advisory lock), so
  concurrent writers serialise and a crash leaves the database as it was before the
  transaction, never half an import.
* Every committed write bumps ``data_version`` (a table, so other processes see it too).

Both backends share one :class:`Store` and ONE migration list; what differs between them (how
to connect, placeholders, ``INTEGER PRIMARY KEY``, the write lock, the "did this transaction
change anything" check, where the schema version is kept, named exclusive locks) lives in the
two small dialect classes :class:`_SQLite` and :class:`_Postgres`. See docs/store.md.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import math
import os
import re
import secrets as _secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .periods import PeriodError, parse_period

if TYPE_CHECKING:
    import pandas as pd

DB_FILE_NAME = "plan_tracker.sqlite"
BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 10
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

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

# Each entry is one schema version (index 0 → version 1). Append only: never edit a released
# entry, because databases in the field have already run it. Written in SQLite's dialect;
# _Postgres.ddl translates the few differences, so both backends run the same list.
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
    (
        # Who holds a named exclusive lock (Store.exclusive), so the one who must wait is
        # told by whom. PostgreSQL keeps it here; SQLite keeps it in the lock file itself,
        # so on SQLite this table stays empty.
        """CREATE TABLE store_locks (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            acquired_at TEXT NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """A store operation that cannot be done; the message says why and what to do."""


class StoreBusy(StoreError):
    """A named exclusive lock (:meth:`Store.exclusive`) is held by someone else."""

    def __init__(self, name: str, holder: Mapping[str, Any] | None, waited: float) -> None:
        self.name = name
        self.holder = dict(holder) if holder else None
        self.waited = waited
        if self.holder:
            who_zh = (f"{self.holder.get('user', '?')}（主机 {self.holder.get('host', '?')}，"
                      f"进程 {self.holder.get('pid', '?')}，开始于 "
                      f"{self.holder.get('started_at', '?')}）")
            who_en = (f"{self.holder.get('user', '?')} on {self.holder.get('host', '?')} "
                      f"(pid {self.holder.get('pid', '?')}, since "
                      f"{self.holder.get('started_at', '?')})")
        else:
            who_zh, who_en = "另一个进程", "another process"
        waited_zh = f"已等待 {waited:g} 秒，" if waited > 0 else ""
        waited_en = f" (waited {waited:g} s)" if waited > 0 else ""
        super().__init__(
            f"“{name}” 正由 {who_zh} 执行，{waited_zh}请等其完成后再试 / "
            f"“{name}” is already running, held by {who_en}{waited_en}: wait for it to "
            "finish, then try again"
        )


@dataclass(frozen=True)
class Change:
    """A recording that replaced the current row of the same indicator and point because its
    value/state or its note differs."""

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
    old_note: str | None = None
    new_note: str | None = None

    @property
    def value_changed(self) -> bool:
        return (self.old_value, self.old_text) != (self.new_value, self.new_text)

    @property
    def note_changed(self) -> bool:
        return self.old_note != self.new_note

    def describe(self) -> str:
        parts = []
        if self.value_changed or not self.note_changed:
            parts.append(
                f"{_show(self.old_value, self.old_text)} → {_show(self.new_value, self.new_text)}"
            )
        if self.note_changed:
            parts.append(f"备注 / note: {_quoted(self.old_note)} → {_quoted(self.new_note)}")
        return "; ".join(parts)


@dataclass
class RecordSummary:
    inserted: int = 0
    changed: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def value_changes(self) -> list[Change]:
        """Corrections of the number or task state (a note may have changed with it)."""
        return [change for change in self.changed if change.value_changed]

    @property
    def note_changes(self) -> list[Change]:
        """Corrections of the note alone: same value/state, a different remark."""
        return [change for change in self.changed if not change.value_changed]


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


def _quoted(note: str | None) -> str:
    return "空/empty" if note is None else f'"{note}"'


def _missing(value: Any) -> bool:
    if value is None:
        return True
    # Plain Python values are decided here, so reading the store does not import pandas
    # (a consolidation with nothing new must not pay its 0.3 s import).
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (str, int)):
        return False
    import pandas as pd

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


# ---------------------------------------------------------------------------- named locks

_LOCK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _holder_info(name: str) -> dict[str, Any]:
    return {"name": name, "user": default_actor(), "host": socket.gethostname(),
            "pid": os.getpid(), "started_at": utc_now()}


class _NamedLock(Protocol):
    def try_acquire(self, holder: Mapping[str, Any]) -> bool: ...
    def holder(self) -> dict | None: ...
    def close(self) -> None: ...


class _FileLock:
    """An OS lock on a file next to the database: ``flock`` on POSIX, ``msvcrt.locking`` on
    Windows. The OS drops it when the process ends however it ends (even SIGKILL), so a
    crashed consolidation never leaves a stale lock behind."""

    # Windows' byte-range lock stops others reading the locked bytes, so the lock sits far
    # past the holder text at the start of the file, which must stay readable.
    _WINDOWS_LOCK_OFFSET = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._held = False

    def try_acquire(self, holder: Mapping[str, Any]) -> bool:
        if self._fd is None:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
            try:
                self._fd = os.open(self.path, flags, 0o666)
            except OSError as exc:
                raise StoreError(
                    f"无法创建锁文件 {self.path}：{exc.strerror}，请检查项目文件夹的写权限 / "
                    f"cannot create lock file {self.path}: {exc}"
                ) from exc
        try:
            if os.name == "nt":
                import msvcrt

                os.lseek(self._fd, self._WINDOWS_LOCK_OFFSET, os.SEEK_SET)
                msvcrt.locking(self._fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another open file: another process or another Store
            return False
        self._held = True
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps(dict(holder), ensure_ascii=False).encode("utf-8"))
        return True

    def holder(self) -> dict | None:
        try:
            text = self.path.read_text(encoding="utf-8")
            found = json.loads(text) if text.strip() else None
        except (OSError, ValueError):  # being rewritten right now: say "another process"
            return None
        return found if isinstance(found, dict) else None

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Closing the descriptor releases the lock. The holder (only the holder: a failed
        # attempt must not erase the holder's name) clears its text first, so a reader never
        # names someone who has finished. The file itself stays: deleting it would let two
        # processes lock two different files of the same name.
        if self._held:
            self._held = False
            with suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)


class _AdvisoryLock:
    """A session-level ``pg_try_advisory_lock`` on a connection of its own: the server
    drops it when that connection ends, including when the process is killed."""

    def __init__(self, dialect: _Postgres, name: str) -> None:
        self._dialect = dialect
        self._name = name
        self._key = dialect.lock_key("exclusive", name)
        self._conn: Any = None

    def try_acquire(self, holder: Mapping[str, Any]) -> bool:
        if self._conn is None:
            self._conn = self._dialect.connect()
        got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0]
        if got:
            self._conn.execute(
                "INSERT INTO store_locks (name, holder, acquired_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " acquired_at = excluded.acquired_at",
                (self._name, json.dumps(dict(holder), ensure_ascii=False), utc_now()),
            )
        return bool(got)

    def holder(self) -> dict | None:
        if self._conn is None:
            return None
        row = self._conn.execute(
            "SELECT holder FROM store_locks WHERE name = %s", (self._name,)
        ).fetchone()
        found = json.loads(row[0]) if row else None
        return found if isinstance(found, dict) else None

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()  # ends the session, which releases the advisory lock


# ---------------------------------------------------------------------------- dialects

class _SQLite:
    """The project-folder SQLite file (WAL, ``BEGIN IMMEDIATE``, ``PRAGMA user_version``)."""

    name = "sqlite"
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / DB_FILE_NAME
        if not path.parent.is_dir():
            raise StoreError(f"文件夹不存在 / folder does not exist: {path.parent}")
        self.path = path
        self.location = str(path)

    def connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves, so the write lock
        # is taken before the first read of a read-modify-write and no implicit transaction
        # hides.
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._enable_wal(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"无法打开数据库 / cannot open database {self.path}: {exc}") from exc
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(
                f"无法启用 WAL 日志（{mode}），项目文件夹可能在网络盘上 / cannot enable WAL "
                f"journal ({mode}); put the project on a local disk: {self.path}"
            )
        # FULL: a committed import must survive a power cut, not only a process crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection) -> str:
        # Switching a new file to WAL needs an exclusive lock and SQLite does not call its
        # busy handler for it: several processes opening a new project at once get
        # "database is locked" at once, so retry for as long as a write would wait.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def sql(self, statement: str) -> str:
        return statement

    def ddl(self, statement: str) -> str:
        return statement

    def insert_many(self, conn: sqlite3.Connection, sql: str,
                    rows: Sequence[Sequence[Any]]) -> list[int]:
        # In-process calls are cheap; sqlite3's executemany cannot return rows.
        return [int(conn.execute(sql, tuple(row)).fetchall()[0][0]) for row in rows]

    def begin(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"数据库正被占用，请稍后再试 / database is busy, try again: {exc}"
            ) from exc

    def in_transaction(self, conn: sqlite3.Connection) -> bool:
        return conn.in_transaction

    def change_marker(self, conn: sqlite3.Connection) -> int:
        return conn.total_changes

    def changed_since(self, conn: sqlite3.Connection, marker: int) -> bool:
        return conn.total_changes != marker

    def read_version(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def write_version(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute(f"PRAGMA user_version = {int(version)}")

    def named_lock(self, name: str) -> _NamedLock:
        return _FileLock(self.path.with_name(f"{self.path.name}.{name}.lock"))


@functools.lru_cache(maxsize=1024)
def _pg_placeholders(statement: str) -> str:
    """``?`` → ``%s`` outside string literals; a literal ``%`` is doubled everywhere,
    because psycopg reads ``%`` as a placeholder even inside quotes."""
    parts = statement.replace("%", "%%").split("'")
    parts[::2] = [part.replace("?", "%s") for part in parts[::2]]
    return "'".join(parts)


_PG_TYPES = (
    # INTEGER PRIMARY KEY is SQLite's rowid alias; BY DEFAULT (not ALWAYS) because
    # data_version inserts its single row with an explicit id.
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.I),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),  # SQLite integers are 64-bit
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),  # SQLite REAL is 8 bytes, PG's 4
    # Byte-wise text order and equality, as in SQLite, whatever the database's locale.
    (re.compile(r"\bTEXT\b", re.I), 'TEXT COLLATE "C"'),
)


@functools.lru_cache(maxsize=256)
def _pg_ddl(statement: str) -> str:
    parts = statement.split("'")
    for pattern, replacement in _PG_TYPES:
        parts[::2] = [pattern.sub(replacement, part) for part in parts[::2]]
    return "'".join(parts)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError(
            "使用 PostgreSQL 需要安装 psycopg：pip install \"plan-tracker[postgres]\" / "
            "PostgreSQL needs psycopg: pip install \"plan-tracker[postgres]\" "
            "(or pip install \"psycopg[binary]\")"
        ) from exc
    return psycopg


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class _Postgres:
    """A PostgreSQL database named by a ``postgresql://`` URL. Tables live in the
    connection's current schema (``?options=-csearch_path%3Dname`` picks another), so several
    projects can share one database."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.psycopg = _import_psycopg()
        from psycopg.conninfo import conninfo_to_dict

        self.integrity_error: type[Exception] = self.psycopg.IntegrityError
        self.location = redact_url(url)
        try:
            self._params = conninfo_to_dict(url)
        except self.psycopg.ProgrammingError as exc:
            raise StoreError(
                f"数据库地址无效 / invalid database URL {self.location}: {exc} — 格式 / "
                "format: postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            ) from exc
        self._params.setdefault("connect_timeout", str(PG_CONNECT_TIMEOUT_S))
        self._params.setdefault("application_name", "plan-tracker")
        self.schema: str | None = None

    def connect(self) -> Any:
        psycopg = self.psycopg
        try:
            # autocommit: like SQLite's isolation_level=None, we say BEGIN/COMMIT ourselves.
            conn = psycopg.connect(**self._params, autocommit=True)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"无法连接 PostgreSQL 数据库 {self.location}：{reason}。请检查 PLAN_TRACKER_DB"
                f"（主机、端口、数据库、用户、密码）以及服务器是否在运行 / cannot connect to "
                f"PostgreSQL at {self.location}: {reason} — check PLAN_TRACKER_DB (host, port, "
                "database, user, password) and that the server is running"
            ) from exc
        try:
            if conn.info.server_version < 130000:
                raise StoreError(
                    f"需要 PostgreSQL 13 或更新版本 / PostgreSQL 13 or newer is needed "
                    f"(server is {conn.info.server_version}): {self.location}"
                )
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            if schema is None:
                raise StoreError(
                    f"search_path 中没有可用的 schema，请先 CREATE SCHEMA 或修正 search_path / "
                    f"no schema to create tables in (search_path names none that exists): "
                    f"create it first or fix the URL's options: {self.location}"
                )
        except BaseException:
            conn.close()
            raise
        self.schema = schema
        return conn

    def lock_key(self, purpose: str, name: str = "") -> int:
        """A 64-bit advisory-lock key private to this schema, so two projects sharing one
        database never wait for each other."""
        digest = hashlib.blake2b(
            f"plan-tracker\0{purpose}\0{self.schema}\0{name}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)

    def sql(self, statement: str) -> str:
        return _pg_placeholders(statement)

    def ddl(self, statement: str) -> str:
        return _pg_ddl(statement)

    def insert_many(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        if not rows:
            return []
        # One pipeline for the whole list instead of a round trip per row.
        cursor = conn.cursor()
        cursor.executemany(sql, rows, returning=True)
        ids = []
        while True:
            ids.append(int(cursor.fetchone()[0]))
            if not cursor.nextset():
                return ids

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN")
        try:
            # The equivalent of BEGIN IMMEDIATE: one writer at a time per schema, taken
            # before the first read of a read-modify-write, released by COMMIT/ROLLBACK.
            conn.execute(f"SET LOCAL lock_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key("write"),))
        except self.psycopg.errors.LockNotAvailable as exc:
            conn.execute("ROLLBACK")
            raise StoreError(
                f"数据库正被占用，请稍后再试 / database is busy, try again: {exc}"
            ) from exc
        except BaseException:
            with suppress(self.psycopg.Error):
                conn.execute("ROLLBACK")
            raise

    def in_transaction(self, conn: Any) -> bool:
        return conn.info.transaction_status != self.psycopg.pq.TransactionStatus.IDLE

    def change_marker(self, conn: Any) -> None:
        return None

    def changed_since(self, conn: Any, marker: None) -> bool:
        # A transaction gets an id at its first row write (not for reads or advisory locks),
        # so "has an id" is exactly "changed something", like SQLite's total_changes.
        return conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()[0] is not None

    def _version_table(self, conn: Any) -> str:
        from psycopg import sql

        return sql.Identifier(self.schema, "schema_version").as_string(conn)

    def read_version(self, conn: Any) -> int:
        # A plain query on pg_class, not to_regclass(): the latter answers from the backend's
        # catalog cache, which an advisory lock does not refresh, so a process that waited
        # for another's migration would still see "no table" and migrate again.
        exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'schema_version')",
            (self.schema,),
        ).fetchone()[0]
        if not exists:
            return 0
        row = conn.execute(
            f"SELECT version FROM {self._version_table(conn)} WHERE id = 1"
        ).fetchone()
        return int(row[0]) if row else 0

    def write_version(self, conn: Any, version: int) -> None:
        # Created on first use, inside the migration transaction (under the write lock), so
        # two processes opening a fresh database cannot both create it.
        table = self._version_table(conn)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " version INTEGER NOT NULL)"
        )
        conn.execute(
            f"INSERT INTO {table} (id, version) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            (int(version),),
        )

    def named_lock(self, name: str) -> _NamedLock:
        return _AdvisoryLock(self, name)


def _dialect_for(target: str | Path) -> _SQLite | _Postgres:
    text = str(target).strip()
    if text.lower().startswith(POSTGRES_SCHEMES):
        return _Postgres(text)
    return _SQLite(target)


def open_store(sqlite_path: str | Path, env: Mapping[str, str] = os.environ) -> Store:
    """Open the project's store: the SQLite file in the project folder, unless
    ``PLAN_TRACKER_DB`` names another (``sqlite:///PATH``) or a PostgreSQL database
    (``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``)."""
    url = env.get("PLAN_TRACKER_DB", "").strip()
    if not url:
        return Store.open(sqlite_path)
    if url.lower().startswith(POSTGRES_SCHEMES):
        return Store.open(url)
    if url.startswith("sqlite:///"):
        return Store.open(url[len("sqlite:///") :])
    raise StoreError(
        f"不支持该数据库 / database backend not supported: {url.split('://')[0]}://… — "
        "PLAN_TRACKER_DB 可为 sqlite:///路径 或 postgresql://用户:密码@主机:端口/数据库，"
        "或取消设置以使用项目文件夹中的 SQLite / use sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or unset PLAN_TRACKER_DB to use the "
        "SQLite file in the project folder"
    )


class Store:
    """The project's database. Open with :meth:`Store.open`; one object per process is enough
    (it is safe to share between threads: access is serialised by a lock)."""

    def __init__(self, dialect: _SQLite | _Postgres, conn: Any) -> None:
        self._dialect = dialect
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, target: str | Path) -> Store:
        """Open the store and bring its schema up to date: ``target`` is a SQLite file or
        folder (created if needed), or a ``postgresql://`` URL."""
        dialect = _dialect_for(target)
        store = cls(dialect, dialect.connect())
        try:
            store._migrate(MIGRATIONS)
        except BaseException:
            store._conn.close()
            raise
        return store

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect.name

    @property
    def path(self) -> Path | None:
        """The SQLite file (``None`` on PostgreSQL)."""
        return getattr(self._dialect, "path", None)

    @property
    def location(self) -> str:
        """Where the data is, for messages: the file path or the URL without its password."""
        return self._dialect.location

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
            return self._dialect.read_version(self._conn)

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        if self.schema_version > len(migrations):
            raise StoreError(
                f"数据库版本 {self.schema_version} 比本程序新（{len(migrations)}），请升级 "
                f"plan-tracker / database schema {self.schema_version} is newer than this "
                f"program ({len(migrations)}): upgrade plan-tracker ({self.location})"
            )
        while self.schema_version < len(migrations):
            # Re-read the version under the write lock: another process may have migrated
            # between our check and taking the lock. One transaction per version, so a crash
            # mid-migration leaves the previous version intact (DDL is transactional in both
            # SQLite and PostgreSQL).
            with self.transaction() as conn:
                version = self._dialect.read_version(conn)
                if version >= len(migrations):
                    break
                try:
                    for statement in migrations[version]:
                        self._execute(self._dialect.ddl(statement))
                except Exception as exc:
                    raise StoreError(
                        f"数据库结构升级到第 {version + 1} 版失败，数据库保持第 {version} 版 / "
                        f"schema migration {version} → {version + 1} failed, the database "
                        f"stays at {version} ({self.location}): {exc}"
                    ) from exc
                self._dialect.write_version(conn, version + 1)
                self._write_audit(
                    "schema_migrated",
                    {"message": f"schema {version} → {version + 1}", "to": version + 1},
                    actor=default_actor(),
                )

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction (yields the backend's connection). Nested calls join the outer
        one (as a savepoint, so a failed inner block undoes only itself if the caller
        catches the error)."""
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
            self._dialect.begin(self._conn)
            self._depth = 1
            try:
                marker = self._dialect.change_marker(self._conn)
                yield self._conn
                # A transaction that changed nothing leaves data_version alone, so caches
                # are not invalidated by no-op calls (a re-import of identical values).
                if self._dialect.changed_since(self._conn, marker):
                    self._execute("UPDATE data_version SET version = version + 1")
                self._conn.execute("COMMIT")
            except BaseException:
                # A lost connection cannot roll back; the server (or SQLite's journal) does,
                # and the caller must see the original error, not this one.
                with suppress(Exception):
                    if self._dialect.in_transaction(self._conn):
                        self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    @contextmanager
    def exclusive(self, name: str, *, wait: float = 0) -> Iterator[dict]:
        """Run one named job at a time across processes and machines (e.g. ``"consolidate"``).

        Waits up to ``wait`` seconds, then raises :class:`StoreBusy` naming who holds it
        (user, host, pid, started_at). The lock is the OS's (SQLite: a file lock on
        ``<database>.<name>.lock``) or the server's (PostgreSQL: an advisory lock), so it is
        released when the holder ends, even by a crash. It does not block ordinary reads and
        writes; those are serialised by :meth:`transaction`. Yields the holder record."""
        if not isinstance(name, str) or not _LOCK_NAME.fullmatch(name):
            raise StoreError(
                f"锁名称无效 / invalid lock name {name!r}: letters, digits, '_', '-', '.'"
            )
        lock = self._dialect.named_lock(name)
        holder = _holder_info(name)
        started = time.monotonic()
        try:
            while not lock.try_acquire(holder):
                waited = time.monotonic() - started
                if waited >= wait:
                    raise StoreBusy(name, lock.holder(), round(waited, 1) if wait > 0 else 0)
                time.sleep(min(0.1, wait - waited))
        except BaseException:
            lock.close()
            raise
        try:
            yield holder
        finally:
            lock.close()

    def data_version(self) -> int:
        """Counter bumped by every committed write, by any process using this database."""
        with self._lock:
            row = self._execute("SELECT version FROM data_version WHERE id = 1").fetchone()
        return int(row[0])

    # One place where SQL meets the connection: statements are written with ``?`` and
    # translated by the dialect.
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._dialect.sql(sql), tuple(params))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.cursor().executemany(self._dialect.sql(sql), rows)

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT and return the new row's id (RETURNING works on both backends;
        fetchall so SQLite's statement is finished before the next one)."""
        return int(self._execute(sql + " RETURNING id", params).fetchall()[0][0])

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return [tuple(row) for row in self._execute(sql, params).fetchall()]

    def _records(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        with self._lock:
            cursor = self._execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # ------------------------------------------------------------------ audit
    def _write_audit(self, action: str, detail: Mapping[str, Any], *, actor: str) -> None:
        self._write_audits(action, [detail], actor=actor)

    def _write_audits(
        self, action: str, details: Sequence[Mapping[str, Any]], *, actor: str
    ) -> None:
        if not details:
            return
        at = utc_now()
        self._executemany(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            [(at, actor, action, json.dumps(dict(detail), ensure_ascii=False, default=str))
             for detail in details],
        )

    def audit(self, action: str, detail: dict, *, actor: str) -> int:
        """Write one audit entry; returns the ``data_version`` this write committed (when
        called outside a transaction), so a caller can stamp what it just did without a
        second read that another writer could slip in before."""
        with self.transaction():
            self._write_audit(action, detail, actor=actor)
            # The entry is a change, so the commit bumps the counter by exactly one, and the
            # write lock held since BEGIN keeps other writers out until then.
            version = self.data_version() + 1
        return version

    def audit_log(self) -> pd.DataFrame:
        rows = []
        for row in self._records("SELECT id, at, actor, action, detail FROM audit_log ORDER BY id"):
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
        with self.transaction():
            latest = self._execute(
                "SELECT id, sha256 FROM catalogue_versions ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if latest is not None and latest[1] == digest:
                return int(latest[0])
            version_id = self._insert(
                "INSERT INTO catalogue_versions (sha256, csv_text, note, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (digest, csv_text, note, utc_now(), actor),
            )
            self._write_audit(
                "catalogue_saved",
                {"message": f"目录版本 / catalogue version {version_id}", "version": version_id,
                 "sha256": digest, "note": note},
                actor=actor,
            )
            return version_id

    def latest_catalogue_version(self) -> tuple[int, str] | None:
        rows = self._rows("SELECT id, csv_text FROM catalogue_versions ORDER BY id DESC LIMIT 1")
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def catalogue_versions(self) -> pd.DataFrame:
        rows = self._rows(
            "SELECT id, sha256, note, created_at, created_by FROM catalogue_versions ORDER BY id"
        )
        return _frame(
            rows,
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
        with self.transaction():
            submission_id = self._insert(
                "INSERT INTO submissions (file_name, sha256, department, period, point, kind,"
                " status, received_at, decided_at, archive_path, template_id, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    file_name, sha256, _text(department), canonical, point, kind, status,
                    _timestamp(received_at) or utc_now(), _timestamp(decided_at),
                    _text(archive_path), _text(template_id), actor,
                ),
            )
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
        rows = self._rows(_SUBMISSION_SELECT + " WHERE s.id = ?", (submission_id,))
        return self._submission_dict(rows[0]) if rows else None

    def find_submission_by_hash(self, sha256: str) -> dict | None:
        """The latest submission of a file with this content (``None`` if never seen)."""
        rows = self._rows(
            _SUBMISSION_SELECT + " WHERE s.sha256 = ? ORDER BY s.id DESC LIMIT 1", (sha256,)
        )
        return self._submission_dict(rows[0]) if rows else None

    def _submission_dict(self, row: tuple) -> dict:
        result = dict(zip(SUBMISSION_COLUMNS, row, strict=True))
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
        with self.transaction():
            row = self._execute(
                "SELECT status FROM submissions WHERE id = ?", (submission_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"没有该提交 / no submission #{submission_id}")
            self._execute(
                "UPDATE submissions SET status = ?, decided_at = COALESCE(?, decided_at),"
                " archive_path = COALESCE(?, archive_path) WHERE id = ?",
                (status, _timestamp(decided_at), _text(archive_path), submission_id),
            )
            if problems is not None:
                self._execute("DELETE FROM problems WHERE submission_id = ?", (submission_id,))
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
        rows = self._rows(sql + " ORDER BY s.id", params)
        return _frame(rows, SUBMISSION_COLUMNS, ints=("submission_id", "errors", "warnings"))

    def accepted_submission_ids(self, department: str | None, period: str | None) -> list[int]:
        """Ids of the accepted submissions of ``department`` for the point in time of
        ``period`` (``2025-Q3`` ≡ ``2025-09``), oldest first; ``None`` matches a missing
        department or period. A plain query: intake asks once per file, and building a
        frame for it (:meth:`submissions`) cost 1.4 s per 500 files."""
        point = _period_and_point(period)[1]
        rows = self._rows(
            "SELECT id FROM submissions WHERE status = 'accepted'"
            " AND COALESCE(department, '') = COALESCE(?, '') AND COALESCE(point, '') = COALESCE(?, '')"
            " ORDER BY id",
            (_text(department), point),
        )
        return [int(row[0]) for row in rows]

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
            self._executemany(
                "INSERT INTO problems (submission_id, file, sheet, cell, code, message, hint,"
                " severity, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except self._dialect.integrity_error as exc:
            raise StoreError(f"没有该提交 / no submission #{submission_id}") from exc

    def add_problems(self, submission_id: int, problems: list[dict]) -> None:
        with self.transaction():
            self._insert_problems(submission_id, problems)

    def problems(self, submission_id: int) -> list[dict]:
        return self._records(
            "SELECT file, sheet, cell, code, message, hint, severity FROM problems"
            " WHERE submission_id = ? ORDER BY id",
            (submission_id,),
        )

    def open_problems(self) -> pd.DataFrame:
        """Problems still to be fixed: those of rejected submissions that no later accepted
        submission of the same department and point in time has replaced."""
        rows = self._rows(
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
        return _frame(rows, PROBLEM_COLUMNS, ints=("problem_id", "submission_id"))

    # ------------------------------------------------------------------ observations
    def record_observations(
        self,
        rows: Iterable[Mapping[str, Any]] | pd.DataFrame,
        *,
        submission_id: int | None,
        actor: str,
    ) -> RecordSummary:
        """Record values; a different value, task state or note for a point supersedes the
        current row (both kept), an identical one is counted as unchanged. All or nothing."""
        pandas = sys.modules.get("pandas")  # a DataFrame implies pandas is already imported
        is_frame = pandas is not None and isinstance(rows, pandas.DataFrame)
        records = rows.to_dict("records") if is_frame else rows
        summary = RecordSummary()
        now = utc_now()
        with self.transaction():
            default_department = None
            if submission_id is not None:
                found = self._execute(
                    "SELECT department FROM submissions WHERE id = ?", (submission_id,)
                ).fetchone()
                if found is None:
                    raise StoreError(f"没有该提交 / no submission #{submission_id}")
                default_department = found[0]
            batch = [
                _observation(record, number, default_department)
                for number, record in enumerate(records, start=1)
            ]
            seen: dict[tuple[str, str], tuple[float | None, str | None, str | None]] = {}
            for obs in batch:
                key = (obs["indicator_id"], obs["point"])
                content = (obs["value"], obs["value_text"], obs["note"])
                if key in seen and seen[key] != content:
                    what_zh, what_en = (("备注", "notes") if seen[key][:2] == content[:2]
                                        else ("值", "values"))
                    raise StoreError(
                        f"同一批中 {key[0]} {obs['period']} 有两个不同的{what_zh}（季度与其末月为同"
                        f"一时点），请只保留一个 / two different {what_en} for {key[0]} at "
                        f"{key[1]} in one batch (a quarter and its closing month are the same "
                        "point): keep one"
                    )
                seen[key] = content
            current = self._current_for(set(seen))
            # Decide every row first, then write in bulk: on PostgreSQL each statement is a
            # network round trip, and executemany sends a whole list in one pipeline.
            writes: list[tuple[dict, dict | None]] = []
            for obs in batch:
                key = (obs["indicator_id"], obs["point"])
                old = current.get(key)
                # A row that brings no note does not correct the note: a statistics re-import
                # without remarks must not push the departments' remarks out of view.
                same_note = obs["note"] is None or old is not None and old["note"] == obs["note"]
                if old is not None and same_note and (old["value"], old["value_text"]) == (
                    obs["value"], obs["value_text"]
                ):
                    summary.unchanged += 1
                    continue
                writes.append((obs, old))
                # A later row of the batch for the same point compares with this one (the
                # batch check above made them identical, so it counts as unchanged).
                current[key] = {**obs, "id": None, "submission_id": submission_id,
                                "recorded_by": actor, "recorded_at": now}
            superseded = [(now, old["id"]) for _, old in writes if old is not None]
            if superseded:
                # Mark first: the partial unique index allows one current row per point.
                self._executemany(
                    "UPDATE observations SET superseded_at = ? WHERE id = ?", superseded
                )
            links, audits = [], []
            new_ids = self._insert_observations([obs for obs, _ in writes], submission_id,
                                                now, actor)
            for (obs, old), new_id in zip(writes, new_ids, strict=True):
                if old is None:
                    summary.inserted += 1
                    continue
                links.append((new_id, old["id"]))
                change = Change(
                    indicator_id=obs["indicator_id"], period=obs["period"],
                    old_value=old["value"], new_value=obs["value"],
                    old_submission_id=old["submission_id"], new_submission_id=submission_id,
                    old_text=old["value_text"], new_text=obs["value_text"],
                    old_period=old["period"], point=obs["point"],
                    old_note=old["note"], new_note=obs["note"],
                )
                summary.changed.append(change)
                audits.append(_change_audit(change, old, new_id))
            if links:
                self._executemany(
                    "UPDATE observations SET superseded_by = ? WHERE id = ?", links
                )
            self._write_audits("observation_superseded", audits, actor=actor)
            if summary.inserted or summary.changed:
                notes_only = len(summary.note_changes)
                self._write_audit(
                    "observations_recorded",
                    {"message": f"记录 / recorded: {summary.inserted} new, "
                                f"{len(summary.changed)} changed"
                                f"{f' ({notes_only} note only)' if notes_only else ''}, "
                                f"{summary.unchanged} unchanged"
                                f" (提交 / submission {_sub(submission_id)})",
                     "submission_id": submission_id, "inserted": summary.inserted,
                     "changed": len(summary.changed), "notes_changed": notes_only,
                     "unchanged": summary.unchanged},
                    actor=actor,
                )
        return summary

    def _current_for(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """The current rows for these (indicator, point) keys only: a batch is usually one
        period, so this reads a handful of rows instead of every period of its indicators."""
        current: dict[tuple[str, str], dict] = {}
        points = sorted({point for _, point in keys})
        ids = sorted({ind for ind, _ in keys})
        # Chunked IN lists stay under SQLite's bound-parameter limit for huge batches.
        for start in range(0, len(ids), 400):
            chunk = ids[start : start + 400]
            for p_start in range(0, len(points), 400):
                point_chunk = points[p_start : p_start + 400]
                for row in self._records(
                    "SELECT id, indicator_id, point, period, value, value_text, note, submission_id,"
                    " recorded_by, recorded_at FROM observations WHERE superseded_at IS NULL"
                    f" AND indicator_id IN ({', '.join('?' * len(chunk))})"
                    f" AND point IN ({', '.join('?' * len(point_chunk))})",
                    [*chunk, *point_chunk],
                ):
                    key = (row["indicator_id"], row["point"])
                    if key in keys:
                        current[key] = row
        return current

    def _insert_observations(
        self, batch: Sequence[dict], submission_id: int | None, now: str, actor: str
    ) -> list[int]:
        """Insert rows in order and return their ids, in the same order."""
        return self._dialect.insert_many(
            self._conn,
            self._dialect.sql(
                "INSERT INTO observations (indicator_id, period, point, value, value_text, note,"
                " department, submission_id, sheet, cell, recorded_at, recorded_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            [
                (obs["indicator_id"], obs["period"], obs["point"], obs["value"],
                 obs["value_text"], obs["note"], obs["department"], submission_id,
                 obs["sheet"], obs["cell"], now, actor)
                for obs in batch
            ],
        )

    def current_observations(self) -> pd.DataFrame:
        """One row per indicator and point: the value in force, with its provenance."""
        rows = self._rows(
            f"SELECT {', '.join(OBSERVATION_COLUMNS)} FROM observations"
            " WHERE superseded_at IS NULL ORDER BY indicator_id, point"
        )
        return _frame(rows, OBSERVATION_COLUMNS, floats=("value",), ints=("submission_id",))

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
        rows = self._rows(sql + " ORDER BY o.indicator_id, o.point, o.id", params)
        frame = _frame(
            rows, HISTORY_COLUMNS, floats=("value",),
            ints=("observation_id", "submission_id", "superseded_by",
                  "superseded_by_submission_id"),
        )
        frame["is_current"] = frame["is_current"].astype(bool)
        return frame

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str, *, actor: str) -> None:
        with self.transaction():
            old = self._execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if old is not None and old[0] == value:
                return
            self._execute(
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
            with self.transaction():
                # DO NOTHING: if another process created it first, theirs wins and we read it.
                cursor = self._execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (SECRET_SETTING, _secrets.token_bytes(32).hex(), utc_now(), default_actor()),
                )
                if cursor.rowcount:
                    self._write_audit(
                        "secret_created", {"message": "模板签名密钥已生成 / template key created"},
                        actor=default_actor(),
                    )
                stored = self._execute(
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


def _change_audit(change: Change, old: Mapping[str, Any], new_id: int) -> dict[str, Any]:
    what = "value " if change.value_changed else ""
    return {
        "message": f"{change.indicator_id} {change.period}: {what}{change.describe()} "
                   f"(提交 / submission {_sub(change.old_submission_id)} → "
                   f"{_sub(change.new_submission_id)})",
        "indicator_id": change.indicator_id, "period": change.period, "point": change.point,
        "changed": [name for name, flag in (("value", change.value_changed),
                                            ("note", change.note_changed)) if flag],
        "old_value": change.old_value, "new_value": change.new_value,
        "old_text": change.old_text, "new_text": change.new_text,
        "old_note": change.old_note, "new_note": change.new_note,
        "old_observation_id": old["id"], "new_observation_id": new_id,
        "old_submission_id": change.old_submission_id,
        "new_submission_id": change.new_submission_id,
        "old_recorded_by": old["recorded_by"], "old_recorded_at": old["recorded_at"],
    }


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
    import pandas as pd

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
