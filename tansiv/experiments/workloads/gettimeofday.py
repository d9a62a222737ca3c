"""gettimeofday: what reading the time costs a process, libc's gettimeofday against
vsg_gettimeofday (csrc/bench/gtod), per lookahead."""

from .. import figures, metrics
from .base import Figure, Workload, median


def _gettimeofday(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    d = figures.ok(tables["gettimeofday"]).assign(lookahead_us=lambda x: x.lookahead_ns / 1e3)
    if d.empty:
        return figures.empty(ax, tables["experiments"], "gettimeofday",
                             "gettimeofday measurements")
    sns.lineplot(data=d, x="lookahead_us", y="value", hue="label", style="label", marker="o",
                 estimator="median", errorbar=("pi", 100), ax=ax)
    ax.set_xscale("log")
    figures.log_if_wide(ax, d.value)
    figures.labels(ax, "lookahead (µs)", "wall ns per call",
                   "Reading the time: libc against tansiv (process mode)")
    figures.footnote(fig, tables["experiments"], "gettimeofday")


class GetTimeOfDay(Workload):
    name = "gettimeofday"
    modes = frozenset({"process"})
    params = {"calls": {"type": "integer", "minimum": 1, "default": 2_000_000}}
    needs_lookahead = True
    table = "gettimeofday"
    metrics = ("ns_per_call",)
    figures = (Figure("gettimeofday", """Wall time per call of libc's gettimeofday and of
vsg_gettimeofday in process mode, against the lookahead (the deadline period): the shorter
the lookahead, the more often the participant is stopped, and the more a call costs on
average.""", _gettimeofday),)

    def plan(self, p, prm):
        for h in p.hosts:
            p.process(h, "gtod", [str(prm["calls"])])
        p.run_args += ["--force", f"{p.exp['lookahead_ns']}ns"]

    def extract(self, p, run, run_dir):
        rows = []
        for part, e in metrics.events(run, "gtod"):
            for label, key in (("gettimeofday", "libc_ns_per_call"),
                               ("vsg_gettimeofday", "vsg_ns_per_call")):
                rows.append({"metric": "ns_per_call", "value": e[key], "unit": "ns",
                             "src": part.name, "label": label})
        return rows

    def key_figure(self, rows):
        v = median(rows, "ns_per_call", "vsg_gettimeofday")
        return "" if v is None else f"vsg_gettimeofday {v:.0f} ns/call"
