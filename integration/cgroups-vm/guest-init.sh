#!/bin/busybox sh
# PID 1 of the cgroups test VM, inside the initramfs: loads the virtio-9p
# modules, mounts the host's /usr (read-only) and the work share on a tmpfs
# root, and switch_root's into it (pivot_root cannot leave the initial
# ramfs). Stage 2 (guest-stage2.sh, on the work share) runs the tests.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "guest-init: $*"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /modules/order); do
    case "$module" in
        brd.ko) insmod /modules/brd.ko rd_nr=1 rd_size=16384 ;;
        *) insmod "/modules/$module" || fail "insmod $module failed" ;;
    esac
done

mount -t tmpfs -o size=256m,mode=755 tmpfs /newroot || fail "tmpfs root"
cd /newroot || fail "cd /newroot"
mkdir -p usr work proc sys dev tmp run etc root
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
ln -s usr/lib64 lib64
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostusr /newroot/usr || fail "9p /usr"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 work /newroot/work || fail "9p work"
cp /bin/busybox /newroot/busybox
echo "root:x:0:0:root:/root:/bin/sh" >/newroot/etc/passwd
echo "root:x:0:" >/newroot/etc/group
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /busybox sh /work/stage2.sh
