"""Crashes and concurrency of a consolidation, for real (issue #7): ``plan-tracker consolidate``
runs in child processes that are killed with SIGKILL at named steps and at random moments, and
several are started at once on one project.

After a kill the store passes SQLite's ``integrity_check``, holds every file's rows or none of
them, every inbox file is still in the inbox or (only once its import is committed) in
archive/ or rejected/, and the workbook is byte for byte the old one or the complete new one.
A plain rerun then finishes the job: every file accepted or rejected exactly once, and the
values, submissions and tabs are those of a run that was never interrupted.

How a child is killed at a step: the driver below runs the real CLI (``plan_tracker.cli.main``)
after routing the steps through ``plan_tracker.consolidate.crash_point`` (the production hook,
``PLAN_TRACKER_CRASH_AT``): the steps of consolidate.py call it themselves; steps inside the
intake, the store and the atomic save are reached by wrapping the function that starts them
(``validate_run``, ``record_observations``, ``write_feedback``, ``os.link``/``os.unlink`` of an
inbox file, ``os.replace`` onto the workbook). The driver also logs each step (pid, time) so
the tests can see where a child died and that two runs never held the lock at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from plan_tracker import service
from plan_tracker.consolidate import CRASH_ENV, consolidate
from plan_tracker.intake import FEEDBACK_PREFIX

pytestmark = [
    pytest.mark.slow,  # ~40 s: about 60 consolidations in child processes
    pytest.mark.skipif(os.name != "posix", reason="SIGKILL and flock are POSIX: the kill tests run on Linux/macOS"),
]

PERIOD = "2025-09"
DEPARTMENTS = ("工信局", "科技局", "商务局")
TIMEOUT = 120  # seconds, for every child process
PARALLEL = max(2, min(4, os.cpu_count() or 2))

# The steps, in the order a consolidation reaches them. Up to "intake-in-transaction" nothing is
# committed; from "intake-feedback" on, the whole intake is (one transaction).
BEFORE_COMMIT = ("locked", "intake-validated", "intake-in-transaction")
AFTER_COMMIT = ("intake-feedback", "intake-committed", "intake-linked", "intake-done", "tabs-built",
                "workbook-before-replace")
AFTER_REPLACE = ("workbook-replaced", "audited")
STEPS = BEFORE_COMMIT + AFTER_COMMIT + AFTER_REPLACE

DRIVER = r'''
import hashlib, json, os, sys, time
from pathlib import Path

EVENTS = os.environ.get("PT_TEST_EVENTS")
PAUSE_AT = os.environ.get("PT_TEST_PAUSE_AT")
ROOT = Path(os.environ["PT_TEST_PROJECT"]).resolve()
INBOX, WORKBOOK = ROOT / "inbox", ROOT / "plan_tracker.xlsm"


def log(step, **extra):
    if EVENTS:  # one write(2) per line with O_APPEND: lines of several children never mix
        line = json.dumps({"pid": os.getpid(), "step": step, "t": time.time(), **extra}) + "\n"
        fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


import plan_tracker.consolidate as cons

real_point = cons.crash_point


def point(step):
    log(step)
    if step == PAUSE_AT:
        Path(os.environ["PT_TEST_READY"]).write_text(str(os.getpid()))
        go, deadline = Path(os.environ["PT_TEST_GO"]), time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit("PT_TEST_GO never came")
            time.sleep(0.005)
    real_point(step)  # the production hook: kills us when PLAN_TRACKER_CRASH_AT names the step


cons.crash_point = point


def once(step):
    fired = []

    def fire():
        if not fired:
            fired.append(True)
            point(step)
    return fire


def in_inbox(path):
    return Path(path).resolve().parent == INBOX


import plan_tracker.feedback as feedback
import plan_tracker.intake as intake
import plan_tracker.render as render
from plan_tracker.store import Store

real_validate, real_record = intake.validate_run, Store.record_observations
real_feedback, real_render, real_exclusive = feedback.write_feedback, render.render_tabs, Store.exclusive
real_link, real_unlink, real_replace = os.link, os.unlink, os.replace
first_record, first_feedback = once("intake-in-transaction"), once("intake-feedback")
first_link, first_unlink = once("intake-committed"), once("intake-linked")


def validate_run(*args, **kwargs):
    result = real_validate(*args, **kwargs)
    point("intake-validated")
    return result


def record_observations(self, *args, **kwargs):
    result = real_record(self, *args, **kwargs)
    first_record()  # rows written, transaction still open
    return result


def write_feedback(*args, **kwargs):
    first_feedback()
    return real_feedback(*args, **kwargs)


def render_tabs(*args, **kwargs):
    log("render-start")
    result = real_render(*args, **kwargs)
    log("render-end")
    return result


def exclusive(self, name, **kwargs):
    log("lock-request", name=name)
    return real_exclusive(self, name, **kwargs)


def link(src, dst, *args, **kwargs):
    if in_inbox(src):
        first_link()
    return real_link(src, dst, *args, **kwargs)


def unlink(path, *args, **kwargs):
    if in_inbox(path):
        first_unlink()
    return real_unlink(path, *args, **kwargs)


def replace(src, dst, *args, **kwargs):
    if Path(dst).resolve() == WORKBOOK:
        log("workbook-new", sha256=hashlib.sha256(Path(src).read_bytes()).hexdigest())
        point("workbook-before-replace")
    return real_replace(src, dst, *args, **kwargs)


intake.validate_run, Store.record_observations = validate_run, record_observations
feedback.write_feedback, render.render_tabs, Store.exclusive = write_feedback, render_tabs, exclusive
os.link, os.unlink, os.replace = link, unlink, replace

from plan_tracker.cli import main

code = main(sys.argv[1:])
log("exit", code=code)
sys.exit(code)
'''


# --------------------------------------------------------------------------- children


def _env(root: Path, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, "PLAN_TRACKER_HOME")}
    env.update({"PT_TEST_PROJECT": str(root), "COLUMNS": "400"})  # rich: no wrapped messages
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def start(root: Path, *, driver: bool = True, period: str = PERIOD, wait: float | None = None,
          **env: str | None) -> subprocess.Popen:
    """``plan-tracker consolidate`` on ``root`` in a child: through the driver, or plain."""
    args = ["consolidate", "--project", str(root), "--period", period]
    if wait is not None:
        args += ["--wait", str(wait)]
    head = [sys.executable, "-c", DRIVER] if driver else [sys.executable, "-m", "plan_tracker.cli"]
    return subprocess.Popen(head + args, env=_env(root, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = child.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"consolidation did not finish within {TIMEOUT} s:\n{err[-3000:]}")
    return child.returncode, out, err


def run(root: Path, **kwargs: Any) -> tuple[int, str, str]:
    return finish(start(root, **kwargs))


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def wait_for(predicate: Any, what: str, child: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if child is not None and child.poll() is not None:
            pytest.fail(f"child ended ({child.returncode}) before {what}: {child.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


# --------------------------------------------------------------------------- what a project holds


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class State:
    """Everything a crash could have damaged, read after the child has ended."""

    inbox: dict[str, str]  # name -> content hash
    placed: dict[str, list[str]]  # content hash -> files under archive/ and rejected/
    feedback: list[str]
    integrity: str
    foreign_key_errors: int
    orphans: int  # observations without their submission
    current_not_accepted: int  # current values whose submission is not accepted
    submissions: list[dict]
    current: set[tuple]
    consolidations: int
    workbook_sha: str
    workbook_sheets: list[str] | None
    workbook_rows: dict[str, list[tuple]] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)


def snapshot(root: Path) -> State:
    inbox = {p.name: sha256(p) for p in sorted((root / "inbox").iterdir()) if p.is_file()}
    placed: dict[str, list[str]] = {}
    feedback: list[str] = []
    leftovers = [p.name for p in root.glob(".plan_tracker.*")]
    for folder in ("archive", "rejected"):
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file():
                continue
            rel = str(path.relative_to(root))
            if path.name.startswith(FEEDBACK_PREFIX):
                feedback.append(rel)
            elif path.name.startswith("."):
                leftovers.append(rel)
            else:
                placed.setdefault(sha256(path), []).append(rel)
    conn = sqlite3.connect(root / "plan_tracker.sqlite")
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        fk_errors = len(conn.execute("PRAGMA foreign_key_check").fetchall())
        orphans = conn.execute(
            "SELECT count(*) FROM observations WHERE submission_id IS NOT NULL"
            " AND submission_id NOT IN (SELECT id FROM submissions)").fetchone()[0]
        not_accepted = conn.execute(
            "SELECT count(*) FROM observations o JOIN submissions s ON s.id = o.submission_id"
            " WHERE o.superseded_at IS NULL AND s.status != 'accepted'").fetchone()[0]
        submissions = [
            {"id": r[0], "sha256": r[1], "status": r[2], "archive_path": r[3], "rows": r[4]}
            for r in conn.execute(
                "SELECT s.id, s.sha256, s.status, s.archive_path,"
                " (SELECT count(*) FROM observations o WHERE o.submission_id = s.id)"
                " FROM submissions s ORDER BY s.id")
        ]
        current = set(conn.execute(
            "SELECT indicator_id, point, value, value_text FROM observations WHERE superseded_at IS NULL"))
        consolidations = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'workbook_consolidated'").fetchone()[0]
    finally:
        conn.close()
    workbook = root / "plan_tracker.xlsm"
    sheets, rows = None, {}
    try:
        wb = openpyxl.load_workbook(workbook, keep_vba=True, read_only=True)
        sheets = wb.sheetnames
        for name in ("产业集群", "提升工程"):
            if name in sheets:
                rows[name] = list(wb[name].iter_rows(values_only=True))
        wb.close()
    except Exception as exc:  # noqa: BLE001 - a broken workbook is what the tests look for
        sheets = None
        rows = {"error": [(repr(exc),)]}
    return State(inbox, placed, feedback, integrity, fk_errors, orphans, not_accepted, submissions,
                 current, consolidations, sha256(workbook), sheets, rows, leftovers)


def _by_hash(state: State) -> dict[str, dict]:
    return {s["sha256"]: s for s in state.submissions}


def assert_consistent(state: State, base: State, ref: State, workbooks: set[str]) -> None:
    """What must hold at every moment, even right after a kill."""
    assert state.integrity == "ok"
    assert state.foreign_key_errors == 0 and state.orphans == 0 and state.current_not_accepted == 0
    hashes = Counter(s["sha256"] for s in state.submissions)
    assert max(hashes.values(), default=1) == 1, "a file recorded twice"
    expected = _by_hash(ref)
    for sub in state.submissions:
        want = expected[sub["sha256"]]
        # All the file's rows or none (then there is no submission either).
        assert (sub["status"], sub["rows"]) == (want["status"], want["rows"]), sub
    assert state.current <= ref.current | base.current, "a value that no clean run stores"
    recorded = _by_hash(state)
    for name, digest in base.inbox.items():
        places = state.placed.get(digest, [])
        assert digest in state.inbox.values() or places, f"{name} is nowhere"
        assert len(places) <= 1, f"{name} placed twice: {places}"
    for digest, places in state.placed.items():
        # Nothing is moved before its decision is committed, and it goes where the store says.
        assert digest in recorded, f"{places} moved without a committed decision"
        assert Path(recorded[digest]["archive_path"]).name == Path(places[0]).name
    assert state.workbook_sha in workbooks | {base.workbook_sha}, "the workbook is neither old nor new"
    assert state.workbook_sheets and "总览" in state.workbook_sheets, state.workbook_rows


def assert_finished(state: State, ref: State, *, same_period: bool = True) -> None:
    """What a run that was never interrupted leaves (compared with ``ref``; the tabs too when
    the last run was for the same period)."""
    assert state.inbox == {}
    assert {d: len(p) for d, p in state.placed.items()} == {d: 1 for d in ref.placed}
    assert {s["sha256"]: (s["status"], s["rows"]) for s in state.submissions} == {
        s["sha256"]: (s["status"], s["rows"]) for s in ref.submissions}
    assert state.current == ref.current
    rejected = [s["sha256"][:16] for s in state.submissions if s["status"] == "rejected"]
    for prefix in rejected:
        assert sum(Path(f).name.startswith(f"{FEEDBACK_PREFIX}{prefix}_") for f in state.feedback) == 1
    assert state.consolidations >= 1
    assert "产业集群" in state.workbook_rows
    if same_period:
        assert state.workbook_rows == ref.workbook_rows


# --------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with its workbook already consolidated once, and four files in the inbox:
    two that are accepted, a template that is rejected and something that is no workbook."""
    from intake_helpers import fill_openpyxl, template_ids
    from plan_tracker.templates import generate_templates

    root = tmp_path_factory.mktemp("reliability") / "base"
    project = service.init(root, actor="test")
    consolidate(project, period=PERIOD, actor="test")  # the "old" workbook
    catalogue = service.read_catalogue(project)
    for department in DEPARTMENTS:
        template = generate_templates(project, PERIOD, [department])[0]
        ids = template_ids(template)
        values = {i: "推进中" if catalogue.get(i).is_task else 100 + n for n, i in enumerate(ids)}
        fill_openpyxl(template, project.inbox / f"{department}_9月.xlsx", values,
                      notes={i: "已核实 checked" for i in ids})
    (project.inbox / "随便一个文件.xlsx").write_bytes(b"not a workbook")
    return root


