"""Stalled and hostile participants, bounds, a private run, and bad input: each fault the
hardening review found, with what tansiv does about it now (README, Hardening)."""

import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import struct
import textwrap
import threading
import time
from pathlib import Path

import pytest

from helpers import REPO, TESTS_BIN, actor, read_jsonl, tansiv, two_hosts, write_deployment
from tansiv import leftovers
from tansiv.experiments import topology
from tansiv.run import protocol
from tansiv.run.hub import FAILED, Hub, HubError, Relay, str_to_addr
from tansiv.vm.qemu import opt

CRASHER, IDLE, BURST = TESTS_BIN / "crasher", TESTS_BIN / "idle", TESTS_BIN / "burst"
MS = 1_000_000


def two_programs(tmp_path, latency: str, first, second):
    """Two hosts whose route has this latency, and a deployment: 10.0.0.1 on h1 runs first,
    10.0.0.2 on h2 second, each (program, its arguments after its vsg options)."""
    p = two_hosts(tmp_path / "p.xml", latency)
    actors = [actor(f"h{k}", f"10.0.0.{k}", program, "-n", f"10.0.0.{k}", "--", *args)
              for k, (program, *args) in enumerate((first, second), 1)]
    return p, write_deployment(tmp_path / "d.xml", *actors)


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def events(out: Path) -> list:
    return read_jsonl(out / "events.jsonl")


# ---- participants that stall ------------------------------------------------------------------

def stalling_run(tmp_path, how, *extra):
    """10.0.0.2 stalls at 50 ms (how: hang = SIGSTOP, block = every signal blocked) while
    10.0.0.1 idles to 2 s."""
    p, d = two_programs(tmp_path, "1ms", (IDLE, 2_000_000),
                        (CRASHER, 50_000, how))
    out = tmp_path / "run"
    t0 = time.monotonic()
    r = tansiv("run", p, d, "--out", out, "--quiet", "--stall-timeout", "2", *extra)
    return r, out, time.monotonic() - t0


@pytest.mark.parametrize("how", ["hang", "block"])
def test_a_stalled_participant_fails_the_run_naming_it(tmp_path, how):
    r, out, wall = stalling_run(tmp_path, how)
    assert r.returncode == 1, r.stderr
    info = run_json(out)
    assert info["status"] == "error"
    assert re.search(r"participant 10\.0\.0\.2 stalled: did not reach the deadline \d+ ns in "
                     r"\d+ s of wall time \(pid \d+, crasher\)", info["error"]), info["error"]
    assert wall < 30  # 2 s of bound, then the end of the run (stopped processes are killed)
    assert (out / "participants" / "10.0.0.2.log").exists()


def test_a_stalled_participant_can_be_removed_instead(tmp_path):
    r, out, _ = stalling_run(tmp_path, "hang", "--on-stall", "remove")
    assert r.returncode == 3, r.stderr  # a participant failed; the run went on
    info = run_json(out)
    states = {p["name"]: (p["state"], p["detail"]) for p in info["participants"]}
    assert states["10.0.0.1"][0] == "ended"
    assert states["10.0.0.2"][0] == "failed" and "stalled" in states["10.0.0.2"][1]
    assert info["simulated_ns"] >= 2e9  # the other one reached its end


def test_vsg_stop_from_a_signal_handler_while_held_at_a_barrier(tmp_path):
    """10.0.0.2's SIGINT handler calls vsg_stop while the library synchronizes (10.0.0.1 is
    stopped, so the barrier holds): the call returns at once (the stop takes effect when the
    synchronization returns) instead of spinning on the library's lock forever."""
    p, d = two_programs(tmp_path, "1ms", (CRASHER, 1000, "hang"),
                        (CRASHER, 0, "sigint"))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", p, d, "--out", out,
                             "--quiet", "--stall-timeout", "4", "--on-stall", "remove"],
                            stderr=subprocess.PIPE, text=True)
    pid, t0 = None, time.monotonic()
    while pid is None and time.monotonic() - t0 < 20:
        time.sleep(0.1)
        joined = [e for e in (read_jsonl(out / "events.jsonl")
                              if (out / "events.jsonl").exists() else [])
                  if e["event"] == "joined" and e["participant"] == "10.0.0.2"]
        if joined:
            pid = int(re.search(r"pid (\d+)", joined[0]["message"]).group(1))
    assert pid, "10.0.0.2 never joined"
    time.sleep(1.0)  # 10.0.0.1 stopped at 1 ms: 10.0.0.2 waits in its synchronization
    os.kill(pid, signal.SIGINT)
    err = proc.communicate(timeout=90)[1]
    assert "stopped" in (out / "participants" / "10.0.0.2.log").read_text(), err
    states = {p["name"]: (p["state"], p["detail"]) for p in run_json(out)["participants"]}
    assert states["10.0.0.2"] == ("crashed", "exited with status 5"), states


