"""The container both .ndd and .ndm files are (docs/FORMATS.md, section 1).

Checks what the C reader (base/ndfile.c, ndf_open) checks, in the same order, before any
section is handed out: magic, version, header CRC, kind, declared size, section headers
and lengths, section CRCs and padding, nothing after the last section. Every length is
compared with what remains of the file before it is used.
"""
import mmap
import os
import struct
import zlib

MAGIC = b"\x89NDF\r\n\x1a\n"
VERSION = 1
HEADER = 40
SECTION_HEADER = 16
KIND_DATASET = b"NDDS"
KIND_MODEL = b"NDMD"
_KIND_NAMES = {KIND_DATASET: "dataset file (.ndd)", KIND_MODEL: "model file (.ndm)"}


class FormatError(ValueError):
    """A file netdiffus's reader refuses: str(err) is "PATH: [SECTION: ]PROBLEM".

    path     the file
    section  the section's tag ("VALS", "DMCF", ...) or None for the header or the file
    reason   'truncated' (cut short: an interrupted copy), 'foreign' (not a netdiffus
             file), 'newer' (written by a newer netdiffus), 'corrupt' (damaged: a CRC or
             a length does not match), or 'invalid' (intact but inconsistent: a count, a
             name or a value out of its bounds)
    """

    def __init__(self, path, section, reason, problem):
        self.path, self.section, self.reason, self.problem = str(path), section, reason, problem
        where = f"{self.path}: section {section}" if section else self.path
        super().__init__(f"{where}: {problem}")


def _u32(b, off):
    return struct.unpack_from("<I", b, off)[0]


def _u64(b, off):
    return struct.unpack_from("<Q", b, off)[0]


class Container:
    """A verified container: kind, version and its sections (tag -> first payload)."""

    def __init__(self, path, data, kind, version, sections):
        self.path, self.data, self.kind, self.version = path, data, kind, version
        self.sections = sections  # [(tag, memoryview payload, file offset)]

    def tags(self):
        return [t for t, _, _ in self.sections]

    def find(self, tag):
        """The first section tag's payload (a memoryview); FormatError when missing."""
        for t, payload, _ in self.sections:
            if t == tag:
                return payload
        raise FormatError(self.path, tag, "invalid", "missing section")

    def has(self, tag):
        return any(t == tag for t, _, _ in self.sections)

    def error(self, section, problem, reason="invalid"):
        return FormatError(self.path, section, reason, problem)


def _tag(b):
    return b.decode("latin-1")


def open_container(path, kind):
    """Maps and checks the whole file at path, which must be of kind (KIND_*). Mapped
    rather than read: the arrays made from it are the only copy of a large dataset."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    return parse(path, data, kind)


def parse(path, data, kind):
    """Checks data, the bytes of the file at path (named in errors), as open_container."""
    def fail(reason, problem, section=None):
        raise FormatError(path, section, reason, problem)

    size = len(data)
    if size == 0:
        fail("truncated", "truncated: the file is empty")
    if data[:min(size, 8)] != MAGIC[:min(size, 8)]:
        text = "; the file looks mangled by a text-mode transfer" \
            if size >= 4 and data[:4] == MAGIC[:4] else ""
        fail("foreign", "not a netdiffus dataset or model file (wrong magic bytes at "
             f"offset 0{text})")
    if size < HEADER:
        fail("truncated", f"truncated: {size} bytes, shorter than the {HEADER}-byte header")
    # the version before the header CRC: a newer version may lay the header out differently
    version = _u32(data, 8)
    if version > VERSION:
        fail("newer", f"format version {version} is newer than this reader reads ({VERSION}): "
             "use a newer netdiffus")
    stored, crc = _u32(data, 36), zlib.crc32(data[:36])
    if crc != stored:
        fail("corrupt", f"corrupt: header CRC mismatch at offset 36 (stored 0x{stored:08x}, "
             f"computed 0x{crc:08x})")
    if version == 0:
        fail("corrupt", "corrupt: format version 0 at offset 8")
    got = bytes(data[12:16])
    if got != kind:
        fail("invalid", f"is a {_KIND_NAMES.get(got, 'file of kind ' + repr(got))}, expected "
             f"a {_KIND_NAMES[kind]}")
    count, declared = _u32(data, 16), _u64(data, 24)
    if size < declared:
        fail("truncated", f"truncated: the file ends at byte {size} but its header declares "
             f"{declared} bytes (interrupted copy or download?)")
    if size > declared:
        fail("corrupt", f"corrupt: {size - declared} unexpected bytes after the declared end "
             f"at offset {declared}")
    if count > (size - HEADER) // SECTION_HEADER:
        fail("corrupt", f"corrupt: header declares {count} sections, more than {size} bytes "
             "can hold")
    view = memoryview(data)
    sections = []
    off = HEADER
    for i in range(count):
        if size - off < SECTION_HEADER:
            fail("corrupt", f"corrupt: section #{i} header at offset {off} runs past the end "
                 "of the file")
        tag = _tag(data[off:off + 4])
        stored, n = _u32(data, off + 4), _u64(data, off + 8)
        room = size - off - SECTION_HEADER
        pad = -n % 8
        if n > room or pad > room - n:
            fail("corrupt", f"corrupt: section #{i} at offset {off} declares {n} bytes, but "
                 f"only {room} remain in the file", tag)
        payload = view[off + SECTION_HEADER:off + SECTION_HEADER + n]
        crc = zlib.crc32(data[off + 8:off + 16],
                         zlib.crc32(data[off:off + 4], zlib.crc32(payload)))
        if crc != stored:
            fail("corrupt", f"corrupt: section #{i} at offset {off}: CRC mismatch (stored "
                 f"0x{stored:08x}, computed 0x{crc:08x})", tag)
        end = off + SECTION_HEADER + n
        if any(data[end:end + pad]):
            fail("corrupt", f"corrupt: non-zero padding after the section at offset {end}", tag)
        sections.append((tag, payload, off))
        off = end + pad
    if off != size:
        fail("corrupt", f"corrupt: {size - off} bytes after the last of {count} sections at "
             f"offset {off}")
    return Container(str(path), data, kind, version, sections)
