"""Fuzzing what parses another process's bytes (csrc/fuzz/): the hub's frames (from a
hostile participant or relay), the client library's (from a hostile hub), a shared-memory
ring's reader (from a hostile writer) and a relay's (from a hostile coordinator), each a libFuzzer harness under ASan and UBSan, for a bounded
time (TANSIV_FUZZ_SECONDS, default 60) from the corpus kept in the repository.
csrc/fuzz/fuzz.sh runs one longer, by hand."""

import os
import re
import shutil
import subprocess

import pytest

from helpers import REPO

SECONDS = int(os.environ.get("TANSIV_FUZZ_SECONDS", "60"))
HARNESSES = ["hub", "client", "ring", "relay", "guest"]


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory):
    if not shutil.which("clang"):
        pytest.skip("clang is not installed (./setup.sh installs it): libFuzzer needs it")
    build = tmp_path_factory.mktemp("fuzz-build")
    subprocess.run(["cmake", "-S", REPO / "csrc", "-B", build, "-DCMAKE_C_COMPILER=clang",
                    "-DCMAKE_CXX_COMPILER=clang++", "-DTANSIV_FUZZ=ON"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build, "-j2", "--target",
                    *[f"fuzz_{h}" for h in HARNESSES]], check=True, capture_output=True)
    return build


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzzer_finds_nothing(harnesses, name, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "csrc" / "fuzz" / "corpus" / name, corpus)
    r = subprocess.run([harnesses / f"fuzz_{name}", f"-max_total_time={SECONDS}",
                        "-print_final_stats=1", "-artifact_prefix=" + str(tmp_path) + "/",
                        corpus], capture_output=True, text=True, timeout=SECONDS + 120,
                       env=dict(os.environ, TANSIV_LOG_LEVEL="off"))
    tail = r.stderr[-3000:]
    assert r.returncode == 0, tail  # a crash, a sanitizer report, a leak or a timeout
    runs = int(re.search(r"stat::number_of_executed_units: (\d+)", r.stderr).group(1))
    cov = re.findall(r"cov: (\d+)", r.stderr)
    print(f"fuzz_{name}: {runs} executions in {SECONDS} s, coverage {cov[-1]} edges")
    assert runs > 1000, tail
