"""The relay of one node of a SLURM run (`python -m tansiv.run.relay PLAN`, one srun task per
node, tansiv/run/slurm.py): starts the node's participants (the plan says which, with their
command lines), is their hub (shared-memory channels), and serves the coordinator's rounds for
all of them over one TCP connection (csrc/hub/relay.c). At the end it writes what became of
each (nodes/NODE.json) and never leaves one running: they die with it (PDEATHSIG), and it
stops them when the coordinator ends the run, goes away, or SLURM ends the step."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import leftovers, procs
from .consoles import Console, cap_all
from .hub import Hub, HubError, Relay
from .participants import REMOVED_GRACE_S
from .session import LEFTOVER_GRACE_S, Terminated, raise_terminated

log = logging.getLogger("tansiv.relay")
SERVE_SLICE_MS = 250


def start(member: dict, socket: str) -> subprocess.Popen:
    """A participant as the coordinator would start it, the relay's socket for its hub."""
    return procs.start_logged([member["argv"][0], socket, *member["argv"][1:]],
                              Path(member["log"]), {**member["env"], "TANSIV_SOCKET": socket})


def connect(hub: Hub, started: dict, timeout_s: float) -> None:
    """Until every participant of the node said HELLO to the local hub."""
    end = time.monotonic() + timeout_s
    while hub.accept(len(started), SERVE_SLICE_MS) < len(started):
        for address, proc in started.items():
            if proc.poll() is not None:
                raise HubError(f"participant {address} {procs.describe_exit(proc.returncode)} "
                               "before connecting")
        if time.monotonic() > end:
            raise HubError(f"participants not connected after {timeout_s:g} s")


def serve(plan: dict, node: str, ends: dict) -> None:
    """The node's part of the run; each participant's end into ends."""
    members = plan["nodes"][node]
    secret = bytes.fromhex(os.environ.pop("TANSIV_SECRET"))  # the relay's alone, not its children's
    tmp = tempfile.mkdtemp(prefix=leftovers.tmp_prefix("relay"))  # 0700: the user's alone
    started, relay = {}, None
    try:
        with Hub(f"{tmp}/hub.sock", plan["ring_size"]) as hub:
            hub.set_limits(**plan["limits"])  # the coordinator's options, on this node too
            for m in members:
                started[m["address"]] = start(m, hub.address)
            connect(hub, started, plan["connect_timeout_s"])
            log.info("%s: %d participants connected; joining the coordinator at %s", node,
                     len(started), plan["coordinator"])
            relay = Relay(hub, plan["coordinator"], secret)
            outputs = [Console(m["log"], plan["console_limit"]) for m in members]
            while not relay.serve(SERVE_SLICE_MS):
                stop_removed(relay, started, ends)
                cap_all(outputs, node)
            stop_removed(relay, started, ends)
            log.info("%s: the coordinator ended the run after %d rounds", node, relay.rounds())
            relay.close()
            finish(started, plan["end_grace_s"], ends)
            cap_all(outputs, node)  # the writers have ended: the last caps bound the files
    finally:
        if relay:
            relay.close()
        for address, proc in started.items():  # what an error or SIGTERM cut short
            if address not in ends:
                procs.stop(proc, grace_s=2.0)
                ends[address] = {"exit": proc.returncode, "terminated": True, "pid": proc.pid}
        shutil.rmtree(tmp, ignore_errors=True)


def stop_removed(relay: Relay, started: dict, ends: dict) -> None:
    """Stops the participants the coordinator removed (a stalled one, say), as it stops its
    own: they are out of the simulation already."""
    for address in relay.removed():
        proc = started[address]
        log.info("%s removed by the coordinator: stopping it (pid %d)", address, proc.pid)
        procs.stop(proc, grace_s=REMOVED_GRACE_S)
        ends[address] = {"exit": proc.returncode, "terminated": True, "pid": proc.pid}


def finish(started: dict, grace_s: float, ends: dict) -> None:
    """Waits for the participants to end (grace_s at most), then stops the others."""
    end = time.monotonic() + grace_s
    for address, proc in started.items():
        code = procs.exit_code(proc, max(0.0, end - time.monotonic()))
        if code is None:
            procs.stop(proc, grace_s=2.0)
        if address not in ends:  # one removed was stopped already
            ends[address] = {"exit": proc.returncode, "terminated": code is None,
                             "pid": proc.pid}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plan_path = Path(argv[0])
    node = os.environ.get("SLURMD_NODENAME") or argv[1]
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s relay {node}: %(message)s")
    signal.signal(signal.SIGTERM, raise_terminated)
    plan = json.loads(plan_path.read_text())
    report = plan_path.parent / f"{node}.json"
    ends = {}
    for what in leftovers.clean_stale():
        log.warning("%s: removed %s, left by a tansiv run that was killed", node, what)
    leftovers.mark_children()
    procs.raise_open_files_limit()
    try:
        serve(plan, node, ends)
        return 0
    except (HubError, Terminated, KeyboardInterrupt) as e:
        log.error("%s: %s", node, str(e) or "terminated (SIGTERM)")
        return 1
    finally:
        for what in leftovers.stop_mine(grace_s=LEFTOVER_GRACE_S):
            log.warning("%s: stopped %s: started by a participant, it ran on after the run",
                        node, what)
        # Those not reported ended with the relay (stopped by it, or by their PDEATHSIG).
        tmp = report.with_suffix(".tmp")
        tmp.write_text(json.dumps(ends, indent=1) + "\n")
        tmp.rename(report)


if __name__ == "__main__":
    sys.exit(main())
