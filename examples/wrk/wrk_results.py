"""What wrk measured in a run: the JSON lines report.lua prints on the guests' consoles, as
tidy rows (metric, value, unit, src, label). For the metrics scripts of the examples."""

from tansiv.experiments.metrics import json_lines
from tansiv.run.record import RunRecord


def reports(run_dir):
    """(participant, report) of every wrk run of the run."""
    run = RunRecord.load(run_dir)
    return [(p, e) for p in run.participants for e in json_lines(p.log) if e["event"] == "wrk"]


def rows(run_dir):
    out = []
    for p, r in reports(run_dir):
        where = {"src": p.name, "label": r["label"]}
        seconds = r["duration_us"] / 1e6
        out += [{"metric": "requests_per_s", "value": r["requests"] / seconds, "unit": "1/s",
                 **where},
                {"metric": "errors", "value": r["errors"], "unit": "", **where},
                {"metric": "goodput_mbps", "value": r["bytes"] * 8 / seconds / 1e6,
                 "unit": "Mbit/s", **where}]
        for q in ("p50", "p90", "p99"):
            out.append({"metric": f"latency_{q}_ms", "value": r[f"{q}_us"] / 1e3, "unit": "ms",
                        **where})
    return out
