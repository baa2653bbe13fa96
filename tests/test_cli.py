"""The `plan-tracker` command as a coordinator (or a scheduled job) runs it."""

import csv
import io
import json
import subprocess
import sys

import pandas as pd
import pytest
from plan_tracker import service
from plan_tracker.catalogue import EXPORT_COLUMNS
from plan_tracker.cli import main
from plan_tracker.engine import RESULT_COLUMNS
from plan_tracker.sample import SAMPLE_CSV, sample_observations


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path):
    return service.init(tmp_path / "proj")


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_init_creates_the_folders(tmp_path, capsys):
    code, out, _ = run(capsys, "init", str(tmp_path / "p"))
    assert code == 0
    for name in ("inbox", "archive", "rejected", "templates", "reports"):
        assert (tmp_path / "p" / name).is_dir()
    assert (tmp_path / "p" / "plan_tracker.sqlite").is_file()
    assert (tmp_path / "p" / "catalogue.csv").is_file()


def test_indicators_csv_begins_with_the_contract_columns(project, capsys):
    code, out, _ = run(capsys, "indicators", "--format", "csv", "--project", str(project.root))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0].keys())[: len(EXPORT_COLUMNS)] == EXPORT_COLUMNS
    by_id = {r["id"]: r for r in rows}
    assert by_id["C2_OUTPUT"]["milestones"] == "2021:820;2025:1500"
    assert by_id["P1_KEY_PROJECTS"]["rule"] == "cumulative_at_least"
    assert by_id["O_DIGITAL_SHARE"]["tolerance"] == "0.05"
    assert by_id["P5_TECH_REFORM_YOY"]["source"] == "P5_TECH_REFORM_INVEST"
    assert any(r["rule"] == "task" for r in rows)


def test_indicators_json(project, capsys):
    code, out, _ = run(capsys, "indicators", "-f", "json", "-p", str(project.root))
    data = json.loads(out)
    assert code == 0 and {d["id"] for d in data} >= {"C1_OUTPUT", "P4_TECH_TRADE"}


def test_import_then_gap_json(project, tmp_path, capsys):
    path = write_csv(
        tmp_path / "obs.csv",
        "indicator_id,period,value,department,note\n"
        "C2_OUTPUT,2020,700,工信局,\n"
        "C2_OUTPUT,2021,830,工信局,\n"
        "C2_OUTPUT,2022年1-9月,\"1,000\",工信局,\n"
        "P1_TASK_CHAIN_LEADER,2022,推进中,工信局,专班已建立\n",
    )
    code, out, _ = run(capsys, "import-observations", str(path), "-p", str(project.root))
    assert code == 0 and "4" in out
    code, out, _ = run(capsys, "gap", "-p", str(project.root), "--format", "json", "-i", "C2_OUTPUT", "-i", "P1_TASK_CHAIN_LEADER")
    assert code == 0
    data = json.loads(out)
    assert [list(d.keys()) for d in data] == [RESULT_COLUMNS, RESULT_COLUMNS]
    c2 = data[0]
    assert c2["period"] == "2022-09" and c2["actual"] == 1000.0
    assert c2["schedule"] == 0.75 and c2["status"] in {"on_track", "at_risk", "behind"}
    task = data[1]
    assert task["actual"] == "推进中" and task["target"] is None and task["note"] == "专班已建立"


def test_gap_with_period_and_csv(project, capsys):
    service.import_observations(project, SAMPLE_CSV)
    code, out, _ = run(capsys, "gap", "-p", str(project.root), "--period", "2025年三季度", "--format", "csv")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == RESULT_COLUMNS
    assert set(frame["period"]) == {"2025-Q3"}
    assert set(frame["status"]) <= {"on_track", "at_risk", "behind", "not_reported", "no_target"}
    # the CLI and the engine agree row for row
    expected = {r.indicator_id: r for r in service.gap(project, "2025-Q3")}
    for row in frame.itertuples():
        engine = expected[row.indicator_id]
        if engine.target is None:
            assert pd.isna(row.target)
        else:
            assert row.target == pytest.approx(engine.target)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("indicator_id,period,value\nNOPE,2023,1\n", ["第2行", "indicator_id", "NOPE"]),
        ("indicator_id,period,value\nC2_OUTPUT,2023年13月,1\n", ["第2行", "period"]),
        ("indicator_id,period,value\nC2_OUTPUT,2023,八百\n", ["第2行", "value", "八百"]),
        ("indicator_id,period,value\nC2_OUTPUT,2023-Q3,1\nC2_OUTPUT,2023-09,2\n", ["第3行", "重复"]),
        ("indicator_id,period,value\nO_IND_OUTPUT_GROWTH,2023,10\n", ["第2行", "计算"]),
        ("indicator_id,period,value\nO_CLUSTERS_1000,2023,2\n", ["第2行", "计算"]),
        ("indicator_id,period,value\nP1_TASK_CHAIN_LEADER,2023,差不多\n", ["第2行", "未启动"]),
        ("indicator,period,value\nC2_OUTPUT,2023,1\n", ["indicator_id"]),
    ],
)
def test_bad_imports_are_rejected_whole_with_the_row(project, tmp_path, capsys, body, fragments):
    good = "C1_OUTPUT,2023,250\n"
    header, *rest = body.splitlines(keepends=True)
    path = write_csv(tmp_path / "bad.csv", header + good + "".join(rest))
    code, out, err = run(capsys, "import-observations", str(path), "-p", str(project.root))
    assert code != 0
    text = err.replace("\n", "")
    for fragment in fragments:
        if fragment.startswith("第") and fragment.endswith("行"):
            fragment = f"第{int(fragment[1:-1]) + 1}行"  # the good row shifts the bad one down
        assert fragment in text
    with project.open_store() as store:
        assert store.current_observations().empty  # all or nothing


