"""Real programs and VMs over a network simulated by SimGrid.

Commands: run | netem | none | check | report | prepare | image. This module parses, hands the
work to the session (tansiv/run/session.py) and prints what came of it.

Exit status: 0 success, 1 error (bad input, internal), 2 usage, 3 a participant crashed or
failed (the run went on without it and its results are kept), 130 interrupted (SIGINT),
143 terminated (SIGTERM)."""

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from . import __version__, units
from .errors import InputError, TansivError
from .logs import RepeatLimit



def _argument(parse):
    """An argparse type from a units parser: its InputError becomes a usage error."""
    def typed(text: str):
        try:
            return parse(text)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e))
    return typed


wall_seconds = _argument(units.wall_seconds)  # wall-clock: '60', '500ms' -> s
step_ns = _argument(units.step_ns)            # simulated: '0.001', '250us' -> ns, >= 1


def byte_count(text: str) -> int:
    """argparse's type for a positive size: 131072, 128KiB, 1MiB."""
    n = _argument(units.size)(text)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': expected a size > 0")
    return n


def queue_size(text: str) -> str:
    """argparse's type for --queue-size: checked, kept as written ('100p', '64kB')."""
    _argument(units.queue_size)(text)
    return text


probability = _argument(units.probability)


def count(text: str) -> int:
    """argparse's type for a number of things (packets): a whole number > 0."""
    if not text.strip().isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number > 0")
    return int(text)


def ring_size(text: str) -> int:
    """argparse's type for --ring-size: a power of two of bytes from 128 KiB to 1 GiB."""
    n = byte_count(text)
    if not (128 << 10 <= n <= 1 << 30) or n & (n - 1):
        raise argparse.ArgumentTypeError(f"'{text}': expected a power of two from 128KiB to "
                                         "1GiB")
    return n


