"""Where things are: the prefix the C core is installed into (by default the virtual
environment tansiv runs in; TANSIV_PREFIX overrides it), the source tree, and the cache of
long builds (QEMU, guest images, containers: TANSIV_CACHE, default ~/.cache/tansiv)."""

import os
import sys
from pathlib import Path

from .errors import TansivError


def prefix() -> Path:
    return Path(os.environ.get("TANSIV_PREFIX", sys.prefix))


def python() -> Path:
    """The interpreter of the environment tansiv is installed in (which may not be the one
    running, for a Snakemake job in a container)."""
    return prefix() / "bin" / "python"


def bindir() -> Path:
    return prefix() / "bin"


def libdir() -> Path:
    return prefix() / "lib"


def includedir() -> Path:
    return prefix() / "include"


def libexecdir() -> Path:
    return prefix() / "libexec" / "tansiv"


def source_dir() -> Path:
    """The repository tansiv runs from (the package is installed in place)."""
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("TANSIV_CACHE", Path.home() / ".cache" / "tansiv"))


def native(path: Path) -> Path:
    """An installed file of the C core, or an error saying how to get it."""
    if not path.exists():
        raise TansivError(
            f"{path} is missing: the C core is not installed under {prefix()} "
            "(run ./setup.sh, or set TANSIV_PREFIX)")
    return path
