"""A run, from its inputs to its record: the one owner of a run's folder, its end and its
run.json, whatever the mode.

    tansiv  the deployment's participants coupled to the SimGrid simulation (coordinator)
    netem   the deployment's VMs on a bridge shaped by tc netem (tansiv/vm/netem.py)
    none    the deployment's VMs each alone, uncoupled (tansiv/vm/none.py)

Every mode checks its inputs before anything is created (bad input: InputError, no folder),
then writes the run's folder (inputs, routes, logs) and, whatever happens next (success, an
error, SIGINT, SIGTERM), its record. The functions return the record; the command line
prints it."""

import contextlib
import datetime
import ipaddress
import logging
import os
import platform as pyplatform
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__, leftovers, procs
from ..errors import InputError, TansivError
from ..vm import results
from . import deployment as dep
from . import routes
from .coordinator import Coordinator, Options
from .participants import Participant, Participants, is_vm, resolve_program
from .platform import Network
from .protocol import SECRET_SIZE
from .record import RunRecord
from .rundir import RunDir, fresh

log = logging.getLogger("tansiv")


class Terminated(KeyboardInterrupt):
    """SIGTERM: ended like an interruption, so that the run's folder is completed."""


LEFTOVER_GRACE_S = 2.0  # what participants left running has this long to end on SIGTERM


def raise_terminated(_signum, _frame):
    """A SIGTERM handler."""
    raise Terminated()


@dataclass
class Inputs:
    """A run's inputs, loaded and checked against each other."""
    platform: Path
    deployment: dep.Deployment
    network: Network
    routes: list  # of routes.Route, every ordered pair of actors

    @classmethod
    def load(cls, platform, deployment, cfg=(), quiet=True) -> "Inputs":
        d = dep.parse(deployment)
        net = Network(platform, cfg=cfg, quiet=quiet)
        dep.check_hosts(d, net.hosts)
        return cls(Path(platform), d, net, routes.table(net, d.actors))

    def main(self, addresses) -> set:
        """--main's addresses, each checked against the deployment."""
        known = {a.address for a in self.deployment.actors}
        unknown = sorted(set(addresses) - known)
        if unknown:
            raise InputError(f"--main {', '.join(unknown)}: no participant has this address",
                             self.deployment.path)
        return set(addresses)

    def vms_only(self, mode: str) -> None:
        for a in self.deployment.actors:
            if not is_vm(resolve_program(a, self.deployment.path)):
                raise InputError(f"mode {mode} runs VMs only: {a.program} is not tansiv-vm",
                                 self.deployment.path, a.line)


def default_out() -> Path:
    """./tansiv-run-DATE-TIME, or -DATE-TIME-2... if another run took it: made this run's."""
    return fresh(Path(f"tansiv-run-{datetime.datetime.now():%Y%m%d-%H%M%S}"))


class _Session:
    """The skeleton every mode shares: the folder, the clock, the record's common part, and
    the status an exception means."""

    def __init__(self, mode: str, inputs: Inputs, out: Path, options: dict):
        started = datetime.datetime.now(datetime.timezone.utc)
        self.rundir = RunDir(out)
        self.rundir.attach_log()
        for what in leftovers.clean_stale():
            log.warning("removed %s, left by a tansiv run that was killed", what)
        leftovers.mark_children()
        before, now = procs.raise_open_files_limit()
        if before != now:
            log.debug("open files: soft limit raised from %d to %d", before, now)
        self.rundir.copy_inputs(inputs.platform, inputs.deployment.path)
        self.rundir.write_routes(inputs.routes)
        self.record = RunRecord(
            mode=mode, command=sys.argv, started=started.isoformat(),
            versions={"tansiv": __version__, "simgrid": Network.simgrid_version(),
                      "python": pyplatform.python_version()},
            inputs={"platform": str(inputs.platform),
                    "deployment": str(inputs.deployment.path)},
            options={"cfg": inputs.network.cfg, **options})
        self.participants = []  # the mode's, as soon as it has them
        self._t0 = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, _kind, exc, _tb) -> bool:
        """Writes the record whatever happened; lets only faults of tansiv itself through."""
        r = self.record
        expected = exc is None or isinstance(exc, (KeyboardInterrupt, TansivError))
        if exc is None:
            r.status = "ok"
        elif isinstance(exc, KeyboardInterrupt):
            r.status = "terminated" if isinstance(exc, Terminated) else "interrupted"
            r.error = r.status
            log.error("%s: ending the run", r.status)
        else:
            r.status, r.error = "error", str(exc) if expected else f"internal error: {exc!r}"
        r.participants = [p.record() for p in self.participants]
        for what in leftovers.stop_mine(grace_s=LEFTOVER_GRACE_S):
            log.warning("stopped %s: started by a participant, it ran on after the run", what)
        results.collect(self.rundir.path)
        if r.status == "ok" and any(p.broke for p in self.participants):
            r.status = "participant-failure"
        r.total_wall_s = time.monotonic() - self._t0
        self.rundir.finish(r)
        return expected

    @property
    def path(self) -> Path:
        return self.rundir.path


