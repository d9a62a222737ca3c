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


def table(net, actors) -> list:
    """Every ordered pair of distinct actors (actors on one host included: their route is
    that host's loopback, with SimGrid's latency for it)."""
    routes = []
    for a in actors:
        for b in actors:
            if a is not b:
                lat, bw, links = net.route(a.host, b.host)
                routes.append(Route(a.address, b.address, a.host, b.host, lat, bw, links))
    return routes


def lookahead(routes, among) -> tuple:
    """The smallest route latency (ns) between two of the addresses `among`, and the route it
    comes from; (None, None) with fewer than two."""
    among = set(among)
    best = None
    for r in routes:
        if r.src in among and r.dst in among and (best is None or r.latency_ns < best.latency_ns):
            best = r
    return (best.latency_ns, best) if best else (None, None)


def write(run_dir: Path, routes) -> None:
    (Path(run_dir) / FILE).write_text(json.dumps([asdict(r) for r in routes], indent=1) + "\n")


def load(run_dir: Path) -> dict:
    """{(src, dst): Route} of a run."""
    path = Path(run_dir) / FILE
    if not path.exists():
        raise TansivError(f"{run_dir} has no {FILE}: it was not made by tansiv")
    return {(r["src"], r["dst"]): Route(**r) for r in json.loads(path.read_text())}
