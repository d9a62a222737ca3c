#!/usr/bin/env python3
"""Wall-clock seconds per simulated second with idle VMs.

N VMs (tansiv's default guest, started from its booted snapshot) sleep, on a cluster whose
routes have the given latency (the lookahead), over each transport, with idle horizons on and
off (--idle-horizons: halted guests sit out the rounds before their next timer). Each (N,
transport, horizons) runs twice, idling SHORT then LONG simulated seconds; the difference
isolates the cost of idle time from the start-up:
    idle cost = (wall(LONG) - wall(SHORT)) / (LONG - SHORT)   wall s per simulated s
    µs/round  = (wall(LONG) - wall(SHORT)) / (rounds(LONG) - rounds(SHORT))
and µs/round is printed as a multiple of the machine's floor for N processes (a bare
shared-memory barrier, csrc/bench/barrier.c), measured in the same call. Runs are
sequential, side by side in one call.

and, as a speed, simulated s per wall s of idle time (1 / idle wall/sim).

    bench/vm_speed.py [--vms 2 16] [--latency 1ms] [--short 2] [--long 62]
                      [--transport shm] [--horizons on off]
"""

import argparse
import tempfile
from pathlib import Path

from benchlib import Table, actor, floor_us, run

from tansiv import units
from tansiv.cli import step_ns


def idle_vms(n, latency, idle_s, transport, horizons, workdir: Path):
    actors = [actor(k, "tansiv-vm", "--cmd", f"sleep {idle_s:g}") for k in range(n)]
    return run(workdir / f"n{n}-{transport}-{horizons}-idle{idle_s:g}", actors, latency,
               "--transport", transport, "--idle-horizons", horizons)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--latency", type=step_ns, default=step_ns("1ms"))
    ap.add_argument("--short", type=float, default=2.0, help="idle simulated s, short run")
    ap.add_argument("--long", type=float, default=62.0, help="idle simulated s, long run")
    ap.add_argument("--transport", nargs="+", default=["shm"], choices=["shm", "socket"])
    ap.add_argument("--horizons", nargs="+", default=["on", "off"], choices=["on", "off"])
    args = ap.parse_args()
    print(f"idle VMs, route latency (lookahead) {args.latency / 1e6:g} ms; idle "
          f"{args.short:g} s and {args.long:g} s after boot")
    table = Table(("VMs", 4), ("transport", 9), ("horizons", 8), ("simulated s", 12),
                  ("wall s", 8), ("wall/sim", 9), ("idle wall/sim", 14), ("idle sim/wall", 14),
                  ("rounds", 7), ("sat out", 8), ("us/round", 9), ("floor", 7), ("x floor", 8))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.vms:
            floor = floor_us(n)
            for transport in args.transport:
                for horizons in args.horizons:
                    short = idle_vms(n, args.latency, args.short, transport, horizons, Path(tmp))
                    long = idle_vms(n, args.latency, args.long, transport, horizons, Path(tmp))
                    wall = long.sync_wall_s - short.sync_wall_s
                    sim = units.to_seconds(long.simulated_ns - short.simulated_ns)
                    long_sim = units.to_seconds(long.simulated_ns - long.start_ns)
                    us_round = wall / max(1, long.rounds - short.rounds) * 1e6
                    table.row(n, transport, horizons, f"{long_sim:.2f}",
                              f"{long.sync_wall_s:.2f}", f"{long.sync_wall_s / long_sim:.3f}",
                              f"{wall / sim:.4f}",
                              # Below the boot's own variation: say so, not a speed.
                              f"{sim / wall:.1f}" if wall > 0 else "< boot noise",
                              long.rounds, long.rounds_sat_out, f"{us_round:.1f}",
                              f"{floor:.1f}", f"{us_round / floor:.2f}")
    print("(wall/sim: the whole long run, from its start (the guests' booted snapshot); idle "
          "wall/sim and us/round: the "
          "difference between the two runs, which a long idle time makes larger than the "
          "boots' variation (--long); floor: µs per round of the bare barrier of N "
          "processes)")


if __name__ == "__main__":
    main()
