#!/bin/bash
# Runs a test binary inside a small qemu VM whose only cgroup hierarchy is
# cgroup2 (kernel booted with cgroup_no_v1=all, every controller enabled in
# the root's cgroup.subtree_control), or on the hybrid layout (--hybrid,
# --systemd-hybrid), then prints the guest's output and exits with the
# guest's exit code.
#
#   integration/cgroups-vm/run.sh            # the berth-cgroups root tests
#   integration/cgroups-vm/run.sh --integration [ARGS...]
#                                            # berth's container-level cgroup tests
#                                            # (default: all of integration/cgroups.rs)
#   integration/cgroups-vm/run.sh --lsm [ARGS...]
#                                            # berth's LSM tests with AppArmor enabled
#                                            # (default: lsm:: and the LSM tests of security::)
#   integration/cgroups-vm/run.sh --selinux [ARGS...]
#                                            # the same tests with SELinux enforcing instead
#                                            # (security=selinux, the policy in selinux-test.cil)
#   integration/cgroups-vm/run.sh --systemd [ARGS...]
#                                            # berth's --systemd-cgroup tests with systemd
#                                            # as PID 1 (default: systemd::)
#   integration/cgroups-vm/run.sh --systemd-hybrid [ARGS...]
#                                            # the same on systemd's hybrid layout: v1
#                                            # controllers plus cgroup2 at .../unified
#   integration/cgroups-vm/run.sh --hybrid [ARGS...]
#                                            # all of cgroups:: on the hybrid layout without
#                                            # systemd (stage 2 mounts the hierarchies)
#   integration/cgroups-vm/run.sh BINARY [ARGS...]
#
# The kernel is a Debian linux-image package fetched with `apt-get download`
# and unpacked with `dpkg-deb -x` into the cache (never installed on the
# host). The guest mounts the host's /usr read-only over virtio-9p (Debian
# has a merged /usr, so host binaries run unchanged) and a read-write 9p
# share carrying the test binary and the results. TCG only: /dev/kvm on
# these machines is a nested paravirtual KVM that cannot run a stock kernel.
#
# Environment: BERTH_VM_CACHE (default: <repo>/target/cgroups-vm),
# BERTH_VM_KERNEL_PKG (default: what linux-image-amd64 depends on),
# BERTH_VM_MEMORY (MiB, default 1024), BERTH_VM_TIMEOUT (s, default 900).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${BERTH_VM_CACHE:-$repo/target/cgroups-vm}
memory=${BERTH_VM_MEMORY:-1024}
timeout_s=${BERTH_VM_TIMEOUT:-900}