# ---- participants that misbehave --------------------------------------------------------------

def test_a_participant_over_its_bytes_per_round_is_removed_and_the_run_goes_on(tmp_path):
    p, d = two_programs(tmp_path, "100ms", (BURST, "send", "10.0.0.2", 1000, 2000, "stop"),
                        (IDLE, 500_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--round-bytes", "1MiB")
    assert r.returncode == 3, r.stderr
    failed = [e for e in events(out) if e["event"] == "failed"]
    assert len(failed) == 1 and failed[0]["participant"] == "10.0.0.1"
    assert "sent more than 1048576 bytes in one round" in failed[0]["message"]
    states = {p["name"]: p["state"] for p in run_json(out)["participants"]}
    assert states == {"10.0.0.1": "failed", "10.0.0.2": "ended"}


# The coordinator's memory while a participant floods: the hub keeps at most --round-packets
# of its frames before removing it (a few MiB); the whole process peaked at 87 MiB here.
FLOOD_RSS_CEILING_MIB = 150

RSS_OF_THE_RUN = """
import resource, runpy, sys
sys.argv = ["tansiv", *sys.argv[1:]]
try:
    runpy.run_module("tansiv.cli", run_name="__main__")
finally:
    print(f"maxrss_kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


def test_a_million_empty_frames_in_one_round_remove_their_sender(tmp_path):
    """Zero-byte frames weigh nothing against --round-bytes, but each costs the hub a slot:
    the count bound removes the sender, naming it, its frames of the round discarded; the
    coordinator stays under a stated memory ceiling and the other participant runs on."""
    p, d = two_programs(tmp_path, "1000s", (BURST, "send", "10.0.0.2", 1_000_000, 0, "stop"),
                        (IDLE, 500_000))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", RSS_OF_THE_RUN, "run", p, d, "--out", out,
                        "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    (failed,) = [e for e in events(out) if e["event"] == "failed"]
    assert failed["participant"] == "10.0.0.1"
    assert ("sent more than 262144 packets in one round (--round-packets): removed, its "
            "262144 packets of the round discarded") in failed["message"], failed
    assert run_json(out)["packets_delivered"] == 0
    states = {p["name"]: p["state"] for p in run_json(out)["participants"]}
    assert states == {"10.0.0.1": "failed", "10.0.0.2": "ended"}
    rss_mib = int(re.search(r"maxrss_kib (\d+)", r.stderr).group(1)) / 1024
    print(f"coordinator: {rss_mib:.0f} MiB at most")
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's shadow memory is its own
        assert rss_mib < FLOOD_RSS_CEILING_MIB, rss_mib


@pytest.mark.parametrize("bound,value,message", [
    ("--inflight-packets", "50", "has more than 50 packets in flight (--inflight-packets)"),
    ("--inflight-bytes", "40000", "has more than 40000 bytes in flight (--inflight-bytes)"),
])
def test_packets_in_flight_are_bounded_per_participant(tmp_path, bound, value, message):
    """Frames the hub holds until they are delivered (here into a slow link, 10 kB/s: 1 kB
    takes 100 ms) hold its memory: past the bound, their sender is removed."""
    p = two_hosts(tmp_path / "p.xml", "1ms", "10kBps")
    d = write_deployment(tmp_path / "d.xml",
                         actor("h1", "10.0.0.1", BURST, "-n", "10.0.0.1", "--", "send",
                               "10.0.0.2", 200, 1000, "stop"),
                         actor("h2", "10.0.0.2", IDLE, "-n", "10.0.0.2", "--", 2_000_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--force", "100us", bound, value)
    assert r.returncode == 3, r.stderr
    (failed,) = [e for e in events(out) if e["event"] == "failed"]
    assert failed["participant"] == "10.0.0.1" and message in failed["message"], failed


@pytest.mark.parametrize("dst,why", [("10.0.0.1", "sent to its own address"),
                                     ("0.0.0.0", "unknown destination 0.0.0.0"),
                                     ("255.255.255.255", "unknown destination 255.255.255.255")])
def test_sends_to_oneself_or_to_no_one_are_dropped_and_recorded(tmp_path, dst, why):
    p, d = two_programs(tmp_path, "1ms", (BURST, "send", dst, 2, 100, "stop"),
                        (IDLE, 20_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    packets = read_jsonl(out / "packets.jsonl")
    assert len(packets) == 2 and all(p["dropped"] == why and p["dst"] == dst for p in packets)
    assert run_json(out)["packets_dropped"] == 2


def test_a_warning_repeated_without_end_is_written_a_bounded_number_of_times(tmp_path):
    """300 packets sent to oneself: 300 drops in packets.jsonl, but their warning only 100
    times in coordinator.log and on stderr, then once to say the rest are not written."""
    p, d = two_programs(tmp_path, "1ms", (BURST, "send", "10.0.0.1", 300, 10, "stop"),
                        (IDLE, 20_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(out / "packets.jsonl")) == 300
    for text in ((out / "coordinator.log").read_text(), r.stderr):
        said = [line for line in text.splitlines() if "dropped a 10-byte packet" in line]
        assert len(said) == 101, len(said)
        assert said[-1].endswith("[said 100 times: no more of these are written]")


def test_a_participant_gone_between_hello_and_the_first_round_is_not_running(tmp_path):
    """A program that says HELLO and exits at once, while the other one connects late: when
    the run starts it is already gone, and --main on it ends the run at once."""
    quick = tmp_path / "quick.py"
    quick.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""\
        import socket, sys
        sys.path.insert(0, {str(REPO)!r})
        from tansiv.run import protocol
        from tansiv.run.hub import str_to_addr
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sys.argv[1])
        s.sendall(protocol.Frame(protocol.HELLO, src=str_to_addr("10.0.0.2"),
                                 payload=protocol.pack_hello()).pack())
        """))
    quick.chmod(0o755)
    late = tmp_path / "late.sh"
    late.write_text(f"#!/bin/sh\nsleep 1\nexec {IDLE} \"$@\"\n")
    late.chmod(0o755)
    p = two_hosts(tmp_path / "p.xml", "1ms")
    d = write_deployment(tmp_path / "d.xml",
                         actor("h1", "10.0.0.1", late, "-n", "10.0.0.1", "--", 60_000_000),
                         actor("h2", "10.0.0.2", quick))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--main", "10.0.0.2", timeout=60)
    # 10.0.0.1 is told END before its first slice, which idle reports as an error (exit 1).
    assert r.returncode == 3, r.stderr
    assert "the main participants ended" in r.stderr
    info = run_json(out)
    states = {p["name"]: p["state"] for p in info["participants"]}
    assert states["10.0.0.2"] == "ended"
    assert info["simulated_ns"] == 0 and info["rounds"] == 0  # not the 60 s of the other
    assert any(e["event"] == "left" and e["participant"] == "10.0.0.2" for e in events(out))


