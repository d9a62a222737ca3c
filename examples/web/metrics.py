#!/usr/bin/env python3
"""Metrics of the web workload: what wrk measured of nginx (examples/wrk), as JSON lines.
    metrics.py RUN_DIR EXPERIMENT_DIR"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wrk"))
import wrk_results  # noqa: E402

for row in wrk_results.rows(Path(sys.argv[1])):
    print(json.dumps(row))
