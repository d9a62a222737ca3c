# One experiment's two runs (results/runs/<id>/run and results/rerun/<id>/run) compared byte
# for byte (tansiv/experiments/reruns.py): a tidy row per output, with the experiment's
# columns, for the claims.
import json
from pathlib import Path

import pandas as pd

from tansiv.experiments import reruns

first, second = (Path(p).parent for p in (snakemake.input.first, snakemake.input.second))
status = [json.loads(Path(p).read_text())["status"] for p in snakemake.input]
rows = reruns.compare(first / "run", second / "run")
ok = "ok" if status == ["ok", "ok"] else f"runs: {status[0]}, {status[1]}"
pd.DataFrame([{"id": snakemake.wildcards.id, **r, "status": ok} for r in rows]).to_csv(
    snakemake.output[0], index=False)
