"""The hub (csrc/hub) through cffi: the coordinator's side of the wire protocol.

Payloads stay in C; Python sees packet metadata and handles. cffi releases the GIL during
every call, so a blocking wait does not hold the interpreter."""

import ipaddress
import socket
import struct
from dataclasses import dataclass

import cffi

from . import cheader
from ..errors import TansivError

ffi = cffi.FFI()
cheader.load(ffi, "tansiv-hub.h")
_lib = None

# The header's enums and #defines, without loading the library: its events' kinds, and its
# bounds on a client (struct tsv_hub_limits: each field's default is TSV_HUB_<FIELD>).
_constants = ffi.dlopen(None)
JOINED, LEFT, FAILED = _constants.TSV_HUB_JOINED, _constants.TSV_HUB_LEFT, _constants.TSV_HUB_FAILED
LIMITS = {name: getattr(_constants, f"TSV_HUB_{name.upper()}")
          for name, _ in ffi.typeof("struct tsv_hub_limits").fields}


def _library():
    global _lib
    if _lib is None:
        _lib = cheader.open_library(ffi, "tansiv-hub")
    return _lib


def addr_to_str(addr: int) -> str:
    """in_addr_t (network order in memory, read as a little-endian integer) to dotted quad."""
    return socket.inet_ntoa(struct.pack("<I", addr))


def str_to_addr(text: str) -> int:
    return struct.unpack("<I", ipaddress.IPv4Address(text).packed)[0]


class HubError(TansivError):
    pass


@dataclass
class HubEvent:
    kind: int
    client: int
    time_ns: int
    message: str


