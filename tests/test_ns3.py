"""The ns-3 network model (--network ns3) against physics: a frame's delivery is its route's
latency plus its serialization on every hop; a burst into a queue of Q delivers Q + 1 frames,
one serialization apart, and drops the rest where they did not fit; a shared bottleneck
delays each frame by the bytes ahead of it over its bandwidth; loss follows its probability,
and the same seed loses the same frames. The model is driven without participants
(tests/ns3_driver.py, one process per run: SimGrid's and ns-3's engines are one per
process), stepped as the coordinator steps it; every delivery comes at or after the date the
model gave as the earliest possible one (the rounds' ends)."""

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (REPO, TESTS_BIN, actor, read_csv, read_jsonl, tansiv, two_hosts, vm,
                     write_deployment)
from tansiv import paths
from tansiv.experiments import config, metrics, runner, sweep, topology
from tansiv.run import routes
from tansiv.run.wire import ethernet_wire_size
from tansiv.vm import build

BURST, IDLE = TESTS_BIN / "burst", TESTS_BIN / "idle"

MS, US = 1_000_000, 1000

ONE_LINK = """<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <zone id="z" routing="Full">
    <host id="a" speed="1Gf"/><host id="b" speed="1Gf"/>
    <link id="l" bandwidth="{bw}Bps" latency="{lat}ns">{props}</link>
    <route src="a" dst="b"><link_ctn id="l"/></route>
  </zone>
</platform>
"""


def one_link(tmp_path, bw=125_000_000, lat=100 * US, props="") -> Path:
    path = tmp_path / "one-link.xml"
    path.write_text(ONE_LINK.format(bw=bw, lat=lat, props=props))
    return path


