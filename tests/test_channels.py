"""The links between participants and the hub: shared-memory channels and sockets.

Sends are written through (a message vsg_send accepted is delivered even if its sender dies at
once), a full ring holds its sender back without losing anything, and a participant's rings
go away with it."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import TESTS_BIN, actor, read_jsonl, tansiv, two_hosts, write_deployment
from tansiv.run.hub import JOINED, LEFT, Hub
from tansiv.run.protocol import HEADER_SIZE

BURST = TESTS_BIN / "burst"
TRANSPORTS = ["shm", "socket"]


def burst_run(tmp_path, transport, count, size, then, latency="1ms", *extra):
    """h1 sends count messages of size bytes to h2 and ends as `then` says; h2 receives."""
    p = two_hosts(tmp_path / "p.xml", latency)
    d = write_deployment(
        tmp_path / "d.xml",
        actor("h1", "10.0.0.1", BURST, "-n", "10.0.0.1", "--", "send", "10.0.0.2", count, size,
              then),
        actor("h2", "10.0.0.2", BURST, "-n", "10.0.0.2", "-b", 4096, "--", "recv", count))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--transport", transport, *extra)
    return r, out


def received(out: Path):
    log = (out / "participants" / "10.0.0.2.log").read_text()
    return [tuple(map(int, line.split()[1:])) for line in log.splitlines()
            if line.startswith("got ")]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("then,code", [("return", 0), ("_exit", 0), ("kill", 3), ("stop", 0)])
def test_messages_sent_right_before_the_end_are_delivered(tmp_path, transport, then, code):
    r, out = burst_run(tmp_path, transport, 20, 200, then)
    assert r.returncode == code, r.stderr
    assert received(out) == [(i, 200) for i in range(20)], r.stderr
    packets = read_jsonl(out / "packets.jsonl")
    assert len(packets) == 20 and all(p["deliver_ns"] == p["complete_ns"] for p in packets)
    if then == "kill":
        assert "killed by SIGKILL" in r.stderr


def test_full_ring_holds_the_sender_back_without_loss(tmp_path):
    """1000 frames of 1400 bytes through rings of 128 KiB. The hub drains a ring only when
    its participant reaches the deadline or finds it full, so more bytes than the ring holds
    in the first slice means the sender did wait for room."""
    ring = 128 * 1024
    r, out = burst_run(tmp_path, "shm", 1000, 1400, "stop", "20ms", "--ring-size", ring)
    assert r.returncode == 0, r.stderr
    assert received(out) == [(i, 1400) for i in range(1000)]
    packets = read_jsonl(out / "packets.jsonl")
    assert len(packets) == 1000
    first_slice = [p for p in packets if p["send_ns"] < 20_000_000]
    assert len(first_slice) * (HEADER_SIZE + 1400) > ring, "the ring was never full"


@pytest.mark.parametrize("ring", ["1000", "100000", "3MiB"])
def test_bad_ring_sizes_are_refused(tmp_path, ring):
    r, _ = burst_run(tmp_path, "shm", 1, 10, "stop", "1ms", "--ring-size", ring)
    assert r.returncode == 2 and "--ring-size" in r.stderr, r.stderr


def mappings(name: str) -> int:
    """How many of this process's mappings are of a memfd called name."""
    return sum(f"/memfd:{name} " in line or line.endswith(f"/memfd:{name}")
               for line in Path("/proc/self/maps").read_text().splitlines())


def test_rings_of_a_participant_that_dies_are_reclaimed(tmp_path):
    with Hub(str(tmp_path / "hub.sock"), ring_size=128 * 1024) as hub:
        idle = subprocess.Popen([TESTS_BIN / "idle", hub.address, "-n", "10.0.0.1", "--",
                                 "100000000"])
        try:
            assert hub.accept(1, 5000) == 1
            assert [e.kind for e in hub.events()] == [JOINED]
            assert hub.client_channel(0)
            assert mappings("tansiv-channel-0") == 1
            hub.goto(1_000_000)
            assert hub.wait(5000)
            hub.goto(2_000_000)
            os.kill(idle.pid, signal.SIGKILL)
            idle.wait()
            end = time.monotonic() + 5
            while hub.alive(0) and time.monotonic() < end:
                hub.wait(100)
            assert [e.kind for e in hub.events()] == [LEFT]
            assert mappings("tansiv-channel-0") == 0
            assert mappings("tansiv-barrier") == 1  # the hub's own, for the others
        finally:
            idle.kill()
            idle.wait()


def test_a_participant_leaving_mid_round_does_not_hold_the_others_barrier(tmp_path):
    """Two participants on channels: 10.0.0.2 exits 1 ms into a 100 ms round, without
    reaching its deadline; 10.0.0.1 reaches it and counts itself out of the shared barrier,
    which still counted the one gone. The hub counts that one out itself, so the round ends
    when 10.0.0.1 reaches the deadline, not when the hub's wait times out (3 s here)."""
    with Hub(str(tmp_path / "hub.sock"), 1 << 20) as hub:
        procs = [subprocess.Popen([str(TESTS_BIN / "idle"), hub.address, "-n", "10.0.0.1",
                                   "--", "10000000"]),
                 subprocess.Popen([str(TESTS_BIN / "crasher"), hub.address, "-n", "10.0.0.2",
                                   "--", "1000", "exit"])]
        try:
            assert hub.accept(2, 10000) == 2
            assert all(hub.client_channel(i) for i in range(2))
            hub.goto(100_000_000)
            t0 = time.monotonic()
            assert hub.wait(3000)
            assert time.monotonic() - t0 < 1.5
        finally:
            for p in procs:
                p.kill()
                p.wait()
