"""Test helpers: a scripted coordinator speaking the wire protocol, the client driver, and
running the tansiv command."""

import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path

from tansiv import paths, units
from tansiv.experiments import reruns, topology
from tansiv.run import deployment, protocol
from tansiv.run.deployment import Actor
from tansiv.run.hub import addr_to_str, str_to_addr

REPO = Path(__file__).resolve().parent.parent
TESTS_BIN = paths.libexecdir() / "tests"
TANSIV = [sys.executable, "-m", "tansiv.cli"]


def two_hosts(path: Path, latency: str, bandwidth: str = "125MBps") -> Path:
    """A platform of two hosts, h1 and h2, whose route has this latency and bandwidth."""
    return topology.write(path, "star", 2, units.duration_ns(latency), units.bandwidth(bandwidth))


def actor(host, address, program, *args) -> Actor:
    return Actor(host, address, str(program), [str(a) for a in args])


def vm(host, address, cmd) -> Actor:
    return actor(host, address, "tansiv-vm", "--cmd", cmd)


def write_deployment(path: Path, *actors) -> Path:
    return deployment.write(path, actors)


class Peer:
    """Plays the coordinator for one client, frame by frame."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.srv.settimeout(10)
        self.conn = None
        self.deadline = 0  # the last GOTO

    def accept(self):
        self.conn, _ = self.srv.accept()
        self.conn.settimeout(10)
        return self

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise EOFError(f"client closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def recv(self) -> protocol.Frame:
        f = protocol.parse_header(self._read(protocol.HEADER_SIZE))
        f.payload = self._read(f.length)
        return f

    def send(self, frame) -> None:
        self.conn.sendall(frame if isinstance(frame, bytes) else frame.pack())

    def hello(self) -> dict:
        """The client's HELLO; the run starts at the date it says it is at (a VM restored
        from a snapshot: the snapshot's)."""
        f = self.recv()
        assert f.type == protocol.HELLO, f
        self.deadline = f.time
        h = protocol.parse_hello(f.payload)
        h["src"] = addr_to_str(f.src)
        return h

    def goto(self, deadline: int) -> None:
        self.send(protocol.Frame(protocol.GOTO, time=deadline))
        self.deadline = deadline

    def gather(self, sends=None):
        """The SEND frames up to AT_DEADLINE (appended to `sends`), and AT_DEADLINE itself."""
        sends = [] if sends is None else sends
        while True:
            f = self.recv()
            if f.type == protocol.AT_DEADLINE:
                return sends, f
            assert f.type == protocol.SEND, f"unexpected frame {f}"
            sends.append(f)

    def deliver(self, time: int, src: str, dst: str, payload: bytes) -> None:
        self.send(protocol.Frame(protocol.DELIVER, time=time, src=str_to_addr(src),
                                 dst=str_to_addr(dst), payload=payload))

    def serve(self, step_ns: int, at_barrier=None, max_rounds=100000):
        """Grants slices of step_ns until the client leaves; at_barrier(peer, T, sends) may
        deliver, end, or return False to stop. Returns [(T, D, sends)] per slice."""
        slices = []
        T = self.deadline
        for _ in range(max_rounds):
            D = T + step_ns
            self.goto(D)
            sends = []
            try:
                sends, at = self.gather(sends)
            except EOFError:  # the client left; what it sent before still counts
                slices.append((T, D, sends))
                return slices
            assert at.time == D, f"AT_DEADLINE({at.time}) for GOTO({D})"
            slices.append((T, D, sends))
            T = D
            if at_barrier and at_barrier(self, T, sends) is False:
                return slices
        raise AssertionError("client still running after max_rounds")

    def close(self):
        if self.conn:
            self.conn.close()
        self.srv.close()


class Driver:
    """csrc/tests/client_driver running a script against a Peer."""

    def __init__(self, sock: str, address: str, steps, buffers=None):
        argv = [str(TESTS_BIN / "client_driver"), "run", sock, address]
        if buffers is not None:
            argv += ["-b", str(buffers)]
        self.proc = subprocess.Popen(argv + list(steps), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def finish(self, timeout=20):
        out, err = self.proc.communicate(timeout=timeout)
        self.stderr = err
        self.returncode = self.proc.returncode
        self.steps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return self

    def step(self, op, index=0):
        found = [s for s in self.steps if s["op"] == op]
        assert len(found) > index, f"no step {op}#{index} in {self.steps}; stderr: {self.stderr}"
        return found[index]


def client_init(*options):
    r = subprocess.run([str(TESTS_BIN / "client_driver"), "init", *options],
                       capture_output=True, text=True, timeout=10)
    return json.loads(r.stdout), r.stderr


def tansiv(*args, cwd=None, timeout=120, env=None):
    """Runs the tansiv command; returns the CompletedProcess."""
    e = dict(os.environ, **(env or {}))
    return subprocess.run(TANSIV + [str(a) for a in args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=e)


def guest_output(run: Path) -> dict:
    """Each participant's output in a run's folder, as bytes (what a rerun must repeat)."""
    return {name: log.read_bytes() for name, log in reruns.guest_outputs(run).items()}


def read_jsonl(path: Path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def rtts_us(log_path: Path):
    """RTTs printed by examples/pingpong."""
    out = []
    for line in Path(log_path).read_text().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("event") == "rtt":
                out.append(rec["rtt_us"])
    return out


def median(xs):
    return statistics.median(xs)


def signal_name(code: int) -> str:
    return signal.Signals(-code).name if code < 0 else f"exit {code}"


def read_csv(path: Path):
    with open(path) as f:
        return list(csv.DictReader(f))


def table(results: Path, name: str):
    """A table the pipeline wrote."""
    return read_csv(Path(results) / "tables" / f"{name}.csv")


def mesh(tmp: Path, n: int = 4, latency_s: float = 0.002):
    """n VMs on a cluster, each pinging every other in its turn (tping), then idle to the end."""
    # Here, not at the top: the workloads bring matplotlib, which the tests run under ASan
    # (tests/test_sanitizers.py) cannot load.
    from tansiv.experiments.workloads.base import Workload
    count, interval = 3, 0.01
    turn = ((n - 1) * (count + 1) + 2) * max(interval, 4 * latency_s)
    actors = []
    for k in range(n):
        others = " ".join(topology.address(j) for j in range(n) if j != k)
        cmd = (f"sleep {k * turn:.6f}; tping -c {count} -i {interval * 1e3:g} -w 1 {others}; "
               f"sleep {(n - k) * turn + 2:.6f}")
        actors.append(actor(topology.hosts(k + 1)[-1], topology.address(k), "tansiv-vm",
                            "--cmd", cmd))
    plat = topology.write(tmp / "platform.xml", "cluster", n, units.to_ns(latency_s), 125e6)
    dep = deployment.write(tmp / "deployment.xml", actors)
    until = Workload.boot_s + n * turn + 1
    return plat, dep, ["--quiet", "--until", f"{until:.3f}", "--end-grace", "3"]
