"""The wire protocol (csrc/include/tansiv-protocol.h) for Python: frame packing and parsing,
used by the tests' scripted peers. The constants and layouts come from the header itself."""

from dataclasses import dataclass

import cffi

from . import cheader

ffi = cffi.FFI()
cheader.load(ffi, "tansiv-protocol.h")
_c = ffi.dlopen(None)

MAGIC = _c.TSV_MAGIC
VERSION = _c.TSV_VERSION
HEADER_SIZE = _c.TSV_HEADER_SIZE
MAX_PAYLOAD = _c.TSV_MAX_PAYLOAD
SECRET_SIZE, NONCE_SIZE, PROOF_SIZE = _c.TSV_SECRET_SIZE, _c.TSV_NONCE_SIZE, _c.TSV_PROOF_SIZE
HELLO, SEND, AT_DEADLINE = _c.TSV_HELLO, _c.TSV_SEND, _c.TSV_AT_DEADLINE
GOTO, DELIVER, END, CHANNEL = _c.TSV_GOTO, _c.TSV_DELIVER, _c.TSV_END, _c.TSV_CHANNEL
CHALLENGE, WELCOME = _c.TSV_CHALLENGE, _c.TSV_WELCOME
ROLE_PROCESS, ROLE_VM = _c.TSV_ROLE_PROCESS, _c.TSV_ROLE_VM
HELLO_CHANNEL = _c.TSV_HELLO_CHANNEL

assert ffi.sizeof("struct tsv_header") == HEADER_SIZE


@dataclass
class Frame:
    type: int
    time: int = 0
    src: int = 0
    dst: int = 0
    payload: bytes = b""
    flags: int = 0
    length: int = -1  # announced payload length; -1: len(payload)

    def pack(self) -> bytes:
        h = ffi.new("struct tsv_header *")
        h.type, h.flags, h.time, h.src, h.dst = self.type, self.flags, self.time, self.src, self.dst
        h.len = len(self.payload) if self.length < 0 else self.length
        return bytes(ffi.buffer(h)) + self.payload


def parse_header(data: bytes) -> Frame:
    h = ffi.from_buffer("struct tsv_header *", data[:HEADER_SIZE])
    return Frame(type=h.type, time=h.time, src=h.src, dst=h.dst, flags=h.flags, length=h.len)


def parse_hello(payload: bytes) -> dict:
    h = ffi.from_buffer("struct tsv_hello *", payload)
    return {"magic": h.magic, "version": h.version, "role": h.role, "pid": h.pid}


def pack_hello(role: int = ROLE_PROCESS, pid: int = 0, magic: int = MAGIC,
               version: int = VERSION, nonce: bytes = b"", proof: bytes = b"") -> bytes:
    h = ffi.new("struct tsv_hello *")
    h.magic, h.version, h.role, h.pid = magic, version, role, pid
    h.nonce[0:len(nonce)] = nonce
    h.proof[0:len(proof)] = proof
    return bytes(ffi.buffer(h))
