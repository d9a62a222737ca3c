"""Generated SimGrid platforms, parameterized by the route latency between two participants
and a bandwidth, so that sweeps can vary them.

    star      N hosts, each on its own link (latency / 2, bandwidth) to a central switch:
              every route: two links, `latency`, bottleneck `bandwidth`.
    cluster   SimGrid's cluster: private links (latency / 4, bandwidth) and a shared
              backbone (latency / 2, bandwidth): every route crosses the backbone, which
              all flows share, both ways.
    dumbbell  N/2 hosts on each side (or the first LEFT on the left): access links (latency / 4,
              10 x bandwidth) to the side's router, one bottleneck link (latency / 2,
              bandwidth) between the routers.
              A route across: `latency`, bottleneck `bandwidth`; within a side: latency / 2.
Links are full duplex, as Ethernet's (SPLITDUPLEX: each direction has the whole bandwidth, so
a TCP flow's ACKs do not take their data's), except the cluster's backbone: SimGrid's
<cluster> makes it SHARED or FATPIPE only.
Hosts are named h1..hN; participant k (0-based) sits on h(k+1). Pairs (h1, h2), (h3, h4)...
are across the bottleneck in the dumbbell (h1..h(N/2) on the left: the pairs are (h1, hN/2+1)
and so on: see pairs())."""

from pathlib import Path

from ..errors import InputError
from ..run.deployment import HEADER
from ..units import simgrid_bandwidth as _bps
from ..units import simgrid_duration as _lat

KINDS = ("star", "cluster", "dumbbell")


def hosts(n: int):
    return [f"h{k}" for k in range(1, n + 1)]


def address(k: int) -> str:
    """The address of participant k (0-based): 10.0.0.1, 10.0.0.2..."""
    return f"10.0.{k // 250}.{k % 250 + 1}"


def pairs(kind: str, n: int):
    """(client, server) host pairs whose routes have the full latency: 0-1, 2-3... and for the
    dumbbell, left i with right i."""
    if kind == "dumbbell":
        half = n // 2
        return [(f"h{k}", f"h{k + half}") for k in range(1, half + 1)]
    return [(f"h{k}", f"h{k + 1}") for k in range(1, n, 2)]


def write(path, kind: str, n: int, latency_ns: int, bandwidth: float, left: int = None) -> Path:
    """The platform file of a topology: route latency in ns, bandwidth in B/s; left: how many
    hosts sit left of a dumbbell's bottleneck (default: half)."""
    path = Path(path)
    path.write_text(platform(kind, n, latency_ns, bandwidth, left))
    return path


def platform(kind: str, n: int, latency_ns: int, bandwidth: float, left: int = None) -> str:
    if not isinstance(latency_ns, int):  # a float would be seconds, from before ns
        raise TypeError(f"a route latency is integer ns, not {latency_ns!r}")
    latency = latency_ns
    if n < 1:
        raise InputError(f"a {kind} needs at least one host")
    if kind == "star":
        # No backbone: the switch adds no constraint, the hosts' links are the route.
        return HEADER + (
            f'  <cluster id="star" prefix="h" suffix="" radical="1-{n}" speed="1Gf" '
            f'lat="{_lat(latency / 2)}" bw="{_bps(bandwidth)}" sharing_policy="SPLITDUPLEX"/>\n'
            "</platform>\n")
    if kind == "cluster":
        return HEADER + (
            f'  <cluster id="cluster" prefix="h" suffix="" radical="1-{n}" speed="1Gf" '
            f'lat="{_lat(latency / 4)}" bw="{_bps(bandwidth)}" sharing_policy="SPLITDUPLEX" '
            f'bb_lat="{_lat(latency / 2)}" bb_bw="{_bps(bandwidth)}" bb_sharing_policy="SHARED"/>\n'
            "</platform>\n")
    if kind == "dumbbell":
        half = n // 2 if left is None else left
        if not 0 < half < n or (left is None and n % 2):
            raise InputError(f"a dumbbell needs hosts on both sides, as many on each unless "
                             f"told: not {n}" + ("" if left is None else f" with {left} left"))
        lines = ['  <zone id="dumbbell" routing="Full">']
        for h in hosts(n):
            lines.append(f'    <host id="{h}" speed="1Gf"/>')
        lines += ['    <router id="left"/>', '    <router id="right"/>']
        # UP is from a host to its router, and from left to right.
        duplex = 'sharing_policy="SPLITDUPLEX"'
        for h in hosts(n):
            lines.append(f'    <link id="{h}-access" bandwidth="{_bps(bandwidth * 10)}" '
                         f'latency="{_lat(latency / 4)}" {duplex}/>')
        lines.append(f'    <link id="bottleneck" bandwidth="{_bps(bandwidth)}" '
                     f'latency="{_lat(latency / 2)}" {duplex}/>')
        side = {h: ("left" if k < half else "right") for k, h in enumerate(hosts(n))}

        def link(name, direction):
            return f'<link_ctn id="{name}" direction="{direction}"/>'

        for h in hosts(n):
            lines.append(f'    <route src="{h}" dst="{side[h]}">{link(f"{h}-access", "UP")}'
                         '</route>')
        lines.append(f'    <route src="left" dst="right">{link("bottleneck", "UP")}</route>')
        hs = hosts(n)
        # Symmetrical routes: SimGrid takes the other direction of each link on the way back.
        for i, a in enumerate(hs):
            for b in hs[i + 1:]:
                via = [link("bottleneck", "UP")] if side[a] != side[b] else []
                links = [link(f"{a}-access", "UP"), *via, link(f"{b}-access", "DOWN")]
                lines.append(f'    <route src="{a}" dst="{b}">{"".join(links)}</route>')
        lines.append("  </zone>")
        return HEADER + "\n".join(lines) + "\n</platform>\n"
    raise InputError(f"unknown topology '{kind}' (expected {', '.join(KINDS)} or a platform "
                     "file)")
