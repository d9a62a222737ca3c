"""Paths in a guest image being built, resolved inside the image's root folder as a chroot
would, so that copying into the image (as root) never writes this machine's files.

A guest path is absolute and has no `..` (checked with the configuration, before anything is
built). It is then walked one name at a time under the root, each with lstat: a symbolic link
on the way is read and followed inside the image, an absolute target from the image's / (the
root), a relative one from the link's folder, `..` stopping at the image's / as it does in a
chroot; more than MAX_LINKS links is a loop (ELOOP). What is left once a name does not exist
is created under the last folder found, which is a real folder of the image.

The image's root is trusted (a folder of tansiv's making) and nothing else writes in the image
while files are copied, so a path resolved stays valid while it is used."""

import os
import shutil
import stat
from pathlib import Path

MAX_LINKS = 40  # Linux's bound on the links one path lookup follows


class GuestPathError(ValueError):
    """A guest path that cannot be resolved inside the image: the message says why."""


def check(guest: str) -> None:
    """A guest path is absolute and has no `..` (nor NUL)."""
    if "\0" in guest:
        raise GuestPathError("a guest path has no NUL character")
    if not guest.startswith("/"):
        raise GuestPathError(f"'{guest}' is not an absolute path in the guest")
    if ".." in guest.split("/"):
        raise GuestPathError("'..' is not allowed in a guest path (it would leave the "
                             "image): write the path it means")


def _names(path: str) -> list:
    """The names of a path, last first (a stack), without the empty ones and `.`."""
    return [n for n in reversed(path.split("/")) if n not in ("", ".")]


def resolve(root, guest: str, follow: bool = True) -> Path:
    """Where guest (a path in the image) is on this machine: under root, with no symbolic
    link on the way (follow=False: the last name may be one, not followed)."""
    check(guest)
    root = os.fspath(root)
    done = []               # names resolved: real folders of the image (the last: anything)
    todo = _names(guest)
    links = 0
    while todo:
        name = todo.pop()
        if name == "..":    # only from a link's target: as in a chroot, / has no parent
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, name)
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            done.append(name)  # to be created: nothing under it exists either
            continue
        if stat.S_ISLNK(mode) and (todo or follow):
            links += 1
            if links > MAX_LINKS:
                raise GuestPathError(f"more than {MAX_LINKS} symbolic links on the way "
                                     "(a loop?)")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo.extend(_names(target))
            continue
        if todo and not stat.S_ISDIR(mode):
            raise GuestPathError(f"/{'/'.join([*done, name])} is not a folder in the image")
        done.append(name)
    return Path(root, *done)


def _guest(root, path: Path) -> str:
    """A resolved path as the image's path."""
    return "/" + os.path.relpath(path, root) if Path(path) != Path(root) else "/"


def _join(guest: str, name: str) -> str:
    return guest.rstrip("/") + "/" + name


def _folder(root, guest: str) -> Path:
    """The folder at guest, made if missing (its parents too)."""
    path = resolve(root, guest)
    if path.exists() and not path.is_dir():
        raise GuestPathError(f"{_guest(root, path)} is not a folder in the image")
    path.mkdir(parents=True, exist_ok=True)  # no link on the way: resolved
    return path


def copy_in(root, guest: str, host) -> None:
    """Copies a file or a folder of this machine (host) to guest in the image at root, as
    `cp -r` run in a chroot of the image would, with the modes and times kept:

    - every destination is resolved inside the image (resolve): a symbolic link of the image
      on the way, the last name included, is followed there, so writing /etc/localtime
      writes the zone file it points at, in the image;
    - a file copied to a folder goes into it, under its own name;
    - a folder is merged into the folder there (made if missing), file by file, each
      destination resolved anew, so a link to a folder met inside is followed inside the
      image too, never out of it;
    - a symbolic link of the copied folder is copied as a link (not followed, as
      copytree(symlinks=True)), replacing a file or link there rather than writing through
      it;
    - a file or a link never replaces a folder, nor a folder a file: an error names it."""
    host = Path(host)
    if host.is_dir():
        _copy_folder(root, guest, host)
        return
    dest = resolve(root, guest)
    if dest.is_dir():
        dest = resolve(root, _join(_guest(root, dest), host.name))
    _copy_file(root, dest, host)


def _copy_file(root, dest: Path, host: Path) -> None:
    if dest.is_dir():
        raise GuestPathError(f"{_guest(root, dest)} is a folder in the image: a file "
                             "cannot replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(host, dest)  # dest is no link: resolved


def _copy_folder(root, guest: str, host: Path) -> None:
    dest = _folder(root, guest)
    here = _guest(root, dest)
    with os.scandir(host) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            inner = _join(here, entry.name)
            if entry.is_symlink():
                _copy_link(root, inner, Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                _copy_folder(root, inner, Path(entry.path))
            else:
                _copy_file(root, resolve(root, inner), Path(entry.path))
    shutil.copystat(host, dest)


def _copy_link(root, guest: str, host: Path) -> None:
    dest = resolve(root, guest, follow=False)
    if dest.is_symlink() or dest.exists():
        if dest.is_dir() and not dest.is_symlink():
            raise GuestPathError(f"{_guest(root, dest)} is a folder in the image: a "
                                 "symbolic link cannot replace it")
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.readlink(host), dest)
    shutil.copystat(host, dest, follow_symlinks=False)
