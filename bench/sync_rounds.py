#!/usr/bin/env python3
"""Cost of a synchronization round with idle participants.

N processes (csrc/tests/idle) that only let simulated time pass, on an N-host cluster, with a
fixed lookahead (--force): every round is a full barrier with nothing to simulate. They wait
in vsg_wait (the coordinator knows they are idle: with idle horizons they sit out rounds and
the run jumps to their date) or in nanosleep (it does not: every round runs them all). For
each N, transport (shared-memory channels, sockets), way of waiting and --idle-horizons, one
`tansiv run`, and the machine's
floor for a round of N processes (csrc/bench/barrier: a bare barrier over shared memory and
futexes, nothing else) measured in the same run. Prints the wall time per simulated
lookahead, against that floor (below 1: the participants were not woken every lookahead);
the wall time of a round, its
overhead (the round less the slice, which processes spend in real time), that overhead as a
multiple of the floor, and the round's time split into
  hub     the hub's calls, in C, not blocked: starting rounds, reading frames; with more
          processes than cores this includes participants that preempt it when woken
  (cpu)   of which the hub's own CPU time
  wait    blocked until every participant reached the deadline (their slice runs in real
          time, so at most the lookahead, less what elapsed while the hub was busy)
  python  the coordinator's loop (called only when a round is not idle)
  simgrid SimGrid calls (next event, run_until)

With --nodes K (K > 1), the participants are spread over K nodes of a SLURM allocation
(`salloc -N K`, --launcher slurm: a relay per node, over TCP), the coordinator outside them;
--local-cluster starts a cluster of that many slurmd on this machine for it (root; the test
cluster of tests/slurm_cluster.py), so that the figure is the relays' cost without a network.
The floor stays the one-machine barrier of N processes.

    bench/sync_rounds.py [--participants 2 8 32 64] [--lookahead 100us] [--duration 0.2]
                         [--transport shm socket] [--waits wait sleep] [--horizons on off]
                         [--nodes 1 3] [--local-cluster]
"""

import argparse
import itertools
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

from benchlib import Table, actor, floor_us, run

from tansiv import paths
from tansiv.cli import step_ns
from tansiv.experiments.topology import address


def idle_run(n: int, lookahead_ns: int, duration_ns: int, transport: str, workdir: Path,
             nodes: int = 1, waits: str = "wait", horizons: str = "on"):
    idle = str(paths.libexecdir() / "tests" / "idle")
    actors = [actor(k, idle, "-n", address(k), "--", str(duration_ns // 1000), waits)
              for k in range(n)]
    spread = (["--launcher", "slurm"], ["salloc", f"-N{nodes}", "--quiet"]) if nodes > 1 \
        else ([], [])
    # Routes of 100 us; the lookahead is forced.
    return run(workdir, actors, 100_000, "--force", f"{lookahead_ns}ns", "--transport", transport,
               "--idle-horizons", horizons, *spread[0], prefix=spread[1])


def local_cluster(nodes: int):
    """A SLURM cluster of `nodes` slurmd on this machine, for the time of the benchmark."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import slurm_cluster
    why = slurm_cluster.why_not()
    if why:
        sys.exit(f"--local-cluster: {why}")
    cluster = slurm_cluster.Cluster(nodes=nodes).start()

    class Running:
        def __enter__(self):
            return cluster

        def __exit__(self, *exc):
            cluster.stop()
    return Running()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[2, 8, 32, 64])
    ap.add_argument("--lookahead", type=step_ns, default=step_ns("100us"))
    ap.add_argument("--duration", type=step_ns, default=step_ns("0.2"), help="simulated")
    ap.add_argument("--transport", nargs="+", default=["shm", "socket"],
                    choices=["shm", "socket"])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1],
                    help="SLURM nodes the participants are spread over (> 1: salloc)")
    ap.add_argument("--waits", nargs="+", default=["wait", "sleep"], choices=["wait", "sleep"],
                    help="how the participants wait: vsg_wait (the coordinator knows they are "
                         "idle) or nanosleep (it does not: every round runs them)")
    ap.add_argument("--horizons", nargs="+", default=["on", "off"], choices=["on", "off"],
                    help="tansiv run --idle-horizons")
    ap.add_argument("--local-cluster", action="store_true",
                    help="start a SLURM cluster of max(--nodes) slurmd on this machine")
    args = ap.parse_args()

    slice_us = args.lookahead / 1e3
    print(f"idle participants, lookahead {slice_us:g} us, {args.duration / 1e9:g} s simulated "
          "each")
    table = Table(("N", 4), ("nodes", 5), ("transport", 9), ("waits", 6), ("horizons", 8),
                  ("rounds", 7), ("us/lookahead", 12), ("/ floor", 8), ("us/round", 9),
                  ("overhead", 9), ("floor", 7), ("x floor", 8), ("hub", 7), ("(cpu)", 7),
                  ("wait", 8), ("python", 7), ("simgrid", 8))
    cluster = local_cluster(max(args.nodes)) if args.local_cluster else nullcontext()
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp, cluster:
        for n in args.participants:
            floor = floor_us(n)
            for nodes in args.nodes:
                for transport, waits, horizons in itertools.product(
                        args.transport, args.waits, args.horizons):
                    info = idle_run(n, args.lookahead, args.duration, transport,
                                    Path(tempfile.mkdtemp(dir=tmp)), nodes, waits, horizons)
                    split = {k: f"{v / info.rounds / 1e3:.1f}"
                             for k, v in info.time_split_ns.items()}
                    per_round = info.sync_wall_s / info.rounds * 1e6
                    per_lookahead = info.sync_wall_s / (args.duration / args.lookahead) * 1e6
                    overhead = per_round - slice_us
                    table.row(n, nodes, transport, waits, horizons, info.rounds,
                              f"{per_lookahead:.2f}", f"{per_lookahead / floor:.3f}",
                              f"{per_round:.1f}", f"{overhead:.1f}", f"{floor:.1f}",
                              f"{overhead / floor:.2f}", split["hub_busy"], split["hub_cpu"],
                              split["hub_wait"], split["python"], split["simgrid"])
    print("(us/lookahead: wall us per simulated lookahead, the whole run; / floor: that over "
          "one barrier of N; us/round ... simgrid: wall microseconds per round)")


if __name__ == "__main__":
    main()