# ---- the hub's doors --------------------------------------------------------------------------

def hello_proof(secret, hub_nonce, nonce, src, role):
    """The HELLO's proof, as tansiv-protocol.h defines it, written again here in Python: the
    hub's C must agree with it."""
    data = b"tansiv hello" + hub_nonce + nonce + struct.pack("<IH", src, role)
    return hmac.new(secret, data, hashlib.sha256).digest()


def welcome_proof(secret, hub_nonce, nonce):
    return hmac.new(secret, b"tansiv welcome" + nonce + hub_nonce, hashlib.sha256).digest()


class Raw:
    """A raw protocol client. Over TCP the hub sends its CHALLENGE once it accepted the
    connection (in one of its calls): read_challenge then."""

    def __init__(self, address: str, name="10.0.0.1"):
        self.challenge = None
        if address.startswith("tcp:"):
            host, port = address[4:].rsplit(":", 1)
            self.sock = socket.create_connection((host, int(port)))
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(address)
        self.sock.settimeout(5)
        self.addr = str_to_addr(name)

    def read_challenge(self):
        f = self.recv()
        assert f.type == protocol.CHALLENGE and len(f.payload) == protocol.NONCE_SIZE
        self.challenge = f.payload

    def recv(self):
        head = self.sock.recv(protocol.HEADER_SIZE, socket.MSG_WAITALL)
        if not head:
            raise EOFError
        f = protocol.parse_header(head)
        f.payload = self.sock.recv(f.length, socket.MSG_WAITALL) if f.length else b""
        return f

    def hello(self, secret=None, role=protocol.ROLE_PROCESS, **kw):
        """With secret (over TCP): the proof that it knows it."""
        if secret is not None:
            kw["nonce"] = nonce = os.urandom(protocol.NONCE_SIZE)
            kw["proof"] = hello_proof(secret, self.challenge, nonce, self.addr, role)
            self.nonce = nonce
        self.sock.sendall(protocol.Frame(protocol.HELLO, src=self.addr,
                                         payload=protocol.pack_hello(role=role, **kw)).pack())


