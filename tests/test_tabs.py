"""The tab model (plan_tracker.tabs): every figure is the engine's, every block sits where the
layout says, formats follow units. No Excel here."""

from __future__ import annotations

import csv
import math
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from plan_tracker import service
from plan_tracker.engine import STATUS_ZH, STATUSES
from plan_tracker.project import Project
from plan_tracker.tabs import (
    DASHBOARD,
    DASHBOARD_FIRST_ROW,
    FMT_COUNT,
    FMT_FRACTION,
    FMT_MONEY,
    FMT_PERCENT_POINTS,
    TOOL_TABS,
    Tab,
    TabInputs,
    build_tabs,
    build_tabs_from,
    cell_number_format,
    layout,
    status_label,
    unit_number_format,
)

TODAY = date(2025, 10, 20)
PERIOD = "2025-09"
# (2020 base, yearly growth) — some clusters ahead of the plan, some behind
PATHS = {
    "O_IND_OUTPUT": (4000.0, 0.12),
    "C1_OUTPUT": (180.0, 0.19),
    "C2_OUTPUT": (700.0, 0.17),
    "C3_OUTPUT": (950.0, 0.16),
    "C4_OUTPUT": (260.0, 0.15),
    "C5_OUTPUT": (250.0, 0.2),
    "C6_OUTPUT": (60.0, 0.6),
    "C7_OUTPUT": (100.0, 0.3),
    "C8_REVENUE": (40.0, 0.2),
    "P4_TECH_TRADE": (52.0, 0.15),
}
OWNER = "统计局"


def history_rows() -> list[dict[str, object]]:
    """A plausible history 2020–2024 and 2025 January–September (year to date)."""
    rows: list[dict[str, object]] = []
    for ind, (base, growth) in PATHS.items():
        for year in range(2020, 2025):
            rows.append({"indicator_id": ind, "period": str(year),
                         "value": round(base * (1 + growth) ** (year - 2020), 2)})
        rows.append({"indicator_id": ind, "period": PERIOD,
                     "value": round(base * (1 + growth) ** 5 * 0.72, 2)})
    for year, count in zip(range(2021, 2025), (85, 90, 70, 60), strict=True):
        rows.append({"indicator_id": "P1_KEY_PROJECTS", "period": str(year), "value": count})
    rows.append({"indicator_id": "P1_KEY_PROJECTS", "period": PERIOD, "value": 40})
    rows.append({"indicator_id": "P2_HITECH_ENT", "period": "2020", "value": 700})
    rows.append({"indicator_id": "P2_HITECH_ENT", "period": PERIOD, "value": 1390})
    rows.append({"indicator_id": "P1_TASK_CHAIN_LEADER", "period": PERIOD, "value": "推进中",
                 "note": "=HYPERLINK(\"http://x\") 链长制进展"})
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["indicator_id", "period", "value", "department", "note"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"department": OWNER, "note": "", **row})
    return path


def make_project(root: Path) -> Project:
    """A project filled through the real import path, plus one accepted and one rejected
    department file (with an injection attempt in its problem text)."""
    project = service.init(root, actor="test")
    service.import_observations(project, write_csv(root / "统计局历史.csv", history_rows()), actor="test")
    with project.open_store() as store:
        store.add_submission(
            file_name="工信局_2025-08.xlsx", sha256="a" * 64, department="工信局", period="2025-08",
            kind="template", status="accepted", received_at="2025-09-09T02:00:00Z", actor="test",
        )
        store.add_submission(
            file_name="=cmd|' /C calc'!A0.xlsx", sha256="b" * 64, department="科技局",
            period="2025-09", kind="template", status="rejected",
            received_at="2025-10-09T02:00:00Z", actor="test",
            problems=[{"file": "=cmd|' /C calc'!A0.xlsx", "sheet": "填报", "cell": "E7",
                       "code": "not-a-number", "message": "@SUM(1) 不是数字 / not a number",
                       "hint": "请填写数字 / type a number", "severity": "error"}],
        )
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("tabs") / "proj")


