"""Users' own experiments: guest images and workloads from the configuration, checked before
anything runs, built and cached by content, run through the pipeline with their results,
metrics and figures; and the two applications shipped in config/apps.yaml (etcd, nginx), end
to end on their smallest points, a rerun giving the same guest output."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, read_csv, read_jsonl, table
from tansiv import paths
from tansiv.errors import InputError
from tansiv.experiments import config, runner, sweep
from tansiv.experiments.metrics import json_lines
from tansiv.run.record import RunRecord
from tansiv.vm import build, user_images

DATA = REPO / "tests" / "data"
SNAKEMAKE = [str(Path(sys.executable).parent / "snakemake")]


@pytest.fixture(autouse=True)
def in_project(monkeypatch):
    """Paths in configurations are relative to the project."""
    monkeypatch.chdir(REPO)


# ---- configuration errors, named before anything runs ---------------------------------------

USER = yaml.safe_load((DATA / "sweep-user.yaml").read_text())


def broken(path: str, value):
    """USER with one key (a.b.c) set to value."""
    c = json.loads(json.dumps(USER))
    *parents, last = path.split(".")
    node = c
    for k in parents:
        node = node[k]
    node[last] = value
    return c


@pytest.mark.parametrize("path,value,message", [
    ("workloads.echo.image", "nope", "workloads.echo.image: no image 'nope' in images:"),
    ("workloads.echo.roles.server.command", "nc -l -p {prot}",
     "workloads.echo.roles.server.command: unknown placeholder {prot}"),
    ("workloads.echo.roles.client.main", False, None),  # the server is main still
    ("workloads.broken.roles.lone.main", False, "workloads.broken.roles: no role has main"),
    ("workloads.echo.metrics", "tests/data/echo/nope.py",
     "workloads.echo.metrics: tests/data/echo/nope.py does not exist"),
    ("images.echo.files", {"/etc/x": "tests/data/echo/nope"},
     "images.echo.files./etc/x: tests/data/echo/nope does not exist"),
    ("images.echo.files", {"etc/x": "tests/data/echo/motd"}, "is not an absolute path"),
    ("images.echo.packages", ["no-such-package-here"],
     "images.echo.packages: no package 'no-such-package-here' in Debian"),
    ("images.echo.provision", "tests/data/echo/nope.sh",
     "images.echo.provision: tests/data/echo/nope.sh does not exist"),
    ("images.echo.base", "alpine", "images.echo.base: 'alpine' is not one of"),
    ("workloads.echo.figures", [{"name": "f", "metric": "m", "x": "speed"}],
     "figures: f: x: no column 'speed'"),
    ("workloads.echo.roles.client.count", 0, "workloads.echo.roles.client.count"),
    ("workloads.ping", {"roles": {"a": {"command": "true", "main": True}}},
     "workloads.ping: tansiv has a workload of this name"),
    ("sweeps.echo.modes", ["none"], "mode none runs VMs alone; the echo workload's 2 VMs"),
    ("include", ["config/nope.yaml"], "include: cannot read config/nope.yaml"),
])
def test_bad_configuration_is_named(path, value, message):
    c = broken(path, value)
    try:
        c = config.resolve(c)
        config.check(c, "my.yaml")
        sweep.expand(c)
    except InputError as e:
        assert message and message in str(e), str(e)
        return
    assert message is None, f"no error for {path} = {value}"


# ---- images: built by content, cached ------------------------------------------------------

def test_image_build_is_cached_and_follows_its_content(tmp_path):
    motd = tmp_path / "motd"
    motd.write_text("first\n")
    raw = {"base": "initramfs", "packages": ["hello"], "files": {"/etc/motd": str(motd)},
           "provision": str(DATA / "echo" / "provision.sh")}
    spec = user_images.ImageSpec.from_config("test-hello", raw)
    first = user_images.build(spec)
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["installed"]["hello"] and "libc6" in manifest["installed"]
    log_time = (first.path / "build.log").stat().st_mtime_ns
    said = []
    again = user_images.build(spec, say=said.append)
    assert again.path == first.path and not said  # nothing built
    assert (first.path / "build.log").stat().st_mtime_ns == log_time
    motd.write_text("second\n")
    changed = user_images.build(spec, say=said.append)
    assert changed.path != first.path and said
    # The image boots, its package, file and provisioning there.
    r = subprocess.run([Path(sys.executable).parent / "tansiv-vm", "--image", "test-hello",
                        "--mode", "none", "--cmd", "hello; cat /etc/motd /etc/provisioned"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **build.prepare().env()))
    assert "Hello, world!\nsecond\nprovisioned\n" in r.stdout, r.stdout[-2000:]


def test_image_errors_name_what_is_missing(tmp_path):
    script = tmp_path / "fail.sh"
    script.write_text("echo provisioning goes wrong; exit 4\n")
    spec = user_images.ImageSpec.from_config("test-fail", {"provision": str(script)})
    with pytest.raises(Exception, match="the provisioning script .*fail.sh failed"):
        user_images.build(spec, say=lambda _: None)


# ---- a workload of the configuration through the pipeline ----------------------------------

def snakemake(*args, timeout=1800):
    return subprocess.run(SNAKEMAKE + [str(a) for a in args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_user_workload_through_the_pipeline(tmp_path):
    results = tmp_path / "results"
    r = snakemake("--cores", "2", "--configfile", DATA / "sweep-user.yaml", "--config",
                  f"results={results}")
    assert r.returncode == 0, r.stderr[-5000:]
    exps = {e["sweep"]: e for e in table(results, "experiments")}
    echo, failed = exps["echo"], exps["broken"]
    assert echo["status"] == "ok", echo
    # The server's /results came back, the metrics script read it, the figure was drawn.
    run = results / "runs" / echo["id"] / "run"
    received = (run / "results" / "10.0.0.1" / "received.txt").read_text()
    assert received == "hello from client0 (provisioned)\n"
    rows = {r["metric"]: float(r["value"]) for r in table(results, "echo")}
    assert rows == {"received_bytes": len(received), "sent_bytes": 1}
    assert (results / "figures" / "echo_bytes.png").stat().st_size > 1000
    assert sorted(p.name for p in (run / "pcap").iterdir()) == ["10.0.0.1.pcap", "10.0.0.2.pcap"]
    # A role whose command fails: the experiment is failed, kept, with the guest's last lines.
    assert failed["status"] == "failed" and "its command exited with status 3" in failed["why"]
    status = json.loads((results / "runs" / failed["id"] / "status.json").read_text())
    assert any("about to fail" in line for line in status["last_lines"]["10.0.0.1"])
    assert (results / "runs" / failed["id"] / "run" / "run.json").exists()


# ---- the applications: etcd and nginx ------------------------------------------------------

def app(workload: str, sweep_raw: dict, out: Path):
    c = config.resolve({"include": ["config/apps.yaml"],
                        "sweeps": {"s": {"modes": ["tansiv"], "workload": workload,
                                         **sweep_raw}}})
    config.check(c)
    (exp,) = sweep.expand(c).values()
    image = user_images.build(config.images(c)[workload])
    t0 = time.monotonic()
    status = runner.run(exp, out, None, {workload: str(image.path)})
    print(f"{workload}: {status['status']} in {time.monotonic() - t0:.0f} s of wall time, "
          f"{status['key_figure']}")
    return status


def consoles(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in (out / "run" / "participants").glob("*.log")}


def traced(monkeypatch, folder: Path) -> Path:
    """Participants' round traces (TANSIV_TRACE: per deadline, the guest instructions so far)
    into folder: where two runs part, if they do."""
    folder.mkdir(parents=True)
    monkeypatch.setenv("TANSIV_TRACE", str(folder))
    return folder


def first_difference(a: Path, b: Path) -> str:
    """Where two runs' traces first differ (deadline, guest instructions), for the report."""
    for ta in sorted(a.glob("*.trace")):
        la = [line.split()[::4] for line in ta.read_text().splitlines()]
        lb = [line.split()[::4] for line in (b / ta.name).read_text().splitlines()]
        for k, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                return f"{ta.stem}: round {k}: (deadline, instructions) {x} vs {y}"
    return "the traces agree"


