"""The pipeline's tidy tables (results/tables/), from every experiment's status.json and
metrics.csv:

    experiments.csv  one row per experiment: its parameters, status, why, key figure, wall time
    metrics.csv      every measurement, with its experiment's parameters
    <table>.csv      each workload's rows (its `table`: its `metrics`, or else all the rows
                     its workload gave)
    speed.csv        every run's own metrics (runner.py)

A measurement row carries its experiment's parameters, its workload's parameters (a column
each) and, for figures' sake, the latency in ms and the bandwidth in Mbit/s."""

import json
from pathlib import Path

from .sweep import COLUMNS
from .workloads import RUN_METRICS, RUN_TABLE, SELF_METRICS, registry

METRIC_FIELDS = ["id", "metric", "value", "unit", "src", "dst", "seq", "label"]
# The experiment's columns (sweep.Experiment), then those derived for figures.
DERIVED = {"latency_ms": lambda exp: exp["latency_ns"] / 1e6,
           "bandwidth_mbps": lambda exp: exp["bandwidth_Bps"] * 8 / 1e6}
PARAMS = COLUMNS + list(DERIVED)
STATUS = ["status", "why", "key_figure", "wall_s", "container", "detail"]


def workload_params(config: dict = None) -> list:
    return sorted({k for w in registry(config).values() for k in w.params})


def columns(config: dict = None) -> list:
    """Every column of the measurement tables."""
    return METRIC_FIELDS + PARAMS[1:] + workload_params(config) + ["status"]


def experiment_row(exp: dict, status: dict, config: dict = None) -> dict:
    return {**{k: exp[k] for k in COLUMNS}, **{k: f(exp) for k, f in DERIVED.items()},
            **{k: exp["params"].get(k) for k in workload_params(config)},
            **{k: status.get(k, "") for k in STATUS}}


def write(experiments: dict, status_files, metric_files, out: dict, config: dict = None):
    """Writes every table (out: {table name: path}); returns (experiments, measurements)."""
    import pandas as pd
    exps = pd.DataFrame(
        [experiment_row(experiments[st["id"]], st, config)
         for st in (json.loads(Path(p).read_text()) for p in status_files)],
        columns=PARAMS + workload_params(config) + STATUS)
    frames = [pd.read_csv(p, dtype={"src": str, "dst": str, "label": str}) for p in metric_files]
    frames = [f for f in frames if not f.empty]
    metrics = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame(columns=METRIC_FIELDS))
    metrics = metrics.merge(exps.drop(columns=STATUS[1:]), on="id", how="left")
    exps.to_csv(out["experiments"], index=False)
    metrics.to_csv(out["metrics"], index=False)
    for w in registry(config).values():
        if w.table:
            rows = metrics[metrics.workload == w.name]
            rows = (rows[rows.metric.isin(w.metrics)] if w.metrics
                    else rows[~rows.metric.isin(SELF_METRICS)])
            rows.to_csv(out[w.table], index=False)
    metrics[metrics.metric.isin(RUN_METRICS)].to_csv(out[RUN_TABLE], index=False)
    return exps, metrics
