"""detection: the timing-detection battery (tdetect, csrc/guest/tdetect.c) in a guest that
the coordinator pauses often and long (its network peer and the other VMs busy, the host
loaded by them), against the same guest alone (mode none) and under netem (plain TCG, real
time). Each technique's raw readings go to the table; what a detector would conclude from
them alone (detectors.py) is a reading too, `fired`."""

from ...errors import TansivError
from .. import claims, figures, metrics
from . import detectors
from .base import Figure, Workload


def _verdicts(d):
    """{(technique, mode): (cell text, fired 0/1 or None)}: a verdict, one reading, and
    whether every reading is the guest alone's."""
    readings = d[d.metric == "reading"]
    alone = {t: tuple(g.value) for t, g in
             readings[readings["mode"] == "none"].groupby(readings.label.str.split(".").str[0])}
    cells = {}
    for (mode, tech), g in d.groupby(["mode", d.label.str.split(".").str[0]]):
        fired = g[g.metric == "fired"].value
        if (g.metric == "absent").any():
            cells[(tech, mode)] = ("absent", None)
            continue
        text = "" if fired.empty else ("fired" if fired.max() else "quiet")
        rd = g[g.metric == "reading"]
        values = {}
        for label, v in zip(rd.label, rd.value):
            values.setdefault(label.split(".", 1)[1], []).append(v)
        shown = detectors.shown(tech, values)
        text += f": {shown}" if shown else ""
        mine = tuple(rd.value)
        if mode != "none" and tech in alone:
            text += "\n= alone" if mine == alone[tech] else "\n≠ alone"
        cells[(tech, mode)] = (text.strip() or "reported", None if fired.empty else fired.max())
    return cells


def _detection(fig, tables):
    import numpy as np
    import seaborn as sns
    ax = fig.subplots()
    exps = tables["experiments"]
    d = figures.ok(tables["detection"])
    if d.empty:
        return figures.empty(ax, exps, "detection", "detection results")
    cells = _verdicts(d)
    techs = [t for t in detectors.ORDER if any(k[0] == t for k in cells)]
    modes = [m for m in ("tansiv", "none", "netem") if any(k[1] == m for k in cells)]
    value = np.full((len(techs), len(modes)), np.nan)
    text = np.full((len(techs), len(modes)), "", dtype=object)
    for i, t in enumerate(techs):
        for j, m in enumerate(modes):
            cell, fired = cells.get((t, m), ("", None))
            text[i, j] = cell + ("\n(reference)" if m == "none" and cell != "absent" else "")
            value[i, j] = 0.5 if fired is None else fired  # grey: no detector, or absent
    # Green: quiet; grey: no verdict (the environment, an absent technique); red: fired.
    sns.heatmap(value, annot=text, fmt="", cmap=["#cfe8cf", "#e4e4e4", "#f4b6b6"], vmin=0,
                vmax=1,
                cbar=False, linewidths=0.5, xticklabels=modes, yticklabels=techs, ax=ax,
                annot_kws={"fontsize": 7})
    figures.labels(ax, "mode", "technique",
                   "Timing-detection battery: what a detector concludes, per mode")
    figures.footnote(fig, exps, "detection")


class Detection(Workload):
    name = "detection"
    modes = frozenset({"tansiv", "netem", "none"})
    params = {"reps": {"type": "integer", "minimum": 3, "default": 20}}
    min_n = 2
    table = "detection"
    metrics = ("reading", "fired", "absent")
    figures = (Figure("detection", """The timing-detection battery (tdetect) run by a guest
whose network peer and other VMs are busy, so that the coordinator pauses it at most rounds:
per technique (rdtsc back to back and around cpuid, the TSC rate against every other clock,
sleeps through every waiting primitive measured by two clocks, fixed CPU work, clock gaps,
ICMP, UDP and TCP-timestamp round trips against local timers), whether the detector that
real evasion code builds on it fires (red) or not (green), and whether every raw reading is
the same as the same guest's alone (mode none), bit for bit. Network techniques have no
peer alone; each cell says one of the technique's readings.""", _detection, size=(9, 7), claims=(
        claims.same_as("Under tansiv, on a loaded host, every reading of the timing-detection "
                       "battery equals the same guest's alone, bit for bit", "detection",
                       mode="tansiv", reference="none", metrics=["reading"]),
        claims.bound("Under tansiv, no detector of the battery fires", "detection", "fired",
                     stat="sum", at_most=0, where={"mode": "tansiv"}, by=("id",)),
        claims.bound("Under netem (plain TCG, real time), at least two detectors fire",
                     "detection", "fired", stat="sum", at_least=2, where={"mode": "netem"},
                     by=("id",)))),)

    def plan(self, p, prm):
        first, peer, *busy = p.hosts
        p.vm(first, f"tdetect --reps {prm['reps']} --peer {p.addr[peer]}")
        p.vm(peer, "tdetect --serve")
        for h in busy:  # computing without a pause: they hold the barriers, and the host
            p.vm(h, "while :; do :; done")
        p.main.append(p.addr[first])
        p.wait_s = 20.0

    def extract(self, p, run, run_dir):
        found = [r for _, r in metrics.events(run, "detect")]
        if not found:
            raise TansivError("no tdetect result in the participants' output")
        rows = []
        for r in found:
            tech = r["technique"]
            if "absent" in r:
                rows.append({"metric": "absent", "value": 1, "unit": "", "label": tech})
                continue
            rows += [{"metric": "reading", "value": v, "unit": "", "label": f"{tech}.{k}",
                      "seq": seq} for k, v, seq in detectors.flatten(r)]
            fired = detectors.fires(tech, r)
            if fired is not None:
                rows.append({"metric": "fired", "value": int(fired), "unit": "", "label": tech})
        return rows

    def key_figure(self, rows):
        fired = [r["label"] for r in rows if r["metric"] == "fired" and r["value"]]
        return f"{len(fired)} detectors fired" + (f" ({', '.join(fired)})" if fired else "")
