#!/usr/bin/env python3
"""Wall-clock seconds per simulated second with idle VMs.

N VMs (tansiv's default guest) boot, then sleep, on a cluster whose routes have the given
latency (the lookahead). Each N runs twice, idling SHORT then LONG simulated seconds after
boot; the difference isolates the cost of idle time from the boot:
    idle cost = (wall(LONG) - wall(SHORT)) / (LONG - SHORT)   wall s per simulated s
and the whole run's ratio is printed too. Runs are sequential, side by side in one call.

    bench/vm_speed.py [--vms 2 4] [--latency 1ms] [--short 2] [--long 62]
"""

import argparse
import tempfile
from pathlib import Path

from benchlib import Table, actor, run

from tansiv.cli import seconds


def idle_vms(n, latency, idle_s, workdir: Path):
    actors = [actor(k, "tansiv-vm", "--cmd", f"sleep {idle_s:g}") for k in range(n)]
    return run(workdir / f"n{n}-idle{idle_s:g}", actors, latency)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--latency", type=seconds, default=seconds("1ms"))
    ap.add_argument("--short", type=float, default=2.0, help="idle simulated s, short run")
    ap.add_argument("--long", type=float, default=62.0, help="idle simulated s, long run")
    args = ap.parse_args()
    print(f"idle VMs, route latency (lookahead) {args.latency * 1e3:g} ms; idle "
          f"{args.short:g} s and {args.long:g} s after boot")
    table = Table(("VMs", 4), ("simulated s", 12), ("wall s", 8), ("wall/sim", 9),
                  ("idle wall/sim", 14), ("rounds", 7), ("us/round", 9))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.vms:
            short = idle_vms(n, args.latency, args.short, Path(tmp))
            long = idle_vms(n, args.latency, args.long, Path(tmp))
            idle = (long.wall_s - short.wall_s) / (long.simulated_s - short.simulated_s)
            us_round = (long.wall_s - short.wall_s) / (long.rounds - short.rounds) * 1e6
            table.row(n, f"{long.simulated_s:.2f}", f"{long.wall_s:.2f}",
                      f"{long.wall_s / long.simulated_s:.3f}", f"{idle:.3f}", long.rounds,
                      f"{us_round:.1f}")
    print("(wall/sim: the whole long run, boot included; idle wall/sim and us/round: the "
          "difference between the two runs)")


if __name__ == "__main__":
    main()
