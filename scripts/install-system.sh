#!/usr/bin/env bash
# Installs the Debian packages the app and its tests need, only those missing, and root's
# sandbox cache folder. Safe to run repeatedly; needs root (or sudo) the first time on a fresh
# machine.
#
# libvirt: these packages give libvirtd without an init unit; scripts/start-libvirtd.sh (make
# libvirtd) configures it to run QEMU as the unprivileged user libvirt-qemu and starts it. Where
# systemd runs libvirtd (libvirt-daemon-system installed), the same script writes qemu.conf and
# restarts the unit with systemctl; nothing else differs.
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
# Root's sandbox cache (sandbox/config.py): QEMU, running as libvirt-qemu, reads the guest images
# there by path, so the folder must let others through (0755) whatever the umask.
if [[ $(id -u) -eq 0 ]]; then
  install -d -m 0755 /var/cache/stepwell
fi
