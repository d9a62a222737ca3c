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


# The same for every VM of an image: what is a VM's own reaches its /init after the snapshot
# point, in fw_cfg files. No IPv6: its autoconfiguration chatter has no IPv4 destination to
# be routed to.
KERNEL_CMDLINE = "console=ttyS0 quiet loglevel=3 panic=-1 ipv6.disable=1"
# Every VM's NIC has this MAC until its /init gives it its own (run/wire.py's rule): the boot
# before the snapshot point is then the same for every VM of an image, to the instruction.
BOOT_MAC = "52:54:00:00:00:01"


def guest_settings(spec: VMSpec = None) -> dict:
    """What /init reads after the snapshot point (images/guest/initramfs/init); without a
    spec, the same names, empty, for the snapshot's VM."""
    if spec is None:
        return dict.fromkeys(("name", "addr", "peers", "results", "cmd"), "")
    peers = [p for p in spec.peers if p != spec.address]
    return {"name": spec.name,
            "addr": f"{spec.address}/{spec.prefix}" if spec.address else "",
            "peers": ",".join(peers),
            "results": "1" if spec.results else "",
            "cmd": spec.cmd}


def settings_files(settings: dict) -> list:
    """The settings as fw_cfg files (QEMU's option syntax doubles commas). Every VM has the
    same names (the firmware reads the list at boot: same names, same instructions), each
    value ending with a newline (fw_cfg files cannot be empty; the shell drops it)."""
    args = []
    for key, value in settings.items():
        args += ["-fw_cfg", f"name=opt/tansiv/{key},string=" + opt(value + "\n")]
    return args


def _results_port(path: str) -> list:
    """The second serial port, which brings the guest's /results back: every VM has it (a
    restored VM has the devices its snapshot had), leading nowhere when nothing is asked."""
    chardev = f"file,id=results,path={opt(path)}" if path else "null,id=results"
    return ["-chardev", chardev, "-serial", "chardev:results"]


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


# e1000 transmits in the vCPU's register write: frames leave at an exact virtual time.
NIC = f"e1000,netdev=net0,mac={BOOT_MAC},romfile="
# The RTC starts at a fixed date and follows virtual time: no wall-clock input.
ICOUNT_CLOCKS = ["-icount", ICOUNT, "-rtc", f"base={RTC_BASE},clock=vm"]


def guest_machine(qemu: Path, image, memory_mb: int, results: str = "") -> list:
    """What every icount VM of an image has, and its snapshot too (a restored VM must have the
    same devices): the machine, the image-wide kernel command line, the clocks, both serial
    ports. The NIC comes after, with its network back end."""
    return (_machine(qemu, memory_mb, image.kernel, image.initrd)
            + ["-append", KERNEL_CMDLINE] + ICOUNT_CLOCKS + _results_port(results))


def qemu_command(spec: VMSpec, qemu: Path, image, snapshot: Path = None) -> list:
    """QEMU's command line; image is a GuestImage (initramfs) or, for the debian image, a
    DebianImage (the overlay and seed are made in spec.workdir). snapshot: the image's saved
    state (tansiv/vm/snapshot.py) to start from instead of booting (tansiv and none modes)."""
    spec.check()
    if spec.image == "debian":
        return _debian_command(spec, qemu, image)
    if spec.mode == "netem":
        # Plain TCG in real time: the baseline, booted (an icount snapshot does not fit it).
        cmd = (_machine(qemu, spec.memory_mb, image.kernel, image.initrd)
               + ["-append", KERNEL_CMDLINE, "-rtc", f"base={RTC_BASE}"]
               + _results_port(spec.results))
    else:
        cmd = guest_machine(qemu, image, spec.memory_mb, spec.results)
    cmd += ["-netdev", _netdev(spec), "-device", NIC, *settings_files(guest_settings(spec))]
    if snapshot is not None:
        # No RARP announcement (QEMU's own frames, after a migration, of no use here).
        cmd += ["-incoming", "file:" + opt(snapshot),
                "-global", "migration.announce-rounds=0"]
    return cmd


def _netdev(spec: VMSpec) -> str:
    if spec.mode == "tansiv":
        return f"tantap,id=net0,socket={opt(spec.socket)},address={spec.address}"
    if spec.mode == "netem" and spec.tap:
        return f"tap,id=net0,ifname={opt(spec.tap)},script=no,downscript=no"
    if spec.mode == "netem":
        return dgram_netdev("net0", *spec.dgram)
    return "hubport,id=net0,hubid=0"


def _debian_command(spec: VMSpec, qemu: Path, image) -> list:
    """The interactive Debian: its idle time follows real time (icount sleep=on), its NIC has
    its own MAC from the start (cloud-init configures it)."""
    cmd = _machine(qemu, spec.memory_mb, image.kernel, image.initrd)
    cmd += _debian_disks(spec, image)
    cmd += ["-append", "root=/dev/vda rw console=ttyS0 ipv6.disable=1"]
    if spec.mode in ("tansiv", "none"):
        cmd += ["-icount", ICOUNT.replace("sleep=off", "sleep=on"),
                "-rtc", f"base={RTC_BASE},clock=vm"]
    else:
        cmd += ["-rtc", f"base={RTC_BASE}"]
    if spec.address:
        cmd += ["-netdev", _netdev(spec),
                "-device", f"e1000,netdev=net0,mac={mac_text(spec.address)},romfile="]
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
