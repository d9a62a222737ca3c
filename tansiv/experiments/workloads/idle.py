"""idle: participants that only let time pass; what a run costs, against the number of
participants (the speed figure, from every experiment's run metrics)."""

from .. import claims, figures
from .base import Figure, Workload


def _how(row) -> str:
    """A line of the figure: mode, transport, and whether idle participants sat out rounds."""
    text = row["mode"]
    if isinstance(row.get("transport"), str):
        text += f" ({row['transport']})"
    if row.get("idle_horizons") == "off":
        text += ", every round"
    elif row.get("idle_horizons") == "on":
        text += ", idle horizons"
    return text


def _speed(fig, tables):
    import seaborn as sns
    axes = fig.subplots(1, 3)
    d = figures.ok(tables["speed"])
    if (d.workload == "idle").any():
        d = d[d.workload == "idle"]
    if d.empty:
        for ax in axes:
            figures.empty(ax, tables["experiments"], "idle", "timed runs")
        return
    d = d.assign(how=d.apply(_how, axis=1))
    for ax, metric, ylabel, title in (
            (axes[0], "sim_per_wall", "simulated s per wall s", "Speed, boot included"),
            (axes[1], "sim_per_wall_mid", "simulated s per wall s", "Speed, middle half"),
            (axes[2], "us_per_round", "wall µs per round", "Cost of a round, boot included")):
        m = d[d.metric == metric]
        sns.lineplot(data=m, x="n", y="value", hue="how", style="how", marker="o",
                     estimator="median", errorbar=("pi", 100), ax=ax)
        figures.log_if_wide(ax, m.value)
        ax.set_xticks(sorted(m.n.unique()))
        figures.labels(ax, "participants (VMs or processes)", ylabel, title)
        ax.legend(title=None, fontsize=7)
    figures.footnote(fig, tables["experiments"], "idle")


class Idle(Workload):
    name = "idle"
    modes = frozenset({"tansiv", "process"})
    params = {"seconds": {"type": "number", "exclusiveMinimum": 0, "default": 10}}
    figures = (Figure("speed", """Simulated seconds per wall-clock second for idle
participants, over the whole run (the VMs' start from their snapshots and their power-off
included) and over the middle half of its simulated time (idle only), and wall-clock
microseconds per synchronization round, against the number of participants, per mode and
transport (shared-memory channels or sockets), with idle horizons (idle participants sit out
the rounds before their next timer) and without (every participant in every round).""",
                      _speed, size=(14, 4), claims=(
                          claims.bound("With idle horizons, idle VMs run at least 10× faster "
                                       "than real time once started (the middle half of each "
                                       "run's simulated time)", "speed", "sim_per_wall_mid",
                                       stat="min",
                                       at_least=10, unit="×",
                                       where={"workload": "idle", "mode": "tansiv",
                                              "idle_horizons": "on"}, by=("id",)),)),)

    def plan(self, p, prm):
        for h in p.hosts:
            p.idle(h, prm["seconds"])
        p.wait_s = prm["seconds"]
