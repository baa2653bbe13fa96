"""Hostile-file guards and injection-safe writing, for every workbook the project reads or writes.

Reading a submitted file is safe only after :func:`inspect_file` has passed it:

* the content, not the extension, decides the type: OLE2 (legacy ``.xls`` or an encrypted
  OOXML ``EncryptedPackage``), ZIP (xlsx, xlsm with ``xl/vbaProject.bin`` or a macro-enabled
  content type, ODS with its ``mimetype`` member), text (CSV), anything else;
* a ZIP's declared sizes, member count and compression ratios are checked from the central
  directory BEFORE any member is inflated, and the actual inflated size of every member is
  then counted with a hard cap (declared sizes can lie), so a zip bomb costs bounded time and
  memory;
* no XML part may carry a DTD (OOXML never does): the head of every part is checked while
  it is inflated, so also the parts only calamine reads (sharedStrings);
* the XML parts we parse go through ``defusedxml`` (no DTDs, entities or external
  references), which rejects billion-laughs files, or, for the worksheet scan that runs on
  every cell, through expat with the same guards installed (:func:`expat_scan`, ~3× faster
  than ``iterparse``).

The parts inflated while counting are kept (those of at most :data:`KEEP_PART_BYTES`, i.e.
every part of a real template) so that the reader does not inflate them a second time.

Writing: text that came from a submission (remarks, names, phone numbers) must never become a
formula in a workbook we write. :func:`safe_cell_text` cleans it; :func:`set_text_cell`
(openpyxl) and :func:`write_text` (XlsxWriter) write it as a string cell, with the quotePrefix
style (Excel's leading apostrophe) when it starts like a formula, so it also stays text when
someone edits the cell later. :func:`safe_csv_text` is the CSV form (OWASP: leading ``'``).
"""

from __future__ import annotations

import re
import xml.parsers.expat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import defusedxml.ElementTree as SafeET
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

# Limits: a filled template is ~10–30 KB zipped, ~100 KB inflated. These leave two orders of
# magnitude of room for what Excel/WPS/LibreOffice add (styles, themes, printer settings).
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_MEMBERS = 500
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 128 * 1024 * 1024
MAX_RATIO = 200  # inflated / compressed, for members big enough that a ratio means something
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_ROWS = 2000  # a template has a few dozen rows; anything past this is appended junk
MAX_XML_READ = 32 * 1024 * 1024  # the most of one XML part we ever hand to a parser
KEEP_PART_BYTES = 1024 * 1024  # XML parts up to this size are kept from the inflate pass
_INFLATE_CHUNK = 1024 * 1024
_DTD_MARKS = (b"<!DOCTYPE", b"<!ENTITY")

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"
CT_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
MAX_CELL_TEXT = 32767  # Excel's limit for one cell


