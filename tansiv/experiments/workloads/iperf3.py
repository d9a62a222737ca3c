"""iperf3: TCP goodput between pairs of VMs against the configured bottleneck bandwidth."""

from ...errors import TansivError
from .. import figures, metrics
from .base import Figure, Workload, median


def _goodput(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    d = figures.ok(tables["goodput"]).assign(goodput_mbps=lambda x: x.value / 1e6,
                                             configured_mbps=lambda x: x.bandwidth_Bps * 8 / 1e6)
    if d.empty:
        return figures.empty(ax, tables["experiments"], "iperf3", "iperf3 results")
    sns.scatterplot(data=d, x="configured_mbps", y="goodput_mbps", hue="mode", style="mode",
                    s=60, ax=ax)
    top = max(d.configured_mbps.max(), d.goodput_mbps.max()) * 1.1
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=1, label="goodput = bandwidth")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    figures.labels(ax, "configured bottleneck bandwidth (Mbit/s)", "iperf3 TCP goodput (Mbit/s)",
                   "TCP goodput against the configured bandwidth")
    ax.legend()
    figures.footnote(fig, tables["experiments"], "iperf3")


class Iperf3(Workload):
    name = "iperf3"
    modes = frozenset({"tansiv", "netem"})
    params = {"seconds": {"type": "integer", "minimum": 1, "default": 3}}
    min_n = 2
    table = "goodput"
    metrics = ("goodput_bps",)
    figures = (Figure("goodput", """TCP goodput reported by iperf3's receiver inside the
guests, against the bottleneck bandwidth the platform configures (dashed: goodput =
bandwidth).""", _goodput),)

    def plan(self, p, prm):
        for c, s in p.pairs():
            p.vm(c, f"sleep 1; iperf3 -c {p.addr[s]} -t {prm['seconds']} -f m")
            p.vm(s, "iperf3 -s -1")
            p.main.append(p.addr[c])
        p.wait_s = prm["seconds"] + 5

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
        return rows

    def key_figure(self, rows):
        g = median(rows, "goodput_bps")
        return "" if g is None else f"goodput {g / 1e6:.2f} Mbit/s"
