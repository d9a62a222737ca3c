"""Guest images declared in the configuration (`images:`): a base, Debian packages, files
and a provisioning script.

    base: initramfs  tansiv's default guest (busybox, tansiv's tools) plus the packages'
                     files, unpacked from their .debs with their dependencies (no
                     maintainer scripts run): small, quick to build, for static programs
    base: debian     a Debian root file system of this machine's release (debootstrap, then
                     apt installs the packages: maintainer scripts run, users and folders
                     exist), with tansiv's /init, modules and tools added

then files or folders copied in (each guest path resolved inside the image as a chroot
would: guestpath), and the provisioning script run inside the image (chroot, as root) at
build time. Either boots like the default guest (the same kernel, tansiv's /init) and runs
entirely from RAM (an initramfs: no disk, so no host I/O timing reaches the guest). Each is
built once per content (base, the packages' versions, files, script) under
$TANSIV_CACHE/images/user-<name>-<key>/, with a manifest.json saying what went in."""

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import debian, leftovers, paths
from ..errors import InputError, TansivError
from . import guestpath, images
from .images import GUEST, GuestImage

BASES = ("initramfs", "debian")
RESERVED = ("initramfs", "debian")  # tansiv-vm's own images
# Left out of a Debian image: documentation, translations and apt's caches (RAM is the disk).
PRUNED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
          "var/cache/apt", "var/lib/apt/lists")


@dataclass(frozen=True)
class ImageSpec:
    name: str
    base: str = "initramfs"
    packages: tuple = ()    # Debian packages, alternatives as "a | b"
    files: tuple = ()       # (path in the guest, file or folder on this machine)
    provision: str = ""     # a script run in the image at build time
    memory_mb: int = 0      # 0: from the image's size
    boot: str = "snapshot"  # how its VMs start (images.BOOTS): not its content, not its key

    @classmethod
    def from_config(cls, name: str, raw: dict, where: str = "config") -> "ImageSpec":
        """Checks what can be checked before building: the name, the files, the script, that
        every package exists in this release's archive."""
        key = f"{where}: images.{name}"
        if name in RESERVED:
            raise InputError(f"{key}: '{name}' is tansiv's own image: choose another name")
        files = tuple(sorted((str(g), str(h)) for g, h in (raw.get("files") or {}).items()))
        for guest, host in files:
            try:
                guestpath.check(guest)
            except guestpath.GuestPathError as e:
                raise InputError(f"{key}.files.{guest}: {e}") from None
            if not Path(host).exists():
                raise InputError(f"{key}.files.{guest}: {host} does not exist")
        provision = raw.get("provision", "")
        if provision and not Path(provision).is_file():
            raise InputError(f"{key}.provision: {provision} does not exist")
        boot = raw.get("boot", "snapshot")
        if boot not in images.BOOTS:
            raise InputError(f"{key}.boot: '{boot}' is not one of {', '.join(images.BOOTS)}")
        return cls(name, raw.get("base", "initramfs"),
                   tuple(resolve(p, f"{key}.packages") for p in raw.get("packages", ())),
                   files, provision, raw.get("memory_mb", 0), boot)


def resolve(package: str, where: str) -> str:
    """The first of "a | b" alternatives this release has."""
    names = [p.strip() for p in package.split("|")]
    for name in names:
        if _candidate(name):
            return name
    raise InputError(f"{where}: no package {' or '.join(repr(n) for n in names)} in Debian "
                     f"{debian.codename()} (apt-cache policy finds no candidate; is apt-get "
                     "update needed?)")


def _candidate(name: str) -> bool:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name):
        return False
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    return bool(m) and m.group(1) != "(none)"


def closure(packages) -> dict:
    """{package: version} of the packages and everything they depend on, as apt would
    install them on an empty system (recommends left out)."""
    if not packages:
        return {}
    out = debian.run(["apt-get", "-s", "-o", "Dir::State::status=/dev/null", "install",
                      "--no-install-recommends", *packages])
    return dict(re.findall(r"^Inst (\S+) \((\S+)", out, re.M))


def _content_hash(h, path: Path) -> None:
    """A file's or a folder's names, modes and bytes."""
    for p in [path, *sorted(path.rglob("*"))] if path.is_dir() else [path]:
        h.update(f"{p.relative_to(path)} {p.lstat().st_mode:o}\0".encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())


def _key(spec: ImageSpec, versions: dict, guest_key: str) -> str:
    h = hashlib.sha256(repr((spec.name, spec.base, spec.packages, spec.files,
                             spec.memory_mb)).encode())
    h.update(f"{debian.codename()} {guest_key} {sorted(versions.items())}".encode())
    for _, host in spec.files:
        _content_hash(h, Path(host))
    if spec.provision:
        h.update(Path(spec.provision).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(Path(guestpath.__file__).read_bytes())
    return h.hexdigest()[:16]


def folder(name: str, key: str) -> Path:
    return paths.cache_dir() / "images" / f"user-{name}-{key}"


def by_name(name: str) -> GuestImage:
    """The image of that name built last (tansiv image build NAME)."""
    link = paths.cache_dir() / "images" / "by-name" / name
    if not link.exists():
        raise TansivError(f"no image '{name}' has been built here: run "
                          f"tansiv image build {name} [--config FILE]")
    return GuestImage.at(link.resolve())


def _versions(spec: ImageSpec) -> dict:
    """The packages' versions in this release: what the image is made of (initramfs: every
    package unpacked; debian: those asked for, apt installing their dependencies)."""
    if spec.base == "initramfs":
        return closure(spec.packages)
    return {p: debian.package_version(p) for p in spec.packages}


def key(spec: ImageSpec) -> str:
    """What names the image's content: a change of it means a new image."""
    return _key(spec, _versions(spec), images.recipe_inputs(GUEST)[1])


def build(spec: ImageSpec, rebuild: bool = False, say=print) -> GuestImage:
    """The image, built if its content changed (say: where progress lines go)."""
    guest_versions, guest_key = images.recipe_inputs(GUEST)
    versions = _versions(spec)
    out = folder(spec.name, _key(spec, versions, guest_key))
    with images.locked(paths.cache_dir() / "images" / f".lock-user-{spec.name}"):
        if rebuild or not (out / ".complete").exists():
            say(f"building image {spec.name} ({spec.base}, {len(spec.packages)} packages) in "
                f"{out}")
            _build(spec, out, guest_versions, versions)
        images.set_boot(out, spec.boot)
        link = paths.cache_dir() / "images" / "by-name" / spec.name
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out)
        tmp.replace(link)
    return GuestImage.at(out)


