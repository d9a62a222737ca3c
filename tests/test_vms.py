"""Real VMs: QEMU with tantap, the default guest, the launcher, and what guests can observe."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (REPO, TESTS_BIN, Peer, actor, guest_output, mesh, read_jsonl, tansiv,
                     two_hosts, vm, write_deployment)
from tansiv import paths
from tansiv.errors import TansivError
from tansiv.experiments import metrics
from tansiv.run.record import RunRecord
from tansiv.vm import build, launcher, netem

BOOT_S = 5  # virtual seconds until a guest is ready, with margin (measured: 4.2)


@pytest.fixture(scope="module")
def prepared():
    """QEMU, the guest image and the netem router's (built by setup.sh; cached), handed down
    to the tansiv commands the tests run, as the pipeline's build rules do."""
    vms = build.prepare(router=True)
    os.environ.update(vms.env())
    return vms


def two_vms(tmp_path: Path, latency: str, cmd1: str, cmd2: str = "sleep 1000"):
    p = two_hosts(tmp_path / "platform.xml", latency)
    d = write_deployment(tmp_path / "deployment.xml", vm("h1", "10.0.0.1", cmd1),
                         vm("h2", "10.0.0.2", cmd2))
    return p, d


def run_vms(platform, deployment, out, until_s, *extra):
    r = tansiv("run", platform, deployment, "--out", out, "--quiet", "--until", until_s,
               "--end-grace", "3", *extra, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "run.json").read_text())


# ---- latency ----------------------------------------------------------------------------------

PINGS = 10


@pytest.fixture(scope="module")
def ping_runs(prepared, tmp_path_factory):
    """VM 10.0.0.1 pings 10.0.0.2 over one link of 1, 10 and 100 ms (the 1 ms run three times:
    over shared-memory channels, the default, then over sockets, then without idle
    horizons)."""
    runs = {}
    for name, latency_s, extra in (("1ms", 0.001, ()), ("1ms-socket", 0.001, ("--transport",
                                                                            "socket")),
                                   ("1ms-no-horizons", 0.001, ("--idle-horizons", "off")),
                                   ("10ms", 0.01, ()), ("100ms", 0.1, ())):
        tmp = tmp_path_factory.mktemp(f"ping-{name}")
        p, d = two_vms(tmp, f"{latency_s * 1e3:g}ms", f"tping -c {PINGS} -i 20 -w 1 10.0.0.2")
        until = BOOT_S + (PINGS + 1) * (2 * latency_s + 0.02) + 1
        run_vms(p, d, tmp / "run", f"{until:.3f}", *extra)
        runs[name] = tmp / "run"
    return runs


def guest_events(run: Path, name: str) -> list:
    """The JSON lines a guest printed on its console."""
    log = (run / "participants" / f"{name}.log").read_text(errors="replace")
    return [json.loads(l) for l in log.splitlines() if l.startswith("{")]


@pytest.mark.parametrize("stay", [True, False])
def test_tping_stays_until_its_peers_last_ping(prepared, tmp_path, stay):
    """tping -a, the mesh's end barrier: 10.0.0.1, done with its own pings, stays up and
    answers until its peer's last ping has arrived; 10.0.0.2 starts 1 s late. Without -a,
    10.0.0.1 powers off first and those pings are lost: the case the barrier is for."""
    p, d = two_vms(tmp_path, "1ms", f"tping -c 3 -i 20 -w 0 {'-a 10000 ' if stay else ''}"
                   "10.0.0.2", "sleep 1; tping -c 3 -i 20 -w 0 10.0.0.1")
    run_vms(p, d, tmp_path / "run", f"{BOOT_S + 12}")
    late = guest_events(tmp_path / "run", "10.0.0.2")
    got = [e["event"] for e in late if e.get("peer") == "10.0.0.1"]
    done = [e["status"] for e in late if e["event"] == "done"]
    if stay:
        assert got == ["rtt"] * 3 and done == [0], late
    else:
        assert got == ["lost"] * 3 and done == [3], late
    assert [e["event"] for e in guest_events(tmp_path / "run", "10.0.0.1")
            if "peer" in e] == ["rtt"] * 3


