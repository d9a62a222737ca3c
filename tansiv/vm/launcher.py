"""`tansiv-vm`: the program a deployment names for a VM participant (as TANSIV's boot.py).

    tansiv-vm [SOCKET] [--address IP] [--name NAME] [--cmd SCRIPT] [--peers IP,...]
              [--mode tansiv|none|netem] [--tap IFNAME | --dgram LOCAL,REMOTE]
              [--memory MB] [--results] [--cold-boot] [--print]
              [--image initramfs|debian|NAME|FOLDER] [--ssh-port PORT] [--ssh-key FILE.pub]

tansiv run starts it as `tansiv-vm SOCKET ARGS...` with TANSIV_ADDRESS, TANSIV_PEERS and the
VM build (tansiv/vm/build.py) in its environment; it then replaces itself with QEMU, whose
serial console is its standard output (the run keeps it in participants/ADDRESS.log). Modes
and images: tansiv/vm/qemu.py. In modes tansiv and none, a VM of an image whose boot is
`snapshot` (the default) starts from the image's booted snapshot (tansiv/vm/snapshot.py,
taken first if missing); --cold-boot, or TANSIV_COLD_BOOT=1 (`tansiv run --cold-boot`),
boots it instead."""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from .. import paths
from ..errors import TansivError
from . import build, debian_image, images, snapshot, user_images
from .qemu import MODES, VMSpec, qemu_command

COLD_BOOT_ENV = "TANSIV_COLD_BOOT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_ssh_key() -> Path:
    """The user's public key, or one made for tansiv (in the cache) if they have none."""
    for name in ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"):
        p = Path.home() / ".ssh" / name
        if p.exists():
            return p
    key = paths.cache_dir() / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    return key.with_suffix(".pub")


def guest_image(image: str, given=None):
    """--image's GuestImage: tansiv's guest (as the run handed it down, if it did), a folder,
    or the last image built under that name."""
    if image == "initramfs":
        return given.guest if given else images.initramfs()
    if "/" in image:
        return images.GuestImage.at(image)
    return user_images.by_name(image)


def _results_path(name: str, address: str) -> Path:
    run_dir = os.environ.get("TANSIV_RUN_DIR")
    if not run_dir:
        return Path.cwd() / f"{name}.results.tar"
    path = Path(run_dir) / "results" / f"{address or name}.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _parser():
    ap = argparse.ArgumentParser(prog="tansiv-vm", description="Start a tansiv guest VM "
                                 "(replaces itself with QEMU).")
    ap.add_argument("socket", nargs="?", default=os.environ.get("TANSIV_SOCKET", ""),
                    help="coordinator socket (tansiv run passes it first)")
    ap.add_argument("--address", default=os.environ.get("TANSIV_ADDRESS", ""))
    ap.add_argument("--name", help="guest name (default: its address)")
    ap.add_argument("--peers", default=os.environ.get("TANSIV_PEERS", ""),
                    help="comma-separated addresses given a permanent neighbour entry")
    ap.add_argument("--cmd", default="", help="what the guest runs, a shell script, e.g. "
                    "'tping -c 10 IP'")
    ap.add_argument("--mode", choices=MODES, default="tansiv")
    ap.add_argument("--tap", default="", help="tap interface (netem mode)")
    ap.add_argument("--dgram", default="", metavar="LOCAL,REMOTE",
                    help="unix datagram socket paths of the link to the netem router")
    ap.add_argument("--memory", type=int, metavar="MB",
                    help="guest memory (default: what the image needs; 1024 for debian)")
    ap.add_argument("--image", default="initramfs",
                    help="initramfs (tansiv's guest, the default), debian (a full Debian with "
                         "SSH, for interactive use), the name of an image built by `tansiv "
                         "image build NAME`, or an image's folder")
    ap.add_argument("--results", action="store_true",
                    help="bring back what the guest leaves in /results, as a tar archive: "
                         "TANSIV_RUN_DIR/results/ADDRESS.tar (./NAME.results.tar outside a run)")
    ap.add_argument("--ssh-port", type=int, default=0,
                    help="debian image: host port for SSH (default: a free one)")
    ap.add_argument("--ssh-key", help="debian image: public key for root (default: yours, "
                    "or one tansiv makes)")
    ap.add_argument("--workdir", help="debian image: where the VM's overlay and seed go "
                    "(default: TANSIV_RUN_DIR/vms/NAME, or a folder in the cache)")
    ap.add_argument("--cold-boot", action="store_true",
                    default=os.environ.get(COLD_BOOT_ENV) == "1",
                    help="boot the image instead of starting from its booted snapshot "
                         f"(default: the image's boot setting; {COLD_BOOT_ENV}=1 sets it)")
    ap.add_argument("--print", action="store_true", help="print QEMU's command, run nothing")
    return ap


