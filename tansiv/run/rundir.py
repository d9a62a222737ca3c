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
import shutil
from pathlib import Path

from ..errors import InputError
from . import record, routes


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        if (self.path / record.FILE).exists():
            raise InputError("this folder already holds a run: choose another --out", self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "participants").mkdir(exist_ok=True)
        self._packets = open(self.path / "packets.jsonl", "w", buffering=1 << 16)
        self._events = open(self.path / "events.jsonl", "w", buffering=1)
        self._log_handler = None

    def copy_inputs(self, *files) -> None:
        inputs = self.path / "inputs"
        inputs.mkdir(exist_ok=True)
        for f in files:
            shutil.copy2(f, inputs / Path(f).name)

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
