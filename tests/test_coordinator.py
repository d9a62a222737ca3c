"""The coordinator end to end: real SimGrid, real processes, the tansiv command."""

import json
import os
import sys
from pathlib import Path

import pytest

from helpers import (REPO, TESTS_BIN, actor, median, read_jsonl, rtts_us, tansiv, two_hosts,
                     write_deployment as deployment)
from tansiv.run.deployment import HEADER

EXAMPLES = REPO / "examples"
ZONES = REPO / "tests" / "data" / "zones3.xml"
CLUSTER = EXAMPLES / "pingpong" / "platform.xml"


def pingpong(host, address, role, peer, count, size=None):
    args = ["-n", address, "--", role, peer, str(count)] + ([str(size)] if size else [])
    return actor(host, address, "pingpong", *args)


def run(platform, deploy, out, *extra, expect=0):
    r = tansiv("run", platform, deploy, "--out", out, "--quiet", *extra)
    assert r.returncode == expect, r.stderr
    info = json.loads((out / "run.json").read_text())
    return r, info


def check_deliveries(out, latency_ns, bandwidth):
    """Every packet is delivered exactly when SimGrid completes it: latency + size / bw."""
    packets = read_jsonl(out / "packets.jsonl")
    assert packets
    for p in packets:
        assert p["deliver_ns"] == p["complete_ns"]
        expected = p["send_ns"] + latency_ns + p["size"] / bandwidth * 1e9
        assert abs(p["complete_ns"] - expected) <= 1, p
    return packets


# ---- accuracy ----------------------------------------------------------------------------------

