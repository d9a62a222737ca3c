# The sweep, expanded once: EXPERIMENTS maps an experiment id to its parameters. Everything
# generated goes under R (config key `results`, default results/).
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tansiv import sweep
from tansiv.errors import TansivError

try:
    sweep.check_qemu_version(config, Path("csrc/qemu/qemu.env").read_text())
    EXPERIMENTS = sweep.expand(config)
except TansivError as e:
    raise WorkflowError(str(e))

R = config.get("results", "results").rstrip("/")
# The environment jobs' tansiv commands run from, wherever the jobs run (in a container too).
os.environ.setdefault("TANSIV_PREFIX", sys.prefix)
VM_MODES = {"tansiv", "netem", "none"}


def vm_experiment(eid):
    return EXPERIMENTS[eid]["mode"] in VM_MODES


TABLES = expand(
    R + "/tables/{name}.csv",
    name=["experiments", "metrics", "rtt", "probe", "goodput", "speed", "gettimeofday"],
)
FIGURE_NAMES = ["rtt_excess", "ping_matrix", "transparency", "goodput", "speed", "gettimeofday"]
FIGURES = expand(R + "/figures/{name}.{ext}", name=FIGURE_NAMES, ext=["png", "pdf"])


wildcard_constraints:
    id="|".join(re.escape(e) for e in EXPERIMENTS),
    name="|".join(FIGURE_NAMES),


# ---- Apptainer (snakemake --sdm apptainer) ---------------------------------------------------
# Every job runs in the image the `container` rule builds (images/tansiv.def). The project
# directory is the jobs' home (Snakemake's --home); tansiv's cache (QEMU, guest images) is
# bound at the same path, so that the paths the build rules recorded stay valid.
SIF = R + "/build/tansiv.sif"
USING_APPTAINER = any(
    m.name == "APPTAINER" for m in workflow.deployment_settings.deployment_method
)
if USING_APPTAINER:
    if not Path(SIF).exists():
        raise WorkflowError(
            f"{SIF} does not exist: build the image first, natively: "
            "snakemake --cores all container"
        )
    from tansiv.images import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    # Jobs see the project as their home: name the cache explicitly (the environment passes).
    os.environ["TANSIV_CACHE"] = str(cache_dir())
    workflow.deployment_settings.apptainer_args += f" --bind {cache_dir()}"


container: SIF
