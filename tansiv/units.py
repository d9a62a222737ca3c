"""Durations and bandwidths written with their units, as the command line and the pipeline's
configuration take them: durations in s, ms, us, ns (a bare number is seconds); bandwidths in
bits (bps, kbps, Mbps, Gbps) or bytes (Bps, kBps, MBps, GBps) per second; sizes in bytes
(B, KiB, MiB, GiB; a bare number is bytes).

One rule for time (docs/design.md, Units): simulated dates and durations are integer
nanoseconds everywhere (the protocol's unit: they are exact); wall-clock durations (timeouts,
graces, measured wall times) are float seconds. This module holds the only converters: text
to either, and ns <-> s where a float API (SimGrid's clock, a figure's axis) needs seconds."""

import re
from decimal import Decimal

from .errors import InputError

_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_BYTES_PER_S = {"bps": 1 / 8, "kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8,
                "Bps": 1.0, "kBps": 1e3, "MBps": 1e6, "GBps": 1e9}
_BYTES = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
DURATION_PATTERN = r"^[0-9]*\.?[0-9]+(s|ms|us|ns)$"
BANDWIDTH_PATTERN = r"^[0-9]*\.?[0-9]+(" + "|".join(_BYTES_PER_S) + ")$"


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def duration_ns(text, where: str = "") -> int:
    """'0.001', '1ms', '250us', '10ns' -> integer ns (decimal, so '0.001' is exactly
    1000000); `where` names the option or key."""
    m = re.fullmatch(_NUMBER + r"(s|ms|us|ns)?\s*", str(text))
    if not m:
        raise InputError(f"{_where(where)}'{text}' is not a duration "
                         "(examples: 10ms, 250us, 1s)")
    return int((Decimal(m.group(1)) * _NS[m.group(2) or "s"]).to_integral_value())


def step_ns(text, where: str = "") -> int:
    """A duration the simulation steps by (a lookahead, a latency, --until): at least 1 ns
    once rounded to nanoseconds, as the hub counts time."""
    n = duration_ns(text, where)
    if n < 1:
        raise InputError(f"{_where(where)}'{text}' is 0 ns once rounded to nanoseconds: give "
                         "at least 1ns")
    return n


def wall_seconds(text, where: str = "") -> float:
    """A wall-clock duration (a timeout, a grace): '60', '500ms' -> seconds."""
    return to_seconds(duration_ns(text, where))


def to_ns(seconds: float) -> int:
    """A float date or duration in s (SimGrid's clock, a workload's budget) -> integer ns."""
    return int(round(seconds * 1e9))


def to_seconds(ns: int) -> float:
    return ns / 1e9


def bandwidth(text, where: str = "") -> float:
    """'100Mbps', '125MBps' -> bytes per second."""
    m = re.fullmatch(_NUMBER + "(" + "|".join(_BYTES_PER_S) + r")\s*", str(text))
    if not m:
        raise InputError(f"{_where(where)}'{text}' is not a bandwidth "
                         "(examples: 100Mbps, 1Gbps, 125MBps)")
    return float(m.group(1)) * _BYTES_PER_S[m.group(2)]


def size(text, where: str = "") -> int:
    """'131072', '128KiB', '1MiB' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+)\s*(" + "|".join(_BYTES) + r")?\s*", str(text))
    if not m:
        raise InputError(f"{_where(where)}'{text}' is not a size in bytes "
                         "(examples: 131072, 128KiB, 1MiB)")
    return int(m.group(1)) * _BYTES[m.group(2) or "B"]


_QUEUE_BYTES = {"B": 1, "kB": 1000, "MB": 1000**2, "KiB": 1 << 10, "MiB": 1 << 20}
QUEUE_SIZE_PATTERN = r"^[0-9]+(p|" + "|".join(_QUEUE_BYTES) + ")$"


def queue_size(text, where: str = "") -> tuple:
    """A queue's size as ns-3 and tc write it: '100p' (packets) or bytes ('64kB' is 64000,
    '64KiB' 65536, '1500B') -> (count, in_packets)."""
    m = re.fullmatch(r"\s*([0-9]+)\s*(p|" + "|".join(_QUEUE_BYTES) + r")\s*", str(text))
    if not m or int(m.group(1)) == 0:
        raise InputError(f"{_where(where)}'{text}' is not a queue size (packets: 100p; bytes: "
                         "64kB, 64KiB, 1500B)")
    if m.group(2) == "p":
        return int(m.group(1)), True
    return int(m.group(1)) * _QUEUE_BYTES[m.group(2)], False


def probability(text, where: str = "") -> float:
    """A probability in [0, 1): '0.01'."""
    try:
        p = float(text)
    except (TypeError, ValueError):
        p = -1.0
    if not 0 <= p < 1:
        raise InputError(f"{_where(where)}'{text}' is not a probability from 0 to below 1 "
                         "(example: 0.01)")
    return p


def simgrid_duration(ns: int) -> str:
    """A duration as SimGrid's platform files write it (exact: SimGrid parses ns)."""
    return f"{ns}ns" if ns == int(ns) else f"{ns:.3f}ns"


def simgrid_bandwidth(bytes_per_s: float) -> str:
    return f"{bytes_per_s:.10g}Bps"