def test_pingpong_on_a_cluster_matches_the_model(tmp_path):
    """examples/pingpong: 500 us routes at 125 MB/s, 1000-byte messages."""
    out = tmp_path / "run"
    r, info = run(CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", out)
    assert info["status"] == "ok"
    model_us = 2 * 500 + 2 * 1000 / 125e6 * 1e6
    rtts = rtts_us(out / "participants" / "10.0.0.1.log")
    assert len(rtts) == 20
    excess = median(rtts) - model_us
    assert 0 <= excess <= 50, (rtts, model_us)
    assert min(rtts) >= model_us  # the model is a lower bound
    packets = check_deliveries(out, 500_000, 125e6)
    assert len(packets) == 40
    assert info["packets_delivered"] == 40 and info["lookahead_ns"] == 500_000
    # The loop's progress: dates and wall times that only go forward, within the run.
    prog = info["progress"]
    assert prog and prog == sorted(prog)
    assert all(info["start_ns"] <= s <= info["simulated_ns"] and 0 <= t <= info["sync_wall_s"]
               for s, t in prog), prog


def test_pingpong_across_zones_of_a_full_routing_platform(tmp_path):
    """a1 -> c1 crosses zone B: 6.06 ms, bottleneck 10 MB/s (tests/data/zones3.xml)."""
    d = deployment(tmp_path / "d.xml",
                   pingpong("a1", "10.1.0.1", "client", "10.3.0.1", 8, 1000),
                   pingpong("c1", "10.3.0.1", "server", "10.1.0.1", 8))
    out = tmp_path / "run"
    run(ZONES, d, out)
    model_us = 2 * 6060 + 2 * 1000 / 10e6 * 1e6
    rtts = rtts_us(out / "participants" / "10.1.0.1.log")
    assert len(rtts) == 8
    assert 0 <= median(rtts) - model_us <= 50, (rtts, model_us)
    check_deliveries(out, 6_060_000, 10e6)


def test_send_example_exchanges_one_message(tmp_path):
    out = tmp_path / "run"
    run(EXAMPLES / "send" / "platform.xml", EXAMPLES / "send" / "deployment.xml", out)
    for me, other in (("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")):
        log = (out / "participants" / f"{me}.log").read_text()
        assert f"received from {other} to {me}" in log and "hello from pid" in log
    assert len(read_jsonl(out / "packets.jsonl")) == 2


def test_tcp_socket(tmp_path):
    out = tmp_path / "run"
    r, info = run(CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", out,
                  "--socket", "tcp:127.0.0.1:0")
    assert info["packets_delivered"] == 40


def test_runs_from_any_directory_and_echoes_participants(tmp_path):
    r = tansiv("run", CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", "--out", "r",
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('[10.0.0.1] {"event": "rtt"') == 20
    assert (tmp_path / "r" / "run.json").exists()
    entry = Path(sys.prefix) / "bin" / "tansiv"
    assert os.access(entry, os.X_OK)


# ---- lookahead ---------------------------------------------------------------------------------

def check_json(platform, deploy, *extra):
    r = tansiv("check", platform, deploy, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_lookahead_is_the_smallest_route_latency(tmp_path):
    d = deployment(tmp_path / "d.xml",
                   actor("a1", "10.1.0.1", "pingpong"), actor("a2", "10.1.0.2", "pingpong"),
                   actor("c1", "10.3.0.1", "pingpong"))
    result = check_json(ZONES, d)
    assert result["lookahead_ns"] == 50_000  # a1 <-> a2: 20 + 30 us
    lat = {(r["src"], r["dst"]): r["latency_ns"] for r in result["routes"]}
    assert lat[("10.1.0.1", "10.3.0.1")] == 6_060_000
    assert lat[("10.1.0.2", "10.3.0.1")] == 6_070_000

    d2 = deployment(tmp_path / "d2.xml",
                    actor("b1", "10.2.0.1", "pingpong"), actor("c1", "10.3.0.1", "pingpong"))
    assert check_json(ZONES, d2)["lookahead_ns"] == 4_050_000


def test_single_participant_needs_a_forced_lookahead(tmp_path):
    d = deployment(tmp_path / "d.xml", actor("a1", "10.1.0.1", TESTS_BIN / "idle", "-n",
                                             "10.1.0.1", "--", "2000"))
    assert check_json(ZONES, d)["lookahead_ns"] is None
    r = tansiv("run", ZONES, d, "--out", tmp_path / "r1", "--quiet")
    assert r.returncode == 1 and "lookahead is undefined" in r.stderr
    assert "started" not in r.stderr
    r = tansiv("run", ZONES, d, "--out", tmp_path / "r2", "--quiet", "--force", "500us",
               "--idle-horizons", "off")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert info["lookahead_ns"] == 500_000 and info["rounds"] >= 4
    # Idle horizons: the first round, then one it sits out (waiting in vsg_wait until 2 ms)
    # up to 1 ns before 2 ms, then the one in which it wakes and leaves.
    r = tansiv("run", ZONES, d, "--out", tmp_path / "r3", "--quiet", "--force", "500us")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "r3" / "run.json").read_text())
    assert (info["rounds"], info["rounds_sat_out"]) == (3, 1), info


def test_a_process_waiting_for_a_packet_costs_no_wall_time(tmp_path):
    """pingpong over routes of 1 s: each side waits in vsg_wait while the packet is in flight,
    so the rounds up to its delivery go on without it, in no time; it is woken at the
    delivery's date. 3 round trips of 2 s of simulated time each, in well under 6 s of wall
    time (without idle horizons every round would run 1 s of lookahead in real time)."""
    plat = two_hosts(tmp_path / "platform.xml", "1s")
    d = deployment(tmp_path / "d.xml", pingpong("h1", "10.0.0.1", "client", "10.0.0.2", 3, 100),
                   pingpong("h2", "10.0.0.2", "server", "10.0.0.1", 3))
    out = tmp_path / "run"
    r, info = run(plat, d, out)
    assert info["simulated_ns"] > 6 * 10**9 and info["sync_wall_s"] < 2, info
    assert info["rounds_sat_out"] > 0
    check_deliveries(out, 10**9, 125e6)
    rtts = rtts_us(out / "participants" / "10.0.0.1.log")
    model_us = 2 * (10**6 + 100 / 125e6 * 1e6)
    assert len(rtts) == 3 and all(model_us <= rtt < model_us + 1000 for rtt in rtts), rtts


def test_forced_lookahead_is_used(tmp_path):
    out = tmp_path / "run"
    r, info = run(CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", out, "--force", "100us")
    assert info["lookahead_ns"] == 100_000
    check_deliveries(out, 500_000, 125e6)


def test_durations_are_ns_from_the_command_line_to_the_record(tmp_path):
    """What is written is what runs, to the ns (no float seconds on the way), and the
    record's options are Options' fields, one each."""
    from dataclasses import fields

    from tansiv.run.coordinator import Options
    out = tmp_path / "run"
    r, info = run(CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", out, "--force",
                  "0.000100001", "--until", "0.300000007")
    assert info["lookahead_ns"] == 100_001
    assert info["options"]["force_lookahead_ns"] == 100_001
    assert info["options"]["until_ns"] == 300_000_007
    assert set(info["options"]) == {f.name for f in fields(Options)} | {"cfg"}
    assert isinstance(info["simulated_ns"], int)


def test_sigterm_before_any_run_exits_143(tmp_path):
    """SIGTERM while the inputs are still being read (no session yet) ends tansiv as it ends
    a run: 143, not SIGINT's 130."""
    import signal
    import subprocess
    import time
    fifo = tmp_path / "deployment.xml"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "tansiv.cli", "run", CLUSTER, fifo, "--out",
                             tmp_path / "run"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # tansiv has opened the deployment once a writer can
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)
        time.sleep(0.2)  # now blocked reading it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143, proc.stderr.read()
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "run").exists()  # no run had started