def hub_events(hub):
    return [(e.kind, e.message) for e in hub.events()]


def test_tcp_hub_listens_on_loopback_by_default_and_wants_proof_of_the_runs_secret():
    """The secret never crosses the network: a client proves it knows it by an HMAC of the
    hub's fresh nonce (a stranger, or one replaying a proof made for another nonce, is
    refused), and the hub proves it knows it too (WELCOME)."""
    secret = os.urandom(protocol.SECRET_SIZE)
    with Hub("tcp::0") as hub:
        assert hub.address.startswith("tcp:127.0.0.1:")
        hub.set_secret(secret)
        stranger, member = Raw(hub.address, "10.0.0.9"), Raw(hub.address, "10.0.0.1")
        replayer = Raw(hub.address, "10.0.0.1")
        assert hub.accept(1, 100) == 0  # accepted: their CHALLENGEs sent
        for c in (stranger, member, replayer):
            c.read_challenge()
        assert len({stranger.challenge, member.challenge, replayer.challenge}) == 3
        stranger.hello(pid=1, secret=os.urandom(protocol.SECRET_SIZE))
        member.hello(pid=2, secret=secret)
        replayer.sock.sendall(protocol.Frame(  # the member's HELLO, word for word
            protocol.HELLO, src=member.addr, payload=protocol.pack_hello(
                pid=2, nonce=member.nonce, proof=hello_proof(
                    secret, member.challenge, member.nonce, member.addr,
                    protocol.ROLE_PROCESS))).pack())
        assert hub.accept(1, 2000) == 1
        assert hub.client_address(0) == "10.0.0.1"
        refused = [m for k, m in hub_events(hub) if k == FAILED]
        assert len(refused) == 2 and all("HELLO without proof of the run's secret" in m
                                          for m in refused), refused
        welcome = member.recv()
        assert (welcome.type, welcome.payload) == (
            protocol.WELCOME, welcome_proof(secret, member.challenge, member.nonce))
        for c in (stranger, replayer):
            with pytest.raises(EOFError):
                c.recv()


def test_a_hub_without_a_secret_refuses_tcp_clients():
    with Hub("tcp::0") as hub:
        c = Raw(hub.address)
        assert hub.accept(1, 100) == 0
        c.read_challenge()
        c.hello(secret=bytes(protocol.SECRET_SIZE))
        assert hub.accept(1, 1000) == 0
        (kind, message), = hub_events(hub)
        assert kind == FAILED and "to a hub without a secret: refused" in message


