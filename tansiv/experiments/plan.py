"""What an experiment runs: its participants (the deployment's actors, on a generated
topology), which of them end it, and how long its workload needs. A workload fills a plan
(tansiv/experiments/workloads/); the runner writes it out and runs it."""

from .. import paths
from ..run.deployment import Actor
from . import topology


class Plan:
    def __init__(self, exp: dict):
        self.exp = exp
        self.mode = exp["mode"]
        self.hosts = topology.hosts(exp["n"])
        self.addr = {h: topology.address(k) for k, h in enumerate(self.hosts)}
        self.actors = {}     # host -> Actor
        self.run_args = []   # more options of tansiv run
        self.main = []       # addresses whose end ends the run
        self.wait_s = 0.0    # simulated seconds the workload needs after boot

    def pairs(self):
        """(client, server) hosts whose routes have the full latency (topology.pairs)."""
        return topology.pairs(self.exp["topology"], self.exp["n"]) if self.exp["n"] >= 2 else []

    def vm(self, host: str, cmd: str) -> None:
        self.actors[host] = Actor(host, self.addr[host], "tansiv-vm", ["--cmd", cmd])

    def process(self, host: str, program: str, args) -> None:
        self.actors[host] = Actor(host, self.addr[host], program,
                                  ["-n", self.addr[host], "--", *args])

    def idle(self, host: str, seconds: float = 100000.0) -> None:
        """A participant that only lets time pass (ended by the run's end if need be)."""
        if self.mode == "process":
            self.process(host, str(paths.libexecdir() / "tests" / "idle"),
                         [str(int(seconds * 1e6))])
        else:
            self.vm(host, f"sleep {seconds:g}")

    def deployment(self):
        """Every host's actor, in host order: the workload's, or idle."""
        for h in self.hosts:
            if h not in self.actors:
                self.idle(h)
        return [self.actors[h] for h in self.hosts]
