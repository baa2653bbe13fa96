"""Hostile and wrong files (issue #7): each rejected with a clear code, before or instead of
parsing; the original kept in rejected/ with a feedback copy; odd names still accepted."""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile

import openpyxl
import pytest
from intake_helpers import fill_openpyxl, make_project, row_of
from plan_tracker.intake import FEEDBACK_PREFIX, run_intake
from plan_tracker.templates import SHEET_FORM, generate_templates
from plan_tracker.vba import write_compound_file
from plan_tracker.xlsxsafe import HostileFile, inspect_file, sniff
from test_intake import CLEAN, PERIOD

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">' for i in range(1, 10))
    + ']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol9;</t></si></sst>'
)


def _rezip(src: bytes, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None,
           compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w", compress) as zout:
        for info in zin.infolist():
            data = (replace or {}).get(info.filename, zin.read(info.filename))
            zout.writestr(info.filename, data)
        missing = {k: v for k, v in (replace or {}).items() if k not in zin.namelist()}
        for name, data in {**missing, **(add or {})}.items():
            zout.writestr(name, data)
    return out.getvalue()


def _patch_declared_size(data: bytes, member: str, size: int) -> bytes:
    """Make the central directory lie about a member's uncompressed size."""
    raw = bytearray(data)
    name = member.encode()
    at = raw.rfind(b"PK\x01\x02" , 0, raw.rfind(name))
    raw[at + 24: at + 28] = size.to_bytes(4, "little")
    return bytes(raw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    project = make_project(root / "proj")
    template = generate_templates(project, PERIOD, ["科技局"])[0]
    clean = fill_openpyxl(template, root / "clean.xlsx", CLEAN).read_bytes()
    rows = {i: row_of(openpyxl.load_workbook(template)[SHEET_FORM], i) for i in CLEAN}
    sheet = zipfile.ZipFile(io.BytesIO(clean)).read("xl/worksheets/sheet1.xml").decode()

    appended = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>x</t></is></c></row>' for r in range(40, 100_040))
    far = '<row r="500000"><c r="A500000" t="inlineStr"><is><t>x</t></is></c></row>'
    # No cell reference: calamine places the cell by the row number, 900 000 rows down.
    meta_part = "xl/worksheets/sheet3.xml"
    meta = zipfile.ZipFile(io.BytesIO(clean)).read(meta_part).decode()
    assert "payload" in meta  # the template's third sheet is _meta
    far_unreferenced = '<row r="900000"><c t="inlineStr"><is><t>x</t></is></c></row>'
    content_types = zipfile.ZipFile(io.BytesIO(clean)).read("[Content_Types].xml").decode()
    xlsm_types = content_types.replace(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    )
    ods = io.BytesIO()
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        z.writestr("content.xml", "<office:document-content/>")
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("word/document.xml", "<w:document/>")
    other_project = make_project(root / "other")
    foreign = generate_templates(other_project, PERIOD, ["科技局"])[0]

    def injected(wb):
        ws = wb[SHEET_FORM]
        for ref, text in ((f"H{rows['P2_TECH_SME']}", "=HYPERLINK(\"http://evil\",\"x\")"), ("E3", "=cmd|' /C calc'!A0"),
                          ("B4", "+86 532 1234"), (f"I{rows['P4_TECH_TRADE']}", "@SUM(1)"), (f"I{rows['P2_HITECH_ENT']}", "\t=1+1")):
            ws[ref].value = text
            ws[ref].data_type = "s"

    files: dict[str, tuple[bytes, set[str] | str]] = {
        "empty.xlsx": (b"", "empty-file"),
        "picture.xlsx": (b"\x89PNG\r\n\x1a\n" + os.urandom(2000), "not-excel"),
        "report.xlsx": (b"%PDF-1.4\n" + b"\x00\x01" * 500, "not-excel"),
        "table.xlsx": ("指标编号,本期实际值\nP4_TECH_TRADE,80\n".encode(), "wrong-file-type"),
        "page.xlsx": (b"<html><body><table><tr><td>80</td></tr></table></body></html>", "not-excel"),
        "legacy.xlsx": (write_compound_file({"Workbook": b"\x09\x08" + os.urandom(6000)}), "wrong-file-type"),
        "encrypted.xlsx": (write_compound_file({"EncryptionInfo": b"\x04\x00\x04\x00" + os.urandom(200), "EncryptedPackage": os.urandom(9000)}), "encrypted-file"),
        "macro.xlsx": (_rezip(clean, add={"xl/vbaProject.bin": os.urandom(3000)}), "wrong-file-type"),
        "macro_type.xlsx": (_rezip(clean, replace={"[Content_Types].xml": xlsm_types.encode()}), "wrong-file-type"),
        "calc.xlsx": (ods.getvalue(), "wrong-file-type"),
        "word.xlsx": (docx.getvalue(), "wrong-file-type"),
        "bomb_ratio.xlsx": (_rezip(clean, add={"xl/media/pad.bin": b"\x00" * (8 * 1024 * 1024)}), "zip-bomb"),
        "bomb_declared.xlsx": (_patch_declared_size(_rezip(clean), "xl/worksheets/sheet1.xml", 3_000_000_000), {"zip-bomb", "corrupt-file"}),
        "bomb_lying.xlsx": (_patch_declared_size(_rezip(clean, add={"xl/media/pad.bin": b"\x00" * (80 * 1024 * 1024)}), "xl/media/pad.bin", 1000), {"zip-bomb", "corrupt-file"}),
        "laughs.xlsx": (_rezip(clean, replace={"xl/sharedStrings.xml": LAUGHS.encode()}), "unsafe-xml"),
        "laughs_sheet.xlsx": (_rezip(clean, replace={"xl/worksheets/sheet1.xml": ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>' + re.sub(r"^<\\?xml[^>]*\\?>", "", sheet)).encode()}), "unsafe-xml"),
        "rows_100k.xlsx": (_rezip(clean, replace={"xl/worksheets/sheet1.xml": sheet.replace("</sheetData>", appended + "</sheetData>").encode()}), "too-many-rows"),
        "far_cell.xlsx": (_rezip(clean, replace={"xl/worksheets/sheet1.xml": sheet.replace("</sheetData>", far + "</sheetData>").encode()}), "too-many-rows"),
        "far_meta_cell.xlsx": (_rezip(clean, replace={meta_part: meta.replace("</sheetData>", far_unreferenced + "</sheetData>").encode()}), "too-many-rows"),
        "truncated.xlsx": (clean[: len(clean) // 2], "corrupt-file"),
        "foreign_project.xlsx": (fill_openpyxl(foreign, root / "foreign.xlsx", CLEAN).read_bytes(), "signature-mismatch"),
        "injected.xlsx": (fill_openpyxl(template, root / "inj.xlsx", CLEAN, edit=injected).read_bytes(), "not-a-number"),
    }
    for name, (data, _) in files.items():
        (project.inbox / name).write_bytes(data)
    odd = "科技局 ;rm -rf $(x) 'a' #1 %20 (最终版)\t.xlsx"
    (project.inbox / odd).write_bytes(clean)
    bad_bytes = os.fsdecode(b"\xff\xfe-\xe7\xa7\x91.xlsx")
    (project.inbox / bad_bytes).write_bytes(_rezip(clean))  # different bytes: not a duplicate
    report = run_intake(project, actor="test")
    return project, files, report, odd, bad_bytes


def _by_name(report, name):
    return next(f for f in report.files if f.original_name == name)


def test_each_hostile_file_is_rejected_with_its_code(world):
    project, files, report, _, _ = world
    for name, (_, expected) in files.items():
        outcome = _by_name(report, name)
        codes = {p.code for p in outcome.errors}
        wanted = {expected} if isinstance(expected, str) else expected
        assert outcome.status == "rejected", (name, outcome.problems)
        assert codes & wanted, (name, [(p.code, p.message) for p in outcome.problems])
        assert all(p.message and p.hint for p in outcome.errors)


def test_messages_say_what_the_file_really_is(world):
    _, _, report, _, _ = world
    assert "xls" in _by_name(report, "legacy.xlsx").errors[0].message
    assert "xlsm" in _by_name(report, "macro.xlsx").errors[0].message
    assert "ODS" in _by_name(report, "calc.xlsx").errors[0].message
    assert "CSV" in _by_name(report, "table.xlsx").errors[0].message
    assert "Word" in _by_name(report, "word.xlsx").errors[0].message


def test_every_hostile_original_is_kept_with_a_feedback_copy(world):
    project, files, report, _, _ = world
    for name in files:
        outcome = _by_name(report, name)
        assert outcome.path.exists() and project.rejected in outcome.path.parents
        assert outcome.path.read_bytes() == files[name][0]
        assert outcome.feedback_path.exists()
        wb = openpyxl.load_workbook(outcome.feedback_path)
        assert wb.sheetnames[0] == "校验结果"
    originals = [p for p in project.rejected.iterdir() if not p.name.startswith(FEEDBACK_PREFIX)]
    archived = [p for p in project.archive.rglob("*") if p.is_file()]
    assert len(originals) + len(archived) == len(report.files) == len(files) + 2
    assert list(project.inbox.iterdir()) == []


def test_odd_file_names_are_accepted_and_stored_readably(world):
    project, _, report, odd, bad_bytes = world
    good = _by_name(report, odd.replace("\t", "_"))
    assert good.status == "accepted", good.problems
    assert good.path.exists() and "\t" not in good.path.name
    shown = next(f for f in report.files if f.original_name.endswith("-科.xlsx"))
    assert shown.status == "accepted", shown.problems
    with project.open_store() as store:
        names = set(store.submissions()["file_name"])
    assert shown.original_name in names and "\ufffd" in shown.original_name


def test_text_that_starts_like_a_formula_never_becomes_one(world):
    _, _, report, _, _ = world
    outcome = _by_name(report, "injected.xlsx")
    with zipfile.ZipFile(outcome.feedback_path) as z:
        xml = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/sheet"))
    assert not re.search(r"<f[ >]", xml)
    wb = openpyxl.load_workbook(outcome.feedback_path)
    assert wb[SHEET_FORM]["E3"].value == "=cmd|' /C calc'!A0" and wb[SHEET_FORM]["E3"].quotePrefix
    listed = [c.value for row in wb["校验结果"].iter_rows() for c in row if isinstance(c.value, str)]
    assert any("HYPERLINK" in v for v in listed)


def test_sniffing_does_not_trust_the_extension(tmp_path):
    assert sniff(b"", 0) == "empty"
    assert sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", 100) == "ole2"
    assert sniff(b"PK\x03\x04rest", 100) == "zip"
    assert sniff(b"a,b\n1,2", 7) == "text"
    assert sniff(b"\x00\x01\x02", 3) == "binary"
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    with pytest.raises(HostileFile) as caught:
        inspect_file(path)
    assert caught.value.code in ("wrong-file-type", "corrupt-file")


def test_hostile_file_guards_do_not_depend_on_the_order_of_files(world, tmp_path):
    """The same bomb alone in an inbox is rejected the same way (no state leaks between files)."""
    project, files, _, _, _ = world
    shutil.copytree(project.root, tmp_path / "copy")
    from plan_tracker.project import Project

    copy = Project(tmp_path / "copy")
    (copy.inbox / "alone.xlsx").write_bytes(files["bomb_ratio.xlsx"][0])
    (outcome,) = run_intake(copy, actor="test").files
    assert [p.code for p in outcome.errors] == ["zip-bomb"]
