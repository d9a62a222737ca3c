"""The client library (process time back end) without SimGrid, against a scripted
coordinator (helpers.Peer) speaking the wire protocol."""

import os
import signal
import struct
import time

import pytest

from helpers import Driver, Peer, client_init
from tansiv.run import protocol
from tansiv.run.hub import str_to_addr

US = 1000
MS = 1000 * US
ME, OTHER = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def peer(tmp_path):
    p = Peer(tmp_path / "hub.sock")
    yield p
    p.close()


def start(peer, steps, buffers=None):
    d = Driver(peer.path, ME, steps, buffers)
    peer.accept()
    return d


# ---- options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options,next_arg", [
    (["-a", "/s", "-n", ME], 4),
    (["-a/s", "-n" + ME, "--", "app", "args"], 3),
    (["--actor=/s", "--name", ME, "--initial_time", "2020-01-01T00:00:00.25"], 5),
    (["-a", "/s", "-n", ME, "-t", "1970-01-01T00:00:00", "-b", "8", "-w100000000", "-x24"], 10),
    (["-a", "tcp:127.0.0.1:4000", "-n", ME, "--"], 5),
])
def test_valid_options(options, next_arg):
    result, _ = client_init(*options)
    assert result == {"ok": True, "next": next_arg}


@pytest.mark.parametrize("options,message", [
    (["-a", "/s", "-n", ME, "-z", "1"], "unknown option '-z'"),
    (["-a", "/s", "-n", ME, "--bogus=1"], "unknown option '--bogus=1'"),
    (["-a", "/s", "-n", "10.0.0.300"], "bad IPv4 address '10.0.0.300'"),
    (["-a", "/s", "-n", "host.example"], "bad IPv4 address"),
    (["-a", "/s", "-n", ME, "-t", "2020-13-01T00:00:00"], "bad initial time"),
    (["-a", "/s", "-n", ME, "-t", "yesterday"], "bad initial time"),
    (["-a", "/s", "-n", ME, "-t", "2020-01-01T00:00:00."], "bad initial time"),
    (["-a", "/s", "-n", ME, "-b", "0"], "bad number of buffers '0'"),
    (["-a", "/s", "-n", ME, "-b", "-3"], "bad number of buffers"),
    (["-a", "/s", "-n", ME, "-b", "many"], "bad number of buffers"),
    (["-n", ME], "missing coordinator socket"),
    (["-a", "/s"], "missing participant address"),
    (["-a", "/s", "-n"], "option '-n' needs a value"),
    (["-a", "", "-n", ME], "empty socket path"),
])
def test_bad_options_fail_cleanly(options, message):
    result, stderr = client_init(*options)
    assert result == {"ok": False, "errno": "EINVAL"}
    assert message in stderr


# ---- start -----------------------------------------------------------------------------------

def test_hello_then_time_starts_at_zero(peer):
    d = start(peer, ["time"])
    hello = peer.hello()
    assert hello == {"magic": protocol.MAGIC, "version": protocol.VERSION,
                     "role": protocol.ROLE_PROCESS, "pid": d.proc.pid, "src": ME}
    peer.serve(10 * MS)
    d.finish()
    assert d.step("start")["rc"] == "0"
    assert 0 <= d.step("time")["vt_us"] < 10 * MS / US
    assert d.returncode == 0


def test_time_starts_where_the_first_goto_says(peer):
    """The run starts at a VM snapshot's date: the first GOTO carries it, and a process's
    virtual time starts there; a first deadline not after it is a protocol error."""
    start_ns = 4_000 * MS
    d = start(peer, ["time"])
    peer.hello()
    peer.send(protocol.Frame(protocol.GOTO, time=start_ns + 10 * MS,
                             payload=struct.pack("<Q", start_ns)))
    d.finish()
    assert d.step("start")["rc"] == "0"
    assert start_ns / US <= d.step("time")["vt_us"] < (start_ns + 10 * MS) / US

    d = start(peer, [])
    peer.hello()
    peer.send(protocol.Frame(protocol.GOTO, time=start_ns, payload=struct.pack("<Q", start_ns)))
    d.finish()
    assert d.step("start")["rc"] == "EPROTO" and "after the start" in d.stderr


def test_start_without_coordinator(tmp_path):
    d = Driver(str(tmp_path / "nobody.sock"), ME, []).finish()
    assert d.step("start")["rc"] == "ENOENT"
    assert "cannot connect to the coordinator" in d.stderr


def test_start_ended_before_it_began(peer):
    d = start(peer, [])
    peer.hello()
    peer.send(protocol.Frame(protocol.END))
    d.finish()
    assert d.step("start")["rc"] == "ECONNABORTED"


def test_start_with_garbage(peer):
    d = start(peer, [])
    peer.hello()
    peer.send(protocol.Frame(protocol.DELIVER, time=0, payload=b"x"))
    d.finish()
    assert d.step("start")["rc"] == "EPROTO"
    assert "expected GOTO" in d.stderr


# ---- deadlines and frozen time -------------------------------------------------------------

