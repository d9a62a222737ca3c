"""The workload registry: every workload the pipeline knows, one module each. The schema
check, the sweep, the runner, the aggregation, the figures and the Snakemake rules all read
it, so that a new workload is one new module listed here."""

from .base import Figure, Workload
from .gettimeofday import GetTimeOfDay
from .idle import Idle
from .iperf3 import Iperf3
from .ping import Ping
from .probe import Probe

WORKLOADS = {w.name: w for w in (Ping(), Probe(), Iperf3(), GetTimeOfDay(), Idle())}

# Every experiment's run metrics (tansiv/experiments/runner.py), in a table of their own.
RUN_TABLE, RUN_METRICS = "speed", ("sim_per_wall", "simulated_s", "wall_s", "rounds")


def tables() -> list:
    """Every table the aggregation writes, besides experiments.csv and metrics.csv."""
    return [w.table for w in WORKLOADS.values() if w.table] + [RUN_TABLE]


def figures() -> dict:
    """{name: Figure} of every workload."""
    return {f.name: f for w in WORKLOADS.values() for f in w.figures}


__all__ = ["WORKLOADS", "RUN_TABLE", "RUN_METRICS", "Figure", "Workload", "tables", "figures"]
