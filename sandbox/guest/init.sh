#!/bin/busybox sh
# Stepwell initramfs /init: load the virtio modules, mount the read-only root image, give the
# guest tmpfs scratch space, and hand over to the guest agent (which becomes PID 1).
/bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_console; do
  insmod /lib/modules/$m.ko || echo "init: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  if [ $i -gt 1000 ]; then echo "init: /dev/vda did not appear"; poweroff -f; fi
  usleep 10000
done
mount -t ext4 -o ro,noatime /dev/vda /newroot || { echo "init: cannot mount root"; poweroff -f; }
# The package layer of the active runtime (attached read-only as vdb when the host passes
# stepwell.packages=1): only these third-party packages exist in the guest.
if grep -q 'stepwell.packages=1' /proc/cmdline; then
  i=0
  while [ ! -b /dev/vdb ] && [ $i -lt 500 ]; do i=$((i + 1)); usleep 10000; done
  mount -t ext4 -o ro,noatime,nosuid,nodev /dev/vdb /newroot/opt/stepwell/packages \
    || echo "init: cannot mount the package layer (/dev/vdb)"
fi
mount -t tmpfs -o mode=1777,size=25%,nosuid,nodev tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755,size=25%,nosuid,nodev tmpfs /newroot/mnt/data
mount -t tmpfs -o mode=0755,size=16m,nosuid,nodev tmpfs /newroot/run
# No network interface, only loopback: the egress forwarder listens on 127.0.0.1:3128.
ip link set lo up || echo "init: cannot bring up lo"
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mkdir -p /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs -o mode=1777,size=10%,nosuid,nodev tmpfs /newroot/dev/shm
mount --move /sys /newroot/sys
exec switch_root /newroot /usr/bin/python3 -I -B /opt/stepwell/sandbox/guest/agent.py
