"""Loads the C core's headers into cffi, so that each declaration is written once (in C)."""

import re
from pathlib import Path

import cffi

from .. import paths

_DEFINE = re.compile(r"#define\s+\w+\s+(0x[0-9a-fA-F]+|\d+)\s*(/\*.*\*/)?\s*$")


def cdef_source(header: Path) -> str:
    """The header without its preprocessor lines, but for integer #defines, which cffi takes."""
    lines = []
    for line in header.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not _DEFINE.match(stripped):
            continue
        lines.append(line)
    return "\n".join(lines)


def load(ffi: cffi.FFI, *headers: str) -> None:
    """Adds installed headers (names under include/tansiv/) to ffi's declarations."""
    for name in headers:
        ffi.cdef(cdef_source(paths.native(paths.includedir() / "tansiv" / name)))


def open_library(ffi: cffi.FFI, name: str):
    return ffi.dlopen(str(paths.native(paths.libdir() / f"lib{name}.so")))
