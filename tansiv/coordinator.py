"""The coordinator: keeps participants and the SimGrid simulation in step (conservative
synchronization, docs/design.md §Time).

At a barrier T, every participant is stopped at T and SimGrid's clock is at T. The next
deadline is D = min(T + L, date of SimGrid's next event), L being the lookahead (smallest
route latency between participants). Participants run to D and return the packets they sent
in [T, D), each stamped with its send time; each is started in SimGrid at that time, SimGrid
runs to D, and every communication finished by then is delivered, stamped with its completion
date, which is D. No packet sent in [T, D) can complete before T + L >= D, so every delivery
happens exactly when the simulation says."""

import logging
import math
import sys
import time
from dataclasses import dataclass

from . import hub as hubmod
from . import protocol
from .errors import TansivError
from .participants import Participant, describe_exit
from .platform import Network, ns
from .wire import ethernet_wire_size

log = logging.getLogger("tansiv.coordinator")

ECHO_PERIOD_S = 0.25
WAIT_SLICE_MS = 250


class RunError(TansivError):
    pass


@dataclass
class Options:
    force_lookahead_ns: int = None
    until_ns: int = None
    overhead: int = None          # bytes added to every packet; None: 0 for processes,
                                  # Ethernet framing for VMs
    connect_timeout_s: float = 60.0
    end_grace_s: float = 10.0     # for programs to exit after the simulation ended
    echo: bool = True
    main: tuple = ()              # addresses whose end ends the simulation (servers of a
                                  # client-server experiment need not end by themselves)


@dataclass
class Timing:
    """Wall time split of the run loop, in ns."""
    simgrid: int = 0
    hub: int = 0
    total: int = 0


