"""What people type → number / not reported / error; the error catalogue; injection-safe text."""

from __future__ import annotations

import datetime as dt

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_tracker import errors
from plan_tracker.normalise import (
    BLANK,
    INVALID,
    NOT_REPORTED,
    NUMBER,
    TEXT,
    parse_note,
    parse_task_state,
    parse_value,
)
from plan_tracker.xlsxsafe import looks_like_formula, safe_cell_text, safe_csv_text, set_text_cell


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        (820.0, "亿元", 820.0),
        (3, "家", 3.0),
        ("１２３．５", "亿元", 123.5),
        ("1,234.5", "亿元", 1234.5),
        ("1，234", "亿元", 1234.0),
        (" 820 亿元 ", "亿元", 820.0),
        ("820亿", "亿元", 820.0),
        ("65%", "%", 65.0),
        ("６５％", "%", 65.0),
        ("12 家", "家", 12.0),
        ("0", "亿元", 0.0),
        ("1e3", "亿元", 1000.0),
        ("\u3000８２０\u3000", "亿元", 820.0),
    ],
)
def test_numbers_people_type_are_normalised(raw, unit, expected):
    parsed = parse_value(raw, unit)
    assert parsed.kind == NUMBER
    assert parsed.value == expected


@pytest.mark.parametrize("raw", ["待核实", "—", "——", "-", "无", "暂无", "N/A", " 待核实 "])
def test_not_reported_markers_are_not_zero(raw):
    parsed = parse_value(raw, "亿元")
    assert parsed.kind == NOT_REPORTED
    assert parsed.value is None


@pytest.mark.parametrize("raw", [None, "", "   ", "\u3000"])
def test_blank_is_blank_not_zero(raw):
    parsed = parse_value(raw, "亿元")
    assert parsed.kind == BLANK
    assert parsed.value is None


@pytest.mark.parametrize(
    ("raw", "unit", "code"),
    [
        ("约820", "亿元", "not-a-number"),
        ("820左右", "亿元", "not-a-number"),
        ("820万元", "亿元", "wrong-unit"),
        ("65%", "亿元", "wrong-unit"),
        ("12家", "个", "wrong-unit"),
        ("1,23", "亿元", "not-a-number"),
        ("12.3.4", "亿元", "not-a-number"),
        (True, "亿元", "not-a-number"),
        (dt.datetime(2025, 9, 30), "亿元", "not-a-number"),
        (float("nan"), "亿元", "not-a-number"),
        ("inf", "亿元", "not-a-number"),
        ("abc", "%", "not-a-number"),
    ],
)
def test_what_is_not_a_number_is_an_error(raw, unit, code):
    parsed = parse_value(raw, unit)
    assert parsed.kind == INVALID
    assert parsed.code == code
    assert parsed.value is None


def test_percent_styled_cell_is_what_the_person_saw():
    # Excel stores a typed "65%" as 0.65 with a percent format: the person meant 65.
    assert parse_value(0.65, "%", percent_styled=True).value == 65.0
    assert parse_value(0.075, "%", percent_styled=True).value == 7.5
    assert parse_value(0.65, "%").value == 0.65


def test_task_states_and_notes():
    assert parse_task_state(" 推进中 ").text == "推进中"
    assert parse_task_state("推进中").kind == TEXT
    assert parse_task_state("推进中").text == "推进中"
    assert parse_task_state(None).kind == BLANK
    assert parse_task_state("待核实").kind == NOT_REPORTED
    assert parse_note("  已签约 3 个  ") == "已签约 3 个"
    assert parse_note(12.0) == "12"
    assert parse_note("   ") is None


@given(st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False))
def test_any_plain_decimal_text_round_trips(number):
    text = format(number, "f")
    assert parse_value(text, "亿元").value == float(text)
    grouped = f"{number:,}"
    assert parse_value(grouped, "亿元").value == float(text)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_any_stored_float_is_kept_exactly(number):
    assert parse_value(number, "亿元").value == number


def test_every_code_has_chinese_message_hint_and_english():
    codes = errors.list_codes()
    assert len({c["code"] for c in codes}) == len(codes)
    for row in codes:
        assert row["severity"] in ("error", "warning")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in row["message_zh"]), row
        assert row["hint_zh"] and row["message_en"]
    table = errors.markdown_table()
    assert table.count("\n") == len(codes) + 1


def test_problem_fills_message_and_keeps_location():
    p = errors.problem("not-a-number", "a.xlsx", "填报", "H7", value="约820")
    assert p.code == "not-a-number" and p.cell == "H7" and p.sheet == "填报"
    assert "约820" in p.message and "not a number" in p.message
    assert p.is_error
    w = errors.problem("not-reported", "a.xlsx", "填报", "H8", value="待核实")
    assert w.severity == "warning"
    assert set(p.as_store_dict()) == {"code", "file", "sheet", "cell", "message", "hint", "severity"}


@pytest.mark.parametrize("text", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=x", "=cmd|' /C calc'!A0"])
def test_formula_like_text_is_written_as_text(tmp_path, text):
    assert looks_like_formula(text)
    assert safe_csv_text(text) == "'" + text
    wb = openpyxl.Workbook()
    cell = wb.active["A1"]
    set_text_cell(cell, text)
    path = tmp_path / "x.xlsx"
    wb.save(path)
    import zipfile

    sheet_xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml
    back = openpyxl.load_workbook(path)["Sheet"]["A1"]
    assert back.value == safe_cell_text(text)
    assert back.data_type == "s"
    assert back.quotePrefix


def test_safe_cell_text_drops_illegal_characters_only():
    assert safe_cell_text("a\x00b\x07c\n中") == "abc\n中"
    assert safe_cell_text(None) == ""
    assert len(safe_cell_text("x" * 40000)) == 32767


def test_docs_list_every_error_code():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "intake.md").read_text(encoding="utf-8")
    missing = [c["code"] for c in errors.list_codes() if f"| {c['code']} |" not in docs]
    assert missing == [], "regenerate the table in docs/intake.md from errors.markdown_table()"
