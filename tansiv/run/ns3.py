"""The platform as a packet network in ns-3 (csrc/ns3, `--network ns3`): queues that fill,
frames that drop, seeded loss, from the same SimGrid platform file.

SimGrid reads the platform and gives each pair of hosts its route (the links it crosses);
every link becomes an ns-3 point-to-point channel of its bandwidth and latency, full duplex,
a queue in each direction, and every frame one packet of its size that follows its route hop
by hop. Which way a route crosses a link is read from the routes themselves (orient): the
link's neighbours on a route (the host or link before it, the one after) lie on its two
sides. A link that the routes cross in no consistent pair of directions (a cluster's
backbone, which every route enters and leaves through the same switch: a bus) gets one
queue. Each link's queue and loss come from its `<prop>`s (tansiv.queue, tansiv.queue_size,
tansiv.loss) or from the run's options."""

import logging
from collections import defaultdict, deque
from dataclasses import dataclass

import cffi

from .. import units
from ..errors import InputError, TansivError
from . import cheader
from .choices import DEFAULT_QUEUE_SIZE, QUEUES
from .network import Fate

log = logging.getLogger("tansiv.ns3")

MISSING = ("tansiv's ns-3 model is not built on this machine (it needs Debian's libns3-dev: "
           "run ./setup.sh again)")
if not QUEUES:
    raise TansivError(f"--network ns3: {MISSING}")
DEFAULT_QUEUE = QUEUES[0]  # DropTail
_ffi = cffi.FFI()
cheader.load(_ffi, "tansiv-ns3.h")
_lib = None

PROPS = ("tansiv.queue", "tansiv.queue_size", "tansiv.loss")  # a link's <prop id=...>
_KIND = _ffi.typeof("enum tsv_ns3_fate_kind").relements
DELIVERED, AQM = _KIND["TSV_NS3_DELIVERED"], _KIND["TSV_NS3_AQM"]
WHY = {_KIND["TSV_NS3_QUEUE_FULL"]: "queue full", _KIND["TSV_NS3_LOSS"]: "loss",
       AQM: "queue discipline"}
BUS = 0  # a bus's one direction


def _library():
    global _lib
    if _lib is None:
        try:
            _lib = cheader.open_library(_ffi, "tansiv-ns3")
        except OSError as e:
            raise TansivError(f"--network ns3: {MISSING}: {e}")
    return _lib


@dataclass(frozen=True)
class LinkSpec:
    """What ns-3 makes of one SimGrid link."""
    name: str
    bandwidth_Bps: float
    latency_ns: int
    queue: str
    queue_size: tuple  # (count, in_packets)
    loss: float


def link_spec(net, name: str, defaults: dict) -> LinkSpec:
    """A link's parameters: SimGrid's bandwidth and latency, its <prop>s or the defaults
    (queue, queue_size, loss as the command line gives them)."""
    link = net.link(name)
    where = f"{net.platform}: link {name}"
    unknown = [p for p in net.link_properties(name) if p.startswith("tansiv.") and p not in PROPS]
    if unknown:
        raise InputError(f"{where}: unknown property {unknown[0]} (tansiv's: "
                         f"{', '.join(PROPS)})")
    props = {p: net.link_property(name, p) for p in PROPS}
    queue = props["tansiv.queue"] or defaults["queue"]
    if queue not in QUEUES:
        raise InputError(f"{where}: tansiv.queue '{queue}' is not one of {', '.join(QUEUES)}")
    size = units.queue_size(props["tansiv.queue_size"] or defaults["queue_size"],
                            f"{where}: tansiv.queue_size")
    loss = (units.probability(props["tansiv.loss"], f"{where}: tansiv.loss")
            if props["tansiv.loss"] is not None else defaults["loss"])
    return LinkSpec(name, link.bandwidth, units.to_ns(link.latency), queue, size, loss)


def orient(routes: dict) -> tuple:
    """Which way each route crosses each of its links. routes: {(src, dst): [link names]}.
    Returns ({(src, dst): [0 or 1 per hop]}, {link: (side 0's label, side 1's label) or None
    for a bus})."""
    # A link's neighbours on a route are on its two sides: an edge between them.
    edges = defaultdict(set)
    for (src, dst), links in routes.items():
        ends = [("host", src)] + [("link", l) for l in links] + [("host", dst)]
        for k, link in enumerate(links):
            before, after = ends[k], ends[k + 2]
            edges[link].add((before, after))
    sides, labels = {}, {}
    for link in sorted(edges):
        graph = defaultdict(set)
        for a, b in edges[link]:
            graph[a].add(b)
            graph[b].add(a)
        color, bus = {}, False
        for start in sorted(graph):  # each component its own BFS, in a fixed order
            if start in color:
                continue
            color[start] = 0
            todo = deque([start])
            while todo:
                n = todo.popleft()
                for m in sorted(graph[n]):
                    if m not in color:
                        color[m] = 1 - color[n]
                        todo.append(m)
                    elif color[m] == color[n]:
                        bus = True
        sides[link] = None if bus else color
        labels[link] = None if bus else tuple(
            min(n[1] for n in color if color[n] == c) for c in (0, 1))
    dirs = {}
    for (src, dst), links in routes.items():
        ends = [("host", src)] + [("link", l) for l in links]
        dirs[(src, dst)] = [BUS if sides[l] is None else sides[l][ends[k]]
                            for k, l in enumerate(links)]
    return dirs, labels


