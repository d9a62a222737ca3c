"""Workloads declared in the configuration (`workloads:`): the user's own distributed system.

    workloads:
      NAME:
        image: IMAGE              # of images:, or initramfs (tansiv's guest; the default)
        roles:                    # in this order on the topology's hosts h1, h2...
          ROLE:
            count: n              # the sweep's n, or a number (default 1)
            command: TEMPLATE     # a shell script; {placeholders} below
            main: true            # its VMs' end ends the experiment (one role at least)
            side: left            # on a dumbbell: left or right of the bottleneck
        params: {KEY: DEFAULT}    # a sweep's NAME: block overrides them; {KEY} in commands
        duration_s: 30            # simulated seconds the workload may take after boot
        metrics: SCRIPT           # turns a run's outputs into tidy rows (below)
        key: METRIC               # its median in the experiment's status line (default: the
                                  # first figure's first metric)
        figures: [FIGURE...]      # drawn from those rows (figures.draw_spec)

Placeholders, {WORD} (${WORD} is the shell's, left alone): {name} (ROLE and index: member0),
{address}, {index} (in its role), {n} (its role's count), {peers} (the other addresses of its
role, comma-separated), {role}, one per role: {ROLE} (its addresses, comma-separated), and the
params. Each command also finds these
facts in its environment: TANSIV_NAME, TANSIV_ROLE, TANSIV_INDEX, TANSIV_N, TANSIV_ADDRESS,
TANSIV_PEERS, TANSIV_ROLE_<ROLE> (space-separated) and TANSIV_RESULTS=/results, the folder
whose files come back in the run's results/ADDRESS/.

The metrics script is run as `SCRIPT RUN_DIR EXPERIMENT_DIR` (with tansiv's Python if it is a
.py file, which can then import tansiv.experiments.metrics.json_lines) and prints one JSON
object per line: {"metric": ..., "value": ...} and optionally unit, src, dst, seq, label."""

import hashlib
import inspect
import json
import re
import subprocess
from pathlib import Path

from ... import paths
from ...errors import InputError, TansivError
from ...vm import user_images
from .. import claims
from .base import Figure, Workload, median

FIXED = ("name", "address", "index", "n", "peers", "role")
PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
RESULTS = "/results"
BOOT_S = 10  # simulated seconds an image of the configuration may take to boot


def placeholders(template: str) -> set:
    return set(PLACEHOLDER.findall(template))


def render(template: str, fields: dict) -> str:
    return PLACEHOLDER.sub(lambda m: str(fields[m.group(1)]), template)


def _count(role: dict, n: int) -> int:
    count = role.get("count", 1)
    return n if count == "n" else count


