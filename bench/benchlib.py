"""What the benchmarks share: a run of `tansiv run` on a generated cluster, read back as its
record."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from tansiv import paths
from tansiv.experiments import topology
from tansiv.run import deployment
from tansiv.run.deployment import Actor
from tansiv.run.record import RunRecord


def run(workdir: Path, actors, latency_ns: int, *options, env=None, prefix=()) -> RunRecord:
    """Runs actors (one per host h1..hN of a cluster whose routes have latency_ns, 125 MB/s)
    in workdir, with env added to the environment, the command after prefix (salloc...);
    exits with tansiv's message if the run fails."""
    workdir.mkdir(exist_ok=True)
    plat = topology.write(workdir / "platform.xml", "cluster", len(actors), latency_ns, 125e6)
    dep = deployment.write(workdir / "deployment.xml", actors)
    r = subprocess.run([*prefix, sys.executable, "-m", "tansiv.cli", "run", plat, dep, "--out",
                        workdir / "run", "--quiet", "--log-level", "warning", *map(str, options)],
                       capture_output=True, text=True,
                       env=dict(os.environ, **{k: str(v) for k, v in (env or {}).items()}))
    if r.returncode != 0:
        sys.exit(f"tansiv run failed in {workdir}:\n{r.stderr}")
    return RunRecord.load(workdir / "run")


def floor_us(n: int, rounds: int = 20000, repeats: int = 3) -> float:
    """The machine's floor: µs per round of a bare barrier of n processes over shared memory
    and futexes (csrc/bench/barrier.c), measured now; the median of a few tries, since where
    the scheduler happens to put the processes moves it by half."""
    tries = []
    for _ in range(repeats):
        out = subprocess.run([str(paths.libexecdir() / "bench" / "barrier"), str(n),
                              str(rounds)], capture_output=True, text=True, check=True).stdout
        tries.append(json.loads(out)["us_per_round"])
    return statistics.median(tries)


def actor(k: int, program: str, *args) -> Actor:
    """Participant k (0-based) on host h(k+1)."""
    return Actor(topology.hosts(k + 1)[-1], topology.address(k), program, list(args))


class Table:
    """A table printed row by row: columns are (title, width)."""

    def __init__(self, *columns):
        self.widths = [w for _, w in columns]
        head = " ".join(f"{t:>{w}}" for t, w in columns)
        print(head)
        print("-" * len(head))

    def row(self, *cells) -> None:
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, self.widths)), flush=True)
