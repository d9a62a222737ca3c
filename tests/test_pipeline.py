"""The Snakemake pipeline: configuration checks, dry runs, a real tiny sweep, a failing
experiment, the SLURM profile on a single-node cluster, Apptainer where it runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, median, table
from tansiv.experiments import config as checked
from tansiv.experiments import sweep

SNAKEMAKE = [str(Path(sys.executable).parent / "snakemake")]
DATA = REPO / "tests" / "data"


def snakemake(*args, timeout=1800):
    return subprocess.run(SNAKEMAKE + [str(a) for a in args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


# ---- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("configfile", [None, "config/paper.yaml"])
def test_dry_run(tmp_path, configfile):
    args = ["-n", "--config", f"results={tmp_path}"]
    if configfile:
        args = ["-n", "--configfile", configfile, "--config", f"results={tmp_path}"]
    r = snakemake(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    config = yaml.safe_load((REPO / (configfile or "config/config.yaml")).read_text())
    expected = len(sweep.expand(checked.resolve(config)))
    jobs = [l.split() for l in r.stdout.splitlines() if l.startswith("experiment ")]
    assert jobs and int(jobs[0][1]) == expected, r.stdout[-2000:]
    assert not (tmp_path / "runs").exists()


def test_repetitions_per_mode():
    """A count per mode repeats each mode's points that many times; a mode it leaves out runs
    once."""
    config = checked.resolve(yaml.safe_load(
        "sweeps:\n  a: {modes: [tansiv, netem, process], workload: ping, latency: [1ms, 10ms],"
        " repetitions: {netem: 2, process: 3}}\n"))
    checked.check(config)
    reps = {}
    for e in sweep.expand(config).values():
        reps.setdefault((e["mode"], e["latency"]), []).append(e["rep"])
    assert reps == {(m, lat): list(range(k)) for m, k in (("tansiv", 1), ("netem", 2),
                                                          ("process", 3))
                    for lat in ("1ms", "10ms")}


def test_only_narrows_to_some_sweeps():
    """`only:` keeps the sweeps it names, and the rerun_check selectors of those."""
    config = checked.resolve(yaml.safe_load((REPO / "config/paper.yaml").read_text()))
    chosen = checked.narrowed({**config, "only": "matrix,speed"})
    assert list(chosen["sweeps"]) == ["matrix", "speed"]
    assert chosen["rerun_check"] == [{"sweep": "matrix", "mode": "tansiv"}]
    assert {e["sweep"] for e in sweep.expand(chosen).values()} == {"matrix", "speed"}
    assert checked.narrowed(config) is config


def write_config(tmp_path, text):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,message", [
    ("sweeps:\n  a: {modes: [process], workload: ping, latencyy: [1ms]}\n",
     "'latencyy' was unexpected"),
    ("sweeps:\n  a: {modes: [process], workload: ping, latency: [10 ms]}\n", "'10 ms'"),
    ("sweeps:\n  a: {modes: [vms], workload: ping}\n", "'vms' is not one of"),
    ("sweeps:\n  a: {modes: [process], workload: probe}\n",
     "sweeps.a.modes: mode 'process' cannot run workload 'probe'"),
    ("sweeps:\n  a: {modes: [tansiv], workload: ping, topology: dumbbell, n: [3]}\n",
     "sweeps.a.n: a dumbbell needs an even n, not 3"),
    ("sweeps:\n  a: {modes: [process], workload: gettimeofday}\n",
     "sweeps.a: the gettimeofday workload needs a lookahead list"),
    ("qemu_version: '9.2.0'\nsweeps:\n  a: {modes: [process], workload: ping}\n",
     "qemu_version: 9.2.0 is not the version csrc/qemu/qemu.env pins (10.0.13)"),
    ("sweeps: {}\n", "should be non-empty"),
    ("only: [b]\nsweeps:\n  a: {modes: [process], workload: ping}\n",
     "only: no sweep 'b' (known: a)"),
    ("sweeps:\n  a: {modes: [process], workload: ping, repetitions: {vm: 2}}\n",
     "sweeps.a.repetitions: 'vm' is not a mode"),
    ("sweeps:\n  a: {modes: [process], workload: ping, latency: [0.4ns]}\n",
     "sweeps.a.latency: '0.4ns' is 0 ns once rounded to nanoseconds"),
    ("sweeps:\n  a: {modes: [process], workload: gettimeofday, lookahead: [0.1ns]}\n",
     "sweeps.a.lookahead: '0.1ns' is 0 ns once rounded to nanoseconds"),
    ("sweeps:\n  a: {modes: [process], workload: ping, bandwidth: [0bps]}\n",
     "sweeps.a.bandwidth: '0bps': a link needs a bandwidth > 0"),
    ("sweeps:\n  a: {modes: [process], workload: ping, n: [1]}\n",
     "sweeps.a.n: the ping workload needs n >= 2"),
    ("sweeps:\n  a: {modes: [tansiv], workload: ping, nodes: [0]}\n",
     "0 is less than the minimum of 1"),
    ("workloads:\n  w:\n    image: nope\n    roles: {a: {command: 'true', main: true}}\n"
     "sweeps:\n  a: {modes: [tansiv], workload: w}\n", "workloads.w.image: no image 'nope'"),
])
def test_bad_config_fails_before_any_job(tmp_path, text, message):
    r = snakemake("--cores", "1", "--configfile", write_config(tmp_path, text), "--config",
                  f"results={tmp_path / 'results'}")
    assert r.returncode != 0
    assert message in r.stderr, r.stderr[-3000:]
    assert not (tmp_path / "results").exists()


# ---- real runs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny sweep, run once for the tests below."""
    results = tmp_path_factory.mktemp("tiny")
    r = snakemake("--cores", "2", "--configfile", DATA / "sweep-tiny.yaml", "--config",
                  f"results={results}")
    assert r.returncode == 0, r.stderr[-5000:]
    return results, r


