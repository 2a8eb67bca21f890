#!/bin/bash
# shellcheck disable=SC2034 # BERTH, SECURITY_OPTS and others are read by the engine files
# Real container engines drive berth: containerd (runc shim v2 through ctr),
# podman and docker, installed from Debian and started by hand with all
# their state in a private tmpfs that is always removed.
#
#   integration/clients/run.sh [path/to/berth] [ENGINE...]
#
# ENGINE is any of containerd podman docker (default: all three). Needs
# root. Installs its Debian packages when missing (set CLIENTS_NO_APT=1 to
# forbid that). Every berth call the engines make is logged (argv and exit
# code) and shown under a failing scenario; KEEP=1 keeps the scratch dir's
# logs by copying them to /tmp/berth-clients-logs before removal.
# CLIENTS_XFAIL="engine/scenario ..." names scenarios known to fail (a berth
# bug being fixed): they are reported but do not fail the run, and a pass
# of one of them does.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BERTH_SRC=${1:-$REPO/target/release/berth}
[ $# -gt 0 ] && shift
ENGINES=("$@")
[ ${#ENGINES[@]} -gt 0 ] || ENGINES=(containerd podman docker)

die() {
    echo "run.sh: $*" >&2
    exit 2
}
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$BERTH_SRC" ] || die "no berth binary at $BERTH_SRC (build it: cargo build --release -p berth)"
for e in "${ENGINES[@]}"; do
    case $e in containerd | podman | docker) ;; *) die "unknown engine '$e' (containerd, podman or docker)" ;; esac
done

PACKAGES=(containerd podman docker.io umoci skopeo busybox-static conmon util-linux jq)
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ -z "${CLIENTS_NO_APT:-}" ] || die "missing packages: ${missing[*]}"
    echo "installing: ${missing[*]}"
    # Debian's maintainer scripts must not start the host's own daemons.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    local log rc=0
    log=$(mktemp /tmp/berth-clients-apt.XXXXXX)
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
        apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1 || rc=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    [ $rc -eq 0 ] || tail -20 "$log" >&2
    rm -f "$log"
    [ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed"
}
install_packages

# --- the scratch area -----------------------------------------------------
W=$(mktemp -d /tmp/berth-clients.XXXXXX)
mount -t tmpfs -o mode=0755 tmpfs "$W" || {
    rmdir "$W"
    die "cannot mount a tmpfs on $W"
}
mkdir -p "$W/bin" "$W/logs"
CALLS=$W/logs/berth-calls.log
RESULTS=$W/logs/results
: >"$CALLS"
: >"$RESULTS"

# shellcheck source=lib.sh
. "$HERE/lib.sh"

# Shims of containerd and of dockerd's containerd keep sockets and fifos in
# /run/containerd whatever the daemons' state dirs: removed at the end when
# this run made it.
RUN_CONTAINERD_MADE=
[ -e /run/containerd ] || RUN_CONTAINERD_MADE=1

