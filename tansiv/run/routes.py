"""The route of every ordered pair of participants: what the simulation gives their packets
(latency, bottleneck bandwidth), hence the lookahead, the model measurements are compared
with, and the netem baseline's shaping. Computed once from SimGrid, kept in the run's
routes.json, and read back from there without SimGrid (whose engine is one per process)."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import TansivError

FILE = "routes.json"


@dataclass(frozen=True)
class Route:
    src: str               # participants' addresses
    dst: str
    src_host: str
    dst_host: str
    latency_ns: int
    bandwidth_Bps: float   # the bottleneck's
    links: list = field(default_factory=list)
    hop_bandwidths_Bps: list = field(default_factory=list)  # each link's, in order

    def serialization_ns(self, size: int, network: str = "simgrid") -> float:
        """What size bytes take on the route beyond its latency: once at the bottleneck
        (SimGrid's flows), or on every hop (ns-3's packets, stored and forwarded)."""
        if network == "ns3" and self.hop_bandwidths_Bps:
            return sum(size / bw * 1e9 for bw in self.hop_bandwidths_Bps)
        return size / self.bandwidth_Bps * 1e9


def table(net, actors) -> list:
    """Every ordered pair of distinct actors (actors on one host included: their route is
    that host's loopback, with SimGrid's latency for it); SimGrid asked once per pair of
    hosts."""
    routes, by_hosts = [], {}
    for a in actors:
        for b in actors:
            if a is not b:
                key = (a.host, b.host)
                if key not in by_hosts:
                    by_hosts[key] = net.route(a.host, b.host)
                lat, bw, links, hops = by_hosts[key]
                routes.append(Route(a.address, b.address, a.host, b.host, lat, bw, links,
                                    hops))
    return routes


class Lookahead:
    """The smallest route latency between participants still in the run. The routes are
    sorted once; as participants only ever leave, the search resumes where the last one
    stopped: O(N² log N) for a whole run, not O(N²) at every departure."""

    def __init__(self, routes):
        self._sorted = sorted(routes, key=lambda r: r.latency_ns)
        self._front = 0

    def among(self, names) -> tuple:
        """(latency ns, its route) of the closest two of `names` (a subset of the names of
        the last call); (None, None) with fewer than two."""
        names = set(names)
        while self._front < len(self._sorted):
            r = self._sorted[self._front]
            if r.src in names and r.dst in names:
                return r.latency_ns, r
            self._front += 1
        return None, None


def write(run_dir: Path, routes) -> None:
    (Path(run_dir) / FILE).write_text(json.dumps([asdict(r) for r in routes], indent=1) + "\n")


def load(run_dir: Path) -> dict:
    """{(src, dst): Route} of a run."""
    path = Path(run_dir) / FILE
    if not path.exists():
        raise TansivError(f"{run_dir} has no {FILE}: it was not made by tansiv")
    return {(r["src"], r["dst"]): Route(**r) for r in json.loads(path.read_text())}
