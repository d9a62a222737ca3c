"""This machine's Debian release and its archive: the guest images and the container are
built from the same release as the host, from .debs downloaded (not installed) into the
cache."""

import re
import subprocess
from pathlib import Path

from . import paths
from .errors import TansivError

MIRROR = "http://deb.debian.org/debian"


def run(cmd, **kw) -> str:
    """A command's standard output, or an error quoting what it said."""
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise TansivError(f"{' '.join(map(str, cmd))} failed: {r.stderr.strip()}")
    return r.stdout


def codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise TansivError("cannot tell this Debian's codename from /etc/os-release")


def kernel_package() -> str:
    """The versioned kernel package linux-image-amd64 points to on this release."""
    out = run(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)\b", out)
    if not m:
        raise TansivError("cannot find Debian's kernel package (apt-cache depends "
                          "linux-image-amd64); run apt-get update")
    return m.group(1)


def package_version(pkg: str) -> str:
    out = run(["apt-cache", "policy", pkg])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise TansivError(f"Debian package {pkg} is not available (run apt-get update)")
    return m.group(1)


def download(pkg: str, version: str) -> Path:
    """The .deb of pkg=version, downloaded once into the cache (not installed)."""
    debs = paths.cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pattern = f"{pkg}_{version.replace(':', '%3a')}_*.deb"  # apt's file name for an epoch
    found = sorted(debs.glob(pattern))
    if not found:
        run(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=debs)
        found = sorted(debs.glob(pattern))
    if not found:
        raise TansivError(f"apt-get download {pkg}={version} gave no file in {debs}")
    return found[0]


def extract(deb: Path, dest: Path) -> None:
    run(["dpkg-deb", "-x", deb, dest])