@pytest.fixture(scope="module")
def tabs(project: Project) -> dict[str, Tab]:
    ctx = service.load_context(project)
    with project.open_store() as store:
        return {t.name: t for t in build_tabs(ctx, store, PERIOD, today=TODAY)}


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-12)
    return a == b


def test_every_tab_is_there_in_order(tabs: dict[str, Tab]) -> None:
    assert list(tabs) == [DASHBOARD, *TOOL_TABS]
    assert tabs[DASHBOARD].origin_row == DASHBOARD_FIRST_ROW
    assert all(tabs[name].origin_row == 1 for name in TOOL_TABS)


@pytest.mark.parametrize("tab_name, group_kind", [("产业集群", "cluster"), ("提升工程", "project")])
def test_indicator_tabs_carry_the_engine_numbers(
    project: Project, tabs: dict[str, Tab], tab_name: str, group_kind: str
) -> None:
    ctx = service.load_context(project)
    expected = {r.indicator_id: r for r in ctx.evaluate(PERIOD, today=TODAY)}
    first = {r.indicator_id: r for r in ctx.evaluate("2021", today=TODAY)}
    kinds = {g.id: g.kind for g in ctx.catalogue.groups}
    wanted = [i.id for i in ctx.catalogue if kinds[i.group] == group_kind]
    records = tabs[tab_name].blocks[0].records()
    assert [r["indicator_id"] for r in records] == wanted
    checked = 0
    for rec in records:
        r = expected[rec["indicator_id"]]
        for key in ("target", "gap", "completion", "schedule", "required_pace", "outlook", "final_target"):
            assert _same(rec[key], getattr(r, key)), (rec["indicator_id"], key)
        assert _same(rec["actual"], r.actual)
        assert rec["status"] == f"{STATUS_ZH[r.status]} {r.status}"
        assert rec["period"] == r.period == PERIOD
        assert _same(rec["target_2021"], first[rec["indicator_id"]].target)
        assert _same(rec["actual_2021"], first[rec["indicator_id"]].actual)
        checked += rec["actual"] is not None
    assert checked >= (8 if group_kind == "cluster" else 3)


def test_dashboard_blocks_are_the_engine_numbers(project: Project, tabs: dict[str, Tab]) -> None:
    ctx = service.load_context(project)
    results = ctx.evaluate(PERIOD, today=TODAY)
    by_id = {r.indicator_id: r for r in results}
    dash = tabs[DASHBOARD]

    overall = dash.block("overall").records()
    overall_ids = [i for i in ctx.catalogue if i.group == "overall"]
    assert [r["name_zh"] for r in overall] == [i.name_zh for i in overall_ids]
    for rec, ind in zip(overall, overall_ids, strict=True):
        assert _same(rec["actual"], by_id[ind.id].actual) and _same(rec["target"], by_id[ind.id].target)
        assert rec["status"] == status_label(by_id[ind.id].status)

    kinds = {g.id: g.kind for g in ctx.catalogue.groups}
    counts = {rec["status"]: rec for rec in dash.block("status_counts").records()}
    for status in STATUSES:
        want = Counter(kinds[r.group] for r in results if r.status == status)
        row = counts[status_label(status)]
        assert (row["overall"], row["cluster"], row["project"]) == (want["overall"], want["cluster"], want["project"])
        assert row["total"] == sum(want.values())

    tiers = dash.block("tiers").records()
    summary = [r for r in tiers if r["status"] is not None]
    assert [r["actual"] for r in summary] == [by_id["O_CLUSTERS_1000"].actual, by_id["O_CLUSTERS_500"].actual]
    assert {r["name_zh"] for r in tiers if r["threshold"] == 1000.0} == {
        ctx.catalogue.get(c).name_zh for c in ("C2_OUTPUT", "C3_OUTPUT", "C6_OUTPUT")
    }
    # each cluster's "reached" flag adds up to the engine's count, tier by tier
    for count_id, threshold in (("O_CLUSTERS_1000", 1000.0), ("O_CLUSTERS_500", 500.0)):
        clusters = [r for r in tiers if r["threshold"] == threshold]
        assert all(r["reached"] == ("是 yes" if r["actual"] >= threshold else "否 no") for r in clusters)
        assert sum(r["reached"] == "是 yes" for r in clusters) == by_id[count_id].actual

    shares = dash.block("shares").records()
    assert _same(shares[-1]["share"], by_id["O_CLUSTER_SHARE"].actual)
    total = by_id["O_IND_OUTPUT"].actual
    assert _same(shares[0]["share"], by_id["C1_OUTPUT"].actual / total * 100)
    assert _same(sum(r["share"] for r in shares[:-1]), by_id["O_CLUSTER_SHARE"].actual)

    paths = dash.block("cluster_paths").records()
    assert len(paths) == 8 * 6
    c2 = [r for r in paths if r["cluster"] == "智能家电"]
    annual = {y: {r.indicator_id: r for r in ctx.evaluate(str(y), ["C2_OUTPUT"])} for y in range(2020, 2026)}
    assert [r["year"] for r in c2] == [str(y) for y in range(2020, 2026)]
    for rec in c2:
        r = annual[int(rec["year"])]["C2_OUTPUT"]
        assert _same(rec["actual"], r.actual) and _same(rec["target"], r.target)