def test_tiny_sweep_tables(tiny):
    results, _ = tiny
    exps = {e["id"]: e for e in table(results, "experiments")}
    assert len(exps) == 6 and all(e["status"] == "ok" for e in exps.values()), exps
    rtt = [r for r in table(results, "rtt") if r["metric"] == "rtt_excess_ns"]
    by_mode = {}
    for r in rtt:
        by_mode.setdefault(r["mode"], []).append(float(r["value"]))
    assert len(by_mode["tansiv"]) == 5 and len(by_mode["process"]) == 20
    # The bounds of the VM issue (guest processing, constant) and of process mode.
    assert all(0 < v < 200_000 for v in by_mode["tansiv"])
    # A process's own computation is simulated time: its RTTs exceed the model, by little.
    assert 0 < median(by_mode["process"]) <= 50_000, by_mode["process"]
    gtod = table(results, "gettimeofday")
    assert {r["label"] for r in gtod} == {"gettimeofday", "vsg_gettimeofday"}
    speed = [r for r in table(results, "speed") if r["metric"] == "sim_per_wall"]
    assert len(speed) == 6 and all(float(r["value"]) > 0 for r in speed)
    # A sweep's transports: one experiment each, run with that transport.
    per_round = [r for r in table(results, "speed") if r["metric"] == "us_per_round"]
    assert sorted((r["sweep"], r["transport"]) for r in per_round) == [
        ("gettimeofday", "shm"), ("latency", "shm"), ("latency", "shm"), ("ns3", "shm"),
        ("process_latency", "shm"), ("process_latency", "socket")]
    socket_run = [e for e in exps if "-socket-" in e]
    assert len(socket_run) == 1
    record = json.loads((results / "runs" / socket_run[0] / "run" / "run.json").read_text())
    assert {p["transport"] for p in record["participants"]} == {"socket"}
    # A sweep's network: ns-3's run is said so, and its model is store-and-forward's.
    (ns3,) = [e for e in exps.values() if e["network"] == "ns3"]
    assert "-ns3-" in ns3["id"]
    record = json.loads((results / "runs" / ns3["id"] / "run" / "run.json").read_text())
    assert record["options"]["network"] == "ns3" and record["packets_delivered"] > 0


