"""The simulated network: SimGrid's engine in maestro mode (no actors), driven step by step.

Dates and latencies cross this class in integer ns (tansiv/units.py); SimGrid's float
seconds stay inside it. SimGrid's engine is a process-wide singleton: one Network per
process."""

import math
import os
import subprocess
import sys
from pathlib import Path

import cffi

from ..errors import InputError, TansivError
from .. import units
from . import cheader
from .network import Fate

# A transfer takes latency + size / bottleneck bandwidth, as route_to reports them. SimGrid's
# defaults differ: LV08 multiplies latencies by 13.01 and bandwidths by 0.97, TCP-gamma caps
# the rate by a TCP window, and cross-traffic makes every flow also use 5 % of its reverse
# route, which slows a flow over a shared link by 1/1.05. Each packet being a transfer, a
# link passes one at a time, in order, as a wire does (concurrency-limit 1): shared fairly,
# short frames would overtake long ones sent before them (docs/design.md, Fidelity).
DEFAULT_CFG = ["network/model:CM02", "network/TCP-gamma:0", "network/crosstraffic:0",
               "maxmin/concurrency-limit:1"]

_ffi = cffi.FFI()
cheader.load(_ffi, "tansiv-sgnext.h")


def _import_simgrid():
    # The bindings announce a configuration change on stderr when imported: keep it quiet.
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import simgrid
    except ImportError as e:
        os.dup2(saved, 2)
        raise TansivError(
            "SimGrid's Python bindings are missing (Debian package python3-simgrid; the "
            f"virtual environment must use Debian's Python with system site packages): {e}")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return simgrid


SIMGRID_DOCTYPE = '<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">'


def _precheck(platform: Path) -> None:
    """What SimGrid's parser reports cryptically: a missing file, bad XML, no DOCTYPE."""
    from xml.parsers import expat
    try:
        data = platform.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read the platform: {e.strerror}", platform)
    parser = expat.ParserCreate()
    seen = []
    parser.StartDoctypeDeclHandler = lambda *a: seen.append(a[0])
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise InputError(f"not well-formed XML: {expat.errors.messages[e.code]}", platform,
                         e.lineno)
    if seen != ["platform"]:
        raise InputError(f"SimGrid needs the line {SIMGRID_DOCTYPE} after the XML declaration",
                         platform)


# SimGrid reports a bad option by aborting the process that holds the engine: try the user's
# options on the platform in a child first, and turn what it says into one line.
_CFG_PROBE = """import sys, simgrid
e = simgrid.Engine(sys.argv[2:])
try:
    e.load_platform(sys.argv[1])
except RuntimeError:
    pass  # the platform's own errors are reported by the engine that loads it, with its name
"""