def drive(tmp_path, platform, hosts, sends, until_ns, **options):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"platform": str(platform), "hosts": hosts, "sends": sends,
                                "until_ns": until_ns, "options": options}))
    r = subprocess.run([sys.executable, str(REPO / "tests" / "ns3_driver.py"), str(spec)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    for bound, delivered in out["steps"]:  # conservative: nothing before the bound given
        assert all(t >= bound for t in delivered), (bound, delivered)
    return out


def delivered(out) -> dict:
    return {f[0]: f[1] for f in out["fates"] if f[2] is None}


def dropped(out) -> dict:
    return {f[0]: (f[1], f[2], f[3]) for f in out["fates"] if f[2] is not None}


def test_a_frame_takes_the_latency_and_its_serialization_on_every_hop(tmp_path):
    """Dumbbell h1 -> h2: access (12.5 MB/s, 2.5 ms), bottleneck (1.25 MB/s, 5 ms), access:
    1500 bytes take 120 us + 1.2 ms + 120 us to serialize, stored and forwarded at each hop
    (SimGrid's flow model would count the bottleneck's 1.2 ms only)."""
    plat = topology.write(tmp_path / "p.xml", "dumbbell", 2, 10 * MS, 1.25e6)
    out = drive(tmp_path, plat, ["h1", "h2"],
                [["h1", "h2", 1500, 1000], ["h2", "h1", 64, 5 * MS]], 100 * MS)
    assert delivered(out) == {0: 1000 + 10 * MS + 120 * US + 1200 * US + 120 * US,
                              1: 5 * MS + 10 * MS + 2 * 64 * 80 + 64 * 800}


@pytest.mark.parametrize("queue", ["droptail", "red", "codel", "fq_codel", "pie"])
def test_a_burst_into_an_idle_link_delivers_the_queue_and_one_and_drops_the_rest(tmp_path,
                                                                                  queue):
    """150 frames of 1500 bytes at once into a 1 Gbit/s link whose buffer is 100 packets:
    one on the wire, 100 behind it, delivered 12 us apart; 49 dropped, queue full."""
    out = drive(tmp_path, one_link(tmp_path), ["a", "b"],
                [["a", "b", 1500, 0]] * 150, 50 * MS, queue=queue, queue_size="100p")
    got = delivered(out)
    assert sorted(got) == list(range(101))
    assert [got[k] for k in range(101)] == [100 * US + (k + 1) * 12 * US for k in range(101)]
    lost = dropped(out)
    assert sorted(lost) == list(range(101, 150))
    assert {(t, why.split(":")[0], where) for t, why, where in lost.values()} == {
        (0, "queue full", "l (a -> b)")}


def test_a_queue_in_bytes_holds_what_fits(tmp_path):
    """DropTail of 64kB (64000 bytes): 42 frames of 1500 fit (63000), with one on the wire:
    43 delivered."""
    out = drive(tmp_path, one_link(tmp_path), ["a", "b"], [["a", "b", 1500, 0]] * 60, 50 * MS,
                queue_size="64kB")
    assert len(delivered(out)) == 43 and len(dropped(out)) == 17


def fifo_hops(frames, hops):
    """Where each frame is delivered by links that pass frames one at a time, in the order
    they reach them: frames {k: (send date, size, route)}, a route a list of link names,
    hops {link: (ns per byte, latency ns)}. Returns ({k: delivery}, {k: wait per hop})."""
    at = {k: t for k, (t, _, _) in frames.items()}
    waits = {k: [] for k in frames}
    for hop in range(max(len(r) for _, _, r in frames.values())):
        free = {}
        for t, k in sorted((at[k], k) for k, (_, _, r) in frames.items() if hop < len(r)):
            link, size = frames[k][2][hop], frames[k][1]
            start = max(t, free.get(link, 0))
            waits[k].append(start - t)
            free[link] = start + size * hops[link][0]
            at[k] = free[link] + hops[link][1]
    return at, waits


def test_a_shared_bottleneck_delays_each_frame_by_the_bytes_ahead(tmp_path):
    """h1 -> h3 and h2 -> h4 across a dumbbell's bottleneck (1.25 MB/s: 800 ns a byte; the
    access links ten times faster), frames of random sizes at random dates: each is delivered
    when links that pass one frame at a time, in order, say; its wait at a link, the bytes
    ahead of it there over the bandwidth."""
    plat = topology.write(tmp_path / "p.xml", "dumbbell", 4, 4 * MS, 1.25e6)
    rng = random.Random(3)
    sends, t = [], 0
    for _ in range(60):
        t += rng.randrange(50 * US, 900 * US)
        src, dst = rng.choice([("h1", "h3"), ("h2", "h4")])
        sends.append([src, dst, rng.randrange(64, 1500), t])
    out = drive(tmp_path, plat, ["h1", "h2", "h3", "h4"], sends, 500 * MS, queue_size="1000p")
    hops = {"bottleneck": (800, 2 * MS), **{f"{h} access": (80, 1 * MS)
                                             for h in ("h1", "h2", "h3", "h4")}}
    frames = {k: (at, size, [f"{src} access", "bottleneck", f"{dst} access"])
              for k, (src, dst, size, at) in enumerate(sends)}
    expected, waits = fifo_hops(frames, hops)
    assert delivered(out) == expected
    assert max(w[1] for w in waits.values()) > 1 * MS  # they did queue at the bottleneck


def test_loss_follows_its_probability_and_the_seed(tmp_path):
    """20000 frames over a link that loses 1 %: about 200 lost (4 sigma: 56); the same seed
    loses the same frames, another seed others."""
    sends = [["a", "b", 100, k * 10 * US] for k in range(20000)]
    runs = {}
    for name, seed in (("one", 1), ("again", 1), ("other", 2)):
        out = drive(tmp_path, one_link(tmp_path), ["a", "b"], sends, 1000 * MS, loss=0.01,
                    seed=seed)
        runs[name] = dropped(out)
        assert {why for _, why, _ in runs[name].values()} == {"loss"}
    sigma = math.sqrt(20000 * 0.01 * 0.99)
    assert abs(len(runs["one"]) - 200) < 4 * sigma, len(runs["one"])
    assert runs["one"] == runs["again"]
    assert len(set(runs["one"]) & set(runs["other"])) < len(runs["one"]) / 2


def test_a_links_properties_override_the_options(tmp_path):
    """A link's <prop>s: a queue of 10 packets with CoDel, and loss, on this link only."""
    props = ('<prop id="tansiv.queue" value="codel"/><prop id="tansiv.queue_size" '
             'value="10p"/>')
    out = drive(tmp_path, one_link(tmp_path, props=props), ["a", "b"],
                [["a", "b", 1500, 0]] * 30, 50 * MS, queue="droptail", queue_size="100p")
    assert len(delivered(out)) == 11


@pytest.mark.parametrize("props,option,said", [
    ('<prop id="tansiv.queue" value="sfq"/>', {}, "tansiv.queue 'sfq' is not one of"),
    ('<prop id="tansiv.loss" value="1.5"/>', {}, "tansiv.loss: '1.5' is not a probability"),
    ('<prop id="tansiv.queue_size" value="0p"/>', {}, "'0p' is not a queue size"),
    ('<prop id="tansiv.queue_sise" value="10p"/>', {}, "unknown property tansiv.queue_sise"),
    ('', {"queue": "fq_codel", "queue_size": "64kB"}, "fq_codel's size is in packets"),
])
def test_bad_queues_and_losses_are_named_with_their_link(tmp_path, props, option, said):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"platform": str(one_link(tmp_path, props=props)),
                                "hosts": ["a", "b"], "sends": [], "until_ns": 1,
                                "options": option}))
    r = subprocess.run([sys.executable, str(REPO / "tests" / "ns3_driver.py"), str(spec)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and said in r.stderr and "link l" in r.stderr, r.stderr[-2000:]


# ---- on the command line: processes, bad input ------------------------------------------------

def test_processes_over_ns3_lose_what_does_not_fit_and_say_where(tmp_path):
    """A process sends 300 frames of 1000 bytes as fast as it can into 10 Mbit/s with a
    queue of 20: most are dropped, each in packets.jsonl with when and where; every frame is
    either delivered or dropped."""
    p = two_hosts(tmp_path / "p.xml", "1ms", "10Mbps")
    d = write_deployment(tmp_path / "d.xml",
                         actor("h1", "10.0.0.1", BURST, "-n", "10.0.0.1", "--", "send",
                               "10.0.0.2", 300, 1000, "stop"),
                         actor("h2", "10.0.0.2", IDLE, "-n", "10.0.0.2", "--", 2_000_000))
    out = tmp_path / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", "--network", "ns3", "--queue-size",
               "20p", "--seed", "7")
    assert r.returncode == 0, r.stderr
    packets = read_jsonl(out / "packets.jsonl")
    assert len(packets) == 300
    lost = [x for x in packets if x.get("dropped")]
    assert len(lost) > 200 and all(x["dropped"] == "queue full" and x["drop_ns"] >= x["send_ns"]
                                   and x["where"].startswith("star_link_1_UP (h1 ->")
                                   for x in lost), lost[:3]
    rec = json.loads((out / "run.json").read_text())
    assert rec["packets_dropped"] == len(lost) and rec["packets_late"] == 0
    assert (rec["options"]["network"], rec["options"]["queue_size"], rec["options"]["seed"]) \
        == ("ns3", "20p", 7)


@pytest.mark.parametrize("args,said", [
    (["--loss", "0.01"], "--loss: queues and loss are ns-3's (--network ns3)"),
    (["--network", "ns3", "--loss", "1"], "'1' is not a probability"),
    (["--network", "ns3", "--queue-size", "0p"], "'0p' is not a queue size"),
    (["--network", "ns3", "--queue", "sfq"], "invalid choice: 'sfq'"),
    (["--network", "ns3", "--seed", "0"], "'0': expected a whole number > 0"),
])
def test_bad_network_options_stop_before_anything_runs(tmp_path, args, said):
    p, d = two_hosts(tmp_path / "p.xml", "1ms"), tmp_path / "d.xml"
    write_deployment(d, actor("h1", "10.0.0.1", IDLE, "-n", "10.0.0.1", "--", 1000),
                     actor("h2", "10.0.0.2", IDLE, "-n", "10.0.0.2", "--", 1000))
    r = tansiv("run", p, d, "--out", tmp_path / "run", *args)
    assert r.returncode != 0 and said in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


def test_without_the_ns3_model_the_run_says_so(tmp_path):
    """A prefix built where ns-3 is missing (no libns3-dev): --network ns3 is refused, one
    line saying why; SimGrid's model works as ever."""
    prefix = tmp_path / "prefix"
    shutil.copytree(paths.prefix(), prefix, symlinks=True,
                    ignore=shutil.ignore_patterns("*tansiv-ns3*", "lib*", "site-packages"))
    (prefix / "lib").mkdir(exist_ok=True)
    for lib in paths.libdir().glob("libtansiv-*"):
        if "ns3" not in lib.name:
            shutil.copy2(lib, prefix / "lib" / lib.name, follow_symlinks=False)
    p, d = two_hosts(tmp_path / "p.xml", "1ms"), tmp_path / "d.xml"
    write_deployment(d, actor("h1", "10.0.0.1", IDLE, "-n", "10.0.0.1", "--", 1000),
                     actor("h2", "10.0.0.2", IDLE, "-n", "10.0.0.2", "--", 1000))
    env = {"TANSIV_PREFIX": str(prefix)}
    r = tansiv("run", p, d, "--out", tmp_path / "ns3", "--network", "ns3", env=env)
    assert r.returncode == 1 and "ns-3 model is not built on this machine" in r.stderr, r.stderr
    r = tansiv("run", p, d, "--out", tmp_path / "simgrid", env=env)
    assert r.returncode == 0, r.stderr


# ---- VMs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vms():
    """QEMU and the guest image (built by setup.sh; cached), for the tansiv commands here."""
    built = build.prepare()
    os.environ.update(built.env())
    return built


def vm_pair(tmp_path: Path, cmd1: str, latency="1ms", bandwidth="125MBps"):
    p = two_hosts(tmp_path / "platform.xml", latency, bandwidth)
    d = write_deployment(tmp_path / "deployment.xml", vm("h1", "10.0.0.1", cmd1),
                         vm("h2", "10.0.0.2", "sleep 1000"))
    return p, d


def vm_run(p, d, out, *extra):
    r = tansiv("run", p, d, "--out", out, "--quiet", "--main", "10.0.0.1", "--until", "30",
               "--end-grace", "3", *extra, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def rtts_ns(out: Path) -> list:
    return [e["rtt_ns"] for e in read_jsonl_lines(out / "participants" / "10.0.0.1.log")
            if e.get("event") == "rtt" and not e.get("warmup")]


def read_jsonl_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_vm_pings_over_ns3_are_the_flow_models_plus_serialization_on_every_hop(vms, tmp_path):
    """Same guests, same pings, both models: every RTT under ns-3 is the one under SimGrid
    plus what store-and-forward adds, the ping's frame serialized on each hop rather than
    once at the bottleneck, there and back; to the nanosecond."""
    p, d = vm_pair(tmp_path, "tping -c 10 -i 20 -s 56 -w 1 10.0.0.2")
    flows = rtts_ns(vm_run(p, d, tmp_path / "simgrid"))
    packets = rtts_ns(vm_run(p, d, tmp_path / "ns3", "--network", "ns3"))
    table = routes.load(tmp_path / "ns3")
    wire = ethernet_wire_size(56 + metrics.ICMP_FRAME_EXTRA)
    extra = sum(table[pair].serialization_ns(wire, "ns3") - table[pair].serialization_ns(wire)
                for pair in (("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")))
    assert len(flows) == len(packets) == 10 and extra > 0
    assert [b - a for a, b in zip(flows, packets)] == [round(extra)] * 10


def test_the_same_seed_loses_the_same_frames_and_the_guests_see_the_same(vms, tmp_path):
    """100 pings over links that lose 5 % each: twice with seed 1, bit for bit the same guest
    output and packets; seed 2 loses other frames."""
    p, d = vm_pair(tmp_path, "tping -c 100 -i 5 -s 56 -w 1 10.0.0.2")
    runs = {name: vm_run(p, d, tmp_path / name, "--network", "ns3", "--loss", "0.05",
                         "--seed", seed)
            for name, seed in (("a", "1"), ("b", "1"), ("other", "2"))}

    def lost(out):
        return [(x["src"], x["send_ns"]) for x in read_jsonl(out / "packets.jsonl")
                if x.get("dropped")]
    assert lost(runs["a"]) and all(
        x["dropped"] == "loss" for x in read_jsonl(runs["a"] / "packets.jsonl")
        if x.get("dropped"))
    assert (runs["a"] / "packets.jsonl").read_bytes() == (runs["b"] / "packets.jsonl").read_bytes()
    for name in ("10.0.0.1.log", "10.0.0.2.log"):
        assert (runs["a"] / "participants" / name).read_bytes() == \
            (runs["b"] / "participants" / name).read_bytes()
    assert lost(runs["a"]) != lost(runs["other"])


def experiment(sweep_raw: dict, out: Path) -> tuple:
    """One point of a sweep of tansiv's workloads, through the pipeline's runner: its status
    and {metric: [values]}."""
    c = {"sweeps": {"s": {"modes": ["tansiv"], "network": ["ns3"], **sweep_raw}}}
    config.check(c)
    (exp,) = sweep.expand(c).values()
    status = runner.run(exp, out)
    assert status["status"] == "ok", status
    values = {}
    for row in read_csv(out / "metrics.csv"):
        values.setdefault(row["metric"], []).append(float(row["value"]))
    return status, values


def test_bufferbloat_droptail_fills_and_fq_codel_does_not(vms, tmp_path):
    """A ping behind an iperf3 flow across 10 Mbit/s: behind a DropTail queue of 50 frames it
    waits for the whole queue, base + 50 x 1538 bytes / bandwidth (the slowest pings, within
    5 %); FQ-CoDel keeps it within 5 ms of the base RTT."""
    point = {"workload": "bufferbloat", "queue_size": ["50p"], "latency": ["4ms"],
             "bandwidth": ["10Mbps"], "bufferbloat": {"seconds": 6}}
    _, tail = experiment({**point, "queue": ["droptail"]}, tmp_path / "droptail")
    rtt = sorted(tail["rtt_ns"])
    p95, full = rtt[int(0.95 * (len(rtt) - 1))], tail["full_queue_rtt_ns"][0]
    print(f"droptail: p95 {p95 / 1e6:.2f} ms, base + full queue {full / 1e6:.2f} ms")
    assert abs(p95 - full) < 0.05 * full
    _, fair = experiment({**point, "queue": ["fq_codel"]}, tmp_path / "fq_codel")
    base = fair["model_rtt_ns"][0]
    median = sorted(fair["rtt_ns"])[len(fair["rtt_ns"]) // 2]
    print(f"fq_codel: median {median / 1e6:.2f} ms, base {base / 1e6:.2f} ms")
    assert base < median < base + 5e6


def test_tcp_under_loss_carries_what_mathis_model_says(vms, tmp_path):
    """Reno across links that lose 1 % each (about 2 % per route): iperf3's goodput is
    within 40 % of MSS / RTT x 1.22 / sqrt(p)."""
    _, got = experiment({"workload": "iperf3", "loss": [0.01], "latency": ["10ms"],
                         "bandwidth": ["10Mbps"],
                         "iperf3": {"seconds": 10, "congestion": "reno"}}, tmp_path / "loss")
    ratio = got["goodput_bps"][0] / got["mathis_bps"][0]
    print(f"goodput {got['goodput_bps'][0] / 1e6:.2f} Mbit/s, Mathis "
          f"{got['mathis_bps'][0] / 1e6:.2f} Mbit/s: ratio {ratio:.2f}")
    assert 0.6 < ratio < 1.4
