"""What people actually type into a value cell → a number, a task state, "not reported", or an
error code. Never silently zero: anything that is not clearly a number is an error.

Accepted forms (after Unicode NFKC, so full-width ``１２３．５`` and ``６５％`` become ASCII):

* numbers as stored by Excel/WPS/LibreOffice (float/int cells), or typed as text with
  spaces, thousands separators in proper groups (``1,234.5``), and a trailing unit that is
  the indicator's own (``820亿元``, ``820亿`` for 亿元, ``65%`` for %);
* explicit "not reported" markers ``待核实 / — / - / 无 / 暂无 / N/A / /`` → :data:`NOT_REPORTED`;
* blank (``None``, empty or only spaces) → :data:`BLANK` (a different thing from 0);
* task rows: one of 未启动 / 推进中 / 已完成 → text.

Rejected with a code from :mod:`plan_tracker.errors`: another unit (``820万元`` for a 亿元
indicator → ``wrong-unit``), words (``约820``, ``820左右``), dates, booleans, ``1,23``
(ambiguous decimal comma) → ``not-a-number``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

NUMBER = "number"
TEXT = "text"
NOT_REPORTED = "not_reported"
BLANK = "blank"
INVALID = "invalid"

TASK_STATES = ("未启动", "推进中", "已完成")
NOT_REPORTED_MARKERS = frozenset(
    {"待核实", "待核", "待定", "—", "——", "-", "--", "－", "–", "无", "暂无", "n/a", "na", "/", "不详"}
)
# Unit words a person may append, per catalogue unit (the first is the unit itself).
UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "亿元": ("亿元", "亿"),
    "%": ("%", "％"),
    "家": ("家",),
    "个": ("个",),
    "项": ("项",),
    "公顷": ("公顷",),
    "万元": ("万元",),
    "人": ("人",),
}
COUNT_UNITS = frozenset({"家", "个", "项", "人"})
_ALL_UNIT_WORDS = sorted(
    {w for words in UNIT_WORDS.values() for w in words} | {"元", "千元", "百万元", "万亿元", "亩", "平方米", "万", "千"},
    key=len,
    reverse=True,
)
_PLAIN = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# NFKC leaves these look-alikes alone; people paste them from Word and web pages.
_LOOKALIKES = str.maketrans({"。": ".", "﹒": ".", "‚": ",", "，": ",", "、": ",", "−": "-", "﹣": "-"})
_SPACES = re.compile(r"[\s\u00a0\u2000-\u200b\u3000\ufeff]+")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A normalised cell. ``code`` is an error code when ``kind`` is :data:`INVALID`."""

    kind: str
    value: float | None = None
    text: str | None = None
    code: str | None = None
    shown: str = ""  # the input as the person typed it, for messages

    @property
    def ok(self) -> bool:
        return self.kind != INVALID


def shown(raw: object) -> str:
    """A raw cell value the way the person saw it (for messages and the feedback copy)."""
    if raw is None:
        return ""
    if isinstance(raw, float):
        raw = float(raw)  # numpy floats print as np.float64(…)
        if math.isfinite(raw) and raw.is_integer() and abs(raw) < 1e15:
            return str(int(raw))
        return repr(raw)
    return str(raw)


def _clean_text(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).translate(_LOOKALIKES)
    return _SPACES.sub("", text)


def parse_value(raw: object, unit: str, *, percent_styled: bool = False) -> Parsed:
    """A numeric indicator's cell. ``percent_styled``: the cell had a % number format, so a
    stored 0.65 is what the person saw as 65% (Excel turns a typed ``65%`` into 0.65)."""
    seen = shown(raw)
    if raw is None:
        return Parsed(BLANK, shown=seen)
    if isinstance(raw, bool):
        return Parsed(INVALID, code="not-a-number", shown=seen)
    if isinstance(raw, (datetime, date, time, timedelta)):
        return Parsed(INVALID, code="not-a-number", shown=seen)
    if isinstance(raw, (int, float)):
        number = float(raw)
        if not math.isfinite(number):
            return Parsed(INVALID, code="not-a-number", shown=seen)
        if percent_styled and unit == "%":
            number = _percent(number)
        return Parsed(NUMBER, value=number, shown=seen)
    text = _clean_text(str(raw))
    if text == "":
        return Parsed(BLANK, shown=seen)
    if text.lower() in NOT_REPORTED_MARKERS:
        return Parsed(NOT_REPORTED, shown=seen)
    number_text, suffix = _split_unit(text)
    if suffix and suffix not in UNIT_WORDS.get(unit, ()):
        code = "wrong-unit" if _is_number_text(number_text) else "not-a-number"
        return Parsed(INVALID, code=code, shown=seen)
    if _PLAIN.match(number_text):
        number = float(number_text)
    elif _GROUPED.match(number_text):
        number = float(number_text.replace(",", ""))
    else:
        return Parsed(INVALID, code="not-a-number", shown=seen)
    if not math.isfinite(number):
        return Parsed(INVALID, code="not-a-number", shown=seen)
    return Parsed(NUMBER, value=number, shown=seen)


def _percent(number: float) -> float:
    # 0.65 → 65.0 without binary noise (0.65 * 100 is 65.00000000000001).
    return float(f"{number * 100:.12g}")


def _split_unit(text: str) -> tuple[str, str]:
    for word in _ALL_UNIT_WORDS:
        if text.endswith(word) and len(text) > len(word):
            return text[: -len(word)], word
    return text, ""


def _is_number_text(text: str) -> bool:
    return bool(_PLAIN.match(text) or _GROUPED.match(text))


def parse_task_state(raw: object) -> Parsed:
    """A task row's state cell: one of :data:`TASK_STATES`, or a not-reported marker/blank."""
    seen = shown(raw)
    if raw is None:
        return Parsed(BLANK, shown=seen)
    text = _clean_text(str(raw))
    if text == "":
        return Parsed(BLANK, shown=seen)
    if text.lower() in NOT_REPORTED_MARKERS:
        return Parsed(NOT_REPORTED, shown=seen)
    # Validity is the schema's rule (bad-task-state); here the text is only normalised.
    return Parsed(TEXT, text=text, shown=seen)


def parse_note(raw: object) -> str | None:
    """A remark as typed (trimmed); numbers a person typed into 备注 keep their shown form."""
    if raw is None:
        return None
    text = shown(raw).strip() if not isinstance(raw, str) else raw.strip()
    return text or None


def is_count_unit(unit: str) -> bool:
    return unit in COUNT_UNITS
