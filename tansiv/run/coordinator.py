"""The coordinator: keeps participants and the network model in step (conservative
synchronization, docs/design.md §The coordinator loop).

At a barrier T, every participant is stopped at T and the network model was advanced to T.
The next deadline is D = min(T + L, date of the model's next event), L being the lookahead
(smallest route latency between participants). Participants run to D and return the packets
they sent in [T, D), each stamped with its send time; each goes into the model at that time,
the model runs to D, and every frame delivered by then is delivered, stamped with its
completion date, which is D. No packet sent in [T, D) can complete before T + L >= D, so
every delivery happens exactly when the simulation says."""

import logging
import time
from dataclasses import dataclass, fields

from .. import units
from ..procs import describe_exit
from . import hub as hubmod
from . import consoles, pcap, protocol, routes
from .choices import IDLE_HORIZONS, LAUNCHERS, NETWORKS, ON_STALL, TRANSPORTS
from .participants import Participant, Participants, RunError, cap_consoles
from .platform import Network
from .progress import Progress
from .record import RunRecord
from . import wire
from .wire import ethernet_wire_size

log = logging.getLogger("tansiv.coordinator")

ECHO_PERIOD_S = 0.25
WAIT_SLICE_MS = 250
# A round's wait is sliced this fine to sample the progress of idle rounds the hub runs by
# itself (a 60 s idle stretch may take 0.2 s of wall time).
ROUND_SLICE_MS = 10
NEVER = 2**64 - 1  # a date no round reaches
RING_SIZE = 1 << 20
CONNECT_TIMEOUT_S = 60.0  # participants have this long to say HELLO
END_GRACE_S = 5.0  # how long programs may run on after the simulation ended
STALL_S = 60.0     # a round waiting this long (plus 10 slices) has a stalled participant
RELAY_GRACE_S = 5.0  # a relay's report may come this long after its participants' grace


