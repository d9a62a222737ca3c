"""The hub (csrc/hub) in process, against raw protocol clients."""

import os
import socket
import struct
import threading

import pytest

from tansiv.run import protocol
from tansiv.run.hub import FAILED, JOINED, LEFT, Hub, HubError, str_to_addr

MS = 1_000_000
NEVER = 2**64 - 1


def date(ns: int) -> bytes:
    """struct tsv_date: AT_DEADLINE's payload when idle, GOTO's after sitting out."""
    return struct.pack("<Q", ns)


class RawClient:
    def __init__(self, address: str, name: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(address)
        self.sock.settimeout(5)
        self.addr = str_to_addr(name)

    def send(self, frame):
        self.sock.sendall(frame if isinstance(frame, bytes) else frame.pack())

    def hello(self, **kw):
        self.send(protocol.Frame(protocol.HELLO, src=self.addr, payload=protocol.pack_hello(**kw)))

    def packet(self, time, dst, payload):
        self.send(protocol.Frame(protocol.SEND, time=time, src=self.addr, dst=str_to_addr(dst),
                                 payload=payload))

    def at_deadline(self, time, idle_until=None):
        """Reached time; idle_until: the date before which it does nothing (idle horizons)."""
        self.send(protocol.Frame(protocol.AT_DEADLINE, time=time, src=self.addr,
                                 payload=b"" if idle_until is None else date(idle_until)))

    def recv(self):
        data = b""
        while len(data) < protocol.HEADER_SIZE:
            chunk = self.sock.recv(protocol.HEADER_SIZE - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        f = protocol.parse_header(data)
        while len(f.payload) < f.length:
            f.payload += self.sock.recv(f.length - len(f.payload))
        return f


@pytest.fixture
def hub(tmp_path):
    with Hub(str(tmp_path / "hub.sock")) as h:
        yield h


def joined(hub, names):
    clients = [RawClient(hub.address, n) for n in names]
    for c in clients:
        c.hello(pid=1234)
    assert hub.accept(len(clients), 5000) == len(clients)
    return clients


def test_join_in_hello_order(hub):
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    assert [hub.client_address(i) for i in range(2)] == ["10.0.0.1", "10.0.0.2"]
    # On the Unix socket the pid is the kernel's (SO_PEERCRED), not the 1234 HELLO claims.
    assert hub.client_pid(0) == os.getpid() and hub.client_role(0) == protocol.ROLE_PROCESS
    assert [e.kind for e in hub.events()] == [JOINED, JOINED]


@pytest.mark.parametrize("hello,message", [
    (dict(magic=0xdeadbeef), "bad magic"),
    (dict(version=99), "speaks protocol version 99"),
])
def test_bad_hello_is_refused(hub, hello, message):
    c = RawClient(hub.address, "10.0.0.1")
    c.hello(**hello)
    assert hub.accept(1, 300) == 0
    events = list(hub.events())
    assert events[0].kind == FAILED and message in events[0].message


def test_first_frame_must_be_hello(hub):
    c = RawClient(hub.address, "10.0.0.1")
    c.at_deadline(0)
    assert hub.accept(1, 300) == 0
    assert "expected HELLO" in next(hub.events()).message


def test_round_gathers_sorted_packets_and_delivers_at_the_barrier(hub):
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    for c in (a, b):
        f = c.recv()
        assert (f.type, f.time) == (protocol.GOTO, 1 * MS)
    a.packet(700_000, "10.0.0.2", b"late")
    b.packet(100_000, "10.0.0.1", b"early")
    a.packet(700_000, "10.0.0.2", b"late, second")
    assert not hub.wait(50)  # nobody reached the deadline yet
    a.at_deadline(1 * MS)
    b.at_deadline(1 * MS)
    assert hub.wait(2000)
    n, packets = hub.packets()
    got = [(packets[k].time, packets[k].client, packets[k].size) for k in range(n)]
    assert got == [(100_000, 1, 5), (700_000, 0, 4), (700_000, 0, 12)]
    assert hub.payloads_held() == 3

    assert not hub.deliver(packets[0].handle, 0, 999)  # not the barrier time
    assert hub.payloads_held() == 2  # the payload is freed anyway
    assert hub.deliver(packets[1].handle, 1, 1 * MS)
    hub.drop(packets[2].handle)
    assert hub.payloads_held() == 0
    f = b.recv()
    assert (f.type, f.time, f.payload, f.src) == (protocol.DELIVER, 1 * MS, b"late", a.addr)
    hub.goto(2 * MS)
    assert b.recv().type == protocol.GOTO  # the delivery came before the next deadline


def truncated_frame_then_close(c):
    c.send(protocol.Frame(protocol.SEND, time=10, src=c.addr, payload=b"y" * 100).pack()[:40])
    c.sock.close()


@pytest.mark.parametrize("misbehave,message", [
    (lambda c: c.packet(1 * MS, "10.0.0.2", b"x"), "outside its slice [0, 1000000)"),
    (lambda c: c.at_deadline(2 * MS), "AT_DEADLINE(2000000 ns"),
    (lambda c: c.send(protocol.Frame(protocol.GOTO, time=5, src=c.addr)), "unexpected frame"),
    (lambda c: c.send(protocol.Frame(protocol.SEND, length=protocol.MAX_PAYLOAD + 1)),
     "announces"),
    (lambda c: c.send(protocol.Frame(protocol.SEND, time=10, src=c.addr + 1, payload=b"x")),
     "source address other than its own"),
    (lambda c: truncated_frame_then_close(c), "in the middle of a frame"),
])
def test_misbehaving_client_is_removed_and_the_round_completes(hub, misbehave, message):
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    misbehave(a)
    b.at_deadline(1 * MS)
    assert hub.wait(2000)
    events = list(hub.events())
    assert [e.kind for e in events] == [FAILED]
    assert events[0].client == 0 and message in events[0].message
    assert "10.0.0.1" in events[0].message
    assert not hub.alive(0) and hub.alive(1) and hub.alive_count() == 1


def test_client_leaving_mid_round_keeps_its_packets(hub):
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    a.recv()
    a.packet(10, "10.0.0.2", b"last words")
    a.sock.close()
    b.at_deadline(1 * MS)
    assert hub.wait(2000)
    assert [e.kind for e in hub.events()] == [LEFT]
    n, packets = hub.packets()
    assert n == 1 and packets[0].client == 0


def test_deadlines_must_increase(hub):
    clients = joined(hub, ["10.0.0.1"])
    hub.goto(5)
    with pytest.raises(HubError, match="still under way"):
        hub.goto(10)
    clients[0].at_deadline(5)
    assert hub.wait(1000)
    with pytest.raises(HubError, match="not after the previous one"):
        hub.goto(5)


def test_bad_listen_address(tmp_path):
    with pytest.raises(HubError, match="cannot listen"):
        Hub(str(tmp_path / "missing-dir" / "hub.sock"))
    with pytest.raises(HubError, match="expected tcp:HOST:PORT"):
        Hub("tcp:nowhere")


def test_tcp_listener_reports_its_port():
    with Hub("tcp:127.0.0.1:0") as h:
        host, port = h.address[4:].rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0


def test_a_client_that_does_not_read_what_it_is_sent_is_removed(hub):
    """Frames wait for a client in the hub only up to a bound (here 256 KiB, beyond what its
    socket's buffer holds): one that never reads is removed, not the hub's memory grown."""
    hub.set_limits(round_bytes=1 << 30, out_bytes=256 << 10)
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    payload = b"z" * 60000
    sender = threading.Thread(target=lambda: [a.packet(10 + k, "10.0.0.2", payload)
                                              for k in range(100)] + [a.at_deadline(1 * MS)])
    sender.start()
    b.at_deadline(1 * MS)  # b never reads anything
    assert hub.wait(10000)
    sender.join()
    n, packets = hub.packets()
    assert n == 100
    for k in range(n):
        hub.deliver(packets[k].handle, 1, 1 * MS)
    failed = [e for e in hub.events() if e.kind == FAILED]
    assert len(failed) == 1 and failed[0].client == 1
    assert "does not read what it is sent" in failed[0].message
    assert hub.alive(0) and not hub.alive(1)
    assert hub.payloads_held() == 0


def test_a_client_over_its_bytes_per_round_is_removed(hub):
    hub.set_limits(round_bytes=100_000)
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    sender = threading.Thread(target=lambda: [a.packet(10 + k, "10.0.0.2", b"x" * 60000)
                                              for k in range(2)])  # 120000 bytes this round
    sender.start()
    b.at_deadline(1 * MS)
    assert hub.wait(5000)
    sender.join()
    failed = [e for e in hub.events() if e.kind == FAILED]
    assert len(failed) == 1 and "sent more than 100000 bytes in one round" in failed[0].message


# ---- idle horizons ---------------------------------------------------------------------------

def round_of(hub, clients, deadline_ns, idle=()):
    """One round to deadline_ns: each client in `clients` gets its GOTO (returned) and
    reaches the deadline, saying it is idle until idle[i] if given."""
    hub.run(deadline_ns, deadline_ns - hub.barrier(), deadline_ns)
    gotos = {}
    for i, c in clients.items():
        f = c.recv()
        assert f.type == protocol.GOTO, f
        gotos[i] = f
        c.at_deadline(f.time, idle[i] if i < len(idle) else None)
    assert hub.wait(2000)
    return gotos


def test_idle_clients_sit_out_rounds_until_their_date_and_jump_to_the_barrier(hub):
    """a waits for a packet (no date), b's next timer is at 10 ms, the lookahead 1 ms: one
    round takes both to 1 ns before 10 ms without a GOTO to anyone; then b runs to 11 ms,
    told its time jumps to the barrier. A packet b sent is delivered to a at a barrier it
    sat out to: a is woken there, with its DELIVER and a GOTO that says so."""
    hub.set_horizons(True)
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    round_of(hub, {0: a, 1: b}, 1 * MS, idle=(NEVER, 10 * MS))
    assert hub.idle_until() == 10 * MS
    hub.run(2 * MS, 1 * MS, 12 * MS)  # the caller asks for one lookahead; the hub knows better
    assert not hub.wait(300)  # b's round, after one nobody ran
    assert hub.stats()["sat_out"] == 3
    f = b.recv()
    assert (f.type, f.time, f.payload) == (protocol.GOTO, 11 * MS, date(10 * MS - 1))
    b.packet(10 * MS + 500_000, "10.0.0.1", b"hello")
    b.at_deadline(11 * MS, 30 * MS)
    assert hub.wait(2000)
    n, packets = hub.packets()
    assert n == 1 and hub.barrier() == 11 * MS

    hub.run(12 * MS, 1 * MS, 15 * MS)  # 15 ms: when the network delivers it
    assert hub.wait(2000)
    assert hub.barrier() == 15 * MS and hub.stats()["sat_out"] == 5
    assert hub.deliver(packets[0].handle, 0, 15 * MS)
    hub.run(16 * MS, 1 * MS, 16 * MS)
    f = a.recv()
    assert (f.type, f.time, f.payload) == (protocol.DELIVER, 15 * MS, b"hello")
    f = a.recv()
    assert (f.type, f.time, f.payload) == (protocol.GOTO, 16 * MS, date(15 * MS))
    a.at_deadline(16 * MS)
    assert hub.wait(2000)
    assert hub.stats()["sat_out"] == 6  # b, until 30 ms
    assert hub.idle_until() == 16 * MS  # a is busy


def test_without_horizons_every_client_runs_every_round(hub):
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    round_of(hub, {0: a, 1: b}, 1 * MS, idle=(NEVER, 10 * MS))
    assert hub.idle_until() == 1 * MS
    gotos = round_of(hub, {0: a, 1: b}, 2 * MS)
    assert [(g.time, g.payload) for g in gotos.values()] == [(2 * MS, b"")] * 2
    assert hub.stats()["sat_out"] == 0


def test_a_client_idle_until_before_its_deadline_is_removed(hub):
    hub.set_horizons(True)
    a, b = joined(hub, ["10.0.0.1", "10.0.0.2"])
    list(hub.events())
    hub.goto(1 * MS)
    for c in (a, b):
        c.recv()
    a.at_deadline(1 * MS, 1 * MS)
    b.at_deadline(1 * MS)
    assert hub.wait(2000)
    (e,) = hub.events()
    assert e.kind == FAILED and "idle until 1000000 ns, not after its deadline" in e.message


def test_the_run_starts_at_the_latest_date_a_client_said_and_those_behind_are_told(hub):
    """A VM restored from a snapshot says in its HELLO the date it is at: the run starts at the
    latest such date; the first GOTO of a client behind it carries that date (its time starts
    there), the one of a client at it carries nothing. tsv_hub_begin refuses an earlier date
    and a second start."""
    a, b = RawClient(hub.address, "10.0.0.1"), RawClient(hub.address, "10.0.0.2")
    a.send(protocol.Frame(protocol.HELLO, time=4 * MS, src=a.addr,
                          payload=protocol.pack_hello(pid=1)))
    b.hello(pid=2)  # a process: at 0
    assert hub.accept(2, 5000) == 2
    assert hub._lib.tsv_hub_start_date(hub._h) == 4 * MS
    with pytest.raises(HubError, match="a client is at 4000000 ns"):
        hub._check(hub._lib.tsv_hub_begin(hub._h, 3 * MS))
    assert hub.begin() == 4 * MS and hub.barrier() == 4 * MS
    hub.goto(5 * MS)
    fa, fb = a.recv(), b.recv()
    assert (fa.type, fa.time, fa.payload) == (protocol.GOTO, 5 * MS, b"")
    assert (fb.type, fb.time, fb.payload) == (protocol.GOTO, 5 * MS, date(4 * MS))
    with pytest.raises(HubError, match="started already"):
        hub._check(hub._lib.tsv_hub_begin(hub._h, 4 * MS))
