# Tidy tables from every experiment's metrics.csv and status.json (results/tables/):
#   experiments.csv  one row per experiment: parameters, status, why, key figure, wall time
#   metrics.csv      every measurement, with its experiment's parameters
#   rtt.csv, probe.csv, goodput.csv, speed.csv, gettimeofday.csv: the rows each figure uses
import json
from pathlib import Path

import pandas as pd

PARAMS = ["id", "sweep", "mode", "workload", "topology", "n", "latency", "latency_s",
          "bandwidth", "bandwidth_Bps", "lookahead", "lookahead_s", "rep", "mesh"]

experiments = snakemake.params.experiments
rows = []
for path in snakemake.input.status:
    st = json.loads(Path(path).read_text())
    e = experiments[st["id"]]
    e = {**e, "mesh": bool(e["params"].get("mesh", False))}
    rows.append({**{k: e[k] for k in PARAMS}, "status": st["status"], "why": st["why"],
                 "key_figure": st["key_figure"], "wall_s": st["wall_s"],
                 "container": st.get("container", ""), "detail": st.get("detail", "")})
exps = pd.DataFrame(rows, columns=PARAMS + ["status", "why", "key_figure", "wall_s",
                                            "container", "detail"])

frames = [pd.read_csv(p, dtype={"src": str, "dst": str, "label": str})
          for p in snakemake.input.metrics]
frames = [f for f in frames if not f.empty]
metrics = (pd.concat(frames, ignore_index=True) if frames
           else pd.DataFrame(columns=["id", "metric", "value", "unit", "src", "dst", "seq",
                                      "label"]))
metrics = metrics.merge(exps[PARAMS + ["status"]], on="id", how="left")

out = {Path(p).stem: p for p in snakemake.output}
exps.to_csv(out["experiments"], index=False)
metrics.to_csv(out["metrics"], index=False)


def pick(workload, names):
    return metrics[(metrics.workload == workload) & metrics.metric.isin(names)]


pick("ping", ["rtt_ns", "rtt_excess_ns", "model_rtt_ns"]).to_csv(out["rtt"], index=False)
pick("probe", ["max_gap_ns", "gaps_over_1ms", "tsc_rate_spread", "sleep_max_overshoot_ns",
               "held_s"]).to_csv(out["probe"], index=False)
pick("iperf3", ["goodput_bps"]).to_csv(out["goodput"], index=False)
metrics[metrics.metric.isin(["sim_per_wall", "simulated_s", "wall_s", "rounds"])].to_csv(
    out["speed"], index=False)
pick("gettimeofday", ["ns_per_call"]).to_csv(out["gettimeofday"], index=False)
