#!/usr/bin/env bash
# Builds tansiv's Apptainer image, once per definition and Debian release:
#   images/container/build-container.sh DEF OUT.sif CODENAME
# The image is kept in $TANSIV_CACHE/containers/ (default ~/.cache/tansiv); OUT.sif links
# to it. Root without every capability (CAP_SYS_RESOURCE is missing on some machines) cannot
# run %post inside `apptainer build`: the sandbox is bootstrapped, %post runs in it, then
# the sandbox becomes the image.
set -euo pipefail
DEF=$1 OUT=$2 CODENAME=$3
CACHE=${TANSIV_CACHE:-$HOME/.cache/tansiv}/containers
command -v apptainer >/dev/null || { echo "apptainer is not installed (see setup.sh)" >&2; exit 1; }
KEY=$({ cat "$DEF"; echo "$CODENAME"; apptainer --version; } | sha256sum | cut -c1-16)
SIF=$CACHE/tansiv-$CODENAME-$KEY.sif
mkdir -p "$CACHE" "$(dirname "$OUT")"
if [ ! -f "$SIF" ]; then
  SANDBOX=$CACHE/sandbox-$KEY
  rm -rf "$SANDBOX"
  echo "building $SIF (debootstrap $CODENAME, then the packages: a few minutes)" >&2
  # %post is run by `exec --writable`, which honours capability.json, unlike `build`.
  BOOT=$CACHE/bootstrap-$KEY.def  # the definition without %post
  awk '/^%post/{skip=1; next} /^%/{skip=0} !skip' "$DEF" > "$BOOT"
  apptainer build --build-arg codename="$CODENAME" --sandbox "$SANDBOX" "$BOOT"
  POST=$(awk '/^%post/{on=1; next} /^%/{on=0} on' "$DEF" | sed "s/{{ *codename *}}/$CODENAME/g")
  apptainer exec --writable --no-home "$SANDBOX" /bin/bash -euc "$POST"
  apptainer build "$SIF.part" "$SANDBOX"
  mv "$SIF.part" "$SIF"
  rm -rf "$SANDBOX" "$BOOT"
fi
ln -sfn "$SIF" "$OUT"
echo "$SIF"
