#!/usr/bin/env python3
"""Metrics of the test's echo workload: the bytes the server received, from the file it left
in /results (RUN_DIR/results/ADDRESS/received.txt), and the clients' "sent" lines.
    metrics.py RUN_DIR EXPERIMENT_DIR"""

import json
import sys
from pathlib import Path

from tansiv.experiments.metrics import json_lines

run_dir, exp_dir = Path(sys.argv[1]), Path(sys.argv[2])
plan = json.loads((exp_dir / "plan.json").read_text())
for p in plan["participants"]:
    if p["role"] == "server":
        got = run_dir / "results" / p["address"] / "received.txt"
        print(json.dumps({"metric": "received_bytes", "value": got.stat().st_size,
                          "unit": "B", "src": p["address"]}))
    for e in json_lines(run_dir / "participants" / f"{p['address']}.log"):
        if e["event"] == "sent":
            print(json.dumps({"metric": "sent_bytes", "value": e["bytes"], "unit": "B",
                              "src": p["address"]}))
