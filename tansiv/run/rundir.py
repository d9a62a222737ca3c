"""A run's folder: its exact inputs, the coordinator's log, every packet, every participant's
output, the routes and the run's record.

    inputs/          copies of the platform and deployment files
    coordinator.log  the coordinator's log
    packets.jsonl    one line per packet: src, dst, size, send_ns, complete_ns, deliver_ns
    events.jsonl     participants joining and leaving, lookahead changes
    routes.json      every participant pair's route (tansiv/run/routes.py)
    participants/    one log per participant (its stdout and stderr)
    pcap/            with --pcap: <address>.pcap, what each participant sent and received,
                     in simulated time (tansiv/run/pcap.py)
    run.json         the record (tansiv/run/record.py), written at the end whatever happens

A full disk (or quota, or file-size limit) does not lose the record: the space of run.json is
reserved when the run starts (RECORD_RESERVE bytes of .run.json.tmp), the first write that
fails ends the run with DiskFull naming its file, later writes of the run's files are
skipped, and the record is written into the reserved space, synced and renamed into place.
"""

import errno
import json
import logging
import os
import shutil
from pathlib import Path

from ..errors import InputError, TansivError
from ..logs import RepeatLimit
from . import record, routes


PRIVATE = 0o077  # umask of a run: its folders 0700, its files 0600
RECORD_RESERVE = 1 << 20  # room for run.json (a participant's record: about 400 bytes)
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_claimed = set()  # by this process


class DiskFull(TansivError):
    """A write of the run's folder failed for want of space: the run ends, its record says
    which file."""


def claim(path: Path) -> None:
    """Makes path this run's, or raises InputError: its coordinator.log is created
    exclusively, so that two runs never share a folder, even started at the same instant."""
    if path.resolve() in _claimed:
        return
    try:
        path.mkdir(parents=True)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass  # a folder the user made keeps the mode they chose; a run's is private already
    try:
        os.close(os.open(path / "coordinator.log", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise InputError("this folder already holds a run: choose another --out", path)
    _claimed.add(path.resolve())


def fresh(base: Path) -> Path:
    """base, or base-2, base-3... : the first that no run holds yet."""
    for k in range(1, 1000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            claim(path)
            return path
        except InputError:
            continue
    raise InputError("no free run folder name", base)


class _LogFile(logging.FileHandler):
    """coordinator.log: once a write failed (a full disk), no more are tried, and none is
    reported line by line (the run's error says it)."""
    failed = False

    def emit(self, rec) -> None:
        if not self.failed:
            super().emit(rec)

    def handleError(self, rec) -> None:
        self.failed = True


class Sink:
    """A file the run writes as it goes (packets, events, captures): on a full disk its first
    failed write raises DiskFull, and once the folder is full nothing more is written."""

    def __init__(self, rundir: "RunDir", path: Path, mode: str, buffering: int = -1):
        self._rundir, self.path = rundir, path
        self._file = open(path, mode, buffering=buffering)

    def write(self, data) -> None:
        if self._rundir.full is None:
            try:
                self._file.write(data)
            except OSError as e:
                self._rundir.filled(self.path, e)

    def close(self) -> None:
        try:
            self._file.close()  # closed even if its last flush fails
        except OSError as e:
            if e.errno not in _FULL:
                raise
            self._rundir.full = self._rundir.full or self.path


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        # What a run writes is its user's alone (packets, logs, the hub's socket), whatever
        # the umask it was started with; its participants inherit this.
        os.umask(PRIVATE)
        claim(self.path)
        self.full = None  # the file whose write found the disk full
        self._reserve = self.path / ".run.json.tmp"
        fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, RECORD_RESERVE)
        except OSError as e:
            os.close(fd)
            os.unlink(self._reserve)
            raise DiskFull(f"disk full: no room for the run's record in {self.path} "
                           f"({os.strerror(e.errno)})")
        os.close(fd)
        (self.path / "participants").mkdir(exist_ok=True)
        self._sinks = []
        self._packets = self.sink(self.path / "packets.jsonl", "w", buffering=1 << 16)
        self._events = self.sink(self.path / "events.jsonl", "w", buffering=1)
        self._log_handler = None

    def sink(self, path: Path, mode: str, buffering: int = -1) -> Sink:
        s = Sink(self, path, mode, buffering)
        self._sinks.append(s)
        return s

    def filled(self, path: Path, e: OSError) -> None:
        """A write of path failed with e: DiskFull the first time the disk is full."""
        if e.errno not in _FULL:
            raise e
        if self.full is None:
            self.full = path
            raise DiskFull(f"disk full: {path}") from None

    def copy_inputs(self, platform, deployment) -> None:
        """inputs/NAME of each; platform-NAME and deployment-NAME if they have one name."""
        inputs = self.path / "inputs"
        inputs.mkdir(exist_ok=True)
        platform, deployment = Path(platform), Path(deployment)
        same = platform.name == deployment.name
        for role, f in (("platform", platform), ("deployment", deployment)):
            shutil.copy2(f, inputs / (f"{role}-{f.name}" if same else f.name))

    def write_routes(self, table) -> None:
        routes.write(self.path, table)

    def participant_log(self, name: str) -> Path:
        return self.path / "participants" / f"{name}.log"

    def attach_log(self, level=logging.DEBUG) -> None:
        h = _LogFile(self.path / "coordinator.log")
        h.setLevel(level)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        h.addFilter(RepeatLimit())
        logging.getLogger("tansiv").addHandler(h)
        self._log_handler = h

    def packet(self, fields: dict) -> None:
        self._packets.write(json.dumps(fields, separators=(",", ":")) + "\n")

    def event(self, fields: dict) -> None:
        self._events.write(json.dumps(fields) + "\n")

    def finish(self, run: record.RunRecord) -> None:
        """Closes the run's files, then writes its record atomically, into the space reserved
        for it: a crash leaves the previous state (no run.json), never half of one."""
        for s in self._sinks:
            s.close()
        if self.full is not None and run.status != "error":
            run.status, run.error = "error", f"disk full: {self.full}"
        data = run.to_json().encode()
        fd = os.open(self._reserve, os.O_WRONLY)
        try:
            try:
                os.pwrite(fd, data, 0)  # within the reserved blocks: needs no more space
            except OSError as e:
                if e.errno not in _FULL:
                    raise
                # Larger than the reservation on a full disk: the record without its
                # participants (their logs are there), saying so.
                run.error = (f"{run.error or run.status}; the participants' records left out "
                             f"(no room for them: {len(run.participants)} participants)")
                run.participants = []
                data = run.to_json().encode()
                os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(self._reserve, self.path / record.FILE)
        folder = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        if self._log_handler:
            logging.getLogger("tansiv").removeHandler(self._log_handler)
            self._log_handler.close()
