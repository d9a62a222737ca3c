"""What VMs run on: QEMU with tantap (csrc/qemu/build-qemu.sh) and the guest images, each
built once per set of inputs and cached. `prepare` builds what is missing and returns where
everything is; the run hands that value to the VMs it starts (tansiv-vm reads it from its
environment, the one channel a program named in a deployment has), so that they need not
check the inputs again."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import TansivError
from . import images
from .images import GuestImage

_ENV = {"qemu": "TANSIV_QEMU_DIR", "guest": "TANSIV_IMAGE_DIR", "router": "TANSIV_ROUTER_DIR"}


@dataclass(frozen=True)
class VMBuild:
    qemu: Path                    # bin/qemu-system-x86_64, share/qemu/ (option ROMs)
    guest: GuestImage             # the default guest
    router: GuestImage = None     # the netem baseline's router, if asked for

    def env(self, run_dir: Path = None) -> dict:
        """This build, for the environment of the VMs a run starts (and the run's folder,
        where they bring their results back)."""
        env = {_ENV["qemu"]: str(self.qemu), _ENV["guest"]: str(self.guest.path)}
        if self.router is not None:
            env[_ENV["router"]] = str(self.router.path)
        if run_dir is not None:
            env["TANSIV_RUN_DIR"] = str(Path(run_dir).resolve())
        return env

    @classmethod
    def from_env(cls, env=os.environ):
        """The build a run handed down, or None."""
        if not (env.get(_ENV["qemu"]) and env.get(_ENV["guest"])):
            return None
        router = env.get(_ENV["router"])
        return cls(Path(env[_ENV["qemu"]]), GuestImage.at(env[_ENV["guest"]]),
                   GuestImage.at(router) if router else None)


def qemu_dir() -> Path:
    """QEMU with tantap, built if needed (once, cached) by csrc/qemu/build-qemu.sh."""
    script = paths.source_dir() / "csrc" / "qemu" / "build-qemu.sh"
    r = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise TansivError("building QEMU with tantap failed (see the message above)")
    return Path(r.stdout.strip().splitlines()[-1])


def prepare(router: bool = False) -> VMBuild:
    """QEMU and the default guest, and the netem router's image if asked, built if needed."""
    return VMBuild(qemu_dir(), images.initramfs(images.GUEST),
                   images.initramfs(images.ROUTER) if router else None)


def current(router: bool = False) -> VMBuild:
    """The build handed down by the caller (the pipeline's build rules), if it has what is
    asked; else prepare's."""
    given = VMBuild.from_env()
    if given is not None and (given.router is not None or not router):
        return given
    return prepare(router)
