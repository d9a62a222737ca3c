"""Guest images, built offline from Debian packages and cached.

The default guest: Debian's kernel (booted uncompressed, PVH) and an initramfs holding
busybox-static, the e1000 module, tansiv's static guest tools, iperf3 and
images/initramfs/init. The netem router (images/router/init) is built the same way from
another recipe. Each is built once per set of inputs under
$TANSIV_CACHE/images/<recipe>-<key>/ (default ~/.cache/tansiv)."""

import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import TansivError

GUEST_TOOLS = ("tping", "tprobe")


def cache_dir() -> Path:
    return Path(os.environ.get("TANSIV_CACHE", Path.home() / ".cache" / "tansiv"))


@contextmanager
def locked(path: Path):
    """Serializes builders of the same cache entry across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise TansivError(f"{' '.join(map(str, cmd))} failed: {r.stderr.strip()}")
    return r.stdout


# ---- Debian packages -------------------------------------------------------------------------

def kernel_package() -> str:
    """The versioned kernel package linux-image-amd64 points to on this Debian release."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)\b", out)
    if not m:
        raise TansivError("cannot find Debian's kernel package (apt-cache depends "
                          "linux-image-amd64); run apt-get update")
    return m.group(1)


def package_version(pkg: str) -> str:
    out = _run(["apt-cache", "policy", pkg])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise TansivError(f"Debian package {pkg} is not available (run apt-get update)")
    return m.group(1)


def download(pkg: str, version: str) -> Path:
    """The .deb of pkg=version, downloaded once into the cache (not installed)."""
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pattern = f"{pkg}_{version.replace(':', '%3a')}_*.deb"  # apt's file name for an epoch
    found = sorted(debs.glob(pattern))
    if not found:
        _run(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=debs)
        found = sorted(debs.glob(pattern))
    if not found:
        raise TansivError(f"apt-get download {pkg}={version} gave no file in {debs}")
    return found[0]


def extract(deb: Path, dest: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(dest)])


# ---- kernel --------------------------------------------------------------------------------

_PAYLOADS = [(b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b\x08", "gzip")]


def uncompressed_kernel(bzimage: bytes):
    """The ELF vmlinux inside a bzImage (booted directly through PVH, it saves the guest the
    decompression, which is slow under TCG), or None if no payload decompresses to one."""
    for magic, kind in _PAYLOADS:
        start = bzimage.find(magic)
        while start >= 0:
            data = bzimage[start:]
            try:
                if kind == "xz":
                    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
                elif kind == "gzip":
                    out = gzip.GzipFile(fileobj=io.BytesIO(data)).read()
                else:
                    out = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True).stdout
            except (lzma.LZMAError, OSError, EOFError):
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            start = bzimage.find(magic, start + 1)
    return None


def _module(root: Path, name: str) -> bytes:
    found = sorted((root / "lib" / "modules").rglob(f"{name}.ko*"))
    found += sorted((root / "usr" / "lib" / "modules").rglob(f"{name}.ko*"))  # Debian 13
    for f in found:
        data = f.read_bytes()
        if f.suffix == ".xz":
            return lzma.decompress(data)
        if f.suffix == ".zst":
            return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True,
                                  check=True).stdout
        return data
    raise TansivError(f"module {name} not found in the kernel package")


# ---- initramfs -----------------------------------------------------------------------------

