"""`tansiv-vm`: the program a deployment names for a VM participant (as TANSIV's boot.py).

    tansiv-vm [SOCKET] [--address IP] [--name NAME] [--cmd "COMMAND ARGS"] [--peers IP,...]
              [--mode tansiv|none|netem] [--tap IFNAME | --dgram LOCAL,REMOTE]
              [--memory MB] [--print]
              [--image initramfs|debian] [--ssh-port PORT] [--ssh-key FILE.pub]

tansiv run starts it as `tansiv-vm SOCKET ARGS...` with TANSIV_ADDRESS, TANSIV_PEERS and the
VM build (tansiv/vm/build.py) in its environment; it then replaces itself with QEMU, whose
serial console is its standard output (the run keeps it in participants/ADDRESS.log). Modes
and images: tansiv/vm/qemu.py."""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

from .. import paths
from ..errors import TansivError
from . import build, debian_image, images
from .qemu import MODES, VMSpec, qemu_command


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


def _parser():
    ap = argparse.ArgumentParser(prog="tansiv-vm", description="Start a tansiv guest VM "
                                 "(replaces itself with QEMU).")
    ap.add_argument("socket", nargs="?", default=os.environ.get("TANSIV_SOCKET", ""),
                    help="coordinator socket (tansiv run passes it first)")
    ap.add_argument("--address", default=os.environ.get("TANSIV_ADDRESS", ""))
    ap.add_argument("--name", help="guest name (default: its address)")
    ap.add_argument("--peers", default=os.environ.get("TANSIV_PEERS", ""),
                    help="comma-separated addresses given a permanent neighbour entry")
    ap.add_argument("--cmd", default="", help="command the guest runs, e.g. 'tping -c 10 IP'")
    ap.add_argument("--mode", choices=MODES, default="tansiv")
    ap.add_argument("--tap", default="", help="tap interface (netem mode)")
    ap.add_argument("--dgram", default="", metavar="LOCAL,REMOTE",
                    help="unix datagram socket paths of the link to the netem router")
    ap.add_argument("--memory", type=int, metavar="MB",
                    help="guest memory (default 256, 1024 for the debian image)")
    ap.add_argument("--image", choices=["initramfs", "debian"], default="initramfs")
    ap.add_argument("--ssh-port", type=int, default=0,
                    help="debian image: host port for SSH (default: a free one)")
    ap.add_argument("--ssh-key", help="debian image: public key for root (default: yours, "
                    "or one tansiv makes)")
    ap.add_argument("--workdir", help="debian image: where the VM's overlay and seed go "
                    "(default: TANSIV_RUN_DIR/vms/NAME, or a folder in the cache)")
    ap.add_argument("--print", action="store_true", help="print QEMU's command, run nothing")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    name = args.name or args.address or "guest"
    spec = VMSpec(name=name, address=args.address,
                  peers=[p for p in args.peers.split(",") if p], cmd=args.cmd.split(),
                  mode=args.mode, socket=args.socket, tap=args.tap,
                  dgram=tuple(args.dgram.split(",")) if args.dgram else (), image=args.image,
                  memory_mb=args.memory or (1024 if args.image == "debian" else 256))
    try:
        spec.check()
        given = build.VMBuild.from_env()  # handed down by the run that started us
        qemu = given.qemu if given else build.qemu_dir()
        if spec.image == "debian":
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
            image = given.guest if given else images.initramfs()
        cmd = qemu_command(spec, qemu, image)
    except TansivError as e:
        print(f"tansiv-vm: error: {e}", file=sys.stderr)
        return 1
    if args.print:
        print(" ".join(cmd))
        return 0
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
