"""The catalogue holds every target number of the plan, in the plan's own words."""

import csv
import io
import re
from pathlib import Path

import pytest
from plan_tracker.catalogue import EXPORT_COLUMNS, catalogue_from_text, load_catalogue
from plan_tracker.schemas.catalogue import CATALOGUE_CSV, CatalogueError

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "000_6dede4d4dfdda513.txt"


def _squash(text: str) -> str:
    return re.sub(r"\s", "", text)


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def seed_text():
    if not SEED.exists():
        pytest.skip(f"plan text not found at {SEED}")
    return _squash(SEED.read_text(encoding="utf-8"))


# (indicator, year, value, unit, rule): every target point of the plan, read off the seed.
PLAN_POINTS = [
    ("O_IND_OUTPUT_GROWTH", 2025, 10, "%", "growth_at_least"),
    ("O_HITECH_SHARE", 2025, 65, "%", "at_least"),
    ("P4_TECH_TRADE", 2021, 65, "亿元", "at_least"),
    ("P4_TECH_TRADE", 2025, 100, "亿元", "at_least"),
    ("O_DIGITAL_SHARE", 2025, 10, "%", "about"),
    ("O_CLUSTERS_1000", 2025, 3, "个", "at_least"),
    ("O_CLUSTERS_500", 2025, 3, "个", "at_least"),
    ("O_CLUSTER_SHARE", 2025, 85, "%", "at_least"),
    ("C8_REVENUE", 2021, 50, "亿元", "at_least"),
    ("C8_REVENUE", 2025, 100, "亿元", "at_least"),
    ("C6_OUTPUT", 2021, 100, "亿元", "at_least"),
    ("C6_OUTPUT", 2025, 1000, "亿元", "at_least"),
    ("C7_OUTPUT", 2021, 120, "亿元", "at_least"),
    ("C7_OUTPUT", 2025, 400, "亿元", "at_least"),
    ("C1_OUTPUT", 2021, 200, "亿元", "at_least"),
    ("C1_OUTPUT", 2025, 500, "亿元", "at_least"),
    ("C2_OUTPUT", 2021, 820, "亿元", "at_least"),
    ("C2_OUTPUT", 2025, 1500, "亿元", "at_least"),
    ("C5_OUTPUT", 2021, 300, "亿元", "at_least"),
    ("C5_OUTPUT", 2025, 600, "亿元", "at_least"),
    ("C3_OUTPUT", 2021, 1100, "亿元", "at_least"),
    ("C3_OUTPUT", 2025, 2000, "亿元", "at_least"),
    ("C4_OUTPUT", 2021, 300, "亿元", "at_least"),
    ("C4_OUTPUT", 2025, 500, "亿元", "at_least"),
    ("P1_KEY_PROJECTS", 2021, 80, "个", "cumulative_at_least"),
    ("P1_KEY_PROJECTS", 2025, 400, "个", "cumulative_at_least"),
    ("P3_IND_LAND_SHARE", 2021, 30, "%", "each_year_at_least"),
    ("P3_IND_LAND_SHARE", 2025, 30, "%", "each_year_at_least"),
    ("P4_NEW_PLATFORMS", 2021, 10, "家", "cumulative_at_least"),
    ("P4_NEW_PLATFORMS", 2025, 50, "家", "cumulative_at_least"),
    ("P4_RD_INST_SHARE", 2021, 60, "%", "at_least"),
    ("P4_RD_INST_SHARE", 2025, 80, "%", "at_least"),
    ("P4_CORE_TECH", 2021, 20, "项", "cumulative_at_least"),
    ("P4_CORE_TECH", 2025, 100, "项", "cumulative_at_least"),
    ("P4_RD_GROWTH", 2025, 10, "%", "growth_at_least"),
    ("P5_5G_STATIONS", 2021, 5000, "个", "at_least"),
    ("P5_DC_RACKS", 2025, 10000, "个", "at_least"),
    ("P5_DIGITAL_RETROFIT", 2021, 30, "家", "at_least"),
    ("P5_APP_SCENARIOS", 2021, 200, "个", "at_least"),
    ("P5_IIOT_PROJECTS", 2025, 150, "个", "at_least"),
    ("P5_IIOT_PARKS", 2025, 2, "个", "at_least"),
    ("P5_TECH_REFORM_PROJECTS", 2021, 200, "个", "each_year_at_least"),
    ("P5_TECH_REFORM_PROJECTS", 2025, 200, "个", "each_year_at_least"),
    ("P5_BIG_TECH_REFORM", 2021, 38, "个", "at_least"),
    ("P5_TECH_REFORM_INVEST", 2021, 180, "亿元", "at_least"),
    ("P5_TECH_REFORM_INVEST", 2025, 300, "亿元", "at_least"),
    ("P5_TECH_REFORM_YOY", 2021, 20, "%", "yoy_at_least"),
    ("P2_ENT_50B", 2025, 1, "家", "at_least"),
    ("P2_ENT_30B", 2025, 2, "家", "at_least"),
    ("P2_ENT_10B", 2025, 10, "家", "at_least"),
    ("P2_ENT_1B", 2025, 50, "家", "at_least"),
    ("P2_LISTED_ENT", 2025, 25, "家", "at_least"),
    ("P2_HITECH_ENT_NEW", 2021, 300, "家", "at_least"),
    ("P2_LITTLE_GIANT_NEW", 2021, 6, "家", "at_least"),
    ("P2_HITECH_ENT", 2025, 1500, "家", "at_least"),
    ("P2_LITTLE_GIANT", 2025, 30, "家", "at_least"),
    ("P2_CHAMPION", 2025, 25, "家", "at_least"),
    ("P2_HIDDEN_CHAMPION", 2025, 25, "家", "at_least"),
    ("P2_NEW_ABOVE_SCALE", 2021, 100, "家", "each_year_at_least"),
    ("P2_NEW_ABOVE_SCALE", 2023, 100, "家", "each_year_at_least"),
    ("P2_ABOVE_SCALE_ENT", 2025, 1500, "家", "about"),
    ("P2_TECH_SME", 2025, 5000, "家", "about"),
]


