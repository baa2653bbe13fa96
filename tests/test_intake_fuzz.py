"""Property tests of intake on real templates: random valid fillings are accepted and stored
exactly as typed; random corruptions never crash it, every file ends accepted or rejected
with a code, and no file is lost (archive + rejected originals == files that came in)."""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from intake_helpers import make_project, row_of
from plan_tracker.intake import FEEDBACK_PREFIX, run_intake
from plan_tracker.project import Project
from plan_tracker.service import load_context
from plan_tracker.templates import SHEET_FORM, generate_templates
from test_intake import CLEAN, PERIOD

FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    project = make_project(root / "base")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    ctx = load_context(project)
    from plan_tracker.service import read_catalogue

    catalogue = read_catalogue(project)
    specs = {}
    for indicator_id in CLEAN:
        ind = catalogue.get(indicator_id)
        target = None if ind.is_task or ind.rule == "cumulative_at_least" else ctx.result(indicator_id, PERIOD).target
        specs[indicator_id] = (ind, target)
    ws = openpyxl.load_workbook(template)[SHEET_FORM]
    rows = {i: row_of(ws, i) for i in CLEAN}
    return root, project, template, specs, rows


def _copy(root: Path, project: Project) -> Project:
    dest = root / f"run-{uuid.uuid4().hex[:8]}"
    shutil.copytree(project.root, dest)
    for folder in ("inbox", "archive", "rejected"):
        shutil.rmtree(dest / folder)
        (dest / folder).mkdir()
    return Project(dest)


def _number(ind, target):
    """A plausible number for the indicator (inside the outlier band of its target)."""
    if ind.unit in ("家", "个", "项"):
        lo, hi = (1, 10_000) if target is None else (max(0, int(target * 0.2) + 1), int(target * 5))
        return st.integers(lo, hi).map(Decimal)
    if ind.unit == "%":
        lo = 0 if target is None else target * 0.2
        return st.decimals(Decimal(str(round(lo + 0.01, 2))), Decimal(100), places=2)
    lo, hi = (0, 10**6) if target is None else (target * 0.2, target * 5)
    return st.decimals(Decimal(str(round(lo + 0.01, 2))), Decimal(str(round(hi, 2))), places=3)


def _typed(number: Decimal, unit: str):
    """How a person may type the number: a number cell, plain text, grouped, full width, with unit."""
    text = format(number.normalize(), "f")
    as_float = float(text)
    forms = [st.just(as_float), st.just(text), st.just(f"{Decimal(text):,}"),
             st.just(text.translate(str.maketrans("0123456789.", "０１２３４５６７８９．"))),
             st.just(f" {text} {unit}" if unit else text)]
    return st.one_of(forms).map(lambda typed: (typed, as_float))


@st.composite
def fillings(draw, specs):
    values, expected, notes = {}, {}, {}
    for indicator_id, (ind, target) in specs.items():
        if ind.is_task:
            state = draw(st.sampled_from(["未启动", "推进中", "已完成"]))
            values[indicator_id] = expected[indicator_id] = state
        else:
            typed, number = draw(_number(ind, target).flatmap(lambda n, ind=ind: _typed(n, ind.unit)))
            values[indicator_id], expected[indicator_id] = typed, number
        if draw(st.booleans()):
            notes[indicator_id] = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip))
    return values, expected, notes


def _write(template: Path, out: Path, values: dict, notes: dict, rows: dict) -> None:
    wb = openpyxl.load_workbook(template)
    ws = wb[SHEET_FORM]
    for indicator_id, value in values.items():
        ws[f"H{rows[indicator_id]}"] = value
    for indicator_id, note in notes.items():
        cell = ws[f"I{rows[indicator_id]}"]
        cell.value = note
        cell.data_type = "s"  # typed text, even when it starts with "="
    wb.save(out)


