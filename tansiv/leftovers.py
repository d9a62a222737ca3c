"""What a run must not leave behind, and what a killed one left: processes its participants
started (a wrapper's `server &`), its private folders in /tmp, its network namespace.

Each is marked with its owner's identity (pid and start time: pids are reused): processes by
TANSIV_OWNER in the environment every child inherits, folders and namespaces by their names.
At its end a run stops the processes marked as its own, whatever became of their parents; at
its start it removes what owners that no longer exist left (a coordinator killed by SIGKILL
cleans nothing), naming each thing it removes."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

MARK = "TANSIV_OWNER"
_NAME = re.compile(r"tansiv\.(\d+)\.(\d+)\.")  # tansiv.PID.START.WHAT...


def _start_time(pid: int):
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or None if
    there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def identity(pid: int = None) -> str:
    pid = pid or os.getpid()
    return f"{pid}.{_start_time(pid)}"


def alive(owner: str) -> bool:
    pid, _, start = owner.partition(".")
    return pid.isdigit() and str(_start_time(int(pid))) == start


def mark_children() -> str:
    """Marks every process started from now on (and theirs) as this process's; returns the
    mark. A process's own mark, if it had one, is its parent's."""
    os.environ[MARK] = me = identity()
    return me


def tmp_prefix(what: str) -> str:
    """A prefix for mkdtemp/TemporaryDirectory naming this process as the folder's owner."""
    return f"tansiv.{identity()}.{what}."


def namespace_name(what: str) -> str:
    """A network namespace's name naming this process as its owner (ip netns: at most a few
    tens of characters)."""
    return f"tansiv.{identity()}.{what}"


def _marked():
    """(pid, owner, command line) of every process carrying a mark, this one excepted."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        prefix = f"{MARK}=".encode()
        for var in env:
            if var.startswith(prefix):
                yield int(entry), var[len(prefix):].decode(errors="replace"), \
                    cmd.decode(errors="replace").strip()
                break


def _stop(found, grace_s: float) -> list:
    """SIGTERM to each (pid, owner, cmd), SIGKILL to those left after grace_s; what was
    stopped, in words."""
    for pid, _, _ in found:
        _signal(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end and any(_exists(pid) for pid, _, _ in found):
        time.sleep(0.05)
    for pid, _, _ in found:
        _signal(pid, signal.SIGKILL)
    return [f"process {pid} ({cmd[:120]})" for pid, _, cmd in found]


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is ended: its parent reaps it


def stop_mine(grace_s: float) -> list:
    """Stops the processes marked as this process's (its participants' leftovers: by now its
    participants themselves have ended). What was stopped, in words."""
    me = os.environ.get(MARK)
    if me != identity():
        return []  # mark_children was not called: nothing is ours
    return _stop([m for m in _marked() if m[1] == me], grace_s)


def clean_stale(grace_s: float = 2.0) -> list:
    """Removes what owners that no longer exist left: processes, folders in the temporary
    folder, network namespaces (as root). What was removed, in words."""
    removed = _stop([m for m in _marked() if not alive(m[1])], grace_s)
    tmp = Path(tempfile.gettempdir())
    for path in sorted(tmp.glob("tansiv.*.*.*")):
        m = _NAME.match(path.name)
        if m and path.is_dir() and not alive(f"{m.group(1)}.{m.group(2)}"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"folder {path}")
    if os.geteuid() == 0 and shutil.which("ip"):
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            m = _NAME.match(name + ".")
            if m and not alive(f"{m.group(1)}.{m.group(2)}"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
                removed.append(f"network namespace {name}")
    return removed