@pytest.mark.parametrize(("ind_id", "year", "value", "unit", "rule"), PLAN_POINTS)
def test_every_target_point_of_the_plan(catalogue, ind_id, year, value, unit, rule):
    ind = catalogue.get(ind_id)
    assert ind.milestones.get(year) == value
    assert ind.unit == unit
    assert ind.rule == rule


def test_target_points_count(catalogue):
    points = sum(len(ind.milestones) for ind in catalogue)
    # 8 clusters × 2, the overall goals, and the five projects: "about 60 target points".
    assert 60 <= points <= 80
    assert len({(i, y) for i, y, *_ in PLAN_POINTS}) == len(PLAN_POINTS)


def test_plan_words_are_the_plans_own(catalogue, seed_text):
    for ind in catalogue:
        assert ind.plan_text, ind.id
        for fragment in ind.plan_text.split("…"):  # "…" joins quotes from one sentence
            assert _squash(fragment) in seed_text, ind.id


def test_every_number_in_the_words_is_a_milestone(catalogue):
    """Each milestone value appears in the plan words it comes from (no invented numbers)."""
    for ind in catalogue:
        if not ind.milestones or ind.derived is not None:
            continue
        numbers = {float(n) for n in re.findall(r"\d+(?:\.\d+)?", ind.plan_text)}
        if ind.id == "C6_OUTPUT":
            numbers.add(1000.0)  # 千亿级“芯屏经济”规模
        for year, value in ind.milestones.items():
            assert value in numbers, (ind.id, year, value, ind.plan_text)


def test_tasks_of_the_plan(catalogue, seed_text):
    tasks = [ind for ind in catalogue if ind.is_task]
    names = " ".join(t.plan_text for t in tasks)
    for word in ["链长制", "双循环", "人才", "二十条政策", "唐岛湾金融科创区", "科创委", "融合试点"]:
        assert word in names
    assert all(not t.milestones for t in tasks)


