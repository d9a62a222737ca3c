# Runs one experiment (snakemake.params.spec) into its folder, then says in one line how it
# went. A failed experiment is recorded as such (status.json, metrics.csv) and the
# job succeeds, so that the tables show it; only a fault of this code fails the job.
import sys
from pathlib import Path

from tansiv.experiments import runner
from tansiv.vm.build import VMBuild
from tansiv.vm.images import GuestImage

spec = snakemake.params.spec
out = Path(snakemake.output.metrics).parent
build, images = None, {}
if "qemu" in snakemake.input.keys():  # what the build rules made: no need to check it again
    folder = {k: Path(snakemake.input[k]).read_text().strip() for k in ("qemu", "image", "router")}
    build = VMBuild(Path(folder["qemu"]), GuestImage.at(folder["image"]),
                    GuestImage.at(folder["router"]))
if "user_image" in snakemake.input.keys():
    images[spec["definition"]["image"]] = Path(snakemake.input.user_image).read_text().strip()
status = runner.run(spec, out, build, images)
figure = f", {status['key_figure']}" if status["key_figure"] else ""
why = f" ({status['why']})" if status["why"] else ""
line = (f"experiment {spec['id']}: {status['status']}, {spec['mode']}{figure}, "
        f"{status['wall_s']:.1f} s{why}")
print(line, file=sys.stderr, flush=True)
Path(snakemake.log[0]).write_text(f"{line}\nfolder: {out}\n")
