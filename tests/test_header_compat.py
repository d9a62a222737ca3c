"""Programs written against TANSIV's tansiv-client.h build against ours unchanged."""

import json
import subprocess

from helpers import REPO, tansiv
from tansiv import paths

COMPAT = REPO / "tests" / "compat"


def build(compiler, source, out, *flags):
    cmd = [compiler, *flags, f"-I{paths.includedir()}", str(source), "-o", str(out),
           f"-L{paths.libdir()}", "-ltansiv-client", f"-Wl,-rpath,{paths.libdir()}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def test_tansiv_prototypes_match_ours(tmp_path):
    exe = build("gcc", COMPAT / "tansiv_prototypes.c", tmp_path / "protos",
                "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror")
    assert subprocess.run([exe]).returncode == 0


def test_cxx_participant_builds_and_runs(tmp_path):
    exe = build("g++", COMPAT / "cxx_participant.cpp", tmp_path / "cxx_participant",
                "-std=c++17", "-Wall", "-Werror")
    d = tmp_path / "d.xml"
    actors = "".join(
        f'<actor host="node-{k}" function="vsg_vm"><argument value="10.0.0.{k}"/>'
        f'<argument value="{exe}"/><argument value="10.0.0.{k}"/>'
        f'<argument value="10.0.0.{3 - k}"/></actor>\n' for k in (1, 2))
    d.write_text(f"<?xml version='1.0'?>\n<platform version=\"4.1\">\n{actors}</platform>\n")
    out = tmp_path / "run"
    r = tansiv("run", REPO / "examples" / "pingpong" / "platform.xml", d, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "[10.0.0.1] offset 1577836800, got 'from 10.0.0.2' at 1577836800.000" in r.stdout
    assert json.loads((out / "run.json").read_text())["packets_delivered"] == 2
