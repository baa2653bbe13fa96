"""The store on PostgreSQL, and what only several processes can show on either backend.

Every behavioural test of tests/test_store.py and tests/test_store_lock.py already runs on
PostgreSQL too (their fixtures are parametrised over both backends). This file adds:
concurrent writers and concurrent first opens from real processes (both backends), the
write lock's busy timeout (both), and what is PostgreSQL's own: the dialect translation, column
types, exact floats, byte-wise ordering, ``PLAN_TRACKER_DB`` through the project, error
messages, and schemas as independent projects. Needs ``PLAN_TRACKER_TEST_PG`` (see
scripts/start-postgres.sh); without it the PostgreSQL cases skip with the reason shown.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from plan_tracker import store as store_module
from plan_tracker.project import init_project
from plan_tracker.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreBusy,
    StoreError,
    _pg_ddl,
    _pg_placeholders,
    open_store,
    redact_url,
)
from test_store import (
    BACKENDS,
    PG_MISSING,
    PG_URL,
    Target,
    make_target,
    start_child,
    wait_for_file,
    with_search_path,
)


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path: Path) -> Iterator[Target]:
    if request.param == "postgres" and not PG_URL:
        pytest.skip(PG_MISSING)
    with make_target(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def pg_target(tmp_path: Path) -> Iterator[Target]:
    with make_target("postgres", tmp_path) as made:
        yield made


def _finish(children: list[subprocess.Popen], timeout: float = 120) -> None:
    try:
        for child in children:
            code = child.wait(timeout=timeout)
            assert code == 0, f"child failed ({code}): {child.stderr.read().decode()}"
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stderr.close()


# ---------------------------------------------------------------- several processes

_WRITER = """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    location, who, ready, go, rounds, width = sys.argv[1:7]
    rounds, width = int(rounds), int(width)
    store = Store.open(location)
    Path(ready).write_text("ready")
    while not Path(go).exists():
        time.sleep(0.005)
    base = 1000 if who == "a" else 2000
    for r in range(rounds):
        # One submission and its whole batch per transaction, as an import does. The two
        # writers name the same points differently (Q3 / 09) on purpose.
        with store.transaction():
            sid = store.add_submission(
                file_name=f"{who}-{r}.xlsx", sha256=f"{who}-{r}", department=who,
                period="2025-Q3", kind="import", status="accepted", actor=who)
            store.record_observations(
                [{"indicator_id": f"K{i}", "period": "2025-Q3" if who == "a" else "2025-09",
                  "value": base + r, "note": f"{who}{r}"} for i in range(width)],
                submission_id=sid, actor=who)
        time.sleep(0.01)  # a coordinator's pause between files; lets the other one in
    store.close()
"""


def test_two_writer_processes_both_land_and_never_corrupt(target: Target, tmp_path: Path) -> None:
    rounds, width = 20, 40
    with target.open() as store:
        version = store.data_version()
    go = tmp_path / "go"
    children = []
    for who in ("a", "b"):
        ready = tmp_path / f"{who}.ready"
        children.append(start_child(_WRITER, target.location, who, ready, go, rounds, width))
    for who, child in zip("ab", children, strict=True):
        wait_for_file(tmp_path / f"{who}.ready", child, "ready to write")
    go.touch()
    _finish(children)

    with target.open() as store:
        submissions = store.submissions()
        assert len(submissions) == 2 * rounds
        order = submissions["department"].tolist()
        assert sum(x != y for x, y in zip(order, order[1:], strict=False)) >= 1, (
            "the writers never interleaved; the test proved nothing")
        history = store.observation_history()
        assert len(history) == 2 * rounds * width  # every batch landed, nothing lost
        current = store.current_observations()
        assert len(current) == width and not current.duplicated(["indicator_id", "point"]).any()
        # Whole transactions, one after the other: the current values all come from the
        # batch committed last, never a mix of two batches.
        last = int(submissions["submission_id"].iloc[-1])
        assert set(current["submission_id"]) == {last}
        assert set(current["note"]) == {f"{order[-1]}{rounds - 1}"}
        # Each point's history is one unbroken chain in commit order.
        for _, rows in history.groupby("indicator_id"):
            rows = rows.sort_values("observation_id")
            assert rows["is_current"].tolist() == [False] * (2 * rounds - 1) + [True]
            assert (rows["superseded_by"].iloc[:-1].tolist()
                    == rows["observation_id"].iloc[1:].tolist())
            assert rows["submission_id"].tolist() == submissions["submission_id"].tolist()
        assert store.data_version() == version + 2 * rounds  # one bump per commit
        audit = store.audit_log()
        assert (audit["action"] == "observation_superseded").sum() == (2 * rounds - 1) * width


_OPENER = """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    location, ready, go = sys.argv[1:4]
    Path(ready).write_text("ready")
    while not Path(go).exists():
        time.sleep(0.002)
    with Store.open(location) as store:
        store.secret()