def _build(spec: ImageSpec, out: Path, guest_versions: dict, versions: dict) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log_path = out / "build.log"
    with tempfile.TemporaryDirectory(prefix=leftovers.tmp_prefix("image")) as tmp, \
            open(log_path, "w") as log:
        def step(what: str, cmd) -> None:
            log.write(f"$ {' '.join(map(str, cmd))}\n")
            log.flush()
            if subprocess.run(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode:
                raise TansivError(f"image {spec.name}: {what} failed; its log ends with:\n"
                                  + "".join(log_path.read_text().splitlines(True)[-15:]))

        root = Path(tmp) / "root"
        vmlinux, entries = images.guest_entries(GUEST, guest_versions, Path(tmp),
                                                programs=spec.base == "initramfs")
        if spec.base == "debian":
            installed = _debian_root(root, spec, step)
            images.materialize(entries, root)
        else:
            images.materialize(entries, root)
            for pkg, version in sorted(versions.items()):
                debian.extract(debian.download(pkg, version), root)
            installed = versions
        copy_files(root, spec.files, f"image {spec.name}")
        if spec.provision:
            script = guestpath.resolve(root, "/tmp/tansiv-provision")
            script.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(spec.provision, script)
            shell = ["/bin/sh"] if spec.base == "debian" else ["/bin/busybox", "sh"]
            with _proc(root):
                step(f"the provisioning script {spec.provision}",
                     ["chroot", root, *shell, "/tmp/tansiv-provision"])
            # Anew: the script may have changed the image's /tmp.
            guestpath.resolve(root, "/tmp/tansiv-provision", follow=False).unlink()
        for pruned in PRUNED if spec.base == "debian" else ():
            shutil.rmtree(guestpath.resolve(root, "/" + pruned, follow=False),
                          ignore_errors=True)  # a link there: left (rmtree refuses it)
        cpio = images.cpio_newc(images.tree_entries(root))
    (out / "vmlinux").write_bytes(vmlinux)
    if spec.base == "debian":  # large: unpacked by the guest's kernel as is, no inflating
        (out / "initramfs.cpio").write_bytes(cpio)
    else:
        (out / "initramfs.cpio.gz").write_bytes(gzip.compress(cpio, compresslevel=6, mtime=0))
    size_mb = len(cpio) >> 20
    # The initramfs, then its unpacked files, then room for the programs and their files.
    memory = spec.memory_mb or max(256, -(-(2 * size_mb + 512) // 64) * 64)
    kpkg = next(k for k in guest_versions if k.startswith("linux-image-"))
    (out / "manifest.json").write_text(json.dumps({
        "name": spec.name, "base": spec.base, "release": debian.codename(),
        "packages": spec.packages, "installed": dict(sorted(installed.items())),
        "files": dict(spec.files), "provision": spec.provision, "size_mb": size_mb,
        "memory_mb": memory}, indent=2) + "\n")
    (out / ".complete").write_text(f"{kpkg} {guest_versions[kpkg]}\n")


def copy_files(root: Path, files, where: str) -> None:
    """The files: ((guest path, file or folder here), ...) copied into the image at root,
    each destination resolved inside it as a chroot would (guestpath.copy_in: the image's
    symbolic links followed inside the image, never out of it); where names the image."""
    for guest, host in files:
        try:
            guestpath.copy_in(root, guest, host)
        except guestpath.GuestPathError as e:
            raise TansivError(f"{where}: files.{guest}: {e}") from None


def _debian_root(root: Path, spec: ImageSpec, step) -> dict:
    """debootstrap, then the packages from the release and its updates; their versions."""
    codename = debian.codename()
    step("debootstrap", ["debootstrap", "--variant=minbase", codename, root, debian.MIRROR])
    (root / "etc/apt/sources.list").write_text(
        "".join(f"deb {debian.MIRROR} {s} main\n" for s in (codename, f"{codename}-updates"))
        + f"deb http://deb.debian.org/debian-security {codename}-security main\n")
    with _proc(root):
        step("apt-get update", ["chroot", root, "apt-get", "update", "-qq"])
        if spec.packages:
            step(f"installing {' '.join(spec.packages)}",
                 ["chroot", root, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get",
                  "install", "-y", "-qq", "--no-install-recommends", *spec.packages])
        listed = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f",
                                 "${Package} ${Version}\n"], capture_output=True, text=True)
    return dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)


@contextmanager
def _proc(root: Path):
    """/proc in the image while programs run there (apt's and the script's)."""
    proc = guestpath.resolve(root, "/proc")  # a link there: followed inside the image
    proc.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(proc)])
