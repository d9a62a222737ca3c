"""ping: round-trip times against the model. VMs ping with tping (pairs across the
topology, or every VM every other with mesh: the seed's RTT matrix); processes with the
pingpong example."""

from ... import units
from .. import claims, figures, metrics
from ..modes import MODES
from .base import Figure, Workload, median


def _rtt_excess(fig, tables):
    """One panel per mode, each with its own scale: tansiv's and process mode's tens of
    microseconds would sit on zero next to netem's milliseconds."""
    exps = tables["experiments"]
    d = figures.ok(tables["rtt"])
    d = d[(d.metric == "rtt_excess_ns") & ~d.mesh.astype(bool)].assign(
        excess_us=lambda x: x.value / 1e3, latency_ms=lambda x: x.latency_ns / 1e6)
    d = d.assign(network=[figures.setup(r).split(" ")[-1] for r in d.to_dict("records")])
    modes = sorted(d["mode"].unique())
    axes = fig.subplots(1, max(len(modes), 1), squeeze=False)[0]
    if d.empty:
        return figures.empty(axes[0], exps, "ping", "RTT measurements")
    import seaborn as sns
    for ax, mode in zip(axes, modes):
        sns.lineplot(data=d[d["mode"] == mode], x="latency_ms", y="excess_us", hue="network",
                     estimator="median", errorbar=("pi", 100), marker="o", ax=ax)
        ax.set_xscale("log")
        figures.labels(ax, "route latency (ms)", "RTT - model (µs): median, range", mode)
    fig.suptitle("Ping RTT excess over the model")
    figures.footnote(fig, exps, "ping")


def _ping_matrix(fig, tables):
    ax = fig.subplots()
    d = figures.ok(tables["rtt"])
    meshes = sorted(d[d.mesh.astype(bool)].id.unique())
    if not meshes:
        return figures.empty(ax, tables["experiments"], "ping", "full-mesh ping experiment")
    import pandas as pd
    import seaborn as sns
    eid = meshes[0]
    d = d[d.id == eid]
    rtt = d[d.metric == "rtt_ns"].groupby(["src", "dst"]).value.median().unstack() / 1e6
    excess = d[d.metric == "rtt_excess_ns"].groupby(["src", "dst"]).value.median().unstack() / 1e3
    labels = rtt.map(lambda v: f"{v:.3f}" if pd.notna(v) else "")
    labels = labels + excess.map(lambda v: f"\n+{v:.0f} µs" if pd.notna(v) else "")
    sns.heatmap(rtt, annot=labels, fmt="", cmap="viridis", ax=ax,
                cbar_kws={"label": "median RTT (ms)"}, annot_kws={"fontsize": 7})
    figures.labels(ax, "destination", "source",
                   "Ping matrix: median RTT (ms), excess over the model")
    fig.text(0.01, 0.01, eid, fontsize=6, va="bottom")


