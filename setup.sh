#!/usr/bin/env bash
# Sets up tansiv on Debian 12 or 13, idempotently: Debian packages, the virtual environment
# (.venv, from Debian's Python with system site packages, where python3-simgrid lives), the
# Python package, the C core built in build/ and installed into .venv, then QEMU with tantap
# and the guest image (built once, about 10 minutes, then cached in ~/.cache/tansiv).
#   ./setup.sh            everything
#   TANSIV_SKIP_APT=1     do not touch Debian packages (they must be there)
#   TANSIV_SKIP_VM=1      do not build QEMU and the guest image (process mode only)
#   TANSIV_SKIP_APPTAINER=1  do not install Apptainer
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ -r /etc/debian_version ] || die "not a Debian system (no /etc/debian_version)"
debian=$(cut -d. -f1 /etc/debian_version)
case "$debian" in
  12|13) ;;
  *) say "warning: Debian $(cat /etc/debian_version) is untested (12 and 13 are supported)" ;;
esac

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root, or install sudo"
  SUDO=sudo
fi

PACKAGES=(build-essential cmake pkg-config python3-venv python3-dev python3-simgrid
          libsimgrid-dev libboost-dev
          # QEMU's build (gcc-multilib: its option ROMs are 32-bit), its firmware
          ninja-build libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev flex bison
          zlib1g-dev gcc-multilib patch xz-utils seabios
          # guest images (the full Debian one: debootstrap, qemu-img, cloud-init seed), SSH to
          # it, and the network tools of the netem baseline
          zstd debootstrap qemu-utils genisoimage e2fsprogs openssh-client iproute2
          # the SLURM profile's single-node test cluster
          slurm-wlm munge
          # reading tansiv run --pcap's captures (the tests do)
          tshark
          # the libFuzzer harnesses of the protocol's parsers (csrc/fuzz, tests/test_fuzz.py)
          clang libclang-rt-dev
          # the packet-level network model (--network ns3: csrc/ns3)
          libns3-dev)

if [ -z "${TANSIV_SKIP_APT:-}" ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
fi

# Debian's Python: python3-simgrid is built for it only.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import simgrid' 2>/dev/null; then
  say "recreating $VENV (it cannot import simgrid)"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# Reinstall only when the package definition changed.
stamp=$VENV/.tansiv-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing the Python package and its dependencies"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
  touch "$stamp"
fi

say "building the C core"
cmake -S csrc -B build -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
cmake --install build >/dev/null

if [ -z "${TANSIV_SKIP_APPTAINER:-}" ] && [ -z "${TANSIV_SKIP_APT:-}" ]; then
  # Optional: the pipeline runs natively without it.
  if $SUDO images/container/install-apptainer.sh 2> .apptainer-install.log; then
    say "Apptainer: $(apptainer --version)"
  else
    say "Apptainer: not available on this machine ($(tail -n1 .apptainer-install.log)); the"
    say "  pipeline runs natively, and its Apptainer test is skipped"
  fi
fi

if [ -z "${TANSIV_SKIP_VM:-}" ]; then
  say "QEMU with tantap, the guest image and its booted snapshot (built once, then cached)"
  "$VENV/bin/tansiv" prepare >/dev/null
fi

say "ready: Debian $(cat /etc/debian_version), SimGrid $("$VENV/bin/python" -c \
  'import simgrid; v = simgrid.simgrid_version; print(v() if callable(v) else v)' 2>/dev/null),
       run '. .venv/bin/activate' to get the tansiv command"