def test_one_indicator_per_series(catalogue):
    """技术交易额 and 研发投入 are stated twice in the plan but are one indicator each."""
    trade = [i for i in catalogue if "技术" in i.name_zh and "交易额" in i.name_zh]
    assert [i.id for i in trade] == ["P4_TECH_TRADE"]
    rd_growth = [i for i in catalogue if i.rule == "growth_at_least" and "研发" in i.name_zh]
    assert [i.id for i in rd_growth] == ["P4_RD_GROWTH"]


def test_growth_rules_point_at_level_indicators(catalogue):
    for ind in catalogue:
        if ind.is_growth:
            source = catalogue.get(ind.source)
            assert source.measure == "flow" and source.unit == "亿元"
            assert ind.unit == "%" and ind.measure == "ratio"


def test_derived_indicators_reference_inputs(catalogue):
    share = catalogue.get("O_CLUSTER_SHARE").derived
    assert set(share.numerator) == {f"C{i}_OUTPUT" for i in range(1, 8)} | {"C8_REVENUE"}
    assert share.denominator == ("O_IND_OUTPUT",)
    thousand = catalogue.get("O_CLUSTERS_1000").derived
    assert thousand.threshold == 1000 and set(thousand.items) == {"C2_OUTPUT", "C3_OUTPUT", "C6_OUTPUT"}
    five = catalogue.get("O_CLUSTERS_500").derived
    assert five.threshold == 500 and set(five.items) == {"C1_OUTPUT", "C4_OUTPUT", "C5_OUTPUT"}


def test_export_columns_and_format(catalogue):
    frame = catalogue.export_frame()
    assert list(frame.columns) == EXPORT_COLUMNS
    row = frame.set_index("id").loc["C2_OUTPUT"]
    assert row["milestones"] == "2021:820;2025:1500"
    assert frame.set_index("id").loc["O_DIGITAL_SHARE", "tolerance"] == 0.05
    assert frame.set_index("id").loc["P4_RD_GROWTH", "source"] == "P4_RD_SPENDING"


def test_resolve_by_id_or_chinese_name(catalogue):
    assert catalogue.resolve("c2_output").id == "C2_OUTPUT"
    assert catalogue.resolve("智能家电产业产值").id == "C2_OUTPUT"
    with pytest.raises(KeyError):
        catalogue.resolve("智能家电")


def _edited(change):
    rows = list(csv.reader(io.StringIO(CATALOGUE_CSV.read_text(encoding="utf-8"))))
    header = rows[0]
    change(rows, header.index)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda rows, col: rows[12].__setitem__(col("rule"), "atleast"), ["第13行", "rule", "atleast"]),
        (lambda rows, col: rows[13].__setitem__(col("id"), rows[12][col("id")]), ["第13行", "第14行", "重复", "id"]),
        (lambda rows, col: rows[12].__setitem__(col("milestones"), "2019:700;2025:1500"), ["第13行", "milestones", "2020–2035"]),
        (lambda rows, col: rows[12].__setitem__(col("milestones"), "2021:820;2040:1500"), ["第13行", "milestones", "2020–2035"]),
        (lambda rows, col: rows[12].__setitem__(col("milestones"), "2021:-820;2025:1500"), ["第13行", "milestones", "负数"]),
        (lambda rows, col: rows[12].__setitem__(col("milestones"), "2021=820"), ["第13行", "milestones", "格式"]),
        (lambda rows, col: rows[12].__setitem__(col("group"), "C9"), ["第13行", "group"]),
        (lambda rows, col: rows[2].__setitem__(col("source"), "NOPE"), ["第3行", "source", "NOPE"]),
        (lambda rows, col: rows[8].__setitem__(col("tolerance"), "5"), ["第9行", "tolerance"]),
    ],
)
def test_bad_edits_name_row_and_field(change, expected):
    with pytest.raises(CatalogueError) as info:
        catalogue_from_text(_edited(change))
    message = str(info.value)
    for fragment in expected:
        assert fragment in message


def test_a_good_edit_is_accepted():
    text = _edited(lambda rows, col: rows[12].__setitem__(col("owner"), "发改局"))
    assert catalogue_from_text(text).get("C2_OUTPUT").owner == "发改局"