def test_a_relay_refuses_a_coordinator_that_does_not_know_the_secret(tmp_path):
    """A fake coordinator (it takes any HELLO) cannot make a relay serve it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def fake():
        conn, _ = listener.accept()
        conn.sendall(protocol.Frame(protocol.CHALLENGE, payload=os.urandom(16)).pack())
        conn.recv(protocol.HEADER_SIZE + len(protocol.pack_hello()), socket.MSG_WAITALL)
        conn.sendall(protocol.Frame(protocol.WELCOME, payload=os.urandom(32)).pack())
        time.sleep(1)
        conn.close()

    threading.Thread(target=fake, daemon=True).start()
    with Hub(str(tmp_path / "local.sock")) as local:
        with pytest.raises(HubError) as e:
            Relay(local, f"tcp:127.0.0.1:{port}", os.urandom(protocol.SECRET_SIZE))
    assert "did not prove it knows the run's secret" in str(e.value)


def test_connections_without_hello_are_bounded(tmp_path):
    """More than 64 connections that say nothing: the oldest are closed as new ones come
    (a participant says HELLO at once), so descriptors stay bounded and the last comer, a
    real participant, still joins."""
    with Hub(str(tmp_path / "hub.sock")) as hub:
        idle = [Raw(hub.address) for _ in range(100)]
        assert hub.accept(1, 300) == 0
        closed = []
        for k, c in enumerate(idle):
            c.sock.settimeout(0.05)
            try:
                if c.sock.recv(16) == b"":
                    closed.append(k)
            except socket.timeout:
                pass
        assert closed == list(range(36)), closed  # the oldest
        fds = len(os.listdir("/proc/self/fd"))
        assert fds < 100 + 64 + 40, fds  # the test's own 100 sockets, the hub's 64
        member = Raw(hub.address, "10.0.0.1")
        member.hello()
        assert hub.accept(1, 2000) == 1


def test_a_tcp_run_gives_its_participants_the_secret_by_environment(tmp_path):
    p, d = two_programs(tmp_path, "1ms", (BURST, "send", "10.0.0.2", 3, 100, "stop"),
                        (BURST, "recv", 3))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--socket", "tcp::0")
    assert r.returncode == 0, r.stderr
    secret = out / "secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{32}\n", secret.read_text())
    assert secret.read_text().strip() not in json.dumps(run_json(out))  # not in the command


def test_a_connection_that_never_says_hello_is_closed(tmp_path):
    with Hub(str(tmp_path / "hub.sock")) as hub:
        silent = Raw(hub.address)
        t0, said = time.monotonic(), []
        while time.monotonic() - t0 < 13 and not said:
            hub.accept(1, 500)
            said = [m for k, m in hub_events(hub) if k == FAILED]
        assert said and "no HELLO within 10 s of connecting" in said[0], said
        silent.sock.settimeout(1)
        assert silent.sock.recv(16) == b""
        assert 9.5 < time.monotonic() - t0 < 13


def test_a_hello_after_the_start_is_refused(tmp_path):
    with Hub(str(tmp_path / "hub.sock")) as hub:
        early = Raw(hub.address, "10.0.0.9")  # connects, says nothing yet
        member = Raw(hub.address, "10.0.0.1")
        member.hello()
        assert hub.accept(1, 2000) == 1  # the run starts
        assert early.sock.recv(16) == b""  # closed: it will not be part of the run
        with pytest.raises(OSError):
            early.hello()
        hub.goto(MS)
        member.sock.recv(64)
        assert hub.client_count() == 1
        messages = [m for k, m in hub_events(hub) if k == FAILED]
        assert any("the run started before its HELLO" in m for m in messages), messages


def test_out_of_descriptors_the_hub_waits_instead_of_spinning(tmp_path):
    """With its descriptors used up, a pending connection cannot be accepted: the hub must
    sleep (not spin on epoll) and accept it once one is free."""
    script = textwrap.dedent(f"""\
        import os, resource, socket, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tansiv.run import protocol
        from tansiv.run.hub import Hub, str_to_addr
        hub = Hub({str(tmp_path / "hub.sock")!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        hog = []
        try:
            while True:
                hog.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        print("ready", flush=True)
        sys.stdin.readline()  # the client connected and said HELLO
        cpu0 = time.process_time()
        n = hub.accept(1, 1500)
        busy = time.process_time() - cpu0
        for fd in hog[:4]:
            os.close(fd)
        n = hub.accept(1, 3000)
        print(f"{{busy:.3f}} {{n}}", flush=True)
        """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        c = Raw(str(tmp_path / "hub.sock"))
        c.hello()
        child.stdin.write("go\n")
        child.stdin.flush()
        busy, n = child.stdout.readline().split()
    finally:
        child.kill()
    assert float(busy) < 0.5, busy  # spinning would burn the whole 1.5 s
    assert int(n) == 1


def test_many_participants_fit_whatever_the_soft_limit_on_open_files(tmp_path):
    """60 participants with --pcap need more than 64 descriptors (a socket and a capture
    each): tansiv raises its soft limit to the hard one instead of failing."""
    import resource
    n = 60
    p = topology.write(tmp_path / "p.xml", "star", n, 1_000_000, 125e6)
    d = write_deployment(tmp_path / "d.xml", *[
        actor(h, topology.address(k), IDLE, "-n", topology.address(k), "--", 10_000)
        for k, h in enumerate(topology.hosts(n))])
    out = tmp_path / "run"
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                     (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    r = subprocess.run([sys.executable, "-m", "tansiv.cli", "run", p, d, "--out", out,
                        "--quiet", "--pcap"], capture_output=True, text=True, timeout=300,
                       preexec_fn=low)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((out / "pcap").glob("*.pcap"))) == n


def test_a_console_that_floods_keeps_its_head_and_tail_within_its_limit(tmp_path):
    """A participant writing 300 MiB with --console-limit 8MiB: the file keeps its first and
    last 4 MiB and uses about the limit on disk (the middle is a hole), said once; the
    participant itself is not held back."""
    flood = tmp_path / "flood.sh"
    flood.write_text(f"#!/bin/sh\necho first line\nhead -c 300000000 /dev/zero | tr '\\0' x\n"
                     f"echo; echo last line\nexec {IDLE} \"$@\"\n")
    flood.chmod(0o755)
    p, d = two_programs(tmp_path, "1ms", (IDLE, 3_000_000), (flood, 3_000_000))
    out = tmp_path / "run"
    # Idle horizons off: the run lasts its 3 s of simulated time in wall time, while the
    # console is written.
    r = tansiv("run", p, d, "--out", out, "--console-limit", "8MiB", "--idle-horizons", "off",
               timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    log = out / "participants" / "10.0.0.2.log"
    assert log.stat().st_size > 300_000_000             # the writer's offset went on
    assert log.stat().st_blocks * 512 < 8 * 2**20 + 2**20  # the disk did not fill
    with open(log, "rb") as f:
        assert f.read(11) == b"first line\n"
        f.seek(-64, os.SEEK_END)
        assert f.read().endswith(b"\nlast line\n")
    said = [line for line in (out / "coordinator.log").read_text().splitlines()
            if "(--console-limit)" in line]
    assert len(said) == 1 and "10.0.0.2" in said[0], said
    assert "[10.0.0.2] last line" in r.stdout and "bytes dropped]" in r.stdout


# ---- nothing left behind -----------------------------------------------------------------------

def with_background_child(tmp_path: Path) -> Path:
    """A participant as users write them: a wrapper that starts a server in the background,
    then becomes the program."""
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(f'#!/bin/sh\nsleep 1000 &\nexec {IDLE} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def left_running(run: Path) -> list:
    """Processes with this run's folder in their environment (every child of a run's)."""
    mark = f"TANSIV_RUN_DIR={run.resolve()}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" "))
        except OSError:
            pass
    return found


def test_a_wrappers_background_child_is_stopped_when_the_run_ends(tmp_path):
    p, d = two_programs(tmp_path, "1ms", (IDLE, 50_000),
                        (with_background_child(tmp_path), 50_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert not left_running(out)
    assert re.search(r"stopped process \d+ \(sleep 1000 ?\): started by a participant",
                     (out / "coordinator.log").read_text())


def test_what_a_killed_coordinator_left_is_removed_by_the_next_run(tmp_path):
    """SIGKILL: the coordinator cleans nothing. Its participants die with it (PDEATHSIG), but
    not what they started, nor its socket's folder: the next run removes both, naming them."""
    p, d = two_programs(tmp_path, "1ms", (IDLE, 60_000_000),
                        (with_background_child(tmp_path), 60_000_000))
    first = tmp_path / "first"
    proc = subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", p, d, "--out", first,
                             "--quiet", "--idle-horizons", "off"],  # it lasts in wall time
                            stderr=subprocess.DEVNULL)
    end = time.monotonic() + 30
    while time.monotonic() < end and not any(
            e["event"] == "joined" for e in (events(first) if (first / "events.jsonl").exists()
                                             else [])):
        time.sleep(0.1)
    folders = [f for f in Path(tempfile.gettempdir()).glob(f"tansiv.{proc.pid}.*")]
    assert len(folders) == 1, folders  # its hub's socket
    proc.kill()
    proc.wait()
    time.sleep(0.5)  # its participants' PDEATHSIG
    assert [c for c in left_running(first) if c.startswith(b"sleep")], "nothing to clean"
    assert folders[0].exists()
    (tmp_path / "second").mkdir()
    p2, d2 = two_programs(tmp_path / "second", "1ms", (IDLE, 1000), (IDLE, 1000))
    r = tansiv("run", p2, d2, "--out", tmp_path / "second" / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "second" / "run" / "coordinator.log").read_text()
    assert re.search(r"removed process \d+ \(sleep 1000 ?\), left by a tansiv run that was "
                     r"killed", log), log
    assert f"removed folder {folders[0]}" in log
    assert not left_running(first) and not folders[0].exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_network_namespace_whose_owner_is_gone_is_removed():
    gone = subprocess.Popen(["true"])
    gone.wait()
    name = f"tansiv.{gone.pid}.1.netem"  # as leftovers.namespace_name names it
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert f"network namespace {name}" in leftovers.clean_stale()
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert name not in names
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


