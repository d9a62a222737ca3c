"""What the figures claim, checked against the tidy tables after the sweep.

A claim is written once, next to its figure (a workload's Figure, or a configured workload's
figure in YAML: `claims:`): a sentence a reader can check, what is measured for it, and its
tolerance. After the sweep, each is measured in the tables (rows of experiments that ended
ok) and given a verdict: PASS, FAIL, or "not measured" when no experiment gave the rows it
needs. results/claims.md and claims.json hold them; claims.rst is the report's first page.

Five kinds cover the project's claims:
    bound       a statistic of a metric, worst over groups, at most / at least a bound
    relative    a metric against a reference metric of the same experiment: |m/ref - 1|
    close_to    the same, as a difference: |m - ref|
    same_as     every reading under one mode equal to the reference mode's, bit for bit
    holds_in    what a run checks of itself (a rerun's identity): every row says 1"""

import json
import math
from dataclasses import dataclass, field
from typing import Callable

PASS, FAIL, UNMEASURED = "PASS", "FAIL", "not measured"


@dataclass(frozen=True)
class Measured:
    value: float          # the figure the verdict is taken on
    shown: str            # it, as a reader reads it
    detail: str = ""      # where the worst case is


@dataclass(frozen=True)
class Claim:
    text: str                       # the claim, as a sentence
    table: str                      # the tidy table it is measured in
    tolerance: str                  # what it allows, as a reader reads it
    measure: Callable = field(repr=False)  # measure(tables) -> Measured, or None
    holds: Callable = field(repr=False)    # holds(value) -> bool

    def check(self, tables: dict) -> dict:
        try:
            m = self.measure(tables)
        except KeyError as e:  # a table without the column: nothing ran that fills it
            m, why = None, f"no column {e} in its table"
        else:
            why = "no experiment that ended ok gave its rows"
        if m is None:
            return {"claim": self.text, "measured": "", "tolerance": self.tolerance,
                    "verdict": UNMEASURED, "detail": why}
        ok = not math.isnan(m.value) and self.holds(m.value)
        return {"claim": self.text, "measured": m.shown, "tolerance": self.tolerance,
                "verdict": PASS if ok else FAIL, "detail": m.detail}


# ---- selecting rows ------------------------------------------------------------------------

def _rows(tables, table, metric, where):
    df = tables.get(table)
    if df is None or df.empty:
        return None
    df = df[df.status == "ok"] if "status" in df else df
    if metric is not None:  # None: every metric
        df = df[df.metric.isin([metric] if isinstance(metric, str) else metric)]
    for k, v in (where or {}).items():
        if isinstance(v, dict):  # a range of a numeric column: {min: a, max: b}, inclusive
            col = df[k].astype(float)
            df = df[(col >= v.get("min", -math.inf)) & (col <= v.get("max", math.inf))]
            continue
        v = list(v) if isinstance(v, (list, tuple)) else [v]  # None: the empty cell
        df = df[df[k].isin([x for x in v if x is not None]) | (None in v) & df[k].isna()]
    return None if df.empty else df


def _or_empty(v):
    """A `where` value that also takes the empty cell (a range stays a range)."""
    return v if isinstance(v, dict) else [*(v if isinstance(v, (list, tuple)) else [v]), None]


def _groups(df, by):
    by = [b for b in by if b in df and df[b].notna().any()]
    return df.groupby(by, dropna=False) if by else [((), df)]


def _name(key, by):
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{b}={k}" for b, k in zip(by, key))


STATS = {"max": lambda s: s.max(), "min": lambda s: s.min(), "median": lambda s: s.median(),
         "p95": lambda s: s.quantile(0.95),
         "spread": lambda s: s.max() - s.min(), "sum": lambda s: s.sum(),
         "abs_max": lambda s: s.abs().max()}


# ---- the four kinds ------------------------------------------------------------------------

