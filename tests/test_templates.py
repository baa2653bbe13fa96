"""Department templates: content, protection, validation, signed metadata, LibreOffice round trip."""

from __future__ import annotations

import io
import json
import re
import zipfile

import openpyxl
import pytest
from intake_helpers import (
    SOFFICE,
    fill_openpyxl,
    lo_convert,
    make_project,
    needs_soffice,
    row_of,
    template_meta,
)
from plan_tracker.intake import run_intake
from plan_tracker.periods import PeriodError
from plan_tracker.service import import_observations, load_context, read_catalogue
from plan_tracker.templates import (
    SHEET_FORM,
    SHEET_META,
    TemplateError,
    department_indicators,
    generate_templates,
    verify,
)

PERIOD = "2025-09"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("tpl")
    project = make_project(root / "proj")
    history = root / "history.csv"
    history.write_text("indicator_id,period,value\nP4_TECH_TRADE,2025-06,50\nP2_HITECH_ENT,2024,1200\n", encoding="utf-8")
    import_observations(project, history, actor="test")
    return project


@pytest.fixture(scope="module")
def paths(project):
    return generate_templates(project, PERIOD)


@pytest.fixture(scope="module")
def sci(paths):
    return next(p for p in paths if "科技局" in p.name)


def test_one_file_per_department_named_for_people(project, paths):
    catalogue = read_catalogue(project)
    assert sorted(p.name for p in paths) == sorted(f"{PERIOD}_{d}_填报表.xlsx" for d in catalogue.departments())
    assert all(p.parent == project.templates / PERIOD for p in paths)
    assert all(p.suffix == ".xlsx" and "xl/vbaProject.bin" not in zipfile.ZipFile(p).namelist() for p in paths)


def test_form_lists_the_departments_indicators_with_target_and_last_value(project, sci):
    wb = openpyxl.load_workbook(sci)
    assert wb.sheetnames == [SHEET_FORM, "说明", SHEET_META]
    ws = wb[SHEET_FORM]
    catalogue = read_catalogue(project)
    expected = [ind.id for ind in department_indicators(catalogue, "科技局")]
    ids = [ws.cell(r, 1).value for r in range(7, 7 + len(expected))]
    assert ids == expected
    assert all(catalogue.get(i).owner == "科技局" and catalogue.get(i).accepts_observations for i in ids)
    ctx = load_context(project)
    row = row_of(ws, "P4_TECH_TRADE")
    assert ws.cell(row, 5).value == pytest.approx(ctx.result("P4_TECH_TRADE", PERIOD).target)
    assert ws.cell(row, 6).value == 50 and ws.cell(row, 7).value == "2025-06"
    assert ws.cell(row, 4).value == "2025年1-9月累计"  # a flow: year-to-date
    assert "末数" in ws.cell(row_of(ws, "P2_HITECH_ENT"), 4).value  # a stock: end of period
    assert ws.cell(row_of(ws, "P2_HITECH_ENT"), 6).value == 1200
    labels = {ws.cell(r, c).value for r in range(2, 5) for c in (1, 4)}
    assert {"填报单位", "填报人", "联系电话", "填报日期"} <= labels
    help_text = " ".join(str(c.value) for c in wb["说明"]["A"])
    assert "待核实" in help_text and "科技局" in help_text


def test_inputs_unlocked_everything_else_protected_without_password(sci):
    wb = openpyxl.load_workbook(sci)
    ws = wb[SHEET_FORM]
    assert ws.protection.sheet and not ws.protection.password
    assert wb["说明"].protection.sheet
    last = ws.max_row
    for r in range(7, last + 1):
        for c in range(1, 10):
            locked = ws.cell(r, c).protection.locked
            assert locked is (c not in (8, 9)), (r, c)
    for ref in ("B3", "E3", "B4", "E4"):
        assert ws[ref].protection.locked is False
    assert ws["B2"].protection.locked and ws["E2"].protection.locked
    assert wb[SHEET_META].sheet_state == "veryHidden"


def _validations(ws) -> dict[str, object]:
    found = {}
    for dv in ws.data_validations.dataValidation:
        for cell_range in dv.sqref.ranges:
            for row in range(cell_range.min_row, cell_range.max_row + 1):
                for col in range(cell_range.min_col, cell_range.max_col + 1):
                    found[f"{openpyxl.utils.get_column_letter(col)}{row}"] = dv
    return found


