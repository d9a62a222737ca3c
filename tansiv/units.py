"""Durations and bandwidths written with their units, as the command line and the pipeline's
configuration take them: durations in s, ms, us, ns (a bare number is seconds); bandwidths in
bits (bps, kbps, Mbps, Gbps) or bytes (Bps, kBps, MBps, GBps) per second; sizes in bytes
(B, KiB, MiB, GiB; a bare number is bytes)."""

import re

from .errors import InputError

_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_BYTES_PER_S = {"bps": 1 / 8, "kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8,
                "Bps": 1.0, "kBps": 1e3, "MBps": 1e6, "GBps": 1e9}
_BYTES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
DURATION_PATTERN = r"^[0-9]*\.?[0-9]+(s|ms|us|ns)$"
BANDWIDTH_PATTERN = r"^[0-9]*\.?[0-9]+(" + "|".join(_BYTES_PER_S) + ")$"


def duration(text, where: str = "") -> float:
    """'0.001', '1ms', '250us', '10ns' -> seconds; `where` names the option or key."""
    m = re.fullmatch(_NUMBER + r"(s|ms|us|ns)?\s*", str(text))
    if not m:
        raise InputError(f"{where + ': ' if where else ''}'{text}' is not a duration "
                         "(examples: 10ms, 250us, 1s)")
    return float(m.group(1)) * _SECONDS[m.group(2) or "s"]


def step(text, where: str = "") -> float:
    """A duration the simulation steps by (a lookahead, a latency, --until): at least 1 ns
    once rounded to nanoseconds, as the hub counts time."""
    s = duration(text, where)
    if round(s * 1e9) < 1:
        raise InputError(f"{where + ': ' if where else ''}'{text}' is 0 ns once rounded to "
                         "nanoseconds: give at least 1ns")
    return s


def bandwidth(text, where: str = "") -> float:
    """'100Mbps', '125MBps' -> bytes per second."""
    m = re.fullmatch(_NUMBER + "(" + "|".join(_BYTES_PER_S) + r")\s*", str(text))
    if not m:
        raise InputError(f"{where + ': ' if where else ''}'{text}' is not a bandwidth "
                         "(examples: 100Mbps, 1Gbps, 125MBps)")
    return float(m.group(1)) * _BYTES_PER_S[m.group(2)]


def size(text, where: str = "") -> int:
    """'131072', '128KiB', '1MiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+)\s*(" + "|".join(_BYTES) + r")?\s*", str(text))
    if not m:
        raise InputError(f"{where + ': ' if where else ''}'{text}' is not a size in bytes "
                         "(examples: 131072, 128KiB, 1MiB)")
    return int(m.group(1)) * _BYTES[m.group(2) or "B"]


def simgrid_duration(seconds: float) -> str:
    """A duration as SimGrid's platform files write it."""
    return f"{seconds * 1e6:.6g}us"


def simgrid_bandwidth(bytes_per_s: float) -> str:
    return f"{bytes_per_s:.10g}Bps"
