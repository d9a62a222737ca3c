#!/usr/bin/env python3
"""Cost of a synchronization round with idle participants.

N processes (csrc/tests/idle) that only let simulated time pass, on an N-host cluster, with a
fixed lookahead (--force): every round is a full barrier with nothing to simulate. For each N,
one `tansiv run`; prints rounds per second and the wall time of a round split into
  hub     the hub's calls, in C, not blocked: sending deadlines, reading frames; with more
          processes than cores this includes participants that preempt it when woken
  (cpu)   of which the hub's own CPU time
  wait    blocked until every participant reached the deadline (their slice runs in real
          time, so at most the lookahead, less what elapsed while the hub was busy)
  python  the coordinator's loop
  simgrid SimGrid calls (next event, run_until)

    bench/sync_rounds.py [--participants 2 8 32 64] [--lookahead 100us] [--duration 0.2]
"""

import argparse
import tempfile
from pathlib import Path

from benchlib import Table, actor, run

from tansiv import paths
from tansiv.cli import seconds
from tansiv.experiments.topology import address


def idle_run(n: int, lookahead: float, duration: float, workdir: Path):
    idle = str(paths.libexecdir() / "tests" / "idle")
    actors = [actor(k, idle, "-n", address(k), "--", str(int(duration * 1e6))) for k in range(n)]
    # Routes of 100 us; the lookahead is forced.
    return run(workdir / f"n{n}", actors, 100e-6, "--force", lookahead)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[2, 8, 32, 64])
    ap.add_argument("--lookahead", type=seconds, default=seconds("100us"))
    ap.add_argument("--duration", type=seconds, default=0.2, help="simulated seconds")
    args = ap.parse_args()

    print(f"idle participants, lookahead {args.lookahead * 1e6:g} us, "
          f"{args.duration:g} s simulated each")
    table = Table(("N", 4), ("rounds", 7), ("rounds/s", 9), ("us/round", 9), ("hub", 7),
                  ("(cpu)", 7), ("wait", 8), ("python", 7), ("simgrid", 8), ("sim s/wall s", 13))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.participants:
            info = idle_run(n, args.lookahead, args.duration, Path(tmp))
            split = {k: f"{v / info.rounds / 1e3:.1f}" for k, v in info.time_split_ns.items()}
            table.row(n, info.rounds, f"{info.rounds / info.wall_s:.0f}",
                      f"{info.wall_s / info.rounds * 1e6:.1f}", split["hub_busy"],
                      split["hub_cpu"], split["hub_wait"], split["python"], split["simgrid"],
                      f"{info.simulated_s_per_wall_s:.3f}")
    print("(hub, cpu, wait, python, simgrid: microseconds per round)")


if __name__ == "__main__":
    main()
