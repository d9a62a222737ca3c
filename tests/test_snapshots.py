"""Booted snapshots (tansiv/vm/snapshot.py): taken once per image, reused, taken again when the
image changes; a run from one is a cold-booted run from the snapshot point on, bit for bit."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import guest_output, tansiv, two_hosts, vm, write_deployment
from tansiv.errors import InputError
from tansiv.run.record import RunRecord
from tansiv.vm import build, launcher, snapshot, user_images
from tansiv.vm.images import GuestImage


@pytest.fixture(scope="module")
def prepared():
    """QEMU and the guest image (built by setup.sh; cached), handed down as the pipeline's
    build rules do."""
    vms = build.prepare()
    os.environ.update(vms.env())
    return vms


def host_clock_fields(state: bytes) -> range:
    """Where QEMU's `timer` section keeps its host-clock offsets (cpu_ticks_offset, a dummy,
    cpu_clock_offset: 24 bytes after its header), which icount does not use."""
    start = state.index(b"\x05timer\x00\x00\x00\x00\x00\x00\x00\x02") + 14
    return range(start, start + 24)


def test_a_snapshot_is_taken_once_reused_and_taken_again_when_its_image_changes(
        prepared, tmp_path, monkeypatch):
    monkeypatch.setenv("TANSIV_CACHE", str(tmp_path / "cache"))
    image_dir = tmp_path / "image"
    shutil.copytree(prepared.guest.path, image_dir)
    image = GuestImage.at(image_dir)
    said = []
    first = snapshot.ensure(prepared.qemu, image, 256, say=said.append)
    assert len(said) == 1 and "taking the booted snapshot" in said[0]
    assert first.path.parent == tmp_path / "cache" / "snapshots"
    assert 3e9 < first.virtual_ns < 6e9  # the boot to the point: about 4.2 s of virtual time
    taken = first.state.stat().st_mtime_ns

    again = snapshot.ensure(prepared.qemu, image, 256, say=said.append)
    assert len(said) == 1 and again == first and first.state.stat().st_mtime_ns == taken

    # The image rebuilt (here: its initramfs written again): a new snapshot, at the same
    # date, with the same guest state to the byte (memory, devices, icount): the boot to the
    # point is deterministic. Only QEMU's host-clock offsets differ, unused under icount. The
    # old snapshot is removed.
    a = first.state.read_bytes()
    image.initrd.write_bytes(image.initrd.read_bytes())
    os.utime(image.initrd, ns=(taken + 10**9, taken + 10**9))
    rebuilt = snapshot.ensure(prepared.qemu, image, 256, say=said.append)
    assert len(said) == 2 and rebuilt.path != first.path and not first.path.exists()
    assert rebuilt.virtual_ns == first.virtual_ns
    b = rebuilt.state.read_bytes()
    assert len(a) == len(b) > 10 * 2**20
    host = host_clock_fields(a)
    assert a[:host.start] == b[:host.start] and a[host.stop:] == b[host.stop:]
    # Another memory size is another machine.
    assert snapshot.folder(prepared.qemu, image, 512) != rebuilt.path


def ping_run(tmp_path: Path, name: str, *extra) -> Path:
    p = two_hosts(tmp_path / "platform.xml", "1ms")
    d = write_deployment(tmp_path / "deployment.xml",
                         vm("h1", "10.0.0.1", "tping -c 10 -i 20 -w 1 10.0.0.2; cat /proc/uptime; "
                                              "date -u +%s"),
                         vm("h2", "10.0.0.2", "sleep 1000"))
    out = tmp_path / name
    r = tansiv("run", p, d, "--out", out, "--quiet", "--until", "6", "--end-grace", "3", *extra,
               timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def test_a_run_from_the_snapshot_is_the_cold_boot_from_the_snapshot_point_on(prepared,
                                                                               tmp_path):
    """Two VMs ping: started from the snapshot, twice, and booted: the same guest output and
    the same packets at the same nanoseconds. The run from the snapshot starts at its virtual
    date and its rounds begin there; the guests' clocks go on from that date."""
    snap = snapshot.ensure(prepared.qemu, prepared.guest, prepared.guest.memory_mb)
    runs = {name: ping_run(tmp_path, name, *extra) for name, extra in
            (("snapshot", ()), ("snapshot-again", ()), ("cold", ("--cold-boot",)))}
    records = {name: RunRecord.load(run) for name, run in runs.items()}
    assert records["snapshot"].start_ns == snap.virtual_ns
    assert records["cold"].start_ns == 0
    assert records["snapshot"].rounds < records["cold"].rounds / 5  # no boot in rounds
    packets = {name: (run / "packets.jsonl").read_bytes() for name, run in runs.items()}
    assert packets["snapshot"] == packets["snapshot-again"] == packets["cold"]
    assert len(packets["cold"].splitlines()) == 22
    outputs = {name: guest_output(run) for name, run in runs.items()}
    assert outputs["snapshot"] == outputs["snapshot-again"] == outputs["cold"]

    # Clocks: the guest's uptime and date after the restore are past the snapshot's date.
    console = (runs["snapshot"] / "participants" / "10.0.0.1.log").read_text().splitlines()
    ready = next(json.loads(line) for line in console if '"ready"' in line)
    uptime_s = next(float(line.split()[0]) for line in console
                    if re.fullmatch(r"\d+\.\d+ \d+\.\d+", line))
    epoch_s = next(int(line) for line in console if re.fullmatch(r"\d{9,}", line))
    snap_s = snap.virtual_ns / 1e9
    assert snap_s - 0.2 < float(ready["uptime"]) <= uptime_s < 6
    assert epoch_s - 1577836800 >= int(snap_s)  # the RTC starts at 2020-01-01 (qemu.py)


def test_cold_boot_and_image_boot_settings(prepared, tmp_path, capsys):
    """--cold-boot, and an image configured `boot: cold`, start QEMU without the snapshot;
    a bad boot setting is named with its key."""
    def incoming(*args):
        capsys.readouterr()
        assert launcher.main(["--mode", "none", "--address", "10.0.0.1", "--print", *args]) == 0
        return "-incoming" in capsys.readouterr().out.split()
    assert incoming()
    assert not incoming("--cold-boot")
    cold = tmp_path / "cold"
    shutil.copytree(prepared.guest.path, cold)
    (cold / "boot").write_text("cold\n")
    assert GuestImage.at(cold).boot == "cold" and not incoming("--image", str(cold))
    with pytest.raises(InputError, match=r"images\.x\.boot: 'warm' is not one of snapshot, "
                                         r"cold"):
        user_images.ImageSpec.from_config("x", {"boot": "warm"})


def test_an_until_before_the_snapshot_date_is_refused_saying_why(prepared, tmp_path):
    p = two_hosts(tmp_path / "platform.xml", "1ms")
    d = write_deployment(tmp_path / "deployment.xml", vm("h1", "10.0.0.1", "true"),
                         vm("h2", "10.0.0.2", "true"))
    r = tansiv("run", p, d, "--out", tmp_path / "run", "--quiet", "--until", "2", timeout=300)
    assert r.returncode != 0
    assert "--until 2000000000 ns is not after the start of the simulation" in r.stderr, \
        r.stderr
