"""Parameter sweeps: the pipeline's configuration (config/config.yaml, checked by
tansiv/experiments/config.py) expanded into experiments, each a dict of plain values with an
id (the fields of Experiment).

A sweep crosses its lists (modes, transports, nodes, network, idle_horizons, queue,
queue_size, loss, seed, latency, bandwidth, n, lookahead) and repeats each point `repetitions`
times (or, given per mode, as many times as its mode says: a deterministic mode needs one);
`defaults`, then BUILTIN_DEFAULTS, fill what a sweep leaves out, and the workload's own
defaults what its parameter block leaves out."""

import itertools
import re
from dataclasses import asdict, dataclass, field, fields

from .. import units
from ..errors import InputError
from ..run.choices import IDLE_HORIZONS, NETWORKS, TRANSPORTS
from .modes import MODES
from .workloads import registry

# What a sweep gets when neither it nor the config's defaults say.
BUILTIN_DEFAULTS = {"topology": "star", "latency": ["10ms"], "bandwidth": ["1Gbps"], "n": [2],
                    "repetitions": 1}
TIMEOUT_S = 1800


def _not_column(default=None):
    return field(default=default, metadata={"column": False})


@dataclass
class Experiment:
    """One point of a sweep, as its job gets it (spec.json) and as the tables show it: every
    field is a column of experiments.csv and of the measurement tables, unless marked."""
    id: str
    sweep: str
    mode: str
    transport: str            # tansiv run --transport (None: a mode without a coordinator)
    nodes: int                # SLURM nodes the run spreads over
    workload: str
    topology: str
    n: int                    # the sweep's n
    participants: int         # hosts the workload's n makes
    left: int                 # a dumbbell's hosts on the left (None: half)
    latency: str              # as written in the sweep
    latency_ns: int
    bandwidth: str
    bandwidth_Bps: float
    lookahead: str
    lookahead_ns: int
    network: str              # tansiv run --network (None: a mode without a coordinator)
    idle_horizons: str        # tansiv run --idle-horizons (None: likewise)
    queue: str                # ns3: every link's queue (None: the model's default)
    queue_size: str           # ns3 and netem: each link direction's buffer (None: default)
    loss: float               # ns3 and netem: each link's loss probability (None: 0)
    seed: int                 # the run's randomness (None: tansiv's default)
    rep: int
    params: dict = _not_column()       # the workload's parameters (a column each: tables.py)
    definition: dict = _not_column()   # a configured workload's block
    netem_where: str = _not_column("auto")
    cold_boot: bool = _not_column(False)  # VMs boot instead of starting from a snapshot
    pcap: bool = _not_column(False)
    timeout_s: float = _not_column(TIMEOUT_S)


COLUMNS = [f.name for f in fields(Experiment) if f.metadata.get("column", True)]


def _on_off(value) -> str:
    """on/off as YAML may have read it (true/false)."""
    return {True: "on", False: "off"}.get(value, value)


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", str(text)).strip("_")


def _repetitions(sweep: dict, where: str) -> dict:
    """{mode: how many times its points run}: `repetitions` is a count, or a count per mode
    (a mode it leaves out runs once)."""
    reps = sweep["repetitions"]
    if not isinstance(reps, dict):
        return dict.fromkeys(sweep["modes"], reps)
    for named in reps:
        if named not in MODES:
            raise InputError(f"{where}.repetitions: '{named}' is not a mode "
                             f"({', '.join(MODES)})")
    return {mode: reps.get(mode, 1) for mode in sweep["modes"]}