initrd_dir=""
die() {
    echo "cgroups-vm: $*" >&2
    [ -n "$initrd_dir" ] && rm -rf "$initrd_dir"
    exit 2
}
log() { echo "cgroups-vm: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and the guest tests need root)"

apt_updated=false
apt_install() {
    if ! $apt_updated; then
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

ensure_host_tools() {
    command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86
    # The initramfs needs the static busybox (Debian's plain one is dynamic).
    dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
    command -v dpkg-deb >/dev/null || die "dpkg-deb missing (not a Debian host?)"
    # The guest makes its soft-RoCE device with the host's ip and rdma (shared /usr).
    [ -x /usr/bin/rdma ] && [ -x /usr/bin/ip ] || apt_install iproute2
}

# The linux-image package to boot: BERTH_VM_KERNEL_PKG or the one the
# linux-image-amd64 metapackage currently depends on.
kernel_package() {
    if [ -n "${BERTH_VM_KERNEL_PKG:-}" ]; then
        echo "$BERTH_VM_KERNEL_PKG"
        return
    fi
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=true
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || die "cannot find which linux-image package linux-image-amd64 depends on"
    echo "$pkg"
}

# Downloads and unpacks the kernel package once; prints the unpack dir.
fetch_kernel() {
    local pkg=$1 dir="$cache/$1"
    if [ ! -f "$dir/.unpacked" ]; then
        log "fetching $pkg (apt-get download, unpacked with dpkg-deb -x, not installed)"
        rm -rf "$dir" "$cache/download"
        mkdir -p "$cache/download"
        (cd "$cache/download" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        dpkg-deb -x "$cache"/download/*.deb "$dir" || die "dpkg-deb -x failed"
        rm -rf "$cache/download"
        touch "$dir/.unpacked"
    fi
    echo "$dir"
}

# The .ko path of a module name within a modules tree (- and _ are the same).
module_file() {
    local tree=$1 name=$2 pattern
    pattern=$(echo "$name" | sed 's/[-_]/[-_]/g')
    find "$tree" -regextype posix-extended -regex ".*/${pattern}\.ko(\.xz|\.zst)?" | head -n1
}

# Copies NAME and (first) its dependencies into DEST, appending them to DEST/order, once each.
resolve_module() {
    local tree=$1 name=$2 dest=$3 file deps dep
    case " $loaded " in *" $name "*) return ;; esac
    file=$(module_file "$tree" "$name")
    [ -n "$file" ] || die "module $name not found in $tree"
    deps=$(module_bytes "$file" | grep -aoE 'depends=[A-Za-z0-9_,-]*' | head -n1 | cut -d= -f2)
    for dep in ${deps//,/ }; do
        resolve_module "$tree" "$dep" "$dest"
    done
    loaded="$loaded $name"
    module_bytes "$file" >"$dest/$name.ko"
    echo "$name.ko" >>"$dest/order"
}

# Copies the modules NAMES (with their dependencies) of the kernel unpacked in KDIR into DEST,
# with DEST/order, the order to insmod them in.
stage_modules() {
    local kdir=$1 dest=$2 tree m
    shift 2
    tree=$(echo "$kdir"/lib/modules/*/kernel)
    [ -d "$tree" ] || die "no modules in $kdir"
    mkdir -p "$dest"
    loaded=""
    : >"$dest/order"
    for m in "$@"; do
        resolve_module "$tree" "$m" "$dest"
    done
}

module_bytes() {
    case "$1" in
        *.xz) xz -dc "$1" ;;
        *.zst) zstd -dcq "$1" ;;
        *) cat "$1" ;;
    esac
}

build_initramfs() {
    local kdir=$1 out=$2
    initrd_dir=$(mktemp -d "$cache/initrd.XXXXXX")
    mkdir -p "$initrd_dir"/{bin,proc,sys,dev,newroot}
    cp /bin/busybox "$initrd_dir/bin/busybox"
    stage_modules "$kdir" "$initrd_dir/modules" virtio_pci 9pnet_virtio 9p brd
    cp "$here/guest-init.sh" "$initrd_dir/init"
    chmod 755 "$initrd_dir/init"
    (cd "$initrd_dir" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$initrd_dir"
    initrd_dir=""
}

# Builds `cargo test -p PKG --test TEST` and prints the path of the executable named NAME
# among the artifacts (the test itself, or a binary of the package it needs).
built_executable() {
    local pkg=$1 test=$2 name=$3
    (cd "$repo" && cargo test -p "$pkg" --test "$test" --no-run --message-format=json 2>/dev/null) |
        grep '"reason":"compiler-artifact"' | grep "\"name\":\"$name\"" |
        grep -o '"executable":"[^"]*"' | tail -n1 | cut -d'"' -f4
}

# What --integration and --hybrid give the guest beyond cgroups: stage 2 loads these modules
# from the share, makes a soft-RoCE device (rdma_rxe on a dummy netdev: -nic none leaves no
# real one) and puts BFQ on the virtio disk of the run (blkio weights need a disk under BFQ).
# rxe asks the crypto API for "crc32", which the guest cannot modprobe: crc32_generic.
device_modules=(dummy crc32_generic rdma_rxe virtio_blk bfq)
# The tests' skips that must fail in those runs instead (the guest has the devices).
device_requirements=(BERTH_TEST_REQUIRE_RDMA=1 BERTH_TEST_REQUIRE_BFQ=1)

# The LSM tests run in the VM by --lsm: the guest kernel runs AppArmor (Debian's default).
lsm_integration_tests=(
    lsm::
    security::features_report_the_hosts_lsms
    security::apparmor_profile_is_applied_or_ignored_like_runc
    security::selinux_labels_without_selinux_are_a_clear_error
)

# Copies an executable into the share's bin/, without its debug info when `strip` is there:
# the guest copies bin/ to a tmpfs before running anything (see guest-stage2.sh), and under
# TCG every megabyte counts.
stage_binary() {
    local from=$1 to=$2
    if command -v strip >/dev/null; then
        strip --strip-all -o "$to" "$from" || die "strip $from failed"
    else
        cp "$from" "$to" || die "copy $from failed"
    fi
}

# Stages berth's integration test binary and the berth binary it runs (BERTH_RUNTIME). The
# harness finds busybox at /bin/busybox, which the guest has from the host's /usr.
stage_integration() {
    local share=$1 tests berth
    tests=$(built_executable berth integration integration)
    [ -n "$tests" ] || die "could not build berth's integration test binary"
    berth=$(built_executable berth integration berth)
    [ -x "$berth" ] || die "could not build the berth binary"
    [ -x /bin/busybox ] || apt_install busybox-static
    stage_binary "$tests" "$share/bin/test-binary"
    stage_binary "$berth" "$share/bin/berth"
    # Where guest-stage2.sh puts bin/: berth must not run from 9p (its CVE-2019-5736 guard
    # would copy the whole binary into a memfd on every call).
    echo "BERTH_RUNTIME=/run/bin/berth" >>"$share/env"
}

# The guest boots the host's systemd and its system bus (shared /usr); berth's tests run
# in the unit guest-systemd.sh writes. LAYOUT is the one the tests must find (unified, hybrid).
stage_systemd() {
    local share=$1 layout=$2
    [ -x /usr/lib/systemd/systemd ] || apt_install systemd
    [ -x /usr/bin/dbus-daemon ] || apt_install dbus
    stage_integration "$share"
    cp "$here/guest-systemd.sh" "$share/systemd.sh"
    echo "BERTH_TEST_REQUIRE_LAYOUT=$layout" >>"$share/env"
}

main() {
    ensure_host_tools
    mkdir -p "$cache"
    # The read-write share: test binary, its arguments and environment, results.
    share=$(mktemp -d "$cache/share.XXXXXX")
    trap 'rm -rf "$share" "$share.disk"' EXIT
    mkdir -p "$share/results" "$share/bin"
    : >"$share/env"
    local vm_append="" cgroup_append="cgroup_no_v1=all" devices=false
    if [ "${1:-}" = "--integration" ]; then
        shift
        stage_integration "$share"
        devices=true
        echo "BERTH_TEST_REQUIRE_LAYOUT=unified" >>"$share/env"
        # All of integration/cgroups.rs: about a minute of test time under TCG.
        [ $# -gt 0 ] || set -- cgroups:: --test-threads=2
    elif [ "${1:-}" = "--hybrid" ]; then
        shift
        # v1 stays on; the marker makes guest-stage2.sh mount the hybrid layout (no systemd).
        cgroup_append=""
        stage_integration "$share"
        devices=true
        : >"$share/hybrid"
        printf '%s\n' BERTH_TEST_REQUIRE_LAYOUT=hybrid BERTH_TEST_REQUIRE_NET_CLS=1 >>"$share/env"
        [ $# -gt 0 ] || set -- cgroups:: --test-threads=2
    elif [ "${1:-}" = "--lsm" ]; then
        shift
        # The tests load their own profiles with the host's apparmor_parser (shared /usr).
        [ -x /usr/sbin/apparmor_parser ] || apt_install apparmor
        stage_integration "$share"
        # A guest without AppArmor fails these tests instead of skipping them.
        echo "BERTH_TEST_REQUIRE_APPARMOR=1" >>"$share/env"
        [ $# -gt 0 ] || set -- "${lsm_integration_tests[@]}" --test-threads=2
    elif [ "${1:-}" = "--selinux" ]; then
        shift
        # Debian's kernel runs AppArmor unless told otherwise; guest-stage2.sh loads the policy.
        vm_append=" security=selinux"
        command -v secilc >/dev/null || apt_install secilc
        secilc -o "$share/selinux-policy" -f /dev/null "$here/selinux-test.cil" >&2 \
            || die "secilc $here/selinux-test.cil failed"
        stage_integration "$share"
        echo "BERTH_TEST_REQUIRE_SELINUX=1" >>"$share/env"
        [ $# -gt 0 ] || set -- "${lsm_integration_tests[@]}" --test-threads=2
    elif [ "${1:-}" = "--systemd" ]; then
        shift
        stage_systemd "$share" unified
        [ $# -gt 0 ] || set -- systemd:: --test-threads=2
    elif [ "${1:-}" = "--systemd-hybrid" ]; then
        shift
        # v1 stays on; systemd 252 mounts the v1 controllers, name=systemd and cgroup2 at
        # /sys/fs/cgroup/unified (legacy_systemd_cgroup_controller=0: hybrid, not pure v1).
        # The marker keeps guest-stage2.sh from mounting cgroup2 first.
        cgroup_append="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0"
        stage_systemd "$share" hybrid
        : >"$share/systemd-hybrid"
        [ $# -gt 0 ] || set -- systemd:: --test-threads=2
    else
        local binary
        if [ $# -gt 0 ]; then
            binary=$1
            shift
        else
            binary=$(built_executable berth-cgroups cgroups cgroups)
            [ -n "$binary" ] || die "could not build the berth-cgroups test binary"
        fi
        [ -x "$binary" ] || die "test binary $binary is not executable"
        stage_binary "$binary" "$share/bin/test-binary"
    fi

    local pkg kdir kernel initrd
    pkg=$(kernel_package)
    kdir=$(fetch_kernel "$pkg")
    kernel=$(echo "$kdir"/boot/vmlinuz-*)
    [ -f "$kernel" ] || die "no vmlinuz in $kdir/boot"
    initrd="$kdir/initrd-berth.gz"
    if [ ! -f "$initrd" ] || [ "$here/guest-init.sh" -nt "$initrd" ] || [ "$0" -nt "$initrd" ]; then
        log "building the initramfs"
        build_initramfs "$kdir" "$initrd"
    fi

    cp "$here/guest-stage2.sh" "$share/stage2.sh"
    printf '%s\n' "$@" >"$share/args"

    # A sparse disk of this run only (qemu locks it: parallel runs cannot share one).
    local disk_args=()
    if $devices; then
        stage_modules "$kdir" "$share/modules" "${device_modules[@]}"
        printf '%s\n' "${device_requirements[@]}" >>"$share/env"
        truncate -s 64M "$share.disk" || die "cannot make the disk $share.disk"
        disk_args=(-drive "file=$share.disk,if=virtio,format=raw")
    fi

    log "booting $(basename "$kernel") under TCG (${cgroup_append:-v1 kept})"
    local start=$SECONDS rc=0
    timeout "$timeout_s" qemu-system-x86_64 \
        -accel tcg -cpu max -smp 2 -m "$memory" \
        -nographic -nic none -no-reboot \
        -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 $cgroup_append panic=-1 quiet loglevel=3$vm_append" \
        -virtfs local,path=/usr,mount_tag=hostusr,security_model=passthrough,readonly=on \
        -virtfs local,path="$share",mount_tag=work,security_model=passthrough \
        "${disk_args[@]}" \
        </dev/null >"$cache/console.log" 2>&1 || rc=$?
    log "VM ran for $((SECONDS - start)) s (qemu exit $rc)"

    if [ ! -f "$share/results/exit" ]; then
        echo "cgroups-vm: the guest wrote no result; console follows" >&2
        tail -n 60 "$cache/console.log" >&2
        exit 3
    fi
    cat "$share/results/output"
    local guest_rc
    guest_rc=$(cat "$share/results/exit")
    log "guest exit code $guest_rc"
    exit "$guest_rc"
}

main "$@"
