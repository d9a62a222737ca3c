"""Virtual machines: QEMU command lines for tansiv's guests, and `tansiv-vm`, the launcher a
deployment names as a participant's program (as TANSIV's boot.py).

    tansiv-vm [SOCKET] [--address IP] [--name NAME] [--cmd "COMMAND ARGS"] [--peers IP,...]
              [--mode tansiv|none|netem] [--tap IFNAME | --dgram LOCAL,REMOTE]
              [--memory MB] [--print]
              [--image initramfs|debian] [--ssh-port PORT] [--ssh-key FILE.pub]

tansiv run starts it as `tansiv-vm SOCKET ARGS...` with TANSIV_ADDRESS and TANSIV_PEERS in its
environment; it then replaces itself with QEMU, whose serial console is its standard output
(the run keeps it in participants/ADDRESS.log). Modes:
  tansiv  icount (virtual time runs only with the guest's instructions) and the tantap
          backend: the VM is a participant of the simulation;
  none    icount, the same NIC on a hub port that leads nowhere: the same guest alone, the
          reference for timing transparency;
  netem   plain TCG, no icount, the NIC on a tap interface or on a pair of unix datagram
          sockets leading to the netem router (the baseline of a Linux bridge and netem).
Images:
  initramfs  tansiv's default guest: runs --cmd, prints JSON lines, powers off;
  debian     a full Debian for interactive use: a copy-on-write overlay of the cached image,
             a cloud-init seed (hostname, addresses, SSH key), and a management NIC on QEMU's
             user network with SSH forwarded from 127.0.0.1:PORT. Its idle time follows real
             time (icount sleep=on), so that the outside world can talk to it: it trades the
             determinism of the default guest for interactivity.
"""

import argparse
import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import images, paths
from .errors import TansivError

MODES = ("tansiv", "none", "netem")
RTC_BASE = "2020-01-01T00:00:00"
# A guest instruction per virtual ns; idle time jumps to the next timer; no real-time pacing.
ICOUNT = "shift=0,sleep=off,align=off"


def qemu_dir() -> Path:
    """QEMU with tantap: TANSIV_QEMU_DIR, or built (once, cached) by csrc/qemu/build-qemu.sh."""
    given = os.environ.get("TANSIV_QEMU_DIR")
    if given:
        return Path(given)
    script = paths.source_dir() / "csrc" / "qemu" / "build-qemu.sh"
    r = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise TansivError("building QEMU with tantap failed (see the message above)")
    return Path(r.stdout.strip().splitlines()[-1])


def prepare(router: bool = False) -> dict:
    """Builds (or finds in the cache) QEMU and the guest image, and the netem router's image
    if asked; the environment that lets tansiv-vm use them without checking again."""
    env = {"TANSIV_QEMU_DIR": str(qemu_dir()), "TANSIV_IMAGE_DIR": str(images.initramfs().path)}
    if router:
        env["TANSIV_ROUTER_DIR"] = str(images.router().path)
    return env


def mac_of(address: str) -> str:
    """52:54:a:b:c:d for a.b.c.d: every guest knows every peer's MAC (see images/initramfs)."""
    return "52:54:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


@dataclass
class VMSpec:
    name: str
    address: str = ""           # empty: no network interface configured
    prefix: int = 24
    peers: list = field(default_factory=list)
    cmd: list = field(default_factory=list)
    mode: str = "tansiv"
    socket: str = ""            # tansiv mode
    tap: str = ""               # netem mode: a tap interface,
    dgram: tuple = ()           # or (local, remote) unix datagram socket paths
    memory_mb: int = 256
    image: str = "initramfs"
    ssh_port: int = 0           # debian image: host port forwarded to the guest's SSH
    ssh_key: str = ""           # debian image: public key authorized for root
    workdir: str = ""           # debian image: where the overlay and seed go

    def check(self) -> None:
        if self.mode not in MODES:
            raise TansivError(f"unknown VM mode '{self.mode}' (expected {', '.join(MODES)})")
        for a in ([self.address] if self.address else []) + list(self.peers):
            try:
                ipaddress.IPv4Address(a)
            except ValueError:
                raise TansivError(f"'{a}' is not an IPv4 address")
        for word in self.cmd:
            if "," in word or " " in word or not word:
                raise TansivError(f"guest command word '{word}' must be non-empty, without "
                                  "commas or spaces (they travel on the kernel command line)")
        if self.mode == "tansiv" and not (self.socket and self.address):
            raise TansivError("tansiv mode needs the coordinator's socket and an address")
        if self.mode == "netem" and not ((self.tap or self.dgram) and self.address):
            raise TansivError("netem mode needs --tap or --dgram, and an address")
        if self.dgram and len(self.dgram) != 2:
            raise TansivError(f"--dgram needs LOCAL,REMOTE socket paths, not {self.dgram}")
        if self.image not in ("initramfs", "debian"):
            raise TansivError(f"unknown image '{self.image}' (expected initramfs or debian)")


