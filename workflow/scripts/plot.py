# One figure (snakemake.wildcards.name) from the tidy tables, as PNG and PDF. A figure whose
# experiments are absent or failed still comes out, saying so, so that the report
# tells what is missing rather than leaving a hole.
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")
tables = {Path(p).stem: pd.read_csv(p, dtype={"src": str, "dst": str, "label": str})
          for p in snakemake.input.tables}
experiments = tables["experiments"]
name = snakemake.wildcards.name


def not_ok(workload):
    """Lines saying which experiments of a workload did not give results, and why."""
    bad = experiments[(experiments.workload == workload) & (experiments.status != "ok")]
    return [f"{r.mode}: {r.status} ({r.why[:110]})" for r in
            bad.drop_duplicates("mode").itertuples()]


def empty(ax, workload, what):
    lines = [f"no {what}"] + not_ok(workload)
    ax.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", wrap=True,
            transform=ax.transAxes, fontsize=8)
    ax.set_axis_off()


def how_run(workload):
    """Lines saying how some modes ran, when it matters to the reader (netem's router)."""
    ok = experiments[(experiments.workload == workload) & (experiments.status == "ok")
                     & experiments.detail.fillna("").astype(bool)]
    return [f"{r.mode}: {r.detail}" for r in ok.drop_duplicates("mode").itertuples()]


def footnote(fig, workload):
    parts = []
    if not_ok(workload):
        parts.append("missing: " + "; ".join(not_ok(workload)))
    parts += how_run(workload)
    if parts:
        fig.text(0.01, 0.01, textwrap.fill(". ".join(parts), 140), fontsize=6, va="bottom")


def ok(df):
    return df[df.status == "ok"]


