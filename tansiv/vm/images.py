"""Initramfs guest images, built offline from Debian packages and cached.

The default guest: Debian's kernel (booted uncompressed, PVH) and an initramfs holding
busybox-static, the e1000 module, tansiv's static guest tools, iperf3 and
images/guest/initramfs/init. The netem router (images/guest/router/init) is built the same
way from another recipe. Each is built once per set of inputs under
$TANSIV_CACHE/images/<recipe>-<key>/ (default ~/.cache/tansiv)."""

import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import debian, leftovers, paths
from ..errors import TansivError

GUEST_TOOLS = ("tping", "tprobe", "tdetect")
# How an image's VMs start: from its booted snapshot (tansiv/vm/snapshot.py) or booting.
BOOTS = ("snapshot", "cold")


@contextmanager
def locked(path: Path):
    """Serializes builders of the same cache entry across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


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
    """A newc cpio archive of (path, mode, data[, uid, gid]) entries: data None for a
    directory; mode with its file type bits (a symbolic link's data is its target) or
    without them (a regular file). Dates 0, sorted, so the same inputs give the same bytes."""
    out = io.BytesIO()

    def put(name: str, mode: int, data: bytes, ino: int, uid: int = 0, gid: int = 0):
        name_b = name.encode() + b"\0"
        fields = [ino, mode, uid, gid, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
        out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + name_b)
        out.write(b"\0" * (-(110 + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))

    for ino, (name, mode, data, *owner) in enumerate(sorted(entries), start=1):
        if not stat.S_IFMT(mode):
            mode |= stat.S_IFDIR if data is None else stat.S_IFREG
        put(name, mode, data or b"", ino, *owner)
    put("TRAILER!!!", 0, b"", 0)
    return out.getvalue()


def tree_entries(root: Path) -> list:
    """A folder's files, folders and symbolic links as cpio_newc entries, with their modes
    and owners (device nodes and sockets are left out: the guest's /init mounts /dev)."""
    entries = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        name = str(path.relative_to(root))
        if stat.S_ISDIR(st.st_mode):
            data = None
        elif stat.S_ISLNK(st.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        else:
            continue
        entries.append((name, st.st_mode, data, st.st_uid, st.st_gid))
    return entries


def materialize(entries, root: Path) -> None:
    """Writes (path, mode, data) entries (without file type bits) into a folder; folders that
    exist already keep their modes."""
    for name, mode, data, *_ in sorted(entries):
        path = root / name
        if data is None:
            if not path.is_dir():
                path.mkdir(parents=True)
                path.chmod(mode)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.write_bytes(data)
            path.chmod(mode)


@dataclass
class GuestImage:
    kernel: Path
    initrd: Path
    kernel_version: str
    path: Path
    memory_mb: int = 256        # what the guest needs (its files live in RAM)
    boot: str = "snapshot"      # BOOTS

    @classmethod
    def at(cls, path) -> "GuestImage":
        """A built image, by its folder (.complete: the kernel package first; manifest.json,
        for the images of the configuration: their memory; boot: how its VMs start)."""
        path = Path(path)
        if not (path / ".complete").exists():
            raise TansivError(f"{path} holds no complete guest image")
        initrd = next(p for p in (path / "initramfs.cpio.gz", path / "initramfs.cpio")
                      if p.exists())
        manifest = path / "manifest.json"
        memory = json.loads(manifest.read_text())["memory_mb"] if manifest.exists() else 256
        boot = (path / "boot").read_text().strip() if (path / "boot").exists() else "snapshot"
        return cls(path / "vmlinux", initrd, (path / ".complete").read_text().split()[0], path,
                   memory, boot if boot in BOOTS else "snapshot")


def set_boot(path: Path, boot: str) -> None:
    """How the image's VMs start, as its configuration says (kept beside its content)."""
    if not (path / "boot").exists() or (path / "boot").read_text().strip() != boot:
        (path / "boot").write_text(boot + "\n")


@dataclass(frozen=True)
class Recipe:
    """What goes into an initramfs besides the kernel and busybox."""
    name: str               # cache folder: images/<name>-<key>
    init: str               # under images/guest/
    modules: tuple          # kernel modules, in the order /init loads them
    tools: tuple            # tansiv's static guest tools (csrc/guest)
    programs: dict          # Debian program (path in its package) -> packages it needs


# The default guest: runs one command, prints JSON lines, powers off.
GUEST = Recipe("initramfs", "initramfs/init", ("qemu_fw_cfg", "e1000"), GUEST_TOOLS,
               {"bin/iperf3": ("iperf3", "libiperf0", "libsctp1")})
# The netem baseline's router where the host kernel has no sch_netem: a Linux bridge whose
# ports are shaped by tc netem (see tansiv/vm/netem.py).
ROUTER = Recipe("router", "router/init",
                ("e1000", "llc", "stp", "bridge", "sch_htb", "sch_netem", "cls_u32"), (),
                {"sbin/tc": ("iproute2",)})


def recipe_inputs(recipe: Recipe):
    """(versions of the packages a recipe's image is made of, the hash of all its inputs)."""
    kpkg = debian.kernel_package()
    versions = {pkg: debian.package_version(pkg)
                for pkg in [kpkg, "busybox-static",
                            *(p for pkgs in recipe.programs.values() for p in pkgs)]}
    init = paths.source_dir() / "images" / "guest" / recipe.init
    tools = [paths.native(paths.libexecdir() / "guest" / t) for t in recipe.tools]
    h = hashlib.sha256(repr(recipe).encode())
    for part in sorted(f"{k}={v}" for k, v in versions.items()):
        h.update(part.encode() + b"\0")
    for f in [init, Path(__file__), *tools]:
        h.update(f.read_bytes())
    return versions, h.hexdigest()[:16]


def initramfs(recipe: Recipe = GUEST, rebuild: bool = False) -> GuestImage:
    """An initramfs image (the default guest unless told), built if needed."""
    versions, key = recipe_inputs(recipe)
    kpkg = next(k for k in versions if k.startswith("linux-image-"))
    out = paths.cache_dir() / "images" / f"{recipe.name}-{key}"
    image = GuestImage(out / "vmlinux", out / "initramfs.cpio.gz", kpkg, out)
    if (out / ".complete").exists() and not rebuild:
        return image
    with locked(paths.cache_dir() / "images" / ".lock"):
        if (out / ".complete").exists() and not rebuild:
            return image
        _build_initramfs(out, recipe, kpkg, versions)
    return image


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


def guest_entries(recipe: Recipe, versions: dict, tmp: Path, programs: bool = True):
    """(vmlinux, cpio entries) of a recipe's image: /init, busybox, the kernel modules,
    tansiv's guest tools and (if programs) the recipe's Debian programs with their
    libraries. versions: every package's version; tmp: a scratch folder."""
    kpkg = next(k for k in versions if k.startswith("linux-image-"))
    root = tmp / "k"
    debian.extract(debian.download(kpkg, versions[kpkg]), root)
    bb = tmp / "b"
    debian.extract(debian.download("busybox-static", versions["busybox-static"]), bb)
    vmlinuz = next((root / "boot").glob("vmlinuz-*"))
    # Booted uncompressed when it can be (faster); else the compressed kernel, still correct.
    vmlinux = uncompressed_kernel(vmlinuz.read_bytes()) or vmlinuz.read_bytes()
    init = paths.source_dir() / "images" / "guest" / recipe.init
    tools = [paths.native(paths.libexecdir() / "guest" / t) for t in recipe.tools]
    entries = [(d, 0o755, None) for d in ("bin", "dev", "proc", "sys", "lib",
                                            "lib/modules", "tmp", "root")]
    entries += [
        ("init", 0o755, init.read_bytes()),
        ("bin/busybox", 0o755, _find(bb, "bin/busybox").read_bytes()),
    ]
    entries += [(f"lib/modules/{m}.ko", 0o644, _module(root, m)) for m in recipe.modules]
    entries += [(f"bin/{t.name}", 0o755, t.read_bytes()) for t in tools]
    if programs:
        entries = _with_programs(entries, recipe, versions, tmp / "p")
    return vmlinux, entries


def _with_programs(entries, recipe: Recipe, versions: dict, progs: Path):
    for pkg in {p for pkgs in recipe.programs.values() for p in pkgs}:
        debian.extract(debian.download(pkg, versions[pkg]), progs)
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
    return entries


def _build_initramfs(out: Path, recipe: Recipe, kpkg: str, versions: dict) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=leftovers.tmp_prefix("image")) as tmp:
        vmlinux, entries = guest_entries(recipe, versions, Path(tmp))
        (out / "vmlinux").write_bytes(vmlinux)
        (out / "initramfs.cpio.gz").write_bytes(
            gzip.compress(cpio_newc(entries), compresslevel=6, mtime=0))
    # First line: the kernel package (GuestImage.kernel_version); then every package used.
    (out / ".complete").write_text(f"{kpkg} {versions[kpkg]}\n" + "".join(
        f"{k} {v}\n" for k, v in sorted(versions.items()) if k != kpkg))


if __name__ == "__main__":
    # python -m tansiv.vm.images guest|router: builds that image if needed, prints its folder.
    import sys
    print(initramfs({"guest": GUEST, "router": ROUTER}[sys.argv[1]]).path)
