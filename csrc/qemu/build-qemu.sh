#!/usr/bin/env bash
# Builds qemu-system-x86_64 with the tantap backend, once per set of inputs.
#
#   csrc/qemu/build-qemu.sh          build if needed; print the install directory
#
# The result lives in $TANSIV_CACHE/qemu/<key>/ (default ~/.cache/tansiv), <key> being a hash
# of every input: the pinned source (qemu.env), our patch and sources (tantap.c, backend_qemu.c,
# snapshot_point.c, the client library of csrc/client/sources.txt and that list), the configure flags,
# this script, the compiler and the Debian release. A second run with the same inputs does
# nothing. The configured tree is kept (tree-<key of source, patch and flags>), so a change to
# our sources alone rebuilds in seconds. Source: Debian's source package of QEMU 10.0 (trixie), through the Debian mirror;
# TANSIV_QEMU_SOURCE=upstream takes qemu.org's tarball instead (TANSIV_QEMU_SHA256 required).
# Build dependencies are Debian packages installed by setup.sh; meson >= 1.5 comes from PyPI
# into a private virtual environment (Debian 12 has 1.0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CSRC=$(dirname "$HERE")
CACHE=${TANSIV_CACHE:-$HOME/.cache/tansiv}
# shellcheck source=qemu.env
. "$HERE/qemu.env"

log() { printf 'build-qemu: %s\n' "$*" >&2; }
die() { printf 'build-qemu: error: %s\n' "$*" >&2; exit 1; }

CONFIGURE_FLAGS=(
  --target-list=x86_64-softmmu --without-default-features --disable-download
  --disable-docs --disable-werror --disable-install-blobs --disable-tools
  --disable-guest-agent --enable-tcg --enable-kvm --enable-plugins --enable-slirp
  --enable-fdt=system --enable-pixman
  --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)
# The client library, listed once for every build in csrc/client/sources.txt (paths relative to
# csrc/; whole-line # comments). It goes with tantap.c and backend_qemu.c into QEMU's
# net/tantap/, whose meson.build this script writes (the patch only includes that folder).
SOURCES_LIST=$CSRC/client/sources.txt
[ -f "$SOURCES_LIST" ] || die "$SOURCES_LIST is missing"
mapfile -t CLIENT_FILES < <(sed -e 's/^[[:space:]]*//; s/[[:space:]]*$//; /^#/d; /^$/d' \
                              "$SOURCES_LIST")
for f in "${CLIENT_FILES[@]}"; do
  [ -f "$CSRC/$f" ] || die "$SOURCES_LIST lists $f, which is not in $CSRC"
done
TANTAP_FILES=(tantap.c backend_qemu.c snapshot_point.c meson.build)
for f in "${CLIENT_FILES[@]}"; do TANTAP_FILES+=("$(basename "$f")"); done
same_name=$(printf '%s\n' "${TANTAP_FILES[@]}" | sort | uniq -d)
[ -z "$same_name" ] || die "$SOURCES_LIST: net/tantap/ is flat, two files would be named $same_name"

# What needs a fresh tree (source, patch, configure flags), and everything.
tree_key() {
  { cat "$HERE/qemu.env" "$HERE/tantap.patch"
    echo "${CONFIGURE_FLAGS[*]}" "${TANSIV_QEMU_SOURCE:-debian}"
    gcc --version | head -n1
    cut -d. -f1 /etc/debian_version
  } | sha256sum | cut -c1-16
}
key() {
  { tree_key; cat "$HERE/tantap.c" "$HERE/backend_qemu.c" "$HERE/snapshot_point.c" "$0" \
    "$SOURCES_LIST"
    for f in "${CLIENT_FILES[@]}"; do cat "$CSRC/$f"; done
  } | sha256sum | cut -c1-16
}

KEY=$(key)
OUT=$CACHE/qemu/$KEY
if [ -f "$OUT/.complete" ] && [ -x "$OUT/bin/qemu-system-x86_64" ]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE/qemu" "$CACHE/sources"
exec 9>"$CACHE/qemu/.lock"
flock 9  # one build at a time; a concurrent caller waits, then finds it done
if [ -f "$OUT/.complete" ]; then echo "$OUT"; exit 0; fi

# ---- source -------------------------------------------------------------------------------
fetch_debian() {
  local tarball=$CACHE/sources/$QEMU_ORIG_TARBALL
  if [ ! -f "$tarball" ]; then
    log "fetching Debian's QEMU $QEMU_DEBIAN_VERSION source (40 MB)"
    local apt=$CACHE/sources/apt
    mkdir -p "$apt/lists/partial" "$apt/cache"
    echo "deb-src http://deb.debian.org/debian trixie main" > "$apt/sources.list"
    # A private apt state: the system's sources and lists stay untouched.
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
                -o "APT::Sandbox::User=root")
    apt-get "${opts[@]}" update -qq
    (cd "$CACHE/sources" && apt-get "${opts[@]}" source --download-only -qq \
       "qemu=$QEMU_DEBIAN_VERSION" >/dev/null)
  fi
  echo "$QEMU_ORIG_SHA256  $tarball" | sha256sum -c --quiet - \
    || die "$tarball does not have the pinned SHA-256 (qemu.env): remove it to fetch again"
  echo "$tarball"
}

