"""The netem baseline (what users pick instead of tansiv): the same guests under stock QEMU
(TCG, no icount: real time), on a Linux bridge, each pair given its route's latency and
bandwidth by tc netem.

On the bridge port that leads to VM j, an htb root sorts frames by source address (u32
filters) into one class per source i, whose netem leaf delays them by the latency of the route
i -> j and paces them at its bottleneck bandwidth. Where the bridge lives:
  namespace  on this host, in a network namespace of its own, one tap per VM: needs root and
             a host kernel with sch_netem;
  router     in a small VM of its own (Debian's kernel, which has sch_netem; plain TCG in real
             time like the guests), each guest's NIC joined to one of its ports by a pair of
             unix datagram sockets: for hosts whose kernel lacks netem, or users without root.
             Its forwarding (two e1000 hops under TCG) adds to the baseline's round trips.
`auto` takes the namespace when the host can, the router otherwise. Both run the same tc
commands (the run keeps them in netem-shaping.sh)."""

import ipaddress
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import leftovers, paths, procs, units
from ..errors import TansivError
from ..run.participants import RUNNING, Participant, wait
from ..run.wire import ETH_WIRE_EXTRA
from . import qemu
from .images import cpio_newc

WHERE = ("auto", "namespace", "router")
ROUTER_BOOT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Impairments:
    """What `--network ns3` gives every link, for netem to give every route alike: each
    link's loss (a route of h links loses a frame with 1 - (1 - loss)^h), and each link
    direction's buffer (netem's limit counts every frame it holds: the queue behind its rate,
    plus those on their way at the route's latency). netem's randomness is the kernel's, not
    seeded."""
    loss: float = 0.0
    queue_size: str = None  # as --queue-size: 100p, 64kB (None: netem's large default)

    def route_loss(self, route) -> float:
        return 1 - (1 - self.loss) ** max(1, len(route.links))

    def limit(self, route) -> int:
        if self.queue_size is None:
            return DEFAULT_LIMIT
        count, in_packets = units.queue_size(self.queue_size, "--queue-size")
        queued = count if in_packets else -(-count // FRAME_BYTES)
        on_the_way = int(route.bandwidth_Bps * route.latency_ns / 1e9 / FRAME_BYTES) + 1
        return queued + on_the_way


DEFAULT_LIMIT = 100000
FRAME_BYTES = 1514  # a full Ethernet frame: byte sizes become packets for netem's limit


def shaping_commands(vms, routes, dev_of, impair: Impairments = Impairments()) -> list:
    """tc commands (argv lists) shaping the port dev_of(j) that leads to VM j, for every j.
    vms: the VMs' addresses; routes: {(src, dst): Route} (tansiv/run/routes.py)."""
    cmds = []
    for j, dst in enumerate(vms):
        dev = dev_of(j)
        cmds += [["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"],
                 ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
                  "rate", "100gbit"]]
        for i, src in enumerate(vms):
            if i == j:
                continue
            route = routes[(src, dst)]
            lat_ns, bw = route.latency_ns, route.bandwidth_Bps
            loss = impair.route_loss(route)
            cls = f"1:{10 + i}"
            cmds += [["tc", "class", "add", "dev", dev, "parent", "1:", "classid", cls, "htb",
                      "rate", "100gbit"],
                     ["tc", "qdisc", "add", "dev", dev, "parent", cls, "handle", f"{10 + i}:",
                      # rate RATE PACKETOVERHEAD: FCS, preamble and gap count, as in tansiv
                      "netem", "delay", f"{lat_ns / 1e3:.3f}us", "rate", f"{int(bw * 8)}bit",
                      str(ETH_WIRE_EXTRA),
                      *(["loss", f"{loss * 100:.6g}%"] if loss else []),
                      "limit", str(impair.limit(route))],
                     ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
                      "prio", "1", "u32", "match", "ip", "src",
                      f"{ipaddress.IPv4Address(src)}/32", "flowid", cls]]
    return cmds