def bound(text, table, metric, *, stat="max", at_most=None, at_least=None, where=None,
          by=(), scale=1.0, unit=""):
    """stat of metric (in each group of `by`) times scale, at most / at least a bound; the
    worst group decides."""
    if (at_most is None) == (at_least is None):
        raise ValueError(f"claim {text!r}: give at_most or at_least")

    def measure(tables):
        df = _rows(tables, table, metric, where)
        if df is None:
            return None
        per = [(STATS[stat](g.value.astype(float)) * scale, _name(k, list(by)))
               for k, g in _groups(df, list(by))]
        value, where_ = (max if at_least is None else min)(per, key=lambda x: x[0])
        return Measured(value, f"{value:.4g}{unit}",
                        f"{stat} over {len(df)} rows" + (f"; worst at {where_}" if where_ else ""))

    limit = at_most if at_least is None else at_least
    return Claim(text, table, f"{'≤' if at_least is None else '≥'} {limit:g}{unit}", measure,
                 (lambda v: v <= at_most) if at_least is None else (lambda v: v >= at_least))


def _pairs(tables, table, metric, reference, stat, where):
    """(case, stat of metric, median of reference) in each experiment and label of the
    metric's rows: the reference's rows of that label, or of none (an expectation may have
    no label); the reference's rows match `where` where their cell is empty too."""
    m = _rows(tables, table, metric, where)
    r = _rows(tables, table, reference, {k: _or_empty(v) for k, v in (where or {}).items()})
    if m is None or r is None:
        return []
    out = []
    for (eid, label), g in m.groupby(["id", m.label.fillna("")]):
        ref = r[r.id == eid]
        ref = ref[ref.label.fillna("") == label] if (ref.label.fillna("") == label).any() \
            else ref[ref.label.isna()]
        if len(ref):
            out.append((f"{eid}" + (f" {label}" if label else ""),
                        float(STATS[stat](g.value.astype(float))), float(ref.value.median())))
    return out


def _compared(text, table, metric, reference, stat, where, *, gap, shown, value, tolerance,
              limit):
    """The worst gap(stat of metric, median of reference) over experiments (and labels), at
    most limit; shown(gap) and value(x) say them as a reader reads them."""

    def measure(tables):
        per = [(gap(a, b), case, a, b) for case, a, b in
               _pairs(tables, table, metric, reference, stat, where)]
        per = [p for p in per if p[0] is not None]
        if not per:
            return None
        g, case, a, b = max(per, key=lambda x: x[0])
        return Measured(g, shown(g), f"{len(per)} cases; worst: {stat} {value(a)} against "
                                     f"{value(b)} ({reference}) at {case}")

    return Claim(text, table, tolerance, measure, lambda v: v <= limit)


def relative(text, table, metric, reference, *, tolerance, stat="median", where=None):
    """|stat(metric) / median(reference) - 1| in each experiment (and label) at most
    tolerance (a fraction); the worst decides."""
    return _compared(text, table, metric, reference, stat, where,
                     gap=lambda a, b: abs(a / b - 1) if b else None,
                     shown=lambda g: f"{100 * g:.2f} % off", value=lambda x: f"{x:.4g}",
                     tolerance=f"≤ {100 * tolerance:g} %", limit=tolerance)


def close_to(text, table, metric, reference, *, within, stat="median", where=None,
             scale=1.0, unit=""):
    """|stat(metric) - median(reference)| times scale in each experiment (and label) at
    most within; the worst decides."""
    return _compared(text, table, metric, reference, stat, where,
                     gap=lambda a, b: abs(a - b) * scale, shown=lambda g: f"{g:.4g}{unit} apart",
                     value=lambda x: f"{x * scale:.4g}{unit}", tolerance=f"≤ {within:g}{unit}",
                     limit=within)


def same_as(text, table, *, mode, reference, metrics=None, where=None,
            keys=("sweep", "metric", "label")):
    """Every reading under `mode` equal to the one under `reference` with the same keys,
    bit for bit; measured: how many differ."""

    def measure(tables):
        df = _rows(tables, table, metrics, where)
        if df is None:
            return None
        ks = [k for k in keys if k in df]
        df = df.assign(**{k: df[k].fillna("") for k in ks})  # an empty cell is a key too
        a = df[df["mode"] == mode].groupby(ks).value.apply(tuple)
        b = df[df["mode"] == reference].groupby(ks).value.apply(tuple)
        common = a.index.intersection(b.index)
        if not len(common):
            return None
        differ = [k for k in common if a[k] != b[k]]
        first = (f"; first: {_name(differ[0], ks)}: {a[differ[0]][:3]} against "
                 f"{b[differ[0]][:3]}" if differ else "")
        return Measured(len(differ), f"{len(differ)} of {len(common)} readings differ",
                        f"{mode} against {reference}{first}")

    return Claim(text, table, "0 differ", measure, lambda v: v == 0)