class Coordinator:
    def __init__(self, network: Network, participants, hub: hubmod.Hub, rundir, options: Options):
        self.net = network
        self.participants = list(participants)
        self.hub = hub
        self.rundir = rundir
        self.opt = options
        self.by_client = {}           # hub index -> Participant
        self.wire_size = {}           # hub index -> payload size -> bytes in the simulation
        self.client_of_addr = {}      # in_addr_t -> hub index
        self.inflight = []            # (comm, src client, dst client, size, send_ns, handle)
        self.lookahead_ns = None
        self.unsafe_lookahead = False  # forced above the smallest route latency
        self.now_ns = 0
        self.rounds = 0
        self.delivered = 0
        self.dropped = 0
        self.late = 0  # delivered after SimGrid completed them (forced lookahead, profiles)
        self.timing = Timing()
        self._last_echo = 0.0

    # ---- start -----------------------------------------------------------------------------

    def start(self) -> None:
        # Inputs first: a run that cannot have a lookahead starts no program.
        self._update_lookahead("start", self.participants)
        peers = ",".join(p.name for p in self.participants)
        for p in self.participants:
            p.start(self.hub.address, env={
                "TANSIV_SOCKET": self.hub.address, "TANSIV_ADDRESS": p.name,
                "TANSIV_HOST": p.actor.host, "TANSIV_PEERS": peers,
                "TANSIV_RUN_DIR": str(self.rundir.path.resolve())})
            log.info("started %s on %s: %s %s", p.name, p.actor.host, p.program,
                     " ".join(p.actor.args))
        self._accept()

    def _accept(self) -> None:
        want = len(self.participants)
        deadline = time.monotonic() + self.opt.connect_timeout_s
        while self.hub.accept(want, WAIT_SLICE_MS) < want:
            self._echo()
            for p in self.participants:
                code = p.proc.poll()
                if code is not None:
                    raise RunError(f"participant {p.name} ({p.program.name}) "
                                   f"{describe_exit(code)} before connecting: see {p.log_path}")
            if time.monotonic() > deadline:
                missing = self._unconnected()
                raise RunError(f"participants not connected after "
                               f"{self.opt.connect_timeout_s:g} s: {', '.join(missing)}")
        by_addr = {p.name: p for p in self.participants}
        for i in range(self.hub.client_count()):
            addr = self.hub.client_address(i)
            p = by_addr.get(addr)
            if p is None:
                raise RunError(f"a client (pid {self.hub.client_pid(i)}) connected as {addr}, "
                               "an address no actor of the deployment has")
            if p.client is not None:
                raise RunError(f"two clients connected as {addr}")
            p.client = i
            p.state = "running"
            p.role = "vm" if self.hub.client_role(i) == protocol.ROLE_VM else "process"
            self.by_client[i] = p
            self.wire_size[i] = self._wire_size_function(p.role)
            self.client_of_addr[hubmod.str_to_addr(addr)] = i
        for e in self.hub.events():
            self._record_event(e)

    def _wire_size_function(self, role: str):
        if self.opt.overhead is not None:
            extra = self.opt.overhead
            return lambda n: n + extra
        return ethernet_wire_size if role == "vm" else (lambda n: n)

    def _unconnected(self):
        return [p.name for p in self.participants if p.client is None]

    # ---- lookahead -------------------------------------------------------------------------

    def _alive(self):
        return [p for p in self.participants if p.state == "running"]

    def _update_lookahead(self, why: str, among=None) -> None:
        among = self._alive() if among is None else among
        computed, pair = self.net.lookahead([p.actor.host for p in among])
        forced = self.opt.force_lookahead_ns
        if forced is not None:
            if computed is not None:  # with one participant left, keep what was known
                self.unsafe_lookahead = forced > computed
            if self.unsafe_lookahead and computed is not None:
                log.warning("forced lookahead %d ns exceeds the smallest route latency "
                            "(%d ns, %s -> %s): deliveries may be late", forced, computed, *pair)
            new = forced
        elif computed is None:
            if self.lookahead_ns is None:
                raise RunError("a single participant: the lookahead is undefined "
                               "(give one with --force SECONDS)")
            return  # one participant left: keep the last lookahead
        elif computed == 0:
            raise RunError(f"zero lookahead: the route {pair[0]} -> {pair[1]} has no latency "
                           "(use a platform with latencies, or --force SECONDS)")
        else:
            new = computed
        if new != self.lookahead_ns:
            log.info("lookahead %d ns (%s)%s", new, why,
                     f", from {pair[0]} -> {pair[1]}" if pair and forced is None else "")
            self.rundir.event({"event": "lookahead", "time_ns": self.now_ns, "lookahead_ns": new,
                               "why": why})
        self.lookahead_ns = new

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        t_start = time.perf_counter_ns()
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
            if self._main_done():
                log.info("the main participants ended: ending the simulation")
                break

            # Events that fall on T (up to rounding to ns) are SimGrid's to process now.
            t0 = perf()
            nxt = net.next_event()
            while nxt >= 0 and ns(nxt) <= T:
                net.run_until(nxt)
                self._deliver_finished(T)
                nxt = net.next_event()
            D = T + self.lookahead_ns
            event_due = nxt >= 0 and ns(nxt) <= D
            if event_due:
                D = ns(nxt)
            if until is not None and D > until:
                D = until
                event_due = nxt >= 0 and ns(nxt) <= D
            t1 = perf()
            self.timing.simgrid += t1 - t0

            hub.goto(D)
            while not hub.wait(WAIT_SLICE_MS):
                self._housekeeping()
            t2 = perf()
            self.timing.hub += t2 - t1
            self.rounds += 1

            self._handle_events()
            count, packets = hub.packets()
            t3 = perf()
            if count:
                self._inject(count, packets)
            net.run_until(D / 1e9)
            self.now_ns = D
            # Completions by D are the predicted event, or (only if the lookahead was forced
            # above a route latency) packets injected in this very round.
            if event_due or (count and self.unsafe_lookahead):
                self._deliver_finished(D)
            self.timing.simgrid += perf() - t3
            if perf() - self._last_echo > ECHO_PERIOD_S * 1e9:
                self._housekeeping()

    def _main_done(self) -> bool:
        return bool(self.opt.main) and all(
            p.state != "running" for p in self.participants if p.name in self.opt.main)

    def _inject(self, count, packets) -> None:
        net, client_of_addr = self.net, self.client_of_addr
        for k in range(count):
            p = packets[k]
            src = p.client
            dst = client_of_addr.get(p.dst)
            if dst is None or dst not in self.by_client:
                self._drop(p.handle, src, None, p.size, p.time, f"unknown destination "
                           f"{hubmod.addr_to_str(p.dst)}", dst_addr=hubmod.addr_to_str(p.dst))
                continue
            net.run_until(p.time / 1e9)
            comm = net.send(self.by_client[src].actor.host, self.by_client[dst].actor.host,
                            self.wire_size[src](p.size))
            self.inflight.append((comm, src, dst, p.size, p.time, p.handle))

    def _deliver_finished(self, at_ns: int) -> None:
        still = []
        for item in self.inflight:
            comm, src, dst, size, send_ns, handle = item
            if not comm.test():
                still.append(item)
                continue
            complete = ns(comm.finish_time)
            if not self.hub.alive(dst):
                self._drop(handle, src, dst, size, send_ns, "destination gone", complete)
                continue
            self.hub.deliver(handle, dst, at_ns)
            self.delivered += 1
            if complete < at_ns:
                if not self.late:
                    log.warning("a packet completed at %d ns was delivered at %d ns: the "
                                "lookahead is larger than a route's latency, or the platform "
                                "has profiles (see packets.jsonl)", complete, at_ns)
                self.late += 1
            self.rundir.packet({"src": self.by_client[src].name, "dst": self.by_client[dst].name,
                                "size": size, "send_ns": send_ns, "complete_ns": complete,
                                "deliver_ns": at_ns})
        self.inflight = still

    def _drop(self, handle, src, dst, size, send_ns, why, complete=None, dst_addr=None):
        self.hub.drop(handle)
        self.dropped += 1
        self.rundir.packet({"src": self.by_client[src].name,
                            "dst": dst_addr or self.by_client[dst].name, "size": size,
                            "send_ns": send_ns, "complete_ns": complete, "deliver_ns": None,
                            "dropped": why})
        log.warning("dropped a %d-byte packet from %s sent at %d ns: %s", size,
                    self.by_client[src].name, send_ns, why)

    # ---- participants coming and going -------------------------------------------------------

    def _record_event(self, e) -> None:
        kind = {hubmod.JOINED: "joined", hubmod.LEFT: "left", hubmod.FAILED: "failed"}[e.kind]
        p = self.by_client.get(e.client)
        self.rundir.event({"event": kind, "participant": p.name if p else None,
                           "time_ns": e.time_ns, "message": e.message})

    def _handle_events(self) -> None:
        changed = False
        for e in self.hub.events():
            self._record_event(e)
            p = self.by_client.get(e.client)
            if p is None or e.kind == hubmod.JOINED:
                continue
            changed = True
            p.end_ns = self.now_ns if e.kind == hubmod.LEFT else e.time_ns
            code = p.exit_code(wait_s=0.5)
            if e.kind == hubmod.FAILED:
                p.state, p.detail = "failed", e.message
                p.terminate(grace_s=1.0)
                log.error("participant %s failed: %s", p.name, e.message)
            elif code is None or code == 0:
                p.state = "ended" if code == 0 else "left"
                log.info("participant %s %s at %d ns", p.name,
                         "ended" if code == 0 else "left the simulation", p.end_ns)
            else:
                p.state, p.detail = "crashed", describe_exit(code)
                log.error("participant %s crashed at %d ns (%s): going on without it; see %s",
                          p.name, p.end_ns, p.detail, p.log_path)
        if changed and self.hub.alive_count() > 0:
            self._update_lookahead("a participant left")

    def _housekeeping(self) -> None:
        self._echo()

    def _echo(self) -> None:
        self._last_echo = time.perf_counter_ns()
        if self.opt.echo:
            for p in self.participants:
                p.echo()

    # ---- end -------------------------------------------------------------------------------

    def finish(self) -> None:
        """Ends the simulation for whoever is still in it and collects every exit status."""
        if self.hub.alive_count() > 0:
            self.hub.end(1000)
        for comm, src, dst, size, send_ns, handle in self.inflight:
            self._drop(handle, src, dst, size, send_ns, "simulation ended")
        self.inflight = []
        self._handle_events()
        deadline = time.monotonic() + self.opt.end_grace_s
        for p in self.participants:
            if p.proc is None:
                continue
            code = p.exit_code(wait_s=max(0.0, deadline - time.monotonic()))
            if code is None:
                log.warning("participant %s still runs %g s after the end: terminating it",
                            p.name, self.opt.end_grace_s)
                p.terminate(grace_s=2.0)
                code = p.proc.returncode
                if p.state == "running":
                    p.state, p.detail = "ended", "terminated at the end of the simulation"
            elif p.state in ("running", "left"):
                p.state = "ended" if code == 0 else "crashed"
                if code != 0:
                    p.detail = describe_exit(code)
            if self.opt.echo:
                p.echo_rest()

    def summary(self) -> dict:
        hub_stats = self.hub.stats()
        wall = self.timing.total / 1e9
        return {
            "simulated_s": self.now_ns / 1e9,
            "wall_s": wall,
            "simulated_s_per_wall_s": (self.now_ns / 1e9) / wall if wall > 0 else math.nan,
            "rounds": self.rounds,
            "lookahead_ns": self.lookahead_ns,
            "packets_delivered": self.delivered,
            "packets_dropped": self.dropped,
            "packets_late": self.late,
            "time_split_ns": {
                "hub_busy": hub_stats["busy_ns"],
                "hub_cpu": hub_stats["cpu_ns"],
                "hub_wait": hub_stats["wait_ns"],
                "simgrid": self.timing.simgrid,
                "python": self.timing.total - self.timing.simgrid - self.timing.hub,
            },
            "participants": [
                {"name": p.name, "host": p.actor.host, "program": str(p.program),
                 "role": p.role, "state": p.state, "detail": p.detail, "end_ns": p.end_ns,
                 "held_s": self.hub.held_ns(p.client) / 1e9 if p.client is not None else None,
                 "exit": p.proc.returncode if p.proc else None, "log": str(p.log_path)}
                for p in self.participants],
        }
