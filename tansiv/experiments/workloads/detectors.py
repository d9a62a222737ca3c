"""What a detector concludes from each technique of tdetect (csrc/guest/tdetect.c), alone, as
the evasion code it stands for would: no reference run, only the guest's own readings. The
thresholds are those such code uses (pafish's rdtsc checks) or, where none is public, a
margin far outside what an unpaused machine shows, written next to each.

fires(technique, line) is True, False, or None when the technique is no detector (the
environment is reported, not judged)."""

# The techniques in tdetect's order (the figure's rows).
ORDER = ("environment", "rdtsc", "rdtscp", "cpuid", "tsc_rate", "rtc", "acpi_pm", "hpet",
         "sleep", "cpu_work", "clock_gaps", "icmp_rtt", "udp_rtt", "tcp_timestamps")
MS = 1_000_000


def flatten(line: dict, prefix: str = ""):
    """(path, number, seq) of every reading of a tdetect line: nested keys joined by dots,
    list items numbered by seq, a string as path=string with the value 1, nulls left out."""
    for k, v in line.items():
        if not prefix and k in ("event", "technique"):
            continue
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from flatten(v, path + ".")
        elif isinstance(v, list):
            yield from ((path, x, i) for i, x in enumerate(v) if x is not None)
        elif isinstance(v, str):
            yield f"{path}={v}", 1, None
        elif isinstance(v, bool):
            yield path, int(v), None
        elif v is not None:
            yield path, v, None


def _rdtsc(r):  # pafish: back-to-back rdtsc averaging over 750 ticks
    return r["ticks"]["mean"] > 750


def _cpuid(r):  # pafish: rdtsc around cpuid averaging over 1000 ticks (a VM exit)
    return r["ticks"]["mean"] > 1000


def _tsc_rate(r):
    """Two clocks disagree on a window's length by more than 0.1 %, or the TSC's rate against
    CLOCK_MONOTONIC varies by more than 1 % between windows: time hidden from one clock."""
    return r["max_disagreement"] > 1e-3 or r["monotonic"]["spread"] > 1e-2


def _rtc(r):
    """An RTC second during which CLOCK_MONOTONIC went more than 1 % off a second."""
    return any(abs(ns / 1e9 - 1) > 1e-2 for ns in r["mono_ns_per_s"])


def _counter(r):
    """A hardware timer's rate, by CLOCK_MONOTONIC, more than 1 % off its nominal rate, or
    varying by more than 1 % between windows."""
    return abs(r["hz"]["mean"] / r["nominal_hz"] - 1) > 1e-2 or r["hz"]["spread"] > 1e-2


def _sleep(r):
    """A wait shorter than asked by either clock (sleeps accelerated), the two clocks more
    than 5 % apart on a wait, or a wait longer than twice the request plus 1 ms (a pause)."""
    for prim, per in r.items():
        if not isinstance(per, dict):
            continue
        for req, w in per.items():
            if not isinstance(w, dict) or "min_ns" not in w:
                continue
            asked = int(req)
            if w["short"] or w["max_ns"] > 2 * asked + MS:
                return True
            if abs(w["tsc_median_ns"] - w["median_ns"]) > 0.05 * w["median_ns"]:
                return True
    return False


def _cpu_work(r):
    """The same instructions taking 50 % longer in one repetition than in another, by either
    clock: something ran instead of them."""
    return any(r[k]["max"] > 1.5 * r[k]["min"] for k in ("tsc_ticks", "mono_ns"))


def _clock_gaps(r):
    """A step of more than 1 ms between two consecutive reads of any clock."""
    return any(r[k]["gaps_over_1ms"] > 0 for k in ("monotonic", "realtime", "tsc"))


def _rtt(r):
    """A round trip that the TSC and CLOCK_MONOTONIC measure more than 5 % apart, or during
    which a 100 µs periodic timer expired a number of times more than 20 % (and 2 ticks) off
    the round trip: the network's time and the local timers' disagree."""
    for rtt, tsc, ticks in zip(r["rtt_ns"], r["tsc_rtt_ns"], r["timer_ticks"]):
        if rtt is None:
            continue
        if abs(tsc - rtt) > 0.05 * rtt:
            return True
        expected = rtt / 100_000
        if abs(ticks - expected) > max(2, 0.2 * expected):
            return True
    return False


def _tcp_timestamps(r):
    """The peer's TCP timestamp clock (1000 Hz on Linux) more than 5 % off 1000 per second of
    ours, over the connection."""
    return r["slope_per_s"] is not None and abs(r["slope_per_s"] / 1000 - 1) > 0.05


# What the figure shows of each technique: one reading, from {path: [values]} (flatten's).
def _ms(ns):
    return f"{ns / 1e6:.3g} ms"


SHOWN = {
    "rdtsc": lambda v: f"{v['ticks.mean'][0]:.0f} ticks",
    "rdtscp": lambda v: f"{v['ticks.mean'][0]:.0f} ticks",
    "cpuid": lambda v: f"{v['ticks.mean'][0]:.0f} ticks",
    "tsc_rate": lambda v: f"clocks apart {v['max_disagreement'][0]:.1e}",
    "rtc": lambda v: f"1 s = {max(v['mono_ns_per_s']) / 1e9:.6f} s",
    "acpi_pm": lambda v: f"{v['hz.mean'][0]:.0f} Hz",
    "hpet": lambda v: f"{v['hz.mean'][0]:.0f} Hz",
    "sleep": lambda v: f"1 ms sleep ≤ {_ms(v['nanosleep.1000000.max_ns'][0])}",
    "cpu_work": lambda v: f"max/min {v['mono_ns.max'][0] / v['mono_ns.min'][0]:.3f}",
    "clock_gaps": lambda v: "gap ≤ " + _ms(max(v[f"{c}.max_gap_ns"][0]
                                               for c in ("monotonic", "realtime", "tsc"))),
    "icmp_rtt": lambda v: f"RTT ≤ {_ms(max(v['rtt_ns']))}",
    "udp_rtt": lambda v: f"RTT ≤ {_ms(max(v['rtt_ns']))}",
    "tcp_timestamps": lambda v: f"{v['slope_per_s'][0]:.1f} TSval/s",
}


def shown(technique: str, values: dict) -> str:
    """The reading the figure prints for a technique ("" if none, or missing)."""
    try:
        return SHOWN[technique](values) if technique in SHOWN else ""
    except (KeyError, IndexError, ZeroDivisionError, ValueError):
        return ""


DETECTORS = {"rdtsc": _rdtsc, "rdtscp": _rdtsc, "cpuid": _cpuid, "tsc_rate": _tsc_rate,
             "rtc": _rtc, "acpi_pm": _counter, "hpet": _counter, "sleep": _sleep,
             "cpu_work": _cpu_work, "clock_gaps": _clock_gaps, "icmp_rtt": _rtt,
             "udp_rtt": _rtt, "tcp_timestamps": _tcp_timestamps}


def fires(technique: str, line: dict):
    detector = DETECTORS.get(technique)
    return None if detector is None or "absent" in line else bool(detector(line))
