#!/busybox sh
# Stage 2 of the cgroups test VM, PID 1 on the tmpfs root: cgroup2 as the
# only hierarchy with every controller enabled at the root, then the test
# binary; its output and exit code go to /work/results and the VM powers
# off.
bb=/busybox
$bb mount -t tmpfs tmpfs /tmp
$bb mount -t tmpfs tmpfs /run
# run.sh --systemd-hybrid: systemd mounts the hierarchies itself (v1 controllers, name=systemd,
# cgroup2 at /sys/fs/cgroup/unified); with cgroup2 on /sys/fs/cgroup it would go unified.
if [ -f /work/systemd-hybrid ]; then
    $bb mkdir -p /run/bin && $bb cp /work/bin/* /run/bin/
    exec $bb sh /work/systemd.sh boot
fi
$bb mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
# securityfs: where apparmor_parser loads profiles (the LSM tests).
[ -d /sys/kernel/security ] && $bb mount -t securityfs securityfs /sys/kernel/security
# run.sh --selinux: load its policy (in one write, as the kernel wants it) and enforce it.
if [ -f /work/selinux-policy ]; then
    $bb mount -t selinuxfs selinuxfs /sys/fs/selinux \
        && $bb dd if=/work/selinux-policy of=/sys/fs/selinux/load bs=4M 2>/dev/null \
        && echo 1 >/sys/fs/selinux/enforce \
        || echo "stage2: cannot load the SELinux policy" >>/work/results/output
fi
for controller in $($bb cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" >/sys/fs/cgroup/cgroup.subtree_control \
        || echo "stage2: cannot enable $controller" >>/work/results/output
done
{
    echo "guest: $($bb uname -r), cgroup2 controllers: $($bb cat /sys/fs/cgroup/cgroup.subtree_control)"
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
