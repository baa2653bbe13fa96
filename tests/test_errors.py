"""The error catalogue's message builder."""

from plan_tracker.errors import Bi, list_codes, problem


def test_a_pair_fills_each_language_with_its_own_half():
    p = problem(
        "period-mismatch", "f.xlsx", expected=Bi("2025年8月", "2025-08"),
        detail_period="2025年9月", detail=Bi("文件名写的是 2025年9月", "the file name says 2025-09"),
    )
    zh, en = p.message.split(" / ")
    assert zh == "期间不符：本模板是 2025年8月 的模板，但文件名写的是 2025年9月"
    assert en == "period mismatch: this is the template for 2025-08, but the file name says 2025-09"
    assert "2025年9月" in p.hint


def test_a_plain_parameter_is_used_in_both_languages():
    p = problem("out-of-range", "f.xlsx", "填报", "H9", value=130, detail="0–100")
    assert p.message.count("130") == 2 and p.message.count("0–100") == 2 and p.cell == "H9"


def test_every_code_has_both_languages_and_a_hint():
    codes = list_codes()
    assert len(codes) >= 30
    for spec in codes:
        assert spec["message_zh"] and spec["message_en"] and spec["hint_zh"], spec["code"]
