"""iperf3: TCP goodput between pairs of VMs against the configured bottleneck bandwidth,
and against the loss rate (Mathis et al.'s model of TCP under random loss)."""

import math

from ... import units
from ...errors import TansivError
from ...run import routes as routes_mod
from ...run.wire import ethernet_wire_size
from .. import claims, figures, metrics
from .base import Figure, Workload, median

MSS = 1448  # TCP payload of a 1500-byte IP packet with timestamps
SEGMENT, ACK = ethernet_wire_size(MSS + 66), ethernet_wire_size(66)  # on the wire
MATHIS_C = math.sqrt(3 / 2)  # periodic loss, one ACK per segment: 1.22


def mathis_bps(rtt_ns: float, loss: float) -> float:
    """Mathis, Semke, Mahdavi, Ott (1997): a Reno flow under random loss p carries
    MSS / RTT * C / sqrt(p)."""
    return MSS * 8 / (rtt_ns / 1e9) * MATHIS_C / math.sqrt(loss)


def _loss_goodput(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    exps = tables["experiments"]
    d = figures.ok(tables["goodput"])
    d = d[d.loss.fillna(0) > 0]
    if d.empty:
        return figures.empty(ax, exps, "iperf3", "iperf3 results under loss")
    d = d.assign(setup=[figures.setup(r) for r in d.to_dict("records")], mbps=d.value / 1e6)
    got = d[d.metric == "goodput_bps"]
    sns.scatterplot(data=got, x="loss", y="mbps", hue="setup", style="setup", s=60, ax=ax)
    model = d[d.metric == "mathis_bps"].groupby("loss").mbps.median()
    ceiling = d[d.metric == "ceiling_bps"].mbps.median()
    ax.plot(model.index, [min(m, ceiling) for m in model.values], ls="--", c="grey",
            marker="", label="Mathis: MSS/RTT x 1.22/sqrt(p), capped by the link")
    ax.set_xscale("log")
    ax.set_yscale("log")
    import matplotlib.ticker as ticker
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # the decades' labels are enough
    figures.labels(ax, "loss probability per link", "iperf3 TCP goodput (Mbit/s)",
                   "TCP (Reno) under random loss")
    ax.legend(fontsize=7)
    figures.footnote(fig, exps, "iperf3")


def _goodput(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    d = figures.ok(tables["goodput"]).assign(goodput_mbps=lambda x: x.value / 1e6,
                                             configured_mbps=lambda x: x.bandwidth_Bps * 8 / 1e6)
    d = d[d.metric == "goodput_bps"]
    if d.empty:
        return figures.empty(ax, tables["experiments"], "iperf3", "iperf3 results")
    sns.scatterplot(data=d, x="configured_mbps", y="goodput_mbps", hue="mode", style="mode",
                    s=60, ax=ax)
    top = max(d.configured_mbps.max(), d.goodput_mbps.max()) * 1.1
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=1, label="goodput = bandwidth")
    ax.plot([0, top], [0, top * MSS / SEGMENT], ls=":", c="black", lw=1,
            label="Ethernet ceiling: bandwidth × MSS / frame")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    figures.labels(ax, "configured bottleneck bandwidth (Mbit/s)", "iperf3 TCP goodput (Mbit/s)",
                   "TCP goodput against the configured bandwidth")
    ax.legend()
    figures.footnote(fig, tables["experiments"], "iperf3")


class Iperf3(Workload):
    name = "iperf3"
    modes = frozenset({"tansiv", "netem"})
    params = {"seconds": {"type": "integer", "minimum": 1, "default": 3},
              # seconds of the start left out of the goodput (iperf3 -O): slow start, which
              # at a 20 ms RTT and 1 Gbit/s takes a second of the flow's ramp
              "omit": {"type": "integer", "minimum": 0, "default": 0},
              # the guests' congestion control (iperf3 -C), e.g. reno; "": the kernel's
              "congestion": {"type": "string", "pattern": "^[a-z0-9_]*$", "default": ""},
              # bdp: the guests' TCP buffers may grow to 4 x the bandwidth-delay product (never
              # below Linux's 6 MiB cap); kernel: as the guest's memory sizes them (a 256 MiB
              # guest caps its window near 1 MB: 400 Mbit/s at a 20 ms RTT)
              "buffers": {"enum": ["bdp", "kernel"], "default": "bdp"}}
    min_n = 2
    table = "goodput"
    metrics = ("goodput_bps", "mathis_bps", "ceiling_bps")
    figures = (Figure("goodput", """TCP goodput reported by iperf3's receiver inside the
guests (after the sweep's `omit` seconds of slow start), against the bottleneck bandwidth the
platform configures (dashed: goodput = bandwidth).""", _goodput, claims=(
        claims.relative("Under tansiv, TCP goodput is within 1 % of the Ethernet ceiling "
                        "(bandwidth × MSS / frame on the wire)", "goodput", "goodput_bps",
                        "ceiling_bps", tolerance=0.01,
                        where={"mode": "tansiv", "loss": [0, None]}),)),
               Figure("loss_goodput", """TCP (Reno) goodput reported by iperf3's receiver
inside the guests, against each link's loss probability, under ns-3 (tansiv) and netem,
with Mathis et al.'s model drawn as the expectation: MSS / RTT x 1.22 / sqrt(p), p the loss
of the route's data direction (1 - (1 - loss)^hops), RTT the model's, capped by the link's
ceiling for TCP.""", _loss_goodput, claims=(
        claims.relative("Under tansiv with ns-3's packets, Reno's goodput across links that "
                        "lose 1 % each is within 40 % of Mathis' model", "goodput",
                        "goodput_bps", "mathis_bps", tolerance=0.4,
                        where={"mode": "tansiv", "loss": 0.01}),)))

    def plan(self, p, prm):
        cc = f" -C {prm['congestion']}" if prm["congestion"] else ""
        cc += f" -O {prm['omit']}" if prm["omit"] else ""
        tune = self._buffers(p) if prm["buffers"] == "bdp" else ""
        for c, s in p.pairs():
            p.vm(c, f"{tune}sleep 1; iperf3 -c {p.addr[s]} -t {prm['seconds']} -f m{cc}")
            p.vm(s, f"{tune}iperf3 -s -1")
            p.main.append(p.addr[c])
        p.wait_s = prm["seconds"] + prm["omit"] + 5

    @staticmethod
    def _buffers(p) -> str:
        """Shell that lets TCP's buffers (tcp_rmem, tcp_wmem: min, default, max) hold 4 x the
        bandwidth-delay product: a window at the BDP, and the receiver's overhead on top."""
        bdp = p.exp["bandwidth_Bps"] * 2 * units.to_seconds(p.exp["latency_ns"])
        top = max(int(4 * bdp), 6 << 20)
        return "".join(f"echo 4096 131072 {top} > /proc/sys/net/ipv4/tcp_{b}mem; "
                       for b in ("r", "w"))

    def extract(self, p, run, run_dir):
        rows = []
        for part in run.participants:
            if part.name in p.main:  # the clients
                g = metrics.iperf3_goodput_bps(part.log)
                if g is not None:
                    rows.append({"metric": "goodput_bps", "value": g, "unit": "bit/s",
                                 "src": part.name})
        if not rows:
            raise TansivError("no iperf3 receiver line in the participants' output")
        return rows + self._expectations(p, run, run_dir)

    @staticmethod
    def _expectations(p, run, run_dir) -> list:
        """The link's ceiling for TCP, and under loss what Mathis' model gives each pair."""
        loss = p.exp.get("loss") or 0
        route = routes_mod.load(run_dir)
        network = (run.options or {}).get("network") or "simgrid"
        rows = []
        for c, s in p.pairs():
            there, back = route[(p.addr[c], p.addr[s])], route[(p.addr[s], p.addr[c])]
            where = {"unit": "bit/s", "src": p.addr[c], "dst": p.addr[s]}
            rows.append({"metric": "ceiling_bps",
                         "value": there.bandwidth_Bps * 8 * MSS / SEGMENT, **where})
            if loss:
                rtt = metrics.model_rtt_ns(there, back, SEGMENT, ACK, network)
                p_route = 1 - (1 - loss) ** max(1, len(there.links))
                rows.append({"metric": "mathis_bps", "value": mathis_bps(rtt, p_route),
                             **where})
        return rows

    def key_figure(self, rows):
        g = median(rows, "goodput_bps")
        return "" if g is None else f"goodput {g / 1e6:.2f} Mbit/s"