def expand(config: dict) -> dict:
    """{experiment id: experiment (a dict of Experiment's fields)} for every point of every
    sweep, in a stable order. Raises InputError naming the sweep and key of anything
    inconsistent (the schema has checked each value's form)."""
    defaults = {**BUILTIN_DEFAULTS, **config.get("defaults", {})}
    workloads = registry(config)
    experiments = {}
    for name, raw in config["sweeps"].items():
        sweep = {**defaults, **raw}
        where = f"config: sweeps.{name}"
        w = workloads[sweep["workload"]]
        definition = (config.get("workloads") or {}).get(w.name)
        for mode in sweep["modes"]:
            if mode not in w.modes:
                raise InputError(f"{where}.modes: mode '{mode}' cannot run workload "
                                 f"'{w.name}' (it runs in: {', '.join(sorted(w.modes))})")
        topology = sweep["topology"]
        repetitions = _repetitions(sweep, where)
        lookaheads = sweep.get("lookahead", [None])
        if w.needs_lookahead and lookaheads == [None]:
            raise InputError(f"{where}: the {w.name} workload needs a lookahead list")
        coupled = list(itertools.product(sweep.get("transports", [TRANSPORTS[0]]),
                                         sweep.get("nodes", [1]),
                                         sweep.get("network", [NETWORKS[0]]),
                                         [_on_off(h) for h in
                                          sweep.get("idle_horizons", [IDLE_HORIZONS[0]])]))
        points = [(mode, *c) for mode in sweep["modes"]
                  for c in (coupled if MODES[mode].command == "run"
                            else [(None, 1, None, None)])]
        impairments = list(itertools.product(
            sweep.get("queue", [None]), sweep.get("queue_size", [None]),
            sweep.get("loss", [None]), sweep.get("seed", [None])))
        for (mode, transport, k, net, horizons), (queue, qsize, loss, seed), lat, bw, n, la in \
                itertools.product(points, impairments, sweep["latency"], sweep["bandwidth"],
                                  sweep["n"], lookaheads):
            if net == NETWORKS[0] and (queue or qsize or loss):
                raise InputError(f"{where}: queue, queue_size and loss are ns-3's: mode "
                                 f"{mode} on network {net} has none (network: [ns3])")
            if net is None and mode != "netem" and (queue or qsize or loss):
                raise InputError(f"{where}: mode {mode} has no network to give a queue or a "
                                 "loss to")
            if mode == "netem":
                queue = None  # netem's queue is its own FIFO: one point for every queue
            latency_ns = units.step_ns(lat, f"{where}.latency")
            bandwidth_Bps = units.bandwidth(bw, f"{where}.bandwidth")
            if bandwidth_Bps <= 0:
                raise InputError(f"{where}.bandwidth: '{bw}': a link needs a bandwidth > 0")
            if n < w.min_n:
                raise InputError(f"{where}.n: the {w.name} workload needs n >= {w.min_n}")
            participants, left = w.participants(n), w.left(n)
            if mode == "none" and not w.runs_alone(participants):
                raise InputError(f"{where}.modes: mode none runs VMs alone; the {w.name} "
                                 f"workload's {participants} VMs at n = {n} need each other")
            if topology == "dumbbell" and left is None:
                raise InputError(f"{where}.n: a dumbbell needs an even n, not {n}")
            if topology == "dumbbell" and not 0 < left < participants:
                raise InputError(f"{where}.topology: a dumbbell needs participants on both "
                                 f"sides (the {w.name} workload's roles' side: left or right)")
            for rep in range(repetitions[mode]):
                parts = [name, mode, w.name, _slug(topology), f"n{n}", f"lat{_slug(lat)}",
                         f"bw{_slug(bw)}"]
                if transport not in (None, TRANSPORTS[0]):
                    parts.append(transport)  # the default's ids stay as they were
                if k != 1:
                    parts.append(f"nodes{k}")
                if la is not None:
                    parts.append(f"la{_slug(la)}")
                if net not in (None, NETWORKS[0]):
                    parts.append(net)
                if horizons not in (None, IDLE_HORIZONS[0]):
                    parts.append(f"horizons{horizons}")
                for key, value in (("q", queue), ("qs", qsize), ("loss", loss),
                                   ("seed", seed)):
                    if value is not None:
                        parts.append(f"{key}{_slug(value)}")
                parts.append(f"r{rep}")
                eid = "-".join(parts)
                experiments[eid] = asdict(Experiment(
                    id=eid, sweep=name, mode=mode, transport=transport, nodes=k,
                    workload=w.name, topology=topology, n=n, participants=participants,
                    left=left, latency=lat, latency_ns=latency_ns, bandwidth=bw,
                    bandwidth_Bps=bandwidth_Bps, lookahead=la,
                    lookahead_ns=units.step_ns(la, f"{where}.lookahead") if la else None,
                    network=net, idle_horizons=horizons, queue=queue, queue_size=qsize, loss=loss, seed=seed,
                    rep=rep, params={**w.defaults(), **(sweep.get(w.name) or {})},
                    definition=definition, netem_where=config.get("netem_where", "auto"),
                    cold_boot=config.get("cold_boot", False),
                    pcap=sweep.get("pcap", False),
                    timeout_s=sweep.get("timeout_s", config.get("timeout_s", TIMEOUT_S))))
    return experiments


def check_qemu_version(config: dict, qemu_env_text: str) -> None:
    """The configured QEMU version must be the one csrc/qemu/qemu.env pins."""
    m = re.search(r"^QEMU_VERSION=(\S+)", qemu_env_text, re.M)
    pinned = m.group(1) if m else "?"
    if str(config.get("qemu_version", pinned)) != pinned:
        raise InputError(f"config: qemu_version: {config['qemu_version']} is not the version "
                         f"csrc/qemu/qemu.env pins ({pinned})")