def copy_of(base: Path, target: Path) -> Path:
    shutil.copytree(base, target)
    return target


@pytest.fixture(scope="module")
def base_state(base: Path) -> State:
    return snapshot(base)


@dataclass
class Clean:
    state: State
    seconds: float  # from taking the lock to the end
    workbook: str


@pytest.fixture(scope="module")
def reference(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Clean:
    """A consolidation that nobody interrupts."""
    root = copy_of(base, tmp_path_factory.mktemp("reference") / "proj")
    log = root.parent / "events.jsonl"
    code, _, err = run(root, PT_TEST_EVENTS=str(log))
    assert code == 0, err[-3000:]
    seen = events(log)
    locked = next(e["t"] for e in seen if e["step"] == "locked")
    state = snapshot(root)
    statuses = Counter(s["status"] for s in state.submissions)
    assert statuses == {"accepted": 2, "rejected": 2} and len(state.current) > 20, statuses
    return Clean(state, seen[-1]["t"] - locked, state.workbook_sha)


def test_the_reference_run_took_in_everything(base_state: State, reference: Clean) -> None:
    assert len(base_state.inbox) == 4 and not base_state.submissions and not base_state.current
    assert_finished(reference.state, reference.state)
    assert reference.workbook != base_state.workbook_sha


# --------------------------------------------------------------------------- kill -9 at each step


@dataclass
class Killed:
    step: str
    code: int
    err: str
    last_step: str | None
    new_workbooks: set[str]
    after_kill: State
    rerun: tuple[int, str, str]
    after_rerun: State


def _kill_and_rerun(base: Path, folder: Path, step: str) -> Killed:
    root = copy_of(base, folder / "proj")
    log = folder / "events.jsonl"
    code, _, err = run(root, PT_TEST_EVENTS=str(log), **{CRASH_ENV: step})
    seen = events(log)
    steps = [e["step"] for e in seen if e["step"] in STEPS]
    new = {e["sha256"] for e in seen if e["step"] == "workbook-new"}
    after_kill = snapshot(root)
    rerun = run(root, driver=False)
    return Killed(step, code, err, steps[-1] if steps else None, new, after_kill, rerun, snapshot(root))


@pytest.fixture(scope="module")
def killed(base: Path, reference: Clean, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Killed]:
    folder = tmp_path_factory.mktemp("killed")
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = {step: pool.submit(_kill_and_rerun, base, folder / step, step) for step in STEPS}
        return {step: future.result() for step, future in runs.items()}


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_a_step_leaves_everything_consistent(step: str, killed: dict[str, Killed], base_state: State,
                                                     reference: Clean) -> None:
    run_ = killed[step]
    assert run_.code == -signal.SIGKILL, f"not killed at {step}: exit {run_.code}\n{run_.err[-3000:]}"
    assert run_.last_step == step
    state = run_.after_kill
    assert_consistent(state, base_state, reference.state, run_.new_workbooks)
    committed = step not in BEFORE_COMMIT
    assert bool(state.submissions) == committed  # the intake is one transaction
    assert state.current == (reference.state.current if committed else base_state.current)
    if step in BEFORE_COMMIT + ("intake-feedback", "intake-committed"):
        assert state.inbox == base_state.inbox and not state.placed  # nothing moved yet
    if step == "intake-linked":  # linked into place, not yet unlinked from the inbox
        assert state.inbox == base_state.inbox and len(state.placed) == len(base_state.inbox)
    if step in AFTER_REPLACE:
        assert state.workbook_sha in run_.new_workbooks
        assert state.workbook_rows == reference.state.workbook_rows
    else:
        assert state.workbook_sha == base_state.workbook_sha
    assert state.consolidations == base_state.consolidations + (step == "audited")


@pytest.mark.parametrize("step", STEPS)
def test_a_rerun_after_a_kill_finishes_the_job(step: str, killed: dict[str, Killed], base_state: State,
                                               reference: Clean) -> None:
    code, out, err = killed[step].rerun
    assert code == 0, err[-3000:]
    state = killed[step].after_rerun
    assert_consistent(state, base_state, reference.state, {state.workbook_sha})
    assert_finished(state, reference.state)
    assert "已汇总到" in out  # rewritten, not skipped as unchanged


# --------------------------------------------------------------------------- kill -9 at random moments

ROUNDS = 8
SEED = 20250917


@pytest.fixture(scope="module")
def killed_at_random(base: Path, reference: Clean, tmp_path_factory: pytest.TempPathFactory) -> list[Killed]:
    """Killed by the parent a random time after taking the lock (fixed seed, spread over a
    clean run's duration), not at a step the code announces."""
    folder = tmp_path_factory.mktemp("random")
    delays = [random.Random(SEED + n).uniform(0, reference.seconds * 1.1) for n in range(ROUNDS)]

    def one(n: int) -> Killed:
        root = copy_of(base, folder / str(n) / "proj")
        log = folder / str(n) / "events.jsonl"
        child = start(root, PT_TEST_EVENTS=str(log))
        wait_for(lambda: any(e["step"] == "locked" for e in events(log)), "the lock", child)
        time.sleep(delays[n])
        child.send_signal(signal.SIGKILL)
        code, _, err = finish(child)
        seen = events(log)
        steps = [e["step"] for e in seen if e["step"] in STEPS]
        new = {e["sha256"] for e in seen if e["step"] == "workbook-new"}
        after = snapshot(root)
        rerun = run(root, driver=False)
        return Killed(f"random-{n}", code, err, steps[-1] if steps else None, new, after, rerun, snapshot(root))

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(ROUNDS)))


