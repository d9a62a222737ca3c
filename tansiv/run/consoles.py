"""A participant's console (its output, straight into a file of the run's folder), kept from
filling the disk without touching the program that writes it: past its limit, the file keeps
its first and its last limit/2 bytes, and the middle is freed (a hole punched in the file:
the writer's offset and the file's size go on, the disk does not fill). Said once, in the
file's place and in coordinator.log; tansiv's echo skips the hole.

Writing through a pipe instead would make a participant wait for tansiv to read: real time
for a process (its simulated clock), and a VM's serial console would see its writes refused
at host-dependent moments. A hole costs the writer nothing."""

import ctypes
import logging
import os
from pathlib import Path

DEFAULT_LIMIT = 256 << 20
_BLOCK = 1 << 16
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
log = logging.getLogger("tansiv.consoles")


class Console:
    def __init__(self, path: Path, limit: int = DEFAULT_LIMIT):
        self.path = Path(path)
        self.limit = limit
        self.hole = None      # (start, end) freed so far
        self.offset = 0       # what read_new returned up to
        self.partial = b""    # an unfinished last line

    def cap(self):
        """Frees the middle of a console past its limit; a message the first time, else
        None."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return None
        if size <= self.limit:
            return None
        keep = self.limit // 2
        start = -(-keep // _BLOCK) * _BLOCK             # blocks: whole ones only
        end = (size - keep) // _BLOCK * _BLOCK
        if end <= start or (self.hole and end <= self.hole[1]):
            return None
        first = self.hole is None
        fd = os.open(self.path, os.O_WRONLY)
        try:
            if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, start,
                               end - start):
                return None  # a file system without holes: the console grows
        finally:
            os.close(fd)
        self.hole = (start, end)
        if first:
            return (f"{self.path} passed {self.limit >> 20} MiB (--console-limit): its first "
                    f"and last {keep >> 20} MiB are kept, the middle is dropped")
        return None

    def read_new(self) -> bytes:
        """What was written since the last call (the hole skipped, said in one line)."""
        skipped = b""
        if self.hole and self.hole[0] <= self.offset < self.hole[1]:
            skipped = f"[tansiv: {self.hole[1] - self.offset} bytes dropped]\n".encode()
            self.offset = self.hole[1]
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.limit)
        except OSError:
            return skipped
        if self.hole and self.offset < self.hole[0]:
            data = data[:self.hole[0] - self.offset]
        self.offset += len(data)
        return skipped + data

    def lines(self, rest: bool = False) -> list:
        """The whole lines written since the last call (rest: the unfinished one too). A line
        longer than LINE_MAX is cut there."""
        data = self.partial + self.read_new()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if rest or len(self.partial) > LINE_MAX:
            if self.partial:
                lines.append(self.partial)
            self.partial = b""
        return lines


LINE_MAX = 64 << 10


def cap_all(consoles, who: str = "") -> None:
    """Keeps each console under its limit, saying so once for each (who: whose, in the log)."""
    for console in consoles:
        said = console.cap()
        if said:
            log.warning("%s%s", f"{who}: " if who else "", said)
