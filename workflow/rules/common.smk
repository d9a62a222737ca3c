# The configuration, checked (schema completed from tansiv's registries, then the sweep's own
# rules), and the sweep expanded once: EXPERIMENTS maps an experiment id to its parameters.
# Everything generated goes under R (config key `results`, default results/).
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tansiv import debian
from tansiv.errors import TansivError
from tansiv.experiments import config as checked, reruns, sweep, workloads
from tansiv.experiments.modes import MODES


def _shown(path):
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def validate(config):
    """The configuration, or a WorkflowError naming its file and key."""
    source = ", ".join(_shown(f) for f in workflow.configfiles) or "config"
    try:
        checked.check(config, source)
        sweep.check_qemu_version(config, Path("csrc/qemu/qemu.env").read_text())
        chosen = checked.narrowed(config, source)  # `only:` some sweeps
        experiments = sweep.expand(chosen)
        return (experiments, checked.images(config, source),
                reruns.select(chosen, experiments, source))
    except TansivError as e:
        raise WorkflowError(str(e))


# IMAGES: the configuration's guest images (tansiv/vm/user_images.py), by name.
try:
    config.update(checked.resolve(config))  # what include: brings
except TansivError as e:
    raise WorkflowError(str(e))
# RERUN: what `snakemake rerun_check` runs a second time (tansiv/experiments/reruns.py).
EXPERIMENTS, IMAGES, RERUN = validate(config)
R = config.get("results", "results").rstrip("/")
# The environment jobs' tansiv commands run from, wherever the jobs run (in a container too).
os.environ.setdefault("TANSIV_PREFIX", sys.prefix)


def vm_experiment(eid):
    return MODES[EXPERIMENTS[eid]["mode"]].vms


def experiment_image(eid):
    """The image of the configuration the experiment's VMs boot, or None."""
    image = (EXPERIMENTS[eid]["definition"] or {}).get("image", "initramfs")
    return None if image == "initramfs" else image


TABLES = expand(
    R + "/tables/{name}.csv", name=["experiments", "metrics", *workloads.tables(config)]
)
FIGURE = workloads.figures(config)
FIGURES = expand(R + "/figures/{name}.{ext}", name=list(FIGURE), ext=["png", "pdf", "json"])


wildcard_constraints:
    id="|".join(re.escape(e) for e in EXPERIMENTS),
    name="|".join(FIGURE),
    image="|".join(re.escape(i) for i in IMAGES) or "(?!)",


# ---- Apptainer (snakemake --sdm apptainer) ---------------------------------------------------
# Every job runs in the image the `container` rule builds (images/container/tansiv.def). The
# project directory is the jobs' home (Snakemake's --home); tansiv's cache (QEMU, guest
# images) is bound at the same path, so that the paths the build rules recorded stay valid.
SIF = R + "/build/tansiv.sif"
USING_APPTAINER = any(
    m.name == "APPTAINER" for m in workflow.deployment_settings.deployment_method
)
if USING_APPTAINER:
    if any(c.isspace() for c in SIF):
        raise WorkflowError(f"results: '{R}': Apptainer takes no image path with spaces; "
                            "choose a results folder without")
    if not Path(SIF).exists():
        raise WorkflowError(
            f"{SIF} does not exist: build the image first, natively: "
            "snakemake --cores all container"
        )
    from tansiv.paths import cache_dir

    cache_dir().mkdir(parents=True, exist_ok=True)
    # Jobs see the project as their home: name the cache explicitly (the environment passes).
    os.environ["TANSIV_CACHE"] = str(cache_dir())
    workflow.deployment_settings.apptainer_args += f" --bind {cache_dir()}"


# Only with --sdm apptainer: Snakemake checks the image's path even when it does not use it.
container: SIF if USING_APPTAINER else None