class Hub:
    def __init__(self, address: str, ring_size: int = 0):
        """Listens on address; ring_size > 0: local participants get shared-memory channels
        of rings of that many bytes (a power of two, 128 KiB to 1 GiB), 0: sockets only."""
        lib = _library()
        self._lib = lib
        err = ffi.new("char[256]")
        self._h = lib.tsv_hub_new(address.encode(), err, 256)
        if self._h == ffi.NULL:
            raise HubError(ffi.string(err).decode())
        self._event = ffi.new("struct tsv_hub_event *")
        if ring_size:
            try:
                self._check(lib.tsv_hub_channels(self._h, ring_size))
            except HubError:
                self.close()
                raise

    @property
    def address(self) -> str:
        return ffi.string(self._lib.tsv_hub_address(self._h)).decode()

    def listen_tcp(self, address: str) -> str:
        """Also listens on tcp:HOST:PORT (for relays on other nodes); where they connect."""
        self._check(self._lib.tsv_hub_listen_tcp(self._h, address.encode()))
        return self.tcp_address()

    def tcp_address(self) -> str:
        """Where the second listener is ("" if none)."""
        return ffi.string(self._lib.tsv_hub_tcp_address(self._h)).decode()

    def _check(self, rc):
        if rc < 0:
            raise HubError(ffi.string(self._lib.tsv_hub_error(self._h)).decode())
        return rc

    def accept(self, count: int, timeout_ms: int) -> int:
        """Number of clients that said HELLO so far (waits for `count` at most timeout_ms)."""
        return self._check(self._lib.tsv_hub_accept(self._h, count, timeout_ms))

    def client_count(self) -> int:
        return self._lib.tsv_hub_client_count(self._h)

    def client_address(self, i: int) -> str:
        return addr_to_str(self._lib.tsv_hub_client_address(self._h, i))

    def client_pid(self, i: int) -> int:
        return self._lib.tsv_hub_client_pid(self._h, i)

    def client_role(self, i: int) -> int:
        return self._lib.tsv_hub_client_role(self._h, i)

    def held_ns(self, i: int) -> int:
        return self._lib.tsv_hub_client_held_ns(self._h, i)

    def alive(self, i: int) -> bool:
        return bool(self._lib.tsv_hub_client_alive(self._h, i))

    def alive_count(self) -> int:
        return self._lib.tsv_hub_alive_count(self._h)

    def waiting(self, i: int) -> bool:
        """Whether client i has yet to report reaching the current deadline."""
        return bool(self._lib.tsv_hub_client_waiting(self._h, i))

    def remove(self, i: int, why: str) -> None:
        """Removes client i (a FAILED event saying why); the round goes on without it."""
        self._lib.tsv_hub_remove(self._h, i, why.encode()[:150])

    def set_secret(self, secret: bytes) -> None:
        """TCP clients must give it in their HELLO (SECRET_SIZE bytes)."""
        self._lib.tsv_hub_set_secret(self._h, ffi.from_buffer("uint8_t[]", secret))

    def set_limits(self, **limits) -> None:
        """Bounds on each client (LIMITS' names; the others keep their defaults)."""
        unknown = set(limits) - set(LIMITS)
        if unknown:
            raise TypeError(f"unknown hub limits: {', '.join(sorted(unknown))}")
        self._lib.tsv_hub_set_limits(self._h, ffi.new("struct tsv_hub_limits *",
                                                      {**LIMITS, **limits}))

    def set_horizons(self, on: bool) -> None:
        """Idle participants sit out rounds (tsv_hub_set_horizons)."""
        self._lib.tsv_hub_set_horizons(self._h, int(on))

    def idle_until(self) -> int:
        """The earliest date a participant may act by itself (2**64 - 1: all wait for a
        packet)."""
        return self._lib.tsv_hub_idle_until(self._h)

    def client_channel(self, i: int) -> bool:
        return bool(self._lib.tsv_hub_client_channel(self._h, i))

    def begin(self) -> int:
        """Starts the run at the latest date a client said it is at (a VM restored from a
        snapshot: the snapshot's; else 0), before the first round; returns that date."""
        at = self._lib.tsv_hub_start_date(self._h)
        self._check(self._lib.tsv_hub_begin(self._h, at))
        return at

    def goto(self, deadline_ns: int) -> None:
        self._check(self._lib.tsv_hub_goto(self._h, deadline_ns))

    def run(self, deadline_ns: int, step_ns: int, limit_ns: int) -> None:
        """Rounds: to deadline_ns, then step_ns more each, up to limit_ns, as long as they are
        idle; wait() returns once one is not, or at the limit (barrier() says where)."""
        self._check(self._lib.tsv_hub_run(self._h, deadline_ns, step_ns, limit_ns))

    def deadline(self) -> int:
        """The current round's deadline (ns)."""
        return self._lib.tsv_hub_deadline(self._h)

    def barrier(self) -> int:
        return self._lib.tsv_hub_barrier(self._h)

    def wait(self, timeout_ms: int) -> bool:
        """True when every live client reached the deadline, False on timeout."""
        return self._check(self._lib.tsv_hub_wait(self._h, timeout_ms)) == 1

    def packets(self):
        """(count, cdata array of struct tsv_hub_packet) of the last round, sorted by time."""
        return self._lib.tsv_hub_packet_count(self._h), self._lib.tsv_hub_packets(self._h)

    def deliver(self, handle: int, client: int, time_ns: int) -> bool:
        return self._lib.tsv_hub_deliver(self._h, handle, client, time_ns) == 0

    def payload(self, handle: int) -> bytes:
        """A copy of a held payload (for captures; b"" for an unknown handle)."""
        size = ffi.new("uint32_t *")
        data = self._lib.tsv_hub_payload(self._h, handle, size)
        return b"" if data == ffi.NULL else ffi.buffer(data, size[0])[:]

    def head(self, handle: int, n: int) -> bytes:
        """The first n bytes (at most) of a held payload."""
        size = ffi.new("uint32_t *")
        data = self._lib.tsv_hub_payload(self._h, handle, size)
        return b"" if data == ffi.NULL else ffi.buffer(data, min(n, size[0]))[:]

    def drop(self, handle: int) -> None:
        self._lib.tsv_hub_drop(self._h, handle)

    def end(self, timeout_ms: int) -> bool:
        return self._lib.tsv_hub_end(self._h, timeout_ms) == 0

    def events(self):
        while self._lib.tsv_hub_next_event(self._h, self._event):
            e = self._event
            yield HubEvent(e.kind, e.client, e.time, ffi.string(e.message).decode(errors="replace"))

    def stats(self) -> dict:
        s = ffi.new("struct tsv_hub_stats *")
        self._lib.tsv_hub_get_stats(self._h, s)
        return {k: getattr(s, k) for k, _ in ffi.typeof("struct tsv_hub_stats").fields}

    def payloads_held(self) -> int:
        return self._lib.tsv_hub_payloads_held(self._h)

    def close(self) -> None:
        if self._h is not None:
            self._lib.tsv_hub_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Relay:
    """A remote node's relay (csrc/hub/relay.c): serves the coordinator's rounds, over TCP, on
    a local hub whose participants all said HELLO."""

    def __init__(self, local: Hub, upstream: str, secret: bytes):
        err = ffi.new("char[256]")
        self._lib = local._lib
        self._local = local  # the relay uses it: kept alive as long as the relay
        self._r = self._lib.tsv_relay_new(local._h, upstream.encode(),
                                          ffi.from_buffer("uint8_t[]", secret), err, 256)
        if self._r == ffi.NULL:
            raise HubError(ffi.string(err).decode())

    def serve(self, timeout_ms: int) -> bool:
        """Serves rounds: True once the coordinator said END, False once timeout_ms passed;
        HubError if the coordinator is gone."""
        rc = self._lib.tsv_relay_serve(self._r, timeout_ms)
        if rc < 0:
            raise HubError(ffi.string(self._lib.tsv_relay_error(self._r)).decode())
        return rc == 1

    def rounds(self) -> int:
        return self._lib.tsv_relay_rounds(self._r)

    def removed(self) -> list:
        """Addresses of the participants the coordinator removed since the last call."""
        out, addr = [], ffi.new("uint32_t *")
        while self._lib.tsv_relay_removed(self._r, addr):
            out.append(addr_to_str(addr[0]))
        return out

    def close(self) -> None:
        if self._r is not None:
            self._lib.tsv_relay_free(self._r)
            self._r = None