def holds_in(text, table, metric, *, where=None):
    """Every row of metric says 1 (what a check wrote of itself)."""

    def measure(tables):
        df = _rows(tables, table, metric, where)
        if df is None:
            return None
        bad = df[df.value.astype(float) != 1]
        return Measured(len(bad), f"{len(df) - len(bad)} of {len(df)} hold",
                        "; ".join(f"{r.id}: {r.label}" for r in bad.head(3).itertuples()))

    return Claim(text, table, "all", measure, lambda v: v == 0)


# What no figure shows: the rerun check (reruns.py; `snakemake rerun_check` fills its table).
GENERAL = (holds_in("A rerun of an experiment gives the same guest output and the same packets "
                    "at the same dates, byte for byte", "rerun", "identical"),)


# ---- from a configuration (a configured workload's figure) ---------------------------------

def from_config(raw: dict, table: str) -> Claim:
    """A claim of a configured figure's `claims:` (schema: workloads/configured.py)."""
    text, where = raw["claim"], raw.get("where")
    if "relative_to" in raw:
        return relative(text, table, raw["metric"], raw["relative_to"],
                        tolerance=raw["tolerance"], stat=raw.get("stat", "median"), where=where)
    if "close_to" in raw:
        return close_to(text, table, raw["metric"], raw["close_to"], within=raw["within"],
                        stat=raw.get("stat", "median"), where=where, unit=raw.get("unit", ""))
    return bound(text, table, raw["metric"], stat=raw.get("stat", "max"),
                 at_most=raw.get("at_most"), at_least=raw.get("at_least"), where=where,
                 by=tuple(raw.get("by", ())), unit=raw.get("unit", ""))


# ---- the outputs ---------------------------------------------------------------------------

def evaluate(figures: dict, general: tuple, tables: dict) -> list:
    """Every claim's row: each figure's (in the registry's order), then the general ones."""
    rows = [{"figure": name, **c.check(tables)}
            for name, fig in figures.items() for c in fig.claims]
    return rows + [{"figure": "", **c.check(tables)} for c in general]


def counts(rows) -> dict:
    return {v: sum(r["verdict"] == v for r in rows) for v in (PASS, FAIL, UNMEASURED)}


def markdown(rows) -> str:
    n = counts(rows)
    lines = [f"# Claims: {n[PASS]} pass, {n[FAIL]} fail, {n[UNMEASURED]} not measured", "",
             "| figure | claim | measured | tolerance | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {cell(r['figure'])} | {cell(r['claim'])} | {cell(r['measured'])} | "
                     f"{cell(r['tolerance'])} | **{r['verdict']}** |")
    lines += ["", "How each was measured (worst case): claims.json, key `detail`."]
    return "\n".join(lines) + "\n"


def rst(rows) -> str:
    """The report's first page: the verdicts, then Snakemake's list of results."""
    n = counts(rows)
    head = ["figure", "claim", "measured", "tolerance", "verdict"]
    out = ["tansiv: claims checked against this sweep", "=" * 42, "",
           f"{n[PASS]} pass, {n[FAIL]} fail, {n[UNMEASURED]} not measured (results/claims.md; "
           "each figure's caption says what it shows).", "",
           ".. list-table::", "   :header-rows: 1", ""]
    for row in [dict(zip(head, head))] + rows:
        cells = [str(row[h]).replace("\n", " ") or "-" for h in head]
        out.append("   * - " + cells[0])
        out += [f"     - {c}" for c in cells[1:]]
    return "\n".join(out) + "\n"


def write(rows, md, js, rs) -> None:
    from pathlib import Path
    Path(md).write_text(markdown(rows))
    Path(js).write_text(json.dumps({"counts": counts(rows), "claims": rows}, indent=1) + "\n")
    Path(rs).write_text(rst(rows))