# Filled in by the engine files: engine-level teardown (remove containers,
# stop the daemon), then removal of what the engine keeps outside $W.
STOP_FUNCS=()
FINAL_FUNCS=()
cleanup() {
    local r id p i
    trap - EXIT INT TERM
    {
        for ((i = ${#STOP_FUNCS[@]} - 1; i >= 0; i--)); do "${STOP_FUNCS[i]}"; done
        # Containers an engine did not remove (a failed scenario): each id
        # berth was asked to create, force-deleted through berth itself.
        for id in $(container_ids_created); do
            r=$(state_root_for "$id")
            [ -d "$r/$id" ] && "$W/bin/berth-real" --root "$r" delete --force "$id"
        done
        # Any process still naming the scratch dir is ours (a shim, conmon).
        for p in $(pgrep -f -- "$W/"); do [ "$p" != $$ ] && kill -KILL "$p"; done
        sleep 0.5
        # Cgroups of the containers berth was asked to create (docker's and
        # podman's 64-hex ids; ctr's short ones go with their namespace).
        for id in $(container_ids_created | grep -E '^[0-9a-f]{64}$'); do
            find /sys/fs/cgroup -depth -type d \( -name "$id" -o -name "libpod-$id" \) -exec rmdir {} \;
        done
        for ((i = ${#FINAL_FUNCS[@]} - 1; i >= 0; i--)); do "${FINAL_FUNCS[i]}"; done
        [ -n "$RUN_CONTAINERD_MADE" ] && rm -rf /run/containerd
    } >>"$W/logs/cleanup.log" 2>&1
    if [ -n "${KEEP:-}" ]; then
        rm -rf /tmp/berth-clients-logs && cp -r "$W/logs" /tmp/berth-clients-logs 2>/dev/null &&
            echo "logs kept in /tmp/berth-clients-logs"
    fi
    umount -R "$W" 2>/dev/null || umount -R -l "$W" 2>/dev/null
    rmdir "$W" 2>/dev/null || echo "run.sh: could not remove $W" >&2
    # What the suite itself may have left: said loudly, and a failure.
    local left
    left=$(pgrep -af -- "$W/"; grep -F -- "$W" /proc/self/mountinfo)
    if [ -n "$left" ]; then
        echo "run.sh: left behind after cleanup:" >&2
        echo "$left" | head -10 >&2
        exit 1
    fi
}
trap cleanup EXIT
trap 'echo " interrupted: cleaning up"; exit 130' INT TERM

# --- berth, behind a wrapper that logs every call ---------------------------
# A copy, so a rebuild during the run does not change the binary under test.
cp "$BERTH_SRC" "$W/bin/berth-real"
ERRORS=$W/logs/berth-errors.log
cat >"$W/bin/berth" <<EOF
#!/bin/bash
# Logs argv and the exit code of every call, then passes both through. On
# failure it also keeps berth's last --log lines (engines delete the bundle
# holding that file), after the container id.
log=$CALLS
printf '%s call' "\$(date +%s.%N)" >>"\$log"; printf ' %q' "\$@" >>"\$log"; echo >>"\$log"
"$W/bin/berth-real" "\$@"
rc=\$?
printf '%s exit=%d' "\$(date +%s.%N)" \$rc >>"\$log"; printf ' %q' "\$@" >>"\$log"; echo >>"\$log"
if [ \$rc -ne 0 ]; then
    prev= logfile=
    for a in "\$@"; do
        case \$prev in --log) logfile=\$a ;; esac
        case \$a in --log=*) logfile=\${a#--log=} ;; esac
        prev=\$a
    done
    [ -n "\$logfile" ] && tail -n 2 "\$logfile" 2>/dev/null | sed "s|^|\${!#} |" >>"$ERRORS"
fi
exit \$rc
EOF
chmod 0755 "$W/bin/berth"
BERTH=$W/bin/berth

# Whether berth supports seccomp yet: engines' default profiles need it.
SECCOMP=$("$W/bin/berth-real" features 2>/dev/null | jq -r '.linux.seccomp.enabled // false')
# docker and podman put their default seccomp profile in every spec: until
# berth supports seccomp they run with it off (and the default-profile
# scenarios are skipped).
SECURITY_OPTS=()
[ "$SECCOMP" = true ] || SECURITY_OPTS=(--security-opt seccomp=unconfined)

# --- the image ---------------------------------------------------------------
# A busybox-static image built locally with umoci, imported into bale and
# exported by bale as the docker archive that ctr, podman and docker all load
# (so the engines' loaders check bale's export too); skopeo exports it when
# no bale sits next to the berth under test.
IMAGE=localhost/busybox:latest
IMAGE_TAR=$W/image/busybox.tar
BALE=$(dirname "$BERTH_SRC")/bale
export_image() {
    if [ -x "$BALE" ]; then
        echo "image archive: bale export"
        "$BALE" --root "$W/image/store" import --format oci-dir oci "$IMAGE" >/dev/null &&
            "$BALE" --root "$W/image/store" export --format docker-archive -o "$IMAGE_TAR" "$IMAGE"
    else
        echo "image archive: skopeo copy (no bale next to berth)"
        skopeo copy --quiet oci:oci:latest "docker-archive:$IMAGE_TAR:$IMAGE"
    fi
}
build_image() {
    local d=$W/image r
    mkdir -p "$d" && cd "$d" || return 1
    umoci init --layout oci &&
        umoci new --image oci:latest &&
        umoci unpack --image oci:latest bundle >/dev/null || return 1
    r=bundle/rootfs
    mkdir -p $r/bin $r/etc $r/tmp $r/root
    cp /bin/busybox $r/bin/busybox
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >$r/etc/passwd
    printf 'root:x:0:\nnobody:x:65534:\n' >$r/etc/group
    umoci repack --image oci:latest bundle >/dev/null &&
        umoci config --image oci:latest --config.cmd sh \
            --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin &&
        export_image || return 1
    rm -rf bundle
    cd "$W" || return 1
}
build_image >"$W/logs/image.log" 2>&1 || {
    cat "$W/logs/image.log"
    die "could not build the busybox image"
}

echo "berth under test: $BERTH_SRC ($("$W/bin/berth-real" --version 2>&1 | head -1)), seccomp: $SECCOMP"
echo "scratch dir: $W"

for e in "${ENGINES[@]}"; do
    # shellcheck source=/dev/null
    . "$HERE/$e.sh"
    echo "== $e"
    if ! "start_$e" >"$W/logs/$e-start.log" 2>&1; then
        FAILED=$((FAILED + 1))
        echo "FAILED to start $e:"
        tail -30 "$W/logs/$e-start.log" | sed 's/^/    | /'
        continue
    fi
    "scenarios_$e"
done

echo
echo "berth calls made by the engines: $(grep -c ' call ' "$CALLS"), failed: $(grep -cE ' exit=[1-9]' "$CALLS")"
echo "clients: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
