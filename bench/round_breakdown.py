#!/usr/bin/env python3
"""Where an idle VM's round goes.

N VMs (tansiv's default guest) boot, then sleep IDLE simulated seconds, on a cluster whose
routes have the given latency (the lookahead); every participant traces its rounds
(TANSIV_TRACE, csrc/client/trace.h). Over the idle rounds (after boot), per round, in µs:
  round      wall time from one release of the VMs to the next
  qemu       from a VM's release to its next deadline: QEMU's timer and main-loop path and
             the guest's instructions (their count per round beside it)
  report     from the deadline to having told the coordinator
  lag        waiting for the slowest VM to report
  release    from the last report to the VM's release: waking the hub, its work, the
             wake-up back
and, averaged over all of the run's rounds (boot included, from run.json's time split):
  hub cpu, python, simgrid   the coordinator's work per round (idle rounds run in the hub,
             in C, and do not reach Python or SimGrid)

With --warp on off, each point also runs without QEMU's idle fast path (TANSIV_IDLE_WARP=0,
csrc/qemu/backend_qemu.c): the vCPU then hands over to QEMU's main loop at every deadline.

    bench/round_breakdown.py [--vms 2] [--latency 1ms] [--idle 20] [--transport shm socket]
                             [--warp on off]
"""

import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

from benchlib import Table, actor, run

from tansiv.cli import step_ns
from tansiv.experiments.workloads.base import Workload

BOOT_S = Workload.boot_s


def rounds(trace: Path, after_ns: int):
    """[(deadline, reached, sent, resumed, work)] of a trace, deadlines after after_ns."""
    rows = [tuple(map(int, line.split())) for line in trace.read_text().splitlines()]
    return [r for r in rows if r[0] > after_ns]


def breakdown(traces: list, record) -> dict:
    by_deadline = [dict((r[0], r) for r in t) for t in traces]
    common = sorted(set.intersection(*(set(d) for d in by_deadline)))
    us = {k: [] for k in ("round", "qemu", "instructions", "report", "lag", "release")}
    for a, b in zip(common, common[1:]):
        now, nxt = [d[a] for d in by_deadline], [d[b] for d in by_deadline]
        last_sent = max(r[2] for r in now)
        us["round"].append((nxt[0][3] - now[0][3]) / 1e3)
        for r, r2 in zip(now, nxt):
            us["qemu"].append((r2[1] - r[3]) / 1e3)
            us["instructions"].append(r2[4] - r[4])
            us["report"].append((r[2] - r[1]) / 1e3)
            us["lag"].append((last_sent - r[2]) / 1e3)
            us["release"].append((r[3] - last_sent) / 1e3)
    out = {k: statistics.median(v) for k, v in us.items()}
    split = {k: v / record.rounds / 1e3 for k, v in record.time_split_ns.items()}
    out.update(hub=split["hub_cpu"], python=split["python"], simgrid=split["simgrid"],
               rounds=len(common))
    return out


def measure(workdir: Path, n: int, args, transport: str, warp: str) -> dict:
    folder = workdir / "trace"
    folder.mkdir()
    actors = [actor(k, "tansiv-vm", "--cmd", f"sleep {args.idle:g}") for k in range(n)]
    record = run(workdir / "run", actors, args.latency, "--transport", transport,
                 env={"TANSIV_TRACE": folder, "TANSIV_IDLE_WARP": int(warp == "on")})
    traces = [rounds(f, int((BOOT_S + 1) * 1e9)) for f in sorted(folder.glob("*.trace"))]
    return breakdown(traces, record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2])
    ap.add_argument("--latency", type=step_ns, default=step_ns("1ms"))
    ap.add_argument("--idle", type=float, default=20.0, help="idle simulated s after boot")
    ap.add_argument("--transport", nargs="+", default=["shm", "socket"],
                    choices=["shm", "socket"])
    ap.add_argument("--warp", nargs="+", default=["on"], choices=["on", "off"])
    args = ap.parse_args()
    print(f"idle VMs, lookahead {args.latency / 1e6:g} ms, {args.idle:g} s idle; medians of "
          "the idle rounds, µs per round (instructions: per round)")
    table = Table(("VMs", 4), ("transport", 9), ("warp", 5), ("rounds", 7), ("round", 7),
                  ("qemu", 7), ("instr.", 8), ("report", 7), ("lag", 7), ("release", 8),
                  ("hub cpu", 8), ("python", 7), ("simgrid", 8))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.vms:
            for transport, warp in itertools.product(args.transport, args.warp):
                b = measure(Path(tempfile.mkdtemp(dir=tmp)), n, args, transport, warp)
                table.row(n, transport, warp, b["rounds"],
                          *(f"{b[k]:.1f}" for k in ("round", "qemu")), f"{b['instructions']:.0f}",
                          *(f"{b[k]:.1f}" for k in ("report", "lag", "release", "hub",
                                                    "python", "simgrid")))


if __name__ == "__main__":
    main()