def cpio_newc(entries) -> bytes:
    """A newc cpio archive of (path, mode, data) entries (data None for a directory); owner
    root, dates 0, so the same inputs give the same bytes."""
    out = io.BytesIO()

    def put(name: str, mode: int, data: bytes, ino: int):
        name_b = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name_b)
        out.write(b"\0" * (-(110 + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for ino, (name, mode, data) in enumerate(sorted(entries), start=1):
        put(name, mode | (0o040000 if data is None else 0o100000), data or b"", ino)
    put("TRAILER!!!", 0, b"", 0)
    return out.getvalue()


@dataclass
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_version: str
    path: Path


@dataclass(frozen=True)
class Recipe:
    """What goes into an initramfs besides the kernel and busybox."""
    name: str               # cache folder: images/<name>-<key>
    env: str                # variable naming an already built one (set for the VMs we start)
    init: str               # under images/
    modules: tuple          # kernel modules, in the order /init loads them
    tools: tuple            # tansiv's static guest tools (csrc/guest)
    programs: dict          # Debian program (path in its package) -> packages it needs


# The default guest: runs one command, prints JSON lines, powers off.
GUEST = Recipe("initramfs", "TANSIV_IMAGE_DIR", "initramfs/init", ("e1000",), GUEST_TOOLS,
               {"bin/iperf3": ("iperf3", "libiperf0", "libsctp1")})
# The netem baseline's router where the host kernel has no sch_netem: a Linux bridge whose
# ports are shaped by tc netem (see tansiv/netem.py).
ROUTER = Recipe("router", "TANSIV_ROUTER_DIR", "router/init",
                ("e1000", "llc", "stp", "bridge", "sch_htb", "sch_netem", "cls_u32"), (),
                {"sbin/tc": ("iproute2",)})


def initramfs(rebuild: bool = False, recipe: Recipe = GUEST) -> GuestImage:
    """An initramfs image (the default guest unless told), built if needed. The recipe's
    variable (TANSIV_IMAGE_DIR for the guest) names an already built one: tansiv run sets it
    for the VMs it starts, which then need not check the inputs again."""
    given = os.environ.get(recipe.env)
    if given and not rebuild:
        out = Path(given)
        if not (out / ".complete").exists():
            raise TansivError(f"{recipe.env}={given} holds no complete {recipe.name} image")
        return GuestImage(out / "vmlinux", out / "initramfs.cpio.gz",
                          (out / ".complete").read_text().split()[0], out)
    kpkg = kernel_package()
    versions = {pkg: package_version(pkg)
                for pkg in [kpkg, "busybox-static",
                            *(p for pkgs in recipe.programs.values() for p in pkgs)]}
    init = paths.source_dir() / "images" / recipe.init
    tools = [paths.native(paths.libexecdir() / "guest" / t) for t in recipe.tools]
    h = hashlib.sha256(repr(recipe).encode())
    for part in sorted(f"{k}={v}" for k, v in versions.items()):
        h.update(part.encode() + b"\0")
    for f in [init, Path(__file__), *tools]:
        h.update(f.read_bytes())
    out = cache_dir() / "images" / f"{recipe.name}-{h.hexdigest()[:16]}"
    image = GuestImage(out / "vmlinux", out / "initramfs.cpio.gz", kpkg, out)
    if (out / ".complete").exists() and not rebuild:
        return image
    with locked(cache_dir() / "images" / ".lock"):
        if (out / ".complete").exists() and not rebuild:
            return image
        _build_initramfs(out, recipe, kpkg, versions, init, tools)
    return image


def router() -> GuestImage:
    return initramfs(recipe=ROUTER)


def _find(root: Path, path: str) -> Path:
    """A file of an extracted package, under / or /usr (Debian 13 installs under /usr)."""
    for p in (root / path, root / "usr" / path):
        if p.exists():
            return p
    raise TansivError(f"{path} not found in the extracted package")


def _dynamic_program(root: Path, program: str):
    """(path, data) of a dynamically linked program extracted under root (program: its path
    there, e.g. bin/iperf3) and of every shared library it loads (from root first, then from
    this system, which is the same Debian release as the guest)."""
    exe = _find(root, program)
    libdirs = [str(d) for d in root.rglob("*") if d.is_dir() and d.name.endswith("-linux-gnu")]
    r = subprocess.run(["ldd", str(exe)], capture_output=True, text=True,
                       env=dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs)))
    files = [(f"usr/{program}", exe.read_bytes())]
    for line in r.stdout.splitlines():
        if "not found" in line:
            raise TansivError(f"{program} for the guest: library missing: {line.strip()}")
        m = re.search(r"(/\S+) \(0x", line)
        if not m:
            continue
        path = Path(m.group(1))
        guest_path = str(path).lstrip("/")
        if str(path).startswith(str(root)):
            guest_path = str(path.relative_to(root))
        files.append((guest_path, path.resolve().read_bytes()))
    return files


def _build_initramfs(out: Path, recipe: Recipe, kpkg: str, versions: dict, init: Path,
                     tools) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="tansiv-image-") as tmp:
        root = Path(tmp) / "k"
        extract(download(kpkg, versions[kpkg]), root)
        bb = Path(tmp) / "b"
        extract(download("busybox-static", versions["busybox-static"]), bb)
        vmlinuz = next((root / "boot").glob("vmlinuz-*"))
        vmlinux = uncompressed_kernel(vmlinuz.read_bytes())
        if vmlinux is not None:
            (out / "vmlinux").write_bytes(vmlinux)
        else:  # boot the compressed kernel: slower, still correct
            shutil.copy(vmlinuz, out / "vmlinux")
        entries = [(d, 0o755, None) for d in ("bin", "dev", "proc", "sys", "lib",
                                                "lib/modules", "tmp", "root")]
        entries += [
            ("init", 0o755, init.read_bytes()),
            ("bin/busybox", 0o755, _find(bb, "bin/busybox").read_bytes()),
        ]
        entries += [(f"lib/modules/{m}.ko", 0o644, _module(root, m)) for m in recipe.modules]
        entries += [(f"bin/{t.name}", 0o755, t.read_bytes()) for t in tools]
        progs = Path(tmp) / "p"
        for pkg in {p for pkgs in recipe.programs.values() for p in pkgs}:
            extract(download(pkg, versions[pkg]), progs)
        seen = {name for name, _, _ in entries}
        for program in recipe.programs:
            for guest_path, data in _dynamic_program(progs, program):
                if guest_path not in seen:
                    seen.add(guest_path)
                    entries.append((guest_path, 0o755, data))
        # Their directories, and the dynamic loader at the path the programs ask for.
        dirs = {str(Path(p).parent) for p, _, d in entries if d is not None}
        for d in sorted(dirs):
            parts = Path(d).parts
            for k in range(1, len(parts) + 1):
                sub = str(Path(*parts[:k]))
                if sub not in seen:
                    seen.add(sub)
                    entries.append((sub, 0o755, None))
        (out / "initramfs.cpio.gz").write_bytes(
            gzip.compress(cpio_newc(entries), compresslevel=6, mtime=0))
    # First line: the kernel package (GuestImage.kernel_version); then every package used.
    (out / ".complete").write_text(f"{kpkg} {versions[kpkg]}\n" + "".join(
        f"{k} {v}\n" for k, v in sorted(versions.items()) if k != kpkg))