def test_charts_point_at_their_own_rows(tabs: dict[str, Tab]) -> None:
    dash = tabs[DASHBOARD]
    lay = layout(dash)
    assert [c.chart.kind for c in lay.charts] == ["bar"] + ["line"] * 8
    paths = lay.block("cluster_paths")
    for i, placement in enumerate(lay.charts[1:]):
        start, stop = placement.chart.rows
        first, last = paths.data_rows(start, stop)
        names = {row[0] for row in paths.block.rows[start:stop]}
        assert len(names) == 1 and last - first == 5
        assert placement.chart.title.startswith(names.pop()), i
    # charts sit below every block and do not overlap each other
    assert min(c.row for c in lay.charts) > max(p.last_row for p in lay.blocks)
    cells = {(c.row, c.col) for c in lay.charts}
    assert len(cells) == len(lay.charts)


def test_layout_blocks_do_not_overlap(tabs: dict[str, Tab]) -> None:
    for tab in tabs.values():
        lay = layout(tab)
        assert lay.title_row == tab.origin_row
        previous = max(lay.note_rows, default=lay.title_row)
        for placement in lay.blocks:
            assert placement.title_row > previous
            assert placement.last_row - placement.first_row + 1 == max(len(placement.block.rows), 1)
            previous = placement.last_row
        assert lay.last_row >= previous


def test_reporting_tab_counts_submissions(tabs: dict[str, Tab]) -> None:
    report = tabs["部门报送"]
    detail = {(r["department"], r["period"]): r for r in report.block("detail").records()}
    assert detail[("工信局", "2025-08")]["status"] == "已报送(按时) on_time"
    assert detail[("科技局", "2025-09")]["status"] == "已退回 rejected"
    assert detail[("工信局", "2025-07")]["status"] == "未报送 missing"
    summary = {r["department"]: r for r in report.block("summary").records()}
    assert summary["工信局"]["expected"] == 9 and summary["工信局"]["on_time"] == 1
    assert math.isclose(summary["工信局"]["reporting_rate"], 1 / 9)


