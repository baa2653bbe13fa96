"""Write a source-only VBA project (``vbaProject.bin``) without Excel.

Why this exists: the coordinator's master workbook must carry its macros when it is built on
a machine without Excel, and no package on PyPI writes a VBA project correctly. Excel accepts a
project that holds only *compressed module source* and no compiled p-code, provided the
``_VBA_PROJECT`` stream says version ``0xFFFF``: Excel then compiles every module from source
on first open (xlwings ships its own standalone workbook the same way). LibreOffice reads the
same source.

The pieces, all from [MS-OVBA] and [MS-CFB]:

* :func:`compress` / :func:`decompress` — the MS-OVBA run-length (LZ77-style) container format
  used for the ``dir`` stream and for module source;
* the ``dir`` stream (project information, references, module records), the ``PROJECT`` text
  stream, ``PROJECTwm`` and ``_VBA_PROJECT``;
* a minimal compound-file (CFB version 3) writer, :func:`write_compound_file`.

Public entry point: :func:`build_vba_project`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ModuleKind",
    "VbaModule",
    "VbaProjectError",
    "build_vba_project",
    "class_file_to_source",
    "compress",
    "decompress",
    "decrypt_project_data",
    "encrypt_project_data",
    "write_compound_file",
]


class VbaProjectError(ValueError):
    """The requested project cannot be represented (bad module name, unencodable source...)."""


# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.4.1: compression
# ---------------------------------------------------------------------------------------------

_CHUNK = 4096  # decompressed bytes per chunk
_MAX_CANDIDATES = 256  # how far back along a hash chain we look; bounds the cost per byte


def _copy_token_layout(difference: int) -> tuple[int, int]:
    """Return ``(bit_count, maximum_length)`` of a CopyToken at ``difference`` bytes into a chunk.

    The split of the 16-bit token between offset and length shifts as the chunk fills
    (MS-OVBA 2.4.1.3.19.1): early in a chunk offsets are small, so more bits go to length.
    """
    bit_count = max((difference - 1).bit_length(), 4)
    return bit_count, (0xFFFF >> bit_count) + 3


def _compress_chunk(data: bytes) -> bytes:
    """Compress one decompressed chunk (``len(data) <= 4096``) to its token sequences."""
    out = bytearray()
    chains: dict[bytes, list[int]] = {}
    pos, end = 0, len(data)

    def remember(i: int) -> None:
        if i + 3 <= end:
            chains.setdefault(data[i : i + 3], []).append(i)

    while pos < end:
        flag_index = len(out)
        out.append(0)
        flags = 0
        for bit in range(8):
            if pos >= end:
                break
            best_len = best_off = 0
            if pos > 0 and pos + 3 <= end:
                # As MS-OVBA 2.4.1.3.19.4: nearest candidate first, longest match wins (ties
                # keep the nearer one). Matches are capped at the token's maximum length while
                # scanning, which keeps long runs linear; only tie-breaking between capped
                # matches can differ from the spec's exhaustive search.
                bit_count, max_len = _copy_token_layout(pos)
                limit = min(max_len, end - pos)
                for cand in reversed(chains.get(data[pos : pos + 3], [])[-_MAX_CANDIDATES:]):
                    length = 3
                    # Overlapping matches are allowed: the decompressor copies byte by byte.
                    while length < limit and data[cand + length] == data[pos + length]:
                        length += 1
                    if length > best_len:
                        best_len, best_off = length, pos - cand
                        if length == limit:
                            break
            if best_len >= 3:
                bit_count, _ = _copy_token_layout(pos)
                token = ((best_off - 1) << (16 - bit_count)) | (best_len - 3)
                out += struct.pack("<H", token)
                flags |= 1 << bit
                for i in range(pos, pos + best_len):
                    remember(i)
                pos += best_len
            else:
                out.append(data[pos])
                remember(pos)
                pos += 1
        out[flag_index] = flags
    return bytes(out)


def compress(data: bytes) -> bytes:
    """Compress ``data`` into an MS-OVBA CompressedContainer.

    Each 4096-byte piece becomes one chunk. A chunk that does not shrink is stored raw, which
    the format only allows as exactly 4096 bytes: a short *final* chunk stored raw is therefore
    padded with NUL bytes (MS-OVBA 2.4.1.3.10), and decompression returns those NULs too. That
    only happens for incompressible binary data, never for VBA source text.
    """
    out = bytearray(b"\x01")  # SignatureByte
    for start in range(0, len(data), _CHUNK):
        piece = data[start : start + _CHUNK]
        body = _compress_chunk(piece)
        if len(body) <= _CHUNK:
            out += struct.pack("<H", 0xB000 | (len(body) + 2 - 3))  # flag=1, signature=0b011
            out += body
        else:
            out += struct.pack("<H", 0x3000 | (_CHUNK + 2 - 3))  # flag=0: raw chunk
            out += piece.ljust(_CHUNK, b"\x00")
    return bytes(out)


def decompress(container: bytes) -> bytes:
    """Decompress an MS-OVBA CompressedContainer (the inverse of :func:`compress`)."""
    if not container or container[0] != 0x01:
        raise VbaProjectError("not an MS-OVBA compressed container (signature byte != 0x01)")
    out = bytearray()
    pos = 1
    while pos < len(container):
        if pos + 2 > len(container):
            raise VbaProjectError("truncated chunk header")
        (header,) = struct.unpack_from("<H", container, pos)
        size = (header & 0x0FFF) + 3
        if (header >> 12) & 0b111 != 0b011:
            raise VbaProjectError(f"bad chunk signature at offset {pos}")
        chunk_end = min(pos + size, len(container))
        pos += 2
        chunk_start = len(out)
        if not header & 0x8000:  # raw chunk
            out += container[pos : pos + _CHUNK]
            pos += _CHUNK
            continue
        while pos < chunk_end:
            flags = container[pos]
            pos += 1
            for bit in range(8):
                if pos >= chunk_end:
                    break
                if not flags & (1 << bit):
                    out.append(container[pos])
                    pos += 1
                    continue
                (token,) = struct.unpack_from("<H", container, pos)
                pos += 2
                bit_count, _ = _copy_token_layout(len(out) - chunk_start)
                offset = (token >> (16 - bit_count)) + 1
                length = (token & (0xFFFF >> bit_count)) + 3
                source = len(out) - offset
                if source < chunk_start:
                    raise VbaProjectError("copy token points before its chunk")
                for i in range(length):
                    out.append(out[source + i])
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.4.3: the "encryption" of the PROJECT stream's CMG / DPB / GC values
# ---------------------------------------------------------------------------------------------


def _project_key(project_id: str) -> int:
    return sum(project_id.encode("ascii")) & 0xFF


def encrypt_project_data(data: bytes, project_id: str, seed: int) -> str:
    """Obfuscate ``data`` for the PROJECT stream (MS-OVBA 2.4.3.2); returns upper-case hex.

    Protection state (CMG), password (DPB) and visibility (GC) are stored this way and Excel
    expects all three. ``seed`` is taken as a parameter so that builds are reproducible; the
    "ignored" filler bytes are zeros for the same reason.
    """
    seed &= 0xFF
    version, key = 2, _project_key(project_id)
    out = [seed, seed ^ version, seed ^ key]
    unencrypted1, encrypted1, encrypted2 = key, seed ^ key, seed ^ version

    def push(byte: int) -> None:
        nonlocal unencrypted1, encrypted1, encrypted2
        enc = ((encrypted2 + unencrypted1) & 0xFF) ^ byte
        out.append(enc)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte

    for _ in range((seed & 6) >> 1):
        push(0)
    for byte in struct.pack("<I", len(data)) + data:
        push(byte)
    return bytes(out).hex().upper()


def decrypt_project_data(text: str, project_id: str | None = None) -> bytes:
    """Reverse :func:`encrypt_project_data`; checks the version and, if given, the project key."""
    raw = bytes.fromhex(text)
    seed, version_enc, key_enc = raw[0], raw[1], raw[2]
    if seed ^ version_enc != 2:
        raise VbaProjectError("unknown PROJECT data encryption version")
    key = seed ^ key_enc
    if project_id is not None and key != _project_key(project_id):
        raise VbaProjectError("PROJECT data was encrypted for a different project id")
    unencrypted1, encrypted1, encrypted2 = key, key_enc, version_enc
    plain = bytearray()
    for enc in raw[3:]:
        byte = enc ^ ((encrypted2 + unencrypted1) & 0xFF)
        plain.append(byte)
        encrypted2, encrypted1, unencrypted1 = encrypted1, enc, byte
    ignored = (seed & 6) >> 1
    (length,) = struct.unpack_from("<I", plain, ignored)
    data = bytes(plain[ignored + 4 :])
    if len(data) != length:
        raise VbaProjectError("PROJECT data length mismatch")
    return data


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


class ModuleKind(enum.StrEnum):
    """What a module is: decides its ``dir`` record type and its ``PROJECT`` stream line."""

    STANDARD = "standard"  # a .bas module
    CLASS = "class"  # a .cls class module
    DOCUMENT = "document"  # ThisWorkbook / Sheet1 ...: bound to a workbook or sheet code name


_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
_WORKBOOK_BASE = "0{00020819-0000-0000-C000-000000000046}"
_WORKSHEET_BASE = "0{00020820-0000-0000-C000-000000000046}"
_CLASS_BASE = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"


@dataclass(frozen=True)
class VbaModule:
    """One module: its VBA name, its source text (as stored, ``Attribute`` lines included)."""

    name: str
    source: str
    kind: ModuleKind = ModuleKind.STANDARD

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ModuleKind(self.kind))
        if not _NAME_RE.match(self.name):
            raise VbaProjectError(
                f"VBA module name {self.name!r} must be an ASCII identifier of at most 31 characters"
            )

    @classmethod
    def document(cls, name: str, *, workbook: bool = False, code: str = "") -> VbaModule:
        """A document module for the workbook (``workbook=True``) or a worksheet code name.

        Its source carries the same attribute header Excel writes, so Excel binds it to the
        object whose ``codeName`` is ``name``.
        """
        base = _WORKBOOK_BASE if workbook else _WORKSHEET_BASE
        header = "\r\n".join(
            [
                f'Attribute VB_Name = "{name}"',
                f'Attribute VB_Base = "{base}"',
                "Attribute VB_GlobalNameSpace = False",
                "Attribute VB_Creatable = False",
                "Attribute VB_PredeclaredId = True",
                "Attribute VB_Exposed = True",
                "Attribute VB_TemplateDerived = False",
                "Attribute VB_Customizable = True",
            ]
        )
        return cls(name, header + "\r\n" + code, ModuleKind.DOCUMENT)


def class_file_to_source(text: str) -> str:
    """Turn an exported ``.cls`` file into the source the VBA editor stores after importing it.

    The export header (``VERSION 1.0 CLASS`` / ``BEGIN`` ... ``END``) is not part of the stored
    module; instead the editor adds ``VB_Base``, ``VB_TemplateDerived`` and ``VB_Customizable``.
    Reproducing that exactly means the project looks as if a person had imported the file.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("VERSION "):
        end = lines.index("END")
        lines = lines[end + 1 :]
    attrs: dict[str, str] = {}
    body_start = 0
    for i, line in enumerate(lines):
        match = re.match(r"^Attribute (VB_\w+) = (.*)$", line)
        if not match:
            body_start = i
            break
        attrs[match.group(1)] = match.group(2)
    else:
        body_start = len(lines)
    if "VB_Name" not in attrs:
        raise VbaProjectError("class file without 'Attribute VB_Name'")
    order = [
        ("VB_Name", None),
        ("VB_Base", f'"{_CLASS_BASE}"'),
        ("VB_GlobalNameSpace", "False"),
        ("VB_Creatable", "False"),
        ("VB_PredeclaredId", "False"),
        ("VB_Exposed", "False"),
        ("VB_TemplateDerived", "False"),
        ("VB_Customizable", "False"),
    ]
    header = [f"Attribute {key} = {attrs.pop(key, default)}" for key, default in order]
    header += [f"Attribute {key} = {value}" for key, value in attrs.items()]
    return "\r\n".join(header + lines[body_start:])


