"""One experiment across the nodes of a SLURM allocation (--launcher slurm), on a real SLURM
cluster of three nodes on this machine (tests/slurm_cluster.py): the same VM experiment on one
node and across three gives the same guest output, bit for bit; processes too; a relay killed
mid-run is reported, naming its node and participants, and leaves nothing running; the
pipeline runs a sweep point with nodes: 3 through profiles/slurm."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from helpers import REPO, TESTS_BIN, actor, mesh, table, tansiv
from tansiv.experiments import topology
from tansiv.errors import InputError
from tansiv.run import deployment, slurm
from tansiv.run.participants import Participant
from tansiv.vm import build

NODES = ["n1", "n2", "n3"]


@pytest.fixture(scope="module")
def cluster():
    why = slurm_cluster.why_not()
    if why:
        pytest.skip(f"SLURM: {why}")
    c = slurm_cluster.Cluster(nodes=len(NODES)).start()
    yield c
    c.stop()


def salloc(*args, nodes=3, timeout=600):
    """tansiv ARGS in an allocation of `nodes` nodes (the command runs on this host, outside
    them: every participant goes to a node)."""
    return subprocess.run(["salloc", f"-N{nodes}", "--quiet", sys.executable, "-m",
                           "tansiv.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def placement(path: Path, nodes: dict) -> Path:
    path.write_text("".join(f"{a} {n}\n" for a, n in nodes.items()))
    return path


def record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def consoles(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in (run / "participants").glob("*.log")}


def leftovers(run: Path) -> list:
    """Processes still running with this run's folder in their environment."""
    mark = f"TANSIV_RUN_DIR={run.resolve()}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "))
        except OSError:
            pass
    return found


# ---- placement and bad input (no cluster needed) ---------------------------------------------

ADDRESSES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]


def test_placement_packs_by_cores_the_coordinators_node_first():
    alloc = slurm.Allocation("7", ["n1", "n2", "n3"], {"n1": 2, "n2": 2, "n3": 1}, here="n2")
    # n2 has 2 cores, one for the coordinator; then n1's two, n3's one; the fifth spills.
    assert slurm.place(ADDRESSES, alloc) == {
        "10.0.0.1": "n2", "10.0.0.2": "n1", "10.0.0.3": "n1", "10.0.0.4": "n3",
        "10.0.0.5": "n2"}


def test_placement_file_pins_and_the_rest_is_packed(tmp_path):
    alloc = slurm.Allocation("7", ["n1", "n2"], {"n1": 1, "n2": 2})
    f = placement(tmp_path / "p", {"10.0.0.3": "n1"})
    assert slurm.place(ADDRESSES[:3], alloc, f) == {
        "10.0.0.1": "n2", "10.0.0.2": "n2", "10.0.0.3": "n1"}


@pytest.mark.parametrize("text,message", [
    ("10.0.0.9 n1\n", "p:1: no participant has the address 10.0.0.9"),
    ("# comment\n10.0.0.1 n7\n", "p:2: node n7 is not in the allocation (n1, n2)"),
    ("10.0.0.1\n", "p:1: expected `ADDRESS NODE`"),
    ("10.0.0.1 n1\n10.0.0.1 n2\n", "p:2: 10.0.0.1 placed twice"),
])
def test_bad_placement_file_is_named_with_its_line(tmp_path, text, message):
    (tmp_path / "p").write_text(text)
    alloc = slurm.Allocation("7", ["n1", "n2"], {"n1": 1, "n2": 1})
    with pytest.raises(InputError) as e:
        slurm.place(ADDRESSES[:2], alloc, tmp_path / "p")
    assert message in str(e.value)