def test_kills_at_random_moments_leave_everything_consistent_and_a_rerun_finishes(
    killed_at_random: list[Killed], base_state: State, reference: Clean
) -> None:
    for run_ in killed_at_random:
        assert run_.code in (-signal.SIGKILL, 0), run_.err[-3000:]
        assert_consistent(run_.after_kill, base_state, reference.state, run_.new_workbooks)
        code, _, err = run_.rerun
        assert code == 0, err[-3000:]
        assert_consistent(run_.after_rerun, base_state, reference.state, {run_.after_rerun.workbook_sha})
        assert_finished(run_.after_rerun, reference.state)
    # Where they died, for the record (a rerun of the test kills at the same moments).
    print("killed after:", Counter(r.last_step if r.code else "finished" for r in killed_at_random))


# --------------------------------------------------------------------------- two at once


def test_a_second_consolidation_is_refused_naming_the_holder_or_waits_for_it(
    base: Path, base_state: State, reference: Clean, tmp_path: Path
) -> None:
    root = copy_of(base, tmp_path / "proj")
    log, ready, go = tmp_path / "events.jsonl", tmp_path / "ready", tmp_path / "go"
    first = start(root, PT_TEST_EVENTS=str(log), PT_TEST_PAUSE_AT="locked", PT_TEST_READY=str(ready),
                  PT_TEST_GO=str(go))
    try:
        wait_for(ready.exists, "the first run to hold the lock", first)
        # An interactive coordinator (the plain CLI, no --wait): told who, at once, exit 2.
        code, out, err = run(root, driver=False)
        message = " ".join(err.split())
        assert code == 2, out + err
        assert "另一次汇总正在进行" in message and "another consolidation is running" in message
        assert f"进程 {first.pid}" in message and socket.gethostname() in message
        assert snapshot(root).inbox == base_state.inbox  # it touched nothing
        # A scheduled job (--wait): waits for the lock, then runs.
        second = start(root, period="2025-08", wait=60, PT_TEST_EVENTS=str(log))
        wait_for(lambda: any(e["pid"] == second.pid and e["step"] == "lock-request" for e in events(log)),
                 "the second run to ask for the lock", second)
        time.sleep(0.3)
        assert second.poll() is None and not [e for e in events(log) if e["pid"] == second.pid and e["step"] == "locked"]
    finally:
        go.touch()
    first_code, _, first_err = finish(first)
    second_code, second_out, second_err = finish(second)
    assert first_code == 0, first_err[-3000:]
    assert second_code == 0, second_err[-3000:]
    seen = events(log)
    first_done = max(e["t"] for e in seen if e["pid"] == first.pid and e["step"] == "render-end")
    second_locked = min(e["t"] for e in seen if e["pid"] == second.pid and e["step"] == "locked")
    assert second_locked > first_done
    assert "2025-08" in second_out
    state = snapshot(root)
    assert_consistent(state, base_state, reference.state, {state.workbook_sha})
    assert_finished(state, reference.state, same_period=False)
    assert state.consolidations == base_state.consolidations + 2