# ---------------------------------------------------------------------------------------------
# MS-OVBA 2.3: project streams
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    name: str
    libid: str


# The two references every Excel project carries (VBA and Excel itself are implicit). The
# paths are hints only: Excel resolves registered type libraries by GUID and version.
DEFAULT_REFERENCES: tuple[_Reference, ...] = (
    _Reference(
        "stdole",
        r"*\G{00020430-0000-0000-C000-000000000046}#2.0#0"
        r"#C:\Windows\System32\stdole2.tlb#OLE Automation",
    ),
    _Reference(
        "Office",
        r"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0"
        r"#C:\Program Files\Common Files\Microsoft Shared\OFFICE16\MSO.DLL"
        r"#Microsoft Office 16.0 Object Library",
    ),
)

_LCID = 0x0409
_SYSKIND_WIN64 = 3  # as in xlwings' standalone workbook; Excel recompiles from source anyway


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _dir_stream(project_name: str, modules: list[VbaModule], codepage: str) -> bytes:
    """The decompressed ``dir`` stream (MS-OVBA 2.3.4.2)."""
    cp_number = int(codepage.removeprefix("cp"))
    enc = project_name.encode(codepage)
    out = bytearray()
    # PROJECTINFORMATION
    out += _record(0x0001, struct.pack("<I", _SYSKIND_WIN64))
    out += _record(0x0002, struct.pack("<I", _LCID))
    out += _record(0x0014, struct.pack("<I", _LCID))
    out += _record(0x0003, struct.pack("<H", cp_number))
    out += _record(0x0004, enc)
    out += _record(0x0005, b"") + _record(0x0040, b"")  # doc string (MBCS, then UTF-16)
    out += _record(0x0006, b"") + _record(0x003D, b"")  # help file 1 and 2
    out += _record(0x0007, struct.pack("<I", 0))  # help context
    out += _record(0x0008, struct.pack("<I", 0))  # lib flags
    out += struct.pack("<HIIH", 0x0009, 4, 1, 0)  # PROJECTVERSION: reserved=4, major, minor
    out += _record(0x000C, b"") + _record(0x003C, b"")  # conditional compilation constants
    # PROJECTREFERENCES
    for ref in DEFAULT_REFERENCES:
        out += _record(0x0016, ref.name.encode(codepage)) + _record(0x003E, _utf16(ref.name))
        libid = ref.libid.encode(codepage)
        body = struct.pack("<I", len(libid)) + libid + struct.pack("<IH", 0, 0)
        out += _record(0x000D, body)  # REFERENCEREGISTERED
    # PROJECTMODULES
    out += _record(0x000F, struct.pack("<H", len(modules)))
    out += _record(0x0013, struct.pack("<H", 0xFFFF))  # project cookie
    for module in modules:
        name = module.name.encode(codepage)
        out += _record(0x0019, name) + _record(0x0047, _utf16(module.name))
        out += _record(0x001A, name) + _record(0x0032, _utf16(module.name))  # stream name
        out += _record(0x001C, b"") + _record(0x0048, b"")  # doc string
        out += _record(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: no p-code before source
        out += _record(0x001E, struct.pack("<I", 0))  # help context
        out += _record(0x002C, struct.pack("<H", 0xFFFF))  # module cookie
        out += _record(0x0021 if module.kind is ModuleKind.STANDARD else 0x0022, b"")
        out += _record(0x002B, b"")  # module terminator
    out += _record(0x0010, b"") + struct.pack("<I", 0)  # dir terminator + reserved
    return bytes(out)


def _project_stream(
    project_name: str, project_id: str, modules: list[VbaModule], codepage: str
) -> bytes:
    """The ``PROJECT`` text stream (MS-OVBA 2.3.1): module list, name, protection state."""
    lines = [f'ID="{project_id}"']
    for module in modules:
        if module.kind is ModuleKind.DOCUMENT:
            lines.append(f"Document={module.name}/&H00000000")
        elif module.kind is ModuleKind.CLASS:
            lines.append(f"Class={module.name}")
        else:
            lines.append(f"Module={module.name}")
    seed = hashlib.sha256(project_id.encode()).digest()
    lines += [
        f'Name="{project_name}"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{encrypt_project_data(bytes(4), project_id, seed[0])}"',  # not protected
        f'DPB="{encrypt_project_data(bytes(1), project_id, seed[1])}"',  # no password
        f'GC="{encrypt_project_data(bytes([0xFF]), project_id, seed[2])}"',  # visible
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
    ]
    lines += [f"{module.name}=0, 0, 0, 0, C" for module in modules]
    return ("\r\n".join(lines) + "\r\n").encode(codepage)


def _projectwm_stream(modules: list[VbaModule], codepage: str) -> bytes:
    """``PROJECTwm``: each module name in MBCS and in UTF-16 (MS-OVBA 2.3.3)."""
    out = bytearray()
    for module in modules:
        out += module.name.encode(codepage) + b"\x00" + _utf16(module.name) + b"\x00\x00"
    return bytes(out + b"\x00\x00")


# Reserved1=0x61CC, Version=0xFFFF (no valid p-code: compile from source), Reserved2=0x00,
# Reserved3 (2 bytes, undefined; 0x0001 as Excel writes it). No performance cache.
_VBA_PROJECT_STREAM = bytes.fromhex("cc61ffff000100")


def _normalise_source(source: str) -> str:
    text = source.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return text if text.endswith("\r\n") else text + "\r\n"


def build_vba_project(
    modules: Iterable[VbaModule],
    project_name: str = "PlanTracker",
    *,
    codepage: str = "cp1252",
) -> bytes:
    """Return the bytes of a ``vbaProject.bin`` holding ``modules`` as source only.

    Line endings are normalised to CRLF (what the VBA editor stores). Source must be
    encodable in ``codepage`` (the project's MBCS code page); anything else raises
    :class:`VbaProjectError` rather than writing mojibake into the workbook. The project id
    is derived from the project name so that rebuilding gives identical bytes.
    """
    modules = list(modules)
    if not _NAME_RE.match(project_name):
        raise VbaProjectError(f"project name {project_name!r} must be an ASCII identifier")
    seen: set[str] = set()
    for module in modules:
        if module.name.upper() in seen:
            raise VbaProjectError(f"duplicate VBA module name {module.name!r}")
        seen.add(module.name.upper())
    project_id = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"vba:{project_name}")).upper() + "}"

    vba: dict[str, bytes] = {}
    for module in modules:
        text = _normalise_source(module.source)
        first = text.split("\r\n", 1)[0]
        if first != f'Attribute VB_Name = "{module.name}"':
            raise VbaProjectError(
                f"module {module.name!r} must start with 'Attribute VB_Name = \"{module.name}\"'"
            )
        try:
            encoded = text.encode(codepage)
        except UnicodeEncodeError as exc:
            raise VbaProjectError(
                f"module {module.name!r} has characters outside code page {codepage}: "
                f"{text[exc.start : exc.end]!r}"
            ) from exc
        vba[module.name] = compress(encoded)
    vba["_VBA_PROJECT"] = _VBA_PROJECT_STREAM
    vba["dir"] = compress(_dir_stream(project_name, modules, codepage))

    return write_compound_file(
        {
            "PROJECT": _project_stream(project_name, project_id, modules, codepage),
            "PROJECTwm": _projectwm_stream(modules, codepage),
            "VBA": vba,
        }
    )


