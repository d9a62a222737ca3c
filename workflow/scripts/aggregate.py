# Tidy tables from every experiment's metrics.csv and status.json (results/tables/):
#   experiments.csv  one row per experiment: parameters, status, why, key figure, wall time
#   metrics.csv      every measurement, with its experiment's parameters
#   and one table per workload (its metrics) and speed.csv (every run's own metrics): the
#   rows the figures use (tansiv/experiments/workloads/).
import json
from pathlib import Path

import pandas as pd

from tansiv.experiments.runner import METRIC_FIELDS
from tansiv.experiments.workloads import RUN_METRICS, RUN_TABLE, WORKLOADS

# An experiment's parameters, then its workload's (a column each, empty for the others).
WORKLOAD_PARAMS = sorted({k for w in WORKLOADS.values() for k in w.params})
PARAMS = ["id", "sweep", "mode", "workload", "topology", "n", "latency", "latency_s",
          "bandwidth", "bandwidth_Bps", "lookahead", "lookahead_s", "rep", *WORKLOAD_PARAMS]
STATUS = ["status", "why", "key_figure", "wall_s", "container", "detail"]

experiments = snakemake.params.experiments
rows = []
for path in snakemake.input.status:
    st = json.loads(Path(path).read_text())
    e = experiments[st["id"]]
    rows.append({**{k: e[k] for k in PARAMS if k in e}, **e["params"],
                 **{k: st[k] for k in STATUS}})
exps = pd.DataFrame(rows, columns=PARAMS + STATUS)

frames = [pd.read_csv(p, dtype={"src": str, "dst": str, "label": str})
          for p in snakemake.input.metrics]
frames = [f for f in frames if not f.empty]
metrics = (pd.concat(frames, ignore_index=True) if frames
           else pd.DataFrame(columns=METRIC_FIELDS))
metrics = metrics.merge(exps[PARAMS + ["status"]], on="id", how="left")

out = {Path(p).stem: p for p in snakemake.output}
exps.to_csv(out["experiments"], index=False)
metrics.to_csv(out["metrics"], index=False)
for w in WORKLOADS.values():
    if w.table:
        metrics[(metrics.workload == w.name) & metrics.metric.isin(w.metrics)].to_csv(
            out[w.table], index=False)
metrics[metrics.metric.isin(RUN_METRICS)].to_csv(out[RUN_TABLE], index=False)
Path(snakemake.log[0]).write_text(
    f"{len(exps)} experiments ({(exps.status == 'ok').sum()} ok), {len(metrics)} measurements\n")