def test_deadlines_hold_the_client_and_frozen_time_is_hidden(peer):
    """Slices of 1 ms, each barrier held 20 ms of real time: the client reaches every
    deadline exactly, and its clock never shows the 20 ms pauses."""
    d = start(peer, ["spin:30000"])
    peer.hello()
    hold_s = 0.020
    real_slices = []

    def at_barrier(p, T, sends):
        time.sleep(hold_s)
        real_slices.append(time.monotonic())

    slices = peer.serve(1 * MS, at_barrier)
    d.finish()
    assert d.returncode == 0, d.stderr
    assert len(slices) >= 30
    assert [D for _, D, _ in slices[:30]] == [(k + 1) * MS for k in range(30)]
    # The client ran its 1 ms slice in about 1 ms of real time after each release.
    spans = [b - a - hold_s for a, b in zip(real_slices, real_slices[1:])]
    assert min(spans) > 0.0009
    # The 20 ms pauses are invisible: the largest step between two reads stays far below.
    assert d.step("spin")["max_gap_us"] < 10000


def test_deadline_callback_called(peer):
    d = start(peer, ["spin:5000", "time"])
    peer.hello()
    peer.serve(1 * MS)
    d.finish()
    assert d.step("time")["deadlines"] >= 4


# ---- sends ------------------------------------------------------------------------------------

def test_sends_are_stamped_in_their_slice(peer):
    wanted = [1500, 3200, 3300, 7900]  # us
    d = start(peer, [f"send:{OTHER}:{100 + i}:{t}" for i, t in enumerate(wanted)] + ["spin:9000"])
    peer.hello()
    slices = peer.serve(1 * MS)
    d.finish()
    assert d.returncode == 0, d.stderr
    seen = [(T, D, f) for T, D, sends in slices for f in sends]
    assert len(seen) == len(wanted)
    for (T, D, f), want, size in zip(seen, wanted, range(100, 104)):
        assert T <= f.time < D
        assert want * US <= f.time < want * US + 500 * US
        assert f.dst == str_to_addr(OTHER) and f.src == str_to_addr(ME)
        assert f.payload == bytes(k % 251 for k in range(size))


def test_send_at_the_deadline_goes_to_the_next_slice(peer):
    """With the deadline signal blocked, the clock stops at D = 1 ms; a send then synchronizes
    first, so the packet is stamped in the next slice [D, D + step)."""
    d = start(peer, ["mask", f"send:{OTHER}:10:1000"])
    peer.hello()
    slices = peer.serve(1 * MS)
    d.finish()
    sends = [(T, D, f) for T, D, s in slices for f in s]
    assert len(sends) == 1
    T, D, f = sends[0]
    assert (T, D) == (1 * MS, 2 * MS) and T <= f.time < D


def test_send_too_large(peer):
    d = start(peer, [f"sendnow:{OTHER}:2049", f"sendnow:{OTHER}:2048"])
    peer.hello()
    slices = peer.serve(1 * MS)
    d.finish()
    assert d.step("send", 0)["rc"] == "EMSGSIZE"
    assert d.step("send", 1)["rc"] == "0"
    assert sum(len(s) for _, _, s in slices) == 1


# ---- deliveries -------------------------------------------------------------------------------

def test_delivery_reaches_the_program_at_the_barrier(peer):
    payload = bytes(range(256)) + b"tansiv"
    d = start(peer, ["wait:1", "recv:2048", "poll", "recv:2048"])
    peer.hello()

    def at_barrier(p, T, sends):
        if T == 2 * MS:
            p.deliver(T, OTHER, ME, payload)

    peer.serve(1 * MS, at_barrier)
    d.finish()
    assert d.returncode == 0, d.stderr
    got = d.step("recv", 0)
    checksum = 0
    for b in payload:
        checksum = (checksum * 31 + b) % 2**64
    assert (got["rc"], got["src"], got["dst"], got["len"], got["sum"]) == \
        ("0", OTHER, ME, len(payload), checksum)
    assert got["vt_us"] >= 2000
    assert d.step("wait")["vt_us"] >= 2000
    assert d.step("poll")["rc"] == "EAGAIN"
    assert d.step("recv", 1)["rc"] == "EAGAIN"


def test_receive_buffer_too_small_drops_the_message(peer):
    d = start(peer, ["wait:1", "recv:100", "poll"])
    peer.hello()
    peer.serve(1 * MS, lambda p, T, s: p.deliver(T, OTHER, ME, b"x" * 300) if T == MS else None)
    d.finish()
    assert d.step("recv")["rc"] == "EMSGSIZE"
    assert d.step("poll")["rc"] == "EAGAIN"


def test_full_queue_drops_with_a_warning(peer):
    d = start(peer, ["wait:2", "recv:64", "recv:64", "poll"], buffers=2)
    peer.hello()

    def at_barrier(p, T, sends):
        if T == MS:
            for k in range(3):
                p.deliver(T, OTHER, ME, bytes([k]) * 10)

    peer.serve(1 * MS, at_barrier)
    d.finish()
    assert [d.step("recv", k)["rc"] for k in range(2)] == ["0", "0"]
    assert d.step("poll")["rc"] == "EAGAIN"
    assert "receive queue full" in d.stderr


