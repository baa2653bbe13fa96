"""Intake with real files: every bad-input class lands in rejected/ with the right code and cell;
clean files are stored exactly as typed; duplicates, supersede, dry run, crash and rerun."""

from __future__ import annotations

import shutil
import zipfile

import openpyxl
import pytest
from intake_helpers import (
    SOFFICE,
    fill_openpyxl,
    lo_type,
    make_project,
    row_of,
    template_ids,
)
from plan_tracker import intake as intake_module
from plan_tracker.cli import main
from plan_tracker.intake import FEEDBACK_PREFIX, run_intake
from plan_tracker.templates import SHEET_FORM, generate_templates

PERIOD = "2025-09"
# 科技局's rows, values a department would plausibly send (targets: P2_HITECH_ENT 1500,
# P2_TECH_SME 5000, P4_TECH_TRADE 75 at September, P4_RD_INST_SHARE 80).
CLEAN = {
    "P2_HITECH_ENT_NEW": 210, "P2_HITECH_ENT": 1420, "P2_TECH_SME": 4650, "P4_TECH_TRADE": 71.25,
    "P4_NEW_PLATFORMS": 7, "P4_ENT_WITH_RD": 640, "P4_RD_INST_SHARE": 68.5, "P4_CORE_TECH": 14,
    "P4_TASK_STI_COMMITTEE": "推进中",
}


def _row(template, indicator_id):
    return row_of(openpyxl.load_workbook(template)[SHEET_FORM], indicator_id)


