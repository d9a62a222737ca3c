"""Parameter sweeps: the pipeline's configuration (config/config.yaml, validated against
config/schema.yaml) expanded into experiments, each a dict of plain values with an id.

A sweep crosses its lists (modes, latency, bandwidth, n, lookahead) and repeats each point
`repetitions` times; `defaults`, then BUILTIN_DEFAULTS, fill what a sweep leaves out."""

import itertools
import re

from .errors import InputError

MODES = ("tansiv", "netem", "none", "process")
WORKLOADS = ("ping", "probe", "iperf3", "gettimeofday", "idle")
# Which modes can run which workload.
ALLOWED = {
    "ping": {"tansiv", "netem", "process"},
    "probe": {"tansiv", "netem", "none"},
    "iperf3": {"tansiv", "netem"},
    "gettimeofday": {"process"},
    "idle": {"tansiv", "process"},
}
# What a sweep gets when neither it nor the config's defaults say.
BUILTIN_DEFAULTS = {"topology": "star", "latency": ["10ms"], "bandwidth": ["1Gbps"], "n": [2],
                    "repetitions": 1}
_DURATION = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_RATE = {"bps": 1 / 8, "kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8,
         "Bps": 1.0, "kBps": 1e3, "MBps": 1e6, "GBps": 1e9}


def duration(text: str, where: str) -> float:
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(s|ms|us|ns)", str(text))
    if not m:
        raise InputError(f"{where}: '{text}' is not a duration (examples: 10ms, 250us, 1s)")
    return float(m.group(1)) * _DURATION[m.group(2)]


def bandwidth(text: str, where: str) -> float:
    """Bytes per second."""
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)(bps|kbps|Mbps|Gbps|Bps|kBps|MBps|GBps)", str(text))
    if not m:
        raise InputError(f"{where}: '{text}' is not a bandwidth (examples: 100Mbps, 1Gbps, "
                         "125MBps)")
    return float(m.group(1)) * _RATE[m.group(2)]


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", str(text)).strip("_")


def expand(config: dict) -> dict:
    """{experiment id: experiment} for every point of every sweep, in a stable order.
    Raises InputError naming the sweep and key of anything inconsistent."""
    defaults = {**BUILTIN_DEFAULTS, **config.get("defaults", {})}
    experiments = {}
    for name, raw in config["sweeps"].items():
        sweep = {**defaults, **raw}
        where = f"config: sweeps.{name}"
        workload = sweep["workload"]
        for mode in sweep["modes"]:
            if mode not in ALLOWED[workload]:
                raise InputError(f"{where}.modes: mode '{mode}' cannot run workload "
                                 f"'{workload}' (it runs in: {', '.join(sorted(ALLOWED[workload]))})")
        topology = sweep.get("topology", "star")
        lookaheads = sweep.get("lookahead", [None])
        if workload == "gettimeofday" and lookaheads == [None]:
            raise InputError(f"{where}: the gettimeofday workload needs a lookahead list")
        for mode, lat, bw, n, la in itertools.product(
                sweep["modes"], sweep["latency"], sweep["bandwidth"], sweep["n"], lookaheads):
            latency_s = duration(lat, f"{where}.latency")
            bw_Bps = bandwidth(bw, f"{where}.bandwidth")
            if latency_s <= 0:
                raise InputError(f"{where}.latency: must be > 0")
            if workload in ("ping", "iperf3") and n < 2:
                raise InputError(f"{where}.n: the {workload} workload needs n >= 2")
            if topology == "dumbbell" and n % 2:
                raise InputError(f"{where}.n: a dumbbell needs an even n, not {n}")
            for rep in range(sweep.get("repetitions", 1)):
                parts = [name, mode, workload, _slug(topology), f"n{n}", f"lat{_slug(lat)}",
                         f"bw{_slug(bw)}"]
                if la is not None:
                    parts.append(f"la{_slug(la)}")
                parts.append(f"r{rep}")
                eid = "-".join(parts)
                experiments[eid] = {
                    "id": eid, "sweep": name, "mode": mode, "workload": workload,
                    "topology": topology, "n": n, "latency": lat, "latency_s": latency_s,
                    "bandwidth": bw, "bandwidth_Bps": bw_Bps, "rep": rep,
                    "lookahead": la,
                    "lookahead_s": duration(la, f"{where}.lookahead") if la else None,
                    "params": dict(sweep.get(workload, {}) or {}),
                    "image": config.get("image", "initramfs"),
                    "netem_where": config.get("netem_where", "auto"),
                    "timeout_s": sweep.get("timeout_s", config.get("timeout_s", 1800)),
                }
    return experiments


def check_qemu_version(config: dict, qemu_env_text: str) -> None:
    """The configured QEMU version must be the one csrc/qemu/qemu.env pins."""
    m = re.search(r"^QEMU_VERSION=(\S+)", qemu_env_text, re.M)
    pinned = m.group(1) if m else "?"
    if str(config.get("qemu_version", pinned)) != pinned:
        raise InputError(f"config: qemu_version: {config['qemu_version']} is not the version "
                         f"csrc/qemu/qemu.env pins ({pinned})")
