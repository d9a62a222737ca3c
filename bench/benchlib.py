"""What the benchmarks share: a run of `tansiv run` on a generated cluster, read back as its
record."""

import subprocess
import sys
from pathlib import Path

from tansiv.experiments import topology
from tansiv.run import deployment
from tansiv.run.deployment import Actor
from tansiv.run.record import RunRecord


def run(workdir: Path, actors, latency_s: float, *options) -> RunRecord:
    """Runs actors (one per host h1..hN of a cluster whose routes have latency_s, 125 MB/s)
    in workdir; exits with tansiv's message if the run fails."""
    workdir.mkdir()
    plat = topology.write(workdir / "platform.xml", "cluster", len(actors), latency_s, 125e6)
    dep = deployment.write(workdir / "deployment.xml", actors)
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", plat, dep, "--out",
                        workdir / "run", "--quiet", "--log-level", "warning", *map(str, options)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tansiv run failed in {workdir}:\n{r.stderr}")
    return RunRecord.load(workdir / "run")


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