def shell_script(commands) -> str:
    """The commands (argv lists) as a shell script, one per line."""
    return "".join(shlex.join(c) + "\n" for c in commands)


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise TansivError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def namespace_support():
    """(True, "") if this host can hold the bridge itself, else (False, why)."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, taps, tc)"
    if not Path("/dev/net/tun").exists():
        return False, "no /dev/net/tun"
    ns = leftovers.namespace_name("probe")
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


def choose(where: str = "auto"):
    """(namespace or router, why the namespace was not taken or "")."""
    if where not in WHERE:
        raise TansivError(f"netem: unknown place '{where}' (expected {', '.join(WHERE)})")
    if where == "router":
        return "router", "asked for"
    ok, why = namespace_support()
    if where == "namespace" and not ok:
        raise TansivError(f"the netem baseline cannot run in a namespace here: {why}")
    return ("namespace", "") if ok else ("router", why)


class NamespaceNetwork:
    """A namespace with a bridge and one tap per VM. vms: their addresses."""

    def __init__(self, vms, routes, impair: Impairments = Impairments(), name=None):
        self.vms = list(vms)
        self.commands = shaping_commands(self.vms, routes, self.tap, impair)
        self.ns = name or leftovers.namespace_name("netem")

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
            for cmd in self.commands:
                r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True,
                                   text=True)
                if r.returncode != 0:
                    raise TansivError(f"{shlex.join(cmd)}: {r.stderr.strip()}")
        except BaseException:
            _ip("netns", "del", ns, check=False)
            raise
        return self

    def __exit__(self, *exc):
        _ip("netns", "del", self.ns, check=False)

    def vm_command(self, k: int, vm_args) -> list:
        """tansiv-vm in netem mode on tap k, inside the namespace."""
        return ["ip", "netns", "exec", self.ns, *_vm_command(self.vms, k, vm_args),
                "--tap", self.tap(k)]


class RouterNetwork:
    """The bridge in a router VM (build: a VMBuild with the router's image), its console in
    log_path. vms: their addresses."""

    def __init__(self, vms, routes, build, log_path: Path, impair: Impairments = Impairments()):
        self.vms = list(vms)
        # iproute2's tc by its path: the router's busybox sh would run its own applet.
        self.commands = [["/usr/sbin/tc", *c[1:]]
                         for c in shaping_commands(self.vms, routes, lambda k: f"p{k}", impair)]
        self.build = build
        self.log_path = Path(log_path)
        self.proc = None
        self.dir = None

    def link(self, k: int):
        """(guest side, router side) socket paths of VM k's link."""
        return str(self.dir / f"vm{k}.sock"), str(self.dir / f"rt{k}.sock")

    def __enter__(self):
        # A short folder: socket paths must fit in sun_path (108 bytes).
        self.dir = Path(tempfile.mkdtemp(prefix=leftovers.tmp_prefix("netem")))
        try:
            image = self.build.router
            script = shell_script(self.commands).encode()
            base = image.initrd.read_bytes()
            # The kernel unpacks concatenated archives; the appended one must start 4-aligned.
            initrd = self.dir / "router.initrd"
            initrd.write_bytes(base + b"\0" * (-len(base) % 4)
                               + cpio_newc([("shaping.sh", 0o644, script)]))
            links = [self.link(k)[::-1] for k in range(len(self.vms))]
            cmd = qemu.router_command(self.build.qemu, image, initrd, links)
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT,
                                             preexec_fn=procs.die_with_parent)
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + ROUTER_BOOT_TIMEOUT_S
        while True:
            text = self.log_path.read_text(errors="replace")
            if '"event": "ready"' in text:
                return
            if '"event": "error"' in text or self.proc.poll() is not None:
                raise TansivError(f"the netem router failed to start; its console "
                                  f"({self.log_path}) ends with:\n{text[-1500:]}")
            if time.monotonic() > deadline:
                raise TansivError(f"the netem router was not ready after "
                                  f"{ROUTER_BOOT_TIMEOUT_S:.0f} s: see {self.log_path}")
            time.sleep(0.1)

    def __exit__(self, *exc):
        procs.stop(self.proc, grace_s=5.0)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def vm_command(self, k: int, vm_args) -> list:
        """tansiv-vm in netem mode on link k."""
        return [*_vm_command(self.vms, k, vm_args), "--dgram", ",".join(self.link(k))]


def _vm_command(vms, k: int, vm_args) -> list:
    return [str(paths.bindir() / "tansiv-vm"), *vm_args, "--mode", "netem", "--address", vms[k],
            "--peers", ",".join(vms)]


def run(actors, routes, build, rundir, main=(), timeout_s: float = 600.0, where: str = "auto",
        impair: Impairments = Impairments()):
    """Runs the actors (all tansiv-vm) in netem mode until the main ones (default: all)
    power off, or timeout_s of wall time; then stops the others. routes: {(src, dst): Route};
    build: a VMBuild (with the router's image unless `where` is namespace). Consoles go to the
    run's participant logs. Returns (participants, where the bridge was, why not in a
    namespace)."""
    where, why = choose(where)
    vms = [a.address for a in actors]
    network = (NamespaceNetwork(vms, routes, impair) if where == "namespace"
               else RouterNetwork(vms, routes, build, rundir.path / "netem-router.log", impair))
    (rundir.path / "netem-shaping.sh").write_text(shell_script(network.commands))
    participants = [Participant(a, Path("tansiv-vm"), rundir.participant_log(a.address),
                                main=a.address in main, role="vm") for a in actors]
    with network:
        for k, p in enumerate(participants):
            p.start(network.vm_command(k, p.actor.args), env=build.env(rundir.path))
            p.state = RUNNING
        wait(participants, timeout_s)
    return participants, where, why

