"""Child processes: started so that they do not outlive tansiv, stopped politely then
firmly, and their ends described in words."""

import ctypes
import os
import signal
import subprocess
import time

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def raise_open_files_limit() -> tuple:
    """The soft limit on open files up to the hard one: a run holds a few descriptors per
    participant (its socket, its capture), and the usual soft limit (1024) stops near 500.
    Returns (before, after)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def die_with_parent() -> None:
    """For Popen's preexec_fn (runs between fork and exec): SIGTERM when tansiv dies, so that
    no participant, VM or router outlives the run."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_logged(argv, log_path, env: dict) -> subprocess.Popen:
    """argv with env added to the environment, its output (both streams) into log_path,
    dying with tansiv, in a process group of its own (a terminal's Ctrl-C is tansiv's to
    handle; what it leaves running is found by its mark: tansiv/leftovers.py)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                process_group=0, env=dict(os.environ, **env))


def stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it still runs grace_s later; reaps it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def exit_code(proc: subprocess.Popen, wait_s: float = 0.0):
    """The process's return code, waiting up to wait_s for it; None while it runs."""
    deadline = time.monotonic() + wait_s
    while True:
        code = proc.poll()
        if code is not None or time.monotonic() >= deadline:
            return code
        time.sleep(0.005)


def describe_exit(code) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"
