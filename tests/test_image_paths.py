"""An image's `files:` land inside the image, whatever the guest path or the image's symbolic
links: a guest path with `..` is refused before anything is built, with its key named, and
every destination is resolved inside the image's root as a chroot would (absolute links
re-rooted at the image, relative ones clamped at its /). Each test copies into a folder
standing in for the image's root, next to a 'host' folder standing in for this machine's
files, and checks both: where the files landed, and that nothing outside the root changed."""

import os
from pathlib import Path

import pytest

from tansiv.errors import InputError, TansivError
from tansiv.vm import user_images


@pytest.fixture
def tree(tmp_path):
    """(root, host): the image's root, deep enough that `..` from it stays in tmp_path, and
    a folder outside it standing in for this machine's files."""
    root = tmp_path / "machine" / "build" / "root"
    (root / "etc").mkdir(parents=True)
    host = tmp_path / "machine" / "host"
    host.mkdir()
    return root, host


def source(tmp_path: Path, name: str = "payload", text: str = "from the config\n") -> Path:
    path = tmp_path / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def files_under(folder: Path) -> dict:
    """{relative path: text} of the regular files under a folder (links not followed)."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def inside(root: Path, host_path: Path) -> Path:
    """Where an absolute path of this machine is in the image: under the root."""
    return Path(str(root) + str(host_path))


# ---- (a) `..` ------------------------------------------------------------------------------

def test_dotdot_is_refused_with_its_key_before_anything_is_built(tmp_path):
    payload = source(tmp_path)
    with pytest.raises(InputError) as e:
        user_images.ImageSpec.from_config(
            "web", {"files": {"/../../etc/cron.d/x": str(payload)}}, "my.yaml")
    assert "my.yaml: images.web.files./../../etc/cron.d/x: " in str(e.value), str(e.value)
    assert "'..'" in str(e.value)
    # A `..` that would stay inside is refused all the same: a guest path has none.
    with pytest.raises(InputError, match=r"images\.web\.files\./etc/\.\./x: "):
        user_images.ImageSpec.from_config("web", {"files": {"/etc/../x": str(payload)}})


def test_dotdot_is_refused_when_copying_and_nothing_is_written(tree, tmp_path):
    root, host = tree
    payload = source(tmp_path)
    before = files_under(tmp_path / "machine")
    with pytest.raises(TansivError, match=r"files\./\.\./\.\./etc/cron\.d/x: .*'\.\.'"):
        user_images.copy_files(root, [("/../../etc/cron.d/x", str(payload))], "image web")
    assert files_under(tmp_path / "machine") == before
    assert not (tmp_path / "machine" / "etc").exists()


# ---- (b) an absolute symbolic link in the image ---------------------------------------------

def test_an_absolute_link_is_followed_inside_the_image(tree, tmp_path):
    """/etc/localtime -> /usr/share/zoneinfo/... in every Debian root: here it points at a
    file of the 'host', which must stay as it is."""
    root, host = tree
    zone = host / "zoneinfo" / "UTC"
    zone.parent.mkdir()
    zone.write_text("this machine's zone\n")
    (root / "etc" / "localtime").symlink_to(zone)
    (root / "etc" / "cron.d").symlink_to(host / "cron.d")  # a folder there, absent here
    (host / "cron.d").mkdir()
    payload = source(tmp_path, text="the guest's zone\n")
    job = source(tmp_path, "job", "* * * * * root true\n")
    user_images.copy_files(root, [("/etc/localtime", str(payload)),
                                  ("/etc/cron.d/job", str(job))], "image web")
    assert files_under(host) == {"zoneinfo/UTC": "this machine's zone\n"}
    assert inside(root, zone).read_text() == "the guest's zone\n"
    assert inside(root, host / "cron.d" / "job").read_text() == "* * * * * root true\n"
    assert os.readlink(root / "etc" / "localtime") == str(zone)  # the links kept


# ---- (c) a relative symbolic link climbing out ----------------------------------------------

def test_a_relative_link_climbing_out_is_clamped_at_the_image_root(tree, tmp_path):
    root, host = tree
    outside = root.parent.parent / "outside"  # where root/a/../../../outside is
    outside.mkdir()
    (root / "a").mkdir()
    (root / "a" / "b").symlink_to("../../../outside")
    payload = source(tmp_path)
    user_images.copy_files(root, [("/a/b/f", str(payload))], "image web")
    assert files_under(outside) == {}
    assert files_under(host) == {}
    assert (root / "outside" / "f").read_text() == "from the config\n"  # / .. is /


# ---- (d) a folder copied over a symbolic link to a folder -----------------------------------

@pytest.mark.parametrize("guest,link", [
    ("/var/www", "var/www"),   # the destination itself is the link
    ("/var", "var/www"),       # a folder inside the copied one meets the link
])
def test_a_folder_copied_over_a_linked_folder_writes_nothing_outside(tree, tmp_path, guest,
                                                                     link):
    root, host = tree
    (host / "www").mkdir()
    (host / "www" / "index.html").write_text("this machine's page\n")
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(host / "www")
    site = tmp_path / "config" / "site"
    inner = site / "www" if guest == "/var" else site
    (inner / "css").mkdir(parents=True)
    (inner / "index.html").write_text("the guest's page\n")
    (inner / "css" / "a.css").write_text("body {}\n")
    user_images.copy_files(root, [(guest, str(site))], "image web")
    assert files_under(host) == {"www/index.html": "this machine's page\n"}
    landed = inside(root, host / "www")
    assert files_under(landed) == {"index.html": "the guest's page\n", "css/a.css": "body {}\n"}


# ---- the rest of what a chroot does ---------------------------------------------------------

def test_a_link_in_the_copied_folder_replaces_a_link_there_without_following_it(tree,
                                                                                 tmp_path):
    """A symbolic link copied is made at its place, whatever was there: a link there is
    replaced, not written through."""
    root, host = tree
    (host / "conf").write_text("this machine's\n")
    (root / "etc" / "app.conf").symlink_to(host / "conf")
    site = tmp_path / "config" / "etc"
    site.mkdir(parents=True)
    (site / "app.conf").symlink_to("app.conf.d/main")
    user_images.copy_files(root, [("/etc", str(site))], "image web")
    assert os.readlink(root / "etc" / "app.conf") == "app.conf.d/main"
    assert (host / "conf").read_text() == "this machine's\n"


def test_a_file_copied_to_a_folder_goes_into_it(tree, tmp_path):
    root, host = tree
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")  # merged /usr, relative
    (root / "usr" / "bin" / "serve").symlink_to(host / "serve")
    payload = source(tmp_path, "serve")
    user_images.copy_files(root, [("/bin", str(payload))], "image web")
    assert files_under(host) == {}
    assert inside(root, host / "serve").read_text() == "from the config\n"


def test_a_loop_of_links_is_named(tree, tmp_path):
    root, _ = tree
    (root / "etc" / "a").symlink_to("/etc/b")
    (root / "etc" / "b").symlink_to("a")
    with pytest.raises(TansivError, match=r"image web: files\./etc/a/x: .*symbolic links"):
        user_images.copy_files(root, [("/etc/a/x", str(source(tmp_path)))], "image web")


def test_a_file_on_the_way_is_named(tree, tmp_path):
    root, _ = tree
    (root / "etc" / "motd").write_text("hello\n")
    with pytest.raises(TansivError, match=r"files\./etc/motd/x: /etc/motd is not a folder"):
        user_images.copy_files(root, [("/etc/motd/x", str(source(tmp_path)))], "image web")
    site = tmp_path / "config" / "etc"
    (site / "motd").mkdir(parents=True)  # a folder where the image has a file
    with pytest.raises(TansivError, match=r"files\./etc: /etc/motd is not a folder"):
        user_images.copy_files(root, [("/etc", str(site))], "image web")
    assert (root / "etc" / "motd").read_text() == "hello\n"
