#!/usr/bin/env bash
# Starts virtlogd and libvirtd when no init system does (containers, CI machines).
# Idempotent: does nothing when libvirtd already answers on qemu:///system.
set -euo pipefail
if virsh -c qemu:///system version >/dev/null 2>&1; then exit 0; fi
[[ $(id -u) -eq 0 ]] || { echo "libvirtd is not running; start it (systemctl start libvirtd) or run as root" >&2; exit 1; }
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu
conf=/etc/libvirt/qemu.conf
grep -q '^user = "root"' "$conf" 2>/dev/null || echo 'user = "root"' >>"$conf"
grep -q '^group = "root"' "$conf" 2>/dev/null || echo 'group = "root"' >>"$conf"
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 1 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "libvirtd did not come up" >&2; exit 1