@pytest.mark.parametrize("up", [True, False])
def test_tping_waits_for_a_peer_to_answer(prepared, tmp_path, up):
    """tping -u, the start barrier: 10.0.0.2 ignores pings for its first 2 s (as a peer still
    starting would); 10.0.0.1 probes it until it answers, then pings. Without -u, its first
    ping is lost."""
    ignore = "/proc/sys/net/ipv4/icmp_echo_ignore_all"
    p, d = two_vms(tmp_path, "1ms", f"tping -c 3 -i 20 -w 0 {'-u 10000 ' if up else ''}"
                   "10.0.0.2", f"echo 1 > {ignore}; sleep 2; echo 0 > {ignore}; sleep 1000")
    run_vms(p, d, tmp_path / "run", f"{BOOT_S + 12}", "--main", "10.0.0.1")
    events = guest_events(tmp_path / "run", "10.0.0.1")
    got = [e["event"] for e in events if e.get("peer") == "10.0.0.2"]
    done = [e["status"] for e in events if e["event"] == "done"]
    if up:
        assert got == ["rtt"] * 3 and done == [0], events
    else:  # the first waits its 2 s timeout, by which time the peer answers again
        assert got == ["lost", "rtt", "rtt"] and done == [3], events


def test_ping_rtt_is_the_model_plus_a_constant(ping_runs):
    excess = {}
    for name in ("1ms", "10ms", "100ms"):
        matrix = metrics.rtt_matrix(ping_runs[name])
        median, model, n = matrix[("10.0.0.1", "10.0.0.2")]
        assert n == PINGS
        excess[name] = median - model
    print("RTT excess over the model (us):", {k: round(v / 1e3, 3) for k, v in excess.items()})
    assert all(0 < e < 200_000 for e in excess.values()), excess
    assert max(excess.values()) - min(excess.values()) <= 10_000, excess


def test_every_frame_is_delivered_when_simgrid_completes_it(ping_runs):
    for name in ("1ms", "10ms", "100ms"):
        packets = read_jsonl(ping_runs[name] / "packets.jsonl")
        assert len(packets) == 2 * (PINGS + 1)
        assert all(p["deliver_ns"] == p["complete_ns"] for p in packets)


def test_vm_runs_are_deterministic(ping_runs):
    """No wall-clock input reaches a guest: the same run gives the same guest output and the
    same packets at the same nanoseconds, whichever way the VMs speak to the hub."""
    def rtts(run):
        return [r["rtt_ns"] for r in metrics.rtt_rows(RunRecord.load(run))]
    assert rtts(ping_runs["1ms"]) == rtts(ping_runs["1ms-socket"])
    assert len(rtts(ping_runs["1ms"])) == PINGS + 1
    assert ((ping_runs["1ms"] / "packets.jsonl").read_bytes() ==
            (ping_runs["1ms-socket"] / "packets.jsonl").read_bytes())
    transports = [RunRecord.load(ping_runs[name]).participants[0].transport
                  for name in ("1ms", "1ms-socket")]
    assert transports == ["shm", "socket"]


def test_idle_horizons_change_nothing_but_the_rounds(ping_runs):
    """Idle VMs sit out rounds (each halted guest says when its next timer is due): the same
    guest output and packets, to the byte and the nanosecond, in fewer rounds."""
    on, off = ping_runs["1ms"], ping_runs["1ms-no-horizons"]
    assert (on / "packets.jsonl").read_bytes() == (off / "packets.jsonl").read_bytes()
    assert guest_output(on) == guest_output(off)
    assert len(guest_output(on)) == 2
    r_on, r_off = RunRecord.load(on), RunRecord.load(off)
    print(f"rounds: {r_on.rounds} with idle horizons ({r_on.rounds_sat_out} sat out), "
          f"{r_off.rounds} without; sync wall {r_on.sync_wall_s:.1f} s / {r_off.sync_wall_s:.1f} s")
    assert r_on.options["idle_horizons"] == "on" and r_off.options["idle_horizons"] == "off"
    assert r_off.rounds_sat_out == 0 < r_on.rounds_sat_out
    assert r_on.rounds < r_off.rounds


