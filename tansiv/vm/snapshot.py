"""Booted snapshots: every VM of an image boots through the same instructions up to its
snapshot point (images/guest/initramfs/init: just before it reads what is its own), so the
state there is taken once per image and machine, and VMs start from it.

Taking it: the image boots alone under icount, as a VM of mode none, with the tansiv-snapshot
device (csrc/qemu/snapshot_point.c), which stops it at the point's I/O write, at the same
instruction on every build; QEMU then saves it to a file (migration to `file:`) and this
module keeps the virtual date it was stopped at. A VM starts from it with `-incoming
file:STATE` and its own settings (fw_cfg) and network back end; its clocks go on from that
date, where the simulation starts (tansiv-protocol.h).

Cached under $TANSIV_CACHE/snapshots/<key>/ (state, snapshot.json, console.log), <key> a hash
of QEMU's binary, the image's kernel and initramfs (path, size, modification time: a rebuilt
image makes a new snapshot), the memory and the machine's command line. A new snapshot
replaces the older ones of the same image folder and memory."""

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import leftovers, paths
from ..errors import TansivError
from .images import GuestImage, locked
from .qemu import NIC, guest_machine, guest_settings, opt, settings_files
from .qmp import QMP

BOOT_TIMEOUT_S = 900.0  # the boot to the snapshot point, under icount
# The device that stops the boot at the snapshot point, and the saved state without the run
# state (paused, then): a VM restored from it runs at once.
DEVICE = ["-device", "tansiv-snapshot,id=snapshot",
          "-global", "migration.store-global-state=off"]


@dataclass(frozen=True)
class Snapshot:
    path: Path          # its folder
    virtual_ns: int     # the guest's virtual date at the snapshot point
    boot_wall_s: float  # how long the boot to it took to take

    @property
    def state(self) -> Path:
        return self.path / "state"

    @classmethod
    def at(cls, path: Path) -> "Snapshot":
        meta = json.loads((path / "snapshot.json").read_text())
        return cls(path, meta["virtual_ns"], meta["boot_wall_s"])


def machine(qemu: Path, image: GuestImage, memory_mb: int) -> list:
    """The snapshot's VM: every restored VM must have the same devices but this one's, and
    settings of the same names (empty here: /init reads them after the snapshot point)."""
    return guest_machine(qemu, image, memory_mb) + [
        "-netdev", "hubport,id=net0,hubid=0", "-device", NIC,
        *settings_files(guest_settings())]


def key(qemu: Path, image: GuestImage, memory_mb: int) -> str:
    h = hashlib.sha256(" ".join(machine(qemu, image, memory_mb) + DEVICE).encode())
    for f in (qemu / "bin" / "qemu-system-x86_64", image.kernel, image.initrd):
        st = f.stat()
        h.update(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def folder(qemu: Path, image: GuestImage, memory_mb: int) -> Path:
    return paths.cache_dir() / "snapshots" / key(qemu, image, memory_mb)


def ensure(qemu: Path, image: GuestImage, memory_mb: int, say=print) -> Snapshot:
    """The image's snapshot for this QEMU and memory, taken if missing (once: concurrent
    callers wait for the one taking it)."""
    out = folder(qemu, image, memory_mb)
    if (out / ".complete").exists():
        return Snapshot.at(out)
    with locked(out.parent / f".{out.name}.lock"):
        if not (out / ".complete").exists():
            say(f"tansiv: taking the booted snapshot of {image.path} ({memory_mb} MB; once, "
                f"then cached in {out})")
            take(qemu, image, memory_mb, out)
    return Snapshot.at(out)


def take(qemu: Path, image: GuestImage, memory_mb: int, out: Path) -> None:
    """Boots the image to its snapshot point and saves the state in out (replaced)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
    try:
        _boot_and_save(qemu, image, memory_mb, tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        _prune(out)
    except TansivError as e:
        kept = out.parent / f"{out.name}.failed-console.log"  # what the guest said, kept
        shutil.copyfile(tmp / "console.log", kept)
        raise TansivError(f"cannot take the snapshot of {image.path}: {e}; its console: "
                          f"{kept}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prune(kept: Path) -> None:
    """Removes the snapshots this one replaces (the same image folder and memory: an image
    rebuilt in place, or another QEMU) and those whose image is gone: tens to hundreds of MB
    each. A VM restoring from one keeps its open file."""
    meta = json.loads((kept / "snapshot.json").read_text())
    for other in kept.parent.iterdir():
        try:
            m = json.loads((other / "snapshot.json").read_text())
        except (OSError, ValueError):
            continue  # not a snapshot, or one being taken
        same = (m.get("image"), m.get("memory_mb")) == (meta["image"], meta["memory_mb"])
        if other != kept and (same or not Path(m.get("image", "")).exists()):
            shutil.rmtree(other, ignore_errors=True)


def _boot_and_save(qemu: Path, image: GuestImage, memory_mb: int, tmp: Path) -> None:
    # The monitor's socket in a short private folder: a Unix socket's path has 107 bytes.
    sockets = Path(tempfile.mkdtemp(prefix=leftovers.tmp_prefix("snapshot")))
    try:
        _boot_and_save_with(qemu, image, memory_mb, tmp, sockets / "qmp.sock")
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _boot_and_save_with(qemu: Path, image: GuestImage, memory_mb: int, tmp: Path,
                        qmp_path: Path) -> None:
    console = tmp / "console.log"
    cmd = machine(qemu, image, memory_mb) + DEVICE + [
        "-qmp", f"unix:{opt(qmp_path)},server=on,wait=off"]
    started = time.monotonic()
    with open(console, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        mon = QMP(qmp_path, proc)
        mon.wait_event("STOP", BOOT_TIMEOUT_S)
        at, clock = (mon.command("qom-get", path="/machine/peripheral/snapshot", property=p)
                     for p in ("stopped-at", "clock"))
        if not at:
            raise TansivError("the VM stopped before its snapshot point")
        if clock != at:  # the state saved must be the state at the point's instruction
            raise TansivError(f"virtual time went on after the snapshot point ({at} ns) to "
                              f"{clock} ns")
        boot_wall_s = time.monotonic() - started
        mon.command("migrate", uri=f"file:{tmp / 'state'}")
        while True:
            status = mon.command("query-migrate")
            if status.get("status") == "completed":
                break
            if status.get("status") in ("failed", "cancelled"):
                raise TansivError(f"saving the VM failed: {status.get('error-desc', status)}")
            time.sleep(0.05)
        mon.command("quit")
        mon.close()
        proc.wait(timeout=30)
    except (TansivError, OSError, subprocess.TimeoutExpired) as e:
        proc.kill()
        proc.wait()
        raise TansivError(str(e)) from None
    (tmp / "snapshot.json").write_text(json.dumps({
        "virtual_ns": at, "boot_wall_s": round(boot_wall_s, 3),
        "image": str(image.path), "memory_mb": memory_mb, "qemu": str(qemu),
        "state_bytes": (tmp / "state").stat().st_size}, indent=2) + "\n")
    (tmp / ".complete").write_text("")


if __name__ == "__main__":
    # python -m tansiv.vm.snapshot [IMAGE_FOLDER [MEMORY_MB]]: the snapshot of that image
    # (default: tansiv's guest), taken if needed; prints its folder.
    import sys
    from . import build, images
    image = GuestImage.at(sys.argv[1]) if len(sys.argv) > 1 else images.initramfs()
    memory = int(sys.argv[2]) if len(sys.argv) > 2 else image.memory_mb
    snap = ensure(build.qemu_dir(), image, memory, say=lambda m: print(m, file=sys.stderr))
    print(snap.path)
