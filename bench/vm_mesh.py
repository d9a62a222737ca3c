#!/usr/bin/env python3
"""The scale point: N VMs on one machine, each pinging every other.

N VMs (tansiv's default guest) on a cluster whose routes have the given latency; each pings
the N-1 others COUNT times (after one warm-up ping each), INTERVAL apart, one VM after the
other (VM k sleeps k turns after boot first, and all stay up to the end), so that an echo
never waits for the guest to answer another: the RTT excess is then the coupling's alone and
should not grow with N, while all N VMs are synchronized in every round. Every N runs
--runs times over each transport; per run, the RTT excess over the model (the median of
each pair's median, and the spread of the pairs' medians: max - min), the wall time and the
simulated seconds per wall second; and whether it gave the same packets (packets.jsonl, bit
for bit) and guest RTTs as the first run of the same N, over either transport.

    bench/vm_mesh.py [--vms 2 16] [--latency 1ms] [--count 5] [--interval 10ms] [--runs 2]
                     [--transport shm socket]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from benchlib import Table, actor, run

from tansiv import units
from tansiv.cli import step_ns
from tansiv.experiments import metrics
from tansiv.experiments.topology import address
from tansiv.experiments.workloads.base import Workload


def mesh(workdir: Path, n: int, args, transport: str):
    # One VM's turn of pings, in simulated s.
    turn = units.to_seconds(((n - 1) * (args.count + 1) + 2) * max(args.interval, 4 * args.latency))
    actors = []
    for k in range(n):
        others = " ".join(address(j) for j in range(n) if j != k)
        # Up until the end: a VM that powers off is a peer lost for the others' turns.
        cmd = (f"sleep {k * turn:.6f}; tping -c {args.count} -i {args.interval / 1e6:g} -w 1 "
               f"{others}; sleep {(n - k) * turn + 2:.6f}")
        actors.append(actor(k, "tansiv-vm", "--cmd", cmd))
    until_ns = units.to_ns(Workload.boot_s + n * turn + 1)
    record = run(workdir, actors, args.latency, "--transport", transport,
                 "--until", f"{until_ns}ns", "--end-grace", "3")
    return workdir / "run", record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--latency", type=step_ns, default=step_ns("1ms"))
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--interval", type=step_ns, default=step_ns("10ms"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--transport", nargs="+", default=["shm", "socket"],
                    choices=["shm", "socket"])
    args = ap.parse_args()
    print(f"full-mesh ping, routes of {args.latency / 1e6:g} ms, {args.count} pings per pair "
          f"{args.interval / 1e6:g} ms apart")
    table = Table(("VMs", 4), ("transport", 9), ("run", 4), ("pairs", 6), ("excess us", 10),
                  ("spread us", 10), ("wall s", 8), ("sim/wall", 9), ("identical", 10))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.vms:
            first = None
            for transport in args.transport:
                for k in range(args.runs):
                    folder, record = mesh(Path(tmp) / f"n{n}-{transport}-{k}", n, args,
                                          transport)
                    matrix = metrics.rtt_matrix(folder, record)
                    excess = [(median - model) / 1e3 for median, model, _ in matrix.values()]
                    got = ((folder / "packets.jsonl").read_bytes(),
                           [r["rtt_ns"] for r in metrics.rtt_rows(record)])
                    first = first or got
                    table.row(n, transport, k + 1, len(matrix),
                              f"{statistics.median(excess):.1f}",
                              f"{max(excess) - min(excess):.1f}", f"{record.sync_wall_s:.1f}",
                              f"{record.simulated_s_per_wall_s:.3f}",
                              "-" if got is first else ("yes" if got == first else "NO"))
    print("(excess: the median over pairs of each pair's median RTT less the model; spread: "
          "max - min of those; identical: packets.jsonl and guest RTTs equal to the first run's of "
          "the same N, whatever its transport)")


if __name__ == "__main__":
    main()
