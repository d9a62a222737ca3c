"""One experiment of a sweep (tansiv/experiments/sweep.py), in its own folder:

    spec.json        the experiment's parameters
    platform.xml, deployment.xml   what it ran (generated)
    experiment.log   what the tansiv command said
    run/             the run's folder (tansiv/run/rundir.py: run.json, packets, consoles)
    metrics.csv      tidy rows: id, metric, value, unit, src, dst, seq, label
    status.json      ok | failed, why, key figure, wall time, detail

Its workload plans it (participants, which ones end it); its mode says which tansiv command
runs it (run, netem or alone). A run that fails is recorded as failed (its logs stay); only a
fault of this code itself raises. The folder is emptied first: it belongs to this experiment
alone."""

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .. import paths, procs, units
from ..errors import TansivError
from ..run import deployment, progress
from ..run.record import RunRecord
from . import topology
from . import metrics, workloads
from .modes import MODES
from .plan import Plan
from .tables import METRIC_FIELDS
from .workloads.base import median

KILL_AFTER_S = 30     # after SIGTERM, before SIGKILL
LAST_LINES = 10       # of a failed guest's console, in status.json


def plan(exp: dict, images=None) -> Plan:
    """The experiment's plan; images: {image name: built folder} of its workload's image."""
    p = Plan(exp, images)
    workloads.of(exp).plan(p, exp["params"])
    return p


def command(exp: dict, p: Plan, platform: Path, dep: Path, run_dir: Path) -> list:
    """The tansiv command of the experiment's mode."""
    mode = MODES[exp["mode"]]
    args = [mode.command, platform, dep, "--out", run_dir]
    if mode.command == "run":
        boot_s = workloads.of(exp).boot_s if mode.vms else 0
        until_ns = units.to_ns(boot_s + p.wait_s + (30 if mode.vms else 60))
        args += ["--quiet", "--end-grace", "3", "--until", f"{until_ns}ns", *p.run_args]
        if exp["participants"] == 1 and "--force" not in p.run_args:
            # No route, no lookahead: rounds of the route latency the sweep gives.
            args += ["--force", f"{exp['latency_ns']}ns"]
        if exp.get("pcap"):
            args.append("--pcap")
        if exp.get("transport"):
            args += ["--transport", exp["transport"]]
        if exp.get("nodes", 1) > 1:
            # Across the nodes of the job's allocation (the SLURM profile asks for them).
            args += ["--launcher", "slurm"]
        for flag in ("network", "idle_horizons", "queue", "seed"):
            if exp.get(flag) is not None:
                args += [f"--{flag.replace('_', '-')}", exp[flag]]
    else:
        args += ["--timeout", exp["timeout_s"]]
    if exp.get("cold_boot") and mode.name in ("tansiv", "none"):
        args.append("--cold-boot")
    if mode.name == "netem":
        args += ["--where", exp["netem_where"]]
    if exp.get("queue_size") is not None:
        args += ["--queue-size", exp["queue_size"]]
    if exp.get("loss") is not None:
        args += ["--loss", exp["loss"]]
    for m in p.main:
        args += ["--main", m]
    return args


def _tansiv(args, log, timeout_s: float, log_path: Path, env) -> int:
    """tansiv's command; after timeout_s of wall time it gets SIGTERM (which ends the run
    cleanly, its folder complete), then SIGKILL KILL_AFTER_S later. Returns its exit status."""
    # It dies with the experiment's job (SIGTERM: it ends the run cleanly), so that a job
    # killed by its executor leaves no run behind.
    proc = subprocess.Popen([str(paths.python()), "-m", "tansiv.cli", *map(str, args)],
                            stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=procs.die_with_parent)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        procs.stop(proc, KILL_AFTER_S)
        raise TansivError(f"timed out after {timeout_s:g} s of wall time (timeout_s)")
    return proc.returncode


def _record(run_dir: Path):
    """The run's record, or None if the run left none that can be read."""
    try:
        return RunRecord.load(run_dir)
    except (TansivError, OSError, KeyError, TypeError, ValueError):
        return None


def _said(r: RunRecord) -> str:
    """ (why), from the run's record: its error, or the first participant that broke."""
    why = r and (r.error or next((f"{p.name} {p.state}: {p.detail}" for p in r.participants
                                  if p.broke), ""))
    return f" ({why})" if why else ""


