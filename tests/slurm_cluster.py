"""A SLURM cluster on loopback (Debian's slurm-wlm and munge, no systemd, no accounting), for
the SLURM tests: one node named after this host, or n1..nK, K slurmd daemons on this one
machine (`slurmd -N NAME`, one port each). Needs root; writes /etc/slurm/slurm.conf (the SLURM
executor's job steps read that path), keeping and restoring a previous one."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
CGROUP_CONF = Path("/etc/slurm/cgroup.conf")
STATE = Path("/var/lib/tansiv-slurm")


def why_not() -> str:
    """Empty if a cluster can be started here, else the reason."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
               if not shutil.which(t) and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        return f"SLURM or munge missing ({', '.join(missing)}): apt-get install slurm-wlm munge"
    return ""


def _slurm_version():
    out = subprocess.run(["/usr/sbin/slurmd", "-V"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in out.split()[-1].split(".")[:2])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 512
    return 2048


class Cluster:
    def __init__(self, nodes: int = 1):
        self.host = socket.gethostname().split(".")[0]
        self.nodes = [self.host] if nodes == 1 else [f"n{i}" for i in range(1, nodes + 1)]
        self.saved = {}
        self.procs = []
        self.started_munge = False

    @staticmethod
    def _munge_works() -> bool:
        """A munged answers on this machine's socket (a process elsewhere does not count)."""
        enc = subprocess.run(["munge", "-n"], capture_output=True)
        return enc.returncode == 0 and subprocess.run(
            ["unmunge"], input=enc.stdout, capture_output=True).returncode == 0

    def config(self) -> str:
        return f"""ClusterName=tansiv-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SlurmctldPidFile={STATE}/slurmctld.pid
SlurmdPidFile={STATE}/slurmd-%n.pid
StateSaveLocation={STATE}/ctld
SlurmdSpoolDir={STATE}/d-%n
SlurmctldLogFile={STATE}/slurmctld.log
SlurmdLogFile={STATE}/slurmd-%n.log
{self._node_lines()}
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""

    def _node_lines(self) -> str:
        cpus, memory = os.cpu_count(), _memory_mb() // len(self.nodes)
        if len(self.nodes) == 1:
            return (f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} "
                    f"RealMemory={memory} State=UNKNOWN")
        return "\n".join(f"NodeName={n} NodeHostname={self.host} NodeAddr=127.0.0.1 "
                         f"Port={17000 + i} CPUs={cpus} RealMemory={memory} State=UNKNOWN"
                         for i, n in enumerate(self.nodes, 1))

    def start(self, timeout_s=60):
        shutil.rmtree(STATE, ignore_errors=True)
        (STATE / "ctld").mkdir(parents=True)
        for n in self.nodes:
            (STATE / f"d-{n}").mkdir()
        self.saved = {f: f.read_text() for f in (CONF, CGROUP_CONF) if f.exists()}
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(self.config())
        if _slurm_version() >= (23, 11):
            # Newer slurmd sets up cgroups even with task/none; this cluster needs none.
            CGROUP_CONF.write_text("CgroupPlugin=disabled\n")
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        if not self._munge_works():
            subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force"],
                           check=True)
            self.started_munge = True
        daemons = [["slurmctld"]] + [["slurmd"] + (["-N", n] if len(self.nodes) > 1 else [])
                                     for n in self.nodes]
        for daemon, *args in daemons:
            self.procs.append(subprocess.Popen([f"/usr/sbin/{daemon}", "-D", "-f", str(CONF),
                                                *args], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
            states = r.stdout.split()
            if r.returncode == 0 and len(states) == len(self.nodes) and all(
                    s in ("idle", "mixed", "allocated") for s in states):
                return self
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"SLURM did not come up: see {STATE}/slurmctld.log, slurmd-*.log")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        if self.started_munge:
            subprocess.run(["pkill", "-x", "-f", "/usr/sbin/munged --force"])
        for f in (CONF, CGROUP_CONF):
            if f in self.saved:
                f.write_text(self.saved[f])
            elif f.exists():
                f.unlink()
