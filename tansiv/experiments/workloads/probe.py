"""probe: what a program in the guest can see of the pauses (tprobe: largest clock gaps,
TSC rate, sleep overshoot), under tansiv, alone (none: the reference) and under netem."""

from ...errors import TansivError
from .. import claims, figures, metrics
from .base import Figure, Workload, median


def _transparency(fig, tables):
    import seaborn as sns
    axes = fig.subplots(1, 2)
    exps = tables["experiments"]
    d = figures.ok(tables["probe"])
    gaps = d[d.metric == "max_gap_ns"].assign(gap_us=lambda x: x.value / 1e3)
    sleeps = d[d.metric == "sleep_max_overshoot_ns"].assign(
        over_us=lambda x: x.value / 1e3,
        request=lambda x: x.label.astype(float).map(lambda ns: f"{ns / 1e6:g} ms"))
    if gaps.empty:
        figures.empty(axes[0], exps, "probe", "probe results")
        return axes[1].set_axis_off()
    sns.barplot(data=gaps, x="label", y="gap_us", hue="mode", ax=axes[0], errorbar=None)
    figures.log_if_wide(axes[0], gaps.gap_us)
    figures.labels(axes[0], "clock", "largest step between two reads (µs)",
                   "Largest clock gap seen by the guest")
    sns.barplot(data=sleeps, x="request", y="over_us", hue="mode", ax=axes[1], errorbar=None)
    figures.log_if_wide(axes[1], sleeps.over_us)
    figures.labels(axes[1], "nanosleep", "largest overshoot (µs)", "Sleep overshoot")
    # One legend, beside the bars it would otherwise hide.
    axes[0].get_legend().remove()
    axes[1].legend(title="mode", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.footnote(fig, exps, "probe")


class Probe(Workload):
    name = "probe"
    modes = frozenset({"tansiv", "netem", "none"})
    params = {
        "loop_ms": {"type": "integer", "minimum": 1, "default": 300},
        "windows": {"type": "integer", "minimum": 2, "default": 10},
        "sleeps": {"type": "integer", "minimum": 1, "default": 5},
    }
    table = "probe"
    metrics = ("max_gap_ns", "gaps_over_1ms", "tsc_rate_spread", "sleep_max_overshoot_ns",
               "held_s")
    figures = (Figure("transparency", """What a program in the guest can see of the pauses:
the largest step between two consecutive reads of CLOCK_MONOTONIC, CLOCK_REALTIME and the TSC
in tight loops (left), and the largest overshoot of nanosleep (right), per mode. "none" is the
same guest alone, never paused: under tansiv the guest sees no more than that.""",
                      _transparency, size=(10, 4), claims=(
                          claims.same_as("Under tansiv, the guest's clock gaps, TSC rate "
                                         "and sleep overshoots, paused or not, equal those of "
                                         "the same guest alone, bit for bit", "probe",
                                         mode="tansiv", reference="none"),)),)

    def plan(self, p, prm):
        first = p.hosts[0]
        p.vm(first, f"tprobe --loop-ms {prm['loop_ms']} --windows {prm['windows']} "
                    f"--sleeps {prm['sleeps']}")
        p.main.append(p.addr[first])
        p.wait_s = 3.0

    def extract(self, p, run, run_dir):
        found = metrics.events(run, "probe")
        if not found:
            raise TansivError("no probe result in the participants' output")
        pr = found[0][1]
        rows = []
        for clock in ("monotonic", "realtime", "tsc"):
            rows.append({"metric": "max_gap_ns", "value": pr[clock]["max_gap_ns"], "unit": "ns",
                         "label": clock})
            rows.append({"metric": "gaps_over_1ms", "value": pr[clock]["gaps_over_1ms"],
                         "unit": "", "label": clock})
        rows.append({"metric": "tsc_rate_spread", "value": pr["tsc"]["rate_spread"], "unit": ""})
        for req, s in pr["sleep"].items():
            rows.append({"metric": "sleep_max_overshoot_ns", "value": s["max_overshoot_ns"],
                         "unit": "ns", "label": req})
        return rows

    def key_figure(self, rows):
        gap = median(rows, "max_gap_ns", "monotonic")
        return "" if gap is None else f"largest CLOCK_MONOTONIC gap {gap / 1e3:.1f} us"