def kernel_cmdline(spec: VMSpec) -> str:
    # No IPv6: its autoconfiguration chatter has no IPv4 destination to be routed to.
    parts = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", "ipv6.disable=1",
             f"tansiv.name={spec.name}"]
    if spec.address:
        parts.append(f"tansiv.addr={spec.address}/{spec.prefix}")
    peers = [p for p in spec.peers if p != spec.address]
    if peers:
        parts.append("tansiv.peers=" + ",".join(peers))
    if spec.cmd:
        parts.append("tansiv.cmd=" + ",".join(spec.cmd))
    return " ".join(parts)


def _machine(qemu: Path, memory_mb: int, kernel: Path, initrd: Path) -> list:
    """Every VM's start: one vCPU on a PC, no default devices, the console on stdout."""
    return [str(qemu / "bin" / "qemu-system-x86_64"),
            "-M", "pc", "-m", str(memory_mb), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-L", str(qemu / "share" / "qemu"),
            "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
            "-kernel", str(kernel), "-initrd", str(initrd)]


def qemu_command(spec: VMSpec, qemu: Path, image) -> list:
    """QEMU's command line; image is an images.GuestImage (initramfs) or, for the debian
    image, an images.DebianImage (the overlay and seed are made in spec.workdir)."""
    spec.check()
    cmd = _machine(qemu, spec.memory_mb, image.kernel, image.initrd)
    icount = ICOUNT
    if spec.image == "debian":
        cmd += _debian_disks(spec, image)
        cmd += ["-append", "root=/dev/vda rw console=ttyS0 ipv6.disable=1"]
        icount = ICOUNT.replace("sleep=off", "sleep=on")
    else:
        cmd += ["-append", kernel_cmdline(spec)]
    if spec.mode in ("tansiv", "none"):
        # The RTC starts at a fixed date and follows virtual time: no wall-clock input.
        cmd += ["-icount", icount, "-rtc", f"base={RTC_BASE},clock=vm"]
    else:
        cmd += ["-rtc", f"base={RTC_BASE}"]
    # e1000 transmits in the vCPU's register write: frames leave at an exact virtual time.
    nic = f"e1000,netdev=net0,mac={mac_of(spec.address)},romfile=" if spec.address else None
    if spec.mode == "tansiv":
        cmd += ["-netdev", f"tantap,id=net0,socket={spec.socket},address={spec.address}",
                "-device", nic]
    elif spec.mode == "netem" and spec.tap:
        cmd += ["-netdev", f"tap,id=net0,ifname={spec.tap},script=no,downscript=no",
                "-device", nic]
    elif spec.mode == "netem":
        cmd += ["-netdev", dgram_netdev("net0", *spec.dgram), "-device", nic]
    elif nic:
        cmd += ["-netdev", "hubport,id=net0,hubid=0", "-device", nic]
    return cmd


def dgram_netdev(ident: str, local: str, remote: str) -> str:
    return (f"dgram,id={ident},local.type=unix,local.path={local},"
            f"remote.type=unix,remote.path={remote}")


def router_command(qemu: Path, image, initrd: Path, links) -> list:
    """The netem router's QEMU (plain TCG, real time, like the baseline's guests): one e1000
    per link, links: [(local, remote)] socket paths; port k has MAC 52:54:00:fe:00:k."""
    cmd = _machine(qemu, 256, image.kernel, initrd) + [
        "-rtc", f"base={RTC_BASE}",
        # No IPv6: the bridge would send its own chatter to the guests.
        "-append", "console=ttyS0 quiet loglevel=3 panic=-1 ipv6.disable=1 "
                   f"tansiv.ports={len(links)}"]
    for k, (local, remote) in enumerate(links):
        cmd += ["-netdev", dgram_netdev(f"p{k}", local, remote),
                "-device", f"e1000,netdev=p{k},mac=52:54:00:fe:00:{k:02x},romfile="]
    return cmd


MGMT_MAC = "52:54:00:00:ff:01"


def _debian_disks(spec: VMSpec, image) -> list:
    work = Path(spec.workdir)
    disk = images.overlay(image.base, work / "disk.qcow2")
    networks = [(MGMT_MAC, None)]
    if spec.address:
        networks.append((mac_of(spec.address), f"{spec.address}/{spec.prefix}"))
    key = Path(spec.ssh_key).read_text().strip()
    seed = images.cloud_init_seed(work / "seed.iso", spec.name.replace(".", "-"), key, networks)
    return ["-drive", f"file={disk},if=virtio,format=qcow2",
            "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
            "-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=mgmt,mac={MGMT_MAC},romfile="]


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
    key = images.cache_dir() / "ssh" / "id_ed25519"
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
        if spec.image == "debian":
            image = images.debian()
            spec.ssh_port = args.ssh_port or free_port()
            spec.ssh_key = args.ssh_key or str(default_ssh_key())
            run_dir = os.environ.get("TANSIV_RUN_DIR")
            spec.workdir = args.workdir or str(
                Path(run_dir) / "vms" / name if run_dir
                else images.cache_dir() / "vms" / f"{name}-{os.getpid()}")
            print(f"tansiv-vm: {name}: ssh -p {spec.ssh_port} -i "
                  f"{spec.ssh_key.removesuffix('.pub')} root@127.0.0.1", flush=True)
        else:
            image = images.initramfs()
        cmd = qemu_command(spec, qemu_dir(), image)
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
