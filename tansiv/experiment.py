"""One experiment of a sweep (tansiv/sweep.py), in its own folder:

    spec.json        the experiment's parameters
    platform.xml, deployment.xml   what it ran (generated)
    ...              the run's folder (tansiv run: run.json, packets, participant logs)
    metrics.csv      tidy rows: id, metric, value, unit, src, dst, seq, label
    status.json      ok | failed, why, key figure, wall time, detail

A run that fails is recorded as failed (its logs stay); only a fault of this code itself
raises. The folder is emptied first: it belongs to this experiment alone."""

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import metrics, paths, topology
from .errors import TansivError

BOOT_S = 6            # virtual seconds for a guest to be ready, with margin (measured: 4.2)
METRIC_FIELDS = ["id", "metric", "value", "unit", "src", "dst", "seq", "label"]


def _address(k: int) -> str:
    return f"10.0.{k // 250}.{k % 250 + 1}"


def _actor(host, address, program, args):
    argv = "".join(f'<argument value="{a}"/>' for a in (address, program, *args))
    return f'  <actor host="{host}" function="vsg_vm">{argv}</actor>\n'


def _deployment(actors) -> str:
    return ("<?xml version='1.0'?>\n<!DOCTYPE platform SYSTEM "
            "\"https://simgrid.org/simgrid.dtd\">\n<platform version=\"4.1\">\n"
            + "".join(actors) + "</platform>\n")


class Plan:
    """What to run: the deployment's actors and the options of tansiv run."""

    def __init__(self, exp: dict):
        self.exp = exp
        self.hosts = topology.hosts(exp["n"])
        self.addr = {h: _address(k) for k, h in enumerate(self.hosts)}
        self.actors = {}   # host -> actor XML
        self.run_args = []
        self.main = []     # addresses whose end ends the run
        self.wait_s = 0.0  # simulated seconds the workload needs after boot

    def vm(self, host, cmd):
        self.actors[host] = _actor(host, self.addr[host], "tansiv-vm", ["--cmd", cmd])

    def process(self, host, program, args):
        self.actors[host] = _actor(host, self.addr[host], program,
                                   ["-n", self.addr[host], "--", *args])

    def idle(self, host, seconds=100000.0):
        """A participant that only lets time pass (ended by the run's end if need be)."""
        if self.exp["mode"] == "process":
            self.process(host, str(paths.libexecdir() / "tests" / "idle"),
                         [str(int(seconds * 1e6))])
        else:
            self.vm(host, f"sleep {seconds:g}")

    def deployment(self) -> str:
        return _deployment(self.actors[h] for h in self.hosts)


def plan(exp: dict) -> Plan:
    p = Plan(exp)
    w, mode, prm = exp["workload"], exp["mode"], exp["params"]
    pairs = topology.pairs(exp["topology"], exp["n"]) if exp["n"] >= 2 else []
    rtt = 2 * exp["latency_s"]
    if w == "ping":
        count, interval = prm.get("count", 10), prm.get("interval_ms", 20)
        size = prm.get("size", 56)
        if mode == "process":
            for c, s in pairs:
                p.process(c, "pingpong", ["client", p.addr[s], str(count), str(size)])
                p.process(s, "pingpong", ["server", p.addr[c], str(count)])
                p.main.append(p.addr[c])
        elif prm.get("mesh"):
            for h in p.hosts:
                peers = " ".join(p.addr[o] for o in p.hosts if o != h)
                p.vm(h, f"tping -c {count} -i {interval} -s {size} -w 1 {peers}")
                p.main.append(p.addr[h])
            p.wait_s = len(p.hosts) * (count + 1) * max(rtt, interval / 1e3)
        else:
            for c, s in pairs:
                p.vm(c, f"tping -c {count} -i {interval} -s {size} -w 1 {p.addr[s]}")
                p.idle(s)
                p.main.append(p.addr[c])
            p.wait_s = (count + 1) * max(rtt, interval / 1e3)
    elif w == "probe":
        p.vm(p.hosts[0], f"tprobe --loop-ms {prm.get('loop_ms', 300)} --windows "
                         f"{prm.get('windows', 10)} --sleeps {prm.get('sleeps', 5)}")
        p.main.append(p.addr[p.hosts[0]])
        p.wait_s = 3.0
    elif w == "iperf3":
        seconds = prm.get("seconds", 3)
        for c, s in pairs:
            p.vm(c, f"sleep 1; iperf3 -c {p.addr[s]} -t {seconds} -f m")
            p.vm(s, "iperf3 -s -1")
            p.main.append(p.addr[c])
        p.wait_s = seconds + 5
    elif w == "idle":
        seconds = prm.get("seconds", 10)
        for h in p.hosts:
            p.idle(h, seconds)
        p.wait_s = seconds
    elif w == "gettimeofday":
        for h in p.hosts:
            p.process(h, "gtod", [str(prm.get("calls", 2_000_000))])
        p.run_args += ["--force", f"{exp['lookahead_s']:.9f}"]
    for h in p.hosts:  # hosts the workload leaves alone
        if h not in p.actors:
            p.idle(h)
    return p