def run(inputs: Inputs, out: Path, options: Options = None) -> RunRecord:
    """The deployment coupled to the simulation (mode tansiv)."""
    from .hub import Hub
    options = options or Options()
    d = inputs.deployment
    main = inputs.main(options.main)
    socket = options.socket
    programs = [resolve_program(a, d.path) for a in d.actors]
    alloc, nodes = _placement(options, [a.address for a in d.actors])
    model = network_model(inputs, options)  # bad input stops here, before the run's folder
    s = _Session("tansiv", inputs, out, options.as_record())
    members = Participants(Participant(a, prog, s.rundir.participant_log(a.address),
                                       main=a.address in main,
                                       console_limit=options.console_limit)
                           for a, prog in zip(d.actors, programs))
    s.participants = members
    remote = [p for p in members if nodes and nodes[p.name] != alloc.here]
    for p in remote:
        p.node = nodes[p.name]
    if nodes:
        s.record.options["nodes"] = nodes
        s.record.options["allocation"] = {"job": alloc.job, "cpus": alloc.cpus,
                                          "coordinator": alloc.here}
        log.info("SLURM job %s, nodes %s; coordinator on %s", alloc.job,
                 ", ".join(alloc.nodes), alloc.here or "a host outside the allocation")
    # Each clean-up step is registered as what it undoes comes to be, and runs (in reverse)
    # whatever the others do: ending the run never depends on writing succeeding (a full
    # disk), nor on an earlier step.
    with s, contextlib.ExitStack() as cleanup:
        if socket is None:
            tmpdir = tempfile.mkdtemp(prefix=leftovers.tmp_prefix("run"))
            cleanup.callback(shutil.rmtree, tmpdir, ignore_errors=True)
            socket = s.record.options["socket"] = f"{tmpdir}/hub.sock"
        ring = options.ring_size if options.transport == "shm" else 0
        hub = Hub(socket, ring)
        cleanup.callback(hub.close)
        cleanup.callback(_terminate, members)
        hub.set_limits(**options.hub_limits())
        hub.set_horizons(options.idle_horizons == "on")
        if remote:
            from . import slurm
            hub.listen_tcp(f"tcp:{slurm.listen_host(alloc)}:0")
        secret = _guard_tcp(hub, s.rundir)
        coord = Coordinator(model, members, inputs.routes, hub, s.rundir, options)
        coord.check()  # a run that cannot have a lookahead starts no program
        env = {"TANSIV_PEERS": ",".join(p.name for p in members),
               "TANSIV_RUN_DIR": str(s.path.resolve())}
        if any(is_vm(p.program) for p in members):
            env.update(_prepare_vms([p.actor for p in members if is_vm(p.program)],
                                    options.cold_boot))
        # The secret goes to those that connect over TCP, by environment (never on a
        # command line): relays, and participants when the hub's socket is TCP.
        secret_env = {"TANSIV_SECRET": secret} if secret else {}
        local_env = secret_env if hub.address.startswith("tcp:") else {}
        relays = []  # the relays' srun step, once started
        cleanup.callback(_stop_relays, relays)
        cleanup.callback(coord.fill, s.record)
        cleanup.callback(coord.finish)  # first: END, the participants' ends (relays' reports)
        for p in members:
            if p.node:
                continue
            p.start([str(p.program), hub.address, *p.actor.args],
                    {**env, **local_env, "TANSIV_SOCKET": hub.address,
                     "TANSIV_ADDRESS": p.name, "TANSIV_HOST": p.actor.host})
            log.info("started %s on %s: %s %s", p.name, p.actor.host, p.program,
                     " ".join(p.actor.args))
        if remote:
            relays.append(_start_remote(remote, hub, alloc, options, env, secret_env, s.path))
        coord.connect()
        coord.run()
    return s.record


def _stop_relays(relays) -> None:
    from .. import procs
    for step in relays:
        procs.stop(step, grace_s=10.0)


