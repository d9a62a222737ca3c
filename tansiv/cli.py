"""Command line: `tansiv run PLATFORM DEPLOYMENT`, `tansiv check PLATFORM DEPLOYMENT`.

Exit status: 0 success, 1 error (bad input, internal), 2 usage, 3 a participant crashed or
failed (the run went on without it and its results are kept), 130 interrupted (SIGINT),
143 terminated (SIGTERM)."""

import argparse
import datetime
import os
import json
import logging
import platform as pyplatform
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import InputError, TansivError

log = logging.getLogger("tansiv")

EXIT_OK, EXIT_ERROR, EXIT_PARTICIPANT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 3, 130, 143

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def seconds(text: str) -> float:
    """'0.001', '1ms', '250us', '10ns' -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|ns)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration (examples: 0.001, 1ms, "
                                         "250us)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tansiv", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"tansiv {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("platform", type=Path, help="SimGrid platform file")
        p.add_argument("deployment", type=Path, help="TANSIV deployment file")
        p.add_argument("--force", type=seconds, metavar="SECONDS",
                       help="lookahead to use instead of the smallest route latency")
        p.add_argument("--cfg", action="append", default=[], metavar="OPTION:VALUE",
                       help="SimGrid configuration option (repeatable), e.g. "
                            "network/model:LV08")
        p.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])

    run = sub.add_parser("run", help="run an experiment")
    common(run)
    run.add_argument("--socket", metavar="PATH",
                     help="where participants connect: a Unix socket path (default: a fresh "
                          "temporary one) or tcp:HOST:PORT")
    run.add_argument("--out", type=Path, metavar="DIR",
                     help="the run's folder (default: ./tansiv-run-DATE-TIME)")
    run.add_argument("--until", type=seconds, metavar="SECONDS",
                     help="end the simulation at this simulated time")
    run.add_argument("--main", action="append", default=[], metavar="ADDRESS",
                     help="end the simulation when this participant ends (repeatable); "
                          "the others get END")
    run.add_argument("--overhead", type=int, metavar="BYTES",
                     help="bytes added to every packet's size in the simulation (default: 0 "
                          "for processes; for VMs, Ethernet framing: frames padded to 60 "
                          "bytes, plus 24 of FCS, preamble and inter-frame gap)")
    run.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long participants may take to connect (default 60)")
    run.add_argument("--end-grace", type=float, default=5.0, metavar="SECONDS",
                     help="how long programs may run on after the simulation ended before "
                          "they are terminated (default 5)")
    run.add_argument("--quiet", action="store_true",
                     help="do not echo the participants' output")
    run.add_argument("--report", choices=["rtt"],
                     help="at the end, print what the run measured (as tansiv report)")

    base = sub.add_parser("netem", help="the netem baseline: a deployment's VMs under plain "
                          "TCG on a bridge shaped by tc netem from the platform's routes")
    base.add_argument("platform", type=Path)
    base.add_argument("deployment", type=Path)
    base.add_argument("--out", type=Path, required=True, metavar="DIR")
    base.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                      help="wall time after which the VMs are stopped (default 600)")
    base.add_argument("--main", action="append", default=[], metavar="ADDRESS",
                      help="end the run when this VM ends (repeatable; default: when all "
                           "end); the others are stopped")
    base.add_argument("--where", choices=["auto", "namespace", "router"], default="auto",
                      help="where the bridge is: a network namespace of this host (needs root "
                           "and sch_netem), a router VM, or auto: the namespace if possible")
    base.add_argument("--cfg", action="append", default=[], metavar="OPTION:VALUE")
    base.add_argument("--log-level", default="info",
                      choices=["debug", "info", "warning", "error"])

    sub.add_parser("prepare", help="build QEMU with tantap and the guest images if needed "
                   "(cached); print where they are")

    report = sub.add_parser("report", help="what a run measured")
    report.add_argument("what", choices=["rtt"], help="rtt: the RTT matrix, measured "
                        "against the model")
    report.add_argument("run_dir", type=Path, metavar="RUN")
    report.add_argument("--json", action="store_true", help="print JSON")

    check = sub.add_parser("check", help="check inputs; print routes and the lookahead")
    common(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    return ap


def _setup_logging(level: str) -> None:
    root = logging.getLogger("tansiv")
    root.setLevel(logging.DEBUG)
    h = logging.StreamHandler(sys.stderr)
    h.setLevel(getattr(logging, level.upper()))
    h.setFormatter(logging.Formatter("tansiv: %(levelname)s: %(message)s"))
    root.addHandler(h)


def _load(args):
    """Platform and deployment, checked against each other."""
    from . import deployment as dep
    from .platform import Network
    d = dep.parse(args.deployment)
    net = Network(args.platform, cfg=args.cfg, quiet=args.log_level != "debug")
    dep.check_hosts(d, net.hosts)
    return net, d


def cmd_check(args) -> int:
    net, d = _load(args)
    rows = []
    for a in d.actors:
        for b in d.actors:
            if a is b:
                continue
            lat, bw, links = net.route(a.host, b.host)
            rows.append({"src": a.address, "dst": b.address, "latency_s": lat,
                         "bandwidth_Bps": bw, "links": links})
    lookahead, pair = net.lookahead([a.host for a in d.actors])
    result = {"participants": [{"address": a.address, "host": a.host, "program": a.program}
                               for a in d.actors],
              "routes": rows, "lookahead_ns": lookahead}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return EXIT_OK
    for a in d.actors:
        print(f"{a.address:15} on {a.host}: {a.program} {' '.join(a.args)}")
    for r in rows:
        print(f"{r['src']:15} -> {r['dst']:15} latency {r['latency_s'] * 1e6:10.3f} us  "
              f"bandwidth {r['bandwidth_Bps'] / 1e6:10.3f} MB/s  ({len(r['links'])} links)")
    if lookahead is None:
        print("lookahead: undefined (one participant)")
    else:
        print(f"lookahead: {lookahead} ns ({pair[0]} -> {pair[1]})")
        if lookahead == 0 and args.force is None:
            raise InputError(f"zero lookahead: the route {pair[0]} -> {pair[1]} has no latency",
                             args.platform)
    return EXIT_OK


def cmd_report(args) -> int:
    from . import metrics
    matrix = metrics.rtt_matrix(args.run_dir)
    if not matrix:
        raise TansivError(f"{args.run_dir}: no round-trip times in the participants' output")
    if args.json:
        json.dump([{"src": s, "dst": d, "median_rtt_ns": m, "model_rtt_ns": e, "samples": n}
                   for (s, d), (m, e, n) in matrix.items()], sys.stdout, indent=2)
        print()
    else:
        print(metrics.format_rtt_matrix(matrix))
    return EXIT_OK


def cmd_netem(args) -> int:
    from . import netem, vm
    from .participants import resolve_program
    from .platform import Network
    from .rundir import RunDir
    net, d = _load(args)
    for a in d.actors:
        if resolve_program(a, d.path).name != "tansiv-vm":
            raise InputError(f"the netem baseline runs VMs only: {a.program} is not tansiv-vm",
                             d.path, a.line)
    addresses = [a.address for a in d.actors]
    for m in args.main:
        if m not in addresses:
            raise InputError(f"--main {m}: no VM of the deployment has this address", d.path)
    main = args.main or addresses
    os.environ.update(vm.prepare(router=args.where != "namespace"))
    started = datetime.datetime.now(datetime.timezone.utc)
    rundir = RunDir(args.out)
    rundir.copy_inputs(args.platform, args.deployment)
    rundir.write_routes(net, d.actors)
    t0 = time.monotonic()
    codes, where, why, error = {}, None, "", None
    try:
        codes, where, why = netem.run(d, net, rundir, main, timeout_s=args.timeout,
                                      where=args.where)
        if where == "router":
            print(f"tansiv netem: the bridge is in a router VM ({why})", file=sys.stderr)
        status = "ok" if all(codes[m] == 0 for m in main) else "participant-failure"
    except TansivError as e:  # recorded in run.json, next to the logs
        status, error = "error", str(e)
        print(f"tansiv netem: error: {e}", file=sys.stderr)
    rundir.finish({
        "status": status, "mode": "netem", "error": error, "command": sys.argv,
        "started": started.isoformat(), "total_wall_s": time.monotonic() - t0,
        "versions": {"tansiv": __version__, "simgrid": Network.simgrid_version()},
        "inputs": {"platform": str(args.platform), "deployment": str(args.deployment)},
        "options": {"cfg": net.cfg, "timeout_s": args.timeout, "main": main},
        "netem": {"where": where, "why": why},
        "participants": [{"name": a.address, "host": a.host, "role": "vm",
                          "main": a.address in main, "exit": codes.get(a.address),
                          "log": str(rundir.participant_log(a.address))} for a in d.actors]})
    print(f"tansiv netem: {status}; results in {rundir.path}", file=sys.stderr)
    return {"ok": EXIT_OK, "error": EXIT_ERROR}.get(status, EXIT_PARTICIPANT)


def cmd_prepare(args) -> int:
    from . import vm
    for k, v in vm.prepare(router=True).items():
        print(f"{k}={v}")
    return EXIT_OK


def cmd_run(args) -> int:
    from .coordinator import Coordinator, Options, RunError
    from .hub import Hub
    from .participants import Participant, resolve_program
    from .platform import Network
    from .rundir import RunDir

    started = datetime.datetime.now(datetime.timezone.utc)
    net, d = _load(args)
    programs = [resolve_program(a, d.path) for a in d.actors]
    unknown = set(args.main) - {a.address for a in d.actors}
    if unknown:
        raise InputError(f"--main {', '.join(sorted(unknown))}: no such participant",
                         args.deployment)
    has_vms = any(p.name == "tansiv-vm" for p in programs)
    out = args.out or Path(f"tansiv-run-{started.astimezone():%Y%m%d-%H%M%S}")
    rundir = RunDir(out)
    rundir.attach_log()
    rundir.copy_inputs(args.platform, args.deployment)
    rundir.write_routes(net, d.actors)
    tmpdir = None
    socket = args.socket
    if socket is None:
        tmpdir = tempfile.mkdtemp(prefix="tansiv-")
        socket = f"{tmpdir}/hub.sock"

    participants = [Participant(a, prog, rundir.participant_log(a.address))
                    for a, prog in zip(d.actors, programs)]
    opts = Options(force_lookahead_ns=round(args.force * 1e9) if args.force is not None else None,
                   until_ns=round(args.until * 1e9) if args.until is not None else None,
                   overhead=args.overhead, connect_timeout_s=args.connect_timeout,
                   end_grace_s=args.end_grace, main=tuple(args.main),
                   echo=not args.quiet)
    status, error = "error", None
    hub = coord = None
    summary = {}
    t0 = time.monotonic()
    try:
        if has_vms:
            from . import vm
            log.info("VMs in the deployment: QEMU and the guest image (built once, then "
                     "cached)")
            os.environ.update(vm.prepare())
        hub = Hub(socket)
        coord = Coordinator(net, participants, hub, rundir, opts)
        coord.start()
        coord.run()
        status = "ok"
    except KeyboardInterrupt as e:
        status = "terminated" if isinstance(e, Terminated) else "interrupted"
        error = status
        log.error("%s: ending the simulation", status)
    except TansivError as e:
        error = str(e)
    finally:
        if coord:
            coord.finish()
            summary = coord.summary()
        for p in participants:
            p.terminate(grace_s=2.0)
        if hub:
            hub.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if status == "ok" and any(p.state in ("crashed", "failed") for p in participants):
            status = "participant-failure"
        rundir.finish({
            "status": status, "error": error,
            "command": sys.argv, "started": started.isoformat(),
            "total_wall_s": time.monotonic() - t0,
            "versions": {"tansiv": __version__, "simgrid": Network.simgrid_version(),
                         "python": pyplatform.python_version()},
            "inputs": {"platform": str(args.platform), "deployment": str(args.deployment)},
            "options": {"force_s": args.force, "until_s": args.until, "cfg": net.cfg,
                        "overhead": args.overhead, "socket": socket},
            **summary,
        })
    if status == "error":
        raise RunError(f"{error} (logs in {rundir.path})")

    s = summary
    print(f"tansiv: {status}: {len(participants)} participants, simulated {s['simulated_s']:.6f} s "
          f"in {s['wall_s']:.2f} s of wall time, {s['rounds']} rounds, "
          f"{s['packets_delivered']} packets delivered; results in {rundir.path}",
          file=sys.stderr)
    for p in participants:
        if p.state in ("crashed", "failed"):
            print(f"tansiv: participant {p.name} {p.state}: {p.detail} (see {p.log_path})",
                  file=sys.stderr)
    if args.report:
        args.what, args.run_dir, args.json = args.report, rundir.path, False
        cmd_report(args)
    return {"ok": EXIT_OK, "participant-failure": EXIT_PARTICIPANT,
            "interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED}.get(status, EXIT_ERROR)


class Terminated(KeyboardInterrupt):
    """SIGTERM: ended like an interruption, so that the run's folder is completed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = _parser().parse_args(argv)
    _setup_logging(getattr(args, "log_level", "info"))
    if getattr(args, "force", None) is not None and args.force <= 0:
        print("tansiv: error: --force must be > 0", file=sys.stderr)
        return 2
    try:
        return {"run": cmd_run, "check": cmd_check, "prepare": cmd_prepare,
                "report": cmd_report, "netem": cmd_netem}[args.command](args)
    except TansivError as e:
        print(f"tansiv: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
