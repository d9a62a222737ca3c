#!/usr/bin/env python3
"""Metrics of the etcd workload: what wrk measured of the puts (examples/wrk), and what the
network alone would make a put last: the client's round trip to the leader, plus the
leader's round trip to the majority's farthest follower (Raft commits once a majority has
the entry). JSON lines on standard output.
    metrics.py RUN_DIR EXPERIMENT_DIR"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wrk"))
import wrk_results  # noqa: E402

from tansiv.experiments.metrics import json_lines  # noqa: E402
from tansiv.run import routes  # noqa: E402

run_dir, exp_dir = Path(sys.argv[1]), Path(sys.argv[2])
for row in wrk_results.rows(run_dir):
    print(json.dumps(row))

plan = json.loads((exp_dir / "plan.json").read_text())
members = [p["address"] for p in plan["participants"] if p.get("role") == "member"]
(client,) = [p["address"] for p in plan["participants"] if p.get("role") == "client"]
leader = [e["address"] for e in json_lines(run_dir / "participants" / f"{client}.log")
          if e["event"] == "leader"]
if leader:
    route = routes.load(run_dir)

    def rtt_ms(a, b):
        return (route[(a, b)].latency_ns + route[(b, a)].latency_ns) / 1e6

    followers = sorted(rtt_ms(leader[0], m) for m in members if m != leader[0])
    needed = len(members) // 2  # followers a majority needs besides the leader
    expected = rtt_ms(client, leader[0]) + followers[needed - 1]
    print(json.dumps({"metric": "expected_put_ms", "value": expected, "unit": "ms",
                      "src": client, "dst": leader[0]}))