def check_cfg(cfg, platform: Path) -> None:
    """The user's --cfg options, each OPTION:VALUE and accepted by SimGrid."""
    for c in cfg:
        name, sep, value = c.partition(":")
        if not (name and sep and value):
            raise InputError(f"--cfg '{c}': expected OPTION:VALUE (e.g. network/model:LV08)")
    if not cfg:
        return
    r = subprocess.run([sys.executable, "-c", _CFG_PROBE, str(platform), "tansiv",
                        *[f"--cfg={c}" for c in cfg], "--log=root.thresh:critical"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode == 0:
        return
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    said = [l.split("CRITICAL] ", 1)[1] for l in lines if "CRITICAL] " in l]
    said += [l.split(": ", 1)[1] for l in lines if l.startswith(("IndexError", "ValueError",
                                                                  "RuntimeError"))]
    raise InputError(f"SimGrid refuses --cfg {' '.join(cfg)}: "
                     f"{said[0] if said else (lines[-1] if lines else r.returncode)}")


class Network:
    def __init__(self, platform: Path, cfg=(), quiet=True):
        simgrid = _import_simgrid()
        self._simgrid = simgrid
        args = ["tansiv"] + [f"--cfg={c}" for c in list(DEFAULT_CFG) + list(cfg)]
        if quiet:
            args.append("--log=root.thresh:warning")
        platform = Path(platform)
        _precheck(platform)
        check_cfg(list(cfg), platform)
        self.engine = simgrid.Engine(args)
        try:
            self.engine.load_platform(str(platform))
        except RuntimeError as e:
            raise InputError(f"SimGrid cannot load the platform: {e}", platform)
        self.platform = platform
        self.hosts = {h.name: h for h in self.engine.all_hosts}
        self._sg = cheader.open_library(_ffi, "tansiv-sgnext")
        self.cfg = list(DEFAULT_CFG) + list(cfg)
        self._buffers = (_ffi.new("uint64_t[]", 1024), _ffi.new("double[]", 1024))

    @staticmethod
    def simgrid_version() -> str:
        simgrid = _import_simgrid()
        v = simgrid.simgrid_version
        return v() if callable(v) else str(v)

    def route(self, src: str, dst: str):
        """(latency ns, bottleneck bandwidth B/s, link names, their bandwidths B/s) of the
        route src -> dst."""
        links, latency = self.hosts[src].route_to(self.hosts[dst])
        bandwidth = min((l.bandwidth for l in links), default=math.inf)
        return (units.to_ns(latency), bandwidth, [l.name for l in links],
                [l.bandwidth for l in links])

    def link(self, name: str):
        """SimGrid's link (bandwidth B/s, latency s)."""
        return self._simgrid.Link.by_name(name)

    def link_properties(self, name: str) -> list:
        """The names of a link's <prop>s."""
        need = self._sg.tsv_sg_link_property_names(name.encode(), _ffi.NULL, 0)
        buf = _ffi.new("char[]", max(need, 1))
        self._sg.tsv_sg_link_property_names(name.encode(), buf, need)
        return [n.decode() for n in _ffi.buffer(buf, need)[:].split(b"\0") if n]

    def link_property(self, name: str, key: str):
        """The value of a link's <prop id=key>, None if it has none."""
        value = self._sg.tsv_sg_link_property(name.encode(), key.encode())
        return None if value == _ffi.NULL else _ffi.string(value).decode()

    # ---- the network model (tansiv/run/network.py) -----------------------------------------

    def _run_until(self, date_ns: int) -> None:
        date = units.to_seconds(date_ns)
        # SimGrid aborts on a date in the past.
        if date > self.engine.clock:
            self.engine.run_until(date)

    def next_event_ns(self):
        """Date of the next event (ns), None if none."""
        nxt = self._sg.tsv_sg_next_event()
        return None if nxt < 0 else units.to_ns(nxt)

    def send(self, src: str, dst: str, size: int, at_ns: int, id: int, flow: int = 0) -> None:
        """A frame of size bytes from host src to host dst, sent at at_ns (>= the last date
        the simulation was taken to): a transfer, whose completion advance reports. (Flows
        are ns-3's: SimGrid has no queue to sort them into.)"""
        self._run_until(at_ns)
        if self._sg.tsv_sg_send(src.encode(), dst.encode(), size, id):
            raise TansivError(f"SimGrid knows no host {src} or {dst}")

    def advance(self, to_ns: int) -> list:
        """Runs the simulation to to_ns; the frames that completed on the way (those whose
        date rounds to to_ns included: SimGrid's dates are floats), by completion date and
        then order of sending."""
        # Each event's exact float date, which ns may round below (to_ns cannot reach it).
        nxt = self._sg.tsv_sg_next_event()
        while 0 <= nxt and units.to_ns(nxt) <= to_ns:
            if nxt > self.engine.clock:
                self.engine.run_until(nxt)
            else:
                break  # an event SimGrid keeps at its clock (none here; no spinning)
            nxt = self._sg.tsv_sg_next_event()
        self._run_until(to_ns)
        fates = []
        ids, dates = self._buffers
        while True:
            n = self._sg.tsv_sg_completed(ids, dates, len(ids))
            fates += [Fate(ids[k], units.to_ns(dates[k])) for k in range(n)]
            if n < len(ids):
                break
        fates.sort(key=lambda f: (f.time_ns, f.id))
        return fates

    def in_flight(self) -> int:
        return self._sg.tsv_sg_in_flight()

    def cancel_all(self) -> list:
        """Ends every transfer in flight: their ids, in order of sending."""
        n = self._sg.tsv_sg_in_flight()
        ids = _ffi.new("uint64_t[]", max(n, 1))
        return sorted(ids[k] for k in range(self._sg.tsv_sg_cancel_all(ids, n)))
