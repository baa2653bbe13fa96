"""The store: schema migrations, supersede history, audit, data_version, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_tracker.store import (
    MIGRATIONS,
    OBSERVATION_COLUMNS,
    SCHEMA_VERSION,
    Store,
    StoreError,
    default_actor,
)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "plan_tracker.sqlite") as opened:
        yield opened


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

def test_migrates_an_empty_file_and_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "plan_tracker.sqlite"
    path.touch()  # a zero-byte file is a valid, empty SQLite database
    with Store.open(path) as first:
        assert first.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        first.record_observations([_obs("K1", "2025", 5)], submission_id=None, actor="a")
        tables = {r[0] for r in first._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    with Store.open(path) as second:
        assert second.schema_version == SCHEMA_VERSION
        assert {r[0] for r in second._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")} == tables
        assert second.current_observations()["value"].tolist() == [5.0]
        assert second.audit_log()["action"].tolist().count("schema_migrated") == SCHEMA_VERSION
        assert second._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_run_in_order_and_only_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.sqlite") as store:
        extra = (("CREATE TABLE later_a (x INTEGER)",),
                 ("ALTER TABLE later_a ADD COLUMN y TEXT", "INSERT INTO later_a VALUES (1, 'y')"))
        store._migrate((*MIGRATIONS, extra[0]))
        assert store.schema_version == SCHEMA_VERSION + 1
        store._migrate((*MIGRATIONS, *extra))  # would fail if the first extra ran again
        store._migrate((*MIGRATIONS, *extra))
        assert store.schema_version == SCHEMA_VERSION + 2
        assert store._conn.execute("SELECT x, y FROM later_a").fetchall() == [(1, "y")]


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.sqlite") as store:
        broken = ("CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL")
        with pytest.raises(sqlite3.OperationalError):
            store._migrate((*MIGRATIONS, broken))
        assert store.schema_version == SCHEMA_VERSION
        assert store._conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade plan-tracker"):
        Store.open(path)


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
    assert store._conn.execute(
        "SELECT value FROM observations WHERE id = ?", (int(old["observation_id"]),)
    ).fetchone()[0] == 100.0


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

def test_data_version_increases_on_writes_and_is_seen_by_another_store(tmp_path: Path) -> None:
    path = tmp_path / "plan_tracker.sqlite"
    with Store.open(path) as writer, Store.open(path) as reader:
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


_CRASH_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    db, ready, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = Store.open(db)
    # A tiny page cache makes SQLite spill the uncommitted pages into the WAL file, so the
    # kill happens with half a batch physically on disk, not only in memory.
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
)


def test_a_killed_import_leaves_exactly_the_state_before_it(tmp_path: Path) -> None:
    path = tmp_path / "plan_tracker.sqlite"
    with Store.open(path) as store:
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
    child = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, str(path), str(ready), "12000"],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            if child.poll() is not None:
                pytest.fail(f"child ended early: {child.stderr.read().decode()}")
            assert time.monotonic() < deadline, "child never reached the middle of the batch"
            time.sleep(0.02)
        wal = Path(f"{path}-wal")
        assert wal.exists() and wal.stat().st_size > 0  # half a batch really is on disk
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()

    with Store.open(path) as store:
        after = (store.current_observations(), store.observation_history(),
                 store.submissions(), store.audit_log(), store.data_version())
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for old, new in zip(before[:4], after[:4], strict=True):
            pd.testing.assert_frame_equal(old, new)
        assert after[4] == before[4]
        assert store.find_submission_by_hash("big") is None


# ---------------------------------------------------------------- property

_KEYS = st.sampled_from(["K1", "K2"])
_PERIODS = st.sampled_from(["2025-Q3", "2025-09", "2025", "2024-Q1", "2024-03", "2024"])
_VALUES = st.one_of(
    st.tuples(st.sampled_from([0.0, 1.0, 2.5, -3.0, 1e6]), st.none()),
    st.tuples(st.none(), st.sampled_from(["未启动", "推进中", "已完成"])),
    st.tuples(st.just(1.0), st.just("推进中")),
)
_BATCH = st.dictionaries(st.tuples(_KEYS, _PERIODS), _VALUES, min_size=1, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BATCH, min_size=1, max_size=6))
def test_any_sequence_of_recordings_keeps_last_value_current_and_full_history(batches) -> None:
    from plan_tracker.periods import point_of

    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "db") as store:
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


def test_settings_and_secret(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Store.open(path) as store:
        assert store.get_setting("due.2025-Q3") is None
        assert store.get_setting("due.2025-Q3", "2025-10-10") == "2025-10-10"
        store.set_setting("due.2025-Q3", "2025-10-15", actor="a")
        assert store.get_setting("due.2025-Q3") == "2025-10-15"
        secret = store.secret()
        assert len(secret) == 32 and store.secret() == secret
    with Store.open(path) as store:
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
