"""bufferbloat: ping round trips while a TCP flow (iperf3) fills the same direction's
bottleneck queue, against the queue's size and discipline. A full DropTail queue of Q frames
delays a ping by Q frames' serialization; CoDel and FQ-CoDel keep it near the base RTT."""

from ...errors import TansivError
from ...run import routes as routes_mod
from ...run.choices import DEFAULT_QUEUE_SIZE
from ...run.wire import ethernet_wire_size
from ...units import queue_size
from .. import claims, figures, metrics
from .base import Figure, Workload, median

FULL_FRAME = ethernet_wire_size(1514)  # a TCP segment of 1448 bytes, on the wire



def _bufferbloat(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    exps = tables["experiments"]
    d = figures.ok(tables["bufferbloat"])
    if d.empty:
        return figures.empty(ax, exps, "bufferbloat", "bufferbloat results")
    d = d.assign(setup=[figures.setup(r, queue=True) for r in d.to_dict("records")],
                 queue=d.queue_size.fillna(DEFAULT_QUEUE_SIZE), rtt_ms=d.value / 1e6)
    rtt = d[d.metric == "rtt_ns"]
    sns.boxplot(data=rtt, x="queue", y="rtt_ms", hue="setup", ax=ax, fliersize=2)
    expect = d[d.metric == "full_queue_rtt_ns"].groupby("queue").rtt_ms.median()
    base = d[d.metric == "model_rtt_ns"].rtt_ms.median()
    order = [t.get_text() for t in ax.get_xticklabels()]
    ax.scatter([order.index(q) for q in expect.index], expect.values, marker="_", s=900,
               c="black", zorder=5, label="base + full queue / bandwidth")
    ax.axhline(base, ls="--", c="grey", lw=1, label="base RTT (the model)")
    figures.labels(ax, "queue size (each link direction's buffer)",
                   "ping RTT under load (ms)", "Bufferbloat: ping RTT behind a TCP flow")
    ax.legend(fontsize=7)
    figures.footnote(fig, exps, "bufferbloat")


class Bufferbloat(Workload):
    name = "bufferbloat"
    modes = frozenset({"tansiv", "netem"})
    params = {
        "seconds": {"type": "integer", "minimum": 3, "default": 8},
        "interval_ms": {"type": "integer", "minimum": 1, "default": 50},
    }
    min_n = 2
    table = "bufferbloat"
    metrics = ("rtt_ns", "model_rtt_ns", "full_queue_rtt_ns")
    figures = (Figure("bufferbloat", """Ping RTT measured inside the client VM while iperf3
fills the route from client to server, per queue size and discipline (boxes: every ping of
the flow's steady state, from 2 s after its start), with the base RTT the model gives
(dashed) and the RTT behind a full queue: base + the queue's frames (full-size TCP segments,
1538 bytes on the wire) over the link's bandwidth (black). DropTail reaches it; CoDel and
FQ-CoDel keep the ping near the base RTT.""", _bufferbloat, size=(8, 4.5), claims=(
        claims.relative("Under tansiv, behind a DropTail queue the slowest pings (p95) wait "
                        "for the whole queue: base RTT + queue / bandwidth, within 5 %",
                        "bufferbloat", "rtt_ns", "full_queue_rtt_ns", tolerance=0.05,
                        stat="p95", where={"mode": "tansiv", "queue": "droptail"}),
        claims.close_to("Under tansiv, FQ-CoDel keeps the median ping within 5 ms of the "
                        "base RTT", "bufferbloat", "rtt_ns", "model_rtt_ns", within=5,
                        scale=1e-6, unit=" ms", where={"mode": "tansiv", "queue": "fq_codel"}),
    )),)

    def plan(self, p, prm):
        seconds, interval = prm["seconds"], prm["interval_ms"]
        count = max(1, int((seconds - 3) * 1000 / interval))
        for c, s in p.pairs():
            p.vm(c, f"iperf3 -c {p.addr[s]} -t {seconds} -f m > /dev/null & "
                    f"sleep 2; tping -c {count} -i {interval} -s 56 -w 1 {p.addr[s]}; wait")
            p.vm(s, "iperf3 -s -1 > /dev/null")
            p.main.append(p.addr[c])
        p.wait_s = seconds + 5

    def extract(self, p, run, run_dir):
        route = routes_mod.load(run_dir)
        network = (run.options or {}).get("network") or "simgrid"
        size, in_packets = queue_size(p.exp.get("queue_size") or DEFAULT_QUEUE_SIZE)
        rows = []
        for r in metrics.rtt_rows(run):
            if r["warmup"]:
                continue
            there, back = route[(r["src"], r["dst"])], route[(r["dst"], r["src"])]
            ping = ethernet_wire_size(r["size"] + metrics.ICMP_FRAME_EXTRA)
            model = metrics.model_rtt_ns(there, back, ping, ping, network)
            queued = size * FULL_FRAME if in_packets else size
            first_hop = (there.hop_bandwidths_Bps or [there.bandwidth_Bps])[0]
            where = {"unit": "ns", "src": r["src"], "dst": r["dst"]}
            rows.append({"metric": "rtt_ns", "value": r["rtt_ns"], "seq": r["seq"], **where})
            if not any(x["metric"] == "model_rtt_ns" for x in rows):
                rows.append({"metric": "model_rtt_ns", "value": model, **where})
                rows.append({"metric": "full_queue_rtt_ns",
                             "value": model + queued / first_hop * 1e9, **where})
        if not any(x["metric"] == "rtt_ns" for x in rows):
            raise TansivError("no ping under load in the client's output")
        return rows

    def key_figure(self, rows):
        rtt = median(rows, "rtt_ns")
        return "" if rtt is None else f"ping under load {rtt / 1e6:.2f} ms (median)"
