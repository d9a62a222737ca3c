"""tansiv run --pcap: every participant's capture against packets.jsonl, read by a reader of
the format written here from its description, and by tshark. Real SimGrid, real processes,
real VMs."""

import ipaddress
import shutil
import struct
import subprocess
from decimal import Decimal

import pytest

from helpers import REPO, actor, read_jsonl, tansiv, write_deployment
from test_vms import BOOT_S, prepared, run_vms, two_vms  # noqa: F401 (prepared: a fixture)

PINGPONG = REPO / "examples" / "pingpong"
TSHARK = shutil.which("tshark")
NO_TSHARK = "tshark is not installed (setup.sh installs Debian's tshark)"


def read_pcap(path):
    """[(time_ns, frame)] of a pcap file: nanosecond format, little-endian, Ethernet."""
    data = path.read_bytes()
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B23C4D, 2, 4, 1)
    records, off = [], 24
    while off < len(data):
        sec, nsec, caplen, size = struct.unpack_from("<IIII", data, off)
        assert nsec < 10**9 and caplen == size
        records.append((sec * 10**9 + nsec, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    assert off == len(data)
    return records


def ip_addresses(frame):
    """(source, destination) of an Ethernet frame carrying IPv4."""
    assert frame[12:14] == b"\x08\x00"
    return tuple(str(ipaddress.IPv4Address(frame[k:k + 4])) for k in (26, 30))


def expected(packets, me):
    """(time_ns, src, dst) of what me's file must hold: what it sent, at send_ns; what it
    received, at deliver_ns (a dropped packet only on its sender's side)."""
    rows = [(p["send_ns"], p["src"], p["dst"]) for p in packets if p["src"] == me]
    rows += [(p["deliver_ns"], p["src"], p["dst"]) for p in packets
             if p["dst"] == me and p["deliver_ns"] is not None]
    return sorted(rows)


def check_captures(out, names):
    """Every file holds exactly its participant's packets of packets.jsonl, at their exact
    times, in time order. Returns {name: records}."""
    packets = read_jsonl(out / "packets.jsonl")
    captures = {}
    for me in names:
        records = read_pcap(out / "pcap" / f"{me}.pcap")
        times = [t for t, _ in records]
        assert times == sorted(times), f"{me}: records out of time order"
        assert sorted((t, *ip_addresses(f)) for t, f in records) == expected(packets, me)
        captures[me] = records
    return captures


def tshark(path, *fields, options=()):
    """Rows of the fields tshark decodes, one per frame."""
    r = subprocess.run(["tshark", "-r", path, *options, "-T", "fields",
                        *(a for f in fields for a in ("-e", f))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines()]


def epoch_ns(text):
    return int(Decimal(text) * 10**9)


# ---- processes --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pingpong_runs(tmp_path_factory):
    """examples/pingpong with --pcap; again with a lookahead forced above the route latency
    (deliveries then come at later barriers than SimGrid's completions)."""
    runs = {}
    for name, extra in (("exact", []), ("forced", ["--force", "2ms"])):
        out = tmp_path_factory.mktemp(f"pingpong-{name}") / "run"
        r = tansiv("run", PINGPONG / "platform.xml", PINGPONG / "deployment.xml", "--out", out,
                   "--quiet", "--pcap", *extra)
        assert r.returncode == 0, r.stderr
        runs[name] = out
    return runs


@pytest.mark.parametrize("name", ["exact", "forced"])
def test_pingpong_captures_hold_every_packet_and_payload(pingpong_runs, name):
    out = pingpong_runs[name]
    assert '"pcap": true' in (out / "run.json").read_text()
    captures = check_captures(out, ["10.0.0.1", "10.0.0.2"])
    for me, records in captures.items():
        assert len(records) == 40
        for src in ("10.0.0.1", "10.0.0.2"):
            # pingpong fills message k with k & 0xff, and the server echoes it: the k-th
            # message from src is that, on both sides.
            payloads = [f[42:] for _, f in records if ip_addresses(f)[0] == src]
            assert payloads == [bytes([k & 0xFF]) * 1000 for k in range(1, 21)], (me, src)
    if name == "forced":
        packets = read_jsonl(out / "packets.jsonl")
        assert any(p["deliver_ns"] > p["complete_ns"] for p in packets)


def test_tshark_reads_pingpong_captures(pingpong_runs):
    if TSHARK is None:
        pytest.skip(NO_TSHARK)
    out = pingpong_runs["exact"]
    packets = read_jsonl(out / "packets.jsonl")
    for me in ("10.0.0.1", "10.0.0.2"):
        rows = tshark(out / "pcap" / f"{me}.pcap", "frame.time_epoch", "ip.src", "ip.dst",
                      "udp.length", "ip.checksum.status", options=["-o", "ip.check_checksum:TRUE"])
        assert sorted((epoch_ns(t), s, d) for t, s, d, _, _ in rows) == expected(packets, me)
        assert {(n, ok) for *_, n, ok in rows} == {("1008", "1")}  # 8 + 1000; checksum good


@pytest.mark.parametrize("case", ["simulation ended", "unknown destination"])
def test_dropped_packets_appear_only_on_the_sender_side(tmp_path, case):
    if case == "simulation ended":  # the first message is still in flight at 300 us
        deploy, extra = PINGPONG / "deployment.xml", ["--until", "300us"]
    else:
        deploy = write_deployment(tmp_path / "d.xml", actor(
            "node-1", "10.0.0.1", "pingpong", "-n", "10.0.0.1", "--", "client", "10.0.0.9", 3))
        extra = ["--force", "1ms", "--until", "5ms"]
    out = tmp_path / "run"
    r = tansiv("run", PINGPONG / "platform.xml", deploy, "--out", out, "--quiet", "--pcap",
               "--end-grace", "0.5", *extra)
    assert r.returncode == 0, r.stderr
    packets = read_jsonl(out / "packets.jsonl")
    assert len(packets) == 1 and packets[0]["dropped"].startswith(case)
    names = ["10.0.0.1", "10.0.0.2"] if case == "simulation ended" else ["10.0.0.1"]
    captures = check_captures(out, names)
    assert len(captures["10.0.0.1"]) == 1


def test_hub_payload_of_an_unknown_handle_is_empty(tmp_path):
    from tansiv.run.hub import Hub
    with Hub(str(tmp_path / "hub.sock")) as hub:
        assert hub.payload(12345) == b""


# ---- VMs --------------------------------------------------------------------------------------

PINGS = 5


def test_vm_captures_show_icmp_echoes_at_simulated_times(prepared, tmp_path):  # noqa: F811
    if TSHARK is None:
        pytest.skip(NO_TSHARK)
    p, d = two_vms(tmp_path, "1ms", f"tping -c {PINGS} -i 20 -w 0 10.0.0.2")
    out = tmp_path / "run"
    run_vms(p, d, out, f"{BOOT_S + PINGS * 0.022 + 1:.3f}", "--pcap")
    check_captures(out, ["10.0.0.1", "10.0.0.2"])
    packets = read_jsonl(out / "packets.jsonl")
    sent = {(p["src"], p["send_ns"]) for p in packets}
    received = {(p["dst"], p["deliver_ns"]) for p in packets}
    for me in ("10.0.0.1", "10.0.0.2"):
        rows = tshark(out / "pcap" / f"{me}.pcap", "frame.time_epoch", "ip.src", "ip.dst",
                      "icmp.type", options=["-Y", "icmp"])
        echoes = [(epoch_ns(t), s, d, int(k)) for t, s, d, k in rows]
        assert sorted(k for *_, k in echoes) == [0] * PINGS + [8] * PINGS, echoes
        for t, s, d, kind in echoes:
            assert (s, d) == (("10.0.0.1", "10.0.0.2") if kind == 8 else
                              ("10.0.0.2", "10.0.0.1"))
            assert (me, t) in (sent if s == me else received)

