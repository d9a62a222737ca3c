"""Relays (csrc/hub/relay.c, relayconn.c) in process, without SLURM: a coordinator's hub with a
direct client and, over TCP, a relay serving two members on its own local hub. The relay's
members are clients like the others for the coordinator; a round costs one GOTO and one answer
per relay; a member's departure, a removal and a lost relay are each reported."""

import os
import subprocess
import sys
import threading

import pytest

from tansiv.run import protocol
from tansiv.run.hub import FAILED, JOINED, LEFT, Hub, HubError, Relay
from test_hub import RawClient, date

MS = 1_000_000
SECRET = os.urandom(protocol.SECRET_SIZE)


class Setup:
    def __init__(self, tmp_path, members=("10.0.0.2", "10.0.0.3"), dates=None):
        """dates: the date each member says it is at in its HELLO (default 0)."""
        self.main = Hub(str(tmp_path / "main.sock"))
        self.upstream = self.main.listen_tcp("tcp:127.0.0.1:0")
        self.main.set_secret(SECRET)
        self.local = Hub(str(tmp_path / "local.sock"))
        self.members = [RawClient(self.local.address, n) for n in members]
        for m, date in zip(self.members, dates or [0] * len(members)):
            m.send(protocol.Frame(protocol.HELLO, time=date, src=m.addr,
                                  payload=protocol.pack_hello()))
        assert self.local.accept(len(members), 5000) == len(members)
        self.direct = RawClient(self.main.address, "10.0.0.1")
        self.direct.hello()
        self.relay = None
        self.result = []

    def start_relay(self, secret=SECRET):
        """The relay in a thread: it connects, and waits for the hub's CHALLENGE, which the
        hub sends when it accepts (main.accept, in the test's thread)."""
        self.thread = threading.Thread(target=self._serve, args=(secret,), daemon=True)
        self.thread.start()

    def _serve(self, secret):
        try:
            self.relay = Relay(self.local, self.upstream, secret)
            while not self.relay.serve(100):
                pass
            self.result.append("end")
        except HubError as e:
            self.result.append(str(e))

    def round(self, deadline, sends=()):
        """One round: every live client reaches the deadline, after sends (client, time, dst,
        payload)."""
        self.main.goto(deadline)
        everyone = [self.direct] + self.members
        live = [c for c in everyone if not getattr(c, "gone", False)]
        for c in live:
            f = c.recv()
            assert (f.type, f.time) == (protocol.GOTO, deadline)
        for c, t, dst, payload in sends:
            c.packet(t, dst, payload)
        for c in live:
            c.at_deadline(deadline)
        assert self.main.wait(5000)

    def close(self):
        if self.relay:
            self.main.end(1000)
            self.thread.join(5)
            self.relay.close()
        self.local.close()
        self.main.close()


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.close()


def test_members_are_clients_and_a_round_is_one_exchange_per_relay(setup):
    s = setup
    s.start_relay()
    assert s.main.accept(3, 5000) == 3
    assert sorted(s.main.client_address(i) for i in range(3)) == ["10.0.0.1", "10.0.0.2",
                                                                  "10.0.0.3"]
    assert [e.kind for e in s.main.events()] == [JOINED] * 3
    a, b = s.members
    s.round(1 * MS, [(a, 300_000, "10.0.0.1", b"from a"), (s.direct, 200_000, "10.0.0.3", b"d"),
                     (b, 300_000, "10.0.0.1", b"from b")])
    n, packets = s.main.packets()
    index = {s.main.client_address(i): i for i in range(3)}
    got = [(packets[k].time, packets[k].client, s.main.payload(packets[k].handle))
           for k in range(n)]
    # Sorted by time, then by sender's address, whichever way they came.
    assert got == [(200_000, index["10.0.0.1"], b"d"), (300_000, index["10.0.0.2"], b"from a"),
                   (300_000, index["10.0.0.3"], b"from b")]
    # Deliveries to members go through the relay, which hands them to the right one.
    assert s.main.deliver(packets[0].handle, index["10.0.0.3"], 1 * MS)
    assert s.main.deliver(packets[1].handle, index["10.0.0.1"], 1 * MS)
    s.main.drop(packets[2].handle)
    f = b.recv()
    assert (f.type, f.time, f.payload) == (protocol.DELIVER, 1 * MS, b"d")
    assert s.direct.recv().payload == b"from a"
    s.round(2 * MS)
    assert s.relay.rounds() == 2
    s.main.end(1000)
    s.thread.join(5)
    assert s.result == ["end"]
    assert all(m.recv().type == protocol.END for m in s.members)


def test_a_members_date_reaches_the_coordinator_and_the_relays_hub_starts_there(tmp_path):
    """A member restored from a snapshot (its HELLO at 3 ms) behind the relay: its MEMBER
    carries the date, the run starts there, and the relay's own hub starts there too: the
    member at that date gets a plain first GOTO, the one behind it (at 0) gets the date."""
    s = Setup(tmp_path, dates=[3 * MS, 0])
    try:
        s.start_relay()
        assert s.main.accept(3, 5000) == 3
        assert s.main.begin() == 3 * MS
        s.main.goto(4 * MS)
        at, behind = s.members
        f = at.recv()
        assert (f.type, f.time, f.payload) == (protocol.GOTO, 4 * MS, b"")
        f = behind.recv()
        assert (f.type, f.time, f.payload) == (protocol.GOTO, 4 * MS, date(3 * MS))
        f = s.direct.recv()
        assert (f.type, f.time, f.payload) == (protocol.GOTO, 4 * MS, date(3 * MS))
        for c in [s.direct, *s.members]:
            c.at_deadline(4 * MS)
        assert s.main.wait(5000) and s.main.barrier() == 4 * MS
    finally:
        s.close()


