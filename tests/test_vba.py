"""Tests of plan_tracker.vba: compression, project streams, compound file, olevba view."""

from __future__ import annotations

import itertools
import random
import struct
import zipfile
from pathlib import Path

import olefile
import pytest
import xlwings
from hypothesis import given, settings
from hypothesis import strategies as st
from oletools.olevba import VBA_Parser, decompress_stream
from plan_tracker.vba import (
    ModuleKind,
    VbaModule,
    VbaProjectError,
    build_vba_project,
    class_file_to_source,
    compress,
    decompress,
    decrypt_project_data,
    encrypt_project_data,
    write_compound_file,
)

RED, BLACK = 0, 1  # MS-CFB directory entry colours
XLWINGS_DIR = Path(xlwings.__file__).parent
STANDALONE_XLSM = XLWINGS_DIR / "quickstart_standalone.xlsm"


def olevba_decompress(data: bytes) -> bytes:
    return bytes(decompress_stream(bytearray(data)))


def last_chunk_is_raw(container: bytes) -> bool:
    pos, raw = 1, False
    while pos < len(container):
        (header,) = struct.unpack_from("<H", container, pos)
        raw = not header & 0x8000
        pos += 2 + (header & 0x0FFF) + 1
    return raw


def assert_round_trip(data: bytes) -> None:
    container = compress(data)
    ours, theirs = decompress(container), olevba_decompress(container)
    assert ours == theirs
    if ours != data:
        # Only allowed case: an incompressible short final chunk, stored raw and NUL-padded.
        assert last_chunk_is_raw(container)
        assert ours.startswith(data) and set(ours[len(data) :]) == {0}
        assert len(data) % 4096 > 3640
    else:
        assert ours == data


# --- compression ----------------------------------------------------------------------------


def test_spec_example_decompresses_in_both_decompressors() -> None:
    # MS-OVBA 3.2.2 worked example (compressed bytes produced by Office).
    compressed = bytes.fromhex(
        "012FB000236161616263646582660070616768696A013808616B6C00306D6E6F70"
        "06710270041072737475761077787 97A003C".replace(" ", "")
    )
    expected = b"#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa"
    assert decompress(compressed) == expected
    assert olevba_decompress(compressed) == expected
    assert_round_trip(expected)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=12_000))
def test_round_trip_random_bytes(data: bytes) -> None:
    assert_round_trip(data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=6_000))
def test_round_trip_text(text: str) -> None:
    data = text.replace("\n", "\r\n").encode("utf-8")
    assert decompress(compress(data)) == data
    assert olevba_decompress(compress(data)) == data


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.integers(1, 9_000)),
        min_size=1,
        max_size=12,
    )
)
def test_round_trip_long_runs(runs: list[tuple[int, int]]) -> None:
    data = b"".join(bytes([byte]) * count for byte, count in runs)
    assert decompress(compress(data)) == data
    assert olevba_decompress(compress(data)) == data
    # Runs must actually be encoded as copy tokens, not literals.
    assert len(compress(data)) < len(data) // 8 + 4 * len(runs) + 64


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4095, 4096, 4097, 8192, 8193])
def test_chunk_boundaries(size: int) -> None:
    rng = random.Random(size)
    data = bytes(rng.choice(b"ab\r\n ") for _ in range(size))
    assert decompress(compress(data)) == data
    assert olevba_decompress(compress(data)) == data


def test_incompressible_short_last_chunk_is_raw_and_padded() -> None:
    data = random.Random(7).randbytes(4096 + 4000)
    container = compress(data)
    assert last_chunk_is_raw(container)
    out = decompress(container)
    assert out == olevba_decompress(container) == data + bytes(96)


def test_vba_source_compresses_well() -> None:
    source = (XLWINGS_DIR / "xlwings.bas").read_bytes()
    container = compress(source)
    assert len(container) < 0.5 * len(source)
    assert decompress(container) == source


def test_decompress_rejects_garbage() -> None:
    with pytest.raises(VbaProjectError):
        decompress(b"\x00abc")
    with pytest.raises(VbaProjectError):
        decompress(b"\x01\xff\xff")


# --- PROJECT stream obfuscation --------------------------------------------------------------


def test_decrypts_xlwings_own_project_values() -> None:
    with zipfile.ZipFile(STANDALONE_XLSM) as zf:
        ole = olefile.OleFileIO(zf.read("xl/vbaProject.bin"))
    text = ole.openstream("PROJECT").read().decode("latin-1")
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    project_id = values["ID"].strip('"')
    assert decrypt_project_data(values["CMG"].strip('"'), project_id) == bytes(4)
    assert decrypt_project_data(values["DPB"].strip('"'), project_id) == b"\x00"
    assert decrypt_project_data(values["GC"].strip('"'), project_id) == b"\xff"