def test_every_input_has_validation_with_unit_in_the_input_message(project, sci):
    ws = openpyxl.load_workbook(sci)[SHEET_FORM]
    dvs = _validations(ws)
    catalogue = read_catalogue(project)
    for r in range(7, ws.max_row + 1):
        ind = catalogue.get(ws.cell(r, 1).value)
        value, note = dvs[f"H{r}"], dvs[f"I{r}"]
        assert note.type == "textLength"
        if ind.is_task:
            assert value.type == "list" and "未启动" in value.formula1 and "已完成" in value.formula1
        elif ind.unit == "%":
            assert (value.type, value.operator or "between", value.formula1, value.formula2) == ("decimal", "between", "0", "100")
        elif ind.unit in ("家", "个", "项"):
            assert (value.type, value.operator, value.formula1) == ("whole", "greaterThanOrEqual", "0")
        else:
            assert (value.type, value.operator, value.formula1) == ("decimal", "greaterThanOrEqual", "0")
        if not ind.is_task:
            assert f"单位：{ind.unit}" in value.prompt and value.showInputMessage
    for ref in ("B3", "E3", "B4", "E4"):
        assert ref in dvs


def test_metadata_is_signed_with_the_project_secret(project, sci):
    meta = template_meta(sci)
    assert meta["department"] == "科技局" and meta["period"] == PERIOD
    assert re.fullmatch(r"T-2025-09-科技局-[0-9a-f]{8}", meta["template_id"])
    assert meta["catalogue_version"] == read_catalogue(project).version_hash
    ws = openpyxl.load_workbook(sci)[SHEET_META]
    rows = {r[0]: r[1] for r in ws.iter_rows(values_only=True)}
    with project.open_store() as store:
        secret = store.secret()
    assert verify(secret, rows["payload"], rows["signature"])
    forged = rows["payload"].replace("科技局", "工信局")
    assert not verify(secret, forged, rows["signature"])
    assert not verify(b"another project" * 2, rows["payload"], rows["signature"])
    assert json.loads(rows["payload"])["indicators"] == meta["indicators"]


def test_bad_department_or_period_is_refused(project):
    with pytest.raises(TemplateError, match="不存在局"):
        generate_templates(project, PERIOD, ["不存在局"])
    with pytest.raises(PeriodError):
        generate_templates(project, "2025-13")


def test_generated_template_is_written_atomically_and_can_be_regenerated(project, sci):
    first = template_meta(sci)["template_id"]
    again = generate_templates(project, PERIOD, ["科技局"])
    assert again == [sci]
    assert template_meta(sci)["template_id"] != first
    assert not [p for p in sci.parent.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- LibreOffice


@pytest.fixture(scope="module")
def lo_saved(project, tmp_path_factory):
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    work = tmp_path_factory.mktemp("lo")
    template = generate_templates(project, PERIOD, ["大数据局"])[0]
    values = {"O_DIGITAL_VA": 88.5, "O_DIGITAL_SHARE": 9.5, "C8_REVENUE": 70, "P5_5G_STATIONS": 5200,
              "P5_DC_RACKS": 9000, "P5_APP_SCENARIOS": 150, "P5_TASK_GIGABIT": "推进中"}
    filled = fill_openpyxl(template, work / "in" / template.name, values, notes={"P5_TASK_GIGABIT": "已完成 80%"})
    return lo_convert(filled, work / "out"), values


@pytest.mark.libreoffice
@needs_soffice
def test_validation_protection_and_metadata_survive_a_libreoffice_save(lo_saved):
    path, values = lo_saved
    sheet_xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<sheetProtection" in sheet_xml and 'sheet="true"' in sheet_xml
    wb = openpyxl.load_workbook(io.BytesIO(path.read_bytes()))
    ws = wb[SHEET_FORM]
    dvs = _validations(ws)
    assert all(f"H{r}" in dvs and f"I{r}" in dvs for r in range(7, ws.max_row + 1))
    assert ws["H7"].protection.locked is False and ws["A7"].protection.locked is True
    assert wb[SHEET_META].sheet_state in ("hidden", "veryHidden")
    assert ws.cell(row_of(ws, "O_DIGITAL_VA"), 8).value == 88.5


@pytest.mark.libreoffice
@needs_soffice
def test_a_libreoffice_saved_file_is_accepted_with_its_values(project, lo_saved):
    path, values = lo_saved
    target = project.inbox / path.name
    target.write_bytes(path.read_bytes())
    report = run_intake(project, actor="test")
    (outcome,) = report.files
    assert outcome.status == "accepted", [p.message for p in outcome.problems]
    with project.open_store() as store:
        current = store.current_observations()
    got = current[current["period"] == PERIOD].set_index("indicator_id")
    for indicator_id, value in values.items():
        if isinstance(value, str):
            assert got.at[indicator_id, "value_text"] == value
        else:
            assert got.at[indicator_id, "value"] == value
    assert got.at["P5_TASK_GIGABIT", "note"] == "已完成 80%"
