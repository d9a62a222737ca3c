#!/usr/bin/env python3
"""iperf3's TCP goodput between two VMs against the ceiling of TCP over Ethernet.

For each bandwidth, two VMs run the pipeline's iperf3 workload (`sleep 1; iperf3 -c SERVER
-t SECONDS -f m` against `iperf3 -s -1`) on a generated topology whose route has the given
latency and bottleneck bandwidth, under tansiv (deterministic: one run is enough) and, with
--netem, under the netem baseline (noisy, load-dependent). Prints the receiver's goodput
against the ceiling 1448/1538 x bandwidth (a full frame carries 1448 bytes of TCP payload
with timestamps, and takes 1538 bytes of wire time), then what the sender's frames did in
the simulation: full frames, header-only ones (a few pure ACKs, and the empty segment with
which QEMU's e1000 ends a TSO burst whose payload is a whole number of segments), and frames
that arrived before one sent earlier on the same route (overtaken: SimGrid shares a link's
bandwidth fairly among the frames crossing it, so a short frame passes long ones sent before
it).

    bench/goodput.py [--bandwidth 10Mbps 50Mbps] [--latency 1ms] [--topology star]
                     [--seconds 3] [--netem] [--cfg OPTION:VALUE ...]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tansiv import units
from tansiv.experiments import metrics, topology
from tansiv.run import deployment
from tansiv.run.deployment import Actor
from tansiv.run.wire import ethernet_wire_size

MSS, FULL_FRAME = 1448, 1514  # TCP payload and frame of a full segment with timestamps


def ceiling_bps(bandwidth_Bps: float) -> float:
    return bandwidth_Bps * 8 * MSS / ethernet_wire_size(FULL_FRAME)


def run(workdir: Path, mode: str, kind: str, latency_ns: int, bandwidth_Bps: float,
        seconds: int, cfg) -> Path:
    """One iperf3 run; returns its run folder (exits with tansiv's message if it fails)."""
    workdir.mkdir(parents=True)
    client, server = topology.pairs(kind, 2)[0]
    addr = {h: topology.address(k) for k, h in enumerate(topology.hosts(2))}
    plat = topology.write(workdir / "platform.xml", kind, 2, latency_ns, bandwidth_Bps)
    dep = deployment.write(workdir / "deployment.xml", [
        Actor(client, addr[client], "tansiv-vm",
              ["--cmd", f"sleep 1; iperf3 -c {addr[server]} -t {seconds} -f m"]),
        Actor(server, addr[server], "tansiv-vm", ["--cmd", "iperf3 -s -1"])])
    args = [mode, plat, dep, "--out", workdir / "run", "--main", addr[client]]
    if mode == "run":
        args += ["--quiet", "--until", str(seconds + 40), *(f"--cfg={c}" for c in cfg)]
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", *map(str, args)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tansiv {mode} failed in {workdir}:\n{r.stderr}")
    return workdir / "run"


def frames(run_dir: Path, sender: str) -> dict:
    """What the sender's frames did: full and header-only frames, and how many arrived
    before a frame sent earlier on the same route."""
    sent = sorted((json.loads(line) for line in open(run_dir / "packets.jsonl")),
                  key=lambda p: p["send_ns"])
    sent = [p for p in sent if p["src"] == sender]
    overtaken, last = 0, 0
    for p in sent:
        overtaken += p["complete_ns"] < last
        last = max(last, p["complete_ns"])
    return {"full": sum(p["size"] == FULL_FRAME for p in sent),
            "header-only": sum(p["size"] == FULL_FRAME - MSS for p in sent),
            "overtaken": overtaken}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bandwidth", nargs="+", default=["10Mbps", "50Mbps"])
    ap.add_argument("--latency", default="1ms")
    ap.add_argument("--topology", choices=topology.KINDS, default="star")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--netem", action="store_true", help="also run the netem baseline")
    ap.add_argument("--cfg", nargs="*", default=[], help="SimGrid options for tansiv run")
    args = ap.parse_args()
    latency = units.step_ns(args.latency)
    print(f"iperf3 -t {args.seconds}, {args.topology}, route latency {args.latency}"
          + (f", --cfg {' '.join(args.cfg)}" if args.cfg else ""))
    with tempfile.TemporaryDirectory(prefix="tansiv-goodput-") as tmp:
        for bw in args.bandwidth:
            bandwidth = units.bandwidth(bw)
            ceiling = ceiling_bps(bandwidth)
            modes = ["run"] + (["netem"] if args.netem else [])
            for mode in modes:
                run_dir = run(Path(tmp) / f"{bw}-{mode}", mode, args.topology, latency,
                              bandwidth, args.seconds, args.cfg)
                g = metrics.iperf3_goodput_bps(run_dir / "participants" / "10.0.0.1.log")
                line = (f"{bw:>8} {'tansiv' if mode == 'run' else 'netem':>6}: goodput "
                        f"{g / 1e6:6.2f} Mbit/s, ceiling {ceiling / 1e6:6.2f}, "
                        f"{100 * g / ceiling:5.1f} %")
                if mode == "run":
                    f = frames(run_dir, "10.0.0.1")
                    line += ("; sender's frames: " +
                             ", ".join(f"{v} {k}" for k, v in f.items()))
                print(line, flush=True)


if __name__ == "__main__":
    main()