@pytest.mark.parametrize("seed", [0, 1, 2, 6, 0x8D, 0xFF])
@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff", bytes(4), b"secret!"])
def test_encrypt_round_trip(seed: int, data: bytes) -> None:
    pid = "{12345678-ABCD-4EF0-9123-456789ABCDEF}"
    text = encrypt_project_data(data, pid, seed)
    assert text == text.upper() and int(text[:2], 16) == seed
    assert decrypt_project_data(text, pid) == data
    with pytest.raises(VbaProjectError):
        decrypt_project_data(text, "{00000000-0000-0000-0000-000000000000}")


# --- compound file ---------------------------------------------------------------------------


def _cfb_key(name: str) -> tuple[int, str]:
    return len(name), name.upper()


def check_red_black(ole: olefile.OleFileIO, sid: int) -> tuple[int, list[str]]:
    """Return (black height, in-order names) of the sibling tree rooted at ``sid``."""
    if sid == olefile.NOSTREAM:
        return 1, []
    entry = ole.direntries[sid]
    left_h, left = check_red_black(ole, entry.sid_left)
    right_h, right = check_red_black(ole, entry.sid_right)
    assert left_h == right_h, f"black height differs below {entry.name}"
    if entry.color == RED:
        for child in (entry.sid_left, entry.sid_right):
            if child != olefile.NOSTREAM:
                assert ole.direntries[child].color == BLACK, "red node with red child"
    return left_h + (entry.color == BLACK), [*left, entry.name, *right]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 12, 16, 20])
def test_compound_file_streams_and_tree(count: int) -> None:
    rng = random.Random(count)
    names = [f"S{rng.randrange(10 ** rng.randrange(1, 6))}_{i}" for i in range(count)]
    sizes = [0, 1, 63, 64, 65, 4095, 4096, 5000, 20_000]
    streams = {name: rng.randbytes(sizes[i % len(sizes)]) for i, name in enumerate(names)}
    tree = {"sub": dict(streams), "top": b"x" * 700, "Big": rng.randbytes(70_000)}
    ole = olefile.OleFileIO(write_compound_file(tree))
    for name, data in streams.items():
        assert ole.openstream(["sub", name]).read() == data
    assert ole.openstream("top").read() == b"x" * 700
    assert ole.openstream("Big").read() == tree["Big"]
    for entry in ole.direntries:
        if entry is not None and entry.sid_child != olefile.NOSTREAM:
            _, order = check_red_black(ole, entry.sid_child)
            assert order == sorted(order, key=_cfb_key)
            assert ole.direntries[entry.sid_child].color == BLACK


# --- the VBA project -------------------------------------------------------------------------


def sample_modules() -> list[VbaModule]:
    big = "\r\n".join(f"' line {i}: {'x' * (i % 70)}" for i in range(600))
    return [
        VbaModule.document("ThisWorkbook", workbook=True),
        VbaModule.document("Sheet1", code="Private Sub Worksheet_Activate()\r\nEnd Sub\r\n"),
        VbaModule(
            "Module1", 'Attribute VB_Name = "Module1"\nSub Hello()\n  MsgBox "hi"\nEnd Sub\n'
        ),
        VbaModule("BigOne", 'Attribute VB_Name = "BigOne"\r\n' + big + "\r\n"),
        VbaModule(
            "Counter",
            class_file_to_source(
                "VERSION 1.0 CLASS\r\nBEGIN\r\n  MultiUse = -1  'True\r\nEND\r\n"
                'Attribute VB_Name = "Counter"\r\nAttribute VB_Exposed = True\r\n'
                "Public Count As Long\r\n"
            ),
            ModuleKind.CLASS,
        ),
    ]


@pytest.fixture(scope="module")
def project_bin() -> bytes:
    return build_vba_project(sample_modules(), "PlanTracker")


def test_olevba_lists_every_module_with_identical_source(
    tmp_path: Path, project_bin: bytes
) -> None:
    path = tmp_path / "vbaProject.bin"
    path.write_bytes(project_bin)
    parser = VBA_Parser(str(path))
    assert parser.detect_vba_macros()
    found = {vba_filename: code for _, _, vba_filename, code in parser.extract_macros()}
    expected_names = {
        m.name + {"standard": ".bas", "class": ".cls", "document": ".cls"}[m.kind]
        for m in sample_modules()
    }
    assert set(found) == expected_names
    for module in sample_modules():
        code = found[module.name + (".bas" if module.kind is ModuleKind.STANDARD else ".cls")]
        norm = code.replace("\r\n", "\n")
        want = module.source.replace("\r\n", "\n")
        assert norm == (want if want.endswith("\n") else want + "\n")


