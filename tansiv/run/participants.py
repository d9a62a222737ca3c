"""The participants of a run: finding their programs, starting them, following their output,
and the table of who they are and what became of each.

A participant's state moves one way:
    starting --HELLO--> running --> ended   exit status 0, or ended with the simulation
                                    left    closed its connection, runs on
                                    crashed non-zero exit or a signal
                                    failed  broke the protocol (then terminated), or did not
                                            end in the time it was given
"""

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths, procs
from ..errors import InputError, TansivError
from . import consoles
from .deployment import Actor
from .record import BROKEN, CRASHED, ENDED, FAILED, LEFT, RUNNING, STARTING, ParticipantRecord


REMOVED_GRACE_S = 1.0  # a participant removed from the run has this long to end on SIGTERM


log = logging.getLogger("tansiv.participants")


class RunError(TansivError):
    """The run cannot go on (a participant did not connect, an unknown one did...)."""


def resolve_program(actor: Actor, deployment_path: Path) -> Path:
    """The program of an actor: absolute; relative to the deployment's folder or to the
    working directory; or a name found in tansiv's programs or on PATH."""
    name = actor.program
    candidates = []
    p = Path(name)
    if p.is_absolute():
        candidates.append(p)
    elif "/" in name:
        candidates += [deployment_path.parent / p, Path.cwd() / p]
    else:
        # tansiv's own programs: the examples, and tansiv-vm next to the interpreter.
        candidates += [deployment_path.parent / p, paths.libexecdir() / p, paths.bindir() / p]
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    looked = ", ".join(str(c) for c in candidates) + ("" if "/" in name else ", PATH")
    raise InputError(f"program '{name}' of {actor.address} not found or not executable "
                     f"(looked in: {looked})", deployment_path, actor.line)


def is_vm(program: Path) -> bool:
    return program.name == "tansiv-vm"


@dataclass(eq=False)
class Participant:
    actor: Actor
    program: Path
    log_path: Path
    main: bool = False          # its end ends the run
    proc: subprocess.Popen = None
    client: int = None          # the hub's index, once it said HELLO
    role: str = None            # process or vm
    transport: str = None       # how it speaks to the hub: shm (a channel), socket or relay
    node: str = None            # --launcher slurm, on a node other than the coordinator's
    state: str = STARTING
    detail: str = ""
    end_ns: int = None          # simulated time it left at
    held_s: float = None        # wall time spent held at barriers
    console_limit: int = consoles.DEFAULT_LIMIT
    console: consoles.Console = field(default=None, repr=False)

    def __post_init__(self):
        self.console = consoles.Console(self.log_path, self.console_limit)

    @property
    def name(self) -> str:
        return self.actor.address

    # ---- its process -------------------------------------------------------------------

    def start(self, argv, env=None) -> None:
        """Starts argv with env added to the environment, its output into its log."""
        self.proc = procs.start_logged(argv, self.log_path, env or {})

    def exit_code(self, wait_s: float = 0.0):
        return procs.exit_code(self.proc, wait_s)

    def terminate(self, grace_s: float) -> None:
        procs.stop(self.proc, grace_s)

    # ---- its states --------------------------------------------------------------------

    def joined(self, client: int, role: str) -> None:
        self.client, self.role, self.state = client, role, RUNNING

    def gone(self, at_ns: int, code) -> None:
        """It closed its connection at at_ns; code is its exit status if it exited."""
        self.end_ns = at_ns
        if code is None or code == 0:
            self.state = ENDED if code == 0 else LEFT
        else:
            self.state, self.detail = CRASHED, procs.describe_exit(code)

    def failed(self, at_ns: int, why: str) -> None:
        self.end_ns, self.state, self.detail = at_ns, FAILED, why
        if not self.node:  # one on another node: its relay stops it (the hub told it)
            self.terminate(grace_s=REMOVED_GRACE_S)

    def finished(self, code, terminated: bool, lost: bool = False) -> None:
        """At the end of the run: its exit status, and whether it had to be terminated; lost:
        it ran on another node whose relay never reported (its exit status is unknown)."""
        if lost and self.state in (RUNNING, LEFT):
            left = f"left the simulation at {self.end_ns} ns, then " if self.state == LEFT else ""
            self.state, self.detail = FAILED, (f"node {self.node}: {left}lost with its relay "
                                               "(no report from the node; exit status unknown)")
        elif terminated:
            if self.state == RUNNING:
                self.state, self.detail = ENDED, "terminated when the run ended"
        elif self.state in (RUNNING, LEFT):
            self.state = ENDED if code == 0 else CRASHED
            if code != 0:
                where = f"node {self.node}: " if self.node else ""
                self.detail = where + procs.describe_exit(code)

    @property
    def broke(self) -> bool:
        return self.state in BROKEN

    def record(self) -> ParticipantRecord:
        return ParticipantRecord(
            name=self.name, host=self.actor.host, program=str(self.program), role=self.role,
            transport=self.transport, state=self.state, detail=self.detail, main=self.main,
            end_ns=self.end_ns, held_s=self.held_s, node=self.node,
            exit=self.proc.returncode if self.proc else None, log=str(self.log_path))

    # ---- its output --------------------------------------------------------------------

    def echo(self, out=sys.stdout, rest: bool = False) -> None:
        """Prints the whole lines the program wrote since the last call (rest: the last one
        too, unfinished), prefixed by its name."""
        for line in self.console.lines(rest):
            out.write(f"[{self.name}] {line.decode(errors='replace')}\n")
        out.flush()

    def echo_rest(self, out=sys.stdout) -> None:
        self.echo(out, rest=True)


class Participants:
    """The participant table: every participant once, found by address or by hub client."""

    def __init__(self, members):
        self.members = list(members)
        self._by_name = {p.name: p for p in self.members}
        self._by_client = {}

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def get(self, name: str):
        return self._by_name.get(name)

    def by_client(self, client: int):
        return self._by_client.get(client)

    def join(self, client: int, address: str, role: str, pid: int) -> Participant:
        """A client said HELLO as `address`."""
        p = self._by_name.get(address)
        if p is None:
            raise RunError(f"a client (pid {pid}) connected as {address}, an address no actor "
                           "of the deployment has")
        if p.client is not None:
            raise RunError(f"two clients connected as {address}")
        p.joined(client, role)
        self._by_client[client] = p
        return p

    def running(self):
        return [p for p in self.members if p.state == RUNNING]

    def unconnected(self):
        return [p for p in self.members if p.client is None]

    def main_ended(self) -> bool:
        """Every main participant (if any is named) has ended."""
        main = [p for p in self.members if p.main]
        return bool(main) and all(p.state != RUNNING for p in main)


def cap_consoles(members) -> None:
    """Keeps every participant's console under its limit (consoles.py)."""
    consoles.cap_all(p.console for p in members)


def wait(members, timeout_s: float) -> None:
    """For uncoupled participants (netem, none): until the main ones (default: all) end, or
    timeout_s of wall time; then the others are stopped."""
    waited = [p for p in members if p.main] or members
    end = time.monotonic() + timeout_s
    while any(p.proc.poll() is None for p in waited) and time.monotonic() < end:
        cap_consoles(members)
        time.sleep(0.2)
    for p in members:
        still = p.proc.poll() is None
        p.terminate(grace_s=2.0)
        p.finished(p.proc.returncode, terminated=still)
        cap_consoles([p])  # its writer has ended: the last cap bounds the file for good
        if still and p in waited:
            p.state, p.detail = FAILED, f"still running after the timeout ({timeout_s:g} s)"