class HostileFile(Exception):
    """A file refused before (or instead of) parsing; ``code`` is an errors.py code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class FileCheck:
    """What :func:`inspect_file` found; ``kind`` is ``"xlsx"`` when the file may be parsed."""

    kind: str
    size: int
    members: dict[str, int] = field(default_factory=dict)  # name → actual inflated size
    parts: dict[str, bytes] = field(default_factory=dict)  # small XML parts, inflated once


# --------------------------------------------------------------------------- sniffing


def sniff(head: bytes, size: int) -> str:
    """Classify by content: ``empty``, ``ole2``, ``zip``, ``text`` or ``binary``."""
    if size == 0:
        return "empty"
    if head.startswith(OLE2_MAGIC):
        return "ole2"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if _looks_like_text(head):
        return "text"
    return "binary"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for encoding in ("utf-8", "gb18030"):
        try:
            head.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False


def _text_kind(head: bytes) -> str:
    lowered = head[:512].lower()
    if b"<html" in lowered or b"<!doctype html" in lowered or b"<table" in lowered:
        return "HTML 网页 / HTML page"
    if lowered.lstrip().startswith(b"<?xml"):
        return "XML 文本（可能是 Excel 2003 XML） / XML text"
    if b"," in head or b"\t" in head or b";" in head:
        return "CSV/文本文件 / CSV or text"
    return "文本文件 / text file"


def _ole2_kind(path: Path) -> tuple[str, str]:
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(entry) for entry in ole.listdir()}
    except Exception as exc:  # olefile raises many types on a damaged header
        return "corrupt-file", f"OLE2: {exc}"
    if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
        return "encrypted-file", "EncryptedPackage"
    if "Workbook" in streams or "Book" in streams:
        return "wrong-file-type", "旧版 Excel 97-2003 (.xls) / legacy .xls"
    return "not-excel", "OLE2 复合文档（可能是 Word 等） / OLE2 compound file"


def inspect_file(path: Path, max_rows: int = MAX_ROWS) -> FileCheck:
    """Check a submitted file before parsing it; raise :class:`HostileFile` with a code.

    Returns the member sizes of a ZIP that is a plain xlsx (no macros) and safe to open.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(4096)
    kind = sniff(head, size)
    if kind == "empty":
        raise HostileFile("empty-file", "0 bytes")
    if size > MAX_FILE_BYTES:
        raise HostileFile("file-too-large", f"{size / 1048576:.1f} MB > {MAX_FILE_BYTES // 1048576} MB")
    if kind == "ole2":
        code, detail = _ole2_kind(path)
        raise HostileFile(code, detail)
    if kind == "text":
        text_kind = _text_kind(head)
        if text_kind.startswith("CSV"):
            raise HostileFile("wrong-file-type", "CSV 文本文件 / CSV text")
        raise HostileFile("not-excel", text_kind)
    if kind == "binary":
        raise HostileFile("not-excel", _binary_kind(head))
    parts: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = _check_zip(archive, parts)
            file_kind = _zip_kind(archive, members, parts)
    except zipfile.BadZipFile as exc:
        raise HostileFile("corrupt-file", f"ZIP: {exc}") from exc
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise HostileFile("corrupt-file", f"ZIP: {exc}") from exc
    if file_kind != "xlsx":
        raise HostileFile("wrong-file-type", file_kind)
    return FileCheck("xlsx", size, members, parts)


def _binary_kind(head: bytes) -> str:
    known = {
        b"%PDF": "PDF 文件 / PDF",
        b"\x89PNG": "PNG 图片 / PNG image",
        b"\xff\xd8\xff": "JPEG 图片 / JPEG image",
        b"Rar!": "RAR 压缩包 / RAR archive",
        b"7z\xbc\xaf": "7z 压缩包 / 7z archive",
        b"\x1f\x8b": "gzip 压缩包 / gzip archive",
    }
    for magic, name in known.items():
        if head.startswith(magic):
            return name
    return "未知二进制文件 / unknown binary"


