"""Store.exclusive: one consolidation at a time across processes, on SQLite (an OS file lock)
and PostgreSQL (an advisory lock). Real child processes hold the lock; the parent is the
second coordinator."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from plan_tracker.store import Store, StoreBusy, StoreError, default_actor
from test_store import BACKENDS, PG_MISSING, PG_URL, Target, make_target, start_child, wait_for_file

_HOLDER = """
    import sys, time
    from pathlib import Path
    from plan_tracker.store import Store

    location, name, ready, releasing = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    hold = float(sys.argv[5])
    with Store.open(location) as store:
        with store.exclusive(name) as holder:
            ready.write_text(str(holder["pid"]))
            time.sleep(hold)
            # Written while still holding: whoever gets the lock next must find this file.
            releasing.write_text("releasing")
"""


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path: Path) -> Iterator[Target]:
    if request.param == "postgres" and not PG_URL:
        pytest.skip(PG_MISSING)
    with make_target(request.param, tmp_path) as made:
        yield made


def _hold_in_child(target: Target, tmp_path: Path, name: str, hold: float):
    ready, releasing = tmp_path / f"{name}.ready", tmp_path / f"{name}.releasing"
    child = start_child(_HOLDER, target.location, name, ready, releasing, hold)
    wait_for_file(ready, child, f"holding the {name} lock")
    return child, releasing


def test_the_second_gets_store_busy_naming_the_holder_and_a_killed_holder_frees_it(
    target: Target, tmp_path: Path
) -> None:
    Store.open(target.location).close()  # migrate before the child, so it starts at once
    child, _ = _hold_in_child(target, tmp_path, "consolidate", hold=120)
    try:
        with target.open() as store:
            with pytest.raises(StoreBusy) as raised:
                with store.exclusive("consolidate"):
                    pytest.fail("got a lock that another process holds")
            busy = raised.value
            assert isinstance(busy, StoreError)  # the CLI's error handling covers it
            assert busy.holder["pid"] == child.pid
            assert busy.holder["user"] == default_actor()
            assert busy.holder["host"] == socket.gethostname()
            assert busy.holder["started_at"].endswith("Z")
            message = str(busy)
            assert message.startswith("“consolidate” 正由 ")
            assert f"进程 {child.pid}" in message and f"pid {child.pid}" in message
            assert "is already running" in message and "try again" in message

            with pytest.raises(StoreBusy, match=r"已等待 0\.\d 秒.*waited 0\.\d s"):
                with store.exclusive("consolidate", wait=0.4):
                    pass
            # Another name is another lock, and the lock does not block the store itself.
            with store.exclusive("templates") as mine:
                assert mine["pid"] == os.getpid()
            store.record_observations([{"indicator_id": "K1", "period": "2025", "value": 1}],
                                      submission_id=None, actor="second")

            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
            # The OS (SQLite) or the server (PostgreSQL) released it with the process.
            with store.exclusive("consolidate", wait=10) as mine:
                assert mine["pid"] == os.getpid()
            assert store.current_observations()["value"].tolist() == [1.0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def test_the_second_waits_and_runs_after_the_first_finishes(
    target: Target, tmp_path: Path
) -> None:
    Store.open(target.location).close()
    child, releasing = _hold_in_child(target, tmp_path, "consolidate", hold=1.5)
    try:
        with target.open() as store:
            with pytest.raises(StoreBusy):  # really held when we start waiting
                with store.exclusive("consolidate"):
                    pass
            with store.exclusive("consolidate", wait=60):
                assert releasing.exists(), "got the lock while the first still held it"
        assert child.wait(timeout=30) == 0, child.stderr.read().decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def test_two_stores_in_one_process_exclude_each_other_and_release_on_exit(
    target: Target,
) -> None:
    with target.open() as first, target.open() as second:
        with first.exclusive("consolidate") as holder:
            with pytest.raises(StoreBusy) as raised:
                with second.exclusive("consolidate"):
                    pass
            assert raised.value.holder == holder
            if target.kind == "sqlite":
                lock_file = Path(f"{target.location}.consolidate.lock")
                assert json.loads(lock_file.read_text(encoding="utf-8")) == holder
            else:
                [(recorded,)] = first._rows(
                    "SELECT holder FROM store_locks WHERE name = ?", ("consolidate",))
                assert json.loads(recorded) == holder
        with second.exclusive("consolidate") as holder:
            assert holder["pid"] == os.getpid()
        if target.kind == "sqlite":  # no stale holder text once released
            assert Path(f"{target.location}.consolidate.lock").read_text() == ""
        # An exception inside the block releases the lock too.
        with pytest.raises(RuntimeError):
            with first.exclusive("consolidate"):
                raise RuntimeError("consolidation failed")
        with second.exclusive("consolidate"):
            pass


@pytest.mark.parametrize("name", ["", "../x", "a b", "汇总", "x" * 80, None])
def test_lock_names_are_checked(tmp_path: Path, name) -> None:
    with make_target("sqlite", tmp_path) as made, made.open() as store:
        with pytest.raises(StoreError, match="invalid lock name"):
            with store.exclusive(name):
                pass