def test_a_member_that_leaves_and_one_removed(setup):
    s = setup
    s.start_relay()
    assert s.main.accept(3, 5000) == 3
    list(s.main.events())
    a, b = s.members
    index = {s.main.client_address(i): i for i in range(3)}
    s.main.goto(1 * MS)
    for c in (s.direct, a, b):
        assert c.recv().type == protocol.GOTO
    a.sock.close()
    a.gone = True
    s.direct.at_deadline(1 * MS)
    b.at_deadline(1 * MS)
    assert s.main.wait(5000)
    (e,) = s.main.events()
    assert (e.kind, e.client) == (LEFT, index["10.0.0.2"]) and "left" in e.message
    assert not s.main.alive(index["10.0.0.2"]) and s.main.alive_count() == 2
    # The coordinator removes b: its relay is told and drops it from its own hub.
    s.main.remove(index["10.0.0.3"], "stalled")
    (e,) = s.main.events()
    assert e.kind == FAILED and "stalled" in e.message
    with pytest.raises(EOFError):
        b.recv()
    b.gone = True
    s.round(2 * MS)


def test_a_late_member_is_named_alone_and_its_removal_ends_the_round(tmp_path):
    """Three members behind the relay, one of which never reaches the deadline: after a slice
    the relay has said who did, so only the late one is waiting; removing it mid-round (as
    --on-stall remove does) takes it out of the relay's round at once, which then ends."""
    s = Setup(tmp_path, members=("10.0.0.2", "10.0.0.3", "10.0.0.4"))
    try:
        s.start_relay()
        assert s.main.accept(4, 5000) == 4
        list(s.main.events())
        index = {s.main.client_address(i): i for i in range(4)}
        a, late, c = s.members
        s.main.goto(1 * MS)
        for m in [s.direct] + s.members:
            assert m.recv().type == protocol.GOTO
        for m in (s.direct, a, c):
            m.at_deadline(1 * MS)
        assert not s.main.wait(600)  # longer than the relay's slice (100 ms)
        waiting = [n for n, i in index.items() if s.main.waiting(i)]
        assert waiting == ["10.0.0.3"]
        s.main.remove(index["10.0.0.3"], "stalled")
        assert s.main.wait(5000)  # the relay dropped it and answered for the other two
        assert [(e.kind, s.main.client_address(e.client)) for e in s.main.events()] == [
            (FAILED, "10.0.0.3")]
        assert s.relay.removed() == ["10.0.0.3"] and s.relay.removed() == []
        late.gone = True
        s.round(2 * MS)
    finally:
        s.close()


RELAY = """
import sys
from tansiv.run.hub import Hub, Relay
local = Hub(sys.argv[1])
print("listening", flush=True)
assert local.accept(int(sys.argv[3]), 10000) == int(sys.argv[3])
relay = Relay(local, sys.argv[2], bytes.fromhex(sys.argv[4]))
while not relay.serve(100):
    pass
"""


def test_a_killed_relay_fails_its_members_and_the_run_goes_on(tmp_path):
    """The relay in a process of its own, killed mid-round (SIGKILL): its members fail, named;
    the round completes with the others."""
    main = Hub(str(tmp_path / "main.sock"))
    try:
        upstream = main.listen_tcp("tcp:127.0.0.1:0")
        main.set_secret(SECRET)
        proc = subprocess.Popen([sys.executable, "-c", RELAY, str(tmp_path / "local.sock"),
                                 upstream, "2", SECRET.hex()], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "listening\n"
        members = [RawClient(str(tmp_path / "local.sock"), n) for n in ("10.0.0.2", "10.0.0.3")]
        for m in members:
            m.hello()
        direct = RawClient(main.address, "10.0.0.1")
        direct.hello()
        assert main.accept(3, 10000) == 3
        list(main.events())
        main.goto(1 * MS)
        for c in [direct] + members:
            assert c.recv().type == protocol.GOTO
        proc.kill()
        proc.wait()
        direct.at_deadline(1 * MS)
        assert main.wait(5000)
        events = list(main.events())
        assert sorted(main.client_address(e.client) for e in events if e.client >= 0) == [
            "10.0.0.2", "10.0.0.3"]
        assert all(e.kind == FAILED and "relay's connection was lost" in e.message
                   for e in events if e.client >= 0)
        assert main.alive_count() == 1
        for m in members:  # their hub died with the relay
            with pytest.raises((EOFError, ConnectionError)):
                m.recv()
        main.goto(2 * MS)
        assert direct.recv().type == protocol.GOTO
        direct.at_deadline(2 * MS)
        assert main.wait(5000)
    finally:
        main.close()


def test_a_relay_without_the_secret_is_refused(setup):
    s = setup
    s.start_relay(secret=bytes(protocol.SECRET_SIZE))
    assert s.main.accept(3, 1000) == 1  # the direct client only
    (failed,) = [e for e in s.main.events() if e.kind == FAILED]
    assert "HELLO without proof of the run's secret" in failed.message
    s.thread.join(15)
    assert s.result and "no WELCOME from the coordinator" in s.result[0], s.result
    assert s.relay is None