def test_tiny_sweep_figures_and_report(tiny, tmp_path):
    results, r = tiny
    # The tiny sweep measures RTTs, speed and gettimeofday: those figures show its points;
    # it has no full-mesh ping, probe or iperf3: those say what is missing.
    measured = {"rtt_excess": 2 * 2, "speed": 5, "gettimeofday": 2}  # at least so many points
    for name in ("rtt_excess", "ping_matrix", "transparency", "goodput", "speed",
                 "gettimeofday", "bufferbloat", "loss_goodput", "detection"):
        for ext in ("png", "pdf"):
            f = results / "figures" / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f
        drawn = json.loads((results / "figures" / f"{name}.json").read_text())
        if name in measured:
            assert drawn["placeholders"] == 0 and drawn["points"] >= measured[name], (name, drawn)
        else:
            assert drawn["points"] == 0 and drawn["placeholders"] >= 1, (name, drawn)
    # One status line per experiment, with its key figure.
    lines = [l for l in r.stderr.splitlines() if l.startswith("experiment ")
             and ": ok, " in l]
    assert len(lines) == 6 and any("median RTT excess" in l for l in lines)
    report = tmp_path / "report.html"
    rr = snakemake("--configfile", DATA / "sweep-tiny.yaml", "--config", f"results={results}",
                   "--report", report)
    assert rr.returncode == 0, rr.stderr[-3000:]
    assert report.stat().st_size > 10_000
    # Its first page: the claims checked, with their verdicts.
    page = report.read_text()
    assert "claims checked against this sweep" in page and "exceeds the model by at most" in page


def claims_of(results) -> dict:
    return {c["claim"]: c for c in json.loads((results / "claims.json").read_text())["claims"]}


RTT_CLAIM = "Under tansiv, a VM's RTT exceeds the model by at most 50 µs"


def test_tiny_sweep_claims(tiny, tmp_path):
    """What the tiny sweep measures is checked (the VMs' RTT excess), what it does not is
    "not measured"; the same claims on a table broken on purpose fail."""
    results, _ = tiny
    got = claims_of(results)
    (rtt,) = [c for text, c in got.items() if text.startswith(RTT_CLAIM)]
    assert rtt["verdict"] == "PASS", rtt
    assert got[next(t for t in got if t.startswith("Under tansiv, TCP goodput"))][
        "verdict"] == "not measured"
    md = (results / "claims.md").read_text()
    assert md.startswith("# Claims: ") and "| **PASS** |" in md
    # One tansiv RTT 1 ms over the model: the claim fails, saying where.
    from tansiv.experiments import claims, figures, workloads
    tables = figures.read_tables(sorted((results / "tables").glob("*.csv")))
    rows = tables["rtt"]
    late = rows.index[(rows["mode"] == "tansiv") & (rows.metric == "rtt_excess_ns")][0]
    rows.loc[late, "value"] += 1_000_000
    broken = {r["claim"]: r for r in claims.evaluate(workloads.figures(), (), tables)}
    (rtt,) = [c for text, c in broken.items() if text.startswith(RTT_CLAIM)]
    assert rtt["verdict"] == "FAIL" and rtt["measured"].startswith("10"), rtt


