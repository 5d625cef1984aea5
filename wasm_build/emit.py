"""The emitter: the prebuilt runtime + a program's image → one self-contained module.

The image becomes an active data segment at `IMAGE_BASE`, and the memory is sized to hold it
and the scratch space with min = max pages, so the module can never grow its memory and hosts
may keep a view of it. The runtime's code is not touched, only its memory and data sections,
which the WebAssembly binary format lets us rewrite without relocating anything.
"""

from __future__ import annotations

import struct
from importlib import resources

from wasm_build import abi

_MAGIC = b"\x00asm\x01\x00\x00\x00"
_MEMORY, _CODE, _DATA, _DATA_COUNT = 5, 10, 11, 12


def runtime_module() -> bytes:
    """The prebuilt runtime (`wasm_build/runtime/runtime.wasm`, rebuilt by its build.py)."""
    return (resources.files("wasm_build.runtime") / "runtime.wasm").read_bytes()


def emit(image: tuple[int, ...] | list[int], runtime: bytes | None = None) -> bytes:
    """A module that evaluates the program whose image is given."""
    runtime = runtime_module() if runtime is None else runtime
    data = struct.pack(f"<{len(image)}q", *image)
    scratch_end = abi.IMAGE_BASE + 8 * (len(image) + image[abi.H_SCRATCH_WORDS])
    pages = -(-scratch_end // abi.PAGE)
    sections = _sections(runtime)
    if not any(section_id == _MEMORY for section_id, _ in sections):
        raise ValueError("the runtime must define its memory")
    if not any(section_id == _DATA for section_id, _ in sections):
        # no static data of its own: the data section follows the code section
        at = next(i for i, (section_id, _) in enumerate(sections) if section_id == _CODE) + 1
        sections.insert(at, (_DATA, _leb(0)))
    out = bytearray(_MAGIC)
    for section_id, payload in sections:
        if section_id == _MEMORY:
            payload = _memory_section(pages)
        elif section_id == _DATA_COUNT:
            (count, _) = _uleb(payload, 0)
            payload = _leb(count + 1)
        elif section_id == _DATA:
            payload = _append_segment(payload, data)
        out += _section(section_id, payload)
    return bytes(out)


def _sections(module: bytes) -> list[tuple[int, bytes]]:
    if not module.startswith(_MAGIC):
        raise ValueError("not a WebAssembly module")
    pos, sections = len(_MAGIC), []
    while pos < len(module):
        section_id = module[pos]
        size, pos = _uleb(module, pos + 1)
        sections.append((section_id, module[pos : pos + size]))
        pos += size
    return sections


def _memory_section(pages: int) -> bytes:
    # one memory, limits flag 1 (min and max), min = max
    return _leb(1) + b"\x01" + _leb(pages) + _leb(pages)


def _append_segment(payload: bytes, data: bytes) -> bytes:
    count, pos = _uleb(payload, 0)
    # active segment for memory 0: flag 0, offset expression `i32.const IMAGE_BASE; end`
    segment = b"\x00\x41" + _sleb(abi.IMAGE_BASE) + b"\x0b" + _leb(len(data)) + data
    return _leb(count + 1) + payload[pos:] + segment


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + _leb(len(payload)) + payload


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos
