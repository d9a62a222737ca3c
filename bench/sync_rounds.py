#!/usr/bin/env python3
"""Cost of a synchronization round with idle participants.

N processes (csrc/tests/idle) that only let simulated time pass, on an N-host cluster, with a
fixed lookahead (--force): every round is a full barrier with nothing to simulate. For each N,
one `tansiv run`; prints rounds per second and the wall time of a round split into
  hub     the hub's calls, in C, not blocked: sending deadlines, reading frames; with more
          processes than cores this includes participants that preempt it when woken
  (cpu)   of which the hub's own CPU time
  wait    blocked until every participant reached the deadline (their slice runs in real
          time, so at most the lookahead, less what elapsed while the hub was busy)
  python  the coordinator's loop
  simgrid SimGrid calls (next event, run_until)

    bench/sync_rounds.py [--participants 2 8 32 64] [--lookahead 100us] [--duration 0.2]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tansiv import paths
from tansiv.cli import seconds

PLATFORM = """<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <cluster id="c" prefix="h" suffix="" radical="1-{n}" speed="1Gf" bw="125MBps" lat="50us"/>
</platform>
"""


def deployment(n: int, until_us: int) -> str:
    idle = paths.libexecdir() / "tests" / "idle"
    actors = "".join(
        f'  <actor host="h{k}" function="vsg_vm"><argument value="10.0.{k // 256}.{k % 256}"/>'
        f'<argument value="{idle}"/><argument value="-n"/>'
        f'<argument value="10.0.{k // 256}.{k % 256}"/><argument value="--"/>'
        f'<argument value="{until_us}"/></actor>\n' for k in range(1, n + 1))
    return f"<?xml version='1.0'?>\n<platform version=\"4.1\">\n{actors}</platform>\n"


def run(n: int, lookahead: float, duration: float, workdir: Path) -> dict:
    d = workdir / f"n{n}"
    d.mkdir()
    (d / "platform.xml").write_text(PLATFORM.format(n=n))
    (d / "deployment.xml").write_text(deployment(n, int(duration * 1e6)))
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", d / "platform.xml",
                        d / "deployment.xml", "--force", str(lookahead), "--out", d / "run",
                        "--quiet", "--log-level", "warning"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"tansiv run failed for {n} participants:\n{r.stderr}")
    return json.loads((d / "run" / "run.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, nargs="+", default=[2, 8, 32, 64])
    ap.add_argument("--lookahead", type=seconds, default=seconds("100us"))
    ap.add_argument("--duration", type=seconds, default=0.2, help="simulated seconds")
    args = ap.parse_args()

    print(f"idle participants, lookahead {args.lookahead * 1e6:g} us, "
          f"{args.duration:g} s simulated each")
    head = (f"{'N':>4} {'rounds':>7} {'rounds/s':>9} {'us/round':>9} {'hub':>7} {'(cpu)':>7} "
            f"{'wait':>8} "
            f"{'python':>7} {'simgrid':>8} {'sim s/wall s':>13}")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="tansiv-bench-") as tmp:
        for n in args.participants:
            info = run(n, args.lookahead, args.duration, Path(tmp))
            rounds = info["rounds"]
            split = {k: v / rounds / 1e3 for k, v in info["time_split_ns"].items()}
            per_round = info["wall_s"] / rounds * 1e6
            print(f"{n:>4} {rounds:>7} {rounds / info['wall_s']:>9.0f} {per_round:>9.1f} "
                  f"{split['hub_busy']:>7.1f} {split['hub_cpu']:>7.1f} {split['hub_wait']:>8.1f} "
                  f"{split['python']:>7.1f} "
                  f"{split['simgrid']:>8.1f} {info['simulated_s_per_wall_s']:>13.3f}")
    print("(hub, cpu, wait, python, simgrid: microseconds per round)")


if __name__ == "__main__":
    main()