class Ns3Network:
    """The network model (tansiv/run/network.py) in ns-3, for the hosts of `routes`
    (routes.Route: the participants' pairs)."""

    def __init__(self, net, routes, queue=DEFAULT_QUEUE, queue_size=DEFAULT_QUEUE_SIZE,
                 loss=0.0, seed=1):
        self._lib = lib = _library()
        err = _ffi.new("char[256]")
        if lib.tsv_ns3_init(seed, err, 256):
            raise TansivError(f"ns-3: {_ffi.string(err).decode()}")
        by_hosts = {(r.src_host, r.dst_host): r.links for r in routes}
        dirs, self.labels = orient(by_hosts)
        names = sorted({l for links in by_hosts.values() for l in links})
        defaults = {"queue": queue, "queue_size": queue_size, "loss": loss}
        self.links = [link_spec(net, name, defaults) for name in names]
        index = {name: k for k, name in enumerate(names)}
        for k, spec in enumerate(self.links):
            count, in_packets = spec.queue_size
            if lib.tsv_ns3_add_link(k, max(1, round(spec.bandwidth_Bps)), spec.latency_ns,
                                    QUEUES.index(spec.queue), count, in_packets, spec.loss,
                                    err, 256):
                raise InputError(f"link {spec.name}: {_ffi.string(err).decode()}",
                                 net.platform)
        self.hosts = {h: k for k, h in enumerate(sorted({h for pair in by_hosts for h in pair}))}
        for (src, dst), links in by_hosts.items():
            ids = _ffi.new("uint32_t[]", [index[l] for l in links])
            way = _ffi.new("uint8_t[]", dirs[(src, dst)])
            if lib.tsv_ns3_add_route(self.hosts[src], self.hosts[dst], len(links), ids, way):
                raise TansivError(f"ns-3 refused the route {src} -> {dst}")
        self._fates = _ffi.new("struct tsv_ns3_fate[]", 1024)
        self._refused = []
        log.info("ns-3: %d links (%s), %d routes, seed %d", len(self.links),
                 ", ".join(sorted({f"{s.queue} {s.queue_size[0]}"
                                   f"{'p' if s.queue_size[1] else 'B'}"
                                   + (f" loss {s.loss:g}" if s.loss else "")
                                   for s in self.links})), len(by_hosts), seed)

    def where(self, link: int, direction: int) -> str:
        spec = self.links[link]
        sides = self.labels[spec.name]
        if sides is None:
            return f"{spec.name} (a bus)"
        a, b = sides if direction == 0 else sides[::-1]
        return f"{spec.name} ({a} -> {b})"

    # ---- the network model ---------------------------------------------------------------

    def send(self, src: str, dst: str, size: int, at_ns: int, id: int, flow: int = 0) -> None:
        rc = self._lib.tsv_ns3_send(self.hosts[src], self.hosts[dst], size, at_ns, id, flow)
        if rc == -3:  # a message of a process, as one frame
            self._refused.append(Fate(id, at_ns, "larger than a frame can be (65535 bytes)"))
        elif rc:
            raise TansivError(f"ns-3 refused a frame {src} -> {dst} at {at_ns} ns ({rc})")

    def advance(self, to_ns: int) -> list:
        if self._lib.tsv_ns3_run_until(to_ns):
            raise TansivError(f"ns-3 is past {to_ns} ns already")
        fates, self._refused = self._refused, []
        while True:
            n = self._lib.tsv_ns3_fates(self._fates, len(self._fates))
            for k in range(n):
                f = self._fates[k]
                if f.kind == DELIVERED:
                    fates.append(Fate(f.id, f.time_ns))
                else:
                    detail = _ffi.string(f.detail).decode(errors="replace")
                    why = WHY[f.kind] + (f": {detail}" if f.kind == AQM and detail else "")
                    fates.append(Fate(f.id, f.time_ns, why, self.where(f.link, f.dir)))
            if n < len(self._fates):
                break
        fates.sort(key=lambda f: (f.time_ns, f.id))
        return fates

    def next_event_ns(self):
        """The earliest date a frame in flight can be delivered (None: none in flight)."""
        t = self._lib.tsv_ns3_next_delivery_ns()
        return None if t == 2**64 - 1 else t

    def in_flight(self) -> int:
        return self._lib.tsv_ns3_in_flight()

    def cancel_all(self) -> list:
        n = self._lib.tsv_ns3_in_flight()
        ids = _ffi.new("uint64_t[]", max(n, 1))
        return [ids[k] for k in range(self._lib.tsv_ns3_cancel_all(ids, n))]