class Ping(Workload):
    name = "ping"
    modes = frozenset({"tansiv", "netem", "process"})
    params = {
        "count": {"type": "integer", "minimum": 1, "default": 10},
        "interval_ms": {"type": "integer", "minimum": 1, "default": 20},
        "size": {"type": "integer", "minimum": 8, "maximum": 1400, "default": 56},
        "mesh": {"type": "boolean", "default": False},
    }
    min_n = 2
    table = "rtt"
    metrics = ("rtt_ns", "rtt_excess_ns", "model_rtt_ns")
    figures = (
        Figure("rtt_excess", """Ping round-trip time measured inside
the participants minus the model (2 × route latency + serialization of request and reply at
the bottleneck bandwidth), against the route latency, per mode: median and range over every
ping, one panel per mode with its own scale, one line per network model (the model is each
one's: serialization once at the bottleneck for SimGrid's flows, on every hop for ns-3's
packets). tansiv's excess is the guests' own processing time, the same at every latency and
under either model; netem's grows with the host's load.""", _rtt_excess,
               size=(11, 4), claims=(
                   claims.bound("Under tansiv, a VM's RTT exceeds the model by at most 50 µs, "
                                "at every latency, under either network model",
                                "rtt", "rtt_excess_ns", at_most=50, scale=1e-3, unit=" µs",
                                where={"mode": "tansiv", "mesh": False}),
                   claims.bound("Under tansiv, that excess is a constant: it spreads over at "
                                "most 5 µs across the latencies of a sweep and network model",
                                "rtt", "rtt_excess_ns", stat="spread", at_most=5, scale=1e-3,
                                unit=" µs", where={"mode": "tansiv", "mesh": False},
                                by=("sweep", "network")))),
        Figure("ping_matrix", """The seed's validation table: every VM of a full-mesh
experiment pings every other; each cell is the median RTT (ms) from the row's VM to the
column's, and its excess over the model. All VMs ping at once, in a round robin (in turn k,
VM i pings VM i + k), so that each guest answers one ping at a time.""",
               _ping_matrix, claims=(
                   claims.bound("In the full mesh under tansiv, every pair's RTT exceeds the "
                                "model by at most 100 µs (the guests' processing)", "rtt",
                                "rtt_excess_ns", at_most=100, scale=1e-3, unit=" µs",
                                where={"mode": "tansiv", "mesh": True}),
                   claims.bound("...and each pair's excess is a constant: it spreads over "
                                "at most 5 µs across the pair's pings", "rtt",
                                "rtt_excess_ns", stat="spread", at_most=5, scale=1e-3,
                                unit=" µs", where={"mode": "tansiv", "mesh": True},
                                by=("id", "src", "dst")))),
    )

    def plan(self, p, prm):
        count, interval, size = prm["count"], prm["interval_ms"], prm["size"]
        rtt = 2 * units.to_seconds(p.exp["latency_ns"])
        # VMs in real time start seconds apart: each waits for its peer to answer first.
        up = "-u 60000 " if MODES[p.mode].real_time else ""
        if p.mode == "process":
            for c, s in p.pairs():
                p.process(c, "pingpong", ["client", p.addr[s], str(count), str(size)])
                p.process(s, "pingpong", ["server", p.addr[c], str(count)])
                p.main.append(p.addr[c])
        elif prm["mesh"]:
            # A round robin: in turn k, VM i pings VM i + k, so that each guest answers one
            # ping at a time. -a keeps each VM up until its peers' pings have all arrived
            # (in real time, netem's VMs drift apart by seconds).
            n = len(p.hosts)
            turn = (count + 1) * max(rtt, interval / 1e3)
            p.wait_s = (n - 1) * turn
            for i, h in enumerate(p.hosts):
                peers = " ".join(p.addr[p.hosts[(i + k) % n]] for k in range(1, n))
                p.vm(h, f"tping -c {count} -i {interval} -s {size} -w 1 {up}"
                        f"-a {(p.wait_s + 60) * 1e3:.0f} {peers}")
                p.main.append(p.addr[h])
        else:
            for c, s in p.pairs():
                p.vm(c, f"tping -c {count} -i {interval} -s {size} -w 1 {up}{p.addr[s]}")
                p.idle(s)
                p.main.append(p.addr[c])
            p.wait_s = (count + 1) * max(rtt, interval / 1e3)

    def extract(self, p, run, run_dir):
        matrix = metrics.rtt_matrix(run_dir, run)
        rows = []
        for r in metrics.rtt_rows(run):
            if r["warmup"]:
                continue
            model = matrix[(r["src"], r["dst"])][1]
            where = {"unit": "ns", "src": r["src"], "dst": r["dst"], "seq": r["seq"]}
            rows.append({"metric": "rtt_ns", "value": r["rtt_ns"], **where})
            rows.append({"metric": "rtt_excess_ns", "value": r["rtt_ns"] - model, **where})
        for (s, d), (_, model, _) in matrix.items():
            rows.append({"metric": "model_rtt_ns", "value": model, "unit": "ns", "src": s,
                         "dst": d})
        return rows

    def key_figure(self, rows):
        excess = median(rows, "rtt_excess_ns")
        return "" if excess is None else f"median RTT excess {excess / 1e3:.1f} us"