def test_same_file_twice_counts_once_and_a_correction_supersedes(project, tmp_path, capsys):
    path = write_csv(tmp_path / "a.csv", "indicator_id,period,value\nC2_OUTPUT,2023,1000\n")
    assert run(capsys, "import-observations", str(path), "-p", str(project.root))[0] == 0
    code, out, _ = run(capsys, "import-observations", str(path), "-p", str(project.root))
    assert code == 0 and "已导入过" in out.replace("\n", "")
    fix = write_csv(tmp_path / "b.csv", "indicator_id,period,value\nC2_OUTPUT,2023,1010\n")
    code, out, _ = run(capsys, "import-observations", str(fix), "-p", str(project.root))
    assert code == 0 and "1000" in out and "1010" in out
    with project.open_store() as store:
        history = store.observation_history("C2_OUTPUT", "2023")
        assert sorted(history["value"]) == [1000, 1010]
        assert store.current_observations().set_index("indicator_id").loc["C2_OUTPUT", "value"] == 1010


def test_unknown_project_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PLAN_TRACKER_HOME", raising=False)
    code, _, err = run(capsys, "gap", "-p", str(tmp_path / "nowhere"))
    assert code == 2 and "plan-tracker init" in err.replace("\n", "")


def test_bad_period_and_indicator_exit_non_zero(project, capsys):
    code, _, err = run(capsys, "gap", "-p", str(project.root), "--period", "2025-13")
    assert code == 2 and "期间" in err
    code, _, err = run(capsys, "gap", "-p", str(project.root), "-i", "NOPE")
    assert code == 2 and "NOPE" in err


def test_project_from_environment(project, capsys, monkeypatch):
    monkeypatch.setenv("PLAN_TRACKER_HOME", str(project.root))
    code, out, _ = run(capsys, "gap", "-f", "json", "-i", "C1_OUTPUT")
    assert code == 0 and json.loads(out)[0]["indicator_id"] == "C1_OUTPUT"


def test_console_script_runs(project):
    done = subprocess.run(
        [sys.executable, "-m", "plan_tracker.cli", "gap", "-p", str(project.root), "-f", "json", "-i", "C2_OUTPUT", "--period", "2025"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["target"] == 1500


def test_bundled_sample_is_the_generator_output():
    generated = sample_observations(service.load_catalogue())
    shipped = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    assert list(shipped.columns) == list(generated.columns)
    assert shipped["indicator_id"].tolist() == generated["indicator_id"].tolist()
    assert shipped["value"].tolist() == [str(v) for v in generated["value"]]
    assert shipped["note"].str.contains("synthetic").all()


def test_import_reads_gbk_csv_as_excel_saves_it_on_chinese_windows(project, tmp_path, capsys):
    path = tmp_path / "gbk.csv"
    path.write_bytes("indicator_id,period,value,department,note\nC2_OUTPUT,2024年,1300,工信局,初报\n".encode("gb18030"))
    code, _, err = run(capsys, "import-observations", str(path), "-p", str(project.root))
    assert code == 0, err
    with project.open_store() as store:
        row = store.current_observations().set_index("indicator_id").loc["C2_OUTPUT"]
    assert (row["value"], row["note"], row["department"]) == (1300.0, "初报", "工信局")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"", ["为空", "empty"]),
        (b'indicator_id,period,value\nC2_OUTPUT,2024,"1300\n', ["CSV"]),
        (b"indicator_id,period,value\nC2_OUTPUT,2024,1,300\n", ["第2行", "4 个字段"]),
        (bytes(range(128, 256)) * 3, ["编码", "UTF-8"]),
    ],
)
def test_unreadable_csv_is_rejected_with_a_message_not_a_traceback(project, tmp_path, capsys, content, fragments):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    code, _, err = run(capsys, "import-observations", str(path), "-p", str(project.root))
    text = err.replace("\n", "")
    assert code == 2 and "Traceback" not in text
    for fragment in fragments:
        assert fragment in text
    with project.open_store() as store:
        assert store.current_observations().empty


def test_trailing_empty_columns_from_excel_are_fine(project, tmp_path, capsys):
    path = write_csv(tmp_path / "t.csv", "indicator_id,period,value,,\nC1_OUTPUT,2024.09,300,,\n")
    code, _, err = run(capsys, "import-observations", str(path), "-p", str(project.root))
    assert code == 0, err
    with project.open_store() as store:
        assert store.current_observations().set_index("indicator_id").loc["C1_OUTPUT", "period"] == "2024-09"


def test_import_reads_values_as_intake_does(project, tmp_path, capsys):
    """One normaliser for what people type: units of the indicator, full-width digits."""
    path = write_csv(tmp_path / "u.csv", "indicator_id,period,value\nO_HITECH_SHARE,2024,65%\nC2_OUTPUT,2024,\"1,820亿元\"\nC1_OUTPUT,2024,１２３．５\n")
    assert run(capsys, "import-observations", str(path), "-p", str(project.root))[0] == 0
    with project.open_store() as store:
        values = store.current_observations().set_index("indicator_id")["value"].to_dict()
    assert values == {"O_HITECH_SHARE": 65.0, "C2_OUTPUT": 1820.0, "C1_OUTPUT": 123.5}
    wrong = write_csv(tmp_path / "w.csv", "indicator_id,period,value\nC2_OUTPUT,2023,820万元\n")
    code, _, err = run(capsys, "import-observations", str(wrong), "-p", str(project.root))
    assert code == 2 and "820万元" in err