# ---- a private run ----------------------------------------------------------------------------

def test_run_folders_are_private_whatever_the_umask(tmp_path):
    p, d = two_programs(tmp_path, "1ms", (BURST, "send", "10.0.0.2", 1, 10, "stop"),
                        (BURST, "recv", 1))
    out = tmp_path / "run"
    old = os.umask(0)
    try:
        r = tansiv("run", p, d, "--out", out, "--quiet")
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o700
    for f in [out / "run.json", out / "packets.jsonl", out / "participants" / "10.0.0.1.log"]:
        assert f.stat().st_mode & 0o077 == 0, f


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    p, d = two_programs(tmp_path, "1ms", (IDLE, 10_000),
                        (IDLE, 10_000))
    procs = [subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", p, d, "--quiet"],
                              cwd=tmp_path, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errs = [pr.communicate(timeout=60)[1] for pr in procs]
    assert all(pr.returncode == 0 for pr in procs), errs
    folders = sorted(f for f in tmp_path.iterdir() if f.name.startswith("tansiv-run-"))
    assert len(folders) == 3 and all((f / "run.json").exists() for f in folders)
    said = sorted(re.search(r"results in (\S+)", e).group(1) for e in errs)
    assert said == sorted(f.name for f in folders)


# ---- bad input --------------------------------------------------------------------------------

def test_a_nested_actor_is_an_input_error(tmp_path):
    d = tmp_path / "d.xml"
    d.write_text("<?xml version='1.0'?>\n<platform version=\"4.1\">\n"
                 "<actor host=\"h1\" function=\"vsg_vm\">\n"
                 "  <actor host=\"h2\" function=\"vsg_vm\"/>\n</actor>\n</platform>\n")
    r = tansiv("check", two_hosts(tmp_path / "p.xml", "1ms"), d)
    assert r.returncode == 1
    assert f"{d}:4: <actor> inside the <actor> of line 3" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("address", ["0.0.0.0", "255.255.255.255", "224.0.0.1"])
def test_a_participant_address_must_be_unicast(tmp_path, address):
    d = write_deployment(tmp_path / "d.xml", actor("h1", address, IDLE, "--", 1))
    r = tansiv("check", two_hosts(tmp_path / "p.xml", "1ms"), d)
    assert r.returncode == 1 and f"address {address} cannot be a participant's" in r.stderr


@pytest.mark.parametrize("cfg,said", [
    ("network/modle:LV08", "Bad config key: network/modle"),
    ("network/model:XX", "Model 'XX' is invalid"),
    ("nocolon", "expected OPTION:VALUE")])
def test_a_bad_simgrid_option_is_one_clear_error(tmp_path, cfg, said):
    d = write_deployment(tmp_path / "d.xml", actor("h1", "10.0.0.1", IDLE, "--", 1),
                         actor("h2", "10.0.0.2", IDLE, "--", 1))
    out = tmp_path / "run"
    r = tansiv("run", two_hosts(tmp_path / "p.xml", "1ms"), d, "--cfg", cfg, "--out", out)
    assert r.returncode == 1 and said in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()  # nothing half-written


def test_inputs_of_the_same_name_are_both_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    p = two_hosts(tmp_path / "a" / "run.xml", "1ms")
    d = write_deployment(tmp_path / "b" / "run.xml",
                         actor("h1", "10.0.0.1", IDLE, "-n", "10.0.0.1", "--", 1000),
                         actor("h2", "10.0.0.2", IDLE, "-n", "10.0.0.2", "--", 1000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    kept = sorted(f.name for f in (out / "inputs").iterdir())
    assert kept == ["deployment-run.xml", "platform-run.xml"]
    assert (out / "inputs" / "platform-run.xml").read_text() == p.read_text()


def test_a_comma_in_a_path_cannot_add_qemu_options():
    assert opt("/tmp/a,b/hub.sock") == "/tmp/a,,b/hub.sock"
    from tansiv.vm.qemu import VMSpec, qemu_command
    spec = VMSpec(name="10.0.0.1", address="10.0.0.1", mode="tansiv",
                  socket="/tmp/x,script=/evil/hub.sock")
    fake = type("Image", (), {"kernel": Path("/k"), "initrd": Path("/i")})()
    netdev = [a for a in qemu_command(spec, Path("/q"), fake) if a.startswith("tantap")]
    assert netdev == ["tantap,id=net0,socket=/tmp/x,,script=/evil/hub.sock,address=10.0.0.1"]


def test_shell_rules_quote_results_paths_with_spaces_and_semicolons(tmp_path):
    results = tmp_path / "res dir;touch pwned"
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--cores",
                        "1", "core", "--config", f"results={results}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"> '{results}/logs/build/core.log'" in r.stdout, r.stdout


def test_the_cores_own_log_formatting():
    """common/log.c formats without stdio (async-signal-safe): every conversion the core
    uses, as printf would."""
    script = textwrap.dedent("""\
        import cffi
        from tansiv.run import cheader
        ffi = cffi.FFI()
        ffi.cdef("void tsv_log(int level, const char *component, const char *fmt, ...);")
        lib = cheader.open_library(ffi, "tansiv-hub")
        lib.tsv_log(0, b"test", b"%s|%c|%d|%d|%u|%llu|%zu|%zd|%08x|%x|%5d|%%|%q",
                    ffi.new("char[]", b"text"), ffi.cast("int", 65), ffi.cast("int", -42),
                    ffi.cast("int", -2147483648), ffi.cast("unsigned", 4294967295),
                    ffi.cast("unsigned long long", 18446744073709551615),
                    ffi.cast("size_t", 123), ffi.cast("ssize_t", -7),
                    ffi.cast("unsigned", 0xab), ffi.cast("unsigned", 0xdead),
                    ffi.cast("int", 42))
        """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=REPO, timeout=30)
    line = r.stderr.strip()
    assert re.fullmatch(r"tansiv-test\[\d+\] error: (.*)", line), r.stderr
    assert line.split(": ", 1)[1] == ("text|A|-42|-2147483648|4294967295|"
                                      "18446744073709551615|123|-7|000000ab|dead|   42|%|%q")
