"""The rerun check: experiments the configuration names (`rerun_check:`) run a second time,
and what a deterministic run must give again, compared byte for byte: every participant's
output (a VM's console: the guest's own output) and every packet with its dates
(packets.jsonl). Only modes whose VMs run on virtual time can be asked: tansiv and none."""

from pathlib import Path

from ..errors import InputError

MODES = ("tansiv", "none")  # netem (real time) and process (a program's own time) are not


def select(config: dict, experiments: dict, where: str = "config") -> list:
    """The ids of the experiments rerun_check names, in the sweep's order; a selector that
    names no sweep, or only experiments that cannot be deterministic, is an error."""
    chosen = []
    for k, sel in enumerate(config.get("rerun_check") or ()):
        key = f"{where}: rerun_check[{k}]"
        if sel["sweep"] not in config["sweeps"]:
            raise InputError(f"{key}.sweep: no sweep '{sel['sweep']}' (known: "
                             f"{', '.join(config['sweeps'])})")
        modes = [sel["mode"]] if sel.get("mode") else list(MODES)
        ids = [i for i, e in experiments.items()
               if e["sweep"] == sel["sweep"] and e["mode"] in modes]
        if not ids:
            raise InputError(f"{key}: sweep '{sel['sweep']}' has no experiment in mode "
                             f"{' or '.join(modes)} (only those run on virtual time)")
        chosen += [i for i in ids if i not in chosen]
    return chosen


def guest_outputs(run: Path) -> dict:
    """{"output of <participant>": its log} for a run's folder (a VM's log is its console)."""
    return {f"output of {log.stem}": log for log in sorted((run / "participants").glob("*.log"))}


def _outputs(run: Path) -> dict:
    """What a rerun must give again, by name: each participant's output, the packets."""
    return {**guest_outputs(run), "packets.jsonl": run / "packets.jsonl"}


def compare(first: Path, second: Path) -> list:
    """Tidy rows (metric `identical`, 1 or 0, label: what) comparing two runs' folders."""
    a, b = _outputs(first), _outputs(second)
    rows = []
    for what in sorted(set(a) | set(b)):
        same = (what in a and what in b and a[what].is_file() and b[what].is_file()
                and a[what].read_bytes() == b[what].read_bytes())
        rows.append({"metric": "identical", "value": int(same), "unit": "", "label": what})
    return rows