fetch_upstream() {
  [ -n "${TANSIV_QEMU_SHA256:-}" ] || die "TANSIV_QEMU_SOURCE=upstream needs TANSIV_QEMU_SHA256"
  local tarball=$CACHE/sources/$(basename "$QEMU_UPSTREAM_URL")
  [ -f "$tarball" ] || { log "fetching $QEMU_UPSTREAM_URL"; curl -fL -o "$tarball.part" \
    "$QEMU_UPSTREAM_URL" && mv "$tarball.part" "$tarball"; }
  echo "$TANSIV_QEMU_SHA256  $tarball" | sha256sum -c --quiet - \
    || die "$tarball does not have the SHA-256 given in TANSIV_QEMU_SHA256"
  echo "$tarball"
}

case "${TANSIV_QEMU_SOURCE:-debian}" in
  debian) TARBALL=$(fetch_debian) ;;
  upstream) TARBALL=$(fetch_upstream) ;;
  *) die "TANSIV_QEMU_SOURCE must be debian or upstream" ;;
esac

# ---- meson --------------------------------------------------------------------------------
PYVENV=$CACHE/qemu/pyvenv
if ! "$PYVENV/bin/python" -c 'import mesonbuild' 2>/dev/null; then
  log "installing meson >= 1.5 into $PYVENV"
  rm -rf "$PYVENV"
  /usr/bin/python3 -m venv "$PYVENV"
  "$PYVENV/bin/pip" install -q --disable-pip-version-check 'meson>=1.5,<2'
fi

# ---- build --------------------------------------------------------------------------------
# net/tantap/meson.build: the C files of that folder, added to QEMU's system build.
tantap_meson_build() {
  echo "# Written by tansiv's csrc/qemu/build-qemu.sh from csrc/client/sources.txt."
  echo "system_ss.add(files("
  for f in "${TANTAP_FILES[@]}"; do
    case $f in *.c) echo "  '$f',";; esac
  done
  echo "))"
}

TREE=$CACHE/qemu/tree-$(tree_key)
rm -rf "$OUT"
mkdir -p "$OUT"
BUILD_LOG=$OUT/build.log
if [ ! -f "$TREE/.configured" ]; then
  log "building QEMU $QEMU_VERSION with tantap in $TREE (log: $BUILD_LOG; 5 to 10 minutes on 2 cores)"
else
  log "rebuilding tantap in $TREE (log: $BUILD_LOG)"
fi
{
  if [ ! -f "$TREE/.configured" ]; then
    rm -rf "$CACHE"/qemu/tree-*  # an older tree is of no use any more
    mkdir -p "$TREE"
    tar -C "$TREE" -xf "$TARBALL"
    mv "$TREE"/qemu-* "$TREE/src"
    patch -d "$TREE/src" -p1 < "$HERE/tantap.patch"
    mkdir -p "$TREE/src/net/tantap"
  fi
  # Our files, copied only when they changed so that the build recompiles just those.
  install_if_changed() { cmp -s "$1" "$2" || cp "$1" "$2"; }
  dir=$TREE/src/net/tantap
  install_if_changed "$HERE/tantap.c" "$dir/tantap.c"
  install_if_changed "$HERE/backend_qemu.c" "$dir/backend_qemu.c"
  install_if_changed "$HERE/snapshot_point.c" "$dir/snapshot_point.c"
  for f in "${CLIENT_FILES[@]}"; do
    install_if_changed "$CSRC/$f" "$dir/$(basename "$f")"
  done
  tantap_meson_build > "$dir/meson.build.new"
  install_if_changed "$dir/meson.build.new" "$dir/meson.build"
  rm "$dir/meson.build.new"
  # A file dropped from the list goes too: a stale copy would hide the omission.
  for f in "$dir"/*; do
    printf '%s\n' "${TANTAP_FILES[@]}" | grep -qxF "$(basename "$f")" || rm "$f"
  done
  if [ ! -f "$TREE/.configured" ]; then
    mkdir -p "$TREE/src/build"
    (cd "$TREE/src/build" && ../configure --python="$PYVENV/bin/python" "${CONFIGURE_FLAGS[@]}")
    touch "$TREE/.configured"
  fi
  make -C "$TREE/src/build" -j"$(nproc)" qemu-system-x86_64 pc-bios/optionrom/all
} > "$BUILD_LOG" 2>&1 || die "the build failed: see $BUILD_LOG"

mkdir -p "$OUT/bin" "$OUT/share/qemu"
cp "$TREE/src/build/qemu-system-x86_64" "$OUT/bin/"
# Option ROMs for direct kernel boot (-kernel); the BIOS is Debian's seabios.
cp "$TREE"/src/build/pc-bios/optionrom/*.bin "$OUT/share/qemu/"
"$OUT/bin/qemu-system-x86_64" -netdev help | grep -qx tantap \
  || die "the built QEMU has no tantap netdev"
touch "$OUT/.complete"
log "done: $OUT"
echo "$OUT"
