#!/usr/bin/env bash
# Installs Apptainer where this machine allows it (run by setup.sh, as root). Debian ships no
# Apptainer: unstable's package (1.4) is used.
#   Debian 13: installed as a package (its glibc is recent enough).
#   Debian 12: unpacked into /opt/tansiv-apptainer with a private copy of unstable's glibc
#              (its programs are pointed at it with patchelf), in Apptainer's relocatable
#              layout; /usr/local/bin/apptainer links to it.
# Where root lacks some capabilities (containers, sandboxes), Apptainer is told to grant
# root exactly those it has. Exit 0 if `apptainer exec` works at the end; otherwise a message
# says why, and exit 1. With --check, only that last test is made.
set -euo pipefail
OPT=/opt/tansiv-apptainer
say() { printf 'install-apptainer: %s\n' "$*" >&2; }

# Does `apptainer exec` run a shell in a minimal sandbox (dash and the libraries it loads)?
works() {
  command -v apptainer >/dev/null || { say "apptainer is not installed"; return 1; }
  local sbx lib
  sbx=$(mktemp -d)
  mkdir -p "$sbx/bin" "$sbx/tmp" "$sbx/proc" "$sbx/dev" "$sbx/sys" "$sbx/var/tmp"
  cp "$(readlink -f /bin/sh)" "$sbx/bin/sh"
  for lib in $(ldd /bin/sh | grep -o '/[^ ]*'); do
    mkdir -p "$sbx$(dirname "$lib")"
    cp "$(readlink -f "$lib")" "$sbx$lib"
  done
  local out rc=0
  out=$(apptainer exec "$sbx" /bin/sh -c 'echo ok' 2>&1) || rc=$?
  rm -rf "$sbx"
  [ $rc -eq 0 ] && [[ "$out" == *ok* ]] && return 0
  # the last line that says something, without colour codes
  say "apptainer exec fails: $(printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -v '^ *$' | tail -n1)"
  return 1
}

if works; then
  exit 0
fi
[ "${1:-}" = --check ] && exit 1
[ "$(id -u)" = 0 ] || { say "needs root"; exit 1; }
debian=$(cut -d. -f1 /etc/debian_version)

# unstable's .debs, through a private apt state (the system's sources stay untouched)
sid_download() {
  local apt=/var/cache/tansiv-sid
  mkdir -p "$apt/lists/partial" "$apt/cache" "$apt/debs"
  echo "deb http://deb.debian.org/debian sid main" > "$apt/sources.list"
  : > "$apt/status"
  local o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
           -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
           -o "Dir::State::status=$apt/status" -o "APT::Sandbox::User=root")
  apt-get "${o[@]}" update -qq
  (cd "$apt/debs" && rm -f ./*.deb && apt-get "${o[@]}" download -qq "$@")
  echo "$apt/debs"
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

case "$debian" in
  13)
    debs=$(sid_download apptainer)
    apt_install "$debs"/apptainer_*.deb libcap2-bin
    CONF=/etc/apptainer
    ;;
  12)
    apt_install squashfs-tools uidmap containernetworking-plugins fuse2fs patchelf \
                libcap2-bin libseccomp2 libsqlite3-0 ca-certificates
    debs=$(sid_download apptainer libc6)
    rm -rf "$OPT"
    mkdir -p "$OPT/glibc"
    dpkg-deb -x "$debs"/apptainer_*.deb "$OPT"
    dpkg-deb -x "$debs"/libc6_*.deb "$OPT/glibc"
    glibc=$OPT/glibc/usr/lib/x86_64-linux-gnu
    for exe in "$OPT/usr/bin/apptainer" "$OPT/usr/lib/x86_64-linux-gnu/apptainer/bin/starter"; do
      patchelf --set-interpreter "$glibc/ld-linux-x86-64.so.2" \
               --set-rpath "$glibc:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu" "$exe"
    done
    # The relocated binary looks for its configuration and state under usr/ and usr/lib/.
    mkdir -p "$OPT/usr/etc" "$OPT/usr/var/lib/apptainer/mnt/session"
    mv "$OPT/etc/apptainer" "$OPT/usr/etc/"
    ln -sfn ../etc "$OPT/usr/lib/etc"
    ln -sfn ../var "$OPT/usr/lib/var"
    ln -sf "$OPT/usr/bin/apptainer" /usr/local/bin/apptainer
    CONF=$OPT/usr/etc/apptainer
    ;;
  *)
    say "Debian $debian: not handled (12 and 13 are)"
    exit 1
    ;;
esac

# Root without every capability (some container hosts drop CAP_SYS_RESOURCE): grant root,
# in containers, exactly what it has.
prm=$(awk '/^CapPrm/ {print $2}' /proc/self/status)
if [ "$prm" != "000001ffffffffff" ] && [ "$prm" != "000003ffffffffff" ]; then
  caps=$(capsh --decode="$prm" | cut -d= -f2 | tr a-z A-Z | sed 's/,/", "/g')
  sed -i 's/^root default capabilities = .*/root default capabilities = file/' \
    "$CONF/apptainer.conf"
  printf '{\n  "users": {\n    "root": ["%s"]\n  },\n  "groups": {}\n}\n' "$caps" \
    > "$CONF/capability.json"
  say "root lacks some capabilities here: Apptainer grants it only those it has"
fi

works
say "installed: $(apptainer --version)"
