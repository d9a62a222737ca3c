"""The netem baseline (what users pick instead of tansiv): the same guests under stock QEMU
(TCG, no icount: real time), on a Linux bridge in a network namespace of their own, each pair
given its route's latency and bandwidth by tc netem.

On the tap that leads to VM j, an htb root sorts frames by source address (u32 filters) into
one class per source i, whose netem leaf delays them by the latency of the route i -> j and
paces them at its bottleneck bandwidth. Needs root and a kernel with sch_netem."""

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

from . import paths
from .errors import TansivError


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise TansivError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def available():
    """(True, "") if this machine can run the baseline, else (False, why)."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, taps, tc)"
    if not Path("/dev/net/tun").exists():
        return False, "no /dev/net/tun"
    ns = f"tsvprobe{os.getpid()}"
    try:
        r = _ip("netns", "add", ns, check=False)
        if r.returncode != 0:
            return False, f"cannot create a network namespace: {r.stderr.strip()}"
        _ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1", check=False)
        r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "v0", "root",
                            "netem", "delay", "1ms"], capture_output=True, text=True)
        if r.returncode != 0:
            return False, (f"the kernel lacks sch_netem (CONFIG_NET_SCH_NETEM): tc says "
                           f"'{r.stderr.strip()}'")
        return True, ""
    finally:
        _ip("netns", "del", ns, check=False)


class NetemNetwork:
    """A namespace with a bridge and one tap per VM, shaped from the platform's routes.
    vms: [(address, host)]; net: a tansiv.platform.Network."""

    def __init__(self, vms, net, name=None):
        self.vms = list(vms)
        self.net = net
        self.ns = name or f"tansiv{os.getpid()}"

    def tap(self, k: int) -> str:
        return f"tap{k}"

    def __enter__(self):
        ns = self.ns
        _ip("netns", "add", ns)
        try:
            _ip("-n", ns, "link", "add", "br0", "type", "bridge")
            _ip("-n", ns, "link", "set", "br0", "up")
            for k, _ in enumerate(self.vms):
                _ip("-n", ns, "tuntap", "add", "dev", self.tap(k), "mode", "tap")
                _ip("-n", ns, "link", "set", self.tap(k), "master", "br0")
                _ip("-n", ns, "link", "set", self.tap(k), "up")
            for j, (_, dst_host) in enumerate(self.vms):
                self._shape(j, dst_host)
        except BaseException:
            _ip("netns", "del", ns, check=False)
            raise
        return self

    def _tc(self, *args):
        r = subprocess.run(["ip", "netns", "exec", self.ns, "tc", *args], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise TansivError(f"tc {' '.join(args)}: {r.stderr.strip()}")

    def _shape(self, j: int, dst_host: str) -> None:
        dev = self.tap(j)
        self._tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1")
        self._tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
                 "rate", "100gbit")
        for i, (src_addr, src_host) in enumerate(self.vms):
            if i == j:
                continue
            lat, bw, _ = self.net.route(src_host, dst_host)
            cls = f"1:{10 + i}"
            self._tc("class", "add", "dev", dev, "parent", "1:", "classid", cls, "htb",
                     "rate", "100gbit")
            self._tc("qdisc", "add", "dev", dev, "parent", cls, "handle", f"{10 + i}:",
                     "netem", "delay", f"{lat * 1e6:.3f}us", "rate", f"{int(bw * 8)}bit",
                     "limit", "100000")
            self._tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio",
                     "1", "u32", "match", "ip", "src", f"{ipaddress.IPv4Address(src_addr)}/32",
                     "flowid", cls)

    def __exit__(self, *exc):
        _ip("netns", "del", self.ns, check=False)

    def vm_command(self, k: int, vm_args) -> list:
        """tansiv-vm in netem mode on tap k, inside the namespace."""
        launcher = str(paths.prefix() / "bin" / "tansiv-vm")
        address = self.vms[k][0]
        peers = ",".join(a for a, _ in self.vms)
        return ["ip", "netns", "exec", self.ns, launcher, *vm_args, "--mode", "netem",
                "--tap", self.tap(k), "--address", address, "--peers", peers]


def run(deployment, net, rundir, timeout_s: float = 600.0):
    """Runs a deployment's tansiv-vm actors in netem mode until they all power off (or
    timeout_s of wall time); their consoles go to the run's participant logs. Returns
    {address: exit code}."""
    from .participants import Participant
    vms = [(a.address, a.host) for a in deployment.actors]
    procs = []
    with NetemNetwork(vms, net) as netem:
        for k, a in enumerate(deployment.actors):
            p = Participant(a, Path("tansiv-vm"), rundir.participant_log(a.address))
            p.start_argv(netem.vm_command(k, a.args))
            procs.append(p)
        end = time.monotonic() + timeout_s
        while any(p.proc.poll() is None for p in procs) and time.monotonic() < end:
            time.sleep(0.2)
        for p in procs:
            p.terminate(grace_s=2.0)
    return {p.name: p.proc.returncode for p in procs}