def test_problems_and_detail_keep_provenance(project: Project, tabs: dict[str, Tab]) -> None:
    problems = tabs["校验问题"].blocks[0].records()
    assert len(problems) == 1
    assert problems[0]["file"].startswith("=cmd") and problems[0]["cell"] == "E7"
    assert problems[0]["code"] == "not-a-number" and problems[0]["message"].startswith("@SUM")

    values = tabs["数据明细"].blocks[0].records()
    with project.open_store() as store:
        current = store.current_observations()
    assert len(values) == len(current) == len(history_rows())
    assert {r["file_name"] for r in values} == {"统计局历史.csv"}
    task = next(r for r in values if r["indicator_id"] == "P1_TASK_CHAIN_LEADER")
    assert task["value_text"] == "推进中" and task["note"].startswith("=HYPERLINK")
    assert all(r["cell"] for r in values)


def test_formats_follow_units(tabs: dict[str, Tab]) -> None:
    assert unit_number_format("亿元") == FMT_MONEY
    assert unit_number_format("%") == FMT_PERCENT_POINTS
    assert unit_number_format("家") == FMT_COUNT
    assert unit_number_format("%/年") == FMT_PERCENT_POINTS
    assert unit_number_format("家/年") == "#,##0.0"
    block = tabs["提升工程"].blocks[0]
    by_id = {row[block.index("indicator_id")]: row for row in block.rows}
    target = block.column("target")
    assert cell_number_format(block, by_id["P4_TECH_TRADE"], target) == FMT_MONEY
    assert cell_number_format(block, by_id["P2_HITECH_ENT"], target) == FMT_COUNT
    assert cell_number_format(block, by_id["P3_IND_LAND_SHARE"], target) == FMT_PERCENT_POINTS
    assert cell_number_format(block, by_id["P2_HITECH_ENT"], block.column("completion")) == FMT_FRACTION


def test_default_period_per_indicator(project: Project) -> None:
    ctx = service.load_context(project)
    with project.open_store() as store:
        inputs = TabInputs.from_store(store, ctx.catalogue.departments())
    tabs = {t.name: t for t in build_tabs_from(ctx, inputs, None, today=TODAY)}
    records = {r["indicator_id"]: r for r in tabs["产业集群"].blocks[0].records()}
    defaults = {r.indicator_id: r for r in ctx.evaluate(None, today=TODAY)}
    assert records["C1_OUTPUT"]["period"] == defaults["C1_OUTPUT"].period == PERIOD
    projects = {r["indicator_id"]: r for r in tabs["提升工程"].blocks[0].records()}
    assert projects["P4_TECH_TRADE"]["period"] == defaults["P4_TECH_TRADE"].period
    assert "latest" in tabs[DASHBOARD].title


def test_dashboard_says_when_the_data_are_synthetic(project: Project, tabs: dict[str, Tab]) -> None:
    from plan_tracker.tabs import SYNTHETIC_NOTE, is_synthetic

    assert SYNTHETIC_NOTE not in tabs[DASHBOARD].notes  # real-looking data: no note
    ctx = service.load_context(project)
    with project.open_store() as store:
        inputs = TabInputs.from_store(store, ctx.catalogue.departments())
    plain = inputs.observations
    assert not is_synthetic(plain)

    by_note = plain.copy()
    by_note.loc[by_note.index[3], "note"] = "合成示例数据 synthetic (bench)"
    by_department = plain.copy()
    by_department.loc[by_department.index[0], "department"] = "统计局（合成历史 Synthetic history）"
    for frame in (by_note, by_department):
        assert is_synthetic(frame)
        inputs.observations = frame
        dashboard = build_tabs_from(ctx, inputs, PERIOD, today=TODAY)[0]
        assert dashboard.name == DASHBOARD and SYNTHETIC_NOTE in dashboard.notes
        assert "合成示例数据" in SYNTHETIC_NOTE and "synthetic" in SYNTHETIC_NOTE
        # The note sits in the tool's region, under the title, above every block.
        lay = layout(dashboard)
        row = lay.note_rows[dashboard.notes.index(SYNTHETIC_NOTE)]
        assert DASHBOARD_FIRST_ROW < row < lay.blocks[0].title_row
    assert not is_synthetic(plain.iloc[0:0])