def keep(tmp_path: Path) -> Path:
    """Both runs, kept for a post-mortem where the next session can find them."""
    dest = paths.cache_dir() / "divergences" / time.strftime("%Y%m%d-%H%M%S")
    shutil.copytree(tmp_path, dest)
    return dest


def test_etcd_elects_a_leader_and_puts_the_same_every_run(tmp_path, monkeypatch):
    """Three members and a client, 5 ms between every two: the puts take what the network
    makes them take, and a little more; a rerun without idle horizons (every participant in
    every round) gives the same guest output and packets, byte for byte. (Traced, so that a
    rerun that differs says at which round and is kept.)"""
    point = {"n": [3], "latency": ["5ms"], "etcd": {"seconds": 2}}
    trace_a = traced(monkeypatch, tmp_path / "trace-a")
    status = app("etcd", point, tmp_path / "a")
    assert status["status"] == "ok", status
    client = json_lines(tmp_path / "a" / "run" / "participants" / "10.0.0.4.log")
    assert any(e["event"] == "leader" for e in client)
    reports = [e for e in client if e["event"] == "wrk"]
    assert [r["label"] for r in reports] == ["c1", "c8"]
    assert all(r["requests"] > 10 and r["errors"] == 0 for r in reports)
    rows = {(r["metric"], r["label"]): float(r["value"])
            for r in read_csv(tmp_path / "a" / "metrics.csv")}
    expected = rows[("expected_put_ms", "")]
    assert expected == pytest.approx(20.0)  # 4 x 5 ms
    assert expected <= rows[("latency_p50_ms", "c1")] <= expected + 5
    trace_b = traced(monkeypatch, tmp_path / "trace-b")
    assert app("etcd", {**point, "idle_horizons": ["off"]}, tmp_path / "b")["status"] == "ok"
    if consoles(tmp_path / "a") != consoles(tmp_path / "b"):
        pytest.fail(f"the rerun differs: {first_difference(trace_a, trace_b)}; both runs "
                    f"kept in {keep(tmp_path)}")
    a, b = (RunRecord.load(tmp_path / x / "run") for x in "ab")
    assert (a.options["idle_horizons"], b.options["idle_horizons"]) == ("on", "off")
    assert a.rounds_sat_out > 0 == b.rounds_sat_out
    assert ((tmp_path / "a" / "run" / "packets.jsonl").read_bytes() ==
            (tmp_path / "b" / "run" / "packets.jsonl").read_bytes())


