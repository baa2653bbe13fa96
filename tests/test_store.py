"""The store, on every backend: schema migrations, supersede history (values, states and
notes), audit, data_version, rollback, crash safety.

Each test runs on SQLite and on PostgreSQL. PostgreSQL needs ``PLAN_TRACKER_TEST_PG`` (a URL
that may create schemas), as printed by ``scripts/start-postgres.sh``; without it those cases
are skipped with the reason shown in pytest's summary. Each PostgreSQL case gets a schema of
its own, dropped afterwards, so runs never see each other's data.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_tracker.store import (
    DB_FILE_NAME,
    MIGRATIONS,
    OBSERVATION_COLUMNS,
    SCHEMA_VERSION,
    Store,
    StoreError,
    default_actor,
)

BACKENDS = ("sqlite", "postgres")
PG_URL = os.environ.get("PLAN_TRACKER_TEST_PG", "").strip()
PG_MISSING = (
    "PostgreSQL not available: PLAN_TRACKER_TEST_PG is not set (start a server with "
    '`eval "$(bash scripts/start-postgres.sh)"`; .ci/run does this, see docs/store.md)'
)


def with_search_path(url: str, schema: str) -> str:
    """The URL whose connections create and find tables in ``schema`` (libpq ``options``)."""
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"


@dataclass(frozen=True)
class Target:
    """One empty store location: a SQLite file path, or a PostgreSQL URL with its own schema."""

    kind: str
    location: str
    schema: str = ""

    def open(self) -> Store:
        return Store.open(self.location)

    def objects(self, store: Store) -> set[str]:
        """Names of the store's tables and indexes."""
        if self.kind == "sqlite":
            sql = ("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')"
                   " AND name NOT LIKE 'sqlite_%'")
        else:
            sql = ("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                   " UNION SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        return {row[0] for row in store._rows(sql)}

    def admin(self, sql: str, params: tuple = ()) -> list[tuple]:
        """A query on a connection of the test's own (PostgreSQL only)."""
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []


@contextmanager
def make_target(kind: str, folder: Path) -> Iterator[Target]:
    if kind == "sqlite":
        yield Target("sqlite", str(folder / DB_FILE_NAME))
        return
    if not PG_URL:
        pytest.skip(PG_MISSING)
    schema = f"pt_test_{secrets.token_hex(6)}"
    target = Target("postgres", with_search_path(PG_URL, schema), schema)
    target.admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield target
    finally:
        # Killed children's sessions end as the server notices; wait for them rather than
        # leave the schema behind.
        target.admin(f"SET lock_timeout = '30s'; DROP SCHEMA \"{schema}\" CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgres" and not PG_URL:
        pytest.skip(PG_MISSING)
    return request.param


@pytest.fixture
def target(backend: str, tmp_path: Path) -> Iterator[Target]:
    with make_target(backend, tmp_path) as made:
        yield made


@pytest.fixture
def store(target: Target) -> Iterator[Store]:
    with target.open() as opened:
        yield opened


def start_child(code: str, *args: str) -> subprocess.Popen:
    """A Python child process running ``code`` (sys.argv[1:] = args), stderr captured."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)


def wait_for_file(path: Path, child: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"child ended before {what}: {child.stderr.read().decode()}")
        assert time.monotonic() < deadline, f"child never reached {what}"
        time.sleep(0.02)


def _submission(store: Store, name: str = "a.xlsx", *, department: str = "工信局",
                period: str = "2025-Q3", status: str = "accepted", sha: str | None = None) -> int:
    return store.add_submission(
        file_name=name, sha256=sha or f"sha-{name}", department=department, period=period,
        kind="template", status=status, actor="clerk",
    )


def _obs(indicator: str, period: str, value: float | None = None, text: str | None = None,
         **extra: object) -> dict:
    return {"indicator_id": indicator, "period": period, "value": value, "value_text": text,
            **extra}


# ---------------------------------------------------------------- schema and migrations

def test_migrates_an_empty_store_and_reopening_is_idempotent(target: Target) -> None:
    if target.kind == "sqlite":
        Path(target.location).touch()  # a zero-byte file is a valid, empty SQLite database
    with target.open() as first:
        assert first.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        first.record_observations([_obs("K1", "2025", 5)], submission_id=None, actor="a")
        tables = target.objects(first)
        assert {"observations", "observations_current", "submissions", "audit_log",
                "data_version", "store_locks"} <= tables
    with target.open() as second:
        assert second.schema_version == SCHEMA_VERSION
        assert target.objects(second) == tables
        assert second.current_observations()["value"].tolist() == [5.0]
        assert second.audit_log()["action"].tolist().count("schema_migrated") == SCHEMA_VERSION
        if target.kind == "sqlite":
            assert second._rows("PRAGMA journal_mode")[0][0] == "wal"
        else:  # the version lives in a table, since PostgreSQL has no user_version
            assert second._rows("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_migrations_run_in_order_and_only_once(store: Store) -> None:
    extra = (("CREATE TABLE later_a (x INTEGER)",),
             ("ALTER TABLE later_a ADD COLUMN y TEXT", "INSERT INTO later_a VALUES (1, 'y')"))
    store._migrate((*MIGRATIONS, extra[0]))
    assert store.schema_version == SCHEMA_VERSION + 1
    store._migrate((*MIGRATIONS, *extra))  # would fail if the first extra ran again
    store._migrate((*MIGRATIONS, *extra))
    assert store.schema_version == SCHEMA_VERSION + 2
    assert store._rows("SELECT x, y FROM later_a") == [(1, "y")]


def test_a_failing_migration_leaves_the_previous_version(target: Target, store: Store) -> None:
    broken = ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")
    with pytest.raises(StoreError, match=f"migration {SCHEMA_VERSION} → {SCHEMA_VERSION + 1} "
                                         "failed") as raised:
        store._migrate((*MIGRATIONS, broken))
    assert "数据库保持" in str(raised.value) and "THIS" in str(raised.value)
    assert store.schema_version == SCHEMA_VERSION
    assert "half_done" not in target.objects(store)
    # The store is still usable after the failed attempt.
    store.record_observations([_obs("K1", "2025", 1)], submission_id=None, actor="a")


def test_a_newer_database_is_refused(target: Target) -> None:
    with target.open() as store, store.transaction() as conn:
        store._dialect.write_version(conn, SCHEMA_VERSION + 5)
    with pytest.raises(StoreError, match="upgrade plan-tracker"):
        target.open()


# ---------------------------------------------------------------- observations

def test_a_correction_supersedes_and_keeps_history_with_who_and_when(store: Store) -> None:
    first = _submission(store, "v1.xlsx")
    second = _submission(store, "v2.xlsx")
    summary = store.record_observations(
        [_obs("K1", "2025-Q3", 100, sheet="产值", cell="C5"), _obs("K2", "2025-Q3", 7)],
        submission_id=first, actor="alice",
    )
    assert (summary.inserted, summary.changed, summary.unchanged) == (2, [], 0)

    summary = store.record_observations(
        [_obs("K1", "2025-Q3", 120, sheet="产值", cell="C5"), _obs("K2", "2025-Q3", 7)],
        submission_id=second, actor="bob",
    )
    assert summary.inserted == 0 and summary.unchanged == 1
    [change] = summary.changed
    assert (change.indicator_id, change.old_value, change.new_value) == ("K1", 100.0, 120.0)
    assert (change.old_submission_id, change.new_submission_id) == (first, second)

    current = store.current_observations()
    assert list(current.columns) == OBSERVATION_COLUMNS
    k1 = current.set_index("indicator_id").loc["K1"]
    assert (k1["value"], k1["submission_id"], k1["recorded_by"]) == (120.0, second, "bob")
    assert (k1["sheet"], k1["cell"], k1["department"]) == ("产值", "C5", "工信局")

    history = store.observation_history("K1", "2025-09")  # the point, asked in month form
    assert history["value"].tolist() == [100.0, 120.0]
    old, new = history.iloc[0], history.iloc[1]
    assert not old["is_current"] and new["is_current"]
    assert old["recorded_by"] == "alice" and old["submission_id"] == first
    assert old["superseded_by"] == new["observation_id"]
    assert old["superseded_by_actor"] == "bob"
    assert old["superseded_by_submission_id"] == second
    assert old["superseded_at"] is not None and new["superseded_at"] is None

    audit = store.audit_log()
    superseded = audit[audit["action"] == "observation_superseded"]
    assert len(superseded) == 1
    entry = superseded.iloc[0]
    assert entry["actor"] == "bob"
    assert "value 100 → 120" in entry["message"]
    assert f"#{first} → #{second}" in entry["message"]
    assert entry["detail"]["old_submission_id"] == first
    assert entry["detail"]["new_submission_id"] == second
    # Never updated in place: the old row's value is still what alice recorded.
    assert store._rows(
        "SELECT value FROM observations WHERE id = ?", (int(old["observation_id"]),)
    ) == [(100.0,)]


def test_identical_re_record_is_unchanged_and_writes_nothing(store: Store) -> None:
    rows = [_obs("K1", "2025", 3.5), _obs("T1", "2025-Q2", None, "推进中", note="进展顺利")]
    store.record_observations(rows, submission_id=None, actor="a")
    before = (store.data_version(), len(store.audit_log()), len(store.observation_history()))
    summary = store.record_observations(rows, submission_id=None, actor="b")
    assert (summary.inserted, summary.changed, summary.unchanged) == (0, [], 2)
    after = (store.data_version(), len(store.audit_log()), len(store.observation_history()))
    assert after == before
    assert store.current_observations()["recorded_by"].tolist() == ["a", "a"]


def test_quarter_and_its_closing_month_are_the_same_point(store: Store) -> None:
    store.record_observations([_obs("K1", "2025-Q3", 10)], submission_id=None, actor="a")
    summary = store.record_observations([_obs("K1", "2025-09", 11)], submission_id=None, actor="a")
    assert summary.inserted == 0 and len(summary.changed) == 1
    assert summary.changed[0].old_period == "2025-Q3"
    current = store.current_observations()
    assert len(current) == 1
    assert current.iloc[0][["period", "point", "value"]].tolist() == ["2025-09", "2025-09", 11.0]
    # The same value under the other form is no change at all.
    summary = store.record_observations([_obs("K1", "2025年三季度", 11)], submission_id=None,
                                        actor="a")
    assert summary.unchanged == 1
    # A year is its own point, not its December.
    summary = store.record_observations([_obs("K1", "2025", 40), _obs("K1", "2025-12", 39)],
                                        submission_id=None, actor="a")
    assert summary.inserted == 2


def test_task_state_change_is_a_change(store: Store) -> None:
    store.record_observations([_obs("T1", "2025", None, "推进中")], submission_id=None, actor="a")
    summary = store.record_observations([_obs("T1", "2025", None, "已完成")],
                                        submission_id=None, actor="a")
    assert summary.changed[0].describe() == "推进中 → 已完成"
    assert store.current_observations()["value_text"].tolist() == ["已完成"]
    assert pd.isna(store.current_observations()["value"].iloc[0])


def test_a_changed_note_alone_is_a_correction_with_history(store: Store) -> None:
    first = _submission(store, "v1.xlsx")
    second = _submission(store, "v2.xlsx")
    store.record_observations(
        [_obs("T1", "2025-Q3", None, "推进中", note="完成选址"), _obs("K1", "2025-Q3", 5, note="A")],
        submission_id=first, actor="alice",
    )
    summary = store.record_observations(
        [_obs("T1", "2025-Q3", None, "推进中", note="完成选址，开工建设"),
         _obs("K1", "2025-Q3", 5, note="A")],
        submission_id=second, actor="bob",
    )
    assert (summary.inserted, summary.unchanged) == (0, 1)
    [change] = summary.changed
    assert change.note_changed and not change.value_changed
    assert (change.old_note, change.new_note) == ("完成选址", "完成选址，开工建设")
    assert summary.note_changes == [change] and summary.value_changes == []
    assert change.describe() == '备注 / note: "完成选址" → "完成选址，开工建设"'

    current = store.current_observations().set_index("indicator_id")
    assert current.loc["T1", "note"] == "完成选址，开工建设"
    assert current.loc["T1", "recorded_by"] == "bob"
    history = store.observation_history("T1", "2025-09")
    assert history["note"].tolist() == ["完成选址", "完成选址，开工建设"]
    assert history["is_current"].tolist() == [False, True]
    assert history.iloc[0]["superseded_by_submission_id"] == second

    entry = store.audit_log().query("action == 'observation_superseded'").iloc[0]
    assert entry["message"] == (f'T1 2025-Q3: 备注 / note: "完成选址" → "完成选址，开工建设" '
                                f"(提交 / submission #{first} → #{second})")
    assert entry["detail"]["changed"] == ["note"]
    assert entry["detail"]["old_note"] == "完成选址"
    recorded = store.audit_log().query("action == 'observations_recorded'").iloc[-1]
    assert "1 changed (1 note only)" in recorded["message"]


def test_value_and_note_changed_together_and_a_cleared_note(store: Store) -> None:
    store.record_observations([_obs("K1", "2025", 100, note="初报")], submission_id=None,
                              actor="a")
    [change] = store.record_observations([_obs("K1", "2025", 120, note="复核后")],
                                         submission_id=None, actor="a").changed
    assert change.value_changed and change.note_changed
    assert change.describe() == '100 → 120; 备注 / note: "初报" → "复核后"'
    message = store.audit_log().query("action == 'observation_superseded'").iloc[-1]["message"]
    assert message.startswith('K1 2025: value 100 → 120; 备注 / note: "初报" → "复核后"')
    # A row with no remark does not correct the remark (a statistics re-import without
    # notes must not push the departments' notes out of view): nothing changes.
    summary = store.record_observations([_obs("K1", "2025", 120, note="  ")],
                                        submission_id=None, actor="a")
    assert summary.changed == [] and summary.unchanged == 1
    assert store.current_observations()["note"].tolist() == ["复核后"]
    assert store.observation_history("K1")["note"].tolist() == ["初报", "复核后"]
    # A new value without a remark is a correction, and the new row has no note.
    [change] = store.record_observations([_obs("K1", "2025", 125)], submission_id=None,
                                         actor="a").changed
    assert change.value_changed and store.current_observations()["note"].tolist() == [None]


def test_two_notes_for_one_point_in_one_batch_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="two different notes for K1 at 2025-09"):
        store.record_observations(
            [_obs("K1", "2025-Q3", 5, note="季报"), _obs("K1", "2025-09", 5, note="月报")],
            submission_id=None, actor="a",
        )
    with pytest.raises(StoreError, match="two different values"):
        store.record_observations(
            [_obs("K1", "2025-Q3", 5, note="季报"), _obs("K1", "2025-09", 6, note="季报")],
            submission_id=None, actor="a",
        )
    assert store.current_observations().empty
    # The same value and note under both forms is one recording, not a conflict.
    summary = store.record_observations(
        [_obs("K1", "2025-Q3", 5, note="季报"), _obs("K1", "2025-09", 5, note="季报")],
        submission_id=None, actor="a",
    )
    assert (summary.inserted, summary.changed, summary.unchanged) == (1, [], 1)


def test_dataframe_input_and_bad_rows_roll_back_the_whole_batch(store: Store) -> None:
    frame = pd.DataFrame({"indicator_id": ["K1", "K2"], "period": ["2025-Q1", "2025"],
                          "value": [1.0, float("nan")], "value_text": [None, "未启动"]})
    assert store.record_observations(frame, submission_id=None, actor="a").inserted == 2
    version = store.data_version()
    for bad in ([_obs("K3", "2025", 1), _obs("K4", "2025-13", 1)],      # bad period
                [_obs("K3", "2025", 1), _obs("K4", "2025", None)],      # no value at all
                [_obs("K3", "2025", 1), _obs("K3", "2025-Q4", 1), _obs("K3", "2025-12", 2)]):
        with pytest.raises(StoreError):
            store.record_observations(bad, submission_id=None, actor="a")
    with pytest.raises(StoreError, match="no submission"):
        store.record_observations([_obs("K5", "2025", 1)], submission_id=999, actor="a")
    assert store.data_version() == version
    assert sorted(store.current_observations()["indicator_id"]) == ["K1", "K2"]


# ---------------------------------------------------------------- transactions, data_version

def test_data_version_increases_on_writes_and_is_seen_by_another_store(target: Target) -> None:
    with target.open() as writer, target.open() as reader:
        seen = [reader.data_version()]
        writer.record_observations([_obs("K1", "2025", 1)], submission_id=None, actor="a")
        seen.append(reader.data_version())
        _submission(writer)
        seen.append(reader.data_version())
        writer.set_setting("threshold.at_risk", "0.9", actor="a")
        seen.append(reader.data_version())
        writer.audit("export", {"message": "x"}, actor="a")
        seen.append(reader.data_version())
        assert seen == sorted(set(seen)), seen  # strictly increasing
        assert reader.current_observations()["value"].tolist() == [1.0]


def test_nested_transactions_join_and_an_error_rolls_back_everything(store: Store) -> None:
    version = store.data_version()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.record_observations([_obs("K1", "2025", 1)], submission_id=None, actor="a")
            _submission(store)
            raise RuntimeError("crash in the caller")
    assert store.current_observations().empty and store.submissions().empty
    assert store.data_version() == version

    with store.transaction():
        store.record_observations([_obs("K1", "2025", 1)], submission_id=None, actor="a")
        with pytest.raises(StoreError):  # an inner failure the caller handles
            store.record_observations([_obs("K2", "bad", 1)], submission_id=None, actor="a")
        store.record_observations([_obs("K3", "2025", 3)], submission_id=None, actor="a")
    assert store.current_observations()["indicator_id"].tolist() == ["K1", "K3"]
    assert store.data_version() == version + 1  # one commit, one bump


_CRASH_CHILD = """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    db, ready, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = Store.open(db)
    if store.backend == "sqlite":
        # A tiny page cache makes SQLite spill the uncommitted pages into the WAL file, so
        # the kill happens with half a batch physically on disk, not only in memory.
        store._conn.execute("PRAGMA cache_size = 5")
    rows = [{"indicator_id": f"K{i % 200}", "period": f"{2021 + i // 2400}-{i // 200 % 12 + 1:02d}",
             "value": i + 0.5, "department": "crash", "sheet": "s", "cell": f"C{i}"}
            for i in range(n)]
    with store.transaction():
        sid = store.add_submission(file_name="big.xlsx", sha256="big", department="crash",
                                   period="2025", kind="import", status="accepted", actor="x")
        store.record_observations(rows[: n // 2], submission_id=sid, actor="x")
        ready.write_text("half")
        time.sleep(60)
        store.record_observations(rows[n // 2 :], submission_id=sid, actor="x")
"""


def test_a_killed_import_leaves_exactly_the_state_before_it(target: Target, tmp_path: Path) -> None:
    with target.open() as store:
        sid = _submission(store, "before.xlsx")
        # Values the batch will supersede (K0..K9 at 2021-01) and values it does not touch.
        store.record_observations(
            [_obs(f"K{i}", "2021-01", -1.0) for i in range(10)] + [_obs("Z", "2020", 9.0)],
            submission_id=sid, actor="before",
        )
        store.secret()
        before = (store.current_observations(), store.observation_history(),
                  store.submissions(), store.audit_log(), store.data_version())

    ready = tmp_path / "ready"
    child = start_child(_CRASH_CHILD, target.location, ready, 12000)
    try:
        wait_for_file(ready, child, "the middle of the batch")
        if target.kind == "sqlite":
            wal = Path(f"{target.location}-wal")
            assert wal.exists() and wal.stat().st_size > 0  # half a batch really is on disk
        else:  # the server holds half a batch in an open transaction of the child's
            states = target.admin(
                "SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity"
                " WHERE application_name = 'plan-tracker' AND query NOT LIKE '%%pg_stat%%'"
                " AND state = 'idle in transaction'")
            assert states == [("idle in transaction", True)], states
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()

    with target.open() as store:
        after = (store.current_observations(), store.observation_history(),
                 store.submissions(), store.audit_log(), store.data_version())
        if target.kind == "sqlite":
            assert store._rows("PRAGMA integrity_check") == [("ok",)]
        for old, new in zip(before[:4], after[:4], strict=True):
            pd.testing.assert_frame_equal(old, new)
        assert after[4] == before[4]
        assert store.find_submission_by_hash("big") is None
        # And the store takes writes again: the killed writer's lock is gone.
        store.record_observations([_obs("Z", "2020", 10.0)], submission_id=None, actor="after")


# ---------------------------------------------------------------- property

_KEYS = st.sampled_from(["K1", "K2"])
_PERIODS = st.sampled_from(["2025-Q3", "2025-09", "2025", "2024-Q1", "2024-03", "2024"])
_VALUES = st.one_of(
    st.tuples(st.sampled_from([0.0, 1.0, 2.5, -3.0, 1e6]), st.none()),
    st.tuples(st.none(), st.sampled_from(["未启动", "推进中", "已完成"])),
    st.tuples(st.just(1.0), st.just("推进中")),
)
_BATCH = st.dictionaries(st.tuples(_KEYS, _PERIODS), _VALUES, min_size=1, max_size=4)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_BATCH, min_size=1, max_size=6))
def test_any_sequence_of_recordings_keeps_last_value_current_and_full_history(
    backend: str, batches
) -> None:
    from plan_tracker.periods import point_of

    with (tempfile.TemporaryDirectory() as folder, make_target(backend, Path(folder)) as made,
          made.open() as store):
        last: dict[tuple[str, str], tuple] = {}
        distinct: dict[tuple[str, str], set] = {}
        for batch in batches:
            # One batch cannot hold two values for the same point (Q3 and 09): keep the
            # model's batch to what the store accepts.
            rows, points = [], set()
            for (indicator, period), (value, text) in batch.items():
                key = (indicator, point_of(period))
                if key in points:
                    continue
                points.add(key)
                rows.append(_obs(indicator, period, value, text))
                last[key] = (value, text)
                distinct.setdefault(key, set()).add((value, text))
            store.record_observations(rows, submission_id=None, actor="p")

        current = store.current_observations()
        assert not current.duplicated(["indicator_id", "point"]).any()
        got = {(r.indicator_id, r.point): (None if pd.isna(r.value) else r.value, r.value_text)
               for r in current.itertuples()}
        assert got == last
        history = store.observation_history()
        for key, values in distinct.items():
            rows = history[(history["indicator_id"] == key[0]) & (history["point"] == key[1])]
            recorded = {(None if pd.isna(v) else v, t)
                        for v, t in zip(rows["value"], rows["value_text"], strict=True)}
            assert recorded == values
            assert rows["is_current"].sum() == 1


# ---------------------------------------------------------------- submissions, problems

def test_submissions_and_lookup_by_hash(store: Store) -> None:
    sid = store.add_submission(
        file_name="工信局-2025Q3.xlsx", sha256="abc", department="工信局", period="2025年三季度",
        kind="template", status="pending", received_at="2025-10-08T09:30:00+08:00",
        problems=[{"sheet": "产值", "cell": "C5", "code": "not_number", "message": "不是数字",
                   "severity": "warning"}],
        actor="clerk",
    )
    found = store.find_submission_by_hash("abc")
    assert found["submission_id"] == sid and found["period"] == "2025-Q3"
    assert found["received_at"] == "2025-10-08T01:30:00Z"
    assert found["problems"][0]["cell"] == "C5" and found["warnings"] == 1
    assert store.find_submission_by_hash("nope") is None

    store.set_submission_status(sid, "accepted", decided_at="2025-10-09T00:00:00Z",
                                archive_path="archive/x.xlsx", problems=[])
    found = store.find_submission_by_hash("abc")
    assert (found["status"], found["archive_path"], found["problems"]) == (
        "accepted", "archive/x.xlsx", [])
    assert len(store.submissions(period="2025-09")) == 1
    assert store.submissions(department="其他").empty
    with pytest.raises(StoreError):
        store.set_submission_status(sid, "lost")
    with pytest.raises(StoreError):
        _submission(store, status="maybe")


def test_open_problems_disappear_when_a_later_accepted_file_replaces_them(store: Store) -> None:
    problem = {"file": "f.xlsx", "sheet": "产值", "cell": "C5", "code": "missing",
               "message": "缺少数值", "hint": "请填写", "severity": "error"}
    bad = _submission(store, "bad.xlsx", department="工信局", period="2025-Q3", status="rejected")
    store.add_problems(bad, [problem])
    other = _submission(store, "o.xlsx", department="商务局", period="2025-Q3", status="rejected")
    store.add_problems(other, [problem])
    assert sorted(store.open_problems()["submission_id"]) == [bad, other]

    _submission(store, "good.xlsx", department="工信局", period="2025-09", status="accepted")
    assert store.open_problems()["submission_id"].tolist() == [other]
    # A rejection after the accepted file is open again.
    again = _submission(store, "again.xlsx", department="工信局", period="2025-Q3",
                        status="rejected")
    store.add_problems(again, [problem])
    assert sorted(store.open_problems()["submission_id"]) == [other, again]
    with pytest.raises(StoreError):
        store.add_problems(again, [{"message": "x", "severity": "fatal"}])


# ---------------------------------------------------------------- catalogue, settings, audit

def test_catalogue_versions_deduplicate_the_latest(store: Store) -> None:
    assert store.latest_catalogue_version() is None
    v1 = store.save_catalogue_version("id,name\nK1,a\n", actor="a")
    assert store.save_catalogue_version("id,name\nK1,a\n", actor="a") == v1
    v2 = store.save_catalogue_version("id,name\nK1,b\n", note="rename", actor="a")
    assert v2 != v1 and store.latest_catalogue_version() == (v2, "id,name\nK1,b\n")
    v3 = store.save_catalogue_version("id,name\nK1,a\n", actor="a")  # a revert is a new version
    assert v3 not in (v1, v2)


def test_settings_and_secret(target: Target) -> None:
    with target.open() as store:
        assert store.get_setting("due.2025-Q3") is None
        assert store.get_setting("due.2025-Q3", "2025-10-10") == "2025-10-10"
        store.set_setting("due.2025-Q3", "2025-10-15", actor="a")
        assert store.get_setting("due.2025-Q3") == "2025-10-15"
        secret = store.secret()
        assert len(secret) == 32 and store.secret() == secret
    with target.open() as store:
        assert store.secret() == secret
        log = store.audit_log()
        assert secret.hex() not in " ".join(log["message"])
        assert "secret_created" in set(log["action"])


def test_audit_log_and_default_actor(store: Store) -> None:
    store.audit("report_exported", {"message": "导出 / exported", "file": "r.xlsx"}, actor="zhang")
    entry = store.audit_log().iloc[-1]
    assert (entry["actor"], entry["action"], entry["message"]) == (
        "zhang", "report_exported", "导出 / exported")
    assert entry["detail"]["file"] == "r.xlsx"
    assert entry["at"].endswith("Z") and len(entry["at"]) == 20
    assert isinstance(default_actor(), str) and default_actor()


def test_audit_returns_the_data_version_it_committed(target: Target) -> None:
    with target.open() as store:
        before = store.data_version()
        version = store.audit("workbook_consolidated", {"message": "x"}, actor="a")
        assert version == before + 1 == store.data_version()


def test_accepted_submission_ids_match_the_frame_query(store: Store) -> None:
    first = _submission(store, "a.xlsx", department="工信局", period="2025-Q3", status="accepted")
    _submission(store, "b.xlsx", department="工信局", period="2025-09", status="rejected")
    second = _submission(store, "c.xlsx", department="工信局", period="2025年9月", status="accepted")
    _submission(store, "d.xlsx", department="商务局", period="2025-09", status="accepted")
    _submission(store, "e.xlsx", department="工信局", period="2025-08", status="accepted")
    nameless = _submission(store, "f.xlsx", department=None, period=None, status="accepted")

    assert store.accepted_submission_ids("工信局", "2025-09") == [first, second]
    assert store.accepted_submission_ids("工信局", "2025-Q3") == [first, second]  # same point
    frame = store.submissions(department="工信局", period="2025-09")
    assert frame.loc[frame["status"] == "accepted", "submission_id"].tolist() == [first, second]
    assert store.accepted_submission_ids("科技局", "2025-09") == []
    assert store.accepted_submission_ids(None, None) == [nameless]
    with pytest.raises(StoreError):
        store.accepted_submission_ids("工信局", "下个月")


def test_opening_and_reading_the_store_does_not_import_pandas(tmp_path: Path) -> None:
    # A consolidation with nothing new must stay under a second: pandas alone takes 0.3 s.
    code = textwrap.dedent(f"""
        import sys
        from plan_tracker.store import Store
        with Store.open({str(tmp_path / DB_FILE_NAME)!r}) as store:
            store.data_version()
            store.get_setting("x")
            store.audit("a", {{"message": "m"}}, actor="t")
        assert "pandas" not in sys.modules, "pandas imported"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