class Configured(Workload):
    """A workload of the configuration: raw is its block under workloads:."""

    modes = frozenset({"tansiv", "netem", "none"})
    boot_s = BOOT_S

    def __init__(self, name: str, raw: dict):
        self.name, self.raw = name, raw
        self.image = raw.get("image", "initramfs")
        self.params = {k: {"default": v} for k, v in (raw.get("params") or {}).items()}
        self.table = name
        self.metrics = ()  # every row its script gives (tables.py)
        self.figures = tuple(
            Figure(f["name"], _caption(f), _drawer(name, f),
                   claims=tuple(claims.from_config(c, name) for c in f.get("claims", ())))
            for f in raw.get("figures", ()))

    def check(self, where: str, images: dict) -> None:
        """What can be wrong before anything runs, named with its key."""
        key = f"{where}: workloads.{self.name}"
        if self.image != "initramfs" and self.image not in images:
            raise InputError(f"{key}.image: no image '{self.image}' in images: (known: "
                             f"{', '.join(['initramfs', *images])})")
        roles = self.raw["roles"]
        known = set(FIXED) | set(roles) | set(self.params)
        clash = set(roles) & (set(FIXED) | set(self.params))
        if clash:
            raise InputError(f"{key}.roles: {', '.join(sorted(clash))} is also a placeholder "
                             "name: rename the role")
        for role, r in roles.items():
            unknown = sorted(placeholders(r["command"]) - known)
            if unknown:
                raise InputError(f"{key}.roles.{role}.command: unknown placeholder "
                                 f"{{{unknown[0]}}} (known: {', '.join(sorted(known))})")
        if not any(r.get("main") for r in roles.values()):
            raise InputError(f"{key}.roles: no role has main: true (whose end ends the run)")
        script = self.raw.get("metrics")
        if script and not Path(script).is_file():
            raise InputError(f"{key}.metrics: {script} does not exist")

    def participants(self, n: int) -> int:
        return sum(_count(r, n) for r in self.raw["roles"].values())

    def runs_alone(self, participants: int) -> bool:
        return participants == 1  # its VMs talk to each other

    def left(self, n: int) -> int:
        """How many participants sit left of a dumbbell's bottleneck (the roles marked left
        first, in order)."""
        return sum(_count(r, n) for r in self.raw["roles"].values() if r.get("side") == "left")

    def members(self, n: int):
        """(role, index) of every participant, left side first, in declaration order."""
        roles = self.raw["roles"]
        order = sorted(roles, key=lambda r: {"left": 0, None: 1, "right": 2}[roles[r].get("side")])
        return [(role, i) for role in order for i in range(_count(roles[role], n))]

    def plan(self, p, prm):
        members = self.members(p.exp["n"])
        addresses = {}
        for (role, _), host in zip(members, p.hosts):
            addresses.setdefault(role, []).append(p.addr[host])
        image = None
        if self.image != "initramfs":  # the pipeline's build, else the last one built here
            image = p.images.get(self.image) or user_images.by_name(self.image).path
        for (role, index), host in zip(members, p.hosts):
            raw = self.raw["roles"][role]
            me = p.addr[host]
            peers = [a for a in addresses[role] if a != me]
            fields = {"name": f"{role}{index}", "address": me, "index": index,
                      "n": len(addresses[role]), "peers": ",".join(peers), "role": role,
                      **{r: ",".join(a) for r, a in addresses.items()}, **prm}
            env = {"TANSIV_NAME": fields["name"], "TANSIV_ROLE": role, "TANSIV_INDEX": index,
                   "TANSIV_N": fields["n"], "TANSIV_ADDRESS": me, "TANSIV_PEERS": " ".join(peers),
                   "TANSIV_RESULTS": RESULTS,
                   **{f"TANSIV_ROLE_{r.upper()}": " ".join(a) for r, a in addresses.items()}}
            script = "".join(f"export {k}='{v}'\n" for k, v in env.items())
            script += render(raw["command"], fields) + "\n"
            p.vm(host, script, image=image, results=True)
            p.roles[me] = (role, index)
            if raw.get("main"):
                p.main.append(me)
        p.wait_s = self.raw.get("duration_s", 60)

    def extract(self, p, run, run_dir):
        script = self.raw.get("metrics")
        if not script:
            return []
        argv = ([str(paths.python())] if script.endswith(".py") else []) + [
            str(Path(script).resolve()), str(run_dir), str(Path(run_dir).parent)]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise TansivError(f"metrics script {script} exited with {r.returncode}: "
                              f"{r.stderr.strip()[-500:]}")
        rows = []
        for k, line in enumerate(r.stdout.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                float(row["value"])
                str(row["metric"])
            except (ValueError, KeyError, TypeError):
                raise TansivError(f"metrics script {script}: line {k} is not a JSON object "
                                  f"with a metric and a numeric value: {line[:200]}")
            rows.append(row)
        return rows

    def key_figure(self, rows) -> str:
        """The median of its key metric (`key`, default: its first figure's first)."""
        figures = self.raw.get("figures") or [{}]
        first = figures[0].get("metric")
        metric = self.raw.get("key") or (first[0] if isinstance(first, list) else first)
        value = median(rows, metric) if metric else None
        unit = next((r.get("unit", "") for r in rows if r["metric"] == metric), "")
        return "" if value is None else f"median {metric} {value:.4g} {unit}".rstrip()

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.raw, sort_keys=True).encode())
        script = self.raw.get("metrics")
        if script and Path(script).is_file():
            h.update(Path(script).read_bytes())
        for method in (self.plan, self.extract):
            h.update(inspect.getsource(method).encode())
        return h.hexdigest()[:16]


def _caption(f: dict) -> str:
    if f.get("caption"):
        return f["caption"]
    metrics = f["metric"] if isinstance(f["metric"], list) else [f["metric"]]
    return (f"{', '.join(metrics)} ({f.get('y', 'value')}) against {f['x']}"
            + (f", per {f.get('hue', 'mode')}" if f.get("hue", "mode") else "") + ".")


def _drawer(workload: str, spec: dict):
    def draw(fig, tables):
        from .. import figures
        figures.draw_spec(fig, tables, workload, spec)
    return draw
