"""What an experiment runs: its participants (the deployment's actors, on a generated
topology), which of them end it, and how long its workload needs. A workload fills a plan
(tansiv/experiments/workloads/); the runner writes it out and runs it."""

from .. import paths
from ..run.deployment import Actor
from . import topology


class Plan:
    def __init__(self, exp: dict, images=None):
        self.exp = exp
        self.mode = exp["mode"]
        self.images = images or {}  # image name -> its built folder
        self.hosts = topology.hosts(exp["participants"])
        self.addr = {h: topology.address(k) for k, h in enumerate(self.hosts)}
        self.actors = {}     # host -> Actor
        self.roles = {}      # address -> (role, index), for the workloads that have roles
        self.run_args = []   # more options of tansiv run
        self.main = []       # addresses whose end ends the run
        self.wait_s = 0.0    # simulated seconds the workload needs after boot

    def pairs(self):
        """(client, server) hosts whose routes have the full latency (topology.pairs)."""
        n = self.exp["participants"]
        return topology.pairs(self.exp["topology"], n) if n >= 2 else []

    def vm(self, host: str, cmd: str, image=None, results: bool = False) -> None:
        """A VM running cmd (a shell script) in image (a built image's folder; default:
        tansiv's guest), bringing its /results back if asked."""
        args = ["--cmd", cmd] + (["--image", str(image)] if image else [])
        self.actors[host] = Actor(host, self.addr[host], "tansiv-vm",
                                  args + (["--results"] if results else []))

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
