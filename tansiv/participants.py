"""Participants' processes: finding their programs, starting them, following their output and
their end."""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .deployment import Actor
from .errors import InputError

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: a participant must not outlive its coordinator.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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
        candidates += [deployment_path.parent / p, paths.libexecdir() / p,
                       paths.prefix() / "bin" / p]
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    looked = ", ".join(str(c) for c in candidates) + ("" if "/" in name else ", PATH")
    raise InputError(f"program '{name}' of {actor.address} not found or not executable "
                     f"(looked in: {looked})", deployment_path, actor.line)


def describe_exit(code: int) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class Participant:
    actor: Actor
    program: Path
    log_path: Path
    proc: subprocess.Popen = None
    client: int = None          # the hub's index, once it said HELLO
    role: str = None            # process or vm, from its HELLO
    state: str = "starting"     # starting, running, ended, left, crashed, failed
    detail: str = ""
    end_ns: int = None          # simulation time it left at
    _echo_offset: int = 0
    _echo_partial: bytes = field(default=b"", repr=False)

    @property
    def name(self) -> str:
        return self.actor.address

    def start(self, socket: str, env=None) -> None:
        """Starts `program SOCKET ARGS...`, with env added to the environment."""
        self.start_argv([str(self.program), socket] + list(self.actor.args), env)

    def start_argv(self, argv, env=None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                         env=dict(os.environ, **(env or {})))

    def exit_code(self, wait_s: float = 0.0):
        """The process's return code, waiting up to wait_s for it; None while it runs."""
        deadline = time.monotonic() + wait_s
        while True:
            code = self.proc.poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            time.sleep(0.005)

    def terminate(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after grace_s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def echo(self, out=sys.stdout) -> None:
        """Prints the whole lines the program wrote since the last call, prefixed by its name."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._echo_offset)
                data = f.read()
        except OSError:
            return
        self._echo_offset += len(data)
        data = self._echo_partial + data
        lines = data.split(b"\n")
        self._echo_partial = lines.pop()
        for line in lines:
            out.write(f"[{self.name}] {line.decode(errors='replace')}\n")
        out.flush()

    def echo_rest(self, out=sys.stdout) -> None:
        self.echo(out)
        if self._echo_partial:
            out.write(f"[{self.name}] {self._echo_partial.decode(errors='replace')}\n")
            self._echo_partial = b""
