#!/busybox sh
# Stage 2 of the cgroups test VM, PID 1 on the tmpfs root: cgroup2 as the
# only hierarchy with every controller enabled at the root (or, for
# run.sh --hybrid, the v1 hierarchies plus cgroup2 at /sys/fs/cgroup/unified),
# then the test binary; its output and exit code go to /work/results and the
# VM powers off.
bb=/busybox
note() { echo "stage2: $*" >>/work/results/output; }
$bb mount -t tmpfs tmpfs /tmp
$bb mount -t tmpfs tmpfs /run

# systemd's hybrid layout, mounted by hand: a tmpfs with one v1 hierarchy per controller the
# kernel lists (cpu,cpuacct and net_cls,net_prio joined, with the single names as symlinks),
# name=systemd, and cgroup2 at unified, which is left with no controller.
mount_hybrid() {
    $bb mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    for controller in $($bb awk '!/^#/ && $4 == 1 {print $1}' /proc/cgroups); do
        case $controller in
            cpu | cpuacct) hierarchy=cpu,cpuacct ;;
            net_cls | net_prio) hierarchy=net_cls,net_prio ;;
            *) hierarchy=$controller ;;
        esac
        if [ "$hierarchy" != "$controller" ]; then
            $bb ln -s "$hierarchy" "/sys/fs/cgroup/$controller"
        fi
        [ -d "/sys/fs/cgroup/$hierarchy" ] && continue
        $bb mkdir "/sys/fs/cgroup/$hierarchy"
        $bb mount -t cgroup -o "$hierarchy" cgroup "/sys/fs/cgroup/$hierarchy" \
            || note "cannot mount the $hierarchy hierarchy"
    done
    $bb mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
    $bb mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd || note "no name=systemd"
    $bb mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup/unified || note "no cgroup2"
}

# run.sh --integration and --hybrid: the modules it staged, then a soft-RoCE device on a dummy
# netdev (the rdma tests; -nic none gives no real one) and BFQ on the virtio disks (blkio
# weights). What is missing shows up here and fails the tests that require it.
setup_devices() {
    for module in $($bb cat /work/modules/order); do
        # Dependencies the initramfs loaded already (virtio, virtio_ring).
        [ -d "/sys/module/${module%.ko}" ] || $bb insmod "/work/modules/$module" \
            || note "insmod $module failed"
    done
    { /usr/bin/ip link add rxenet0 type dummy && /usr/bin/ip link set rxenet0 up \
        && /usr/bin/rdma link add rxe0 type rxe netdev rxenet0; } 2>>/work/results/output \
        || note "cannot make the soft-RoCE device rxe0: $($bb dmesg | $bb tail -n 5)"
    for scheduler in /sys/block/vd*/queue/scheduler; do
        echo bfq >"$scheduler" || note "cannot set BFQ in $scheduler"
    done
    note "rdma devices: $($bb ls /sys/class/infiniband 2>&1)"
    note "schedulers: $($bb cat /sys/block/vd*/queue/scheduler 2>&1)"
}
# run.sh --systemd-hybrid: systemd mounts the hierarchies itself (v1 controllers, name=systemd,
# cgroup2 at /sys/fs/cgroup/unified); with cgroup2 on /sys/fs/cgroup it would go unified.
if [ -f /work/systemd-hybrid ]; then
    $bb mkdir -p /run/bin && $bb cp /work/bin/* /run/bin/
    exec $bb sh /work/systemd.sh boot
fi
if [ -f /work/hybrid ]; then
    mount_hybrid
    v2=/sys/fs/cgroup/unified
else
    $bb mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
    v2=/sys/fs/cgroup
fi
[ -f /work/modules/order ] && setup_devices
# securityfs: where apparmor_parser loads profiles (the LSM tests).
[ -d /sys/kernel/security ] && $bb mount -t securityfs securityfs /sys/kernel/security
# run.sh --selinux: load its policy (in one write, as the kernel wants it) and enforce it.
if [ -f /work/selinux-policy ]; then
    $bb mount -t selinuxfs selinuxfs /sys/fs/selinux \
        && $bb dd if=/work/selinux-policy of=/sys/fs/selinux/load bs=4M 2>/dev/null \
        && echo 1 >/sys/fs/selinux/enforce \
        || note "cannot load the SELinux policy"
fi
for controller in $($bb cat $v2/cgroup.controllers); do
    echo "+$controller" >$v2/cgroup.subtree_control || note "cannot enable $controller"
done
{
    echo "guest: $($bb uname -r), cgroup2 controllers: $($bb cat $v2/cgroup.subtree_control)"
    $bb grep cgroup /proc/self/mountinfo
} >>/work/results/output
set --
while IFS= read -r arg; do
    [ -n "$arg" ] && set -- "$@" "$arg"
done </work/args
# The binaries run from a tmpfs: 9p under TCG is slow to page in from.
$bb mkdir -p /run/bin
$bb cp /work/bin/* /run/bin/
# run.sh --systemd: systemd becomes PID 1 and runs the tests (guest-systemd.sh).
[ -f /work/systemd.sh ] && exec $bb sh /work/systemd.sh boot
cd /work
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root
# KEY=VALUE lines the host staged (BERTH_RUNTIME for the integration tests).
while IFS= read -r assignment; do
    [ -n "$assignment" ] && export "$assignment"
done </work/env
/run/bin/test-binary "$@" >>/work/results/output 2>&1
echo $? >/work/results/exit.tmp
$bb mv /work/results/exit.tmp /work/results/exit
$bb sync
$bb poweroff -f
