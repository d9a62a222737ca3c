#!/usr/bin/env python3
"""Wall-clock seconds per simulated second with idle VMs.

N VMs (tansiv's default guest) boot, then sleep, on a cluster whose routes have the given
latency (the lookahead). Each N runs twice, idling SHORT then LONG simulated seconds after
boot; the difference isolates the cost of idle time from the boot:
    idle cost = (wall(LONG) - wall(SHORT)) / (LONG - SHORT)   wall s per simulated s
and the whole run's ratio is printed too. Runs are sequential, side by side in one call.

    bench/vm_speed.py [--vms 2 4] [--latency 1ms] [--short 2] [--long 62]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tansiv.cli import seconds

PLATFORM = """<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <cluster id="c" prefix="h" suffix="" radical="1-{n}" speed="1Gf" bw="125MBps"
           lat="{half_us}us" bb_lat="0"/>
</platform>
"""


def run(n, latency, idle_s, workdir: Path) -> dict:
    d = workdir / f"n{n}-idle{idle_s:g}"
    d.mkdir()
    (d / "platform.xml").write_text(PLATFORM.format(n=n, half_us=latency * 1e6 / 2))
    actors = "".join(
        f'<actor host="h{k}" function="vsg_vm"><argument value="10.0.0.{k}"/>'
        f'<argument value="tansiv-vm"/><argument value="--cmd"/>'
        f'<argument value="sleep {idle_s:g}"/></actor>\n' for k in range(1, n + 1))
    (d / "deployment.xml").write_text(
        f"<?xml version='1.0'?>\n<platform version=\"4.1\">\n{actors}</platform>\n")
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", d / "platform.xml",
                        d / "deployment.xml", "--out", d / "run", "--quiet",
                        "--log-level", "warning"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tansiv run failed ({n} VMs, idle {idle_s} s):\n{r.stderr}")
    return json.loads((d / "run" / "run.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--latency", type=seconds, default=seconds("1ms"))
    ap.add_argument("--short", type=float, default=2.0, help="idle simulated s, short run")
    ap.add_argument("--long", type=float, default=62.0, help="idle simulated s, long run")
    args = ap.parse_args()
    print(f"idle VMs, route latency (lookahead) {args.latency * 1e3:g} ms; idle "
          f"{args.short:g} s and {args.long:g} s after boot")
    head = (f"{'VMs':>4} {'simulated s':>12} {'wall s':>8} {'wall/sim':>9} "
            f"{'idle wall/sim':>14} {'rounds':>7} {'us/round':>9}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.vms:
            short = run(n, args.latency, args.short, Path(tmp))
            long = run(n, args.latency, args.long, Path(tmp))
            idle = (long["wall_s"] - short["wall_s"]) / (long["simulated_s"] - short["simulated_s"])
            us_round = ((long["wall_s"] - short["wall_s"]) / (long["rounds"] - short["rounds"])
                        * 1e6)
            print(f"{n:>4} {long['simulated_s']:>12.2f} {long['wall_s']:>8.2f} "
                  f"{long['wall_s'] / long['simulated_s']:>9.3f} {idle:>14.3f} "
                  f"{long['rounds']:>7} {us_round:>9.1f}")
    print("(wall/sim: the whole long run, boot included; idle wall/sim and us/round: the "
          "difference between the two runs)")


if __name__ == "__main__":
    main()