def log_if_wide(ax, values, axis="y"):
    """A log scale only where values span more than a decade and a half."""
    v = values[values > 0]
    if len(v) and v.max() / v.min() > 30:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def rtt_excess(fig):
    ax = fig.subplots()
    d = ok(tables["rtt"])
    d = d[(d.metric == "rtt_excess_ns") & ~d.mesh.astype(bool)].assign(
        excess_us=lambda x: x.value / 1e3,
                                              latency_ms=lambda x: x.latency_s * 1e3)
    if d.empty:
        return empty(ax, "ping", "RTT measurements")
    sns.lineplot(data=d, x="latency_ms", y="excess_us", hue="mode", style="mode",
                 estimator="median", errorbar=("pi", 100), marker="o", ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("route latency (ms)")
    ax.set_ylabel("RTT - model (µs), median and range")
    ax.set_title("Ping RTT excess over the model")
    footnote(fig, "ping")


def ping_matrix(fig):
    ax = fig.subplots()
    d = ok(tables["rtt"])
    meshes = sorted(d[d.mesh.astype(bool)].id.unique())
    if not meshes:
        return empty(ax, "ping", "full-mesh ping experiment")
    eid = meshes[0]
    d = d[d.id == eid]
    rtt = d[d.metric == "rtt_ns"].groupby(["src", "dst"]).value.median().unstack() / 1e6
    excess = d[d.metric == "rtt_excess_ns"].groupby(["src", "dst"]).value.median().unstack() / 1e3
    labels = rtt.map(lambda v: f"{v:.3f}" if pd.notna(v) else "")
    labels = labels + excess.map(lambda v: f"\n+{v:.0f} µs" if pd.notna(v) else "")
    sns.heatmap(rtt, annot=labels, fmt="", cmap="viridis", ax=ax,
                cbar_kws={"label": "median RTT (ms)"}, annot_kws={"fontsize": 7})
    ax.set_xlabel("destination")
    ax.set_ylabel("source")
    ax.set_title("Ping matrix: median RTT (ms), excess over the model")
    fig.text(0.01, 0.01, eid, fontsize=6, va="bottom")


def transparency(fig):
    axes = fig.subplots(1, 2)
    d = ok(tables["probe"])
    gaps = d[d.metric == "max_gap_ns"].assign(gap_us=lambda x: x.value / 1e3)
    sleeps = d[d.metric == "sleep_max_overshoot_ns"].assign(
        over_us=lambda x: x.value / 1e3,
        request=lambda x: x.label.astype(float).map(lambda ns: f"{ns / 1e6:g} ms"))
    if gaps.empty:
        empty(axes[0], "probe", "probe results")
        return axes[1].set_axis_off()
    sns.barplot(data=gaps, x="label", y="gap_us", hue="mode", ax=axes[0], errorbar=None)
    log_if_wide(axes[0], gaps.gap_us)
    axes[0].set_xlabel("clock")
    axes[0].set_ylabel("largest step between two reads (µs)")
    axes[0].set_title("Largest clock gap seen by the guest")
    sns.barplot(data=sleeps, x="request", y="over_us", hue="mode", ax=axes[1], errorbar=None)
    log_if_wide(axes[1], sleeps.over_us)
    axes[1].set_xlabel("nanosleep")
    axes[1].set_ylabel("largest overshoot (µs)")
    axes[1].set_title("Sleep overshoot")
    # One legend, beside the bars it would otherwise hide.
    axes[0].get_legend().remove()
    axes[1].legend(title="mode", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    footnote(fig, "probe")


def goodput(fig):
    ax = fig.subplots()
    d = ok(tables["goodput"]).assign(goodput_mbps=lambda x: x.value / 1e6,
                                     configured_mbps=lambda x: x.bandwidth_Bps * 8 / 1e6)
    if d.empty:
        return empty(ax, "iperf3", "iperf3 results")
    sns.scatterplot(data=d, x="configured_mbps", y="goodput_mbps", hue="mode", style="mode",
                    s=60, ax=ax)
    top = max(d.configured_mbps.max(), d.goodput_mbps.max()) * 1.1
    ax.plot([0, top], [0, top], ls="--", c="grey", lw=1, label="goodput = bandwidth")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("configured bottleneck bandwidth (Mbit/s)")
    ax.set_ylabel("iperf3 TCP goodput (Mbit/s)")
    ax.set_title("TCP goodput against the configured bandwidth")
    ax.legend()
    footnote(fig, "iperf3")


def speed(fig):
    ax = fig.subplots()
    d = ok(tables["speed"])
    d = d[d.metric == "sim_per_wall"]
    if (d.workload == "idle").any():
        d = d[d.workload == "idle"]
    if d.empty:
        return empty(ax, "idle", "timed runs")
    sns.lineplot(data=d, x="n", y="value", hue="mode", style="mode", marker="o",
                 estimator="median", errorbar=("pi", 100), ax=ax)
    log_if_wide(ax, d.value)
    ax.set_xticks(sorted(d.n.unique()))
    ax.set_xlabel("participants (VMs or processes)")
    ax.set_ylabel("simulated s per wall s")
    ax.set_title("Simulation speed, boot included")
    footnote(fig, "idle")


def gettimeofday(fig):
    ax = fig.subplots()
    d = ok(tables["gettimeofday"]).assign(lookahead_us=lambda x: x.lookahead_s * 1e6)
    if d.empty:
        return empty(ax, "gettimeofday", "gettimeofday measurements")
    sns.lineplot(data=d, x="lookahead_us", y="value", hue="label", style="label", marker="o",
                 estimator="median", errorbar=("pi", 100), ax=ax)
    ax.set_xscale("log")
    log_if_wide(ax, d.value)
    ax.set_xlabel("lookahead (µs)")
    ax.set_ylabel("wall ns per call")
    ax.set_title("Reading the time: libc against tansiv (process mode)")
    footnote(fig, "gettimeofday")


fig = plt.figure(figsize=(10, 4) if name == "transparency" else (6, 4.5))
{"rtt_excess": rtt_excess, "ping_matrix": ping_matrix, "transparency": transparency,
 "goodput": goodput, "speed": speed, "gettimeofday": gettimeofday}[name](fig)
fig.tight_layout(rect=(0, 0.04, 1, 1))
fig.savefig(snakemake.output.png, dpi=150)
fig.savefig(snakemake.output.pdf)
