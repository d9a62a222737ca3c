#!/usr/bin/env python3
"""Start-up: wall seconds until N VMs reach their workload, from the image's booted snapshot
and booted cold, per image.

For each image (tansiv's guest, and the configuration's `etcd` and `web` images where they
were built: `tansiv image build etcd --config config/apps.yaml`), N VMs run `true`. `to
ready s`: wall seconds from starting `tansiv run` until the last VM's console says "ready"
(its /init runs the workload next), watched every 10 ms; `wall s`: the whole run (run.json's
total_wall_s, from its checks to its record: the VMs' power-off and the run's end included).
The image's snapshot is taken first, outside the runs (the one-time cost: `take s`, or the
recorded one if it was cached), so the snapshot runs measure restores. Side by side in one
call.

    bench/startup.py [--vms 2] [--images initramfs etcd web]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Table, actor

from tansiv import units
from tansiv.errors import TansivError
from tansiv.experiments import topology
from tansiv.run import deployment
from tansiv.run.record import RunRecord
from tansiv.vm import build, launcher, snapshot


def run_to_ready(workdir: Path, actors, env: dict, *options):
    """Runs the actors on a cluster of 1 ms routes, with env (the VM build, handed down as the
    pipeline does); (seconds until every console said ready, the run's record)."""
    workdir.mkdir()
    plat = topology.write(workdir / "platform.xml", "cluster", len(actors), 1_000_000, 125e6)
    dep = deployment.write(workdir / "deployment.xml", actors)
    logs = [workdir / "run" / "participants" / f"{a.address}.log" for a in actors]
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", plat, dep, "--out",
                             workdir / "run", "--quiet", "--log-level", "warning", *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **env))
    ready = None
    while ready is None and proc.poll() is None:
        if all(log.exists() and '"ready"' in log.read_text(errors="replace") for log in logs):
            ready = time.monotonic() - start
        time.sleep(0.01)
    err = proc.communicate()[1]
    if proc.returncode != 0 or ready is None:
        sys.exit(f"tansiv run failed in {workdir} (or no VM said ready):\n{err}")
    return ready, RunRecord.load(workdir / "run")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2])
    ap.add_argument("--images", nargs="+", default=["initramfs", "etcd", "web"])
    args = ap.parse_args()
    vms = build.prepare()
    table = Table(("image", 10), ("MB", 5), ("VMs", 4), ("boot", 9), ("to ready s", 11),
                  ("per VM", 7), ("wall s", 7), ("starts at s", 12), ("state MB", 9),
                  ("take s", 7))
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
                    ready, r = run_to_ready(Path(tmp) / f"{name}-{n}-{boot}", actors, vms.env(),
                                            "--until", "60", "--force", "1ms", *extra)
                    table.row(name, image.memory_mb, n, boot, f"{ready:.2f}", f"{ready / n:.2f}",
                              f"{r.total_wall_s:.2f}", f"{units.to_seconds(r.start_ns):.3f}",
                              f"{snap.state.stat().st_size / 2**20:.0f}" if boot == "snapshot"
                              else "", take if boot == "snapshot" else "")
    print("(to ready s: until the last of N VMs started together reached its workload; "
          "wall s: the whole run; take s: taking the snapshot once, in parentheses when it "
          "was cached: its recorded time)")


if __name__ == "__main__":
    main()
