"""The pipeline's configuration: checked against its schema (workflow/schemas/, completed
from the mode and workload registries) before anything runs, every error naming the key;
then its images and workloads, against each other and what this machine has."""

from pathlib import Path

import yaml

from .. import paths, units
from ..errors import InputError
from ..run.choices import IDLE_HORIZONS, NETWORKS, QUEUES, TRANSPORTS
from ..vm.user_images import ImageSpec
from .modes import MODES
from .tables import columns
from .topology import KINDS
from .workloads import WORKLOADS, registry

SCHEMA = paths.source_dir() / "workflow" / "schemas" / "config.schema.yaml"


INCLUDABLE = ("images", "workloads")


def resolve(config: dict) -> dict:
    """The configuration with the images and workloads of the files its `include:` lists
    (relative to the project), its own taking precedence."""
    merged = {k: {} for k in INCLUDABLE}
    for name in config.get("include") or []:
        try:
            part = yaml.safe_load(Path(name).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"config: include: cannot read {name}: {e}")
        other = sorted(set(part) - set(INCLUDABLE))
        if other:
            raise InputError(f"{name}: {', '.join(other)}: an included file holds only "
                             f"{' and '.join(INCLUDABLE)}")
        for k in INCLUDABLE:
            merged[k].update(part.get(k) or {})
    return {**config, **{k: {**merged[k], **(config.get(k) or {})} for k in INCLUDABLE
                         if merged[k] or config.get(k)}}


def schema(config: dict = None) -> dict:
    """The schema, completed for this configuration (its workloads are names too)."""
    s = yaml.safe_load(SCHEMA.read_text())
    s["definitions"]["duration"]["pattern"] = units.DURATION_PATTERN
    s["definitions"]["bandwidth"]["pattern"] = units.BANDWIDTH_PATTERN
    s["definitions"]["topology"]["enum"] = list(KINDS)
    sweep = s["properties"]["sweeps"]["additionalProperties"]["properties"]
    sweep["modes"]["items"]["enum"] = list(MODES)
    sweep["transports"]["items"]["enum"] = list(TRANSPORTS)
    sweep["network"] = {**sweep["network"], "items": {"enum": list(NETWORKS)}}
    # YAML reads a bare on/off as true/false: both spellings are taken (sweep.py maps them).
    sweep["idle_horizons"]["items"]["enum"] = [*IDLE_HORIZONS, True, False]
    sweep["queue_size"]["items"]["pattern"] = units.QUEUE_SIZE_PATTERN
    sweep["queue"] = {**sweep["queue"], "items": {"enum": list(QUEUES)}}
    workloads = registry(config)
    sweep["workload"]["enum"] = list(workloads)
    for w in workloads.values():
        sweep[w.name] = {"type": "object", "additionalProperties": False,
                         "properties": w.params}
    return s


def check(config: dict, source: str = "config") -> None:
    """Raises InputError naming the first offending key ('source: sweeps.a.latency[0]: ...')."""
    from jsonschema import Draft202012Validator
    errors = sorted(Draft202012Validator(schema(config)).iter_errors(config),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in e.absolute_path)
        raise InputError(f"{source}: {where.lstrip('.') or 'top level'}: {e.message}")
    images(config, source)
    declared = config.get("workloads") or {}
    for name in declared:
        if name in WORKLOADS:
            raise InputError(f"{source}: workloads.{name}: tansiv has a workload of this name")
    workloads = registry(config)
    figures = {}
    for name in declared:
        w = workloads[name]
        w.check(source, config.get("images") or {})
        for f in w.raw.get("figures", ()):
            where = f"{source}: workloads.{name}.figures: {f['name']}"
            for k in ("x", "hue", "style", "col"):
                if f.get(k) and f[k] not in columns(config):
                    raise InputError(f"{where}: {k}: no column '{f[k]}' in the tables "
                                     f"(known: {', '.join(columns(config))})")
    for w in workloads.values():
        for f in w.figures:
            if f.name in figures:
                raise InputError(f"{source}: figure '{f.name}' of {w.name} is also one of "
                                 f"{figures[f.name]}'s")
            figures[f.name] = w.name


def narrowed(config: dict, source: str = "config") -> dict:
    """The configuration with only the sweeps `only` names (a list, or `--config only=a,b`)
    and the rerun_check selectors of those: one figure's sweep of a large configuration."""
    only = config.get("only")
    if not only:
        return config
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else list(only)
    unknown = [n for n in names if n not in config["sweeps"]]
    if unknown:
        raise InputError(f"{source}: only: no sweep {', '.join(map(repr, unknown))} (known: "
                         f"{', '.join(config['sweeps'])})")
    return {**config, "sweeps": {k: v for k, v in config["sweeps"].items() if k in names},
            "rerun_check": [s for s in config.get("rerun_check") or () if s["sweep"] in names]}


def images(config: dict, source: str = "config") -> dict:
    """{name: ImageSpec} of the configuration, each checked."""
    return {name: ImageSpec.from_config(name, raw, source)
            for name, raw in (config.get("images") or {}).items()}
