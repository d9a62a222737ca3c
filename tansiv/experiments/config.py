"""The pipeline's configuration: checked against its schema (workflow/schemas/, completed
from the mode and workload registries) before anything runs, every error naming the key."""

import yaml

from .. import paths, units
from ..errors import InputError
from .modes import MODES
from .topology import KINDS
from .workloads import WORKLOADS

SCHEMA = paths.source_dir() / "workflow" / "schemas" / "config.schema.yaml"


def schema() -> dict:
    s = yaml.safe_load(SCHEMA.read_text())
    s["definitions"]["duration"]["pattern"] = units.DURATION_PATTERN
    s["definitions"]["bandwidth"]["pattern"] = units.BANDWIDTH_PATTERN
    s["definitions"]["topology"]["enum"] = list(KINDS)
    sweep = s["properties"]["sweeps"]["additionalProperties"]["properties"]
    sweep["modes"]["items"]["enum"] = list(MODES)
    sweep["workload"]["enum"] = list(WORKLOADS)
    for w in WORKLOADS.values():
        sweep[w.name] = {"type": "object", "additionalProperties": False,
                         "properties": w.params}
    return s


def check(config: dict, source: str = "config") -> None:
    """Raises InputError naming the first offending key ('source: sweeps.a.latency[0]: ...')."""
    from jsonschema import Draft202012Validator
    errors = sorted(Draft202012Validator(schema()).iter_errors(config),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in e.absolute_path)
        raise InputError(f"{source}: {where.lstrip('.') or 'top level'}: {e.message}")
