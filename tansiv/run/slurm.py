"""One run across the nodes of a SLURM allocation (`tansiv run --launcher slurm`).

SLURM places and launches: the coordinator runs where the command runs; participants are
placed on the allocation's nodes (packed by their cores, or pinned by a placement file); those
on the coordinator's node are started as usual (shared-memory channels), the others by one
`srun` step, one task per node: a relay (tansiv/run/relay.py) that starts its node's
participants and serves them, over TCP and the run's secret, one exchange per round.

The run's folder must be one every node sees (as SLURM jobs' working folders are): the relays
read the plan there and write their participants' logs and exit statuses there."""

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import procs
from ..errors import InputError
from .participants import RunError


def _scontrol(*args) -> str:
    r = subprocess.run(["scontrol", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RunError(f"scontrol {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def _hostnames(nodelist: str) -> list:
    return _scontrol("show", "hostnames", nodelist).split()


def _cpu_count(ids: str) -> int:
    """CPU_IDs=0-1,4 -> 3."""
    count = 0
    for part in ids.split(","):
        a, _, b = part.partition("-")
        count += int(b or a) - int(a) + 1
    return count


def job_layout(job: str) -> tuple:
    """The job's nodes (SLURM's order) and the cores it has on each, from SLURM itself: the
    environment of a job step (Snakemake's, for one) describes the step, not the job."""
    out = _scontrol("show", "job", "-d", job)
    listed = re.search(r"(?<![A-Za-z])NodeList=(\S+)", out)
    if not listed or listed.group(1) == "(null)":
        raise RunError(f"SLURM job {job} has no nodes (yet): scontrol show job says:\n{out}")
    nodes = _hostnames(listed.group(1))
    cpus = dict.fromkeys(nodes, 1)
    for m in re.finditer(r"^\s+Nodes=(\S+) CPU_IDs=(\S+)", out, re.M):
        for n in _hostnames(m.group(1)):
            cpus[n] = _cpu_count(m.group(2))
    return nodes, cpus


@dataclass
class Allocation:
    job: str
    nodes: list          # names, in SLURM's order
    cpus: dict           # node -> cores allocated there
    here: str = None     # the node this command runs on, if one of them

    @classmethod
    def current(cls) -> "Allocation":
        env = os.environ
        if "SLURM_JOB_ID" not in env:
            raise InputError("--launcher slurm runs inside a SLURM allocation (salloc -N K, "
                             "sbatch -N K, or a Snakemake job with nodes: K): SLURM_JOB_ID "
                             "is not set")
        nodes, cpus = job_layout(env["SLURM_JOB_ID"])
        here = env.get("SLURMD_NODENAME")
        return cls(env["SLURM_JOB_ID"], nodes, cpus, here if here in nodes else None)


def read_placement(path: Path, addresses, nodes) -> dict:
    """A placement file: lines `ADDRESS NODE` (# comments); address -> node."""
    pinned = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise InputError("expected `ADDRESS NODE`", path, number)
        address, node = words
        if address not in addresses:
            raise InputError(f"no participant has the address {address}", path, number)
        if node not in nodes:
            raise InputError(f"node {node} is not in the allocation ({', '.join(nodes)})",
                             path, number)
        if address in pinned:
            raise InputError(f"{address} placed twice", path, number)
        pinned[address] = node
    return pinned


def place(addresses, alloc: Allocation, placement: Path = None) -> dict:
    """Every participant's node: pinned ones where the file says; the others, in deployment
    order, on the first node with a free core (the coordinator's node first, less the core the
    coordinator takes); beyond the allocation's cores, spread evenly."""
    pinned = read_placement(placement, set(addresses), alloc.nodes) if placement else {}
    order = sorted(alloc.nodes, key=lambda n: n != alloc.here)
    free = {n: alloc.cpus[n] - (n == alloc.here) for n in order}
    for node in pinned.values():
        free[node] -= 1
    placed, spill = dict(pinned), 0
    for a in addresses:
        if a in placed:
            continue
        node = next((n for n in order if free[n] > 0), None)
        if node is None:
            node, spill = order[spill % len(order)], spill + 1
        free[node] -= 1
        placed[a] = node
    return placed


def listen_host(alloc: Allocation) -> str:
    """The one address relays reach the coordinator at (TANSIV_LISTEN overrides): loopback
    if every node is this machine (a test cluster), else this host's address on the network
    its route to the nodes takes, so that the listener is on that interface alone."""
    if os.environ.get("TANSIV_LISTEN"):
        return os.environ["TANSIV_LISTEN"]
    addrs = re.findall(r"NodeAddr=(\S+)", _scontrol("show", "node", ",".join(alloc.nodes)))
    try:
        if addrs and all(ipaddress.ip_address(a).is_loopback for a in addrs):
            return "127.0.0.1"
    except ValueError:
        pass  # names, not addresses: a real cluster
    sources = {route_source(a) for a in addrs or alloc.nodes}
    if len(sources) > 1:
        raise RunError(f"this host reaches the nodes from several addresses "
                       f"({', '.join(sorted(sources))}): give the one to listen on in "
                       "TANSIV_LISTEN")
    (host,) = sources
    if ipaddress.ip_address(host).is_loopback:
        raise RunError(f"this host reaches the nodes from {host}, which they cannot reach: "
                       "give the coordinator's address in TANSIV_LISTEN")
    return host


def route_source(node: str) -> str:
    """This host's address on the route to node (a name or an address): the kernel's choice
    for a datagram socket connected there (nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(node), 9))
            return s.getsockname()[0]
    except OSError as e:
        raise RunError(f"no route from this host to node {node}: {e}")


@dataclass
class RemoteProc:
    """A participant's process on another node, as far as the coordinator can see it: its
    exit status comes from its relay's report (nodes/NODE.json) once the relays' step ended.
    Stopping it, at the end of the run, ends the relays' step (srun forwards the signal; each
    relay stops its participants and reports)."""
    address: str
    node: str
    step: subprocess.Popen
    report: Path
    returncode: int = None
    stopped: bool = False  # its relay stopped it: it still ran after the end's grace
    lost: bool = False     # its relay never reported (node or step lost): status unknown

    def poll(self):
        if self.returncode is None and self.step.poll() is not None:
            try:
                mine = json.loads(self.report.read_text())[self.address]
                self.returncode, self.stopped = mine["exit"], mine["terminated"]
            except (OSError, ValueError, KeyError):
                # No report: its relay (or node) died, and it with it (PDEATHSIG); how it
                # ended is not known, so none is made up (Participant.finished says so).
                self.returncode, self.lost = -signal.SIGKILL, True
        return self.returncode

    def wait(self, timeout=None):
        self.step.wait(timeout)
        return self.poll()

    def terminate(self):
        self.step.terminate()

    def kill(self):
        self.step.kill()


def node_report(run_dir: Path, node: str) -> Path:
    return run_dir / "nodes" / f"{node}.json"


def start_relays(run_dir: Path, plan: dict, env: dict) -> subprocess.Popen:
    """The relays' step: one task on each node of the plan (srun), each the relay of its
    node's participants. The run's secret goes by environment, never in the plan."""
    nodes = sorted(plan["nodes"])
    folder = run_dir / "nodes"
    folder.mkdir(exist_ok=True)
    plan_path = folder / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1) + "\n")
    cores = min(plan["cpus"][n] for n in nodes)
    cmd = ["srun", f"--jobid={plan['job']}", f"--nodes={len(nodes)}", f"--ntasks={len(nodes)}",
           "--ntasks-per-node=1", f"--nodelist={','.join(nodes)}", f"--cpus-per-task={cores}",
           "--overlap", "--kill-on-bad-exit=0", "--job-name=tansiv-relays", "--label",
           sys.executable, "-m", "tansiv.run.relay", str(plan_path)]
    with open(folder / "srun.log", "wb") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=procs.die_with_parent,
                                env=job_env(plan["job"], env))


def job_env(job: str, extra: dict) -> dict:
    """The environment for a step of the whole job: inside a job step (a Snakemake job runs in
    one), SLURM_* describe that step (one node), which srun would take as its bounds."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLURM_") or k == "SLURM_CONF"}
    return dict(env, SLURM_JOB_ID=job, **extra)