def _set(ws, ref, value, text=False):
    ws[ref].value = value
    if text:
        ws[ref].data_type = "s"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("intake")
    project = make_project(root / "proj")
    sci = generate_templates(project, PERIOD, ["科技局"])[0]
    june = generate_templates(project, "2025-06", ["科技局"])[0]
    rows = {i: _row(sci, i) for i in template_ids(sci)}
    staging = root / "staging"

    def make(name, values=None, notes=None, header=None, edit=None, template=sci):
        return fill_openpyxl(template, staging / name, {**CLEAN, **(values or {})}, notes, header, edit)

    def renamed_sheet(wb):
        wb[SHEET_FORM].title = "Sheet1"

    def locked_typed(wb):
        ws = wb[SHEET_FORM]
        ws.protection.sheet = False
        ws[f"E{rows['P4_TECH_TRADE']}"] = 71.25

    def added_row_value(wb):
        ws = wb[SHEET_FORM]
        ws.cell(ws.max_row + 1, 8).value = 99

    def added_other_dept(wb):
        ws = wb[SHEET_FORM]
        ws.cell(ws.max_row + 1, 1).value = "C2_OUTPUT"
        ws.cell(ws.max_row, 8).value = 900

    def duplicated(wb):
        ws = wb[SHEET_FORM]
        r = ws.max_row + 1
        for c in range(1, 10):
            ws.cell(r, c).value = ws.cell(rows["P2_TECH_SME"], c).value

    def deleted(wb):
        wb[SHEET_FORM].delete_rows(rows["P4_CORE_TECH"])

    def inserted_column(wb):
        ws = wb[SHEET_FORM]
        ws.insert_cols(3)
        ws.cell(6, 3).value = "我的备用列"

    def formula_without_cache(wb):
        wb[SHEET_FORM][f"H{rows['P4_TECH_TRADE']}"] = "=70+1.25"

    def injected_text(wb):
        ws = wb[SHEET_FORM]
        _set(ws, f"I{rows['P2_TECH_SME']}", "=HYPERLINK(\"http://x\",\"y\")", text=True)
        _set(ws, f"I{rows['P4_TECH_TRADE']}", "+cmd|' /C calc'!A0", text=True)

    def edit_meta_key(wb):
        meta = wb["_meta"]
        for row in meta.iter_rows():
            if row[0].value == "department":
                row[1].value = "工信局"

    def edit_meta_payload(wb):
        meta = wb["_meta"]
        for row in meta.iter_rows():
            if row[0].value == "payload":
                row[1].value = row[1].value.replace("科技局", "工信局")

    def unprotected(wb):
        wb[SHEET_FORM].protection.sheet = False

    cases = {
        # name: (file, expected status, {(code, cell)} that must be among the problems)
        "clean.xlsx": (make("clean.xlsx"), "accepted", set()),
        "fullwidth.xlsx": (make("fullwidth.xlsx", {"P4_TECH_TRADE": "７１．２５", "P2_TECH_SME": "4,650 家", "P4_RD_INST_SHARE": "68.5%"}), "accepted", set()),
        "pending.xlsx": (make("pending.xlsx", {"P4_ENT_WITH_RD": "待核实", "P4_CORE_TECH": "—"}), "accepted",
                         {("not-reported", f"H{rows['P4_ENT_WITH_RD']}"), ("not-reported", f"H{rows['P4_CORE_TECH']}")}),
        "renamed_sheet.xlsx": (make("renamed_sheet.xlsx", edit=renamed_sheet), "accepted", {("sheet-renamed", None)}),
        "inserted_column.xlsx": (make("inserted_column.xlsx", edit=inserted_column), "accepted", {("extra-column", "C6")}),
        "explained_outlier.xlsx": (make("explained_outlier.xlsx", {"P4_TECH_TRADE": 900}, {"P4_TECH_TRADE": "含一笔重大技术转让"}), "accepted",
                                   {("outlier", f"H{rows['P4_TECH_TRADE']}")}),
        "unprotected.xlsx": (make("unprotected.xlsx", edit=unprotected), "accepted", {("protection-removed", None)}),
        "words.xlsx": (make("words.xlsx", {"P2_HITECH_ENT": "约1400"}), "rejected", {("not-a-number", f"H{rows['P2_HITECH_ENT']}")}),
        "unit.xlsx": (make("unit.xlsx", {"P4_TECH_TRADE": "712500万元"}), "rejected", {("wrong-unit", f"H{rows['P4_TECH_TRADE']}")}),
        "blank.xlsx": (make("blank.xlsx", {"P2_TECH_SME": None}), "rejected", {("missing-value", f"H{rows['P2_TECH_SME']}")}),
        "negative.xlsx": (make("negative.xlsx", {"P4_TECH_TRADE": -3}), "rejected", {("out-of-range", f"H{rows['P4_TECH_TRADE']}")}),
        "percent.xlsx": (make("percent.xlsx", {"P4_RD_INST_SHARE": 130}), "rejected", {("out-of-range", f"H{rows['P4_RD_INST_SHARE']}")}),
        "fraction.xlsx": (make("fraction.xlsx", {"P4_NEW_PLATFORMS": 2.5}), "rejected", {("not-integer", f"H{rows['P4_NEW_PLATFORMS']}")}),
        "state.xlsx": (make("state.xlsx", {"P4_TASK_STI_COMMITTEE": "完成了"}), "rejected", {("bad-task-state", f"H{rows['P4_TASK_STI_COMMITTEE']}")}),
        "formula.xlsx": (make("formula.xlsx", edit=formula_without_cache), "rejected", {("formula-no-value", f"H{rows['P4_TECH_TRADE']}")}),
        "locked.xlsx": (make("locked.xlsx", edit=locked_typed), "rejected", {("locked-cell-changed", f"E{rows['P4_TECH_TRADE']}")}),
        "added_row.xlsx": (make("added_row.xlsx", edit=added_row_value), "rejected", {("unattributed-value", f"H{max(rows.values()) + 1}")}),
        "other_dept_row.xlsx": (make("other_dept_row.xlsx", edit=added_other_dept), "rejected", {("not-this-department", f"H{max(rows.values()) + 1}")}),
        "duplicate_row.xlsx": (make("duplicate_row.xlsx", edit=duplicated), "rejected", {("duplicate-row", f"H{max(rows.values()) + 1}")}),
        "deleted_row.xlsx": (make("deleted_row.xlsx", edit=deleted), "rejected", {("missing-row", None)}),
        "outlier.xlsx": (make("outlier.xlsx", {"P4_TECH_TRADE": 7125}), "rejected", {("outlier-no-remark", f"H{rows['P4_TECH_TRADE']}")}),
        "injected.xlsx": (make("injected.xlsx", {"P2_TECH_SME": None}, edit=injected_text), "rejected", {("missing-value", f"H{rows['P2_TECH_SME']}")}),
        "2025-09_工信局_填报表.xlsx": (make("2025-09_工信局_填报表.xlsx", header={"填报人": "王五"}), "rejected", {("department-mismatch", None)}),
        "header_dept.xlsx": (make("header_dept.xlsx", header={"填报单位": "工信局"}), "rejected", {("department-mismatch", "B3")}),
        "2025-09_科技局_填报表(6月模板).xlsx": (make("2025-09_科技局_填报表(6月模板).xlsx", template=june), "rejected", {("period-mismatch", None)}),
        "meta_key.xlsx": (make("meta_key.xlsx", edit=edit_meta_key), "rejected", {("metadata-tampered", None)}),
        "meta_payload.xlsx": (make("meta_payload.xlsx", edit=edit_meta_payload), "rejected", {("signature-mismatch", None)}),
    }
    handmade = openpyxl.Workbook()
    handmade.active.title = SHEET_FORM
    handmade.active.append(["指标编号", "指标名称", "单位", "填报口径", "本期目标", "上次报送值", "上次报送期间", "本期实际值", "备注"])
    handmade.active.append(["P4_TECH_TRADE", "技术合同交易额", "亿元", "", "", "", "", 80, ""])
    handmade.save(staging / "handmade.xlsx")
    cases["handmade.xlsx"] = (staging / "handmade.xlsx", "rejected", {("not-a-template", None)})
    for name, (path, _, _) in cases.items():
        shutil.copyfile(path, project.inbox / name)
    report = run_intake(project, actor="test")
    return project, cases, report, rows