@FUZZ
@given(data=st.data())
def test_random_valid_fillings_are_accepted_and_stored_exactly(base, data):
    root, project, template, specs, rows = base
    run = _copy(root, project)
    values, expected, notes = data.draw(fillings(specs))
    _write(template, run.inbox / "filled.xlsx", values, notes, rows)
    (outcome,) = run_intake(run, actor="fuzz").files
    assert outcome.status == "accepted", [(p.code, p.cell, p.message) for p in outcome.errors]
    with run.open_store() as store:
        stored = store.current_observations().set_index("indicator_id")
    for indicator_id, value in expected.items():
        column = "value_text" if isinstance(value, str) else "value"
        assert stored.at[indicator_id, column] == value, (indicator_id, values[indicator_id])
        assert stored.at[indicator_id, "note"] == (notes[indicator_id].strip() if indicator_id in notes else None)
    shutil.rmtree(run.root)


# --------------------------------------------------------------------------- corruption

GARBAGE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**12),
    st.sampled_from(["待核实", "—", "", "   ", "=1/0", "1,23", "８２０亿元", "820万元", "65%", "TRUE", "=A1"]),
)
# A corruption is drawn as a small recipe and applied in the test, so that hypothesis never
# has to print or shrink the bytes of a whole workbook.
RECIPES = st.one_of(
    st.tuples(st.just("cells"), st.lists(st.tuples(st.sampled_from(sorted(CLEAN)), st.sampled_from("ABEHHI"), GARBAGE), min_size=1, max_size=4),
              st.one_of(st.none(), st.integers(1, 20))),
    st.tuples(st.just("truncate"), st.floats(0, 0.999)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 0.999), st.integers(1, 255)), min_size=1, max_size=20)),
    st.tuples(st.just("member"), st.integers(0, 50)),
    st.tuples(st.just("noise"), st.binary(min_size=1, max_size=3000)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("same")),
)


def corrupt(clean: bytes, recipe: tuple, rows: dict) -> bytes:
    kind = recipe[0]
    if kind == "cells":
        wb = openpyxl.load_workbook(io.BytesIO(clean))
        ws = wb[SHEET_FORM]
        for indicator_id, column, value in recipe[1]:
            ws[f"{column}{rows[indicator_id]}"] = value
        if recipe[2] is not None:
            ws.insert_rows(recipe[2])
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    if kind == "truncate":
        return clean[: int(len(clean) * recipe[1])]
    if kind == "flip":
        data = bytearray(clean)
        for where, mask in recipe[1]:
            data[int(len(data) * where)] ^= mask
        return bytes(data)
    if kind == "member":
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(clean)) as zin, zipfile.ZipFile(out, "w") as zout:
            names = zin.namelist()
            drop = names[recipe[1] % len(names)]
            for name in names:
                if name != drop:
                    zout.writestr(name, zin.read(name))
        return out.getvalue()
    if kind == "noise":
        return recipe[1]
    if kind == "empty":
        return b""
    return clean


NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"), min_size=1, max_size=20).filter(
    lambda n: not n.startswith((".", "~$")) and n.strip() == n and n not in (".", "..")
)


@FUZZ
@given(data=st.data())
def test_corrupted_files_never_crash_and_none_is_lost(base, data, tmp_path):
    root, project, template, specs, rows = base
    run = _copy(root, project)
    clean_path = tmp_path / "clean.xlsx"
    _write(template, clean_path, CLEAN, {}, rows)
    clean = clean_path.read_bytes()
    count = data.draw(st.integers(1, 4))
    names = data.draw(st.lists(NAMES, min_size=count, max_size=count, unique_by=lambda n: n.casefold()))
    for name in names:
        (run.inbox / f"{name}.xlsx").write_bytes(corrupt(clean, data.draw(RECIPES), rows))
    report = run_intake(run, actor="fuzz")
    assert len(report.files) == count
    for outcome in report.files:
        assert outcome.status in ("accepted", "rejected", "duplicate")
        if outcome.status == "rejected":
            assert outcome.errors and all(p.code for p in outcome.errors)
            assert outcome.feedback_path is not None and outcome.feedback_path.exists()
        assert outcome.path.exists()
    originals = [p for p in run.rejected.iterdir() if not p.name.startswith(FEEDBACK_PREFIX)]
    archived = [p for p in run.archive.rglob("*") if p.is_file()]
    assert len(originals) + len(archived) == count
    assert list(run.inbox.iterdir()) == []
    shutil.rmtree(run.root)
