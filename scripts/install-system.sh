#!/usr/bin/env bash
# Installs the Debian packages the app and its tests need, only those missing.
# Safe to run repeatedly; needs root (or sudo) the first time on a fresh machine.
set -euo pipefail

PACKAGES=(
  python3-venv python3-dev build-essential pkg-config nodejs npm
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  qemu-system-x86 qemu-utils debootstrap busybox-static cpio lz4 e2fsprogs
  bubblewrap chromium chromium-driver fonts-dejavu-core redis-server postgresql
  python3-numpy python3-pandas python3-matplotlib
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere (nodesource, nvm): accept working binaries.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  echo "==> installing system packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
