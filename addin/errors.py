"""The error catalogue of intake: stable codes, each with a Chinese message, a hint and English.

Codes are kebab-case and never renamed once released (frictionless-style): the store keeps
them with every rejected submission, the feedback copy shows them, and a coordinator may
filter on them. A message template may name ``{value}``, ``{detail}`` …; :func:`problem`
fills them in. ``plan-tracker intake`` and ``docs/intake.md`` list the catalogue from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class ErrorSpec:
    code: str
    severity: str
    message_zh: str
    hint_zh: str
    message_en: str


@dataclass(frozen=True)
class Problem:
    """One finding about one submitted file, at a sheet and cell where there is one."""

    code: str
    file: str
    sheet: str | None
    cell: str | None
    message: str
    hint: str
    severity: str = ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def as_store_dict(self) -> dict[str, str | None]:
        return asdict(self)

    def where(self) -> str:
        parts = [self.file]
        if self.sheet:
            parts.append(f"工作表 {self.sheet}")
        if self.cell:
            parts.append(f"单元格 {self.cell}")
        return "，".join(parts)


_SPECS: tuple[ErrorSpec, ...] = (
    # -- the file itself (checked before anything is parsed)
    ErrorSpec("empty-file", ERROR, "文件为空（0 字节）", "请重新导出并发送填好的模板文件", "the file is empty (0 bytes)"),
    ErrorSpec("file-too-large", ERROR, "文件过大（{detail}）", "请只在模板中填写，不要粘贴大量数据或图片", "the file is too large ({detail})"),
    ErrorSpec("not-excel", ERROR, "不是 Excel 文件（{detail}）", "请发送用本系统模板填写的 .xlsx 文件", "not an Excel file ({detail})"),
    ErrorSpec("wrong-file-type", ERROR, "文件类型不对：{detail}，但扩展名为 .xlsx", "请在 Excel/WPS 中打开模板，填写后“另存为 Excel 工作簿(*.xlsx)”", "wrong file type: {detail} renamed to .xlsx"),
    ErrorSpec("encrypted-file", ERROR, "文件已加密（设置了打开密码）", "请取消打开密码后重新发送（模板本身无需密码）", "the file is encrypted (password to open)"),
    ErrorSpec("zip-bomb", ERROR, "文件解压后异常巨大，已拒绝读取（{detail}）", "请使用原始模板重新填写", "the file inflates to an abnormal size, not read ({detail})"),
    ErrorSpec("unsafe-xml", ERROR, "文件含有不安全的 XML 内容（{detail}）", "请使用原始模板重新填写，不要用其他工具生成文件", "the file contains unsafe XML ({detail})"),
    ErrorSpec("corrupt-file", ERROR, "文件已损坏，无法读取（{detail}）", "请在 Excel/WPS 中打开确认无误后重新保存发送", "the file is damaged and cannot be read ({detail})"),
    ErrorSpec("too-many-rows", ERROR, "工作表行数过多（{detail}）", "请删除模板表格下方多余的行后重新发送", "the sheet has too many rows ({detail})"),
    # -- is it our template, for whom, for when
    ErrorSpec("not-a-template", ERROR, "不是本系统生成的填报模板（{detail}）", "请使用协调办下发的模板填写，不要自制表格", "not a template issued by this system ({detail})"),
    ErrorSpec("metadata-tampered", ERROR, "模板的隐藏信息被修改或损坏（{detail}）", "请使用协调办下发的原始模板重新填写", "the template's hidden metadata was edited or damaged ({detail})"),
    ErrorSpec("signature-mismatch", ERROR, "模板签名不符：隐藏信息被修改，或模板不是本项目签发的", "请使用协调办下发的原始模板重新填写", "signature mismatch: metadata edited, or template not issued by this project"),
    ErrorSpec("template-outdated", ERROR, "模板已过期：{detail}", "请向协调办索取最新模板后重新填写", "outdated template: {detail}"),
    ErrorSpec("department-mismatch", ERROR, "单位不符：本模板签发给 {expected}，但{detail}", "请使用本单位的模板填写；若确为本单位，请更正填报单位/文件名", "department mismatch: template issued to {expected}, but {detail}"),
    ErrorSpec("period-mismatch", ERROR, "期间不符：本模板是 {expected} 的模板，但{detail}", "请使用本期（{detail_period}）的模板填写，不要沿用其他期的模板", "period mismatch: this is the template for {expected}, but {detail}"),
    ErrorSpec("period-closed", ERROR, "期间已关闭：{detail}的报送已截止（目前开放：{open}）", "请使用本期模板填写；如确需更正{detail}的数据，请联系协调办重新开放该期间", "period closed: reporting for {detail} is closed (open now: {open})"),
    ErrorSpec("sheet-missing", ERROR, "找不到“填报”工作表", "请使用原始模板，不要删除或改动“填报”工作表", "the 填报 sheet is missing"),
    ErrorSpec("sheet-renamed", WARNING, "“填报”工作表被改名为“{detail}”，已按其内容读取", "下次请不要修改工作表名称", "the 填报 sheet was renamed to {detail!r}; read by its content"),
    ErrorSpec("column-missing", ERROR, "找不到“{detail}”列", "请使用原始模板，不要删除或改动表头", "column {detail!r} is missing"),
    ErrorSpec("extra-column", WARNING, "表格中增加了列（{detail}），其内容未读取", "请只在黄色单元格中填写，不要插入列", "a column was added ({detail}); its content was ignored"),
    ErrorSpec("extra-content", WARNING, "表格中增加了行或内容（{detail}），未读取", "请只在黄色单元格中填写，不要插入行", "an added row or content ({detail}) was ignored"),
    ErrorSpec("unattributed-value", ERROR, "此行填写了数值但没有指标编号（{value}），无法判断属于哪个指标", "请把数值填在对应指标行的“本期实际值”列，不要插入行", "a value ({value}) in a row without indicator id"),
    ErrorSpec("locked-cell-changed", ERROR, "受保护的单元格被修改：原为“{expected}”，现为“{value}”", "此列只读，请只在“本期实际值”和“备注”列填写；请用原始模板重新填写", "a locked cell was changed: was {expected!r}, now {value!r}"),
    ErrorSpec("protection-removed", WARNING, "工作表保护被取消", "请不要取消工作表保护", "the sheet protection was removed"),
    ErrorSpec("header-missing", WARNING, "表头“{detail}”未填写", "请填写填报人、联系电话和填报日期，便于核实", "header field {detail!r} is empty"),
    # -- values
    ErrorSpec("not-a-number", ERROR, "不是有效数字：“{value}”", "请只填写数字（可带本指标单位），如 820 或 820亿元；暂无数据请填“待核实”", "not a number: {value!r}"),
    ErrorSpec("wrong-unit", ERROR, "单位不符：“{value}”，本指标单位为 {unit}", "请换算为 {unit} 后只填写数字", "wrong unit: {value!r}, the indicator is in {unit}"),
    ErrorSpec("formula-no-value", ERROR, "单元格是公式但没有计算结果：{value}", "请在 Excel/WPS 中重新计算并保存，或直接填写数值", "a formula with no cached value: {value}"),
    ErrorSpec("formula-used", WARNING, "单元格是公式（{value}），已采用其计算结果", "建议直接填写数值", "a formula ({value}); its cached value was used"),
    ErrorSpec("not-reported", WARNING, "本期未报送（填写了“{value}”）", "数据核实后请重新报送", "not reported this period (marked {value!r})"),
    ErrorSpec("missing-value", ERROR, "必填项为空", "请填写本期实际值；暂时无法提供请填“待核实”并在备注中说明", "required value is empty"),
    ErrorSpec("missing-row", ERROR, "模板中的指标行被删除：{value}", "请使用原始模板，不要删除指标行", "a template row was deleted: {value}"),
    ErrorSpec("duplicate-row", ERROR, "指标 {value} 重复出现", "同一指标只能填写一行，请删除重复行", "indicator {value} appears twice"),
    ErrorSpec("unknown-indicator", ERROR, "未知指标编号：{value}", "请使用原始模板，不要修改或增加指标编号", "unknown indicator id: {value}"),
    ErrorSpec("not-this-department", ERROR, "指标 {value} 不属于本单位（{department}）或不在本模板中", "请只填写本单位模板中列出的指标", "indicator {value} does not belong to {department} or this template"),
    ErrorSpec("computed-indicator", ERROR, "指标 {value} 由系统自动计算，不接受填报", "请删除该行", "indicator {value} is computed and takes no values"),
    ErrorSpec("out-of-range", ERROR, "数值 {value} 超出允许范围（{detail}）", "请检查数值和单位（百分比填 0–100，如 65 表示 65%）", "value {value} out of range ({detail})"),
    ErrorSpec("not-integer", ERROR, "数值 {value} 应为整数（单位：{unit}）", "个数类指标请填写整数", "value {value} must be a whole number ({unit})"),
    ErrorSpec("bad-task-state", ERROR, "任务状态“{value}”无效", "请从下拉列表选择：未启动 / 推进中 / 已完成，进展写在备注中", "invalid task state {value!r}"),
    ErrorSpec("outlier-no-remark", ERROR, "数值 {value} 与参考值 {detail} 相差过大，且未填写备注", "请核实数值与单位；确认无误请在“备注”中说明原因后重新报送", "value {value} is far from the reference {detail} and has no remark"),
    ErrorSpec("outlier", WARNING, "数值 {value} 与参考值 {detail} 相差较大（已有备注，予以接收）", "请协调办核实", "value {value} is far from the reference {detail} (accepted: remark given)"),
    ErrorSpec("internal-error", ERROR, "读取文件时发生内部错误（{detail}）", "请联系系统管理员；文件已保留在 rejected/ 中", "internal error while reading the file ({detail})"),
)

CATALOGUE: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


class Bi(NamedTuple):
    """A message parameter in both languages: each half fills its own language's message."""

    zh: str
    en: str