def _check_zip(archive: zipfile.ZipFile, keep: dict[str, bytes] | None = None) -> dict[str, int]:
    """Sizes and ratios from the central directory, then every member inflated with a cap.
    XML parts with a DTD are refused (after the size checks, which come first); small XML
    parts are put in ``keep``."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise HostileFile("zip-bomb", f"{len(infos)} 个成员 / members > {MAX_MEMBERS}")
    declared_total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise HostileFile("encrypted-file", f"ZIP 加密成员 / encrypted member {info.filename}")
        declared_total += info.file_size
        if info.file_size > MAX_MEMBER_BYTES or declared_total > MAX_TOTAL_BYTES:
            raise HostileFile("zip-bomb", f"{info.filename}: 声明解压 {info.file_size} 字节 / declared size")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise HostileFile(
                "zip-bomb",
                f"{info.filename}: 压缩比 / ratio {info.file_size // max(info.compress_size, 1)}:1",
            )
    # Declared sizes are the sender's word: inflate each member with a cap to know the truth.
    actual: dict[str, int] = {}
    total = 0
    unsafe: str | None = None
    for info in infos:
        if info.is_dir():
            continue
        budget = min(MAX_MEMBER_BYTES, MAX_TOTAL_BYTES - total)
        count = 0
        is_xml = info.filename.endswith((".xml", ".rels"))
        first: bytes | None = None
        with archive.open(info) as member:
            while chunk := member.read(_INFLATE_CHUNK):
                if first is None:
                    first = chunk
                count += len(chunk)
                if count > budget:
                    raise HostileFile("zip-bomb", f"{info.filename}: 实际解压超过 / inflates past {budget} bytes")
        if count > RATIO_FLOOR_BYTES and count > MAX_RATIO * max(info.compress_size, 1):
            raise HostileFile("zip-bomb", f"{info.filename}: 压缩比 / ratio {count // max(info.compress_size, 1)}:1")
        total += count
        actual[info.filename] = count
        if is_xml and first is not None:
            # A DTD can only come before the root element, i.e. near the start of the part.
            head = first[:4096].upper()
            if unsafe is None and any(mark in head for mark in _DTD_MARKS):
                unsafe = info.filename
            if keep is not None and count == len(first) and count <= KEEP_PART_BYTES:
                keep[info.filename] = first
    if unsafe is not None:
        raise HostileFile("unsafe-xml", f"{unsafe}: DTD/ENTITY")
    return actual


def _zip_kind(archive: zipfile.ZipFile, members: dict[str, int], parts: dict[str, bytes] | None = None) -> str:
    names = set(members)
    if "mimetype" in names:
        with archive.open("mimetype") as handle:
            if handle.read(100).startswith(ODS_MIME):
                return "OpenDocument 表格 (.ods) / ODS spreadsheet"
    if "[Content_Types].xml" not in names:
        return "不是 Excel 的 ZIP 压缩包 / a ZIP archive, not Excel"
    types = parse_xml(part_bytes(archive, "[Content_Types].xml", parts), "[Content_Types].xml")
    content_types = {
        el.get("ContentType", "") for el in types.iter() if el.tag in (f"{CT_NS}Override", f"{CT_NS}Default")
    }
    if any(n.lower().endswith("vbaproject.bin") for n in names) or XLSM_MAIN in content_types:
        return "启用宏的工作簿 (.xlsm) / macro-enabled workbook"
    if any("macroEnabled" in ct or "vbaProject" in ct for ct in content_types):
        return "启用宏的工作簿 (.xlsm) / macro-enabled workbook"
    if "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml" in content_types:
        return "Excel 模板文件 (.xltx) / Excel template file"
    if XLSX_MAIN not in content_types or "xl/workbook.xml" not in names:
        if any("wordprocessingml" in ct for ct in content_types):
            return "Word 文档 (.docx) / Word document"
        if any("presentationml" in ct for ct in content_types):
            return "PowerPoint 文档 / PowerPoint document"
        return "不是 Excel 工作簿的 ZIP 压缩包 / a ZIP archive, not an Excel workbook"
    return "xlsx"


# --------------------------------------------------------------------------- XML


def read_member(archive: zipfile.ZipFile, name: str, limit: int = MAX_XML_READ) -> bytes:
    """One member's bytes, at most ``limit`` (beyond it the file is refused)."""
    with archive.open(name) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise HostileFile("zip-bomb", f"{name} > {limit} bytes")
    return data


def part_bytes(archive: zipfile.ZipFile, name: str, parts: dict[str, bytes] | None = None) -> bytes:
    """A part's bytes: kept from :func:`inspect_file` if it was small, else read (bounded)."""
    if parts is not None and name in parts:
        return parts[name]
    return read_member(archive, name)


