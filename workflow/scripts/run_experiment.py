# Runs one experiment (snakemake.params.spec) into its folder, then says in one line how it
# went. A failed experiment is recorded as such (status.json, metrics.csv) and the
# job succeeds, so that the tables show it; only a fault of this code fails the job.
import os
import sys
from pathlib import Path

from tansiv import experiment

spec = snakemake.params.spec
out = Path(snakemake.output.metrics).parent
# QEMU and the images the build rules made: no need to check them again.
if "qemu" in snakemake.input.keys():
    os.environ["TANSIV_QEMU_DIR"] = Path(snakemake.input.qemu).read_text().strip()
    os.environ["TANSIV_IMAGE_DIR"] = Path(snakemake.input.image).read_text().strip()
    os.environ["TANSIV_ROUTER_DIR"] = Path(snakemake.input.router).read_text().strip()
status = experiment.run(spec, out)
figure = f", {status['key_figure']}" if status["key_figure"] else ""
why = f" ({status['why']})" if status["why"] else ""
print(f"experiment {spec['id']}: {status['status']}, {spec['mode']}{figure}, "
      f"{status['wall_s']:.1f} s{why}", file=sys.stderr, flush=True)