def _parser() -> argparse.ArgumentParser:
    from .run.choices import IDLE_HORIZONS, LAUNCHERS, NETWORKS, ON_STALL, QUEUES, TRANSPORTS
    from .run.coordinator import CONNECT_TIMEOUT_S, END_GRACE_S, RING_SIZE, STALL_S
    from .run.consoles import DEFAULT_LIMIT as DEFAULT_CONSOLE_LIMIT
    from .run.hub import LIMITS
    from .vm.netem import WHERE
    ap = argparse.ArgumentParser(prog="tansiv", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"tansiv {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def inputs(p):
        p.add_argument("platform", type=Path, help="SimGrid platform file")
        p.add_argument("deployment", type=Path, help="TANSIV deployment file")
        p.add_argument("--cfg", action="append", default=[], metavar="OPTION:VALUE",
                       help="SimGrid configuration option (repeatable), e.g. "
                            "network/model:LV08")
        p.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])

    def force(p):
        p.add_argument("--force", type=step_ns, dest="force_lookahead_ns", metavar="DURATION",
                       help="lookahead to use instead of the smallest route latency")

    def cold_boot(p):
        p.add_argument("--cold-boot", action="store_true",
                       help="VMs boot their image instead of starting from its booted "
                            "snapshot (taken once per image, then cached; README, Booted "
                            "snapshots)")

    def uncoupled(p, main_help):
        p.add_argument("--out", type=Path, required=True, metavar="DIR")
        p.add_argument("--timeout", type=wall_seconds, default=600.0, metavar="DURATION",
                       help="wall time after which the VMs are stopped (default 600)")
        p.add_argument("--main", action="append", default=[], metavar="ADDRESS",
                       help=main_help)

    run = sub.add_parser("run", help="run an experiment")
    inputs(run)
    force(run)
    run.add_argument("--socket", metavar="PATH",
                     help="where participants connect: a Unix socket path (default: a fresh "
                          "temporary one) or tcp:HOST:PORT (HOST empty: loopback; over TCP "
                          "participants must give the run's secret, TANSIV_SECRET)")
    run.add_argument("--out", type=Path, metavar="DIR",
                     help="the run's folder (default: ./tansiv-run-DATE-TIME)")
    run.add_argument("--network", choices=NETWORKS, default=NETWORKS[0],
                     help="the network model: SimGrid's flows (default), or ns-3's packets "
                          "(queues, drops, loss) on the same platform")
    run.add_argument("--queue", choices=QUEUES,
                     help="--network ns3: every link's queue (default droptail; a link's "
                          "<prop id=\"tansiv.queue\"> wins)")
    run.add_argument("--queue-size", type=queue_size, metavar="SIZE",
                     help="--network ns3: each direction's whole buffer, in packets (100p, "
                          "the default) or bytes (64kB); a link's tansiv.queue_size wins")
    run.add_argument("--loss", type=probability, metavar="P",
                     help="--network ns3: each frame is lost with probability P on each link "
                          "(default 0; a link's tansiv.loss wins)")
    run.add_argument("--seed", type=count, default=1, metavar="N",
                     help="the run's randomness (--network ns3: loss, RED, PIE): the same "
                          "seed drops the same frames (default 1)")
    run.add_argument("--until", type=step_ns, dest="until_ns", metavar="DURATION",
                     help="end the simulation at this simulated time")
    run.add_argument("--main", action="append", default=[], metavar="ADDRESS",
                     help="end the simulation when this participant ends (repeatable); "
                          "the others get END")
    run.add_argument("--overhead", type=int, metavar="BYTES",
                     help="bytes added to every packet's size in the simulation (default: 0 "
                          "for processes; for VMs, Ethernet framing: frames padded to 60 "
                          "bytes, plus 24 of FCS, preamble and inter-frame gap)")
    run.add_argument("--connect-timeout", type=wall_seconds, default=CONNECT_TIMEOUT_S,
                     dest="connect_timeout_s", metavar="DURATION",
                     help="how long participants may take to connect (default "
                          f"{CONNECT_TIMEOUT_S:g})")
    run.add_argument("--end-grace", type=wall_seconds, default=END_GRACE_S, dest="end_grace_s",
                     metavar="DURATION",
                     help="how long programs may run on after the simulation ended before "
                          f"they are terminated (default {END_GRACE_S:g})")
    run.add_argument("--pcap", action="store_true",
                     help="write what each participant sent and received, in simulated time, "
                          "as pcap files in the run's folder (pcap/ADDRESS.pcap)")
    run.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                     help="how local participants speak to the coordinator: shared-memory "
                          "channels (default) or their sockets (participants over TCP always "
                          "use theirs)")
    run.add_argument("--idle-horizons", choices=IDLE_HORIZONS, default=IDLE_HORIZONS[0],
                     help="participants idle until a known date (a halted VM's next timer, a "
                          "process in vsg_wait) sit out the rounds before it, and rounds "
                          "end at the earliest date anyone can act (default on; the same "
                          "run, bit for bit, off)")
    cold_boot(run)
    run.add_argument("--ring-size", type=ring_size, default=RING_SIZE, metavar="SIZE",
                     help=f"bytes of each ring of a channel (131072, 128KiB, 1MiB...), a power "
                          f"of two from 128 KiB to 1 GiB "
                          f"(default {RING_SIZE >> 20} MiB); a full ring makes its sender wait")
    # What one participant may make the coordinator hold: going over a bound removes it
    # (README, Hardening).
    run.add_argument("--round-bytes", type=byte_count, default=LIMITS["round_bytes"],
                     metavar="SIZE", help="payload bytes a participant may send in one round "
                     f"(default {LIMITS['round_bytes'] >> 20}MiB)")
    run.add_argument("--round-packets", type=count, default=LIMITS["round_packets"],
                     metavar="N", help="packets a participant may send in one round, empty "
                     f"ones too (default {LIMITS['round_packets']})")
    run.add_argument("--inflight-bytes", type=byte_count, default=LIMITS["inflight_bytes"],
                     metavar="SIZE", help="payload bytes of a participant's packets in flight "
                     f"(sent, not delivered yet; default {LIMITS['inflight_bytes'] >> 20}MiB)")
    run.add_argument("--inflight-packets", type=count, default=LIMITS["inflight_packets"],
                     metavar="N", help="a participant's packets in flight "
                     f"(default {LIMITS['inflight_packets']})")
    run.add_argument("--console-limit", type=byte_count, default=DEFAULT_CONSOLE_LIMIT,
                     metavar="SIZE", help="bytes of a participant's output kept: past it, its "
                     "first and last halves are (default "
                     f"{DEFAULT_CONSOLE_LIMIT >> 20}MiB)")
    run.add_argument("--stall-timeout", type=wall_seconds, default=STALL_S, dest="stall_s",
                     metavar="DURATION",
                     help="wall time a round may wait for a participant, plus ten times the "
                          f"lookahead, before it is said stalled (default {STALL_S:g})")
    run.add_argument("--on-stall", choices=ON_STALL, default=ON_STALL[0],
                     help="what a stalled participant does to the run: fail it (default), or "
                          "be removed while the others go on")
    run.add_argument("--launcher", choices=LAUNCHERS, default=LAUNCHERS[0],
                     help="where participants run: on this machine (default), or on the nodes "
                          "of the SLURM allocation the command runs in (salloc/sbatch -N K), "
                          "started with srun, one relay per node")
    run.add_argument("--placement", type=Path, metavar="FILE",
                     help="--launcher slurm: lines `ADDRESS NODE` pinning participants to "
                          "nodes (the others are packed by the nodes' cores)")
    run.add_argument("--quiet", action="store_true",
                     help="do not echo the participants' output")
    run.add_argument("--report", choices=["rtt"],
                     help="at the end, print what the run measured (as tansiv report)")

    base = sub.add_parser("netem", help="the netem baseline: a deployment's VMs under plain "
                          "TCG on a bridge shaped by tc netem from the platform's routes")
    inputs(base)
    uncoupled(base, "end the run when this VM ends (repeatable; default: when all "
                             "end); the others are stopped")
    base.add_argument("--where", choices=WHERE, default="auto",
                      help="where the bridge is: a network namespace of this host (needs root "
                           "and sch_netem), a router VM, or auto: the namespace if possible")
    base.add_argument("--loss", type=probability, metavar="P",
                      help="each link loses a frame with probability P (a route of h links: "
                           "1 - (1 - P)^h), as --network ns3 has it")
    base.add_argument("--queue-size", type=queue_size, metavar="SIZE",
                      help="each link direction's buffer (100p, 64kB), as --network ns3 has "
                           "it (netem's limit: that, and the frames on their way)")

    alone = sub.add_parser("none", help="mode none: a deployment's VMs each alone, uncoupled "
                           "(the reference for what guests observe under tansiv)")
    inputs(alone)
    uncoupled(alone, "run only this VM (repeatable; default: every VM)")
    cold_boot(alone)

    sub.add_parser("prepare", help="build QEMU with tantap and the guest images, and take the "
                   "default guest's booted snapshot, if needed (cached); print where they are")

    image = sub.add_parser("image", help="the guest images a configuration declares")
    image.add_argument("action", choices=["build"])
    image.add_argument("name", help="an image of the configuration's images:")
    image.add_argument("--config", type=Path, default=Path("config/config.yaml"),
                       help="the configuration (default config/config.yaml)")
    image.add_argument("--rebuild", action="store_true", help="build even if cached")

    report = sub.add_parser("report", help="what a run measured")
    report.add_argument("what", choices=["rtt"], help="rtt: the RTT matrix, measured "
                        "against the model")
    report.add_argument("run_dir", type=Path, metavar="RUN")
    report.add_argument("--json", action="store_true", help="print JSON")

    check = sub.add_parser("check", help="check inputs; print routes and the lookahead")
    inputs(check)
    force(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    return ap


def _setup_logging(level: str) -> None:
    root = logging.getLogger("tansiv")
    root.setLevel(logging.DEBUG)
    h = logging.StreamHandler(sys.stderr)
    h.setLevel(getattr(logging, level.upper()))
    h.setFormatter(logging.Formatter("tansiv: %(levelname)s: %(message)s"))
    h.addFilter(RepeatLimit())
    root.addHandler(h)


def _inputs(args):
    from .run.session import Inputs
    return Inputs.load(args.platform, args.deployment, cfg=args.cfg,
                       quiet=args.log_level != "debug")


def cmd_check(args) -> int:
    from dataclasses import asdict

    from .run import routes
    inputs = _inputs(args)
    actors = inputs.deployment.actors
    lookahead, route = routes.Lookahead(inputs.routes).among([a.address for a in actors])
    if args.json:
        json.dump({"participants": [{"address": a.address, "host": a.host, "program": a.program}
                                    for a in actors],
                   "routes": [asdict(r) for r in inputs.routes], "lookahead_ns": lookahead},
                  sys.stdout, indent=2)
        print()
        return 0
    for a in actors:
        print(f"{a.address:15} on {a.host}: {a.program} {' '.join(a.args)}")
    for r in inputs.routes:
        print(f"{r.src:15} -> {r.dst:15} latency {r.latency_ns / 1e3:10.3f} us  "
              f"bandwidth {r.bandwidth_Bps / 1e6:10.3f} MB/s  ({len(r.links)} links)")
    if lookahead is None:
        print("lookahead: undefined (one participant)")
    else:
        print(f"lookahead: {lookahead} ns ({route.src_host} -> {route.dst_host})")
        if lookahead == 0 and args.force_lookahead_ns is None:
            raise InputError(f"zero lookahead: the route {route.src_host} -> {route.dst_host} "
                             "has no latency", args.platform)
    return 0


def cmd_report(args) -> int:
    from .experiments import metrics
    matrix = metrics.rtt_matrix(args.run_dir)
    if not matrix:
        raise TansivError(f"{args.run_dir}: no round-trip times in the participants' output")
    if args.json:
        json.dump([{"src": s, "dst": d, "median_rtt_ns": m, "model_rtt_ns": e, "samples": n}
                   for (s, d), (m, e, n) in matrix.items()], sys.stdout, indent=2)
        print()
    else:
        print(metrics.format_rtt_matrix(matrix))
    return 0


def _summary(record, rundir) -> None:
    """The record's outcome on stderr: the error, or the participants that broke."""
    if record.status == "error":
        print(f"tansiv: error: {record.error} (logs in {rundir})", file=sys.stderr)
    for p in record.participants:
        if p.broke:
            print(f"tansiv: participant {p.name} {p.state}: {p.detail} (see {p.log})",
                  file=sys.stderr)


def cmd_run(args) -> int:
    from .run import session
    from .run.coordinator import Options
    inputs = _inputs(args)
    rundir = args.out or session.default_out()
    r = session.run(inputs, rundir, Options.from_args(args))
    if r.status != "error":
        print(f"tansiv: {r.status}: {len(r.participants)} participants, simulated "
              f"{units.to_seconds(r.simulated_ns):.6f} s in {r.sync_wall_s:.2f} s of wall "
              f"time, {r.rounds} rounds, "
              f"{r.packets_delivered} packets delivered"
              + (f", {r.packets_dropped} dropped" if r.packets_dropped else "")
              + f"; results in {rundir}", file=sys.stderr)
    _summary(r, rundir)
    if args.report and r.status != "error":
        args.what, args.run_dir, args.json = args.report, rundir, False
        cmd_report(args)
    return r.exit_status


def cmd_netem(args) -> int:
    from .run import session
    r = session.netem(_inputs(args), args.out, args.where, args.timeout, args.main,
                      args.loss, args.queue_size)
    _summary(r, args.out)
    print(f"tansiv netem: {r.status}; results in {args.out}", file=sys.stderr)
    return r.exit_status


def cmd_none(args) -> int:
    from .run import session
    r = session.none(_inputs(args), args.out, args.timeout, args.main, args.cold_boot)
    _summary(r, args.out)
    print(f"tansiv none: {r.status}; results in {args.out}", file=sys.stderr)
    return r.exit_status


def cmd_image(args) -> int:
    """Builds an image of the configuration (cached); prints its folder. tansiv-vm --image
    NAME boots the last one built under that name."""
    import yaml

    from .experiments import config
    from .vm import user_images
    try:
        raw = yaml.safe_load(args.config.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read the configuration: {e}", args.config)
    raw = config.resolve(raw)
    config.check(raw, str(args.config))
    declared = config.images(raw, str(args.config))
    if args.name not in declared:
        raise InputError(f"no image '{args.name}' in images: (known: "
                         f"{', '.join(declared) or 'none'})", args.config)
    image = user_images.build(declared[args.name], rebuild=args.rebuild,
                              say=lambda line: print(f"tansiv: {line}", file=sys.stderr))
    print(image.path)
    return 0


def cmd_prepare(args) -> int:
    from .vm import build, snapshot
    vms = build.prepare(router=True)
    for k, v in vms.env().items():
        print(f"{k}={v}")
    snap = snapshot.ensure(vms.qemu, vms.guest, vms.guest.memory_mb,
                           say=lambda m: print(m, file=sys.stderr))
    print(f"tansiv: the default guest's booted snapshot: {snap.path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    from .run.record import EXIT_STATUS
    from .run.session import Terminated, raise_terminated
    signal.signal(signal.SIGTERM, raise_terminated)
    args = _parser().parse_args(argv)
    _setup_logging(getattr(args, "log_level", "info"))
    try:
        return {"run": cmd_run, "check": cmd_check, "prepare": cmd_prepare,
                "report": cmd_report, "netem": cmd_netem, "none": cmd_none,
                "image": cmd_image}[args.command](args)
    except TansivError as e:
        print(f"tansiv: error: {e}", file=sys.stderr)
        return EXIT_STATUS["error"]
    except KeyboardInterrupt as e:  # outside a session too: the statuses a run's record has
        return EXIT_STATUS["terminated" if isinstance(e, Terminated) else "interrupted"]


if __name__ == "__main__":
    sys.exit(main())
