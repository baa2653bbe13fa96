"""Schema of the combined, normalised frame of all submissions in one intake run.

One row per indicator row read from a file (and one ``absent`` row per template indicator a
file lacks). The reader fills ``file, sheet, cell`` so that every failure maps back to a
cell; intake adds the plausibility bounds ``lo, hi`` and the reference they came from.
Every check is vectorised and named by its error code (:mod:`plan_tracker.errors`), and the
whole run is validated by ONE lazy pandera call (one call per file costs ~40× more).

Rules:

* ``unknown-indicator`` — the id is in the catalogue;
* ``computed-indicator`` — not a computed indicator (growth rules, cluster counts);
* ``not-this-department`` — the department owns the indicator;
* ``duplicate-row`` — one row per indicator in a file;
* ``missing-row`` / ``missing-value`` — every row of the template is required: a blank value
  is an error; an explicit 待核实 / — / 无 is allowed (a warning, nothing stored);
* ``out-of-range`` — ≥ 0 for every unit; percentages also ≤ 100;
* ``not-integer`` — counts (家/个/项/人) are whole numbers;
* ``bad-task-state`` — a task's state is 未启动 / 推进中 / 已完成;
* ``outlier-no-remark`` — a value outside ``[lo, hi]`` needs a 备注 (see :func:`outlier_mask`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from plan_tracker.catalogue import TASK_STATES, Catalogue
from plan_tracker.normalise import BLANK, COUNT_UNITS, INVALID, NOT_REPORTED, NUMBER, TEXT

ABSENT = "absent"
KINDS = (NUMBER, TEXT, NOT_REPORTED, BLANK, INVALID, ABSENT)
FRAME_COLUMNS = [
    "file", "sheet", "cell", "row", "department", "period", "indicator_id", "unit", "is_task",
    "kind", "value", "value_text", "note", "shown", "ref_value", "ref_label", "lo", "hi",
]


def outlier_mask(frame: pd.DataFrame) -> pd.Series:
    """Numbers outside their plausibility bounds (NaN bounds never flag)."""
    value = frame["value"]
    number = frame["kind"].eq(NUMBER)
    low = value.lt(frame["lo"]).fillna(False)
    high = value.gt(frame["hi"]).fillna(False)
    return number & (low | high)


def _has_note(frame: pd.DataFrame) -> pd.Series:
    return frame["note"].map(lambda v: isinstance(v, str) and bool(v.strip())).astype(bool)


def submission_schema(catalogue: Catalogue) -> pa.DataFrameSchema:
    known = {ind.id for ind in catalogue}
    computed = {ind.id for ind in catalogue if ind.is_computed_only}
    owned = {(ind.owner, ind.id) for ind in catalogue}
    states = set(TASK_STATES)

    def is_known(df: pd.DataFrame) -> pd.Series:
        return df["indicator_id"].isin(known)

    def not_computed(df: pd.DataFrame) -> pd.Series:
        return ~df["indicator_id"].isin(computed)

    def owned_by_department(df: pd.DataFrame) -> pd.Series:
        pairs = pd.Series(list(zip(df["department"], df["indicator_id"], strict=True)), index=df.index)
        return ~is_known(df) | df["indicator_id"].isin(computed) | pairs.isin(owned)

    def no_duplicate(df: pd.DataFrame) -> pd.Series:
        return ~df.duplicated(["file", "indicator_id"], keep="first")

    def row_present(df: pd.DataFrame) -> pd.Series:
        return df["kind"].ne(ABSENT)

    def value_present(df: pd.DataFrame) -> pd.Series:
        return df["kind"].ne(BLANK)

    def within_unit_range(df: pd.DataFrame) -> pd.Series:
        value = df["value"]
        ok = value.ge(0) & (df["unit"].ne("%") | value.le(100))
        return df["kind"].ne(NUMBER) | ok

    def whole_number(df: pd.DataFrame) -> pd.Series:
        value = df["value"].fillna(0.0)
        return df["kind"].ne(NUMBER) | ~df["unit"].isin(COUNT_UNITS) | np.isclose(value, np.round(value), rtol=0, atol=1e-9)

    def valid_state(df: pd.DataFrame) -> pd.Series:
        return ~df["is_task"] | df["kind"].ne(TEXT) | df["value_text"].isin(states)

    def plausible_or_explained(df: pd.DataFrame) -> pd.Series:
        return ~outlier_mask(df) | _has_note(df)

    def check(fn, code: str) -> pa.Check:
        return pa.Check(fn, name=code, error=code)

    return pa.DataFrameSchema(
        {
            "file": pa.Column(str),
            "sheet": pa.Column(str),
            "cell": pa.Column(object, nullable=True),
            "department": pa.Column(str),
            "period": pa.Column(str),
            "indicator_id": pa.Column(str),
            "unit": pa.Column(str),
            "is_task": pa.Column(bool),
            "kind": pa.Column(str, pa.Check.isin(KINDS)),
            "value": pa.Column(float, nullable=True),
            "value_text": pa.Column(object, nullable=True),
            "note": pa.Column(object, nullable=True),
            "lo": pa.Column(float, nullable=True),
            "hi": pa.Column(float, nullable=True),
        },
        checks=[
            check(is_known, "unknown-indicator"),
            check(not_computed, "computed-indicator"),
            check(owned_by_department, "not-this-department"),
            check(no_duplicate, "duplicate-row"),
            check(row_present, "missing-row"),
            check(value_present, "missing-value"),
            check(within_unit_range, "out-of-range"),
            check(whole_number, "not-integer"),
            check(valid_state, "bad-task-state"),
            check(plausible_or_explained, "outlier-no-remark"),
        ],
        strict=False,
        coerce=False,
    )


def validate_submissions(frame: pd.DataFrame, catalogue: Catalogue) -> pd.DataFrame:
    """Validate the whole run at once; return the failures as ``(index, code)`` rows, the
    index being the frame's row label (so the caller maps it to file, sheet and cell)."""
    if frame.empty:
        return pd.DataFrame({"index": pd.Series(dtype="int64"), "code": pd.Series(dtype=str)})
    try:
        submission_schema(catalogue).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        found = cases.loc[cases["index"].notna(), ["index", "check"]].drop_duplicates()
        structural = cases.loc[cases["index"].isna()]
        if not structural.empty:
            # A column of the wrong type is a bug of the reader, not of the department.
            raise ValueError(f"submission frame does not match its schema: {structural.to_dict('records')}") from err
        return pd.DataFrame({"index": found["index"].astype("int64").to_numpy(), "code": found["check"].astype(str).to_numpy()})
    return pd.DataFrame({"index": pd.Series(dtype="int64"), "code": pd.Series(dtype=str)})


def explained_outliers(frame: pd.DataFrame) -> pd.Series:
    """Outliers that carry a remark: accepted, reported as warnings (``outlier``)."""
    return outlier_mask(frame) & _has_note(frame)
