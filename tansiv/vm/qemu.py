"""QEMU command lines for tansiv's VMs: the guest (in its three modes) and the netem router.

Modes:
  tansiv  icount (virtual time runs only with the guest's instructions) and the tantap
          backend: the VM is a participant of the simulation;
  none    icount, the same NIC on a hub port that leads nowhere: the same guest alone, the
          reference for timing transparency;
  netem   plain TCG, no icount, the NIC on a tap interface or on a pair of unix datagram
          sockets leading to the netem router (the baseline of a Linux bridge and netem).
Images:
  initramfs  tansiv's default guest: runs its command, prints JSON lines, powers off;
  debian     a full Debian for interactive use: a copy-on-write overlay of the cached image,
             a cloud-init seed (hostname, addresses, SSH key), and a management NIC on QEMU's
             user network with SSH forwarded from 127.0.0.1:PORT. Its idle time follows real
             time (icount sleep=on), so that the outside world can talk to it: it trades the
             determinism of the default guest for interactivity.
"""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TansivError
from ..run.wire import mac_text
from . import debian_image

MODES = ("tansiv", "none", "netem")
RTC_BASE = "2020-01-01T00:00:00"
# A guest instruction per virtual ns; idle time jumps to the next timer; no real-time pacing.
ICOUNT = "shift=0,sleep=off,align=off"


@dataclass
class VMSpec:
    name: str
    address: str = ""           # empty: no network interface configured
    prefix: int = 24
    peers: list = field(default_factory=list)
    cmd: str = ""               # a shell script the guest runs
    results: str = ""           # where the archive of the guest's /results goes, if anywhere
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
        if self.mode == "tansiv" and not (self.socket and self.address):
            raise TansivError("tansiv mode needs the coordinator's socket and an address")
        if self.mode == "netem" and not ((self.tap or self.dgram) and self.address):
            raise TansivError("netem mode needs --tap or --dgram, and an address")
        if self.dgram and len(self.dgram) != 2:
            raise TansivError(f"--dgram needs LOCAL,REMOTE socket paths, not {self.dgram}")


def kernel_cmdline(spec: VMSpec) -> str:
    # No IPv6: its autoconfiguration chatter has no IPv4 destination to be routed to.
    parts = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", "ipv6.disable=1",
             f"tansiv.name={spec.name}"]
    if spec.address:
        parts.append(f"tansiv.addr={spec.address}/{spec.prefix}")
    peers = [p for p in spec.peers if p != spec.address]
    if peers:
        parts.append("tansiv.peers=" + ",".join(peers))
    if spec.results:
        parts.append("tansiv.results=1")
    return " ".join(parts)


def _guest_io(spec: VMSpec) -> list:
    """The command, as a fw_cfg file the guest's /init reads (QEMU's option syntax doubles
    commas), and the second serial port that brings the guest's /results back."""
    args = []
    if spec.cmd:
        args += ["-fw_cfg", "name=opt/tansiv/cmd,string=" + opt(spec.cmd)]
    if spec.results:
        args += ["-chardev", f"file,id=results,path={opt(spec.results)}",
                 "-serial", "chardev:results"]
    return args


def opt(value) -> str:
    """A value inside a QEMU option string (key=value,key=value): a comma is written twice,
    so that a path with one cannot add options of its own."""
    return str(value).replace(",", ",,")


def _machine(qemu: Path, memory_mb: int, kernel: Path, initrd: Path) -> list:
    """Every VM's start: one vCPU on a PC, no default devices, the console on stdout. qemu:
    the folder of QEMU with tantap (VMBuild.qemu). No HPET: Linux makes it its broadcast
    clock event, and QEMU's model of it then runs a virtual timer every tick of an idle
    guest (4 ms), which no interrupt needs: without it, an idle guest's next timer is its
    own (idle horizons, csrc/qemu/backend_qemu.c)."""
    return [str(qemu / "bin" / "qemu-system-x86_64"),
            "-M", "pc,hpet=off", "-m", str(memory_mb), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-L", str(qemu / "share" / "qemu"),
            "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
            "-kernel", str(kernel), "-initrd", str(initrd)]


def qemu_command(spec: VMSpec, qemu: Path, image) -> list:
    """QEMU's command line; image is a GuestImage (initramfs) or, for the debian image, a
    DebianImage (the overlay and seed are made in spec.workdir)."""
    spec.check()
    cmd = _machine(qemu, spec.memory_mb, image.kernel, image.initrd)
    icount = ICOUNT
    if spec.image == "debian":
        cmd += _debian_disks(spec, image)
        cmd += ["-append", "root=/dev/vda rw console=ttyS0 ipv6.disable=1"]
        icount = ICOUNT.replace("sleep=off", "sleep=on")
    else:
        cmd += ["-append", kernel_cmdline(spec), *_guest_io(spec)]
    if spec.mode in ("tansiv", "none"):
        # The RTC starts at a fixed date and follows virtual time: no wall-clock input.
        cmd += ["-icount", icount, "-rtc", f"base={RTC_BASE},clock=vm"]
    else:
        cmd += ["-rtc", f"base={RTC_BASE}"]
    # e1000 transmits in the vCPU's register write: frames leave at an exact virtual time.
    nic = f"e1000,netdev=net0,mac={mac_text(spec.address)},romfile=" if spec.address else None
    if spec.mode == "tansiv":
        cmd += ["-netdev", f"tantap,id=net0,socket={opt(spec.socket)},address={spec.address}",
                "-device", nic]
    elif spec.mode == "netem" and spec.tap:
        cmd += ["-netdev", f"tap,id=net0,ifname={opt(spec.tap)},script=no,downscript=no",
                "-device", nic]
    elif spec.mode == "netem":
        cmd += ["-netdev", dgram_netdev("net0", *spec.dgram), "-device", nic]
    elif nic:
        cmd += ["-netdev", "hubport,id=net0,hubid=0", "-device", nic]
    return cmd


def dgram_netdev(ident: str, local: str, remote: str) -> str:
    return (f"dgram,id={ident},local.type=unix,local.path={opt(local)},"
            f"remote.type=unix,remote.path={opt(remote)}")


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
    disk = debian_image.overlay(image.base, work / "disk.qcow2")
    networks = [(MGMT_MAC, None)]
    if spec.address:
        networks.append((mac_text(spec.address), f"{spec.address}/{spec.prefix}"))
    key = Path(spec.ssh_key).read_text().strip()
    seed = debian_image.cloud_init_seed(work / "seed.iso", spec.name.replace(".", "-"), key,
                                        networks)
    return ["-drive", f"file={opt(disk)},if=virtio,format=qcow2",
            "-drive", f"file={opt(seed)},if=virtio,format=raw,readonly=on",
            "-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
            "-device", f"virtio-net-pci,netdev=mgmt,mac={MGMT_MAC},romfile="]
