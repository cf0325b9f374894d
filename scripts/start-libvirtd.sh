#!/usr/bin/env bash
# Makes libvirt run every QEMU as the unprivileged user libvirt-qemu, and starts virtlogd and
# libvirtd when no init system does (containers, CI machines).
#
# QEMU user: /etc/libvirt/qemu.conf gets `user = "libvirt-qemu"`, `group = "libvirt-qemu"` and
# `dynamic_ownership = 0`. QEMU opens the guest kernel, initrd and disk images by path, so they
# must be readable by that user (root's sandbox cache is /var/cache/stepwell, see
# sandbox/config.py); with dynamic_ownership off libvirt never chowns them to it, so QEMU can
# read but not write them. Channel sockets, the console log and save files go through libvirtd
# by file descriptor. A running libvirtd whose QEMU user differs (or whose qemu.conf this script
# just changed) is restarted: by systemctl where systemd runs it, else by this script. Running
# domains survive a libvirtd restart (and keep the user they were started with).
#
# Transparent huge pages: libvirtd runs with prctl(PR_SET_THP_DISABLE), which every QEMU it
# starts inherits: restoring a saved VM then faults 4 KiB pages instead of whole 2 MiB ones,
# and an idle pooled VM stays near 210 MiB instead of about 280 MiB (QEMU asks for huge pages
# on guest RAM with madvise). Only libvirt's processes are affected, not the host's THP setting.
# Where systemd runs libvirtd, prefix its ExecStart with scripts/thp-off-exec in a drop-in for
# the same effect.
#
# Idempotent: does nothing when libvirtd answers on qemu:///system with this configuration.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
conf=/etc/libvirt/qemu.conf
QEMU_USER=libvirt-qemu
QEMU_GROUP=libvirt-qemu

answers() { virsh -c qemu:///system version >/dev/null 2>&1; }

libvirtd_thp() {  # prints 1 or 0 for the running libvirtd, nothing when unknown
  local pid; pid=$(pgrep -xo libvirtd) || return 0
  awk '/^THP_enabled:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
}

qemu_label() {  # the user:group the running libvirtd gives QEMU (its DAC base label), e.g. +999:+994
  virsh -c qemu:///system capabilities 2>/dev/null |
    sed -n "s#.*<baselabel type='qemu'>\(.*\)</baselabel>.*#\1#p" | head -n1
}

changed=0
conf_set() {  # key value: make `key = value` the only setting of key in qemu.conf
  local key=$1 value=$2
  if [[ $(grep -cE "^[[:space:]]*$key[[:space:]]*=" "$conf") -eq 1 ]] &&
     grep -qxF "$key = $value" "$conf"; then
    return 0
  fi
  sed -i -E "/^[[:space:]]*$key[[:space:]]*=/d" "$conf"
  echo "$key = $value" >>"$conf"
  changed=1
}

wait_up() {
  for _ in $(seq 1 100); do answers && return 0; sleep 0.2; done
  echo "libvirtd did not come up" >&2; return 1
}

if [[ $(id -u) -ne 0 ]]; then
  answers && exit 0
  echo "libvirtd is not running; start it (systemctl start libvirtd) or run as root" >&2; exit 1
fi

# The user and groups (libvirt-daemon-system creates them where it is installed; libvirtd does
# not start without them). kvm: /dev/kvm for hardware virtualisation.
getent group kvm >/dev/null || groupadd -r kvm
getent group "$QEMU_GROUP" >/dev/null || groupadd -r "$QEMU_GROUP"
id "$QEMU_USER" >/dev/null 2>&1 ||
  useradd -r -g "$QEMU_GROUP" -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin "$QEMU_USER"
id -nG "$QEMU_USER" | tr ' ' '\n' | grep -qx kvm || usermod -aG kvm "$QEMU_USER"
# without udev (containers) /dev/kvm may be root's alone. Give it to the kvm group wherever it
# exists, even where VMs run under TCG: libvirt checks /dev/kvm as QEMU's user when it looks up
# its cached QEMU capabilities, and one it cannot open makes it probe QEMU again before every
# domain start (measured here: a restore took 76 s instead of about 3 s).
if [[ -c /dev/kvm ]] &&
   [[ $(stat -c %G /dev/kvm) == root && $(stat -c %a /dev/kvm) == 600 ]]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

mkdir -p /etc/libvirt /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu
[[ -f $conf ]] || install -m 0600 /dev/null "$conf"
conf_set user "\"$QEMU_USER\""
conf_set group "\"$QEMU_GROUP\""
conf_set dynamic_ownership 0
want="+$(id -u "$QEMU_USER"):+$(getent group "$QEMU_GROUP" | cut -d: -f3)"

if answers; then
  stale=$changed
  [[ $(qemu_label) == "$want" ]] || stale=1
  if [[ -d /run/systemd/system ]] && systemctl is-active --quiet libvirtd virtqemud 2>/dev/null; then
    if ((stale)); then
      unit=libvirtd; systemctl is-active --quiet virtqemud && unit=virtqemud
      echo "restarting $unit: QEMU runs as $QEMU_USER"
      systemctl restart "$unit"
      wait_up
    fi
    exit 0
  fi
  # ours (no init system): restart when the QEMU user changed, or when it runs without THP off
  # (e.g. started by an older checkout)
  if ((stale)) || [[ $(libvirtd_thp) == 1 ]]; then
    echo "restarting libvirtd (QEMU as $QEMU_USER, transparent huge pages off for its VMs)"
    pkill -xo libvirtd || true
    for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.1; done
  else
    exit 0
  fi
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || "$here/thp-off-exec" libvirtd -d
wait_up
[[ $(qemu_label) == "$want" ]] || { echo "libvirtd runs QEMU as $(qemu_label), not $want" >&2; exit 1; }