def _outcome(report, name):
    return next(f for f in report.files if f.original_name == name)


def test_every_file_is_sorted_as_expected(world):
    project, cases, report, _ = world
    assert sorted(f.original_name for f in report.files) == sorted(cases)
    for name, (_, status, expected) in cases.items():
        outcome = _outcome(report, name)
        found = {(p.code, p.cell) for p in outcome.problems}
        found_codes = {(p.code, None) for p in outcome.problems}
        assert outcome.status == status, (name, [(p.code, p.cell, p.message) for p in outcome.problems])
        for code, cell in expected:
            assert (code, cell) in (found if cell else found_codes), (name, found)
        if status == "rejected":
            assert outcome.errors and all(p.message and p.hint for p in outcome.problems)


def test_messages_keep_each_language_to_its_half(world):
    """"中文 / English": a parameter given in both languages must not repeat inside each half."""
    _, cases, report, _ = world
    for outcome in report.files:
        for p in outcome.problems:
            if p.code in {"period-mismatch", "department-mismatch", "not-a-template", "metadata-tampered", "template-outdated"}:
                zh, _, en = p.message.partition(" / ")
                assert zh and en and " / " not in en, p.message
                assert not any("\u4e00" <= ch <= "\u9fff" for ch in en.replace("本期实际值", "").replace("指标编号", "")) or p.code == "department-mismatch", p.message


def test_every_file_is_still_there_afterwards(world):
    project, cases, report, _ = world
    assert list(project.inbox.iterdir()) == []
    for outcome in report.files:
        assert outcome.path.exists() and outcome.path == outcome.archive_path
        folder = project.archive if outcome.status == "accepted" else project.rejected
        assert folder in outcome.path.parents
        assert intake_module.file_sha256(outcome.path) == outcome.sha256
    originals = [p for p in project.rejected.iterdir() if not p.name.startswith(FEEDBACK_PREFIX)]
    archived = [p for p in project.archive.rglob("*") if p.is_file()]
    assert len(originals) + len(archived) == len(cases)


def test_clean_values_are_stored_exactly_with_provenance(world):
    project, _, report, rows = world
    outcome = _outcome(report, "clean.xlsx")
    with project.open_store() as store:
        history = store.observation_history()
        submission = store.get_submission(outcome.submission_id)
    mine = history[history["submission_id"] == outcome.submission_id].set_index("indicator_id")
    for indicator_id, value in CLEAN.items():
        if isinstance(value, str):
            assert mine.at[indicator_id, "value_text"] == value
        else:
            assert mine.at[indicator_id, "value"] == value
        assert mine.at[indicator_id, "cell"] == f"H{rows[indicator_id]}"
        assert mine.at[indicator_id, "sheet"] == SHEET_FORM
    assert submission["template_id"].startswith("T-2025-09-科技局-")
    assert submission["department"] == "科技局" and submission["period"] == PERIOD


