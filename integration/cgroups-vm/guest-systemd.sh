#!/busybox sh
# The --systemd mode of the cgroups test VM (run.sh --systemd): systemd as
# PID 1, with the system bus, so berth's --systemd-cgroup makes real
# transient scopes.
#
#   boot  PID 1, called by guest-stage2.sh once its mounts are made and the
#         binaries are on the tmpfs: writes berth-test.service and execs
#         systemd with that unit as the boot target.
#   run   the service itself: runs the test binary like stage 2 does,
#         writes /work/results/{output,exit} and powers the VM off.
bb=/busybox

boot() {
    # dbus-daemon drops to messagebus; the tmpfs /etc has only root.
    echo "messagebus:x:100:101::/nonexistent:/usr/sbin/nologin" >>/etc/passwd
    echo "messagebus:x:101:" >>/etc/group
    $bb mkdir -p /etc/systemd/system /var/lib /var/tmp /var/log
    # A machine id: without one systemd takes this for a first boot and
    # stops at systemd-firstboot's prompt.
    $bb tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
    # The bus socket comes with dbus.socket; no default dependencies keeps
    # the boot short, and the tests may take minutes under TCG.
    cat >/etc/systemd/system/berth-test.service <<'EOF'
[Unit]
Description=berth systemd-cgroup tests
DefaultDependencies=no
Wants=dbus.socket
After=dbus.socket

[Service]
Type=oneshot
TimeoutStartSec=0
ExecStart=/busybox sh /work/systemd.sh run
EOF
    echo "guest: booting systemd as PID 1" >>/work/results/output
    exec /usr/lib/systemd/systemd --unit=berth-test.service --log-target=console --show-status=false
}

run() {
    {
        echo "systemd $(/usr/bin/systemctl --version | $bb head -n1)"
        echo "system bus socket: $($bb ls /run/dbus/system_bus_socket 2>&1)"
        # The layout systemd really set up (the kernel command line picks it).
        echo "kernel $($bb uname -r), command line: $($bb cat /proc/cmdline)"
        $bb grep cgroup /proc/self/mountinfo
    } >>/work/results/output
    set --
    while IFS= read -r arg; do
        [ -n "$arg" ] && set -- "$@" "$arg"
    done </work/args
    cd /work || exit 1
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME=/root
    while IFS= read -r assignment; do
        [ -n "$assignment" ] && export "$assignment"
    done </work/env
    /run/bin/test-binary "$@" >>/work/results/output 2>&1
    echo $? >/work/results/exit.tmp
    # Socket-activated: active only if berth went through the bus.
    echo "dbus.service: $(/usr/bin/systemctl is-active dbus.service)" >>/work/results/output
    $bb mv /work/results/exit.tmp /work/results/exit
    $bb sync
    /usr/bin/systemctl poweroff -f || $bb poweroff -f
}

case "$1" in
    boot) boot ;;
    run) run ;;
    *) echo "guest-systemd.sh: boot or run" >&2 && exit 2 ;;
esac
