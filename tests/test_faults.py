"""Faults the second hardening review found (issue 22), each reproduced: what the machine does
to a run (a full disk) and what a participant can do to the coordinator."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import TESTS_BIN, actor, tansiv, two_hosts, write_deployment

BURST = TESTS_BIN / "burst"


def processes_of_run(run_dir: Path) -> list:
    """Processes whose environment names this run's folder (its participants)."""
    mark = f"TANSIV_RUN_DIR={run_dir.resolve()}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in env:
            found.append(int(pid))
    return found


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB file system (tmpfs), for what a full disk does."""
    mount = tmp_path / "small"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", mount],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {r.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", mount])


def test_a_full_disk_keeps_the_record_and_leaves_nothing_running(tmp_path, small_disk):
    # 200 000 messages: their packets.jsonl and the receiver's log need far more than 4 MiB.
    count = 200_000
    p = two_hosts(tmp_path / "p.xml", "1ms")
    d = write_deployment(
        tmp_path / "d.xml",
        actor("h1", "10.0.0.1", BURST, "-n", "10.0.0.1", "--", "send", "10.0.0.2", count, 8,
              "stop"),
        actor("h2", "10.0.0.2", BURST, "-n", "10.0.0.2", "--", "recv", count))
    out = small_disk / "run"
    r = tansiv("run", p, d, "--out", out, "--quiet", timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())  # written, whole, on a full disk
    assert record["status"] == "error", record
    assert record["error"].startswith(f"disk full: {out}/"), record["error"]
    assert f"disk full: {out}/" in r.stderr
    assert not (out / ".run.json.tmp").exists()
    assert {p["name"] for p in record["participants"]} == {"10.0.0.1", "10.0.0.2"}
    assert processes_of_run(out) == [], "participants still running after the run"


# A participant given a channel truncates the memory behind its rings, then the hub starts a
# round (its GOTO goes into the ring). In a child: unsealed, the hub dies of SIGBUS there.
TRUNCATE = """
import os, socket, stat, sys
from tansiv.run import protocol
from tansiv.run.hub import Hub, str_to_addr
hub = Hub(sys.argv[1], 1 << 17)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
c.sendall(protocol.Frame(protocol.HELLO, src=str_to_addr("10.0.0.1"),
                         flags=protocol.HELLO_CHANNEL, payload=protocol.pack_hello()).pack())
assert hub.accept(1, 5000) == 1 and hub.client_channel(0)
_, fds, _, _ = socket.recv_fds(c, 4096, 3)
memfds = [fd for fd in fds if stat.S_ISREG(os.fstat(fd).st_mode)]  # not the eventfd
refused = 0
for fd in memfds:
    try:
        os.ftruncate(fd, 0)
    except PermissionError:
        refused += 1
hub.run(1_000_000, 1_000_000, 1_000_000)
hub.wait(200)
print("refused", refused, "of", len(memfds))
"""


def test_a_participant_cannot_shrink_its_channel_under_the_hub(tmp_path):
    import sys
    r = subprocess.run([sys.executable, "-c", TRUNCATE, str(tmp_path / "hub.sock")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "refused 2 of 2" in r.stdout, r.stdout  # the barrier and the channel: sealed