def problem(
    code: str,
    file: str,
    sheet: str | None = None,
    cell: str | None = None,
    *,
    severity: str | None = None,
    **params: object,
) -> Problem:
    """A :class:`Problem` of a catalogued code; ``params`` fill the message and hint."""
    spec = CATALOGUE[code]
    zh_values = _Blank({k: _shown(v.zh if isinstance(v, Bi) else v) for k, v in params.items()})
    en_values = _Blank({k: _shown(v.en if isinstance(v, Bi) else v) for k, v in params.items()})
    zh = spec.message_zh.format_map(zh_values)
    en = spec.message_en.replace("!r}", "}").format_map(en_values)
    return Problem(
        code=code,
        file=file,
        sheet=sheet,
        cell=cell,
        message=f"{zh} / {en}",
        hint=spec.hint_zh.format_map(zh_values),
        severity=severity or spec.severity,
    )


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = "" if value is None else str(value)
    # A cell's whole content could be a page of text; a message needs only the start.
    return text if len(text) <= 60 else text[:57] + "…"


def list_codes() -> list[dict[str, str]]:
    """The catalogue as rows (code, severity, Chinese message, hint, English) for docs/CLI."""
    return [
        {
            "code": s.code,
            "severity": s.severity,
            "message_zh": s.message_zh,
            "hint_zh": s.hint_zh,
            "message_en": s.message_en,
        }
        for s in _SPECS
    ]


def markdown_table() -> str:
    """The catalogue as a Markdown table (``docs/intake.md`` is generated from this)."""
    lines = ["| code | 级别 severity | 说明 message | 怎么办 hint | English |", "|---|---|---|---|---|"]
    for row in list_codes():
        cells = [row["code"], "错误 error" if row["severity"] == ERROR else "提示 warning",
                 row["message_zh"], row["hint_zh"], row["message_en"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