@dataclass
class Options:
    """How a run goes: one field per option of `tansiv run` (the argparse dest of each flag
    is its field's name), and what run.json's `options` records (as_record)."""
    force_lookahead_ns: int = None  # simulated ns, instead of the smallest route latency
    until_ns: int = None            # end the simulation at this simulated date
    overhead: int = None            # bytes added to every packet; None: 0 for processes,
                                    # Ethernet framing for VMs
    socket: str = None              # where participants connect; None: a fresh Unix socket
    main: tuple = ()                # addresses whose end ends the run
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    end_grace_s: float = END_GRACE_S
    quiet: bool = False             # do not print participants' output as it comes
    pcap: bool = False              # write what each participant sent and received (pcap/)
    transport: str = TRANSPORTS[0]  # local participants: shared-memory channels, or sockets
    ring_size: int = RING_SIZE      # bytes of each ring of a channel
    idle_horizons: str = IDLE_HORIZONS[0]  # idle participants sit out rounds
    cold_boot: bool = False         # VMs boot instead of starting from their image's snapshot
    stall_s: float = STALL_S        # wall seconds a round may wait for a participant
    on_stall: str = ON_STALL[0]     # fail the run, or remove the stalled participants
    # The hub's bounds on one participant (tsv_hub_limits): going over one removes it.
    round_bytes: int = hubmod.LIMITS["round_bytes"]
    round_packets: int = hubmod.LIMITS["round_packets"]
    inflight_bytes: int = hubmod.LIMITS["inflight_bytes"]
    inflight_packets: int = hubmod.LIMITS["inflight_packets"]
    launcher: str = LAUNCHERS[0]    # local, or slurm: across the nodes of an allocation
    network: str = NETWORKS[0]      # the network model: SimGrid's flows, or ns-3's packets
    queue: str = None               # ns3: every link's queue discipline (None: DropTail),
    queue_size: str = None          # its whole buffer (None: 100p),
    loss: float = None              # and each frame's loss probability (None: 0),
    seed: int = 1                   # from one seed; links' <prop>s override the three
    placement: object = None        # slurm: a file of `ADDRESS NODE` lines (Path)
    console_limit: int = consoles.DEFAULT_LIMIT  # bytes of a participant's output kept

    @classmethod
    def from_args(cls, args) -> "Options":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def hub_limits(self) -> dict:
        """The hub's bounds on a participant that are options (tsv_hub_limits)."""
        return {name: getattr(self, name) for name in hubmod.LIMITS if hasattr(self, name)}

    def as_record(self) -> dict:
        """run.json's options: every field, paths as text, main sorted."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record["main"] = sorted(self.main)
        if self.placement is not None:
            record["placement"] = str(self.placement)
        return record


@dataclass
class InFlight:
    """A packet the network model carries (by id), or one it never took (dst None)."""
    src: Participant
    dst: Participant
    size: int                     # payload bytes
    send_ns: int
    handle: int                   # its payload, in the hub


@dataclass
class Timing:
    """Wall time split of the run loop, in ns."""
    simgrid: int = 0
    hub: int = 0
    total: int = 0


class Coordinator:
    def __init__(self, network: Network, participants: Participants, route_table,
                 hub: hubmod.Hub, rundir, options: Options):
        self.net = network
        self.participants = participants
        self.routes = route_table
        self._closest = routes.Lookahead(route_table)
        self.hub = hub
        self.rundir = rundir
        self.opt = options
        self.inflight = {}  # frame id (the order of sending) -> InFlight
        self._ids = 0
        self.lookahead_ns = None
        self.unsafe_lookahead = False  # forced above the smallest route latency
        self.now_ns = 0
        self.start_ns = 0  # where the run started: the latest participant's date (snapshots)
        self.delivered = 0
        self.dropped = 0
        self.late = 0  # delivered after SimGrid completed them (forced lookahead, profiles)
        self.timing = Timing()
        self.progress = None  # Progress of the loop, from run()
        self._last_echo = 0.0
        self._stall_mark = (None, 0.0)  # (rounds ended, wall time it last changed)
        self.capture = (pcap.Capture(rundir.path / "pcap", [p.name for p in participants],
                                     rundir.sink) if options.pcap else None)

    # ---- start -----------------------------------------------------------------------------

    def check(self) -> None:
        """What must hold before any program starts: a lookahead."""
        self._update_lookahead("start", [p.name for p in self.participants])

    def connect(self) -> None:
        """Waits until every started participant said HELLO."""
        want = len(self.participants)
        deadline = time.monotonic() + self.opt.connect_timeout_s
        while self.hub.accept(want, WAIT_SLICE_MS) < want:
            self._echo()
            said_hello = {self.hub.client_address(i) for i in range(self.hub.client_count())}
            for p in self.participants:
                if p.name in said_hello:
                    continue  # gone after its HELLO: the first round will not include it
                code = p.exit_code()
                if code is not None and p.node:
                    raise RunError(f"participant {p.name} ({p.program.name}, node {p.node}) "
                                   f"did not connect: its relay ended (see "
                                   f"{self.rundir.path / 'nodes' / 'srun.log'}, {p.log_path})")
                if code is not None:
                    raise RunError(f"participant {p.name} ({p.program.name}) "
                                   f"{describe_exit(code)} before connecting: see {p.log_path}")
            if time.monotonic() > deadline:
                missing = [p.name for p in self.participants.unconnected()]
                raise RunError(f"participants not connected after "
                               f"{self.opt.connect_timeout_s:g} s: {', '.join(missing)}")
        for i in range(self.hub.client_count()):
            role = "vm" if self.hub.client_role(i) == protocol.ROLE_VM else "process"
            p = self.participants.join(i, self.hub.client_address(i), role,
                                       self.hub.client_pid(i))
            p.transport = ("relay" if p.node else
                           "shm" if self.hub.client_channel(i) else "socket")
        # One that went between its HELLO and now is gone before the first round.
        self._handle_events()
        # VMs restored from a snapshot are at its virtual date: the simulation starts at the
        # latest participant's date, nothing happening before (processes and cold VMs jump).
        self.start_ns = self.now_ns = self.hub.begin()
        if self.start_ns:
            log.info("the simulation starts at %d ns (a VM's snapshot date)", self.start_ns)
            if self.opt.until_ns is not None and self.opt.until_ns <= self.start_ns:
                raise RunError(f"--until {self.opt.until_ns} ns is not after the start of the "
                               f"simulation, {self.start_ns} ns (the date of a VM's booted "
                               f"snapshot; --until is a date: see README, Booted snapshots)")
            self._settle(self.net.advance(self.start_ns), self.start_ns)

    # ---- lookahead -------------------------------------------------------------------------

    def _update_lookahead(self, why: str, among, at_ns: int = 0) -> None:
        computed, route = self._closest.among(among)
        forced = self.opt.force_lookahead_ns
        if forced is not None:
            if computed is not None:  # with one participant left, keep what was known
                self.unsafe_lookahead = forced > computed
            if self.unsafe_lookahead and computed is not None:
                log.warning("forced lookahead %d ns exceeds the smallest route latency "
                            "(%d ns, %s -> %s): deliveries may be late", forced, computed,
                            route.src_host, route.dst_host)
            new = forced
        elif computed is None:
            if self.lookahead_ns is None:
                raise RunError("a single participant: the lookahead is undefined "
                               "(give one with --force SECONDS)")
            return  # one participant left: keep the last lookahead
        elif computed == 0:
            raise RunError(f"zero lookahead: the route {route.src_host} -> {route.dst_host} "
                           "has no latency (use a platform with latencies, or --force SECONDS)")
        else:
            new = computed
        if new != self.lookahead_ns:
            log.info("lookahead %d ns (%s)%s", new, why,
                     f", from {route.src_host} -> {route.dst_host}"
                     if route and forced is None else "")
            self.rundir.event({"event": "lookahead", "time_ns": at_ns, "lookahead_ns": new,
                               "why": why})
        self.lookahead_ns = new

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        t_start = time.perf_counter_ns()
        self.progress = Progress(t_start)
        try:
            self._loop()
        finally:
            self.timing.total = time.perf_counter_ns() - t_start

    def _loop(self) -> None:
        hub, net = self.hub, self.net
        perf = time.perf_counter_ns
        until = self.opt.until_ns
        while hub.alive_count() > 0:
            T = self.now_ns
            if until is not None and T >= until:
                log.info("reached --until (%d ns): ending the simulation", until)
                break
            if self.participants.main_ended():
                log.info("the main participants ended: ending the simulation")
                break

            # Nothing can happen in the simulation before its next event (or --until): the
            # hub runs the rounds up to it by itself while they are idle. (The model was
            # advanced to T: its next event is after T.)
            t0 = perf()
            nxt = net.next_event_ns()
            horizon = min(NEVER if nxt is None else nxt, NEVER if until is None else until)
            t1 = perf()
            self.timing.simgrid += t1 - t0
            if horizon == NEVER and hub.idle_until() == NEVER:
                log.info("every participant waits for a packet and none is in flight: "
                         "nothing can happen any more; ending the simulation at %d ns", T)
                break

            hub.run(min(T + self.lookahead_ns, horizon), self.lookahead_ns, horizon)
            while not hub.wait(ROUND_SLICE_MS):
                now = perf()
                self.progress.note(hub.barrier(), now)  # idle rounds the hub runs by itself
                if now - self._last_echo > ECHO_PERIOD_S * 1e9:
                    self._echo()
                self._check_stall()
            D = hub.barrier()
            t2 = perf()
            self.progress.note(D, t2)
            self.timing.hub += t2 - t1

            self._handle_events()
            count, packets = hub.packets()
            t3 = perf()
            if count:
                self._inject(count, packets)
            # Completions by D are the predicted event, or (only if the lookahead was forced
            # above a route latency) packets injected in this very round.
            self._settle(net.advance(D), D)
            self.now_ns = D
            self.timing.simgrid += perf() - t3
            if perf() - self._last_echo > ECHO_PERIOD_S * 1e9:
                self._echo()

    def _wire_size(self, sender: Participant, size: int) -> int:
        """What a packet weighs in the simulation."""
        if self.opt.overhead is not None:
            return size + self.opt.overhead
        return ethernet_wire_size(size) if sender.role == "vm" else size

    def _inject(self, count, packets) -> None:
        net = self.net
        for k in range(count):
            p = packets[k]
            src = self.participants.by_client(p.client)
            dst_name = hubmod.addr_to_str(p.dst)
            dst = self.participants.get(dst_name)
            if self.capture:
                self._capture(src.name, p.time, src, dst_name, p.handle)
            if dst is src:
                # A participant's own traffic stays inside it (its loopback): what reaches
                # the hub addressed to itself is nobody's to carry.
                self._drop(InFlight(src, None, p.size, p.time, p.handle),
                           "sent to its own address", p.time, dst_name=dst_name)
                continue
            if dst is None or dst.client is None:
                self._drop(InFlight(src, None, p.size, p.time, p.handle),
                           f"unknown destination {dst_name}", p.time, dst_name=dst_name)
                continue
            self._ids += 1
            # Queues that tell flows apart (FQ-CoDel) look into a VM's frames.
            flow = (wire.flow(self.hub.head(p.handle, wire.FLOW_HEAD))
                    if src.role == "vm" and self.opt.network == "ns3" else 0)
            net.send(src.actor.host, dst.actor.host, self._wire_size(src, p.size), p.time,
                     self._ids, flow)
            self.inflight[self._ids] = InFlight(src, dst, p.size, p.time, p.handle)

    def _settle(self, fates, at_ns: int) -> None:
        """What the network model did with frames by the barrier at_ns: each delivered at
        at_ns (its completion date, unless late), or dropped."""
        for fate in fates:
            f = self.inflight.pop(fate.id)
            if fate.dropped:
                self._drop(f, fate.dropped, fate.time_ns, where=fate.where)
                continue
            complete = fate.time_ns
            if not self.hub.alive(f.dst.client):
                self._drop(f, "destination gone", at_ns, complete=complete)
                continue
            if self.capture:
                self._capture(f.dst.name, at_ns, f.src, f.dst.name, f.handle)
            self.hub.deliver(f.handle, f.dst.client, at_ns)
            self.delivered += 1
            # SimGrid's dates are floats, rounded to ns twice (the round's end from the
            # predicted date, the completion from the date it happened): 1 ns apart is one.
            if complete < at_ns - 1:
                if not self.late:
                    log.warning("a packet completed at %d ns was delivered at %d ns: the "
                                "lookahead is larger than a route's latency, or the platform "
                                "has profiles (see packets.jsonl)", complete, at_ns)
                self.late += 1
            self.rundir.packet({"src": f.src.name, "dst": f.dst.name, "size": f.size,
                                "send_ns": f.send_ns, "complete_ns": complete,
                                "deliver_ns": at_ns})

    def _capture(self, owner: str, time_ns: int, src: Participant, dst: str,
                 handle: int) -> None:
        """A packet into owner's capture, copied from the hub before it delivers or drops it.

        Each file stays in time order: a round's sends, in time order, come after the
        deliveries at its start T and before those at its deadline D, and lie in [T, D)."""
        self.capture.add(owner, time_ns, src.role, src.name, dst, self.hub.payload(handle))

    def _drop(self, f: InFlight, why: str, at_ns: int, complete=None, dst_name=None,
              where=None) -> None:
        """f is not delivered: why, when (at_ns), where (a link and its direction, for the
        network model's own drops)."""
        self.hub.drop(f.handle)
        self.dropped += 1
        record = {"src": f.src.name, "dst": dst_name or f.dst.name, "size": f.size,
                  "send_ns": f.send_ns, "complete_ns": complete, "deliver_ns": None,
                  "dropped": why, "drop_ns": at_ns}
        if where:
            record["where"] = where
        self.rundir.packet(record)
        # The network's own drops (a full queue, loss) are what it models: not warnings.
        log.log(logging.DEBUG if where else logging.WARNING,
                "dropped a %d-byte packet from %s sent at %d ns: %s", f.size, f.src.name,
                f.send_ns, why + (f" at {where}" if where else ""))

    # ---- participants coming and going -------------------------------------------------------

    def _record_event(self, e) -> None:
        kind = {hubmod.JOINED: "joined", hubmod.LEFT: "left", hubmod.FAILED: "failed"}[e.kind]
        p = self.participants.by_client(e.client)
        self.rundir.event({"event": kind, "participant": p.name if p else None,
                           "time_ns": e.time_ns, "message": e.message})

    def _handle_events(self) -> None:
        changed, at = False, self.now_ns
        for e in self.hub.events():
            self._record_event(e)
            p = self.participants.by_client(e.client)
            if p is None or e.kind == hubmod.JOINED:
                continue
            changed, at = True, e.time_ns
            if e.kind == hubmod.FAILED:
                p.failed(e.time_ns, f"node {p.node}: {e.message}" if p.node else e.message)
                log.error("participant %s failed: %s", p.name, p.detail)
                continue
            # A remote one's exit status comes with its relay's report, at the end.
            p.gone(e.time_ns, None if p.node else p.exit_code(wait_s=0.5))
            if p.state == "crashed":
                log.error("participant %s crashed at %d ns (%s): going on without it; see %s",
                          p.name, p.end_ns, p.detail, p.log_path)
            else:
                log.info("participant %s %s at %d ns", p.name,
                         "ended" if p.state == "ended" else "left the simulation", p.end_ns)
        if changed and self.hub.alive_count() > 0:
            self._update_lookahead("a participant left",
                                   [p.name for p in self.participants.running()], at)

    def _check_stall(self) -> None:
        """A round that waits longer than the bound (plus ten slices, which a participant
        may spend in real time) for some participant: it stalled (stopped, or blocking its
        deadline signal). Fails the run naming it, or removes it (--on-stall)."""
        rounds, now = self.hub.stats()["rounds"], time.monotonic()
        if rounds != self._stall_mark[0]:
            self._stall_mark = (rounds, now)
            return
        bound = self.opt.stall_s + 10 * units.to_seconds(self.lookahead_ns)
        waited = now - self._stall_mark[1]
        if waited < bound:
            return
        D = self.hub.deadline()
        for p in self.participants.running():
            if p.client is None or not self.hub.waiting(p.client):
                continue
            why = (f"stalled: did not reach the deadline {D} ns in {waited:.0f} s "
                   f"of wall time (pid {self.hub.client_pid(p.client)}, {p.program.name})")
            if self.opt.on_stall == "fail":
                raise RunError(f"participant {p.name} {why}; see {p.log_path}")
            log.error("participant %s %s: removing it (--on-stall remove)", p.name, why)
            self.hub.remove(p.client, why)  # its FAILED event stops its process
        self._stall_mark = (rounds, now)

    def _echo(self) -> None:
        self._last_echo = time.perf_counter_ns()
        cap_consoles(self.participants)
        if not self.opt.quiet:
            for p in self.participants:
                p.echo()

    # ---- end -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Ends the simulation for whoever is still in it and collects every exit status."""
        self.hub.end(1000)  # relays get it even when none of their participants is left
        for id in self.net.cancel_all():
            self._drop(self.inflight.pop(id), "simulation ended", self.now_ns)
        if self.capture:
            self.capture.close()
        self._handle_events()
        # Remote participants' ends are their relays' to report, after the same grace.
        remote = any(p.node for p in self.participants)
        deadline = time.monotonic() + self.opt.end_grace_s + remote * RELAY_GRACE_S
        for p in self.participants:
            if p.proc is None:
                continue
            code = p.exit_code(wait_s=max(0.0, deadline - time.monotonic()))
            if code is None:
                log.warning("participant %s still runs %g s after the end: terminating it",
                            p.name, self.opt.end_grace_s)
                p.terminate(grace_s=2.0)
            # One on another node may have been stopped by its relay, after the same grace.
            stopped = code is None or (p.node is not None and p.proc.stopped)
            p.finished(p.proc.returncode, terminated=stopped,
                       lost=getattr(p.proc, "lost", False))
            if p.client is not None:
                p.held_s = units.to_seconds(self.hub.held_ns(p.client))
            cap_consoles([p])  # its writer has ended: the last cap bounds the file for good
            if not self.opt.quiet:
                p.echo_rest()

    def fill(self, r: RunRecord) -> None:
        """The simulation's part of the run's record."""
        stats = self.hub.stats()
        # The hub's barrier is ahead of now_ns while it runs idle rounds by itself (a run
        # interrupted then reached it all the same).
        r.start_ns = self.start_ns
        r.simulated_ns = max(self.now_ns, self.hub.barrier())
        r.sync_wall_s = units.to_seconds(self.timing.total)
        r.simulated_s_per_wall_s = (units.to_seconds(r.simulated_ns - r.start_ns) / r.sync_wall_s
                                    if r.sync_wall_s > 0 else None)
        r.progress = self.progress.samples if self.progress else None
        r.rounds = stats["rounds"]
        r.rounds_sat_out = stats["sat_out"]
        r.lookahead_ns = self.lookahead_ns
        r.packets_delivered, r.packets_dropped = self.delivered, self.dropped
        r.packets_late = self.late
        r.time_split_ns = {
            "hub_busy": stats["busy_ns"],
            "hub_cpu": stats["cpu_ns"],
            "hub_wait": stats["wait_ns"],
            "simgrid": self.timing.simgrid,
            "python": self.timing.total - self.timing.simgrid - self.timing.hub,
        }