def boots_cold(args, image) -> bool:
    """Whether this VM boots: asked to, its image says so, or a snapshot does not fit (the
    netem baseline runs without icount; the interactive Debian is not tansiv's guest)."""
    return (args.cold_boot or args.mode == "netem" or args.image == "debian"
            or getattr(image, "boot", "snapshot") == "cold")


def snapshot_of(args, image, qemu: Path, memory_mb: int, say=print):
    """The snapshot this VM starts from (taken if missing), or None if it boots."""
    return None if boots_cold(args, image) else snapshot.ensure(qemu, image, memory_mb, say=say)


def prepare(argv, given=None, say=print) -> None:
    """What a VM started with these arguments needs before it starts: its image's snapshot,
    taken now if missing (a run takes them before starting anything, so that no VM spends its
    time to connect on it)."""
    args = _parser().parse_args(argv)
    if args.image != "debian":
        image = guest_image(args.image, given)
        snapshot_of(args, image, given.qemu if given else build.qemu_dir(),
                    args.memory or image.memory_mb, say)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    name = args.name or args.address or "guest"
    interactive = args.image == "debian"
    spec = VMSpec(name=name, address=args.address,
                  peers=[p for p in args.peers.split(",") if p], cmd=args.cmd,
                  mode=args.mode, socket=args.socket, tap=args.tap,
                  dgram=tuple(args.dgram.split(",")) if args.dgram else (),
                  image="debian" if interactive else "initramfs",
                  results=str(_results_path(name, args.address)) if args.results else "")
    try:
        spec.check()
        given = build.VMBuild.from_env()  # handed down by the run that started us
        qemu = given.qemu if given else build.qemu_dir()
        if interactive:
            spec.memory_mb = args.memory or 1024
            image = debian_image.image()
            spec.ssh_port = args.ssh_port or free_port()
            spec.ssh_key = args.ssh_key or str(default_ssh_key())
            run_dir = os.environ.get("TANSIV_RUN_DIR")
            spec.workdir = args.workdir or str(
                Path(run_dir) / "vms" / name if run_dir
                else paths.cache_dir() / "vms" / f"{name}-{os.getpid()}")
            print(f"tansiv-vm: {name}: ssh -p {spec.ssh_port} -i "
                  f"{spec.ssh_key.removesuffix('.pub')} root@127.0.0.1", flush=True)
        else:
            image = guest_image(args.image, given)
            spec.memory_mb = args.memory or image.memory_mb
        snap = snapshot_of(args, image, qemu, spec.memory_mb,
                           say=lambda m: print(m, file=sys.stderr, flush=True))
        cmd = qemu_command(spec, qemu, image, snap.state if snap else None)
    except TansivError as e:
        print(f"tansiv-vm: error: {e}", file=sys.stderr)
        return 1
    if args.print:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    if interactive:
        # Its idle time follows the host's (icount sleep=on) and it waits for its disks: it
        # must not say it is idle until its next timer (csrc/qemu/backend_qemu.c).
        os.environ["TANSIV_IDLE_HORIZON"] = "0"
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
