"""The C core under AddressSanitizer and UndefinedBehaviorSanitizer: built with
-DTANSIV_SANITIZE=ON into a prefix of its own, then the tests that exercise the protocol (the
hub in process, the client library, channels, hostile participants) run against it. The hub
is loaded into Python, so the ASan runtime is preloaded; every participant program is
instrumented itself. Any report aborts its process, which fails the test that ran it."""

import os
import subprocess
import sys

import pytest

from helpers import REPO

TESTS = ["tests/test_hub.py", "tests/test_client.py", "tests/test_channels.py",
         "tests/test_hardening.py", "tests/test_relay.py"]


def runtime(name: str) -> str:
    path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True,
                          text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else ""


def test_protocol_tests_pass_under_asan_and_ubsan(tmp_path):
    asan = runtime("libasan.so")
    if not asan:
        pytest.skip("gcc's AddressSanitizer runtime (libasan) is not installed")
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    for cmd in (["cmake", "-S", REPO / "csrc", "-B", build, "-DTANSIV_SANITIZE=ON",
                 f"-DCMAKE_INSTALL_PREFIX={prefix}"],
                ["cmake", "--build", build, "-j2"], ["cmake", "--install", build]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    env = dict(os.environ, TANSIV_PREFIX=str(prefix), LD_PRELOAD=asan,
               # Python keeps memory to its end by design: no leak check here (the fuzzers
               # check the parsers' leaks).
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        # Not what runs no C of ours: Snakemake, and SimGrid's own errors
                        # (a C++ exception in SimGrid trips ASan's interceptor when the
                        # runtime is preloaded into a program that was not built with it).
                        "-k", "not shell_rules and not simgrid_option", *TESTS],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    report = r.stdout[-4000:] + r.stderr[-2000:]
    assert r.returncode == 0, report
    assert "AddressSanitizer" not in r.stdout + r.stderr, report
    assert "runtime error:" not in r.stdout + r.stderr, report
