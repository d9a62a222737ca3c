#!/usr/bin/env python3
"""The netem baseline's floor: what two plain-TCG guests add to a round trip, and the router
VM's share of it.

Two guests (netem mode: plain TCG, real time) ping each other PINGS times, first joined
directly (QEMU dgram netdevs over a pair of unix sockets, no bridge), then through the netem
router with zero route latency (`tansiv netem --where router`). Runs are sequential, side by
side in one call; prints the median and the spread (interquartile range) of each, in µs.

    bench/netem_floor.py [--pings 20] [--interval-ms 20]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import actor

from tansiv import paths
from tansiv.experiments import metrics, topology
from tansiv.run import deployment
from tansiv.vm import build


def rtts(log: Path) -> list:
    return [e["rtt_ns"] / 1e3 for e in metrics.json_lines(log)
            if e.get("event") == "rtt" and not e.get("warmup")]


def direct(d: Path, ping: str, env: dict) -> list:
    launcher = paths.bindir() / "tansiv-vm"
    a, b = str(d / "a.sock"), str(d / "b.sock")
    common = ["--mode", "netem", "--peers", "10.0.0.1,10.0.0.2"]
    with open(d / "peer.log", "w") as peer_log:
        peer = subprocess.Popen([launcher, *common, "--address", "10.0.0.2", "--dgram",
                                 f"{b},{a}", "--cmd", "sleep 600"], stdout=peer_log,
                                stderr=subprocess.STDOUT, env=env)
        try:
            with open(d / "pinger.log", "w") as log:
                subprocess.run([launcher, *common, "--address", "10.0.0.1", "--dgram",
                                f"{a},{b}", "--cmd", ping], stdout=log,
                               stderr=subprocess.STDOUT, timeout=600, check=True, env=env)
        finally:
            peer.kill()
            peer.wait()
    return rtts(d / "pinger.log")


def router(d: Path, ping: str, env: dict) -> list:
    # Two hosts on a star with no latency: netem delays nothing, the router still forwards.
    plat = topology.write(d / "platform.xml", "star", 2, 0, 125e6)
    dep = deployment.write(d / "deployment.xml", [actor(0, "tansiv-vm", "--cmd", ping),
                                                   actor(1, "tansiv-vm", "--cmd", "sleep 600")])
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "netem", plat, dep, "--out",
                        d / "run", "--where", "router", "--main", "10.0.0.1", "--timeout", "120"],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"tansiv netem failed:\n{r.stderr}")
    return rtts(d / "run" / "participants" / "10.0.0.1.log")


def describe(name: str, values: list) -> str:
    q = statistics.quantiles(values, n=4)
    return (f"{name:28s} median {statistics.median(values):8.0f} µs   "
            f"IQR {q[2] - q[0]:7.0f} µs   ({len(values)} pings)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pings", type=int, default=20)
    ap.add_argument("--interval-ms", type=int, default=20)
    args = ap.parse_args()
    env = dict(os.environ, **build.prepare(router=True).env())
    ping = f"tping -c {args.pings} -i {args.interval_ms} -w 2 10.0.0.2"
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for name, measure in (("direct link", direct), ("netem router, no delay", router)):
            d = Path(tmp) / name.split()[0]
            d.mkdir()
            print(describe(name, measure(d, ping, env)), flush=True)


if __name__ == "__main__":
    main()
