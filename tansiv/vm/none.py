"""VMs alone (mode none): each guest under icount with its NIC on a hub port that leads
nowhere, no coordinator, no simulation. What a guest observes there is the reference its
observations under tansiv are compared with (timing transparency)."""

from pathlib import Path

from .. import paths
from ..run.participants import RUNNING, Participant, wait


def run(actors, peers, env: dict, rundir, timeout_s: float = 600.0):
    """Runs each actor's tansiv-vm alone, with the same command line as under tansiv (same
    address, and peers: every address of its deployment) and env (the VM build's, as
    session._prepare_vms gives it), until all power off or timeout_s of wall time."""
    peers = ",".join(peers)
    participants = [Participant(a, Path("tansiv-vm"), rundir.participant_log(a.address),
                                main=True, role="vm") for a in actors]
    for p in participants:
        p.start([str(paths.bindir() / "tansiv-vm"), *p.actor.args, "--mode", "none",
                 "--address", p.name, "--peers", peers],
                env={**env, "TANSIV_RUN_DIR": str(Path(rundir.path).resolve())})
        p.state = RUNNING
    wait(participants, timeout_s)
    return participants