def run(exp: dict, out: Path, vm_build=None, images=None) -> dict:
    """Runs the experiment into out (emptied first); returns its status record. vm_build:
    the VMBuild the pipeline's build rules made (else tansiv finds or builds its own);
    images: {name: folder} of the images of the configuration it needs."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(exp, indent=2) + "\n")
    t0 = time.monotonic()
    status = {"id": exp["id"], "mode": exp["mode"], "workload": exp["workload"],
              "status": "failed", "why": "", "key_figure": "",
              "detail": "",  # how it ran, when a figure should say (netem's router VM)
              # where it ran: the Apptainer image, if in one
              "container": os.environ.get("APPTAINER_CONTAINER", "")}
    rows = []
    try:
        rows = _run(exp, out, status, vm_build, images)
    except TansivError as e:
        status.update(status="failed", why=str(e))
    status["wall_s"] = round(time.monotonic() - t0, 3)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in METRIC_FIELDS} | {"id": exp["id"]})
    (out / "status.json").write_text(json.dumps(status, indent=2) + "\n")
    return status


def _run(exp, out: Path, status: dict, vm_build, images) -> list:
    plat = topology.write(out / "platform.xml", exp["topology"], exp["participants"],
                          exp["latency_ns"], exp["bandwidth_Bps"], left=exp["left"])
    p = plan(exp, images)
    dep = deployment.write(out / "deployment.xml", p.deployment())
    (out / "plan.json").write_text(json.dumps({
        "main": p.main, "wait_s": p.wait_s,
        "participants": [{"address": p.addr[h], "host": h,
                          **dict(zip(("role", "index"), p.roles.get(p.addr[h], ())))}
                         for h in p.hosts]}, indent=2) + "\n")
    log_path, run_dir = out / "experiment.log", out / "run"
    env = dict(os.environ, **(vm_build.env() if vm_build else {}))
    timeout = exp["timeout_s"] + (60 if MODES[exp["mode"]].command != "run" else 0)
    with open(log_path, "w") as log:
        try:
            code = _tansiv(command(exp, p, plat, dep, run_dir), log, timeout, log_path, env)
        except TansivError as e:
            status["why"] = str(e)
            return _metrics(exp, p, _record(run_dir), run_dir, safe=True)
    run = _record(run_dir)  # read once: everything below takes it
    if code != 0:
        status["why"] = f"tansiv {MODES[exp['mode']].command} exited with {code}{_said(run)}: " \
                        f"see {log_path}"
        return _metrics(exp, p, run, run_dir, safe=True)
    if run is None:
        raise TansivError(f"{run_dir} holds no readable run record after a successful run")
    failed = _guest_failures(run, p)
    if failed:
        status["why"] = "; ".join(why for why, _ in failed.values())
        status["last_lines"] = {addr: lines for addr, (_, lines) in failed.items()}
        return _metrics(exp, p, run, run_dir, safe=True)
    rows = _metrics(exp, p, run, run_dir)
    if run.netem and run.netem["where"] == "router":
        status["detail"] = "bridge in a router VM"
    status.update(status="ok", why="", key_figure=_key_figure(exp, rows))
    return rows


def _guest_failures(run: RunRecord, p: Plan) -> dict:
    """{address: (why, the console's last lines)} of the guests whose command exited
    non-zero or whose /init failed."""
    failed = {}
    for part, e in metrics.events(run, "done") + metrics.events(run, "error"):
        if e["event"] == "done" and e["status"] == 0:
            continue
        role = " ".join(map(str, p.roles.get(part.name, ())))
        who = f"{part.name} ({role})" if role else part.name
        why = (f"{who}: its command exited with status {e['status']}" if e["event"] == "done"
               else f"{who}: {e['message']}")
        lines = Path(part.log).read_text(errors="replace").splitlines()[-LAST_LINES:]
        failed[part.name] = (why, lines)
    return failed


# ---- metrics ---------------------------------------------------------------------------------

def _metrics(exp, p: Plan, run: RunRecord, run_dir: Path, safe=False) -> list:
    """Every row the run measured; safe (a failed run): whatever can be had, else none."""
    try:
        if run is None:
            raise TansivError(f"{run_dir}: no run record")
        return _run_metrics(run) + workloads.of(exp).extract(p, run, run_dir)
    except (TansivError, OSError, KeyError, ValueError):
        if safe:
            return []
        raise


def _run_metrics(run: RunRecord) -> list:
    """What every coupled run measures of itself: speed, rounds, time held."""
    if not (run.simulated_ns is not None and run.sync_wall_s):
        return []
    simulated_s = units.to_seconds(run.simulated_ns - (run.start_ns or 0))
    rows = [{"metric": "simulated_s", "value": simulated_s, "unit": "s"},
            {"metric": "sync_wall_s", "value": run.sync_wall_s, "unit": "s"},
            {"metric": "sim_per_wall", "value": simulated_s / run.sync_wall_s, "unit": "s/s"},
            {"metric": "rounds", "value": run.rounds, "unit": ""}]
    mid = progress.mid_speed(run.progress, run.start_ns or 0, run.simulated_ns)
    if mid is not None:  # the middle half of the run's simulated time: start and end left out
        rows.append({"metric": "sim_per_wall_mid", "value": mid, "unit": "s/s"})
    if run.rounds:
        rows.append({"metric": "us_per_round", "value": run.sync_wall_s / run.rounds * 1e6,
                     "unit": "us"})
    return rows + [{"metric": "held_s", "value": p.held_s, "unit": "s", "src": p.name}
                   for p in run.participants if p.held_s is not None]


def _key_figure(exp, rows) -> str:
    figure = workloads.of(exp).key_figure(rows)
    if figure:
        return figure
    speed = median(rows, "sim_per_wall")
    return "" if speed is None else f"{speed:.3f} simulated s per wall s"