def test_a_16_vm_mesh_is_the_same_with_and_without_idle_horizons(prepared, tmp_path):
    """16 VMs pinging each other in turn (most idle at any time, each with its own timers):
    the same guest output and packets with idle horizons as with every VM in every round."""
    plat, dep, opts = mesh(tmp_path, n=16, latency_s=0.001)
    runs = {}
    for horizons in ("on", "off"):
        t0 = time.monotonic()
        r = tansiv("run", plat, dep, "--out", tmp_path / horizons, *opts, "--idle-horizons",
                   horizons, timeout=1200)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[horizons] = RunRecord.load(tmp_path / horizons)
        print(f"idle horizons {horizons}: {time.monotonic() - t0:.0f} s of wall time, "
              f"{runs[horizons].rounds} rounds, {runs[horizons].rounds_sat_out} sat out")
    assert guest_output(tmp_path / "on") == guest_output(tmp_path / "off")
    assert len(guest_output(tmp_path / "on")) == 16
    assert ((tmp_path / "on" / "packets.jsonl").read_bytes() ==
            (tmp_path / "off" / "packets.jsonl").read_bytes())
    assert len(read_jsonl(tmp_path / "on" / "packets.jsonl")) == 16 * 15 * 4 * 2
    assert runs["on"].rounds_sat_out > 0


def test_rtt_report(ping_runs):
    r = tansiv("report", "rtt", ping_runs["10ms"])
    assert r.returncode == 0, r.stderr
    assert "measured RTT, median (ms)" in r.stdout and "10.0.0.1 :" in r.stdout
    assert " 20.0020" in r.stdout  # the model: 2 x (10 ms + 122 B at 125 MB/s)


# ---- timing transparency ----------------------------------------------------------------------

PROBE = "tprobe --loop-ms 300 --windows 10 --sleeps 5"


def probe_result(log):
    found = [r for r in metrics.json_lines(log) if r["event"] == "probe"]
    assert len(found) == 1, f"no probe result in {log}"
    return found[0]


def test_probe_under_tansiv_sees_no_more_than_the_uncoupled_guest(prepared, tmp_path):
    # The other VM computes without a pause: the probe's VM waits for it at every barrier.
    p, d = two_vms(tmp_path, "1ms", PROBE, "while :; do :; done")
    info = run_vms(p, d, tmp_path / "run", "8")
    coupled = probe_result(tmp_path / "run" / "participants" / "10.0.0.1.log")
    held = next(x["held_s"] for x in info["participants"] if x["name"] == "10.0.0.1")
    # Held at thousands of barriers (one per ms of its run) while the other VM finished its
    # slice: a probe that saw none of it saw the pauses for real.
    assert held >= 0.05, f"the coordinator held the VM only {held} s"

    # The same guest alone (mode none): same command line, no coordinator, a NIC leading
    # nowhere; the other VM is not started.
    r = tansiv("none", p, d, "--out", tmp_path / "alone", "--main", "10.0.0.1", timeout=300)
    assert r.returncode == 0, r.stderr
    record = RunRecord.load(tmp_path / "alone")
    assert record.mode == "none" and [x.name for x in record.participants] == ["10.0.0.1"]
    alone = probe_result(tmp_path / "alone" / "participants" / "10.0.0.1.log")
    print(f"held {held:.3f} s; coupled {json.dumps(coupled)}; alone {json.dumps(alone)}")
    for clock in ("monotonic", "realtime", "tsc"):
        assert coupled[clock]["max_gap_ns"] <= 1.1 * alone[clock]["max_gap_ns"], clock
        assert coupled[clock]["gaps_over_1ms"] == 0
    for req, s in coupled["sleep"].items():
        assert s["max_overshoot_ns"] <= 1.1 * alone["sleep"][req]["max_overshoot_ns"], req
    assert coupled["tsc"]["rate_spread"] <= 1.1 * alone["tsc"]["rate_spread"] + 1e-9


# ---- the coordinator going away ---------------------------------------------------------------