# ---------------------------------------------------------------------------------------------
# MS-CFB: a minimal compound-file writer (version 3, 512-byte sectors)
# ---------------------------------------------------------------------------------------------

_SECTOR = 512
_MINI = 64
_MINI_CUTOFF = 4096
_FREESECT, _ENDOFCHAIN, _FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
_NOSTREAM = 0xFFFFFFFF
_RED, _BLACK = 0, 1

Tree = Mapping[str, "bytes | Tree"]


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[_Entry] | None = None
    left: int = _NOSTREAM
    right: int = _NOSTREAM
    child: int = _NOSTREAM
    color: int = _BLACK
    start: int = _ENDOFCHAIN
    size: int = 0


def _cfb_sort_key(entry: _Entry) -> tuple[int, str]:
    # MS-CFB 2.6.4: shorter names first, then code-point order of the upper-cased names.
    return len(entry.name), entry.name.upper()


def _link_siblings(entries: list[_Entry], ids: dict[int, int], depth: int, max_depth: int) -> int:
    """Arrange sorted siblings as a balanced binary tree and return the root's id.

    Colouring: every node black except those on the deepest level of an incomplete tree,
    which are red. A midpoint-balanced tree is full above its last level, so each path
    from the root to a leaf passes the same number of black nodes: a valid red-black tree.
    """
    if not entries:
        return _NOSTREAM
    mid = len(entries) // 2
    node = entries[mid]
    node.left = _link_siblings(entries[:mid], ids, depth + 1, max_depth)
    node.right = _link_siblings(entries[mid + 1 :], ids, depth + 1, max_depth)
    node.color = _RED if depth == max_depth and max_depth > 0 else _BLACK
    return ids[id(node)]