def test_consolidations_started_together_run_one_at_a_time(
    base: Path, base_state: State, reference: Clean, tmp_path: Path
) -> None:
    root = copy_of(base, tmp_path / "proj")
    log = tmp_path / "events.jsonl"
    periods = ["2025-09", "2025-08", "2025-Q3"]  # each must render: no "nothing changed" shortcut
    children = [start(root, period=p, wait=TIMEOUT, PT_TEST_EVENTS=str(log)) for p in periods]
    results = [finish(child) for child in children]
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-2000:] for _, _, err in results]
    seen = events(log)
    spans = sorted(
        (min(e["t"] for e in seen if e["pid"] == c.pid and e["step"] == "locked"),
         max(e["t"] for e in seen if e["pid"] == c.pid and e["step"] == "render-end"))
        for c in children
    )
    for (_, earlier_end), (later_start, _) in zip(spans, spans[1:], strict=False):
        assert later_start > earlier_end, spans  # never two renders (or intakes) at once
    state = snapshot(root)
    assert_consistent(state, base_state, reference.state, {state.workbook_sha})
    assert_finished(state, reference.state, same_period=False)
    assert state.consolidations == base_state.consolidations + 3


def test_two_plain_consolidations_at_once_without_waiting(
    base: Path, base_state: State, reference: Clean, tmp_path: Path
) -> None:
    """Whoever loses the race is told so (exit 2), or ran after the other had finished; either
    way the files are taken in once."""
    root = copy_of(base, tmp_path / "proj")
    children = [start(root, driver=False) for _ in range(2)]
    results = [finish(child) for child in children]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), [err[-2000:] for _, _, err in results]
    for code, _, err in results:
        if code == 2:
            assert "另一次汇总正在进行" in " ".join(err.split())
    state = snapshot(root)
    assert_consistent(state, base_state, reference.state, {state.workbook_sha})
    assert_finished(state, reference.state)