def test_not_reported_stores_nothing_and_later_files_supersede(world):
    project, _, report, rows = world
    accepted = [f for f in report.files if f.status == "accepted"]
    with project.open_store() as store:
        subs = store.submissions(department="科技局", period=PERIOD)
        audit = store.audit_log()
        current = store.current_observations()
    statuses = dict(zip(subs["submission_id"], subs["status"], strict=True))
    assert sum(s == "accepted" for s in statuses.values()) == 1
    assert statuses[accepted[-1].submission_id] == "accepted"
    assert all(statuses[f.submission_id] == "superseded" for f in accepted[:-1])
    pending = _outcome(report, "pending.xlsx")
    with project.open_store() as store:
        stored = store.observation_history()
    assert set(stored[stored["submission_id"] == pending.submission_id]["indicator_id"]).isdisjoint({"P4_ENT_WITH_RD", "P4_CORE_TECH"})
    # the explained outlier (900) came after clean (71.25): recorded as a change X → Y
    outlier = _outcome(report, "explained_outlier.xlsx")
    assert any(c.startswith("P4_TECH_TRADE 2025-09: 71.25 → 900") for c in outlier.changes)
    assert audit["message"].str.contains("71.25 → 900").any()
    assert current.set_index("indicator_id").at["P4_TECH_TRADE", "value"] == 71.25  # last file restores it


def test_feedback_copy_marks_cells_and_lists_problems(world):
    project, _, report, rows = world
    outcome = _outcome(report, "words.xlsx")
    wb = openpyxl.load_workbook(outcome.feedback_path)
    assert wb.sheetnames[0] == "校验结果" and wb.active.title == "校验结果"
    cell = wb[SHEET_FORM][f"H{rows['P2_HITECH_ENT']}"]
    assert "not-a-number" in cell.comment.text and "约1400" in cell.comment.text
    assert cell.fill.fgColor.rgb.endswith("FFC7CE")
    listed = [r for r in wb["校验结果"].iter_rows(min_row=5, values_only=True)]
    assert ("错误", "not-a-number", SHEET_FORM, f"H{rows['P2_HITECH_ENT']}") in [r[1:5] for r in listed]
    # the original is kept untouched next to it
    assert openpyxl.load_workbook(outcome.path)[SHEET_FORM][f"H{rows['P2_HITECH_ENT']}"].comment is None


def test_text_that_looks_like_a_formula_stays_text_in_the_feedback_copy(world):
    _, _, report, rows = world
    outcome = _outcome(report, "injected.xlsx")
    with zipfile.ZipFile(outcome.feedback_path) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/sheet")]
        xml = "".join(z.read(n).decode() for n in sheets)
    assert "<f>" not in xml and "<f " not in xml
    ws = openpyxl.load_workbook(outcome.feedback_path)[SHEET_FORM]
    for ref in (f"I{rows['P2_TECH_SME']}", f"I{rows['P4_TECH_TRADE']}"):
        assert ws[ref].data_type == "s" and ws[ref].quotePrefix


def test_the_same_file_again_is_recognised_and_not_counted_twice(world, tmp_path):
    project, cases, report, _ = world
    clean = _outcome(report, "clean.xlsx")
    with project.open_store() as store:
        before = (len(store.observation_history()), len(store.submissions()))
    shutil.copyfile(clean.path, project.inbox / "clean again.xlsx")
    again = run_intake(project, actor="test")
    (outcome,) = again.files
    assert outcome.status == "duplicate" and outcome.duplicate_of == clean.submission_id
    assert outcome.path.exists() and project.archive in outcome.path.parents and outcome.path != clean.path
    with project.open_store() as store:
        assert (len(store.observation_history()), len(store.submissions())) == before


def test_dry_run_changes_nothing(world):
    project, cases, _, _ = world
    src = cases["words.xlsx"][0]
    shutil.copyfile(src, project.inbox / "words again.xlsx")
    shutil.copyfile(cases["clean.xlsx"][0], project.inbox / "clean copy.xlsx")
    with project.open_store() as store:
        version = store.data_version()
    listing = sorted(p.name for p in project.root.rglob("*"))
    report = run_intake(project, dry_run=True, actor="test")
    assert {f.original_name: f.status for f in report.files} == {"words again.xlsx": "rejected", "clean copy.xlsx": "duplicate"}
    assert sorted(p.name for p in project.root.rglob("*")) == listing
    with project.open_store() as store:
        assert store.data_version() == version
    run_intake(project, actor="test")  # clean up for other tests: files move out of the inbox
    assert list(project.inbox.iterdir()) == []


