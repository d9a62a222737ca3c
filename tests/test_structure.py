"""The package's structure: no dead code, a coherent workload registry whose every workload
plans a deployment that reads back as written, and one run record that reads back as
written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from tansiv.errors import InputError
from tansiv.experiments import config, modes, sweep
from tansiv.experiments.runner import plan
from tansiv.experiments.workloads import WORKLOADS, figures, tables
from tansiv.run import deployment
from tansiv.run.record import ParticipantRecord, RunRecord


def test_no_dead_code():
    vulture = Path(sys.executable).parent / "vulture"
    if not vulture.exists():
        pytest.skip("vulture is not installed (pip install -e '.[test]')")
    r = subprocess.run([vulture, "tansiv", "--min-confidence", "80"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.stdout == "" and r.returncode == 0, r.stdout


def test_registry_is_coherent():
    assert len(set(tables())) == len(tables())
    names = [f.name for w in WORKLOADS.values() for f in w.figures]
    assert len(set(names)) == len(names) == len(figures())
    for w in WORKLOADS.values():
        assert w.modes and w.modes <= set(modes.MODES), w.name
        assert all(f.caption.strip() for f in w.figures), w.name
        assert (w.table is None) == (not w.metrics), w.name
        assert set(w.defaults()) <= set(w.params), w.name
    checked = config.schema()["properties"]["sweeps"]["additionalProperties"]["properties"]
    assert set(WORKLOADS) <= set(checked)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_workload_plans_every_mode(tmp_path, name):
    """Each (workload, mode) expands from a sweep, plans n participants, names who ends the
    run when it must, and writes a deployment that parses back to the same actors."""
    w = WORKLOADS[name]
    for mode in sorted(w.modes):
        raw = {"modes": [mode], "workload": name, "n": [max(2, w.min_n)]}
        if w.needs_lookahead:
            raw["lookahead"] = ["1ms"]
        cfg = {"sweeps": {"s": raw}}
        config.check(cfg)
        (exp,) = sweep.expand(cfg).values()
        assert exp["params"] == w.defaults()
        p = plan(exp)
        actors = p.deployment()
        assert [a.host for a in actors] == p.hosts and set(p.main) <= set(p.addr.values())
        path = deployment.write(tmp_path / f"{name}-{mode}.xml", actors)
        back = deployment.parse(path).actors
        assert [(a.host, a.address, a.program, a.args) for a in back] == \
               [(a.host, a.address, a.program, a.args) for a in actors]


def test_fingerprint_ignores_figures_but_not_plans(monkeypatch):
    ping = WORKLOADS["ping"]
    before = ping.fingerprint()
    monkeypatch.setattr(type(ping), "figures", ())
    assert ping.fingerprint() == before
    monkeypatch.setattr(type(ping), "params", {**ping.params, "extra": {"type": "integer"}})
    assert ping.fingerprint() != before


def test_run_record_reads_back(tmp_path):
    r = RunRecord(mode="netem", status="participant-failure", netem={"where": "router"},
                  participants=[ParticipantRecord("10.0.0.1", "h1", "tansiv-vm", role="vm",
                                                  state="crashed", exit=3)])
    (tmp_path / "run.json").write_text(r.to_json())
    back = RunRecord.load(tmp_path)
    assert back == r and back.exit_status == 3 and back.simulated_ns is None


def test_bad_config_names_the_key():
    with pytest.raises(InputError, match=r"my.yaml: sweeps.s.ping: .*'countt' was unexpected"):
        config.check({"sweeps": {"s": {"modes": ["tansiv"], "workload": "ping",
                                       "ping": {"countt": 3}}}}, "my.yaml")


# ---- paths named in the repository --------------------------------------------------------------

TOP = ("tansiv", "csrc", "tests", "workflow", "images", "bench", "config", "docs", "examples",
       "profiles", ".ci")
NAMED_PATH = re.compile(r"(?<![\w./~-])((?:%s)/[A-Za-z0-9_./-]*[A-Za-z0-9_])"
                        % "|".join(map(re.escape, TOP)))
# Not this repository's paths: QEMU's (in the patch of its tree), the fuzzers' inputs.
FOREIGN = ("csrc/qemu/tantap.patch", "csrc/fuzz/corpus/")


def _exists(path: str, named_in: Path) -> bool:
    """From the root, or from a folder above the file naming it (csrc/'s files name
    csrc-relative paths); a program built from its C source counts as its source."""
    for base in [REPO, *[p for p in named_in.parents if REPO in (p, *p.parents)]]:
        if (base / path).exists() or (base / f"{path}.c").exists():
            return True
    return False


def test_every_repository_path_named_in_a_tracked_file_exists():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    missing = []
    for name in files:
        if name.startswith(FOREIGN):
            continue
        try:
            text = (REPO / name).read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary, or gone from the work tree
        for n, line in enumerate(text.splitlines(), 1):
            for m in NAMED_PATH.finditer(line):
                path = m.group(1).rstrip(".")
                # The tests' names for files that must not exist contain "nope".
                if "nope" not in path and not _exists(path, REPO / name):
                    missing.append(f"{name}:{n}: {path}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_the_path_check_finds_a_missing_path():
    assert not _exists("tansiv/nope_module.py", REPO / "tansiv" / "cli.py")
    assert not _exists("/".join(("tansiv", "run", "hub.c")), REPO / "tansiv" / "cli.py")
    csrc_relative = "/".join(("bench", "barrier.c"))  # not named: it exists only under csrc/
    assert _exists(csrc_relative, REPO / "csrc" / "hub" / "channel.c")
    assert not _exists(csrc_relative, REPO / "tests" / "helpers.py")
    assert NAMED_PATH.findall("see tansiv/run/hub.py, and csrc/hub.") == [
        "tansiv/run/hub.py", "csrc/hub"]
