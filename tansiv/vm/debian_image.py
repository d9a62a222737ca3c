"""The full Debian image, for interactive use: debootstrap (minbase) of this machine's release
with systemd, SSH and cloud-init, as ext4 in a qcow2 that VMs boot from copy-on-write
overlays, each with a cloud-init seed of its own (hostname, addresses, SSH key)."""

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import debian, leftovers, paths
from ..errors import TansivError
from .images import GUEST_TOOLS, locked

DEBIAN_PACKAGES = ["systemd-sysv", "udev", "linux-image-amd64", "openssh-server", "cloud-init",
                   "ifupdown", "iproute2", "netbase", "procps", "iputils-ping",
                   # provides a virtual package cloud-init needs, which debootstrap's
                   # resolver does not follow
                   "python3-cffi-backend"]
DEBIAN_DISK_SIZE = "3G"


@dataclass
class DebianImage:
    base: Path      # qcow2, never written: VMs boot from overlays
    kernel: Path
    initrd: Path
    path: Path


def image(rebuild: bool = False) -> DebianImage:
    """The image, built if needed (mkfs.ext4 -d, then qcow2). Booted with its own kernel and
    initrd, root on the first virtio disk."""
    codename = debian.codename()
    tools = [paths.native(paths.libexecdir() / "guest" / t) for t in GUEST_TOOLS]
    h = hashlib.sha256((codename + " " + " ".join(DEBIAN_PACKAGES) + DEBIAN_DISK_SIZE).encode())
    for f in [Path(__file__), *tools]:
        h.update(f.read_bytes())
    out = paths.cache_dir() / "images" / f"debian-{codename}-{h.hexdigest()[:16]}"
    image = DebianImage(out / "base.qcow2", out / "vmlinuz", out / "initrd.img", out)
    if (out / ".complete").exists() and not rebuild:
        return image
    with locked(paths.cache_dir() / "images" / ".lock-debian"):
        if not (out / ".complete").exists() or rebuild:
            _build_debian(out, codename, tools)
    return image


def _build_debian(out: Path, codename: str, tools) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rootfs = out / "rootfs"
    log = out / "build.log"
    with open(log, "w") as f:
        def step(*cmd):
            f.write(f"$ {' '.join(map(str, cmd))}\n")
            f.flush()
            if subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT).returncode:
                raise TansivError(f"building the Debian image failed at {cmd[0]}: see {log}")
        step("debootstrap", "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES),
             codename, rootfs, debian.MIRROR)
        # NoCloud only: cloud-init does not probe for other clouds. The disk has its final
        # size and no partition table: nothing to grow (and resize2fs may be absent).
        (rootfs / "etc/cloud/cloud.cfg.d/90-tansiv.cfg").write_text(
            "datasource_list: [ NoCloud, None ]\nresize_rootfs: false\n"
            "growpart: {mode: 'off'}\n")
        (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,relatime 0 1\n")
        for t in tools:
            shutil.copy(t, rootfs / "usr/local/bin" / t.name)
        shutil.copy(next((rootfs / "boot").glob("vmlinuz-*")), out / "vmlinuz")
        shutil.copy(next((rootfs / "boot").glob("initrd.img-*")), out / "initrd.img")
        step("mkfs.ext4", "-q", "-L", "root", "-d", rootfs, out / "disk.raw", DEBIAN_DISK_SIZE)
        step("qemu-img", "convert", "-O", "qcow2", out / "disk.raw", out / "base.qcow2")
    (out / "disk.raw").unlink()
    shutil.rmtree(rootfs)
    (out / ".complete").write_text(codename + "\n")


def overlay(base: Path, path: Path) -> Path:
    """A copy-on-write disk over base, for one VM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    debian.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", path])
    return path


def cloud_init_seed(path: Path, hostname: str, ssh_key: str, networks) -> Path:
    """A NoCloud seed ISO (volume cidata). networks: [(mac, address/prefix or None)], None
    for QEMU's user network (10.0.2.15/24 via 10.0.2.2, static: no DHCP client needed)."""
    with tempfile.TemporaryDirectory(prefix=leftovers.tmp_prefix("seed")) as tmp:
        t = Path(tmp)
        (t / "meta-data").write_text(f"instance-id: {hostname}\nlocal-hostname: {hostname}\n")
        (t / "user-data").write_text(
            "#cloud-config\n"
            f"hostname: {hostname}\n"
            "disable_root: false\n"
            "locale: C.UTF-8\n"  # minbase has no other locale to generate
            "ssh_pwauth: false\n"
            f"users:\n  - name: root\n    ssh_authorized_keys:\n      - {ssh_key}\n")
        lines = ["version: 2", "ethernets:"]
        for k, (mac, address) in enumerate(networks):
            lines += [f"  nic{k}:", "    match:", f"      macaddress: \"{mac}\"",
                      f"    set-name: eth{k}"]
            if address is None:
                lines += ["    addresses: [10.0.2.15/24]",
                          "    routes: [{to: 0.0.0.0/0, via: 10.0.2.2}]"]
            else:
                lines += [f"    addresses: [{address}]"]
        (t / "network-config").write_text("\n".join(lines) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        debian.run(["genisoimage", "-quiet", "-output", path, "-volid", "cidata", "-joliet",
                    "-rock", t / "user-data", t / "meta-data", t / "network-config"])
    return path
