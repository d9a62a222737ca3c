"""A run's folder: its exact inputs, the coordinator's log, every packet, every participant's
output, the routes and the run's record.

    inputs/          copies of the platform and deployment files
    coordinator.log  the coordinator's log
    packets.jsonl    one line per packet: src, dst, size, send_ns, complete_ns, deliver_ns
    events.jsonl     participants joining and leaving, lookahead changes
    routes.json      every participant pair's route (tansiv/run/routes.py)
    participants/    one log per participant (its stdout and stderr)
    pcap/            with --pcap: <address>.pcap, what each participant sent and received,
                     in simulated time (tansiv/run/pcap.py)
    run.json         the record (tansiv/run/record.py), written at the end whatever happens
"""

import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import InputError
from . import record, routes


PRIVATE = 0o077  # umask of a run: its folders 0700, its files 0600
_claimed = set()  # by this process


def claim(path: Path) -> None:
    """Makes path this run's, or raises InputError: its coordinator.log is created
    exclusively, so that two runs never share a folder, even started at the same instant."""
    if path.resolve() in _claimed:
        return
    try:
        path.mkdir(parents=True)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass  # a folder the user made keeps the mode they chose; a run's is private already
    try:
        os.close(os.open(path / "coordinator.log", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise InputError("this folder already holds a run: choose another --out", path)
    _claimed.add(path.resolve())


def fresh(base: Path) -> Path:
    """base, or base-2, base-3... : the first that no run holds yet."""
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            claim(path)
            return path
        except InputError:
            continue
    raise InputError("no free run folder name", base)


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        # What a run writes is its user's alone (packets, logs, the hub's socket), whatever
        # the umask it was started with; its participants inherit this.
        os.umask(PRIVATE)
        claim(self.path)
        (self.path / "participants").mkdir(exist_ok=True)
        self._packets = open(self.path / "packets.jsonl", "w", buffering=1 << 16)
        self._events = open(self.path / "events.jsonl", "w", buffering=1)
        self._log_handler = None

    def copy_inputs(self, platform, deployment) -> None:
        """inputs/NAME of each; platform-NAME and deployment-NAME if they have one name."""
        inputs = self.path / "inputs"
        inputs.mkdir(exist_ok=True)
        platform, deployment = Path(platform), Path(deployment)
        same = platform.name == deployment.name
        for role, f in (("platform", platform), ("deployment", deployment)):
            shutil.copy2(f, inputs / (f"{role}-{f.name}" if same else f.name))

    def write_routes(self, table) -> None:
        routes.write(self.path, table)

    def participant_log(self, name: str) -> Path:
        return self.path / "participants" / f"{name}.log"

    def attach_log(self, level=logging.DEBUG) -> None:
        h = logging.FileHandler(self.path / "coordinator.log")
        h.setLevel(level)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("tansiv").addHandler(h)
        self._log_handler = h

    def packet(self, fields: dict) -> None:
        self._packets.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def event(self, fields: dict) -> None:
        self._events.write(json.dumps(fields) + "\n")

    def finish(self, run: record.RunRecord) -> None:
        self._packets.close()
        self._events.close()
        run.write(self.path)
        if self._log_handler:
            logging.getLogger("tansiv").removeHandler(self._log_handler)
            self._log_handler.close()