def start_idle_vms(tmp_path):
    p, d = two_vms(tmp_path, "1ms", "sleep 1000", "sleep 1000")
    sock = tmp_path / "hub.sock"
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", p, d, "--out", out,
                             "--quiet", "--socket", sock], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    logs = [out / "participants" / f"10.0.0.{k}.log" for k in (1, 2)]
    deadline = time.monotonic() + 180
    while not all(l.exists() and '"ready"' in l.read_text() for l in logs):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the VMs did not boot"
        time.sleep(0.5)
    qemus = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
             and str(sock).encode() in _cmdline(pid) and b"qemu-system" in _cmdline(pid)]
    assert len(qemus) == 2
    return proc, out, logs, qemus


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_gone(pids, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not any(Path(f"/proc/{p}").exists() and b"qemu" in _cmdline(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


def test_coordinator_killed_ends_the_vms(prepared, tmp_path):
    # Two ways end them, whichever comes first: SIGTERM from the kernel (PDEATHSIG of the
    # participants tansiv starts) and tantap seeing the hub's socket close (tested alone
    # below).
    proc, out, logs, qemus = start_idle_vms(tmp_path)
    proc.kill()
    proc.wait()
    assert wait_gone(qemus), "QEMU outlived its coordinator"


def test_vm_stops_when_its_hub_goes_away(prepared, tmp_path):
    """A VM whose coordinator is gone (its socket closed) stops by itself: here no signal can
    stop it, its hub being a test's Peer and the VM in a session of its own."""
    peer = Peer(tmp_path / "hub.sock")
    log = tmp_path / "vm.log"
    with open(log, "wb") as out:
        qemu = subprocess.Popen(
            [str(paths.bindir() / "tansiv-vm"), peer.path, "--cmd", "sleep 1000"], stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, TANSIV_ADDRESS="10.0.0.1", TANSIV_PEERS="10.0.0.1"))
    try:
        peer.srv.settimeout(60)
        peer.accept()
        assert peer.hello()["src"] == "10.0.0.1"
        start = peer.deadline  # its snapshot's date
        slices = peer.serve(1_000_000, at_barrier=lambda _p, T, _s: T < start + 50_000_000)
        assert len(slices) == 50  # it ran 50 ms of virtual time with the Peer as its hub
        peer.close()
        qemu.wait(timeout=30)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
    assert "tantap: lost the coordinator: stopping the VM" in log.read_text(), \
        log.read_text()[-500:]


def test_sigterm_ends_the_run_and_reports_it(prepared, tmp_path):
    proc, out, logs, qemus = start_idle_vms(tmp_path)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert wait_gone(qemus)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "terminated" and info["simulated_ns"] > (BOOT_S - 1) * 1e9
    for log in logs:
        assert "the simulation ended: stopping the VM" in log.read_text()


# ---- the QEMU build, the example, the baseline ------------------------------------------------

def test_qemu_build_is_cached(prepared):
    qemu = prepared.qemu
    before = (qemu / "build.log").stat().st_mtime_ns
    r = subprocess.run([REPO / "csrc" / "qemu" / "build-qemu.sh"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == str(qemu)
    assert "building" not in r.stderr
    assert (qemu / "build.log").stat().st_mtime_ns == before


def test_qemus_example_prints_the_rtt_matrix(prepared, tmp_path):
    ex = REPO / "examples" / "qemus"
    r = tansiv("run", ex / "platform.xml", ex / "deployment.xml", "--out", tmp_path / "run",
               "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr
    matrix = metrics.rtt_matrix(tmp_path / "run")
    assert len(matrix) == 12
    for (src, dst), (median, model, n) in matrix.items():
        assert n == 5 and 0 < median - model < 500_000, (src, dst, median, model)
    r = tansiv("report", "rtt", tmp_path / "run")
    assert r.stdout.count("10.0.0.4 :") == 3


@pytest.mark.parametrize("where", ["router", "namespace"])
def test_netem_baseline(prepared, tmp_path, where):
    """The same ping on a bridge shaped by real tc netem: every round trip lasts at least the
    model (netem delays, it never hurries), and the tc commands are kept with the run."""
    if where == "namespace":
        ok, why = netem.namespace_support()
        if not ok:
            pytest.skip(f"netem in a namespace of this host: {why}")
    p, d = two_vms(tmp_path, "10ms", f"tping -c {PINGS} -i 20 -w 1 10.0.0.2", "sleep 1000")
    r = tansiv("netem", p, d, "--out", tmp_path / "run", "--timeout", "300", "--where", where,
               "--main", "10.0.0.1", timeout=600)
    assert r.returncode == 0, r.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["netem"]["where"] == where and run["total_wall_s"] < 200
    shaping = (tmp_path / "run" / "netem-shaping.sh").read_text()
    assert shaping.count(" netem delay 10000.000us ") == 2
    median, model, n = metrics.rtt_matrix(tmp_path / "run")[("10.0.0.1", "10.0.0.2")]
    print(f"netem ({where}): median RTT {median / 1e6:.4f} ms, model {model / 1e6:.4f} ms")
    assert n == PINGS and model < median < model + 5_000_000


def test_netem_router_failure_is_reported(prepared, tmp_path, monkeypatch):
    """A router that cannot start (here: a port it cannot shape) is an error that quotes its
    console, whose log stays; its QEMU and sockets are gone."""
    monkeypatch.setattr(netem, "shaping_commands",
                        lambda vms, table, dev_of, impair: [["tc", "qdisc", "add", "dev",
                                                             "nosuchport", "root", "netem"]])
    router = netem.RouterNetwork(["10.0.0.1", "10.0.0.2"], None, prepared,
                                 tmp_path / "router.log")
    with pytest.raises(TansivError, match="router failed to start"):
        with router:
            pass
    assert "shaping.sh failed" in (tmp_path / "router.log").read_text()
    assert router.proc.returncode is not None and not router.dir.exists()


# ---- the full Debian image --------------------------------------------------------------------

def test_debian_image_is_reachable_over_ssh(prepared, tmp_path):
    """debootstrap image (cached), overlay, cloud-init seed: SSH through the management
    network answers, with the hostname and the simulated network's address cloud-init set."""
    port = launcher.free_port()
    log = open(tmp_path / "console.log", "w")
    qemu = subprocess.Popen([Path(sys.executable).parent / "tansiv-vm", "--image", "debian",
                             "--mode", "none", "--address", "10.0.0.7", "--name", "deb7",
                             "--ssh-port", str(port), "--workdir", tmp_path / "vm"],
                            stdout=log, stderr=subprocess.STDOUT)
    key = str(launcher.default_ssh_key()).removesuffix(".pub")
    ssh = ["ssh", "-q", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
           "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-p", str(port), "-i", key,
           "root@127.0.0.1", "hostname; ip -4 -o addr show; cloud-init status"]
    try:
        deadline = time.monotonic() + 600
        while True:
            assert qemu.poll() is None, (tmp_path / "console.log").read_text()[-2000:]
            r = subprocess.run(ssh, capture_output=True, text=True, timeout=60)
            # ssh says 255 when it cannot connect; cloud-init status says 2 for a degraded
            # done (deprecation notices), which is done all the same.
            if r.returncode != 255 and "status: done" in r.stdout:
                break
            assert time.monotonic() < deadline, "no SSH after 600 s"
            time.sleep(5)
        assert r.stdout.splitlines()[0] == "deb7"
        assert "inet 10.0.0.7/24" in r.stdout and "inet 10.0.2.15/24" in r.stdout
    finally:
        qemu.kill()
        qemu.wait()
    assert (tmp_path / "vm" / "disk.qcow2").exists()


def test_frames_for_a_nic_that_takes_none_wait_up_to_a_bound(prepared, tmp_path):
    """A process floods a booting VM, whose NIC takes no frame before its driver is up:
    tantap keeps 4096 of them, then drops with one warning, instead of growing."""
    p = two_hosts(tmp_path / "p.xml", "1ms")
    d = write_deployment(tmp_path / "d.xml", vm("h1", "10.0.0.1", "sleep 1"),
                         actor("h2", "10.0.0.2", TESTS_BIN / "burst", "-n", "10.0.0.2", "--",
                               "send", "10.0.0.1", 5000, 100, "stop"))
    out = tmp_path / "run"
    # Booting (from its snapshot, its driver would be up).
    r = tansiv("run", p, d, "--out", out, "--quiet", "--until", "2", "--end-grace", "3",
               "--cold-boot", timeout=600)
    assert r.returncode == 0, r.stderr
    log = (out / "participants" / "10.0.0.1.log").read_text(errors="replace")
    assert log.count("the NIC takes no frames and 4096 wait") == 1, log[-2000:]
