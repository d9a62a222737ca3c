"""idle: participants that only let time pass; what a run costs, against the number of
participants (the speed figure, from every experiment's run metrics)."""

from .. import figures
from .base import Figure, Workload


def _speed(fig, tables):
    import seaborn as sns
    ax = fig.subplots()
    d = figures.ok(tables["speed"])
    d = d[d.metric == "sim_per_wall"]
    if (d.workload == "idle").any():
        d = d[d.workload == "idle"]
    if d.empty:
        return figures.empty(ax, tables["experiments"], "idle", "timed runs")
    sns.lineplot(data=d, x="n", y="value", hue="mode", style="mode", marker="o",
                 estimator="median", errorbar=("pi", 100), ax=ax)
    figures.log_if_wide(ax, d.value)
    ax.set_xticks(sorted(d.n.unique()))
    figures.labels(ax, "participants (VMs or processes)", "simulated s per wall s",
                   "Simulation speed, boot included")
    figures.footnote(fig, tables["experiments"], "idle")


class Idle(Workload):
    name = "idle"
    modes = frozenset({"tansiv", "process"})
    params = {"seconds": {"type": "number", "exclusiveMinimum": 0, "default": 10}}
    figures = (Figure("speed", """Simulated seconds per wall-clock second for idle
participants, boot included, against the number of participants.""", _speed),)

    def plan(self, p, prm):
        for h in p.hosts:
            p.idle(h, prm["seconds"])
        p.wait_s = prm["seconds"]
