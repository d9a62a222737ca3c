"""The modes an experiment runs in, and how each is run: one tansiv command, one run folder,
one run.json (tansiv/run/session.py)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    vms: bool          # runs VMs: needs QEMU and the guest image
    command: str       # the tansiv command that runs it
    real_time: bool = False  # its VMs run in real time, each at its own pace (not in step)


MODES = {m.name: m for m in (
    Mode("tansiv", True, "run"),      # VMs through the simulation
    Mode("netem", True, "netem", real_time=True),  # the same VMs, a bridge shaped by netem
    Mode("none", True, "none"),       # one VM alone: the transparency reference
    Mode("process", False, "run"),    # programs linked with libtansiv-client
)}