def test_launcher_slurm_outside_an_allocation_says_so(tmp_path):
    plat, dep = pingpong(tmp_path, rounds=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", plat, dep, "--out",
                        tmp_path / "run", "--launcher", "slurm"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode != 0 and "runs inside a SLURM allocation" in r.stderr
    r = tansiv("run", plat, dep, "--out", tmp_path / "run2", "--placement", tmp_path / "x")
    assert r.returncode != 0 and "--placement" in r.stderr and "--launcher slurm" in r.stderr


def test_a_participant_whose_relay_never_reported_is_failed_with_its_node(tmp_path):
    """It left the simulation, then its relay died before writing nodes/NODE.json (the step
    cancelled: SLURM kills the participant first, and its relay may still pass that on): how
    it ended is not known, so the record says it was lost with its node instead of a status."""
    step = subprocess.Popen(["true"])
    step.wait()
    proc = slurm.RemoteProc("10.0.0.2", "n2", step, tmp_path / "n2.json")
    p = Participant(deployment.Actor("h2", "10.0.0.2", "pingpong", [], 1), Path("pingpong"),
                    tmp_path / "log", proc=proc, node="n2")
    p.joined(0, "process")
    p.gone(97_637_086, None)  # the relay's GONE: it left, exit status to come with the report
    p.finished(proc.wait(), terminated=proc.stopped, lost=proc.lost)
    assert p.state == "failed" and p.broke
    assert p.detail == ("node n2: left the simulation at 97637086 ns, then lost with its relay "
                        "(no report from the node; exit status unknown)")


# ---- VMs -------------------------------------------------------------------------------------

def test_vm_mesh_across_three_nodes_gives_the_same_guest_output(cluster, tmp_path):
    os.environ.update(build.prepare().env())
    plat, dep, opts = mesh(tmp_path)
    one = tansiv("run", plat, dep, "--out", tmp_path / "one", *opts, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    spread = placement(tmp_path / "placement", {"10.0.0.1": "n1", "10.0.0.2": "n2",
                                                 "10.0.0.3": "n3", "10.0.0.4": "n1"})
    three = salloc("run", plat, dep, "--out", tmp_path / "three", "--launcher", "slurm",
                   "--placement", spread, *opts)
    assert three.returncode == 0, three.stderr[-3000:]
    r = record(tmp_path / "three")
    assert {p["name"]: (p["node"], p["transport"], p["state"]) for p in r["participants"]} == {
        "10.0.0.1": ("n1", "relay", "ended"), "10.0.0.2": ("n2", "relay", "ended"),
        "10.0.0.3": ("n3", "relay", "ended"), "10.0.0.4": ("n1", "relay", "ended")}
    assert consoles(tmp_path / "three") == consoles(tmp_path / "one")
    assert (tmp_path / "three" / "packets.jsonl").read_bytes() == \
        (tmp_path / "one" / "packets.jsonl").read_bytes()
    rtts = [line for line in consoles(tmp_path / "three")["10.0.0.1.log"].splitlines()
            if b'"rtt"' in line]
    assert len(rtts) == 3 * (3 + 1)  # three peers, three pings and a warm-up each
    assert not leftovers(tmp_path / "three")


# ---- processes -------------------------------------------------------------------------------

def pingpong(tmp: Path, rounds: int, size: int = 1000):
    """Two pairs: 10.0.0.1 pings 10.0.0.2, 10.0.0.3 pings 10.0.0.4."""
    plat = topology.write(tmp / "platform.xml", "cluster", 4, 500_000, 125e6)
    hosts = topology.hosts(4)
    actors = []
    for k in (0, 2):
        me, peer = topology.address(k), topology.address(k + 1)
        actors += [actor(hosts[k], me, "pingpong", "-n", me, "--", "client", peer, rounds, size),
                   actor(hosts[k + 1], peer, "pingpong", "-n", peer, "--", "server", me,
                         rounds)]
    return plat, deployment.write(tmp / "deployment.xml", actors)


def rtts(run: Path, who: str) -> list:
    return [json.loads(line)["rtt_us"] for line in
            (run / "participants" / f"{who}.log").read_text().splitlines() if '"rtt"' in line]


def test_processes_across_nodes_are_placed_and_exchange(cluster, tmp_path):
    """Packed by cores: this allocation has one per node: a process on each, the fourth
    back on the first."""
    plat, dep = pingpong(tmp_path, rounds=20)
    r = salloc("run", plat, dep, "--out", tmp_path / "run", "--launcher", "slurm", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = record(tmp_path / "run")
    assert [p["node"] for p in rec["participants"]] == NODES + ["n1"]
    assert all(p["state"] == "ended" and p["exit"] == 0 for p in rec["participants"])
    assert rec["packets_delivered"] == 80
    # A process's RTT is the model's (1 ms for 1000 bytes over 0.5 ms routes, plus the time
    # the program itself takes): as on one machine.
    local = tansiv("run", plat, dep, "--out", tmp_path / "local", "--quiet")
    assert local.returncode == 0, local.stderr[-3000:]
    across, here = rtts(tmp_path / "run", "10.0.0.1"), rtts(tmp_path / "local", "10.0.0.1")
    assert len(across) == len(here) == 20
    assert 1000 <= min(across) and max(across) < 1300, across
    for node in ("n1", "n2", "n3"):
        assert json.loads((tmp_path / "run" / "nodes" / f"{node}.json").read_text())


def test_a_killed_relay_is_reported_and_leaves_nothing_running(cluster, tmp_path):
    plat, dep = pingpong(tmp_path, rounds=100000, size=100)
    run = tmp_path / "run"
    spread = placement(tmp_path / "placement", {"10.0.0.1": "n1", "10.0.0.2": "n2",
                                                 "10.0.0.3": "n3", "10.0.0.4": "n3"})
    proc = subprocess.Popen(["salloc", "-N3", "--quiet", sys.executable, "-m", "tansiv.cli",
                             "run", plat, dep, "--out", run, "--launcher", "slurm",
                             "--placement", spread, "--quiet", "--until", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once the pings flow, the relay of n2 (the server's) is killed.
        log = run / "participants" / "10.0.0.1.log"
        end = time.monotonic() + 120
        while time.monotonic() < end and (not log.exists() or log.read_text().count("rtt") < 5):
            time.sleep(0.2)
        relay = relay_pid(run, "n2")
        os.kill(relay, signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = record(run)
    states = {p["name"]: (p["state"], p["detail"]) for p in rec["participants"]}
    assert states["10.0.0.2"][0] == "failed"
    assert "node n2" in states["10.0.0.2"][1] and "relay" in states["10.0.0.2"][1]
    assert "participant 10.0.0.2 failed: node n2" in err
    assert rec["status"] == "participant-failure"
    # The run folder is complete: its record, every log, the other nodes' reports.
    for node in ("n1", "n3"):
        assert json.loads((run / "nodes" / f"{node}.json").read_text())
    assert (run / "packets.jsonl").exists() and (run / "events.jsonl").exists()
    deadline = time.monotonic() + 10
    while leftovers(run) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftovers(run)


def test_a_cancelled_step_fails_its_participants_and_ends_the_run(cluster, tmp_path):
    """The relays' step cancelled (scancel JOB.STEP): every participant is behind a relay
    here, so all fail, named with their nodes, and the run ends; nothing is left running."""
    plat, dep = pingpong(tmp_path, rounds=100000, size=100)
    run = tmp_path / "run"
    proc = subprocess.Popen(["salloc", "-N3", "--quiet", sys.executable, "-m", "tansiv.cli",
                             "run", plat, dep, "--out", run, "--launcher", "slurm", "--quiet",
                             "--until", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        log = run / "participants" / "10.0.0.1.log"
        end = time.monotonic() + 120
        while time.monotonic() < end and (not log.exists() or log.read_text().count("rtt") < 5):
            time.sleep(0.2)
        steps = subprocess.run(["squeue", "--steps", "-h", "-o", "%i %j"], capture_output=True,
                               text=True, check=True).stdout.split("\n")
        (step,) = [line.split()[0] for line in steps if line.endswith(" tansiv-relays")]
        subprocess.run(["scancel", step], check=True)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = record(run)
    assert rec["status"] == "participant-failure"
    assert all(p["state"] == "failed" and f"node {p['node']}" in p["detail"]
               for p in rec["participants"]), rec["participants"]
    assert rec["simulated_ns"] < 30e9  # ended when the last participant was lost
    assert "failed: node n" in err
    deadline = time.monotonic() + 10
    while leftovers(run) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not leftovers(run)


@pytest.mark.parametrize("on_stall", ["fail", "remove"])
def test_a_stall_behind_a_relay_is_blamed_on_the_participant_that_stalled(cluster, tmp_path,
                                                                          on_stall):
    """Three participants on n2, behind its relay; 10.0.0.2 stops (SIGSTOP) at 50 ms. Only it
    is named (fail) or removed (remove: the other two run to their end); the relay ends by
    itself either way, its report written (not killed with its step)."""
    plat = topology.write(tmp_path / "platform.xml", "cluster", 3, 1_000_000, 125e6)
    hosts = topology.hosts(3)
    dep = deployment.write(tmp_path / "deployment.xml", [
        actor(hosts[0], "10.0.0.1", TESTS_BIN / "idle", "-n", "10.0.0.1", "--", 2_000_000),
        actor(hosts[1], "10.0.0.2", TESTS_BIN / "crasher", "-n", "10.0.0.2", "--", 50_000,
              "hang"),
        actor(hosts[2], "10.0.0.3", TESTS_BIN / "idle", "-n", "10.0.0.3", "--", 2_000_000)])
    here = placement(tmp_path / "placement", {a: "n2" for a in ADDRESSES[:3]})
    run = tmp_path / "run"
    r = salloc("run", plat, dep, "--out", run, "--launcher", "slurm", "--placement", here,
               "--quiet", "--stall-timeout", "2", "--on-stall", on_stall, timeout=300)
    rec = record(run)
    states = {p["name"]: (p["state"], p["detail"]) for p in rec["participants"]}
    if on_stall == "fail":
        assert r.returncode == 1, r.stderr[-3000:]
        assert re.search(r"participant 10\.0\.0\.2 stalled: did not reach the deadline",
                         rec["error"]), rec["error"]
        assert "10.0.0.1" not in rec["error"] and "10.0.0.3" not in rec["error"]
    else:
        assert r.returncode == 3, r.stderr[-3000:]
        assert states["10.0.0.2"][0] == "failed" and "stalled" in states["10.0.0.2"][1]
        assert states["10.0.0.1"][0] == states["10.0.0.3"][0] == "ended", states
        assert rec["simulated_ns"] >= 2e9
    report = json.loads((run / "nodes" / "n2.json").read_text())
    assert report["10.0.0.2"]["terminated"], report
    assert not leftovers(run)


def test_a_relays_hub_keeps_the_runs_bounds(cluster, tmp_path):
    """--round-bytes reaches the relays: a participant behind one that sends more is removed
    by its relay's hub (the coordinator hears of it as a member that failed), named with the
    bound; the other participant goes on."""
    plat = topology.write(tmp_path / "platform.xml", "cluster", 2, 100_000_000, 125e6)
    hosts = topology.hosts(2)
    dep = deployment.write(tmp_path / "deployment.xml", [
        actor(hosts[0], "10.0.0.1", TESTS_BIN / "burst", "-n", "10.0.0.1", "--", "send",
              "10.0.0.2", 1000, 2000, "stop"),
        actor(hosts[1], "10.0.0.2", TESTS_BIN / "idle", "-n", "10.0.0.2", "--", 500_000)])
    run = tmp_path / "run"
    r = salloc("run", plat, dep, "--out", run, "--launcher", "slurm", "--quiet",
               "--round-bytes", "1MiB", nodes=2)
    assert r.returncode == 3, r.stderr[-3000:]
    assert json.loads((run / "nodes" / "plan.json").read_text())["limits"]["round_bytes"] \
        == 1 << 20
    (failed,) = [e for e in map(json.loads, (run / "events.jsonl").read_text().splitlines())
                 if e["event"] == "failed"]
    assert failed["participant"] == "10.0.0.1"
    assert re.search(r"failed: client \d+ \(10\.0\.0\.1, pid \d+\): sent more than "
                     r"1048576 bytes in one round \(--round-bytes\)", failed["message"]), failed
    states = {p["name"]: p["state"] for p in record(run)["participants"]}
    assert states == {"10.0.0.1": "failed", "10.0.0.2": "ended"}


def test_only_the_relays_get_the_runs_secret(cluster, tmp_path):
    """The secret lets one join the run over TCP: relays need it, their participants (on a
    private Unix socket) do not, and do not get it."""
    tell = tmp_path / "tell.sh"
    tell.write_text(f'#!/bin/sh\necho "secret: ${{TANSIV_SECRET:-none}}"\n'
                    f'exec {TESTS_BIN / "idle"} "$@"\n')
    tell.chmod(0o755)
    plat = topology.write(tmp_path / "platform.xml", "cluster", 2, 1_000_000, 125e6)
    hosts = topology.hosts(2)
    dep = deployment.write(tmp_path / "deployment.xml", [
        actor(hosts[k], f"10.0.0.{k + 1}", tell, "-n", f"10.0.0.{k + 1}", "--", 10_000)
        for k in range(2)])
    run = tmp_path / "run"
    r = salloc("run", plat, dep, "--out", run, "--launcher", "slurm", "--quiet", nodes=2)
    assert r.returncode == 0, r.stderr[-3000:]
    for k in (1, 2):
        assert "secret: none" in (run / "participants" / f"10.0.0.{k}.log").read_text()


def relay_pid(run: Path, node: str) -> int:
    """The relay of node (its SLURMD_NODENAME) of this run."""
    plan = str((run / "nodes" / "plan.json").resolve())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tansiv.run.relay" in cmd and plan.encode() in cmd and \
                f"SLURMD_NODENAME={node}".encode() in env:
            return int(pid)
    raise AssertionError(f"no relay of {node} running")


# ---- the pipeline ----------------------------------------------------------------------------

def test_pipeline_runs_a_point_on_three_nodes(cluster, tmp_path):
    config = tmp_path / "nodes.yaml"
    config.write_text(yaml.safe_dump({"sweeps": {"spread": {
        "modes": ["tansiv"], "workload": "ping", "n": [3], "latency": ["1ms"],
        "nodes": [3]}}}))
    results = tmp_path / "results"
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--profile",
                        "profiles/slurm", "--configfile", str(config), "--config",
                        f"results={results}"], cwd=REPO, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-5000:]
    (exp,) = table(results, "experiments")
    assert exp["status"] == "ok" and exp["nodes"] == "3", exp
    rec = record(results / "runs" / exp["id"] / "run")
    nodes = {p["node"] for p in rec["participants"]} - {None}
    assert nodes and rec["options"]["launcher"] == "slurm"
    assert len(set(rec["options"]["nodes"].values())) >= 2