def network_model(inputs: Inputs, options: Options):
    """The model the coordinator drives (tansiv/run/network.py): SimGrid's, or ns-3's."""
    packet_options = {"--queue": options.queue, "--queue-size": options.queue_size,
                      "--loss": options.loss}
    if options.network != "ns3":
        given = [flag for flag, value in packet_options.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: queues and loss are ns-3's (--network ns3)")
        return inputs.network
    from .ns3 import DEFAULT_QUEUE, DEFAULT_QUEUE_SIZE, Ns3Network
    return Ns3Network(inputs.network, inputs.routes, options.queue or DEFAULT_QUEUE,
                      options.queue_size or DEFAULT_QUEUE_SIZE, options.loss or 0.0,
                      options.seed)


def _terminate(members) -> None:
    for p in members:
        p.terminate(grace_s=2.0)


def _placement(options: Options, addresses):
    """--launcher slurm: the allocation, and every participant's node; else (None, None)."""
    if options.launcher != "slurm":
        if options.placement:
            raise InputError("--placement places participants on the nodes of a SLURM "
                             "allocation: it needs --launcher slurm")
        return None, None
    from . import slurm
    alloc = slurm.Allocation.current()
    return alloc, slurm.place(addresses, alloc, options.placement)


def _start_remote(remote, hub, alloc, options: Options, env, secret_env, run_dir: Path):
    """The participants on other nodes: their relays' srun step, which starts them."""
    from . import slurm
    plan = {"coordinator": hub.tcp_address(), "job": alloc.job, "cpus": alloc.cpus,
            "ring_size": options.ring_size if options.transport == "shm" else 0,
            "limits": options.hub_limits(), "console_limit": options.console_limit,
            "connect_timeout_s": options.connect_timeout_s, "end_grace_s": options.end_grace_s,
            "nodes": {}}
    for p in remote:
        plan["nodes"].setdefault(p.node, []).append({
            "address": p.name, "argv": [str(p.program), *p.actor.args], "log": str(p.log_path),
            "env": {**env, "TANSIV_ADDRESS": p.name, "TANSIV_HOST": p.actor.host}})
    step = slurm.start_relays(run_dir.resolve(), plan, secret_env)
    for p in remote:
        p.proc = slurm.RemoteProc(p.name, p.node, step,
                                  slurm.node_report(run_dir.resolve(), p.node))
        log.info("placed %s on node %s (%s %s)", p.name, p.node, p.program,
                 " ".join(p.actor.args))
    return step


def netem(inputs: Inputs, out, where: str = "auto", timeout_s: float = 600.0,
          main=(), loss: float = None, queue_size: str = None) -> RunRecord:
    """The deployment's VMs under plain TCG on a bridge shaped by tc netem (with the
    impairments --network ns3 would give its links: loss, a queue size)."""
    from ..vm import build, netem as baseline
    inputs.vms_only("netem")
    main = inputs.main(main)
    impair = baseline.Impairments(loss or 0.0, queue_size)
    s = _Session("netem", inputs, out,
                 {"timeout_s": timeout_s, "main": sorted(main), "where": where,
                  "loss": loss, "queue_size": queue_size})
    with s:
        vms = build.current(router=where != "namespace")
        s.participants, placed, why = baseline.run(
            inputs.deployment.actors, routes_by_pair(inputs.routes), vms, s.rundir, main,
            timeout_s, where, impair)
        s.record.netem = {"where": placed, "why": why}
        if placed == "router":
            log.warning("the bridge is in a router VM (%s)", why)
    return s.record


def none(inputs: Inputs, out, timeout_s: float = 600.0, main=(),
         cold_boot: bool = False) -> RunRecord:
    """The deployment's VMs (the main ones if named) each alone, uncoupled."""
    from ..vm import none as uncoupled
    inputs.vms_only("none")
    main = inputs.main(main)
    actors = [a for a in inputs.deployment.actors if not main or a.address in main]
    s = _Session("none", inputs, out, {"timeout_s": timeout_s, "main": sorted(main),
                                       "cold_boot": cold_boot})
    with s:
        env = _prepare_vms(actors, cold_boot)
        s.participants = uncoupled.run(actors, [a.address for a in inputs.deployment.actors],
                                       env, s.rundir, timeout_s)
    return s.record


def _prepare_vms(actors, cold_boot: bool) -> dict:
    """QEMU, the guest image and, unless cold_boot, the snapshot of every image the VMs start
    from, built if missing before any program starts (no VM spends its time to connect on
    them); returns what goes into the VMs' environment."""
    from ..vm import build, launcher
    log.info("VMs in the deployment: QEMU, the guest images and their booted snapshots "
             "(built once, then cached)")
    vms = build.current()
    env = vms.env()
    if cold_boot:
        env[launcher.COLD_BOOT_ENV] = "1"
        return env
    for argv in sorted({tuple(a.args) for a in actors}):
        launcher.prepare(list(argv), vms, say=log.info)
    return env


def _guard_tcp(hub, rundir: RunDir):
    """A hub on TCP takes only participants that know the run's secret (a fresh one, given
    to the participants it starts and in the run's folder, file `secret`, mode 0600, for
    others); beyond loopback, a warning too. Returns it in hex, or None on a Unix socket."""
    address = hub.address if hub.address.startswith("tcp:") else hub.tcp_address()
    if not address:
        return None
    secret = secrets.token_bytes(SECRET_SIZE)
    hub.set_secret(secret)
    path = rundir.path / "secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    host = address[len("tcp:"):].rsplit(":", 1)[0]
    if not ipaddress.ip_address(host).is_loopback:
        log.warning("listening on %s, beyond loopback: anyone who can reach it may try; "
                    "participants must give the run's secret (TANSIV_SECRET, in %s)", address,
                    path)
    return secret.hex()


def routes_by_pair(table) -> dict:
    return {(r.src, r.dst): r for r in table}

