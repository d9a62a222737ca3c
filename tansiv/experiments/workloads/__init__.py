"""The workload registry: tansiv's own workloads, one module each, and those a configuration
declares (configured.py). The schema check, the sweep, the runner, the aggregation, the
figures and the Snakemake rules all read it, so that a new workload is one new module listed
here, or one block of a configuration."""

from .base import Figure, Workload
from .bufferbloat import Bufferbloat
from .configured import Configured
from .detection import Detection
from .gettimeofday import GetTimeOfDay
from .idle import Idle
from .iperf3 import Iperf3
from .ping import Ping
from .probe import Probe

WORKLOADS = {w.name: w for w in (Ping(), Probe(), Iperf3(), Bufferbloat(), GetTimeOfDay(),
                                  Idle(), Detection())}

# Every experiment's run metrics (tansiv/experiments/runner.py), in a table of their own;
# with the time each participant was held, what a run measures of itself, not its workload.
RUN_TABLE, RUN_METRICS = "speed", ("sim_per_wall", "sim_per_wall_mid", "simulated_s",
                                   "sync_wall_s", "rounds", "us_per_round")
SELF_METRICS = RUN_METRICS + ("held_s",)


def registry(config: dict = None) -> dict:
    """{name: Workload}: tansiv's, then the configuration's."""
    declared = (config or {}).get("workloads") or {}
    return {**WORKLOADS, **{name: Configured(name, raw) for name, raw in declared.items()}}


def of(exp: dict) -> Workload:
    """An experiment's workload (a configured one travels in the experiment itself)."""
    if exp.get("definition") is not None:
        return Configured(exp["workload"], exp["definition"])
    return WORKLOADS[exp["workload"]]


def tables(config: dict = None) -> list:
    """Every table the aggregation writes, besides experiments.csv and metrics.csv."""
    return [w.table for w in registry(config).values() if w.table] + [RUN_TABLE]


def figures(config: dict = None) -> dict:
    """{name: Figure} of every workload."""
    return {f.name: f for w in registry(config).values() for f in w.figures}


__all__ = ["WORKLOADS", "RUN_TABLE", "RUN_METRICS", "SELF_METRICS", "Configured", "Figure",
           "Workload", "registry", "of", "tables", "figures"]