def test_too_large_a_forced_lookahead_is_reported(tmp_path):
    """Forcing 2 ms over 500 us routes breaks conservative synchronization: deliveries come
    late, and the run says so instead of hiding it."""
    out = tmp_path / "run"
    r, info = run(CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", out, "--force", "2ms")
    assert "exceeds the smallest route latency" in r.stderr
    packets = read_jsonl(out / "packets.jsonl")
    late = [p for p in packets if p["deliver_ns"] > p["complete_ns"] + 1]  # 1 ns: rounding
    assert late and info["packets_late"] == len(late)
    assert "was delivered at" in r.stderr


# ---- participants that crash or leave -----------------------------------------------------------

def crash_deployment(tmp_path, how):
    """pingpong a1 <-> c1 (lookahead would be 6.06 ms) plus a crasher on a2, 50 us from a1,
    which dies at 30 ms of simulated time."""
    crasher = TESTS_BIN / "crasher"
    return deployment(tmp_path / "d.xml",
                      pingpong("a1", "10.1.0.1", "client", "10.3.0.1", 6, 1000),
                      pingpong("c1", "10.3.0.1", "server", "10.1.0.1", 6),
                      actor("a2", "10.1.0.2", crasher, "-n", "10.1.0.2", "--", "30000", how))


@pytest.mark.parametrize("how,state,detail,code", [
    ("abort", "crashed", "killed by SIGABRT", 3),
    ("exit", "crashed", "exited with status 7", 3),
    ("stop", "ended", "", 0),
])
def test_participant_ending_mid_run(tmp_path, how, state, detail, code):
    out = tmp_path / "run"
    r, info = run(ZONES, crash_deployment(tmp_path, how), out, expect=code)
    crasher = next(p for p in info["participants"] if p["name"] == "10.1.0.2")
    assert (crasher["state"], crasher["detail"]) == (state, detail)
    # Its end is known at the barrier of the slice (at most the 50 µs lookahead) it ended in.
    assert 30_000_000 - 50_000 <= crasher["end_ns"] < 31_000_000
    if code:
        assert info["status"] == "participant-failure"
        assert "participant 10.1.0.2 crashed" in r.stderr
    # The others went on; the lookahead grew once the close neighbour was gone.
    lookaheads = [e for e in read_jsonl(out / "events.jsonl") if e["event"] == "lookahead"]
    assert [e["lookahead_ns"] for e in lookaheads] == [50_000, 6_060_000]
    assert 30_000_000 - 50_000 <= lookaheads[1]["time_ns"] < 31_000_000
    rtts = rtts_us(out / "participants" / "10.1.0.1.log")
    assert len(rtts) == 6
    assert 0 <= median(rtts) - (2 * 6060 + 200) <= 50
    check_deliveries(out, 6_060_000, 10e6)


def test_until_ends_the_simulation(tmp_path):
    """A server waiting for 100 pings that never come: --until ends it."""
    d = deployment(tmp_path / "d.xml",
                   pingpong("a1", "10.1.0.1", "client", "10.1.0.2", 3, 100),
                   pingpong("a2", "10.1.0.2", "server", "10.1.0.1", 100))
    out = tmp_path / "run"
    r, info = run(ZONES, d, out, "--until", "20ms", "--end-grace", "0.5")
    assert info["simulated_ns"] == 20_000_000
    server = next(p for p in info["participants"] if p["name"] == "10.1.0.2")
    assert server["state"] == "ended", server
    assert "the simulation ended before message 4 of 100" in \
        (out / "participants" / "10.1.0.2.log").read_text()


# ---- bad input ----------------------------------------------------------------------------------

def expect_error(tmp_path, platform, deploy, *needles, extra=()):
    r = tansiv("run", platform, deploy, "--out", tmp_path / "run", "--quiet", *extra)
    assert r.returncode == 1, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    return r


def test_unknown_host(tmp_path):
    d = deployment(tmp_path / "d.xml", actor("a1", "10.1.0.1", "pingpong"),
                   actor("nowhere", "10.1.0.2", "pingpong"))
    expect_error(tmp_path, ZONES, d, f"{d}:5: unknown host 'nowhere'", "a1, a2, b1, c1")


def test_unparsable_platform(tmp_path):
    bad = tmp_path / "p.xml"
    bad.write_text(ZONES.read_text().replace('<link id="bc" bandwidth="10MBps" latency="4ms"/>',
                                             '<link id="bc" bandwidth="10MBps" latency="4ms">'))
    expect_error(tmp_path, bad, EXAMPLES / "pingpong" / "deployment.xml",
                 f"{bad}:36: not well-formed XML: mismatched tag")


def test_platform_simgrid_rejects(tmp_path):
    bad = tmp_path / "p.xml"
    bad.write_text(ZONES.read_text().replace('latency="4ms"', 'latency="4 parsecs"'))
    expect_error(tmp_path, bad, EXAMPLES / "pingpong" / "deployment.xml",
                 f"{bad}: SimGrid cannot load the platform", "Parse error at", "p.xml:30: unknown unit")


def test_platform_without_doctype(tmp_path):
    bad = tmp_path / "p.xml"
    bad.write_text("\n".join(l for l in ZONES.read_text().splitlines() if "DOCTYPE" not in l))
    expect_error(tmp_path, bad, EXAMPLES / "pingpong" / "deployment.xml",
                 f"{bad}: SimGrid needs the line <!DOCTYPE platform")


def test_unparsable_deployment(tmp_path):
    d = tmp_path / "d.xml"
    d.write_text("<?xml version='1.0'?>\n<platform version=\"4.1\">\n  <actor host=\"a1\"\n")
    expect_error(tmp_path, ZONES, d, f"{d}:3: not well-formed XML: unclosed token")


@pytest.mark.parametrize("actors,message", [
    ([actor("a1", "10.1.0.1", "no-such-program"), actor("a2", "10.1.0.2", "pingpong")],
     ":4: program 'no-such-program' of 10.1.0.1 not found"),
    ([actor("a1", "10.1.0.1", "./missing/prog"), actor("a2", "10.1.0.2", "pingpong")],
     ":4: program './missing/prog' of 10.1.0.1 not found"),
    ([actor("a1", "ten.one", "pingpong")], ":4: first argument 'ten.one' is not an IPv4"),
    (['  <actor host="a1" function="vsg_vm"><argument value="10.1.0.1"/></actor>\n'],
     ":4: an actor needs at least two arguments"),
    ([actor("a1", "10.1.0.1", "pingpong"), actor("a2", "10.1.0.1", "pingpong")],
     ":5: address 10.1.0.1 is already used at line 4"),
    (['  <actor host="a1" function="sender"/>\n'], ":4: actor function 'sender'"),
    ([], "no <actor function=\"vsg_vm\">"),
])
def test_bad_deployment(tmp_path, actors, message):
    """Actors, or raw XML for what the writer would not write."""
    d = tmp_path / "d.xml"
    d.write_text(HEADER + "".join(a if isinstance(a, str) else a.xml() for a in actors)
                 + "</platform>\n")
    expect_error(tmp_path, ZONES, d, str(d) + message if message.startswith(":") else message)


def test_zero_lookahead(tmp_path):
    p = two_hosts(tmp_path / "p.xml", latency="0")
    d = deployment(tmp_path / "d.xml", actor("h1", "10.0.0.1", "pingpong"),
                   actor("h2", "10.0.0.2", "pingpong"))
    expect_error(tmp_path, p, d, "zero lookahead: the route h1 -> h2 has no latency")


def test_participant_with_a_wrong_address(tmp_path):
    d = deployment(tmp_path / "d.xml",
                   pingpong("a1", "10.1.0.1", "client", "10.1.0.2", 1),
                   actor("a2", "10.1.0.2", "pingpong", "-n", "10.9.9.9", "--", "server",
                         "10.1.0.1", "1"))
    expect_error(tmp_path, ZONES, d, "connected as 10.9.9.9, an address no actor")


def test_participant_failing_before_connecting(tmp_path):
    d = deployment(tmp_path / "d.xml",
                   pingpong("a1", "10.1.0.1", "client", "10.1.0.2", 1),
                   actor("a2", "10.1.0.2", "pingpong", "-n", "10.1.0.2", "-b", "0"))
    r = expect_error(tmp_path, ZONES, d, "participant 10.1.0.2 (pingpong) exited with status 1 "
                                         "before connecting")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "error" and "before connecting" in info["error"]
    log = (tmp_path / "run" / "participants" / "10.1.0.2.log").read_text()
    assert "bad number of buffers '0'" in log


def test_bad_durations(tmp_path):
    r = tansiv("run", CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", "--force", "soon")
    assert r.returncode == 2 and "'soon' is not a duration" in r.stderr
    for bad in ("0", "0.4ns"):  # rounds to 0 ns: caught before anything starts
        r = tansiv("run", CLUSTER, EXAMPLES / "pingpong" / "deployment.xml", "--force", bad)
        assert r.returncode == 2 and f"'{bad}' is 0 ns once rounded" in r.stderr, r.stderr


def test_an_existing_run_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    run(EXAMPLES / "send" / "platform.xml", EXAMPLES / "send" / "deployment.xml", out)
    r = tansiv("run", CLUSTER, EXAMPLES / "send" / "deployment.xml", "--out", out)
    assert r.returncode == 1 and "already holds a run" in r.stderr


def test_the_lookahead_follows_departures_as_a_search_over_every_pair_would():
    """routes.Lookahead (sorted once, resumed as participants leave) against the plain
    minimum over every pair of those left, on random latencies and a random order of
    departures."""
    import random
    from tansiv.run.routes import Lookahead, Route
    rng = random.Random(7)
    names = [f"10.0.0.{k}" for k in range(1, 31)]
    table = [Route(a, b, a, b, rng.randrange(1, 50) * 1000, 1e6)
             for a in names for b in names if a != b]
    closest, left = Lookahead(table), list(names)
    rng.shuffle(left)
    while left:
        pairs = [r.latency_ns for r in table if r.src in left and r.dst in left]
        assert closest.among(left)[0] == (min(pairs) if pairs else None)
        left.pop()