def test_rerun_check_runs_again_and_compares(tiny):
    """`snakemake rerun_check` runs the chosen experiment a second time: the same guest output
    and packets, a claim that passes; a rerun whose packets differ makes it fail."""
    results, _ = tiny
    args = ["--cores", "2", "--configfile", DATA / "sweep-tiny.yaml", "--config",
            f"results={results}"]  # --config takes every word after it: the target first
    r = snakemake("rerun_check", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    (rerun,) = list((results / "rerun").iterdir())
    assert rerun.name.startswith("latency-tansiv-")
    claim = next(c for t, c in claims_of(results).items() if t.startswith("A rerun"))
    assert claim["verdict"] == "PASS" and claim["measured"] == "3 of 3 hold", claim
    with open(rerun / "run" / "packets.jsonl", "a") as f:
        f.write("{}\n")
    r = snakemake("rerun_check", "--forcerun", "rerun_compare", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    claim = next(c for t, c in claims_of(results).items() if t.startswith("A rerun"))
    assert claim["verdict"] == "FAIL" and "packets.jsonl" in claim["detail"], claim


def test_nothing_reruns_when_nothing_changed(tiny):
    results, _ = tiny
    r = snakemake("-n", "--configfile", DATA / "sweep-tiny.yaml", "--config",
                  f"results={results}")
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr


def test_failing_experiment_is_kept_and_marked(tmp_path):
    cfg = write_config(tmp_path, """sweeps:
  doomed:
    modes: [tansiv]
    workload: ping
    ping: {count: 100000, interval_ms: 10}   # 1000 s of pings: far beyond 3 s of wall
    timeout_s: 3
  doomed_alone:
    modes: [none]
    workload: probe
    probe: {loop_ms: 5000}
    timeout_s: 3
  fine:
    modes: [process]
    workload: ping
    ping: {count: 3, interval_ms: 10}
""")
    results = tmp_path / "results"
    r = snakemake("--cores", "2", "--configfile", cfg, "--config", f"results={results}")
    assert r.returncode == 0, r.stderr[-3000:]
    exps = {e["sweep"]: e for e in table(results, "experiments")}
    assert exps["doomed"]["status"] == "failed"
    assert "timed out after 3 s" in exps["doomed"]["why"]
    assert exps["fine"]["status"] == "ok"
    run = results / "runs" / exps["doomed"]["id"]
    assert (run / "experiment.log").exists() and (run / "run" / "run.json").exists()
    assert json.loads((run / "run" / "run.json").read_text())["status"] == "terminated"
    # Mode none stops its VMs at the timeout itself: recorded, with its status.json.
    alone = exps["doomed_alone"]
    assert alone["status"] == "failed" and "still running after the timeout (3 s)" in alone["why"]
    assert (results / "runs" / alone["id"] / "status.json").exists()
    assert (results / "figures" / "rtt_excess.png").exists()


# ---- SLURM and Apptainer -----------------------------------------------------------------------

def test_slurm_profile(tmp_path):
    import slurm_cluster
    why = slurm_cluster.why_not()
    if why:
        pytest.skip(f"SLURM: {why}")
    cluster = slurm_cluster.Cluster().start()
    try:
        results = tmp_path / "results"
        r = snakemake("--profile", "profiles/slurm", "--configfile", DATA / "sweep-process.yaml",
                      "--config", f"results={results}", timeout=900)
        assert r.returncode == 0, r.stderr[-5000:]
        log = r.stderr.split("Complete log(s):")[-1].split()[0]
        submitted = Path(log).read_text().count("has been submitted with SLURM jobid")
        assert submitted == 15  # core, 3 experiments, aggregate, 9 figures, claims
    finally:
        cluster.stop()
    exps = table(results, "experiments")
    assert len(exps) == 3 and all(e["status"] == "ok" for e in exps), exps


def test_apptainer_gives_the_native_results(tmp_path):
    """The tiny sweep natively, then with every job in the container (its build rules run
    natively first, as the README says): the VM experiment's round trips are the same, to the
    nanosecond."""
    check = subprocess.run([REPO / "images" / "container" / "install-apptainer.sh", "--check"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        why = (check.stderr.strip().splitlines() or ["not installed"])[-1]
        pytest.skip(f"Apptainer does not run here: {why}")
    native, contained = tmp_path / "native", tmp_path / "apptainer"
    r = snakemake("--cores", "2", "--configfile", DATA / "sweep-tiny.yaml", "--config",
                  f"results={native}")
    assert r.returncode == 0, r.stderr[-3000:]
    builds = [contained / "build" / f for f in ("core.stamp", "qemu.txt", "image.txt",
                                                 "router.txt", "tansiv.sif")]
    r = snakemake("--cores", "2", "--configfile", DATA / "sweep-tiny.yaml", "--config",
                  f"results={contained}", "--", *builds, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = snakemake("--cores", "2", "--sdm", "apptainer", "--configfile",
                  DATA / "sweep-tiny.yaml", "--config", f"results={contained}", timeout=3600)
    assert r.returncode == 0, r.stderr[-5000:]
    exps = table(contained, "experiments")
    assert len(exps) == 6 and all(e["status"] == "ok" for e in exps), exps
    assert all(e["container"].endswith(".sif") for e in exps)
    assert not any(e["container"] for e in table(native, "experiments"))

    def rtts(results):
        return [(r["seq"], r["value"]) for r in table(results, "rtt")
                if r["mode"] == "tansiv" and r["metric"] == "rtt_ns"]
    assert rtts(native) and rtts(contained) == rtts(native)


def test_a_box_plot_counts_its_boxes(tmp_path):
    """figures.draw says what it drew for every kind of plot the workloads use: here the
    bufferbloat figure's boxes (seaborn puts them in a container without a length)."""
    import pandas as pd
    import seaborn as sns
    from tansiv.experiments import figures
    from tansiv.experiments.workloads.base import Figure

    def boxes(fig, tables):
        sns.boxplot(data=tables["t"], x="q", y="v", hue="h", ax=fig.subplots())
    data = pd.DataFrame({"q": ["a", "a", "b", "b"], "v": [1, 2, 3, 4], "h": ["x", "y", "x", "y"]})
    drawn = figures.draw(Figure("boxes", "", boxes), {"t": data}, tmp_path / "b.png",
                         tmp_path / "b.pdf")
    assert drawn.points >= 4 and drawn.placeholders == 0, drawn