# ---- full Debian image -------------------------------------------------------------------------

DEBIAN_PACKAGES = ["systemd-sysv", "udev", "linux-image-amd64", "openssh-server", "cloud-init",
                   "ifupdown", "iproute2", "netbase", "procps", "iputils-ping",
                   # provides a virtual package cloud-init needs, which debootstrap's
                   # resolver does not follow
                   "python3-cffi-backend"]
DEBIAN_DISK_SIZE = "3G"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def debian_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise TansivError("cannot tell this Debian's codename from /etc/os-release")


@dataclass
class DebianImage:
    base: Path      # qcow2, never written: VMs boot from overlays
    kernel: Path
    initrd: Path
    path: Path


def debian(rebuild: bool = False) -> DebianImage:
    """A Debian of this machine's release for interactive use: debootstrap (minbase) with
    systemd, SSH and cloud-init, then ext4 (mkfs.ext4 -d) and qcow2. Booted with its own
    kernel and initrd, root on the first virtio disk."""
    codename = debian_codename()
    tools = [paths.native(paths.libexecdir() / "guest" / t) for t in GUEST_TOOLS]
    h = hashlib.sha256((codename + " " + " ".join(DEBIAN_PACKAGES) + DEBIAN_DISK_SIZE).encode())
    for f in [Path(__file__), *tools]:
        h.update(f.read_bytes())
    out = cache_dir() / "images" / f"debian-{codename}-{h.hexdigest()[:16]}"
    image = DebianImage(out / "base.qcow2", out / "vmlinuz", out / "initrd.img", out)
    if (out / ".complete").exists() and not rebuild:
        return image
    with locked(cache_dir() / "images" / ".lock-debian"):
        if not (out / ".complete").exists() or rebuild:
            _build_debian(out, codename, tools)
    return image


