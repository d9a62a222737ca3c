# What the experiments run on. The C core installs into the virtual environment the pipeline
# runs in; QEMU and the guest image live in ~/.cache/tansiv (built once per set of inputs).
import sys

from tansiv.vm import user_images

PREFIX = sys.prefix
# Not QEMU's (its own rule), nor the fuzzing harnesses and their corpus (built apart).
CORE_SOURCES = sorted(
    str(p) for p in Path("csrc").rglob("*")
    if p.is_file() and "qemu" not in p.parts and "fuzz" not in p.parts
) + ["examples/CMakeLists.txt", "examples/pingpong/pingpong.c", "examples/send/send.c"]
# The client library's files QEMU's tantap is built with (one list: csrc/client/sources.txt).
CLIENT_SOURCES = [
    "csrc/" + line.strip()
    for line in Path("csrc/client/sources.txt").read_text().splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
# The modules that run or measure experiments. Not the sweep and configuration (a change of
# the sweep changes experiments' parameters, which reruns them by itself), nor the figures
# and the claims; a workload's own code is a parameter of its experiments
# (Workload.fingerprint).
PACKAGE_SOURCES = sorted(
    str(p) for p in Path("tansiv").rglob("*.py")
    if "workloads" not in p.parts
    and p.name not in ("sweep.py", "config.py", "figures.py", "claims.py", "reruns.py")
)


rule core:
    """The C core (client library, hub, next-event shim, programs), into the venv."""
    input:
        CORE_SOURCES,
        PACKAGE_SOURCES,
    output:
        R + "/build/core.stamp",
    log:
        R + "/logs/build/core.log",
    shell:
        "(cmake -S csrc -B build -DCMAKE_INSTALL_PREFIX={PREFIX:q} "
        "&& cmake --build build -j{threads} && cmake --install build) > {log:q} 2>&1 "
        "&& date -u +%FT%TZ > {output:q}"


rule qemu:
    """qemu-system-x86_64 with tantap (csrc/qemu/build-qemu.sh; cached)."""
    input:
        "csrc/qemu/build-qemu.sh",
        "csrc/qemu/qemu.env",
        "csrc/qemu/tantap.patch",
        "csrc/qemu/tantap.c",
        "csrc/qemu/backend_qemu.c",
        "csrc/qemu/snapshot_point.c",
        "csrc/client/sources.txt",
        CLIENT_SOURCES,
    output:
        R + "/build/qemu.txt",
    log:
        R + "/logs/build/qemu.log",
    shell:
        "csrc/qemu/build-qemu.sh > {output:q} 2> {log:q}"


rule guest_image:
    """The default guest and the netem router (Debian kernel + initramfs; cached)."""
    input:
        R + "/build/core.stamp",
        "images/guest/initramfs/init",
        "images/guest/router/init",
        "tansiv/vm/images.py",
    output:
        guest=R + "/build/image.txt",
        router=R + "/build/router.txt",
    log:
        R + "/logs/build/image.log",
    shell:
        "{PREFIX:q}/bin/python -m tansiv.vm.images guest > {output.guest:q} 2> {log:q}"
        " && {PREFIX:q}/bin/python -m tansiv.vm.images router > {output.router:q} 2>> {log:q}"


def image_inputs(wildcards):
    spec = IMAGES[wildcards.image]
    files = [f for _, host in spec.files for f in
             ([str(p) for p in Path(host).rglob("*") if p.is_file()] if Path(host).is_dir()
              else [host])]
    return files + ([spec.provision] if spec.provision else [])


rule user_image:
    """An image of the configuration (images:), built once per content (cached)."""
    input:
        image_inputs,
        R + "/build/image.txt",
        "tansiv/vm/user_images.py",
    output:
        R + "/build/images/{image}.txt",
    log:
        R + "/logs/build/images/{image}.log",
    params:
        spec=lambda wildcards: IMAGES[wildcards.image],
        key=lambda wildcards: user_images.key(IMAGES[wildcards.image]),
    script:
        "../scripts/build_image.py"
