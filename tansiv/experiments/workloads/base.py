"""What a workload is: everything the pipeline needs to know of it, in one place.

A workload module defines one subclass of Workload and registers it (workloads/__init__.py):
its parameters (the JSON schema of its block in a sweep, with defaults), the modes it runs in,
how it fills an experiment's plan, how it reads measurements out of a run, the table its rows
go to, and its figures (drawn with seaborn from the tidy tables, captioned in the report)."""

import hashlib
import inspect
import statistics
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Figure:
    name: str                           # results/figures/<name>.png|pdf
    caption: str                        # in the report (reStructuredText)
    draw: Callable                      # draw(fig, tables): tables = {name: DataFrame}
    size: tuple = (6, 4.5)              # inches
    claims: tuple = ()                  # what it shows, checked after the sweep (claims.py)


class Workload:
    name = ""
    modes = frozenset()                 # those of experiments/modes.py it runs in
    params = {}                         # JSON schema properties of its sweep block
    min_n = 1                           # participants it needs
    needs_lookahead = False             # its sweeps must give a lookahead list
    table = None                        # tables/<table>.csv holds its rows of...
    metrics = ()                        # ...these metrics
    figures = ()
    boot_s = 6                          # simulated seconds its guests take to be ready, with
                                        # margin (tansiv's guest: 4.3)

    def participants(self, n: int) -> int:
        """How many participants an experiment of the sweep's n has."""
        return n

    def left(self, n: int):
        """How many sit left of a dumbbell's bottleneck (None: n cannot be split)."""
        return None if n % 2 else n // 2

    def runs_alone(self, participants: int) -> bool:
        """Whether its experiments make sense in mode none (the VMs each alone)."""
        return True

    def defaults(self) -> dict:
        return {k: v["default"] for k, v in self.params.items() if "default" in v}

    def fingerprint(self) -> str:
        """A hash of what shapes its experiments (parameters, plan, measurements), not of
        its figures: a parameter of its experiments, so that changing how it runs reruns
        them, and changing how it is drawn does not."""
        h = hashlib.sha256(repr(sorted(self.params.items())).encode())
        for method in (self.plan, self.extract, self.key_figure):
            h.update(inspect.getsource(method).encode())
        return h.hexdigest()[:16]

    def plan(self, plan, prm: dict) -> None:
        """Fills plan (experiments/plan.py) for parameters prm (defaults applied)."""
        raise NotImplementedError

    def extract(self, plan, run, run_dir) -> list:
        """Tidy rows (metric, value, unit, src, dst, seq, label) from a finished run: its
        record (run.json) and its folder. Raises TansivError when the results are missing."""
        return []

    def key_figure(self, rows) -> str:
        """One phrase saying how the experiment went, for its status line; "" if none."""
        return ""


def median(rows, metric: str, label=None):
    """The median value of a metric among rows (of one label, if given), or None."""
    values = [r["value"] for r in rows if r["metric"] == metric
              and (label is None or r.get("label") == label)]
    return statistics.median(values) if values else None
