"""An experiment's folder: its exact inputs, the coordinator's log, every packet, every
participant's output, and run.json (versions, parameters, wall time, exit status).

    inputs/          copies of the platform and deployment files
    coordinator.log  the coordinator's log
    packets.jsonl    one line per packet: src, dst, size, send_ns, complete_ns, deliver_ns
    events.jsonl     participants joining and leaving, lookahead changes
    routes.json      every participant pair's route: latency, bottleneck bandwidth (the model
                     a run's measurements are compared with, without loading SimGrid again)
    participants/    one log per participant (its stdout and stderr)
    run.json         written at the end, whatever the outcome
"""

import json
import logging
import shutil
from pathlib import Path

from .errors import InputError


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        if (self.path / "run.json").exists():
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

    def write_routes(self, net, actors) -> None:
        routes = []
        for a in actors:
            for b in actors:
                if a is not b:
                    lat, bw, links = net.route(a.host, b.host)
                    routes.append({"src": a.address, "dst": b.address, "src_host": a.host,
                                   "dst_host": b.host, "latency_s": lat, "bandwidth_Bps": bw,
                                   "links": links})
        (self.path / "routes.json").write_text(json.dumps(routes, indent=1) + "\n")

    def participant_log(self, name: str) -> Path:
        return self.path / "participants" / f"{name}.log"

    def attach_log(self, level=logging.DEBUG) -> None:
        h = logging.FileHandler(self.path / "coordinator.log")
        h.setLevel(level)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("tansiv").addHandler(h)
        self._log_handler = h

    def packet(self, record: dict) -> None:
        self._packets.write(json.dumps(record, separators=(",", ":")) + "\n")

    def event(self, record: dict) -> None:
        self._events.write(json.dumps(record) + "\n")

    def finish(self, info: dict) -> None:
        self._packets.close()
        self._events.close()
        with open(self.path / "run.json", "w") as f:
            json.dump(info, f, indent=2, default=str)
            f.write("\n")
        if self._log_handler:
            logging.getLogger("tansiv").removeHandler(self._log_handler)
            self._log_handler.close()