def write_compound_file(tree: Tree) -> bytes:
    """Write a compound file whose storages/streams mirror the nested mapping ``tree``.

    Keys are entry names; ``bytes`` values are streams, mapping values are storages. Streams
    under 4096 bytes live in the mini stream (64-byte sectors), as MS-CFB requires. Layout:
    regular stream sectors, the mini stream, the mini FAT, the directory, then the FAT.
    """
    root = _Entry("Root Entry", 5, children=[])
    entries: list[_Entry] = [root]

    def add(parent: _Entry, items: Tree) -> None:
        for name, value in items.items():
            if len(name) > 31:
                raise VbaProjectError(f"compound-file entry name too long: {name!r}")
            if isinstance(value, bytes | bytearray):
                entry = _Entry(name, 2, data=bytes(value))
            else:
                entry = _Entry(name, 1, children=[])
                entries.append(entry)
                add(entry, value)
                assert parent.children is not None
                parent.children.append(entry)
                continue
            entries.append(entry)
            assert parent.children is not None
            parent.children.append(entry)

    add(root, tree)
    ids = {id(entry): index for index, entry in enumerate(entries)}
    for entry in entries:
        if entry.children:
            siblings = sorted(entry.children, key=_cfb_sort_key)
            count = len(siblings)
            full_depth = (count + 1).bit_length() - 1  # levels of a perfect tree <= count
            max_depth = full_depth if (1 << full_depth) - 1 < count else -1
            entry.child = _link_siblings(siblings, ids, 0, max_depth)

    # Mini stream: small streams packed in 64-byte mini sectors.
    mini_stream = bytearray()
    mini_fat: list[int] = []
    big: list[_Entry] = []
    for entry in entries:
        if entry.kind != 2:
            continue
        entry.size = len(entry.data)
        if entry.size == 0:
            entry.start = _ENDOFCHAIN
        elif entry.size < _MINI_CUTOFF:
            count = -(-entry.size // _MINI)
            entry.start = len(mini_fat)
            mini_fat += list(range(entry.start + 1, entry.start + count)) + [_ENDOFCHAIN]
            mini_stream += entry.data.ljust(count * _MINI, b"\x00")
        else:
            big.append(entry)

    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        """Append ``data`` as a chain of sectors and return its first sector (or ENDOFCHAIN)."""
        if not data:
            return _ENDOFCHAIN
        first = len(sectors)
        count = -(-len(data) // _SECTOR)
        for i in range(count):
            sectors.append(data[i * _SECTOR : (i + 1) * _SECTOR].ljust(_SECTOR, b"\x00"))
            fat.append(first + i + 1 if i < count - 1 else _ENDOFCHAIN)
        return first

    for entry in big:
        entry.start = place(entry.data)
    root.start, root.size = place(bytes(mini_stream)), len(mini_stream)
    mini_fat_bytes = struct.pack(f"<{len(mini_fat)}I", *mini_fat) if mini_fat else b""
    if mini_fat_bytes:
        mini_fat_bytes += b"\xff" * (-len(mini_fat_bytes) % _SECTOR)  # FREESECT padding
    mini_fat_start = place(mini_fat_bytes)
    mini_fat_sectors = len(mini_fat_bytes) // _SECTOR

    directory = bytearray()
    for entry in entries:
        name = _utf16(entry.name) + b"\x00\x00"
        directory += name.ljust(64, b"\x00")
        directory += struct.pack(
            "<HBBIII16sIQQIQ",
            len(name),
            entry.kind,
            entry.color,
            entry.left,
            entry.right,
            entry.child,
            bytes(16),  # CLSID
            0,  # state bits
            0,  # creation time
            0,  # modification time
            entry.start,
            entry.size,
        )
    unused = -len(entries) % (_SECTOR // 128)
    for _ in range(unused):  # unused directory slots: empty name, no siblings
        directory += bytes(64) + struct.pack(
            "<HBBIII16sIQQIQ", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM, bytes(16), 0, 0, 0, 0, 0
        )
    directory_start = place(bytes(directory))

    # The FAT also has to describe its own sectors.
    fat_count = 1
    while fat_count * (_SECTOR // 4) < len(fat) + fat_count:
        fat_count += 1
    if fat_count > 109:
        raise VbaProjectError("compound file too large for a header-only DIFAT")
    fat_start = len(sectors)
    fat += [_FATSECT] * fat_count
    fat += [_FREESECT] * (fat_count * (_SECTOR // 4) - len(fat))
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    for i in range(fat_count):
        sectors.append(fat_bytes[i * _SECTOR : (i + 1) * _SECTOR])

    difat = [fat_start + i for i in range(fat_count)] + [_FREESECT] * (109 - fat_count)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("D0CF11E0A1B11AE1"),
        bytes(16),
        0x003E,  # minor version
        0x0003,  # major version 3
        0xFFFE,  # little-endian
        9,  # 512-byte sectors
        6,  # 64-byte mini sectors
        bytes(6),
        0,  # directory sectors (must be 0 in version 3)
        fat_count,
        directory_start,
        0,  # transaction signature
        _MINI_CUTOFF,
        mini_fat_start,
        mini_fat_sectors,
        _ENDOFCHAIN,  # no DIFAT sectors
        0,
    ) + struct.pack("<109I", *difat)
    assert len(header) == _SECTOR
    return header + b"".join(sectors)
