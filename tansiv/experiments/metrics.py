"""Reading what participants printed (JSON lines on their console or output), and the model
their round trips are compared with."""

import json
import re
import statistics
from pathlib import Path

from ..run import routes
from ..run.record import RunRecord
from ..run.wire import ethernet_wire_size

# An ICMP echo of S bytes of data: 8 bytes of ICMP header, 20 of IPv4, 14 of Ethernet.
ICMP_FRAME_EXTRA = 8 + 20 + 14


def json_lines(path: Path):
    """The JSON objects with an "event" among a log's lines (kernel and QEMU messages,
    which are not JSON, are skipped)."""
    out = []
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "event" in rec:
            out.append(rec)
    return out


def events(run: RunRecord, kind: str):
    """(participant, event) for every JSON line of that kind the participants printed."""
    return [(p, e) for p in run.participants for e in json_lines(p.log) if e["event"] == kind]


def rtt_rows(run: RunRecord):
    """One row per round trip measured in a run: src, dst, seq, size, rtt_ns, warmup
    (tping prints rtt_ns, the pingpong example rtt_us)."""
    return [{"src": p.name, "dst": e["peer"], "seq": e["seq"], "size": e["size"],
             "rtt_ns": e["rtt_ns"] if "rtt_ns" in e else e["rtt_us"] * 1000,
             "warmup": bool(e.get("warmup", False))}
            for p, e in events(run, "rtt")]


def model_rtt_ns(there, back, request_bytes: int, reply_bytes: int,
                 network: str = "simgrid") -> float:
    """latency + serialization, there and back: size / bottleneck bandwidth for SimGrid's
    flows (CM02 without TCP window), size / bandwidth of every hop for ns-3's packets (stored
    and forwarded); there and back are routes.Route."""
    return (there.latency_ns + there.serialization_ns(request_bytes, network)
            + back.latency_ns + back.serialization_ns(reply_bytes, network))


def rtt_matrix(run_dir: Path, run: RunRecord = None):
    """{(src, dst): (median measured ns, model ns, samples)} for a run of VMs pinging with
    tping (ICMP echo: frame = data + 42 bytes, Ethernet framing on the wire) or of pingpong
    processes (messages of the given size)."""
    run = run or RunRecord.load(run_dir)
    roles = {p.name: p.role for p in run.participants}
    route = routes.load(run_dir)
    groups = {}
    for r in rtt_rows(run):
        if not r["warmup"]:
            groups.setdefault((r["src"], r["dst"]), []).append(r)
    out = {}
    for (src, dst), rows in sorted(groups.items()):
        size = rows[0]["size"]
        wire = ethernet_wire_size(size + ICMP_FRAME_EXTRA) if roles.get(src) == "vm" else size
        model = model_rtt_ns(route[(src, dst)], route[(dst, src)], wire, wire,
                             (run.options or {}).get("network") or "simgrid")
        out[(src, dst)] = (statistics.median(r["rtt_ns"] for r in rows), model, len(rows))
    return out


def format_rtt_matrix(matrix) -> str:
    """The seed's validation table: one row per source, measured median RTT in ms for each
    destination, then the model and the excess."""
    names = sorted({s for s, _ in matrix} | {d for _, d in matrix})
    width = max(len(n) for n in names) + 1
    lines = []
    for title, pick in (("measured RTT, median (ms)", lambda v: f"{v[0] / 1e6:10.4f}"),
                        ("model RTT (ms)", lambda v: f"{v[1] / 1e6:10.4f}"),
                        ("excess, measured - model (us)", lambda v: f"{(v[0] - v[1]) / 1e3:10.1f}")):
        lines.append(title)
        lines.append(" " * (width + 2) + "".join(f"{n:>10}" for n in names))
        for s in names:
            cells = [pick(matrix[(s, d)]) if (s, d) in matrix else f"{'-':>10}" for d in names]
            lines.append(f"{s:<{width}}: " + "".join(cells))
        lines.append("")
    return "\n".join(lines)


_IPERF3_RATE = re.compile(r"([0-9.]+)\s+([KMG]?)bits/sec\s.*\breceiver\s*$")
_UNIT = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def iperf3_goodput_bps(log: Path):
    """The receiver's goodput (bit/s) of the iperf3 client run a log holds, None if none."""
    try:
        text = Path(log).read_text(errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        m = _IPERF3_RATE.search(line)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    return None