# ---- running ---------------------------------------------------------------------------------

def _tansiv(args, log, timeout_s, log_path):
    """tansiv's command; after timeout_s of wall time it gets SIGTERM (which ends the run
    cleanly, its folder complete), then SIGKILL 30 s later. Raises on failure."""
    proc = subprocess.Popen([str(paths.python()), "-m", "tansiv.cli", *map(str, args)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise TansivError(f"timed out after {timeout_s:g} s of wall time (timeout_s)")
    if proc.returncode != 0:
        raise TansivError(f"tansiv {args[0]} exited with {proc.returncode}: see {log_path}")


def run(exp: dict, out: Path) -> dict:
    """Runs the experiment into out (emptied first); returns its status record."""
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
        rows, status = _run(exp, out, status)
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


def _run(exp, out, status):
    mode = exp["mode"]
    plat = out / "platform.xml"
    plat.write_text(topology.platform(exp["topology"], exp["n"], exp["latency_s"],
                                      exp["bandwidth_Bps"]))
    p = plan(exp)
    dep = out / "deployment.xml"
    dep.write_text(p.deployment())
    log_path = out / "experiment.log"
    run_dir = out / "run"
    with open(log_path, "w") as log:
        try:
            if mode in ("tansiv", "process"):
                until = BOOT_S + p.wait_s + 30 if mode == "tansiv" else p.wait_s + 60
                args = ["run", plat, dep, "--out", run_dir, "--quiet", "--end-grace", "3",
                        "--until", f"{until:.3f}", *p.run_args]
                for m in p.main:
                    args += ["--main", m]
                _tansiv(args, log, exp["timeout_s"], log_path)
            elif mode == "netem":
                args = ["netem", plat, dep, "--out", run_dir, "--timeout", exp["timeout_s"],
                        "--where", exp.get("netem_where", "auto")]
                for m in p.main:
                    args += ["--main", m]
                _tansiv(args, log, exp["timeout_s"] + 60, log_path)
                if metrics.load_run(run_dir).get("netem", {}).get("where") == "router":
                    status["detail"] = "bridge in a router VM"
            elif mode == "none":
                _run_alone(exp, p, out, log)
            else:
                raise TansivError(f"unknown mode {mode}")
        except TansivError as e:
            status["why"] = str(e)
            return _metrics(exp, run_dir, safe=True), status
    rows = _metrics(exp, run_dir)
    status.update(status="ok", why="", key_figure=_key_figure(exp, rows))
    return rows, status


def _run_alone(exp, p, out: Path, log) -> None:
    """The uncoupled reference: the first VM's guest, alone, same command line."""
    from .rundir import RunDir
    run_dir = out / "run"
    rd = RunDir(run_dir)
    host = p.hosts[0]
    addr = p.addr[host]
    cmd_arg = [a for a in p.actors[host].split('"') if a.startswith(("tprobe", "tping"))]
    console = rd.participant_log(addr)
    t0 = time.monotonic()
    with open(console, "w") as f:
        r = subprocess.run([str(paths.prefix() / "bin" / "tansiv-vm"), "--mode", "none",
                            "--address", addr, "--peers", ",".join(p.addr.values()),
                            "--cmd", cmd_arg[0] if cmd_arg else "true"],
                           stdout=f, stderr=subprocess.STDOUT, timeout=exp["timeout_s"])
    rd.finish({"status": "ok" if r.returncode == 0 else "participant-failure", "mode": "none",
               "total_wall_s": time.monotonic() - t0, "inputs": {},
               "participants": [{"name": addr, "host": host, "role": "vm",
                                 "exit": r.returncode, "log": str(console)}]})
    if r.returncode != 0:
        raise TansivError(f"the uncoupled guest exited with {r.returncode}: see {console}")


# ---- metrics ---------------------------------------------------------------------------------

def _metrics(exp, run_dir: Path, safe=False):
    try:
        return _extract(exp, run_dir)
    except (TansivError, OSError, KeyError, ValueError):
        if safe:
            return []
        raise


def _extract(exp, run_dir: Path):
    run = metrics.load_run(run_dir)
    rows = []
    w = exp["workload"]
    if "simulated_s" in run and run.get("wall_s"):
        rows += [{"metric": "simulated_s", "value": run["simulated_s"], "unit": "s"},
                 {"metric": "wall_s", "value": run["wall_s"], "unit": "s"},
                 {"metric": "sim_per_wall", "value": run["simulated_s"] / run["wall_s"],
                  "unit": "s/s"},
                 {"metric": "rounds", "value": run["rounds"], "unit": ""}]
        for part in run["participants"]:
            if part.get("held_s") is not None:
                rows.append({"metric": "held_s", "value": part["held_s"], "unit": "s",
                             "src": part["name"]})
    if w == "ping":
        matrix = metrics.rtt_matrix(run_dir)
        models = {k: v[1] for k, v in matrix.items()}
        for r in metrics.rtt_rows(run_dir):
            if r["warmup"]:
                continue
            model = models[(r["src"], r["dst"])]
            rows.append({"metric": "rtt_ns", "value": r["rtt_ns"], "unit": "ns",
                         "src": r["src"], "dst": r["dst"], "seq": r["seq"]})
            rows.append({"metric": "rtt_excess_ns", "value": r["rtt_ns"] - model, "unit": "ns",
                         "src": r["src"], "dst": r["dst"], "seq": r["seq"]})
        for (s, d), model in models.items():
            rows.append({"metric": "model_rtt_ns", "value": model, "unit": "ns", "src": s,
                         "dst": d})
    elif w == "probe":
        p = run["participants"][0]
        found = [r for r in metrics.json_lines(p["log"]) if r["event"] == "probe"]
        if not found:
            raise TansivError(f"no probe result in {p['log']}")
        pr = found[0]
        for clock in ("monotonic", "realtime", "tsc"):
            rows.append({"metric": "max_gap_ns", "value": pr[clock]["max_gap_ns"], "unit": "ns",
                         "label": clock})
            rows.append({"metric": "gaps_over_1ms", "value": pr[clock]["gaps_over_1ms"],
                         "unit": "", "label": clock})
        rows.append({"metric": "tsc_rate_spread", "value": pr["tsc"]["rate_spread"], "unit": ""})
        for req, s in pr["sleep"].items():
            rows.append({"metric": "sleep_max_overshoot_ns", "value": s["max_overshoot_ns"],
                         "unit": "ns", "label": req})
    elif w == "iperf3":
        clients = {_address(int(c[1:]) - 1)
                   for c, _ in topology.pairs(exp["topology"], exp["n"])}
        for p in run["participants"]:
            if p["name"] not in clients:
                continue
            g = metrics.iperf3_goodput_bps(p["log"])
            if g is not None:
                rows.append({"metric": "goodput_bps", "value": g, "unit": "bit/s",
                             "src": p["name"]})
        if not any(r["metric"] == "goodput_bps" for r in rows):
            raise TansivError("no iperf3 receiver line in the participants' output")
    elif w == "gettimeofday":
        for p in run["participants"]:
            for rec in metrics.json_lines(p["log"]):
                if rec["event"] == "gtod":
                    rows += [{"metric": "ns_per_call", "value": rec["libc_ns_per_call"],
                              "unit": "ns", "src": p["name"], "label": "gettimeofday"},
                             {"metric": "ns_per_call", "value": rec["vsg_ns_per_call"],
                              "unit": "ns", "src": p["name"], "label": "vsg_gettimeofday"}]
    return rows


def _key_figure(exp, rows) -> str:
    def med(metric, label=None):
        vals = [r["value"] for r in rows if r["metric"] == metric
                and (label is None or r.get("label") == label)]
        return statistics.median(vals) if vals else None
    w = exp["workload"]
    if w == "ping" and med("rtt_excess_ns") is not None:
        return f"median RTT excess {med('rtt_excess_ns') / 1e3:.1f} us"
    if w == "probe" and med("max_gap_ns", "monotonic") is not None:
        return f"largest CLOCK_MONOTONIC gap {med('max_gap_ns', 'monotonic') / 1e3:.1f} us"
    if w == "iperf3" and med("goodput_bps") is not None:
        return f"goodput {med('goodput_bps') / 1e6:.2f} Mbit/s"
    if w == "gettimeofday" and med("ns_per_call", "vsg_gettimeofday") is not None:
        return f"vsg_gettimeofday {med('ns_per_call', 'vsg_gettimeofday'):.0f} ns/call"
    if med("sim_per_wall") is not None:
        return f"{med('sim_per_wall'):.3f} simulated s per wall s"
    return ""
