"""run.json: what a run was and how it went, one record of one shape whatever the mode
(tansiv: coupled to the simulation; netem: the baseline; none: VMs alone). Fields that do not
apply to a mode are null. Written once, at the end, whatever the outcome; read back by
`tansiv report` and the pipeline."""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import TansivError

FILE = "run.json"

# How a run ended, and the exit status of the tansiv command that ran it.
EXIT_STATUS = {"ok": 0, "error": 1, "participant-failure": 3, "interrupted": 130,
               "terminated": 143}


# A participant's states (tansiv/run/participants.py says how it moves between them).
STARTING, RUNNING, ENDED, LEFT, CRASHED, FAILED = (
    "starting", "running", "ended", "left", "crashed", "failed")
BROKEN = (CRASHED, FAILED)  # what makes a run's status participant-failure


@dataclass
class ParticipantRecord:
    name: str                # its address
    host: str
    program: str
    role: str = None         # process or vm
    transport: str = None    # shm (a shared-memory channel), socket, or relay (another node)
    node: str = None         # --launcher slurm: the node it ran on, if not the coordinator's
    state: str = "starting"  # running, ended, left, crashed, failed
    detail: str = ""
    main: bool = False       # its end ends the run
    end_ns: int = None       # simulated time it left at
    held_s: float = None     # wall time the coordinator held it at barriers
    exit: int = None         # exit status (negative: the signal that killed it)
    log: str = ""

    @property
    def broke(self) -> bool:
        return self.state in BROKEN


@dataclass
class RunRecord:
    mode: str                          # tansiv, netem, none
    status: str = "error"              # a key of EXIT_STATUS
    error: str = None
    command: list = field(default_factory=list)
    started: str = ""
    total_wall_s: float = 0.0          # of the whole run, from its checks to its record
    versions: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    participants: list = field(default_factory=list)  # of ParticipantRecord
    # The simulation (tansiv mode)
    start_ns: int = 0                  # the date it started at (a VM snapshot's, else 0)
    simulated_ns: int = None           # the date the simulation reached
    sync_wall_s: float = None          # wall time of the synchronization loop
    simulated_s_per_wall_s: float = None
    progress: list = None              # [simulated ns, wall s] samples of that loop
    rounds: int = None
    rounds_sat_out: int = None         # rounds participants sat out, idle (summed over them)
    lookahead_ns: int = None
    packets_delivered: int = None
    packets_dropped: int = None
    packets_late: int = None           # delivered after SimGrid completed them
    time_split_ns: dict = None         # hub_busy, hub_cpu, hub_wait, simgrid, python
    # The netem baseline: where the bridge was ("namespace" or "router") and why
    netem: dict = None

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.status]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        path = Path(run_dir) / FILE
        if not path.exists():
            raise TansivError(f"{run_dir} holds no run (no {FILE})")
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.participants = [ParticipantRecord(**p) for p in record.participants]
        return record
