"""Drawing the pipeline's figures: one figure of the workload registry from the tidy tables,
as PNG and PDF, and what figures share. A figure whose experiments are absent or failed still
comes out, saying so, so that the report tells what is missing rather than leaving a hole;
draw() says which it drew (data points, or placeholders), for the pipeline and its tests."""

import textwrap
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.collections  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def read_tables(paths) -> dict:
    """{name: DataFrame} of tables/<name>.csv files."""
    from pathlib import Path
    return {Path(p).stem: pd.read_csv(p, dtype={"src": str, "dst": str, "label": str})
            for p in paths}


PLACEHOLDER = "tansiv-placeholder"  # the gid of a panel that says what is missing


@dataclass
class Drawn:
    """What a figure shows: data points plotted (line vertices, markers, bars, heatmap
    cells) and panels that are placeholders saying what is missing."""
    points: int
    placeholders: int

    def as_dict(self) -> dict:
        return asdict(self)


def _points(ax) -> int:
    n = sum(len(line.get_xydata()) for line in ax.get_lines())
    for c in ax.collections:
        if isinstance(c, matplotlib.collections.QuadMesh):  # a heatmap: its cells with data
            n += int(c.get_array().count())
            continue
        offsets = c.get_offsets()
        array = c.get_array()
        n += len(array.ravel()) if array is not None and not len(offsets) else len(offsets)
    # Bars are containers of patches; a box plot's (seaborn's) holds its boxes.
    return n + sum(len(b) if hasattr(b, "__len__") else len(getattr(b, "boxes", ()))
                   for b in ax.containers)


def draw(figure, tables: dict, png, pdf) -> Drawn:
    sns.set_theme(style="whitegrid", context="paper")
    fig = plt.figure(figsize=figure.size)
    figure.draw(fig, tables)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    drawn = Drawn(points=sum(_points(ax) for ax in fig.axes if ax.get_gid() != PLACEHOLDER),
                  placeholders=sum(ax.get_gid() == PLACEHOLDER for ax in fig.axes))
    plt.close(fig)
    return drawn


def ok(df):
    return df[df.status == "ok"]


def not_ok(experiments, workload):
    """Lines saying which experiments of a workload did not give results, and why."""
    bad = experiments[(experiments.workload == workload) & (experiments.status != "ok")]
    return [f"{r.mode}: {r.status} ({r.why[:110]})" for r in
            bad.drop_duplicates("mode").itertuples()]


def empty(ax, experiments, workload, what) -> None:
    lines = [f"no {what}"] + not_ok(experiments, workload)
    ax.text(0.5, 0.5, "\n".join(lines), ha="center", va="center", wrap=True,
            transform=ax.transAxes, fontsize=8)
    ax.set_axis_off()
    ax.set_gid(PLACEHOLDER)


def footnote(fig, experiments, workload) -> None:
    """What is missing, and how some modes ran when it matters to the reader (netem's
    router)."""
    parts = []
    missing = not_ok(experiments, workload)
    if missing:
        parts.append("missing: " + "; ".join(missing))
    ran = experiments[(experiments.workload == workload) & (experiments.status == "ok")
                      & experiments.detail.fillna("").astype(bool)]
    parts += [f"{r.mode}: {r.detail}" for r in ran.drop_duplicates("mode").itertuples()]
    if parts:
        fig.text(0.01, 0.01, textwrap.fill(". ".join(parts), 140), fontsize=6, va="bottom")


def setup(row, queue: bool = False) -> str:
    """How a row's network was made, for a legend: netem, or its mode and network model
    (and queue discipline)."""
    def given(value, default):
        return default if value is None or pd.isna(value) else str(value)
    if row["mode"] == "netem":
        return "netem"
    text = f"{row['mode']} {given(row.get('network'), 'simgrid')}"
    return f"{text} {given(row.get('queue'), 'droptail')}" if queue else text


def labels(ax, x: str, y: str, title: str) -> None:
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)


def log_if_wide(ax, values, axis="y") -> None:
    """A log scale only where values span more than a decade and a half."""
    v = values[values > 0]
    if len(v) and v.max() / v.min() > 30:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def draw_spec(fig, tables: dict, workload: str, spec: dict) -> None:
    """A figure of the configuration (workloads.NAME.figures): spec's metric(s) from the
    workload's table, y (default value) against x, one colour per hue (default mode), one
    line style per style, one panel per col; kind line (median and range), scatter, bar or
    box; expect: a metric drawn as a dashed line (what a model predicts); logx; logy: a log
    scale where the values span more than a decade and a half."""
    exps = tables["experiments"]
    d = ok(tables[workload])
    wanted = spec["metric"] if isinstance(spec["metric"], list) else [spec["metric"]]
    data = d[d.metric.isin(wanted)]
    x, y, hue, style = spec["x"], spec.get("y", "value"), spec.get("hue", "mode"), spec.get("style")
    panels = sorted(data[spec["col"]].unique()) if spec.get("col") and not data.empty else [None]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    if data.empty:
        for ax in axes[1:]:
            ax.set_axis_off()
            ax.set_gid(PLACEHOLDER)
        return empty(axes[0], exps, workload, f"{', '.join(wanted)} measurements")
    kind = spec.get("kind", "line")
    fig.set_size_inches(4.5 * len(panels) + 2, 4.5)  # room for each panel and the legend
    for ax, value in zip(axes, panels):
        part = data if value is None else data[data[spec["col"]] == value]
        common = dict(data=part, x=x, y=y, hue=hue, ax=ax)
        if kind == "line":
            sns.lineplot(**common, style=style, estimator="median", errorbar=("pi", 100),
                         marker="o")
        elif kind == "scatter":
            sns.scatterplot(**common, style=style)
        elif kind == "bar":
            sns.barplot(**common, errorbar=None)
        else:
            sns.boxplot(**common)
        if spec.get("expect"):
            e = d[d.metric == spec["expect"]]
            if value is not None and e[spec["col"]].notna().any():
                e = e[e[spec["col"]] == value]
            e = e.groupby(x)[y].median()
            ax.plot(e.index, e.values, ls="--", marker="x", c="grey", lw=1, label="expected")
        if spec.get("logx"):
            ax.set_xscale("log")
        if spec.get("logy"):
            log_if_wide(ax, part[y])
        title = spec.get("title", f"{', '.join(wanted)} against {x}")
        labels(ax, spec.get("xlabel", x), spec.get("ylabel", ", ".join(wanted)),
               title if value is None else f"{title} ({spec['col']} = {value})")
        if ax.get_legend():
            ax.get_legend().remove()
    # One legend, beside the panels.
    handles, names = axes[-1].get_legend_handles_labels()
    if handles:
        axes[-1].legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    footnote(fig, exps, workload)
