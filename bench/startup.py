#!/usr/bin/env python3
"""Start-up: wall seconds until N VMs reach their workload, from the image's booted snapshot
and booted cold, per image.

For each image (tansiv's guest, and the configuration's `etcd` and `web` images where they
were built: `tansiv image build etcd --config config/apps.yaml`), N VMs run `true`: their
workload's first instruction is then almost its last, so the run's wall time (run.json's
total_wall_s: from the run's checks to its record) is what it costs to get them there. The
image's snapshot is taken first, outside the runs (the one-time cost: `take s`, or the
recorded one if it was cached), so the snapshot runs measure restores. Side by side in one
call.

    bench/startup.py [--vms 2] [--images initramfs etcd web]
"""

import argparse
import tempfile
import time
from pathlib import Path

from benchlib import Table, actor, run

from tansiv import units
from tansiv.errors import TansivError
from tansiv.vm import build, launcher, snapshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2])
    ap.add_argument("--images", nargs="+", default=["initramfs", "etcd", "web"])
    args = ap.parse_args()
    vms = build.prepare()
    table = Table(("image", 10), ("MB", 5), ("VMs", 4), ("boot", 9), ("wall s", 7),
                  ("s per VM", 9), ("starts at s", 12), ("state MB", 9), ("take s", 7))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for name in args.images:
            try:
                image = launcher.guest_image(name, vms)
            except TansivError as e:
                print(f"{name}: skipped ({e})")
                continue
            t0 = time.monotonic()
            said = []
            snap = snapshot.ensure(vms.qemu, image, image.memory_mb, say=said.append)
            take = f"{time.monotonic() - t0:.1f}" if said else f"({snap.boot_wall_s:.1f})"
            for n in args.vms:
                for boot in ("snapshot", "cold"):
                    actors = [actor(k, "tansiv-vm", "--image", name, "--cmd", "true")
                              for k in range(n)]
                    extra = ["--cold-boot"] if boot == "cold" else []
                    r = run(Path(tmp) / f"{name}-{n}-{boot}", actors, 1_000_000,
                            "--until", "60", *extra)
                    table.row(name, image.memory_mb, n, boot, f"{r.total_wall_s:.2f}",
                              f"{r.total_wall_s / n:.2f}", f"{units.to_seconds(r.start_ns):.3f}",
                              f"{snap.state.stat().st_size / 2**20:.0f}" if boot == "snapshot"
                              else "", take if boot == "snapshot" else "")
    print("(wall s: the whole run, from its checks to its record, N VMs started together, "
          "their workload `true`; take s: taking the snapshot once, in parentheses when it "
          "was cached: its recorded time)")


if __name__ == "__main__":
    main()
