#!/usr/bin/env python3
"""Cost of a synchronization round with idle participants.

N processes (csrc/tests/idle) that only let simulated time pass, on an N-host cluster, with a
fixed lookahead (--force): every round is a full barrier with nothing to simulate. For each N
and each transport (shared-memory channels, sockets), one `tansiv run`, and the machine's
floor for a round of N processes (csrc/bench/barrier: a bare barrier over shared memory and
futexes, nothing else) measured in the same run. Prints the wall time of a round, its
overhead (the round less the slice, which processes spend in real time), that overhead as a
multiple of the floor, and the round's time split into
  hub     the hub's calls, in C, not blocked: starting rounds, reading frames; with more
          processes than cores this includes participants that preempt it when woken
  (cpu)   of which the hub's own CPU time
  wait    blocked until every participant reached the deadline (their slice runs in real
          time, so at most the lookahead, less what elapsed while the hub was busy)
  python  the coordinator's loop (called only when a round is not idle)
  simgrid SimGrid calls (next event, run_until)

    bench/sync_rounds.py [--participants 2 8 32 64] [--lookahead 100us] [--duration 0.2]
                         [--transport shm socket]
"""

import argparse
import tempfile
from pathlib import Path

from benchlib import Table, actor, floor_us, run

from tansiv import paths
from tansiv.cli import seconds
from tansiv.experiments.topology import address


def idle_run(n: int, lookahead: float, duration: float, transport: str, workdir: Path):
    idle = str(paths.libexecdir() / "tests" / "idle")
    actors = [actor(k, idle, "-n", address(k), "--", str(int(duration * 1e6))) for k in range(n)]
    # Routes of 100 us; the lookahead is forced.
    return run(workdir, actors, 100e-6, "--force", lookahead, "--transport", transport)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[2, 8, 32, 64])
    ap.add_argument("--lookahead", type=seconds, default=seconds("100us"))
    ap.add_argument("--duration", type=seconds, default=0.2, help="simulated seconds")
    ap.add_argument("--transport", nargs="+", default=["shm", "socket"],
                    choices=["shm", "socket"])
    args = ap.parse_args()

    slice_us = args.lookahead * 1e6
    print(f"idle participants, lookahead {slice_us:g} us, {args.duration:g} s simulated each")
    table = Table(("N", 4), ("transport", 9), ("us/round", 9), ("overhead", 9), ("floor", 7),
                  ("x floor", 8), ("hub", 7), ("(cpu)", 7), ("wait", 8), ("python", 7),
                  ("simgrid", 8))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.participants:
            floor = floor_us(n)
            for transport in args.transport:
                info = idle_run(n, args.lookahead, args.duration, transport,
                                Path(tempfile.mkdtemp(dir=tmp)))
                split = {k: f"{v / info.rounds / 1e3:.1f}" for k, v in info.time_split_ns.items()}
                per_round = info.wall_s / info.rounds * 1e6
                overhead = per_round - slice_us
                table.row(n, transport, f"{per_round:.1f}", f"{overhead:.1f}", f"{floor:.1f}",
                          f"{overhead / floor:.2f}", split["hub_busy"], split["hub_cpu"],
                          split["hub_wait"], split["python"], split["simgrid"])
    print("(us/round, overhead, floor, hub, cpu, wait, python, simgrid: microseconds per round)")


if __name__ == "__main__":
    main()