def _build_debian(out: Path, codename: str, tools) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rootfs = out / "rootfs"
    log = out / "build.log"
    with open(log, "w") as f:
        def step(*cmd):
            f.write(f"$ {' '.join(map(str, cmd))}\n")
            f.flush()
            if subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT).returncode:
                raise TansivError(f"building the Debian image failed at {cmd[0]}: see {log}")
        step("debootstrap", "--variant=minbase", "--include=" + ",".join(DEBIAN_PACKAGES),
             codename, rootfs, DEBIAN_MIRROR)
        # NoCloud only: cloud-init does not probe for other clouds. The disk has its final
        # size and no partition table: nothing to grow (and resize2fs may be absent).
        (rootfs / "etc/cloud/cloud.cfg.d/90-tansiv.cfg").write_text(
            "datasource_list: [ NoCloud, None ]\nresize_rootfs: false\n"
            "growpart: {mode: 'off'}\n")
        (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,relatime 0 1\n")
        for t in tools:
            shutil.copy(t, rootfs / "usr/local/bin" / t.name)
        shutil.copy(next((rootfs / "boot").glob("vmlinuz-*")), out / "vmlinuz")
        shutil.copy(next((rootfs / "boot").glob("initrd.img-*")), out / "initrd.img")
        step("mkfs.ext4", "-q", "-L", "root", "-d", rootfs, out / "disk.raw", DEBIAN_DISK_SIZE)
        step("qemu-img", "convert", "-O", "qcow2", out / "disk.raw", out / "base.qcow2")
    (out / "disk.raw").unlink()
    shutil.rmtree(rootfs)
    (out / ".complete").write_text(codename + "\n")


def overlay(base: Path, path: Path) -> Path:
    """A copy-on-write disk over base, for one VM."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path)])
    return path


def cloud_init_seed(path: Path, hostname: str, ssh_key: str, networks) -> Path:
    """A NoCloud seed ISO (volume cidata). networks: [(mac, address/prefix or None)], None
    for QEMU's user network (10.0.2.15/24 via 10.0.2.2, static: no DHCP client needed)."""
    with tempfile.TemporaryDirectory(prefix="tansiv-seed-") as tmp:
        t = Path(tmp)
        (t / "meta-data").write_text(f"instance-id: {hostname}\nlocal-hostname: {hostname}\n")
        (t / "user-data").write_text(
            "#cloud-config\n"
            f"hostname: {hostname}\n"
            "disable_root: false\n"
            "locale: C.UTF-8\n"  # minbase has no other locale to generate
            "ssh_pwauth: false\n"
            f"users:\n  - name: root\n    ssh_authorized_keys:\n      - {ssh_key}\n")
        lines = ["version: 2", "ethernets:"]
        for k, (mac, address) in enumerate(networks):
            lines += [f"  nic{k}:", "    match:", f"      macaddress: \"{mac}\"",
                      f"    set-name: eth{k}"]
            if address is None:
                lines += ["    addresses: [10.0.2.15/24]",
                          "    routes: [{to: 0.0.0.0/0, via: 10.0.2.2}]"]
            else:
                lines += [f"    addresses: [{address}]"]
        (t / "network-config").write_text("\n".join(lines) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(["genisoimage", "-quiet", "-output", str(path), "-volid", "cidata", "-joliet",
              "-rock", str(t / "user-data"), str(t / "meta-data"), str(t / "network-config")])
    return path