def test_project_streams(project_bin: bytes) -> None:
    ole = olefile.OleFileIO(project_bin)
    assert sorted("/".join(e) for e in ole.listdir()) == sorted(
        ["PROJECT", "PROJECTwm", "VBA/_VBA_PROJECT", "VBA/dir"]
        + [f"VBA/{m.name}" for m in sample_modules()]
    )
    vba_project = ole.openstream("VBA/_VBA_PROJECT").read()
    assert vba_project[:2] == b"\xcc\x61" and vba_project[2:4] == b"\xff\xff"  # version 0xFFFF
    text = ole.openstream("PROJECT").read().decode("cp1252")
    lines = text.split("\r\n")
    assert "Document=ThisWorkbook/&H00000000" in lines
    assert "Document=Sheet1/&H00000000" in lines
    assert "Module=Module1" in lines and "Module=BigOne" in lines and "Class=Counter" in lines
    assert 'Name="PlanTracker"' in lines
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    pid = values["ID"].strip('"')
    assert decrypt_project_data(values["CMG"].strip('"'), pid) == bytes(4)  # unprotected
    assert decrypt_project_data(values["DPB"].strip('"'), pid) == b"\x00"  # no password
    assert decrypt_project_data(values["GC"].strip('"'), pid) == b"\xff"  # visible
    wm = ole.openstream("PROJECTwm").read()
    assert wm.startswith(b"ThisWorkbook\x00" + "ThisWorkbook".encode("utf-16-le") + b"\x00\x00")
    assert wm.endswith(b"\x00\x00")


def parse_dir(data: bytes) -> list[tuple[int, bytes]]:
    records, pos = [], 0
    while pos < len(data):
        rid, size = struct.unpack_from("<HI", data, pos)
        if rid == 0x0009:  # PROJECTVERSION: Size field is a reserved 4, payload is 6 bytes
            size = 6
        records.append((rid, data[pos + 6 : pos + 6 + size]))
        pos += 6 + size
        if rid == 0x0010:
            break
    return records


def test_dir_stream(project_bin: bytes) -> None:
    ole = olefile.OleFileIO(project_bin)
    records = parse_dir(decompress(ole.openstream("VBA/dir").read()))
    by_id: dict[int, list[bytes]] = {}
    for rid, payload in records:
        by_id.setdefault(rid, []).append(payload)
    assert by_id[0x0003] == [struct.pack("<H", 1252)]
    assert by_id[0x0004] == [b"PlanTracker"]
    assert by_id[0x0016] == [b"stdole", b"Office"]
    libids = [p[4:] for p in by_id[0x000D]]
    assert libids[0].startswith(b"*\\G{00020430-0000-0000-C000-000000000046}#2.0#0")
    assert libids[1].startswith(b"*\\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0")
    assert by_id[0x000F] == [struct.pack("<H", len(sample_modules()))]
    assert by_id[0x0019] == [m.name.encode() for m in sample_modules()]
    assert set(by_id[0x0031]) == {bytes(4)}  # MODULEOFFSET 0: source only, no p-code
    assert len(by_id.get(0x0021, [])) == 2 and len(by_id[0x0022]) == 3  # std vs doc/class
    assert records[-1] == (0x0010, b"")


def test_build_is_deterministic() -> None:
    assert build_vba_project(sample_modules()) == build_vba_project(sample_modules())


def test_class_file_conversion_matches_xlwings_standalone_workbook() -> None:
    """The attribute header equals what the VBA editor stored in xlwings' own workbook.

    The body is compared ignoring case: the editor re-cases identifiers it knows
    (``err.Raise`` is stored as ``Err.Raise``), and Excel does the same when it compiles ours.
    """
    parser = VBA_Parser(str(STANDALONE_XLSM))
    stored = {name: code for _, _, name, code in parser.extract_macros()}["Dictionary.cls"]
    converted = class_file_to_source((XLWINGS_DIR / "addin" / "Dictionary.cls").read_text())
    stored_lines = stored.replace("\r\n", "\n").rstrip("\n").split("\n")
    converted_lines = converted.replace("\r\n", "\n").rstrip("\n").split("\n")
    header = list(itertools.takewhile(lambda line: line.startswith("Attribute VB_"), stored_lines))
    assert len(header) == 9  # the module's own attributes, before any code
    assert converted_lines[: len(header)] == header
    assert [line.lower() for line in converted_lines] == [line.lower() for line in stored_lines]


@pytest.mark.parametrize("name", ["1abc", "has space", "x" * 32, "中文", ""])
def test_bad_module_names(name: str) -> None:
    with pytest.raises(VbaProjectError):
        VbaModule(name, f'Attribute VB_Name = "{name}"')


def test_source_must_fit_code_page_and_header() -> None:
    with pytest.raises(VbaProjectError, match="code page"):
        build_vba_project([VbaModule("M", 'Attribute VB_Name = "M"\n\' 汇总\n')])
    with pytest.raises(VbaProjectError, match="VB_Name"):
        build_vba_project([VbaModule("M", "Sub X()\nEnd Sub\n")])
    with pytest.raises(VbaProjectError, match="duplicate"):
        build_vba_project(
            [VbaModule("M", 'Attribute VB_Name = "M"'), VbaModule("m", 'Attribute VB_Name = "m"')]
        )
