#!/usr/bin/env python3
"""The two network models side by side (tansiv run --network simgrid|ns3), in one run of this
script, alternating, on the same machine:

  packets  pairs of processes streaming frames (csrc/tests/burst) across a cluster: frames
           per wall second of the synchronization loop, each model carrying the same frames
           (queues large enough that ns-3 drops none);
  iperf3   the pipeline's iperf3 experiment (two VMs, a star of 10 Mbit/s, 1 ms routes):
           wall time of the synchronization loop, and of the whole run (boot included).

    bench/network_models.py [--frames 20000] [--size 1000] [--pairs 1 4] [--repeat 2]
                            [--iperf3 SECONDS (0: skip)]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import Table, actor, run
from tansiv import paths, units
from tansiv.experiments import topology
from tansiv.run import deployment
from tansiv.run.record import RunRecord

MODELS = ("simgrid", "ns3")
BURST = str(paths.libexecdir() / "tests" / "burst")


def packets(workdir: Path, model: str, pairs: int, frames: int, size: int):
    actors = []
    for k in range(pairs):
        a, b = 2 * k, 2 * k + 1
        actors += [actor(a, BURST, "-n", topology.address(a), "--", "send",
                         topology.address(b), frames, size, "stop"),
                   # A receive buffer for every frame: the reader may fall behind.
                   actor(b, BURST, "-n", topology.address(b), "-b", frames, "--", "recv",
                         frames)]
    queues = ["--queue-size", f"{frames + 1}p"] if model == "ns3" else []
    r = run(workdir, actors, 100_000, "--network", model, *queues)
    if r.packets_delivered != pairs * frames:
        sys.exit(f"{model}: {r.packets_delivered} of {pairs * frames} frames delivered "
                 f"({workdir})")
    return r.packets_delivered / r.sync_wall_s, r.sync_wall_s, r.rounds


def iperf3(workdir: Path, model: str, seconds: int):
    workdir.mkdir(exist_ok=True)
    plat = topology.write(workdir / "platform.xml", "star", 2, 1_000_000, 1.25e6)
    hosts = topology.hosts(2)
    dep = deployment.write(workdir / "deployment.xml", [
        deployment.Actor(hosts[0], topology.address(0), "tansiv-vm",
                         ["--cmd", f"sleep 1; iperf3 -c {topology.address(1)} -t {seconds}"]),
        deployment.Actor(hosts[1], topology.address(1), "tansiv-vm",
                         ["--cmd", "iperf3 -s -1"])])
    until = units.to_ns(6 + seconds + 5)
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", plat, dep, "--out",
                        workdir / "run", "--quiet", "--network", model, "--main",
                        topology.address(0), "--until", f"{until}ns", "--end-grace", "3"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tansiv run failed in {workdir}:\n{r.stderr}")
    rec = RunRecord.load(workdir / "run")
    return rec.sync_wall_s, rec.total_wall_s, rec.packets_delivered, rec.rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--pairs", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--iperf3", type=int, default=5, metavar="SECONDS")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        tmp = Path(tmp)
        print(f"frames per wall second of synchronization ({args.frames} frames of "
              f"{args.size} bytes per pair, median of {args.repeat}, models alternating)")
        t = Table(("pairs", 6), ("simgrid/s", 11), ("ns3/s", 11), ("ns3 rounds", 11),
                  ("simgrid rounds", 14), ("ns3 : simgrid wall", 19))
        for pairs in args.pairs:
            got = {m: [] for m in MODELS}
            for rep in range(args.repeat):
                for m in MODELS:
                    got[m].append(packets(tmp / f"p{pairs}-{m}-{rep}", m, pairs, args.frames,
                                          args.size))
            rate = {m: statistics.median(g[0] for g in got[m]) for m in MODELS}
            wall = {m: statistics.median(g[1] for g in got[m]) for m in MODELS}
            t.row(pairs, f"{rate['simgrid']:.0f}", f"{rate['ns3']:.0f}", got["ns3"][0][2],
                  got["simgrid"][0][2], f"{wall['ns3'] / wall['simgrid']:.2f}")
        if args.iperf3:
            print(f"\nthe iperf3 experiment ({args.iperf3} s, two VMs, 10 Mbit/s, 1 ms): wall "
                  "seconds")
            t = Table(("model", 8), ("sync", 8), ("whole run", 10), ("packets", 8),
                      ("rounds", 8))
            walls = {}
            for m in MODELS:
                sync, total, delivered, rounds = iperf3(tmp / f"iperf3-{m}", m, args.iperf3)
                walls[m] = sync
                t.row(m, f"{sync:.1f}", f"{total:.1f}", delivered, rounds)
            print(f"ns3 : simgrid (synchronization) = {walls['ns3'] / walls['simgrid']:.2f}")


if __name__ == "__main__":
    main()