def test_a_crash_before_the_move_is_finished_by_the_next_run(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    fill_openpyxl(template, project.inbox / "clean.xlsx", CLEAN)
    real = intake_module.place_file

    def crash(src, dest, *batch):
        raise OSError("disk full")

    monkeypatch.setattr(intake_module, "place_file", crash)
    with pytest.raises(OSError):
        run_intake(project, actor="test")
    assert (project.inbox / "clean.xlsx").exists()
    monkeypatch.setattr(intake_module, "place_file", real)
    report = run_intake(project, actor="test")
    (outcome,) = report.files
    assert outcome.status == "accepted" and outcome.path.exists()
    assert list(project.inbox.iterdir()) == []
    with project.open_store() as store:
        subs = store.submissions()
        history = store.observation_history()
    assert len(subs) == 1 and len(history) == len(CLEAN)
    assert subs.iloc[0]["archive_path"] == str(outcome.path)


def test_outdated_template_after_a_catalogue_change(tmp_path):
    project = make_project(tmp_path / "p")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    fill_openpyxl(template, project.inbox / "old.xlsx", CLEAN)
    catalogue = project.root / "catalogue.csv"
    text = catalogue.read_text(encoding="utf-8")
    catalogue.write_text(text.replace("P4_ENT_WITH_RD,建有研发机构的工业企业数,Industrial enterprises with an R&D institution,P4,家",
                                      "P4_ENT_WITH_RD,建有研发机构的工业企业数,Industrial enterprises with an R&D institution,P4,个"), encoding="utf-8")
    report = run_intake(project, actor="test")
    assert [p.code for p in report.files[0].errors] == ["template-outdated"]


@pytest.mark.libreoffice
def test_values_typed_in_libreoffice_are_accepted(tmp_path):
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    project = make_project(tmp_path / "p")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    rows = {i: _row(template, i) for i in template_ids(template)}
    typed = {"P2_HITECH_ENT_NEW": "210", "P2_HITECH_ENT": "1,420", "P2_TECH_SME": "４６５０",
             "P4_TECH_TRADE": "=70+1.25", "P4_NEW_PLATFORMS": "7", "P4_ENT_WITH_RD": "待核实",
             "P4_RD_INST_SHARE": "68.5", "P4_CORE_TECH": "14", "P4_TASK_STI_COMMITTEE": "推进中"}
    cells = [(SHEET_FORM, f"H{rows[i]}", v) for i, v in typed.items()]
    cells += [(SHEET_FORM, f"I{rows['P4_ENT_WITH_RD']}", "统计口径调整中"), (SHEET_FORM, "E3", "李四")]
    bad_cells = [*cells[:-1], (SHEET_FORM, f"H{rows['P2_TECH_SME']}", "约4650")]
    lo_type([
        {"src": template, "out": project.inbox / "lo_typed.xlsx", "cells": cells},
        {"src": template, "out": project.inbox / "lo_bad.xlsx", "cells": bad_cells},
    ])
    report = run_intake(project, actor="test")
    good = _outcome(report, "lo_typed.xlsx")
    bad = _outcome(report, "lo_bad.xlsx")
    assert good.status == "accepted", [(p.code, p.cell) for p in good.problems]
    assert ("formula-used", f"H{rows['P4_TECH_TRADE']}") in {(p.code, p.cell) for p in good.problems}
    assert bad.status == "rejected"
    assert ("not-a-number", f"H{rows['P2_TECH_SME']}") in {(p.code, p.cell) for p in bad.errors}
    with project.open_store() as store:
        history = store.observation_history()
    mine = history[history["submission_id"] == good.submission_id].set_index("indicator_id")
    assert mine.at["P2_HITECH_ENT", "value"] == 1420 and mine.at["P2_TECH_SME", "value"] == 4650
    assert mine.at["P4_TECH_TRADE", "value"] == 71.25
    assert "P4_ENT_WITH_RD" not in mine.index


def test_cli_templates_and_intake(tmp_path, capsys):
    project = make_project(tmp_path / "p")
    assert main(["templates", "--period", PERIOD, "--department", "科技局", "--project", str(project.root)]) == 0
    assert "2025-09_科技局_填报表.xlsx" in capsys.readouterr().out
    assert main(["templates", "--period", PERIOD, "--department", "无此局", "--project", str(project.root)]) == 2
    assert "无此局" in capsys.readouterr().err
    template = project.templates / PERIOD / "2025-09_科技局_填报表.xlsx"
    fill_openpyxl(template, project.inbox / "a.xlsx", {**CLEAN, "P2_HITECH_ENT": "约1400"})
    assert main(["intake", "--dry-run", "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "rejected 1" in out and "dry run" in out
    assert (project.inbox / "a.xlsx").exists()
    assert main(["intake", "--project", str(project.root)]) == 0
    assert "已退回" in capsys.readouterr().out
    assert not (project.inbox / "a.xlsx").exists()
