"""The detectors of the timing-detection battery (tansiv/experiments/workloads/detectors.py),
on tdetect's real output: a guest under tansiv with busy peers (tests/data/tdetect-tansiv.jsonl)
and the same battery under netem on a loaded host (tdetect-netem.jsonl), both from a detection
experiment of this machine; and each detector made to fire by the reading it watches."""

import copy
import json

import pytest

from helpers import REPO
from tansiv.experiments.workloads import detectors

DATA = REPO / "tests" / "data"


def lines(name):
    return {r["technique"]: r for r in map(json.loads, (DATA / name).read_text().splitlines())
            if r["event"] == "detect"}


def test_the_guest_under_tansiv_fires_no_detector():
    got = lines("tdetect-tansiv.jsonl")
    assert list(got) == list(detectors.ORDER)  # every technique, in its order
    verdicts = {t: detectors.fires(t, r) for t, r in got.items()}
    assert not any(verdicts.values()), verdicts
    # Judged: all but the environment and what this guest lacks (rdtscp, an HPET).
    assert {t for t, v in verdicts.items() if v is None} == {"environment", "rdtscp", "hpet"}


def test_the_loaded_host_under_netem_fires_at_least_two():
    fired = [t for t, r in lines("tdetect-netem.jsonl").items() if detectors.fires(t, r)]
    assert len(fired) >= 2, fired


def _set(r, path, value):
    *keys, last = path.split(".")
    for k in keys:
        r = r[k]
    r[last] = value


@pytest.mark.parametrize("technique,path,value", [
    ("rdtsc", "ticks.mean", 800),                        # pafish's 750
    ("cpuid", "ticks.mean", 1500),                       # a VM exit
    ("tsc_rate", "max_disagreement", 0.002),
    ("tsc_rate", "monotonic.spread", 0.05),
    ("rtc", "mono_ns_per_s", [1_000_000_000, 1_200_000_000]),
    ("acpi_pm", "hz.mean", 3_700_000),
    ("sleep", "nanosleep.1000000.short", 1),             # a sleep accelerated
    ("sleep", "nanosleep.1000000.max_ns", 4_000_000),    # a pause in a sleep
    ("sleep", "select.10000000.tsc_median_ns", 12_000_000),
    ("cpu_work", "mono_ns.max", 4_000_000),
    ("clock_gaps", "realtime.gaps_over_1ms", 1),
    ("icmp_rtt", "tsc_rtt_ns", [3_000_000] * 20),        # the TSC says longer
    ("udp_rtt", "timer_ticks", [80] * 20),               # 8 ms of timer in a 2 ms wait
    ("tcp_timestamps", "slope_per_s", 1100.0),
])
def test_each_detector_fires_on_the_reading_it_watches(technique, path, value):
    line = copy.deepcopy(lines("tdetect-tansiv.jsonl")[technique])
    assert detectors.fires(technique, line) is False
    _set(line, path, value)
    assert detectors.fires(technique, line) is True


def test_readings_flatten_to_numbers_with_their_paths():
    r = lines("tdetect-tansiv.jsonl")
    flat = {(k, seq): v for k, v, seq in detectors.flatten(r["icmp_rtt"])}
    assert flat[("probes", None)] == 20 and flat[("rtt_ns", 0)] == r["icmp_rtt"]["rtt_ns"][0]
    env = [k for k, _, _ in detectors.flatten(r["environment"])]
    assert "hypervisor_vendor=TCGTCGTCGTCG" in env
    assert all(isinstance(v, (int, float)) for _, v, _ in detectors.flatten(r["sleep"]))
