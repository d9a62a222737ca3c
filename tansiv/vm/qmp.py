"""A client of QEMU's machine protocol (QMP) on a Unix socket: commands and events, one JSON
object per line, nothing more than tansiv/vm/snapshot.py needs."""

import json
import socket
import time
from pathlib import Path

from ..errors import TansivError


class QMP:
    def __init__(self, path: Path, proc, timeout_s: float = 30.0):
        """Connects to the monitor of proc (a subprocess.Popen of QEMU), which listens at path
        (-qmp unix:PATH,server=on,wait=off), and leaves negotiation mode."""
        self.proc = proc
        self.events = []
        end = time.monotonic() + timeout_s
        while True:
            self._alive()
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > end:
                    raise TansivError(f"QEMU's monitor did not open at {path} "
                                      f"in {timeout_s:g} s")
                time.sleep(0.05)
        self.sock.settimeout(1.0)
        self.buf = b""
        greeting = self._read(timeout_s)
        if "QMP" not in greeting:
            raise TansivError(f"not QEMU's monitor at {path}: {greeting}")
        self.command("qmp_capabilities")

    def _alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise TansivError(f"QEMU ended (exit status {code})")

    def _read(self, timeout_s: float) -> dict:
        end = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                self._alive()
                if time.monotonic() > end:
                    raise TansivError(f"QEMU's monitor said nothing in {timeout_s:g} s")
                continue
            if not data:
                self._alive()
                raise TansivError("QEMU closed its monitor")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, timeout_s: float = 60.0, **arguments):
        """Runs a command; its return value (TansivError with QEMU's words if it failed)."""
        msg = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read(timeout_s)
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise TansivError(f"QEMU refused {name}: {reply['error'].get('desc')}")
            elif "return" in reply:
                return reply["return"]

    def wait_event(self, name: str, timeout_s: float) -> dict:
        """The first event of that name (one already seen counts)."""
        end = time.monotonic() + timeout_s
        while True:
            for e in self.events:
                if e["event"] == name:
                    self.events.remove(e)
                    return e
            left = end - time.monotonic()
            if left <= 0:
                raise TansivError(f"no {name} from QEMU in {timeout_s:g} s")
            reply = self._read(left)
            if "event" in reply:
                self.events.append(reply)

    def close(self) -> None:
        self.sock.close()
