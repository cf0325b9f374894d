#!/usr/bin/env bash
# Starts virtlogd and libvirtd when no init system does (containers, CI machines).
# Idempotent: does nothing when libvirtd already answers on qemu:///system, unless it is a
# libvirtd this script should have started with transparent huge pages off (see below).
#
# libvirtd runs with prctl(PR_SET_THP_DISABLE), which every QEMU it starts inherits: restoring a
# saved VM then faults 4 KiB pages instead of whole 2 MiB ones, and an idle pooled VM stays
# near 210 MiB instead of about 280 MiB (QEMU asks for huge pages on guest RAM with madvise).
# Only libvirt's processes are affected, not the host's THP setting. Where systemd runs
# libvirtd, prefix its ExecStart with scripts/thp-off-exec in a drop-in for the same effect.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

libvirtd_thp() {  # prints 1 or 0 for the running libvirtd, nothing when unknown
  local pid; pid=$(pgrep -xo libvirtd) || return 0
  awk '/^THP_enabled:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
}

if virsh -c qemu:///system version >/dev/null 2>&1; then
  # ours (no init system) but started without THP off, e.g. by an older checkout: restart it;
  # running domains survive a libvirtd restart
  if [[ $(id -u) -eq 0 && ! -d /run/systemd/system && $(libvirtd_thp) == 1 ]]; then
    echo "restarting libvirtd with transparent huge pages off for its VMs"
    pkill -xo libvirtd || true
    for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.1; done
  else
    exit 0
  fi
fi
[[ $(id -u) -eq 0 ]] || { echo "libvirtd is not running; start it (systemctl start libvirtd) or run as root" >&2; exit 1; }
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu
conf=/etc/libvirt/qemu.conf
grep -q '^user = "root"' "$conf" 2>/dev/null || echo 'user = "root"' >>"$conf"
grep -q '^group = "root"' "$conf" 2>/dev/null || echo 'group = "root"' >>"$conf"
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || "$here/thp-off-exec" libvirtd -d
for _ in $(seq 1 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "libvirtd did not come up" >&2; exit 1