"""


def test_processes_opening_a_new_store_at_once_migrate_it_once(
    target: Target, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    children = [start_child(_OPENER, target.location, tmp_path / f"{n}.ready", go)
                for n in range(3)]
    for n, child in enumerate(children):
        wait_for_file(tmp_path / f"{n}.ready", child, "ready to open")
    go.touch()
    _finish(children)
    with target.open() as store:
        actions = store.audit_log()["action"].tolist()
        assert actions.count("schema_migrated") == SCHEMA_VERSION
        assert actions.count("secret_created") == 1  # one key, whoever came first
        assert store.schema_version == SCHEMA_VERSION


_TRANSACTION_HOLDER = """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    location, ready = sys.argv[1:3]
    store = Store.open(location)
    with store.transaction():
        store.audit("holding", {"message": "holding the write lock"}, actor="child")
        Path(ready).write_text("ready")
        time.sleep(120)
"""


def test_a_writer_waits_for_the_write_lock_then_says_busy(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store.open(target.location).close()
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
    ready = tmp_path / "ready"
    child = start_child(_TRANSACTION_HOLDER, target.location, ready)
    try:
        wait_for_file(ready, child, "holding a write transaction")
        with target.open() as store:
            with pytest.raises(StoreError, match="数据库正被占用.*database is busy"):
                store.record_observations([{"indicator_id": "K1", "period": "2025", "value": 1}],
                                          submission_id=None, actor="second")
            # Reads are not blocked by a writer.
            assert store.current_observations().empty
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            store.record_observations([{"indicator_id": "K1", "period": "2025", "value": 1}],
                                      submission_id=None, actor="second")
            assert "holding" not in set(store.audit_log()["action"])  # rolled back with it
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


# ---------------------------------------------------------------- PostgreSQL's own

def test_the_migrations_translate_to_postgresql_in_one_place() -> None:
    translated = [_pg_ddl(statement) for migration in MIGRATIONS for statement in migration]
    joined = "\n".join(translated)
    assert "INTEGER PRIMARY KEY" not in joined and " REAL" not in joined
    assert joined.count("GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY") == 6
    assert "value DOUBLE PRECISION" in joined
    assert "submission_id BIGINT NOT NULL REFERENCES submissions (id)" in joined
    assert "kind TEXT COLLATE \"C\" NOT NULL CHECK (kind IN ('template', 'import'))" in joined
    # String literals are never rewritten.
    assert _pg_ddl("INSERT INTO t VALUES ('INTEGER PRIMARY KEY', 'REAL TEXT')") == (
        "INSERT INTO t VALUES ('INTEGER PRIMARY KEY', 'REAL TEXT')")
    assert _pg_placeholders("SELECT '?', ? FROM t WHERE a LIKE 'x%' AND b = ?") == (
        "SELECT '?', %s FROM t WHERE a LIKE 'x%%' AND b = %s")
    assert redact_url("postgresql://plan:s3cret@db:5432/pt") == "postgresql://plan:***@db:5432/pt"
    assert redact_url("postgresql://db/pt") == "postgresql://db/pt"


def test_postgresql_columns_exact_floats_and_byte_order(pg_target: Target) -> None:
    with pg_target.open() as store:
        assert store.backend == "postgresql" and store.path is None
        types = dict(store._rows(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'observations'"))
        assert types["value"] == "double precision" and types["id"] == "bigint"
        assert store._rows(
            "SELECT is_identity FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = 'observations' AND column_name = 'id'"
        ) == [("YES",)]
        values = [0.1 + 0.2, 1e-300, 123456789.12345679, -2.5e15, 7.0]
        ids = ["b", "B", "a", "Z", "_x"]
        store.record_observations(
            [{"indicator_id": i, "period": "2025", "value": v} for i, v in zip(ids, values,
                                                                            strict=True)],
            submission_id=None, actor="a",
        )
        current = store.current_observations()
        assert current["indicator_id"].tolist() == sorted(ids)  # byte order, as in SQLite
        assert dict(zip(current["indicator_id"], current["value"], strict=True)) == dict(
            zip(ids, values, strict=True))
        # The database itself refuses a second current value for a point.
        with pytest.raises(Exception, match="observations_current"):
            with store.transaction():
                store._execute(
                    "INSERT INTO observations (indicator_id, period, point, value, recorded_at,"
                    " recorded_by) VALUES ('a', '2025', '2025', 1, 'now', 'x')")
        assert len(store.observation_history()) == len(ids)


def test_plan_tracker_db_selects_postgresql_for_a_project(
    pg_target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = init_project(tmp_path / "project")
    monkeypatch.setenv("PLAN_TRACKER_DB", pg_target.location)
    with project.open_store() as store:
        assert store.backend == "postgresql"
        store.record_observations([{"indicator_id": "K1", "period": "2025-Q3", "value": 3}],
                                  submission_id=None, actor="a")
    with Store.open(pg_target.location) as direct:
        assert direct.current_observations()["value"].tolist() == [3.0]
    with Store.open(project.store_path) as sqlite:  # the project's file was not used
        assert sqlite.current_observations().empty
    with pytest.raises(StoreError, match="not supported.*postgresql://USER"):
        open_store(project.store_path, env={"PLAN_TRACKER_DB": "mysql://db/plan"})
    with open_store(project.store_path, env={"PLAN_TRACKER_DB": f"sqlite:///{tmp_path}/x.db"}) \
            as other:
        assert other.backend == "sqlite" and other.path == tmp_path / "x.db"


def test_connection_problems_are_clear_and_hide_the_password(pg_target: Target) -> None:
    wrong = PG_URL.replace("://plan:plan@", "://plan:WrongPass123@", 1)
    if wrong == PG_URL:
        pytest.skip("PLAN_TRACKER_TEST_PG is not the plan:plan URL of start-postgres.sh")
    with pytest.raises(StoreError) as raised:
        Store.open(with_search_path(wrong, pg_target.schema))
    message = str(raised.value)
    assert "无法连接 PostgreSQL" in message and "cannot connect to PostgreSQL" in message
    assert "password authentication failed" in message
    assert "WrongPass123" not in message and "plan:***@" in message

    with pytest.raises(StoreError, match="no schema to create tables in"):
        Store.open(with_search_path(PG_URL, "pt_no_such_schema"))


def test_two_schemas_are_two_independent_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (make_target("postgres", tmp_path / "a") as a, make_target("postgres", tmp_path / "b")
          as b, a.open() as first, b.open() as second):
        version = second.data_version()
        first.record_observations([{"indicator_id": "K1", "period": "2025", "value": 1}],
                                  submission_id=None, actor="a")
        assert second.current_observations().empty and second.data_version() == version
        # Neither the named locks nor the write lock are shared between schemas.
        with first.exclusive("consolidate"), second.exclusive("consolidate"):
            pass
        monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)
        with first.transaction():
            first.audit("holding", {"message": "x"}, actor="a")
            second.audit("other", {"message": "y"}, actor="b")  # would time out if shared
        with first.exclusive("consolidate"):
            third = a.open()
            try:
                with pytest.raises(StoreBusy):
                    with third.exclusive("consolidate"):
                        pass
            finally:
                third.close()
