"""What guests leave in their /results, brought back as one tar archive each (tansiv-vm
--results: RUN/results/ADDRESS.tar) and unpacked next to it, RUN/results/ADDRESS/, once the
run is over. The archive comes from the guest: only regular files and folders inside the
target are unpacked, nothing else (no links, devices, absolute or parent paths)."""

import logging
import tarfile
from pathlib import Path, PurePosixPath

log = logging.getLogger("tansiv.results")


def collect(run_dir: Path) -> None:
    for archive in sorted((Path(run_dir) / "results").glob("*.tar")):
        target = archive.with_suffix("")
        try:
            unpack(archive, target)
            archive.unlink()
        except (tarfile.TarError, OSError) as e:  # a guest stopped mid-archive: keep it
            log.warning("%s: cannot unpack the guest's results: %s", archive, e)


def unpack(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            name = PurePosixPath(m.name)
            if name.is_absolute() or ".." in name.parts or not (m.isfile() or m.isdir()):
                log.warning("%s: left out %s (not a plain file or folder inside)", archive,
                            m.name)
                continue
            dest = target / name
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