# ---- idle horizons: vsg_wait ------------------------------------------------------------------

NEVER = 2**64 - 1


def date(ns: int) -> bytes:
    return struct.pack("<Q", ns)


def test_a_waiting_client_says_until_when_and_jumps_to_where_it_is_woken(peer):
    """In vsg_wait the client tells the hub, at its deadline, the date it waits until (none:
    until a message). Left out of rounds, its time jumps to the barrier it is woken at, by a
    delivery or by a GOTO saying where from: the program sees the message at its delivery
    date, and its timeout at its date, never the time the hub skipped. (A process's time
    runs with its real time: the margins, 40 ms, are for a loaded host.)"""
    d = start(peer, ["vwait:-", "recv:64", "vwait:50000", "time"])
    peer.hello()
    peer.goto(1 * MS)
    _, at = peer.gather()
    assert (at.time, at.payload) == (1 * MS, date(NEVER))
    peer.deliver(7 * MS, OTHER, ME, b"ping")  # rounds to 7 ms went on without it
    peer.send(protocol.Frame(protocol.GOTO, time=8 * MS, payload=date(7 * MS)))
    _, at = peer.gather()  # now waiting 50 ms from about 7 ms
    (until,) = struct.unpack("<Q", at.payload)
    assert at.time == 8 * MS and 57 * MS < until < 57 * MS + 40 * MS
    peer.send(protocol.Frame(protocol.GOTO, time=100 * MS, payload=date(56 * MS)))
    try:
        peer.gather()
    except EOFError:
        pass
    d.finish()
    assert d.returncode == 0, d.stderr
    first, second = d.step("vwait", 0), d.step("vwait", 1)
    assert first["rc"] == "0" and 7000 <= first["vt_us"] < 7000 + 40000
    assert d.step("recv")["rc"] == "0" and d.step("recv")["vt_us"] >= 7000
    assert second["rc"] == "ETIMEDOUT" and until // 1000 <= second["vt_us"] < 100000


def test_a_client_that_runs_says_nothing_and_accepts_no_jump(peer):
    d = start(peer, ["sleep:100"])
    peer.hello()
    peer.goto(1 * MS)
    _, at = peer.gather()
    assert at.payload == b""  # not waiting in vsg_wait: busy
    peer.send(protocol.Frame(protocol.GOTO, time=5 * MS, payload=date(3 * MS)))
    d.finish()
    assert d.returncode == -signal.SIGTERM
    assert "GOTO from at 3000000 ns while stopped at the deadline 1000000 ns" in d.stderr


def test_a_jump_past_the_date_the_client_waits_until_is_refused(peer):
    d = start(peer, ["vwait:2000"])
    peer.hello()
    peer.goto(1 * MS)
    _, at = peer.gather()
    (until,) = struct.unpack("<Q", at.payload)
    assert 2 * MS <= until < 3 * MS
    peer.deliver(4 * MS, OTHER, ME, b"late")
    d.finish()
    assert d.returncode == -signal.SIGTERM
    assert f"delivery at 4000000 ns while stopped at the deadline 1000000 ns (idle until " \
           f"{until} ns)" in d.stderr


# ---- end and failures -------------------------------------------------------------------------

def test_end_freezes_the_clock_and_refuses_sends(peer):
    d = start(peer, ["sleep:50", "time", f"sendnow:{OTHER}:10"])
    peer.hello()
    peer.serve(1 * MS, lambda p, T, s: p.send(protocol.Frame(protocol.END)) or False)
    d.finish()
    assert d.returncode == 0, d.stderr
    assert d.step("time")["vt_us"] == 1000
    assert d.step("send")["rc"] == "EPIPE"


@pytest.mark.parametrize("frame,message", [
    (protocol.Frame(protocol.GOTO, length=protocol.MAX_PAYLOAD + 1), "announces"),
    (protocol.Frame(99), "unexpected frame type 99"),
    (protocol.Frame(protocol.SEND, time=1 * MS), "unexpected frame type 2"),
    (protocol.Frame(protocol.DELIVER, time=5 * MS, payload=b"late"), "delivery at 5000000 ns"),
    (protocol.Frame(protocol.GOTO, time=1 * MS), "GOTO(1000000 ns"),
    (protocol.Frame(protocol.GOTO, time=3 * MS, payload=b"zz"), "GOTO(3000000 ns, 2 bytes)"),
    (None, "coordinator closed the connection"),
    (b"\x10\x00", "closed the connection in the middle of a frame"),  # half a header
])
def test_protocol_errors_end_the_participant_cleanly(peer, frame, message):
    """A malformed or inconsistent frame at a barrier: the client says what is wrong and ends
    the program with SIGTERM (its own handler may clean up), never a crash."""
    d = start(peer, ["sleep:200"])
    peer.hello()

    def at_barrier(p, T, sends):
        if frame is not None:
            p.send(frame)
        p.conn.shutdown(2)
        return False

    peer.serve(1 * MS, at_barrier)
    d.finish()
    assert d.returncode == -signal.SIGTERM, (d.returncode, d.stderr)
    assert message in d.stderr
    assert "lost the coordinator" in d.stderr