def parse_xml(data: bytes, where: str) -> Any:
    """Parse an XML part with defusedxml: DTDs with entities and external references fail."""
    try:
        return SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise HostileFile("unsafe-xml", f"{where}: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise HostileFile("corrupt-file", f"{where}: XML {exc}") from exc


def iterparse_xml(handle: IO[bytes], where: str) -> Iterator[tuple[str, Any]]:
    """Streaming defusedxml parse (``start``/``end`` events), for sheets of unknown size."""
    try:
        yield from SafeET.iterparse(
            handle, events=("start", "end"), forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise HostileFile("unsafe-xml", f"{where}: {type(exc).__name__}") from exc
    except SafeET.ParseError as exc:
        raise HostileFile("corrupt-file", f"{where}: XML {exc}") from exc


def _dtd_forbidden(name: str, sysid: str | None, pubid: str | None, _internal: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _entity_forbidden(name: str, *args: Any) -> None:
    raise EntitiesForbidden(name, None, None, None, None, None)


def _external_forbidden(context: str, base: str | None, sysid: str | None, pubid: str | None) -> None:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def expat_scan(
    source: bytes | IO[bytes],
    where: str,
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None] | None = None,
    setup: Callable[[Any], None] | None = None,
) -> None:
    """Stream an XML part through expat, calling ``start(name, attributes)`` and
    ``end(name)`` (names as written, with any prefix), without building a tree.

    The guards are defusedxml's (its ``DefusedXMLParser`` installs the same handlers): any
    DTD, entity declaration or external reference stops the parse as ``unsafe-xml``. Used
    where every cell of a sheet is visited; ``setup(parser)`` may install more handlers
    (character data). A handler may raise :class:`HostileFile` to stop early.
    """
    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _dtd_forbidden
    parser.EntityDeclHandler = _entity_forbidden
    parser.UnparsedEntityDeclHandler = _entity_forbidden
    parser.ExternalEntityRefHandler = _external_forbidden
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True  # one character-data call per text node, not one per chunk
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if setup is not None:
        setup(parser)
    try:
        if isinstance(source, bytes):
            parser.Parse(source, True)
        else:
            parser.ParseFile(source)
    except DefusedXmlException as exc:
        raise HostileFile("unsafe-xml", f"{where}: {type(exc).__name__}") from exc
    except xml.parsers.expat.ExpatError as exc:
        raise HostileFile("corrupt-file", f"{where}: XML {exc}") from exc


# --------------------------------------------------------------------------- writing


def looks_like_formula(text: str) -> bool:
    """Would Excel/WPS/LibreOffice (or a CSV reader) take this typed text as a formula/DDE?"""
    return text.startswith(FORMULA_START)


def safe_cell_text(value: object) -> str:
    """Text from a submission made safe to put in a cell: characters XML cannot hold are
    dropped and the length capped at Excel's limit. The visible text is otherwise kept as
    is — the writer (``set_text_cell``/``write_text``) keeps it from becoming a formula."""
    text = "" if value is None else str(value)
    text = _ILLEGAL_XML.sub("", text)
    return text[:MAX_CELL_TEXT]


def set_text_cell(cell: Any, value: object) -> None:
    """openpyxl: write ``value`` as a string cell that can never be a formula."""
    text = safe_cell_text(value)
    cell.value = text
    cell.data_type = "s"  # openpyxl marks text starting with "=" as a formula: undo that
    if looks_like_formula(text):
        cell.quotePrefix = True


def write_text(worksheet: Any, row: int, col: int, value: object, cell_format: Any = None, quoted_format: Any = None) -> None:
    """XlsxWriter: ``write_string`` (never a formula); ``quoted_format`` (a format with
    ``quote_prefix``) is used when the text starts like a formula."""
    text = safe_cell_text(value)
    fmt = quoted_format if looks_like_formula(text) and quoted_format is not None else cell_format
    worksheet.write_string(row, col, text, fmt)


def safe_csv_text(value: object) -> str:
    """CSV cells: a leading apostrophe on formula-like text (OWASP CSV injection)."""
    text = safe_cell_text(value)
    return "'" + text if looks_like_formula(text) else text