def test_etcd_keeps_putting_when_every_link_loses_one_percent(tmp_path):
    """The same store over ns-3's packets, every link losing 1 % of its frames: a leader is
    elected, every put succeeds (TCP retransmits what was lost), and they take at least what
    the network makes them take."""
    point = {"n": [3], "latency": ["5ms"], "network": ["ns3"], "loss": [0.01],
             "etcd": {"seconds": 2}}
    status = app("etcd", point, tmp_path / "lossy")
    assert status["status"] == "ok", status
    run = tmp_path / "lossy" / "run"
    client = json_lines(run / "participants" / "10.0.0.4.log")
    assert any(e["event"] == "leader" for e in client)
    assert all(r["requests"] > 10 and r["errors"] == 0 for r in client if r["event"] == "wrk")
    lost = [p for p in read_jsonl(run / "packets.jsonl") if p.get("dropped")]
    why = sorted({p["dropped"] for p in lost})
    print(f"dropped: {why}")
    # The links lost frames; none was dropped otherwise, but for those still in flight when
    # the client's end ended the run.
    assert "loss" in why and set(why) <= {"loss", "simulation ended"}, why
    rows = {(r["metric"], r["label"]): float(r["value"])
            for r in read_csv(tmp_path / "lossy" / "metrics.csv")}
    assert rows[("latency_p50_ms", "c1")] >= rows[("expected_put_ms", "")]


def test_nginx_serves_wrk(tmp_path):
    status = app("web", {"n": [1], "latency": ["1ms"], "bandwidth": ["10Mbps"],
                         "topology": "dumbbell", "web": {"seconds": 2}}, tmp_path / "w")
    assert status["status"] == "ok", status
    rows = {r["metric"]: float(r["value"]) for r in read_csv(tmp_path / "w" / "metrics.csv")}
    assert rows["requests_per_s"] > 10 and rows["errors"] == 0
    # Across a 10 Mbit/s bottleneck, no more than the wire carries.
    assert 1 < rows["goodput_mbps"] < 10
